"""Working days on the Chinese calendar: statutory holidays and make-up workdays (调休).

Three sources, the most specific first: a ``calendars/workdays/YEAR.yaml`` (the State Council's arrangement, as
imported by ``duties workdays import``), then the ``chinesecalendar`` package (published arrangements up to the year
it knows), then the law. The statutory holidays of 《全国年节及纪念日放假办法》 (as revised in 2024) are known for
every year, so for a year whose arrangement is not published yet a working day is Monday to Friday minus those days;
only the bridging days off and the make-up Saturdays (调休) stay unknown. Such a year is reported as unpublished,
so callers flag what they computed: it is never silent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import chinese_calendar
import holidays

# What an item computed in such a year carries: its date avoids the statutory holidays but may move once the
# arrangement's 调休 is published.
UNPUBLISHED_FLAG = "调休安排未发布"
# The days off by law (《全国年节及纪念日放假办法》, 2024): 元旦 1, 春节 除夕 to 初三, 清明 1, 劳动节 5/1–5/2, 端午 1,
# 中秋 1, 国庆 10/1–10/3. The ``holidays`` package computes the lunar dates; its "observed" days are its guess at
# an arrangement, not law, so they are left out.
LAW_REVISED = 2025
LUNAR_TABLES_END = 2100
STATUTORY_NAMES = ("元旦", "农历除夕", "春节", "清明节", "劳动节", "端午节", "中秋节", "国庆节")


@dataclass
class WorkdayCalendar:
    overrides: dict[date, bool] = field(default_factory=dict)
    override_years: set[int] = field(default_factory=set)
    sources: dict[int, str] = field(default_factory=dict)  # where each year's file says it was published
    statutory: bool = True  # False: Monday to Friday only, for reasoning about rules apart from holidays
    # Each day's answer, remembered: chinese_calendar checks the year's range on every call, which made the
    # working-day test three quarters of a year's planning (docs/benchmarks.md).
    _answers: dict[date, bool] = field(default_factory=dict, repr=False, compare=False)
    _spans: dict[tuple[date, date], tuple[date, ...]] = field(default_factory=dict, repr=False, compare=False)
    _states: dict[int, str] = field(default_factory=dict, repr=False, compare=False)

    def add_year(self, year: int, *, holidays: list[date], workdays: list[date], source: str = "") -> None:
        """Take a published arrangement for a year: it overrides the package for those days."""
        self.override_years.add(year)
        self.sources[year] = source
        self.overrides.update(dict.fromkeys(holidays, False))
        self.overrides.update(dict.fromkeys(workdays, True))
        self._answers.clear()
        self._spans.clear()
        self._states.clear()

    def fingerprint(self) -> str:
        """What decides every answer, as text: a change of any override changes it."""
        days = sorted(self.overrides.items())
        versions = f"{sorted(_PACKAGE_YEARS)}|holidays {holidays.__version__}"
        return f"{self.statutory}|{sorted(self.override_years)}|{days}|{versions}"

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
        if self.statutory and day in statutory_holidays(day.year):
            return False
        return day.weekday() < 5

    def year_state(self, year: int) -> str:
        """What this calendar says of a year, as a short hash: whether it is published and which weekdays are off
        and which weekend days are worked. Another state means dates in that year may have moved."""
        state = self._states.get(year)
        if state is None:
            days = self.workdays_of(date(year, 1, 1), date(year, 12, 31))
            text = f"{self.is_published(year)}|{[day.isoformat() for day in days]}"
            state = self._states[year] = hashlib.sha256(text.encode()).hexdigest()[:16]
        return state

    def describe_year(self, year: int) -> str:
        """Where a year's working days come from, in words for a unit's notice."""
        if year in self.override_years:
            source = self.sources.get(year) or "国务院办公厅通知"
            return f"{year}年节假日安排已发布（{source}）"
        if _package_knows(year):
            return f"{year}年节假日安排已发布（国务院办公厅通知）"
        return f"{year}年法定节假日按《全国年节及纪念日放假办法》计算（调休安排尚未发布）"

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


@lru_cache(maxsize=256)
def statutory_holidays(year: int) -> dict[date, str]:
    """The days off by law in ``year``, with their Chinese names, whatever the State Council's arrangement."""
    found = holidays.China(years=year, observed=False, language="zh_CN")
    days = {}
    for day, name in found.items():
        names = [part for part in name.split("; ") if part in STATUTORY_NAMES]  # 2028-10-03 is 中秋节 and 国庆节
        if names:
            days[day] = "、".join(names)
    missing = {name for name in STATUTORY_NAMES if not any(name in value for value in days.values())}
    # A package change that drops a festival must not pass unnoticed. Its tables end in 2100: beyond, it knows no
    # holiday, the weekday rule applies (flagged unpublished, as every such year is), and nobody plans that far.
    if LAW_REVISED <= year <= LUNAR_TABLES_END and missing:
        raise RuntimeError(f"holidays {holidays.__version__} lacks {sorted(missing)} for {year}")
    return days


def _package_knows(year: int) -> bool:
    return year in _PACKAGE_YEARS


def _package_years() -> set[int]:
    known = {day.year for day in chinese_calendar.holidays}
    return set(range(min(known), max(known) + 1))


_PACKAGE_YEARS = _package_years()
