"""The calendar file schema: the policy as data.

A calendar file holds any of ``units``, ``ladders`` and ``duties``; one file of a folder holds its ``programme``. Every
model forbids unknown fields, so a typo is an error with a line number rather than a silently ignored setting.
"""

from __future__ import annotations

import re
from datetime import date
from datetime import time as TimeOfDay
from typing import Annotated, Any, Literal

from dateutil.rrule import rrulestr
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from calendars.clocks import Duration, parse_windows

ID_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
KIND_PATTERN = r"^[a-z][a-z0-9_]*$"
CLAUSE_PATTERN = re.compile(r"(附件\d|[一二三四五六七八九十]+)")


def _clock(value: Any) -> Any:
    """A time of day as written: "17:00" or "9:00"; a bare number would be read as seconds (1700 → 00:28:20)."""
    if isinstance(value, bool | int | float):
        raise ValueError(f'{value!r} is a number, not a time of day: write "{_clock_hint(value)}"')
    found = re.fullmatch(r"(\d):([0-5]\d)(:[0-5]\d)?", value) if isinstance(value, str) else None
    return f"0{value}" if found else value


def _clock_hint(value: float) -> str:
    if isinstance(value, int) and 0 <= value <= 23:
        return f"{value:02d}:00"
    if isinstance(value, int) and 0 <= value <= 2359 and value % 100 < 60:
        return f"{value // 100:02d}:{value % 100:02d}"
    return "HH:MM"


def _calendar_day(value: Any) -> Any:
    """A date as written: 2027-02-10, quoted or not; a bare number would be read as seconds since 1970."""
    if isinstance(value, bool | int | float):
        raise ValueError(f"{value!r} is a number, not a date: write it as YYYY-MM-DD, e.g. 2027-02-10")
    return value


ClockTime = Annotated[TimeOfDay, BeforeValidator(_clock)]
CalendarDay = Annotated[date, BeforeValidator(_calendar_day)]


# Fields a boolean would silently become a number in: true is 1 to pydantic (count: true, reminders: [true]).
NUMBER_ANNOTATIONS: tuple[object, ...] = (int, float, int | None, float | None, list[int])


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_boolean_numbers(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name, info in cls.model_fields.items():
            value = data.get(name)
            values = value if isinstance(value, list) else [value]
            if info.annotation in NUMBER_ANNOTATIONS and any(isinstance(item, bool) for item in values):
                raise ValueError(f"{name}: true or false where a number belongs: write the number")
        return data


class ContactSpec(Strict):
    name: str = Field(min_length=1)
    url: str = Field(min_length=3, description="One apprise URL: one recipient on one channel")
    role: Literal["staff", "leader"] = "staff"

    @property
    def channel(self) -> str:
        return self.url.split("://", 1)[0].lower()


class UnitSpec(Strict):
    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1)
    kind: str = Field(pattern=KIND_PATTERN, description="city_office, district, street, market, …")
    district: str | None = Field(default=None, description="Id of the district or county the unit belongs to")
    tags: list[str] = []
    contacts: list[ContactSpec] = Field(default=[], description="In priority order")
    delivery: Literal["all", "failover"] = Field(
        default="all",
        description="all: every contact gets each message; failover: the first, and the next only if it fails for good",
    )
    places: list[str] = Field(
        default=[],
        description="Roads, areas and landmarks the unit answers for: a case whose place names one goes to this unit",
    )


AUDIENCES = Literal["unit", "unit_leaders", "lead", "city_office", "district_office"]
DOCUMENT_PREFIXES = {"交办": "湖城管交", "督办": "湖城管督", "约谈": "湖城管谈"}


class LevelSpec(Strict):
    level: int = Field(ge=1, le=3)
    name: Literal["交办", "督办", "约谈"]
    timeout_workdays: int = Field(ge=1, le=60, description="Working days the unit has at this level")
    audience: list[AUDIENCES]
    approval: bool = Field(default=False, description="A manager approves on the desk before the notice goes out")
    repeat_workdays: int | None = Field(
        default=None, ge=1, le=30, description="Send the notice again every N working days until the unit acknowledges"
    )
    document_prefix: str = Field(
        default="", max_length=16, description="Numbered as PREFIX〔YEAR〕N号, gap-free per year; default by level name"
    )

    @property
    def prefix(self) -> str:
        return self.document_prefix or DOCUMENT_PREFIXES[self.name]


class LadderSpec(Strict):
    id: str = Field(pattern=ID_PATTERN)
    clause: str = Field(min_length=2)
    quote: str = Field(default="", description="The guidance's words for the ladder, quoted in every notice")
    grace_workdays: int = Field(default=0, ge=0, le=30, description="Working days after the due date before 交办")
    levels: list[LevelSpec] = Field(min_length=1)
    inferred: bool = False
    assumption: str = ""

    @model_validator(mode="after")
    def _levels_in_order(self) -> LadderSpec:
        if self.inferred and not self.assumption.strip():
            raise ValueError("inferred: true needs an assumption saying what was assumed and why")
        numbers = [level.level for level in self.levels]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"levels must be numbered 1, 2, 3 in order, got {numbers}")
        return self


class RecurrenceSpec(Strict):
    rrule: str = Field(description="RFC 5545 rule for the start of each period, e.g. FREQ=MONTHLY;BYMONTH=2,4")
    period: Literal["week", "month", "year"]

    @field_validator("rrule")
    @classmethod
    def _valid_rrule(cls, value: str) -> str:
        if "DTSTART" in value.upper():
            raise ValueError("leave DTSTART out: periods are anchored by the planner")
        try:
            rrulestr(value, dtstart=None, forceset=False)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"invalid RRULE {value!r}: {exc}") from None
        bounded_rrule(value)
        return value


# Periods are weeks, months and years: a finer FREQ, or an hour, minute or second, only multiplies the instances
# walked from the planner's anchor in 2000 (FREQ=SECONDLY never finishes), and INTERVAL=0 never moves on.
RRULE_PARTS = {
    "FREQ",
    "INTERVAL",
    "UNTIL",
    "WKST",
    "BYMONTH",
    "BYMONTHDAY",
    "BYYEARDAY",
    "BYWEEKNO",
    "BYDAY",
    "BYSETPOS",
}
MAX_INTERVAL = {"WEEKLY": 52, "MONTHLY": 24, "YEARLY": 10}
# Each BY part's values: (lowest, highest, may be negative). dateutil accepts BYMONTH=13 and yields nothing; it
# checks BYDAY and BYSETPOS itself.
BY_RANGES = {
    "BYMONTH": (1, 12, False),
    "BYMONTHDAY": (1, 31, True),
    "BYYEARDAY": (1, 366, True),
    "BYWEEKNO": (1, 53, True),
}
COUNT_REFUSED = "COUNT is not allowed: it counts from the planner's anchor in 2000; end the rule with UNTIL instead"


def bounded_rrule(value: str) -> None:
    """Refuse a rule whose expansion could be endless or enormous; say what to write instead."""
    text = value.strip()
    text = text[len("RRULE:") :] if text.upper().startswith("RRULE:") else text
    parts = dict(part.partition("=")[::2] for part in text.upper().split(";") if part)
    if "COUNT" in parts:
        raise ValueError(COUNT_REFUSED)
    unknown = sorted(set(parts) - RRULE_PARTS)
    if unknown:
        raise ValueError(f"RRULE part {unknown[0]} is not allowed: periods are weeks, months and years")
    freq = parts.get("FREQ", "")
    if freq not in MAX_INTERVAL:
        raise ValueError(f"FREQ={freq} is not allowed: write FREQ=WEEKLY, FREQ=MONTHLY or FREQ=YEARLY")
    interval, most = parts.get("INTERVAL", "1"), MAX_INTERVAL[freq]
    if not re.fullmatch(r"[0-9]{1,3}", interval) or not 1 <= int(interval) <= most:
        raise ValueError(f"INTERVAL={interval} is out of range: with FREQ={freq} write 1 to {most}")
    for name, (lowest, highest, signed) in BY_RANGES.items():
        for value in filter(None, parts.get(name, "").split(",")):
            number = value.lstrip("+-") if signed else value
            if not re.fullmatch(r"[0-9]{1,3}", number) or not lowest <= int(number) <= highest:
                sign = f"±{lowest}…{highest}" if signed else f"{lowest}…{highest}"
                raise ValueError(f"{name}={value} is out of range: write {sign}")


class DueSpec(Strict):
    rule: Literal["last_workday", "day_of_period", "nth_workday"] = "last_workday"
    day: int | None = Field(default=None, ge=1, le=31, description="For day_of_period")
    n: int | None = Field(default=None, ge=1, le=260, description="For nth_workday: the n-th working day of the period")
    time: ClockTime = TimeOfDay(17, 0)
    month_end: Literal["clamp", "skip"] = Field(
        default="clamp", description="day_of_period beyond the month's end: clamp to the last day, or skip"
    )
    roll: Literal["none", "forward", "backward"] = Field(
        default="backward", description="day_of_period on a holiday: move to a working day"
    )
    empty_period: Literal["skip", "previous_workday", "next_workday"] | None = Field(
        default=None,
        description="A period with no working day at all (a week inside the Spring Festival): skip it, or fall due "
        "on the last working day before it or the first after it. Default: previous_workday for a quota (每周不少于1次 "
        "has no exception), skip otherwise",
    )

    @model_validator(mode="after")
    def _parameters_match_rule(self) -> DueSpec:
        if self.rule == "day_of_period" and self.day is None:
            raise ValueError("rule day_of_period needs day")
        if self.rule == "nth_workday" and self.n is None:
            raise ValueError("rule nth_workday needs n")
        return self


class SendWindowSpec(Strict):
    """When messages about a duty may go out: by default during office hours on working days, never at night."""

    start: ClockTime = TimeOfDay(8, 30)
    end: ClockTime = TimeOfDay(18, 0)
    workdays_only: bool = True
    always: bool = Field(default=False, description="Send at any hour, e.g. for an emergency duty")

    @model_validator(mode="after")
    def _start_before_end(self) -> SendWindowSpec:
        if not self.always and self.start >= self.end:
            raise ValueError(f"start {self.start} must be before end {self.end}")
        return self


class QuotaSpec(Strict):
    """At least ``count`` performed checks per period, each recorded; a period that ends short is overdue."""

    count: int = Field(ge=1, le=100, description="Checks required in each period (每周不少于1次 → 1)")
    subjects: list[str] = Field(
        default=[],
        description="Units each check rates (kind:market): the check's form asks which one was checked and whether "
        "it passed; their results rank them (scoring: check_pass_rate, the 红黑榜)",
    )
    finding_category: str | None = Field(
        default=None,
        description="A case category (categories:): a check that finds a unit 不合格 files a case of it for that unit, "
        "dispatched at once, with the problem and the report's photos",
    )


HOURS_PATTERN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


class UnannouncedSpec(Strict):
    """不定时: ``count`` checks per period on distinct days drawn from a secret seed, unknown to the inspected.

    ``days`` says which days a check may fall on; ``hours`` the windows its moment is drawn from (default: the due
    time). A window crossing midnight ("22:00-06:00") belongs to the day it starts on.
    """

    count: int = Field(ge=1, le=20, description="Unannounced checks per period for each assignee")
    subjects: list[str] = Field(default=[], description="Who is inspected (unit ids, kind:X, tag:X); never told")
    days: Literal["workdays", "days_off", "all"] = Field(
        default="workdays",
        description="Which days a check may fall on: working days, days off (weekends and holidays, not 调休 "
        "make-up working days) or every day",
    )
    hours: list[str] | None = Field(
        default=None,
        description='Windows "HH:MM-HH:MM" a check may happen in, on a 10-minute grid; "22:00-06:00" crosses '
        "midnight. Default: at due.time",
    )
    finding_category: str | None = Field(
        default=None,
        description="A case category (categories:): the check's form then asks which subject was checked and whether "
        "it passed, and a 不合格 result files a case of it for that unit, dispatched at once",
    )

    @field_validator("hours")
    @classmethod
    def _windows(cls, value: list[str] | None) -> list[str] | None:
        if value == []:
            raise ValueError("no window to draw a moment from; leave hours out to check at due.time")
        for window in value or []:
            found = HOURS_PATTERN.match(window)
            if found is None:
                raise ValueError(
                    f'{window!r} is not a window "HH:MM-HH:MM" (e.g. "08:00-18:00", or "22:00-06:00" across midnight)'
                )
            if found.group(1, 2) == found.group(3, 4):
                raise ValueError(f"{window!r} is an empty window, its start and end are the same")
        return value

    @property
    def windows(self) -> list[tuple[int, int]]:
        """``hours`` as minutes from the midnight starting the drawn day: [start, end), end past 1440 at night."""
        windows = []
        for window in self.hours or []:
            start, end = (int(clock[:2]) * 60 + int(clock[3:]) for clock in window.split("-"))
            windows.append((start, end if end > start else end + 24 * 60))
        return windows


class TargetSpec(Strict):
    """A numeric goal for each period (a year for 年底目标), with progress reported against it.

    ``cumulative``: each report adds to the total (100 美丽小区). ``level``: each report states the current value and
    the latest one counts (亮灯率不低于98%, 满意率96%).
    """

    goal: float = Field(gt=0)
    measure: str = Field(min_length=1, description="What is counted, e.g. 个“美丽小区”, %")
    mode: Literal["cumulative", "level"] = "cumulative"


class ChainSpec(Strict):
    """Inspection → rectification → re-inspection (检查结果、整改、责任、复检四清单, 附件1 第7项 举措4)."""

    rectify_workdays: int = Field(ge=1, le=120, description="Working days a finding has to be rectified (整改)")
    reinspect_workdays: int = Field(
        ge=1, le=60, description="Working days after the rectification deadline to re-inspect (复检)"
    )
    responsibility: list[Literal["总", "片", "点"]] = Field(
        default=["总", "片", "点"], description="Levels of responsible person each check names (总、片、点责任人)"
    )


def _duration(value: str) -> str:
    Duration.parse(value)
    return value.strip()


def _windows(value: list[str] | None) -> list[str] | None:
    if value is not None:
        parse_windows(value)
    return value


DurationText = Annotated[str, AfterValidator(_duration)]
WindowsText = Annotated[list[str] | None, AfterValidator(_windows)]


class CaseStepSpec(Strict):
    """One step of a category's own short ladder: ``after`` from the case's dispatch, on the category's clock, an
    item not yet handled takes the next level and its notice goes to ``audience``."""

    after: DurationText = Field(description='e.g. "30 minutes", "2 hours", counted on the category clock')
    name: Literal["交办", "督办", "约谈"] = "交办"
    audience: list[AUDIENCES] = Field(min_length=1)


class CategorySpec(Strict):
    """A kind of problem that becomes a case when found (零星垃圾、积水; 工地扬尘; 市场卫生问题), with its clock.

    The clock starts when the case is dispatched to a unit: ``deadline`` is "30 minutes", "2 hours", "2 workhours"
    (office hours on working days) or "1 workday". ``service_hours`` restrict a minutes or hours clock to declared
    hours (a market's opening hours). ``units`` say who may answer: the one whose name or ``places`` the case's place
    names; otherwise the dispatcher chooses on the desk.
    """

    id: str = Field(pattern=ID_PATTERN)
    title: str = Field(min_length=1, description="零星垃圾、积水")
    clause: str = Field(min_length=1)
    quote: str = Field(min_length=1)
    family: str = Field(default="问题案件处置", min_length=1, description="Where the assessment's roll-up counts it")
    deadline: DurationText
    service_hours: WindowsText = Field(default=None, description='"HH:MM-HH:MM" windows; minutes or hours only')
    units: list[str] = Field(min_length=1, description="Who may answer: unit ids, kind:X or tag:X")
    lead: list[str] = Field(min_length=1, description="Who supervises: named in every notice")
    ladder: str = Field(default="default", description="A ladder of working days, used when steps are not given")
    steps: list[CaseStepSpec] = Field(default=[], description="The category's own short ladder, e.g. at 30 minutes")
    send_window: SendWindowSpec = Field(
        default=SendWindowSpec(always=True), description="A live problem is told at once, whatever the hour"
    )
    pause_while_requested: bool = Field(
        default=False, description="Stop the clock while a unit's 延期/挂账/退回 request waits for a manager"
    )
    inferred: bool = False
    assumption: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> CategorySpec:
        if self.inferred and not self.assumption.strip():
            raise ValueError("inferred: true needs an assumption saying what was assumed and why")
        unit = Duration.parse(self.deadline).unit
        if self.service_hours is not None and unit not in ("minutes", "hours"):
            raise ValueError(f"service_hours apply to a deadline in minutes or hours, not {unit}")
        if len(self.steps) > 3:
            raise ValueError("steps: at most three (交办, 督办, 约谈)")
        return self

    @property
    def duration(self) -> Duration:
        return Duration.parse(self.deadline)

    @property
    def ladder_id(self) -> str:
        return f"case-{self.id}" if self.steps else self.ladder

    def as_duty(self) -> DutySpec:
        """The duty its cases are items of: the same link, reminders, ladder, desk and assessment as any other."""
        return DutySpec(
            id=self.id,
            family=self.family,
            title=self.title,
            clause=self.clause,
            quote=self.quote,
            lead=self.lead,
            assignees=self.units,
            reminders=[],
            send_window=self.send_window,
            ladder=self.ladder_id,
            inferred=self.inferred,
            assumption=self.assumption,
            category=self,
        )

    def as_ladder(self) -> LadderSpec | None:
        """Its short ladder as levels; the moments come from the steps' ``after`` (flows/ladder.py)."""
        if not self.steps:
            return None
        levels = [
            LevelSpec(level=number, name=step.name, timeout_workdays=1, audience=step.audience)
            for number, step in enumerate(self.steps, start=1)
        ]
        return LadderSpec(id=self.ladder_id, clause=self.clause, quote=self.quote, levels=levels)


class DutySpec(Strict):
    id: str = Field(pattern=ID_PATTERN)
    family: str = Field(min_length=1)
    title: str = Field(min_length=1)
    clause: str = Field(min_length=1, description="Where the guidance says it, e.g. 附件1 第6项 举措2, 二")
    quote: str = Field(min_length=1, description="The words of the guidance this duty implements")
    lead: list[str] = Field(min_length=1, description="Unit ids, kind:X or tag:X")
    cooperating: list[str] = []
    assignees: list[str] = Field(min_length=1, description="Who must do it: unit ids, kind:X or tag:X")
    recurrence: RecurrenceSpec | None = Field(default=None, description="Required, except for a case category")
    due: DueSpec = DueSpec()
    reminders: list[int] = Field(default=[3, 1, 0], description="Days before the due date, sent at remind_time")
    remind_time: ClockTime = TimeOfDay(9, 0)
    send_window: SendWindowSpec = SendWindowSpec()
    monthly_tasks: dict[int, list[str]] = Field(default={}, description="Month-specific tasks (1–12)")
    sample: str | None = Field(
        default=None,
        description="The monthly_tasks are a sample, not the guidance's own: this notice is shown wherever they are",
    )
    quota: QuotaSpec | None = None
    unannounced: UnannouncedSpec | None = None
    target: TargetSpec | None = None
    chain: ChainSpec | None = None
    ladder: str = "default"
    inferred: bool = False
    assumption: str = ""
    category: CategorySpec | None = Field(
        default=None, description="Set by the loader for a case category (categories:); never written in a duty"
    )

    @property
    def kind(self) -> str:
        """calendar, quota, unannounced, target or case: how occurrences are made and when one is complete."""
        if self.category is not None:
            return "case"
        if self.target is not None:
            return "target"
        if self.unannounced is not None:
            return "unannounced"
        if self.quota is not None:
            return "quota"
        return "calendar"

    @property
    def period_rule(self) -> RecurrenceSpec:
        """The recurrence of a planned duty (every kind but a case, which the loader never plans)."""
        if self.recurrence is None:
            raise ValueError(f"duty {self.id} has no recurrence: it is a case category")
        return self.recurrence

    @property
    def empty_period(self) -> str:
        """What a period with no working day does: the due rule's choice, else the default for the duty's kind."""
        if self.due.empty_period is not None:
            return self.due.empty_period
        return "previous_workday" if self.quota is not None else "skip"

    @property
    def required(self) -> float:
        """What completes one occurrence: checks for a quota, the goal for a target, else one confirmation."""
        if self.target is not None:
            return self.target.goal
        return float(self.quota.count) if self.quota is not None else 1.0

    @field_validator("clause")
    @classmethod
    def _looks_like_clause(cls, value: str) -> str:
        if not CLAUSE_PATTERN.search(value):
            raise ValueError(f"clause {value!r} does not cite the guidance (e.g. 附件1 第6项 举措2, 三(二)3)")
        return value

    @field_validator("reminders")
    @classmethod
    def _reminders_sorted(cls, value: list[int]) -> list[int]:
        if any(days < 0 or days > 366 for days in value):
            raise ValueError("reminder lead times are days before the due date, from 0 to 366")
        return sorted(set(value), reverse=True)

    @field_validator("monthly_tasks")
    @classmethod
    def _months(cls, value: dict[int, list[str]]) -> dict[int, list[str]]:
        bad = [month for month in value if not 1 <= month <= 12]
        if bad:
            raise ValueError(f"monthly_tasks has months outside 1–12: {bad}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DutySpec:
        if self.inferred and not self.assumption.strip():
            raise ValueError("inferred: true needs an assumption saying what was assumed and why")
        kinds = [name for name in ("quota", "unannounced", "target") if getattr(self, name) is not None]
        if len(kinds) > 1:
            raise ValueError(f"{kinds[-1]}: a duty is one of quota, unannounced or target, not {' and '.join(kinds)}")
        if self.unannounced is not None and self.due.rule != "last_workday":
            raise ValueError("due: unannounced checks fall on drawn days, so leave the due rule at last_workday")
        if self.recurrence is None and self.category is None:
            raise ValueError("recurrence: Field required")
        if self.monthly_tasks and self.recurrence is not None and self.recurrence.period != "month":
            raise ValueError("monthly_tasks needs a monthly recurrence (period: month)")
        if self.sample is not None and not self.sample.strip():
            raise ValueError("sample: say in words what is a sample and what will replace it")
        if self.sample is not None and not self.monthly_tasks:
            raise ValueError("sample: marks the monthly_tasks as a sample, and this duty has none")
        return self


class ProgrammeSpec(Strict):
    """The guidance a folder of calendars carries out, and the office that issues it: cited and signed in every
    message and page, so another city loads its own programme without touching the templates."""

    name: str = Field(min_length=1, description="The guidance's title, e.g. 关于加快打造城市精细化管理升级版的指导意见")
    document: str = Field(
        min_length=1, description="Its document number, cited before each clause: 湖城管委〔2022〕2号"
    )
    office: str = Field(min_length=1, description="The office that sends the messages and signs them")
    office_short: str = Field(min_length=1, description="How a sentence names the office, e.g. 市城管办")
    sms_signature: str = Field(
        min_length=2,
        max_length=20,
        description="The registered SMS signature (短信签名), for smsgw:// contacts that give no sign= of their own",
    )
    office_hours: list[str] = Field(
        default=["08:30-12:00", "13:30-17:30"],
        min_length=1,
        description="The office's working hours on a working day: what a workhours clock counts",
    )
    photo_radius: int = Field(
        default=500, ge=10, le=50_000, description="Metres: a case photo taken farther from its place is marked"
    )

    @field_validator("office_hours")
    @classmethod
    def _office_windows(cls, value: list[str]) -> list[str]:
        if any(end > 24 * 60 for _, end in parse_windows(value)):
            raise ValueError("office hours end before midnight")
        return value

    def cite(self, clause: str) -> str:
        """A clause with the document it is in: 湖城管委〔2022〕2号 附件1 第6项 举措2."""
        return f"{self.document} {clause}"


INDICATORS = {
    "on_time_rate": "按期完成率",
    "quota_rate": "抽查完成率",
    "target_rate": "目标进度",
    "response_rate": "收到回复率",
    "check_pass_rate": "抽查合格率",
    "case_on_time_rate": "按期处置率",  # cases (flows/cases.py): handled by the category's deadline
}
DEDUCTIONS = {
    "late_done": "逾期完成",
    "overdue": "逾期未完成",
    "level_1": "被交办",
    "level_2": "被督办",
    "level_3": "被约谈",
    "extended": "延期",
    "parked": "挂账",
    "rework": "返工（核查或复检不通过）",
    "quota_short": "抽查次数不足",
    "check_failed": "抽查不合格",
}


class GradeSpec(Strict):
    name: str = Field(min_length=1, description="优秀, 良好, 合格, 不合格")
    min: float = Field(ge=0, le=1000, description="The lowest score of this grade")


class BoardSpec(Strict):
    """A 红黑榜 over one group: its best ``top`` units on the red list and its worst ``bottom`` on the black."""

    title: str = Field(min_length=1, description="e.g. 市场清扫保洁质量红黑榜")
    clause: str = Field(min_length=2)
    top: int = Field(default=3, ge=1, le=50)
    bottom: int = Field(default=3, ge=1, le=50)


class GroupSpec(Strict):
    """Units ranked against each other: like with like (markets with markets, districts with districts)."""

    id: str = Field(pattern=ID_PATTERN)
    title: str = Field(min_length=1)
    units: list[str] = Field(min_length=1, description="Unit ids, kind:X or tag:X")
    board: BoardSpec | None = None


class ScoringSpec(Strict):
    """The monthly assessment (考核): how the ledger becomes a score per unit, when it is frozen, and the 红黑榜.

    score = base − Σ weight × (1 − rate), over the rates the unit has something to count for, − the deductions
    (at most ``max_deduction``), never below 0. A weight is the points a rate of 0 loses; each deduction is per
    item, and an item counts only the highest level it reached.
    """

    clause: str = Field(min_length=2)
    quote: str = Field(min_length=1)
    base: float = Field(default=100, gt=0, le=1000)
    weights: dict[str, float] = Field(
        description="Rate → the points a rate of 0 loses; a rate with nothing to count for a unit loses nothing"
    )
    deductions: dict[str, float] = Field(default={}, description="Points per item: late_done, overdue, level_1 …")
    max_deduction: float = Field(default=40, ge=0, le=1000)
    grades: list[GradeSpec] = Field(min_length=1, description="Highest first")
    cutoff_workday: int = Field(
        default=5, ge=1, le=20, description="The month is frozen on this working day of the next month, at cutoff_time"
    )
    cutoff_time: ClockTime = TimeOfDay(17, 0)
    objection_workdays: int = Field(default=3, ge=0, le=20, description="Working days after the cut-off for 异议")
    document_prefix: str = Field(default="湖城管考", min_length=1, max_length=16)
    groups: list[GroupSpec] = []
    inferred: bool = False
    assumption: str = ""

    @field_validator("weights")
    @classmethod
    def _known_rates(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(INDICATORS))
        if unknown:
            raise ValueError(f"unknown rate {unknown[0]!r}: write one of {', '.join(INDICATORS)}")
        if any(weight < 0 for weight in value.values()) or not any(weight > 0 for weight in value.values()):
            raise ValueError("weights are numbers ≥ 0, and at least one is above 0")
        return value

    @field_validator("deductions")
    @classmethod
    def _known_deductions(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(DEDUCTIONS))
        if unknown:
            raise ValueError(f"unknown deduction {unknown[0]!r}: write one of {', '.join(DEDUCTIONS)}")
        if any(points < 0 for points in value.values()):
            raise ValueError("deductions are points ≥ 0 per item")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ScoringSpec:
        if self.inferred and not self.assumption.strip():
            raise ValueError("inferred: true needs an assumption saying what was assumed and why")
        floors = [grade.min for grade in self.grades]
        if floors != sorted(floors, reverse=True) or len(set(floors)) != len(floors):
            raise ValueError(f"grades must go from the highest min to the lowest, got {floors}")
        if floors[-1] != 0:
            raise ValueError("the last grade must have min: 0, so every score has a grade")
        ids = [group.id for group in self.groups]
        if len(set(ids)) != len(ids):
            raise ValueError(f"group ids must be unique, got {ids}")
        return self

    def grade(self, score: float) -> str:
        return next(grade.name for grade in self.grades if score >= grade.min)


class CalendarFile(Strict):
    programme: ProgrammeSpec | None = None
    scoring: ScoringSpec | None = None
    units: list[UnitSpec] = []
    ladders: list[LadderSpec] = []
    duties: list[DutySpec] = []
    categories: list[CategorySpec] = []


class WorkdayFile(Strict):
    """calendars/workdays/YEAR.yaml: the State Council's arrangement for a year the package does not know."""

    year: int = Field(ge=2000, le=2100)
    source: str = Field(min_length=1, description="Where the arrangement was published, e.g. 国办发明电〔2026〕N号")
    holidays: list[CalendarDay] = Field(default=[], description="Days off, weekends that stay off need not be listed")
    workdays: list[CalendarDay] = Field(default=[], description="Make-up working days (调休), usually weekends")

    @model_validator(mode="after")
    def _consistent(self) -> WorkdayFile:
        outside = [d.isoformat() for d in (*self.holidays, *self.workdays) if d.year != self.year]
        if outside:
            raise ValueError(f"dates outside {self.year}: {', '.join(outside)}")
        both = sorted(set(self.holidays) & set(self.workdays))
        if both:
            raise ValueError(f"listed as both holiday and working day: {', '.join(d.isoformat() for d in both)}")
        return self
