"""The steps of the engine as plain functions of a session and an explicit ``at``.

Prefect flows wrap these (flows/tick.py); the CLI and the tests call them directly. Each step that talks to the
outside world writes its intent to the ledger and commits before sending, so a crash never loses a message.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlmodel import Session

from calendars.loader import Program
from calendars.recurrence import Period, expand, reminder_times
from calendars.schema import DutySpec
from calendars.workdays import UNPUBLISHED_FLAG
from flows import spot_checks
from flows.assessment import assessment_step
from flows.common import SYSTEM, Context, Row, occurrence_row, open_batches
from flows.ladder import escalate, repeat_notices
from flows.notice_batches import queue_notices
from flows.notices import (
    Outgoing,
    confirmation_link,
    message,
    recipients_by_unit,
    title_and_body,
    unit_link,
    unit_version,
)
from flows.redate import Move, redate
from flows.spot_checks import SpotCheck
from notify import outbox
from notify.outbox import DispatchReport
from store.db import lock_for_writing, one_writer
from store.models import Confirmation, Contact, Duty, Occurrence, Unit
from store.queries import audit, claim_many, get_value, insert_ignoring_conflicts, put_value, upsert
from templates import render

__all__ = ["Context", "confirm", "confirmation_link", "escalate", "plan", "remind", "sync_program", "tick", "unit_link"]


@dataclass
class TickReport:
    planned: int = 0
    moved: int = 0
    reminded: int = 0
    escalated: int = 0
    repeated: int = 0
    sent: int = 0
    failed: int = 0
    retrying: int = 0
    unknown: int = 0
    assessment: str = ""  # frozen or published: what the tick did to last month's 考核
    flags: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- load


PROGRAM_DIGEST = "program_digest"
SYNC_LOCK = 4_242_002  # lock key of the calendar sync (store/migrate.py's migrations hold 4_242_001)
# The columns the calendars own. The store keeps the rest, such as a unit's link_version raised to revoke its links.
UNIT_COLUMNS = ("name", "kind", "district", "tags", "delivery")
DUTY_COLUMNS = ("kind", "family", "title", "clause", "quote", "spec", "source")
CONTACT_COLUMNS = ("channel", "url", "role", "priority", "active")


def sync_program(session: Session, program: Program, *, at: datetime) -> bool:
    """Bring units, contacts and duties in the store in line with the calendars. False when nothing changed.

    Every tick starts here, so on a new store or after a calendar change several processes do it at once. They take
    turns under one lock, and those after the first find the new digest and write nothing. The rows are upserts of
    the calendars' columns, so a row written meanwhile by anyone else is updated, not inserted twice.
    """
    digest = program.digest
    if get_value(session, key=PROGRAM_DIGEST) == digest:
        return False
    lock_for_writing(session.connection(), key=SYNC_LOCK)
    if get_value(session, key=PROGRAM_DIGEST) == digest:  # another process synced while this one waited
        session.commit()
        return False
    _sync_units(session, program)
    _sync_contacts(session, program)
    _sync_duties(session, program)
    put_value(session, key=PROGRAM_DIGEST, value=digest)
    audit(
        session,
        at=at,
        actor=SYSTEM,
        action="calendars_loaded",
        units=len(program.units),
        duties=len(program.duties),
        digest=digest[:12],
    )
    session.commit()
    _expire_loaded(session)
    return True


def _sync_units(session: Session, program: Program) -> None:
    rows = [
        {
            "id": unit.id,
            "name": unit.name,
            "kind": unit.kind,
            "district": unit.district,
            "tags": list(unit.tags),
            "delivery": unit.delivery,
        }
        for unit in program.units.values()
    ]
    upsert(session, Unit, rows, key=["id"], columns=UNIT_COLUMNS)


def _sync_duties(session: Session, program: Program) -> None:
    rows = [
        {
            "id": duty.id,
            "kind": duty.kind,
            "family": duty.family,
            "title": duty.title,
            "clause": duty.clause,
            "quote": duty.quote,
            "spec": duty.model_dump(mode="json"),
            "source": str(program.where[("duty", duty.id)]),
        }
        for duty in program.duties.values()
    ]
    upsert(session, Duty, rows, key=["id"], columns=DUTY_COLUMNS)


def _sync_contacts(session: Session, program: Program) -> None:
    rows = [
        {
            "unit_id": unit.id,
            "name": spec.name,
            "channel": spec.channel,
            "url": spec.url,
            "role": spec.role,
            "priority": priority,  # order in the unit file: failover tries the lowest first
            "active": True,
        }
        for unit in program.units.values()
        for priority, spec in enumerate(unit.contacts)
    ]
    upsert(session, Contact, rows, key=["unit_id", "name"], columns=CONTACT_COLUMNS)
    wanted = {(row["unit_id"], row["name"]) for row in rows}
    col = Contact.__table__.c  # type: ignore[attr-defined]
    stored = session.execute(select(col.id, col.unit_id, col.name)).tuples()
    dropped = [row_id for row_id, unit_id, name in stored if (unit_id, name) not in wanted]
    if dropped:  # kept, not deleted: past deliveries still point at it
        session.execute(update(Contact.__table__).where(col.id.in_(dropped)).values(active=False))  # type: ignore[attr-defined]


def _expire_loaded(session: Session) -> None:
    """The upserts bypass the ORM: units, duties and contacts this session loaded before are read again on use."""
    for instance in list(session.identity_map.values()):
        if isinstance(instance, Unit | Duty | Contact):
            session.expire(instance)


# ---------------------------------------------------------------- plan


PLANNED_RANGE = "planned_range"


@dataclass
class PlanReport:
    added: int = 0
    moves: list[Move] = field(default_factory=list)
    backlog: int = 0  # of the added, those already past their due date when planned


# Planning into the past (duties plan --from a past date) asks what the past items should do.
BACKLOG = {
    "ignore": "只补录到台账，显示为逾期，不提醒、不升级；管理部门可延期或免除",
    "remind": "补录，并向每个单位发送一条补录通知（列出各项及确认链接），不升级",
    "escalate": "补录，并按督办阶梯计时：下次心跳即发出交办通知（每个单位合并为一条）",
}
BACKLOG_FLAG = "往期补录"


def plan(
    session: Session, ctx: Context, *, start: date, end: date, at: datetime, only: Collection[str] | None = None
) -> int:
    """Write the occurrences due between start and end (of the ``only`` duties, if given). Idempotent.

    See ``plan_report``; this returns how many were added.
    """
    return plan_report(session, ctx, start=start, end=end, at=at, only=only).added


def plan_report(
    session: Session,
    ctx: Context,
    *,
    start: date,
    end: date,
    at: datetime,
    only: Collection[str] | None = None,
    dry_run: bool = False,
    backlog: str | None = None,
) -> PlanReport:
    """Re-date what the calendars now compute differently, then write the occurrences due between start and end.

    The store remembers which days the current calendars have been planned for, so a tick plans only the days its
    horizon newly reaches: its cost follows the new days, not the size of the ledger or of the horizon. When a
    duty's date rule or a year's working days changed, planned items are re-dated first (flows/redate.py).
    ``dry_run`` computes the same and writes nothing. ``backlog`` (a key of BACKLOG) says what items already past
    their due date do; without it (a tick, which plans from today) they are treated like any other.
    """
    marker = plan_marker(ctx) if only is None else None
    planned = _planned_range(session, marker)
    report = PlanReport()
    if only is None:  # cheap when nothing changed: the stored basis of the ledger's dates is compared first
        report.moves = redate(session, ctx, at=at, dry_run=dry_run)
    # When the remembered range already covers the request there is no window: no duty is expanded, no row built.
    for window_start, window_end in _unplanned_windows(planned, start, end):
        for rows in _chunks(_window_rows(session, ctx, window_start, window_end, only, at=at), PLAN_CHUNK):
            if backlog is not None:
                report.backlog += _mark_backlog(rows, backlog, at)
            if not dry_run:
                insert_ignoring_conflicts(session, Occurrence, rows)
            report.added += len(rows)
    if dry_run:
        session.rollback()
        return report
    if backlog == "remind" and report.backlog:
        tell_backlog(session, ctx, at=at)
    if marker is not None:
        _remember_planned(session, marker, planned, start, end)
    session.commit()
    return report


# Rows written per statement: a year for 100,000 units is two million rows, about 2 GB as dicts at once; in chunks
# the planner's memory stays flat, and executemany gains little beyond a few thousand rows.
PLAN_CHUNK = 5_000


def _window_rows(
    session: Session, ctx: Context, start: date, end: date, only: Collection[str] | None, *, at: datetime
) -> Iterator[Row]:
    for duty in ctx.program.duties.values():
        if duty.category is None and (only is None or duty.id in only):
            yield from _duty_rows(session, ctx, duty, start, end, at=at)


def _chunks(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _mark_backlog(rows: list[Row], policy: str, at: datetime) -> int:
    """Flag the rows already past their due date; stop their clocks unless the ladder is to run. Returns how many."""
    past = [row for row in rows if row["due_at"] <= at]
    for row in past:
        row["flags"] = [*row["flags"], BACKLOG_FLAG]
        row["next_remind_at"] = None  # a reminder before a date that has passed says nothing
        if policy != "escalate":
            row["next_escalate_at"] = None
    return len(past)


def tell_backlog(session: Session, ctx: Context, *, at: datetime) -> int:
    """One 补录通知 per unit listing the past items this planning added. Returns how many units were told."""
    col = Occurrence.__table__.c  # type: ignore[attr-defined]
    query = select(Occurrence).where(col.created_at == at, col.due_at <= at, col.done_at.is_(None))
    by_unit: dict[str, list[Occurrence]] = {}
    for item in session.execute(query.order_by(col.unit_id, col.due_at)).scalars():
        if BACKLOG_FLAG in item.flags:
            by_unit.setdefault(item.unit_id, []).append(item)
    contacts = recipients_by_unit(session, list(by_unit), roles=("staff", "leader"))
    # Held while the messages are rendered: each asks for its unit's link version (notices.unit_version), and the
    # session keeps rows only weakly, so without these a batch read its units one round trip at a time.
    units = Unit.__table__.c  # type: ignore[attr-defined]
    _units_held = session.execute(select(Unit).where(units.id.in_(list(by_unit)))).scalars().all()
    outgoing = Outgoing()
    for unit_id, items in by_unit.items():
        entries = [{"item": o, "link": confirmation_link(ctx.settings, ctx.secret, o, at=at)} for o in items]
        text = render(
            "messages/backlog.txt.j2",
            unit=ctx.program.units[unit_id],
            entries=entries,
            unit_link=unit_link(ctx.settings, ctx.secret, unit_id, at=at, version=unit_version(items[0])),
            programme=ctx.program.programme,
            zone=ctx.zone,
            at=at,
        )
        title, body = title_and_body(text)
        outgoing.queue(ctx, items[0], f"backlog:{at:%Y%m%d%H%M}", contacts.get(unit_id, []), title, body, at=at)
    outgoing.write(session)
    session.commit()
    return len(by_unit)


def plan_marker(ctx: Context) -> str:
    """What the planned ledger depends on: the programme and the working-day calendar."""
    text = f"{ctx.program.digest}|{ctx.program.workdays.fingerprint()}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _unplanned_windows(planned: tuple[date, date] | None, start: date, end: date) -> list[tuple[date, date]]:
    """The parts of start..end outside the ``planned`` range (all of it when nothing is planned under the current
    calendars)."""
    if planned is None:
        return [(start, end)] if start <= end else []
    done_from, done_to = planned
    windows = [(start, min(end, done_from - timedelta(days=1))), (max(start, done_to + timedelta(days=1)), end)]
    return [(a, b) for a, b in windows if a <= b]


def _planned_range(session: Session, marker: str | None) -> tuple[date, date] | None:
    stored = get_value(session, key=PLANNED_RANGE) if marker is not None else None
    if stored is None:
        return None
    found = json.loads(stored)
    if found.get("marker") != marker:
        return None
    return date.fromisoformat(found["from"]), date.fromisoformat(found["to"])


def _remember_planned(session: Session, marker: str, planned: tuple[date, date] | None, start: date, end: date) -> None:
    """Widen the remembered range when the new one touches it; otherwise the new one replaces it."""
    if planned is not None and start <= planned[1] + timedelta(days=1) and planned[0] <= end + timedelta(days=1):
        start, end = min(start, planned[0]), max(end, planned[1])
    value = {"marker": marker, "from": start.isoformat(), "to": end.isoformat()}
    put_value(session, key=PLANNED_RANGE, value=json.dumps(value))


def _duty_rows(
    session: Session, ctx: Context, duty: DutySpec, start: date, end: date, *, at: datetime
) -> Iterator[Row]:
    """New occurrence rows of one duty: the periods each assignee has not been planned for yet. Yielded, so a duty
    with 100,000 assignees is written in chunks, not held whole."""
    grace = ctx.program.ladders[duty.ladder].grace_workdays
    for groups in _period_groups(ctx, duty, start, end):
        planned = _planned_keys(session, duty.id, {period.key for _, periods in groups for period in periods})
        for units, periods in groups:
            for period in periods:
                shared: Row | None = None  # what all units of a period share is computed once, not once per unit
                for unit_id in units:
                    if (unit_id, period.key) not in planned:
                        shared = shared or occurrence_row(ctx, duty, grace, period, at)
                        yield {**shared, "unit_id": unit_id}


# Unannounced draws are made for this many units at a time: a year's draws for 9,000 construction sites at once
# were a hundred megabytes of a province's plan.
DRAW_UNITS = 500


def _period_groups(
    ctx: Context, duty: DutySpec, start: date, end: date
) -> Iterator[list[tuple[list[str], list[Period]]]]:
    """Units with the periods they share, in batches: all assignees at once, or each alone for unannounced checks."""
    program = ctx.program
    units = program.assignees(duty)
    if duty.unannounced is None:
        yield [(units, expand(duty, start, end, program.workdays, ctx.zone))]
        return
    # Unannounced days are drawn per unit, so one inspector's days say nothing about another's.
    for first in range(0, len(units), DRAW_UNITS):
        yield [
            ([unit_id], expand(duty, start, end, program.workdays, ctx.zone, unit=unit_id, seed=ctx.seed))
            for unit_id in units[first : first + DRAW_UNITS]
        ]


def _planned_keys(session: Session, duty_id: str, periods: set[str]) -> set[tuple[str, str]]:
    if not periods:
        return set()
    col = Occurrence.__table__.c  # type: ignore[attr-defined]
    query = select(col.unit_id, col.period).where(col.duty_id == duty_id, col.period.in_(sorted(periods)))
    return set(session.execute(query).tuples())


# ---------------------------------------------------------------- remind


def remind(session: Session, ctx: Context, *, at: datetime) -> int:
    """Queue the latest reminder that has come due for each open occurrence. Returns how many were queued.

    A unit with several reminders at once gets one message listing them all, each with its own link.
    """
    return sum(remind_batch(session, ctx, batch, at=at) for batch in open_batches(session, "next_remind_at", at))


def remind_batch(session: Session, ctx: Context, batch: list[Occurrence], *, at: datetime) -> int:
    """Claim a batch's reminders and queue their messages, a few statements for the whole batch."""
    by_unit: dict[str, list[Reminder]] = {}
    for item in claim_reminders(session, ctx, batch, at=at):
        by_unit.setdefault(item.occurrence.unit_id, []).append(item)
    contacts = recipients_by_unit(session, list(by_unit), roles=("staff", "leader"))
    outgoing = Outgoing()
    for unit_id, items in by_unit.items():
        _queue_reminders(ctx, outgoing, items, contacts.get(unit_id, []), at=at)
    outgoing.write(session)
    return sum(len(items) for items in by_unit.values())


@dataclass(frozen=True)
class Reminder:
    occurrence: Occurrence
    duty: DutySpec
    stage: str
    days_left: int


def claim_reminders(session: Session, ctx: Context, batch: list[Occurrence], *, at: datetime) -> list[Reminder]:
    """Move each row to its next reminder time in one conditional update; the rows this worker won that have a
    reminder to send now come back."""
    steps = {occurrence.id or 0: _next_reminder(ctx, occurrence, at) for occurrence in batch}
    changes = {row_id: (expected, values) for row_id, (expected, values, _) in steps.items()}
    won = claim_many(session, Occurrence, expect="next_remind_at", changes=changes)
    return [reminder for row_id, (_, _, reminder) in steps.items() if row_id in won and reminder is not None]


NextReminder = tuple[datetime | None, dict[str, Any], "Reminder | None"]


def _next_reminder(ctx: Context, occurrence: Occurrence, at: datetime) -> NextReminder:
    """The row's expected moment, its new values, and the reminder to send now if any. The latest reminder whose
    time has come is taken; an older one that was missed is not sent late."""
    duty = ctx.program.duties.get(occurrence.duty_id)
    times = reminder_times(duty, occurrence.due_at, ctx.program.workdays, ctx.zone) if duty else []
    passed = [t for t in times if t <= at]
    upcoming = [t for t in times if t > at]
    # Once it is overdue (or its duty was removed) the ladder speaks, not the reminders.
    live = duty is not None and at < occurrence.due_at
    sending = live and bool(passed)
    values = {
        "next_remind_at": upcoming[0] if upcoming and live else None,
        "reminders_sent": occurrence.reminders_sent + int(sending),
    }
    if not sending or duty is None:
        return occurrence.next_remind_at, values, None
    due_day = occurrence.due_at.astimezone(ctx.zone).date()
    # The due date is part of the stage: an item moved by 延期 or a calendar change is reminded again for its new date,
    # where the same lead time for the old date would be taken for a message already sent.
    stage = f"remind:{(due_day - passed[-1].astimezone(ctx.zone).date()).days}d@{due_day:%Y%m%d}"
    reminder = Reminder(occurrence, duty, stage, (due_day - at.astimezone(ctx.zone).date()).days)
    return occurrence.next_remind_at, values, reminder


def _queue_reminders(
    ctx: Context, outgoing: Outgoing, items: list[Reminder], contacts: list[Contact], *, at: datetime
) -> None:
    """One message per reminder, or, for a unit with several at once, one digest listing them all."""
    first = items[0].occurrence
    if len(items) == 1:
        item = items[0]
        title, body = message(ctx, "reminder", first, item.duty, at=at, days_left=item.days_left)
        stage = item.stage
    else:
        entries = [
            {"item": item, "link": confirmation_link(ctx.settings, ctx.secret, item.occurrence, at=at)}
            for item in sorted(items, key=lambda i: (i.occurrence.due_at, i.occurrence.id or 0))
        ]
        title, body = title_and_body(
            render(
                "messages/digest.txt.j2",
                unit=ctx.program.units[first.unit_id],
                entries=entries,
                unit_link=unit_link(ctx.settings, ctx.secret, first.unit_id, at=at, version=unit_version(first)),
                zone=ctx.zone,
                programme=ctx.program.programme,
            )
        )
        stage = f"digest:{at.astimezone(ctx.zone):%Y%m%d%H%M}"
    outgoing.queue(ctx, first, stage, contacts, title, body, at=at)
    for item in items:
        outgoing.audit(
            at=at,
            actor=SYSTEM,
            action="reminder_queued",
            occurrence_id=item.occurrence.id,
            stage=item.stage,
            digest=stage if len(items) > 1 else None,
            recipients=len(contacts),
        )


# ---------------------------------------------------------------- the outbox


def dispatch(session: Session, ctx: Context, *, at: datetime) -> DispatchReport:
    """Send what the outbox holds that is due (see notify/outbox.py)."""
    return outbox.dispatch(session, ctx.send, at=at)


# ---------------------------------------------------------------- tick


def tick(session: Session, ctx: Context, *, at: datetime) -> TickReport:
    """One heartbeat: load the calendars, plan the horizon, queue reminders and escalations, send them."""
    sync_program(session, ctx.program, at=at)
    today = at.astimezone(ctx.zone).date()
    report = TickReport()
    horizon = today + timedelta(days=ctx.settings.plan_horizon_days)
    planning = plan_report(session, ctx, start=today, end=horizon, at=at)
    report.planned, report.moved = planning.added, len(planning.moves)
    report.reminded = remind(session, ctx, at=at)
    report.escalated = escalate(session, ctx, at=at, notify=False)
    report.repeated = repeat_notices(session, ctx, at=at, notify=False)
    queue_notices(session, ctx, at=at)  # one message per recipient for the new notices and the repeats together
    report.assessment = assessment_step(session, ctx, at=at)
    sending = dispatch(session, ctx, at=at)
    report.sent, report.failed, report.unknown = sending.sent, sending.failed, sending.unknown
    report.retrying = sending.retry
    report.flags = unpublished_warnings(ctx.program, today, ctx.settings.plan_horizon_days)
    put_value(session, key="last_tick_at", value=at.isoformat())
    session.commit()
    return report


def unpublished_warnings(program: Program, today: date, horizon_days: int) -> list[str]:
    years = program.workdays.unpublished_years(today, today + timedelta(days=horizon_days))
    return [
        f"{year}年国务院节假日安排未发布：法定节假日已按《全国年节及纪念日放假办法》排除，调休（连休与补班）尚不知道，"
        f"相关事项已标记“{UNPUBLISHED_FLAG}”；安排发布后运行 duties workdays import 通知全文，已排期事项将自动改期"
        for year in years
    ]


def confirm(
    session: Session,
    *,
    occurrence_id: int,
    note: str,
    evidence: list[str],
    at: datetime,
    client: str,
    amount: float = 1.0,
    form_id: str = "single",
    evidence_taken: dict[str, str] | None = None,
    evidence_gps: dict[str, list[float]] | None = None,
    check: SpotCheck | None = None,
) -> str:
    """Record a unit's report: a confirmation, one check of a quota, or progress towards a target.

    ``check``: what a spot check found at the unit it checked (flows/spot_checks.py), recorded with the report in
    one transaction, at the same moment, or not at all.

    Returns ``recorded`` (counted, not complete yet), ``confirmed`` (complete now), ``already`` (complete before, or
    this form was already submitted: nothing changes) or ``closed`` (waived).
    """
    occurrence = session.get(Occurrence, occurrence_id)
    if occurrence is None:
        raise LookupError(occurrence_id)
    if occurrence.waived_at is not None:
        return "closed"
    if occurrence.done_at is not None and not _keeps_counting(session, occurrence):
        return "already"
    late = at > occurrence.due_at
    row = {
        "occurrence_id": occurrence_id,
        "form_id": form_id[:64],
        "amount": amount,
        "note": note,
        "evidence": evidence,
        "evidence_taken": evidence_taken or {},
        "evidence_gps": evidence_gps or {},
        "confirmed_at": at,
        "late": late,
        "client": client[:200],
    }
    with one_writer(session):
        completed = _record_report(session, occurrence, row, at=at, check=check)
    if completed is None:
        return "already"  # the same form again: a double tap or a retried request
    session.expire(occurrence)
    return "confirmed" if completed else "recorded"


def _keeps_counting(session: Session, occurrence: Occurrence) -> bool:
    """A quota's checks are each recorded, also past the number required: "每周不少于1次" is a floor."""
    duty = session.get(Duty, occurrence.duty_id)
    return duty is not None and duty.kind == "quota" and occurrence.finding_id is None


# A report's statements, built once: building them cost a confirmation more than running them.
_ITEMS = Occurrence.__table__  # type: ignore[attr-defined]
_THIS_ITEM = _ITEMS.c.id == bindparam("row_id")
_ADD_PROGRESS = update(_ITEMS).where(_THIS_ITEM).values(achieved=_ITEMS.c.achieved + bindparam("amount"))
_SET_PROGRESS = update(_ITEMS).where(_THIS_ITEM).values(achieved=bindparam("amount"))
_FINISH = (
    update(_ITEMS)
    .where(_THIS_ITEM, _ITEMS.c.done_at.is_(None), _ITEMS.c.achieved >= _ITEMS.c.required)
    .values(done_at=bindparam("done_at", type_=_ITEMS.c.done_at.type), next_remind_at=None, next_escalate_at=None)
)


def _record_report(
    session: Session, occurrence: Occurrence, row: dict[str, Any], *, at: datetime, check: SpotCheck | None = None
) -> bool | None:
    """Insert the report, add it to the item's progress and close the item when it is complete; committed.

    None when this form was recorded before; otherwise whether the item is complete now.
    """
    occurrence_id = occurrence.id
    amount, late = row["amount"], row["late"]
    if not insert_ignoring_conflicts(session, Confirmation, [row]):
        session.rollback()
        return None
    if check is not None:
        spot_checks.record(session, check, occurrence_id=occurrence_id or 0, form_id=row["form_id"], at=at)
    duty = session.get(Duty, occurrence.duty_id)
    # A level target (亮灯率, 满意率) takes the latest reported value; everything else adds up.
    is_level = duty is not None and (duty.spec.get("target") or {}).get("mode") == "level"
    session.execute(_SET_PROGRESS if is_level else _ADD_PROGRESS, {"row_id": occurrence_id, "amount": amount})
    completed = session.execute(_FINISH, {"row_id": occurrence_id, "done_at": at}).rowcount == 1  # type: ignore[attr-defined]
    audit(
        session,
        at=at,
        actor=f"unit:{occurrence.unit_id}",
        action="confirmed" if completed else "recorded",
        occurrence_id=occurrence_id,
        late=late,
        level=occurrence.level,
        amount=amount,
        evidence=len(row["evidence"]),
    )
    session.commit()
    return completed
