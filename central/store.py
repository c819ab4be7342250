"""The small store abstraction: one SQL text for SQLite and PostgreSQL, two connection kinds.

The service's SQL is written once, with ``?`` placeholders and portable types; a
:class:`Dialect` rewrites what differs (placeholders, column types) and says which driver
exception means "a unique constraint was hit" or "try the transaction again".

Concurrency model (the service is used from many threads, and several central processes may
share one PostgreSQL database):

- each :meth:`Store.transaction` takes a connection from a small pool, so threads never share
  a connection;
- SQLite: ``BEGIN IMMEDIATE`` takes the write lock up front, so two writers are serialised
  instead of failing on a lock upgrade; WAL lets readers go on meanwhile; central's writers
  (threads and processes) queue on a file lock first (:class:`_WriterLock`), which wakes the
  next one at once where SQLite would make it sleep and poll;
- PostgreSQL: READ COMMITTED; the service makes every "check then change" a single
  conditional ``UPDATE ... WHERE state = ...`` (the row lock decides the winner) or relies on
  a unique constraint, so no explicit locking is needed.

Round trips (PostgreSQL): ``transaction(pipeline=True)`` runs the transaction in psycopg's
pipeline mode: a statement whose result nobody reads (an INSERT, a SAVEPOINT) is sent without
waiting for its answer, and goes out together with the next statement that is read (a row,
a ``rowcount``). Every :meth:`Transaction.savepoint` block waits for its own statements
before it ends, so an error (a unique violation) still surfaces inside the block that caused
it. SQLite runs in-process: there is nothing to save, the flag changes nothing.
"""

from __future__ import annotations

import abc
import fcntl
import itertools
import logging
import os
import queue
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

log = logging.getLogger("central.store")

Row = tuple[Any, ...]
Params = Sequence[Any]

_SQLITE_BUSY_TIMEOUT_S: Final = 30.0
_POOL_SIZE: Final = 8
_SQLITE_PAGE_SIZE: Final = 16384


class StoreError(Exception):
    """The database cannot be opened or used."""


class ConflictError(StoreError):
    """A unique constraint was hit or the transaction must be retried (lost a race)."""


class _Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    blob: str
    bigint: str
    placeholder: str

    def sql(self, text: str) -> str:
        """Rewrite portable SQL: ``?`` placeholders, ``{blob}`` and ``{bigint}`` types."""
        text = text.replace("{blob}", self.blob).replace("{bigint}", self.bigint)
        if self.placeholder != "?":
            text = text.replace("?", self.placeholder)
        return text


SQLITE: Final = Dialect(name="sqlite", blob="BLOB", bigint="INTEGER", placeholder="?")
POSTGRES: Final = Dialect(name="postgresql", blob="BYTEA", bigint="BIGINT", placeholder="%s")


class _PipelinedCursor:
    """A cursor of a pipelined transaction: reading ``rowcount`` first waits for the answer
    (a row fetch does so by itself)."""

    def __init__(self, cursor: Any, sync: Callable[[], None]) -> None:
        self._cursor = cursor
        self._sync = sync

    @property
    def rowcount(self) -> int:
        if self._cursor.pgresult is None:  # its answer has not arrived yet
            self._sync()
        count: int = self._cursor.rowcount
        return count

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        rows: list[Any] = self._cursor.fetchall()
        return rows


class Transaction:
    """One open transaction: :meth:`execute` portable SQL, read rows, nest savepoints."""

    def __init__(
        self,
        connection: Any,
        dialect: Dialect,
        is_conflict: Callable[[BaseException], bool],
        *,
        pipeline: Any = None,
    ) -> None:
        self._connection = connection
        self._dialect = dialect
        self._is_conflict = is_conflict
        self._savepoints = itertools.count()
        self._pipeline = pipeline  # psycopg's Pipeline, or None

    def sync(self) -> None:
        """Wait for the answers of every statement sent so far (pipeline mode; a no-op
        otherwise): an error of any of them is raised here."""
        if self._pipeline is not None:
            self._pipeline.sync()

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested scope: if the block raises, only its own changes are undone.

        A unique violation inside surfaces as :class:`ConflictError`; the transaction
        itself stays usable (PostgreSQL included).
        """
        name = f"sp_{next(self._savepoints)}"
        self._connection.execute(f"SAVEPOINT {name}")
        try:
            yield
            self.sync()  # pipelined statements of this block fail here, not in the next one
        except BaseException as exc:
            self._settle()
            self._connection.execute(f"ROLLBACK TO SAVEPOINT {name}")
            self._connection.execute(f"RELEASE SAVEPOINT {name}")
            self.sync()
            if self._is_conflict(exc):
                raise ConflictError(str(exc)) from exc
            raise
        self._connection.execute(f"RELEASE SAVEPOINT {name}")

    def _settle(self) -> None:
        """Pipeline mode, after an error: the server skipped what was sent after the failed
        statement until the next sync point; reach it, so that the rollback runs."""
        if self._pipeline is None:
            return
        try:
            self._pipeline.sync()
        except Exception:  # noqa: BLE001  (the skipped statements' errors; the first is raised)
            log.debug("pipeline settled after an error")

    @property
    def dialect(self) -> Dialect:
        return self._dialect

    def execute(self, sql: str, params: Params = ()) -> _Cursor:
        cursor = self._connection.execute(self._dialect.sql(sql), tuple(params))
        if self._pipeline is not None:
            return _PipelinedCursor(cursor, self._pipeline.sync)
        plain: _Cursor = cursor
        return plain

    def one(self, sql: str, params: Params = ()) -> Row | None:
        row = self.execute(sql, params).fetchone()
        return None if row is None else tuple(row)

    def all(self, sql: str, params: Params = ()) -> list[Row]:
        return [tuple(row) for row in self.execute(sql, params).fetchall()]


class Store(abc.ABC):
    """A database behind a small connection pool; open with :meth:`open`."""

    def __init__(self, url: str, dialect: Dialect) -> None:
        self.url = url
        self.dialect = dialect
        self._pool: queue.LifoQueue[Any] = queue.LifoQueue()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self._closed = False

    @staticmethod
    def open(url: str) -> Store:
        """``sqlite:///abs/path.db`` (or a plain path) or ``postgresql://...``."""
        if url.startswith(("postgresql://", "postgres://")):
            return PostgresStore(url)
        path = url.removeprefix("sqlite://") if url.startswith("sqlite://") else url
        return SqliteStore(Path(path))

    # --- connections -------------------------------------------------------------------

    @abc.abstractmethod
    def _connect(self) -> Any:
        """Implemented by each database (the one place dialects differ in behaviour)."""

    @abc.abstractmethod
    def _begin(self, connection: Any, *, write: bool) -> None:
        """Implemented by each database (the one place dialects differ in behaviour)."""

    @abc.abstractmethod
    def is_conflict(self, exc: BaseException) -> bool:
        """Implemented by each database (the one place dialects differ in behaviour)."""

    @contextmanager
    def _pipelined(self, connection: Any, wanted: bool) -> Iterator[Any]:
        """The database's pipeline handle for a transaction, or None (the default: none)."""
        yield None

    @contextmanager
    def _writing(self, write: bool) -> Iterator[None]:
        """Held around a whole transaction (the default: nothing)."""
        yield

    def _acquire(self) -> Any:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._closed:
                raise StoreError("store is closed")
            connection = self._connect()
            self._all.append(connection)
            return connection

    def _release(self, connection: Any) -> None:
        if self._pool.qsize() >= _POOL_SIZE or self._closed:
            with self._lock:
                self._all.remove(connection)
            connection.close()
        else:
            self._pool.put(connection)

    @contextmanager
    def transaction(self, *, write: bool = True, pipeline: bool = False) -> Iterator[Transaction]:
        """A transaction: committed when the block ends, rolled back if it raises.

        ``write=False`` for a block that only reads (SQLite then takes no write lock).
        ``pipeline=True``: fewer round trips on PostgreSQL (see the module docstring).
        A unique violation or a serialisation failure surfaces as :class:`ConflictError`.
        """
        connection = self._acquire()
        healthy = True
        try:
            with self._writing(write):
                self._begin(connection, write=write)
                try:
                    with self._pipelined(connection, pipeline) as handle:
                        yield Transaction(
                            connection, self.dialect, self.is_conflict, pipeline=handle
                        )
                    connection.commit()
                except BaseException as exc:
                    try:
                        connection.rollback()
                    except Exception:  # noqa: BLE001  (a broken connection cannot roll back: drop it)
                        healthy = False
                    if self.is_conflict(exc):
                        raise ConflictError(str(exc)) from exc
                    raise
        finally:
            if healthy:
                self._release(connection)
            else:
                with self._lock:
                    self._all.remove(connection)
                connection.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._all = self._all, []
        for connection in connections:
            connection.close()


class _WriterLock:
    """Writers of one SQLite file queue here, threads and processes alike, before
    ``BEGIN IMMEDIATE``.

    SQLite makes a writer that finds the file locked sleep and poll (1, 2, 5, 10, ... 100 ms):
    with two central processes, each batch's waiter overslept the holder's commit by several
    milliseconds. An ``flock`` on a file beside the database wakes the next writer as soon
    as the lock is released; a thread lock first, since ``flock`` is held per process.
    Re-entrant in one thread, as SQLite's lock was (a nested write then waits on SQLite).
    Only an ordering of the waiters: SQLite's own lock still guards the file, so a writer
    outside central (the sqlite3 shell) or a forked child sharing the descriptor is safe,
    merely slower. A process that dies releases its ``flock``.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._thread = threading.RLock()
        self._depth = 0  # changed only by the thread holding self._thread
        self._fd: int | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._thread:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fd = self._fd
            if self._depth == 0:
                fcntl.flock(fd, fcntl.LOCK_EX)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._thread:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class SqliteStore(Store):
    def __init__(self, path: Path) -> None:
        super().__init__(f"sqlite://{path}", SQLITE)
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = _WriterLock(path.with_name(path.name + "-writer.lock"))

    @contextmanager
    def _writing(self, write: bool) -> Iterator[None]:
        if not write:
            yield
            return
        with self._writer.held():
            yield

    def close(self) -> None:
        super().close()
        self._writer.close()

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN ourselves (IMMEDIATE, see the module docstring).
        connection = sqlite3.connect(
            self.path,
            timeout=_SQLITE_BUSY_TIMEOUT_S,
            isolation_level=None,
            check_same_thread=False,
        )
        # A new database only (the page size of an existing one stays): a 130 KB encrypted
        # record spans 9 pages instead of 33, which halves the CPU and the WAL frames of an
        # ingest's write. Must come before WAL mode is set.
        connection.execute(f"PRAGMA page_size={_SQLITE_PAGE_SIZE}")
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")  # central is the system of record
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("PRAGMA secure_delete=ON")
        return connection

    def _begin(self, connection: Any, *, write: bool) -> None:
        connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def is_conflict(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)


class PostgresStore(Store):
    def __init__(self, url: str) -> None:
        super().__init__(url, POSTGRES)
        try:
            import psycopg  # optional dependency: only for PostgreSQL
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise StoreError(
                "PostgreSQL needs psycopg: pip install 'dr-station[postgres]'"
            ) from exc
        self._psycopg = psycopg

    def _connect(self) -> Any:
        try:
            return self._psycopg.connect(self.url, autocommit=False)
        except self._psycopg.OperationalError as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {_redact(self.url)}: {exc}") from exc

    def _begin(self, connection: Any, *, write: bool) -> None:
        # psycopg opens a transaction implicitly at the first statement (autocommit off).
        return None

    @contextmanager
    def _pipelined(self, connection: Any, wanted: bool) -> Iterator[Any]:
        if not wanted:
            yield None
            return
        with connection.pipeline() as pipeline:
            yield pipeline

    def is_conflict(self, exc: BaseException) -> bool:
        errors = self._psycopg.errors
        return isinstance(
            exc, errors.UniqueViolation | errors.SerializationFailure | errors.DeadlockDetected
        )


def _redact(url: str) -> str:
    """A connection URL without its password, for error messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
