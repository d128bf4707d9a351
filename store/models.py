"""The ledger: SQLModel tables.

Datetimes are stored in UTC and always come back timezone-aware (``AwareDateTime``), on SQLite as on PostgreSQL.
An occurrence's status is not stored: it is derived from its own fields at a given moment (``status_at``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, UniqueConstraint, and_, or_, text
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class AwareDateTime(TypeDecorator[datetime]):
    """Store UTC, hand back aware datetimes; refuse naive ones so no local time is stored by mistake."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def bind_processor(self, dialect: Any) -> Any:
        """The usual conversion, remembered per moment: a year's plan writes each due moment for every unit, and
        SQLite's string formatting of each one was a third of the planning time. Equal aware datetimes are the
        same instant, so they share one UTC value; a naive one never equals an aware key and still raises."""
        convert = super().bind_processor(dialect)
        if convert is None:
            return None
        memo: dict[datetime, Any] = {}

        def process(value: datetime | None) -> Any:
            if value is None:
                return None
            found = memo.get(value)
            if found is None:
                if len(memo) >= BIND_MEMO_SIZE:
                    memo.clear()
                found = memo[value] = convert(value)
            return found

        return process


BIND_MEMO_SIZE = 20_000


def _aware(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(AwareDateTime(), nullable=nullable, index=index))


def _json() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Setting(SQLModel, table=True):
    """Small key/value store for values generated once, such as the link-signing key."""

    key: str = Field(primary_key=True, max_length=64)
    value: str


class Unit(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=64)
    name: str
    kind: str = Field(index=True, max_length=32)
    district: str | None = Field(default=None, index=True, max_length=64)
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    delivery: str = Field(default="all", max_length=16, description="all, or failover through contacts by priority")
    link_version: int = 0  # raised to revoke every unit link (/u/…) issued so far; kept by the calendar sync


class Contact(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("unit_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    unit_id: str = Field(foreign_key="unit.id", index=True, max_length=64)
    name: str
    channel: str = Field(max_length=32)
    url: str
    role: str = Field(default="staff", max_length=16)
    priority: int = 0  # order in the unit file: failover tries the lowest first
    active: bool = True


class Duty(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(default="calendar", max_length=16, description="calendar, quota, unannounced or target")
    family: str
    title: str
    clause: str
    quote: str = ""
    spec: dict[str, Any] = _json()
    source: str = ""


class Occurrence(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("duty_id", "unit_id", "period"),
        Index("ix_occurrence_remind", "next_remind_at"),
        Index("ix_occurrence_escalate", "next_escalate_at"),
        Index("ix_occurrence_unit_due", "unit_id", "due_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    duty_id: str = Field(foreign_key="duty.id", index=True, max_length=64)
    unit_id: str = Field(foreign_key="unit.id", max_length=64)
    period: str = Field(max_length=32, description="2026-02, 2026-W07: one occurrence per duty, unit, period")
    title: str
    detail: str = ""
    starts_at: datetime = _aware(nullable=False)
    due_at: datetime = _aware(nullable=False, index=True)
    flags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    first_remind_at: datetime = _aware(nullable=False)
    visible_from: datetime | None = _aware()  # unannounced checks: hidden from the inspected until the day
    required: float = 1.0  # checks for a quota, the goal for a target, else one confirmation
    achieved: float = 0.0
    next_remind_at: datetime | None = _aware()
    reminders_sent: int = 0
    next_escalate_at: datetime | None = _aware()
    level: int = 0
    level_at: datetime | None = _aware()
    done_at: datetime | None = _aware()
    parked_at: datetime | None = _aware()
    review_at: datetime | None = _aware()  # parked until: the desk brings the item back on this day
    waived_at: datetime | None = _aware()
    link_version: int = 0  # raised to revoke every link issued so far
    links_revoked: bool = False  # no link is issued for the item, not even by the unit page, until a manager re-issues
    finding_id: int | None = Field(default=None, index=True)  # a 整改 item made from an inspection finding
    case_id: int | None = Field(default=None, index=True)  # one dispatch of a case (flows/cases.py)
    created_at: datetime = _aware(nullable=False)

    def status_at(self, at: datetime) -> str:
        """The status at ``at``, derived from the row's own fields without I/O."""
        if self.waived_at is not None and self.waived_at <= at:
            return "waived"
        if self.done_at is not None and self.done_at <= at:
            return "done" if self.done_at <= self.due_at else "late_done"
        if self.parked_at is not None and self.parked_at <= at:
            return "parked"
        if at >= self.due_at:
            return "overdue"
        if at >= self.first_remind_at:
            return "due"
        return "scheduled"


class Delivery(SQLModel, table=True):
    """One row per occurrence, stage, recipient and channel; written before the message is sent."""

    __table_args__ = (
        UniqueConstraint("occurrence_id", "stage", "contact_id"),
        # A message about no single item (an assessment's 通报) is unique by stage and recipient instead.
        Index(
            "ux_delivery_unattached",
            "stage",
            "contact_id",
            unique=True,
            sqlite_where=text("occurrence_id IS NULL"),
            postgresql_where=text("occurrence_id IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    occurrence_id: int | None = Field(default=None, foreign_key="occurrence.id", index=True)
    stage: str = Field(max_length=32, description="remind:3d@20260227, moved:…, level:1 …, report:12")
    contact_id: int = Field(foreign_key="contact.id")
    unit_id: str = Field(max_length=64)
    channel: str = Field(max_length=32)
    status: str = Field(default="pending", index=True, max_length=16, description="see DELIVERY_STATES")
    idempotency_key: str = Field(default="", max_length=40, description="Sent with the message so receivers dedupe")
    title: str = ""
    body: str = ""
    log: str = ""
    attempts: int = 0
    max_attempts: int = 5
    next_attempt_at: datetime | None = _aware(index=True)
    lease_until: datetime | None = _aware()
    created_at: datetime = _aware(nullable=False)
    sent_at: datetime | None = _aware()


DELIVERY_STATES = {
    "pending": "待发送",
    "claimed": "待发送（已领取）",  # held by a dispatcher until lease_until, not started: safe to send again
    "sending": "发送中",  # its send started; if the dispatcher dies now, only the receiver knows whether it arrived
    "sent": "已发送",
    "retry": "待重试",  # after a temporary failure, at next_attempt_at
    "failed": "发送失败",  # permanently, or after max_attempts
    "unknown": "结果未知",  # a timeout after the request may have left: never resent to a chat bot automatically
}


class Confirmation(SQLModel, table=True):
    """One report from a unit: a confirmation, one performed check of a quota, or progress towards a target.

    ``form_id`` comes from the form the unit was shown, so submitting the same form twice records it once.
    """

    __table_args__ = (UniqueConstraint("occurrence_id", "form_id"),)

    id: int | None = Field(default=None, primary_key=True)
    occurrence_id: int = Field(foreign_key="occurrence.id", index=True)
    form_id: str = Field(default="single", max_length=64)
    amount: float = 1.0
    note: str = ""
    evidence: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # What the photo's EXIF says about when it was taken, per stored file name ("2026-02-03 09:12").
    evidence_taken: dict[str, str] = _json()
    # ... and where, per stored file name: [latitude, longitude] in WGS-84 degrees.
    evidence_gps: dict[str, list[float]] = _json()
    confirmed_at: datetime = _aware(nullable=False)
    late: bool = False
    client: str = ""
    verdict: str = Field(default="", max_length=8, description="核查: empty until checked, then pass or fail")
    verified_by: str = Field(default="", max_length=64)
    verified_at: datetime | None = _aware()


class CheckResult(SQLModel, table=True):
    """One unit rated on one performed spot check (a market on 市场清扫保洁质量抽查): passed, or the problem found.

    The checked units' results rank them (the 红黑榜, flows/scores.py); the checking unit's item counts the check.
    """

    __table_args__ = (UniqueConstraint("confirmation_id", "subject_id"),)

    id: int | None = Field(default=None, primary_key=True)
    occurrence_id: int = Field(foreign_key="occurrence.id", index=True, description="The checking unit's item")
    confirmation_id: int = Field(foreign_key="confirmation.id", index=True)
    subject_id: str = Field(foreign_key="unit.id", index=True, max_length=64, description="The unit checked")
    passed: bool
    problem: str = ""
    at: datetime = _aware(nullable=False, index=True)


class Case(SQLModel, table=True):
    """A problem found (受理) with its category, place, photos and reporter, dispatched (派遣) to a unit as an item.

    Each dispatch is one occurrence of the category's duty (period ``C<id>``, then ``C<id>.2`` after a 退回 and a
    reassignment): the same link, reminders, ladder, desk, audit and assessment as every other item. The unit's
    report is the 处置; a 核查 passed closes the case (结案), a failed one reopens its item at its level.
    ``external_id`` is the calling platform's own case id: the same reporter filing it again gets the same case.
    """

    __table_args__ = (UniqueConstraint("reporter", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    category_id: str = Field(foreign_key="duty.id", index=True, max_length=64)
    place: str
    latitude: float | None = None
    longitude: float | None = None
    note: str = ""
    photos: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # before: as found
    photos_taken: dict[str, str] = _json()
    photos_gps: dict[str, list[float]] = _json()
    reporter: str = Field(max_length=64, description="user:NAME, unit:ID (a spot check) or cli:NAME")
    source: str = Field(max_length=16, description="inspector, check, api or cli")
    external_id: str | None = Field(default=None, max_length=64)
    check_result_id: int | None = Field(default=None, description="The spot-check finding it came from")
    found_at: datetime = _aware(nullable=False, index=True)
    occurrence_id: int | None = Field(default=None, index=True, description="The current dispatch; None: 待派遣")
    dispatches: int = 0
    closed_at: datetime | None = _aware(index=True)  # 结案
    closed_by: str = Field(default="", max_length=64)
    created_at: datetime = _aware(nullable=False)


class UnitRequest(SQLModel, table=True):
    """A unit pushing back on one item: 退回 (not ours), 延期申请 (a new date) or 挂账申请 (cannot be solved now),
    each with a reason, waiting in the managers' approval queue until decided with a reason of their own."""

    __table_args__ = (UniqueConstraint("occurrence_id", "form_id"),)

    id: int | None = Field(default=None, primary_key=True)
    occurrence_id: int = Field(foreign_key="occurrence.id", index=True)
    unit_id: str = Field(max_length=64, index=True)
    kind: str = Field(max_length=16, description="return, extend or park")
    reason: str
    due_at: datetime | None = _aware()  # 延期申请: the date asked for
    review_on: date | None = None  # 挂账申请: when to look again
    form_id: str = Field(default="", max_length=64)
    at: datetime = _aware(nullable=False)
    status: str = Field(default="open", max_length=16, index=True, description="open, approved or rejected")
    answer: str = ""
    decided_by: str = Field(default="", max_length=64)
    decided_at: datetime | None = _aware()


REQUEST_KINDS = {"return": "退回", "extend": "延期申请", "park": "挂账申请"}
REQUEST_STATES = {"open": "待审批", "approved": "已同意", "rejected": "未同意"}


class Escalation(SQLModel, table=True):
    """One level of the ladder reached by one item: its numbered notice, its deadline, and the unit's 收到.

    ``status``: ``pending`` (waiting for a manager's approval; no number, no notice yet) or ``issued``.
    """

    __table_args__ = (UniqueConstraint("occurrence_id", "level"),)

    id: int | None = Field(default=None, primary_key=True)
    occurrence_id: int = Field(foreign_key="occurrence.id", index=True)
    level: int
    name: str = Field(max_length=16, description="交办, 督办, 约谈")
    status: str = Field(default="issued", max_length=16, index=True)
    at: datetime = _aware(nullable=False, index=True)
    deadline_at: datetime | None = _aware()
    document: str = Field(default="", max_length=64, description="湖城管督〔2026〕12号")
    approved_by: str = Field(default="", max_length=64)
    approved_at: datetime | None = _aware()
    acknowledged_at: datetime | None = _aware()
    repeats: int = 0
    next_repeat_at: datetime | None = _aware(index=True)
    # When its notice (or its latest repeat) was handed to the outbox; empty while it waits to be grouped with the
    # unit's other notices of the same tick (flows/ladder.py queue_notices).
    notified_at: datetime | None = _aware(index=True)


class DocumentCounter(SQLModel, table=True):
    """The last number issued per document prefix and year: numbers come from here, gap-free."""

    prefix: str = Field(primary_key=True, max_length=16)
    year: int = Field(primary_key=True)
    last: int = 0


class Campaign(SQLModel, table=True):
    """An inspection campaign (检查): its findings become 整改 items, and it exports the four lists."""

    id: int | None = Field(default=None, primary_key=True)
    duty_id: str = Field(foreign_key="duty.id", max_length=64)
    name: str
    started_on: date
    created_by: str = Field(max_length=64)
    created_at: datetime = _aware(nullable=False)


class Finding(SQLModel, table=True):
    """One problem found in a campaign, with who answers for it (总、片、点) and its 整改 item."""

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", index=True)
    unit_id: str = Field(foreign_key="unit.id", max_length=64)
    site: str
    problem: str
    responsible_general: str = ""  # 总责任人
    responsible_area: str = ""  # 片责任人
    responsible_point: str = ""  # 点责任人
    found_at: datetime = _aware(nullable=False)
    inspector: str = Field(max_length=64)
    occurrence_id: int | None = Field(default=None, foreign_key="occurrence.id")
    reinspect_by: datetime | None = _aware()


class Reinspection(SQLModel, table=True):
    """A 复检 of one finding: passed closes its 整改 item, failed sends it up the ladder."""

    id: int | None = Field(default=None, primary_key=True)
    finding_id: int = Field(foreign_key="finding.id", index=True)
    at: datetime = _aware(nullable=False)
    passed: bool
    note: str = ""
    inspector: str = Field(max_length=64)


class Talk(SQLModel, table=True):
    """A 约谈 held with a unit about one item, as a manager recorded it."""

    id: int | None = Field(default=None, primary_key=True)
    occurrence_id: int = Field(foreign_key="occurrence.id", index=True)
    held_on: date
    attendees: str
    minutes: str
    recorded_by: str = Field(max_length=64)
    recorded_at: datetime = _aware(nullable=False)


class User(SQLModel, table=True):
    """A manager at the desk. ``city`` sees everything; ``district`` sees the units of its own district."""

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True, max_length=64)
    display_name: str = ""
    password_hash: str
    role: str = Field(max_length=16, description="city or district")
    district: str | None = Field(default=None, max_length=64)
    api_token_hash: str | None = Field(default=None, index=True, max_length=64)
    active: bool = True
    session_version: int = 0  # raised by logout and password changes: every session signed before ends
    created_at: datetime = _aware(nullable=False)


class LoginThrottle(SQLModel, table=True):
    """Failed sign-ins per account or address, in the store so every web worker sees the same count."""

    key: str = Field(primary_key=True, max_length=160, description="user:NAME or addr:IP")
    failures: int = 0
    first_failed_at: datetime | None = _aware()
    locked_until: datetime | None = _aware()


ROLES = {
    "city": "市级管理员",
    "district": "区县管理员",
    "inspector": "巡查员（上报案件）",
    "intake": "外部平台接入（12345、运管服平台）",
}


class AuditEvent(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _aware(nullable=False, index=True)
    actor: str = Field(max_length=64)
    action: str = Field(max_length=32)
    occurrence_id: int | None = Field(default=None, index=True)
    detail: dict[str, Any] = _json()


class Assessment(SQLModel, table=True):
    """One assessment (考核) of one period: a snapshot of every unit's score, frozen at the cut-off moment.

    ``status``: ``draft`` (computed before the cut-off, replaced by each run), ``open`` (frozen; units may object
    until ``objection_until``), ``published`` (numbered 通报; never changes again). A correction after publication is
    a new row with the next ``version`` that ``corrects`` the published one (更正).
    """

    __table_args__ = (UniqueConstraint("period", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    period: str = Field(max_length=16, index=True, description="2026-11, 2026-Q4 or 2026")
    version: int = 1
    corrects: int | None = Field(default=None, description="The published assessment this one corrects (更正)")
    status: str = Field(default="draft", max_length=16, index=True)
    starts_at: datetime = _aware(nullable=False)
    ends_at: datetime = _aware(nullable=False)
    cutoff_at: datetime = _aware(nullable=False)
    computed_at: datetime = _aware(nullable=False)
    objection_until: datetime | None = _aware()
    published_at: datetime | None = _aware()
    published_by: str = Field(default="", max_length=64)
    document: str = Field(default="", max_length=64, description="湖城管考〔2026〕3号, once published")
    digest: str = Field(default="", max_length=64, description="sha256 of the inputs: the same ledger, the same digest")
    scoring: dict[str, Any] = _json()  # the scoring block it was computed with
    summary: dict[str, Any] = _json()  # groups, districts, families, boards: what the 通报 and the dashboard show
    reason: str = ""  # why a correction was made


class AssessmentScore(SQLModel, table=True):
    """One unit's score in one assessment, with the counts and rates behind it."""

    __table_args__ = (UniqueConstraint("assessment_id", "unit_id"),)

    id: int | None = Field(default=None, primary_key=True)
    assessment_id: int = Field(foreign_key="assessment.id", index=True)
    unit_id: str = Field(max_length=64, index=True)
    group_id: str = Field(default="", max_length=64)
    district: str | None = Field(default=None, max_length=64)
    score: float = 0.0
    deducted: float = 0.0
    grade: str = Field(default="", max_length=16)
    rank: int | None = None  # within its group; None for a unit with nothing to assess
    indicators: dict[str, Any] = _json()


class Deduction(SQLModel, table=True):
    """Points taken from one unit for one item: what a unit may object to."""

    id: int | None = Field(default=None, primary_key=True)
    assessment_id: int = Field(foreign_key="assessment.id", index=True)
    unit_id: str = Field(max_length=64, index=True)
    occurrence_id: int | None = Field(default=None, index=True)
    reason: str = Field(max_length=16, description="late_done, overdue, level_2 … (calendars.schema.DEDUCTIONS)")
    points: float
    withdrawn: bool = False  # by an accepted objection


class Objection(SQLModel, table=True):
    """A unit's 异议 against one deduction, and the manager's answer."""

    id: int | None = Field(default=None, primary_key=True)
    assessment_id: int = Field(foreign_key="assessment.id", index=True)
    deduction_id: int = Field(foreign_key="deduction.id", index=True, unique=True)
    unit_id: str = Field(max_length=64)
    reason: str
    evidence: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    at: datetime = _aware(nullable=False)
    status: str = Field(default="open", max_length=16, description="open, accepted or rejected")
    answer: str = ""
    decided_by: str = Field(default="", max_length=64)
    decided_at: datetime | None = _aware()


ASSESSMENT_STATES = {"draft": "预评（未冻结）", "open": "公示中（可提异议）", "published": "已通报"}
OBJECTION_STATES = {"open": "待处理", "accepted": "已采纳", "rejected": "未采纳"}


def status_condition(status: str, at: datetime) -> Any:
    """The SQL twin of ``Occurrence.status_at``: rows whose derived status at ``at`` is ``status``."""
    col = Occurrence.__table__.c  # type: ignore[attr-defined]
    not_waived = or_(col.waived_at.is_(None), col.waived_at > at)
    not_done = or_(col.done_at.is_(None), col.done_at > at)
    not_parked = or_(col.parked_at.is_(None), col.parked_at > at)
    open_ = and_(not_waived, not_done, not_parked)
    conditions = {
        "waived": col.waived_at <= at,
        "done": and_(not_waived, col.done_at <= at, col.done_at <= col.due_at),
        "late_done": and_(not_waived, col.done_at <= at, col.done_at > col.due_at),
        "parked": and_(not_waived, not_done, col.parked_at <= at),
        "overdue": and_(open_, col.due_at <= at),
        "due": and_(open_, col.due_at > at, col.first_remind_at <= at),
        "scheduled": and_(open_, col.first_remind_at > at),
    }
    return conditions[status]


STATUSES = ("scheduled", "due", "done", "late_done", "overdue", "parked", "waived")

STATUS_LABELS = {
    "scheduled": "未到期",
    "due": "待完成",
    "done": "已完成",
    "late_done": "逾期完成",
    "overdue": "已逾期",
    "parked": "挂账",
    "waived": "免除",
}
LEVEL_NAMES = {0: "—", 1: "交办", 2: "督办", 3: "约谈"}
