"""The confirmation endpoint's shortcuts keep their promises: the generated secret is read from the store once per
store and never outlives it, the item comes with its reports and notice in one query, and PostgreSQL connections
are recycled by age instead of pinged on every checkout.

How fast this makes the endpoint is measured in bench/confirm.py, never asserted here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select, text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from calendars.loader import Program
from flows import runtime, steps
from flows.steps import Context
from store import db
from store.models import Escalation, Occurrence, Setting
from store.settings import get_settings
from tests.conftest import local
from tests.test_steps import CORE
from web import units

JIAOBAN = local("2026-02-09T17:00")  # the first escalation of an item due in the first week of February


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement the engine sends meanwhile, flattened to one line."""
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def reads_setting(seen: list[str]) -> list[str]:
    return [s for s in seen if s.startswith("SELECT") and "FROM setting" in s]


@pytest.fixture
def generated_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented default: DUTIES_SECRET_KEY unset, so the store generates and keeps the key."""
    monkeypatch.delenv("DUTIES_SECRET_KEY")
    get_settings.cache_clear()


def test_the_generated_secret_is_read_once_per_store(store: str, generated_secret: None) -> None:
    engine = db.get_engine()
    with db.session_scope() as first:
        key = db.secret_key(first)
    with statements(engine) as seen:
        for _ in range(3):
            with db.session_scope() as later:
                assert db.secret_key(later) == key
    assert reads_setting(seen) == []


def test_a_restored_store_at_the_same_url_signs_with_its_own_secret(store: str, generated_secret: None) -> None:
    with db.session_scope() as session:
        before = db.secret_key(session)
        # What a restore does to the row: the backup's store brings the key it was made with.
        session.execute(update(Setting).where(col(Setting.key) == "secret_key").values(value="restored-key"))
        session.commit()
    db.get_engine.cache_clear()  # as `duties restore` does before it puts the backup back
    with db.session_scope() as session:
        assert db.secret_key(session) == "restored-key" != before


def test_creating_or_upgrading_the_store_forgets_the_secret(store: str, generated_secret: None) -> None:
    engine = db.get_engine()
    with db.session_scope() as session:
        db.secret_key(session)
        session.execute(update(Setting).where(col(Setting.key) == "secret_key").values(value="another-key"))
        session.commit()
    db.create_tables(engine)  # same engine, same URL: a store made again under a running process
    with db.session_scope() as session:
        assert db.secret_key(session) == "another-key"


def test_a_link_opens_and_confirms_without_reading_the_secret_again(
    session: Session, ctx: Context, generated_secret: None
) -> None:
    item = _planned_item(session, ctx)
    at = local("2026-02-03T10:00")
    path = _path(session, ctx, item, at)
    with _client(at) as client, statements(db.get_engine()) as seen:
        first = client.get(path)
        seen.clear()
        again = client.get(path)
        posted = client.post(path, data={"note": "已清扫完毕", "form_id": "f1"})
    assert first.status_code == again.status_code == posted.status_code == 200
    assert posted.headers["X-Duties-Outcome"] in {"confirmed", "recorded"} and "已清扫完毕" in posted.text
    assert reads_setting(seen) == []


def test_the_page_shows_every_report_once_in_order_from_the_query_that_finds_the_item(
    session: Session, ctx: Context
) -> None:
    item = _planned_item(session, ctx)
    at = local("2026-02-03T10:00")
    path = _path(session, ctx, item, at)
    with _client(at) as client:
        client.post(path, data={"note": "第一次：已清扫", "form_id": "f1"})
        client.post(path, data={"note": "第一次：已清扫", "form_id": "f1"})  # a double tap: recorded once
        client.post(path, data={"note": "第二次：补充照片说明", "form_id": "f2"})
        with statements(db.get_engine()) as seen:
            page = client.get(path)
    assert page.status_code == 200
    assert page.text.count("第一次：已清扫") == 1 and page.text.count("第二次：补充照片说明") == 1
    assert page.text.index("第一次：已清扫") < page.text.index("第二次：补充照片说明")
    reading_reports = [
        s for s in seen if s.startswith("SELECT") and ("JOIN confirmation" in s or "FROM confirmation" in s)
    ]
    assert len(reading_reports) == 1 and "JOIN unit" in reading_reports[0]


def test_one_query_finds_the_item_with_its_reports_and_the_notice_of_its_level(store: str, program: Program) -> None:
    with db.session_scope() as session:
        steps.sync_program(session, program, at=local("2026-01-01T00:00"))
        ctx = runtime.make_context(session, program)
        item = _planned_item(session, ctx)
        plain = units._load_item(session, item.id or 0)
        assert plain is not None and plain.reports == [] and plain.notice is None and plain.case is None
        steps.escalate(session, ctx, at=JIAOBAN)
        for form in ("late-1", "late-2"):
            steps.confirm(
                session, occurrence_id=item.id or 0, note=form, evidence=[], at=JIAOBAN, client="test", form_id=form
            )
        found = units._load_item(session, item.id or 0)
        issued = session.execute(
            select(Escalation).where(col(Escalation.occurrence_id) == item.id, col(Escalation.status) == "issued")
        ).scalars()
        expected = {e.id for e in issued if e.level == found.occurrence.level} if found else set()
    assert found is not None and found.occurrence.id == item.id and found.unit.id == item.unit_id
    assert [r.note for r in found.reports] == ["late-1", "late-2"]  # one row each, whatever else was joined
    assert found.occurrence.level > 0 and len(expected) == 1  # escalated: its level's notice was issued
    assert found.notice is not None and found.notice.id in expected


def test_postgresql_connections_are_recycled_by_age_not_pinged(
    any_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not any_database_url.startswith("postgresql"):
        pytest.skip("SQLite opens a file; there is no server connection to keep alive")
    kept = db.make_engine(any_database_url)
    assert kept.pool._pre_ping is False
    assert _backend_pids(kept)[0] == _backend_pids(kept)[1]  # younger than the recycling age: the same connection
    busy = [kept.connect() for _ in range(db.POOL_SIZE)]  # as many at once as 50 clients make a web worker use
    opened = {int(c.execute(text("SELECT pg_backend_pid()")).scalar_one()) for c in busy}
    for connection in busy:
        connection.close()
    # All kept for the next requests: none closed on return (QueuePool.checkedin, not on the Pool base class).
    assert kept.pool.checkedin() == db.POOL_SIZE  # type: ignore[attr-defined]
    assert _backend_pids(kept)[0] in opened
    monkeypatch.setattr(db, "POOL_RECYCLE_SECONDS", 0)
    aged = db.make_engine(any_database_url)
    assert _backend_pids(aged)[0] != _backend_pids(aged)[1]  # older than it (age 0): replaced at the next checkout
    kept.dispose()
    aged.dispose()


def test_on_postgresql_a_page_reads_outside_a_transaction_and_hands_its_connection_back_as_it_was(
    store: str, program: Program
) -> None:
    if not store.startswith("postgresql"):
        pytest.skip("only PostgreSQL pays a round trip for BEGIN and ROLLBACK")
    with db.session_scope() as session:
        steps.sync_program(session, program, at=local("2026-01-01T00:00"))
        ctx = runtime.make_context(session, program)
        item = _planned_item(session, ctx)
        path = _path(session, ctx, item, local("2026-02-03T10:00"))
    states: list[tuple[str, str]] = []

    def record(conn: Any, _cursor: object, statement: str, *_rest: object) -> None:
        states.append((statement.split()[0], conn.connection.driver_connection.info.transaction_status.name))

    engine = db.get_engine()
    event.listen(engine, "after_cursor_execute", record)
    with _client(local("2026-02-03T10:00")) as client:
        shown = client.get(path)
        reads = list(states)
        states.clear()
        posted = client.post(path, data={"note": "已完成", "form_id": "pg-1"})
    event.remove(engine, "after_cursor_execute", record)
    assert shown.status_code == posted.status_code == 200 and "已完成" in posted.text
    assert reads and {state for _, state in reads} == {"IDLE"}  # no transaction left open after each query
    writes = [state for kind, state in states if kind in ("INSERT", "UPDATE")]
    assert writes and set(writes) == {"INTRANS"}  # the confirmation itself is still one transaction
    with engine.connect() as connection:  # the pooled connection is back in its usual mode: a rollback undoes
        connection.execute(update(Setting).values(value="not kept"))
        connection.rollback()
        assert "not kept" not in connection.execute(select(col(Setting.value))).scalars().all()


# ---------------------------------------------------------------- helpers


def _backend_pids(engine: Engine) -> tuple[int, int]:
    pids = []
    for _ in range(2):
        with engine.connect() as connection:
            pids.append(int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one()))
    return pids[0], pids[1]


def _planned_item(session: Session, ctx: Context) -> Occurrence:
    """Wuxing's weekly market spot check, due in the first week of February (its test calendar names no market)."""
    steps.plan(session, ctx, start=date(2026, 2, 1), end=date(2026, 2, 8), at=local("2026-01-20T08:00"), only=CORE)
    query = select(Occurrence).where(col(Occurrence.unit_id) == "wuxing-msb")
    return session.execute(query).scalar_one()


def _path(session: Session, ctx: Context, item: Occurrence, at: datetime) -> str:
    secret = db.secret_key(session)  # the store's own key when DUTIES_SECRET_KEY is unset
    return "/c/" + steps.confirmation_link(ctx.settings, secret, item, at=at).rsplit("/c/", 1)[1]


@contextmanager
def _client(at: datetime) -> Iterator[TestClient]:
    from web.app import app, clock

    app.dependency_overrides[clock] = lambda: at
    try:
        with TestClient(app) as client:
            yield client
    finally:
        app.dependency_overrides.clear()
