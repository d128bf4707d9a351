"""The desk's ladder and inspection pages, for city managers: the approval queue, campaigns, findings, 复检, and
the four lists as XLSX and CSV. District managers see their items on /desk/items; these pages answer 403."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlmodel import Session, col

from flows import inspections, ladder
from flows.inspections import InspectionError, Responsible
from flows.ladder import LadderError
from store.models import Campaign, Escalation, Finding, Unit, User
from store.settings import get_settings
from web.common import NowDep, RowId, SessionDep, context, download, problem_page, program
from web.desk import UserDep, check_csrf, desk_page

router = APIRouter(prefix="/desk")
Text = Annotated[str, Form(max_length=1000)]
Short = Annotated[str, Form(max_length=200)]
Csrf = Annotated[str, Form(max_length=64)]


def _city_only(user: User) -> HTMLResponse | None:
    if user.role == "city":
        return None
    return problem_page(403, "无权访问", "审批与检查仅市级管理员可操作；本区县的事项请在“全部事项”中查看。")


# ---------------------------------------------------------------- approvals


@router.get("/approvals", response_class=HTMLResponse)
def approvals(request: Request, session: SessionDep, at: NowDep, user: UserDep) -> Response:
    """Levels that wait for a manager before their notice goes out, oldest first."""
    refused = _city_only(user)
    if refused:
        return refused
    units = {u.id: u.name for u in session.execute(select(Unit)).scalars()}
    done = _what_was_done(session, request.query_params.get("done", ""))
    rows = ladder.pending(session)
    return desk_page(request, user, "approvals.html", at=at, rows=rows, units=units, error="", done=done)


def _what_was_done(session: Session, done: str) -> str:
    """The banner after a decision (?done=approved:ID or rejected:ID), so the manager sees what happened."""
    decision, _, number = done.partition(":")
    escalation = session.get(Escalation, int(number)) if re.fullmatch(r"[0-9]{1,18}", number) else None
    if decision == "approved" and escalation is not None and escalation.document:
        return f"已同意{escalation.name}：文号 {escalation.document}，通知随下次心跳（5 分钟内）发给单位。"
    if decision == "rejected":
        return "已不予升级：事项停留在当前级别并重新计时，理由已记入操作记录。"
    return ""


@router.post("/approvals/bulk", response_class=HTMLResponse)
def decide_many(
    request: Request,
    session: SessionDep,
    at: NowDep,
    user: UserDep,
    csrf: Csrf = "",
    decision: Annotated[str, Form()] = "",
    reason: Text = "",
    ids: Annotated[list[int] | None, Form()] = None,
) -> Response:
    """Approve or reject the selected levels at once, each decided (and numbered) on its own."""
    refused = check_csrf(request, csrf) or _city_only(user)
    if refused:
        return refused
    chosen = list(dict.fromkeys(ids or []))
    if decision not in ("approve", "reject") or not chosen:
        return problem_page(400, "无法批量审批", "请勾选待审批的升级，并选择同意或不予升级。")
    ctx, actor = context(session), f"user:{user.username}"
    documents, problems = [], []
    for escalation_id in chosen:
        try:
            if decision == "approve":
                documents.append(ladder.approve(session, ctx, escalation_id=escalation_id, actor=actor, at=at).document)
            else:
                ladder.reject(session, ctx, escalation_id=escalation_id, reason=reason, actor=actor, at=at)
                documents.append("")
        except LadderError as problem:
            session.rollback()
            problems.append(f"{escalation_id}：{problem}")
    done = f"已同意 {len(documents)} 项：{'、'.join(documents)}；通知随下次心跳发出。" if decision == "approve" else ""
    done = done or f"已不予升级 {len(documents)} 项，理由已记入各项操作记录。"
    if problems:
        done += "未处理：" + "；".join(problems)
    units = {u.id: u.name for u in session.execute(select(Unit)).scalars()}
    rows = ladder.pending(session)
    status = 200 if documents else 400
    return desk_page(request, user, "approvals.html", status, at=at, rows=rows, units=units, error="", done=done)


@router.post("/approvals/{escalation_id}/{decision}", response_class=HTMLResponse)
def decide(
    request: Request,
    escalation_id: RowId,
    decision: str,
    session: SessionDep,
    at: NowDep,
    user: UserDep,
    csrf: Csrf = "",
    reason: Text = "",
) -> Response:
    refused = check_csrf(request, csrf) or _city_only(user)
    if refused:
        return refused
    if decision not in ("approve", "reject"):
        return problem_page(404, "没有这个操作", f"不支持的操作：{decision}")
    ctx, actor = context(session), f"user:{user.username}"
    try:
        if decision == "approve":
            ladder.approve(session, ctx, escalation_id=escalation_id, actor=actor, at=at)
        else:
            ladder.reject(session, ctx, escalation_id=escalation_id, reason=reason, actor=actor, at=at)
    except LadderError as problem:
        session.rollback()
        units = {u.id: u.name for u in session.execute(select(Unit)).scalars()}
        rows = ladder.pending(session)
        page = "approvals.html"
        return desk_page(request, user, page, 400, at=at, rows=rows, units=units, error=str(problem), done="")
    outcome = "approved" if decision == "approve" else "rejected"
    return RedirectResponse(f"/desk/approvals?done={outcome}:{escalation_id}", status_code=303)


# ---------------------------------------------------------------- campaigns


@router.get("/campaigns", response_class=HTMLResponse)
def campaigns(request: Request, session: SessionDep, at: NowDep, user: UserDep) -> Response:
    refused = _city_only(user)
    return refused or _campaigns_page(request, session, user, at)


def _campaigns_page(
    request: Request,
    session: Session,
    user: User,
    at: Any,
    *,
    status_code: int = 200,
    error: str = "",
    entered: dict[str, str] | None = None,
) -> HTMLResponse:
    counts = dict(
        session.execute(select(col(Finding.campaign_id), func.count()).group_by(col(Finding.campaign_id)))
        .tuples()
        .all()
    )
    rows = list(session.execute(select(Campaign).order_by(col(Campaign.id).desc())).scalars())
    chained = [(d.id, d.title) for d in program().duties.values() if d.chain is not None]
    return desk_page(
        request,
        user,
        "campaigns.html",
        status_code,
        at=at,
        rows=rows,
        counts=counts,
        duties=chained,
        duty_titles={d.id: d.title for d in program().duties.values()},
        error=error,
        entered=entered or {},
    )


@router.post("/campaigns", response_class=HTMLResponse)
def new_campaign(
    request: Request,
    session: SessionDep,
    at: NowDep,
    user: UserDep,
    csrf: Csrf = "",
    duty: Short = "",
    name: Short = "",
    started_on: Short = "",
) -> Response:
    refused = check_csrf(request, csrf) or _city_only(user)
    if refused:
        return refused
    try:
        on = date.fromisoformat(started_on) if started_on else at.astimezone(get_settings().zone).date()
        campaign = inspections.start_campaign(
            session, context(session), duty_id=duty, name=name, on=on, actor=f"user:{user.username}", at=at
        )
    except (InspectionError, ValueError) as problem:
        session.rollback()
        message = str(problem) if isinstance(problem, InspectionError) else "检查日期格式应为 2026-03-01。"
        entered = {"duty": duty, "name": name, "started_on": started_on}
        return _campaigns_page(request, session, user, at, status_code=400, error=message, entered=entered)
    return RedirectResponse(f"/desk/campaigns/{campaign.id}", status_code=303)


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
def campaign(request: Request, campaign_id: RowId, session: SessionDep, at: NowDep, user: UserDep) -> Response:
    refused = _city_only(user)
    return refused or _campaign_page(request, session, user, campaign_id, at)


def _campaign_page(
    request: Request,
    session: Session,
    user: User,
    campaign_id: int,
    at: Any,
    *,
    status_code: int = 200,
    error: str = "",
    entered: dict[str, str] | None = None,
) -> HTMLResponse:
    found = session.get(Campaign, campaign_id)
    if found is None:
        return problem_page(404, "检查不存在", f"没有编号为 {campaign_id} 的检查。")
    lists = inspections.campaign_lists(session, campaign_id=campaign_id, at=at, zone=get_settings().zone)
    findings = list(
        session.execute(
            select(Finding).where(col(Finding.campaign_id) == campaign_id).order_by(col(Finding.id))
        ).scalars()
    )
    units = [(u.id, u.name) for u in session.execute(select(Unit).order_by(col(Unit.id))).scalars()]
    return desk_page(
        request,
        user,
        "campaign.html",
        status_code,
        at=at,
        campaign=found,
        duty_title=program().duties[found.duty_id].title if found.duty_id in program().duties else found.duty_id,
        lists=lists,
        findings=findings,
        units=units,
        error=error,
        entered=entered or {},
    )


@router.post("/campaigns/{campaign_id}/findings", response_class=HTMLResponse)
def add_finding(
    request: Request,
    campaign_id: RowId,
    session: SessionDep,
    at: NowDep,
    user: UserDep,
    csrf: Csrf = "",
    unit: Short = "",
    site: Text = "",
    problem: Text = "",
    general: Short = "",
    area: Short = "",
    point: Short = "",
) -> Response:
    refused = check_csrf(request, csrf) or _city_only(user)
    if refused:
        return refused
    try:
        inspections.add_finding(
            session,
            context(session),
            campaign_id=campaign_id,
            unit_id=unit,
            site=site,
            problem=problem,
            responsible=Responsible(general, area, point),
            actor=f"user:{user.username}",
            at=at,
        )
    except InspectionError as refusal:
        session.rollback()
        entered = {"unit": unit, "site": site, "problem": problem, "general": general, "area": area, "point": point}
        return _campaign_page(
            request, session, user, campaign_id, at, status_code=400, error=str(refusal), entered=entered
        )
    return RedirectResponse(f"/desk/campaigns/{campaign_id}#findings", status_code=303)


@router.post("/campaigns/{campaign_id}/findings/{finding_id}/reinspect", response_class=HTMLResponse)
def reinspect(
    request: Request,
    campaign_id: RowId,
    finding_id: RowId,
    session: SessionDep,
    at: NowDep,
    user: UserDep,
    csrf: Csrf = "",
    result: Short = "",
    note: Text = "",
) -> Response:
    refused = check_csrf(request, csrf) or _city_only(user)
    if refused:
        return refused
    finding = session.get(Finding, finding_id)
    if finding is None or finding.campaign_id != campaign_id or result not in ("pass", "fail"):
        return _campaign_page(request, session, user, campaign_id, at, status_code=400, error="请选择复检结果。")
    try:
        inspections.reinspect(
            session,
            context(session),
            finding_id=finding_id,
            passed=result == "pass",
            note=note,
            actor=f"user:{user.username}",
            at=at,
        )
    except InspectionError as refusal:
        session.rollback()
        return _campaign_page(request, session, user, campaign_id, at, status_code=400, error=str(refusal))
    return RedirectResponse(f"/desk/campaigns/{campaign_id}#findings", status_code=303)


@router.get("/campaigns/{campaign_id}/lists.xlsx")
def export_xlsx(campaign_id: RowId, session: SessionDep, at: NowDep, user: UserDep) -> Response:
    refused = _city_only(user)
    found = session.get(Campaign, campaign_id)
    if refused or found is None:
        return refused or problem_page(404, "检查不存在", f"没有编号为 {campaign_id} 的检查。")
    lists = inspections.campaign_lists(session, campaign_id=campaign_id, at=at, zone=get_settings().zone)
    data = inspections.to_xlsx(lists, title=found.name)
    return download(data, f"检查{campaign_id}-四清单.xlsx")


@router.get("/campaigns/{campaign_id}/lists/{name}.csv")
def export_csv(campaign_id: RowId, name: str, session: SessionDep, at: NowDep, user: UserDep) -> Response:
    refused = _city_only(user)
    if refused:
        return refused
    if session.get(Campaign, campaign_id) is None or name not in inspections.LIST_NAMES:
        return problem_page(404, "清单不存在", f"可导出的清单：{'、'.join(inspections.LIST_NAMES)}。")
    lists = inspections.campaign_lists(session, campaign_id=campaign_id, at=at, zone=get_settings().zone)
    data = inspections.to_csv(lists[name])
    return download(data, f"检查{campaign_id}-{name}.csv", "text/csv; charset=utf-8")
