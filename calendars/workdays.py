"""Working days on the Chinese calendar: statutory holidays and make-up workdays (调休).

The ``chinesecalendar`` package knows the published arrangements; YAML files under ``calendars/workdays/`` add or
correct years it does not know. For a year that neither knows, the weekday rule is used and the year is reported
as unpublished, so callers can flag what they computed: it is never silent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import chinese_calendar

UNPUBLISHED_FLAG = "节假日安排未发布"


@dataclass
class WorkdayCalendar:
    overrides: dict[date, bool] = field(default_factory=dict)
    override_years: set[int] = field(default_factory=set)
    statutory: bool = True  # False: Monday to Friday only, for reasoning about rules apart from holidays
    # Each day's answer, remembered: chinese_calendar checks the year's range on every call, which made the
    # working-day test three quarters of a year's planning (docs/benchmarks.md).
    _answers: dict[date, bool] = field(default_factory=dict, repr=False, compare=False)
    _spans: dict[tuple[date, date], tuple[date, ...]] = field(default_factory=dict, repr=False, compare=False)

    def add_year(self, year: int, *, holidays: list[date], workdays: list[date]) -> None:
        """Take a published arrangement for a year: it overrides the package for those days."""
        self.override_years.add(year)
        self.overrides.update(dict.fromkeys(holidays, False))
        self.overrides.update(dict.fromkeys(workdays, True))
        self._answers.clear()
        self._spans.clear()

    def fingerprint(self) -> str:
        """What decides every answer, as text: a change of any override changes it."""
        days = sorted(self.overrides.items())
        return f"{self.statutory}|{sorted(self.override_years)}|{days}|{sorted(_PACKAGE_YEARS)}"

    def is_published(self, year: int) -> bool:
        return year in self.override_years or _package_knows(year)

    def is_workday(self, day: date) -> bool:
        answer = self._answers.get(day)
        if answer is None:
            answer = self._answers[day] = self._decide(day)
        return answer

    def _decide(self, day: date) -> bool:
        if day in self.overrides:
            return self.overrides[day]
        if self.statutory and _package_knows(day.year):
            return bool(chinese_calendar.is_workday(day))
        return day.weekday() < 5

    def unpublished_years(self, *days: date) -> list[int]:
        years = range(min(days).year, max(days).year + 1)
        return [year for year in years if not self.is_published(year)]

    def workdays(self, start: date, end: date) -> Iterator[date]:
        """Working days from start to end, both included."""
        day = start
        while day <= end:
            if self.is_workday(day):
                yield day
            day += timedelta(days=1)

    def workdays_of(self, start: date, end: date) -> tuple[date, ...]:
        """The same as ``workdays``, remembered: every unit of an unannounced duty draws from the same period."""
        span = self._spans.get((start, end))
        if span is None:
            span = self._spans[(start, end)] = tuple(self.workdays(start, end))
        return span

    def add_workdays(self, day: date, count: int) -> date:
        """The count-th working day after ``day`` (``day`` itself does not count)."""
        step = 1 if count >= 0 else -1
        remaining = abs(count)
        while remaining:
            day += timedelta(days=step)
            if self.is_workday(day):
                remaining -= 1
        return day

    def roll(self, day: date, direction: str) -> date:
        """Move a day that is not a working day forward or backward to the nearest working day."""
        if direction == "none":
            return day
        step = timedelta(days=1 if direction == "forward" else -1)
        while not self.is_workday(day):
            day += step
        return day

    def window_opening(self, at: datetime, window: Any, zone: ZoneInfo) -> datetime:
        """``at`` if it falls inside the sending window, else the moment the window next opens."""
        if window.always:
            return at
        local = at.astimezone(zone)
        day = local.date()
        if self._sendable(day, window) and window.start <= local.time() < window.end:
            return at
        if not (self._sendable(day, window) and local.time() < window.start):
            day += timedelta(days=1)
            while not self._sendable(day, window):
                day += timedelta(days=1)
        return datetime.combine(day, window.start, tzinfo=zone)

    def _sendable(self, day: date, window: Any) -> bool:
        return self.is_workday(day) if window.workdays_only else True

    def last_workday(self, start: date, end: date) -> date | None:
        day = end
        while day >= start:
            if self.is_workday(day):
                return day
            day -= timedelta(days=1)
        return None

    def nth_workday(self, start: date, end: date, n: int) -> date | None:
        for index, day in enumerate(self.workdays(start, end), start=1):
            if index == n:
                return day
        return None


def _package_knows(year: int) -> bool:
    return year in _PACKAGE_YEARS


def _package_years() -> set[int]:
    known = {day.year for day in chinese_calendar.holidays}
    return set(range(min(known), max(known) + 1))


_PACKAGE_YEARS = _package_years()
