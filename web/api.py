"""The JSON API for scripts: the same items, scopes and actions as the desk, with a bearer token.

A token comes from ``duties user token USERNAME``. A district token sees its district only, and no unannounced check
before its day; an item outside the scope answers 404, exactly like one that does not exist.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from sqlmodel import Session

from flows.actions import ActionError
from store.models import LEVEL_NAMES, STATUSES, Assessment
from store.queries import count_matching, count_occurrences, day_bound, occurrence_json, occurrences_json
from store.settings import get_settings
from web import auth, desk_assess
from web.auth import Scope
from web.common import NowDep, RowId, SessionDep, scope_filters, scoped_item
from web.dashboard import StatsError, figures
from web.desk import failed_checks, take_action, timeline

bearer = HTTPBearer(auto_error=False, description="`duties user token USERNAME` 生成的令牌")
router = APIRouter(prefix="/api", tags=["api"])
StatusQuery = Annotated[str | None, Query(pattern="^(" + "|".join(STATUSES) + ")$")]
LevelQuery = Annotated[int | None, Query(ge=min(LEVEL_NAMES), le=max(LEVEL_NAMES))]
Limit = Annotated[int, Query(ge=1, le=5000)]
Text = Annotated[str, Field(max_length=500)]


def token_scope(
    session: SessionDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Scope:
    """Any account's token: a manager's, an inspector's or an intake platform's (POST /api/cases)."""
    user = auth.user_for_api_token(session, credentials.credentials) if credentials else None
    if user is None:
        raise HTTPException(401, "需要有效的 API 令牌（Authorization: Bearer …）", {"WWW-Authenticate": "Bearer"})
    return auth.scope_of(user)


def api_scope(scope: Annotated[Scope, Depends(token_scope)]) -> Scope:
    """A manager's token: the items, counts and actions. An intake token may only file cases."""
    if not scope.manages:
        raise HTTPException(403, "该令牌只能上报案件（POST /api/cases），不能查看或处理事项。")
    return scope


ScopeDep = Annotated[Scope, Depends(api_scope)]
AnyScopeDep = Annotated[Scope, Depends(token_scope)]


class Me(BaseModel):
    username: str
    role: str
    district: str | None


@router.get("/me", response_model=Me)
def me(scope: ScopeDep) -> Me:
    return Me(username=scope.username, role=scope.role, district=scope.district)


@router.get("/occurrences", response_model=list[dict[str, Any]])
def list_occurrences(
    request: Request,
    session: SessionDep,
    at: NowDep,
    scope: ScopeDep,
    unit: str | None = None,
    duty: str | None = None,
    family: str | None = None,
    district: str | None = None,
    status: StatusQuery = None,
    level: LevelQuery = None,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
    limit: Limit = 1000,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> JSONResponse:
    """Items in the caller's scope, overdue and escalated first, one page of ``limit``.

    The page says where it stands: ``X-Total-Count`` (all matching items) and, when more follow, a ``Link`` header
    with ``rel="next"``, so a script that exports a year does not stop at the first page unawares.
    """
    given = {"unit": unit, "duty": duty, "family": family, "district": district, "status": status, "level": level}
    filters = _filters(scope, given | {"start": start, "end": end})
    zone = get_settings().zone
    rows = occurrences_json(session, at=at, zone=zone, overdue_first=True, limit=limit, offset=offset, **filters)
    return _page(request, rows, total=count_matching(session, at=at, **filters), offset=offset)


@router.get("/overdue", response_model=list[dict[str, Any]])
def list_overdue(
    request: Request, session: SessionDep, at: NowDep, scope: ScopeDep, limit: Limit = 1000
) -> JSONResponse:
    """What the desk shows first: overdue items, highest level first (paged like /api/occurrences)."""
    filters = _filters(scope, {"status": "overdue"})
    rows = occurrences_json(session, at=at, zone=get_settings().zone, overdue_first=True, limit=limit, **filters)
    return _page(request, rows, total=count_matching(session, at=at, **filters), offset=0)


def _page(request: Request, rows: list[dict[str, Any]], *, total: int, offset: int) -> JSONResponse:
    headers = {"X-Total-Count": str(total)}
    following = offset + len(rows)
    if rows and following < total:
        headers["Link"] = f'<{request.url.include_query_params(offset=following)}>; rel="next"'
    return JSONResponse(rows, headers=headers)


@router.get("/counts")
def counts(
    session: SessionDep,
    at: NowDep,
    scope: ScopeDep,
    family: str | None = None,
    district: str | None = None,
    unit: str | None = None,
) -> dict[str, dict[str, int]]:
    """How many items per status and per level, within the caller's scope."""
    filters = _filters(scope, {"family": family, "district": district, "unit": unit})
    by_level = count_occurrences(session, at=at, by="level", **filters)
    return {
        "status": count_occurrences(session, at=at, by="status", **filters),
        "level": {str(level): by_level.get(level, 0) for level in LEVEL_NAMES},
    }


@router.get("/stats")
def stats(
    session: SessionDep,
    at: NowDep,
    scope: ScopeDep,
    month: Annotated[str | None, Query(max_length=10, description="2026-11; this month when left out")] = None,
    district: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """The dashboard's figures (web/dashboard.py, fields in DESIGN.md's interface contract), within the caller's
    scope: a district token gets its own district whatever ``district`` says. 422, like any bad query value, for a
    month or district it cannot read."""
    try:
        return figures(session, scope, at=at, month=month, district=district)
    except StatsError as problem:
        error = {"loc": ["query", problem.field], "msg": str(problem), "type": "value_error"}
        raise RequestValidationError([error]) from None


def _filters(scope: Scope, given: dict[str, Any]) -> dict[str, Any]:
    zone = get_settings().zone
    filters = {k: given.get(k) for k in ("unit", "duty", "family", "status", "level")}
    filters |= scope_filters(scope, district=given.get("district"))
    for key, alias, end in (("start", "from", False), ("end", "to", True)):
        try:
            filters[key] = day_bound(given.get(key), zone, end=end)
        except ValueError as problem:  # the same 422 as any other bad query value
            error = {"loc": ["query", alias], "msg": str(problem), "type": "value_error"}
            raise RequestValidationError([error]) from None
    return filters


def _item_or_404(session: Session, scope: Scope, occurrence_id: int, at: datetime) -> Any:
    found = scoped_item(session, scope, occurrence_id, at=at)
    if found is None:
        raise HTTPException(404, "事项不存在，或不在您的管辖范围内")
    return found


@router.get("/occurrences/{occurrence_id}")
def one_occurrence(occurrence_id: RowId, session: SessionDep, at: NowDep, scope: ScopeDep) -> dict[str, Any]:
    """One item with its timeline (the audit events) and the unit's failed 核查 count."""
    occurrence, duty, unit = _item_or_404(session, scope, occurrence_id, at)
    data = occurrence_json(occurrence, duty, unit, at=at, zone=get_settings().zone)
    data["timeline"] = [
        {
            "at": e.at.astimezone(get_settings().zone).isoformat(),
            "actor": e.actor,
            "action": e.action,
            "detail": e.detail,
        }
        for e in timeline(session, occurrence_id)
    ]
    data["unit_failed_checks"] = failed_checks(session, unit.id)
    return data


class Action(BaseModel):
    """The fields an action needs: extend (reason, due), park (reason, review_on), reopen / waive (reason),
    talk (held_on, attendees, minutes), verify (confirmation_id, verdict, note)."""

    reason: Text = ""
    due: date | None = None
    review_on: date | None = None
    held_on: date | None = None
    attendees: Text = ""
    minutes: Annotated[str, Field(max_length=5000)] = ""
    confirmation_id: Annotated[int | None, Field(ge=1, le=2**62)] = None
    verdict: Literal["pass", "fail"] | None = None
    note: Text = ""


class ActionDone(BaseModel):
    ok: bool
    occurrence: dict[str, Any]


class Refusal(BaseModel):
    detail: str  # why, in Chinese, for the script's operator


@router.post(
    "/occurrences/{occurrence_id}/{action}",
    response_model=ActionDone,
    responses={409: {"model": Refusal, "description": "该事项当前状态不能执行此操作（原因见 detail）"}},
)
def act(
    occurrence_id: RowId,
    action: Literal["extend", "park", "reopen", "waive", "talk", "verify"],
    body: Action,
    session: SessionDep,
    at: NowDep,
    scope: ScopeDep,
) -> ActionDone:
    """Take an action on one item; 409 with the reason in Chinese when the item's state does not allow it."""
    _item_or_404(session, scope, occurrence_id, at)
    try:
        actor = f"api:{scope.username}"
        take_action(session, action, occurrence_id, body.model_dump(), actor=actor, at=at, role=scope.role)
    except ActionError as refusal:
        session.rollback()
        raise HTTPException(409, str(refusal)) from None
    occurrence, duty, unit = _item_or_404(session, scope, occurrence_id, at)
    return ActionDone(ok=True, occurrence=occurrence_json(occurrence, duty, unit, at=at, zone=get_settings().zone))


# ---------------------------------------------------------------- assessments (考核)


@router.get("/assessments", response_model=list[dict[str, Any]])
def list_assessments(
    request: Request,
    session: SessionDep,
    scope: ScopeDep,
    limit: Limit = 1000,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> JSONResponse:
    """Every assessment, newest period first, without its summary (``/api/assessments/{id}`` gives it, scoped);
    ``open_objections`` counts the caller's units' only. Paged like /api/occurrences."""
    visible = None if scope.role == "city" else set(desk_assess.visible_units(session, scope))
    waiting = desk_assess.waiting_by_assessment(session, visible)
    found = list(session.execute(desk_assess.newest_first()).scalars())
    rows = [desk_assess.list_json(a, waiting.get(a.id or 0, 0)) for a in found[offset : offset + limit]]
    return _page(request, rows, total=len(found), offset=offset)


@router.get("/assessments/{assessment_id}")
def one_assessment(assessment_id: RowId, session: SessionDep, scope: ScopeDep) -> dict[str, Any]:
    """One assessment: its summary, score rows and deductions (each with its objection), within the caller's scope."""
    found = session.get(Assessment, assessment_id, populate_existing=True)
    if found is None:
        raise HTTPException(404, "考核不存在")
    return desk_assess.assessment_detail_json(session, scope, found)
