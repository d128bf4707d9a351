"""What every route shares: the session and clock dependencies, page rendering, and Chinese error pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Path
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlmodel import Session, col

from calendars.loader import CalendarError, Program
from calendars.schema import ProgrammeSpec
from flows import runtime
from flows.common import Context
from store.db import session_scope
from store.models import LEVEL_NAMES, STATUS_LABELS, Duty, Occurrence, Unit, User
from store.queries import find_occurrences
from store.settings import get_settings
from templates import render
from web.auth import Scope


async def get_session() -> AsyncIterator[Session]:
    """A session per request. Async, because opening one does no I/O and closing one only hands its connection back
    to the pool (never waits for one): as a plain def, each request paid two more hops through the thread pool.
    The routes that use it are plain defs, so every query runs in the pool, off the event loop."""
    with session_scope() as session:
        yield session


async def clock() -> datetime:
    # async: it does no I/O, and a plain def dependency costs each request a hop through the thread pool.
    return runtime.now()


SessionDep = Annotated[Session, Depends(get_session)]
# A row id in a path: beyond a 64-bit integer the database could not even look, so it is a 422, not a 500.
RowId = Annotated[int, Path(ge=1, le=2**62)]
NowDep = Annotated[datetime, Depends(clock)]


def scope_filters(scope: Scope, *, district: str | None = None) -> dict[str, Any]:
    """What a manager may see, as ``find_occurrences`` filters: the one place that decides it, for lists, counts and
    single items, on the desk and through the API alike.

    A district sees its own units only (``district`` narrows a city manager's view, never widens a district's), and
    no unannounced check before its ``visible_from``: it could be the one inspected. Only the city office, which
    draws the days, sees them ahead. The moment is the caller's ``at``, never the wall clock.
    """
    return {"district": scope.district_filter or district or None, "hide_unannounced": scope.role != "city"}


def scoped_item(
    session: Session, scope: Scope, occurrence_id: int, *, at: datetime
) -> tuple[Occurrence, Duty, Unit] | None:
    """One item, if ``scope`` may see it at ``at``; otherwise None, exactly as for an id that does not exist."""
    found = find_occurrences(session, at=at, occurrence_id=occurrence_id, **scope_filters(scope))
    if not found or not scope.allows(found[0][2]):  # allows(): a district account without a district sees nothing
        return None
    return found[0]


@lru_cache
def program() -> Program:
    """The calendars on disk, read once per process (the desk needs working days and ladders)."""
    return runtime.load_calendars()


def context(session: Session) -> Context:
    """What the steps need to act for a request: the calendars, settings, signing key and sender."""
    return runtime.make_context(session, program())


def programme() -> ProgrammeSpec | None:
    """The guidance the pages cite and the office they name; None when the calendars name none or cannot be read
    (an error page must still render)."""
    try:
        return program().programme
    except CalendarError:
        return None


def office_short() -> str:
    """How a sentence names the office: 请联系市城管办."""
    found = programme()
    return found.office_short if found else "管理部门"


def page(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    settings = get_settings()
    html = render(
        f"pages/{name}",
        zone=settings.zone,
        status_labels=STATUS_LABELS,
        level_names=LEVEL_NAMES,
        programme=programme(),
        **context,
    )
    return HTMLResponse(html, status_code=status_code)


def problem_page(status_code: int, title: str, message: str, **context: Any) -> HTMLResponse:
    return page("message.html", status_code, title=title, message=message, kind="error", **context)


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def download(data: bytes, filename: str, media_type: str = XLSX) -> Response:
    """A file to save (an export): its media type and its Chinese name, encoded as RFC 6266 asks."""
    disposition = f"attachment; filename*=UTF-8''{quote(filename)}"
    return Response(data, media_type=media_type, headers={"Content-Disposition": disposition})


def account_names(session: Session) -> dict[str, str]:
    """How a timeline names the accounts that are not managers': "user:li" → "巡查员 li" (templates.labels)."""
    rows = session.execute(select(User).where(col(User.role).in_(("inspector", "intake")))).scalars()
    words = {"inspector": "巡查员", "intake": "接口"}
    return {f"user:{user.username}": f"{words[user.role]} {user.display_name or user.username}" for user in rows}
