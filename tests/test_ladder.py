"""The ladder as a state machine: every transition, numbered notices, approval, 收到, and how actions meet it.

The item is the W06 market spot check of wuxing-msb, due Friday 6 Feb 2026 17:00. With the shipped ladder: one
working day's grace (交办 on Monday the 9th), 交办 gives 5 working days (to Saturday the 14th, a make-up working
day), 督办 3 (after the Spring Festival holiday: the 26th), and 约谈 waits for a manager's approval.
"""

from __future__ import annotations

import threading
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session, col

from flows import actions, ladder, steps
from flows.ladder import LadderError
from flows.notice_batches import queue_notices
from flows.steps import Context
from notify.receivers import Inbox
from store import db
from store.models import AuditEvent, Delivery, DocumentCounter, Escalation, Occurrence
from tests.conftest import local
from tests.web_support import Clock, path_of

JIAOBAN, DUBAN, YUETAN = local("2026-02-09T17:00"), local("2026-02-14T17:00"), local("2026-02-26T17:00")


def fresh(session: Session, item: Occurrence) -> Occurrence:
    session.expire_all()
    found = session.get(Occurrence, item.id)
    assert found is not None
    return found


def escalations(session: Session, item: Occurrence) -> list[Escalation]:
    session.expire_all()
    query = select(Escalation).where(col(Escalation.occurrence_id) == item.id).order_by(col(Escalation.level))
    return list(session.execute(query).scalars())


def stages(session: Session, item: Occurrence) -> list[str]:
    query = select(col(Delivery.stage)).where(col(Delivery.occurrence_id) == item.id).order_by(col(Delivery.id))
    return list(dict.fromkeys(session.execute(query).scalars()))


def climb_to_yuetan(session: Session, ctx: Context) -> None:
    for moment in (JIAOBAN, DUBAN, YUETAN):
        steps.escalate(session, ctx, at=moment)


def test_no_escalation_before_the_grace_day_ends(session: Session, ctx: Context, item: Occurrence) -> None:
    steps.escalate(session, ctx, at=local("2026-02-09T16:59"))
    assert fresh(session, item).level == 0 and escalations(session, item) == []


def test_jiaoban_is_numbered_with_a_deadline_and_reaches_the_unit_and_lead(
    session: Session, ctx: Context, item: Occurrence, fresh_inbox: Inbox
) -> None:
    steps.escalate(session, ctx, at=JIAOBAN)
    (first,) = escalations(session, item)
    # Five spot checks climb at the same moment; this one is numbered fifth.
    assert (first.name, first.status, first.document) == ("交办", "issued", "湖城管交〔2026〕5号")
    assert first.deadline_at == local("2026-02-14T17:00") and fresh(session, item).next_escalate_at == first.deadline_at
    steps.dispatch(session, ctx, at=JIAOBAN)
    to_unit = [m for m in fresh_inbox.mails if m.recipients == ["wuxing-msb@demo.huzhou.local"]]
    notice = next(m for m in to_unit if m.subject.startswith("【交办通知】"))
    assert "湖城管交〔2026〕5号" in notice.subject and "湖城管交〔2026〕5号" in notice.body
    assert "2026年2月14日（周六）17:00 前完成整改" in notice.body and "附件1 第4项 举措4" in notice.body
    assert "附件1 第6项 举措2" in notice.body and "/c/" in notice.body and "收到" in notice.body
    # The lead department gets one 抄送 of the five, with no link that would let it confirm for a unit.
    (copy,) = [m for m in fresh_inbox.mails if m.recipients == ["city-msb@demo.huzhou.local"]]
    assert copy.subject.startswith("【抄送】本次发出升级通知 5 份（交办 5 份）") and "仅供知悉" in copy.body
    assert "湖城管交〔2026〕5号" in copy.body and "/c/" not in copy.body and "/u/" not in copy.body
    assert f"/desk/items/{item.id}" in copy.body


def test_the_ladder_climbs_one_level_at_a_time(session: Session, ctx: Context, item: Occurrence) -> None:
    steps.escalate(session, ctx, at=JIAOBAN)
    steps.escalate(session, ctx, at=local("2026-02-14T16:59"))  # the 交办 deadline has not passed
    assert fresh(session, item).level == 1
    steps.escalate(session, ctx, at=DUBAN)
    second = escalations(session, item)[1]
    assert (second.name, second.document, second.deadline_at) == ("督办", "湖城管督〔2026〕5号", YUETAN)
    steps.escalate(session, ctx, at=local("2027-01-01T09:00"))  # long after: still only one level more
    assert [e.level for e in escalations(session, item)] == [1, 2, 3]


def test_yuetan_waits_for_approval_then_gets_its_number_and_deadline(
    session: Session, ctx: Context, item: Occurrence
) -> None:
    climb_to_yuetan(session, ctx)
    third = escalations(session, item)[2]
    assert (third.status, third.document, third.deadline_at) == ("pending", "", None)
    # Pending is its own state: the item stays at 督办, whose notice the unit still acts on.
    assert "level:3" not in stages(session, item) and fresh(session, item).level == 2
    assert [e.id for e, _ in ladder.pending(session)].count(third.id) == 1
    approved = ladder.approve(
        session, ctx, escalation_id=third.id or 0, actor="user:boss", at=local("2026-02-27T10:00")
    )
    assert approved.document == "湖城管谈〔2026〕1号" and approved.approved_by == "user:boss"
    # Five working days from Friday the 27th, counting the make-up working Saturday the 28th.
    assert approved.deadline_at == local("2026-03-05T17:00") and fresh(session, item).level == 3
    queue_notices(session, ctx, at=local("2026-02-27T10:05"))  # the next tick sends it
    assert "level:3" in stages(session, item)
    with pytest.raises(LadderError):
        ladder.approve(session, ctx, escalation_id=third.id or 0, actor="user:boss", at=local("2026-02-27T10:01"))


def test_a_rejected_level_goes_back_one_and_gets_its_time_again(
    session: Session, ctx: Context, item: Occurrence
) -> None:
    climb_to_yuetan(session, ctx)
    third = escalations(session, item)[2]
    with pytest.raises(LadderError):
        ladder.reject(session, ctx, escalation_id=third.id or 0, reason=" ", actor="user:boss", at=YUETAN)
    ladder.reject(session, ctx, escalation_id=third.id or 0, reason="单位已提交整改方案", actor="user:boss", at=YUETAN)
    back = fresh(session, item)
    assert back.level == 2 and back.next_escalate_at == local("2026-03-02T17:00")  # 3 working days again
    assert [e.level for e in escalations(session, item)] == [1, 2]
    steps.escalate(session, ctx, at=local("2026-03-02T17:00"))
    assert escalations(session, item)[2].status == "pending"


def test_unacknowledged_notices_repeat_and_receipt_stops_them_not_the_clock(
    session: Session, ctx: Context, item: Occurrence
) -> None:
    steps.escalate(session, ctx, at=JIAOBAN)
    assert ladder.repeat_notices(session, ctx, at=local("2026-02-11T16:59")) == 0
    ladder.repeat_notices(session, ctx, at=local("2026-02-11T17:00"))  # two working days later
    assert "level:1:repeat:1" in stages(session, item)
    assert ladder.acknowledge(
        session, occurrence_id=item.id or 0, actor="unit:wuxing-msb", at=local("2026-02-12T09:00")
    )
    assert not ladder.acknowledge(
        session, occurrence_id=item.id or 0, actor="unit:wuxing-msb", at=local("2026-02-12T09:01")
    )
    ladder.repeat_notices(session, ctx, at=local("2026-02-13T17:00"))
    assert "level:1:repeat:2" not in stages(session, item)
    assert fresh(session, item).status_at(local("2026-02-12T09:00")) == "overdue"  # 收到 resolves nothing
    steps.escalate(session, ctx, at=DUBAN)
    assert fresh(session, item).level == 2


@pytest.mark.parametrize("level", [1, 2, 3])
def test_a_late_confirmation_at_any_level_ends_the_ladder(
    session: Session, ctx: Context, item: Occurrence, level: int
) -> None:
    for moment in (JIAOBAN, DUBAN, YUETAN)[:level]:
        steps.escalate(session, ctx, at=moment)
    at = local("2026-03-09T10:00")
    steps.confirm(session, occurrence_id=item.id or 0, note="已整改", evidence=[], at=at, client="test")
    done = fresh(session, item)
    reached = min(level, 2)  # the third level, 约谈, waits for approval: the item stays at 督办 meanwhile
    assert done.status_at(at) == "late_done" and done.level == reached and done.next_escalate_at is None
    steps.escalate(session, ctx, at=local("2027-01-01T09:00"))
    ladder.repeat_notices(session, ctx, at=local("2027-01-01T09:00"))
    assert len(escalations(session, item)) == level and not any(":repeat:" in s for s in stages(session, item))


def test_an_extension_during_a_level_keeps_it_and_moves_the_clock(
    session: Session, ctx: Context, item: Occurrence
) -> None:
    steps.escalate(session, ctx, at=JIAOBAN)
    at = local("2026-02-10T09:00")
    actions.extend(session, occurrence_id=item.id or 0, due=local("2026-02-27T17:00"), reason="春节", actor="u", at=at)
    steps.escalate(session, ctx, at=DUBAN)  # the 交办 deadline passes, but the new due date has not come
    assert fresh(session, item).level == 1
    steps.escalate(session, ctx, at=local("2026-02-27T17:00"))
    assert fresh(session, item).level == 2 and escalations(session, item)[1].document.startswith("湖城管督〔2026〕")


def test_parking_stops_the_ladder_and_reopening_resumes_it(session: Session, ctx: Context, item: Occurrence) -> None:
    steps.escalate(session, ctx, at=JIAOBAN)
    at = local("2026-02-10T09:00")
    actions.park(
        session, occurrence_id=item.id or 0, review_on=date(2026, 3, 2), reason="停业", actor="u", at=at, zone=ctx.zone
    )
    steps.escalate(session, ctx, at=local("2026-02-27T17:00"))
    ladder.repeat_notices(session, ctx, at=local("2026-02-27T17:00"))
    assert fresh(session, item).level == 1 and "level:1:repeat:1" not in stages(session, item)
    actions.reopen(session, occurrence_id=item.id or 0, reason="复核", actor="u", at=local("2026-03-02T09:00"))
    steps.escalate(session, ctx, at=local("2026-03-03T09:00"))  # one day to redo the work first
    assert fresh(session, item).level == 2


def test_document_numbers_are_gap_free_per_prefix_and_year(session: Session) -> None:
    taken = [ladder.next_document(session, prefix="湖城管督", year=2026) for _ in range(3)]
    session.commit()
    ladder.next_document(session, prefix="湖城管督", year=2026)
    session.rollback()  # the transaction that took 4 failed: 4 is given back
    assert taken == [1, 2, 3] and ladder.next_document(session, prefix="湖城管督", year=2026) == 4
    assert ladder.next_document(session, prefix="湖城管督", year=2027) == 1
    assert ladder.next_document(session, prefix="湖城管交", year=2026) == 1


def test_two_writers_share_one_gap_free_sequence(store: str) -> None:
    """On PostgreSQL the counter row is locked until commit; SQLite serialises writers. Either way, no gap."""
    got: list[int] = []
    lock = threading.Lock()

    def take(count: int) -> None:
        for _ in range(count):
            with db.session_scope() as session:
                number = ladder.next_document(session, prefix="湖城管督", year=2026)
                session.commit()
            with lock:
                got.append(number)

    with db.session_scope() as session:
        db.create_tables(session.get_bind())  # type: ignore[arg-type]
    workers = [threading.Thread(target=take, args=(40,)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(got) == list(range(1, 81))
    with db.session_scope() as session:
        assert session.get(DocumentCounter, ("湖城管督", 2026)).last == 80  # type: ignore[union-attr]


def test_items_climbing_together_take_consecutive_numbers(session: Session, ctx: Context, item: Occurrence) -> None:
    steps.escalate(session, ctx, at=JIAOBAN)
    documents = sorted(e.document for e in session.execute(select(Escalation)).scalars())
    assert documents == sorted(f"湖城管交〔2026〕{n}号" for n in range(1, len(documents) + 1))
    assert len(documents) == 5


def test_every_ladder_step_is_audited(session: Session, ctx: Context, item: Occurrence) -> None:
    climb_to_yuetan(session, ctx)
    third = escalations(session, item)[2]
    ladder.approve(session, ctx, escalation_id=third.id or 0, actor="user:boss", at=local("2026-02-27T10:00"))
    queue_notices(session, ctx, at=local("2026-02-27T10:05"))
    query = select(col(AuditEvent.action), col(AuditEvent.actor)).where(col(AuditEvent.occurrence_id) == item.id)
    events = list(session.execute(query.order_by(col(AuditEvent.id))).tuples())
    assert events == [
        ("escalated", "system"),
        ("notice_queued", "system"),
        ("escalated", "system"),
        ("notice_queued", "system"),
        ("escalation_pending", "system"),
        ("escalated", "user:boss"),
        ("notice_queued", "system"),
    ]


def test_the_unit_acknowledges_on_its_page_and_a_get_changes_nothing(
    session: Session, ctx: Context, item: Occurrence, client: TestClient, now: Clock
) -> None:
    steps.escalate(session, ctx, at=JIAOBAN)
    now.at = local("2026-02-10T09:00")
    link = path_of(ctx, fresh(session, item), now.at)
    page = client.get(link)
    assert "交办通知 湖城管交〔2026〕5号" in page.text and ">收到</button>" in page.text
    assert escalations(session, item)[0].acknowledged_at is None  # looking is not acknowledging
    client.post(f"{link}/ack")
    again = client.post(f"{link}/ack")
    assert again.status_code == 200 and "已于 2026年2月10日（周二）09:00 确认收到" in again.text
    assert escalations(session, item)[0].acknowledged_at == now.at
    assert fresh(session, item).status_at(now.at) == "overdue"
