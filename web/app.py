"""The web app: confirmation links for units (web.units), the manager desk (web.desk), the JSON API (web.api)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from flows import health
from web import api, desk, desk_ladder, units
from web.common import NowDep, SessionDep, clock, get_session, problem_page

__all__ = ["app", "clock", "get_session"]

app = FastAPI(
    title="duties",
    description="城市管理常态化任务：单位确认链接、管理台与 JSON 接口。接口令牌由 `duties user token 用户名` 生成。",
    version="1",
)
app.include_router(units.router)
app.include_router(desk.router)
app.include_router(desk_ladder.router)
app.include_router(api.router)


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


@app.get("/", include_in_schema=False)
def home() -> RedirectResponse:
    return RedirectResponse("/desk/items")


@app.get("/healthz")
def healthz(session: SessionDep, at: NowDep) -> JSONResponse:
    """The store, the Prefect API and the age of the last tick; 503 only when the store does not answer."""
    body = health.report(session, at=at)
    return JSONResponse(body, status_code=503 if body["status"] == "error" else 200)
