"""Engine and sessions. Sessions come from ``session_scope`` or the web dependency, never from a global."""

from __future__ import annotations

import fcntl
import secrets
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, create_engine

from store.models import Setting
from store.settings import get_settings

POOL_RECYCLE_SECONDS = 1800
POOL_SIZE = 15  # PostgreSQL connections per process, at most


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the web app read while a tick writes; busy_timeout makes a second writer wait instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            mark_in_use(Path(path))
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 15})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # Recycling instead of a ping: pool_pre_ping cost every checkout one more round trip. A connection older than half
    # an hour is replaced before a server or a firewall drops it; after a database restart, the requests in flight
    # fail once and SQLAlchemy empties the pool (it invalidates every connection on a disconnect error).
    # The same ceiling as SQLAlchemy's default (5 kept + 10 overflow), all kept once opened: under 50 clients the
    # overflow connections were closed on return and opened again a moment later, each a new server process.
    return create_engine(url, pool_recycle=POOL_RECYCLE_SECONDS, pool_size=POOL_SIZE, max_overflow=0)


# ---------------------------------------------------------------- in use (SQLite)

_IN_USE: dict[Path, IO[str]] = {}


class StoreInUse(Exception):
    """Another process (the web app, a worker, a tick) has the SQLite store open."""


def _marker(database: Path) -> Path:
    return database.with_name(database.name + ".inuse")


def mark_in_use(database: Path) -> None:
    """Hold a shared lock on ``DB.inuse`` for as long as this process lives, so a restore can see the store is open.

    Every process that opens the store takes it (the web app, workers, each command); a restore needs it alone
    (``used_alone``). Waits while a restore runs: a tick started during a restore then reads the restored store.
    """
    key = database.resolve()
    if key in _IN_USE:
        return
    handle = _marker(key).open("a")
    fcntl.flock(handle, fcntl.LOCK_SH)
    _IN_USE[key] = handle


def release_in_use(database: Path) -> None:
    """Give up this process's shared lock on the store (it no longer uses it)."""
    own = _IN_USE.pop(database.resolve(), None)
    if own is not None:
        own.close()


@contextmanager
def used_alone(database: Path) -> Iterator[None]:
    """The SQLite store to this process alone, or StoreInUse: nobody else may read or write it meanwhile."""
    key = database.resolve()
    release_in_use(key)  # this process's own shared lock would stand in its way
    key.parent.mkdir(parents=True, exist_ok=True)
    with _marker(key).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreInUse(str(database)) from None
        yield


@lru_cache
def get_engine(url: str | None = None) -> Engine:
    return make_engine(url or get_settings().resolved_database_url)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    with Session(engine or get_engine(), expire_on_commit=False) as session:
        yield session


_WRITERS: dict[str, threading.Lock] = {}


@contextmanager
def one_writer(session: Session) -> Iterator[None]:
    """On SQLite, one thread of this process writes at a time; on PostgreSQL, which locks rows, nothing.

    SQLite admits one writer anyway, and a second one waits in its busy handler, which polls with sleeps of up to
    100 ms: under 50 concurrent confirmations that alone made the p99 two seconds. A lock in the process hands the
    turn over as soon as it is free. Another process (a second web worker, a tick) still waits in the busy handler.
    """
    bind = session.get_bind()
    if bind.dialect.name != "sqlite":
        yield
        return
    with _WRITERS.setdefault(str(bind.engine.url), threading.Lock()):
        yield


def lock_for_writing(connection: Connection, *, key: int) -> None:
    """Make other processes that take the same lock wait until this transaction ends.

    PostgreSQL: an advisory transaction lock on ``key``. SQLite has one write lock for the whole database, so ``key``
    does not matter there: ``BEGIN IMMEDIATE`` takes it at once instead of at the first write, and a second process
    waits in its busy handler. pysqlite opens a transaction only before a write, so a connection already in one has
    written and holds the write lock.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    elif connection.dialect.name == "sqlite" and not connection.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_tables(engine: Engine) -> None:
    """Create a new store, or upgrade an existing one to the newest migration (store/migrate.py)."""
    from store import migrate

    migrate.upgrade(engine)
    forget_secret(engine)


# The generated secret of each engine, once read: it never changes after it is made, and without it every confirmation
# link paid one more store read. Keyed on the engine, not only its URL: a restore or a new store at the same URL comes
# with a new engine (get_engine.cache_clear), and create_tables forgets the old value too.
_SECRETS: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def secret_key(session: Session) -> str:
    """DUTIES_SECRET_KEY, or a key generated once and kept in the store so every process signs alike."""
    configured = get_settings().secret_key
    if configured:
        return configured
    engine = session.get_bind().engine
    known = _SECRETS.get(engine)
    if known is None:
        known = _SECRETS[engine] = _generated_once(session, "secret_key")
    return known


def forget_secret(engine: Engine) -> None:
    """Read the generated secret from the store again next time (the store was created, upgraded or replaced)."""
    _SECRETS.pop(engine, None)


def unannounced_seed(session: Session) -> str:
    """DUTIES_UNANNOUNCED_SEED, or one generated once: it draws the days of unannounced checks."""
    return get_settings().unannounced_seed or _generated_once(session, "unannounced_seed")


def _generated_once(session: Session, key: str) -> str:
    row = session.get(Setting, key)
    if row is not None:
        return row.value
    session.add(Setting(key=key, value=secrets.token_urlsafe(32)))
    try:
        session.commit()
    except IntegrityError:  # another process generated it first: use theirs
        session.rollback()
    row = session.get(Setting, key)
    assert row is not None
    return row.value
