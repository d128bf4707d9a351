"""Expand a duty into periods with their due moments, on the working-day calendar.

Every period is computed from the rule's anchor, never by adding months to the previous one, so a due day of the
31st clamps to the 28th in February and comes back to the 31st in March (no 31 → 28 → 28 drift).

Four kinds share this: a fixed calendar (one occurrence per period), a quota (the same, completed by N checks),
unannounced checks (N occurrences per period on working days drawn from a secret seed) and targets (the same,
completed when the reported progress reaches the goal).
"""

from __future__ import annotations

import calendar as month_calendar
import hashlib
import hmac
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr

from calendars.schema import DueSpec, DutySpec, bounded_rrule
from calendars.workdays import UNPUBLISHED_FLAG, WorkdayCalendar

# A Monday, so weekly rules yield Mondays and monthly rules yield a day we normalise to the 1st.
RULE_ANCHOR = datetime(2000, 1, 3)
CLAMPED_FLAG = "月末截取"
ROLLED_FLAG = "遇节假日调整"
SKIPPED_FLAG = "本期无此日，跳过"
NO_WORKDAY_FLAG = "本期无工作日，跳过"
EMPTY_PERIOD_FLAGS = {
    "previous_workday": "本期无工作日，提前至上一工作日",
    "next_workday": "本期无工作日，顺延至下一工作日",
}
UNANNOUNCED_FLAG = "不定时抽查"
# How far before ``start`` a period can begin and still fall due inside the window: its own length, plus room for a
# due day rolled forward past the period's end over a long holiday (the Spring Festival is 8 to 9 days).
ROLL_ROOM = timedelta(days=31)
LOOK_BACK = {
    "week": timedelta(days=7) + ROLL_ROOM,
    "month": timedelta(days=31) + ROLL_ROOM,
    "year": timedelta(days=366) + ROLL_ROOM,
}


@dataclass(frozen=True)
class Period:
    key: str
    starts: date
    ends: date
    due_at: datetime
    flags: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    skipped: bool = False
    visible_from: datetime | None = None  # unannounced: the inspected must not learn the day before it comes


def expand(
    duty: DutySpec,
    start: date,
    end: date,
    workdays: WorkdayCalendar,
    zone: ZoneInfo,
    *,
    unit: str = "",
    seed: str = "",
    include_skipped: bool = False,
) -> list[Period]:
    """Periods of ``duty`` (for ``unit``) whose due date falls between start and end, both included.

    ``seed`` draws the days of unannounced checks; ``include_skipped`` also returns periods with no due date (for
    preview), dated at the period's end.
    """
    periods = []
    for period_start in period_starts(duty, start - LOOK_BACK[duty.period_rule.period], end):
        for period in _make_periods(duty, period_start, workdays, zone, unit=unit, seed=seed):
            if (include_skipped or not period.skipped) and start <= period.due_at.date() <= end:
                periods.append(period)
    return sorted(periods, key=lambda p: (p.due_at, p.key))


def period_starts(duty: DutySpec, start: date, end: date) -> list[date]:
    return list(_period_starts(duty.period_rule.rrule, duty.period_rule.period, start, end))


@lru_cache(maxsize=4096)
def _period_starts(rrule: str, period: str, start: date, end: date) -> tuple[date, ...]:
    # Cached: every unit of a duty asks for the same window, and walking the rule from its anchor in 2000 costs.
    try:
        bounded_rrule(rrule)  # the schema refuses these; a spec built around it yields nothing rather than hang
    except ValueError:
        return ()
    rule = rrulestr(rrule, dtstart=RULE_ANCHOR)
    window = rule.between(
        datetime.combine(start, datetime.min.time()), datetime.combine(end, datetime.min.time()), inc=True
    )
    return tuple(sorted({_period_start(moment.date(), period) for moment in window}))


def reminder_times(duty: DutySpec, due_at: datetime, workdays: WorkdayCalendar, zone: ZoneInfo) -> list[datetime]:
    """When each reminder goes out: N days before the due date at remind_time, on a working day, earliest first.

    Computed in the local zone: the ledger hands back UTC, and 09:00 means 09:00 in Huzhou.
    """
    local_due = due_at.astimezone(zone)
    times = []
    for days_before in duty.reminders:
        day = workdays.roll(local_due.date() - timedelta(days=days_before), "backward")
        moment = datetime.combine(day, duty.remind_time, tzinfo=zone)
        times.append(min(moment, local_due))
    return sorted(set(times))


def draw_days(seed: str, label: str, candidates: list[date], count: int) -> list[date]:
    """``count`` distinct days from ``candidates``, the same for the same seed and label, unguessable without it."""
    chooser = _secret_random(seed, label)
    return sorted(chooser.sample(candidates, min(count, len(candidates))))


# Drawn check moments fall on this grid of minutes, counted from the start of each window.
CHECK_GRID_MINUTES = 10


def draw_moments(duty: DutySpec, seed: str, label: str, days: list[date], zone: ZoneInfo) -> list[datetime]:
    """When each drawn check happens: at due.time, or at a moment drawn inside the duty's hours (same seed and label,
    same moments). A window crossing midnight belongs to the day it starts on: its moment may fall the next morning.
    """
    assert duty.unannounced is not None
    if duty.unannounced.hours is None:
        return [datetime.combine(day, duty.due.time, tzinfo=zone) for day in days]
    grid = sorted(
        {minute for start, end in duty.unannounced.windows for minute in range(start, end, CHECK_GRID_MINUTES)}
    )
    chooser = _secret_random(seed, f"{label}|hours")
    # Wall-clock arithmetic: an aware datetime plus minutes keeps its zone and reads the clock on the wall.
    return [
        datetime.combine(day, datetime.min.time(), tzinfo=zone) + timedelta(minutes=chooser.choice(grid))
        for day in days
    ]


def _check_days(duty: DutySpec, starts: date, ends: date, workdays: WorkdayCalendar) -> list[date]:
    """The days of a period an unannounced check may fall on, by the duty's ``days``."""
    assert duty.unannounced is not None
    if duty.unannounced.days == "workdays":
        return list(workdays.workdays_of(starts, ends))
    every = [starts + timedelta(days=offset) for offset in range((ends - starts).days + 1)]
    if duty.unannounced.days == "days_off":
        return [day for day in every if not workdays.is_workday(day)]
    return every


def _secret_random(seed: str, label: str) -> random.Random:
    """A generator seeded by an HMAC of ``label`` under ``seed``: reproducible with the seed, unguessable without."""
    digest = hmac.new(seed.encode(), label.encode(), hashlib.sha256).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _period_start(day: date, period: str) -> date:
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "year":
        return day.replace(month=1, day=1)
    return day.replace(day=1)


def _period_end(starts: date, period: str) -> date:
    if period == "week":
        return starts + timedelta(days=6)
    if period == "year":
        return starts.replace(month=12, day=31)
    return starts.replace(day=month_calendar.monthrange(starts.year, starts.month)[1])


def _period_key(starts: date, period: str) -> str:
    if period == "week":
        year, week, _ = starts.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "year":
        return str(starts.year)
    return f"{starts.year}-{starts.month:02d}"


def _make_periods(
    duty: DutySpec, starts: date, workdays: WorkdayCalendar, zone: ZoneInfo, *, unit: str, seed: str
) -> list[Period]:
    kind = duty.period_rule.period
    ends = _period_end(starts, kind)
    key = _period_key(starts, kind)
    unpublished = (UNPUBLISHED_FLAG,) if workdays.unpublished_years(starts, ends) else ()
    tasks = tuple(duty.monthly_tasks.get(starts.month, ())) if kind == "month" else ()
    if duty.unannounced is not None:
        label = f"{duty.id}|{unit}|{key}"
        days = draw_days(seed, label, _check_days(duty, starts, ends, workdays), duty.unannounced.count)
        moments = draw_moments(duty, seed, label, days, zone)
        return [
            Period(
                key=f"{key}#{number}",
                starts=day,
                ends=day,
                due_at=moment,
                flags=(UNANNOUNCED_FLAG, *unpublished),
                visible_from=datetime.combine(day, datetime.min.time(), tzinfo=zone),
            )
            for number, (day, moment) in enumerate(zip(days, moments, strict=True), start=1)
        ]
    due_day, flags = _due_date(duty, starts, ends, workdays)
    if due_day is None:
        end_moment = datetime.combine(ends, duty.due.time, tzinfo=zone)
        return [Period(key, starts, ends, end_moment, flags=(*flags, *unpublished), skipped=True)]
    due_at = datetime.combine(due_day, duty.due.time, tzinfo=zone)
    return [Period(key, starts, ends, due_at, flags=(*flags, *unpublished), tasks=tasks)]


DueDay = tuple[date | None, tuple[str, ...]]


def _due_date(duty: DutySpec, starts: date, ends: date, workdays: WorkdayCalendar) -> DueDay:
    rule = duty.due
    if rule.rule == "day_of_period":
        return _day_of_period(rule, starts, ends, workdays)
    if workdays.last_workday(starts, ends) is None:
        return _empty_period(duty.empty_period, starts, ends, workdays)
    if rule.rule == "last_workday":
        return workdays.last_workday(starts, ends), ()
    assert rule.n is not None
    day = workdays.nth_workday(starts, ends, rule.n)
    return day, () if day else (SKIPPED_FLAG,)


def _empty_period(choice: str, starts: date, ends: date, workdays: WorkdayCalendar) -> DueDay:
    """A period without a working day, by the duty's declared rule: never an accident of the calendar."""
    if choice == "previous_workday":
        return workdays.roll(starts - timedelta(days=1), "backward"), (EMPTY_PERIOD_FLAGS[choice],)
    if choice == "next_workday":
        return workdays.roll(ends + timedelta(days=1), "forward"), (EMPTY_PERIOD_FLAGS[choice],)
    return None, (NO_WORKDAY_FLAG,)


def _day_of_period(rule: DueSpec, starts: date, ends: date, workdays: WorkdayCalendar) -> DueDay:
    assert rule.day is not None
    flags: tuple[str, ...] = ()
    offset = rule.day - 1
    if starts + timedelta(days=offset) > ends:
        if rule.month_end == "skip":
            return None, (SKIPPED_FLAG,)
        offset, flags = (ends - starts).days, (CLAMPED_FLAG,)
    day = starts + timedelta(days=offset)
    rolled = workdays.roll(day, rule.roll)
    if rolled != day:
        flags = (*flags, ROLLED_FLAG)
    return rolled, flags
