"""Case clocks against an independent oracle: a brute-force walk, minute by minute, over windows parsed here and
working days taken from the chinesecalendar package (2025–2026) and a table written by hand (January 2027)."""

from __future__ import annotations

import time as timer
from datetime import UTC, date, datetime, time, timedelta
from functools import cache

import chinese_calendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calendars.clocks import Clock, Duration, DurationUnit, parse_windows
from calendars.workdays import WorkdayCalendar
from tests.conftest import SHANGHAI, local

OFFICE = ["08:30-12:00", "13:30-17:30"]
MINUTE = timedelta(minutes=1)
# 2027's arrangement is not published: by law only 元旦 (Friday 1 January) is off, so January's working days are
# the weekdays from the 4th. Written out, not computed, to stay independent of the product.
WORKDAYS_JANUARY_2027 = {
    date(2027, 1, d) for d in (4, 5, 6, 7, 8, 11, 12, 13, 14, 15, 18, 19, 20, 21, 22, 25, 26, 27, 28, 29)
}


def clock(service: list[str] | None = None, office: list[str] = OFFICE) -> Clock:
    return Clock(WorkdayCalendar(), SHANGHAI, tuple(parse_windows(office)), tuple(parse_windows(service or [])))


# --- the oracle ----------------------------------------------------------------------------------------------------


@cache
def oracle_is_workday(day: date) -> bool:
    if day.year == 2027:
        assert day.month == 1, f"the oracle knows January 2027 only, not {day}"
        return day in WORKDAYS_JANUARY_2027
    return bool(chinese_calendar.is_workday(day))


def oracle_windows(values: list[str]) -> list[tuple[int, int]]:
    """Each "HH:MM-HH:MM" as minutes of the day it starts on; one that ends at or before its start ends tomorrow."""
    windows = []
    for value in values:
        start, end = ((int(h) * 60 + int(m)) for h, m in (part.split(":") for part in value.split("-")))
        windows.append((start, end if end > start else end + 1440))
    return windows


def oracle_counts(t: datetime, windows: list[tuple[int, int]], workdays_only: bool) -> bool:
    """Whether the minute [t, t+1) counts: inside a window of t's day, or of yesterday's window that crosses
    midnight, on a day that counts."""
    minute = t.hour * 60 + t.minute
    for day, offset in ((t.date(), 0), (t.date() - timedelta(days=1), 1440)):
        if workdays_only and not oracle_is_workday(day):
            continue
        if any(start <= minute + offset < end for start, end in windows):
            return True
    return False


def oracle_rules(unit: DurationUnit, service: list[str], office: list[str]) -> tuple[list[tuple[int, int]], bool]:
    if unit in ("minutes", "hours"):
        return oracle_windows(service) if service else [(0, 1440)], False
    return oracle_windows(office), True


def oracle_deadline(start: datetime, duration: Duration, service: list[str], office: list[str] = OFFICE) -> datetime:
    windows, workdays_only = oracle_rules(duration.unit, service, office)
    left = duration.amount * (1 if duration.unit == "minutes" else 60)
    t = start
    while True:
        if oracle_counts(t, windows, workdays_only):
            left -= 1
            if left == 0:
                return t + MINUTE
        t += MINUTE


def oracle_counted(start: datetime, end: datetime, unit: DurationUnit, service: list[str]) -> int:
    windows, workdays_only = oracle_rules(unit, service, OFFICE)
    t, counted = start, 0
    while t < end:
        counted += oracle_counts(t, windows, workdays_only)
        t += MINUTE
    return counted


def oracle_workdays_deadline(start: datetime, amount: int) -> datetime:
    day = start.date()
    while amount:
        day += timedelta(days=1)
        amount -= oracle_is_workday(day)
    return datetime.combine(day, time(17, 30))


# --- draws weighted towards the places where clocks go wrong ------------------------------------------------------

HOLIDAY_EVES = [date(2025, 12, 31), date(2026, 4, 3), date(2026, 4, 30), date(2026, 6, 18), date(2026, 9, 24)]
HOLIDAY_EVES += [date(2026, 9, 30)]
MAKEUP_SATURDAYS = [date(2026, 2, 14), date(2026, 2, 28), date(2026, 9, 20), date(2026, 10, 10)]
SPRING_FESTIVAL = st.dates(date(2026, 2, 11), date(2026, 2, 25))
NATIONAL_DAY = st.dates(date(2026, 9, 28), date(2026, 10, 11))
FRIDAYS = st.integers(0, 55).map(lambda weeks: date(2025, 12, 5) + timedelta(weeks=weeks))
DAYS = st.one_of(
    st.dates(date(2025, 12, 1), date(2026, 12, 31)),
    FRIDAYS,
    st.sampled_from(HOLIDAY_EVES + MAKEUP_SATURDAYS),
    SPRING_FESTIVAL,
    NATIONAL_DAY,
)
EDGES = [8 * 60 + 30, 12 * 60, 13 * 60 + 30, 17 * 60 + 30, 19 * 60, 2 * 60, 5 * 60 + 30, 11 * 60, 15 * 60, 17 * 60]
MINUTES_OF_DAY = st.one_of(
    st.integers(0, 1439),
    st.sampled_from(EDGES).flatmap(lambda edge: st.integers(edge - 40, edge + 40)).map(lambda m: m % 1440),
)
STARTS = st.builds(lambda day, minute: datetime.combine(day, time()) + timedelta(minutes=minute), DAYS, MINUTES_OF_DAY)
DURATIONS = st.one_of(
    st.builds(Duration, st.integers(1, 600), st.just("minutes")),
    st.builds(Duration, st.integers(1, 48), st.just("hours")),
    st.builds(Duration, st.integers(1, 40), st.just("workhours")),
)
SERVICE_HOURS = st.sampled_from([[], ["05:30-18:00"], ["06:00-11:00", "15:00-19:00"], ["17:00-02:00"]])
OFFICE_HOURS = st.sampled_from([OFFICE, ["09:00-12:00", "14:00-18:00"]])


@settings(max_examples=250, deadline=None)
@given(start=STARTS, duration=DURATIONS, service=SERVICE_HOURS, office=OFFICE_HOURS)
def test_deadlines_match_the_minute_walk(
    start: datetime, duration: Duration, service: list[str], office: list[str]
) -> None:
    got = clock(service, office).deadline(start.replace(tzinfo=SHANGHAI), duration)
    assert got.tzinfo is SHANGHAI
    assert got.replace(tzinfo=None) == oracle_deadline(start, duration, service, office)


@settings(max_examples=150, deadline=None)
@given(
    start=STARTS,
    length=st.integers(-30, 12000),
    unit=st.sampled_from(["minutes", "hours", "workhours", "workdays"]),
    service=SERVICE_HOURS,
)
def test_counted_minutes_match_the_minute_walk(
    start: datetime, length: int, unit: DurationUnit, service: list[str]
) -> None:
    end = start + timedelta(minutes=length)
    got = clock(service).counted_minutes(start.replace(tzinfo=SHANGHAI), end.replace(tzinfo=SHANGHAI), unit)
    assert got == oracle_counted(start, end, unit, service)


@settings(max_examples=100, deadline=None)
@given(start=STARTS, duration=DURATIONS, service=SERVICE_HOURS)
def test_a_clock_counts_its_whole_duration_up_to_its_deadline(
    start: datetime, duration: Duration, service: list[str]
) -> None:
    moment = start.replace(tzinfo=SHANGHAI)
    the_clock = clock(service)
    used = the_clock.counted_minutes(moment, the_clock.deadline(moment, duration), duration.unit)
    assert used == duration.minutes


@settings(max_examples=100, deadline=None)
@given(start=STARTS, amount=st.integers(1, 15))
def test_workday_deadlines_match_counting_working_days(start: datetime, amount: int) -> None:
    got = clock().deadline(start.replace(tzinfo=SHANGHAI), Duration(amount, "workdays"))
    assert got.replace(tzinfo=None) == oracle_workdays_deadline(start, amount)


# --- cases a reader checks by eye (office hours 08:30–12:00 and 13:30–17:30) ---------------------------------------


@pytest.mark.parametrize(
    ("start", "duration", "service", "expected"),
    [
        # Across lunch: 10 minutes before 12:00, 50 after 13:30.
        ("2026-11-03 11:50", "1 workhour", [], "2026-11-03 14:20"),
        # Running out exactly at a window's end gives that end, not the next opening.
        ("2026-11-03 11:00", "1 workhour", [], "2026-11-03 12:00"),
        ("2026-11-03 16:30", "1 workhour", [], "2026-11-03 17:30"),
        # Lunch and after hours start counting at the next opening.
        ("2026-11-03 12:10", "1 workhour", [], "2026-11-03 14:30"),
        ("2026-11-03 18:00", "1 workhour", [], "2026-11-04 09:30"),
        ("2026-11-03 07:00", "4 workhours", [], "2026-11-03 14:00"),
        # A whole working day is 7½ hours: 8 of them end at 09:00 the next day.
        ("2026-11-03 08:30", "8 workhours", [], "2026-11-04 09:00"),
        # Friday afternoon → Monday: 1 hour on Friday, 1 on Monday.
        ("2026-11-06 16:30", "2 workhours", [], "2026-11-09 09:30"),
        ("2026-11-07 10:00", "1 workhour", [], "2026-11-09 09:30"),  # a Saturday start waits for Monday
        # Before 国庆 2026: 1½ hours on 30 September, 1–7 October off, 2½ hours on Thursday 8 October.
        ("2026-09-30 16:00", "4 workhours", [], "2026-10-08 11:00"),
        # The make-up Sunday 20 September 2026 counts.
        ("2026-09-18 17:00", "1 workhour", [], "2026-09-20 09:00"),
        # The make-up Saturday 14 February 2026 counts; then 春节 (15–23 February) does not.
        ("2026-02-13 17:00", "1 workhour", [], "2026-02-14 09:00"),
        ("2026-02-14 17:00", "1 workhour", [], "2026-02-24 09:00"),
        # 元旦 2026: 1–3 January off, Sunday 4 January worked.
        ("2025-12-31 17:00", "1 workhour", [], "2026-01-04 09:00"),
        # Calendar time: nights, weekends and holidays count.
        ("2026-11-03 23:50", "30 minutes", [], "2026-11-04 00:20"),
        ("2026-02-14 18:00", "48 hours", [], "2026-02-16 18:00"),
        # Service hours count on every day, holidays included.
        ("2026-11-07 10:30", "1 hour", ["06:00-11:00", "15:00-19:00"], "2026-11-07 15:30"),
        ("2026-02-17 18:30", "1 hour", ["06:00-11:00", "15:00-19:00"], "2026-02-18 06:30"),
        ("2026-11-03 11:00", "30 minutes", ["06:00-11:00", "15:00-19:00"], "2026-11-03 15:30"),
        # A window crossing midnight belongs to the day it opens: 3 hours to 02:00, 1 from 17:00.
        ("2026-11-03 23:00", "4 hours", ["17:00-02:00"], "2026-11-04 18:00"),
        ("2026-11-04 01:00", "1 hour", ["17:00-02:00"], "2026-11-04 02:00"),
        ("2026-11-04 03:00", "30 minutes", ["17:00-02:00"], "2026-11-04 17:30"),
        ("2026-12-31 22:00", "5 hours", ["17:00-02:00"], "2027-01-01 18:00"),
        # Seconds are kept.
        ("2026-11-03 09:12:30", "30 minutes", [], "2026-11-03 09:42:30"),
        ("2026-11-03 11:59:30", "1 workhour", [], "2026-11-03 14:29:30"),
        ("2026-11-03 16:59:30", "1 minute", ["17:00-02:00"], "2026-11-03 17:01"),
        # Working days end at the close of the last window; the start's own day never counts.
        ("2026-11-03 08:00", "1 workday", [], "2026-11-04 17:30"),
        ("2026-11-06 17:00", "1 workday", [], "2026-11-09 17:30"),
        ("2026-11-07 10:00", "1 workday", [], "2026-11-09 17:30"),
        ("2026-02-13 10:00", "1 workday", [], "2026-02-14 17:30"),
        ("2026-02-14 10:00", "1 workday", [], "2026-02-24 17:30"),
        ("2026-09-30 10:00", "3 workdays", [], "2026-10-10 17:30"),
        ("2026-12-30 10:00", "2 workdays", [], "2027-01-04 17:30"),
    ],
)
def test_deadlines_by_eye(start: str, duration: str, service: list[str], expected: str) -> None:
    assert clock(service).deadline(local(start), Duration.parse(duration)) == local(expected)


def test_lunch_is_not_counted_in_time_used() -> None:
    assert clock().counted_minutes(local("2026-11-03 11:50"), local("2026-11-03 13:50"), "workhours") == 30
    assert clock().counted_minutes(local("2026-11-03 11:50"), local("2026-11-03 11:50:30"), "workhours") == 0.5
    assert clock().counted_minutes(local("2026-02-13 17:00"), local("2026-02-24 09:00"), "workhours") == 30 + 450 + 30
    assert clock().counted_minutes(local("2026-11-03 12:00"), local("2026-11-03 11:00"), "workhours") == 0


def test_a_start_in_another_zone_gives_a_deadline_in_the_clocks_zone() -> None:
    start = datetime(2026, 11, 3, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai
    got = clock().deadline(start, Duration(1, "workhours"))
    assert got == local("2026-11-03 12:00") and got.tzinfo is SHANGHAI
    assert clock().deadline(start, Duration(30, "minutes")) == local("2026-11-03 11:30")


@pytest.mark.parametrize(
    ("duration", "start"),
    [
        (Duration(480, "workhours"), "2026-01-05 08:30"),
        (Duration(120, "workdays"), "2026-01-05 08:30"),
        (Duration(720, "hours"), "2026-02-10 12:00"),
    ],
)
def test_long_clocks_across_the_spring_festival_are_right_and_fast(duration: Duration, start: str) -> None:
    the_clock, moment = clock(["05:30-18:00"]), local(start)
    naive = moment.replace(tzinfo=None)
    if duration.unit == "workdays":
        expected = oracle_workdays_deadline(naive, duration.amount)
    else:
        expected = oracle_deadline(naive, duration, ["05:30-18:00"])
    assert the_clock.deadline(moment, duration).replace(tzinfo=None) == expected
    runs = 50
    began = timer.perf_counter()
    for _ in range(runs):
        the_clock.deadline(moment, duration)
    # Generous for a loaded machine: a walk minute by minute takes a hundred times longer.
    assert (timer.perf_counter() - began) / runs < 0.005


class NeverWorks(WorkdayCalendar):
    def is_workday(self, day: date) -> bool:
        return False


def test_a_clock_with_no_window_refuses_instead_of_looping() -> None:
    with pytest.raises(ValueError, match="no window"):
        Clock(WorkdayCalendar(), SHANGHAI, ()).deadline(local("2026-11-03 09:00"), Duration(1, "workhours"))
    with pytest.raises(ValueError, match="office hours"):
        Clock(WorkdayCalendar(), SHANGHAI, ()).deadline(local("2026-11-03 09:00"), Duration(1, "workdays"))
    never = Clock(NeverWorks(), SHANGHAI, tuple(parse_windows(OFFICE)))
    with pytest.raises(ValueError, match="no working day"):
        never.deadline(local("2026-11-03 09:00"), Duration(1, "workhours"))
    assert (
        Clock(WorkdayCalendar(), SHANGHAI, ()).counted_minutes(
            local("2026-11-03 09:00"), local("2026-11-04 09:00"), "workhours"
        )
        == 0
    )


def test_office_hours_cannot_cross_midnight() -> None:
    with pytest.raises(ValueError, match="midnight"):
        Clock(WorkdayCalendar(), SHANGHAI, tuple(parse_windows(["22:00-06:00"])))


# --- Duration ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "amount", "unit", "shown", "label"),
    [
        ("30 minutes", 30, "minutes", "30 minutes", "30分钟"),
        ("1 minute", 1, "minutes", "1 minute", "1分钟"),
        ("2 hours", 2, "hours", "2 hours", "2小时"),
        ("1 hour", 1, "hours", "1 hour", "1小时"),
        ("2 workhours", 2, "workhours", "2 workhours", "2个工作小时"),
        ("1 workhour", 1, "workhours", "1 workhour", "1个工作小时"),
        ("1 workday", 1, "workdays", "1 workday", "1个工作日"),
        ("1 workdays", 1, "workdays", "1 workday", "1个工作日"),
        ("  30   minutes \n", 30, "minutes", "30 minutes", "30分钟"),
        ("10080 minutes", 10080, "minutes", "10080 minutes", "10080分钟"),
        ("720 hours", 720, "hours", "720 hours", "720小时"),
        ("480 workhours", 480, "workhours", "480 workhours", "480个工作小时"),
        ("120 workdays", 120, "workdays", "120 workdays", "120个工作日"),
    ],
)
def test_durations_parse_print_and_round_trip(text: str, amount: int, unit: str, shown: str, label: str) -> None:
    duration = Duration.parse(text)
    assert (duration.amount, duration.unit, str(duration), duration.label) == (amount, unit, shown, label)
    assert Duration.parse(str(duration)) == duration


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("30 mins", '"30 mins" is not a duration: write e.g. "30 minutes"'),
        ("", '"" is not a duration'),
        ("minutes", '"minutes" is not a duration'),
        ("30", '"30" is not a duration'),
        ("-5 minutes", '"-5 minutes" is not a duration'),
        ("1.5 hours", '"1.5 hours" is not a duration'),
        ("2 days", '"2 days" is not a duration'),
        ("30 minutes later", '"30 minutes later" is not a duration'),
        ("２ hours", '"２ hours" is not a duration'),
        ("0 minutes", "from 1 to 10080 minutes"),
        ("10081 minutes", "from 1 to 10080 minutes"),
        ("721 hours", "from 1 to 720 hours"),
        ("481 workhours", "from 1 to 480 workhours"),
        ("121 workdays", "from 1 to 120 workdays"),
    ],
)
def test_bad_durations_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        Duration.parse(text)
    assert message in str(raised.value)


def test_duration_minutes_and_direct_construction() -> None:
    assert [Duration.parse(t).minutes for t in ("30 minutes", "2 hours", "2 workhours")] == [30, 120, 120]
    with pytest.raises(ValueError, match="no fixed number"):
        _ = Duration(1, "workdays").minutes
    with pytest.raises(ValueError, match="not a unit"):
        Duration(1, "days")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="from 1 to 720"):
        Duration(0, "hours")


# --- windows -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["08:30-12:00", "13:30-17:30"], [(510, 720), (810, 1050)]),
        (["13:30-17:30", "08:30-12:00"], [(510, 720), (810, 1050)]),
        (["17:00-02:00"], [(1020, 1560)]),
        (["22:00-06:00", "06:00-07:00"], [(360, 420), (1320, 1800)]),  # touching is not overlapping
        (["18:00-00:00"], [(1080, 1440)]),
        (["00:00-24:00"], [(0, 1440)]),
        ([" 8:30 - 12:00 "], [(510, 720)]),
        ([], []),
    ],
)
def test_windows_parse(values: list[str], expected: list[tuple[int, int]]) -> None:
    assert parse_windows(values) == expected


@pytest.mark.parametrize(
    ("values", "quoted"),
    [
        (["22:00-06:00", "05:00-07:00"], "22:00-06:00"),  # across midnight
        (["23:00-01:00", "00:30-02:00"], "00:30-02:00"),  # only cyclically
        (["20:00-04:00", "03:00-21:00"], "03:00-21:00"),
        (["08:00-12:00", "11:00-13:00"], "11:00-13:00"),
        (["08:00-12:00", "08:00-12:00"], "08:00-12:00"),
        (["08:00-08:00"], "08:00-08:00"),  # empty
        (["8-12"], "8-12"),
        (["08:30-12"], "08:30-12"),
        (["25:00-26:00"], "25:00-26:00"),
        (["08:60-09:00"], "08:60-09:00"),
        (["08:30–12:00"], "08:30–12:00"),  # an en dash
        (["12:00-24:30"], "12:00-24:30"),
        (["abc"], "abc"),
    ],
)
def test_bad_windows_are_refused_with_the_value(values: list[str], quoted: str) -> None:
    with pytest.raises(ValueError, match=f'"{quoted}"'):
        parse_windows(values)
