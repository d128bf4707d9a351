"""A small ledger for the 考核 tests, with numbers a person can check by hand.

A calendars folder written by the test: a city office, two district offices, four markets, five streets, a depot in
no ranking group, and a market supervision bureau (msb) that spot-checks the markets and has a yearly target. The
scoring block weighs on_time_rate 40, quota_rate 20, check_pass_rate 20, target_rate 10, response_rate 10 and
deducts distinct points per reason, so each number in the tests says where it came from.

November 2026 is assessed: Sunday 1 November to Monday 30 November. The weekly duty falls due on the Fridays 6, 13,
20 and 27 November at 17:00 (periods 2026-W45 … W48). The cut-off is the 5th working day of December, Monday 7
December at 17:00; the objection window closes 3 working days later, Thursday 10 December at 17:00.

``build_ledger`` drives the ledger through the product's own functions (plan, confirm, extend, park, waive, verify,
the ladder's escalate and acknowledge, an inspection's finding and failed 复检) and adds the spot-check results
(CheckResult rows) the msb's check form records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from sqlalchemy import select
from sqlmodel import Session, col

from calendars.loader import Program, load_program
from flows import actions, inspections, ladder, steps
from flows.runtime import make_context
from flows.steps import Context
from notify.send import Outcome
from store.models import CheckResult, Confirmation, Occurrence
from tests.conftest import local

CUTOFF = local("2026-12-07T17:00")
OBJECTION_UNTIL = local("2026-12-10T17:00")
PERIOD = "2026-11"

PROGRAMME = """programme:
  name: 关于城市精细化管理考核的测试意见
  document: 测城管委〔2026〕1号
  office: 测试市城市管理委员会办公室
  office_short: 测试市城管办
  sms_signature: 测试城管
"""


def _unit(uid: str, name: str, kind: str, district: str | None = None, leader: bool = False) -> str:
    text = f"  - id: {uid}\n    name: {name}\n    kind: {kind}\n"
    if district:
        text += f"    district: {district}\n"
    text += "    contacts:\n"
    text += f"      - name: 邮件\n        url: mailto://127.0.0.1:9?from=duties@t.local&to={uid}@t.local\n"
    if leader:
        text += (
            f"      - name: 领导\n        url: mailto://127.0.0.1:9?from=duties@t.local&to={uid}-leader@t.local\n"
            "        role: leader\n"
        )
    return text


UNITS = "units:\n" + "".join(
    [
        _unit("office", "测试市城管办", "city_office", leader=True),
        _unit("d1", "甲区城管办", "district_office", leader=True),
        _unit("d2", "乙区城管办", "district_office", leader=True),
        _unit("m1", "一号市场", "market", "d1"),
        _unit("m2", "二号市场", "market", "d1"),
        _unit("m3", "三号市场", "market", "d2"),
        _unit("m4", "四号市场", "market", "d2"),
        _unit("s1", "一号街道", "street", "d1", leader=True),
        _unit("s2", "二号街道", "street", "d1"),
        _unit("s3", "三号街道", "street", "d2"),
        _unit("s4", "四号街道", "street", "d1"),
        _unit("s5", "五号街道", "street", "d2"),
        _unit("depot", "环卫车队", "depot"),
        _unit("msb", "市场监管局", "market_supervision"),
    ]
)

LADDERS = """ladders:
  - id: slow
    clause: 第三条
    quote: 逾期未完成的予以交办
    grace_workdays: 30
    levels:
      - {level: 1, name: 交办, document_prefix: 测交, timeout_workdays: 5, audience: [unit]}
  - id: fast
    clause: 第三条
    quote: 逾期未完成的予以交办、督办、约谈
    levels:
      - {level: 1, name: 交办, document_prefix: 测交, timeout_workdays: 1, audience: [unit], repeat_workdays: 1}
      - {level: 2, name: 督办, document_prefix: 测督, timeout_workdays: 1, audience: [unit], repeat_workdays: 1}
      - {level: 3, name: 约谈, document_prefix: 测谈, timeout_workdays: 1, audience: [unit], repeat_workdays: 1}
"""

DUTIES = """duties:
  - id: weekly
    family: 日常保洁
    title: 每周保洁检查
    clause: 三(一)2
    quote: 每周开展保洁检查。
    lead: [office]
    assignees: [m1, m2, m3, m4, s1, s2, s3, s4, s5, depot]
    recurrence: {rrule: FREQ=WEEKLY, period: week}
    reminders: [0]
    ladder: slow
  - id: monthly
    family: 月度整治
    title: 月度整治
    clause: 三(一)3
    quote: 每月开展整治。
    lead: [office]
    assignees: [s1, s2]
    recurrence: {rrule: FREQ=MONTHLY, period: month}
    due: {rule: nth_workday, n: 1, time: "17:00"}
    reminders: [0]
    ladder: fast
  - id: spot-checks
    family: 市场抽查
    title: 农贸市场抽查
    clause: 附件1 第6项 举措2
    quote: 每月抽查农贸市场不少于3次。
    lead: [office]
    assignees: [msb]
    recurrence: {rrule: FREQ=MONTHLY, period: month}
    quota: {count: 3, subjects: ["kind:market"]}
    reminders: [0]
    ladder: slow
  - id: goal
    family: 年度目标
    title: 全年改造120处
    clause: 附件1 第1项
    quote: 全年改造120处。
    lead: [office]
    assignees: [msb]
    target: {goal: 120, measure: 处}
    recurrence: {rrule: FREQ=YEARLY, period: year}
    reminders: [0]
    ladder: slow
  - id: safety
    family: 安全检查
    title: 安全检查（发现问题限期整改）
    clause: 附件1 第7项 目标1
    quote: 对小区进行安全体检，发现问题限期整改并复检。
    lead: [office]
    assignees: [office]
    target: {goal: 10, measure: 个小区}
    chain: {rectify_workdays: 2, reinspect_workdays: 2}
    recurrence: {rrule: FREQ=YEARLY, period: year}
    reminders: [0]
    ladder: fast
"""

SCORING = """scoring:
  clause: 四3
  quote: 定期对相关部门的工作进展进行考评
  base: 100
  weights: {on_time_rate: 40, quota_rate: 20, check_pass_rate: 20, target_rate: 10, response_rate: 10}
  deductions:
    late_done: 1
    overdue: 2
    parked: 3
    extended: 0.5
    level_1: 5
    level_2: 6
    level_3: 7
    rework: 1.5
    quota_short: 0.25
    check_failed: 2.5
  max_deduction: 10
  grades:
    - {name: 优秀, min: 90}
    - {name: 良好, min: 75}
    - {name: 合格, min: 60}
    - {name: 不合格, min: 0}
  cutoff_workday: 5
  cutoff_time: "17:00"
  objection_workdays: 3
  document_prefix: 测城管考
  groups:
    - id: markets
      title: 农贸市场
      units: ["kind:market"]
      board: {title: 市场红黑榜, clause: 附件1 第6项 举措3, top: 1, bottom: 1}
    - id: streets
      title: 街道
      units: ["kind:street"]
    - id: departments
      title: 职能部门
      units: ["kind:market_supervision"]
"""


def write_calendars(folder: Path, *, scoring: str = SCORING) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    files = {"programme": PROGRAMME + scoring, "units": UNITS, "ladders": LADDERS, "duties": DUTIES}
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return folder


def sent(url: str, title: str, body: str, *, key: str = "") -> Outcome:
    """A channel that takes every message: these tests read what was queued, not what a receiver got."""
    return Outcome("sent", f"test: {url}")


def scoring_context(session: Session, folder: Path) -> Context:
    program = load_program(folder)
    steps.sync_program(session, program, at=local("2026-10-01T00:00"))
    return make_context(session, program, send=sent)


def item(session: Session, duty: str, unit: str, period: str) -> Occurrence:
    query = select(Occurrence).where(
        col(Occurrence.duty_id) == duty, col(Occurrence.unit_id) == unit, col(Occurrence.period) == period
    )
    found = session.execute(query.execution_options(populate_existing=True)).scalar_one()
    return found


WEEKS = {"2026-W45": 6, "2026-W46": 13, "2026-W47": 20, "2026-W48": 27}  # period → its Friday in November


@dataclass
class Ledger:
    program: Program
    ids: dict[str, int] = field(default_factory=dict)  # a name for each item a test looks at → its id


def confirm(session: Session, occurrence_id: int, when: str, **extra: object) -> None:
    steps.confirm(session, occurrence_id=occurrence_id, note="", evidence=[], at=local(when), client="test", **extra)  # type: ignore[arg-type]


def build_ledger(session: Session, ctx: Context) -> Ledger:
    """November 2026, unit by unit (the expected numbers are in tests/test_scores.py)."""
    ledger = Ledger(ctx.program)
    steps.plan(session, ctx, start=date(2026, 11, 1), end=date(2026, 11, 30), at=local("2026-10-20T08:00"))
    steps.plan(
        session, ctx, start=date(2026, 12, 1), end=date(2026, 12, 31), at=local("2026-10-20T08:00"), only={"goal"}
    )
    week = {(unit, period): item(session, "weekly", unit, period).id or 0 for unit in _WEEKLY for period in WEEKS}

    def on_time(unit: str, period: str) -> None:
        confirm(session, week[unit, period], f"2026-11-{WEEKS[period]:02d}T10:00")

    for unit in ("m1", "s3", "depot"):
        for period in WEEKS:
            on_time(unit, period)
    for unit, late_day in (("m2", "2026-11-23T10:00"), ("m4", "2026-11-24T10:00")):
        for period in ("2026-W45", "2026-W46", "2026-W48"):
            on_time(unit, period)
        confirm(session, week[unit, "2026-W47"], late_day)  # 逾期完成
    on_time("m3", "2026-W45")
    on_time("m3", "2026-W46")
    confirm(session, week["m3", "2026-W47"], "2026-12-08T10:00")  # after the cut-off: overdue as of the cut-off
    ledger.ids["m3-after-cutoff"] = week["m3", "2026-W47"]
    _street_one(session, ctx, week, ledger)
    _street_two(session, week, ledger)
    _street_three(session, ctx, ledger)
    for period in WEEKS:  # s4 never reports; s5's weeks are all waived
        actions.waive(
            session,
            occurrence_id=week["s5", period],
            reason="道路封闭施工",
            actor="user:boss",
            at=local("2026-11-03T09:00"),
        )
    _escalate_monthly(session, ctx, ledger)
    _supervision(session, ledger)
    return ledger


_WEEKLY = ("m1", "m2", "m3", "m4", "s1", "s2", "s3", "s4", "s5", "depot")


def _street_one(session: Session, ctx: Context, week: dict[tuple[str, str], int], ledger: Ledger) -> None:
    """s1: W45 挂账, W46 延期 twice then done on time, W47 免除, W48 on time."""
    actions.park(
        session,
        occurrence_id=week["s1", "2026-W45"],
        review_on=date(2026, 12, 15),
        reason="待市里协调",
        actor="user:boss",
        at=local("2026-11-05T09:00"),
        zone=ctx.zone,
    )
    w46 = week["s1", "2026-W46"]
    for moved_at, due in (("2026-11-12T09:00", "2026-11-18T17:00"), ("2026-11-17T09:00", "2026-11-19T17:00")):
        actions.extend(session, occurrence_id=w46, due=local(due), reason="雨天", actor="user:boss", at=local(moved_at))
    confirm(session, w46, "2026-11-19T10:00")
    actions.waive(
        session, occurrence_id=week["s1", "2026-W47"], reason="不适用", actor="user:boss", at=local("2026-11-18T09:00")
    )
    confirm(session, week["s1", "2026-W48"], "2026-11-27T10:00")
    ledger.ids.update({"s1-parked": week["s1", "2026-W45"], "s1-extended": w46, "s1-waived": week["s1", "2026-W47"]})


def _street_two(session: Session, week: dict[tuple[str, str], int], ledger: Ledger) -> None:
    """s2: W45 done on time, fails its 核查, done again late; W46–W48 on time; the monthly item done after 交办."""
    w45 = week["s2", "2026-W45"]
    confirm(session, w45, "2026-11-06T10:00")
    first = session.execute(select(Confirmation).where(col(Confirmation.occurrence_id) == w45)).scalar_one()
    actions.verify(
        session,
        occurrence_id=w45,
        confirmation_id=first.id or 0,
        passed=False,
        note="现场仍有垃圾",
        actor="user:boss",
        at=local("2026-11-09T10:00"),
    )
    confirm(session, w45, "2026-11-10T10:00", form_id="redo")
    for period in ("2026-W46", "2026-W47", "2026-W48"):
        confirm(session, week["s2", period], f"2026-11-{WEEKS[period]:02d}T10:00")
    ledger.ids["s2-rework"] = w45


def _street_three(session: Session, ctx: Context, ledger: Ledger) -> None:
    """s3: a finding on 2 November, due 4 November 17:00, done that morning; its 复检 fails on 10 November (返工,
    and the ladder's 交办 at once), done again on 11 November (逾期完成)."""
    campaign = inspections.start_campaign(
        session,
        ctx,
        duty_id="safety",
        name="十一月安全检查",
        on=date(2026, 11, 2),
        actor="user:boss",
        at=local("2026-11-02T09:00"),
    )
    finding = inspections.add_finding(
        session,
        ctx,
        campaign_id=campaign.id or 0,
        unit_id="s3",
        site="三号小区",
        problem="消防通道堵塞",
        responsible=inspections.Responsible(general="张三"),
        actor="user:boss",
        at=local("2026-11-02T09:00"),
    )
    rectify = finding.occurrence_id or 0
    confirm(session, rectify, "2026-11-04T10:00")
    inspections.reinspect(
        session,
        ctx,
        finding_id=finding.id or 0,
        passed=False,
        note="通道仍被占用",
        actor="user:boss",
        at=local("2026-11-10T10:00"),
    )
    confirm(session, rectify, "2026-11-11T10:00", form_id="redo")
    ledger.ids["s3-rectify"] = rectify


def _escalate_monthly(session: Session, ctx: Context, ledger: Ledger) -> None:
    """The monthly items fall due on 2 November 17:00 with no grace: 交办 then, 督办 on the 3rd, 约谈 on the 4th.
    s1 says 收到 to its 交办 two hours later and never reports; s2 says 收到 four hours later and reports on the 3rd."""
    s1, s2 = item(session, "monthly", "s1", PERIOD).id or 0, item(session, "monthly", "s2", PERIOD).id or 0
    steps.escalate(session, ctx, at=local("2026-11-02T17:00"))
    ladder.acknowledge(session, occurrence_id=s1, actor="unit:s1", at=local("2026-11-02T19:00"))
    ladder.acknowledge(session, occurrence_id=s2, actor="unit:s2", at=local("2026-11-02T21:00"))
    confirm(session, s2, "2026-11-03T10:00")
    steps.escalate(session, ctx, at=local("2026-11-03T17:00"))
    steps.escalate(session, ctx, at=local("2026-11-04T17:00"))
    ledger.ids.update({"s1-monthly": s1, "s2-monthly": s2})


def _supervision(session: Session, ledger: Ledger) -> None:
    """msb: two of the three checks the quota asks for, each rating markets; the yearly target's reports."""
    quota = item(session, "spot-checks", "msb", PERIOD).id or 0
    results = {
        "2026-11-10T10:00": {"m1": True, "m2": True, "m4": True},
        "2026-11-20T10:00": {"m1": True, "m2": False, "m3": False, "m4": False},
    }
    for number, (when, verdicts) in enumerate(results.items(), start=1):
        confirm(session, quota, when, form_id=f"check-{number}")
        report = session.execute(
            select(Confirmation).where(
                col(Confirmation.occurrence_id) == quota, col(Confirmation.form_id) == f"check-{number}"
            )
        ).scalar_one()
        for subject, passed in verdicts.items():
            session.add(
                CheckResult(
                    occurrence_id=quota,
                    confirmation_id=report.id or 0,
                    subject_id=subject,
                    passed=passed,
                    problem="" if passed else "地面有积水",
                    at=local(when),
                )
            )
    session.commit()
    goal = item(session, "goal", "msb", "2026").id or 0
    for when, amount in (("2026-10-15T10:00", 55.0), ("2026-11-20T11:00", 44.0), ("2026-12-08T10:00", 30.0)):
        confirm(session, goal, when, amount=amount, form_id=when)
    ledger.ids.update({"msb-quota": quota, "msb-goal": goal})
