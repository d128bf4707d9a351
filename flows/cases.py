"""Cases: problems found anywhere, on the loop the 数字城管 platforms run: 受理 → 派遣 → 处置 → 核查 → 结案.

A case is filed (受理) by an inspector's phone form, a finding on a spot check, another platform through the API, or
the CLI. It is dispatched (派遣) at once when its category and place name its unit, otherwise it waits for the
dispatcher on the desk. Each dispatch is an ordinary item of the category's duty (period ``C<id>``; ``C<id>.2`` after
a 退回 and a reassignment), so it has the same link, ladder, desk, audit and assessment as every other item, with its
deadline on the category's clock (calendars/clocks.py). The unit's report on the item's link is the 处置; a 核查 by
the reporter or a manager closes the case (结案) or reopens the item at its level.

A unit pushes back from its link: 退回 (not ours), 延期申请 or 挂账申请. Each request waits in the managers' approval
queue and is decided with a reason; the unit is told either way. The clock keeps running while a request waits,
unless the category says ``pause_while_requested``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from calendars.clocks import Duration
from calendars.loader import Program
from calendars.schema import CategorySpec
from flows import actions, ladder
from flows.common import Context, case_clock, open_batches, workday_moment
from flows.decisions import tell_unit
from flows.notice_batches import queue_notices
from flows.notices import message, queue, recipients_of
from notify import outbox
from store.models import REQUEST_KINDS, Case, Confirmation, Delivery, Occurrence, Unit, UnitRequest
from store.queries import audit

MAX_PLACE = 200
MAX_NOTE = 2000
MAX_REASON = 500
# An extension approved after the date the unit asked for has passed still gives the unit this long.
EXTENSION_FLOOR = timedelta(minutes=1)


class CaseError(Exception):
    """Input a case cannot take; the message is in Chinese. ``status`` is the HTTP status that fits it."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class NewCase:
    """What a reporter says about a problem. ``unit_id`` names the unit outright; otherwise the place picks it."""

    category_id: str
    place: str
    note: str = ""
    latitude: float | None = None
    longitude: float | None = None
    unit_id: str | None = None
    external_id: str | None = None
    photos: list[str] = field(default_factory=list)  # stored evidence names (web/photos.py)
    photos_taken: dict[str, str] = field(default_factory=dict)
    photos_gps: dict[str, list[float]] = field(default_factory=dict)
    check_result_id: int | None = None


@dataclass(frozen=True)
class Filed:
    case: Case
    created: bool  # False: the same reporter's external id was filed before; nothing new was written
    delivery_ids: list[int]  # the first message's deliveries, to send at once (``send_now``)


def categories_text(program: Program) -> str:
    return "、".join(f"{c.id}（{c.title}）" for c in program.categories.values()) or "（未配置案件类别）"


def file_case(
    session: Session,
    ctx: Context,
    new: NewCase,
    *,
    reporter: str,
    source: str,
    at: datetime,
    district: str | None = None,
) -> Filed:
    """受理: check, record, and dispatch at once when the unit is known; committed, or nothing written.

    ``district``: the reporting account's district; a case for a unit outside it is refused (403)."""
    category = ctx.program.categories.get(new.category_id)
    if category is None:
        raise CaseError(f"没有编号为 {new.category_id} 的案件类别；可选：{categories_text(ctx.program)}。")
    if new.external_id:
        earlier = by_external_id(session, reporter, new.external_id)
        if earlier is not None:
            return Filed(earlier, False, [])
    _check_text(new)
    unit_id = _unit_for(ctx.program, category, new)
    if unit_id is not None and district is not None and _district_of(ctx.program, unit_id) != district:
        unit = ctx.program.units[unit_id].name
        raise CaseError(f"{unit} 不属于本账号所在区县（{district}），不能上报该单位的案件。", status=403)
    case = Case(
        category_id=category.id,
        place=new.place.strip(),
        latitude=new.latitude,
        longitude=new.longitude,
        note=new.note.strip(),
        photos=new.photos,
        photos_taken=new.photos_taken,
        photos_gps=new.photos_gps,
        reporter=reporter[:64],
        source=source,
        external_id=new.external_id or None,
        check_result_id=new.check_result_id,
        found_at=at,
        created_at=at,
    )
    session.add(case)
    try:
        session.flush()
    except IntegrityError:  # the same external id filed at the same moment by another request: that one stands
        session.rollback()
        earlier = by_external_id(session, reporter, new.external_id or "")
        if earlier is None:
            raise
        return Filed(earlier, False, [])
    audit(session, at=at, actor=reporter, action="case_filed", case=case.id, category=category.id, place=case.place)
    ids = dispatch_to(session, ctx, case, unit_id, actor=reporter, at=at) if unit_id else []
    session.commit()
    return Filed(case, True, ids)


def send_now(session: Session, ctx: Context, delivery_ids: list[int], *, at: datetime) -> None:
    """Send a case's first message in the request that filed it: a 30-minute clock cannot wait for the tick."""
    if delivery_ids:
        outbox.dispatch(session, ctx.send, at=at, only=delivery_ids, stop=lambda: False)


def resolve_unit(program: Program, category: CategorySpec, place: str) -> str | None:
    """The unit whose name, or one of whose ``places``, the place text names; the longest name wins (飞英农贸市场
    over 飞英街道 in "飞英街道飞英农贸市场东门"). None when no unit, or two equally, fit: the dispatcher decides."""
    best: dict[str, int] = {}
    for unit_id in candidates(program, category):
        unit = program.units[unit_id]
        found = [len(name) for name in (unit.name, *unit.places) if name and name in place]
        if found:
            best[unit_id] = max(found)
    if not best:
        return None
    longest = max(best.values())
    winners = [unit_id for unit_id, length in best.items() if length == longest]
    return winners[0] if len(winners) == 1 else None


def candidates(program: Program, category: CategorySpec) -> list[str]:
    """The units that may answer for a category's cases."""
    return sorted({unit for selector in category.units for unit in program.resolve(selector)})


def dispatch_to(session: Session, ctx: Context, case: Case, unit_id: str, *, actor: str, at: datetime) -> list[int]:
    """派遣: the case's item for ``unit_id``, its deadline on the category's clock, and its first message queued.
    Returns the message's delivery ids; the caller commits."""
    category = ctx.program.categories[case.category_id]
    number = case.dispatches + 1
    clock = case_clock(ctx, category)
    due = clock.deadline(at, category.duration)
    item = Occurrence(
        duty_id=category.id,
        unit_id=unit_id,
        period=f"C{case.id}" if number == 1 else f"C{case.id}.{number}",
        title=f"{category.title}：{case.place}"[:200],
        detail=case.note,
        starts_at=at,
        due_at=due,
        first_remind_at=at,
        next_escalate_at=_first_escalation(ctx, category, at, due),
        required=1.0,
        case_id=case.id,
        created_at=at,
    )
    session.add(item)
    session.flush()
    case.occurrence_id, case.dispatches = item.id, number
    session.add(case)
    duty = ctx.program.duties[category.id]
    title, body = message(ctx, "case", item, duty, at=at, case=case, category=category, number=number)
    stage = f"case:{number}"
    queue(session, ctx, item, stage, recipients_of(session, [unit_id], roles=("staff", "leader")), title, body, at=at)
    audit(session, at=at, actor=actor, action="case_dispatched", occurrence_id=item.id, case=case.id, unit=unit_id)
    return _queued(session, item.id or 0, stage)


def _first_escalation(ctx: Context, category: CategorySpec, start: datetime, due: datetime) -> datetime:
    """When the item first climbs: the first step of the category's own ladder, else the ladder's grace after due."""
    if category.steps:
        return max(case_clock(ctx, category).deadline(start, Duration.parse(category.steps[0].after)), due)
    grace = ctx.program.ladders[category.ladder].grace_workdays
    return workday_moment(ctx.program, due, grace)


def reassign(
    session: Session, ctx: Context, *, case_id: int, unit_id: str, reason: str, actor: str, at: datetime
) -> Occurrence:
    """改派 by the dispatcher: the current item (if any) is closed as not the unit's, and the case goes to ``unit_id``
    with a fresh clock. Returns the new item; committed."""
    case = _open_case(session, case_id)
    category = ctx.program.categories.get(case.category_id)
    if category is None:
        raise CaseError("该案件的类别已从日历中删除，无法派遣。")
    if unit_id not in candidates(ctx.program, category):
        names = "、".join(ctx.program.units[u].name for u in candidates(ctx.program, category))
        raise CaseError(f"该类案件只能派给：{names}。")
    _need_reason(reason)
    current = session.get(Occurrence, case.occurrence_id) if case.occurrence_id else None
    if current is not None and current.unit_id == unit_id and _is_open(current, at):
        raise CaseError("案件已在该单位处置中。")
    if current is not None and _is_open(current, at):
        _withdraw(session, current, reason=f"改派：{reason.strip()}", actor=actor, at=at)
    ids = dispatch_to(session, ctx, case, unit_id, actor=actor, at=at)
    session.commit()
    send_now(session, ctx, ids, at=at)
    item = session.get(Occurrence, case.occurrence_id)
    assert item is not None
    return item


def verify(
    session: Session, ctx: Context, *, case_id: int, passed: bool, note: str, actor: str, at: datetime, role: str
) -> Case:
    """核查 the unit's 处置: a pass closes the case (结案); a fail reopens the item at its level, with the category's
    time again before its next level, and tells the unit why."""
    case = _open_case(session, case_id)
    item = session.get(Occurrence, case.occurrence_id, populate_existing=True) if case.occurrence_id else None
    if item is None or item.status_at(at) not in ("done", "late_done"):
        raise CaseError("单位尚未报告处置，暂不能核查。", status=409)
    report = _last_report(session, item.id or 0)
    if report is None:
        raise CaseError("单位尚未报告处置，暂不能核查。", status=409)
    try:
        actions.verify(
            session,
            occurrence_id=item.id or 0,
            confirmation_id=report.id or 0,
            passed=passed,
            note=note,
            actor=actor,
            at=at,
            role=role,
        )
    except actions.ActionError as error:
        raise CaseError(str(error)) from None
    if passed:
        case.closed_at, case.closed_by = at, actor
        session.add(case)
        audit(session, at=at, actor=actor, action="case_closed", occurrence_id=item.id, case=case.id)
    else:
        category = ctx.program.categories.get(case.category_id)
        if category is not None:  # redo within the category's own time, not a day (actions.REDO_GRACE)
            item.next_escalate_at = case_clock(ctx, category).deadline(at, category.duration)
            session.add(item)
        tell_unit(session, ctx, occurrence_id=item.id or 0, action="verify", reason=note, at=at)
    session.commit()
    return case


# ---------------------------------------------------------------- units push back


@dataclass(frozen=True)
class Asked:
    """What a unit asks: ``kind`` return, extend or park, with the date for 延期 or the review day for 挂账."""

    kind: str
    reason: str
    due_at: datetime | None = None
    review_on: date | None = None
    form_id: str = ""


def ask(session: Session, ctx: Context, *, occurrence_id: int, asked: Asked, at: datetime) -> UnitRequest:
    """A unit's 退回, 延期申请 or 挂账申请 on one open item; it waits for a manager. The same form twice is one
    request. Committed; the lead office is told a request waits."""
    item = session.get(Occurrence, occurrence_id, populate_existing=True)
    if item is None:
        raise CaseError("事项不存在。", status=404)
    earlier = _request_by_form(session, occurrence_id, asked.form_id) if asked.form_id else None
    if earlier is not None:
        return earlier
    _check_asked(session, ctx, item, asked, at)
    request = UnitRequest(
        occurrence_id=occurrence_id,
        unit_id=item.unit_id,
        kind=asked.kind,
        reason=asked.reason.strip(),
        due_at=asked.due_at,
        review_on=asked.review_on,
        form_id=asked.form_id[:64],
        at=at,
    )
    session.add(request)
    session.flush()
    if pauses_while_requested(ctx.program, item.duty_id):
        item.next_escalate_at = item.next_remind_at = None
        session.add(item)
    audit(
        session,
        at=at,
        actor=f"unit:{item.unit_id}",
        action="request_made",
        occurrence_id=item.id,
        request=request.id,
        kind=asked.kind,
        reason=request.reason,
    )
    _tell_leads(session, ctx, item, request, at=at)
    session.commit()
    return request


def decide(
    session: Session,
    ctx: Context,
    *,
    request_id: int,
    approve: bool,
    answer: str,
    actor: str,
    at: datetime,
    role: str,
) -> UnitRequest:
    """A manager's answer to a unit's request, with a reason; the unit is told. Approving a 退回 closes the unit's
    item and sends the case back to the dispatcher; 延期 and 挂账 are the desk's own actions. Committed."""
    request = session.get(UnitRequest, request_id, populate_existing=True)
    if request is None or request.status != "open":
        raise CaseError("该申请不存在或已处理。", status=409)
    _need_reason(answer)
    item = session.get(Occurrence, request.occurrence_id, populate_existing=True)
    assert item is not None
    paused = pauses_while_requested(ctx.program, item.duty_id)
    if paused:
        _resume(ctx, item, since=request.at, at=at)
    request.status = "approved" if approve else "rejected"
    request.answer, request.decided_by, request.decided_at = answer.strip(), actor, at
    session.add(request)
    if approve:
        _grant(session, ctx, request, item, answer=answer, actor=actor, at=at, role=role)
    audit(
        session,
        at=at,
        actor=actor,
        action="request_approved" if approve else "request_rejected",
        occurrence_id=item.id,
        request=request.id,
        kind=request.kind,
        answer=answer.strip(),
    )
    _tell_decision(session, ctx, item, request, at=at)
    session.commit()
    return request


def open_requests(session: Session, *, district: str | None = None) -> list[tuple[UnitRequest, Occurrence, Unit]]:
    """The approval queue: open requests, oldest first, with their items and units (a district sees its own)."""
    query = (
        select(UnitRequest, Occurrence, Unit)
        .join(Occurrence, col(Occurrence.id) == col(UnitRequest.occurrence_id))
        .join(Unit, col(Unit.id) == col(UnitRequest.unit_id))
        .where(col(UnitRequest.status) == "open")
        .order_by(col(UnitRequest.at), col(UnitRequest.id))
    )
    if district is not None:
        query = query.where((col(Unit.district) == district) | (col(Unit.id) == district))
    return [(r, o, u) for r, o, u in session.execute(query).tuples()]


def waiting_request(session: Session, occurrence_id: int) -> UnitRequest | None:
    query = select(UnitRequest).where(
        col(UnitRequest.occurrence_id) == occurrence_id, col(UnitRequest.status) == "open"
    )
    return session.execute(query).scalars().first()


def undispatched(session: Session) -> list[Case]:
    """The dispatcher's queue: open cases with no unit working on them (unresolved places, approved 退回)."""
    query = (
        select(Case)
        .where(col(Case.occurrence_id).is_(None), col(Case.closed_at).is_(None))
        .order_by(col(Case.found_at), col(Case.id))
    )
    return list(session.execute(query).scalars())


def case_status(case: Case, item: Occurrence | None, at: datetime) -> str:
    """待派遣, 处置中, 已超时, 待核查 or 已结案: derived, never stored."""
    if case.closed_at is not None and case.closed_at <= at:
        return "closed"
    if item is None or item.status_at(at) == "waived":
        return "undispatched"
    status = item.status_at(at)
    if status in ("done", "late_done"):
        return "to_verify"
    return "overdue" if status == "overdue" else "handling"


CASE_STATES = {
    "undispatched": "待派遣",
    "handling": "处置中",
    "overdue": "已超时",
    "to_verify": "待核查",
    "closed": "已结案",
}


# ---------------------------------------------------------------- inside


def by_external_id(session: Session, reporter: str, external_id: str) -> Case | None:
    """The case this reporter filed before under its own id (idempotent intake)."""
    query = select(Case).where(col(Case.reporter) == reporter[:64], col(Case.external_id) == external_id)
    return session.execute(query).scalars().first()


def _check_text(new: NewCase) -> None:
    if not new.place.strip() or len(new.place) > MAX_PLACE:
        raise CaseError(f"请填写问题地点（{MAX_PLACE}字以内）。")
    if len(new.note) > MAX_NOTE:
        raise CaseError(f"问题描述最多 {MAX_NOTE} 字。")
    if new.external_id is not None and not 1 <= len(new.external_id) <= 64:
        raise CaseError("外部案件编号须为 1 至 64 个字符。")
    if (new.latitude is None) != (new.longitude is None):
        raise CaseError("定位须同时给出纬度和经度。")
    if (
        new.latitude is not None
        and new.longitude is not None
        and not (-90 <= new.latitude <= 90 and -180 <= new.longitude <= 180)
    ):
        raise CaseError("定位超出范围：纬度 -90 至 90，经度 -180 至 180。")


def _unit_for(program: Program, category: CategorySpec, new: NewCase) -> str | None:
    if new.unit_id:
        if new.unit_id not in candidates(program, category):
            raise CaseError(f"单位 {new.unit_id} 不负责“{category.title}”类案件。")
        return new.unit_id
    return resolve_unit(program, category, new.place)


def _district_of(program: Program, unit_id: str) -> str:
    unit = program.units[unit_id]
    return unit.district or unit.id


def _queued(session: Session, occurrence_id: int, stage: str) -> list[int]:
    query = select(col(Delivery.id)).where(col(Delivery.occurrence_id) == occurrence_id, col(Delivery.stage) == stage)
    return [row for row in session.execute(query).scalars() if row is not None]


def _open_case(session: Session, case_id: int) -> Case:
    case = session.get(Case, case_id, populate_existing=True)
    if case is None:
        raise CaseError(f"没有编号为 {case_id} 的案件。", status=404)
    if case.closed_at is not None:
        raise CaseError("该案件已结案。", status=409)
    return case


def _is_open(item: Occurrence, at: datetime) -> bool:
    return item.status_at(at) in ("scheduled", "due", "overdue")


def _withdraw(session: Session, item: Occurrence, *, reason: str, actor: str, at: datetime) -> None:
    """Close a unit's item that was never the unit's (退回, 改派): waived, so it counts neither for nor against it."""
    item.waived_at = at
    item.next_remind_at = item.next_escalate_at = None
    session.add(item)
    audit(session, at=at, actor=actor, action="case_withdrawn", occurrence_id=item.id, reason=reason)


def _last_report(session: Session, occurrence_id: int) -> Confirmation | None:
    query = (
        select(Confirmation)
        .where(col(Confirmation.occurrence_id) == occurrence_id, col(Confirmation.verdict) == "")
        .order_by(col(Confirmation.id).desc())
    )
    return session.execute(query).scalars().first()


def _need_reason(reason: str) -> None:
    if not reason.strip():
        raise CaseError("请填写理由。")
    if len(reason) > MAX_REASON:
        raise CaseError(f"理由最多 {MAX_REASON} 字。")


def _request_by_form(session: Session, occurrence_id: int, form_id: str) -> UnitRequest | None:
    query = select(UnitRequest).where(
        col(UnitRequest.occurrence_id) == occurrence_id, col(UnitRequest.form_id) == form_id[:64]
    )
    return session.execute(query).scalars().first()


def _check_asked(session: Session, ctx: Context, item: Occurrence, asked: Asked, at: datetime) -> None:
    if asked.kind not in REQUEST_KINDS:
        raise CaseError("申请类型只能是退回、延期申请或挂账申请。")
    if not _is_open(item, at):
        raise CaseError("该事项已办结或已关闭，无需申请。", status=409)
    if asked.kind == "return" and item.case_id is None:
        raise CaseError("只有派遣给本单位的案件可以退回；计划任务请申请延期或挂账。")
    _need_reason(asked.reason)
    if waiting_request(session, item.id or 0) is not None:
        raise CaseError("该事项已有一项申请待审批，请等待审批结果。", status=409)
    if asked.kind == "extend" and (asked.due_at is None or asked.due_at <= max(at, item.due_at)):
        raise CaseError("延期申请须填写晚于原截止时间的新日期。")
    today = at.astimezone(ctx.zone).date()
    if asked.kind == "park" and (asked.review_on is None or asked.review_on <= today):
        raise CaseError("挂账申请须填写今天以后的复核日期。")


def pauses_while_requested(program: Program, duty_id: str) -> bool:
    """Whether an item's category stops its clock while a unit's request waits."""
    duty = program.duties.get(duty_id)
    return duty is not None and duty.category is not None and duty.category.pause_while_requested


def _resume(ctx: Context, item: Occurrence, *, since: datetime, at: datetime) -> None:
    """The time a paused request waited is given back: the deadline moves by it, and the ladder waits for it."""
    waited = at - since
    item.due_at += waited
    item.next_escalate_at = item.due_at if item.level == 0 else max(at, item.due_at)


def _grant(
    session: Session,
    ctx: Context,
    request: UnitRequest,
    item: Occurrence,
    *,
    answer: str,
    actor: str,
    at: datetime,
    role: str,
) -> None:
    reason = f"同意{REQUEST_KINDS[request.kind]}：{answer.strip()}"
    try:
        if request.kind == "extend" and request.due_at is not None:
            due = max(request.due_at, at + EXTENSION_FLOOR)
            actions.extend(session, occurrence_id=item.id or 0, due=due, reason=reason, actor=actor, at=at, role=role)
        elif request.kind == "park" and request.review_on is not None:
            actions.park(
                session,
                occurrence_id=item.id or 0,
                review_on=request.review_on,
                reason=reason,
                actor=actor,
                at=at,
                zone=ctx.zone,
                role=role,
            )
        elif request.kind == "return":
            _return_case(session, item, reason=reason, actor=actor, at=at)
    except actions.ActionError as error:
        session.rollback()
        raise CaseError(str(error), status=409) from None


def _return_case(session: Session, item: Occurrence, *, reason: str, actor: str, at: datetime) -> None:
    case = session.get(Case, item.case_id) if item.case_id else None
    _withdraw(session, item, reason=reason, actor=actor, at=at)
    if case is not None and case.occurrence_id == item.id:
        case.occurrence_id = None  # back in the dispatcher's queue
        session.add(case)
        audit(session, at=at, actor=actor, action="case_returned", occurrence_id=item.id, case=case.id)


def _tell_leads(session: Session, ctx: Context, item: Occurrence, request: UnitRequest, *, at: datetime) -> None:
    """The supervising office learns a request waits: a 30-minute case cannot wait for someone to look."""
    duty = ctx.program.duties.get(item.duty_id)
    if duty is None:
        return
    leads = sorted({u for selector in duty.lead for u in ctx.program.resolve_near(selector, item.unit_id)})
    title, body = message(ctx, "request_made", item, duty, at=at, request=request, kinds=REQUEST_KINDS)
    contacts = recipients_of(session, leads, roles=("staff",))
    queue(session, ctx, item, f"request:{request.id}", contacts, title, body, at=at)


def _tell_decision(session: Session, ctx: Context, item: Occurrence, request: UnitRequest, *, at: datetime) -> None:
    duty = ctx.program.duties.get(item.duty_id)
    if duty is None:
        return
    session.flush()
    title, body = message(ctx, "request_decided", item, duty, at=at, request=request, kinds=REQUEST_KINDS)
    contacts = recipients_of(session, [item.unit_id], roles=("staff", "leader"))
    queue(session, ctx, item, f"request:{request.id}:{request.status}", contacts, title, body, at=at)


# ---------------------------------------------------------------- supervision


@dataclass
class Supervision:
    climbed: int = 0
    notices: int = 0
    sent: int = 0


def supervise(session: Session, ctx: Context, *, at: datetime) -> Supervision:
    """The minute-level ladder of cases: each case item whose moment has come climbs, its notices are queued
    grouped, and what is due is sent. Idle, it is three indexed reads (docs/benchmarks.md, bench/supervise.py)."""
    report = Supervision()
    items = Occurrence.__table__.c  # type: ignore[attr-defined]
    for late in open_batches(session, "next_escalate_at", at, where=items.case_id.is_not(None)):
        report.climbed += ladder.climb_batch(session, ctx, late, at=at)
    report.notices = queue_notices(session, ctx, at=at)
    report.sent = outbox.dispatch(session, ctx.send, at=at, stop=lambda: False).sent
    return report
