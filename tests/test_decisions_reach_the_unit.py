"""Issue 18, defect 8: every manager decision that changes a unit's obligations reaches the unit, with the reason
and, where the unit has something to do, the item's link."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session, col

from flows import steps
from flows.steps import Context
from store.models import Delivery, Occurrence
from tests.conftest import local
from tests.desk_support import log_in
from tests.web_support import Clock

AT = local("2026-02-05T10:00")  # the item is due tomorrow at 17:00


def decisions_to(session: Session, item: Occurrence) -> list[Delivery]:
    query = select(Delivery).where(col(Delivery.occurrence_id) == item.id, col(Delivery.stage).startswith("decision:"))
    return list(session.execute(query).scalars())


@pytest.mark.parametrize(
    ("action", "form", "decided", "has_link"),
    [
        ("extend", {"due": "2026-02-27", "reason": "春节期间市场休市"}, "同意延期", True),
        ("park", {"review_on": "2026-03-31", "reason": "市场拆迁，待复核"}, "挂账", False),
        ("waive", {"reason": "市场已关闭"}, "免除", False),
    ],
)
def test_a_decision_on_an_open_item_reaches_the_unit(
    session: Session,
    ctx: Context,
    item: Occurrence,
    client: TestClient,
    now: Clock,
    action: str,
    form: dict[str, str],
    decided: str,
    has_link: bool,
) -> None:
    now.at = AT
    csrf = log_in(client, session, "boss")
    assert client.post(f"/desk/items/{item.id}/{action}", data=form | {"csrf": csrf}).status_code == 200
    messages = decisions_to(session, item)
    assert {d.unit_id for d in messages} == {"wuxing-msb"} and len(messages) >= 2  # its mailbox and its bot
    body = messages[0].body
    assert messages[0].title.startswith("【事项变更】") and decided in messages[0].title and form["reason"] in body
    assert ("/c/" in body) is has_link
    if action == "extend":
        assert "2026年2月27日" in body


def test_a_failed_check_and_a_rework_reach_the_unit_with_the_link(
    session: Session, ctx: Context, item: Occurrence, client: TestClient, now: Clock
) -> None:
    steps.confirm(session, occurrence_id=item.id or 0, note="已抽查", evidence=[], at=AT, client="test")
    now.at = local("2026-02-05T15:00")
    csrf = log_in(client, session, "boss")
    report = client.get(f"/desk/items/{item.id}")
    confirmation = int(report.text.split('name="confirmation_id" value="', 1)[1].split('"', 1)[0])
    verdict = {"verdict": "fail", "note": "照片不是本周的", "confirmation_id": str(confirmation), "csrf": csrf}
    assert client.post(f"/desk/items/{item.id}/verify", data=verdict).status_code == 200
    (failed, *_) = decisions_to(session, item)
    assert "核查不通过" in failed.title and "照片不是本周的" in failed.body and "/c/" in failed.body
    passed_before = len(decisions_to(session, item))
    session.expire_all()  # the desk changed the item through its own session
    again = steps.confirm(
        session, occurrence_id=item.id or 0, note="重新抽查", evidence=[], at=now.at, client="t", form_id="2"
    )
    assert again == "confirmed", again
    now.at = local("2026-02-05T16:00")
    answer = client.post(f"/desk/items/{item.id}/reopen", data={"reason": "记录不全", "csrf": csrf})
    assert answer.status_code == 200, re.findall(r"class=\"[^\"]*error[^\"]*\"[^>]*>([^<]+)", answer.text)
    reworked = [d for d in decisions_to(session, item) if "返工" in d.title]
    assert reworked and "记录不全" in reworked[0].body and len(decisions_to(session, item)) > passed_before
