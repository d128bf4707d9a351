"""What the unit's link page and the managers' case desk both show of a case: the time left, its photos (before and
after, with the verifier's flags) and a photo served by name only when it belongs to the case."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from fastapi.responses import FileResponse, Response
from sqlalchemy import select
from sqlmodel import Session, col

from calendars.loader import CalendarError
from flows import cases
from store.models import Case, Confirmation, Occurrence, UnitRequest
from store.settings import get_settings
from web import photos
from web.common import problem_page, program

THUMB_SIZE = 360


def span_text(delta: timedelta) -> str:
    """A stretch of time as a person reads it: 25 分钟, 2 小时 5 分钟, 3 天 2 小时 (whole minutes, rounded down)."""
    minutes = int(abs(delta).total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} 天 {hours} 小时" if hours else f"{days} 天"
    if hours:
        return f"{hours} 小时 {minutes} 分钟" if minutes else f"{hours} 小时"
    return f"{minutes} 分钟"


def time_left(item: Occurrence, at: datetime) -> str:
    """剩余 25 分钟 or 已超时 10 分钟 for an open item; empty once it is done, waived or parked."""
    if item.status_at(at) not in ("scheduled", "due", "overdue"):
        return ""
    if item.due_at > at:
        return f"剩余 {span_text(item.due_at - at)}"
    return f"已超时 {span_text(at - item.due_at)}"


@dataclass
class Shot:
    """One photo of a case: its stored name, when (EXIF) it was taken, and what the verifier should look at."""

    name: str
    taken: str = ""
    flags: list[str] = field(default_factory=list)
    at: datetime | None = None  # when it was uploaded (after photos: the report's time)


def reports_of(session: Session, occurrence_ids: list[int]) -> list[Confirmation]:
    """The unit's reports (处置) on the case's items, newest first (a 核查 marks a report, it adds none)."""
    if not occurrence_ids:
        return []
    query = (
        select(Confirmation)
        .where(col(Confirmation.occurrence_id).in_(occurrence_ids))
        .order_by(col(Confirmation.id).desc())
    )
    return list(session.execute(query).scalars())


def items_of(session: Session, case_id: int) -> list[Occurrence]:
    """Every dispatch of a case, first first."""
    query = select(Occurrence).where(col(Occurrence.case_id) == case_id).order_by(col(Occurrence.id))
    return list(session.execute(query.execution_options(populate_existing=True)).scalars())


def before_shots(case: Case) -> list[Shot]:
    """The photos as found; flagged when taken long before the case was filed, or far from its place."""
    return [
        Shot(
            name,
            case.photos_taken.get(name, ""),
            _flags(
                case.photos_taken.get(name, ""),
                case.photos_gps.get(name),
                start=case.found_at - timedelta(days=1),
                end=case.found_at,
                case=case,
            ),
            case.found_at,
        )
        for name in case.photos
    ]


def after_shots(case: Case, reports: list[Confirmation], items: list[Occurrence]) -> list[Shot]:
    """The photos of the unit's 处置 reports, newest first; flagged when taken before the dispatch or far away."""
    starts = {item.id: item.starts_at for item in items}
    return [
        Shot(
            name,
            report.evidence_taken.get(name, ""),
            _flags(
                report.evidence_taken.get(name, ""),
                report.evidence_gps.get(name),
                start=starts.get(report.occurrence_id, case.found_at),
                end=report.confirmed_at,
                case=case,
            ),
            report.confirmed_at,
        )
        for report in reports
        for name in report.evidence
    ]


def _flags(taken: str, gps: list[float] | None, *, start: datetime, end: datetime, case: Case) -> list[str]:
    """web/photos.py's flags for the verifier: no capture time, taken outside the window, far from the place."""
    place = (case.latitude, case.longitude) if case.latitude is not None and case.longitude is not None else None
    try:
        programme = program().programme
    except CalendarError:
        programme = None
    radius = programme.photo_radius if programme is not None else 500
    return photos.photo_flags(taken, gps, start=start, end=end, place=place, radius_m=radius, zone=get_settings().zone)


def case_photo_names(case: Case, reports: list[Confirmation]) -> set[str]:
    return set(case.photos) | {name for report in reports for name in report.evidence}


def serve_photo(name: str, allowed: set[str], *, thumb: bool) -> Response:
    """A stored photo that belongs to what the caller may see, or a 404 page; ``thumb``: its small JPEG (the photo
    itself when Pillow cannot make one)."""
    path = photos.evidence_path(name) if name in allowed else None
    if path is None:
        return problem_page(404, "照片不存在", "找不到该照片。")
    media_type = photos.evidence_media_type(name)
    small = photos.thumbnail_path(name, THUMB_SIZE) if thumb else None
    if small:
        path, media_type = small, "image/jpeg"
    headers = {"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"}
    return FileResponse(path, media_type=media_type, headers=headers)


def requests_of(session: Session, occurrence_id: int) -> list[UnitRequest]:
    """A unit's requests on one item, newest first."""
    query = (
        select(UnitRequest)
        .where(col(UnitRequest.occurrence_id) == occurrence_id)
        .order_by(col(UnitRequest.at).desc(), col(UnitRequest.id).desc())
    )
    return list(session.execute(query).scalars())


def pauses(duty_id: str) -> bool:
    """Whether the item's category stops its clock while a request waits."""
    try:
        return cases.pauses_while_requested(program(), duty_id)
    except CalendarError:
        return False
