"""Shared fixtures: an isolated store per test (SQLite file, and PostgreSQL when reachable), the shipped calendars
with their contacts pointed at real receivers on 127.0.0.1, and a step context."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text
from sqlmodel import Session

from calendars.loader import Program, load_program
from flows.runtime import make_context
from flows.steps import Context, sync_program
from notify.receivers import Inbox
from notify.send import send_apprise
from store import db
from store.scratch import one_occurrence
from store.settings import get_settings

# browser, phone_page, desk_page, screenshot; now, client, item (the web tests' frozen clock, client and item)
# prefect_api: a real Prefect server, once per session
pytest_plugins = ["tests.browser_support", "tests.web_support", "tests.prefect_support"]

REPO = Path(__file__).resolve().parent.parent
SHANGHAI = ZoneInfo("Asia/Shanghai")
POSTGRES_URL = os.environ.get("DUTIES_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def local(text_: str) -> datetime:
    """A moment written in Asia/Shanghai local time, as the offices speak of it."""
    return datetime.fromisoformat(text_).replace(tzinfo=SHANGHAI)


def postgres_available() -> str | None:
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 2})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means: skip, with the reason
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


POSTGRES_PROBLEM = postgres_available()


@pytest.fixture(scope="session")
def inbox() -> Iterator[Inbox]:
    receivers = Inbox().start()
    yield receivers
    receivers.stop()


@pytest.fixture
def fresh_inbox(inbox: Inbox) -> Inbox:
    inbox.mails.clear()
    inbox.posts.clear()
    return inbox


@pytest.fixture
def calendars_dir(tmp_path: Path, inbox: Inbox) -> Path:
    """The shipped calendars, with the demo contacts pointed at this session's receivers."""
    return inbox.calendars_for(REPO / "calendars", tmp_path / "calendars")


LEDGER_AT = local("2026-03-02T09:30")


@pytest.fixture
def ledger(sqlite_store: str) -> Iterator[Session]:
    """A store with one unit and one occurrence to hang deliveries on (tests of the outbox and of sending)."""
    with db.session_scope() as session:
        one_occurrence(session, at=LEDGER_AT, due=LEDGER_AT + timedelta(days=3))
        session.commit()
        yield session


def _sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'var' / 'duties.db'}"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return _sqlite_url(tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store on SQLite and, where it is reachable, on the PostgreSQL at 127.0.0.1:5432 (a new schema)."""
    if request.param == "sqlite":
        yield _sqlite_url(tmp_path)
        return
    if POSTGRES_PROBLEM:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 not reachable ({POSTGRES_PROBLEM})")
    schema = f"duties_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, calendars_dir: Path) -> Iterator[Path]:
    """Point every DUTIES_* setting at this test's own folder."""
    monkeypatch.setenv("DUTIES_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("DUTIES_CALENDARS", str(calendars_dir))
    monkeypatch.setenv("DUTIES_SECRET_KEY", "test-secret-" + uuid.uuid4().hex)
    monkeypatch.setenv("DUTIES_UNANNOUNCED_SEED", "a fixed seed, so the drawn days are the same in every run")
    monkeypatch.delenv("DUTIES_DATABASE_URL", raising=False)
    monkeypatch.delenv("DUTIES_BASE_URL", raising=False)
    _reset_caches()
    yield tmp_path
    _reset_caches()


def _reset_caches() -> None:
    if db.get_engine.cache_info().currsize:
        engine = db.get_engine()
        engine.dispose()  # close the previous test's connections before its store goes away
        if engine.url.database and engine.dialect.name == "sqlite":
            db.release_in_use(Path(engine.url.database))  # and its in-use lock, so a long run keeps few files open
    db.get_engine.cache_clear()
    get_settings.cache_clear()


def _open_store(monkeypatch: pytest.MonkeyPatch, url: str) -> Iterator[str]:
    monkeypatch.setenv("DUTIES_DATABASE_URL", url)
    _reset_caches()
    db.create_tables(db.get_engine())
    yield url
    _reset_caches()


@pytest.fixture
def store(settings_env: Path, monkeypatch: pytest.MonkeyPatch, any_database_url: str) -> Iterator[str]:
    """A fresh store on each database kind."""
    yield from _open_store(monkeypatch, any_database_url)


@pytest.fixture
def sqlite_store(settings_env: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[str]:
    """A fresh store in this test's SQLite file."""
    yield from _open_store(monkeypatch, database_url)


@pytest.fixture
def program(calendars_dir: Path) -> Program:
    return load_program(calendars_dir)


@pytest.fixture
def session(sqlite_store: str) -> Iterator[Session]:
    with db.session_scope() as opened:
        yield opened


@pytest.fixture
def ctx(session: Session, program: Program) -> Context:
    sync_program(session, program, at=local("2026-01-01T00:00"))
    return make_context(session, program, send=send_apprise)
