"""Dates the offices can trust: the 2026 statutory calendar with its make-up days, and the expansion checked against
dateutil's rrule as an oracle over generated rules."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from dateutil.rrule import rrulestr
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from calendars.loader import load_program
from calendars.recurrence import expand
from calendars.schema import DutySpec
from calendars.workdays import WorkdayCalendar
from flows import steps
from flows.steps import Context
from store.queries import find_occurrences, occurrence_json
from tests.conftest import REPO, SHANGHAI, local
from tests.test_calendars import duty as calendar_duty

WORKDAYS = WorkdayCalendar()
MAKEUP_2026 = [
    date(2026, 1, 4),
    date(2026, 2, 14),
    date(2026, 2, 28),
    date(2026, 5, 9),
    date(2026, 9, 20),
    date(2026, 10, 10),
]


def test_the_2026_weekend_makeup_days_are_working_days() -> None:
    weekend_workdays = [d for d in WORKDAYS.workdays(date(2026, 1, 1), date(2026, 12, 31)) if d.weekday() >= 5]
    assert weekend_workdays == MAKEUP_2026


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        # 春节 2026: 15–23 February off, Saturdays 14 and 28 February worked.
        (
            date(2026, 2, 12),
            date(2026, 2, 25),
            [date(2026, 2, 12), date(2026, 2, 13), date(2026, 2, 14), date(2026, 2, 24), date(2026, 2, 25)],
        ),
        # 国庆 2026: 1–7 October off, Sunday 20 September and Saturday 10 October worked.
        (date(2026, 9, 19), date(2026, 9, 21), [date(2026, 9, 20), date(2026, 9, 21)]),
        (
            date(2026, 9, 30),
            date(2026, 10, 11),
            [date(2026, 9, 30), date(2026, 10, 8), date(2026, 10, 9), date(2026, 10, 10)],
        ),
    ],
)
def test_working_days_across_the_2026_holidays(start: date, end: date, expected: list[date]) -> None:
    assert list(WORKDAYS.workdays(start, end)) == expected


@pytest.mark.parametrize(
    ("start", "count", "expected"),
    [
        (date(2026, 2, 13), 1, date(2026, 2, 14)),  # Friday → the make-up Saturday
        (date(2026, 2, 14), 1, date(2026, 2, 24)),  # across the whole Spring Festival
        (date(2026, 9, 30), 3, date(2026, 10, 10)),  # across National Day to the make-up Saturday
        (date(2026, 10, 10), -3, date(2026, 9, 30)),  # and back
    ],
)
def test_adding_working_days_across_the_holidays(start: date, count: int, expected: date) -> None:
    assert WORKDAYS.add_workdays(start, count) == expected


def test_2027_is_flagged_until_its_arrangement_is_published() -> None:
    assert not WORKDAYS.is_published(2027) and WORKDAYS.unpublished_years(date(2026, 12, 1), date(2027, 1, 31)) == [
        2027
    ]


def duty(rrule: str, period: str, due: dict[str, object]) -> DutySpec:
    return calendar_duty(recurrence={"rrule": rrule, "period": period}, due=due)


NO_HOLIDAYS = WorkdayCalendar(override_years=set(range(1990, 2100)), statutory=False)
months = st.lists(st.integers(1, 12), min_size=1, max_size=12, unique=True).map(sorted)
years = st.integers(2024, 2030)


def _oracle(rule: str, first: date, last: date) -> list[date]:
    moments = rrulestr(rule, dtstart=datetime(2000, 1, 1)).between(
        datetime.combine(first, datetime.min.time()), datetime.combine(last, datetime.min.time()), inc=True
    )
    return [m.date() for m in moments]


@settings(max_examples=60, deadline=None)
@given(months=months, day=st.integers(1, 31), year=years)
def test_skip_matches_rfc5545_which_drops_missing_days(months: list[int], day: int, year: int) -> None:
    by_month = ",".join(map(str, months))
    spec = duty(
        f"FREQ=MONTHLY;BYMONTH={by_month}",
        "month",
        {"rule": "day_of_period", "day": day, "month_end": "skip", "roll": "none"},
    )
    first, last = date(year, 1, 1), date(year, 12, 31)
    got = [p.due_at.date() for p in expand(spec, first, last, NO_HOLIDAYS, SHANGHAI)]
    assert got == _oracle(f"FREQ=MONTHLY;BYMONTH={by_month};BYMONTHDAY={day}", first, last)


@settings(max_examples=60, deadline=None)
@given(months=months, day=st.integers(1, 31), year=years)
def test_clamp_matches_the_last_existing_day_not_after_it(months: list[int], day: int, year: int) -> None:
    by_month = ",".join(map(str, months))
    spec = duty(f"FREQ=MONTHLY;BYMONTH={by_month}", "month", {"rule": "day_of_period", "day": day, "roll": "none"})
    first, last = date(year, 1, 1), date(year, 12, 31)
    got = [p.due_at.date() for p in expand(spec, first, last, NO_HOLIDAYS, SHANGHAI)]
    days = ",".join(str(d) for d in range(1, day + 1))
    assert got == _oracle(f"FREQ=MONTHLY;BYMONTH={by_month};BYMONTHDAY={days};BYSETPOS=-1", first, last)


@settings(max_examples=40, deadline=None)
@given(
    weekdays=st.lists(st.sampled_from(["MO", "TU", "WE", "TH", "FR", "SA", "SU"]), min_size=1, unique=True), year=years
)
def test_weekly_periods_follow_the_rule_and_end_on_the_last_weekday(weekdays: list[str], year: int) -> None:
    rule = f"FREQ=WEEKLY;BYDAY={','.join(weekdays)}"
    spec = duty(rule, "week", {"rule": "last_workday"})
    first, last = date(year, 3, 1), date(year, 8, 31)
    got = expand(spec, first, last, NO_HOLIDAYS, SHANGHAI)
    fired = {d - timedelta(days=d.weekday()) for d in _oracle(rule, first - timedelta(days=7), last)}
    assert {p.starts for p in got} == {m for m in fired if first <= m + timedelta(days=4) <= last}
    assert all(p.due_at.weekday() == 4 for p in got)  # with no holidays, Friday ends every ISO week's work


def test_a_year_of_plans_covers_every_obligation_with_its_clause(session: Session, ctx: Context) -> None:
    program = load_program(REPO / "calendars")
    assert set(program.duties) == set(ctx.program.duties)
    steps.plan(session, ctx, start=date(2026, 1, 1), end=date(2026, 12, 31), at=local("2025-12-31T08:00"))
    at = local("2026-06-30T12:00")
    rows = [occurrence_json(o, d, u, at=at, zone=SHANGHAI) for o, d, u in find_occurrences(session, at=at)]
    planned = {row["duty"] for row in rows}
    scheduled = {duty.id for duty in program.duties.values() if duty.category is None}  # a case: when it is found
    assert planned == scheduled, scheduled - planned
    for row in rows:
        assert row["clause"] == program.duties[row["duty"]].clause
