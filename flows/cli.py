"""The ``duties`` command: interface contract v1 (init, check, plan, tick, occurrences, overdue, link, serve)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from calendars.loader import CalendarError, Program
from calendars.loader import check as check_calendars
from flows import runtime, steps
from store.db import create_tables, get_engine, secret_key, session_scope
from store.models import LEVEL_NAMES, STATUS_LABELS, STATUSES, Occurrence
from store.queries import find_occurrences, occurrence_json
from store.settings import get_settings

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="duties：城市管理常态化任务的排期、提醒、确认与督办。"
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

AtOption = Annotated[str | None, typer.Option("--at", help="以此时刻运行（ISO 8601），默认为当前时间")]
JsonOption = Annotated[bool, typer.Option("--json", help="输出 JSON")]


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]错误：[/red]{message}", highlight=False)
    raise typer.Exit(code)


def moment(value: str | None) -> datetime:
    if value is None:
        return runtime.now()
    try:
        return runtime.parse_moment(value)
    except ValueError as exc:
        fail(str(exc), 2)


def day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option} 需要日期（YYYY-MM-DD）：{value!r}", 2)


def program_or_exit() -> Program:
    try:
        return runtime.load_calendars()
    except CalendarError as error:
        sys.stderr.write("".join(f"{problem}\n" for problem in error.problems))
        fail(f"日历文件有 {len(error.problems)} 处问题，未写入任何数据。")


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


@app.command()
def init(at: AtOption = None) -> None:
    """创建或升级数据库，并载入日历与单位。"""
    when = moment(at)
    program = program_or_exit()
    create_tables(get_engine())
    with session_scope() as session:
        changed = steps.sync_program(session, program, at=when)
    settings = get_settings()
    out.print(f"数据库：{settings.resolved_database_url.split('@')[-1]}")
    out.print(
        f"已载入 {len(program.units)} 个单位、{len(program.duties)} 项任务、{len(program.ladders)} 个督办阶梯"
        + ("" if changed else "（无变化）")
    )


@app.command()
def check(path: Annotated[Path | None, typer.Argument(help="日历文件夹，默认 DUTIES_CALENDARS")] = None) -> None:
    """校验日历与单位文件：每个问题输出为 path:line: message，有问题时退出码为 1。"""
    root = path or get_settings().calendars
    problems = check_calendars(root)
    sys.stdout.write("".join(f"{problem}\n" for problem in problems))
    if problems:
        fail(f"共 {len(problems)} 处问题。")
    program = runtime.load_calendars() if path is None else None
    if program is not None:
        today = runtime.now().astimezone(get_settings().zone).date()
        for warning in steps.unpublished_warnings(program, today, get_settings().plan_horizon_days):
            err.print(f"[yellow]警告：[/yellow]{warning}", highlight=False)
    out.print(f"{root}：校验通过。")


@app.command()
def plan(
    start: Annotated[str, typer.Option("--from", help="起始日期 YYYY-MM-DD（按截止日期计）")],
    end: Annotated[str, typer.Option("--to", help="结束日期 YYYY-MM-DD（含）")],
    duty: Annotated[list[str] | None, typer.Option("--duty", help="只排期这些任务（可重复）")] = None,
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """把截止日期落在区间内的任务写入台账；可重复运行，不会重复写入。"""
    first, last = day(start, "--from"), day(end, "--to")
    assert first is not None and last is not None
    if last < first:
        fail("--to 不能早于 --from", 2)
    if (last - first).days > 3660:
        fail("一次最多排期十年", 2)
    when, program = moment(at), program_or_exit()
    unknown = sorted(set(duty or ()) - set(program.duties))
    if unknown:
        fail(f"没有这些任务：{'、'.join(unknown)}", 2)
    with session_scope() as session:
        create_tables(get_engine())
        ctx = runtime.make_context(session, program)
        steps.sync_program(session, program, at=when)
        added = steps.plan(session, ctx, start=first, end=last, at=when, only=set(duty) if duty else None)
    if as_json:
        emit_json({"from": first.isoformat(), "to": last.isoformat(), "added": added})
    else:
        out.print(f"新增 {added} 条任务（{first} 至 {last}）。")


@app.command()
def tick(at: AtOption = None, as_json: JsonOption = False) -> None:
    """一次心跳：排期、发送到期提醒、升级逾期事项。"""
    when, program = moment(at), program_or_exit()
    with session_scope() as session:
        report = steps.tick(session, runtime.make_context(session, program), at=when)
    if as_json:
        emit_json({"at": when.isoformat(), **asdict(report)})
        return
    out.print(
        f"排期新增 {report.planned}，提醒 {report.reminded}，升级 {report.escalated}，"
        f"发送成功 {report.sent}，失败 {report.failed}。"
    )
    for flag in report.flags:
        err.print(f"[yellow]警告：[/yellow]{flag}", highlight=False)


@app.command()
def occurrences(
    unit: Annotated[str | None, typer.Option(help="单位 id")] = None,
    duty: Annotated[str | None, typer.Option(help="任务 id")] = None,
    status: Annotated[str | None, typer.Option(help="|".join(STATUSES))] = None,
    start: Annotated[str | None, typer.Option("--from", help="截止日期不早于")] = None,
    end: Annotated[str | None, typer.Option("--to", help="截止日期不晚于（含当日）")] = None,
    limit: Annotated[int, typer.Option(help="最多显示条数")] = 1000,
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """列出台账中的任务。"""
    if status is not None and status not in STATUSES:
        fail(f"--status 只能是 {'|'.join(STATUSES)}", 2)
    first, last = day(start, "--from"), day(end, "--to")
    zone = get_settings().zone
    lo = datetime.combine(first, datetime.min.time(), tzinfo=zone) if first else None
    hi = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=zone) if last else None
    _list(moment(at), as_json, unit=unit, duty=duty, status=status, start=lo, end=hi, limit=limit)


@app.command()
def overdue(
    at: AtOption = None, as_json: JsonOption = False, limit: Annotated[int, typer.Option(help="最多显示条数")] = 1000
) -> None:
    """逾期事项及其督办级别，最近升级的在前（即管理台所见）。"""
    _list(moment(at), as_json, status="overdue", overdue_first=True, limit=limit)


def _list(at: datetime, as_json: bool, **filters: Any) -> None:
    zone = get_settings().zone
    with session_scope() as session:
        create_tables(get_engine())
        rows = find_occurrences(session, at=at, **filters)
        items = [occurrence_json(o, d, u, at=at, zone=zone) for o, d, u in rows]
    if as_json:
        emit_json(items)
        return
    table = Table("id", "任务", "单位", "截止", "状态", "级别")
    for item in items:
        table.add_row(
            str(item["id"]),
            item["title"],
            item["unit_name"],
            item["due"][:16].replace("T", " "),
            STATUS_LABELS[item["status"]],
            LEVEL_NAMES[item["level"]],
        )
    out.print(table)
    out.print(f"共 {len(items)} 条。")


@app.command()
def link(occurrence_id: Annotated[int, typer.Argument(help="任务 id")], at: AtOption = None) -> None:
    """输出某条任务的确认链接。"""
    when = moment(at)
    with session_scope() as session:
        create_tables(get_engine())
        occurrence = session.get(Occurrence, occurrence_id)
        if occurrence is None:
            fail(f"没有 id 为 {occurrence_id} 的任务。")
        url = steps.confirmation_link(get_settings(), secret_key(session), occurrence, at=when)
    sys.stdout.write(url + "\n")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="监听地址")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="端口")] = 8000,
    no_scheduler: Annotated[bool, typer.Option("--no-scheduler", help="只运行网页服务，不运行定时流程")] = False,
    receivers: Annotated[
        bool, typer.Option("--receivers", help="同时启动本机演示收件服务（SMTP 8025、HTTP 8026）")
    ] = False,
) -> None:
    """运行网页服务与定时流程（本机 Prefect 服务器，SQLite 存于 var/）。"""
    from flows.serve import run_service

    program_or_exit()
    create_tables(get_engine())
    run_service(host=host, port=port, scheduler=not no_scheduler, receivers=receivers)


@app.command("receivers")
def receivers_command(
    smtp_port: Annotated[int, typer.Option(help="SMTP 端口")] = 8025,
    http_port: Annotated[int, typer.Option(help="HTTP 端口")] = 8026,
) -> None:
    """本机演示收件服务：把收到的邮件和 Webhook 写入 var/inbox/。"""
    from notify.receivers import run_forever

    try:
        run_forever(get_settings().var_dir / "inbox", smtp_port=smtp_port, http_port=http_port)
    except OSError as exc:
        fail(f"无法启动收件服务（端口 {smtp_port}/{http_port} 可能已被占用）：{exc}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
