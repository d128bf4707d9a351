"""Spot checks that rate the units they check (市场清扫保洁质量抽查, 附件1 第6项 举措2): which units a check may name,
what a report says about the one it checked, its row next to the report, and a 不合格 result filed as a case.

The results rank the checked units in the monthly assessment (flows/scores.py: check_pass_rate, check_failed, and the
markets' 红黑榜 of 举措3).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session, col

from calendars.loader import Program
from flows import cases
from flows.cases import CaseError, NewCase
from flows.common import Context
from store.models import Case, CheckResult, Confirmation, Duty, Occurrence, Unit

MAX_PROBLEM = 500
NOUNS = {"market": "市场", "construction_site": "工地"}  # how the form names what was checked; else 单位


@dataclass(frozen=True)
class SpotCheck:
    """What one check found at one unit: passed (合格), or the problem seen (不合格)."""

    subject_id: str
    passed: bool
    problem: str = ""


def selectors_of(duty: Duty) -> list[str]:
    """The units a duty's checks rate, as the calendars wrote them: a quota's subjects (kind:market), and an
    unannounced check's subjects (kind:construction_site) when its findings become cases (``finding_category``);
    empty for every other duty.

    Read from the duty's stored spec: the ledger's copy of the calendars, the same one its items were planned from.
    """
    if duty.kind == "quota":
        return list((duty.spec.get("quota") or {}).get("subjects") or [])
    unannounced = duty.spec.get("unannounced") or {}
    if duty.kind == "unannounced" and unannounced.get("finding_category"):
        return list(unannounced.get("subjects") or [])
    return []


def subjects_for(session: Session, program: Program, selectors: list[str], checker: Unit) -> list[Unit]:
    """The units a check by ``checker`` may name, in the calendars' order.

    A district's checking unit checks the markets of its own district; a city-level one, or one whose district has
    none of them, any of them. Only units the ledger holds: a result refers to its unit.
    """
    wanted = list(dict.fromkeys(unit_id for selector in selectors for unit_id in program.resolve(selector)))
    if not wanted:
        return []
    found = {u.id: u for u in session.execute(select(Unit).where(col(Unit.id).in_(wanted))).scalars()}
    units = [found[unit_id] for unit_id in wanted if unit_id in found]
    home = checker.district or checker.id  # a district office is the unit whose id is the district
    local = [u for u in units if u.district == home or u.id == home]
    return local or units


def noun_of(subjects: list[Unit]) -> str:
    """市场 when every unit a check may name is a market: the form asks "被抽查市场"."""
    kinds = {u.kind for u in subjects}
    return NOUNS.get(kinds.pop(), "单位") if len(kinds) == 1 else "单位"


def read_check(subjects: list[Unit], subject: str, passed: str, problem: str) -> tuple[SpotCheck | None, str]:
    """A report's result from the form's fields, or a problem in Chinese for the unit to fix.

    ``passed`` is "1" (合格) or "0" (不合格). No subject and no result: a check that names no unit (a script written
    before checks rated units); it counts towards the quota and rates nobody.
    """
    subject, passed, problem = subject.strip(), passed.strip(), problem.strip()
    noun = noun_of(subjects)
    if not subject:
        return None, f"请选择被抽查的{noun}。" if passed or problem else ""
    names = {u.id: u.name for u in subjects}
    if subject not in names:
        return None, f"所选{noun}不在本次抽查范围内，请从列表中重新选择。"
    if passed not in ("1", "0"):
        return None, f"请选择对{names[subject]}的抽查结果：合格或不合格。"
    if passed == "0" and not problem:
        return None, f"抽查结果为不合格时，请填写{names[subject]}存在的问题。"
    if len(problem) > MAX_PROBLEM:
        return None, f"存在问题最多 {MAX_PROBLEM} 字，当前 {len(problem)} 字。"
    return SpotCheck(subject, passed == "1", problem), ""


def record(session: Session, check: SpotCheck, *, occurrence_id: int, form_id: str, at: datetime) -> None:
    """The result next to the report just inserted for ``form_id``, at the report's moment; not committed."""
    report = (
        select(col(Confirmation.id))
        .where(col(Confirmation.occurrence_id) == occurrence_id, col(Confirmation.form_id) == form_id)
        .limit(1)
    )
    confirmation_id = session.execute(report).scalar_one()
    row = CheckResult(
        occurrence_id=occurrence_id,
        confirmation_id=confirmation_id,
        subject_id=check.subject_id,
        passed=check.passed,
        problem=check.problem,
        at=at,
    )
    session.add(row)
    session.flush()


def results_of(session: Session, occurrence_id: int) -> list[tuple[CheckResult, str]]:
    """The results recorded on one checking item with the checked unit's name, oldest first."""
    query = (
        select(CheckResult, col(Unit.name))
        .join(Unit, col(Unit.id) == col(CheckResult.subject_id))
        .where(col(CheckResult.occurrence_id) == occurrence_id)
        .order_by(col(CheckResult.id))
    )
    return [(result, name) for result, name in session.execute(query)]


def finding_category(program: Program, duty_id: str) -> str | None:
    """The case category a check's 不合格 results are filed as (``quota.finding_category`` or
    ``unannounced.finding_category``), if the duty names one."""
    duty = program.duties.get(duty_id)
    spec = (duty.quota or duty.unannounced) if duty is not None else None
    return spec.finding_category if spec is not None else None


def file_finding(
    session: Session,
    ctx: Context,
    *,
    occurrence: Occurrence,
    form_id: str,
    at: datetime,
    photos: list[str] | None = None,
    photos_taken: dict[str, str] | None = None,
    photos_gps: dict[str, list[float]] | None = None,
) -> str:
    """The 不合格 result just recorded with ``form_id`` becomes a case of the duty's finding category for the checked
    unit, dispatched and told at once; a replayed form is the same case (external id ``check:<result id>``).

    ``photos``: the report's stored photos, with their EXIF capture times and points. Returns the sentence the
    checking unit reads on its page, or "" when there is nothing to file."""
    category_id = finding_category(ctx.program, occurrence.duty_id)
    result = _failed_result(session, occurrence.id or 0, form_id)
    if category_id is None or result is None:
        return ""
    category = ctx.program.categories[category_id]
    subject = ctx.program.units.get(result.subject_id)
    new = NewCase(
        category_id=category_id,
        place=subject.name if subject else result.subject_id,
        note=result.problem,
        unit_id=result.subject_id if result.subject_id in cases.candidates(ctx.program, category) else None,
        external_id=f"check:{result.id}",
        photos=photos or [],
        photos_taken=photos_taken or {},
        photos_gps=photos_gps or {},
        check_result_id=result.id,
    )
    try:
        filed = cases.file_case(session, ctx, new, reporter=f"unit:{occurrence.unit_id}", source="check", at=at)
    except CaseError as refusal:  # the check itself is recorded; the finding waits for a manager to file it
        session.rollback()
        return f"抽查结果已记录，但未能生成案件：{refusal}请联系管理部门。"
    cases.send_now(session, ctx, filed.delivery_ids, at=at)
    return filed_text(session, ctx, filed.case)


def filed_text(session: Session, ctx: Context, case: Case) -> str:
    """已生成案件 N，已派遣给 …（处置时限 …） or 待派遣."""
    item = session.get(Occurrence, case.occurrence_id) if case.occurrence_id else None
    if item is None:
        return f"已生成案件 {case.id}，待派遣：由管理部门指定责任单位。"
    unit = ctx.program.units.get(item.unit_id)
    due = item.due_at.astimezone(ctx.zone)
    name = unit.name if unit else item.unit_id
    return f"已生成案件 {case.id}，已派遣给{name}，处置时限 {due:%Y-%m-%d %H:%M}。"


def _failed_result(session: Session, occurrence_id: int, form_id: str) -> CheckResult | None:
    query = (
        select(CheckResult)
        .join(Confirmation, col(Confirmation.id) == col(CheckResult.confirmation_id))
        .where(
            col(Confirmation.occurrence_id) == occurrence_id,
            col(Confirmation.form_id) == form_id[:64],
            col(CheckResult.passed).is_(False),
        )
        .limit(1)
    )
    return session.execute(query).scalars().first()
