"""Inspections (附件1 第7项 举措4): findings become 整改 items, a 复检 closes them or sends them up the ladder,
and each campaign exports its four lists: 检查结果清单, 整改清单, 责任清单, 复检清单.

A 整改 item is an ordinary occurrence of the campaign's duty (``finding_id`` set, period ``F<finding id>``), so it
gets reminders, a confirmation link, the ladder, the desk and the API like every other item. Its deadline is the
duty's ``chain.rectify_workdays`` working days after the finding; the 复检 is due ``chain.reinspect_workdays``
working days after that.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from calendars.schema import DutySpec
from flows import ladder
from flows.common import Context
from flows.notices import message, queue, recipients_of
from store.models import LEVEL_NAMES, STATUS_LABELS, Campaign, Confirmation, Finding, Occurrence, Reinspection, Unit
from store.queries import audit

LIST_NAMES = ("检查结果清单", "整改清单", "责任清单", "复检清单")
MAX_TEXT = 1000


class InspectionError(Exception):
    """Input an inspection cannot take; the message is in Chinese."""


def start_campaign(
    session: Session, ctx: Context, *, duty_id: str, name: str, on: date, actor: str, at: datetime
) -> Campaign:
    duty = ctx.program.duties.get(duty_id)
    if duty is None or duty.chain is None:
        chained = "、".join(d.id for d in ctx.program.duties.values() if d.chain is not None)
        raise InspectionError(f"任务 {duty_id} 没有“检查—整改—复检”链条；可选：{chained}。")
    if not name.strip() or len(name) > 200:
        raise InspectionError("请填写检查名称（200字以内）。")
    campaign = Campaign(duty_id=duty_id, name=name.strip(), started_on=on, created_by=actor, created_at=at)
    session.add(campaign)
    session.flush()
    audit(
        session, at=at, actor=actor, action="campaign_started", campaign=campaign.id, duty=duty_id, name=campaign.name
    )
    session.commit()
    return campaign


@dataclass(frozen=True)
class Responsible:
    general: str = ""  # 总责任人
    area: str = ""  # 片责任人
    point: str = ""  # 点责任人


def add_finding(
    session: Session,
    ctx: Context,
    *,
    campaign_id: int,
    unit_id: str,
    site: str,
    problem: str,
    responsible: Responsible,
    actor: str,
    at: datetime,
) -> Finding:
    """Record a finding, make its 整改 item with a deadline, and queue the 整改 notice to the unit."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise InspectionError(f"没有编号为 {campaign_id} 的检查。")
    if session.get(Unit, unit_id) is None:
        raise InspectionError(f"没有 id 为 {unit_id} 的单位。")
    for label, text in (("检查对象（地点）", site), ("存在问题", problem)):
        if not text.strip() or len(text) > MAX_TEXT:
            raise InspectionError(f"请填写{label}（{MAX_TEXT}字以内）。")
    duty = ctx.program.duties[campaign.duty_id]
    assert duty.chain is not None
    due = _workdays_after(ctx, at, duty.chain.rectify_workdays, duty.due.time)
    finding = Finding(
        campaign_id=campaign_id,
        unit_id=unit_id,
        site=site.strip(),
        problem=problem.strip(),
        responsible_general=responsible.general.strip(),
        responsible_area=responsible.area.strip(),
        responsible_point=responsible.point.strip(),
        found_at=at,
        inspector=actor,
        reinspect_by=_workdays_after(ctx, due, duty.chain.reinspect_workdays, duty.due.time),
    )
    session.add(finding)
    session.flush()
    item = _rectification_item(ctx, finding, duty, due, at)
    session.add(item)
    session.flush()
    finding.occurrence_id = item.id
    title, body = message(ctx, "rectification", item, duty, at=at, finding=finding, campaign=campaign)
    queue(session, ctx, item, "finding", recipients_of(session, [unit_id], roles=("staff",)), title, body, at=at)
    audit(
        session,
        at=at,
        actor=actor,
        action="finding_recorded",
        occurrence_id=item.id,
        finding=finding.id,
        site=finding.site,
    )
    session.commit()
    return finding


def _rectification_item(ctx: Context, finding: Finding, duty: DutySpec, due: datetime, at: datetime) -> Occurrence:
    grace = ctx.program.ladders[duty.ladder].grace_workdays
    return Occurrence(
        duty_id=duty.id,
        unit_id=finding.unit_id,
        period=f"F{finding.id}",
        title=f"整改：{finding.site}"[:200],
        detail=finding.problem,
        starts_at=at,
        due_at=due,
        first_remind_at=at,
        next_remind_at=at,
        next_escalate_at=_workdays_after(ctx, due, grace, duty.due.time) if grace else due,
        required=1.0,
        finding_id=finding.id,
        created_at=at,
    )


def reinspect(
    session: Session, ctx: Context, *, finding_id: int, passed: bool, note: str, actor: str, at: datetime
) -> Reinspection:
    """A 复检: passing closes the 整改 item; failing reopens it and puts it on the ladder's next level at once."""
    finding = session.get(Finding, finding_id)
    if finding is None or finding.occurrence_id is None:
        raise InspectionError(f"没有编号为 {finding_id} 的问题。")
    if not passed and not note.strip():
        raise InspectionError("复检不通过时，请写明仍存在的问题。")
    item = session.get(Occurrence, finding.occurrence_id, populate_existing=True)
    assert item is not None
    if item.status_at(at) == "waived":
        raise InspectionError("该整改事项已免除，无需复检。")
    if _closed_by_reinspection(session, finding_id):
        raise InspectionError("该问题已复检通过，整改已办结。")
    record = Reinspection(finding_id=finding_id, at=at, passed=passed, note=note.strip(), inspector=actor)
    session.add(record)
    if passed:
        item.done_at = item.done_at or at
        item.next_remind_at = item.next_escalate_at = None
    else:
        item.done_at = item.parked_at = None
        item.achieved = 0.0
        item.next_remind_at = None  # the ladder's notices speak from now on
        item.next_escalate_at = at
    session.add(item)
    audit(
        session,
        at=at,
        actor=actor,
        action="reinspected_pass" if passed else "reinspected_fail",
        occurrence_id=item.id,
        finding=finding_id,
        note=note.strip(),
    )
    session.commit()
    if not passed:
        ladder.climb(session, ctx, item, at=at)  # its notice goes out with the next tick's, grouped
    return record


def _closed_by_reinspection(session: Session, finding_id: int) -> bool:
    query = select(Reinspection).where(col(Reinspection.finding_id) == finding_id, col(Reinspection.passed).is_(True))
    return session.execute(query).first() is not None


def _workdays_after(ctx: Context, moment: datetime, workdays: int, time_of_day: Any) -> datetime:
    day = ctx.program.workdays.add_workdays(moment.astimezone(ctx.zone).date(), workdays)
    return datetime.combine(day, time_of_day, tzinfo=ctx.zone)


# ---------------------------------------------------------------- the four lists


def campaign_lists(session: Session, *, campaign_id: int, at: datetime, zone: Any) -> dict[str, list[list[Any]]]:
    """The four lists of one campaign, each a header row and then one row per finding (or per 复检)."""
    findings = list(
        session.execute(
            select(Finding).where(col(Finding.campaign_id) == campaign_id).order_by(col(Finding.id))
        ).scalars()
    )
    units = {u.id: u.name for u in session.execute(select(Unit)).scalars()}
    items = {
        o.id: o
        for o in session.execute(
            select(Occurrence).where(col(Occurrence.finding_id).in_([f.id for f in findings]))
        ).scalars()
    }
    day = lambda value: value.astimezone(zone).strftime("%Y-%m-%d %H:%M") if value else ""  # noqa: E731
    results: list[list[Any]] = [["序号", "发现时间", "责任单位", "检查对象（地点）", "存在问题", "检查人"]]
    rectification: list[list[Any]] = [
        [
            "序号",
            "责任单位",
            "检查对象（地点）",
            "存在问题",
            "整改期限",
            "整改状态",
            "单位确认时间",
            "整改说明",
            "升级级别",
        ]
    ]
    responsibility: list[list[Any]] = [
        ["序号", "检查对象（地点）", "存在问题", "责任单位", "总责任人", "片责任人", "点责任人"]
    ]
    reinspections: list[list[Any]] = [
        ["序号", "检查对象（地点）", "存在问题", "复检期限", "复检时间", "复检结果", "复检意见", "复检人"]
    ]
    for number, finding in enumerate(findings, start=1):
        item = items.get(finding.occurrence_id)
        unit = units.get(finding.unit_id, finding.unit_id)
        results.append([number, day(finding.found_at), unit, finding.site, finding.problem, finding.inspector])
        reports = _reports(session, finding.occurrence_id)
        rectification.append(
            [
                number,
                unit,
                finding.site,
                finding.problem,
                day(item.due_at) if item else "",
                STATUS_LABELS[item.status_at(at)] if item else "",
                day(reports[-1].confirmed_at) if reports else "",
                reports[-1].note if reports else "",
                LEVEL_NAMES[item.level] if item else "",
            ]
        )
        responsibility.append(
            [
                number,
                finding.site,
                finding.problem,
                unit,
                finding.responsible_general,
                finding.responsible_area,
                finding.responsible_point,
            ]
        )
        done = list(
            session.execute(
                select(Reinspection).where(col(Reinspection.finding_id) == finding.id).order_by(col(Reinspection.id))
            ).scalars()
        )
        for record in done:
            outcome = "通过" if record.passed else "不通过"
            reinspections.append(
                [
                    number,
                    finding.site,
                    finding.problem,
                    day(finding.reinspect_by),
                    day(record.at),
                    outcome,
                    record.note,
                    record.inspector,
                ]
            )
        if not any(r.passed for r in done):
            reinspections.append(
                [number, finding.site, finding.problem, day(finding.reinspect_by), "", "待复检", "", ""]
            )
    return dict(zip(LIST_NAMES, (results, rectification, responsibility, reinspections), strict=True))


def _reports(session: Session, occurrence_id: int | None) -> list[Confirmation]:
    query = select(Confirmation).where(col(Confirmation.occurrence_id) == occurrence_id).order_by(col(Confirmation.id))
    return list(session.execute(query).scalars())


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert(value: Any) -> Any:
    """A cell that a spreadsheet shows and never evaluates (OWASP CSV injection): text that could start a formula
    gets a leading single quote. Numbers the system writes stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def inert_row(row: list[Any]) -> list[Any]:
    return [inert(value) for value in row]


def _append_text(sheet: Any, row: list[Any], number: int) -> None:
    """Append ``row`` as row ``number``, made inert, each text cell typed as a string so openpyxl never stores a
    formula. The caller counts the rows: ``sheet.max_row`` scans every cell, which made a long list quadratic."""
    values = inert_row(row)
    sheet.append(values)
    for column, value in enumerate(values, start=1):
        if isinstance(value, str):
            sheet.cell(row=number, column=column).data_type = "s"


def to_xlsx(lists: dict[str, list[list[Any]]], *, title: str) -> bytes:
    """One workbook, one sheet per list, headers bold and frozen; every cell inert."""
    from openpyxl import Workbook  # here, not at the top: every command imports this module, few export
    from openpyxl.styles import Alignment, Font

    book = Workbook()
    book.remove(book.active)
    for name, rows in lists.items():
        sheet = book.create_sheet(name)
        _append_text(sheet, [f"{title} · {name}"], 1)
        sheet["A1"].font = Font(bold=True, size=13)
        for number, row in enumerate(rows, start=2):
            _append_text(sheet, row, number)
        for cell in sheet[2]:
            cell.font = Font(bold=True)
        sheet.freeze_panes = "A3"
        for column in sheet.columns:
            letter = column[0].column_letter
            width = max(len(str(cell.value or "")) for cell in column[1:]) if len(column) > 1 else 8
            sheet.column_dimensions[letter].width = min(max(width * 2, 8), 60)
            for cell in column[1:]:
                cell.alignment = Alignment(wrap_text=True, vertical="top")
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def to_csv(rows: list[list[Any]]) -> bytes:
    """UTF-8 with a byte-order mark, so Excel on a Chinese Windows desktop opens it without garbling; cells inert."""
    text = io.StringIO()
    csv.writer(text).writerows(inert_row(row) for row in rows)
    return ("\ufeff" + text.getvalue()).encode("utf-8")
