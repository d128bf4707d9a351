"""Unannounced checks at drawn moments: the days (working days, days off, all) and the hours a duty allows."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from calendars.loader import Program, check, load_program
from calendars.recurrence import Period, expand, reminder_times
from calendars.schema import DutySpec
from flows.cli import app as cli
from tests.conftest import REPO, SHANGHAI, local

SEED = "a seed for these tests"
HOURS = '      hours: ["08:00-18:00", "22:00-06:00"]'
DAYS = "      days: all"


@pytest.fixture(scope="module")
def shipped() -> Program:
    return load_program(REPO / "calendars")


def site_check(program: Program, **unannounced: Any) -> DutySpec:
    """The shipped site check with other ``days``/``hours``: unset fields are back at their defaults."""
    duty = program.duties["site-dust-noise-check"]
    spec = {"count": 2, "subjects": ["kind:construction_site"], **unannounced}
    return DutySpec.model_validate({**duty.model_dump(exclude={"unannounced"}), "unannounced": spec})


def checks(program: Program, duty: DutySpec, *, seed: str = SEED, unit: str = "wuxing-ecology") -> list[Period]:
    """The checks drawn for the months of 2026, a night check of 31 December included."""
    drawn = expand(duty, date(2026, 1, 1), date(2027, 1, 1), program.workdays, SHANGHAI, unit=unit, seed=seed)
    return [period for period in drawn if period.key.startswith("2026-")]


def minutes_into_day(period: Period) -> int:
    """Minutes from the midnight starting the drawn day to the check: past 1440 in the night after it."""
    midnight = datetime.combine(period.starts, datetime.min.time(), tzinfo=SHANGHAI)
    return int((period.due_at.astimezone(SHANGHAI) - midnight).total_seconds()) // 60


def inside(period: Period, windows: list[tuple[int, int]]) -> bool:
    minute = minutes_into_day(period)
    return minute % 10 == 0 and any(start <= minute < end for start, end in windows)


@pytest.mark.parametrize(
    ("shipped_line", "line", "message"),
    [
        (HOURS, '      hours: ["8:00-18:00"]', "hours: '8:00-18:00' is not a window \"HH:MM-HH:MM\""),
        (HOURS, '      hours: ["08:00–18:00"]', 'is not a window "HH:MM-HH:MM" (e.g. "08:00-18:00"'),
        (HOURS, '      hours: ["08:00-24:00"]', "is not a window"),
        (HOURS, '      hours: ["22:00-06:60"]', "is not a window"),
        (HOURS, '      hours: ["08:00"]', "is not a window"),
        (HOURS, '      hours: ["22:00-22:00"]', "'22:00-22:00' is an empty window, its start and end are the same"),
        (HOURS, "      hours: []", "hours: no window to draw a moment from; leave hours out"),
        (HOURS, "      hours: 08:00-18:00", "valid list"),
        (DAYS, "      days: weekends", "'workdays', 'days_off' or 'all'"),
    ],
)
def test_a_bad_window_or_day_choice_is_an_error_at_its_line(
    tmp_path: Path, shipped_line: str, line: str, message: str
) -> None:
    root = tmp_path / "calendars"
    shutil.copytree(REPO / "calendars", root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    sites = root / "huzhou" / "sites.yaml"
    lines = sites.read_text(encoding="utf-8").splitlines()
    number = lines.index(shipped_line) + 1
    lines[number - 1] = line
    sites.write_text("\n".join(lines) + "\n", encoding="utf-8")
    problems = check(root)
    assert any(p.startswith(f"{sites}:{number}: ") and message in p for p in problems), problems


def test_by_default_the_days_are_working_days_at_the_due_time_as_drawn_before(shipped: Program) -> None:
    duty = site_check(shipped)
    assert duty.unannounced is not None and (duty.unannounced.days, duty.unannounced.hours) == ("workdays", None)
    for period in checks(shipped, duty):
        # What the draw always was: an HMAC of duty|unit|month seeds random.sample over the month's working days.
        month, _ = period.key.split("#")
        first = date(int(month[:4]), int(month[5:]), 1)
        last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        digest = hmac.new(SEED.encode(), f"{duty.id}|wuxing-ecology|{month}".encode(), hashlib.sha256).digest()
        days = sorted(random.Random(int.from_bytes(digest, "big")).sample(shipped.workdays.workdays_of(first, last), 2))
        assert period.starts in days
        assert period.due_at == datetime.combine(period.starts, duty.due.time, tzinfo=SHANGHAI)


def test_checks_fall_inside_the_windows_on_a_ten_minute_grid(shipped: Program) -> None:
    duty = site_check(shipped, hours=["07:00-08:30", "12:00-14:00"], count=4)
    drawn = checks(shipped, duty)
    assert len(drawn) == 48
    assert all(inside(p, [(420, 510), (720, 840)]) for p in drawn)
    assert all(shipped.workdays.is_workday(p.starts) for p in drawn)
    assert len({minutes_into_day(p) for p in drawn}) > 10  # drawn, not one fixed time


def test_a_window_across_midnight_belongs_to_the_day_it_starts_on(shipped: Program) -> None:
    duty = site_check(shipped, hours=["20:00-06:00"], days="all")
    drawn = checks(shipped, duty)
    assert all(inside(p, [(20 * 60, 30 * 60)]) for p in drawn)
    after_midnight = [p for p in drawn if p.due_at.astimezone(SHANGHAI).date() == p.starts + timedelta(days=1)]
    assert after_midnight, "no check drawn after midnight in a year"
    for period in after_midnight:  # visible from the start of the evening's day, the key stays the drawn month
        assert period.visible_from == datetime.combine(period.starts, datetime.min.time(), tzinfo=SHANGHAI)
        assert period.key.startswith(f"{period.starts.year}-{period.starts.month:02d}#")


def test_days_off_draws_only_weekends_and_holidays(shipped: Program) -> None:
    duty = site_check(shipped, days="days_off", hours=["09:00-11:00"])
    drawn = checks(shipped, duty)
    assert len(drawn) == 24
    assert not any(shipped.workdays.is_workday(p.starts) for p in drawn)
    assert all(inside(p, [(540, 660)]) for p in drawn)


def test_the_same_seed_draws_the_same_moments_another_seed_others(shipped: Program) -> None:
    duty = site_check(shipped, days="all", hours=["08:00-18:00", "22:00-06:00"])
    first = [(p.key, p.due_at) for p in checks(shipped, duty)]
    assert first == [(p.key, p.due_at) for p in checks(shipped, duty)]
    assert first != [(p.key, p.due_at) for p in checks(shipped, duty, seed="another seed")]
    assert first != [(p.key, p.due_at) for p in checks(shipped, duty, unit="anji-ecology")]
    # The hours are drawn apart from the days: the same days as without hours, only the moments differ.
    days_only = site_check(shipped, days="all")
    assert [p.starts for p in checks(shipped, days_only)] == [p.starts for p in checks(shipped, duty)]


def test_the_days_of_a_period_are_distinct_even_when_all_are_drawn(shipped: Program) -> None:
    duty = site_check(shipped, days="days_off", hours=["22:00-06:00"], count=20)
    drawn = checks(shipped, duty)
    for month in range(1, 13):
        days = [p.starts for p in drawn if p.key.startswith(f"2026-{month:02d}#")]
        first = date(2026, month, 1)
        every = [first + timedelta(days=n) for n in range(31) if (first + timedelta(days=n)).month == month]
        assert days == sorted(set(days)) == [d for d in every if not shipped.workdays.is_workday(d)]
    drawn_days = {p.starts for p in drawn}
    assert date(2026, 10, 1) in drawn_days  # National Day, a Thursday: a holiday is a day off
    assert date(2026, 10, 10) not in drawn_days  # a make-up Saturday (调休) is a working day


def test_the_shipped_site_check_draws_nights_and_days_off_over_a_year(shipped: Program) -> None:
    duty = shipped.duties["site-dust-noise-check"]
    assert duty.unannounced is not None and duty.inferred and "重点时段" in duty.assumption
    for unit in shipped.assignees(duty):
        drawn = checks(shipped, duty, unit=unit)
        assert len(drawn) == 24
        assert all(inside(p, [(8 * 60, 18 * 60), (22 * 60, 30 * 60)]) for p in drawn)
        assert any(minutes_into_day(p) >= 22 * 60 for p in drawn), f"{unit}: no night check"
        assert any(not shipped.workdays.is_workday(p.starts) for p in drawn), f"{unit}: no check on a day off"
        assert any(shipped.workdays.is_workday(p.starts) and minutes_into_day(p) < 18 * 60 for p in drawn)
        for period in drawn:  # the inspector always hears of a check on a working day before it happens
            first = reminder_times(duty, period.due_at, shipped.workdays, SHANGHAI)[0]
            assert first < period.due_at and shipped.workdays.is_workday(first.date()) and first.hour == 9


def test_a_saturday_night_check_is_announced_to_the_inspector_on_friday_morning(shipped: Program) -> None:
    duty = shipped.duties["site-dust-noise-check"]
    assert reminder_times(duty, local("2026-03-07T22:00"), shipped.workdays, SHANGHAI) == [local("2026-03-06T09:00")]
    # A night check on a working day, after midnight: the working day the night starts on, not the morning after.
    tuesday_night = reminder_times(duty, local("2026-03-10T01:30"), shipped.workdays, SHANGHAI)
    assert tuesday_night[0] == local("2026-03-09T09:00")


def test_preview_shows_the_drawn_moments(settings_env: Path) -> None:
    shown = CliRunner().invoke(
        cli,
        [
            "preview",
            "site-dust-noise-check",
            "--unit",
            "wuxing-ecology",
            "--from",
            "2026-01-01",
            "--count",
            "24",
            "--json",
        ],
    )
    assert shown.exit_code == 0, shown.output
    moments = [datetime.fromisoformat(row["due"]).astimezone(SHANGHAI) for row in json.loads(shown.stdout)]
    assert len(moments) == 24 and len({m.time() for m in moments}) > 3
    assert any(m.hour >= 22 or m.hour < 6 for m in moments)
