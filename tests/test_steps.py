"""The steps as plain functions of (session, at), with time given, not read: no Prefect, no sleeping."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

from sqlalchemy import select
from sqlmodel import Session, col

from flows import steps
from flows.steps import Context
from notify.receivers import Inbox
from store.models import STATUSES, AuditEvent, Delivery, Escalation, Occurrence
from store.queries import count_rows, find_occurrences
from tests.conftest import local

CORE = {"clean-home-street", "market-cleanup", "market-spot-check", "greening-monthly"}


def plan_february(session: Session, ctx: Context, only: set[str] = CORE) -> int:
    return steps.plan(
        session, ctx, start=date(2026, 2, 1), end=date(2026, 2, 28), at=local("2026-01-20T08:00"), only=only
    )


def occurrence(session: Session, duty: str, unit: str, period: str) -> Occurrence:
    query = select(Occurrence).where(
        col(Occurrence.duty_id) == duty,
        col(Occurrence.unit_id) == unit,
        col(Occurrence.period) == period,
    )
    found = session.execute(query.execution_options(populate_existing=True)).scalar_one()
    return found


def test_plan_writes_each_duty_for_each_unit_once(session: Session, ctx: Context) -> None:
    assert plan_february(session, ctx) == 63
    per_duty = Counter(o.duty_id for o in session.execute(select(Occurrence)).scalars())
    # 15 streets; 7 streets host a market; 6 greening units (the city's and 5 districts') + 15 streets; 5 inspectors x
    # weeks W06 to W09 (W08 is all Spring Festival holiday: a quota's empty week falls due on the working day before
    # it, Saturday 14 Feb).
    assert per_duty == {"clean-home-street": 15, "market-cleanup": 7, "greening-monthly": 21, "market-spot-check": 20}
    assert plan_february(session, ctx) == 0
    assert count_rows(session, Occurrence) == 63


def test_plan_records_month_tasks_and_aware_due_times(session: Session, ctx: Context) -> None:
    plan_february(session, ctx)
    greening = occurrence(session, "greening-monthly", "wuxing-greening", "2026-02")
    assert greening.detail == "修剪收尾；春季补植准备；排查树木倒伏隐患"
    assert greening.due_at == local("2026-02-28T17:00")  # a make-up working Saturday
    assert greening.due_at.tzinfo is not None
    assert greening.title == "园林绿化月度养护清单（2026年2月）"


def test_remind_queues_only_the_latest_stage_and_only_once(session: Session, ctx: Context) -> None:
    plan_february(session, ctx)
    # greening-monthly reminders: 25, 3 and 0 days before 28 Feb → 3 Feb, 25 Feb, 28 Feb at 09:00.
    at = local("2026-02-25T09:30")
    steps.remind(session, ctx, at=at)
    greening = occurrence(session, "greening-monthly", "anji-greening", "2026-02")
    stages = {
        d.stage for d in session.execute(select(Delivery).where(col(Delivery.occurrence_id) == greening.id)).scalars()
    }
    assert stages == {"remind:3d@20260228"}  # the 25-day reminder is stale by now: not sent late
    assert greening.next_remind_at == local("2026-02-28T09:00")
    before = count_rows(session, Delivery)
    assert steps.remind(session, ctx, at=at) == 0
    assert count_rows(session, Delivery) == before
    steps.remind(session, ctx, at=local("2026-02-28T09:00"))
    stages = {
        d.stage for d in session.execute(select(Delivery).where(col(Delivery.occurrence_id) == greening.id)).scalars()
    }
    assert stages == {"remind:3d@20260228", "remind:0d@20260228"}


def test_remind_goes_to_every_contact_of_the_unit(session: Session, ctx: Context) -> None:
    plan_february(session, ctx)
    steps.remind(session, ctx, at=local("2026-02-25T09:30"))
    street = occurrence(session, "greening-monthly", "wuxing-feiying", "2026-02")
    channels = sorted(
        d.channel for d in session.execute(select(Delivery).where(col(Delivery.occurrence_id) == street.id)).scalars()
    )
    assert channels == ["dingtalk", "mailto", "mailto"]  # the group bot, the duty mailbox, the street leader


def test_ladder_climbs_one_level_per_working_day_timeout(session: Session, ctx: Context) -> None:
    plan_february(session, ctx)
    item = occurrence(session, "market-spot-check", "wuxing-msb", "2026-W06")
    assert item.due_at == local("2026-02-06T17:00")
    # Grace: one working day → Monday 9 Feb 17:00.
    assert steps.escalate(session, ctx, at=local("2026-02-09T16:59")) == 0
    assert steps.escalate(session, ctx, at=local("2026-02-09T17:00")) == 5  # the five district inspectors
    item = occurrence(session, "market-spot-check", "wuxing-msb", "2026-W06")
    assert (item.level, item.next_escalate_at) == (1, local("2026-02-14T17:00"))  # 5 working days, Sat 14th is one
    assert steps.escalate(session, ctx, at=local("2026-02-14T16:00")) == 0
    steps.escalate(session, ctx, at=local("2026-02-14T17:00"))
    item = occurrence(session, "market-spot-check", "wuxing-msb", "2026-W06")
    # 督办: 3 working days after the 14th; the Spring Festival holiday runs 15–23 Feb.
    assert (item.level, item.next_escalate_at) == (2, local("2026-02-26T17:00"))
    steps.escalate(session, ctx, at=local("2026-02-26T17:00"))
    item = occurrence(session, "market-spot-check", "wuxing-msb", "2026-W06")
    assert (item.level, item.next_escalate_at) == (2, None)  # the 约谈 awaits approval; the clock has stopped
    steps.escalate(session, ctx, at=local("2026-06-01T00:00"))
    levels = [
        e.level for e in session.execute(select(Escalation).where(col(Escalation.occurrence_id) == item.id)).scalars()
    ]
    assert sorted(levels) == [1, 2, 3]


def test_each_level_notice_goes_to_its_audience_once(session: Session, ctx: Context) -> None:
    plan_february(session, ctx)
    at = local("2026-02-09T17:00")
    steps.escalate(session, ctx, at=at)
    assert steps.escalate(session, ctx, at=at) == 0
    everything = list(session.execute(select(Delivery)).scalars())
    notices = [d for d in everything if d.unit_id == "wuxing-msb"]
    # 交办 audience: the unit (mail + bot) gets its notice; the lead department (city market supervision) one 抄送.
    assert sorted(d.channel for d in notices) == ["dingtalk", "mailto"]
    assert all(d.stage == "level:1" and d.title.startswith("【交办通知】") for d in notices)
    assert "附件1 第4项 举措4" in notices[0].body and "2026年2月14日（周六）17:00" in notices[0].body
    (copy,) = [d for d in everything if d.unit_id == "city-msb"]
    assert copy.stage.startswith("cc:") and copy.title.startswith("【抄送】")


def test_confirmation_stops_the_ladder_and_a_late_one_is_late_done(session: Session, ctx: Context) -> None:
    plan_february(session, ctx)
    steps.escalate(session, ctx, at=local("2026-02-09T17:00"))
    item = occurrence(session, "market-spot-check", "wuxing-msb", "2026-W06")
    at = local("2026-02-10T10:00")
    assert (
        steps.confirm(session, occurrence_id=item.id or 0, note="已抽查", evidence=[], at=at, client="t") == "confirmed"
    )
    assert steps.confirm(session, occurrence_id=item.id or 0, note="again", evidence=[], at=at, client="t") == "already"
    item = occurrence(session, "market-spot-check", "wuxing-msb", "2026-W06")
    assert item.status_at(at) == "late_done" and item.level == 1
    assert item.next_escalate_at is None and item.next_remind_at is None
    steps.escalate(session, ctx, at=local("2026-03-31T17:00"))
    assert occurrence(session, "market-spot-check", "wuxing-msb", "2026-W06").level == 1
    actions = [
        e.action for e in session.execute(select(AuditEvent).where(col(AuditEvent.occurrence_id) == item.id)).scalars()
    ]
    assert actions == ["escalated", "notice_queued", "confirmed"]


def test_derived_status_and_its_sql_twin_agree(session: Session, ctx: Context) -> None:
    plan_february(session, ctx)
    steps.escalate(session, ctx, at=local("2026-02-09T17:00"))
    first = occurrence(session, "market-spot-check", "anji-msb", "2026-W06")
    steps.confirm(session, occurrence_id=first.id or 0, note="", evidence=[], at=local("2026-02-05T12:00"), client="")
    late = occurrence(session, "market-spot-check", "anji-msb", "2026-W07")
    steps.confirm(session, occurrence_id=late.id or 0, note="", evidence=[], at=local("2026-02-20T12:00"), client="")
    seen: set[str] = set()
    for moment in ("2026-01-25T00:00", "2026-02-05T10:00", "2026-02-13T09:30", "2026-02-25T12:00", "2026-03-05T00:00"):
        at = local(moment)
        everything = {o.id: o.status_at(at) for o, _, _ in find_occurrences(session, at=at)}
        for status in STATUSES:
            matched = {o.id for o, _, _ in find_occurrences(session, at=at, status=status)}
            assert matched == {i for i, s in everything.items() if s == status}, (moment, status)
        seen |= set(everything.values())
    assert {"scheduled", "due", "done", "late_done", "overdue"} <= seen


def test_dispatch_sends_each_queued_message_to_a_real_receiver(
    session: Session, ctx: Context, fresh_inbox: Inbox
) -> None:
    steps.plan(session, ctx, start=date(2026, 2, 1), end=date(2026, 2, 8), at=local("2026-01-20T08:00"), only=CORE)
    queued = steps.remind(session, ctx, at=local("2026-02-02T09:30"))
    assert queued == 5  # the W06 spot checks; 4-day reminder on Monday 2 Feb
    report = steps.dispatch(session, ctx, at=local("2026-02-02T09:30"))
    assert (report.sent, report.failed, report.retry, report.unknown) == (10, 0, 0, 0)
    assert len(fresh_inbox.mails) == 5 and len(fresh_inbox.posts) == 5
    assert steps.dispatch(session, ctx, at=local("2026-02-02T09:31")).sent == 0
    mail = next(m for m in fresh_inbox.mails if m.recipients == ["wuxing-msb@demo.huzhou.local"])
    assert mail.subject.startswith("【工作提醒】市场清扫保洁质量抽查")
    assert "附件1 第6项 举措2" in mail.body and "/c/" in mail.body
    statuses = Counter(d.status for d in session.execute(select(Delivery)).scalars())
    assert statuses == {"sent": 10}


def test_tick_plans_the_horizon_and_flags_an_unpublished_year(session: Session, ctx: Context) -> None:
    report = steps.tick(session, ctx, at=local("2026-12-20T08:00"))
    assert report.planned > 0
    assert any("2027年" in flag for flag in report.flags)
    january = occurrence(session, "greening-monthly", "wuxing-greening", "2027-01")
    assert "调休安排未发布" in january.flags
    assert steps.tick(session, ctx, at=local("2026-12-20T08:05")).planned == 0
    assert report.planned == count_rows(session, Occurrence)
    assert (local("2026-12-20T08:00") + timedelta(days=62)).date() >= date(2027, 2, 19)


def test_several_reminders_for_a_unit_at_once_become_one_digest(
    session: Session, ctx: Context, fresh_inbox: Inbox
) -> None:
    import re

    from web.tokens import read_token

    plan_february(session, ctx)
    at = local("2026-02-25T09:30")  # three days before the 28th: cleanup, market cleanup and greening together
    steps.remind(session, ctx, at=at)
    steps.dispatch(session, ctx, at=at)
    (mail,) = [m for m in fresh_inbox.mails if m.recipients == ["wuxing-feiying@demo.huzhou.local"]]
    assert mail.subject == "【工作提醒】飞英街道有 3 项任务即将到期"
    links = re.findall(r"/c/([A-Za-z0-9_.\-]+)", mail.body)
    claimed = {read_token(ctx.secret, token, at=at).occurrence_id for token in links}
    expected = {
        occurrence(session, duty, "wuxing-feiying", "2026-02").id
        for duty in ("clean-home-street", "market-cleanup", "greening-monthly")
    }
    assert claimed == expected and len(links) == 3
    for fragment in ("附件1 第1项 举措5", "附件1 第6项 举措4", "三(二)3", "本期任务：修剪收尾", "【示例月历】"):
        assert fragment in mail.body
    assert "湖城管委〔2022〕2号 附件1 第1项 举措5" in mail.body  # the programme's document, cited in a digest too
    assert mail.body.rstrip().endswith("湖州市城市管理委员会办公室（市城管办）")
    # A unit with one reminder still gets a plain reminder.
    single = [m for m in fresh_inbox.mails if m.recipients == ["wuxing-greening@demo.huzhou.local"]]
    assert len(single) == 1 and single[0].subject.startswith("【工作提醒】园林绿化月度养护清单")
