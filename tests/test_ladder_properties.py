"""A property test over random sequences of ticks and actions on one item: whatever managers and units do, the
item never skips a level, never climbs once done, never has a level's notice sent twice, never carries a pending
approval past the action that made it moot, and never gets a notice whose facts contradict each other."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select
from sqlmodel import Session, col

from flows import actions, ladder, steps
from flows.actions import ActionError
from flows.ladder import LadderError
from flows.steps import Context
from store.models import AuditEvent, Confirmation, Delivery, DocumentCounter, Escalation, Occurrence, Talk
from tests.conftest import local

START = local("2026-02-06T09:00")  # the morning the item is due
ADVANCE = st.tuples(st.just("advance"), st.integers(min_value=6, max_value=24 * 10))  # up to ten days
ACTIONS = st.one_of(
    st.tuples(st.just("approve"), st.just(0)),
    st.tuples(st.just("confirm"), st.just(0)),
    st.tuples(st.just("extend"), st.integers(min_value=1, max_value=20)),
    st.tuples(st.just("park"), st.integers(min_value=1, max_value=20)),
    st.tuples(st.just("reopen"), st.just(0)),
    st.tuples(st.just("acknowledge"), st.just(0)),
    st.tuples(st.just("reject"), st.just(0)),
    st.tuples(st.just("waive"), st.just(0)),
    st.tuples(st.just("talk"), st.just(0)),
    st.tuples(st.just("district-waive"), st.just(0)),
)
# Time passes more often than people act (seven steps in ten), so items get high up the ladder.
STEPS = st.integers(min_value=0, max_value=9).flatmap(lambda n: ADVANCE if n < 7 else ACTIONS)
_forms = itertools.count()


def only_one_item(session: Session, ctx: Context) -> int:
    steps.plan(
        session,
        ctx,
        start=date(2026, 2, 1),
        end=date(2026, 2, 8),
        at=local("2026-01-20T08:00"),
        only={"market-spot-check"},
    )
    keep = session.execute(
        select(col(Occurrence.id)).where(col(Occurrence.unit_id) == "wuxing-msb", col(Occurrence.period) == "2026-W06")
    ).scalar_one()
    session.execute(delete(Occurrence).where(col(Occurrence.id) != keep))
    session.commit()
    return int(keep)


def reset(session: Session, item_id: int, original: dict[str, Any]) -> None:
    for model in (Delivery, Escalation, AuditEvent, Confirmation, Talk):
        session.execute(delete(model).where(col(model.occurrence_id) == item_id))
    session.execute(delete(DocumentCounter))
    item = session.get(Occurrence, item_id)
    assert item is not None
    for name, value in original.items():
        setattr(item, name, value)
    session.commit()


def apply(session: Session, ctx: Context, item_id: int, step: tuple[str, int], at: datetime) -> datetime:
    """Take one step; returns the new time. Refused actions are part of the game: they must change nothing."""
    name, amount = step
    actor = "user:prop"
    try:
        if name == "advance":
            at += timedelta(hours=amount)
            steps.escalate(session, ctx, at=at)
            ladder.repeat_notices(session, ctx, at=at)
        elif name == "confirm":
            steps.confirm(
                session, occurrence_id=item_id, note="", evidence=[], at=at, client="p", form_id=f"f{next(_forms)}"
            )
        elif name == "extend":
            item = session.get(Occurrence, item_id, populate_existing=True)
            assert item is not None
            due = max(item.due_at, at) + timedelta(days=amount)
            actions.extend(session, occurrence_id=item_id, due=due, reason="r", actor=actor, at=at)
        elif name == "park":
            review = (at + timedelta(days=amount)).astimezone(ctx.zone).date()
            actions.park(
                session, occurrence_id=item_id, review_on=review, reason="r", actor=actor, at=at, zone=ctx.zone
            )
        elif name == "reopen":
            actions.reopen(session, occurrence_id=item_id, reason="r", actor=actor, at=at)
        elif name in ("waive", "district-waive"):
            role = "district" if name.startswith("district") else "city"
            actions.waive(session, occurrence_id=item_id, reason="r", actor=actor, at=at, role=role)
        elif name == "talk":
            day = at.astimezone(ctx.zone).date()
            actions.record_talk(
                session, occurrence_id=item_id, held_on=day, attendees="a", minutes="m", actor=actor, at=at
            )
        elif name == "acknowledge":
            ladder.acknowledge(session, occurrence_id=item_id, actor="unit:wuxing-msb", at=at)
        else:
            for escalation, occurrence in ladder.pending(session):
                if occurrence.id == item_id and name == "approve":
                    ladder.approve(session, ctx, escalation_id=escalation.id or 0, actor=actor, at=at)
                elif occurrence.id == item_id:
                    ladder.reject(session, ctx, escalation_id=escalation.id or 0, reason="r", actor=actor, at=at)
    except (ActionError, LadderError):
        session.rollback()
    return at


def check(session: Session, item_id: int, before: tuple[bool, int], at: datetime) -> None:
    """The invariants, after every step. ``before``: whether the item was done, and how many levels it had."""
    session.expire_all()
    item = session.get(Occurrence, item_id)
    assert item is not None
    query = select(Escalation.level, Escalation.status).where(col(Escalation.occurrence_id) == item_id)  # type: ignore[call-overload]
    rows = sorted(session.execute(query).tuples())
    levels = [level for level, _ in rows]
    assert levels == list(range(1, len(levels) + 1)), f"a level was skipped: {levels}"
    issued = [level for level, status in rows if status == "issued"]
    assert item.level == (issued[-1] if issued else 0)  # a pending level is not yet the item's
    assert all(status == "issued" for _, status in rows[:-1]), f"only the top level may wait: {rows}"
    if rows and rows[-1][1] == "pending":  # it waits only while its reason holds: overdue, or done meanwhile
        assert item.status_at(at) in ("overdue", "done", "late_done"), f"pending on a {item.status_at(at)} item"
    for detail, when in session.execute(
        select(AuditEvent.detail, AuditEvent.at).where(  # type: ignore[call-overload]
            col(AuditEvent.occurrence_id) == item_id, col(AuditEvent.action) == "escalated"
        )
    ).tuples():
        assert datetime.fromisoformat(detail["deadline"]) > when, "a notice's deadline before its own date"
    climbed = session.execute(
        select(AuditEvent.detail).where(col(AuditEvent.occurrence_id) == item_id, col(AuditEvent.action) == "escalated")  # type: ignore[call-overload]
    ).scalars()
    notices = [detail["level"] for detail in climbed]
    assert len(notices) == len(set(notices)), f"a level's notice was sent twice: {notices}"
    was_done, had = before
    if was_done and item.done_at is not None:  # a pending level may be rejected while done, never added
        assert len(levels) <= had, "climbed while done"


def test_the_ladder_never_skips_never_climbs_when_done_never_repeats_a_notice(session: Session, ctx: Context) -> None:
    item_id = only_one_item(session, ctx)
    row = session.get(Occurrence, item_id)
    assert row is not None
    original = {name: getattr(row, name) for name in Occurrence.model_fields if name != "id"}

    @settings(max_examples=150, deadline=None, derandomize=True)
    @given(plan=st.lists(STEPS, min_size=4, max_size=30))
    def run(plan: list[tuple[str, int]]) -> None:
        reset(session, item_id, original)
        at = START
        for step in plan:
            item = session.get(Occurrence, item_id, populate_existing=True)
            assert item is not None
            levels = session.execute(select(Escalation).where(col(Escalation.occurrence_id) == item_id)).scalars()
            before = (item.done_at is not None, len(list(levels)))
            at = apply(session, ctx, item_id, step, at)
            check(session, item_id, before, at)

    run()
