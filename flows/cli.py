"""The ``duties`` command: interface contract v1 (init, check, plan, tick, occurrences, overdue, link, serve)."""

from __future__ import annotations

import sys
import uuid
from contextlib import nullcontext
from dataclasses import asdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col

from calendars import arrangement
from calendars.loader import CalendarError, Program
from calendars.loader import check as check_calendars
from calendars.recurrence import Period, expand
from calendars.schema import CalendarFile, DutySpec, WorkdayFile
from flows import cli_assess, cli_cases, cli_ladder, health, rehearsal, runtime, steps
from flows.cli_support import (
    AtOption,
    JsonOption,
    LimitOption,
    day,
    describe_moves,
    emit_json,
    err,
    fail,
    id_argument,
    moment,
    moves_lines,
    occurrence_or_exit,
    opened_store,
    out,
    program_or_exit,
    rows_to_show,
    say_if_cut,
    shown_of,
)
from flows.redate import redate
from notify import outbox
from notify.send import send_apprise
from store import backup as backups
from store import migrate
from store.db import StoreInUse, create_tables, get_engine, secret_key, session_scope, unannounced_seed, used_alone
from store.models import DELIVERY_STATES, LEVEL_NAMES, ROLES, STATUS_LABELS, STATUSES, Duty, Occurrence, Unit, User
from store.queries import (
    audit,
    count_deliveries,
    count_matching,
    day_bound,
    delivery_json,
    find_deliveries,
    occurrences_json,
    target_progress,
)
from store.settings import SettingsError, get_settings
from templates.labels import channel_label, stage_label
from web import auth, throttle

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="duties：城市管理常态化任务的排期、提醒、确认与督办。"
)


@app.command()
def init(at: AtOption = None) -> None:
    """创建数据库或升级到最新版本，并载入日历与单位。"""
    when = moment(at)
    program = program_or_exit()
    before, after = migrate.upgrade(get_engine())
    with opened_store() as session:
        changed = steps.sync_program(session, program, at=when)
        moves = redate(session, runtime.make_context(session, program), at=when)
    settings = get_settings()
    out.print(f"数据库：{settings.resolved_database_url.split('@')[-1]}")
    if before is None:
        out.print(f"数据库版本 {after}")
    elif before != after:
        out.print(f"数据库已升级：{before} → {after}（数据保持不变）")
    out.print(
        f"已载入 {len(program.units)} 个单位、{len(program.duties)} 项任务、{len(program.ladders)} 个督办阶梯"
        + ("" if changed else "（无变化）")
    )
    if moves:
        out.print(describe_moves(moves))


@app.command()
def check(
    path: Annotated[Path | None, typer.Argument(help="日历文件夹或其中一个文件，默认 DUTIES_CALENDARS")] = None,
) -> None:
    """校验日历与单位文件：每个问题输出为 path:line: message，有问题时退出码为 1。

    给出单个文件时，在它所在的日历文件夹中与其他文件一起校验（引用的单位、阶梯在别的文件里），只列出该文件的问题。
    """
    root = path or get_settings().calendars
    if root.is_file():
        _check_one_file(root)
        return
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


def _check_one_file(path: Path) -> None:
    configured = get_settings().calendars.resolve()
    folder = configured if path.resolve().is_relative_to(configured) else path.resolve().parent
    mine = [p for p in check_calendars(folder) if Path(p.split(":", 1)[0]).resolve() == path.resolve()]
    sys.stdout.write("".join(f"{problem}\n" for problem in mine))
    if mine:
        fail(f"共 {len(mine)} 处问题。")
    out.print(f"{path}：校验通过（与 {folder} 中的其他文件一起校验）。", highlight=False)


@app.command()
def plan(
    start: Annotated[str, typer.Option("--from", help="起始日期 YYYY-MM-DD（按截止日期计）")],
    end: Annotated[str, typer.Option("--to", help="结束日期 YYYY-MM-DD（含）")],
    duty: Annotated[list[str] | None, typer.Option("--duty", help="只排期这些任务（可重复）")] = None,
    at: AtOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="只列出将新增和将改期的事项，不写入")] = False,
    backlog: Annotated[
        str,
        typer.Option(
            "--backlog",
            help="截止已过的事项：ignore 只补录（默认）、remind 补录并通知各单位一次、escalate 补录并进入督办阶梯",
        ),
    ] = "ignore",
    as_json: JsonOption = False,
) -> None:
    """把截止日期落在区间内的任务写入台账；可重复运行，不会重复写入。日历变更后，先按新日历调整未完成事项的截止时间。"""
    if backlog not in steps.BACKLOG:
        fail(f"--backlog 只能是 {'|'.join(steps.BACKLOG)}", 2)
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
    with opened_store() as session:
        ctx = runtime.make_context(session, program)
        steps.sync_program(session, program, at=when)
        only = set(duty) if duty else None
        report = steps.plan_report(
            session, ctx, start=first, end=last, at=when, only=only, dry_run=dry_run, backlog=backlog
        )
    zone = get_settings().zone
    if as_json:
        moves = [move.json(zone) for move in report.moves]
        added = {"added": report.added, "backlog": report.backlog, "backlog_policy": backlog}
        emit_json({"from": first.isoformat(), "to": last.isoformat(), **added, "moves": moves})
        return
    past = f"其中 {report.backlog} 项截止时间已过（往期补录）：{steps.BACKLOG[backlog]}。" if report.backlog else ""
    if dry_run:
        out.print(f"（演练，未写入）将新增 {report.added} 条任务（{first} 至 {last}）。{past}", highlight=False)
        for line in moves_lines(report.moves, zone):
            out.print(line, highlight=False)
        out.print(describe_moves(report.moves, planned=True))
        return
    out.print(f"新增 {report.added} 条任务（{first} 至 {last}）。{past}", highlight=False)
    if report.moves:
        out.print(describe_moves(report.moves))


DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="演练：在临时副本上执行，列出将发出的消息和将占用的文号，不写入、不发送")
]


@app.command()
def tick(at: AtOption = None, as_json: JsonOption = False, dry_run: DryRunOption = False) -> None:
    """一次心跳：排期、发送到期提醒、升级逾期事项。"""
    when, program = moment(at), program_or_exit()
    if dry_run:
        with rehearsal.throwaway_store() as session:
            steps.tick(session, runtime.make_context(session, program, send=rehearsal.Recorder()), at=when)
            lines = rehearsal.what_happened(session, at=when, units={u: s.name for u, s in program.units.items()})
        out.print("（演练，未写入、未发送）" + "\n".join(lines), highlight=False)
        return
    with opened_store() as session:
        report = steps.tick(session, runtime.make_context(session, program), at=when)
    if as_json:
        emit_json({"at": when.isoformat(), **asdict(report)})
        return
    out.print(
        f"排期新增 {report.planned}，改期 {report.moved}，提醒 {report.reminded}，升级 {report.escalated}，"
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
    limit: LimitOption = None,
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """列出台账中的任务。"""
    if status is not None and status not in STATUSES:
        fail(f"--status 只能是 {'|'.join(STATUSES)}", 2)
    first, last = day(start, "--from"), day(end, "--to")
    zone = get_settings().zone
    try:
        lo, hi = day_bound(first, zone), day_bound(last, zone, end=True)
    except ValueError as problem:
        fail(str(problem), 2)
    _list(moment(at), as_json, unit=unit, duty=duty, status=status, start=lo, end=hi, limit=limit)


@app.command()
def overdue(at: AtOption = None, as_json: JsonOption = False, limit: LimitOption = None) -> None:
    """逾期事项及其督办级别，级别高的在前（即管理台所见）。"""
    _list(moment(at), as_json, status="overdue", overdue_first=True, limit=limit)


def _list(at: datetime, as_json: bool, *, limit: int | None, overdue_first: bool = False, **filters: Any) -> None:
    zone = get_settings().zone
    shown = rows_to_show(limit, as_json)
    with opened_store() as session:
        items = occurrences_json(session, at=at, zone=zone, overdue_first=overdue_first, limit=shown, **filters)
        total = count_matching(session, at=at, **filters) if shown is not None and len(items) == shown else len(items)
    if as_json:
        emit_json(items)
        say_if_cut(len(items), total)
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
    out.print(shown_of(len(items), total))


@app.command()
def link(
    occurrence_id: Annotated[int | None, id_argument("任务 id")] = None,
    unit: Annotated[str | None, typer.Option("--unit", help="输出该单位的待办页链接（列出全部待办事项）")] = None,
    revoke: Annotated[
        bool,
        typer.Option("--revoke", help="作废任务的全部链接（重新下发前不再发出）；与 --unit 同用则作废单位待办页链接"),
    ] = False,
    reissue: Annotated[bool, typer.Option("--reissue", help="为已作废链接的任务重新下发，并输出新链接")] = False,
    at: AtOption = None,
) -> None:
    """输出某条任务的确认链接，或某单位的待办页链接；--revoke 作废，--reissue 重新下发。"""
    when = moment(at)
    if (occurrence_id is None) == (unit is None):
        fail("请给出任务 id，或用 --unit 指定单位（二者选一）。", 2)
    if revoke and reissue:
        fail("--revoke 与 --reissue 不能同时使用。", 2)
    with opened_store() as session:
        secret = secret_key(session)
        if unit is not None:
            if reissue:
                fail("--reissue 只用于任务；单位待办页链接作废后，--revoke 已输出新链接。", 2)
            url = _unit_link(session, secret, unit, revoke=revoke, at=when)
        else:
            url = _item_link(session, secret, occurrence_id or 0, revoke=revoke, reissue=reissue, at=when)
    if url:
        sys.stdout.write(url + "\n")


def _unit_link(session: Session, secret: str, unit_id: str, *, revoke: bool, at: datetime) -> str:
    """The unit's page link; with ``revoke``, after raising the unit's link version so every earlier one is void."""
    found = session.get(Unit, unit_id)
    if found is None:
        fail(f"没有 id 为 {unit_id} 的单位。")
    if revoke:
        found.link_version += 1
        audit(session, at=at, actor="cli", action="unit_links_revoked", unit=unit_id, version=found.link_version)
        session.commit()
        err.print(f"已作废单位 {unit_id} 此前的全部待办页链接，以下为新链接。", highlight=False)
    return steps.unit_link(get_settings(), secret, unit_id, at=at, version=found.link_version)


def _item_link(session: Session, secret: str, occurrence_id: int, *, revoke: bool, reissue: bool, at: datetime) -> str:
    """The item's confirmation link, or nothing when ``revoke`` has just voided them all until a re-issue."""
    occurrence = occurrence_or_exit(session, occurrence_id)
    if revoke:
        _set_links(session, occurrence, revoked=True, at=at)
        err.print(
            f"已作废任务 {occurrence.id} 的全部链接（含单位待办页上的链接）。"
            f"重新下发前不会再发出任何链接；需要时请运行 duties link {occurrence.id} --reissue。",
            highlight=False,
        )
        return ""
    if reissue and occurrence.links_revoked:
        _set_links(session, occurrence, revoked=False, at=at)
        err.print(f"已为任务 {occurrence.id} 重新下发链接，以下为新链接。", highlight=False)
    elif reissue:
        err.print(f"任务 {occurrence.id} 的链接未被作废，以下为当前链接。", highlight=False)
    elif occurrence.links_revoked:
        fail(
            f"任务 {occurrence.id} 的链接已被作废，不会发出新链接。需要时请运行 duties link {occurrence.id} --reissue。"
        )
    return steps.confirmation_link(get_settings(), secret, occurrence, at=at)


def _set_links(session: Session, occurrence: Occurrence, *, revoked: bool, at: datetime) -> None:
    """Revoke (raising the version, so every earlier link is void for good) or re-issue the item's links."""
    occurrence.links_revoked = revoked
    if revoked:
        occurrence.link_version += 1
    action = "links_revoked" if revoked else "links_reissued"
    audit(session, at=at, actor="cli", action=action, occurrence_id=occurrence.id, version=occurrence.link_version)
    session.commit()


cli_ladder.register(app)
cli_assess.register(app)


@app.command()
def status(at: AtOption = None, as_json: JsonOption = False) -> None:
    """运行状态：数据库、Prefect 接口、上次心跳距今多久（与 /healthz 相同）。异常时退出码为 1。"""
    when = moment(at)
    with session_scope() as session:
        body = health.report(session, at=when)
    if as_json:
        emit_json(body)
    else:
        labels = {"ok": "正常", "degraded": "部分异常", "error": "故障"}
        out.print(f"状态：{labels[body['status']]}", highlight=False)
        out.print(f"数据库：{body['database']}", highlight=False)
        if "prefect_api" in body:
            out.print(f"Prefect 接口：{body['prefect_api']}（{body['prefect_api_url']}）", highlight=False)
            age = body["last_tick_age_seconds"]
            out.print(
                "上次心跳：从未" if age is None else f"上次心跳：{age} 秒前（{body['last_tick_at']}）", highlight=False
            )
    if body["status"] != "ok":
        raise typer.Exit(1)


@app.command("backup")
def backup_command(
    target: Annotated[Path | None, typer.Argument(help="备份文件（.tar.gz），默认 var/backups/ 下按时间命名")] = None,
    at: AtOption = None,
) -> None:
    """备份：SQLite 数据库（在线备份，服务可继续运行）、全部照片和校验清单。PostgreSQL 请另用 pg_dump。"""
    when = moment(at)
    settings = get_settings()
    path = target or settings.var_dir / "backups" / f"duties-{when.astimezone(settings.zone):%Y%m%d-%H%M%S}.tar.gz"
    try:
        manifest = backups.backup(
            get_engine(), database_path=sqlite_path(), var_dir=settings.var_dir, target=path, at=when
        )
    except backups.BackupError as problem:
        fail(str(problem))
    out.print(
        f"已备份到 {path}：{sum(manifest.counts.values())} 行数据，{len(manifest.evidence)} 张照片。", highlight=False
    )
    if sqlite_path() is None:
        out.print("数据库为 PostgreSQL：本文件只含照片和清单，数据库请用 pg_dump 备份（见 README）。")


@app.command("restore")
def restore_command(
    source: Annotated[Path, typer.Argument(help="duties backup 生成的备份文件")],
    at: AtOption = None,
) -> None:
    """从备份恢复数据库与照片（请先停止服务）。被替换的数据库另存为 *.before-restore-时间。"""
    when = moment(at)
    settings, database = get_settings(), sqlite_path()
    get_engine.cache_clear()
    try:
        with used_alone(database) if database is not None else nullcontext():
            manifest, kept = backups.restore(source, database_path=database, var_dir=settings.var_dir, at=when)
    except backups.BackupError as problem:
        fail(str(problem))
    except StoreInUse:
        fail(
            "数据库正在使用中（Web 服务、Prefect 工作进程或正在运行的心跳），未做任何恢复。"
            "请先停止 duties serve、Web 服务和所有工作进程，再运行 duties restore。"
        )
    restored = backups.row_counts(get_engine())
    lost = {t: n for t, n in manifest.counts.items() if restored.get(t) != n}
    if lost:
        fail(f"恢复后的行数与备份清单不符：{lost}")
    rows, photos = sum(manifest.counts.values()), len(manifest.evidence)
    out.print(f"已恢复 {source}（{manifest.created_at}）：{rows} 行，{photos} 张照片。", highlight=False)
    if kept is not None:
        out.print(f"原数据库已另存为 {kept}", highlight=False)


def sqlite_path() -> Path | None:
    url = get_settings().resolved_database_url
    return Path(url.split("///", 1)[1]) if url.startswith("sqlite") else None


users = typer.Typer(no_args_is_help=True, help="管理台账号：创建、列出、改密码、停用、生成接口令牌。")
app.add_typer(users, name="user")
cli_cases.register(app, users)  # duties case …, duties user inspector-link


@users.command("add")
def user_add(
    username: Annotated[str, typer.Argument(help="登录名")],
    role: Annotated[
        str,
        typer.Option(
            "--role",
            help="city（市级，看全部）、district（区县，只看本区县）、inspector（巡查员，上报案件）"
            "或 intake（外部平台，只能调用 POST /api/cases）",
        ),
    ],
    district: Annotated[
        str | None,
        typer.Option("--district", help="区县 id，如 wuxing（district 必填；inspector、intake 可选，限本区县）"),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="显示名")] = "",
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="从标准输入读取密码（脚本用）")] = False,
    at: AtOption = None,
) -> None:
    """创建管理台账号（密码以 argon2 保存）。"""
    when = moment(at)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("密码", hide_input=True, confirmation_prompt="再次输入密码")
    with opened_store() as session:
        try:
            user = auth.add_user(
                session, username=username, password=password, role=role, district=district, display_name=name, at=when
            )
        except auth.AccountError as refusal:
            fail(str(refusal))
        audit(session, at=when, actor="cli", action="user_added", username=username, role=role, district=district)
        session.commit()
    out.print(
        f"已创建账号 {user.username}（{ROLES[user.role]}{'，' + (user.district or '') if user.district else ''}）。"
    )


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(typer.prompt("新密码", hide_input=True, confirmation_prompt="再次输入新密码"))


@users.command("passwd")
def user_passwd(
    username: Annotated[str, typer.Argument(help="登录名")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="从标准输入读取密码（脚本用）")] = False,
    at: AtOption = None,
) -> None:
    """修改或重置账号密码；该账号所有已登录的会话随即失效，登录失败计数清零。"""
    when = moment(at)
    password = _read_password(password_stdin)
    with opened_store() as session:
        user = auth.find_user(session, username)
        if user is None:
            fail(f"没有账号 {username}。")
        try:
            auth.set_password(session, user, password)
        except auth.AccountError as refusal:
            fail(str(refusal))
        throttle.clear(session, throttle.account_key(username))
        audit(session, at=when, actor="cli", action="user_password_set", username=username)
        session.commit()
    out.print(f"已修改账号 {username} 的密码，原有登录已全部退出。", highlight=False)


@users.command("disable")
def user_disable(
    username: Annotated[str, typer.Argument(help="登录名")],
    enable: Annotated[bool, typer.Option("--enable", help="重新启用已停用的账号")] = False,
    at: AtOption = None,
) -> None:
    """停用账号（其所有会话与接口令牌随即失效）；加 --enable 重新启用。"""
    when = moment(at)
    with opened_store() as session:
        user = auth.find_user(session, username)
        if user is None:
            fail(f"没有账号 {username}。")
        auth.set_active(session, user, enable)
        action = "user_enabled" if enable else "user_disabled"
        audit(session, at=when, actor="cli", action=action, username=username)
        session.commit()
    out.print(f"已{'启用' if enable else '停用'}账号 {username}。", highlight=False)


@users.command("token")
def user_token(username: Annotated[str, typer.Argument(help="登录名")]) -> None:
    """为账号生成新的接口令牌（旧令牌随即失效）；令牌只显示这一次。"""
    with opened_store() as session:
        user = auth.find_user(session, username)
        if user is None:
            fail(f"没有账号 {username}。")
        sys.stdout.write(auth.new_api_token(session, user) + "\n")


@users.command("list")
def user_list(as_json: JsonOption = False) -> None:
    """列出管理台账号。"""
    with opened_store() as session:
        rows = [
            {"username": u.username, "name": u.display_name, "role": u.role, "district": u.district, "active": u.active}
            for u in session.execute(select(User).order_by(col(User.username))).scalars()
        ]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        out.print(f"{row['username']}\t{ROLES[row['role']]}\t{row['district'] or ''}\t{row['name']}", highlight=False)


@app.command()
def schema(
    workdays: Annotated[
        bool, typer.Option("--workdays", help="输出工作日覆盖文件（calendars/workdays/）的模式")
    ] = False,
) -> None:
    """输出日历文件的 JSON Schema。"""
    model = WorkdayFile if workdays else CalendarFile
    emit_json(model.model_json_schema())


workdays_app = typer.Typer(help="工作日：列出区间内的工作日，或导入国务院办公厅的节假日安排通知。")
app.add_typer(workdays_app, name="workdays")


@workdays_app.callback(invoke_without_command=True)
def workdays(
    context: typer.Context,
    start: Annotated[str | None, typer.Option("--from", help="起始日期 YYYY-MM-DD")] = None,
    end: Annotated[str | None, typer.Option("--to", help="结束日期 YYYY-MM-DD（含）")] = None,
    as_json: JsonOption = False,
) -> None:
    """列出区间内的工作日（含调休上班日），并标出节假日安排未发布的年份；import 子命令导入节假日安排通知。"""
    if context.invoked_subcommand is not None:
        if start or end or as_json:
            fail(f"--from、--to、--json 用于列出工作日，不能与 {context.invoked_subcommand} 同用", 2)
        return
    first, last = day(start, "--from"), day(end, "--to")
    if first is None or last is None:
        fail("需要 --from 和 --to（如 duties workdays --from 2026-01-01 --to 2026-01-31）", 2)
    if last < first or (last - first).days > 3660:
        fail("--to 须不早于 --from，且区间不超过十年", 2)
    calendar = program_or_exit().workdays
    days = [
        {
            "date": d.isoformat(),
            "weekday": "一二三四五六日"[d.weekday()],
            "makeup": d.weekday() >= 5,
            "published": calendar.is_published(d.year),
        }
        for d in calendar.workdays(first, last)
    ]
    unpublished = calendar.unpublished_years(first, last)
    if as_json:
        emit_json(
            {"from": first.isoformat(), "to": last.isoformat(), "workdays": days, "unpublished_years": unpublished}
        )
        return
    for item in days:
        note = "（调休上班）" if item["makeup"] else ""
        out.print(f"{item['date']} 周{item['weekday']}{note}", highlight=False)
    out.print(f"共 {len(days)} 个工作日。")
    for year in unpublished:
        err.print(
            f"[yellow]警告：[/yellow]{year}年节假日安排未收录：已排除法定节假日，调休（连休与补班）未知，"
            "发布后用 duties workdays import 导入。",
            highlight=False,
        )


@workdays_app.command("import")
def workdays_import(
    notice_file: Annotated[str, typer.Argument(metavar="FILE|-", help="通知全文的文本文件，- 为标准输入")],
    year: Annotated[int | None, typer.Option("--year", help="年份，通知缺少标题时使用")] = None,
    source: Annotated[str | None, typer.Option("--source", help="来源，默认取通知中的文号")] = None,
    calendars: Annotated[Path | None, typer.Option("--calendars", help="日历文件夹，默认 DUTIES_CALENDARS")] = None,
    force: Annotated[bool, typer.Option("--force", help="替换内容不同的已有文件")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="只打印将写入的内容，不写文件")] = False,
) -> None:
    """把国务院办公厅的节假日安排通知读成 calendars/workdays/YEAR.yaml：逐行识别、校验，有问题则不写入。"""
    label, text = _notice_text(notice_file)
    try:
        notice = arrangement.read_notice(text, year=year, source=source)
    except arrangement.NoticeError as error:
        sys.stderr.write("".join(f"{line}\n" for line in error.lines(label)))
        fail(f"通知有 {len(error.problems)} 处问题，未写入任何文件。")
    content = arrangement.render(notice, "标准输入" if notice_file == "-" else label)
    if dry_run:
        sys.stdout.write(content)
        return
    root = calendars or get_settings().calendars
    if not root.is_dir():
        fail(f"日历文件夹不存在：{root}")
    path = arrangement.target(root, notice.year)
    wanted = notice.workday_file()
    if path.exists():
        existing = arrangement.read_existing(path)
        if existing is not None and arrangement.same_arrangement(existing, wanted):
            out.print(f"{path} 已是这份安排，未改动。", highlight=False)
            return
        if not force:
            fail(f"{path} 已存在且内容不同，未写入；确认替换请加 --force。")
    try:
        arrangement.install(path, content, wanted)
    except CalendarError as error:
        sys.stderr.write("".join(f"{problem}\n" for problem in error.problems))
        fail("写入的文件未通过校验，原文件保持不变。")
    _print_arrangement(path, notice)


def _notice_text(name: str) -> tuple[str, str]:
    """The label used in messages (the path, or - for standard input) and the text."""
    if name == "-":
        return "-", sys.stdin.read()
    try:
        return name, Path(name).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{name}:0: 无法读取：{exc}")


def _print_arrangement(path: Path, notice: arrangement.Notice) -> None:
    out.print(f"已写入 {path}（{notice.source}）：", highlight=False)
    for festival in notice.festivals:
        out.print(f"  {festival.summary()}", highlight=False)
    file = notice.workday_file()
    out.print(f"共放假 {len(file.holidays)} 天（含其中的周末），调休上班 {len(file.workdays)} 天。", highlight=False)


@app.command()
def preview(
    duty_id: Annotated[str, typer.Argument(metavar="DUTY", help="任务 id")],
    count: Annotated[int, typer.Option(min=1, max=120, help="每个单位显示的期数")] = 6,
    start: Annotated[str | None, typer.Option("--from", help="从此日期起，默认今天")] = None,
    unit: Annotated[str | None, typer.Option(help="只看此单位")] = None,
    as_json: JsonOption = False,
) -> None:
    """预览某项任务接下来的期次与截止时间，并标出月末截取、跳过和节假日调整。"""
    program = program_or_exit()
    duty = program.duties.get(duty_id)
    if duty is None:
        fail(f"没有任务 {duty_id!r}。可用：{'、'.join(sorted(program.duties))}", 2)
    if duty.category is not None:  # a case category: its items start when a problem is found, not by a rule
        fail(f"{duty_id} 是案件类别，没有排期：案件受理后派遣，{duty.category.duration.label}内处置。", 2)
    units = program.assignees(duty)
    if unit is not None and unit not in units:
        fail(f"{unit!r} 不承担任务 {duty_id}。", 2)
    first = day(start, "--from") or runtime.now().astimezone(get_settings().zone).date()
    seed = get_settings().unannounced_seed
    if duty.unannounced is not None and not seed:
        with opened_store() as session:
            seed = unannounced_seed(session)
    rows = [
        row for unit_id in ([unit] if unit else units) for row in upcoming(program, duty, unit_id, first, count, seed)
    ]
    if as_json:
        emit_json(rows)
        return
    table = Table("单位", "期次", "截止", "标记")
    for row in rows:
        due = "—" if row["skipped"] else row["due"][:16].replace("T", " ")
        table.add_row(program.units[row["unit"]].name, row["period"], due, "、".join(row["flags"]))
    out.print(table)


def upcoming(
    program: Program, duty: DutySpec, unit_id: str, first: date, count: int, seed: str
) -> list[dict[str, Any]]:
    """The next ``count`` periods of a duty for one unit, skipped ones included, each with its flags."""
    zone = get_settings().zone
    found: list[Period] = []
    span = 62
    while len(found) < count and span < 3660 * 2:
        found = expand(
            duty,
            first,
            first + timedelta(days=span),
            program.workdays,
            zone,
            unit=unit_id,
            seed=seed,
            include_skipped=True,
        )
        span *= 2
    rows = []
    for period in found[:count]:
        row: dict[str, Any] = {
            "unit": unit_id,
            "period": period.key,
            "due": period.due_at.isoformat(),
            "skipped": period.skipped,
            "flags": list(period.flags),
            "tasks": list(period.tasks),
            "sample": duty.sample if period.tasks else None,  # the tasks are a sample until the real 月历 is loaded
        }
        if duty.chain is not None and not period.skipped:
            inspected = period.due_at.date()
            rectify = program.workdays.add_workdays(inspected, duty.chain.rectify_workdays)
            row["rectify_by"] = rectify.isoformat()
            row["reinspect_by"] = program.workdays.add_workdays(rectify, duty.chain.reinspect_workdays).isoformat()
        rows.append(row)
    return rows


@app.command()
def targets(at: AtOption = None, as_json: JsonOption = False) -> None:
    """年底目标的进度：已完成、目标值、按时间推算应完成的数量。"""
    when = moment(at)
    with opened_store() as session:
        items = target_progress(session, at=when, zone=get_settings().zone)
    if as_json:
        emit_json(items)
        return
    table = Table("id", "目标", "单位", "完成", "目标值", "按进度应完成", "截止", "状态")
    for item in items:
        level = item["mode"] == "level"
        table.add_row(
            str(item["id"]),
            item["title"],
            item["unit_name"],
            f"{item['achieved']:g}" + ("（最新）" if level else "（累计）"),
            f"{item['required']:g} {item['measure']}",
            "—" if level else f"{item['expected']:g}",
            item["due"][:10],
            ("达标" if item["on_track"] else "未达标") if level else ("正常" if item["on_track"] else "落后"),
        )
    out.print(table)


@app.command()
def record(
    occurrence_id: Annotated[int, id_argument("任务 id")],
    amount: Annotated[float, typer.Option(min=0.000001, help="数量：目标进度的增量；检查次数记 1")] = 1.0,
    note: Annotated[str, typer.Option(help="说明")] = "",
    at: AtOption = None,
) -> None:
    """代为登记一次完成情况：一次确认、一次检查或一笔目标进度。"""
    when = moment(at)
    with opened_store() as session:
        occurrence = occurrence_or_exit(session, occurrence_id)
        kind = session.get(Duty, occurrence.duty_id).kind  # type: ignore[union-attr]
        outcome = steps.confirm(
            session,
            occurrence_id=occurrence_id,
            note=note,
            evidence=[],
            at=when,
            client="cli",
            amount=amount if kind == "target" else 1.0,
            form_id=f"cli-{uuid.uuid4().hex}",
        )
        session.refresh(occurrence)
    messages = {
        "confirmed": "已完成。",
        "recorded": "已登记。",
        "already": "此前已完成，未重复登记。",
        "closed": "该事项已免除。",
    }
    out.print(f"{messages[outcome]}进度 {occurrence.achieved:g} / {occurrence.required:g}")


@app.command()
def dispatch(
    at: AtOption = None,
    limit: Annotated[int | None, typer.Option(help="最多发送条数")] = None,
    as_json: JsonOption = False,
    dry_run: DryRunOption = False,
) -> None:
    """发送发件箱中到期的消息（待发送和到点重试的），可多个进程同时运行。"""
    when = moment(at)
    if dry_run:
        units = {u: spec.name for u, spec in program_or_exit().units.items()}
        with rehearsal.throwaway_store() as session:
            outbox.dispatch(session, rehearsal.Recorder(), at=when, limit=limit)
            lines = rehearsal.what_happened(session, at=when, units=units)
        out.print("（演练，未写入、未发送）" + "\n".join(lines), highlight=False)
        return
    with opened_store() as session:
        report = outbox.dispatch(session, send_apprise, at=when, limit=limit)
    if as_json:
        emit_json(asdict(report))
        return
    out.print(
        f"发送成功 {report.sent}，待重试 {report.retry}，失败 {report.failed}，结果未知 {report.unknown}，"
        f"回收中断 {report.recovered}。"
    )


@app.command()
def deliveries(
    status: Annotated[str | None, typer.Option(help="|".join(DELIVERY_STATES))] = None,
    limit: LimitOption = None,
    as_json: JsonOption = False,
) -> None:
    """发件记录：默认列出失败和结果未知的，附原因，可用 duties resend 重发。"""
    if status is not None and status not in DELIVERY_STATES:
        fail(f"--status 只能是 {'|'.join(DELIVERY_STATES)}", 2)
    wanted = [status] if status else ["failed", "unknown"]
    zone = get_settings().zone
    shown = rows_to_show(limit, as_json)
    with opened_store() as session:
        rows = [delivery_json(d, zone=zone) for d in find_deliveries(session, statuses=wanted, limit=shown)]
        total = count_deliveries(session, statuses=wanted)
    if as_json:
        emit_json(rows)
        say_if_cut(len(rows), total)
        return
    table = Table("id", "状态", "单位", "渠道", "环节", "尝试", "原因")
    for row in rows:
        table.add_row(
            str(row["id"]),
            DELIVERY_STATES[row["status"]],
            row["unit"],
            channel_label(row["channel"]),
            stage_label(row["stage"]),
            str(row["attempts"]),
            row["reason"],
        )
    out.print(table)
    out.print(shown_of(len(rows), total))


@app.command()
def resend(delivery_id: Annotated[int, id_argument("发件记录 id")], at: AtOption = None) -> None:
    """有意重发一条发件记录（例如结果未知或失败的），下一次发送时送出。"""
    when = moment(at)
    with opened_store() as session:
        if not outbox.resend(session, delivery_id=delivery_id, at=when, actor="cli"):
            fail(f"发件记录 {delivery_id} 不存在，或正在发送/等待发送。")
    out.print(f"已安排重发发件记录 {delivery_id}。")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="监听地址")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="端口")] = 8000,
    no_scheduler: Annotated[bool, typer.Option("--no-scheduler", help="只运行网页服务，不运行定时流程")] = False,
    receivers: Annotated[
        bool, typer.Option("--receivers", help="同时启动本机演示收件服务（SMTP 8025、HTTP 8026）")
    ] = False,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="网页服务进程数（uvicorn workers）")] = 1,
) -> None:
    """运行网页服务与定时流程（本机 Prefect 服务器，SQLite 存于 var/）。"""
    from flows.serve import run_service

    program_or_exit()
    create_tables(get_engine())
    run_service(host=host, port=port, scheduler=not no_scheduler, receivers=receivers, workers=workers)


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
    try:
        app()
    except SettingsError as problem:  # a DUTIES_* value that cannot be used: one line, no traceback
        err.print(str(problem), highlight=False, markup=False)
        sys.exit(2)
    except SQLAlchemyError as exc:  # the store is unreachable or older than this version: say so, no traceback
        first_line = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        err.print(f"数据库错误：{first_line}", highlight=False, markup=False)
        err.print(
            "请检查 DUTIES_DATABASE_URL。若数据库由较早版本创建，当前版本尚不能自动升级，请先备份 var/ 再处理。",
            highlight=False,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
