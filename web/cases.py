"""The inspector's phone form (受理): a problem found on the street becomes a case, dispatched and told at once.

Two doors to the same form: /desk/cases/new for a signed-in inspector or manager (with a CSRF token), and /i/{token},
a signed inspector link that needs no login on the phone and ends when the account's session version changes (a new
password, a logout, a deactivation) or the account is disabled. A hidden ``form_id`` makes a double submit one case.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse
from sqlmodel import Session

from calendars.loader import Program
from flows import cases
from flows.cases import CaseError, Filed, NewCase
from store.db import secret_key
from store.models import Occurrence, User
from web import auth, photos
from web.common import NowDep, SessionDep, context, office_short, page, program
from web.desk import AnyUserDep, check_csrf, desk_page
from web.tokens import BadLink, read_inspector_token
from web.units import LinkError

router = APIRouter()
Short = Annotated[str, Form(max_length=200)]
Coordinate = Annotated[str, Form(max_length=32)]


@dataclass
class Typed:
    """The form's fields as the reporter typed them: shown again, untouched, after a refusal."""

    category: str = ""
    place: str = ""
    note: str = ""
    latitude: str = ""
    longitude: str = ""
    unit: str = ""
    form_id: str = field(default_factory=lambda: secrets.token_urlsafe(12))


def typed_form(
    category: Annotated[str, Form(max_length=64)] = "",
    place: Annotated[str, Form(max_length=1000)] = "",
    note: Annotated[str, Form(max_length=4000)] = "",
    latitude: Coordinate = "",
    longitude: Coordinate = "",
    unit: Annotated[str, Form(max_length=64)] = "",
    form_id: Annotated[str, Form(max_length=64)] = "",
) -> Typed:
    """The form's fields, from either door."""
    return Typed(category, place, note, latitude, longitude, unit, form_id or secrets.token_urlsafe(12))


TypedForm = Annotated[Typed, Depends(typed_form)]
Photos = Annotated[list[UploadFile] | None, File()]


def filing_district(user: User) -> str | None:
    """The district an account may file for (file_case's ``district``): None for the city and district-less
    inspectors and intake accounts, who may file anywhere."""
    return None if user.role == "city" else user.district


# ---------------------------------------------------------------- a signed-in inspector or manager


@router.get("/desk/cases/new", response_class=HTMLResponse)
def new_case_form(request: Request, user: AnyUserDep) -> HTMLResponse:
    return _desk_form(request, user, Typed())


@router.post("/desk/cases/new", response_class=HTMLResponse)
def file_from_desk(
    request: Request,
    session: SessionDep,
    at: NowDep,
    user: AnyUserDep,
    typed: TypedForm,
    csrf: Annotated[str, Form(max_length=64)] = "",
    evidence: Photos = None,
) -> HTMLResponse:
    refused = check_csrf(request, csrf)
    if refused:
        return refused
    filed, error, status = _file(session, user, typed, evidence, at=at)
    if filed is None:
        return _desk_form(request, user, typed, error=error, status_code=status)
    return _filed_page(session, filed, again="/desk/cases/new", at=at)


def _desk_form(request: Request, user: User, typed: Typed, *, error: str = "", status_code: int = 200) -> HTMLResponse:
    form = _form_context(program(), user, typed, error)
    return desk_page(request, user, "case_new.html", status_code, action="/desk/cases/new", **form)


# ---------------------------------------------------------------- the signed inspector link


@router.get("/i/{token}", response_class=HTMLResponse)
def inspector_form(token: str, session: SessionDep, at: NowDep) -> HTMLResponse:
    """The form behind an inspector's link. Changes nothing: link-preview bots fetch links too."""
    user = _inspector_for(session, token, at)
    return _link_form(token, user, Typed())


@router.post("/i/{token}", response_class=HTMLResponse)
def file_from_link(
    token: str, session: SessionDep, at: NowDep, typed: TypedForm, evidence: Photos = None
) -> HTMLResponse:
    """No CSRF token: the link itself is the credential, and another site cannot know it."""
    user = _inspector_for(session, token, at)
    filed, error, status = _file(session, user, typed, evidence, at=at)
    if filed is None:
        return _link_form(token, user, typed, error=error, status_code=status)
    return _filed_page(session, filed, again=f"/i/{token}", at=at)


def _inspector_for(session: Session, token: str, at: datetime) -> User:
    """The account an inspector link names, if the link is genuine, unexpired and made with the account's current
    session version, and the account is active and may file."""
    try:
        claim = read_inspector_token(secret_key(session), token, at=at)
    except BadLink as bad:
        raise LinkError(bad.reason) from None
    user = session.get(User, claim.user_id, populate_existing=True)
    if user is None:
        raise LinkError("unknown")
    if not user.active or claim.version != user.session_version or user.role not in auth.FILING_ROLES:
        raise LinkError("revoked")
    return user


def _link_form(token: str, user: User, typed: Typed, *, error: str = "", status_code: int = 200) -> HTMLResponse:
    form = _form_context(program(), user, typed, error)
    return page("case_new.html", status_code, action=f"/i/{token}", csrf="", **form)


# ---------------------------------------------------------------- shared


def _form_context(known: Program, user: User, typed: Typed, error: str) -> dict[str, Any]:
    """The categories (title and clock) and, for each, the units that may answer for it within the account's
    district: the dispatcher's choice when the reporter knows the unit better than the place text says."""
    district = filing_district(user)
    choices = []
    for category in known.categories.values():
        units = [
            (unit_id, known.units[unit_id].name)
            for unit_id in cases.candidates(known, category)
            if district is None or (known.units[unit_id].district or unit_id) == district
        ]
        choices.append((category, category.duration.label, units))
    return {
        "reporter": user,
        "choices": choices,
        "typed": typed,
        "error": error,
        "max_files": photos.MAX_FILES,
        "max_place": cases.MAX_PLACE,
        "max_note": cases.MAX_NOTE,
    }


def _file(
    session: Session, user: User, typed: Typed, evidence: list[UploadFile] | None, *, at: datetime
) -> tuple[Filed | None, str, int]:
    """File the case and send its first message now; or None, the problem in Chinese and the status to answer."""
    files = [f for f in (evidence or []) if f.filename]
    again = "照片需重新选择。" if files else ""
    try:
        latitude, longitude = _coordinates(typed.latitude, typed.longitude)
    except CaseError as bad:
        return None, f"{bad}{again}", bad.status
    uploaded, problem = photos.read_photos(typed.note, files)
    if problem:
        return None, f"{problem}{again}", 400
    new = NewCase(
        category_id=typed.category,
        place=typed.place,
        note=typed.note,
        latitude=latitude,
        longitude=longitude,
        unit_id=typed.unit or None,
        external_id=f"form:{typed.form_id}"[:64],
        **case_photos(photos.keep(uploaded)),
    )
    ctx = context(session)
    try:
        filed = cases.file_case(
            session,
            ctx,
            new,
            reporter=f"user:{user.username}",
            source="inspector",
            at=at,
            district=filing_district(user),
        )
    except CaseError as refusal:
        session.rollback()
        return None, f"{refusal}{again}", refusal.status
    cases.send_now(session, ctx, filed.delivery_ids, at=at)
    return filed, "", 200


def case_photos(kept: photos.Kept) -> dict[str, Any]:
    """NewCase's photo fields from the stored photos."""
    return {"photos": kept.names, "photos_taken": kept.taken, "photos_gps": kept.gps}


def _coordinates(latitude: str, longitude: str) -> tuple[float | None, float | None]:
    """Both empty (no position), or two numbers; file_case checks the ranges."""
    if not latitude.strip() and not longitude.strip():
        return None, None
    try:
        return float(latitude), float(longitude)
    except ValueError:
        raise CaseError("定位须同时填写纬度和经度（数字），或都留空。") from None


def _filed_page(session: Session, filed: Filed, *, again: str, at: datetime) -> HTMLResponse:
    """已受理: the case number, the unit it went to (or who will choose one) and its deadline."""
    case = filed.case
    item = session.get(Occurrence, case.occurrence_id) if case.occurrence_id else None
    known = program()
    unit = known.units.get(item.unit_id) if item is not None else None
    category = known.categories.get(case.category_id)
    response = page(
        "case_filed.html",
        case=case,
        item=item,
        unit_name=unit.name if unit else "",
        category_title=category.title if category else case.category_id,
        office=office_short(),
        again=again,
        created=filed.created,
    )
    response.headers["X-Duties-Case"] = str(case.id)
    return response
