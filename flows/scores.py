"""考核 scores: each unit's indicators and composite score for a period, computed from the ledger alone.

Everything is read "as of" a moment ``at``: an item done after ``at`` counts as not done, a level issued after it as
not reached. So the same ledger and the same ``at`` give the same numbers and the same digest, whenever they are
computed. The SQL does the per-item work in a few grouped queries; Python only adds the rows up per unit.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import and_, case, exists, func, or_, select
from sqlmodel import Session

from calendars.loader import Program
from calendars.schema import ScoringSpec
from store.models import AuditEvent, CheckResult, Confirmation, Escalation, Finding, Occurrence, Reinspection

OTHERS = "others"
OTHERS_TITLE = "其他单位"


class PeriodError(ValueError):
    """A period the assessment cannot read; the message is for the user, in Chinese."""


@dataclass(frozen=True)
class Span:
    """An assessed period: ``key`` 2026-11, 2026-Q4 or 2026, from ``starts`` up to (not including) ``ends``."""

    key: str
    starts: date
    ends: date

    @property
    def label(self) -> str:
        year, _, rest = self.key.partition("-")
        if not rest:
            return f"{year}年度"
        return f"{year}年第{rest[1:]}季度" if rest.startswith("Q") else f"{year}年{int(rest)}月"

    def bounds(self, zone: Any) -> tuple[datetime, datetime]:
        return (
            datetime.combine(self.starts, datetime.min.time(), tzinfo=zone),
            datetime.combine(self.ends, datetime.min.time(), tzinfo=zone),
        )


def span_of(text: str) -> Span:
    """2026-11 (a month), 2026-Q4 (a quarter) or 2026 (a year)."""
    found = re.fullmatch(r"(\d{4})(?:-(?:(\d{1,2})|[Qq]([1-4])))?", text.strip())
    if found is None or not 2000 <= int(found.group(1)) <= 2100:
        raise PeriodError(f"无法识别的考核期“{text}”：请写 2026-11（月）、2026-Q4（季度）或 2026（年）")
    year = int(found.group(1))
    if found.group(2):
        month = int(found.group(2))
        if not 1 <= month <= 12:
            raise PeriodError(f"月份“{month}”不在 1–12 之内")
        return Span(f"{year}-{month:02d}", date(year, month, 1), _month_after(year, month))
    if found.group(3):
        quarter = int(found.group(3))
        return Span(f"{year}-Q{quarter}", date(year, quarter * 3 - 2, 1), _month_after(year, quarter * 3))
    return Span(str(year), date(year, 1, 1), date(year + 1, 1, 1))


def _month_after(year: int, month: int) -> date:
    return date(year + month // 12, month % 12 + 1, 1)


def month_of(day: date) -> Span:
    return Span(f"{day.year}-{day.month:02d}", day.replace(day=1), _month_after(day.year, day.month))


def month_before(day: date) -> Span:
    """The month before the one ``day`` is in: what is assessed in ``day``'s month. Any year: the tick runs at
    whatever moment it is given (1900 included), and finds nothing there to assess."""
    return month_of(day.replace(day=1) - timedelta(days=1))


def cutoff_of(program: Program, scoring: ScoringSpec, span: Span, zone: Any) -> datetime:
    """The moment the period is frozen: the ``cutoff_workday``-th working day after it ends, at ``cutoff_time``."""
    day = program.workdays.add_workdays(span.ends - timedelta(days=1), scoring.cutoff_workday)
    return datetime.combine(day, scoring.cutoff_time, tzinfo=zone)


@dataclass
class Item:
    """One item due in the period, as it stood at ``at``. Its due date is not kept: the outcome says all the score
    needs of it, and reading 100,000 dates back costs a fifth of a month's assessment."""

    id: int
    unit_id: str
    duty_id: str
    outcome: str  # on_time, late_done, overdue, parked, open (not yet due), or target
    level: int = 0
    extended: bool = False
    reworks: int = 0
    required: float = 1.0
    achieved: float = 0.0


@dataclass
class UnitResult:
    unit_id: str
    group_id: str
    district: str | None
    counts: dict[str, float] = field(default_factory=dict)
    rates: dict[str, float | None] = field(default_factory=dict)
    raw: float | None = None  # base less what the rates lost, before deductions; None when nothing was assessed
    deductions: list[tuple[int | None, str, float]] = field(default_factory=list)  # (item, reason, points)
    response_hours: float | None = None

    def score(self, scoring: ScoringSpec) -> float | None:
        return final_score(scoring, self.raw, [points for _, _, points in self.deductions])

    def indicators(self) -> dict[str, Any]:
        return {**self.counts, **self.rates, "raw": self.raw, "response_hours": self.response_hours}


@dataclass
class Computed:
    span: Span
    at: datetime
    units: dict[str, UnitResult]
    digest: str
    families: dict[str, dict[str, float]]


COUNTED = ("due", "on_time", "late_done", "overdue", "parked", "extended", "rework", "level_1", "level_2", "level_3")
# A case's dispatches (duty kind "case") are judged by their own rate, 按期处置率: handled (处置, done_at) by the
# category's deadline. They are not in "due"/"on_time" (按期完成率), but their lateness, levels and 返工 still count.
CASE_COUNTED = ("case_due", "case_on_time")


def compute(
    session: Session, program: Program, scoring: ScoringSpec, span: Span, *, at: datetime, zone: Any
) -> Computed:
    """Every unit's indicators and deductions for ``span``, as of ``at``."""
    start, end = span.bounds(zone)
    items = _items(session, program, start, end, at) + _targets(session, program, start, end, at)
    escalations = _escalations(session, start, end, at)
    failed_reinspections = _failed_reinspections(session, start, end, at)
    checks = _check_results(session, start, end, at)
    assessed = {item.unit_id for item in items} | set(escalations) | {subject for subject, _, _ in checks}
    grouped = groups_of(program, scoring)
    units = {unit_id: _new_result(program, grouped, unit_id) for unit_id in sorted(assessed & set(program.units))}
    families: dict[str, dict[str, float]] = defaultdict(lambda: {"due": 0, "on_time": 0})
    for item in items:
        _add_item(units[item.unit_id], item, program, scoring, at)
        if item.outcome not in ("open", "target"):
            family = families[program.duties[item.duty_id].family]
            family["due"] += 1
            family["on_time"] += item.outcome == "on_time"
    for unit_id, (issued, acknowledged, hours) in escalations.items():
        _add_response(units[unit_id], issued, acknowledged, hours)
    for subject, check_item, passed in checks:
        if subject in units:
            _add_check(units[subject], scoring, check_item, passed)
    for unit_id, item_id in failed_reinspections:
        if unit_id in units:
            units[unit_id].counts["rework"] += 1
            _deduct(units[unit_id], scoring, item_id, "rework", 1)
    for result in units.values():
        _rate(result, scoring)
    digest = _digest(span, at, scoring, items, escalations, failed_reinspections + checks)
    return Computed(span, at, units, digest, dict(families))


def final_score(scoring: ScoringSpec, raw: float | None, points: list[float]) -> float | None:
    """The rates' score less the deductions (at most ``max_deduction``), never below 0; None: nothing assessed."""
    if raw is None:
        return None
    return max(0.0, round(raw - min(scoring.max_deduction, sum(points)), 2))


def _new_result(program: Program, grouped: dict[str, str], unit_id: str) -> UnitResult:
    unit = program.units.get(unit_id)
    district = unit.district if unit is not None else None
    return UnitResult(
        unit_id=unit_id,
        group_id=grouped.get(unit_id, OTHERS),
        district=district or (unit_id if unit is not None and unit.kind == "district_office" else None),
        counts=dict.fromkeys(COUNTED, 0)
        | dict.fromkeys(CASE_COUNTED, 0)
        | {"quota_required": 0.0, "quota_done": 0.0, "targets": 0, "target_progress": 0.0}
        | {"escalations": 0, "acknowledged": 0, "checked": 0, "check_failed": 0},
    )


def groups_of(program: Program, scoring: ScoringSpec) -> dict[str, str]:
    """Each unit a group names → the first group naming it, resolved once: resolving the selectors for every unit
    made a 10,000-unit city's assessment take minutes (bench/assess.py)."""
    grouped: dict[str, str] = {}
    for group in reversed(scoring.groups):
        for selector in group.units:
            grouped.update(dict.fromkeys(program.resolve(selector), group.id))
    return grouped


def _items(session: Session, program: Program, start: datetime, end: datetime, at: datetime) -> list[Item]:
    """The items due in the period and not waived by ``at``, with what the confirmations, the ladder and the audit
    say of each as of ``at``: one query per kind of fact, each grouped per item."""
    occ = Occurrence.__table__.c  # type: ignore[attr-defined]
    targets = [duty.id for duty in program.duties.values() if duty.kind == "target"]
    moved = _moved_after(session, at)
    reopened = _reopened_after(session, at)
    replayed = set(moved) | set(reopened)
    counted = and_(
        or_(occ.duty_id.not_in(targets), occ.finding_id.is_not(None)),  # a 整改 item is due like any other
        occ.created_at <= at,
        or_(occ.waived_at.is_(None), occ.waived_at > at),
    )
    due_in_period = and_(counted, occ.due_at >= start, occ.due_at < end, occ.id.not_in(list(replayed)))
    facts = _facts(at)
    rows: list[Any] = [  # one fetchall, not a fetch per row
        *session.execute(
            select(occ.id, occ.unit_id, occ.duty_id, _outcome(occ, at).label("outcome"), occ.required, *facts)
            .where(due_in_period)
            .order_by(occ.id)
        ).all()
    ]
    if replayed:  # in id order with the rest: the digest reads them in order
        then = _as_then(session, moved, _states_at(session, reopened, at), counted, (start, end), at)
        known = {row.id: row for row in session.execute(select(occ.id, *facts).where(occ.id.in_([r.id for r in then])))}
        as_rows = [(r.id, r.unit_id, r.duty_id, r.outcome, r.required, *known[r.id][1:]) for r in then]
        rows = sorted([*rows, *as_rows], key=lambda row: row[0])
    known_duties, known_units = program.duties, program.units
    return [
        Item(id_, unit_id, duty_id, outcome, level or 0, bool(extended), reworks or 0, required, float(achieved or 0))
        for id_, unit_id, duty_id, outcome, required, achieved, reworks, level, extended in rows
        # a duty or unit since removed from the calendars: nothing to hold anyone to
        if duty_id in known_duties and unit_id in known_units
    ]


def _facts(at: datetime) -> list[Any]:
    """What the confirmations, the ladder and the audit say of one item as of ``at``, looked up per item by their
    occurrence indexes in the same pass that reads the items (one pass, as bench/assess.py's baseline does)."""
    occ = Occurrence.__table__.c  # type: ignore[attr-defined]
    con = Confirmation.__table__.c  # type: ignore[attr-defined]
    esc = Escalation.__table__.c  # type: ignore[attr-defined]
    aud = AuditEvent.__table__.c  # type: ignore[attr-defined]
    reported = and_(con.occurrence_id == occ.id, con.confirmed_at <= at)
    return [
        select(func.sum(con.amount)).where(reported).scalar_subquery().label("achieved"),
        select(func.count())
        .where(reported, con.verdict == "fail", con.verified_at <= at)
        .scalar_subquery()
        .label("reworks"),
        select(func.max(esc.level))
        .where(esc.occurrence_id == occ.id, esc.status == "issued", esc.at <= at)
        .scalar_subquery()
        .label("level"),
        exists().where(aud.occurrence_id == occ.id, aud.action == "extended", aud.at <= at).label("extended"),
    ]


def _moved_after(session: Session, at: datetime) -> dict[int, datetime]:
    """Items extended after ``at``: each one's due date as it stood at ``at`` (the first later extension's
    previous one). Few rows: only the extensions since ``at``."""
    col = AuditEvent.__table__.c  # type: ignore[attr-defined]
    query = (
        select(col.occurrence_id, col.detail)
        .where(col.action == "extended", col.at > at, col.occurrence_id.is_not(None))
        .order_by(col.at.desc(), col.id.desc())
    )
    return {
        occurrence_id: datetime.fromisoformat(detail["previous_due"])
        for occurrence_id, detail in session.execute(query)
        if "previous_due" in detail
    }


REOPENING = ("reopened", "verified_fail", "reinspected_fail")  # each clears done_at (flows/actions, inspections)
STATE_EVENTS = ("confirmed", "reinspected_pass", "parked", "waived", *REOPENING)


def _reopened_after(session: Session, at: datetime) -> set[int]:
    """Items reopened after ``at`` (返工, a failed 核查 or 复检): their row no longer says they were done then."""
    col = AuditEvent.__table__.c  # type: ignore[attr-defined]
    query = select(col.occurrence_id).where(col.action.in_(REOPENING), col.at > at, col.occurrence_id.is_not(None))
    return set(session.execute(query.distinct()).scalars())


def _states_at(session: Session, ids: set[int], at: datetime) -> dict[int, dict[str, datetime | None]]:
    """Done, parked and waived as they stood at ``at``, replayed from the audit of these items up to ``at``."""
    if not ids:
        return {}
    col = AuditEvent.__table__.c  # type: ignore[attr-defined]
    query = (
        select(col.occurrence_id, col.action, col.at)
        .where(col.occurrence_id.in_(list(ids)), col.action.in_(STATE_EVENTS), col.at <= at)
        .order_by(col.at, col.id)
    )
    states: dict[int, dict[str, datetime | None]] = {i: {"done": None, "parked": None, "waived": None} for i in ids}
    for occurrence_id, action, moment in session.execute(query):
        state = states[occurrence_id]
        if action in ("confirmed", "reinspected_pass"):
            state["done"] = state["done"] or moment
        elif action in REOPENING:
            state.update(done=None, parked=None, waived=None)
        else:
            state[action] = moment  # parked or waived
    return states


def _as_then(
    session: Session,
    moved: dict[int, datetime],
    states: dict[int, dict[str, datetime | None]],
    counted: Any,
    bounds: tuple[datetime, datetime],
    at: datetime,
) -> list[Any]:
    """The items extended or reopened since ``at``, as they stood at ``at``: their due date then (``moved``) and
    whether they were done, parked or waived then (``states``), kept when they were due in the period then."""
    occ = Occurrence.__table__.c  # type: ignore[attr-defined]
    query = select(
        occ.id, occ.unit_id, occ.duty_id, occ.due_at, occ.done_at, occ.parked_at, occ.waived_at, occ.required
    ).where(counted, occ.id.in_([*moved, *states]))
    found = []
    for row in session.execute(query):
        due = moved.get(row.id, row.due_at)
        then = states.get(row.id, {"done": row.done_at, "parked": row.parked_at, "waived": row.waived_at})
        waived = then["waived"]
        if not bounds[0] <= due < bounds[1] or (waived is not None and waived <= at):
            continue
        outcome = _outcome_then(then["done"], then["parked"], due, at)
        found.append(
            SimpleNamespace(id=row.id, unit_id=row.unit_id, duty_id=row.duty_id, outcome=outcome, required=row.required)
        )
    return found


def _outcome_then(done_at: datetime | None, parked_at: datetime | None, due: datetime, at: datetime) -> str:
    if done_at is not None and done_at <= at:
        return "on_time" if done_at <= due else "late_done"
    if parked_at is not None and parked_at <= at:
        return "parked"
    return "overdue" if due <= at else "open"


def _targets(session: Session, program: Program, start: datetime, end: datetime, at: datetime) -> list[Item]:
    """The targets running through the period, each with its progress as of ``at`` (a sum of reports, or the latest
    report for a level such as 亮灯率) and, as ``required``, the part of its goal expected by the period's end (or by
    ``at``, when that comes first: the expected-by-now line)."""
    occ = Occurrence.__table__.c  # type: ignore[attr-defined]
    con = Confirmation.__table__.c  # type: ignore[attr-defined]
    targets = {duty.id: duty for duty in program.duties.values() if duty.target is not None}
    rows = session.execute(
        select(occ.id, occ.unit_id, occ.duty_id, occ.starts_at, occ.due_at, occ.required)
        .where(
            occ.duty_id.in_(list(targets)),
            occ.finding_id.is_(None),  # a finding's 整改 item of a target duty is an item due, not progress
            occ.starts_at < end,
            occ.due_at >= start,
            occ.created_at <= at,
            or_(occ.waived_at.is_(None), occ.waived_at > at),
        )
        .order_by(occ.id)
    ).all()
    reports: dict[int, list[float]] = defaultdict(list)
    query = (
        select(con.occurrence_id, con.amount)
        .where(con.occurrence_id.in_([row.id for row in rows]), con.confirmed_at <= at)
        .order_by(con.confirmed_at, con.id)
    )
    for occurrence_id, amount in session.execute(query):
        reports[occurrence_id].append(float(amount))
    items = []
    for row in rows:
        duty = targets[row.duty_id]
        if row.unit_id not in program.units or duty.target is None:
            continue
        mine = reports.get(row.id, [])
        achieved = sum(mine) if duty.target.mode == "cumulative" else (mine[-1] if mine else 0.0)
        now = min(end, at, row.due_at)  # the line as of ``at``: a draft mid-month is not held to the month's end
        share = min(1.0, max(0.0, (now - row.starts_at) / (row.due_at - row.starts_at)))
        expected = row.required * share if row.due_at > row.starts_at else row.required
        items.append(Item(row.id, row.unit_id, row.duty_id, "target", required=expected, achieved=achieved))
    return items


def _outcome(occ: Any, at: datetime) -> Any:
    """What an item was at ``at``, worked out by the database: reading two more moments per item back into Python
    and comparing them there was a fifth of a large month's assessment (bench/assess.py)."""
    done = and_(occ.done_at.is_not(None), occ.done_at <= at)
    return case(
        (and_(done, occ.done_at <= occ.due_at), "on_time"),
        (done, "late_done"),
        (and_(occ.parked_at.is_not(None), occ.parked_at <= at), "parked"),
        (occ.due_at <= at, "overdue"),
        else_="open",
    )


def _escalations(session: Session, start: datetime, end: datetime, at: datetime) -> dict[str, tuple[int, int, float]]:
    """Per unit, the notices issued in the period: how many, how many the unit pressed 收到 for by ``at``, and
    the hours it took them in total, from the notice's issue (its approval for a level that waited for one), not
    from a repeat: a repeat is sent because the unit had not answered, and must not shorten its time."""
    esc = Escalation.__table__.c  # type: ignore[attr-defined]
    occ = Occurrence.__table__.c  # type: ignore[attr-defined]
    query = (
        select(occ.unit_id, func.coalesce(esc.approved_at, esc.at), esc.acknowledged_at)
        .join(Occurrence.__table__, occ.id == esc.occurrence_id)  # type: ignore[attr-defined]
        .where(esc.status == "issued", esc.at >= start, esc.at < end, esc.at <= at)
        .order_by(esc.id)
    )
    found: dict[str, tuple[int, int, float]] = {}
    for unit_id, issued_at, acknowledged_at in session.execute(query):
        issued, acknowledged, hours = found.get(unit_id, (0, 0, 0.0))
        if acknowledged_at is not None and acknowledged_at <= at:
            acknowledged += 1
            hours += max(0.0, (acknowledged_at - issued_at).total_seconds() / 3600)
        found[unit_id] = (issued + 1, acknowledged, hours)
    return found


def _failed_reinspections(
    session: Session, start: datetime, end: datetime, at: datetime
) -> list[tuple[str, int | None]]:
    """(unit, 整改 item) for every 复检 that failed in the period."""
    rei = Reinspection.__table__.c  # type: ignore[attr-defined]
    fin = Finding.__table__.c  # type: ignore[attr-defined]
    query = (
        select(fin.unit_id, fin.occurrence_id)
        .join(Finding.__table__, fin.id == rei.finding_id)  # type: ignore[attr-defined]
        .where(rei.passed.is_(False), rei.at >= start, rei.at < end, rei.at <= at)
        .order_by(rei.id)
    )
    return [(unit_id, occurrence_id) for unit_id, occurrence_id in session.execute(query)]


def _check_results(session: Session, start: datetime, end: datetime, at: datetime) -> list[tuple[str, int, bool]]:
    """(unit checked, the checking item, passed) for every spot-check result recorded in the period."""
    col = CheckResult.__table__.c  # type: ignore[attr-defined]
    query = (
        select(col.subject_id, col.occurrence_id, col.passed)
        .where(col.at >= start, col.at < end, col.at <= at)
        .order_by(col.id)
    )
    return [(subject, occurrence_id, bool(passed)) for subject, occurrence_id, passed in session.execute(query)]


def _add_check(result: UnitResult, scoring: ScoringSpec, check_item: int, passed: bool) -> None:
    result.counts["checked"] += 1
    if not passed:
        result.counts["check_failed"] += 1
        _deduct(result, scoring, check_item, "check_failed", 1)


def _add_item(result: UnitResult, item: Item, program: Program, scoring: ScoringSpec, at: datetime) -> None:
    duty = program.duties[item.duty_id]
    counts = result.counts
    if item.outcome == "target":
        _add_target(result, item)
        return
    if item.outcome == "open":
        return  # not yet due: it belongs to the period but cannot be judged yet
    if duty.kind == "case":  # 按期处置率, not 按期完成率; a 退回 or 改派 dispatch is waived and never reaches here
        counts["case_due"] += 1
        counts["case_on_time"] += item.outcome == "on_time"
        if item.outcome != "on_time":
            counts[item.outcome] += 1
    else:
        counts["due"] += 1
        counts[item.outcome] += 1
    if duty.kind == "quota":
        counts["quota_required"] += item.required
        counts["quota_done"] += min(item.achieved, item.required)
        if item.outcome in ("overdue", "late_done") and item.achieved < item.required:
            _deduct(result, scoring, item.id, "quota_short", item.required - item.achieved)
    if item.outcome in ("late_done", "overdue", "parked"):
        _deduct(result, scoring, item.id, item.outcome, 1)
    if item.level:
        counts[f"level_{item.level}"] += 1
        _deduct(result, scoring, item.id, f"level_{item.level}", 1)
    if item.extended:
        counts["extended"] += 1
        _deduct(result, scoring, item.id, "extended", 1)
    if item.reworks:
        counts["rework"] += item.reworks
        _deduct(result, scoring, item.id, "rework", item.reworks)


def _add_target(result: UnitResult, item: Item) -> None:
    """A target counts by its progress against the straight line from its start to its due date: ``required`` is
    the part of the goal expected by the period's end."""
    result.counts["targets"] += 1
    result.counts["target_progress"] += min(1.0, item.achieved / item.required) if item.required > 0 else 1.0


def _deduct(result: UnitResult, scoring: ScoringSpec, item_id: int | None, reason: str, times: float) -> None:
    points = scoring.deductions.get(reason, 0.0) * times
    if points > 0:
        result.deductions.append((item_id, reason, round(points, 2)))


def _add_response(result: UnitResult, issued: int, acknowledged: int, hours: float) -> None:
    result.counts["escalations"] = issued
    result.counts["acknowledged"] = acknowledged
    result.response_hours = round(hours / acknowledged, 1) if acknowledged else None


def _rate(result: UnitResult, scoring: ScoringSpec) -> None:
    counts = result.counts
    result.rates = {
        "on_time_rate": ratio(counts["on_time"], counts["due"]),
        "quota_rate": ratio(counts["quota_done"], counts["quota_required"]),
        "target_rate": ratio(counts["target_progress"], counts["targets"]),
        "response_rate": ratio(counts["acknowledged"], counts["escalations"]),
        "check_pass_rate": ratio(counts["checked"] - counts["check_failed"], counts["checked"]),
        "case_on_time_rate": ratio(counts["case_on_time"], counts["case_due"]),
    }
    counted = [(weight, result.rates[name]) for name, weight in scoring.weights.items()]
    lost = [weight * (1 - rate) for weight, rate in counted if rate is not None]
    if lost or result.deductions or any(rate is not None for rate in result.rates.values()):
        result.raw = round(max(0.0, scoring.base - sum(lost)), 2)


def ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _digest(
    span: Span,
    at: datetime,
    scoring: ScoringSpec,
    items: list[Item],
    escalations: dict[str, tuple[int, int, float]],
    reinspections: list[Any],
) -> str:
    """A hash of everything the scores were computed from: equal digests, equal inputs."""
    facts = {
        "span": span.key,
        "at": at.isoformat(),
        "scoring": scoring.model_dump(mode="json"),
        "escalations": sorted([unit, *values] for unit, values in escalations.items()),
        "reinspections": reinspections,
    }
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True, ensure_ascii=False, default=str).encode())
    # The items, one line each: a JSON document of a large month's items took a tenth of its assessment.
    lines = (
        f"{i.id}|{i.unit_id}|{i.duty_id}|{i.outcome}|{i.level}|{i.extended}|{i.reworks}|{i.required}|{i.achieved}\n"
        for i in items
    )
    digest.update("".join(lines).encode())
    return digest.hexdigest()
