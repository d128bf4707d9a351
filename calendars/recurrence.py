"""Expand a duty's recurrence into periods with their due moments, on the working-day calendar.

Every period is computed from the rule's anchor, never by adding months to the previous one, so a due day of the
31st clamps to the 28th in February and comes back to the 31st in March (no 31 → 28 → 28 drift).
"""

from __future__ import annotations

import calendar as month_calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr

from calendars.schema import DueSpec, DutySpec
from calendars.workdays import UNPUBLISHED_FLAG, WorkdayCalendar

# A Monday, so weekly rules yield Mondays and monthly rules yield a day we normalise to the 1st.
RULE_ANCHOR = datetime(2000, 1, 3)
CLAMPED_FLAG = "月末截取"
ROLLED_FLAG = "节假日顺延"


@dataclass(frozen=True)
class Period:
    key: str
    starts: date
    ends: date
    due_at: datetime
    flags: tuple[str, ...]
    tasks: tuple[str, ...]


def expand(duty: DutySpec, start: date, end: date, workdays: WorkdayCalendar, zone: ZoneInfo) -> list[Period]:
    """Periods of ``duty`` whose due date falls between start and end, both included."""
    rule = rrulestr(duty.recurrence.rrule, dtstart=RULE_ANCHOR)
    window_start = datetime.combine(start - timedelta(days=62), datetime.min.time())
    window_end = datetime.combine(end, datetime.min.time())
    starts = sorted(
        {
            _period_start(moment.date(), duty.recurrence.period)
            for moment in rule.between(window_start, window_end, inc=True)
        }
    )
    periods = []
    for period_start in starts:
        period = _make_period(duty, period_start, workdays, zone)
        if period is not None and start <= period.due_at.date() <= end:
            periods.append(period)
    return periods


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


def _period_start(day: date, period: str) -> date:
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _period_end(starts: date, period: str) -> date:
    if period == "week":
        return starts + timedelta(days=6)
    return starts.replace(day=month_calendar.monthrange(starts.year, starts.month)[1])


def _period_key(starts: date, period: str) -> str:
    if period == "week":
        year, week, _ = starts.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{starts.year}-{starts.month:02d}"


def _make_period(duty: DutySpec, starts: date, workdays: WorkdayCalendar, zone: ZoneInfo) -> Period | None:
    period = duty.recurrence.period
    ends = _period_end(starts, period)
    due = _due_date(duty.due, starts, ends, workdays)
    if due is None:
        return None
    due_day, flags = due
    if workdays.unpublished_years(starts, ends, due_day):
        flags = (*flags, UNPUBLISHED_FLAG)
    tasks = tuple(duty.monthly_tasks.get(starts.month, ())) if period == "month" else ()
    return Period(
        key=_period_key(starts, period),
        starts=starts,
        ends=ends,
        due_at=datetime.combine(due_day, duty.due.time, tzinfo=zone),
        flags=flags,
        tasks=tasks,
    )


def _due_date(
    rule: DueSpec, starts: date, ends: date, workdays: WorkdayCalendar
) -> tuple[date, tuple[str, ...]] | None:
    if rule.rule == "last_workday":
        day = workdays.last_workday(starts, ends)
        return None if day is None else (day, ())
    if rule.rule == "nth_workday":
        assert rule.n is not None
        day = workdays.nth_workday(starts, ends, rule.n)
        return None if day is None else (day, ())
    return _day_of_period(rule, starts, ends, workdays)


def _day_of_period(
    rule: DueSpec, starts: date, ends: date, workdays: WorkdayCalendar
) -> tuple[date, tuple[str, ...]] | None:
    assert rule.day is not None
    flags: tuple[str, ...] = ()
    offset = rule.day - 1
    if starts + timedelta(days=offset) > ends:
        if rule.month_end == "skip":
            return None
        offset, flags = (ends - starts).days, (CLAMPED_FLAG,)
    day = starts + timedelta(days=offset)
    rolled = workdays.roll(day, rule.roll)
    if rolled != day:
        flags = (*flags, ROLLED_FLAG)
    return rolled, flags
