"""The policy as data: the shipped programme loads, bad files are reported as path:line, dates are right."""

from __future__ import annotations

from datetime import UTC, date
from pathlib import Path

import pytest

from calendars.loader import check, load_program
from calendars.recurrence import CLAMPED_FLAG, ROLLED_FLAG, expand, reminder_times
from calendars.schema import DutySpec
from calendars.workdays import UNPUBLISHED_FLAG, WorkdayCalendar
from tests.conftest import REPO, SHANGHAI

SHIPPED = REPO / "calendars"


def test_shipped_programme_covers_every_family_and_cites_its_clause() -> None:
    program = load_program(SHIPPED)
    clauses: dict[str, set[str]] = {}
    for duty in program.duties.values():
        clauses.setdefault(duty.family, set()).add(duty.clause)
    expected = {  # DESIGN.md's table of families, each with the clause it cites
        "双月环境卫生大扫除": {"附件1 第1项 举措5"},
        "市场大扫除": {"附件1 第6项 举措4"},
        "市场清扫保洁质量抽查": {"附件1 第6项 举措2"},
        "园林绿化精细化管理基础月历": {"三(二)3"},
        "每月精细化管理考核": {"附件1 第6项 举措2"},
        "清扫保洁质量红黑榜": {"附件1 第6项 举措3"},
        "工地“无尘无噪”不定时抽查": {"附件1 第5项 举措3"},
        # 第7项 counts 目标1 (100 小区) and 目标2 (1000 电梯, 1000 消防, 10000 燃气); its 举措 say who checks what.
        "安全检查（四清单）": {"附件1 第7项 目标1", "附件1 第7项 目标2"},
    }
    for family, cited in expected.items():
        assert clauses[family] == cited, family
    all_clauses = {c for cs in clauses.values() for c in cs}
    assert {"附件1 第1项", "三(二)3", "二", "附件2 第1项 目标1", "附件2 第2项", "附件2 第3项 目标1"} <= all_clauses
    goals = {d.target.goal for d in program.duties.values() if d.target}
    assert {100, 20, 10000, 1000, 96, 95, 98} <= goals  # the numbers of the guidance, each carried
    kinds = {duty.id: duty.kind for duty in program.duties.values()}
    assert kinds["market-spot-check"] == "quota" and program.duties["market-spot-check"].required == 1
    assert kinds["site-dust-noise-check"] == "unannounced"
    assert (
        kinds["target-beautiful-communities"] == "target"
        and program.duties["target-beautiful-communities"].required == 100
    )
    assert all(program.duties[d].chain for d in ("safety-elevators", "safety-fire", "safety-gas"))
    assert program.ladders["default"].clause == "附件1 第4项 举措4"
    assert [level.name for level in program.ladders["default"].levels] == ["交办", "督办", "约谈"]
    districts = {u.name[:3] for u in program.units.values() if u.kind == "district_office"}
    assert districts == {"吴兴区", "南浔区", "德清县", "长兴县", "安吉县"}
    for duty in program.duties.values():
        assert program.assignees(duty), f"{duty.id} has nobody to do it"
        # The text gives no date for any of them (targets say "2022 年底前" once): every rhythm is inferred.
        assert duty.inferred and duty.assumption, f"{duty.id} has no date in the text: it must say so"


def test_every_greening_month_has_its_own_tasks() -> None:
    duty = load_program(SHIPPED).duties["greening-monthly"]
    assert sorted(duty.monthly_tasks) == list(range(1, 13))
    assert duty.monthly_tasks[7] != duty.monthly_tasks[1]


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


UNITS = """units:
  - id: office
    name: 市城管办
    kind: city_office
    contacts:
      - name: mail
        url: mailto://127.0.0.1:2525?from=duties@huzhou.local&to=a@b.c
  - id: street-a
    name: 甲街道
    kind: street
    district: office
"""
LADDER = """ladders:
  - id: default
    clause: 附件1 第4项 举措4
    levels:
      - {level: 1, name: 交办, timeout_workdays: 5, audience: [unit]}
"""
DUTY = """duties:
  - id: sweep
    family: 双月环境卫生大扫除
    title: 大扫除
    clause: 附件1 第1项 举措5
    quote: 开展双月环境卫生大扫除活动。
    lead: [office]
    assignees: ["kind:street"]
    recurrence:
      rrule: FREQ=MONTHLY;BYMONTH=2,4,6,8,10,12
      period: month
"""


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        ("    lead: [office]", "    lead: [nobody]", 7, "unknown unit or group 'nobody'"),
        ("    title: 大扫除", "    title: 大扫除\n    colour: red", 5, "unknown field 'duties.0.colour'"),
        ("FREQ=MONTHLY;BYMONTH", "FREQ=FORTNIGHTLY;BYMONTH", 10, "invalid RRULE"),
        ("    clause: 附件1 第1项 举措5\n", "", 2, "duties.0.clause: Field required"),
        ("    clause: 附件1 第1项 举措5", "    clause: 见文件", 5, "does not cite the guidance"),
        ("      period: month", "      period: fortnight", 11, "duties.0.recurrence.period"),
        ("    lead: [office]", "    lead: [office]\n    ladder: steep", 8, "unknown ladder 'steep'"),
    ],
)
def test_duty_problems_are_reported_with_path_and_line(
    tmp_path: Path, old: str, new: str, line: int, message: str
) -> None:
    write(tmp_path, "units.yaml", UNITS)
    write(tmp_path, "ladders.yaml", LADDER)
    assert old in DUTY
    duties = write(tmp_path, "duties.yaml", DUTY.replace(old, new))
    (problem,) = check(tmp_path)
    assert problem.startswith(f"{duties}:{line}: ") and message in problem, problem


def test_every_problem_is_reported_in_one_run(tmp_path: Path) -> None:
    units = write(
        tmp_path,
        "units.yaml",
        UNITS.replace("url: mailto://127.0.0.1:2525?from=duties@huzhou.local&to=a@b.c", "url: nonsense://x"),
    )
    write(tmp_path, "ladders.yaml", LADDER)
    write(tmp_path, "duties.yaml", DUTY + DUTY.replace("duties:\n", "").replace("lead: [office]", "lead: [ghost]"))
    problems = check(tmp_path)
    assert f"{units}:7: unit office: contact 'mail': invalid apprise URL 'nonsense://x'" in problems
    assert any("duplicate duty id 'sweep'" in p and p.startswith(f"{tmp_path / 'duties.yaml'}:12:") for p in problems)
    assert len(problems) == 2, problems


def test_yaml_syntax_and_duplicate_keys_are_located(tmp_path: Path) -> None:
    write(tmp_path, "units.yaml", UNITS + "    name: 又一个名字\n")
    problems = check(tmp_path)
    assert problems == [f"{tmp_path / 'units.yaml'}:12: YAML: duplicate key 'name'"]
    write(tmp_path, "units.yaml", "units: [\n")
    assert check(tmp_path)[0].startswith(f"{tmp_path / 'units.yaml'}:2: YAML:")


def test_missing_folder_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    assert check(tmp_path / "nowhere") == [f"{tmp_path / 'nowhere'}:0: calendar folder not found"]


def duty(**changes: object) -> DutySpec:
    base: dict[str, object] = {
        "id": "d",
        "family": "f",
        "title": "t",
        "clause": "附件1 第1项 举措5",
        "quote": "q",
        "lead": ["x"],
        "assignees": ["x"],
        "recurrence": {"rrule": "FREQ=MONTHLY;BYMONTH=2,4,6,8,10,12", "period": "month"},
    }
    base.update(changes)
    return DutySpec.model_validate(base)


WORKDAYS = WorkdayCalendar()


def test_bimonthly_means_the_even_months() -> None:
    periods = expand(duty(), date(2026, 1, 1), date(2026, 12, 31), WORKDAYS, SHANGHAI)
    assert [p.key for p in periods] == ["2026-02", "2026-04", "2026-06", "2026-08", "2026-10", "2026-12"]


def test_bimonthly_can_be_set_to_the_odd_months() -> None:
    odd = duty(recurrence={"rrule": "FREQ=MONTHLY;BYMONTH=1,3,5,7,9,11", "period": "month"})
    periods = expand(odd, date(2026, 1, 1), date(2026, 12, 31), WORKDAYS, SHANGHAI)
    assert [p.key for p in periods] == ["2026-01", "2026-03", "2026-05", "2026-07", "2026-09", "2026-11"]


def test_last_workday_follows_the_statutory_calendar() -> None:
    periods = {p.key: p for p in expand(duty(), date(2026, 1, 1), date(2026, 12, 31), WORKDAYS, SHANGHAI)}
    # 2026-02-28 is a Saturday, but a make-up working day (调休) after the Spring Festival.
    assert periods["2026-02"].due_at.date() == date(2026, 2, 28)
    # 2026-10-31 is a Saturday and an ordinary rest day.
    assert periods["2026-10"].due_at.date() == date(2026, 10, 30)
    assert periods["2026-02"].due_at.isoformat() == "2026-02-28T17:00:00+08:00"


def test_month_end_clamps_without_drifting() -> None:
    monthly = duty(
        recurrence={"rrule": "FREQ=MONTHLY", "period": "month"},
        due={"rule": "day_of_period", "day": 31, "roll": "none"},
    )
    periods = expand(monthly, date(2025, 1, 1), date(2025, 4, 30), WORKDAYS, SHANGHAI)
    assert [p.due_at.date().day for p in periods] == [31, 28, 31, 30]
    assert [CLAMPED_FLAG in p.flags for p in periods] == [False, True, False, True]
    skipping = duty(
        recurrence={"rrule": "FREQ=MONTHLY", "period": "month"},
        due={"rule": "day_of_period", "day": 31, "roll": "none", "month_end": "skip"},
    )
    assert [p.key for p in expand(skipping, date(2025, 1, 1), date(2025, 4, 30), WORKDAYS, SHANGHAI)] == [
        "2025-01",
        "2025-03",
    ]


def test_a_holiday_due_date_rolls_to_a_working_day() -> None:
    october = duty(
        recurrence={"rrule": "FREQ=MONTHLY;BYMONTH=10", "period": "month"},
        due={"rule": "day_of_period", "day": 1, "roll": "forward"},
    )
    (period,) = expand(october, date(2026, 1, 1), date(2026, 12, 31), WORKDAYS, SHANGHAI)
    assert period.due_at.date() == date(2026, 10, 8)  # the National Day holiday runs 1–7 October 2026
    assert ROLLED_FLAG in period.flags


def test_weekly_quota_is_due_on_the_last_working_day_of_the_iso_week() -> None:
    weekly = duty(recurrence={"rrule": "FREQ=WEEKLY", "period": "week"})
    periods = expand(weekly, date(2026, 2, 9), date(2026, 2, 22), WORKDAYS, SHANGHAI)
    assert [(p.key, p.due_at.date()) for p in periods] == [("2026-W07", date(2026, 2, 14))]  # W08 is all holiday


def test_an_unpublished_year_is_flagged_never_silent() -> None:
    periods = expand(duty(), date(2027, 1, 1), date(2027, 4, 30), WORKDAYS, SHANGHAI)
    assert periods and all(UNPUBLISHED_FLAG in p.flags for p in periods)
    published = WorkdayCalendar(overrides={date(2027, 2, 26): False}, override_years={2027})
    periods = expand(duty(), date(2027, 1, 1), date(2027, 4, 30), published, SHANGHAI)
    assert all(UNPUBLISHED_FLAG not in p.flags for p in periods)
    assert periods[0].due_at.date() == date(2027, 2, 25)  # the override made Friday the 26th a day off


def test_reminders_go_out_on_working_days_before_the_due_date() -> None:
    (period,) = expand(duty(reminders=[7, 3, 0]), date(2026, 4, 1), date(2026, 4, 30), WORKDAYS, SHANGHAI)
    assert period.due_at.date() == date(2026, 4, 30)
    times = reminder_times(duty(reminders=[7, 3, 0]), period.due_at.astimezone(UTC), WORKDAYS, SHANGHAI)
    # 23 April is a Thursday; 27 April a Monday; the last at 09:00 on the due day.
    assert [t.isoformat() for t in times] == [
        "2026-04-23T09:00:00+08:00",
        "2026-04-27T09:00:00+08:00",
        "2026-04-30T09:00:00+08:00",
    ]
