"""Re-dating: when a working-day arrangement arrives or changes, or a duty's rule does, open items move with it.

The ledger is planned ahead of time, so a calendar change must reach the rows already written. Every open item
(not done, not waived, not yet due, not extended by a manager) whose period now falls due on another day moves:
- an item not yet reminded just moves, with an audit event (old date, new date, why);
- an item already reminded moves too, and its unit gets one 变更通知 listing its moved items, each with its link;
- an item whose period no longer exists under the new rule is withdrawn (waived, with the reason), never deleted;
- flags are recomputed, so 调休安排未发布 clears once the year's arrangement is published.

An item is never moved into the past: a unit would find it overdue without warning. What changed is remembered
(``redate_basis``: each duty's rule and each year's working-day state), so a pass looks only at the duties and years
that changed. Each batch is claimed with a conditional update on the due date and committed alone, so two workers
never move or announce an item twice, and running it again changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from calendars.loader import Program
from calendars.recurrence import LOOK_BACK, Period, expand, reminder_times
from calendars.schema import DutySpec
from flows.common import SYSTEM, Context, occurrence_row
from flows.notices import Outgoing, confirmation_link, recipients_by_unit, title_and_body, unit_link, unit_version
from store.models import AuditEvent, Occurrence
from store.queries import claim_many, get_value, put_value
from templates import render

BASIS = "redate_basis"
UNITS_PER_BATCH = 200
# Rule fields that decide an item's dates: a change to any of them re-dates the duty's open items.
DATE_FIELDS = {"recurrence", "due", "unannounced", "monthly_tasks", "reminders", "remind_time"}
# Room around the items' own dates when their periods are computed again: a period's due day may roll past its
# end over a long holiday, or move back to the working day before an empty week.
MARGIN = timedelta(days=62)


@dataclass(frozen=True)
class Move:
    occurrence_id: int
    unit_id: str
    duty_id: str
    title: str
    old_due: datetime
    new_due: datetime | None  # None: the period no longer exists, and the item is withdrawn
    reason: str
    reminded: bool

    def json(self, zone: Any) -> dict[str, Any]:
        return {
            "id": self.occurrence_id,
            "unit": self.unit_id,
            "duty": self.duty_id,
            "title": self.title,
            "old_due": self.old_due.astimezone(zone).isoformat(),
            "new_due": self.new_due.astimezone(zone).isoformat() if self.new_due else None,
            "action": "withdraw" if self.new_due is None else "move",
            "notify": self.reminded,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Basis:
    """What the ledger's dates were computed from: each duty's date rule and each year's working-day state."""

    duties: dict[str, str]
    years: dict[str, str]

    def changed_duties(self, now: Basis) -> set[str]:
        return {duty for duty, rule in now.duties.items() if self.duties.get(duty) != rule}

    def changed_years(self, now: Basis) -> set[int]:
        return {int(year) for year, state in now.years.items() if self.years.get(year) != state}


def redate(session: Session, ctx: Context, *, at: datetime, dry_run: bool = False) -> list[Move]:
    """Move the open items whose dates the current calendars compute differently; return what moved."""
    stored, now = stored_basis(session), current_basis(ctx, at)
    if stored == now:
        return []
    change = Change.between(stored, now)
    scope = {
        duty.id: since for duty in ctx.program.duties.values() if (since := change.look_from(duty, at)) is not None
    }
    moves: list[Move] = []
    for batch in _open_items(session, scope):
        found = [
            move
            for duty_id, items in _by_duty(batch).items()
            for move in _moves_of(ctx, ctx.program.duties[duty_id], items, change, at)
        ]
        if dry_run:
            moves += [move for move, _ in found if move.reason]
        else:
            moves += _apply(session, ctx, found, {item.id or 0: item for item in batch}, at)
            session.commit()
    if not dry_run:
        put_value(session, key=BASIS, value=json.dumps({"duties": now.duties, "years": now.years}, sort_keys=True))
        session.commit()
    return moves


def _by_duty(items: list[Occurrence]) -> dict[str, list[Occurrence]]:
    grouped: dict[str, list[Occurrence]] = {}
    for item in items:
        grouped.setdefault(item.duty_id, []).append(item)
    return grouped


@dataclass(frozen=True)
class Change:
    """What differs between the stored basis and the current one."""

    duties: set[str]
    years: set[int]
    rules_known: bool  # False for a store planned before the basis was kept: every duty is looked at, none blamed

    @classmethod
    def between(cls, stored: Basis | None, now: Basis) -> Change:
        before = stored or Basis({}, {})
        return cls(before.changed_duties(now), before.changed_years(now), stored is not None)

    def look_from(self, duty: DutySpec, at: datetime) -> datetime | None:
        """From when a duty's items need a look: all open ones when its rule changed, else those near a changed
        year; None when neither."""
        if duty.category is not None:
            return None  # a case's deadline is its clock's, set when it was dispatched
        if duty.id in self.duties:
            return at
        if not self.years:
            return None
        first = datetime.combine(date(min(self.years), 1, 1), datetime.min.time(), tzinfo=at.tzinfo) - MARGIN
        return max(at, first)

    def reason(self, ctx: Context, duty: DutySpec, old_due: datetime, new_due: datetime | None) -> str:
        """Why an item moves, in words for the unit: the duty's rule, the arrangement of its year, or both."""
        parts = []
        if self.rules_known and duty.id in self.duties:
            parts.append(f"任务“{duty.title}”的期次或截止规则已调整")
        years = [moment.astimezone(ctx.zone).year for moment in (old_due, new_due) if moment is not None]
        year = next((year for year in years if year in self.years), None)
        if year is not None:
            parts.append(ctx.program.workdays.describe_year(year))
        return "；".join(parts) or "工作日历更新"


def stored_basis(session: Session) -> Basis | None:
    stored = get_value(session, key=BASIS)
    if stored is None:
        return None
    found = json.loads(stored)
    return Basis(found.get("duties", {}), found.get("years", {}))


def current_basis(ctx: Context, at: datetime) -> Basis:
    """The rules and the working-day state of this year and the next two, which is as far as anything is planned."""
    first = at.astimezone(ctx.zone).year
    years = {str(year): ctx.program.workdays.year_state(year) for year in range(first - 1, first + 3)}
    return Basis(rule_hashes(ctx.program), years)


def rule_hashes(program: Program) -> dict[str, str]:
    """Each duty's date rule as a short hash, computed once per loaded programme: a tick asks every five minutes."""
    found = _RULES.get(program.digest)
    if found is None:
        found = {duty.id: _rule_hash(duty) for duty in program.duties.values()}
        _RULES.clear()
        _RULES[program.digest] = found
    return found


_RULES: dict[str, dict[str, str]] = {}


def _rule_hash(duty: DutySpec) -> str:
    text = json.dumps(duty.model_dump(mode="json", include=DATE_FIELDS), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _open_items(session: Session, scope: dict[str, datetime]) -> Iterator[list[Occurrence]]:
    """Planned items in scope (duty → due after), not done and not waived, without those a manager extended;
    in batches of whole units, so each unit's moves are announced in one message and one transaction."""
    if not scope:
        return
    col = Occurrence.__table__.c  # type: ignore[attr-defined]
    open_ = (
        col.duty_id.in_(sorted(scope)),
        col.due_at > min(scope.values()),
        col.done_at.is_(None),
        col.waived_at.is_(None),
        col.finding_id.is_(None),
    )
    units = list(session.execute(select(col.unit_id).where(*open_).distinct().order_by(col.unit_id)).scalars())
    for first in range(0, len(units), UNITS_PER_BATCH):
        chosen = units[first : first + UNITS_PER_BATCH]
        query = (
            select(Occurrence)
            .where(*open_, col.unit_id.in_(chosen))
            .order_by(col.unit_id, col.id)
            .execution_options(populate_existing=True)
        )
        batch = [item for item in session.execute(query).scalars() if item.due_at > scope[item.duty_id]]
        extended = _extended(session, [item.id or 0 for item in batch])
        yield [item for item in batch if item.id not in extended]


def _extended(session: Session, ids: list[int]) -> set[int]:
    """Items whose date a manager set (延期): the calendar no longer decides it."""
    events = AuditEvent.__table__.c  # type: ignore[attr-defined]
    query = select(events.occurrence_id).where(events.action == "extended", events.occurrence_id.in_(ids))
    return set(session.execute(query).scalars())


def _moves_of(
    ctx: Context,
    duty: DutySpec,
    items: list[Occurrence],
    change: Change,
    at: datetime,
) -> list[tuple[Move, dict[str, Any]]]:
    """Each item whose dates or flags differ from its period's, with the values it should take."""
    if not items:
        return []
    periods = _periods_by_key(ctx, duty, items)
    grace = ctx.program.ladders[duty.ladder].grace_workdays
    found = []
    for item in items:
        period = periods.get((item.unit_id, item.period))
        reason = change.reason(ctx, duty, item.due_at, period.due_at if period else None)
        if period is None:
            move = _move(item, None, reason)
            found.append((move, {"waived_at": at, "next_remind_at": None, "next_escalate_at": None}))
            continue
        row = occurrence_row(ctx, duty, grace, period, at)
        if period.due_at == item.due_at:
            if row["flags"] != item.flags or row["detail"] != item.detail:
                found.append((_move(item, item.due_at, ""), {"flags": row["flags"], "detail": row["detail"]}))
            continue
        if period.due_at <= at:
            continue  # never into the past: the unit keeps the date it was given
        reminders = reminder_times(duty, period.due_at, ctx.program.workdays, ctx.zone)
        found.append((_move(item, period.due_at, reason), _moved_values(item, row, reminders, at)))
    return found


def _move(item: Occurrence, new_due: datetime | None, reason: str) -> Move:
    return Move(
        occurrence_id=item.id or 0,
        unit_id=item.unit_id,
        duty_id=item.duty_id,
        title=item.title,
        old_due=item.due_at,
        new_due=new_due,
        reason=reason,
        reminded=item.reminders_sent > 0,
    )


MOVED_COLUMNS = (
    "starts_at",
    "due_at",
    "flags",
    "detail",
    "next_escalate_at",
    "visible_from",
    "first_remind_at",
    "next_remind_at",
)


def _moved_values(item: Occurrence, row: dict[str, Any], reminders: list[datetime], at: datetime) -> dict[str, Any]:
    """The new dates; a unit already reminded is not reminded again of what it has just been told."""
    values = {key: row[key] for key in MOVED_COLUMNS}
    if item.reminders_sent > 0:
        values["first_remind_at"] = min(item.first_remind_at, row["first_remind_at"])
        upcoming = [moment for moment in reminders if moment > at]
        values["next_remind_at"] = upcoming[0] if upcoming else None
    return values


def _periods_by_key(ctx: Context, duty: DutySpec, items: list[Occurrence]) -> dict[tuple[str, str], Period]:
    """The periods the current calendars give the items' units, around the items' own dates: from before the first
    period's start to after the last one's end, however far the new rule moves a due date inside its period."""
    start = min(item.starts_at for item in items).astimezone(ctx.zone).date() - MARGIN
    last_start = max(item.starts_at for item in items).astimezone(ctx.zone).date()
    last_due = max(item.due_at for item in items).astimezone(ctx.zone).date()
    end = max(last_start + LOOK_BACK[duty.period_rule.period], last_due) + MARGIN
    program = ctx.program
    if duty.unannounced is None:
        shared = {p.key: p for p in expand(duty, start, end, program.workdays, ctx.zone)}
        return {(item.unit_id, item.period): shared[item.period] for item in items if item.period in shared}
    by_key = {}
    for unit_id in {item.unit_id for item in items}:
        for period in expand(duty, start, end, program.workdays, ctx.zone, unit=unit_id, seed=ctx.seed):
            by_key[(unit_id, period.key)] = period
    return by_key


def _apply(
    session: Session,
    ctx: Context,
    found: list[tuple[Move, dict[str, Any]]],
    items: dict[int, Occurrence],
    at: datetime,
) -> list[Move]:
    """Write the moves this worker wins (a conditional update on the old due date), their audit events and the
    units' 变更通知; returns the moves made. ``items`` are the batch's rows, kept in step by the claim."""
    changes = {move.occurrence_id: (move.old_due, values) for move, values in found}
    won = claim_many(session, Occurrence, expect="due_at", changes=changes)
    made = [move for move, _ in found if move.occurrence_id in won]
    outgoing = Outgoing()
    for move in made:
        if move.reason:  # a flag that only cleared is no event
            action = "withdrawn" if move.new_due is None else "redated"
            outgoing.audit(
                at=at,
                actor=SYSTEM,
                action=action,
                occurrence_id=move.occurrence_id,
                old_due=move.old_due.isoformat(),
                new_due=move.new_due.isoformat() if move.new_due else None,
                reason=move.reason,
            )
    told = [move for move in made if move.reminded and move.reason]
    _queue_notices(session, ctx, outgoing, told, items, at=at)
    outgoing.write(session)
    return [move for move in made if move.reason]


def _queue_notices(
    session: Session,
    ctx: Context,
    outgoing: Outgoing,
    moves: list[Move],
    items: dict[int, Occurrence],
    *,
    at: datetime,
) -> None:
    """One 变更通知 per unit, listing each of its moved or withdrawn items with its own link."""
    by_unit: dict[str, list[Move]] = {}
    for move in moves:
        by_unit.setdefault(move.unit_id, []).append(move)
    contacts = recipients_by_unit(session, list(by_unit), roles=("staff",))
    for unit_id, unit_moves in by_unit.items():
        entries: list[dict[str, Any]] = [
            {"move": move, "item": items[move.occurrence_id], "duty": ctx.program.duties[move.duty_id]}
            for move in sorted(unit_moves, key=lambda m: (m.old_due, m.occurrence_id))
        ]
        for entry in entries:
            entry["link"] = confirmation_link(ctx.settings, ctx.secret, entry["item"], at=at)
        title, body = title_and_body(
            render(
                "messages/moved.txt.j2",
                unit=ctx.program.units[unit_id],
                entries=entries,
                unit_link=unit_link(ctx.settings, ctx.secret, unit_id, at=at, version=unit_version(entries[0]["item"])),
                zone=ctx.zone,
                programme=ctx.program.programme,
            )
        )
        first = entries[0]["item"]
        stage = f"moved:{at.astimezone(ctx.zone):%Y%m%d%H%M}"
        outgoing.queue(ctx, first, stage, contacts.get(unit_id, []), title, body, at=at)
