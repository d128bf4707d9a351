"""Issue 20: calendar files that were read as something else than what was written, or that hung every tick."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import pytest

from calendars.loader import check
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
