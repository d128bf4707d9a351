"""``duties inspect …`` (campaigns, findings, 复检, the four lists) and the ladder's manager commands:
``duties approvals``, ``duties approve``, ``duties talk``. Registered on the main command by flows/cli.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import select
from sqlmodel import Session

from flows import actions, inspections, ladder, rehearsal, runtime
from flows.actions import ActionError
from flows.assessment import AssessmentError
from flows.cli_support import (
    AtOption,
    JsonOption,
    day,
    emit_json,
    fail,
    id_argument,
    moment,
    opened_store,
    out,
    program_or_exit,
)
from flows.common import Context
from flows.inspections import InspectionError, Responsible
from flows.ladder import LadderError
from flows.scores import PeriodError
from store.models import Campaign, Unit
from store.settings import get_settings


@contextmanager
def acting(*, dry_run: bool = False) -> Iterator[tuple[Session, Context]]:
    """The store and the steps' context for a command that acts; a refusal is printed in Chinese, not raised.

    ``dry_run``: a throwaway store, so the command can say what it would do (flows/rehearsal.py).
    """
    with rehearsal.throwaway_store() if dry_run else opened_store() as session:
        try:
            yield session, runtime.make_context(session, program_or_exit())
        except (InspectionError, LadderError, ActionError, AssessmentError, PeriodError) as refusal:
            fail(str(refusal))


inspect_app = typer.Typer(no_args_is_help=True, help="检查—整改—复检：新建检查、登记问题、复检、导出四清单。")
CLI = "cli"


@inspect_app.command("new")
def inspect_new(
    duty: Annotated[str, typer.Argument(help="有整改链条的任务 id，如 safety-fire")],
    name: Annotated[str, typer.Option("--name", help="检查名称，如“2026年一季度消防设施检查”")],
    on: Annotated[str | None, typer.Option("--on", help="检查日期，默认今天")] = None,
    at: AtOption = None,
) -> None:
    """新建一次检查，输出检查编号。"""
    when = moment(at)
    started = day(on, "--on") or when.astimezone(get_settings().zone).date()
    with acting() as (session, ctx):
        campaign = inspections.start_campaign(session, ctx, duty_id=duty, name=name, on=started, actor=CLI, at=when)
    out.print(f"已新建检查 {campaign.id}：{campaign.name}", highlight=False)


@inspect_app.command("finding")
def inspect_finding(
    campaign: Annotated[int, id_argument("检查编号")],
    unit: Annotated[str, typer.Option("--unit", help="责任单位 id")],
    site: Annotated[str, typer.Option("--site", help="检查对象或地点")],
    problem: Annotated[str, typer.Option("--problem", help="存在问题")],
    general: Annotated[str, typer.Option("--general", help="总责任人")] = "",
    area: Annotated[str, typer.Option("--area", help="片责任人")] = "",
    point: Annotated[str, typer.Option("--point", help="点责任人")] = "",
    at: AtOption = None,
) -> None:
    """登记一个问题：生成整改事项（含期限）并通知责任单位。"""
    when = moment(at)
    with acting() as (session, ctx):
        finding = inspections.add_finding(
            session,
            ctx,
            campaign_id=campaign,
            unit_id=unit,
            site=site,
            problem=problem,
            responsible=Responsible(general, area, point),
            actor=CLI,
            at=when,
        )
    out.print(f"已登记问题 {finding.id}，整改事项 {finding.occurrence_id}。", highlight=False)


@inspect_app.command("reinspect")
def inspect_reinspect(
    finding: Annotated[int, id_argument("问题编号")],
    passed: Annotated[bool, typer.Option("--pass/--fail", help="复检通过或不通过")],
    note: Annotated[str, typer.Option("--note", help="复检意见（不通过时必填）")] = "",
    at: AtOption = None,
) -> None:
    """复检：通过则整改办结；不通过则进入督办阶梯（交办 → 督办 → 约谈）。"""
    when = moment(at)
    with acting() as (session, ctx):
        inspections.reinspect(session, ctx, finding_id=finding, passed=passed, note=note, actor=CLI, at=when)
    failed = "复检不通过，已进入督办阶梯；交办通知随下次心跳（5 分钟内）发出。"
    out.print("复检通过，整改办结。" if passed else failed)


@inspect_app.command("show")
def inspect_show(
    campaign: Annotated[int, id_argument("检查编号")], at: AtOption = None, as_json: JsonOption = False
) -> None:
    """输出一次检查的四清单。"""
    when = moment(at)
    with opened_store() as session:
        lists = _lists_or_exit(session, campaign, when)
    if as_json:
        emit_json({name: [dict(zip(rows[0], row, strict=True)) for row in rows[1:]] for name, rows in lists.items()})
        return
    for name, rows in lists.items():
        out.print(f"\n[bold]{name}[/bold]（{len(rows) - 1} 行）")
        for row in rows:
            out.print("\t".join(str(cell) for cell in row), highlight=False, markup=False)


@inspect_app.command("export")
def inspect_export(
    campaign: Annotated[int, id_argument("检查编号")],
    folder: Annotated[Path, typer.Option("--out", help="输出文件夹")] = Path("."),
    at: AtOption = None,
) -> None:
    """导出四清单：一个 XLSX（四个工作表）和四个 CSV（UTF-8，Excel 可直接打开）。"""
    when = moment(at)
    with opened_store() as session:
        lists = _lists_or_exit(session, campaign, when)
        title = session.get(Campaign, campaign).name  # type: ignore[union-attr]
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / f"检查{campaign}-四清单.xlsx"]
    _write_whole(written[0], inspections.to_xlsx(lists, title=title))
    for name, rows in lists.items():
        written.append(folder / f"检查{campaign}-{name}.csv")
        _write_whole(written[-1], inspections.to_csv(rows))
    for path in written:
        out.print(str(path), highlight=False)


def _write_whole(path: Path, data: bytes) -> None:
    """Write beside, then rename: a reader never sees half a file."""
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(data)
    partial.replace(path)


def _lists_or_exit(session: Session, campaign: int, when: datetime) -> dict[str, list[list[Any]]]:
    if session.get(Campaign, campaign) is None:
        fail(f"没有编号为 {campaign} 的检查。")
    return inspections.campaign_lists(session, campaign_id=campaign, at=when, zone=get_settings().zone)


def approvals(as_json: JsonOption = False) -> None:
    """列出待审批的升级（审批后才发出通知）。"""
    with opened_store() as session:
        units = {u.id: u.name for u in session.execute(select(Unit)).scalars()}
        rows = [
            {
                "escalation": e.id,
                "occurrence": o.id,
                "level": e.level,
                "name": e.name,
                "unit": o.unit_id,
                "title": o.title,
                "since": e.at.isoformat(),
            }
            for e, o in ladder.pending(session)
        ]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        out.print(
            f"{row['escalation']}\t{row['name']}\t{units.get(row['unit'], row['unit'])}\t{row['title']}",
            highlight=False,
        )
    out.print(f"待审批 {len(rows)} 项。")


def approve(
    escalation: Annotated[int, id_argument("升级编号（见 duties approvals）")],
    reject: Annotated[bool, typer.Option("--reject", help="不予升级（需 --reason）")] = False,
    reason: Annotated[str, typer.Option("--reason", help="不予升级的理由")] = "",
    at: AtOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="演练：说明将占用的文号，不写入")] = False,
) -> None:
    """审批一项升级：通过则编号并发出通知；--reject 则退回下一级并重新计时。"""
    when = moment(at)
    with acting(dry_run=dry_run) as (session, ctx):
        if reject:
            ladder.reject(session, ctx, escalation_id=escalation, reason=reason, actor=CLI, at=when)
            done = "已不予升级。"
        else:
            issued = ladder.approve(session, ctx, escalation_id=escalation, actor=CLI, at=when)
            done = f"已审批，通知文号 {issued.document}；通知随下次心跳（5 分钟内）与该单位的其他通知一并发出。"
    out.print(f"（演练，未写入）{done.replace('已', '将', 1)}" if dry_run else done, highlight=False)


def talk(
    occurrence: Annotated[int, id_argument("事项 id")],
    held_on: Annotated[str, typer.Option("--on", help="约谈日期（YYYY-MM-DD）")],
    attendees: Annotated[str, typer.Option("--attendees", help="参加人员")],
    minutes: Annotated[str, typer.Option("--minutes", help="约谈纪要")],
    at: AtOption = None,
) -> None:
    """记录一次约谈（日期、参加人员、纪要）。"""
    when = moment(at)
    held = day(held_on, "--on")
    assert isinstance(held, date)
    with opened_store() as session:
        try:
            talk_id = actions.record_talk(
                session,
                occurrence_id=occurrence,
                held_on=held,
                attendees=attendees,
                minutes=minutes,
                actor=CLI,
                at=when,
            )
        except ActionError as refusal:
            fail(str(refusal))
    out.print(f"已记录约谈 {talk_id}。")


def register(app: typer.Typer) -> None:
    app.add_typer(inspect_app, name="inspect")
    app.command()(approvals)
    app.command()(approve)
    app.command()(talk)
