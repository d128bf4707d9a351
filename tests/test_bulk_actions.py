"""Issue 18, the manager's working day: one action with one reason on a selection of items, each item audited and
its unit told, refusals listed by item, nothing outside the manager's scope touched."""

from __future__ import annotations

from datetime import date

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session, col

from flows import steps
from flows.steps import Context
from store.models import AuditEvent, Delivery, Occurrence
from tests.conftest import local
from tests.desk_support import log_in
from tests.web_support import Clock

AT = local("2026-02-10T09:00")  # week 6's spot checks are overdue


def spot_checks(session: Session) -> list[Occurrence]:
    session.expire_all()
    query = select(Occurrence).where(col(Occurrence.period) == "2026-W06").order_by(col(Occurrence.id))
    return list(session.execute(query).scalars())


def test_a_selection_is_waived_with_one_reason_each_audited_and_told(
    session: Session, ctx: Context, client: TestClient, now: Clock
) -> None:
    steps.plan(session, ctx, start=date(2026, 2, 1), end=date(2026, 2, 8), at=local("2026-01-20T08:00"))
    now.at = AT
    csrf = log_in(client, session, "boss")
    listing = client.get("/desk/items?status=overdue").text
    assert 'name="ids"' in listing and 'action="/desk/items/bulk"' in listing
    chosen = [o.id for o in spot_checks(session)][:3]
    done = client.post(
        "/desk/items/bulk",
        data={"csrf": csrf, "action": "waive", "reason": "春节前集中整治，已另行检查", "ids": [str(i) for i in chosen]},
    )
    assert done.status_code == 200 and "已对 3 项免除" in done.text and "每个责任单位收到一条汇总通知" in done.text
    waived = [o for o in spot_checks(session) if o.id in chosen]
    assert all(o.waived_at == AT for o in waived)
    events = (
        session.execute(
            select(AuditEvent).where(col(AuditEvent.action) == "waived", col(AuditEvent.occurrence_id).in_(chosen))
        )
        .scalars()
        .all()
    )
    assert len(events) == 3 and {e.detail["reason"] for e in events} == {"春节前集中整治，已另行检查"}
    told = session.execute(select(Delivery).where(col(Delivery.stage).startswith("decision:waive"))).scalars().all()
    units = {o.unit_id for o in waived}
    assert {d.unit_id for d in told} == units  # every unit told …
    assert len({(d.unit_id, d.occurrence_id) for d in told}) == len(units)  # … in one message, whatever its count


def test_refusals_are_listed_by_item_and_a_district_touches_only_its_own(
    session: Session, ctx: Context, client: TestClient, now: Clock
) -> None:
    steps.plan(session, ctx, start=date(2026, 2, 1), end=date(2026, 2, 8), at=local("2026-01-20T08:00"))
    now.at = AT
    csrf = log_in(client, session, "wuxing", district="wuxing")
    items = spot_checks(session)
    own = next(o for o in items if o.unit_id == "wuxing-msb")
    other = next(o for o in items if o.unit_id == "anji-msb")
    own_due, other_due = own.due_at, other.due_at
    answer = client.post(
        "/desk/items/bulk",
        data={"csrf": csrf, "action": "extend", "due": "2026-02-13", "reason": "节前延期", "ids": [own.id, other.id]},
    )
    assert answer.status_code == 200 and "已对 1 项延期" in answer.text and f"{other.id}：事项不存在" in answer.text
    after = {o.id: o for o in spot_checks(session)}
    assert after[own.id or 0].due_at > own_due and after[other.id or 0].due_at == other_due
    nothing = client.post("/desk/items/bulk", data={"csrf": csrf, "action": "waive", "reason": "r"})
    assert nothing.status_code == 400 and "请勾选" in nothing.text


def test_one_unit_with_several_selected_items_gets_one_message_listing_them(
    session: Session, ctx: Context, client: TestClient, now: Clock
) -> None:
    steps.plan(session, ctx, start=date(2026, 2, 1), end=date(2026, 2, 28), at=local("2026-01-20T08:00"))
    now.at = AT
    csrf = log_in(client, session, "boss")
    mine = (
        session.execute(
            select(Occurrence).where(
                col(Occurrence.unit_id) == "wuxing-msb", col(Occurrence.duty_id) == "market-spot-check"
            )
        )
        .scalars()
        .all()
    )
    chosen = [o.id for o in mine]
    assert len(chosen) >= 3
    form = {"csrf": csrf, "action": "extend", "due": "2026-03-06", "reason": "春节后集中补查", "ids": chosen}
    assert client.post("/desk/items/bulk", data=form).status_code == 200
    told = session.execute(select(Delivery).where(col(Delivery.stage).startswith("decision:extend"))).scalars().all()
    assert {d.unit_id for d in told} == {"wuxing-msb"} and len({d.occurrence_id for d in told}) == 1
    body = told[0].body
    assert told[0].title.startswith(f"【事项变更】吴兴区市场监督管理局有 {len(chosen)} 项任务：同意延期")
    assert body.count("截止时间已延至 2026年3月6日") == len(chosen) and body.count("/c/") == len(chosen)
