"""``duties case new|list|show|assign|verify`` and ``duties user inspector-link``: cases from the terminal.

Registered on the main command by flows/cli.py. A case filed here is dispatched and its first message sent before
the command returns, as from the phone form; a refusal prints in Chinese on stderr and exits 1.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Annotated, Any

import typer
from sqlalchemy import select
from sqlmodel import Session, col

from flows import cases, runtime
from flows.cases import CASE_STATES, CaseError, NewCase
from flows.cli_support import (
    AtOption,
    JsonOption,
    emit_json,
    err,
    fail,
    id_argument,
    moment,
    opened_store,
    out,
    program_or_exit,
)
from flows.common import Context
from store.db import secret_key
from store.models import Case, Occurrence, User
from store.settings import get_settings
from web import auth
from web.tokens import make_inspector_token

case_app = typer.Typer(no_args_is_help=True, help="案件：上报（受理）、列出、查看、派遣（改派）、核查。")
STATUS_HELP = "只列出此状态：" + "、".join(f"{key}（{label}）" for key, label in CASE_STATES.items())


def register(app: typer.Typer, users: typer.Typer) -> None:
    app.add_typer(case_app, name="case")
    users.command("inspector-link")(user_inspector_link)


@contextmanager
def acting() -> Iterator[tuple[Session, Context]]:
    """The store and the context for a command on cases; a refusal is printed in Chinese, not raised."""
    with opened_store() as session:
        try:
            yield session, runtime.make_context(session, program_or_exit())
        except CaseError as refusal:
            session.rollback()
            fail(str(refusal))


def reporter() -> str:
    return f"cli:{os.environ.get('USER') or 'cli'}"


@case_app.command("new")
def case_new(
    category: Annotated[str, typer.Option("--category", help="案件类别编号，如 market-litter")],
    place: Annotated[str, typer.Option("--place", help="问题地点，如“飞英农贸市场东门”")],
    note: Annotated[str, typer.Option("--note", help="问题描述")] = "",
    unit: Annotated[str | None, typer.Option("--unit", help="直接指定责任单位编号；默认按地点派遣")] = None,
    external_id: Annotated[str | None, typer.Option("--external-id", help="外部案件编号；重复上报视为同一案件")] = None,
    latitude: Annotated[float | None, typer.Option("--latitude", help="纬度")] = None,
    longitude: Annotated[float | None, typer.Option("--longitude", help="经度")] = None,
    at: AtOption = None,
) -> None:
    """上报一个案件（受理）：按地点或 --unit 立即派遣，并立即通知责任单位。"""
    when = moment(at)
    new = NewCase(category, place, note, latitude, longitude, unit, external_id)
    with acting() as (session, ctx):
        filed = cases.file_case(session, ctx, new, reporter=reporter(), source="cli", at=when)
        cases.send_now(session, ctx, filed.delivery_ids, at=when)
        row = case_json(session, ctx, filed.case, at=when)
    again = "" if filed.created else "（该外部编号已上报过，未重复受理）"
    if row["unit"]:
        where = f"已派遣给 {row['unit_name']}，处置时限 {row['due'][:16].replace('T', ' ')}"
    else:
        where = "待派遣：地点未能确定责任单位，请用 duties case assign 指定"
    out.print(f"已受理 案件 {row['id']}{again}：{row['category_title']}，{row['place']}；{where}。", highlight=False)


@case_app.command("list")
def case_list(
    status: Annotated[str | None, typer.Option("--status", help=STATUS_HELP)] = None,
    as_json: JsonOption = False,
    at: AtOption = None,
) -> None:
    """列出案件，最新受理的在前。"""
    when = moment(at)
    if status is not None and status not in CASE_STATES:
        fail(f"--status 只能是 {'|'.join(CASE_STATES)}", 2)
    with acting() as (session, ctx):
        found = session.execute(select(Case).order_by(col(Case.found_at).desc(), col(Case.id).desc())).scalars()
        rows = [case_json(session, ctx, case, at=when) for case in found]
    rows = [row for row in rows if status is None or row["status"] == status]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        due = row["due"][:16].replace("T", " ") if row["due"] else "—"
        unit = row["unit_name"] or "待派遣"
        line = f"{row['id']}\t{row['status_label']}\t{row['category_title']}\t{row['place']}\t{unit}\t{due}"
        out.print(line, highlight=False)
    out.print(f"共 {len(rows)} 个案件。", highlight=False)


@case_app.command("show")
def case_show(
    case_id: Annotated[int, id_argument("案件编号")],
    as_json: JsonOption = False,
    at: AtOption = None,
) -> None:
    """查看一个案件：类别、地点、上报人、责任单位、时限、状态与照片。"""
    when = moment(at)
    with acting() as (session, ctx):
        case = session.get(Case, case_id)
        if case is None:
            fail(f"没有编号为 {case_id} 的案件。")
        row = case_json(session, ctx, case, at=when)
    if as_json:
        emit_json(row)
        return
    labels = {
        "id": "案件编号",
        "status_label": "状态",
        "category_title": "类别",
        "place": "地点",
        "note": "描述",
        "reporter": "上报人",
        "found_at": "受理时间",
        "unit_name": "责任单位",
        "due": "处置时限",
        "dispatches": "派遣次数",
        "photos": "照片",
        "closed_at": "结案时间",
    }
    for key, label in labels.items():
        value = row[key]
        if isinstance(value, list):
            value = "、".join(value) if value else ""
        if value not in (None, ""):
            out.print(f"{label}：{value}", highlight=False)


@case_app.command("assign")
def case_assign(
    case_id: Annotated[int, id_argument("案件编号")],
    unit: Annotated[str, typer.Option("--unit", help="责任单位编号")],
    reason: Annotated[str, typer.Option("--reason", help="派遣或改派理由")],
    at: AtOption = None,
) -> None:
    """派遣或改派案件给指定单位（重新计时），并立即通知该单位。"""
    when = moment(at)
    with acting() as (session, ctx):
        item = cases.reassign(session, ctx, case_id=case_id, unit_id=unit, reason=reason, actor="cli", at=when)
        name = ctx.program.units[item.unit_id].name
        due = item.due_at.astimezone(ctx.zone)
    out.print(f"案件 {case_id} 已派遣给 {name}，处置时限 {due:%Y-%m-%d %H:%M}。", highlight=False)


@case_app.command("verify")
def case_verify(
    case_id: Annotated[int, id_argument("案件编号")],
    passed: Annotated[
        bool | None, typer.Option("--pass/--fail", help="核查通过（结案）或不通过（退回单位重新处置）")
    ] = None,
    note: Annotated[str, typer.Option("--note", help="核查意见；不通过时必填")] = "",
    at: AtOption = None,
) -> None:
    """核查单位的处置：--pass 结案，--fail 退回单位重新处置。"""
    if passed is None:
        fail("请给出 --pass 或 --fail。", 2)
    when = moment(at)
    with acting() as (session, ctx):
        cases.verify(session, ctx, case_id=case_id, passed=passed, note=note, actor="cli", at=when, role="city")
    out.print(f"案件 {case_id} {'核查通过，已结案' if passed else '核查不通过，已退回单位重新处置'}。", highlight=False)


def case_json(session: Session, ctx: Context, case: Case, *, at: datetime) -> dict[str, Any]:
    """One case as the CLI prints it: its fields, its current unit and deadline, its status at ``at``."""
    item = session.get(Occurrence, case.occurrence_id) if case.occurrence_id else None
    status = cases.case_status(case, item, at)
    dispatched = item is not None and status != "undispatched"
    category = ctx.program.categories.get(case.category_id)
    unit = ctx.program.units.get(item.unit_id) if item is not None and dispatched else None
    return {
        "id": case.id,
        "category": case.category_id,
        "category_title": category.title if category else case.category_id,
        "place": case.place,
        "note": case.note,
        "latitude": case.latitude,
        "longitude": case.longitude,
        "reporter": case.reporter,
        "source": case.source,
        "external_id": case.external_id,
        "found_at": case.found_at.astimezone(ctx.zone).isoformat(),
        "unit": item.unit_id if item is not None and dispatched else None,
        "unit_name": unit.name if unit else "",
        "occurrence": item.id if item is not None else None,
        "due": item.due_at.astimezone(ctx.zone).isoformat() if item is not None and dispatched else None,
        "status": status,
        "status_label": CASE_STATES[status],
        "dispatches": case.dispatches,
        "photos": list(case.photos),
        "closed_at": case.closed_at.astimezone(ctx.zone).isoformat() if case.closed_at else None,
    }


def inspector_link(secret: str, user: User, *, at: datetime) -> str:
    """The signed link to the case form for ``user``, valid link_valid_days; a new password ends it."""
    settings = get_settings()
    expires = at + timedelta(days=settings.link_valid_days)
    token = make_inspector_token(secret, user_id=user.id or 0, session_version=user.session_version, expires_at=expires)
    return f"{settings.base_url}/i/{token}"


def user_inspector_link(username: Annotated[str, typer.Argument(help="登录名")], at: AtOption = None) -> None:
    """生成巡查员上报链接（手机打开即可上报案件，无需登录）；改密码、退出登录或停用账号后失效。"""
    when = moment(at)
    with opened_store() as session:
        user = auth.find_user(session, username)
        if user is None:
            fail(f"没有账号 {username}。")
        if user.role not in auth.FILING_ROLES or not user.active:
            fail(f"账号 {username} 不能上报案件。")
        link = inspector_link(secret_key(session), user, at=when)
    days = get_settings().link_valid_days
    sys.stdout.write(link + "\n")  # alone on stdout, for a script to pass on
    err.print(f"有效期 {days} 天；修改密码、退出登录或停用账号后失效。", highlight=False)
