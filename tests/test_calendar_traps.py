"""Issue 20: calendar files that were read as something else than what was written, or that hung every tick."""

from __future__ import annotations

import time
from datetime import date
from datetime import time as TimeOfDay
from pathlib import Path

import pytest

from calendars.loader import check, load_program
from calendars.recurrence import _period_starts
from tests.test_calendars import DUTY, LADDER, UNITS, write

RULE = "FREQ=MONTHLY;BYMONTH=2,4,6,8,10,12"


@pytest.mark.parametrize(
    ("rrule", "message"),
    [
        ("FREQ=WEEKLY;INTERVAL=0", "INTERVAL=0 is out of range: with FREQ=WEEKLY write 1 to 52"),
        ("FREQ=MONTHLY;INTERVAL=1000", "INTERVAL=1000 is out of range"),
        ("FREQ=SECONDLY", "FREQ=SECONDLY is not allowed: write FREQ=WEEKLY, FREQ=MONTHLY or FREQ=YEARLY"),
        ("FREQ=MINUTELY", "FREQ=MINUTELY is not allowed"),
        ("FREQ=HOURLY", "FREQ=HOURLY is not allowed"),
        ("FREQ=DAILY", "FREQ=DAILY is not allowed"),
        ("FREQ=WEEKLY;BYHOUR=1,2,3", "RRULE part BYHOUR is not allowed"),
        ("FREQ=WEEKLY;BYSECOND=1", "RRULE part BYSECOND is not allowed"),
        ("FREQ=WEEKLY;COUNT=3", "COUNT is not allowed"),
        ("FREQ=MONTHLY;BYMONTH=13", "BYMONTH=13 is out of range: write 1…12"),  # dateutil takes it and yields nothing
        ("FREQ=MONTHLY;BYMONTHDAY=0", "BYMONTHDAY=0 is out of range: write ±1…31"),
        ("FREQ=YEARLY;BYWEEKNO=54", "BYWEEKNO=54 is out of range"),
        ("FREQ=MONTHLY;BYDAY=XX", "invalid 'BYDAY': XX"),  # dateutil's own refusals, kept
        ("FREQ=MONTHLY;BYDAY=1MO;BYSETPOS=0", "bysetpos must be between 1 and 366"),
    ],
)
def test_a_rule_that_would_hang_or_explode_is_refused_fast(tmp_path: Path, rrule: str, message: str) -> None:
    write(tmp_path, "units.yaml", UNITS)
    write(tmp_path, "ladders.yaml", LADDER)
    duties = write(tmp_path, "duties.yaml", DUTY.replace(RULE, rrule))
    began = time.monotonic()
    (problem,) = check(tmp_path)
    assert time.monotonic() - began < 5
    assert problem.startswith(f"{duties}:10: duties.0.recurrence.rrule: ") and message in problem, problem


@pytest.mark.parametrize("rrule", ["FREQ=WEEKLY;INTERVAL=0", "FREQ=SECONDLY", "FREQ=DAILY;COUNT=5"])
def test_an_expansion_never_walks_an_unbounded_rule(rrule: str) -> None:
    assert _period_starts(rrule, "week", date(2027, 1, 1), date(2027, 12, 31)) == ()


def test_a_rule_that_ended_long_ago_is_a_check_error(tmp_path: Path) -> None:
    write(tmp_path, "units.yaml", UNITS)
    write(tmp_path, "ladders.yaml", LADDER)
    write(tmp_path, "duties.yaml", DUTY.replace(RULE, "FREQ=MONTHLY;UNTIL=20050101"))
    (problem,) = check(tmp_path)
    assert "never fires" in problem, problem


def folder(tmp_path: Path, duty_lines: str = "", units: str = UNITS) -> Path:
    write(tmp_path, "units.yaml", units)
    write(tmp_path, "ladders.yaml", LADDER)
    return write(tmp_path, "duties.yaml", DUTY + duty_lines)


@pytest.mark.parametrize(
    ("lines", "field", "expected"),
    [
        ("    due: {rule: last_workday, time: 17:00}\n", "due.time", TimeOfDay(17, 0)),
        ('    due: {rule: last_workday, time: "17:00"}\n', "due.time", TimeOfDay(17, 0)),
        ("    remind_time: 9:00\n", "remind_time", TimeOfDay(9, 0)),
        ("    remind_time: 09:05\n", "remind_time", TimeOfDay(9, 5)),
        ("    send_window: {start: 8:30, end: 18:00}\n", "send_window.start", TimeOfDay(8, 30)),
        ("    send_window: {start: 8:30, end: 18:00}\n", "send_window.end", TimeOfDay(18, 0)),
        ("    inferred: yes\n    assumption: 每月一次\n", "inferred", True),
        ("    monthly_tasks: {02: [修剪]}\n", "monthly_tasks", {2: ["修剪"]}),
    ],
)
def test_a_value_is_read_as_written(tmp_path: Path, lines: str, field: str, expected: object) -> None:
    folder(tmp_path, lines)
    value: object = load_program(tmp_path).duties["sweep"]
    for part in field.split("."):
        value = getattr(value, part)
    assert value == expected


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        (
            "",
            "    due: {rule: last_workday, time: 1700}\n",
            12,
            '.due.time: 1700 is a number, not a time of day: write "17:00"',
        ),
        (
            "",
            "    due: {rule: last_workday, time: 17}\n",
            12,
            '.due.time: 17 is a number, not a time of day: write "17:00"',
        ),
        ("", "    remind_time: 930\n", 12, '.remind_time: 930 is a number, not a time of day: write "09:30"'),
        (
            "",
            "    send_window: {start: 8.5}\n",
            12,
            '.send_window.start: 8.5 is a number, not a time of day: write "HH:MM"',
        ),
        (
            "    title: 大扫除",
            "    title: true",
            4,
            '.title: true is read as a boolean, not text: write it in quotes, "true"',
        ),
        (
            "    quote: 开展双月环境卫生大扫除活动。",
            "    quote: 2027-01-01",
            6,
            ".quote: 2027-01-01 is read as a date, not text",
        ),
        ("", "    quota: {count: true}\n", 12, ".quota: count: true or false where a number belongs: write the number"),
        ("", "    reminders: [3, true]\n", 12, ": reminders: true or false where a number belongs: write the number"),
        ("    lead: [office]", "    lead: [1.10]", 7, ".lead.0: 1.1 is read as a number, not text: write it in quotes"),
    ],
)
def test_a_value_that_would_change_meaning_is_refused(
    tmp_path: Path, old: str, new: str, line: int, message: str
) -> None:
    assert old in DUTY
    folder(tmp_path)
    duties = write(tmp_path, "duties.yaml", DUTY.replace(old, new) if old else DUTY + new)
    (problem,) = check(tmp_path)
    assert problem.startswith(f"{duties}:{line}: duties.0{message}"), problem


@pytest.mark.parametrize(
    ("old", "new", "unit", "field", "expected"),
    [
        ("  - id: street-a", "  - id: 0123", "0123", "id", "0123"),
        (
            "    district: office",
            "    district: office\n    tags: [no, on, yes, off, 0x1F]",
            "street-a",
            "tags",
            ["no", "on", "yes", "off", "0x1F"],
        ),
        ("    name: 甲街道", "    name: 12:30", "street-a", "name", "12:30"),
    ],
)
def test_a_unit_is_read_as_written(tmp_path: Path, old: str, new: str, unit: str, field: str, expected: object) -> None:
    assert old in UNITS
    folder(tmp_path, units=UNITS.replace(old, new))
    assert getattr(load_program(tmp_path).units[unit], field) == expected


def test_a_numeric_unit_id_says_to_quote_it(tmp_path: Path) -> None:
    folder(tmp_path, units=UNITS.replace("  - id: street-a", "  - id: 123"))
    (problem,) = check(tmp_path)
    assert (
        problem
        == f'{tmp_path / "units.yaml"}:8: units.1.id: 123 is read as a number, not text: write it in quotes, "123"'
    )
    folder(tmp_path, units=UNITS.replace("  - id: street-a", "  - id: no"))
    assert check(tmp_path) == []


@pytest.mark.parametrize(
    ("holidays", "problem"),
    [
        ('[2027-02-10, "2027-02-11"]', ""),
        ("[20270210]", "3: holidays.0: 20270210 is a number, not a date: write it as YYYY-MM-DD"),
    ],
)
def test_a_holiday_is_a_date_as_written(tmp_path: Path, holidays: str, problem: str) -> None:
    folder(tmp_path)
    days = write(tmp_path / "workdays", "2027.yaml", f"year: 2027\nsource: 国办发明电\nholidays: {holidays}\n")
    problems = check(tmp_path)
    if not problem:
        assert problems == []
        assert load_program(tmp_path).workdays.is_workday(date(2027, 2, 11)) is False
    else:
        assert len(problems) == 1 and problems[0].startswith(f"{days}:{problem}"), problems


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("units:\n  - id: office\n    ? [a, b]\n    : 1\n", 3),
        ("units:\n  - {id: office, [1]: x}\n", 2),
        ("units:\n  - id: office\n    ? {a: 1}\n    : x\n", 3),
    ],
)
def test_a_list_or_mapping_as_a_key_is_located_not_a_traceback(tmp_path: Path, text: str, line: int) -> None:
    path = write(tmp_path, "units.yaml", text)
    assert check(tmp_path) == [f"{path}:{line}: YAML: a key must be a name, not a list or mapping"]


def test_yml_files_are_read_too(tmp_path: Path) -> None:
    write(tmp_path, "units.yml", UNITS)
    write(tmp_path, "ladders.yaml", LADDER)
    write(tmp_path / "more", "duties.yml", DUTY)
    assert check(tmp_path) == []
    assert set(load_program(tmp_path).duties) == {"sweep"}
    broken = write(tmp_path, "extra.yml", "units:\n  - id: Office\n")
    problems = check(tmp_path)
    assert problems and all(problem.startswith(f"{broken}:") for problem in problems), problems


def test_a_yml_and_a_yaml_of_the_same_stem_are_two_files(tmp_path: Path) -> None:
    write(tmp_path, "units.yaml", UNITS)
    write(tmp_path, "ladders.yaml", LADDER)
    write(tmp_path, "duties.yaml", DUTY)
    copy = write(tmp_path, "duties.yml", DUTY)
    (problem,) = check(tmp_path)
    assert problem.startswith(f"{copy}:2: duplicate duty id 'sweep' (first at {tmp_path / 'duties.yaml'}:2)"), problem


def test_a_workday_file_may_be_yml(tmp_path: Path) -> None:
    folder(tmp_path)
    write(tmp_path / "workdays", "2027.yml", "year: 2027\nsource: 国办发明电\nholidays: [2027-02-10]\n")
    assert load_program(tmp_path).workdays.is_workday(date(2027, 2, 10)) is False


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("json://127.0.0.1:98123/x", "port out of range 0-65535"),
        ("json://127.0.0.1:-1/x", "port could not be cast to integer value as '-1'"),
        ("json://127.0.0.1:abc/x", "port could not be cast to integer value as 'abc'"),
        ("json://[::1/x", "invalid IPv6 URL"),
        ("smsgw://[::1/sms?to=13800000000", "invalid IPv6 URL"),
    ],
)
def test_a_contact_url_urllib_cannot_read_is_refused(tmp_path: Path, url: str, reason: str) -> None:
    old = "mailto://127.0.0.1:2525?from=duties@huzhou.local&to=a@b.c"
    assert old in UNITS
    folder(tmp_path, units=UNITS.replace(old, url))
    (problem,) = check(tmp_path)
    expected = f"{tmp_path / 'units.yaml'}:7: unit office: contact 'mail': invalid URL {url!r}: {reason}"
    assert problem == expected, problem


def test_two_workday_files_for_one_year_are_refused(tmp_path: Path) -> None:
    folder(tmp_path)
    first = write(tmp_path / "workdays", "2027.yaml", "year: 2027\nsource: 国办发明电\nholidays: [2027-02-10]\n")
    second = write(tmp_path / "workdays", "2027.yml", "year: 2027\nsource: 国办发明电\nworkdays: [2027-02-13]\n")
    assert check(tmp_path) == [f"{second}:1: a second file for 2027 (first at {first}:1): keep one"]


def test_check_takes_a_single_file_and_reports_only_its_problems(settings_env: Path, calendars_dir: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    duties = calendars_dir / "huzhou" / "duties.yaml"
    text = duties.read_text(encoding="utf-8")
    duties.write_text(text.replace("BYMONTH=2,4,6,8,10,12", "BYMONTH=2,4,6,8,10,13", 1), encoding="utf-8")
    broken = CliRunner().invoke(app, ["check", str(duties)])
    assert broken.exit_code == 1 and broken.stdout.startswith(f"{duties}:") and "BYMONTH=13" in broken.stdout
    fine = CliRunner().invoke(app, ["check", str(calendars_dir / "huzhou" / "units.yaml")])
    assert fine.exit_code == 0 and "校验通过" in fine.stdout


def test_digits_that_are_not_ascii_are_refused_not_crashed_on(tmp_path: Path) -> None:
    write(tmp_path, "units.yaml", UNITS)
    write(tmp_path, "ladders.yaml", LADDER)
    write(tmp_path, "duties.yaml", DUTY.replace(RULE, "FREQ=MONTHLY;BYMONTH=²"))
    (problem,) = check(tmp_path)
    assert "BYMONTH" in problem or "RRULE" in problem


def test_schema_and_reference_problems_are_reported_in_one_run(settings_env: Path, calendars_dir: Path) -> None:
    """Issue 18: a broken entry no longer hides the rest of the folder's problems, nor do references to it cascade."""
    duties = calendars_dir / "huzhou" / "duties.yaml"
    text = duties.read_text(encoding="utf-8").replace("BYMONTH=2,4,6,8,10,12", "BYMONTH=2,4,6,8,10,13", 1)
    third = text.index("assignees: [", text.index("assignees: [", text.index("assignees: [") + 1) + 1)
    duties.write_text(text[:third] + text[third:].replace("assignees: [", "assignees: [no-such-unit, ", 1), "utf-8")
    problems = check(calendars_dir)
    assert len(problems) == 2, problems
    assert "BYMONTH=13 is out of range" in problems[0] and "unknown unit or group 'no-such-unit'" in problems[1]
