"""Calendar truth: the law's holidays in years not yet published, and re-dating when an arrangement or a rule changes.

The holiday table below is written from the almanac (the lunar dates of 春节, 清明, 端午 and 中秋), not computed by the
code under test, so it checks that code rather than repeating it.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import Session, col
from typer.testing import CliRunner

from calendars.loader import load_program
from calendars.recurrence import expand
from calendars.schema import DutySpec
from calendars.workdays import UNPUBLISHED_FLAG, WorkdayCalendar
from flows import actions, steps
from flows.cli import app
from flows.redate import Move
from flows.runtime import make_context
from flows.steps import Context
from notify.receivers import Inbox
from notify.send import send_apprise
from store import db
from store.models import AuditEvent, Delivery, Occurrence
from tests.conftest import SHANGHAI, local


def _span(first: date, days: int) -> set[date]:
    return {first + timedelta(days=n) for n in range(days)}


# 《全国年节及纪念日放假办法》 (2024): 元旦 1, 春节 除夕–初三 4, 清明 1, 劳动节 2, 端午 1, 中秋 1, 国庆 3 days.
LUNAR = {  # 除夕, 清明, 端午, 中秋 from the almanac
    2027: (date(2027, 2, 5), date(2027, 4, 5), date(2027, 6, 9), date(2027, 9, 15)),
    2028: (date(2028, 1, 25), date(2028, 4, 4), date(2028, 5, 28), date(2028, 10, 3)),
    2029: (date(2029, 2, 12), date(2029, 4, 4), date(2029, 6, 16), date(2029, 9, 22)),
    2030: (date(2030, 2, 2), date(2030, 4, 5), date(2030, 6, 5), date(2030, 9, 12)),
}
BY_LAW = {
    day
    for year, (eve, qingming, duanwu, zhongqiu) in LUNAR.items()
    for day in {
        date(year, 1, 1),
        *_span(eve, 4),
        qingming,
        *_span(date(year, 5, 1), 2),
        duanwu,
        zhongqiu,
        *_span(date(year, 10, 1), 3),
    }
}


def test_the_law_holidays_of_unpublished_years_are_days_off() -> None:
    calendar = WorkdayCalendar()
    for day in sorted(BY_LAW):
        assert not calendar.is_workday(day), day
    # Named in the issue: 元旦, 除夕, 中秋 and 国庆 of 2027 were working days under the weekday rule.
    assert {date(2027, 1, 1), date(2027, 2, 5), date(2027, 9, 15), date(2027, 10, 1)} <= BY_LAW
    days = _span(date(2027, 1, 1), 365 * 4 + 1)
    expected = {day for day in days if day.weekday() < 5 and day not in BY_LAW}
    assert {day for day in days if calendar.is_workday(day)} == expected
    assert calendar.unpublished_years(date(2027, 1, 1), date(2030, 12, 31)) == [2027, 2028, 2029, 2030]


def test_no_shipped_due_date_falls_on_a_day_off_by_law_2027_to_2030(program_with_seed: tuple) -> None:
    program, seed = program_with_seed
    wrong = []
    for duty in (d for d in program.duties.values() if d.category is None):  # a case's clock starts when found
        units = program.assignees(duty) if duty.unannounced else [""]
        for unit in units:
            for period in expand(
                duty, date(2027, 1, 1), date(2030, 12, 31), program.workdays, SHANGHAI, unit=unit, seed=seed
            ):
                day = period.due_at.astimezone(SHANGHAI).date()
                if (day in BY_LAW or day.weekday() >= 5) and not _days_off_allowed(duty):
                    wrong.append(f"{duty.id} {unit} {period.key} {day}")
    assert wrong == []


def _days_off_allowed(duty: DutySpec) -> bool:
    """An unannounced check whose duty declares days off among its 重点时段 is an inspection moment, not a deadline."""
    return duty.unannounced is not None and duty.unannounced.days != "workdays"


@pytest.fixture
def program_with_seed(calendars_dir: Path) -> tuple:
    return load_program(calendars_dir), "a fixed seed"


def test_an_empty_week_falls_due_by_the_duty_s_declared_rule(calendars_dir: Path) -> None:
    program = load_program(calendars_dir)
    spot = program.duties["market-spot-check"]
    assert spot.empty_period == "previous_workday"  # a quota: 每周不少于1次 has no exception
    weeks = {p.key: p for p in expand(spot, date(2026, 2, 9), date(2026, 3, 1), program.workdays, SHANGHAI)}
    assert weeks["2026-W08"].due_at.date() == date(2026, 2, 14)  # W08 is all 春节: the make-up Saturday before
    assert "本期无工作日，提前至上一工作日" in weeks["2026-W08"].flags
    following = spot.model_copy(update={"due": spot.due.model_copy(update={"empty_period": "next_workday"})})
    weeks = {p.key: p for p in expand(following, date(2026, 2, 9), date(2026, 3, 1), program.workdays, SHANGHAI)}
    assert weeks["2026-W08"].due_at.date() == date(2026, 2, 24)
    skipping = spot.model_copy(update={"due": spot.due.model_copy(update={"empty_period": "skip"})})
    keys = [p.key for p in expand(skipping, date(2026, 2, 9), date(2026, 3, 1), program.workdays, SHANGHAI)]
    assert "2026-W08" not in keys
    # ISO week 53 of 2026 runs into 2027: due on its last working day, 31 December (1 January is 元旦 by law).
    week53 = [p for p in expand(spot, date(2026, 12, 28), date(2027, 1, 3), program.workdays, SHANGHAI)]
    assert [(p.key, p.due_at.date()) for p in week53] == [("2026-W53", date(2026, 12, 31))]
    assert UNPUBLISHED_FLAG in week53[0].flags  # its period reaches into 2027, whose 调休 is not published


# A 2027 arrangement for the tests, in the State Council's usual shape: 元旦 1–3 January; 春节 5–12 February with
# Saturday 30 January worked. It is invented: the real one may differ, which is the point of re-dating.
ARRANGEMENT_2027 = """\
year: 2027
source: 国办发明电〔2026〕测试号
holidays: [2027-01-01, 2027-01-02, 2027-01-03, 2027-02-05, 2027-02-06, 2027-02-07, 2027-02-08, 2027-02-09,
  2027-02-10, 2027-02-11, 2027-02-12]
workdays: [2027-01-30]
"""


def _context(session: Session, calendars_dir: Path) -> Context:
    return make_context(session, load_program(calendars_dir), send=send_apprise)


def _item(session: Session, duty: str, unit: str, period: str) -> Occurrence:
    query = select(Occurrence).where(
        col(Occurrence.duty_id) == duty, col(Occurrence.unit_id) == unit, col(Occurrence.period) == period
    )
    return session.execute(query.execution_options(populate_existing=True)).scalar_one()


def _due_day(item: Occurrence | None) -> date:
    assert item is not None
    return item.due_at.astimezone(SHANGHAI).date()


def test_an_arrangement_moves_open_items_and_tells_units_already_reminded(
    session: Session, ctx: Context, calendars_dir: Path, fresh_inbox: Inbox
) -> None:
    steps.plan(session, ctx, start=date(2027, 1, 25), end=date(2027, 2, 14), at=local("2026-12-24T09:00"))
    steps.remind(session, ctx, at=local("2027-01-27T09:30"))  # W04 spot checks and January greening reminded
    reminded = _item(session, "market-spot-check", "wuxing-msb", "2027-W04")
    silent = _item(session, "market-spot-check", "wuxing-msb", "2027-W06")
    done = _item(session, "market-spot-check", "nanxun-msb", "2027-W04")
    assert (_due_day(reminded), reminded.reminders_sent) == (date(2027, 1, 29), 1)
    assert (_due_day(silent), silent.reminders_sent) == (date(2027, 2, 12), 0)
    assert UNPUBLISHED_FLAG in silent.flags
    steps.confirm(
        session, occurrence_id=done.id or 0, note="已查", evidence=[], at=local("2027-01-27T10:00"), client="t"
    )
    steps.dispatch(session, ctx, at=local("2027-01-27T10:00"))
    fresh_inbox.mails.clear()
    fresh_inbox.posts.clear()

    (calendars_dir / "workdays").mkdir(exist_ok=True)
    (calendars_dir / "workdays" / "2027.yaml").write_text(ARRANGEMENT_2027, encoding="utf-8")
    at = local("2027-01-27T11:00")
    assert _replan(session, calendars_dir, at)

    moved, quiet = session.get(Occurrence, reminded.id), session.get(Occurrence, silent.id)
    assert moved is not None and quiet is not None
    reminded, silent = moved, quiet
    assert _due_day(reminded) == date(2027, 1, 30)  # the worked Saturday is the week's last working day
    assert _due_day(silent) == date(2027, 2, 4)  # W06 is all holiday now: the working day before it
    assert UNPUBLISHED_FLAG not in reminded.flags and UNPUBLISHED_FLAG not in silent.flags
    assert _due_day(_item(session, "market-spot-check", "nanxun-msb", "2027-W04")) == date(2027, 1, 29)  # done

    events = {
        e.occurrence_id: e.detail
        for e in session.execute(select(AuditEvent).where(col(AuditEvent.action) == "redated")).scalars()
    }
    assert events[silent.id]["old_due"].startswith("2027-02-12T09:00")  # stored in UTC: 17:00 in Huzhou
    assert "2027年节假日安排已发布（国办发明电〔2026〕测试号）" in events[silent.id]["reason"]
    assert done.id not in events

    notices = [d for d in session.execute(select(Delivery).where(col(Delivery.stage).startswith("moved:"))).scalars()]
    steps.dispatch(session, _context(session, calendars_dir), at=at)
    mails = [m for m in fresh_inbox.mails if m.subject.startswith("【变更通知】")]
    told = {m.recipients[0] for m in mails}
    assert "wuxing-msb@demo.huzhou.local" in told and "nanxun-msb@demo.huzhou.local" not in told
    mail = next(m for m in mails if m.recipients == ["wuxing-msb@demo.huzhou.local"])
    assert "原截止：2027年1月29日（周五）17:00" in mail.body and "新截止：2027年1月30日（周六）17:00" in mail.body
    assert "国办发明电〔2026〕测试号" in mail.body and "/c/" in mail.body
    assert "2027年第6周" not in mail.body  # not yet reminded: moved without a message
    per_recipient = Counter((d.unit_id, d.contact_id) for d in notices)
    assert set(per_recipient.values()) == {1}  # one 变更通知 per recipient, however many of its items moved

    again = steps.tick(session, _context(session, calendars_dir), at=local("2027-01-27T11:05"))
    assert again.moved == 0
    assert (
        steps.plan_report(
            session,
            _context(session, calendars_dir),
            start=date(2027, 1, 1),
            end=date(2027, 3, 31),
            at=at,
            dry_run=True,
        ).moves
        == []
    )


def _extend(session: Session, item: Occurrence, *, due: datetime, at: datetime) -> None:
    """A manager's 延期: from then on the calendar no longer decides the item's date."""
    actions.extend(session, occurrence_id=item.id or 0, due=due, reason="雨雪天气", actor="boss", at=at)


def _replan(session: Session, calendars_dir: Path, at: datetime, *, dry_run: bool = False) -> list:
    """Plan late January and early February 2027 on the calendars as they are now; the moves it made."""
    ctx = _context(session, calendars_dir)
    report = steps.plan_report(session, ctx, start=date(2027, 1, 25), end=date(2027, 2, 14), at=at, dry_run=dry_run)
    return report.moves


def test_a_rule_change_moves_open_items_withdraws_lost_periods_and_leaves_the_rest(
    session: Session, ctx: Context, calendars_dir: Path
) -> None:
    steps.plan(session, ctx, start=date(2026, 3, 1), end=date(2026, 6, 30), at=local("2026-02-20T08:00"))
    overdue = _item(session, "greening-monthly", "wuxing-greening", "2026-03")
    extended = _item(session, "greening-monthly", "nanxun-greening", "2026-04")
    kept = _item(session, "greening-monthly", "wuxing-greening", "2026-04")
    lost = _item(session, "greening-monthly", "wuxing-greening", "2026-05")
    _extend(session, extended, due=local("2026-05-08T17:00"), at=local("2026-04-01T09:00"))
    _change_greening_rule(
        calendars_dir, "rrule: FREQ=MONTHLY\n", "rrule: FREQ=MONTHLY;BYMONTH=1,2,3,4,6,7,8,9,10,11,12\n"
    )
    _change_greening_rule(
        calendars_dir, 'due: {rule: last_workday, time: "17:00"}', "due: {rule: day_of_period, day: 20}"
    )

    at = local("2026-04-10T09:00")
    moves = steps.plan_report(
        session, _context(session, calendars_dir), start=date(2026, 4, 10), end=date(2026, 6, 30), at=at
    ).moves
    by_id: dict[int | None, Move] = {move.occurrence_id: move for move in moves}
    assert _due_day(session.get(Occurrence, kept.id)) == date(2026, 4, 20)
    assert "期次或截止规则已调整" in by_id[kept.id].reason
    gone = session.get(Occurrence, lost.id)
    assert gone is not None and gone.waived_at == at and by_id[lost.id].new_due is None
    assert gone.status_at(at) == "waived"  # withdrawn, never deleted
    assert overdue.id not in by_id and _due_day(session.get(Occurrence, overdue.id)) == date(2026, 3, 31)
    assert extended.id not in by_id and _due_day(session.get(Occurrence, extended.id)) == date(2026, 5, 8)
    withdrawn = session.execute(select(AuditEvent).where(col(AuditEvent.action) == "withdrawn")).scalars().all()
    assert {e.occurrence_id for e in withdrawn} >= {lost.id}


def test_plan_dry_run_lists_the_moves_and_writes_nothing(settings_env: Path, calendars_dir: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["init", "--at", "2026-12-24T09:00"]).exit_code == 0
    planned = runner.invoke(app, ["plan", "--from", "2026-12-24", "--to", "2027-02-28", "--at", "2026-12-24T09:00"])
    assert planned.exit_code == 0, planned.stdout
    (calendars_dir / "workdays").mkdir(exist_ok=True)
    (calendars_dir / "workdays" / "2027.yaml").write_text(ARRANGEMENT_2027, encoding="utf-8")
    args = ["plan", "--from", "2026-12-24", "--to", "2027-02-28", "--at", "2026-12-25T09:00", "--dry-run", "--json"]
    dry = runner.invoke(app, args)
    assert dry.exit_code == 0, dry.stdout
    moves = json.loads(dry.stdout)["moves"]
    assert moves and all(m["action"] == "move" for m in moves)
    assert {m["new_due"][:10] for m in moves} >= {"2027-01-30", "2027-02-04"}
    with db.session_scope() as session:
        dues = {o.id: o.due_at for o in session.execute(select(Occurrence)).scalars()}
        assert all(dues[m["id"]].astimezone(SHANGHAI).isoformat() == m["old_due"] for m in moves)
    text = runner.invoke(args=args[:-1], app=app)
    assert "将改期" in text.stdout and "演练" in text.stdout
    real = runner.invoke(app, args[:-2])
    assert real.exit_code == 0 and "已改期" in real.stdout
    with db.session_scope() as session:
        moved = {o.id: o.due_at for o in session.execute(select(Occurrence)).scalars()}
        assert all(moved[m["id"]].astimezone(SHANGHAI).isoformat() == m["new_due"] for m in moves)


def test_an_upgrade_moves_items_planned_on_the_weekday_rule(
    session: Session, calendars_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that planned 2027 before the law's holidays were known: the next tick moves what fell on them."""
    monkeypatch.setattr("calendars.workdays.statutory_holidays", lambda year: {})
    old = _context(session, calendars_dir)
    steps.sync_program(session, old.program, at=local("2026-12-01T00:00"))
    steps.plan(session, old, start=date(2026, 12, 28), end=date(2027, 2, 28), at=local("2026-12-20T08:00"))
    week53 = _item(session, "market-spot-check", "wuxing-msb", "2026-W53")
    assert _due_day(week53) == date(2027, 1, 1)
    monkeypatch.undo()

    report = steps.tick(session, _context(session, calendars_dir), at=local("2026-12-21T09:00"))
    assert report.moved > 0
    assert _due_day(session.get(Occurrence, week53.id)) == date(2026, 12, 31)
    events = session.execute(select(AuditEvent).where(col(AuditEvent.occurrence_id) == week53.id)).scalars().all()
    assert any("全国年节及纪念日放假办法" in (e.detail.get("reason") or "") for e in events)
    since = datetime(2027, 1, 1, tzinfo=SHANGHAI)
    program = load_program(calendars_dir)
    planned = session.execute(select(Occurrence).where(col(Occurrence.due_at) >= since)).scalars().all()
    deadlines = [o for o in planned if not _days_off_allowed(program.duties[o.duty_id])]
    assert deadlines and all(_due_day(o) not in BY_LAW for o in deadlines)


def test_an_item_moved_after_a_reminder_is_reminded_again_for_its_new_date(session: Session, ctx: Context) -> None:
    steps.plan(session, ctx, start=date(2026, 2, 1), end=date(2026, 2, 28), at=local("2026-01-20T08:00"))
    item = _item(session, "greening-monthly", "anji-greening", "2026-02")
    steps.remind(session, ctx, at=local("2026-02-25T09:30"))  # 3 days before 28 Feb
    _extend(session, item, due=local("2026-03-12T17:00"), at=local("2026-02-26T10:00"))
    steps.remind(session, ctx, at=local("2026-03-09T09:30"))  # 3 days before 12 March: the same lead time again
    query = select(col(Delivery.stage)).where(col(Delivery.occurrence_id) == item.id)
    stages = set(session.execute(query).scalars())
    assert {"remind:3d@20260228", "remind:3d@20260312"} <= stages


def _change_greening_rule(calendars_dir: Path, old: str, new: str) -> None:
    duties = calendars_dir / "huzhou" / "duties.yaml"
    text = duties.read_text(encoding="utf-8")
    start = text.index("  - id: greening-monthly")
    following = text.find("  - id:", start + 10)
    block = text[start : following if following > 0 else len(text)]
    assert old in block
    duties.write_text(text.replace(block, block.replace(old, new)), encoding="utf-8")


def test_a_reminded_unit_is_told_when_its_item_is_withdrawn(
    session: Session, ctx: Context, calendars_dir: Path, fresh_inbox: Inbox
) -> None:
    steps.plan(session, ctx, start=date(2026, 3, 1), end=date(2026, 4, 30), at=local("2026-02-20T08:00"))
    steps.remind(session, ctx, at=local("2026-03-06T09:30"))  # 25 days before 31 March
    march = _item(session, "greening-monthly", "anji-greening", "2026-03")
    assert march.reminders_sent == 1
    steps.dispatch(session, ctx, at=local("2026-03-06T09:30"))
    _change_greening_rule(
        calendars_dir, "rrule: FREQ=MONTHLY\n", "rrule: FREQ=MONTHLY;BYMONTH=1,2,4,5,6,7,8,9,10,11,12\n"
    )
    fresh_inbox.mails.clear()
    at = local("2026-03-06T10:00")
    changed = _context(session, calendars_dir)
    moves = steps.plan_report(session, changed, start=date(2026, 3, 6), end=date(2026, 4, 30), at=at).moves
    assert {m.occurrence_id for m in moves if m.new_due is None} >= {march.id}
    withdrawn = session.get(Occurrence, march.id)
    assert withdrawn is not None and withdrawn.status_at(at) == "waived" and withdrawn.next_remind_at is None
    steps.dispatch(session, changed, at=at)
    (mail,) = [m for m in fresh_inbox.mails if m.recipients == ["anji-greening@demo.huzhou.local"]]
    assert mail.subject.startswith("【变更通知】") and "本期已撤销" in mail.body and "期次或截止规则已调整" in mail.body


def test_a_due_date_moved_far_inside_its_period_is_moved_not_withdrawn(session: Session, calendars_dir: Path) -> None:
    """A yearly target due on the 60th working day, moved to the year's last: nine months later, same period."""
    targets = calendars_dir / "huzhou" / "targets.yaml"
    shipped = targets.read_text(encoding="utf-8")
    start = shipped.index("  - id: target-beautiful-communities\n")
    rule = '    due: {rule: last_workday, time: "17:00"}\n'
    end = shipped.index(rule, start)
    targets.write_text(shipped[:end] + "    due: {rule: nth_workday, n: 60}\n" + shipped[end + len(rule) :], "utf-8")
    early = _context(session, calendars_dir)
    steps.sync_program(session, early.program, at=local("2026-01-05T08:00"))
    steps.plan(session, early, start=date(2026, 1, 1), end=date(2026, 12, 31), at=local("2026-01-05T08:00"))
    query = select(Occurrence).where(col(Occurrence.duty_id) == "target-beautiful-communities")
    (item,) = session.execute(query).scalars()
    assert _due_day(item).month in (3, 4)

    targets.write_text(shipped, encoding="utf-8")
    at = local("2026-01-05T09:00")
    moves = steps.plan_report(
        session, _context(session, calendars_dir), start=date(2026, 1, 5), end=date(2026, 12, 31), at=at
    ).moves
    (move,) = [m for m in moves if m.duty_id == "target-beautiful-communities"]
    assert move.new_due is not None and _due_day(session.get(Occurrence, item.id)) == date(2026, 12, 31)
