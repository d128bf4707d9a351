"""Issue 18, defects 1–3: a 约谈 awaiting approval is its own state, is settled by every action that makes it moot,
cannot be bypassed below the approver's authority, and a notice whose facts contradict each other is never numbered.

The item is the W06 market spot check of wuxing-msb (tests/test_ladder.py tells its calendar): 交办 on 9 Feb,
督办 on 14 Feb, and the 约谈 waits for approval from 26 Feb 17:00.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlmodel import Session, col

from flows import actions, ladder, steps
from flows.actions import ActionError
from flows.ladder import LadderError
from flows.steps import Context
from store.models import AuditEvent, DocumentCounter, Occurrence
from tests.conftest import local
from tests.desk_support import log_in
from tests.test_ladder import climb_to_yuetan, escalations, fresh
from tests.web_support import Clock

AT = local("2026-02-27T10:00")  # the morning after the 约谈 began to wait


def talks_numbered(session: Session) -> int:
    query = select(func.coalesce(func.max(DocumentCounter.last), 0)).where(col(DocumentCounter.prefix) == "湖城管谈")
    return int(session.execute(query).scalar_one())


def withdrawn(session: Session, item: Occurrence) -> list[dict[str, object]]:
    query = select(AuditEvent.detail).where(  # type: ignore[call-overload]
        col(AuditEvent.occurrence_id) == item.id, col(AuditEvent.action) == "escalation_withdrawn"
    )
    return list(session.execute(query).scalars())


def pending_of(session: Session, item: Occurrence) -> list[int]:
    return [e.id or 0 for e, o in ladder.pending(session) if o.id == item.id]


def _extend(session: Session, ctx: Context, item_id: int) -> None:
    actions.extend(session, occurrence_id=item_id, due=local("2026-03-31T17:00"), reason="汛期", actor="u", at=AT)


def _park(session: Session, ctx: Context, item_id: int) -> None:
    actions.park(
        session, occurrence_id=item_id, review_on=date(2026, 4, 1), reason="拆迁", actor="u", at=AT, zone=ctx.zone
    )


def _talk(session: Session, ctx: Context, item_id: int) -> None:
    actions.record_talk(
        session, occurrence_id=item_id, held_on=date(2026, 2, 27), attendees="张三", minutes="已约谈", actor="u", at=AT
    )


def _reopen(session: Session, ctx: Context, item_id: int) -> None:
    steps.confirm(session, occurrence_id=item_id, note="已整改", evidence=[], at=AT, client="test")
    actions.reopen(session, occurrence_id=item_id, reason="照片不符", actor="u", at=AT)


def _waive(session: Session, ctx: Context, item_id: int) -> None:
    actions.waive(session, occurrence_id=item_id, reason="市场关闭", actor="u", at=AT)


@pytest.mark.parametrize("action", [_extend, _park, _talk, _reopen, _waive], ids=lambda f: f.__name__.strip("_"))
def test_every_action_that_changes_the_item_withdraws_its_pending_yuetan(
    session: Session, ctx: Context, item: Occurrence, action: Callable[[Session, Context, int], None]
) -> None:
    climb_to_yuetan(session, ctx)
    (waiting,) = pending_of(session, item)
    action(session, ctx, item.id or 0)
    assert pending_of(session, item) == []
    assert [e.level for e in escalations(session, item)] == [1, 2]  # the pending row is gone, history stays
    (event,) = withdrawn(session, item)
    assert event["level"] == 3 and event["reason"]
    with pytest.raises(LadderError):  # an old approval page cannot bring it back
        ladder.approve(session, ctx, escalation_id=waiting, actor="user:boss", at=AT)
    assert talks_numbered(session) == 0


def test_approving_a_yuetan_whose_item_is_no_longer_overdue_is_refused_before_a_number_is_taken(
    session: Session, ctx: Context, item: Occurrence
) -> None:
    """The due date moved by other means (a re-dating, a direct fix) while the approval waited."""
    climb_to_yuetan(session, ctx)
    (waiting,) = pending_of(session, item)
    session.execute(
        Occurrence.__table__.update()  # type: ignore[attr-defined]
        .where(Occurrence.__table__.c.id == item.id)  # type: ignore[attr-defined]
        .values(due_at=local("2026-12-31T17:00"))
    )
    session.commit()
    with pytest.raises(LadderError, match="尚未逾期"):
        ladder.approve(session, ctx, escalation_id=waiting, actor="user:boss", at=AT)
    assert talks_numbered(session) == 0 and pending_of(session, item) == []
    assert fresh(session, item).level == 2


def test_a_pending_yuetan_leaves_the_unit_on_its_duban(session: Session, ctx: Context, item: Occurrence) -> None:
    climb_to_yuetan(session, ctx)
    assert fresh(session, item).level == 2  # the desk and the unit page show 督办, with its deadline
    assert ladder.has_pending(session, item.id or 0) == "约谈"
    assert ladder.acknowledge(session, occurrence_id=item.id or 0, actor="unit:wuxing-msb", at=AT)  # 收到 still works


def test_a_district_cannot_act_on_an_item_waiting_for_the_citys_approval(
    session: Session, ctx: Context, item: Occurrence
) -> None:
    climb_to_yuetan(session, ctx)
    with pytest.raises(ActionError, match="约谈正待市级审批"):
        actions.waive(session, occurrence_id=item.id or 0, reason="市场关闭", actor="district", at=AT, role="district")
    session.rollback()
    assert fresh(session, item).waived_at is None and len(pending_of(session, item)) == 1
    actions.waive(session, occurrence_id=item.id or 0, reason="市场关闭", actor="city", at=AT, role="city")
    assert fresh(session, item).waived_at is not None and pending_of(session, item) == []


def test_the_desk_shows_the_pending_level_beside_the_current_one_and_refuses_a_districts_waiver(
    session: Session, ctx: Context, item: Occurrence, client: TestClient, now: Clock
) -> None:
    climb_to_yuetan(session, ctx)
    now.at = AT
    csrf = log_in(client, session, "wuxing", district="wuxing")
    page = client.get(f"/desk/items/{item.id}")
    assert '<span class="level" id="level">督办</span>' in page.text and "约谈待审批" in page.text
    refused = client.post(f"/desk/items/{item.id}/waive", data={"reason": "市场关闭", "csrf": csrf})
    assert refused.status_code == 400 and "约谈正待市级审批，区县账号不能免除" in refused.text
    assert fresh(session, item).waived_at is None and len(pending_of(session, item)) == 1


def test_a_numbered_notice_prints_as_a_document(
    session: Session, ctx: Context, item: Occurrence, client: TestClient, now: Clock
) -> None:
    """Issue 18: the notice as the document it is (office header, number, text), for printing or saving as PDF."""
    steps.escalate(session, ctx, at=local("2026-02-09T17:00"))
    now.at = AT
    log_in(client, session, "boss")
    assert f'href="/desk/items/{item.id}/notices/1"' in client.get(f"/desk/items/{item.id}").text
    notice = client.get(f"/desk/items/{item.id}/notices/1")
    assert notice.status_code == 200 and '<h1 class="office">湖州市城市管理委员会办公室' in notice.text
    assert '<div class="document" id="document">湖城管交〔2026〕5号</div>' in notice.text
    assert "2026年2月14日（周六）17:00 前完成整改" in notice.text and "window.print()" in notice.text
    assert client.get(f"/desk/items/{item.id}/notices/2").status_code == 404  # no 督办 issued yet


def test_a_district_cannot_print_another_districts_notice(
    session: Session, ctx: Context, item: Occurrence, client: TestClient, now: Clock
) -> None:
    steps.escalate(session, ctx, at=local("2026-02-09T17:00"))
    now.at = AT
    log_in(client, session, "anji", district="anji")
    assert client.get(f"/desk/items/{item.id}/notices/1").status_code == 404


def test_several_levels_are_approved_at_once_each_with_its_own_number(
    session: Session, ctx: Context, client: TestClient, now: Clock
) -> None:
    steps.plan(session, ctx, start=date(2026, 2, 1), end=date(2026, 2, 8), at=local("2026-01-20T08:00"))
    climb_to_yuetan(session, ctx)  # every week-6 item waits for its 约谈
    waiting = [e.id for e, _ in ladder.pending(session)]
    assert len(waiting) >= 5
    now.at = AT
    csrf = log_in(client, session, "boss")
    page = client.get("/desk/approvals").text
    assert 'form="bulk-approvals"' in page
    form = {"csrf": csrf, "decision": "approve", "ids": [str(i) for i in waiting[:3]]}
    answer = client.post("/desk/approvals/bulk", data=form)
    assert answer.status_code == 200 and "已同意 3 项" in answer.text
    assert all(f"湖城管谈〔2026〕{n}号" in answer.text for n in (1, 2, 3)) and talks_numbered(session) == 3
    assert len(ladder.pending(session)) == len(waiting) - 3
    refused = client.post("/desk/approvals/bulk", data={"csrf": csrf, "decision": "reject", "ids": waiting[3:]})
    assert refused.status_code == 400 and "请填写不予升级的理由" in refused.text
    assert len(ladder.pending(session)) == len(waiting) - 3
