"""Engine and sessions. Sessions come from ``session_scope`` or the web dependency, never from a global."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, create_engine

from store.models import Setting
from store.settings import get_settings


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
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 15})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


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


def secret_key(session: Session) -> str:
    """DUTIES_SECRET_KEY, or a key generated once and kept in the store so every process signs alike."""
    return get_settings().secret_key or _generated_once(session, "secret_key")


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
