"""The store's pipelined transactions and SQLite's writer queue, on both real databases."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from central.store import ConflictError, SqliteStore, Store, Transaction

THREADS = 4
WRITES = 25


@pytest.fixture
def store(central_database: str) -> Iterator[Store]:
    opened = Store.open(central_database)
    with opened.transaction() as tx:
        tx.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        tx.execute("INSERT INTO t (id, v) VALUES (1, 'a')")
    try:
        yield opened
    finally:
        opened.close()


def _rows(store: Store) -> list[tuple[object, ...]]:
    with store.transaction(write=False) as tx:
        return tx.all("SELECT id, v FROM t ORDER BY id")


@pytest.mark.parametrize("then", ["read", "rowcount", "nothing"])
def test_an_error_surfaces_in_the_savepoint_that_caused_it(store: Store, then: str) -> None:
    def duplicate_then(tx: Transaction) -> None:
        with tx.savepoint():
            tx.execute("INSERT INTO t (id, v) VALUES (1, 'duplicate')")  # not waited for
            if then == "read":
                tx.one("SELECT COUNT(*) FROM t")
            elif then == "rowcount":
                assert tx.execute("UPDATE t SET v = 'b' WHERE id = 1").rowcount == 1

    with store.transaction(pipeline=True) as tx:
        with pytest.raises(ConflictError):
            duplicate_then(tx)
        # The transaction goes on after the failed savepoint, and the next one is clean.
        with tx.savepoint():
            tx.execute("INSERT INTO t (id, v) VALUES (2, 'b')")
            assert tx.execute("UPDATE t SET v = 'c' WHERE id = 2").rowcount == 1
            assert tx.execute("UPDATE t SET v = 'x' WHERE id = 99").rowcount == 0
    assert _rows(store) == [(1, "a"), (2, "c")]


def _insert_then(store: Store, *, then: str) -> None:
    with store.transaction(pipeline=True) as tx:
        tx.execute("INSERT INTO t (id, v) VALUES (3, 'not kept')")
        if then == "duplicate":
            tx.execute("INSERT INTO t (id, v) VALUES (1, 'duplicate')")
        else:
            raise RuntimeError("the caller changed its mind")


def test_a_pipelined_transaction_rolls_back_on_error(store: Store) -> None:
    with pytest.raises(ConflictError):
        _insert_then(store, then="duplicate")
    with pytest.raises(RuntimeError):
        _insert_then(store, then="raise")
    assert _rows(store) == [(1, "a")]


def test_concurrent_writers_each_count_once(store: Store) -> None:
    """Threads writing at once (SQLite: queued by the writer lock, not by SQLite's polling)."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def write() -> None:
        try:
            barrier.wait(timeout=60)
            for _ in range(WRITES):
                with store.transaction() as tx:
                    row = tx.one("SELECT v FROM t WHERE id = 1")
                    assert row is not None
                    tx.execute("UPDATE t SET v = ? WHERE id = 1", (str(row[0]) + "+",))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    final = str(_rows(store)[0][1])
    if isinstance(store, SqliteStore):
        # Serialised writers: no update lost (a read-then-write is safe under the lock).
        assert final == "a" + "+" * (THREADS * WRITES)
        assert store.path.with_name(store.path.name + "-writer.lock").exists()
    else:
        # READ COMMITTED: the service never reads-then-writes like this; just no error.
        assert final.startswith("a+")
