"""The steps of the engine as plain functions of a session and an explicit ``at``.

Prefect flows wrap these (flows/tick.py); the CLI and the tests call them directly. Each step that talks to the
outside world writes its intent to the ledger and commits before sending, so a crash never loses a message.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlmodel import Session

from calendars.loader import Program
from calendars.recurrence import Period, expand, reminder_times
from calendars.schema import DutySpec, LevelSpec
from notify import outbox
from notify.outbox import DispatchReport
from notify.send import Sender
from store.models import Confirmation, Contact, Duty, Escalation, Occurrence, Unit
from store.queries import audit, claim, get_value, insert_ignoring_conflicts, put_value
from store.settings import Settings
from templates import render
from web.tokens import make_token, make_unit_token

BATCH = 500
SYSTEM = "system"


@dataclass
class Context:
    """What every step needs besides the session and the time."""

    program: Program
    settings: Settings
    secret: str
    send: Sender
    seed: str = ""  # draws the days of unannounced checks

    @property
    def zone(self) -> Any:
        return self.settings.zone


@dataclass
class TickReport:
    planned: int = 0
    reminded: int = 0
    escalated: int = 0
    sent: int = 0
    failed: int = 0
    retrying: int = 0
    unknown: int = 0
    flags: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- load


def program_digest(program: Program) -> str:
    parts = [
        [spec.model_dump(mode="json") for spec in program.units.values()],
        [spec.model_dump(mode="json") for spec in program.ladders.values()],
        [spec.model_dump(mode="json") for spec in program.duties.values()],
    ]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def sync_program(session: Session, program: Program, *, at: datetime) -> bool:
    """Bring units, contacts and duties in the store in line with the calendars. False when nothing changed."""
    digest = program_digest(program)
    if get_value(session, key="program_digest") == digest:
        return False
    for spec in program.units.values():
        session.merge(
            Unit(
                id=spec.id,
                name=spec.name,
                kind=spec.kind,
                district=spec.district,
                tags=list(spec.tags),
                delivery=spec.delivery,
            )
        )
    session.flush()
    _sync_contacts(session, program)
    for duty in program.duties.values():
        session.merge(
            Duty(
                id=duty.id,
                kind=duty.kind,
                family=duty.family,
                title=duty.title,
                clause=duty.clause,
                quote=duty.quote,
                spec=duty.model_dump(mode="json"),
                source=str(program.where[("duty", duty.id)]),
            )
        )
    put_value(session, key="program_digest", value=digest)
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
    return True


def _sync_contacts(session: Session, program: Program) -> None:
    existing = {(c.unit_id, c.name): c for c in session.exec(select(Contact)).scalars()}  # type: ignore[call-overload]
    wanted = set()
    for unit in program.units.values():
        for priority, spec in enumerate(unit.contacts):
            wanted.add((unit.id, spec.name))
            row = existing.get((unit.id, spec.name))
            if row is None:
                session.add(
                    Contact(
                        unit_id=unit.id,
                        name=spec.name,
                        channel=spec.channel,
                        url=spec.url,
                        role=spec.role,
                        priority=priority,
                    )
                )
            else:
                row.channel, row.url, row.role, row.priority, row.active = (
                    spec.channel,
                    spec.url,
                    spec.role,
                    priority,
                    True,
                )
    for key, row in existing.items():
        if key not in wanted:
            row.active = False  # kept, not deleted: past deliveries still point at it


# ---------------------------------------------------------------- plan


def plan(
    session: Session, ctx: Context, *, start: date, end: date, at: datetime, only: Collection[str] | None = None
) -> int:
    """Write the occurrences due between start and end (of the ``only`` duties, if given). Idempotent."""
    program = ctx.program
    rows = []
    for duty in program.duties.values():
        if only is not None and duty.id not in only:
            continue
        ladder = program.ladders[duty.ladder]
        shared = expand(duty, start, end, program.workdays, ctx.zone) if duty.unannounced is None else []
        for unit_id in program.assignees(duty):
            # Unannounced days are drawn per unit, so one inspector's days say nothing about another's.
            periods = shared or expand(duty, start, end, program.workdays, ctx.zone, unit=unit_id, seed=ctx.seed)
            rows += [_occurrence_row(ctx, duty, ladder.grace_workdays, unit_id, period, at) for period in periods]
    new_rows = _not_yet_planned(session, rows)
    insert_ignoring_conflicts(session, Occurrence, new_rows)
    session.commit()
    return len(new_rows)


def _occurrence_row(
    ctx: Context, duty: DutySpec, grace: int, unit_id: str, period: Period, at: datetime
) -> dict[str, Any]:
    reminders = reminder_times(duty, period.due_at, ctx.program.workdays, ctx.zone)
    return {
        "duty_id": duty.id,
        "unit_id": unit_id,
        "period": period.key,
        "title": f"{duty.title}（{_period_label(period.key)}）",
        "detail": "；".join(period.tasks),
        "starts_at": datetime.combine(period.starts, datetime.min.time(), tzinfo=ctx.zone),
        "due_at": period.due_at,
        "flags": list(period.flags),
        "first_remind_at": reminders[0] if reminders else period.due_at,
        "next_remind_at": reminders[0] if reminders else None,
        "next_escalate_at": _workday_moment(ctx.program, period.due_at, grace),
        "visible_from": period.visible_from,
        "required": duty.required,
        "achieved": 0.0,
        "level": 0,
        "reminders_sent": 0,
        "created_at": at,
    }


def _not_yet_planned(session: Session, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not rows:
        return []
    col = Occurrence.__table__.c  # type: ignore[attr-defined]
    periods = {row["period"] for row in rows}
    existing = set(
        session.execute(select(col.duty_id, col.unit_id, col.period).where(col.period.in_(periods))).tuples()
    )
    return [row for row in rows if (row["duty_id"], row["unit_id"], row["period"]) not in existing]


def _period_label(key: str) -> str:
    """2026年, 2026年2月, 2026年第7周, 2026年2月第2次."""
    base, _, number = key.partition("#")
    year, _, rest = base.partition("-")
    if not rest:
        label = f"{year}年"
    else:
        label = f"{year}年第{int(rest[1:])}周" if rest.startswith("W") else f"{year}年{int(rest)}月"
    return f"{label}第{number}次" if number else label


def _workday_moment(program: Program, moment: datetime, workdays: int) -> datetime:
    """The same time of day, ``workdays`` working days after ``moment``'s date."""
    if workdays == 0:
        return moment
    day = program.workdays.add_workdays(moment.date(), workdays)
    return datetime.combine(day, moment.timetz())


# ---------------------------------------------------------------- remind


def remind(session: Session, ctx: Context, *, at: datetime) -> int:
    """Queue the latest reminder that has come due for each open occurrence. Returns how many were queued.

    A unit with several reminders at once gets one message listing them all, each with its own link.
    """
    queued = 0
    for batch in _open_batches(session, "next_remind_at", at):
        due = [item for occurrence in batch if (item := _claim_reminder(session, ctx, occurrence, at=at))]
        by_unit: dict[str, list[Reminder]] = {}
        for item in due:
            by_unit.setdefault(item.occurrence.unit_id, []).append(item)
        for items in by_unit.values():
            _queue_reminders(session, ctx, items, at=at)
        queued += len(due)
    return queued


def _open_rows(session: Session, moment: str, at: datetime) -> Iterator[Occurrence]:
    for batch in _open_batches(session, moment, at):
        yield from batch


def _open_batches(session: Session, moment: str, at: datetime) -> Iterator[list[Occurrence]]:
    """Open occurrences whose ``moment`` column has come, in batches; each batch is committed after use.

    Only the rows that are due cost anything (the column is indexed), so a tick's cost follows the work due, not
    the size of the ledger. A row another worker has just claimed may show up again: it is yielded only once.
    """
    col = Occurrence.__table__.c  # type: ignore[attr-defined]
    query = (
        select(Occurrence)
        .where(col[moment] <= at, col.done_at.is_(None), col.waived_at.is_(None), col.parked_at.is_(None))
        .order_by(col[moment], col.id)
        .limit(BATCH)
        .execution_options(populate_existing=True)
    )
    seen: set[int] = set()
    while True:
        fresh = [row for row in session.execute(query).scalars() if row.id not in seen]
        if not fresh:
            return
        seen.update(row.id or 0 for row in fresh)
        yield fresh
        session.commit()


@dataclass(frozen=True)
class Reminder:
    occurrence: Occurrence
    duty: DutySpec
    stage: str
    days_left: int


def _claim_reminder(session: Session, ctx: Context, occurrence: Occurrence, *, at: datetime) -> Reminder | None:
    """Take the latest reminder whose time has come; an older one that was missed is not sent late."""
    duty = ctx.program.duties.get(occurrence.duty_id)
    times = reminder_times(duty, occurrence.due_at, ctx.program.workdays, ctx.zone) if duty else []
    passed = [t for t in times if t <= at]
    upcoming = [t for t in times if t > at]
    # Once it is overdue (or its duty was removed) the ladder speaks, not the reminders.
    live = duty is not None and at < occurrence.due_at
    sending = live and bool(passed)
    won = claim(
        session,
        Occurrence,
        row_id=occurrence.id or 0,
        expect={"next_remind_at": occurrence.next_remind_at},
        values={
            "next_remind_at": upcoming[0] if upcoming and live else None,
            "reminders_sent": occurrence.reminders_sent + int(sending),
        },
    )
    if not won or not sending or duty is None:
        return None
    due_day = occurrence.due_at.astimezone(ctx.zone).date()
    stage = f"remind:{(due_day - passed[-1].astimezone(ctx.zone).date()).days}d"
    return Reminder(occurrence, duty, stage, (due_day - at.astimezone(ctx.zone).date()).days)


def _queue_reminders(session: Session, ctx: Context, items: list[Reminder], *, at: datetime) -> None:
    """One message per reminder, or, for a unit with several at once, one digest listing them all."""
    first = items[0].occurrence
    contacts = _contacts(session, [first.unit_id], roles=("staff", "leader"))
    if len(items) == 1:
        item = items[0]
        title, body = _message(ctx, "reminder", first, item.duty, at=at, days_left=item.days_left)
        stage = item.stage
    else:
        entries = [
            {"item": item, "link": confirmation_link(ctx.settings, ctx.secret, item.occurrence, at=at)}
            for item in sorted(items, key=lambda i: (i.occurrence.due_at, i.occurrence.id or 0))
        ]
        title, body = _title_and_body(
            render(
                "messages/digest.txt.j2",
                unit=ctx.program.units[first.unit_id],
                entries=entries,
                unit_link=unit_link(ctx.settings, ctx.secret, first.unit_id, at=at),
                zone=ctx.zone,
            )
        )
        stage = f"digest:{at.astimezone(ctx.zone):%Y%m%d%H%M}"
    _queue(session, ctx, first, stage, contacts, title, body, at=at)
    for item in items:
        audit(
            session,
            at=at,
            actor=SYSTEM,
            action="reminder_queued",
            occurrence_id=item.occurrence.id,
            stage=item.stage,
            digest=stage if len(items) > 1 else None,
            recipients=len(contacts),
        )


# ---------------------------------------------------------------- escalate


def escalate(session: Session, ctx: Context, *, at: datetime) -> int:
    """Move each overdue occurrence whose timeout has passed up one level of its ladder, and queue the notice."""
    moved = 0
    for occurrence in _open_rows(session, "next_escalate_at", at):
        moved += _climb(session, ctx, occurrence, at=at)
    return moved


def _climb(session: Session, ctx: Context, occurrence: Occurrence, *, at: datetime) -> int:
    duty = ctx.program.duties.get(occurrence.duty_id)
    ladder = ctx.program.ladders.get(duty.ladder) if duty else None
    if duty is None or ladder is None or occurrence.level >= len(ladder.levels):
        claim(
            session,
            Occurrence,
            row_id=occurrence.id or 0,
            expect={"level": occurrence.level},
            values={"next_escalate_at": None},
        )
        return 0
    step = ladder.levels[occurrence.level]
    deadline = datetime.combine(
        ctx.program.workdays.add_workdays(at.astimezone(ctx.zone).date(), step.timeout_workdays),
        duty.due.time,
        tzinfo=ctx.zone,
    )
    is_last = step.level == len(ladder.levels)
    won = claim(
        session,
        Occurrence,
        row_id=occurrence.id or 0,
        expect={"level": occurrence.level},
        values={"level": step.level, "level_at": at, "next_escalate_at": None if is_last else deadline},
    )
    if not won:
        return 0
    session.add(
        Escalation(occurrence_id=occurrence.id or 0, level=step.level, name=step.name, at=at, deadline_at=deadline)
    )
    title, body = _message(ctx, "escalation", occurrence, duty, at=at, step=step, deadline=deadline, ladder=ladder)
    contacts = _audience(session, ctx, occurrence, step)
    _queue(session, ctx, occurrence, f"level:{step.level}", contacts, title, body, at=at)
    audit(
        session,
        at=at,
        actor=SYSTEM,
        action="escalated",
        occurrence_id=occurrence.id,
        level=step.level,
        name=step.name,
        deadline=deadline.isoformat(),
        recipients=len(contacts),
    )
    return 1


def _audience(session: Session, ctx: Context, occurrence: Occurrence, step: LevelSpec) -> list[Contact]:
    program, unit_id = ctx.program, occurrence.unit_id
    duty = program.duties[occurrence.duty_id]
    contacts: list[Contact] = []
    for who in step.audience:
        if who == "unit":
            contacts += _contacts(session, [unit_id], roles=("staff",))
        elif who == "unit_leaders":
            contacts += _contacts(session, [unit_id], roles=("leader",))
        elif who == "lead":
            leads = [u for selector in duty.lead for u in program.resolve_near(selector, unit_id)]
            contacts += _contacts(session, leads, roles=("staff",))
        elif who == "city_office":
            contacts += _contacts(session, program.resolve("kind:city_office"), roles=("staff", "leader"))
        elif who == "district_office":
            contacts += _contacts(session, program.resolve_near("kind:district_office", unit_id), roles=("staff",))
    unique = {contact.id: contact for contact in contacts}
    return list(unique.values())


# ---------------------------------------------------------------- messages and the outbox


def confirmation_link(settings: Settings, secret: str, occurrence: Occurrence, *, at: datetime) -> str:
    """A signed link for the occurrence's unit, valid until link_valid_days after the later of due date and now."""
    expires = max(occurrence.due_at, at) + timedelta(days=settings.link_valid_days)
    token = make_token(
        secret,
        occurrence_id=occurrence.id or 0,
        unit_id=occurrence.unit_id,
        expires_at=expires,
        version=occurrence.link_version,
    )
    return f"{settings.base_url}/c/{token}"


def unit_link(settings: Settings, secret: str, unit_id: str, *, at: datetime) -> str:
    """A signed link to the unit's own page of open items, valid for link_valid_days."""
    token = make_unit_token(secret, unit_id=unit_id, expires_at=at + timedelta(days=settings.link_valid_days))
    return f"{settings.base_url}/u/{token}"


def _message(
    ctx: Context, template: str, occurrence: Occurrence, duty: DutySpec, *, at: datetime, **extra: Any
) -> tuple[str, str]:
    program = ctx.program
    leads = [program.units[u].name for s in duty.lead for u in program.resolve_near(s, occurrence.unit_id)]
    text = render(
        f"messages/{template}.txt.j2",
        occurrence=occurrence,
        duty=duty,
        unit=program.units[occurrence.unit_id],
        leads="、".join(dict.fromkeys(leads)),
        link=confirmation_link(ctx.settings, ctx.secret, occurrence, at=at),
        unit_link=unit_link(ctx.settings, ctx.secret, occurrence.unit_id, at=at),
        zone=ctx.zone,
        **extra,
    )
    return _title_and_body(text)


def _title_and_body(text: str) -> tuple[str, str]:
    """A rendered message template: its first line is the title, the rest the body."""
    title, _, body = text.partition("\n")
    return title.strip(), body.strip() + "\n"


def _contacts(session: Session, unit_ids: list[str], *, roles: tuple[str, ...]) -> list[Contact]:
    """Who hears of it: every active contact, or for a failover unit only its first (the rest wait their turn)."""
    if not unit_ids:
        return []
    col = Contact.__table__.c  # type: ignore[attr-defined]
    query = select(Contact).where(col.unit_id.in_(unit_ids), col.role.in_(roles), col.active.is_(True))
    contacts = list(session.execute(query.order_by(col.unit_id, col.priority, col.id)).scalars())
    units = Unit.__table__.c  # type: ignore[attr-defined]
    failover_query = select(units.id).where(units.id.in_(unit_ids), units.delivery == "failover")
    failover = set(session.execute(failover_query).scalars())
    chosen: list[Contact] = []
    for contact in contacts:
        if contact.unit_id not in failover or all(c.unit_id != contact.unit_id for c in chosen):
            chosen.append(contact)
    return chosen


def _queue(
    session: Session,
    ctx: Context,
    occurrence: Occurrence,
    stage: str,
    contacts: list[Contact],
    title: str,
    body: str,
    *,
    at: datetime,
) -> None:
    """Hand the message to the outbox, to go out when the duty's sending window is open (never at night)."""
    duty = ctx.program.duties.get(occurrence.duty_id)
    windows = duty is not None and ctx.settings.send_windows
    opening = ctx.program.workdays.window_opening(at, duty.send_window, ctx.zone) if windows and duty else at
    outbox.queue(
        session,
        occurrence_id=occurrence.id or 0,
        stage=stage,
        contacts=contacts,
        title=title,
        body=body,
        at=at,
        not_before=opening,
    )


def dispatch(session: Session, ctx: Context, *, at: datetime) -> DispatchReport:
    """Send what the outbox holds that is due (see notify/outbox.py)."""
    return outbox.dispatch(session, ctx.send, at=at)


# ---------------------------------------------------------------- tick


def tick(session: Session, ctx: Context, *, at: datetime) -> TickReport:
    """One heartbeat: load the calendars, plan the horizon, queue reminders and escalations, send them."""
    sync_program(session, ctx.program, at=at)
    today = at.astimezone(ctx.zone).date()
    report = TickReport()
    report.planned = plan(session, ctx, start=today, end=today + timedelta(days=ctx.settings.plan_horizon_days), at=at)
    report.reminded = remind(session, ctx, at=at)
    report.escalated = escalate(session, ctx, at=at)
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
        f"{year}年国务院节假日安排未收录：该年工作日按周一至周五计算，相关事项已标记，请在 calendars/workdays/ "
        f"中补充 {year}.yaml"
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
) -> str:
    """Record a unit's report: a confirmation, one check of a quota, or progress towards a target.

    Returns ``recorded`` (counted, not complete yet), ``confirmed`` (complete now), ``already`` (complete before, or
    this form was already submitted: nothing changes) or ``closed`` (waived).
    """
    occurrence = session.get(Occurrence, occurrence_id)
    if occurrence is None:
        raise LookupError(occurrence_id)
    if occurrence.waived_at is not None:
        return "closed"
    if occurrence.done_at is not None:
        return "already"
    late = at > occurrence.due_at
    row = {
        "occurrence_id": occurrence_id,
        "form_id": form_id[:64],
        "amount": amount,
        "note": note,
        "evidence": evidence,
        "evidence_taken": evidence_taken or {},
        "confirmed_at": at,
        "late": late,
        "client": client[:200],
    }
    if not insert_ignoring_conflicts(session, Confirmation, [row]):
        session.rollback()
        return "already"  # the same form again: a double tap or a retried request
    table = Occurrence.__table__  # type: ignore[attr-defined]
    duty = session.get(Duty, occurrence.duty_id)
    # A level target (亮灯率, 满意率) takes the latest reported value; everything else adds up.
    is_level = duty is not None and (duty.spec.get("target") or {}).get("mode") == "level"
    progress = amount if is_level else table.c.achieved + amount
    session.execute(update(table).where(table.c.id == occurrence_id).values(achieved=progress))
    finish = (
        update(table)
        .where(table.c.id == occurrence_id, table.c.done_at.is_(None), table.c.achieved >= table.c.required)
        .values(done_at=at, next_remind_at=None, next_escalate_at=None)
    )
    completed = session.execute(finish).rowcount == 1  # type: ignore[attr-defined]
    audit(
        session,
        at=at,
        actor=f"unit:{occurrence.unit_id}",
        action="confirmed" if completed else "recorded",
        occurrence_id=occurrence_id,
        late=late,
        level=occurrence.level,
        amount=amount,
        evidence=len(evidence),
    )
    session.commit()
    session.expire(occurrence)
    return "confirmed" if completed else "recorded"
