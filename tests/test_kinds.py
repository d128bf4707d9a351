"""The recurrence kinds beyond a fixed calendar: quotas, unannounced checks, targets, chains; and working-day files."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session, col
from typer.testing import CliRunner

from calendars.loader import check, load_program
from calendars.recurrence import NO_WORKDAY_FLAG, SKIPPED_FLAG, expand
from calendars.workdays import UNPUBLISHED_FLAG
from flows import steps
from flows.cli import app as cli
from flows.steps import Context
from notify.receivers import Inbox
from store.models import Delivery, Occurrence
from store.queries import find_occurrences, target_progress
from tests.conftest import SHANGHAI, local
from tests.test_calendars import LADDER, UNITS, write

QUOTA = """duties:
  - id: patrol
    family: 巡查
    title: 每周巡查两次
    clause: 附件1 第6项 举措2
    quote: 每周不少于2次。
    lead: [office]
    assignees: [street-a]
    recurrence: {rrule: FREQ=WEEKLY, period: week}
    quota: {count: 2}
    reminders: [0]
"""


def plan_only(session: Session, ctx: Context, duty: str, start: date, end: date, *, at: datetime) -> int:
    return steps.plan(session, ctx, start=start, end=end, at=at, only={duty})


def report_progress(
    session: Session, item: Occurrence, *, amount: float, at: datetime, form_id: str, note: str = ""
) -> str:
    return steps.confirm(
        session, occurrence_id=item.id or 0, note=note, evidence=[], at=at, client="", amount=amount, form_id=form_id
    )


def occurrences_of(session: Session, duty: str) -> list[Occurrence]:
    query = select(Occurrence).where(col(Occurrence.duty_id) == duty).order_by(col(Occurrence.due_at))
    return list(session.execute(query.execution_options(populate_existing=True)).scalars())


def test_a_quota_needs_every_check_and_counts_a_form_once(session: Session, ctx: Context) -> None:
    plan_only(session, ctx, "market-spot-check", date(2026, 3, 2), date(2026, 3, 8), at=local("2026-03-01T08:00"))
    item = occurrences_of(session, "market-spot-check")[0]
    item_id = item.id or 0
    # Make this week's quota two checks, as a duty with `quota: {count: 2}` would plan it.
    item.required = 2
    session.commit()
    at = local("2026-03-03T10:00")
    first = steps.confirm(session, occurrence_id=item_id, note="一查", evidence=[], at=at, client="", form_id="f1")
    again = steps.confirm(session, occurrence_id=item_id, note="一查", evidence=[], at=at, client="", form_id="f1")
    assert (first, again) == ("recorded", "already")
    item = occurrences_of(session, "market-spot-check")[0]
    assert (item.achieved, item.status_at(at)) == (1, "due")
    second = steps.confirm(session, occurrence_id=item_id, note="二查", evidence=[], at=at, client="", form_id="f2")
    assert second == "confirmed"
    item = occurrences_of(session, "market-spot-check")[0]
    assert (item.achieved, item.status_at(at), item.next_escalate_at) == (2, "done", None)


def test_a_period_that_ends_short_of_its_quota_is_overdue_and_climbs(session: Session, ctx: Context) -> None:
    plan_only(session, ctx, "market-spot-check", date(2026, 3, 2), date(2026, 3, 8), at=local("2026-03-01T08:00"))
    item = occurrences_of(session, "market-spot-check")[0]
    item.required = 2
    session.commit()
    steps.confirm(session, occurrence_id=item.id or 0, note="", evidence=[], at=local("2026-03-03T10:00"), client="")
    assert occurrences_of(session, "market-spot-check")[0].status_at(local("2026-03-06T17:00")) == "overdue"
    steps.escalate(session, ctx, at=local("2026-03-09T17:00"))
    assert occurrences_of(session, "market-spot-check")[0].level == 1


def test_quota_validation_refuses_zero(tmp_path: Path) -> None:
    write(tmp_path, "units.yaml", UNITS)
    write(tmp_path, "ladders.yaml", LADDER)
    duties = write(tmp_path, "duties.yaml", QUOTA.replace("count: 2", "count: 0"))
    (problem,) = check(tmp_path)
    assert problem.startswith(f"{duties}:10: duties.0.quota.count: Input should be greater than or equal to 1")


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        (
            "recurrence: {rrule: FREQ=WEEKLY, period: week}",
            "recurrence: {rrule: 'FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30', period: month}",
            9,
            "never fires",
        ),
        ("    quota: {count: 2}", "    due: {rule: nth_workday, n: 8}", 10, "due rule can never be met"),
        (
            "recurrence: {rrule: FREQ=WEEKLY, period: week}",
            "recurrence: {rrule: 'FREQ=MONTHLY;BYMONTH=2', period: month}\n    due: {rule: day_of_period, day: 30, "
            "month_end: skip}",
            10,
            "due rule can never be met",
        ),
    ],
)
def test_a_rule_that_can_never_be_met_is_an_error(tmp_path: Path, old: str, new: str, line: int, message: str) -> None:
    write(tmp_path, "units.yaml", UNITS)
    write(tmp_path, "ladders.yaml", LADDER)
    assert old in QUOTA
    duties = write(tmp_path, "duties.yaml", QUOTA.replace(old, new))
    problems = check(tmp_path)
    assert any(p.startswith(f"{duties}:{line}: ") and message in p for p in problems), problems


def test_unannounced_days_are_reproducible_secret_working_days(calendars_dir: Path) -> None:
    program = load_program(calendars_dir)
    duty = program.duties["site-dust-noise-check"]

    def days(unit: str, seed: str) -> list[date]:
        periods = expand(duty, date(2026, 3, 1), date(2026, 5, 31), program.workdays, SHANGHAI, unit=unit, seed=seed)
        return [p.due_at.date() for p in periods]

    drawn = days("wuxing-ecology", "seed-one")
    assert drawn == days("wuxing-ecology", "seed-one")
    assert len(drawn) == 6 and all(program.workdays.is_workday(d) for d in drawn)
    assert sorted({(d.year, d.month) for d in drawn}) == [(2026, 3), (2026, 4), (2026, 5)]
    others = [days(unit, "seed-one") for unit in ("nanxun-ecology", "deqing-ecology", "anji-ecology")]
    assert any(other != drawn for other in others)  # one inspector's days say nothing about another's
    assert days("wuxing-ecology", "seed-two") != drawn
    first = expand(
        duty, date(2026, 3, 1), date(2026, 3, 31), program.workdays, SHANGHAI, unit="wuxing-ecology", seed="seed-one"
    )[0]
    assert first.visible_from is not None and first.visible_from.date() == first.due_at.date()


def test_the_inspected_never_hear_of_an_unannounced_check(session: Session, ctx: Context, fresh_inbox: Inbox) -> None:
    plan_only(session, ctx, "site-dust-noise-check", date(2026, 2, 1), date(2026, 2, 28), at=local("2026-01-20T08:00"))
    items = occurrences_of(session, "site-dust-noise-check")
    assert len(items) == 10 and all(i.visible_from is not None for i in items)
    for item in items:  # every drawn day of the month, at its reminder time (09:30 in Shanghai)
        steps.remind(session, ctx, at=item.due_at.replace(hour=1, minute=30))
    steps.escalate(session, ctx, at=local("2026-03-31T18:00"))  # none was recorded: all of them climb to 交办
    assert steps.dispatch(session, ctx, at=local("2026-03-31T18:00")).failed == 0
    assert {i.level for i in occurrences_of(session, "site-dust-noise-check")} == {1}
    recipients = {r for mail in fresh_inbox.mails for r in mail.recipients}
    assert {r for r in recipients if r.endswith("-ecology@demo.huzhou.local")}
    assert not {r for r in recipients if "-site@" in r}, "a construction site was told of a check"
    units = {d.unit_id for d in session.execute(select(Delivery)).scalars()}
    assert not any(u.endswith("-site") for u in units)


def test_a_target_counts_progress_and_reports_its_pace(session: Session, ctx: Context) -> None:
    added = plan_only(
        session, ctx, "target-beautiful-communities", date(2022, 5, 8), date(2022, 12, 31), at=local("2022-05-10T09:00")
    )
    assert added == 1
    (item,) = occurrences_of(session, "target-beautiful-communities")
    # A yearly target: from 1 January to the last working day of the year (31 Dec 2022 was a Saturday).
    assert (item.required, item.starts_at, item.due_at) == (100, local("2022-01-01T00:00"), local("2022-12-30T17:00"))
    report_progress(session, item, amount=40, at=local("2022-08-01T10:00"), form_id="a", note="吴兴区报送")
    (report,) = target_progress(session, at=local("2022-09-01T00:00"), zone=SHANGHAI)
    assert (report["achieved"], report["required"], report["measure"]) == (40, 100, "个“美丽小区”")
    assert 60 < report["expected"] < 70 and report["on_track"] is False and report["kind"] == "target"
    result = report_progress(session, item, amount=61, at=local("2022-12-20T10:00"), form_id="b", note="")
    assert result == "confirmed"
    assert occurrences_of(session, "target-beautiful-communities")[0].status_at(local("2022-12-31T00:00")) == "done"


def test_target_progress_is_reported_through_the_link(session: Session, ctx: Context) -> None:
    from web.app import app, clock

    plan_only(
        session, ctx, "target-beautiful-streets", date(2022, 5, 8), date(2022, 12, 31), at=local("2022-05-10T09:00")
    )
    (item,) = occurrences_of(session, "target-beautiful-streets")
    link = steps.confirmation_link(ctx.settings, ctx.secret, item, at=local("2022-06-01T09:00"))
    path = "/c/" + link.rsplit("/c/", 1)[1]
    app.dependency_overrides[clock] = lambda: local("2022-06-01T09:00")
    try:
        with TestClient(app) as client:
            page = client.get(path)
            assert 'name="amount"' in page.text and "报送进度" in page.text
            bad = client.post(path, data={"amount": "很多", "note": "六条街巷", "form_id": "x1"})
            assert bad.status_code == 400 and "请填写本次完成的数量" in bad.text and "六条街巷" in bad.text
            good = client.post(path, data={"amount": "6", "note": "六条街巷", "form_id": "x2"})
            replay = client.post(path, data={"amount": "6", "note": "六条街巷", "form_id": "x2"})
            assert good.headers["X-Duties-Outcome"] == "recorded" and replay.headers["X-Duties-Outcome"] == "already"
            assert "累计完成 6，目标 100" in replay.text
    finally:
        app.dependency_overrides.clear()
    rows = find_occurrences(session, at=local("2022-06-01T10:00"), kind="target")
    assert [o.achieved for o, _, _ in rows] == [6]


def test_a_published_year_file_replaces_the_weekday_guess(calendars_dir: Path) -> None:
    program = load_program(calendars_dir)
    duty = program.duties["clean-home-street"]
    (feb,) = expand(duty, date(2027, 2, 1), date(2027, 2, 28), program.workdays, SHANGHAI)
    assert UNPUBLISHED_FLAG in feb.flags and feb.due_at.date() == date(2027, 2, 26)
    write(
        calendars_dir / "workdays",
        "2027.yaml",
        "year: 2027\nsource: 演示用安排（非官方）\nholidays: [2027-02-26]\nworkdays: [2027-02-27]\n",
    )
    program = load_program(calendars_dir)
    (feb,) = expand(duty, date(2027, 2, 1), date(2027, 2, 28), program.workdays, SHANGHAI)
    assert UNPUBLISHED_FLAG not in feb.flags and feb.due_at.date() == date(2027, 2, 27)


@pytest.mark.parametrize(
    ("name", "text", "line", "message"),
    [
        ("2027.yaml", "year: 2027\nsource: x\nholidays: [2028-01-01]\n", 1, "dates outside 2027"),
        ("2027.yaml", "year: 2027\nsource: x\nholidays: [2027-10-01]\nworkdays: [2027-10-01]\n", 1, "both"),
        ("2027.yaml", "year: 2027\nsource: x\nholiday: [2027-10-01]\n", 3, "unknown field 'holiday'"),
        ("2027.yaml", "year: 2027\nsource: x\nholidays: [2027-02-30]\n", 3, "invalid date '2027-02-30'"),
        ("2028.yaml", "year: 2027\nsource: x\n", 1, "name it 2027.yaml"),
    ],
)
def test_bad_working_day_files_are_located(calendars_dir: Path, name: str, text: str, line: int, message: str) -> None:
    path = write(calendars_dir / "workdays", name, text)
    problems = check(calendars_dir)
    assert any(p.startswith(f"{path}:{line}: ") and message in p for p in problems), problems


def test_preview_flags_clamped_skipped_and_moved_dates(settings_env: Path, calendars_dir: Path) -> None:
    duties = calendars_dir / "huzhou" / "duties.yaml"
    text = duties.read_text(encoding="utf-8").replace(
        '    due: {rule: last_workday, time: "17:00"}\n    reminders: [25, 3, 0]',
        "    due: {rule: day_of_period, day: 31, month_end: skip, roll: forward}\n    reminders: [25, 3, 0]",
    )
    duties.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(
        cli,
        ["preview", "greening-monthly", "--unit", "wuxing-greening", "--count", "4", "--from", "2026-01-01", "--json"],
    )
    assert result.exit_code == 0, result.stderr
    rows = {row["period"]: row for row in json.loads(result.stdout)}
    assert rows["2026-01"]["due"].startswith("2026-02-02T")  # Saturday 31 Jan rolls forward to Monday 2 Feb
    assert "遇节假日调整" in rows["2026-01"]["flags"]
    assert rows["2026-02"]["skipped"] and SKIPPED_FLAG in rows["2026-02"]["flags"]
    assert rows["2026-03"]["due"].startswith("2026-03-31T") and rows["2026-04"]["skipped"]
    assert NO_WORKDAY_FLAG != SKIPPED_FLAG


def test_workdays_and_schema_commands(settings_env: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(cli, ["workdays", "--from", "2026-10-01", "--to", "2026-10-11", "--json"])
    assert [d["date"] for d in json.loads(listed.stdout)["workdays"]] == ["2026-10-08", "2026-10-09", "2026-10-10"]
    assert json.loads(listed.stdout)["workdays"][2]["makeup"] is True
    ahead = runner.invoke(cli, ["workdays", "--from", "2026-12-28", "--to", "2027-01-08", "--json"])
    assert json.loads(ahead.stdout)["unpublished_years"] == [2027]
    schema = json.loads(runner.invoke(cli, ["schema"]).stdout)
    assert {"units", "ladders", "duties"} <= set(schema["properties"])
    assert {"QuotaSpec", "UnannouncedSpec", "TargetSpec", "ChainSpec"} <= set(schema["$defs"])
    assert "year" in json.loads(runner.invoke(cli, ["schema", "--workdays"]).stdout)["properties"]


def test_the_web_never_shows_an_unannounced_check_before_its_day(session: Session, ctx: Context) -> None:
    from tests.desk_support import api_headers
    from web.app import app, clock

    plan_only(session, ctx, "site-dust-noise-check", date(2026, 2, 1), date(2026, 2, 28), at=local("2026-01-20T08:00"))
    wuxing = [i for i in occurrences_of(session, "site-dust-noise-check") if i.unit_id == "wuxing-ecology"]
    first_day = min(i.due_at for i in wuxing).astimezone(SHANGHAI)
    the_day_before = first_day.replace(hour=12) - timedelta(days=1)
    district, city = api_headers(session, "wuxing-manager", district="wuxing"), api_headers(session, "city-manager")
    query = {"duty": "site-dust-noise-check", "unit": "wuxing-ecology"}
    try:
        with TestClient(app) as client:
            app.dependency_overrides[clock] = lambda: the_day_before
            assert client.get("/api/occurrences", params=query, headers=district).json() == []
            app.dependency_overrides[clock] = lambda: first_day.replace(hour=8)
            shown = client.get("/api/occurrences", params=query, headers=district).json()
            assert [o["due"][:10] for o in shown] == [first_day.date().isoformat()]
            # The city office, which draws the days, sees the whole plan ahead, on the API as in the CLI.
            app.dependency_overrides[clock] = lambda: the_day_before
            assert len(client.get("/api/occurrences", params=query, headers=city).json()) == len(wuxing)
    finally:
        app.dependency_overrides.clear()
    assert len(find_occurrences(session, at=the_day_before, duty="site-dust-noise-check")) == 10


def test_reminders_say_what_a_quota_or_target_still_needs(session: Session, ctx: Context) -> None:
    plan_only(
        session, ctx, "target-beautiful-communities", date(2026, 1, 1), date(2026, 12, 31), at=local("2026-01-02T09:00")
    )
    (item,) = occurrences_of(session, "target-beautiful-communities")
    report_progress(session, item, amount=37, at=local("2026-09-01T10:00"), form_id="a", note="")
    steps.remind(session, ctx, at=local("2026-10-01T09:30"))  # the 92-day reminder
    body = session.execute(select(col(Delivery.body)).limit(1)).scalar_one()
    assert "目标：100 个“美丽小区”；目前累计报送 37。" in body and "报送本次新增完成数量" in body
    plan_only(session, ctx, "market-spot-check", date(2026, 3, 2), date(2026, 3, 8), at=local("2026-03-01T08:00"))
    steps.remind(session, ctx, at=local("2026-03-02T09:30"))
    quota_reminder = select(col(Delivery.body)).where(col(Delivery.stage) == "remind:4d@20260306").limit(1)
    quota = session.execute(quota_reminder).scalar_one()
    assert "本期至少需完成 1 次，目前已记录 0 次" in quota
