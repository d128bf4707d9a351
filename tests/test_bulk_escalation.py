"""Escalations in bulk (issue 16): a month-end's overdue items climb in batches, a few statements per batch.

The items are the 双月大扫除 (clean-home-street) of the shipped streets, due Friday 6 Feb 2026 17:00 and overdue
since: with the shipped ladder the 交办 is due on Monday the 9th after a day's grace. Each test runs on SQLite and,
where it is reachable, on PostgreSQL (the ``store`` fixture).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, update
from sqlmodel import Session, col

from calendars.loader import Program
from flows import common, ladder, steps
from flows.common import Context
from flows.runtime import make_context
from store import db
from store.models import AuditEvent, DocumentCounter, Escalation, Occurrence
from tests.conftest import local

DUE = local("2026-02-06T17:00")
GRACE_OVER = local("2026-02-09T17:00")
AT = local("2026-02-09T17:05")
DUTY = "clean-home-street"


@pytest.fixture
def opened(store: str, program: Program) -> Iterator[tuple[Session, Context]]:
    with db.session_scope() as session:
        steps.sync_program(session, program, at=local("2026-01-01T00:00"))
        yield session, make_context(session, program)


def overdue(session: Session, program: Program, count: int, *, level: int = 0, tag: str = "a") -> list[int]:
    """``count`` overdue items spread over the streets, their clocks at the end of the grace day; committed."""
    streets = sorted(u.id for u in program.units.values() if u.kind == "street")
    items = [
        Occurrence(
            duty_id=DUTY,
            unit_id=streets[n % len(streets)],
            period=f"bulk-{tag}-{n}",
            title="“整洁家园、干净街道”双月环境卫生大扫除",
            starts_at=local("2026-02-01T00:00"),
            due_at=DUE,
            first_remind_at=DUE - timedelta(days=7),
            next_escalate_at=GRACE_OVER,
            level=level,
            level_at=GRACE_OVER - timedelta(days=3) if level else None,
            created_at=local("2026-01-20T08:00"),
        )
        for n in range(count)
    ]
    session.add_all(items)
    session.commit()
    return [item.id or 0 for item in items]


def levels(session: Session) -> list[tuple[int, int, str, str]]:
    """Every escalation row: its item, level, status and document."""
    session.expire_all()
    e = Escalation.__table__.c  # type: ignore[attr-defined]
    query = select(e.occurrence_id, e.level, e.status, e.document).order_by(e.occurrence_id, e.level)
    return [tuple(row) for row in session.execute(query).tuples()]


def actions(session: Session) -> Counter[str]:
    return Counter(session.execute(select(col(AuditEvent.action))).scalars())


def numbers(documents: list[str], prefix: str = "湖城管交") -> list[int]:
    return sorted(int(d.removeprefix(f"{prefix}〔2026〕").removesuffix("号")) for d in documents)


def test_a_month_end_climbs_every_item_once_with_gap_free_numbers(opened: tuple[Session, Context]) -> None:
    session, ctx = opened
    ids = overdue(session, ctx.program, 120)
    assert steps.escalate(session, ctx, at=AT, notify=False) == 120
    rows = levels(session)
    assert [r[0] for r in rows] == ids and {(r[1], r[2]) for r in rows} == {(1, "issued")}
    assert numbers([r[3] for r in rows]) == list(range(1, 121))
    assert session.get(DocumentCounter, ("湖城管交", 2026), populate_existing=True).last == 120  # type: ignore[union-attr]
    found = session.execute(select(Occurrence).where(col(Occurrence.id).in_(ids))).scalars().all()
    deadline = local("2026-02-14T17:00")  # 5 working days (Saturday the 14th is a make-up working day)
    assert {(o.level, o.level_at, o.next_escalate_at) for o in found} == {(1, AT, deadline)}
    assert actions(session)["escalated"] == 120
    assert steps.escalate(session, ctx, at=AT + timedelta(minutes=5), notify=False) == 0  # nothing climbs twice


def test_a_units_notices_of_one_pass_take_consecutive_numbers(opened: tuple[Session, Context]) -> None:
    session, ctx = opened
    overdue(session, ctx.program, 45)  # three items for each of the 15 streets, interleaved by id
    steps.escalate(session, ctx, at=AT, notify=False)
    o, e = Occurrence.__table__.c, Escalation.__table__.c  # type: ignore[attr-defined]
    query = select(o.unit_id, e.document).join(Escalation.__table__, e.occurrence_id == o.id).order_by(o.unit_id, o.id)  # type: ignore[attr-defined]
    documents = [document for _, document in session.execute(query).tuples()]
    assert [numbers([d])[0] for d in documents] == list(range(1, 46))


def test_a_batch_costs_the_same_statements_whatever_its_size(
    opened: tuple[Session, Context], monkeypatch: pytest.MonkeyPatch
) -> None:
    session, ctx = opened
    ladder.next_document(session, prefix="湖城管交", year=2026)  # the year's counter exists, as it does by March
    session.commit()
    counted: list[str] = []
    engine = session.get_bind()
    listener = lambda *args: counted.append(args[2])  # noqa: E731  (the statement's text)
    event.listen(engine, "before_cursor_execute", listener)
    try:
        for size, tag, day in ((4, "small", 0), (200, "large", 1)):
            overdue(session, ctx.program, size, tag=tag)
            counted.clear()
            assert steps.escalate(session, ctx, at=AT + timedelta(days=day), notify=False) == size
            writes = [s for s in counted if not s.lstrip().upper().startswith("SELECT")]
            if size == 4:
                small = len(writes)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    # claim, escalation rows, counter, levels, audit: one each, for 4 items as for 200 (per item it was 5 × 200)
    assert len(writes) == small == 5, writes


def test_levels_awaiting_approval_go_in_bulk_without_numbers(opened: tuple[Session, Context]) -> None:
    session, ctx = opened
    climbing = overdue(session, ctx.program, 10, tag="jiaoban")
    waiting = overdue(session, ctx.program, 10, level=2, tag="yuetan")
    assert steps.escalate(session, ctx, at=AT, notify=False) == 20
    rows = {r[0]: r for r in levels(session)}
    assert {rows[i][1:3] for i in waiting} == {(3, "pending")} and {rows[i][3] for i in waiting} == {""}
    assert numbers([rows[i][3] for i in climbing]) == list(range(1, 11))
    assert session.get(DocumentCounter, ("湖城管谈", 2026)) is None  # a pending 约谈 takes no number
    held = session.execute(select(Occurrence).where(col(Occurrence.id).in_(waiting))).scalars().all()
    assert {(o.level, o.next_escalate_at) for o in held} == {(2, None)}  # keeps its level, the clock stopped
    assert actions(session)["escalation_pending"] == 10
    assert len(ladder.pending(session)) == 10


def test_a_row_changed_after_it_was_read_is_left_and_takes_no_number(
    opened: tuple[Session, Context], program: Program
) -> None:
    session, ctx = opened
    ids = overdue(session, ctx.program, 6)
    batch = list(session.execute(select(Occurrence).where(col(Occurrence.id).in_(ids))).scalars())
    with db.session_scope() as other:  # a manager extends one item meanwhile: its clock moves
        table = Occurrence.__table__  # type: ignore[attr-defined]
        later = local("2026-02-20T17:00")
        other.execute(update(table).where(table.c.id == ids[2]).values(next_escalate_at=later, due_at=later))
        other.commit()
    assert ladder.climb_batch(session, ctx, batch, at=AT) == 5
    rows = levels(session)
    assert ids[2] not in [r[0] for r in rows] and numbers([r[3] for r in rows]) == [1, 2, 3, 4, 5]


def test_clocks_are_reset_in_the_same_pass(opened: tuple[Session, Context]) -> None:
    """An item whose due date moved waits for it; one at the ladder's last level stops; the others climb."""
    session, ctx = opened
    moved, done, climbing = (
        overdue(session, ctx.program, 3, level=lv, tag=t) for lv, t in ((0, "m"), (3, "d"), (0, "c"))
    )
    later = local("2026-02-27T17:00")
    table = Occurrence.__table__  # type: ignore[attr-defined]
    session.execute(update(table).where(table.c.id.in_(moved)).values(due_at=later))
    session.commit()
    assert steps.escalate(session, ctx, at=AT, notify=False) == 3
    session.expire_all()
    clocks = {o.id: (o.level, o.next_escalate_at) for o in session.execute(select(Occurrence)).scalars()}
    assert {clocks[i] for i in moved} == {(0, later)} and {clocks[i] for i in done} == {(3, None)}
    assert {r[0] for r in levels(session)} == set(climbing)


def test_a_crash_inside_a_batch_leaves_nothing_half_written(
    opened: tuple[Session, Context], monkeypatch: pytest.MonkeyPatch
) -> None:
    session, ctx = opened
    ids = overdue(session, ctx.program, 30)

    def crash(*args: Any) -> None:
        raise RuntimeError("the process died before its commit")

    monkeypatch.setattr(ladder, "audit_many", crash)
    with pytest.raises(RuntimeError):
        steps.escalate(session, ctx, at=AT, notify=False)
    session.rollback()
    monkeypatch.undo()
    assert levels(session) == [] and session.get(DocumentCounter, ("湖城管交", 2026)) is None
    kept = session.execute(select(Occurrence).where(col(Occurrence.id).in_(ids))).scalars().all()
    assert {(o.level, o.next_escalate_at) for o in kept} == {(0, GRACE_OVER)}
    assert steps.escalate(session, ctx, at=AT, notify=False) == 30  # the next tick does it all, numbered from 1
    assert numbers([r[3] for r in levels(session)]) == list(range(1, 31))


def test_two_escalators_at_once_climb_each_item_once_with_one_gap_free_sequence(
    opened: tuple[Session, Context], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers read the same rows in small batches at the same moment: each item is claimed by one of them,
    and the numbers they take between them are 1…N, each once."""
    session, ctx = opened
    ids = overdue(session, ctx.program, 300)
    monkeypatch.setattr(common, "BATCH", 40)
    start, moved, errors = threading.Barrier(2), [], []

    def work() -> None:
        try:
            with db.session_scope() as own:
                mine = make_context(own, ctx.program)
                start.wait()
                moved.append(steps.escalate(own, mine, at=AT, notify=False))
        except Exception as problem:  # reported below: a thread's exception would otherwise vanish
            errors.append(problem)

    workers = [threading.Thread(target=work) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert errors == [] and sum(moved) == 300, (errors, moved)
    rows = levels(session)
    assert [r[0] for r in rows] == ids and numbers([r[3] for r in rows]) == list(range(1, 301))
    assert actions(session)["escalated"] == 300
    assert session.get(DocumentCounter, ("湖城管交", 2026), populate_existing=True).last == 300  # type: ignore[union-attr]


def test_numbers_taken_together_are_given_back_together(opened: tuple[Session, Context]) -> None:
    session, _ = opened
    assert ladder.take_documents(session, prefix="湖城管督", year=2026, count=5) == 1
    session.commit()
    assert ladder.take_documents(session, prefix="湖城管督", year=2026, count=3) == 6
    session.rollback()  # 6, 7 and 8 come back
    assert ladder.next_document(session, prefix="湖城管督", year=2026) == 6
    assert ladder.take_documents(session, prefix="湖城管督", year=2026, count=2) == 7


def test_a_single_caller_still_climbs_one_item(opened: tuple[Session, Context]) -> None:
    """climb (复检不通过, cases) is a batch of one: the item it holds shows its new level at once."""
    session, ctx = opened
    (item_id,) = overdue(session, ctx.program, 1)
    item = session.get(Occurrence, item_id)
    assert item is not None and ladder.climb(session, ctx, item, at=AT) == 1
    assert (item.level, item.level_at) == (1, AT) and item.next_escalate_at == local("2026-02-14T17:00")
    assert [r[1:] for r in levels(session)] == [(1, "issued", "湖城管交〔2026〕1号")]
