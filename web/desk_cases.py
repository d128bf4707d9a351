"""The managers' case desk: the approval queue of the units' requests (退回 / 延期申请 / 挂账申请), the list of cases
(待派遣 first), one case with its dispatches, timeline and before/after photos, and the 派遣/改派 and 核查 forms.

A city manager sees every case; a district manager the cases dispatched to its units at some point, or filed by an
account of its district; the inspector who filed a case sees it and may 核查 it. Anything else answers 404, as if
it did not exist. Every decision is the domain's (flows/cases.py), which audits it and queues the unit's message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from calendars.loader import CalendarError
from flows import cases
from flows.cases import CASE_STATES, CaseError
from store.models import REQUEST_KINDS, REQUEST_STATES, AuditEvent, Case, Occurrence, Unit, UnitRequest, User
from web import auth, case_views
from web.auth import Scope
from web.common import NowDep, RowId, SessionDep, account_names, context, problem_page, program
from web.desk import ACTION_LABELS, DETAIL_LABELS, AnyUserDep, UserDep, check_csrf, desk_page, timeline

router = APIRouter(prefix="/desk")
Text = Annotated[str, Form(max_length=1000)]
Short = Annotated[str, Form(max_length=200)]
Csrf = Annotated[str, Form(max_length=64)]

STATE_ORDER = ("undispatched", "overdue", "to_verify", "handling", "closed")
CLOSED_SHOWN = 200  # the list shows every open case and the latest closed ones
CASE_ACTIONS = ACTION_LABELS | {
    "case_filed": "受理",
    "case_dispatched": "派遣",
    "case_withdrawn": "撤回派遣",
    "case_returned": "退回待派遣",
    "case_closed": "结案",
    "request_made": "单位申请",
    "request_approved": "同意申请",
    "request_rejected": "不同意申请",
}
CASE_DETAILS = DETAIL_LABELS | {"unit": "单位", "kind": "类型", "answer": "答复", "request": "申请编号"}


def _not_found() -> HTMLResponse:
    return problem_page(404, "案件不存在", "找不到该案件，或不在您的管辖范围内。")


# ---------------------------------------------------------------- who may see what


def _district_reporters(session: Session, district: str) -> list[str]:
    """The reporters (``user:NAME``) of the accounts of a district: their cases are the district's too."""
    query = select(col(User.username)).where(col(User.district) == district)
    return [f"user:{name}" for name in session.execute(query).scalars()]


def _in_district(session: Session, district: str) -> Any:
    """A condition on Case: dispatched to a unit of the district at some point, or filed by one of its accounts."""
    item = aliased(Occurrence)
    units = select(col(Unit.id)).where((col(Unit.district) == district) | (col(Unit.id) == district))
    dispatched = exists().where(col(item.case_id) == col(Case.id), col(item.unit_id).in_(units))
    return or_(dispatched, col(Case.reporter).in_(_district_reporters(session, district)))


def _may_see(session: Session, user: User, case: Case) -> bool:
    scope = auth.scope_of(user)
    if case.reporter == f"user:{user.username}" or scope.role == "city":
        return True
    if not scope.manages or not scope.district:
        return False
    query = select(col(Case.id)).where(col(Case.id) == case.id, _in_district(session, scope.district))
    return session.execute(query).first() is not None


def _may_verify(session: Session, user: User, case: Case) -> bool:
    """核查: a manager who sees the case, or the inspector who filed it."""
    return case.reporter == f"user:{user.username}" or (
        user.role in auth.MANAGER_ROLES and _may_see(session, user, case)
    )


def _units_for(session: Session, scope: Scope, case: Case) -> list[Unit]:
    """The units the case may be dispatched to by this manager: the category's, within the manager's scope."""
    try:
        category = program().categories.get(case.category_id)
        allowed = cases.candidates(program(), category) if category else []
    except CalendarError:
        return []
    rows = session.execute(select(Unit).where(col(Unit.id).in_(allowed)).order_by(col(Unit.id))).scalars()
    return [unit for unit in rows if scope.allows(unit)]


# ---------------------------------------------------------------- the approval queue


@router.get("/requests", response_class=HTMLResponse)
def request_queue(request: Request, session: SessionDep, at: NowDep, user: UserDep) -> HTMLResponse:
    """The units' open requests, oldest first; a district manager sees its district's."""
    done = _decided_banner(session, request.query_params.get("done", ""))
    return _queue_page(request, session, user, at, done=done)


def _queue_page(
    request: Request,
    session: Session,
    user: User,
    at: datetime,
    *,
    status_code: int = 200,
    error: str = "",
    done: str = "",
    entered: dict[str, str] | None = None,
) -> HTMLResponse:
    scope = auth.scope_of(user)
    rows = cases.open_requests(session, district=scope.district_filter)
    reassign_to = {}
    for asked, item, _ in rows:
        case = session.get(Case, item.case_id) if asked.kind == "return" and item.case_id else None
        if case is not None:
            reassign_to[asked.id] = [u for u in _units_for(session, scope, case) if u.id != item.unit_id]
    return desk_page(
        request,
        user,
        "requests.html",
        status_code,
        at=at,
        rows=rows,
        waited={asked.id: case_views.span_text(at - asked.at) for asked, _, _ in rows},
        reassign_to=reassign_to,
        kinds=REQUEST_KINDS,
        error=error,
        done=done,
        entered=entered or {},
    )


def _decided_banner(session: Session, done: str) -> str:
    """What the manager just decided (?done=ID), read back from the store so the banner says what happened."""
    asked = session.get(UnitRequest, int(done)) if done.isdigit() and len(done) < 18 else None
    if asked is None or asked.status == "open":
        return ""
    unit = session.get(Unit, asked.unit_id)
    text = f"{REQUEST_STATES[asked.status]}{unit.name if unit else asked.unit_id}的{REQUEST_KINDS[asked.kind]}"
    item = session.get(Occurrence, asked.occurrence_id)
    case = session.get(Case, item.case_id) if item is not None and item.case_id else None
    current = session.get(Occurrence, case.occurrence_id) if case is not None and case.occurrence_id else None
    if asked.kind == "return" and asked.status == "approved":
        moved = current is not None and current.id != asked.occurrence_id
        text += f"，案件已改派给{_unit_name(session, current.unit_id)}" if moved and current else "，案件已回到待派遣"
    return text + "；结果已通知单位。"


def _unit_name(session: Session, unit_id: str) -> str:
    unit = session.get(Unit, unit_id)
    return unit.name if unit else unit_id


@router.post("/requests/{request_id:int}/{decision}", response_class=HTMLResponse)
def decide_request(
    request: Request,
    request_id: RowId,
    decision: str,
    session: SessionDep,
    at: NowDep,
    user: UserDep,
    csrf: Csrf = "",
    answer: Text = "",
    unit: Short = "",
) -> Response:
    """Approve or reject with an answer; approving a 退回 may name the unit to reassign the case to at once."""
    refused = check_csrf(request, csrf)
    if refused:
        return refused
    asked = session.get(UnitRequest, request_id)
    owner = session.get(Unit, asked.unit_id) if asked else None
    if asked is None or owner is None or not auth.scope_of(user).allows(owner):
        return problem_page(404, "申请不存在", "找不到该申请，或不在您的管辖范围内。")
    if decision not in ("approve", "reject"):
        return problem_page(404, "没有这个操作", f"不支持的操作：{decision}")
    approve = decision == "approve"
    try:
        case = _reassignment(session, user, asked, unit) if approve and unit else None
        ctx, actor = context(session), f"user:{user.username}"
        cases.decide(
            session, ctx, request_id=request_id, approve=approve, answer=answer, actor=actor, at=at, role=user.role
        )
        if case is not None:  # the approved 退回's case goes to its new unit now, its first message sent at once
            cases.reassign(session, ctx, case_id=case.id or 0, unit_id=unit, reason=answer, actor=actor, at=at)
    except CaseError as refusal:
        session.rollback()
        entered = {"request": str(request_id), "answer": answer, "unit": unit}
        return _queue_page(request, session, user, at, status_code=400, error=str(refusal), entered=entered)
    return RedirectResponse(f"/desk/requests?done={request_id}", status_code=303)


def _reassignment(session: Session, user: User, asked: UnitRequest, unit_id: str) -> Case:
    """The case an approved 退回 is reassigned with, checked before anything is decided: nothing half-done."""
    item = session.get(Occurrence, asked.occurrence_id)
    case = session.get(Case, item.case_id) if asked.kind == "return" and item and item.case_id else None
    if case is None:
        raise CaseError("只有同意退回时才能同时改派。")
    if unit_id == asked.unit_id:
        raise CaseError("不能改派给退回该案件的单位。")
    if unit_id not in {u.id for u in _units_for(session, auth.scope_of(user), case)}:
        raise CaseError("该单位不负责此类案件，或不在您的管辖范围内。")
    return case


# ---------------------------------------------------------------- the list


@dataclass
class Row:
    case: Case
    item: Occurrence | None
    state: str
    unit: str
    left: str


@router.get("/cases", response_class=HTMLResponse)
def case_list(
    request: Request,
    session: SessionDep,
    at: NowDep,
    user: UserDep,
    status: str = "",
    category: str = "",
    district: str = "",
) -> HTMLResponse:
    """Open cases (待派遣 first, then 已超时, 待核查, 处置中) and the latest closed ones, filtered."""
    scope = auth.scope_of(user)
    chosen = {"status": status if status in CASE_STATES else "", "category": category, "district": district}
    rows, closed_total = _rows(session, scope, at, category=category, district=scope.district_filter or district)
    counts = {state: sum(1 for row in rows if row.state == state) for state in STATE_ORDER}
    # Only the latest closed cases are listed; the count says how many there are (a manager must not read 200).
    counts["closed"] += closed_total - sum(1 for row in rows if row.case.closed_at is not None)
    shown = [row for row in rows if not chosen["status"] or row.state == chosen["status"]]
    try:
        categories = [(c.id, c.title) for c in program().categories.values()]
    except CalendarError:
        categories = []
    districts = auth.districts(session) if scope.role == "city" else []
    return desk_page(
        request,
        user,
        "cases.html",
        at=at,
        rows=shown,
        counts=counts,
        total=sum(counts.values()),
        closed_shown=CLOSED_SHOWN,
        states=CASE_STATES,
        order=STATE_ORDER,
        chosen=chosen,
        categories=categories,
        category_titles=dict(categories),
        districts=[(d, _unit_name(session, d)) for d in districts],
        query_for=lambda **change: "?" + urlencode({k: v for k, v in (chosen | change).items() if v}),
    )


def _rows(session: Session, scope: Scope, at: datetime, *, category: str, district: str) -> tuple[list[Row], int]:
    """Every open case and the latest closed ones, in the desk's order; and how many closed cases there are."""
    query = select(Case, Occurrence).outerjoin(Occurrence, col(Occurrence.id) == col(Case.occurrence_id))
    if category:
        query = query.where(col(Case.category_id) == category)
    if district:
        query = query.where(_in_district(session, district))
    open_ = query.where(col(Case.closed_at).is_(None))
    closed = query.where(col(Case.closed_at).is_not(None)).order_by(col(Case.closed_at).desc()).limit(CLOSED_SHOWN)
    found = [*session.execute(open_).tuples(), *session.execute(closed).tuples()]
    closed_total = session.execute(
        select(func.count()).select_from(query.where(col(Case.closed_at).is_not(None)).subquery())
    ).scalar_one()
    names = {u.id: u.name for u in session.execute(select(Unit)).scalars()}
    rows = []
    for case, item in found:
        state = cases.case_status(case, item, at)
        unit = names.get(item.unit_id, item.unit_id) if item is not None and state != "undispatched" else ""
        rows.append(Row(case, item, state, unit, case_views.time_left(item, at) if item else ""))
    rows.sort(key=lambda row: (STATE_ORDER.index(row.state), row.case.found_at, row.case.id or 0))
    return rows, closed_total


# ---------------------------------------------------------------- one case


@router.get("/cases/{case_id:int}", response_class=HTMLResponse)
def case_page(request: Request, case_id: RowId, session: SessionDep, at: NowDep, user: AnyUserDep) -> HTMLResponse:
    return _case_page(request, session, user, case_id, at)


def _case_page(
    request: Request,
    session: Session,
    user: User,
    case_id: int,
    at: datetime,
    *,
    status_code: int = 200,
    error: str = "",
    entered: dict[str, str] | None = None,
) -> HTMLResponse:
    case = session.get(Case, case_id, populate_existing=True)
    if case is None or not _may_see(session, user, case):
        return _not_found()
    items = case_views.items_of(session, case_id)
    current = next((item for item in items if item.id == case.occurrence_id), None)
    reports = case_views.reports_of(session, [item.id or 0 for item in items])
    state = cases.case_status(case, current, at)
    manager = user.role in auth.MANAGER_ROLES
    try:
        category = program().categories.get(case.category_id)
    except CalendarError:
        category = None
    return desk_page(
        request,
        user,
        "case.html",
        status_code,
        at=at,
        case=case,
        category=category,
        current=current,
        state=state,
        states=CASE_STATES,
        time_left=case_views.time_left(current, at) if current else "",
        items=[(item, item.status_at(at), _unit_name(session, item.unit_id)) for item in items],
        before=case_views.before_shots(case),
        after=case_views.after_shots(case, reports, items),
        events=_events(session, items),
        action_labels=CASE_ACTIONS,
        detail_labels=CASE_DETAILS,
        unit_names={u.id: u.name for u in session.execute(select(Unit)).scalars()} | account_names(session),
        units=_units_for(session, auth.scope_of(user), case) if manager and case.closed_at is None else [],
        may_assign=manager and case.closed_at is None,
        may_verify=state == "to_verify" and _may_verify(session, user, case),
        manager=manager,
        error=error,
        entered=entered or {},
    )


def _events(session: Session, items: list[Occurrence]) -> list[AuditEvent]:
    """The audit events of every dispatch of the case, in order."""
    events = [event for item in items for event in timeline(session, item.id or 0)]
    return sorted(events, key=lambda event: (event.at, event.id or 0))


@router.post("/cases/{case_id:int}/assign", response_class=HTMLResponse)
def assign(
    request: Request,
    case_id: RowId,
    session: SessionDep,
    at: NowDep,
    user: UserDep,
    csrf: Csrf = "",
    unit: Short = "",
    reason: Text = "",
) -> Response:
    """派遣 or 改派 to a unit of the category within the manager's scope; the unit's first message is sent now."""
    refused = check_csrf(request, csrf)
    if refused:
        return refused
    case = session.get(Case, case_id)
    if case is None or not _may_see(session, user, case):
        return _not_found()
    try:
        if unit not in {u.id for u in _units_for(session, auth.scope_of(user), case)}:
            raise CaseError("请选择负责此类案件、且在您管辖范围内的单位。")
        actor = f"user:{user.username}"
        cases.reassign(session, context(session), case_id=case_id, unit_id=unit, reason=reason, actor=actor, at=at)
    except CaseError as refusal:
        session.rollback()
        entered = {"form": "assign", "unit": unit, "reason": reason}
        return _case_page(request, session, user, case_id, at, status_code=400, error=str(refusal), entered=entered)
    return RedirectResponse(f"/desk/cases/{case_id}#dispatches", status_code=303)


@router.post("/cases/{case_id:int}/verify", response_class=HTMLResponse)
def verify(
    request: Request,
    case_id: RowId,
    session: SessionDep,
    at: NowDep,
    user: AnyUserDep,
    csrf: Csrf = "",
    passed: Annotated[str, Form(max_length=8)] = "",
    note: Text = "",
) -> Response:
    """核查: 通过 closes the case (结案), 不通过 reopens its item at its level with the note told to the unit."""
    refused = check_csrf(request, csrf)
    if refused:
        return refused
    case = session.get(Case, case_id)
    if case is None or not _may_see(session, user, case):
        return _not_found()
    try:
        if not _may_verify(session, user, case):
            raise CaseError("只有管理人员或上报该案件的巡查员可以核查。", status=403)
        if passed not in ("1", "0"):
            raise CaseError("请选择核查结果：通过或不通过。")
        actor = f"user:{user.username}"
        cases.verify(
            session,
            context(session),
            case_id=case_id,
            passed=passed == "1",
            note=note,
            actor=actor,
            at=at,
            role=user.role,
        )
    except CaseError as refusal:
        session.rollback()
        entered = {"form": "verify", "passed": passed, "note": note}
        status = refusal.status if refusal.status in (400, 403, 409) else 400
        return _case_page(request, session, user, case_id, at, status_code=status, error=str(refusal), entered=entered)
    return RedirectResponse(f"/desk/cases/{case_id}#timeline", status_code=303)


@router.get("/cases/{case_id:int}/photos/{name}")
def case_photo(
    case_id: RowId, name: str, session: SessionDep, at: NowDep, user: AnyUserDep, thumb: bool = False
) -> Response:
    """A photo of the case as found or of a unit's 处置 on it, to those who may see the case; any other name 404."""
    case = session.get(Case, case_id)
    if case is None or not _may_see(session, user, case):
        return _not_found()
    reports = case_views.reports_of(session, [item.id or 0 for item in case_views.items_of(session, case_id)])
    return case_views.serve_photo(name, case_views.case_photo_names(case, reports), thumb=thumb)
