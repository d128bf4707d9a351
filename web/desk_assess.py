"""The desk's assessments: each period's ranking and 红黑榜, the units' deductions, the 异议 to decide, publication.

A city manager sees everything, decides objections and publishes. A district manager sees its own district's units
only (their lines in each ranking, their deductions and objections) and its district's rank among the districts,
never another district's details; a unit outside its scope answers 404, and deciding or publishing answers 403.
The same scoping serves the API (web.api).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlmodel import Session, col

from calendars.schema import DEDUCTIONS, INDICATORS
from flows.assessment import AssessmentError, as_json, decide, open_objections, publish, score_json, scores_of
from flows.scores import span_of
from store.models import (
    ASSESSMENT_STATES,
    OBJECTION_STATES,
    Assessment,
    AssessmentScore,
    Deduction,
    Objection,
    Unit,
    User,
)
from store.settings import get_settings
from web import auth
from web.auth import Scope
from web.common import NowDep, RowId, SessionDep, context, problem_page
from web.desk import UserDep, check_csrf, desk_page
from web.photos import evidence_media_type, evidence_path
from web.unit_assess import deduction_lines

router = APIRouter(prefix="/desk")
Csrf = Annotated[str, Form(max_length=64)]
COUNTS = {
    "due": "应完成",
    "on_time": "按期完成",
    "late_done": "逾期完成",
    "overdue": "逾期未完成",
    "parked": "挂账",
    "extended": "延期",
    "rework": "返工",
    "level_1": "交办",
    "level_2": "督办",
    "level_3": "约谈",
    "checked": "被抽查",
    "check_failed": "抽查不合格",
}


# ---------------------------------------------------------------- scope (shared with web.api)


def visible_units(session: Session, scope: Scope) -> dict[str, Unit]:
    """The units this manager may see, by id: all for the city, its district's (and its office) for a district."""
    return {unit.id: unit for unit in session.execute(select(Unit)).scalars() if scope.allows(unit)}


def scoped_summary(summary: dict[str, Any], scope: Scope, visible: set[str]) -> dict[str, Any]:
    """The summary as this manager may read it. A district keeps its own units' lines in each ranking and board
    (with the group's size, so 第3名/共7个 still reads), its own district's line and the number of districts;
    the citywide totals and families are aggregates and stay."""
    if scope.role == "city":
        return summary
    groups = []
    for group in summary.get("groups", []):
        mine = [line for line in group["ranking"] if line["unit"] in visible]
        if not mine:
            continue
        board = group.get("board")
        if board is not None:
            board = board | {key: [line for line in board[key] if line["unit"] in visible] for key in ("red", "black")}
        groups.append(group | {"ranking": mine, "board": board, "size": len(group["ranking"])})
    districts = summary.get("districts", [])
    own = [line for line in districts if line["district"] == scope.district]
    return summary | {"groups": groups, "districts": own, "district_count": len(districts)}


def scoped_scores(session: Session, assessment_id: int, visible: set[str]) -> list[AssessmentScore]:
    return [row for row in scores_of(session, assessment_id) if row.unit_id in visible]


def scoped_objections(session: Session, assessment_id: int, visible: set[str]) -> list[Objection]:
    query = select(Objection).where(col(Objection.assessment_id) == assessment_id).order_by(col(Objection.id))
    return [
        o for o in session.execute(query.execution_options(populate_existing=True)).scalars() if o.unit_id in visible
    ]


def scoped_deductions(session: Session, assessment_id: int, visible: set[str]) -> list[Deduction]:
    query = select(Deduction).where(col(Deduction.assessment_id) == assessment_id).order_by(col(Deduction.id))
    return [d for d in session.execute(query).scalars() if d.unit_id in visible]


def deduction_json(deduction: Deduction, objection: Objection | None, zone: Any) -> dict[str, Any]:
    return {
        "id": deduction.id,
        "unit": deduction.unit_id,
        "occurrence_id": deduction.occurrence_id,
        "reason": deduction.reason,
        "label": DEDUCTIONS.get(deduction.reason, deduction.reason),
        "points": deduction.points,
        "withdrawn": deduction.withdrawn,
        "objection": None if objection is None else objection_json(objection, zone),
    }


def objection_json(objection: Objection, zone: Any) -> dict[str, Any]:
    return {
        "id": objection.id,
        "reason": objection.reason,
        "evidence": len(objection.evidence),
        "at": objection.at.astimezone(zone).isoformat(),
        "status": objection.status,
        "answer": objection.answer,
        "decided_at": objection.decided_at.astimezone(zone).isoformat() if objection.decided_at else None,
    }


def assessment_detail_json(session: Session, scope: Scope, assessment: Assessment) -> dict[str, Any]:
    """``as_json`` with the summary, the score rows and the deductions this manager may read."""
    zone = get_settings().zone
    units = visible_units(session, scope)
    visible = set(units)
    data = as_json(assessment, zone)
    data["summary"] = scoped_summary(assessment.summary, scope, visible)
    names = {unit_id: unit.name for unit_id, unit in units.items()}
    data["scores"] = [score_json(row, names) for row in scoped_scores(session, assessment.id or 0, visible)]
    objections = {o.deduction_id: o for o in scoped_objections(session, assessment.id or 0, visible)}
    data["deductions"] = [
        deduction_json(d, objections.get(d.id or 0), zone)
        for d in scoped_deductions(session, assessment.id or 0, visible)
    ]
    return data


def list_json(assessment: Assessment, waiting: int) -> dict[str, Any]:
    """One line of the list: ``as_json`` without the summary (the detail gives it, scoped)."""
    data = {key: value for key, value in as_json(assessment, get_settings().zone).items() if key != "summary"}
    return data | {
        "status_label": ASSESSMENT_STATES.get(assessment.status, assessment.status),
        "open_objections": waiting,
    }


def waiting_by_assessment(session: Session, visible: set[str] | None) -> dict[int, int]:
    """Open objections per assessment, counting only the visible units' (all when ``visible`` is None)."""
    query = select(col(Objection.assessment_id), col(Objection.unit_id), func.count()).where(
        col(Objection.status) == "open"
    )
    counts: dict[int, int] = {}
    for assessment_id, unit_id, count in session.execute(
        query.group_by(col(Objection.assessment_id), col(Objection.unit_id))
    ):
        if visible is None or unit_id in visible:
            counts[assessment_id] = counts.get(assessment_id, 0) + int(count)
    return counts


def newest_first() -> Any:
    return select(Assessment).order_by(
        col(Assessment.starts_at).desc(), col(Assessment.ends_at), col(Assessment.version).desc()
    )


# ---------------------------------------------------------------- pages


def _city_only(user: User) -> HTMLResponse | None:
    if user.role == "city":
        return None
    return problem_page(403, "无权操作", "异议处理与考核通报仅市级管理员可操作；本区县的考核结果请在“考核”中查看。")


def _not_found(what: str = "考核") -> HTMLResponse:
    return problem_page(404, f"{what}不存在", f"找不到该{what}，或不在您的管辖范围内。")


@router.get("/assessments", response_class=HTMLResponse)
def assessments(request: Request, session: SessionDep, at: NowDep, user: UserDep) -> HTMLResponse:
    """Every assessment, newest period first, with its state, 通报 number and the objections waiting."""
    scope = auth.scope_of(user)
    visible = None if scope.role == "city" else set(visible_units(session, scope))
    waiting = waiting_by_assessment(session, visible)
    rows = [(a, span_of(a.period).label, waiting.get(a.id or 0, 0)) for a in session.execute(newest_first()).scalars()]
    return desk_page(request, user, "assessments.html", at=at, rows=rows, states=ASSESSMENT_STATES)


@dataclass
class Ranked:
    """One line of a group's ranking on the page: the summary's line and the unit's stored score row."""

    line: dict[str, Any]
    row: AssessmentScore | None


def _assessment_page(
    request: Request,
    session: Session,
    user: User,
    assessment: Assessment,
    at: datetime,
    *,
    status_code: int = 200,
    error: str = "",
    done: str = "",
) -> HTMLResponse:
    scope = auth.scope_of(user)
    units = visible_units(session, scope)
    visible = set(units)
    summary = scoped_summary(assessment.summary, scope, visible)
    rows = {row.unit_id: row for row in scoped_scores(session, assessment.id or 0, visible)}
    groups = [
        (group, [Ranked(line, rows.get(line["unit"])) for line in group["ranking"]]) for group in summary["groups"]
    ]
    objections = scoped_objections(session, assessment.id or 0, visible)
    deductions = {d.id: d for d in scoped_deductions(session, assessment.id or 0, visible)}
    window = assessment.objection_until
    waiting = open_objections(session, assessment.id or 0)  # all of them: publication waits for every one
    can_publish = (
        scope.role == "city" and assessment.status == "open" and window is not None and at >= window and not waiting
    )
    return desk_page(
        request,
        user,
        "assessment.html",
        status_code,
        at=at,
        assessment=assessment,
        label=span_of(assessment.period).label,
        states=ASSESSMENT_STATES,
        objection_states=OBJECTION_STATES,
        summary=summary,
        groups=groups,
        indicators=INDICATORS,
        objections=[(o, deductions.get(o.deduction_id)) for o in objections],
        deduction_labels=DEDUCTIONS,
        names={unit_id: unit.name for unit_id, unit in units.items()},
        waiting=waiting if scope.role == "city" else sum(o.status == "open" for o in objections),
        can_decide=scope.role == "city" and assessment.status == "open",
        can_publish=can_publish,
        error=error,
        done=done,
    )


# :int, so /desk/assessments/3.pdf and .xlsx (web.desk_reports) are not taken for an id here
@router.get("/assessments/{assessment_id:int}", response_class=HTMLResponse)
def assessment(request: Request, assessment_id: RowId, session: SessionDep, at: NowDep, user: UserDep) -> HTMLResponse:
    found = session.get(Assessment, assessment_id, populate_existing=True)
    if found is None:
        return _not_found()
    done = _what_was_done(request.query_params.get("done", ""))
    return _assessment_page(request, session, user, found, at, done=done)


def _what_was_done(done: str) -> str:
    """The banner after a decision or the publication (?done=accepted:ID, rejected:ID, published)."""
    decision, _, number = done.partition(":")
    if decision == "accepted" and re.fullmatch(r"[0-9]{1,18}", number):
        return f"已采纳异议 {number}：该项扣分撤销，单位得分与排名已重算，处理结果已通知单位。"
    if decision == "rejected" and re.fullmatch(r"[0-9]{1,18}", number):
        return f"已不予采纳异议 {number}：理由已记入操作记录并通知单位。"
    if decision == "published":
        return "已通报：通报编号见上方，通报随下次心跳发给各单位和领导。"
    return ""


@router.get("/assessments/{assessment_id}/units/{unit_id}", response_class=HTMLResponse)
def unit_drilldown(
    request: Request, assessment_id: RowId, unit_id: str, session: SessionDep, at: NowDep, user: UserDep
) -> HTMLResponse:
    """One unit's score, rates, counts and every deduction with the item behind it."""
    found = session.get(Assessment, assessment_id, populate_existing=True)
    units = visible_units(session, auth.scope_of(user))
    rows = {row.unit_id: row for row in scores_of(session, assessment_id)} if found else {}
    if found is None or unit_id not in units or unit_id not in rows:
        return _not_found("单位考核结果")
    row = rows[unit_id]
    size = sum(1 for other in rows.values() if other.group_id == row.group_id and other.rank is not None)
    group = next((g["title"] for g in found.summary.get("groups", []) if g["id"] == row.group_id), "同类单位")
    return desk_page(
        request,
        user,
        "assessment_unit.html",
        at=at,
        assessment=found,
        label=span_of(found.period).label,
        unit=units[unit_id],
        row=row,
        size=size,
        group=group,
        indicators=INDICATORS,
        counts=COUNTS,
        lines=deduction_lines(session, assessment_id, unit_id),
        objection_states=OBJECTION_STATES,
        states=ASSESSMENT_STATES,
    )


@router.post("/assessments/{assessment_id}/objections/{objection_id}", response_class=HTMLResponse)
def decide_objection(
    request: Request,
    assessment_id: RowId,
    objection_id: RowId,
    session: SessionDep,
    at: NowDep,
    user: UserDep,
    csrf: Csrf = "",
    decision: Annotated[str, Form(max_length=16)] = "",
    answer: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """采纳 (the deduction goes, the score and ranks are recomputed) or 不予采纳 with the reason. City only."""
    refused = check_csrf(request, csrf) or _city_only(user)
    if refused:
        return refused
    found = session.get(Assessment, assessment_id)
    objection = session.get(Objection, objection_id)
    if found is None or objection is None or objection.assessment_id != assessment_id:
        return _not_found("异议")
    if decision not in ("accept", "reject"):
        return _assessment_page(request, session, user, found, at, status_code=400, error="请选择采纳或不予采纳。")
    ctx = context(session)
    try:
        decide(
            session,
            ctx,
            objection_id=objection_id,
            accept=decision == "accept",
            answer=answer,
            actor=f"user:{user.username}",
            at=at,
        )
    except AssessmentError as problem:
        session.rollback()
        return _assessment_page(request, session, user, found, at, status_code=400, error=str(problem))
    outcome = "accepted" if decision == "accept" else "rejected"
    return RedirectResponse(f"/desk/assessments/{assessment_id}?done={outcome}:{objection_id}#objections", 303)


@router.post("/assessments/{assessment_id}/publish", response_class=HTMLResponse)
def publish_assessment(
    request: Request, assessment_id: RowId, session: SessionDep, at: NowDep, user: UserDep, csrf: Csrf = ""
) -> Response:
    """通报: numbered and sent; refused (with the reason as a banner) before the window closes or while objections
    wait. City only."""
    refused = check_csrf(request, csrf) or _city_only(user)
    if refused:
        return refused
    found = session.get(Assessment, assessment_id)
    if found is None:
        return _not_found()
    try:
        publish(session, context(session), found, at=at, actor=f"user:{user.username}")
    except AssessmentError as problem:
        session.rollback()
        found = session.get(Assessment, assessment_id, populate_existing=True) or found
        return _assessment_page(request, session, user, found, at, status_code=400, error=str(problem))
    return RedirectResponse(f"/desk/assessments/{assessment_id}?done=published", status_code=303)


@router.get("/assessments/{assessment_id}/objections/{objection_id}/evidence/{name}")
def objection_evidence(
    assessment_id: RowId, objection_id: RowId, name: str, session: SessionDep, user: UserDep
) -> Response:
    """A photo a unit attached to its objection, to managers who may see the unit."""
    objection = session.get(Objection, objection_id)
    visible = visible_units(session, auth.scope_of(user))
    if objection is None or objection.assessment_id != assessment_id or objection.unit_id not in visible:
        return _not_found("异议")
    path = evidence_path(name) if name in objection.evidence else None
    if path is None:
        return problem_page(404, "照片不存在", "找不到该照片。")
    headers = {"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"}
    return FileResponse(path, media_type=evidence_media_type(name), headers=headers)
