"""Cases through the API: another platform (the 12345 hotline, the city's 运管服平台) files what it received.

``POST /api/cases`` takes any token whose account may file (city, district, inspector or intake). The caller's own
case id (``external_id``) makes it idempotent: the same id again from the same account is the same case, answered
200 with ``created: false``, and nothing is written. The first message to the unit goes out before the answer.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request, Response, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from sqlmodel import Session
from starlette.responses import Response as StarletteResponse

from flows import cases
from flows.cases import CASE_STATES, CaseError, NewCase
from store.models import Case, Occurrence, Unit
from store.settings import get_settings
from web import auth
from web.api import AnyScopeDep, Refusal
from web.auth import Scope
from web.cases import case_photos
from web.common import NowDep, RowId, SessionDep, context
from web.photos import MAX_FILE_BYTES, MAX_FILES, MAX_NOTE, Photo, keep, read_photos


class Invalid(BaseModel):
    detail: str = Field(description="哪些字段有误，中文说明")
    errors: list[dict[str, Any]] = Field(description="逐项错误（loc、msg、type），供程序处理")


FIELD_PROBLEMS = {
    "missing": "缺少必填字段 {field}",
    "string_too_long": "{field} 过长（最多 {max_length} 个字符）",
    "string_type": "{field} 须为字符串",
    "float_parsing": "{field} 须为数字",
    "float_type": "{field} 须为数字",
    "finite_number": "{field} 须为有限的数字",
    "list_type": "{field} 须为数组",
    "too_long": "{field} 项数过多（最多 {max_length} 项）",
    "model_attributes_type": "{field} 须为 JSON 对象",
    "dict_type": "{field} 须为 JSON 对象",
    "model_type": "{field} 须为 JSON 对象",
    "json_invalid": "请求体不是有效的 JSON",
}


def chinese_problems(exc: RequestValidationError) -> Invalid:
    """A refused body said in Chinese, field by field, with the raw errors beside it for a program."""
    said = []
    for error in exc.errors():
        where = [str(part) for part in error.get("loc", ()) if part != "body"]
        field = ".".join(where) or "请求体"
        template = FIELD_PROBLEMS.get(str(error.get("type", "")), "{field} 格式不正确")
        said.append(template.format(field=field, max_length=(error.get("ctx") or {}).get("max_length", "")))
    errors = jsonable_encoder(
        [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type", "")} for e in exc.errors()]
    )
    return Invalid(detail="；".join(dict.fromkeys(said)) + "。", errors=errors)


class ChineseValidation(APIRoute):
    """This router's 422s speak Chinese (``detail``) to the other platform's operator, not pydantic's English."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, StarletteResponse]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> StarletteResponse:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return JSONResponse(chinese_problems(exc).model_dump(), status_code=422)

        return answer


router = APIRouter(prefix="/api", tags=["cases"], route_class=ChineseValidation)
INVALID: dict[int | str, dict[str, Any]] = {422: {"model": Invalid, "description": "请求格式有误（原因见 detail）"}}
MAX_BASE64 = (MAX_FILE_BYTES + 2) // 3 * 4 + 4  # the longest text a photo within the limit encodes to


class PhotoIn(BaseModel):
    filename: Annotated[str, Field(max_length=200, description="文件名，用于出错时提示，如 scene.jpg")] = "photo"
    data: Annotated[str, Field(description="照片内容，base64 编码；JPEG、PNG 或 HEIC（存为 JPEG），每张不超过 10 MB")]


class CaseIn(BaseModel):
    """上报一个案件。地点文字中含有责任单位名称或其负责的道路、片区的，自动派遣；否则待市城管办派遣。"""

    category: Annotated[str, Field(max_length=64, description="案件类别编号，如 market-litter")]
    place: Annotated[str, Field(max_length=1000, description="问题地点，如“飞英农贸市场东门”（200 字以内）")]
    note: Annotated[str, Field(max_length=4000, description="问题描述（2000 字以内）")] = ""
    latitude: Annotated[float | None, Field(description="纬度（WGS-84），与经度同时给出")] = None
    longitude: Annotated[float | None, Field(description="经度（WGS-84），与纬度同时给出")] = None
    unit: Annotated[str | None, Field(max_length=64, description="直接指定责任单位编号（选填）")] = None
    external_id: Annotated[
        str | None, Field(max_length=200, description="调用方自己的案件编号；同一账号重复提交同一编号视为同一案件")
    ] = None
    photos: Annotated[list[PhotoIn], Field(max_length=100, description=f"现场照片，最多 {MAX_FILES} 张")] = []


class CaseOut(BaseModel):
    id: int = Field(description="案件编号")
    category: str = Field(description="案件类别编号")
    place: str = Field(description="问题地点")
    unit: str | None = Field(description="当前责任单位编号；待派遣时为 null")
    status: str = Field(description="undispatched、handling、overdue、to_verify 或 closed")
    status_label: str = Field(description="待派遣、处置中、已超时、待核查或已结案")
    due: str | None = Field(description="处置时限（ISO 8601，本地时区）；待派遣时为 null")
    occurrence: int | None = Field(description="当前派遣对应的事项编号")
    created: bool = Field(description="本次请求是否新建了案件；重复提交同一 external_id 时为 false")


@router.post(
    "/cases",
    response_model=CaseOut,
    status_code=201,
    responses={
        200: {"model": CaseOut, "description": "同一 external_id 已上报过：返回原案件，未写入任何数据"},
        400: {"model": Refusal, "description": "类别、地点、单位或照片有误（原因见 detail）"},
        403: {"model": Refusal, "description": "该账号不能上报此单位的案件（不在本账号所在区县）"},
        **INVALID,
    },
)
def file_case(body: CaseIn, response: Response, session: SessionDep, at: NowDep, scope: AnyScopeDep) -> CaseOut:
    """上报案件（受理）：立即派遣并通知责任单位；以 external_id 幂等。"""
    if scope.role not in auth.FILING_ROLES:
        raise HTTPException(403, "该账号不能上报案件。")
    reporter = f"api:{scope.username}"
    earlier = cases.by_external_id(session, reporter, body.external_id) if body.external_id else None
    if earlier is not None:  # the caller's retry: answered from the store, nothing decoded, stored or sent
        response.status_code = 200
        return case_out(session, earlier, at=at, created=False)
    uploaded = _photos(body)
    new = NewCase(
        category_id=body.category,
        place=body.place,
        note=body.note,
        latitude=body.latitude,
        longitude=body.longitude,
        unit_id=body.unit or None,
        external_id=body.external_id,
        **case_photos(keep(uploaded)),
    )
    ctx = context(session)
    district = None if scope.role == "city" else scope.district
    try:
        filed = cases.file_case(session, ctx, new, reporter=reporter, source="api", at=at, district=district)
    except CaseError as refusal:
        session.rollback()
        raise HTTPException(refusal.status, str(refusal)) from None
    cases.send_now(session, ctx, filed.delivery_ids, at=at)
    if not filed.created:
        response.status_code = 200
    return case_out(session, filed.case, at=at, created=filed.created)


def _photos(body: CaseIn) -> list[Photo]:
    """The photos decoded and checked like an upload from the phone form; 400 with the reason otherwise."""
    if len(body.photos) > MAX_FILES:
        raise HTTPException(400, f"最多上传 {MAX_FILES} 张照片，本次 {len(body.photos)} 张。")
    files = []
    for photo in body.photos:
        if len(photo.data) > MAX_BASE64:
            raise HTTPException(400, f"照片“{photo.filename}”超过 10 MB，请压缩后重新提交。")
        try:
            data = base64.b64decode(photo.data, validate=True)
        except (binascii.Error, ValueError):
            raise HTTPException(400, f"照片“{photo.filename}”不是有效的 base64 编码。") from None
        files.append(UploadFile(io.BytesIO(data), filename=photo.filename))
    uploaded, problem = read_photos(body.note[:MAX_NOTE], files)
    if problem:
        raise HTTPException(400, problem)
    return uploaded


@router.get(
    "/cases/{case_id}",
    response_model=CaseOut,
    responses={404: {"model": Refusal, "description": "案件不存在，或不在该令牌的范围内"}, **INVALID},
)
def one_case(case_id: RowId, session: SessionDep, at: NowDep, scope: AnyScopeDep) -> CaseOut:
    """一个案件的当前状态：责任单位、处置时限、状态。区县令牌只能查看本区县的案件，其他账号只能查看本账号上报的。"""
    case = session.get(Case, case_id, populate_existing=True)
    if case is None or not _may_see(session, scope, case):
        raise HTTPException(404, "案件不存在，或不在您的范围内")
    return case_out(session, case, at=at, created=False)


class VerifyIn(BaseModel):
    """核查单位的处置：通过即结案；不通过则退回单位重新处置，并通知单位理由。"""

    passed: bool = Field(description="true：核查通过，结案；false：不通过，重新处置")
    note: Annotated[str, Field(max_length=500, description="核查意见；不通过时必填")] = ""


@router.post(
    "/cases/{case_id}/verify",
    response_model=CaseOut,
    responses={
        404: {"model": Refusal, "description": "案件不存在，或不在该令牌的范围内"},
        409: {"model": Refusal, "description": "单位尚未报告处置，或案件已结案"},
        **INVALID,
    },
)
def verify_case(case_id: RowId, body: VerifyIn, session: SessionDep, at: NowDep, scope: AnyScopeDep) -> CaseOut:
    """核查（上报方或管理人员）：如 12345 热线回访市民后回告结果。"""
    case = session.get(Case, case_id, populate_existing=True)
    reported = case is not None and case.reporter in (f"api:{scope.username}", f"user:{scope.username}")
    if case is None or not _may_see(session, scope, case) or not (reported or scope.manages):
        raise HTTPException(404, "案件不存在，或不在您的范围内")
    try:
        cases.verify(
            session,
            context(session),
            case_id=case_id,
            passed=body.passed,
            note=body.note,
            actor=f"api:{scope.username}",
            at=at,
            role=scope.role,
        )
    except CaseError as refusal:
        session.rollback()
        raise HTTPException(refusal.status, str(refusal)) from None
    return case_out(session, case, at=at, created=False)


def _may_see(session: Session, scope: Scope, case: Case) -> bool:
    """The city sees every case; an account sees the ones it filed, and one with a district its district's."""
    if scope.role == "city" or case.reporter in (f"api:{scope.username}", f"user:{scope.username}"):
        return True
    item = session.get(Occurrence, case.occurrence_id) if case.occurrence_id else None
    unit = session.get(Unit, item.unit_id) if item is not None else None
    return scope.district is not None and unit is not None and (unit.district or unit.id) == scope.district


def case_out(session: Session, case: Case, *, at: datetime, created: bool) -> CaseOut:
    item = session.get(Occurrence, case.occurrence_id, populate_existing=True) if case.occurrence_id else None
    status = cases.case_status(case, item, at)
    due = item.due_at.astimezone(get_settings().zone).isoformat() if item is not None else None
    return CaseOut(
        id=case.id or 0,
        category=case.category_id,
        place=case.place,
        unit=item.unit_id if item is not None and status != "undispatched" else None,
        status=status,
        status_label=CASE_STATES[status],
        due=due if status != "undispatched" else None,
        occurrence=item.id if item is not None else None,
        created=created,
    )
