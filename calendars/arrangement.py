"""Read the State Council's holiday notice (国务院办公厅关于YYYY年部分节假日安排的通知) into a working-day file.

The notice is read line by line as a sequence of known phrases: the title, the document number, the addressees, the
preamble, the numbered items (``一、元旦：1月1日至3日放假调休，共3天。1月4日（周日）上班。``), the closing paragraph,
the signature and the date. Anything else stops the reading of that line and is reported with its line number:
nothing is guessed and nothing is skipped unread. Whatever the notice says about itself is checked: 共N天 against the
range, 周X against the date, every date inside the year, no day both off and on.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import yaml
from pydantic import ValidationError

from calendars.loader import WORKDAY_FOLDER, CalendarError, Program, _read_workdays
from calendars.schema import WorkdayFile

NUMERALS = "一二三四五六七八九十"
WEEKDAYS = "一二三四五六日"
WEEKDAY_NUMBERS = {**{name: number for number, name in enumerate(WEEKDAYS)}, "天": 6}
FESTIVAL = "(?:元旦|春节|清明节|劳动节|端午节|中秋节|国庆节)"
WRITTEN_DATE = r"(?:\d{4}年)?(?:\d{1,2}月)?\d{1,2}日(?:[（(][^（()）]*[）)])?"
SENTENCE_END = r"[。；;]?"

DATE = re.compile(
    r"(?:(?P<year>\d{4})年)?(?:(?P<month>\d{1,2})月)?(?P<day>\d{1,2})日(?:[（(](?P<note>[^（()）]*)[）)])?"
)
ITEM = re.compile(rf"(?P<number>[{NUMERALS}]+)、(?P<name>{FESTIVAL}(?:[、和]{FESTIVAL})*)[：:]")
DAYS_OFF = re.compile(
    rf"(?P<dates>{WRITTEN_DATE}(?:至{WRITTEN_DATE})?)放假(?:调休)?"
    rf"(?:[，,]?共(?P<total>\d+)天|(?P<count>\d+)天)(?:[，,](?:不调休|与周末连休))?{SENTENCE_END}"
)
DAYS_ON = re.compile(rf"(?P<dates>{WRITTEN_DATE}(?:[、，,]{WRITTEN_DATE})*)上班{SENTENCE_END}")
TITLE = re.compile(r"《?(?:国务院办公厅)?关于(?P<year>\d{4})年部分节假日安排的通知》?")
DOCUMENT_NUMBER = re.compile(r"国办发明电[〔\[［(（](?P<year>\d{4})[〕\]］)）](?P<serial>\d+)号")
BOILERPLATE = re.compile(
    "|".join(
        (
            r"各省、自治区、直辖市人民政府[，,]国务院各部委、各直属机构[：:]",  # addressees
            r"经(?:党中央、)?国务院批准[，,]",  # opening of the preamble
            r"根据[^。]*《全国年节及纪念日放假办法》[^。]*。",  # the law the arrangement follows (2025)
            r"据此对放假调休原则[^。]*。",  # the principles (2025)
            r"(?:按照上述原则[，,])?现将\d{4}年[^。：:]*通知如下[。：:]",  # 现将……通知如下
            r"鼓励单位和个人[^。]*。",  # paid leave (2026)
            r"节假日期间[，,][^。]*。",  # closing paragraph
            r"国务院办公厅",  # signature
            r"\d{4}年\d{1,2}月\d{1,2}日",  # date of signing
            r"[（(]此件公开发布[）)]",
            r"新华社[^\s，,。]{0,12}电",  # news-wire dateline, when copied from a newspaper
            r"[，,]?全文如下[：:]",
        )
    )
)
WEEKDAY_NOTE = re.compile(r"(?:周|星期)(?P<day>[一二三四五六日天])")
LUNAR_NOTE = re.compile(rf"农历\S+|除夕|[正腊冬]月\S+|初[{NUMERALS}]+|{FESTIVAL}")


@dataclass(frozen=True)
class Problem:
    line: int
    message: str


class NoticeError(ValueError):
    """Every problem found in a notice, each with its line number."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda problem: problem.line)
        super().__init__("\n".join(f"{p.line}: {p.message}" for p in self.problems))

    def lines(self, label: str) -> list[str]:
        """The problems as ``label:line: message``."""
        return [f"{label}:{problem.line}: {problem.message}" for problem in self.problems]


@dataclass(frozen=True)
class Festival:
    """One numbered item of the notice: its days off and its make-up working days (调休上班)."""

    name: str
    ranges: tuple[tuple[date, date], ...]
    makeup_days: tuple[date, ...]

    @property
    def days_off(self) -> tuple[date, ...]:
        return tuple(day for start, end in self.ranges for day in _days(start, end))

    def summary(self) -> str:
        ranges = "、".join(_month_day(s) if s == e else f"{_month_day(s)}至{_month_day(e)}" for s, e in self.ranges)
        text = f"{self.name}：{ranges}放假，共{len(self.days_off)}天"
        if self.makeup_days:
            text += "；" + "、".join(f"{_month_day(d)}（周{WEEKDAYS[d.weekday()]}）" for d in self.makeup_days) + "上班"
        return text


@dataclass(frozen=True)
class Notice:
    year: int
    source: str
    festivals: tuple[Festival, ...]

    def workday_file(self) -> WorkdayFile:
        return WorkdayFile(
            year=self.year,
            source=self.source,
            holidays=sorted(day for festival in self.festivals for day in festival.days_off),
            workdays=sorted(day for festival in self.festivals for day in festival.makeup_days),
        )


def parse_notice(text: str, *, year: int | None = None, source: str | None = None) -> WorkdayFile:
    """The working-day file a notice describes; raises ``NoticeError`` with every problem found."""
    return read_notice(text, year=year, source=source).workday_file()


def read_notice(text: str, *, year: int | None = None, source: str | None = None) -> Notice:
    """The notice's year, source and items; ``year`` and ``source`` stand in for a missing title or number."""
    scan = _Scan()
    for number, line in enumerate(text.splitlines(), start=1):
        _scan_line(scan, number, line)
    if not scan.problems:  # after an unreadable line, the numbering and the items would only repeat it
        _check_items(scan)
    notice_year = _year(scan, year)
    notice_source = (source or "").strip() or _source(scan)
    if not notice_source:
        scan.problems.append(Problem(1, "通知中没有文号（如 国办发明电〔2025〕7号），请用 --source 指定来源"))
    if not scan.items:
        scan.problems.append(Problem(1, "没有找到放假安排（如“一、元旦：1月1日放假，共1天。”）"))
    if scan.problems or notice_year is None:
        raise NoticeError(scan.problems)
    festivals = _resolve(scan.items, notice_year, scan.problems)
    if scan.problems:
        raise NoticeError(scan.problems)
    return Notice(notice_year, notice_source, festivals)


# Reading: the text as a sequence of known phrases.


@dataclass(frozen=True)
class _Written:
    """A date as the notice writes it, before it is placed in a year."""

    line: int
    text: str
    year: int | None
    month: int | None
    day: int
    note: str


@dataclass
class _Item:
    line: int
    number: str
    name: str
    days_off: list[tuple[list[_Written], int]] = field(default_factory=list)  # dates as written, 共N天
    days_on: list[_Written] = field(default_factory=list)


@dataclass
class _Scan:
    items: list[_Item] = field(default_factory=list)
    years: list[tuple[int, int]] = field(default_factory=list)  # (line, year) of each title
    sources: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    current: _Item | None = None


def _scan_line(scan: _Scan, number: int, line: str) -> None:
    position = _skip_space(line, 0)
    while position < len(line):
        for pattern, take in _PHRASES:
            match = pattern.match(line, position)
            if match:
                take(scan, number, match)
                break
        else:
            scan.problems.append(Problem(number, f"无法识别：{_excerpt(line[position:])}"))
            return
        position = _skip_space(line, match.end())


def _skip_space(line: str, position: int) -> int:
    while position < len(line) and line[position].isspace():  # full-width spaces (\u3000) too
        position += 1
    return position


def _take_item(scan: _Scan, number: int, match: re.Match[str]) -> None:
    scan.current = _Item(number, match["number"], match["name"])
    scan.items.append(scan.current)


def _take_days_off(scan: _Scan, number: int, match: re.Match[str]) -> None:
    if _inside_item(scan, number, match):
        assert scan.current is not None
        stated = int(match["total"] or match["count"])
        scan.current.days_off.append((_written_dates(number, match["dates"]), stated))


def _take_days_on(scan: _Scan, number: int, match: re.Match[str]) -> None:
    if _inside_item(scan, number, match):
        assert scan.current is not None
        scan.current.days_on += _written_dates(number, match["dates"])


def _take_title(scan: _Scan, number: int, match: re.Match[str]) -> None:
    scan.years.append((number, int(match["year"])))
    scan.current = None


def _take_document_number(scan: _Scan, number: int, match: re.Match[str]) -> None:
    scan.sources.append(f"国办发明电〔{match['year']}〕{match['serial']}号")
    scan.current = None


def _take_boilerplate(scan: _Scan, number: int, match: re.Match[str]) -> None:
    scan.current = None


_PHRASES = (
    (ITEM, _take_item),
    (DAYS_OFF, _take_days_off),
    (DAYS_ON, _take_days_on),
    (TITLE, _take_title),
    (DOCUMENT_NUMBER, _take_document_number),
    (BOILERPLATE, _take_boilerplate),
)


def _check_items(scan: _Scan) -> None:
    for position, item in enumerate(scan.items, start=1):
        if item.number != _numeral(position):
            scan.problems.append(Problem(item.line, f"编号应为“{_numeral(position)}、”，这里是“{item.number}、”"))
        if not item.days_off:
            scan.problems.append(Problem(item.line, f"“{item.name}”没有放假日期"))


def _inside_item(scan: _Scan, number: int, match: re.Match[str]) -> bool:
    if scan.current is None:
        scan.problems.append(Problem(number, f"日期不属于任何一项（缺少“一、元旦：”这样的开头）：{match[0]}"))
    return scan.current is not None


def _written_dates(number: int, text: str) -> list[_Written]:
    return [
        _Written(
            number,
            match[0],
            int(match["year"]) if match["year"] else None,
            int(match["month"]) if match["month"] else None,
            int(match["day"]),
            match["note"] or "",
        )
        for match in DATE.finditer(text)
    ]


def _year(scan: _Scan, given: int | None) -> int | None:
    titled = sorted({year for _, year in scan.years})
    if len(titled) > 1:
        scan.problems.append(Problem(scan.years[0][0], f"通知标题的年份不一致：{'、'.join(map(str, titled))}"))
        return None
    if given is not None and titled and titled[0] != given:
        scan.problems.append(Problem(scan.years[0][0], f"通知标题是{titled[0]}年，--year 却是{given}"))
        return None
    year = given if given is not None else (titled[0] if titled else None)
    if year is None:
        scan.problems.append(
            Problem(1, "找不到年份：缺少标题“国务院办公厅关于YYYY年部分节假日安排的通知”，请用 --year 指定年份")
        )
    elif not 2000 <= year <= 2100:
        scan.problems.append(Problem(1, f"年份 {year} 超出 2000–2100"))
        return None
    return year


def _source(scan: _Scan) -> str:
    numbers = sorted(set(scan.sources))
    if len(numbers) > 1:
        scan.problems.append(Problem(1, f"通知中有多个文号：{'、'.join(numbers)}，请用 --source 指定来源"))
    return numbers[0] if numbers else ""


# Checking: each written date placed in the year and checked against what the notice says about it.


def _resolve(items: list[_Item], year: int, problems: list[Problem]) -> tuple[Festival, ...]:
    festivals = tuple(_festival(item, year, problems) for item in items)
    _check_overlaps(items, festivals, problems)
    return festivals


def _festival(item: _Item, year: int, problems: list[Problem]) -> Festival:
    ranges = []
    for written, stated in item.days_off:
        placed = _place(written, year, problems)
        if placed is not None and _range_ok(written[0], placed, stated, problems):
            ranges.append((placed[0], placed[-1]))
    makeup = _place(item.days_on, year, problems) or []
    return Festival(item.name, tuple(ranges), tuple(makeup))


def _place(written: list[_Written], year: int, problems: list[Problem]) -> list[date] | None:
    """The dates, each inheriting a missing year and month from the one before (至3日 after 1月1日)."""
    placed: list[date] = []
    for item in written:
        previous = placed[-1] if placed else None
        in_year = item.year or (previous.year if previous else year)
        month = item.month or (previous.month if previous else None)
        if month is None:
            problems.append(Problem(item.line, f"{item.text}缺少月份"))
            return None
        try:
            day = date(in_year, month, item.day)
        except ValueError:
            problems.append(Problem(item.line, f"{month}月{item.day}日不存在"))
            return None
        if day.year != year:
            problems.append(Problem(item.line, f"{day.year}年{_month_day(day)}不在{year}年内"))
            return None
        if not _note_ok(item, day, problems):
            return None
        placed.append(day)
    return placed


def _note_ok(item: _Written, day: date, problems: list[Problem]) -> bool:
    """The words in brackets: 周X or 星期X must match the date; lunar dates and festival names are taken as said."""
    for part in filter(None, re.split(r"[、，,\s]+", item.note)):
        weekday = WEEKDAY_NOTE.fullmatch(part)
        if weekday:
            if WEEKDAY_NUMBERS[weekday["day"]] != day.weekday():
                actual = f"周{WEEKDAYS[day.weekday()]}"
                problems.append(Problem(item.line, f"{_month_day(day)}是{actual}，通知写的是{part}"))
                return False
        elif not LUNAR_NOTE.fullmatch(part):
            problems.append(Problem(item.line, f"无法识别：{item.text}中的“{part}”"))
            return False
    return True


def _range_ok(first: _Written, placed: list[date], stated: int, problems: list[Problem]) -> bool:
    start, end = placed[0], placed[-1]
    if end < start:
        problems.append(Problem(first.line, f"{_month_day(end)}早于{_month_day(start)}"))
        return False
    length = (end - start).days + 1
    if length != stated:
        span = _month_day(start) if start == end else f"{_month_day(start)}至{_month_day(end)}"
        problems.append(Problem(first.line, f"写的是共{stated}天，但{span}是{length}天"))
        return False
    return True


def _check_overlaps(items: list[_Item], festivals: tuple[Festival, ...], problems: list[Problem]) -> None:
    off: dict[date, str] = {}
    on: dict[date, str] = {}
    for item, festival in zip(items, festivals, strict=True):
        for day in festival.days_off:
            if day in off:
                problems.append(Problem(item.line, f"{_month_day(day)}在“{off[day]}”和“{festival.name}”中重复放假"))
            off[day] = festival.name
        for day in festival.makeup_days:
            if day in on:
                problems.append(Problem(item.line, f"{_month_day(day)}重复列为上班日"))
            on[day] = festival.name
    for item, festival in zip(items, festivals, strict=True):
        problems += [
            Problem(item.line, f"{_month_day(day)}既放假（{off[day]}）又上班")
            for day in festival.makeup_days
            if day in off
        ]


# Writing: the YAML file, compared with what is there and put in place atomically.


def render(notice: Notice, origin: str) -> str:
    """The working-day file's text, with a header saying where it came from."""
    lines = [
        f"# 国务院办公厅关于{notice.year}年部分节假日安排的通知（{notice.source}）",
        f"# 由 duties workdays import 从 {origin} 读入并校验；如需改动，请改正通知文本后重新导入。",
        *(f"#   {festival.summary()}" for festival in notice.festivals),
        f"year: {notice.year}",
        f"source: {json.dumps(notice.source, ensure_ascii=False)}",
        "holidays:",
        *(f"  - {day.isoformat()}  # {f.name}" for f in notice.festivals for day in f.days_off),
    ]
    makeup = sorted((day, f.name) for f in notice.festivals for day in f.makeup_days)
    lines.append("workdays:" if makeup else "workdays: []")
    lines += [f"  - {day.isoformat()}  # {name}" for day, name in makeup]
    return "\n".join(lines) + "\n"


def target(calendars: Path, year: int) -> Path:
    return calendars / WORKDAY_FOLDER / f"{year}.yaml"


def read_existing(path: Path) -> WorkdayFile | None:
    """The working-day file at ``path``, or None when it cannot be read as one."""
    try:
        return WorkdayFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValidationError):
        return None


def same_arrangement(first: WorkdayFile, second: WorkdayFile) -> bool:
    return (first.year, first.source, set(first.holidays), set(first.workdays)) == (
        second.year,
        second.source,
        set(second.holidays),
        set(second.workdays),
    )


def install(path: Path, text: str, expected: WorkdayFile) -> None:
    """Write ``text`` to ``path`` by a temporary file and a rename, after the loader has read it back as
    ``expected``; raises ``CalendarError`` (and leaves ``path`` as it was) if it does not."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".import-", dir=path.parent))
    try:
        written = scratch / path.name
        with written.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        _verify(written, expected)
        os.replace(written, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _verify(path: Path, expected: WorkdayFile) -> None:
    program = Program()
    problems = _read_workdays(path, program)
    wanted = {**dict.fromkeys(expected.holidays, False), **dict.fromkeys(expected.workdays, True)}
    if not problems and program.workdays.overrides != wanted:
        problems = [f"{path}:1: 读回的内容与通知不一致"]
    if problems:
        raise CalendarError(problems)


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=offset) for offset in range((end - start).days + 1)]


def _month_day(day: date) -> str:
    return f"{day.month}月{day.day}日"


def _numeral(number: int) -> str:
    """一 … 十, 十一 … 十九: a notice has seven items."""
    return NUMERALS[number - 1] if number <= 10 else "十" + NUMERALS[number - 11]


def _excerpt(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
