"""The small store abstraction: one SQL text for SQLite and PostgreSQL, two connection kinds.

The service's SQL is written once, with ``?`` placeholders and portable types; a
:class:`Dialect` rewrites what differs (placeholders, column types) and says which driver
exception means "a unique constraint was hit" or "try the transaction again".

Concurrency model (the service is used from many threads, and several central processes may
share one PostgreSQL database):

- each :meth:`Store.transaction` takes a connection from a small pool, so threads never share
  a connection;
- SQLite: ``BEGIN IMMEDIATE`` takes the write lock up front, so two writers are serialised
  instead of failing on a lock upgrade; WAL lets readers go on meanwhile;
- PostgreSQL: READ COMMITTED; the service makes every "check then change" a single
  conditional ``UPDATE ... WHERE state = ...`` (the row lock decides the winner) or relies on
  a unique constraint, so no explicit locking is needed.
"""

from __future__ import annotations

import abc
import itertools
import queue
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

Row = tuple[Any, ...]
Params = Sequence[Any]

_SQLITE_BUSY_TIMEOUT_S: Final = 30.0
_POOL_SIZE: Final = 8


class StoreError(Exception):
    """The database cannot be opened or used."""


class ConflictError(StoreError):
    """A unique constraint was hit or the transaction must be retried (lost a race)."""


class _Cursor(Protocol):
    rowcount: int

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


class Transaction:
    """One open transaction: :meth:`execute` portable SQL, read rows, nest savepoints."""

    def __init__(
        self, connection: Any, dialect: Dialect, is_conflict: Callable[[BaseException], bool]
    ) -> None:
        self._connection = connection
        self._dialect = dialect
        self._is_conflict = is_conflict
        self._savepoints = itertools.count()

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
        except BaseException as exc:
            self._connection.execute(f"ROLLBACK TO SAVEPOINT {name}")
            self._connection.execute(f"RELEASE SAVEPOINT {name}")
            if self._is_conflict(exc):
                raise ConflictError(str(exc)) from exc
            raise
        self._connection.execute(f"RELEASE SAVEPOINT {name}")

    @property
    def dialect(self) -> Dialect:
        return self._dialect

    def execute(self, sql: str, params: Params = ()) -> _Cursor:
        cursor: _Cursor = self._connection.execute(self._dialect.sql(sql), tuple(params))
        return cursor

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
    def transaction(self, *, write: bool = True) -> Iterator[Transaction]:
        """A transaction: committed when the block ends, rolled back if it raises.

        ``write=False`` for a block that only reads (SQLite then takes no write lock).
        A unique violation or a serialisation failure surfaces as :class:`ConflictError`.
        """
        connection = self._acquire()
        healthy = True
        try:
            self._begin(connection, write=write)
            try:
                yield Transaction(connection, self.dialect, self.is_conflict)
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


class SqliteStore(Store):
    def __init__(self, path: Path) -> None:
        super().__init__(f"sqlite://{path}", SQLITE)
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN ourselves (IMMEDIATE, see the module docstring).
        connection = sqlite3.connect(
            self.path,
            timeout=_SQLITE_BUSY_TIMEOUT_S,
            isolation_level=None,
            check_same_thread=False,
        )
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

    def is_conflict(self, exc: BaseException) -> bool:
        errors = self._psycopg.errors
        return isinstance(
            exc, errors.UniqueViolation | errors.SerializationFailure | errors.DeadlockDetected
        )


def _redact(url: str) -> str:
    """A connection URL without its password, for error messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
