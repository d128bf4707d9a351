"""The ledger on SQLite and on the PostgreSQL at 127.0.0.1:5432 (skipped with the reason when unreachable)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlmodel import col

from calendars.loader import Program
from flows import steps
from flows.runtime import make_context
from store import db
from store.models import Delivery, Occurrence, Setting, Unit
from store.queries import claim, count_rows, insert_ignoring_conflicts
from tests.conftest import local
from tests.test_steps import CORE


def test_datetimes_come_back_aware_in_utc(store: str, program: Program) -> None:
    with db.session_scope() as session:
        steps.sync_program(session, program, at=local("2026-01-20T08:00"))
        ctx = make_context(session, program)
        steps.plan(session, ctx, start=date(2026, 2, 1), end=date(2026, 2, 8), at=local("2026-01-20T08:00"), only=CORE)
    with db.session_scope() as session:
        row = session.execute(select(Occurrence).limit(1)).scalar_one()
        assert row.due_at.tzinfo is not None and row.due_at.utcoffset() == timedelta(0)
        assert row.due_at == local("2026-02-06T17:00")


def test_naive_datetimes_are_refused(store: str) -> None:
    with db.session_scope() as session:
        session.add(Unit(id="u", name="单位", kind="street", tags=[]))
        session.add(Setting(key="k", value="v"))
        session.commit()
        occurrence = Occurrence(
            duty_id="d",
            unit_id="u",
            period="p",
            title="t",
            starts_at=datetime(2026, 1, 1),
            due_at=datetime(2026, 1, 2),
            first_remind_at=datetime(2026, 1, 1),
            created_at=datetime(2026, 1, 1),
        )
        session.add(occurrence)
        with pytest.raises(Exception, match="naive datetime"):
            session.commit()


def test_plan_is_idempotent_even_when_two_planners_race(store: str, program: Program) -> None:
    at = local("2026-01-20T08:00")
    with db.session_scope() as first, db.session_scope() as second:
        steps.sync_program(first, program, at=at)
        ctx_a, ctx_b = make_context(first, program), make_context(second, program)
        added_a = steps.plan(first, ctx_a, start=date(2026, 2, 1), end=date(2026, 2, 28), at=at, only=CORE)
        # The second planner has already read "nothing planned" before the first committed: its insert must skip.
        rows = [
            {
                "duty_id": o.duty_id,
                "unit_id": o.unit_id,
                "period": o.period,
                "title": "dup",
                "detail": "",
                "starts_at": o.starts_at,
                "due_at": o.due_at,
                "flags": [],
                "first_remind_at": o.first_remind_at,
                "next_remind_at": None,
                "next_escalate_at": None,
                "level": 0,
                "reminders_sent": 0,
                "created_at": at,
            }
            for o in second.execute(select(Occurrence)).scalars()
        ]
        insert_ignoring_conflicts(second, Occurrence, rows)
        second.commit()
        added_b = steps.plan(second, ctx_b, start=date(2026, 2, 1), end=date(2026, 2, 28), at=at, only=CORE)
        assert (added_a, added_b) == (63, 0)
        assert count_rows(second, Occurrence) == 63
        assert second.execute(select(Occurrence).where(col(Occurrence.title) == "dup")).first() is None


def test_a_claim_is_won_by_exactly_one_session(store: str, program: Program) -> None:
    at = local("2026-02-02T09:30")
    with db.session_scope() as session:
        steps.sync_program(session, program, at=at)
        ctx = make_context(session, program)
        steps.plan(session, ctx, start=date(2026, 2, 1), end=date(2026, 2, 8), at=at, only=CORE)
        steps.remind(session, ctx, at=at)
        delivery_id = session.execute(select(Delivery.id).limit(1)).scalar_one()  # type: ignore[call-overload]
    with db.session_scope() as first, db.session_scope() as second:
        won_first = claim(
            first, Delivery, row_id=delivery_id, expect={"status": "pending"}, values={"status": "sending"}
        )
        first.commit()
        won_second = claim(
            second, Delivery, row_id=delivery_id, expect={"status": "pending"}, values={"status": "sending"}
        )
        second.commit()
    assert (won_first, won_second) == (True, False)


def test_the_signing_key_is_generated_once_and_shared(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DUTIES_SECRET_KEY")
    from store.settings import get_settings

    get_settings.cache_clear()
    with db.session_scope() as first:
        key = db.secret_key(first)
    with db.session_scope() as second:
        assert db.secret_key(second) == key and len(key) >= 40


def test_sqlite_runs_in_wal_mode(sqlite_store: str) -> None:
    with db.get_engine().connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
    assert sqlite_store.endswith("var/duties.db")


def test_a_batch_of_reminders_is_claimed_by_one_worker_only(store: str, program: Program) -> None:
    at = local("2026-02-02T09:30")
    with db.session_scope() as session:
        steps.sync_program(session, program, at=at)
        steps.plan(
            session, make_context(session, program), start=date(2026, 2, 1), end=date(2026, 2, 8), at=at, only=CORE
        )
    due = select(Occurrence).where(col(Occurrence.next_remind_at) <= at)
    with db.session_scope() as first, db.session_scope() as second:
        # Both workers read the same due rows before either claims them.
        batch_a, batch_b = list(first.execute(due).scalars()), list(second.execute(due).scalars())
        second.commit()
        assert len(batch_a) == len(batch_b) > 1
        won_a = steps.remind_batch(first, make_context(first, program), batch_a, at=at)
        first.commit()
        won_b = steps.remind_batch(second, make_context(second, program), batch_b, at=at)
        second.commit()
        assert (won_a, won_b) == (len(batch_a), 0)
        stages = list(second.execute(select(Delivery.occurrence_id, Delivery.contact_id)).tuples())  # type: ignore[call-overload]
        assert len(stages) == len(set(stages)) > 0  # nobody was told twice
