"""What units see: the confirmation page behind each link, and a unit's own page of open items.

GET never changes anything (link-preview bots in DingTalk and WeChat fetch links too). POST is idempotent: the form
carries a fresh ``form_id``, and the same form submitted twice is recorded once.
"""

from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta
from typing import Annotated, Any, NamedTuple

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import and_, bindparam, exists, select
from sqlmodel import Session, col

from calendars.loader import CalendarError
from flows import cases, ladder, spot_checks
from flows.cases import Asked, CaseError
from flows.steps import confirm, confirmation_link
from store.db import secret_key
from store.models import (
    REQUEST_KINDS,
    REQUEST_STATES,
    Case,
    CheckResult,
    Confirmation,
    Duty,
    Escalation,
    Occurrence,
    Unit,
    UnitRequest,
)
from store.queries import find_occurrences
from store.settings import get_settings
from web import case_views, photos, unit_assess
from web.common import NowDep, SessionDep, context, office_short, page, problem_page, program
from web.tokens import BadLink, read_token, read_unit_token

OPEN_STATUSES = ("scheduled", "due", "overdue", "parked")
LINK_PROBLEMS = {
    "tampered": (400, "链接无效", "该链接不完整或已被改动，无法使用。请直接点击通知中的原始链接，不要手工修改。"),
    "expired": (410, "链接已过期", "该链接已超过有效期。请联系{office}或使用最新通知中的链接。"),
    "revoked": (410, "链接已作废", "该链接已被管理部门作废，请使用最新通知中的链接。"),
    "unknown": (404, "事项不存在", "找不到该链接对应的事项，可能已被撤销。请联系{office}。"),
}

router = APIRouter()


class LinkError(Exception):
    """A link that cannot be used: tampered, expired, revoked or unknown. Answered with a Chinese page."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def link_problem(reason: str) -> HTMLResponse:
    status_code, title, message = LINK_PROBLEMS[reason]
    return problem_page(status_code, title, message.format(office=office_short()))


class Item(NamedTuple):
    """The item behind a link with everything of it the page shows that one query can fetch."""

    occurrence: Occurrence
    duty: Duty
    unit: Unit
    reports: list[Confirmation]  # oldest first
    notice: Escalation | None  # the issued notice of its current level
    case: Case | None  # the case it was dispatched for
    asked: bool  # the unit has made a request (退回, 延期, 挂账) on it: only then are they read
    checked: bool  # a spot check's results were recorded on it: only then are they read


# One query, built once: the item, its duty and unit, the notice of its level and its case (each at most one row:
# escalations are unique per item and level), whether the unit asked anything, and one row per report. Separate
# lookups cost a round trip each, and under 50 clients the round trips, not the Python, made the page wait.
_ASKED = exists().where(col(UnitRequest.occurrence_id) == col(Occurrence.id)).label("asked")
_CHECKED = exists().where(col(CheckResult.occurrence_id) == col(Occurrence.id)).label("checked")
_ITEM_WITH_REPORTS = (
    select(Occurrence, Duty, Unit, Escalation, Case, Confirmation, _ASKED, _CHECKED)
    .join(Duty, col(Duty.id) == col(Occurrence.duty_id))
    .join(Unit, col(Unit.id) == col(Occurrence.unit_id))
    .outerjoin(
        Escalation,
        and_(
            col(Occurrence.level) > 0,
            col(Escalation.occurrence_id) == col(Occurrence.id),
            col(Escalation.level) == col(Occurrence.level),
            col(Escalation.status) == "issued",
        ),
    )
    .outerjoin(Case, col(Case.id) == col(Occurrence.case_id))
    .outerjoin(Confirmation, col(Confirmation.occurrence_id) == col(Occurrence.id))
    .where(col(Occurrence.id) == bindparam("occurrence_id"))
    .order_by(col(Confirmation.id))
    .execution_options(populate_existing=True)
)


def _load_item(session: Session, occurrence_id: int) -> Item | None:
    rows = session.execute(_ITEM_WITH_REPORTS, {"occurrence_id": occurrence_id}).all()
    if not rows:
        return None
    occurrence, duty, unit, notice, case, _, asked, checked = rows[0]
    reports = [row[5] for row in rows if row[5] is not None]
    return Item(occurrence, duty, unit, reports, notice, case, bool(asked), bool(checked))


def _reloaded(session: Session, occurrence_id: int) -> Item:
    """The item again after a change (its state, reports, notice), without checking the token a second time."""
    item = _load_item(session, occurrence_id)
    if item is None:  # removed meanwhile
        raise LinkError("unknown")
    return item


def _occurrence_for(session: Session, token: str, at: datetime) -> Item:
    try:
        claim = read_token(secret_key(session), token, at=at)
    except BadLink as bad:
        raise LinkError(bad.reason) from None
    item = _load_item(session, claim.occurrence_id)
    if item is None or item.occurrence.unit_id != claim.unit_id:
        raise LinkError("unknown")
    # A revoked item refuses every link, even one of its current version: a manager must re-issue first.
    if claim.version != item.occurrence.link_version or item.occurrence.links_revoked:
        raise LinkError("revoked")
    return item


def _confirm_page(
    session: Session,
    token: str,
    at: datetime,
    *,
    status_code: int = 200,
    note: str = "",
    amount: str = "",
    error: str = "",
    outcome: str = "",
    found: Item | None = None,
    entered: dict[str, str] | None = None,
    filed_case: str = "",
    asked: dict[str, str] | None = None,
    subjects: list[Unit] | None = None,
) -> HTMLResponse:
    """The page for a token; ``found`` is the item the caller has already checked the token for (not read twice).

    ``entered``: the spot check's fields as the unit filled them in (subject, passed, problem), shown again after
    an error. ``asked``: a refused request's fields (kind, reason, due, review_on) and its ``error``. ``subjects``: the
    units its check may name, if the caller has them already."""
    item = found or _occurrence_for(session, token, at)
    occurrence, duty, unit, reports = item.occurrence, item.duty, item.unit, item.reports
    subjects = _subjects(session, occurrence, duty, unit) if subjects is None else subjects
    response = page(
        "confirm.html",
        status_code,
        notice=item.notice,
        ack_path=f"/c/{token}/ack",
        link_base=f"/c/{token}",
        occurrence=occurrence,
        duty=duty,
        unit=unit,
        at=at,
        status=occurrence.status_at(at),
        reports=reports,
        note=note,
        amount=amount,
        error=error,
        form_id=secrets.token_urlsafe(12),  # a fresh form each time: the same form submitted twice counts once
        tasks=[t for t in occurrence.detail.split("；") if t],
        max_files=photos.MAX_FILES,
        subjects=subjects,
        subject_noun=spot_checks.noun_of(subjects),
        check_results=spot_checks.results_of(session, occurrence.id or 0) if item.checked else [],
        entered=entered or {},
        filed_case=filed_case,
        max_problem=spot_checks.MAX_PROBLEM,
        **_pushback(session, item, at, asked or {}),
    )
    if outcome:
        response.headers["X-Duties-Outcome"] = outcome
    return response


@router.get("/c/{token}", response_class=HTMLResponse)
def show_confirmation(token: str, session: SessionDep, at: NowDep) -> HTMLResponse:
    """Shows the duty and the form. Changes nothing: link-preview bots fetch links too."""
    _reading_only(session)
    return _confirm_page(session, token, at)


def _reading_only(session: Session) -> None:
    """On PostgreSQL, a page that only reads (or reads after its writes are committed) runs its queries without a
    transaction around them: BEGIN and the ROLLBACK when the session closes were two of a GET's three round trips. The
    connection goes back to the pool in its usual mode. SQLite is read in-process, where a transaction costs no round
    trip. Nothing changes for a session already in a transaction."""
    if session.get_bind().dialect.name == "postgresql" and not session.in_transaction():
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


# Plain defs, not async: the store is reached with blocking calls, and on the event loop they would hold every other
# request while waiting for a pooled connection (measured: a deadlock at 50 concurrent clients).
@router.post("/c/{token}", response_class=HTMLResponse)
def post_confirmation(
    token: str,
    request: Request,
    session: SessionDep,
    at: NowDep,
    note: Annotated[str, Form()] = "",
    amount: Annotated[str, Form()] = "",
    form_id: Annotated[str, Form(max_length=64)] = "single",
    evidence: Annotated[list[UploadFile] | None, File()] = None,
    subject: Annotated[str, Form(max_length=64)] = "",
    passed: Annotated[str, Form(max_length=8)] = "",
    check_problem: Annotated[str, Form(alias="problem", max_length=4000)] = "",
) -> HTMLResponse:
    """A report; a spot check that rates units also says which one it checked and what it found (``subject``,
    ``passed`` 1 or 0, ``problem``, required when 0)."""
    found = _occurrence_for(session, token, at)
    occurrence, duty, unit = found.occurrence, found.duty, found.unit
    quantity, problem = _read_amount(amount, is_target=duty.kind == "target" and occurrence.finding_id is None)
    subjects = _subjects(session, occurrence, duty, unit)
    check, check_refusal = spot_checks.read_check(subjects, subject, passed, check_problem) if subjects else (None, "")
    uploaded, photo_problem = photos.read_photos(note, [f for f in (evidence or []) if f.filename])
    problem = problem or check_refusal or photo_problem
    if problem:  # show the form again with what the unit typed, so nothing entered is lost
        entered = {"subject": subject, "passed": passed, "problem": check_problem}
        return _confirm_page(
            session,
            token,
            at,
            status_code=400,
            found=found,
            note=note,
            amount=amount,
            error=problem,
            entered=entered,
            subjects=subjects,
        )
    kept = photos.keep(uploaded)
    occurrence_id = occurrence.id or 0  # read now: confirm() expires the item, and reading it then costs a query
    outcome = confirm(
        session,
        occurrence_id=occurrence_id,
        note=note.strip(),
        evidence=kept.names,
        evidence_taken=kept.taken,
        evidence_gps=kept.gps,
        at=at,
        client=request.headers.get("user-agent", ""),
        amount=quantity,
        form_id=form_id or "single",
        check=check,
    )
    if outcome == "closed":
        return problem_page(409, "事项已关闭", "该事项已由管理部门免除，无需确认。")
    filed = ""
    if check is not None and not check.passed:  # a 不合格 finding becomes a case, dispatched now (H2, issue 15)
        filed = spot_checks.file_finding(
            session,
            context(session),
            occurrence=occurrence,
            form_id=form_id or "single",
            at=at,
            photos=kept.names,
            photos_taken=kept.taken,
            photos_gps=kept.gps,
        )
    # Its new state and reports, once everything is written; the token was checked above and is not read again.
    _reading_only(session)
    found = _reloaded(session, occurrence_id)
    return _confirm_page(session, token, at, outcome=outcome, found=found, filed_case=filed, subjects=subjects)


@router.post("/c/{token}/ack", response_class=HTMLResponse)
def acknowledge_notice(token: str, session: SessionDep, at: NowDep) -> HTMLResponse:
    """收到: the unit has read the notice of the item's current level. Stops its repeats, not its clock."""
    found = _occurrence_for(session, token, at)
    occurrence_id = found.occurrence.id or 0
    done = ladder.acknowledge(session, occurrence_id=occurrence_id, actor=f"unit:{found.unit.id}", at=at)
    found = _reloaded(session, occurrence_id)
    return _confirm_page(session, token, at, outcome="acknowledged" if done else "already", found=found)


ASKED_NOTICE = "已提交，等待审批；审批前请照常处置，时限照常计算。"
ASKED_NOTICE_PAUSED = "已提交，等待审批；审批期间暂停计时，审批后按结果继续计时。"


@router.post("/c/{token}/requests", response_class=HTMLResponse)
def post_request(
    token: str,
    session: SessionDep,
    at: NowDep,
    kind: Annotated[str, Form(max_length=16)] = "",
    reason: Annotated[str, Form(max_length=4000)] = "",
    due: Annotated[str, Form(max_length=32)] = "",
    review_on: Annotated[str, Form(max_length=32)] = "",
    form_id: Annotated[str, Form(max_length=64)] = "",
) -> HTMLResponse:
    """退回, 延期申请 or 挂账申请 on this item: it waits for a manager (flows.cases.ask). The same form twice is one
    request (``already``); a refusal shows the page again, 400, with what the unit typed."""
    occurrence_id = _occurrence_for(session, token, at).occurrence.id or 0
    typed = {"kind": kind, "reason": reason, "due": due, "review_on": review_on}
    try:
        asked = Asked(kind, reason, _asked_due(due, kind), _asked_day(review_on, kind), form_id)
        earlier = bool(form_id) and _asked_before(session, occurrence_id, form_id)
        cases.ask(session, context(session), occurrence_id=occurrence_id, asked=asked, at=at)
    except CaseError as refusal:
        session.rollback()
        status = refusal.status if refusal.status in (400, 409) else 400
        found = _reloaded(session, occurrence_id)
        return _confirm_page(session, token, at, status_code=status, found=found, asked=typed | {"error": str(refusal)})
    found = _reloaded(session, occurrence_id)
    return _confirm_page(session, token, at, outcome="already" if earlier else "requested", found=found)


def _asked_due(text_: str, kind: str) -> datetime | None:
    """延期申请's new deadline, typed as 2026-03-05T17:00 (a phone's date-time field) in local time."""
    if kind != "extend":
        return None
    try:
        moment = datetime.fromisoformat(text_.strip())
    except ValueError:
        raise CaseError("请填写申请延期至的日期和时间，如 2026-03-05 17:00。") from None
    return moment.replace(tzinfo=get_settings().zone) if moment.tzinfo is None else moment


def _asked_day(text_: str, kind: str) -> date | None:
    if kind != "park":
        return None
    try:
        return date.fromisoformat(text_.strip())
    except ValueError:
        raise CaseError("请填写复核日期，如 2026-04-01。") from None


def _asked_before(session: Session, occurrence_id: int, form_id: str) -> bool:
    query = select(
        UnitRequest.id
    ).where(  # type: ignore[call-overload]
        col(UnitRequest.occurrence_id) == occurrence_id, col(UnitRequest.form_id) == form_id[:64]
    )
    return session.execute(query).first() is not None


@router.get("/c/{token}/photos/{name}")
def case_photo(token: str, name: str, session: SessionDep, at: NowDep, thumb: bool = False) -> Response:
    """A photo of this item's case as found, or of this item's reports: nothing else, whatever the name."""
    item = _occurrence_for(session, token, at)
    allowed = {n for report in item.reports for n in report.evidence} | set(item.case.photos if item.case else [])
    return case_views.serve_photo(name, allowed, thumb=thumb)


def _pushback(session: Session, item: Item, at: datetime, asked: dict[str, str]) -> dict[str, Any]:
    """What the page shows of the item's case and of the unit's requests: the case as found, the time left, the
    waiting request (its forms hidden) and the decided ones with their answers."""
    occurrence, case = item.occurrence, item.case
    requests = case_views.requests_of(session, occurrence.id or 0) if item.asked else []
    waiting = next((r for r in requests if r.status == "open"), None)
    zone = get_settings().zone
    return {
        "case": case,
        "category": _category_of(occurrence.duty_id) if case else None,
        "case_photos": case_views.before_shots(case) if case else [],
        "time_left": case_views.time_left(occurrence, at),
        "requests": requests,
        "waiting": waiting,
        "may_ask": waiting is None and occurrence.status_at(at) in ("scheduled", "due", "overdue"),
        "request_kinds": REQUEST_KINDS,
        "request_states": REQUEST_STATES,
        "asked": asked,
        "request_form_id": secrets.token_urlsafe(12),
        "asked_notice": ASKED_NOTICE_PAUSED if case_views.pauses(occurrence.duty_id) else ASKED_NOTICE,
        "due_min": f"{max(at, occurrence.due_at).astimezone(zone):%Y-%m-%dT%H:%M}",
        "review_min": (at.astimezone(zone).date() + timedelta(days=1)).isoformat(),
    }


def _category_of(duty_id: str) -> Any:
    try:
        duty = program().duties.get(duty_id)
    except CalendarError:
        return None
    return duty.category if duty is not None else None


def _subjects(session: Session, occurrence: Occurrence, duty: Duty, unit: Unit) -> list[Unit]:
    """The units this item's check reports may name (the markets of 举措2); none for every other item."""
    selectors = spot_checks.selectors_of(duty)
    if not selectors or occurrence.finding_id is not None:
        return []
    try:
        known = program()
    except CalendarError:  # the unit can still record its check; it names no market until the calendars are fixed
        return []
    return spot_checks.subjects_for(session, known, selectors, unit)


@router.get("/u/{token}", response_class=HTMLResponse)
def unit_page(token: str, session: SessionDep, at: NowDep) -> HTMLResponse:
    """Every open item of the unit the link names, soonest due first, each with its own confirmation link; an item
    whose links were revoked is listed without one (``confirmation_link`` issues none for it)."""
    unit = _unit_for(session, secret_key(session), token, at)
    return unit_page_for(session, unit, token, at)


def unit_page_for(
    session: Session,
    unit: Unit,
    token: str,
    at: datetime,
    *,
    status_code: int = 200,
    objection: dict[str, Any] | None = None,
) -> HTMLResponse:
    """The unit page, with its 本单位考核 section (web.unit_assess); ``objection`` keeps a refused 异议's text."""
    secret = secret_key(session)
    settings = get_settings()
    items = [
        (occurrence, duty, occurrence.status_at(at), confirmation_link(settings, secret, occurrence, at=at))
        for occurrence, duty, _ in find_occurrences(session, at=at, unit=unit.id, hide_unannounced=True)
        if occurrence.status_at(at) in OPEN_STATUSES
    ]
    items.sort(key=lambda item: (item[2] != "overdue", item[0].due_at))
    assessed = unit_assess.page_context(session, unit.id, at, objection)
    waiting = _waiting_of(session, unit.id)
    return page("unit.html", status_code, unit=unit, items=items, at=at, token=token, waiting=waiting, **assessed)


def _waiting_of(session: Session, unit_id: str) -> dict[int, UnitRequest]:
    """The unit's requests waiting for a manager, by item: the unit page shows each beside its item."""
    query = select(UnitRequest).where(col(UnitRequest.unit_id) == unit_id, col(UnitRequest.status) == "open")
    return {request.occurrence_id: request for request in session.execute(query).scalars()}


def _unit_for(session: Session, secret: str, token: str, at: datetime) -> Unit:
    """The unit a unit link names, if the link is good and made with the unit's current link version."""
    try:
        claim = read_unit_token(secret, token, at=at)
    except BadLink as bad:
        raise LinkError(bad.reason) from None
    unit = session.get(Unit, claim.unit_id, populate_existing=True)
    if unit is None:
        raise LinkError("unknown")
    if claim.version != unit.link_version:
        raise LinkError("revoked")
    return unit


def _read_amount(text_: str, *, is_target: bool) -> tuple[float, str]:
    """Progress towards a target is a positive number; every other report counts as one."""
    if not is_target:
        return 1.0, ""
    try:
        value = float(text_.strip())
    except ValueError:
        return 0.0, "请填写本次完成的数量（数字）。"
    if not 0 < value <= 1_000_000:
        return 0.0, "本次完成数量应大于 0。"
    return value, ""
