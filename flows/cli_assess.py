"""``duties assess`` and ``duties ranking``: the monthly 考核 from the command line. Registered by flows/cli.py."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlmodel import Session

from flows import assessment
from flows.cli_ladder import acting
from flows.cli_support import AtOption, JsonOption, emit_json, err, fail, moment, out
from flows.common import Context
from flows.scores import month_before, span_of
from store.models import ASSESSMENT_STATES, Assessment
from templates import local_time, percent

MonthOption = Annotated[
    str | None, typer.Option("--month", help="考核期：2026-11（月）、2026-Q4（季度）或 2026（年）；默认上个月")
]
CLI = "cli"


def assess(
    month: MonthOption = None,
    publish: Annotated[bool, typer.Option("--publish", help="异议期满且异议处理完毕后，编号通报并发送")] = False,
    correct: Annotated[bool, typer.Option("--correct", help="对已通报的考核发布更正通报（须 --reason）")] = False,
    reason: Annotated[str, typer.Option("--reason", help="更正理由")] = "",
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """考核：计算各单位得分；截止时点后冻结公示，异议期满后通报（--publish），通报后可更正（--correct）。"""
    when = moment(at)
    with acting() as (session, ctx):
        period = _period(month, ctx, when)
        if correct:
            snapshot = assessment.correct(session, ctx, period, reason=reason, at=when, actor=CLI)
        else:
            snapshot = assessment.assess(session, ctx, period, at=when, actor=CLI)
            if publish:
                snapshot = assessment.publish(session, ctx, snapshot, at=when, actor=CLI)
        _show(session, snapshot, ctx, as_json=as_json)


def ranking(
    month: MonthOption = None,
    group: Annotated[str | None, typer.Option("--group", help="只看一个排名组，如 markets")] = None,
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """排名：各排名组的单位得分与名次，以及红黑榜（最近一次考核；未冻结的为预评）。"""
    when = moment(at)
    with acting() as (session, ctx):
        period = _period(month, ctx, when)
        snapshot = assessment.latest(session, span_of(period).key) or assessment.assess(
            session, ctx, period, at=when, actor=CLI
        )
        groups = [g for g in snapshot.summary.get("groups", []) if group is None or g["id"] == group]
        if group is not None and not groups:
            fail(f"没有排名组“{group}”：可选 {', '.join(g['id'] for g in snapshot.summary.get('groups', []))}")
        if as_json:
            emit_json({"period": snapshot.period, "status": snapshot.status, "groups": groups})
            return
        out.print(f"{span_of(snapshot.period).label}考核排名（{ASSESSMENT_STATES[snapshot.status]}）", highlight=False)
        for entry in groups:
            _print_group(entry)


def report(
    month: MonthOption = None,
    xlsx: Annotated[Path | None, typer.Option("--xlsx", help="写出考核工作簿（XLSX）到此文件")] = None,
    pdf: Annotated[Path | None, typer.Option("--pdf", help="写出可打印的通报（PDF）到此文件")] = None,
    at: AtOption = None,
) -> None:
    """考核报告：把最近一次考核写成 PDF 通报（--pdf）和/或 XLSX 工作簿（--xlsx），输出文件路径。"""
    if xlsx is None and pdf is None:
        fail("请用 --pdf 文件名 和/或 --xlsx 文件名 指定要写出的文件")
    from flows import reports  # fpdf and openpyxl: a quarter of a second every other command need not pay

    when = moment(at)
    with acting() as (session, ctx):
        span = span_of(_period(month, ctx, when))
        snapshot = assessment.latest(session, span.key)
        if snapshot is None:
            fail(f"{span.label}还没有考核结果：请先运行 duties assess --month {span.key}")
        for path, make in ((pdf, reports.report_pdf), (xlsx, reports.report_xlsx)):
            if path is not None:
                data = make(session, ctx, snapshot)
                try:
                    reports.write_atomically(path, data)
                except OSError as problem:
                    fail(f"无法写入 {path}：{problem.strerror or problem}")
                out.print(str(path.resolve()), highlight=False, soft_wrap=True)
        if snapshot.status != "published":
            err.print(
                f"注意：{span.label}考核{ASSESSMENT_STATES[snapshot.status]}，文件标为未编号的底稿", highlight=False
            )


def register(app: typer.Typer) -> None:
    app.command()(assess)
    app.command()(ranking)
    app.command()(report)


def _period(month: str | None, ctx: Context, at: datetime) -> str:
    return month if month is not None else month_before(at.astimezone(ctx.zone).date()).key


def _show(session: Session, snapshot: Assessment, ctx: Context, *, as_json: bool) -> None:
    if as_json:  # the contract (DESIGN.md): one row per unit, with the assessment's own fields on each
        emit_json(unit_rows(session, snapshot, ctx))
        return
    span, totals = span_of(snapshot.period), snapshot.summary.get("totals", {})
    title = f"{span.label}考核：{ASSESSMENT_STATES[snapshot.status]}"
    out.print(title + (f"，{snapshot.document}" if snapshot.document else ""), highlight=False)
    out.print(f"冻结时点 {local_time(snapshot.cutoff_at, ctx.zone)}", highlight=False)
    if snapshot.objection_until is not None and snapshot.status == "open":
        out.print(f"异议期至 {local_time(snapshot.objection_until, ctx.zone)}", highlight=False)
    out.print(
        f"参评单位 {totals.get('units', 0)} 个，应完成 {totals.get('due', 0)} 项，"
        f"按期完成率 {percent(totals.get('on_time_rate'))}，平均得分 {totals.get('mean_score') or '—'}",
        highlight=False,
    )
    for entry in snapshot.summary.get("groups", []):
        if entry["board"] is not None:
            board = entry["board"]
            red = "、".join(line["name"] for line in board["red"]) or "无"
            black = "、".join(line["name"] for line in board["black"]) or "无"
            out.print(f"{board['title']}：红榜 {red}；黑榜 {black}", highlight=False)
    out.print(f"输入摘要 {snapshot.digest[:16]}", highlight=False)


def unit_rows(session: Session, snapshot: Assessment, ctx: Context) -> list[dict[str, Any]]:
    """Every scored unit's row: ``unit``, its name, group, district, score, grade, ``rank`` (null when it had
    nothing to assess) and every indicator (``on_time_rate`` 0–1 …), with the assessment's period, status and 通报."""
    common = {"period": snapshot.period, "status": snapshot.status, "document": snapshot.document or None}
    names = {unit_id: spec.name for unit_id, spec in ctx.program.units.items()}
    rows = []
    for row in assessment.scores_of(session, snapshot.id or 0):
        line = assessment.score_json(row, names)
        indicators = line.pop("indicators")
        assessed = row.rank is not None
        rows.append(
            {**line, **common, "score": row.score if assessed else None, "grade": row.grade or None, **indicators}
        )
    return rows


def _print_group(entry: dict[str, Any]) -> None:
    out.print(f"\n{entry['title']}", highlight=False)
    for line in entry["ranking"]:
        out.print(
            f"  {line['rank']:>3}  {line['score']:>6.2f}  {line['grade']:<4} "
            f"{percent(line['on_time_rate']):>6}  {line['name']}",
            highlight=False,
        )
    if entry["board"] is not None:
        red = "、".join(line["name"] for line in entry["board"]["red"]) or "无"
        black = "、".join(line["name"] for line in entry["board"]["black"]) or "无"
        out.print(f"  {entry['board']['title']}：红榜 {red}；黑榜 {black}", highlight=False)
