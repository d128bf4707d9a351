"""The web app: confirmation links for units (web.units), the manager desk (web.desk), the JSON API (web.api)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlmodel import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from flows import health
from store.db import secret_key
from web import (
    api,
    api_cases,
    auth,
    cases,
    dashboard,
    desk,
    desk_assess,
    desk_cases,
    desk_ladder,
    desk_reports,
    unit_assess,
    units,
)
from web.common import NowDep, SessionDep, clock, get_session, problem_page

__all__ = ["app", "clock", "get_session"]

app = FastAPI(
    title="duties",
    description="城市管理常态化任务：单位确认链接、管理台与 JSON 接口。接口令牌由 `duties user token 用户名` 生成。",
    version="1",
)
app.include_router(units.router)
app.include_router(cases.router)  # before any /desk/cases/{id} route: "new" is not an id
app.include_router(unit_assess.router)
app.include_router(desk.router)
app.include_router(desk_ladder.router)
app.include_router(desk_cases.router)
app.include_router(dashboard.router)
app.include_router(desk_reports.router)  # before desk_assess: /desk/assessments/1.pdf is not page 1
app.include_router(desk_assess.router)
app.include_router(api.router)
app.include_router(api_cases.router)


def _is_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path in ("/healthz", "/openapi.json")


@app.exception_handler(StarletteHTTPException)
async def http_error(request: Request, exc: StarletteHTTPException) -> Any:
    if _is_json(request):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    titles = {404: "页面不存在", 405: "不支持的请求方式"}
    messages = {404: "找不到该页面，请检查链接。", 405: "该页面不支持这种请求方式。"}
    detail = messages.get(exc.status_code, str(exc.detail))
    return problem_page(exc.status_code, titles.get(exc.status_code, "请求有误"), detail)


@app.exception_handler(RequestValidationError)
async def invalid_request(request: Request, exc: RequestValidationError) -> Any:
    if _is_json(request):
        return JSONResponse({"detail": jsonable_errors(exc)}, status_code=422)
    return problem_page(422, "请求有误", "提交的内容格式不正确，请返回上一页检查后重新提交。")


def jsonable_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type", "")} for e in exc.errors()
    ]


@app.exception_handler(units.LinkError)
async def link_error(request: Request, exc: units.LinkError) -> HTMLResponse:
    return units.link_problem(exc.reason)


@app.exception_handler(desk.LoginRequired)
async def login_required(request: Request, exc: desk.LoginRequired) -> RedirectResponse:
    return RedirectResponse(f"/desk/login?next={quote(exc.next_path)}", status_code=303)


@app.exception_handler(desk.NotAManager)
async def not_a_manager(request: Request, exc: desk.NotAManager) -> Response:
    if exc.role == "inspector" and request.method == "GET":  # the inspector's own page is the case form
        return RedirectResponse("/desk/cases/new", status_code=303)
    return problem_page(403, "无权访问", "该账号只能上报案件，不能查看或处理管理台事项。请使用管理人员账号登录。")


@app.get("/", include_in_schema=False)
def home() -> RedirectResponse:
    return RedirectResponse("/desk/items")


PREFECT = health.PrefectCheck(timeout=1.0, ttl=30.0)  # one per process, shared by every /healthz request


@app.get("/healthz")
async def healthz(request: Request, session: SessionDep, at: NowDep) -> JSONResponse:
    """``{"status": …}`` for anyone; 503 only when the store does not answer. A desk session or an API token also
    gets the details: the store, the Prefect API (cached, see PrefectCheck) with its URL masked, the last tick.

    Async on purpose: waiting for the Prefect check holds no thread, so pollers cannot starve the other pages."""
    prefect = await _prefect_state()
    body, operator = await run_in_threadpool(_report_for, request, session, at, prefect)
    status_code = 503 if body["status"] == "error" else 200
    return JSONResponse(body if operator else {"status": body["status"]}, status_code=status_code)


async def _prefect_state() -> str:
    known = PREFECT.poll(health.prefect_api_url())
    if isinstance(known, str):
        return known
    try:  # the first check of this URL: wait for it, a little longer than its own timeout
        return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(known)), PREFECT.timeout + 0.5)
    except TimeoutError:
        return "unknown: check in progress"


def _report_for(request: Request, session: Session, at: datetime, prefect: str) -> tuple[dict[str, Any], bool]:
    body = health.report(session, at=at, prefect=prefect)
    return body, body["status"] != "error" and _is_operator(request, session)


def _is_operator(request: Request, session: Session) -> bool:
    """A desk session cookie or an API token (Authorization: Bearer …) that is valid now."""
    if auth.user_for_session(session, secret_key(session), request.cookies.get(auth.SESSION_COOKIE)):
        return True
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return (
        scheme.lower() == "bearer"
        and bool(token.strip())
        and auth.user_for_api_token(session, token.strip()) is not None
    )
