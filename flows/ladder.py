"""The escalation ladder: 交办 → 督办 → 约谈 (附件1 第4项 举措4), as a state machine on each open item.

An overdue item whose ``next_escalate_at`` has come climbs one level. A level either issues its notice at once, or,
when the ladder says ``approval: true``, waits on the desk for a manager (``pending``: no number, no notice, the clock
stopped) who approves it (the notice goes out, the item takes the level, the clock starts) or rejects it (the item
gets its current level's time again). While a level is pending the item keeps its current level: the unit goes on
acting on the notice it has (收到, its deadline), and the desk shows the pending level beside it.

A pending level is settled by anything that makes it moot: a manager's action on the item (延期, 挂账, 返工, 免除,
a 约谈 recorded) withdraws it with an audit event (``withdraw_pending``), and approving one whose item is no longer
overdue withdraws it instead of issuing a notice. A notice is never issued for an item that is not overdue: its
facts ("已于…到期", "请于…前完成整改") would contradict each other.

An issued notice is a numbered document (湖城管督〔2026〕12号), numbered gap-free per prefix and year: the number
is taken in the same transaction that records the notice. It is sent again every ``repeat_workdays`` until the unit
acknowledges it (收到). Acknowledging stops the repeats, not the clock: only a confirmation resolves the item.

Invariants (tests/test_ladder.py checks them over random sequences): an item never skips a level, never climbs once
done, and each level's notice is queued once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session

from calendars.clocks import Duration
from calendars.schema import DutySpec, LadderSpec, LevelSpec
from flows.common import SYSTEM, Context, case_clock, open_batches
from flows.notice_batches import queue_notices
from store.models import DocumentCounter, Escalation, Occurrence
from store.queries import audit, audit_many, claim, claim_many, claim_rows, insert_ignoring_conflicts


class LadderError(Exception):
    """A ladder action that cannot be taken; the message is in Chinese for the manager."""


def escalate(session: Session, ctx: Context, *, at: datetime, notify: bool = True) -> int:
    """Move each overdue occurrence whose timeout has passed up one level of its ladder. Returns how many moved.

    The items go in batches (``climb_batch``): a month-end with thousands of overdue items costs a few statements per
    batch of 500, not a claim, an insert, a number, an audit row and a commit for each item. With ``notify`` the new
    notices are queued at once, grouped per recipient; a tick queues them once, together with the repeats
    (``queue_notices``).
    """
    moved = sum(climb_batch(session, ctx, batch, at=at) for batch in open_batches(session, "next_escalate_at", at))
    if notify:
        queue_notices(session, ctx, at=at)
    return moved


def climb(session: Session, ctx: Context, occurrence: Occurrence, *, at: datetime) -> int:
    """One level up, if another worker has not moved the item meanwhile: a batch of one. Returns 1 when it moved."""
    return climb_batch(session, ctx, [occurrence], at=at)


@dataclass(frozen=True)
class _Move:
    """One item's next level; ``deadline`` is None while the level waits for a manager's approval (no notice yet)."""

    occurrence: Occurrence
    duty: DutySpec
    step: LevelSpec
    deadline: datetime | None
    is_last: bool


def climb_batch(session: Session, ctx: Context, batch: list[Occurrence], *, at: datetime) -> int:
    """Each item of ``batch`` one level up, in a few statements and one commit. Returns how many moved.

    Taking the clocks is the claim, one conditional UPDATE for the batch (each row's level and next_escalate_at as
    read): a second worker that read the same rows finds them changed and leaves them. Then the new levels' rows go
    in together, the notices' numbers come from one counter update per prefix and year, the items take their levels
    in one executemany, and the audit rows in one statement. A crash before the commit leaves all of it undone.
    """
    moves, resets = _moves(ctx, batch, at)
    claim_many(session, Occurrence, expect="level", changes=resets)
    clocks = {
        m.occurrence.id or 0: ((m.occurrence.level, m.occurrence.next_escalate_at), {"next_escalate_at": None})
        for m in moves
    }
    won = claim_rows(session, Occurrence, expect=("level", "next_escalate_at"), changes=clocks)
    moves = [m for m in moves if (m.occurrence.id or 0) in won]
    documents = _number(session, ctx, [m for m in moves if m.deadline is not None], at=at)
    _record(session, ctx, moves, documents, at=at)
    session.commit()
    return len(moves)


Reset = tuple[Any, dict[str, Any]]


def _moves(ctx: Context, batch: list[Occurrence], at: datetime) -> tuple[list[_Move], dict[int, Reset]]:
    """The items that climb, and the clocks to reset: stopped at the ladder's end (or when its duty or ladder is
    gone), moved to the due date of an item whose due date moved since its clock was set."""
    moves: list[_Move] = []
    resets: dict[int, Reset] = {}
    for occurrence in batch:
        row_id = occurrence.id or 0
        duty, ladder = _duty_and_ladder(ctx, occurrence)
        if duty is None or ladder is None or occurrence.level >= len(ladder.levels):
            resets[row_id] = (occurrence.level, {"next_escalate_at": None})
        elif occurrence.due_at > at:  # wait for the new due date
            resets[row_id] = (occurrence.level, {"next_escalate_at": occurrence.due_at})
        else:
            step = ladder.levels[occurrence.level]
            deadline = None if step.approval else _level_deadline(ctx, duty, occurrence, step.level, at)
            if deadline is not None and deadline <= at:
                # A notice whose deadline has passed when issued contradicts itself: it is neither claimed nor
                # numbered, and the others of the batch go on (per item, this raised and stopped the tick).
                continue
            moves.append(_Move(occurrence, duty, step, deadline, step.level == len(ladder.levels)))
    return moves, resets


def _number(session: Session, ctx: Context, issued: list[_Move], *, at: datetime) -> dict[int, str]:
    """The documents of the notices issued now, by item id: one counter update per prefix and year, the numbers in
    the order of units and items, so that a unit's notices of one tick are consecutive."""
    year = at.astimezone(ctx.zone).year
    by_prefix: dict[str, list[_Move]] = defaultdict(list)
    for move in sorted(issued, key=lambda m: (m.occurrence.unit_id, m.occurrence.id or 0)):
        by_prefix[move.step.prefix].append(move)
    documents: dict[int, str] = {}
    for prefix in sorted(by_prefix):  # one order for every worker: two never wait on each other's counters in turn
        first = take_documents(session, prefix=prefix, year=year, count=len(by_prefix[prefix]))
        for offset, move in enumerate(by_prefix[prefix]):
            documents[move.occurrence.id or 0] = document_name(prefix, year, first + offset)
    return documents


def _record(session: Session, ctx: Context, moves: list[_Move], documents: dict[int, str], *, at: datetime) -> None:
    """The new levels' rows, the items' new levels and clocks, and the audit events, a statement each."""
    levels, items, events = [], [], []
    for move in moves:
        occurrence, step = move.occurrence, move.step
        document = documents.get(occurrence.id or 0, "")
        levels.append(_escalation_row(ctx, move, document, at=at))
        if move.deadline is None:
            events.append(_event(at, "escalation_pending", occurrence, level=step.level))
            continue
        clock = None if move.is_last else move.deadline
        items.append({"row_id": occurrence.id, "to_level": step.level, "moved_at": at, "clock": clock})
        deadline = move.deadline.isoformat()
        events.append(
            _event(at, "escalated", occurrence, level=step.level, name=step.name, document=document, deadline=deadline)
        )
    if levels:
        session.execute(_NEW_LEVELS, levels)
    if items:
        session.execute(_LEVEL_UP, items)
        _keep_loaded(moves, at)
    audit_many(session, events)


def _escalation_row(ctx: Context, move: _Move, document: str, *, at: datetime) -> dict[str, Any]:
    step, issued = move.step, move.deadline is not None
    repeats = _deadline(ctx, move.duty, step.repeat_workdays, at) if issued and step.repeat_workdays else None
    return {
        "occurrence_id": move.occurrence.id,
        "level": step.level,
        "name": step.name,
        "status": "issued" if issued else "pending",
        "at": at,
        "deadline_at": move.deadline,
        "document": document,
        "approved_by": "",
        "approved_at": None,
        "acknowledged_at": None,
        "repeats": 0,
        "next_repeat_at": repeats,
        "notified_at": None,  # queue_notices sends it, grouped with the unit's other notices
    }


def _event(at: datetime, action: str, occurrence: Occurrence, **detail: Any) -> dict[str, Any]:
    return {"at": at, "actor": SYSTEM, "action": action, "occurrence_id": occurrence.id, "detail": detail}


def _keep_loaded(moves: list[_Move], at: datetime) -> None:
    """The items' new levels written with Core, set on the loaded rows too: a caller holding one reads them."""
    for move in moves:
        if move.deadline is not None:
            set_committed_value(move.occurrence, "level", move.step.level)
            set_committed_value(move.occurrence, "level_at", at)
            set_committed_value(move.occurrence, "next_escalate_at", None if move.is_last else move.deadline)


_ITEMS = Occurrence.__table__  # type: ignore[attr-defined]
_MOMENT = _ITEMS.c.level_at.type
_NEW_LEVELS = insert(Escalation.__table__)  # type: ignore[attr-defined]
_LEVEL_UP = (
    update(_ITEMS)
    .where(_ITEMS.c.id == bindparam("row_id"))
    .values(
        level=bindparam("to_level"),
        level_at=bindparam("moved_at", type_=_MOMENT),
        next_escalate_at=bindparam("clock", type_=_MOMENT),
    )
)


def approve(session: Session, ctx: Context, *, escalation_id: int, actor: str, at: datetime) -> Escalation:
    """A manager lets a pending level's notice go out: it gets its number and deadline now."""
    escalation, occurrence = _pending(session, escalation_id)
    moot = _moot(ctx, occurrence, at)
    if moot:
        withdraw_pending(session, occurrence, reason=moot, actor=actor, at=at)
        session.commit()
        raise LadderError(f"{moot}，不能发出{escalation.name}通知；该审批已撤回。")
    if not claim(
        session, Escalation, row_id=escalation_id, expect={"status": "pending"}, values={"approved_by": actor}
    ):
        raise LadderError("该升级已由他人处理。")
    escalation.approved_at = at
    _issue(session, ctx, occurrence, escalation, at=at, actor=actor)
    # The next tick (every five minutes) sends it, grouped with the unit's other notices: approving fifty items
    # sends each unit one message, and the city office one 抄送.
    return escalation


def reject(session: Session, ctx: Context, *, escalation_id: int, reason: str, actor: str, at: datetime) -> None:
    """A manager stops a pending level: the item goes back one level and gets that level's time again."""
    if not reason.strip():
        raise LadderError("请填写不予升级的理由。")
    escalation, occurrence = _pending(session, escalation_id)
    if not _delete_pending(session, occurrence.id or 0, escalation_id=escalation_id):
        session.rollback()
        raise LadderError("该升级已由他人处理。")
    if _open(occurrence, at):  # a done item needs no clock
        _restart_clock(ctx, occurrence, at)
    session.add(occurrence)
    audit(
        session,
        at=at,
        actor=actor,
        action="escalation_rejected",
        occurrence_id=occurrence.id,
        level=escalation.level,
        reason=reason.strip(),
    )
    session.commit()


def withdraw_pending(session: Session, occurrence: Occurrence, *, reason: str, actor: str, at: datetime) -> bool:
    """Settle the item's level awaiting approval, made moot by ``reason``; the caller commits. False if none waited.

    The item keeps its level; its clock is the caller's to set (an extension moves it, 挂账 stops it, a recorded
    约谈 leaves it stopped: the talk the level asked for has been held).
    """
    waiting = _waiting(session, occurrence.id or 0)
    if waiting is None or not _delete_pending(session, occurrence.id or 0):
        return False
    audit(
        session,
        at=at,
        actor=actor,
        action="escalation_withdrawn",
        occurrence_id=occurrence.id,
        level=waiting.level,
        reason=reason,
    )
    return True


def has_pending(session: Session, occurrence_id: int) -> str:
    """The name of the item's level awaiting approval (约谈), or empty."""
    waiting = _waiting(session, occurrence_id)
    return waiting.name if waiting is not None else ""


def _waiting(session: Session, occurrence_id: int) -> Any:
    """The item's level awaiting approval (its level and name), if one waits."""
    col = Escalation.__table__.c  # type: ignore[attr-defined]
    query = select(col.level, col.name).where(col.occurrence_id == occurrence_id, col.status == "pending")
    return session.execute(query).one_or_none()


def acknowledge(session: Session, *, occurrence_id: int, actor: str, at: datetime) -> bool:
    """The unit says 收到 to the notice of its current level: the repeats stop, the clock does not.

    Returns False when there is nothing to acknowledge (no notice, or acknowledged already): nothing changes.
    """
    occurrence = session.get(Occurrence, occurrence_id)
    if occurrence is None or occurrence.level == 0:
        return False
    table = Escalation.__table__  # type: ignore[attr-defined]
    changed = session.execute(
        update(table)
        .where(
            table.c.occurrence_id == occurrence_id,
            table.c.level == occurrence.level,
            table.c.status == "issued",
            table.c.acknowledged_at.is_(None),
        )
        .values(acknowledged_at=at, next_repeat_at=None)
    ).rowcount  # type: ignore[attr-defined]
    if changed != 1:
        session.rollback()
        return False
    audit(session, at=at, actor=actor, action="acknowledged", occurrence_id=occurrence_id, level=occurrence.level)
    session.commit()
    return True


def repeat_notices(session: Session, ctx: Context, *, at: datetime, notify: bool = True) -> int:
    """Send again the notices the units have not acknowledged, every ``repeat_workdays``, while the item is open."""
    sent = 0
    col, items = Escalation.__table__.c, Occurrence.__table__.c  # type: ignore[attr-defined]
    query = (
        select(Escalation, Occurrence)
        .join(Occurrence, items.id == col.occurrence_id)
        .where(col.next_repeat_at <= at, col.status == "issued", col.acknowledged_at.is_(None))
        .where(items.level == col.level, items.done_at.is_(None), items.waived_at.is_(None), items.parked_at.is_(None))
        .order_by(col.next_repeat_at, col.id)
        .limit(500)
    )
    for escalation, occurrence in session.execute(query).tuples().all():
        sent += _repeat(session, ctx, escalation, occurrence, at=at)
    if notify:
        queue_notices(session, ctx, at=at)
    return sent


def next_document(session: Session, *, prefix: str, year: int) -> int:
    """The next number for ``prefix`` in ``year``, taken inside the caller's transaction, so numbers have no gaps."""
    return take_documents(session, prefix=prefix, year=year, count=1)


def take_documents(session: Session, *, prefix: str, year: int, count: int) -> int:
    """``count`` consecutive numbers for ``prefix`` in ``year`` in one counter update; returns the first of them.

    The UPDATE locks the counter row until the transaction ends: a second writer waits and takes its numbers after,
    and a transaction that rolls back gives its numbers back.
    """
    table = DocumentCounter.__table__  # type: ignore[attr-defined]
    bump = (
        update(table)
        .where(table.c.prefix == prefix, table.c.year == year)
        .values(last=table.c.last + count)
        .returning(table.c.last)
    )
    for _ in range(2):
        last = session.execute(bump).scalar_one_or_none()
        if last is not None:
            return int(last) - count + 1
        if insert_ignoring_conflicts(session, DocumentCounter, [{"prefix": prefix, "year": year, "last": count}]):
            return 1
    raise RuntimeError(f"document counter {prefix}/{year} could not be taken")  # pragma: no cover


def document_name(prefix: str, year: int, number: int) -> str:
    return f"{prefix}〔{year}〕{number}号"


def pending(session: Session) -> list[tuple[Escalation, Occurrence]]:
    """Levels waiting for a manager's approval, oldest first; not those of items done or waived meanwhile."""
    col, items = Escalation.__table__.c, Occurrence.__table__.c  # type: ignore[attr-defined]
    query = (
        select(Escalation, Occurrence)
        .join(Occurrence, items.id == col.occurrence_id)
        .where(col.status == "pending", items.done_at.is_(None), items.waived_at.is_(None))
        .order_by(col.at, col.id)
    )
    return list(session.execute(query).tuples().all())


# ---------------------------------------------------------------- inside


def _issue(
    session: Session, ctx: Context, occurrence: Occurrence, escalation: Escalation, *, at: datetime, actor: str
) -> None:
    """Number the level's notice, set its deadline and repeats, queue it, and commit all of it together."""
    duty, ladder = _duty_and_ladder(ctx, occurrence)
    assert duty is not None and ladder is not None
    step = ladder.levels[escalation.level - 1]
    deadline = _level_deadline(ctx, duty, occurrence, escalation.level, at)
    if not occurrence.due_at <= at < deadline:  # checked before a number is taken: a notice must not contradict itself
        raise LadderError("通知内容自相矛盾（事项未逾期，或整改期限不在今天之后），未编号、未发出。")
    occurrence.level, occurrence.level_at = step.level, at
    year = at.astimezone(ctx.zone).year
    escalation.document = document_name(step.prefix, year, next_document(session, prefix=step.prefix, year=year))
    escalation.status, escalation.deadline_at = "issued", deadline
    escalation.next_repeat_at = _deadline(ctx, duty, step.repeat_workdays, at) if step.repeat_workdays else None
    session.add(escalation)
    escalation.notified_at = None  # queue_notices sends it, grouped with the unit's other notices
    is_last = step.level == len(ladder.levels)
    occurrence.next_escalate_at = None if is_last else deadline
    session.add(occurrence)
    audit(
        session,
        at=at,
        actor=actor,
        action="escalated",
        occurrence_id=occurrence.id,
        level=step.level,
        name=step.name,
        document=escalation.document,
        deadline=deadline.isoformat(),
    )
    session.commit()


def _repeat(session: Session, ctx: Context, escalation: Escalation, occurrence: Occurrence, *, at: datetime) -> int:
    duty, ladder = _duty_and_ladder(ctx, occurrence)
    if duty is None or ladder is None:
        return 0
    step = ladder.levels[escalation.level - 1]
    following = _deadline(ctx, duty, step.repeat_workdays, at) if step.repeat_workdays else None
    count = escalation.repeats + 1
    won = claim(
        session,
        Escalation,
        row_id=escalation.id or 0,
        expect={"repeats": escalation.repeats, "acknowledged_at": None},
        values={"repeats": count, "next_repeat_at": following, "notified_at": None},
    )
    if not won:
        return 0
    audit(
        session,
        at=at,
        actor=SYSTEM,
        action="notice_repeated",
        occurrence_id=occurrence.id,
        level=step.level,
        repeat=count,
    )
    session.commit()
    return 1


def _pending(session: Session, escalation_id: int) -> tuple[Escalation, Occurrence]:
    escalation = session.get(Escalation, escalation_id, populate_existing=True)
    if escalation is None or escalation.status != "pending":
        raise LadderError("没有待审批的该项升级。")
    occurrence = session.get(Occurrence, escalation.occurrence_id, populate_existing=True)
    assert occurrence is not None
    return escalation, occurrence


def _moot(ctx: Context, occurrence: Occurrence, at: datetime) -> str:
    """Why a pending level's notice would be wrong now, in Chinese for the manager; empty when it is still due."""
    status = occurrence.status_at(at)
    if status in ("done", "late_done"):
        return "该事项已完成"
    if status in ("waived", "parked"):
        return f"该事项已{'免除' if status == 'waived' else '挂账'}"
    if occurrence.due_at > at:
        due = occurrence.due_at.astimezone(ctx.zone)
        return f"该事项截止时间为 {due.year}年{due.month}月{due.day}日，尚未逾期"
    return ""


def _delete_pending(session: Session, occurrence_id: int, *, escalation_id: int | None = None) -> bool:
    """Remove a pending level (its row would block the same level later: one row per item and level)."""
    table = Escalation.__table__  # type: ignore[attr-defined]
    query = delete(table).where(table.c.occurrence_id == occurrence_id, table.c.status == "pending")
    if escalation_id is not None:
        query = query.where(table.c.id == escalation_id)
    return bool(session.execute(query).rowcount)  # type: ignore[attr-defined]


def _restart_clock(ctx: Context, occurrence: Occurrence, at: datetime) -> None:
    """The item gets its current level's time again (after a rejected or withdrawn level above it)."""
    duty, ladder = _duty_and_ladder(ctx, occurrence)
    if duty is None or ladder is None:
        return
    level = occurrence.level
    if duty.category is not None and duty.category.steps:
        occurrence.next_escalate_at = case_clock(ctx, duty.category).deadline(at, duty.category.duration)
        return
    workdays = ladder.levels[level - 1].timeout_workdays if level else max(ladder.grace_workdays, 1)
    occurrence.next_escalate_at = _deadline(ctx, duty, workdays, at)


def _open(occurrence: Occurrence, at: datetime) -> bool:
    return occurrence.status_at(at) in ("scheduled", "due", "overdue")


def _duty_and_ladder(ctx: Context, occurrence: Occurrence) -> tuple[DutySpec | None, LadderSpec | None]:
    duty = ctx.program.duties.get(occurrence.duty_id)
    return duty, ctx.program.ladders.get(duty.ladder) if duty else None


def _level_deadline(ctx: Context, duty: DutySpec, occurrence: Occurrence, level: int, at: datetime) -> datetime:
    """When the unit's time at ``level`` runs out. A case category's own steps count from the dispatch on its clock:
    the next step's moment (at least a minute ahead, should a run come late), and after the last one the category's
    deadline again; every other ladder gives the level's working days."""
    category = duty.category
    ladder = ctx.program.ladders[duty.ladder]
    if category is None or not category.steps:
        return _deadline(ctx, duty, ladder.levels[level - 1].timeout_workdays, at)
    clock = case_clock(ctx, category)
    if level < len(category.steps):
        following = clock.deadline(occurrence.starts_at, Duration.parse(category.steps[level].after))
        return max(following, at + LATE_RUN)
    return clock.deadline(at, category.duration)


LATE_RUN = timedelta(minutes=1)


def _deadline(ctx: Context, duty: DutySpec, workdays: int, at: datetime) -> datetime:
    """``workdays`` working days after ``at``'s day, at the duty's due time (Asia/Shanghai)."""
    day = ctx.program.workdays.add_workdays(at.astimezone(ctx.zone).date(), workdays)
    return datetime.combine(day, duty.due.time, tzinfo=ctx.zone)
