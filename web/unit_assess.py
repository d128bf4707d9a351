"""The unit page's 本单位考核 section: the unit's latest frozen or published assessment, every deduction with the item
behind it, and the 异议 form for each deduction while the objection window is open.

A draft is never shown to a unit: its numbers still change. The objection form posts here; the photos go through
the confirmation form's checks and storage (web.units), and ``flows.assessment.object_to`` decides the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlmodel import Session, col

from calendars.schema import DEDUCTIONS, INDICATORS
from flows.assessment import AssessmentError, board_place, deductions_of, group_title_of, object_to
from flows.scores import span_of
from store.db import secret_key
from store.models import (
    OBJECTION_STATES,
    Assessment,
    AssessmentScore,
    CheckResult,
    Deduction,
    Objection,
    Occurrence,
    Unit,
)
from web import photos, units
from web.common import NowDep, RowId, SessionDep, context

MAX_REASON = 1000
router = APIRouter()


@dataclass
class Line:
    """One deduction as the unit reads it: why, how much, the item behind it, and its objection if any."""

    deduction: Deduction
    label: str
    item: Occurrence | None
    problems: list[str]
    objection: Objection | None


@dataclass
class Own:
    """The unit's result in one assessment, ready for the page."""

    assessment: Assessment
    label: str
    row: AssessmentScore
    group_title: str
    group_size: int
    board: str
    rates: list[tuple[str, float]]
    lines: list[Line] = field(default_factory=list)
    window_open: bool = False


def own_assessment(session: Session, unit_id: str, at: datetime) -> Own | None:
    """The unit's latest assessment that is frozen (公示中) or published, or None: drafts are not shown."""
    assessment, row = _latest_for(session, unit_id)
    if assessment is None or row is None:
        return None
    group = next((g for g in assessment.summary.get("groups", []) if g["id"] == row.group_id), None)
    rates = [
        (label, row.indicators[name]) for name, label in INDICATORS.items() if row.indicators.get(name) is not None
    ]
    window = assessment.objection_until
    return Own(
        assessment=assessment,
        label=span_of(assessment.period).label,
        row=row,
        group_title=group_title_of(assessment, row.group_id),
        group_size=len(group["ranking"]) if group else 0,
        board=board_place(assessment, unit_id),
        rates=rates,
        lines=deduction_lines(session, assessment.id or 0, unit_id),
        window_open=assessment.status == "open" and window is not None and at <= window,
    )


def _latest_for(session: Session, unit_id: str) -> tuple[Assessment | None, AssessmentScore | None]:
    query = (
        select(Assessment, AssessmentScore)
        .join(AssessmentScore, col(AssessmentScore.assessment_id) == col(Assessment.id))
        .where(col(AssessmentScore.unit_id) == unit_id, col(Assessment.status).in_(("open", "published")))
        .order_by(col(Assessment.ends_at).desc(), col(Assessment.starts_at).desc(), col(Assessment.version).desc())
        .limit(1)
        .execution_options(populate_existing=True)
    )
    found = session.execute(query).first()
    return (found[0], found[1]) if found else (None, None)


def deduction_lines(session: Session, assessment_id: int, unit_id: str) -> list[Line]:
    deductions = deductions_of(session, assessment_id, unit_id)
    item_ids = {d.occurrence_id for d in deductions if d.occurrence_id is not None}
    items = {o.id: o for o in session.execute(select(Occurrence).where(col(Occurrence.id).in_(item_ids))).scalars()}
    problems: dict[int, list[str]] = {}
    checks = select(CheckResult).where(
        col(CheckResult.subject_id) == unit_id,
        col(CheckResult.occurrence_id).in_(item_ids),
        col(CheckResult.passed).is_(False),
    )
    for check in session.execute(checks.order_by(col(CheckResult.id))).scalars():
        problems.setdefault(check.occurrence_id, []).append(check.problem or "抽查不合格")
    objections = {
        o.deduction_id: o
        for o in session.execute(
            select(Objection).where(col(Objection.assessment_id) == assessment_id, col(Objection.unit_id) == unit_id)
        ).scalars()
    }
    return [
        Line(
            deduction=d,
            label=DEDUCTIONS.get(d.reason, d.reason),
            item=items.get(d.occurrence_id) if d.occurrence_id is not None else None,
            problems=problems.get(d.occurrence_id, []) if d.reason == "check_failed" and d.occurrence_id else [],
            objection=objections.get(d.id or 0),
        )
        for d in deductions
    ]


def page_context(session: Session, unit_id: str, at: datetime, entered: dict[str, Any] | None) -> dict[str, Any]:
    """What unit.html needs for the section; ``entered`` keeps a refused form's text and its message."""
    return {
        "own": own_assessment(session, unit_id, at),
        "objection_states": OBJECTION_STATES,
        "max_reason": MAX_REASON,
        "objection": {"deduction": 0, "reason": "", "error": "", "done": 0} | (entered or {}),
    }


@router.post("/u/{token}/objections/{deduction_id}", response_class=HTMLResponse)
def file_objection(
    token: str,
    deduction_id: RowId,
    session: SessionDep,
    at: NowDep,
    reason: Annotated[str, Form()] = "",
    evidence: Annotated[list[UploadFile] | None, File()] = None,
) -> HTMLResponse:
    """异议 against one deduction: a reason and optional photos, checked like a confirmation's. The photos are
    stored by their content hash before ``object_to`` rules on the rest; a refused objection leaves them unused."""
    unit = units._unit_for(session, secret_key(session), token, at)
    problem = f"异议理由请控制在{MAX_REASON}字以内，当前 {len(reason)} 字。" if len(reason) > MAX_REASON else ""
    if not problem and not reason.strip():
        problem = "请写明异议理由。"
    uploaded, photo_problem = photos.read_photos("", [f for f in (evidence or []) if f.filename])
    problem = problem or photo_problem
    if problem:
        return _again(session, unit, token, at, deduction_id, reason, problem)
    stored = [photos.store_photo(photo.data, photo.kind) for photo in uploaded]
    ctx = context(session)
    try:
        object_to(session, ctx, deduction_id=deduction_id, unit_id=unit.id, reason=reason, evidence=stored, at=at)
    except AssessmentError as refusal:
        session.rollback()
        return _again(session, unit, token, at, deduction_id, reason, str(refusal))
    return units.unit_page_for(session, unit, token, at, objection={"done": deduction_id})


def _again(
    session: Session, unit: Unit, token: str, at: datetime, deduction_id: int, reason: str, problem: str
) -> HTMLResponse:
    """The page again with the refusal in Chinese and the reason as the unit typed it."""
    entered = {"deduction": deduction_id, "reason": reason, "error": problem}
    return units.unit_page_for(session, unit, token, at, status_code=400, objection=entered)
