"""Issue 18, defects 4 and 5: escalation notices are grouped, one message per recipient per pass, and a copied
office gets a 抄送 summary with no action link.

February's weekly market spot checks (four weeks, five district inspectors), none of them recorded: on Monday
2 March every week's check is overdue at once, so each inspector has four notices in the same tick.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlmodel import Session, col

from flows import ladder, steps
from flows.notice_batches import queue_notices
from flows.steps import Context
from notify.receivers import Inbox
from store.models import Delivery, Escalation
from tests.conftest import local
from tests.test_steps import occurrence

AT = local("2026-03-02T17:00")
SPOT_CHECKS = {"market-spot-check"}


def plan_february(session: Session, ctx: Context) -> None:
    steps.plan(
        session, ctx, start=date(2026, 2, 1), end=date(2026, 2, 28), at=local("2026-01-20T08:00"), only=SPOT_CHECKS
    )


def mails_to(inbox: Inbox, address: str) -> list[str]:
    return [f"{m.subject}\n{m.body}" for m in inbox.mails if m.recipients == [address]]


def test_a_unit_gets_one_message_listing_each_of_its_notices(
    session: Session, ctx: Context, fresh_inbox: Inbox
) -> None:
    plan_february(session, ctx)
    climbed = steps.escalate(session, ctx, at=AT)
    assert climbed == 20  # four weeks × five inspectors, each one level
    steps.dispatch(session, ctx, at=AT)
    (message,) = mails_to(fresh_inbox, "wuxing-msb@demo.huzhou.local")
    assert message.startswith("【升级通知】") and "本次收到 4 份通知" in message
    documents = {e.document for e in session.execute(select(Escalation)).scalars() if e.document}
    listed = [d for d in documents if d in message]
    assert len(listed) == 4  # each notice with its own number
    assert message.count("/c/") == 4  # and its own link
    bots = [p for p in fresh_inbox.posts if "wuxing" in str(p.payload) or "吴兴" in str(p.payload)]
    assert len([p for p in bots if "升级通知" in str(p.payload)]) == 1  # the unit's bot: one message too


def test_the_lead_department_gets_one_copy_without_action_links(
    session: Session, ctx: Context, fresh_inbox: Inbox
) -> None:
    plan_february(session, ctx)
    steps.escalate(session, ctx, at=AT)
    steps.dispatch(session, ctx, at=AT)
    (copy,) = mails_to(fresh_inbox, "city-msb@demo.huzhou.local")
    assert copy.startswith("【抄送】本次发出升级通知 20 份（交办 20 份）") and "仅供知悉" in copy
    assert "/c/" not in copy and "/u/" not in copy and "/desk/items/" in copy


def test_new_notices_and_repeats_of_one_tick_go_out_together(session: Session, ctx: Context) -> None:
    plan_february(session, ctx)
    steps.escalate(session, ctx, at=local("2026-02-09T17:00"))  # week 6's 交办
    later = local("2026-02-11T17:00")  # its first repeat is due (two working days) …
    week7 = occurrence(session, "market-spot-check", "wuxing-msb", "2026-W07")
    week7.due_at, week7.next_escalate_at = local("2026-02-10T17:00"), later  # … as week 7's 交办, moved to match
    session.add(week7)
    session.commit()
    escalated = ladder.escalate(session, ctx, at=later, notify=False)
    repeated = ladder.repeat_notices(session, ctx, at=later, notify=False)
    assert escalated and repeated
    before = session.execute(select(func.count()).select_from(Delivery)).scalar_one()
    queue_notices(session, ctx, at=later)
    to_unit = (
        session.execute(
            select(Delivery).where(col(Delivery.unit_id) == "wuxing-msb", col(Delivery.created_at) == later)
        )
        .scalars()
        .all()
    )
    assert {d.channel for d in to_unit} == {"mailto", "dingtalk"} and len(to_unit) == 2  # one per channel
    assert "第" in to_unit[0].body and "次送达" in to_unit[0].body  # the repeat is in the same message
    assert session.execute(select(func.count()).select_from(Delivery)).scalar_one() > before


def test_notices_numbered_before_a_crash_are_sent_by_the_next_pass(session: Session, ctx: Context) -> None:
    plan_february(session, ctx)
    ladder.escalate(session, ctx, at=AT, notify=False)  # the process dies here: numbered, nothing queued
    assert session.execute(select(func.count()).select_from(Delivery)).scalar_one() == 0
    queued = queue_notices(session, ctx, at=AT)
    assert queued > 0 and queue_notices(session, ctx, at=AT) == 0  # each notice is queued once
    waiting = select(func.count()).where(col(Escalation.notified_at).is_(None))
    assert session.execute(waiting).scalar_one() == 0


def test_an_approved_yuetan_reaches_the_unit_with_the_next_tick(
    session: Session, ctx: Context, fresh_inbox: Inbox
) -> None:
    plan_february(session, ctx)
    for moment in ("2026-02-09T17:00", "2026-02-14T17:00", "2026-02-26T17:00"):
        steps.escalate(session, ctx, at=local(moment))
    waiting = [e for e, o in ladder.pending(session) if o.unit_id == "wuxing-msb"]
    approved = ladder.approve(session, ctx, escalation_id=waiting[0].id or 0, actor="user:boss", at=AT)
    steps.tick(session, ctx, at=AT)  # with that tick's other notices for the unit, in one message
    to_unit = [
        d
        for d in session.execute(select(Delivery).where(col(Delivery.unit_id) == "wuxing-msb")).scalars()
        if d.created_at == AT and not d.stage.startswith("remind")
    ]
    assert len(to_unit) == 2 and all(approved.document in d.body for d in to_unit)  # its mailbox and its bot


def test_a_listed_notice_reads_as_a_block(session: Session, ctx: Context, fresh_inbox: Inbox) -> None:
    plan_february(session, ctx)
    steps.escalate(session, ctx, at=AT)
    steps.dispatch(session, ctx, at=AT)
    (message,) = mails_to(fresh_inbox, "wuxing-msb@demo.huzhou.local")
    lines = message.splitlines()
    deadline = next(n for n, line in enumerate(lines) if "整改期限" in line)
    assert lines[deadline].startswith("   整改期限：") and lines[deadline - 1].startswith("   原截止：")
