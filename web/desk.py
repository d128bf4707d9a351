"""The manager desk: login, the filtered list, one item with its timeline, and the actions on it.

Every page needs a login; every form carries a CSRF token; every action writes an audit event (flows.actions).
A district manager sees only its district's items, and no unannounced check before its day: an item outside the
scope (``web.common.scoped_item``) answers 404, as if it did not exist, on every page and action that takes its id.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from typing import IO, Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy import func, select
from sqlmodel import Session, col
from starlette.background import BackgroundTask

from flows import actions, decisions, reports, spot_checks
from flows.actions import ActionError
from flows.common import period_label
from flows.notices import message
from notify import outbox
from store.db import secret_key
from store.models import (
    DELIVERY_STATES,
    LEVEL_NAMES,
    STATUS_LABELS,
    STATUSES,
    AuditEvent,
    Confirmation,
    Delivery,
    Duty,
    Escalation,
    Occurrence,
    Talk,
    Unit,
    User,
)
from store.queries import (
    SORTS,
    count_deliveries,
    count_occurrences,
    day_bound,
    delivery_json,
    find_deliveries,
    occurrences_json,
    status_column,
    stream_occurrences,
)
from store.settings import get_settings
from web import auth, proxies
from web.auth import Scope
from web.common import (
    XLSX,
    NowDep,
    RowId,
    SessionDep,
    account_names,
    context,
    download,
    page,
    problem_page,
    program,
    scope_filters,
    scoped_item,
)
from web.photos import evidence_media_type, evidence_path

PAGE_SIZE = 100
ACTION_LABELS = {
    "extended": "延期",
    "parked": "挂账",
    "reopened": "返工",
    "waived": "免除",
    "talk_recorded": "记录约谈",
    "verified_pass": "核查通过",
    "verified_fail": "核查不通过",
    "confirmed": "单位确认完成",
    "recorded": "单位报送",
    "escalated": "升级",
    "reminder_queued": "发送提醒",
    "delivery_resent": "重发通知",
    "links_revoked": "作废链接",
    "links_reissued": "重新下发链接",
    "escalation_pending": "待审批升级",
    "escalation_rejected": "不予升级",
    "escalation_withdrawn": "撤回待审批升级",
    "notice_queued": "发出升级通知",
    "acknowledged": "单位确认收到",
    "notice_repeated": "重发升级通知",
    "finding_recorded": "检查发现问题",
    "reinspected_pass": "复检通过",
    "reinspected_fail": "复检不通过",
}

DETAIL_LABELS = {
    "reason": "理由",
    "previous_due": "原截止时间",
    "review_on": "复核日期",
    "level": "级别",
    "held_on": "约谈日期",
    "note": "意见",
    "stage": "环节",
    "recipients": "接收人数",
    "late": "逾期",
    "amount": "数量",
    "evidence": "照片数",
    "deadline": "期限",
    "name": "名称",
    "digest": "合并发送",
    "talk": "约谈记录",
    "confirmation": "确认记录",
    "previous": "原状态",
    "delivery": "发件记录",
    "document": "文号",
    "repeat": "第几次重发",
    "finding": "问题编号",
    "site": "检查对象",
    "version": "链接版本",
    "old_due": "原截止时间",
    "new_due": "新截止时间",
    "campaign": "检查编号",
    "revoked": "已作废",
}

router = APIRouter(prefix="/desk")


class LoginRequired(Exception):
    """No valid session: the desk answers with a redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def signed_in(request: Request, session: SessionDep) -> User:
    """Any signed-in account: a manager, or an inspector on the case pages (web/cases.py)."""
    user = auth.user_for_session(session, secret_key(session), request.cookies.get(auth.SESSION_COOKIE))
    if user is None:
        raise LoginRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    return user


def desk_user(request: Request, session: SessionDep) -> User:
    """A manager: an inspector's or an intake account's session opens the case form only."""
    user = signed_in(request, session)
    if user.role not in auth.MANAGER_ROLES:
        raise NotAManager(user.role)
    return user


class NotAManager(Exception):
    """A signed-in account that is not a manager's, on a manager's page: answered with a 403 page (web/app.py)."""

    def __init__(self, role: str) -> None:
        self.role = role


UserDep = Annotated[User, Depends(desk_user)]
AnyUserDep = Annotated[User, Depends(signed_in)]


def desk_page(request: Request, user: User, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A desk page with the user, and a CSRF token in a cookie and in every form on it."""
    token = request.cookies.get(auth.CSRF_COOKIE) or auth.new_csrf_token()
    district = program().units.get(user.district or "")
    response = page(
        name, status_code, user=user, district_name=district.name if district else "", csrf=token, **context
    )
    _set_csrf_cookie(request, response, token)
    return response


def _set_csrf_cookie(request: Request, response: Response, token: str) -> None:
    secure = proxies.is_https(request)  # like the session cookie: never sent in clear once the desk is on HTTPS
    response.set_cookie(auth.CSRF_COOKIE, token, httponly=True, samesite="strict", path="/desk", secure=secure)


def check_csrf(request: Request, csrf: str | None) -> HTMLResponse | None:
    if auth.csrf_ok(request.cookies.get(auth.CSRF_COOKIE), csrf):
        return None
    return problem_page(403, "请求已失效", "表单已过期或来自其他网站。请返回上一页刷新后重新提交。")


# ---------------------------------------------------------------- login


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/desk/items") -> HTMLResponse:
    token = request.cookies.get(auth.CSRF_COOKIE) or auth.new_csrf_token()
    response = page("login.html", csrf=token, next=_safe_next(next), username="", error="")
    _set_csrf_cookie(request, response, token)
    return response


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    session: SessionDep,
    at: NowDep,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    csrf: Annotated[str, Form(max_length=64)] = "",
    next: Annotated[str, Form(max_length=500)] = "/desk/items",
) -> Response:
    """Throttled (web.throttle): after 5 failures for the account or the address, a 429 with the time to wait."""
    refused = check_csrf(request, csrf)
    if refused:
        return refused
    address = proxies.client_address(request)
    user, wait = auth.log_in(session, username=username, password=password, address=address, at=at)
    if user is None:
        return _login_refused(csrf=csrf, next=next, username=username, wait=wait)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        auth.SESSION_COOKIE,
        auth.session_cookie(secret_key(session), user),
        max_age=auth.SESSION_SECONDS,
        httponly=True,
        samesite="lax",
        secure=proxies.is_https(request),
    )
    return response


def _login_refused(*, csrf: str, next: str, username: str, wait: timedelta | None) -> Response:
    if wait is None:
        error = "用户名或密码不正确。"
        return page("login.html", 401, csrf=csrf, next=_safe_next(next), username=username, error=error)
    error = f"登录失败次数过多，请 {auth.wait_text(wait)}后再试。"
    response = page("login.html", 429, csrf=csrf, next=_safe_next(next), username=username, error=error)
    response.headers["Retry-After"] = str(max(1, math.ceil(wait.total_seconds())))
    return response


@router.post("/logout")
def logout(request: Request, session: SessionDep, csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    """Ends every session of this user, on every device (auth.end_sessions), not only this browser's cookie."""
    refused = check_csrf(request, csrf)
    if refused:
        return refused
    user = auth.user_for_session(session, secret_key(session), request.cookies.get(auth.SESSION_COOKIE))
    if user is not None:
        auth.end_sessions(session, user)
    response = RedirectResponse("/desk/login", status_code=303)
    response.delete_cookie(auth.SESSION_COOKIE, httponly=True, samesite="lax", secure=proxies.is_https(request))
    return response


def _safe_next(target: str) -> str:
    """Only a path on this desk: never an open redirect to another site."""
    return target if target.startswith("/desk/") and not target.startswith("//") else "/desk/items"


# ---------------------------------------------------------------- the list


@router.get("", include_in_schema=False)
def desk_home() -> RedirectResponse:
    return RedirectResponse("/desk/")  # the front page is the leaders' dashboard (web/dashboard.py)


@router.get("/overdue", include_in_schema=False)
def desk_overdue() -> RedirectResponse:
    return RedirectResponse("/desk/items?status=overdue")


def list_choices(
    family: str = "",
    unit: str = "",
    district: str = "",
    status: str = "",
    level: str = "",
    start: Annotated[str, Query(alias="from")] = "",
    end: Annotated[str, Query(alias="to")] = "",
    q: Annotated[str, Query(max_length=100)] = "",
    sort: Annotated[str, Query(max_length=10)] = "",
) -> dict[str, str]:
    """The list's filters and order as the manager chose them (and as the URL keeps them); an unknown sort is none."""
    chosen = {"family": family, "unit": unit, "district": district, "status": status, "level": level}
    return chosen | {"from": start, "to": end, "q": q, "sort": sort if sort.lstrip("-") in SORTS else ""}


ChosenDep = Annotated[dict[str, str], Depends(list_choices)]


@router.get("/items", response_class=HTMLResponse)
def items(
    request: Request,
    session: SessionDep,
    at: NowDep,
    user: UserDep,
    chosen: ChosenDep,
    page_number: Annotated[int, Query(alias="page", ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    """Overdue and escalated items first (or sorted by a column), with counts per status and level."""
    scope = auth.scope_of(user)
    filters, problem = _filters(scope, chosen)
    rows = occurrences_json(
        session,
        at=at,
        zone=get_settings().zone,
        overdue_first=True,
        limit=PAGE_SIZE,
        offset=(page_number - 1) * PAGE_SIZE,
        sort=chosen["sort"],
        **filters,
    )
    by_status = count_occurrences(session, at=at, by="status", **{k: v for k, v in filters.items() if k != "status"})
    by_level = count_occurrences(session, at=at, by="level", **filters)
    total = by_status.get(filters["status"], 0) if filters.get("status") else sum(by_status.values())
    return desk_page(
        request,
        user,
        "items.html",
        at=at,
        rows=rows,
        chosen=chosen,
        problem=problem,
        by_status=by_status,
        by_level=by_level,
        total=total,
        page_number=page_number,
        pages=max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1),
        query_for=lambda **change: "?" + urlencode({k: v for k, v in (chosen | change).items() if v}),
        choices=_choices(session, scope),
        statuses=STATUSES,
    )


EXPORT_COLUMNS = ("编号", "任务", "责任单位", "截止", "状态", "级别", "依据", "完成时间")
EXPORT_WIDTHS = (10, 48, 36, 18, 10, 8, 24, 18)
EXPORT_CHUNK = 2000  # rows fetched from the store at a time


@router.get("/items.xlsx")
def export_items(session: SessionDep, at: NowDep, user: UserDep, chosen: ChosenDep) -> Response:
    """The list as the manager filtered and sorted it, as XLSX (every cell inert), however long: rows stream from
    the store in chunks into a write-only workbook on disk, so a million rows cost the memory of a few thousand."""
    filters, problem = _filters(auth.scope_of(user), chosen)
    if problem:
        return problem_page(400, "无法导出", problem)
    zone = get_settings().zone
    local = at.astimezone(zone)
    sheet = reports.Sheet(
        "事项清单",
        list(EXPORT_COLUMNS),
        export_rows(session, at=at, zone=zone, sort=chosen["sort"], **filters),
        title=f"事项清单（截至 {local:%Y-%m-%d %H:%M}）",
        widths=EXPORT_WIDTHS,
    )
    return download_file(lambda out: reports.write_xlsx(out, [sheet]), f"事项清单-{local:%Y%m%d%H%M}.xlsx")


def export_rows(session: Session, *, at: datetime, zone: Any, sort: str, **filters: Any) -> Iterator[list[Any]]:
    """The export's rows in the list's order (overdue first, or the chosen column), one chunk in memory at a time."""
    items, duties, units = Occurrence.__table__.c, Duty.__table__.c, Unit.__table__.c  # type: ignore[attr-defined]
    columns = (items.id, items.title, units.name, items.due_at, status_column(at), items.level, duties.clause)
    rows = stream_occurrences(
        session, (*columns, items.done_at), at=at, overdue_first=True, sort=sort, chunk=EXPORT_CHUNK, **filters
    )
    for occurrence_id, title, unit, due, status, level, clause, done in rows:
        finished = f"{done.astimezone(zone):%Y-%m-%d %H:%M}" if done is not None else ""
        due_at = f"{due.astimezone(zone):%Y-%m-%d %H:%M}"
        yield [occurrence_id, title, unit, due_at, STATUS_LABELS[status], LEVEL_NAMES[level], clause, finished]


def download_file(write: Callable[[IO[bytes]], None], filename: str) -> Response:
    """``web.common.download`` for a file too big to hold in memory: written to an unnamed temporary file (its name
    removed at once, so nothing is left behind even when the client goes away) and sent from disk in pieces."""
    out = tempfile.TemporaryFile()  # noqa: SIM115 (closed when sent, by the response's background task)
    try:
        write(out)
        size = out.tell()
        out.seek(0)
    except BaseException:
        out.close()
        raise
    headers = {
        "Content-Disposition": download(b"", filename).headers["content-disposition"],
        "Content-Length": str(size),
    }
    pieces = iter(lambda: out.read(1 << 16), b"")
    return StreamingResponse(pieces, media_type=XLSX, headers=headers, background=BackgroundTask(out.close))


def _filters(scope: Scope, chosen: dict[str, str]) -> tuple[dict[str, Any], str]:
    """The list's query filters from the form, always within the manager's scope; a bad value is named, not fatal."""
    zone = get_settings().zone
    problems = []
    filters = scope_filters(scope, district=chosen["district"])
    for name in ("family", "unit", "q"):
        if chosen.get(name):
            filters[name] = chosen[name]
    if chosen["status"] in STATUSES:
        filters["status"] = chosen["status"]
    if chosen["level"] in {str(level) for level in LEVEL_NAMES}:
        filters["level"] = int(chosen["level"])
    for name, key, is_end in (("from", "start", False), ("to", "end", True)):
        if not chosen[name]:
            continue
        try:
            filters[key] = day_bound(date.fromisoformat(chosen[name]), zone, end=is_end)
        except ValueError:
            problems.append(f"日期“{chosen[name]}”无法识别，请用 2026-03-01 这样的格式。")
    return filters, " ".join(problems)


def _choices(session: Session, scope: Scope) -> dict[str, list[tuple[str, str]]]:
    units = list(session.execute(select(Unit).order_by(col(Unit.id))).scalars())
    visible = [u for u in units if scope.allows(u)]
    families = sorted(set(session.execute(select(Duty.family)).scalars()))  # type: ignore[call-overload]
    districts = auth.districts(session) if scope.role == "city" else [scope.district or ""]
    names = {u.id: u.name for u in units}
    return {
        "family": [(f, f) for f in families],
        "unit": [(u.id, u.name) for u in visible],
        "district": [(d, names.get(d, d)) for d in districts],
    }


# ---------------------------------------------------------------- one item


def not_found() -> HTMLResponse:
    return problem_page(404, "事项不存在", "找不到该事项，或不在您的管辖范围内。")


@router.get("/items/{occurrence_id}/notices/{level}", response_class=HTMLResponse)
def printable_notice(
    occurrence_id: RowId, level: Annotated[int, Path(ge=1, le=3)], session: SessionDep, at: NowDep, user: UserDep
) -> HTMLResponse:
    """A numbered notice as the document it is, laid out for printing or saving as PDF from the browser."""
    found = scoped_item(session, auth.scope_of(user), occurrence_id, at=at)
    query = select(Escalation).where(
        col(Escalation.occurrence_id) == occurrence_id,
        col(Escalation.level) == level,
        col(Escalation.status) == "issued",
    )
    escalation = session.execute(query).scalar_one_or_none() if found else None
    if found is None or escalation is None:
        return problem_page(404, "通知不存在", "该事项没有这一级已发出的通知，或不在您的管辖范围内。")
    occurrence, _, _ = found
    ctx = context(session)
    duty = ctx.program.duties[occurrence.duty_id]
    ladder = ctx.program.ladders[duty.ladder]
    issued = escalation.approved_at or escalation.at
    title, body = message(
        ctx,
        "escalation",
        occurrence,
        duty,
        at=issued,
        step=ladder.levels[level - 1],
        ladder=ladder,
        deadline=escalation.deadline_at,
        document=escalation.document,
        repeat=0,
    )
    return page("notice.html", title=title, paragraphs=body.strip().split("\n"), escalation=escalation)


@router.get("/items/{occurrence_id}", response_class=HTMLResponse)
def item(request: Request, occurrence_id: RowId, session: SessionDep, at: NowDep, user: UserDep) -> HTMLResponse:
    return _item_page(request, session, user, occurrence_id, at)


def _item_page(
    request: Request,
    session: Session,
    user: User,
    occurrence_id: int,
    at: datetime,
    *,
    status_code: int = 200,
    error: str = "",
    entered: dict[str, str] | None = None,
) -> HTMLResponse:
    found = scoped_item(session, auth.scope_of(user), occurrence_id, at=at)
    if found is None:
        return not_found()
    occurrence, duty, unit = found
    return desk_page(
        request,
        user,
        "item.html",
        status_code,
        at=at,
        occurrence=occurrence,
        duty=duty,
        unit=unit,
        status=occurrence.status_at(at),
        timeline=timeline(session, occurrence_id),
        reports=_rows(session, Confirmation, occurrence_id),
        check_results=spot_checks.results_of(session, occurrence_id),
        talks=_rows(session, Talk, occurrence_id),
        escalations=_rows(session, Escalation, occurrence_id),
        deliveries=_rows(session, Delivery, occurrence_id),
        failed_checks=failed_checks(session, unit.id),
        error=error,
        entered=entered or {},
        action_labels=ACTION_LABELS,
        detail_labels=DETAIL_LABELS,
        unit_names={unit_id: spec.name for unit_id, spec in program().units.items()} | account_names(session),
        period=period_label(occurrence.period),
        delivery_states=DELIVERY_STATES,
    )


def _rows(session: Session, model: Any, occurrence_id: int) -> list[Any]:
    table = model.__table__.c
    return list(session.execute(select(model).where(table.occurrence_id == occurrence_id).order_by(table.id)).scalars())


def timeline(session: Session, occurrence_id: int) -> list[AuditEvent]:
    """Everything that happened to the item, oldest first, from the audit events."""
    events = AuditEvent.__table__.c  # type: ignore[attr-defined]
    query = select(AuditEvent).where(events.occurrence_id == occurrence_id).order_by(events.at, events.id)
    return list(session.execute(query).scalars())


def failed_checks(session: Session, unit_id: str) -> int:
    """How many of the unit's confirmations failed a 核查: it counts against the unit."""
    reports, items = Confirmation.__table__.c, Occurrence.__table__.c  # type: ignore[attr-defined]
    query = (
        select(func.count())
        .select_from(Confirmation.__table__.join(Occurrence.__table__, items.id == reports.occurrence_id))  # type: ignore[attr-defined]
        .where(items.unit_id == unit_id, reports.verdict == "fail")
    )
    return int(session.execute(query).scalar_one())


async def form_fields(request: Request) -> dict[str, str]:
    """The posted form's text fields. Read on the event loop; the endpoint itself runs in the thread pool."""
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


@router.post("/items/{occurrence_id}/{action}", response_class=HTMLResponse)
def act(
    request: Request,
    occurrence_id: RowId,
    action: str,
    session: SessionDep,
    at: NowDep,
    user: UserDep,
    form: Annotated[dict[str, str], Depends(form_fields)],
) -> Response:
    # A plain def on purpose: the store is reached with blocking calls, which must not hold the event loop.
    refused = check_csrf(request, form.get("csrf"))
    if refused:
        return refused
    if scoped_item(session, auth.scope_of(user), occurrence_id, at=at) is None:
        return not_found()  # before anything else: a hidden item answers exactly like a missing one
    if action not in actions.ACTIONS:
        return problem_page(404, "没有这个操作", f"不支持的操作：{action}")
    try:
        take_action(session, action, occurrence_id, form, actor=f"user:{user.username}", at=at, role=user.role)
    except ActionError as refusal:
        session.rollback()
        # The item again, with the manager's entries kept in the form and the reason in Chinese.
        entered = form | {"action": action}  # so only the form that was sent gets its entries back
        return _item_page(
            request, session, user, occurrence_id, at, status_code=400, error=str(refusal), entered=entered
        )
    return RedirectResponse(f"/desk/items/{occurrence_id}#timeline", status_code=303)


BULK_ACTIONS = ("extend", "park", "waive")
BULK_MOST = 500


@router.post("/items/bulk", response_class=HTMLResponse)
def bulk_action(
    request: Request,
    session: SessionDep,
    at: NowDep,
    user: UserDep,
    csrf: Annotated[str, Form()] = "",
    action: Annotated[str, Form()] = "",
    reason: Annotated[str, Form(max_length=actions.MAX_REASON)] = "",
    due: Annotated[str, Form()] = "",
    review_on: Annotated[str, Form()] = "",
    ids: Annotated[list[int] | None, Form()] = None,
) -> Response:
    """One action with one reason on the selected items; each item is decided, audited and told on its own."""
    refused = check_csrf(request, csrf)
    if refused:
        return refused
    chosen = list(dict.fromkeys(ids or []))
    if action not in BULK_ACTIONS or not chosen or len(chosen) > BULK_MOST:
        return problem_page(400, "无法批量处理", f"请勾选 1 至 {BULK_MOST} 项，并选择延期、挂账或免除。")
    done: list[int] = []
    skipped: list[str] = []
    form = {"reason": reason, "due": due, "review_on": review_on}
    for occurrence_id in chosen:
        if scoped_item(session, auth.scope_of(user), occurrence_id, at=at) is None:
            skipped.append(f"{occurrence_id}：事项不存在")
            continue
        try:
            actor = f"user:{user.username}"
            take_action(session, action, occurrence_id, form, actor=actor, at=at, role=user.role, tell=False)
            done.append(occurrence_id)
        except ActionError as refusal:
            session.rollback()
            skipped.append(f"{occurrence_id}：{refusal}")
    # One message per unit for the whole selection, not one per item.
    ctx = context(session)
    decisions.tell_units(session, ctx, occurrence_ids=done, action=action, reason=reason, at=at)
    session.commit()
    label = actions.ACTIONS[action]
    summary = f"已对 {len(done)} 项{label}（每项各记一条操作记录；每个责任单位收到一条汇总通知）。"
    if skipped:
        summary += f"未处理 {len(skipped)} 项：" + "；".join(skipped)
    return page(
        "message.html", 200 if done else 400, title=f"批量{label}", message=summary, kind="" if done else "error"
    )


def take_action(
    session: Session,
    action: str,
    occurrence_id: int,
    form: dict[str, Any],
    *,
    actor: str,
    at: datetime,
    role: str,
    tell: bool = True,
) -> None:
    """Run one action from form or JSON fields (the desk and the API share it). Raises ActionError.

    ``role`` is the account's: a district's action on an item waiting for the city's approval is refused. ``tell``:
    the unit hears of it now (a bulk action tells each unit once, afterwards).
    """
    reason = str(form.get("reason") or "")
    common: dict[str, Any] = {"occurrence_id": occurrence_id, "actor": actor, "at": at, "role": role}
    zone = get_settings().zone
    if action == "extend":
        due = datetime.combine(_day(form.get("due"), "新的截止日期"), time(17, 0), tzinfo=zone)
        actions.extend(session, due=due, reason=reason, **common)
    elif action == "park":
        actions.park(session, review_on=_day(form.get("review_on"), "复核日期"), reason=reason, zone=zone, **common)
    elif action == "reopen":
        actions.reopen(session, reason=reason, **common)
    elif action == "waive":
        actions.waive(session, reason=reason, **common)
    elif action == "talk":
        held_on = _day(form.get("held_on"), "约谈日期")
        attendees, minutes = str(form.get("attendees") or ""), str(form.get("minutes") or "")
        actions.record_talk(session, held_on=held_on, attendees=attendees, minutes=minutes, **common)
    elif action == "verify":
        verdict = str(form.get("verdict") or "")
        if verdict not in ("pass", "fail"):
            raise ActionError("请选择核查结果：通过或不通过。")
        report = _number(form.get("confirmation_id"), "确认记录")
        reason = str(form.get("note") or reason)
        actions.verify(session, confirmation_id=report, passed=verdict == "pass", note=reason, **common)
    if not tell:
        return
    # The unit hears of every decision that changes what it must do, with the reason and its link.
    ctx = context(session)
    passed = str(form.get("verdict") or "") == "pass"
    if decisions.tell_unit(
        session, ctx, occurrence_id=occurrence_id, action=action, reason=reason, at=at, passed=passed
    ):
        session.commit()


def _day(value: Any, label: str) -> date:
    try:
        return value if isinstance(value, date) else date.fromisoformat(str(value or ""))
    except ValueError:
        raise ActionError(f"请填写{label}（如 2026-03-01）。") from None


def _number(value: Any, label: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ActionError(f"请指定{label}。") from None


@router.get("/items/{occurrence_id}/evidence/{name}")
def evidence(occurrence_id: RowId, name: str, session: SessionDep, at: NowDep, user: UserDep) -> Response:
    """A photo a unit uploaded for this item, to managers who may see the item."""
    if scoped_item(session, auth.scope_of(user), occurrence_id, at=at) is None:
        return not_found()
    names = {n for report in _rows(session, Confirmation, occurrence_id) for n in report.evidence}
    path = evidence_path(name) if name in names else None
    if path is None:
        return problem_page(404, "照片不存在", "找不到该照片。")
    headers = {"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"}
    return FileResponse(path, media_type=evidence_media_type(name), headers=headers)


# ---------------------------------------------------------------- deliveries (city office)


@router.get("/deliveries", response_class=HTMLResponse)
def deliveries(request: Request, session: SessionDep, at: NowDep, user: UserDep, status: str | None = None) -> Response:
    """Failed and unknown deliveries with their reason, each with a deliberate resend. City managers only."""
    if user.role != "city":
        return problem_page(403, "无权访问", "发件记录仅市级管理员可查看。")
    wanted = [status] if status in DELIVERY_STATES else ["failed", "unknown"]
    rows = [delivery_json(d, zone=get_settings().zone) for d in find_deliveries(session, statuses=wanted, limit=500)]
    tab = DELIVERY_STATES.get(status or "", "发送失败或结果未知")
    units = {unit_id: spec.name for unit_id, spec in program().units.items()}
    total = count_deliveries(session, statuses=wanted)
    return desk_page(
        request, user, "deliveries.html", rows=rows, total=total, tab=tab, units=units, states=DELIVERY_STATES, at=at
    )


@router.post("/deliveries/{delivery_id}/resend", response_class=HTMLResponse)
def resend(
    request: Request,
    delivery_id: RowId,
    session: SessionDep,
    at: NowDep,
    user: UserDep,
    csrf: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    refused = check_csrf(request, csrf)
    if refused:
        return refused
    if user.role != "city":
        return problem_page(403, "无权操作", "重发仅市级管理员可操作。")
    if not outbox.resend(session, delivery_id=delivery_id, at=at, actor=f"user:{user.username}"):
        return problem_page(409, "无法重发", "该发件记录不存在，或正在发送、等待发送。")
    return RedirectResponse("/desk/deliveries", status_code=303)
