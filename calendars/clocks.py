"""Deadlines of cases: clocks that count calendar time, service hours, or office hours on working days.

Time inside windows is counted on the local wall clock (Asia/Shanghai keeps no summer time). The walk goes day by
day over the windows, never minute by minute, so a clock of 120 working days across the Spring Festival stays cheap.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, cast, get_args
from zoneinfo import ZoneInfo

from calendars.workdays import WorkdayCalendar

DurationUnit = Literal["minutes", "hours", "workhours", "workdays"]
UNITS: tuple[DurationUnit, ...] = get_args(DurationUnit)
LIMITS: dict[DurationUnit, int] = {"minutes": 10080, "hours": 720, "workhours": 480, "workdays": 120}
LABELS: dict[DurationUnit, str] = {
    "minutes": "分钟",
    "hours": "小时",
    "workhours": "个工作小时",
    "workdays": "个工作日",
}
EXAMPLES = 'write e.g. "30 minutes", "2 hours", "2 workhours" or "1 workday"'
DAY = 1440
# A clock that finds no counted minute for this many days in a row has no window that can ever open.
MAX_IDLE_DAYS = 3660

_DURATION = re.compile(r"\s*([0-9]+)\s*(minute|hour|workhour|workday)s?\s*", re.IGNORECASE)
_WINDOW = re.compile(r"\s*([0-9]{1,2}):([0-9]{2})\s*-\s*([0-9]{1,2}):([0-9]{2})\s*")


@dataclass(frozen=True)
class Duration:
    amount: int
    unit: DurationUnit

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f'"{self.unit}" is not a unit of duration: {EXAMPLES}')
        if not 1 <= self.amount <= LIMITS[self.unit]:
            raise ValueError(f'"{self}" is out of range: from 1 to {LIMITS[self.unit]} {self.unit}')

    @classmethod
    def parse(cls, text: str) -> Duration:
        match = _DURATION.fullmatch(text)
        if match is None:
            raise ValueError(f'"{text}" is not a duration: {EXAMPLES}')
        return cls(int(match[1]), cast(DurationUnit, match[2].lower() + "s"))

    def __str__(self) -> str:
        return f"{self.amount} {self.unit[:-1] if self.amount == 1 else self.unit}"

    @property
    def label(self) -> str:
        return f"{self.amount}{LABELS[self.unit]}"

    @property
    def minutes(self) -> int:
        if self.unit == "workdays":
            raise ValueError("a duration in workdays has no fixed number of minutes")
        return self.amount if self.unit == "minutes" else self.amount * 60


def parse_windows(values: list[str]) -> list[tuple[int, int]]:
    """ "HH:MM-HH:MM" windows as [start, end) minutes from midnight; an end ≤ start crosses midnight and becomes
    end + 1440. ValueError (English, quoting the bad value) on bad syntax, an empty window, or windows that overlap
    each other, including across midnight (cyclically over 24h). Sorted by start."""
    windows = sorted((_parse_window(value), value) for value in values)
    for index, (window, value) in enumerate(windows):
        for other, other_value in windows[index + 1 :]:
            if _overlap(window, other):
                raise ValueError(f'windows "{value}" and "{other_value}" overlap')
    return [window for window, _ in windows]


def _parse_window(value: str) -> tuple[int, int]:
    match = _WINDOW.fullmatch(value)
    numbers = [int(group) for group in match.groups()] if match else []
    if not numbers or numbers[0] > 23 or numbers[2] > 24 or numbers[1] > 59 or numbers[3] > 59:
        raise ValueError(f'"{value}" is not a window: write e.g. "08:30-12:00" (24-hour clock)')
    start, end = numbers[0] * 60 + numbers[1], numbers[2] * 60 + numbers[3]
    if end > DAY:
        raise ValueError(f'"{value}" is not a window: 24:00 is the latest end')
    if end == start:
        raise ValueError(f'"{value}" is an empty window: its end must differ from its start')
    return start, end if end > start else end + DAY


def _overlap(first: tuple[int, int], second: tuple[int, int]) -> bool:
    # Over a cycle of 24 hours: a window that crosses midnight also meets the next day's early windows.
    return any(max(first[0], second[0] + shift) < min(first[1], second[1] + shift) for shift in (-DAY, 0, DAY))


@dataclass(frozen=True)
class Clock:
    workdays: WorkdayCalendar
    zone: ZoneInfo
    office_hours: tuple[tuple[int, int], ...]
    service_hours: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        if any(end > DAY for _, end in self.office_hours):
            raise ValueError("office hours cannot cross midnight")

    def deadline(self, start: datetime, duration: Duration) -> datetime:
        """When ``duration`` of counted time, begun at ``start``, runs out: an aware datetime in ``zone``."""
        if duration.unit == "workdays":
            if not self.office_hours:
                raise ValueError("a clock in workdays needs office hours")
            day = self.workdays.add_workdays(self._local(start).date(), duration.amount)
            closing = max(end for _, end in self.office_hours)
            return datetime.combine(day, time(), self.zone) + timedelta(minutes=closing)
        remaining = timedelta(minutes=duration.minutes)
        if duration.unit in ("minutes", "hours") and not self.service_hours:
            return (start.astimezone(UTC) + remaining).astimezone(self.zone)
        local = self._local(start)
        for opens, closes in self._spans(local, duration.unit):
            opens = max(opens, local)
            if closes - opens >= remaining:
                return (opens + remaining).replace(tzinfo=self.zone)
            remaining -= max(closes - opens, timedelta())
        raise AssertionError("unreachable: _spans never ends")

    def counted_minutes(self, start: datetime, end: datetime, unit: DurationUnit) -> float:
        """The minutes of [start, end) that this clock counts for ``unit``; 0 when end ≤ start."""
        if end <= start:
            return 0.0
        if unit in ("minutes", "hours") and not self.service_hours:
            return (end.astimezone(UTC) - start.astimezone(UTC)).total_seconds() / 60
        if not self._windows(unit):
            return 0.0
        first, last = self._local(start), self._local(end)
        counted = timedelta()
        for opens, closes in self._spans(first, unit):
            if opens >= last:
                break
            counted += max(min(closes, last) - max(opens, first), timedelta())
        return counted.total_seconds() / 60

    def _local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone).replace(tzinfo=None)

    def _windows(self, unit: DurationUnit) -> tuple[tuple[int, int], ...]:
        return self.service_hours if unit in ("minutes", "hours") else self.office_hours

    def _spans(self, local: datetime, unit: DurationUnit) -> Iterator[tuple[datetime, datetime]]:
        """The counted windows as naive local [opens, closes), in order, from the day before ``local`` (whose window
        may cross midnight into it) on, without end."""
        windows = [(timedelta(minutes=start), timedelta(minutes=end)) for start, end in self._windows(unit)]
        if not windows:
            raise ValueError(f"this clock has no window in which {unit} count")
        every_day = unit in ("minutes", "hours")
        day, idle = local.date() - timedelta(days=1), 0
        while idle < MAX_IDLE_DAYS:
            if every_day or self.workdays.is_workday(day):
                idle = 0
                midnight = _midnight(day)
                for start, end in windows:
                    yield midnight + start, midnight + end
            idle += 1
            day += timedelta(days=1)
        raise ValueError(f"no working day within {MAX_IDLE_DAYS} days after {local:%Y-%m-%d}")


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)
