"""The web app: confirmation links for units, the overdue view for managers, a JSON API and /healthz."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import select, text
from sqlmodel import Session, col
from starlette.exceptions import HTTPException as StarletteHTTPException

from flows import runtime
from flows.steps import confirm
from notify import outbox
from store.db import secret_key, session_scope
from store.models import DELIVERY_STATES, LEVEL_NAMES, STATUS_LABELS, STATUSES, Confirmation, Duty, Occurrence, Unit
from store.queries import day_bound, delivery_json, find_deliveries, get_value, occurrences_json
from store.settings import get_settings
from templates import render
from web.tokens import BadLink, read_token

MAX_NOTE = 2000
MAX_FILES = 6
MAX_FILE_BYTES = 10 * 1024 * 1024
IMAGE_TYPES = {b"\xff\xd8\xff": "jpg", b"\x89PNG\r\n\x1a\n": "png"}
LINK_PROBLEMS = {
    "tampered": (400, "链接无效", "该链接不完整或已被改动，无法使用。请直接点击通知中的原始链接，不要手工修改。"),
    "expired": (410, "链接已过期", "该链接已超过有效期。请联系市城管办或使用最新通知中的链接。"),
    "unknown": (404, "事项不存在", "找不到该链接对应的事项，可能已被撤销。请联系市城管办。"),
}

app = FastAPI(title="duties", description="城市管理常态化任务：确认链接、管理台与 JSON 接口", version="1")


def get_session() -> Iterator[Session]:
    with session_scope() as session:
        yield session


def clock() -> datetime:
    return runtime.now()


SessionDep = Annotated[Session, Depends(get_session)]
NowDep = Annotated[datetime, Depends(clock)]


def page(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    settings = get_settings()
    html = render(f"pages/{name}", zone=settings.zone, status_labels=STATUS_LABELS, level_names=LEVEL_NAMES, **context)
    return HTMLResponse(html, status_code=status_code)


def problem_page(status_code: int, title: str, message: str) -> HTMLResponse:
    return page("message.html", status_code, title=title, message=message, kind="error")


@app.exception_handler(StarletteHTTPException)
async def http_error(request: Request, exc: StarletteHTTPException) -> Any:
    if request.url.path.startswith("/api/") or request.url.path == "/healthz":
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
    titles = {404: "页面不存在", 405: "不支持的请求方式"}
    return problem_page(exc.status_code, titles.get(exc.status_code, "请求有误"), str(exc.detail))


@app.get("/healthz")
def healthz(session: SessionDep, at: NowDep) -> JSONResponse:
    try:
        session.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means the store is down; report it, do not crash
        return JSONResponse({"status": "error", "database": f"error: {type(exc).__name__}"}, status_code=503)
    last = get_value(session, key="last_tick_at")
    age = None if last is None else round((at - datetime.fromisoformat(last)).total_seconds())
    return JSONResponse({"status": "ok", "database": "ok", "last_tick_at": last, "last_tick_age_seconds": age})


# ---------------------------------------------------------------- confirmation links


class LinkError(Exception):
    """A confirmation link that cannot be used: tampered, expired or unknown. Answered with a Chinese page."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _occurrence_for(session: Session, token: str, at: datetime) -> tuple[Occurrence, Duty, Unit]:
    try:
        claim = read_token(secret_key(session), token, at=at)
    except BadLink as bad:
        raise LinkError(bad.reason) from None
    occurrence = session.get(Occurrence, claim.occurrence_id)
    if occurrence is None or occurrence.unit_id != claim.unit_id:
        raise LinkError("unknown")
    duty, unit = session.get(Duty, occurrence.duty_id), session.get(Unit, occurrence.unit_id)
    assert duty is not None and unit is not None
    return occurrence, duty, unit


@app.exception_handler(LinkError)
async def link_error(request: Request, exc: LinkError) -> HTMLResponse:
    status_code, title, message = LINK_PROBLEMS[exc.reason]
    return problem_page(status_code, title, message)


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
) -> HTMLResponse:
    occurrence, duty, unit = _occurrence_for(session, token, at)
    reports = list(
        session.execute(
            select(Confirmation).where(col(Confirmation.occurrence_id) == occurrence.id).order_by(col(Confirmation.id))
        ).scalars()
    )
    response = page(
        "confirm.html",
        status_code,
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
        max_files=MAX_FILES,
    )
    if outcome:
        response.headers["X-Duties-Outcome"] = outcome
    return response


@app.get("/c/{token}", response_class=HTMLResponse)
def show_confirmation(token: str, session: SessionDep, at: NowDep) -> HTMLResponse:
    """Shows the duty and the form. Changes nothing: link-preview bots fetch links too."""
    return _confirm_page(session, token, at)


@app.post("/c/{token}", response_class=HTMLResponse)
async def post_confirmation(
    token: str,
    request: Request,
    session: SessionDep,
    at: NowDep,
    note: Annotated[str, Form()] = "",
    amount: Annotated[str, Form()] = "",
    form_id: Annotated[str, Form(max_length=64)] = "single",
    evidence: Annotated[list[UploadFile] | None, File()] = None,
) -> HTMLResponse:
    occurrence, duty, _ = _occurrence_for(session, token, at)
    quantity, problem = _read_amount(amount, is_target=duty.kind == "target")
    photos, photo_problem = await _read_photos(note, [f for f in (evidence or []) if f.filename])
    problem = problem or photo_problem
    if problem:  # show the form again with what the unit typed, so nothing entered is lost
        return _confirm_page(session, token, at, status_code=400, note=note, amount=amount, error=problem)
    stored = [_store_photo(data, kind) for data, kind in photos]
    outcome = confirm(
        session,
        occurrence_id=occurrence.id or 0,
        note=note.strip(),
        evidence=stored,
        at=at,
        client=request.headers.get("user-agent", ""),
        amount=quantity,
        form_id=form_id or "single",
    )
    session.expire_all()
    if outcome == "closed":
        return problem_page(409, "事项已关闭", "该事项已由管理部门免除，无需确认。")
    return _confirm_page(session, token, at, outcome=outcome)


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


async def _read_photos(note: str, files: list[UploadFile]) -> tuple[list[tuple[bytes, str]], str]:
    """The uploaded photos as (bytes, extension), or a problem in Chinese for the unit to fix."""
    if len(note) > MAX_NOTE:
        return [], f"说明最多 {MAX_NOTE} 字，当前 {len(note)} 字。"
    if len(files) > MAX_FILES:
        return [], f"最多上传 {MAX_FILES} 张照片，本次选择了 {len(files)} 张。"
    photos = []
    for upload in files:
        data = await upload.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            return [], f"照片“{upload.filename}”超过 10 MB，请压缩后重新选择。"
        kind = next((ext for magic, ext in IMAGE_TYPES.items() if data.startswith(magic)), None)
        if kind is None:
            return [], f"文件“{upload.filename}”不是 JPEG 或 PNG 图片，请重新选择。"
        photos.append((data, kind))
    return photos, ""


def _store_photo(data: bytes, kind: str) -> str:
    """Keep a photo under var/evidence by its content hash; the same photo twice is stored once."""
    digest = hashlib.sha256(data).hexdigest()
    folder = get_settings().var_dir / "evidence" / digest[:2]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{digest}.{kind}"
    if not path.exists():
        partial = path.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(path)
    return f"{digest}.{kind}"


# ---------------------------------------------------------------- manager view and API


@app.get("/", include_in_schema=False)
@app.get("/desk", include_in_schema=False)
def desk_home() -> RedirectResponse:
    return RedirectResponse("/desk/overdue")


@app.get("/desk/overdue", response_class=HTMLResponse)
def desk_overdue(session: SessionDep, at: NowDep) -> HTMLResponse:
    items = occurrences_json(
        session,
        at=at,
        zone=get_settings().zone,
        status="overdue",
        overdue_first=True,
        limit=2000,
        hide_unannounced=True,
    )
    by_level = {level: sum(1 for item in items if item["level"] == level) for level in LEVEL_NAMES}
    return page("overdue.html", items=items, by_level=by_level, at=at)


@app.get("/desk/deliveries", response_class=HTMLResponse)
def desk_deliveries(session: SessionDep, at: NowDep, status: str | None = None) -> HTMLResponse:
    """Failed and unknown deliveries with their reason, each with a deliberate resend."""
    wanted = [status] if status in DELIVERY_STATES else ["failed", "unknown"]
    rows = [delivery_json(d, zone=get_settings().zone) for d in find_deliveries(session, statuses=wanted, limit=500)]
    return page("deliveries.html", rows=rows, states=DELIVERY_STATES, at=at)


@app.post("/desk/deliveries/{delivery_id}/resend", response_class=HTMLResponse)
def desk_resend(delivery_id: int, request: Request, session: SessionDep, at: NowDep) -> Response:
    # Until desk accounts exist, a resend is accepted only from this site's own page (no cross-site posts).
    origin = request.headers.get("origin") or request.headers.get("referer") or ""
    if not origin.startswith(str(request.base_url).rstrip("/")):
        return problem_page(403, "请求被拒绝", "重发只能从本系统的发件记录页面发起。")
    if not outbox.resend(session, delivery_id=delivery_id, at=at, actor="desk"):
        return problem_page(409, "无法重发", "该发件记录不存在，或正在发送、等待发送。")
    return RedirectResponse("/desk/deliveries", status_code=303)


@app.get("/api/occurrences")
def api_occurrences(
    session: SessionDep,
    at: NowDep,
    unit: str | None = None,
    duty: str | None = None,
    status: Annotated[str | None, Query(pattern="^(" + "|".join(STATUSES) + ")$")] = None,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> list[dict[str, Any]]:
    zone = get_settings().zone
    return occurrences_json(
        session,
        at=at,
        zone=zone,
        hide_unannounced=True,
        unit=unit,
        duty=duty,
        status=status,
        start=day_bound(start, zone),
        end=day_bound(end, zone, end=True),
        limit=limit,
    )


@app.get("/api/overdue")
def api_overdue(
    session: SessionDep, at: NowDep, limit: Annotated[int, Query(ge=1, le=5000)] = 1000
) -> list[dict[str, Any]]:
    return occurrences_json(
        session,
        at=at,
        zone=get_settings().zone,
        status="overdue",
        overdue_first=True,
        limit=limit,
        hide_unannounced=True,
    )
