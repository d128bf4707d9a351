"""The manager desk and API over HTTP: login, CSRF, scopes, every action with its audit event, and unit links."""

from __future__ import annotations

from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session, col

from flows import steps
from flows.steps import Context
from store.models import AuditEvent, Confirmation, Occurrence, Talk
from tests.conftest import local
from tests.desk_support import PASSWORD, add_manager, api_headers, csrf_of, log_in
from tests.test_steps import CORE
from tests.web_support import Clock, ledger_state, path_of


def actions_of(session: Session, occurrence_id: int) -> list[tuple[str, str]]:
    session.expire_all()
    query = select(AuditEvent).where(col(AuditEvent.occurrence_id) == occurrence_id).order_by(col(AuditEvent.id))
    return [(e.action, e.actor) for e in session.execute(query).scalars()]


def reload(session: Session, occurrence: Occurrence) -> Occurrence:
    session.expire_all()
    fresh = session.get(Occurrence, occurrence.id)
    assert fresh is not None
    return fresh


def test_the_desk_needs_a_login_and_refuses_a_wrong_password(client: TestClient, session: Session) -> None:
    bounced = client.get("/desk/items?status=overdue", follow_redirects=False)
    assert bounced.status_code == 303 and bounced.headers["location"].startswith("/desk/login?next=/desk/items")
    add_manager(session, "boss")
    form = client.get("/desk/login")
    wrong = client.post("/desk/login", data={"username": "boss", "password": "nope", "csrf": csrf_of(form.text)})
    assert wrong.status_code == 401 and "用户名或密码不正确" in wrong.text and 'value="boss"' in wrong.text
    forged = client.post("/desk/login", data={"username": "boss", "password": PASSWORD, "csrf": "forged"})
    assert forged.status_code == 403 and "duties_session" not in forged.cookies
    assert client.get("/desk/items", follow_redirects=False).status_code == 303


def test_the_next_page_after_login_stays_on_this_desk(client: TestClient, session: Session) -> None:
    add_manager(session, "boss")
    form = client.get("/desk/login")
    data = {"username": "boss", "password": PASSWORD, "csrf": csrf_of(form.text), "next": "https://evil.example/"}
    response = client.post("/desk/login", data=data, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/desk/items"


def test_every_desk_form_needs_its_csrf_token(
    client: TestClient, session: Session, item: Occurrence, now: Clock
) -> None:
    log_in(client, session, "boss")
    before = ledger_state(session)
    refused = client.post(f"/desk/items/{item.id}/waive", data={"reason": "不需要", "csrf": "guessed"})
    assert refused.status_code == 403 and "请求已失效" in refused.text
    missing = client.post(f"/desk/items/{item.id}/waive", data={"reason": "不需要"})
    assert missing.status_code == 403
    assert ledger_state(session) == before and reload(session, item).waived_at is None


def test_extend_moves_the_clock_keeps_the_level_and_is_audited(
    client: TestClient, session: Session, ctx: Context, item: Occurrence, now: Clock
) -> None:
    csrf = log_in(client, session, "boss")
    now.at = local("2026-02-10T09:00")
    steps.escalate(session, ctx, at=now.at)  # overdue since the 6th: 交办
    assert reload(session, item).level == 1
    done = client.post(
        f"/desk/items/{item.id}/extend",
        data={"csrf": csrf, "due": "2026-02-20", "reason": "春节假期顺延"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    moved = reload(session, item)
    assert moved.due_at == local("2026-02-20T17:00") and moved.level == 1
    assert moved.status_at(now.at) == "due" and moved.next_escalate_at == local("2026-02-20T17:00")
    assert ("extended", "user:boss") in actions_of(session, item.id or 0)
    page = client.get(f"/desk/items/{item.id}")
    assert "2026年2月20日" in page.text and "春节假期顺延" in page.text and "延期" in page.text
    # No escalation until the new date has passed.
    steps.escalate(session, ctx, at=local("2026-02-19T09:00"))
    assert reload(session, item).level == 1


def test_a_refused_action_keeps_what_the_manager_typed(
    client: TestClient, session: Session, item: Occurrence, now: Clock
) -> None:
    csrf = log_in(client, session, "boss")
    before = ledger_state(session)
    refused = client.post(
        f"/desk/items/{item.id}/extend", data={"csrf": csrf, "due": "2026-02-01", "reason": "材料未齐，需补充"}
    )
    assert refused.status_code == 400 and "新的截止时间须晚于" in refused.text
    assert "材料未齐，需补充" in refused.text and ledger_state(session) == before


def test_park_stops_the_ladder_until_reopened(
    client: TestClient, session: Session, ctx: Context, item: Occurrence, now: Clock
) -> None:
    csrf = log_in(client, session, "boss")
    parked = client.post(
        f"/desk/items/{item.id}/park", data={"csrf": csrf, "review_on": "2026-03-02", "reason": "市场改造停业"}
    )
    assert parked.status_code == 200 and "挂账" in parked.text
    assert reload(session, item).status_at(local("2026-02-20T09:00")) == "parked"
    steps.escalate(session, ctx, at=local("2026-02-20T09:00"))
    assert reload(session, item).level == 0
    now.at = local("2026-03-02T10:00")
    reopened = client.post(f"/desk/items/{item.id}/reopen", data={"csrf": csrf, "reason": "复核：已恢复营业"})
    assert reopened.status_code == 200
    back = reload(session, item)
    assert back.status_at(now.at) == "overdue" and back.parked_at is None
    steps.escalate(session, ctx, at=local("2026-03-03T09:00"))
    assert reload(session, item).level == 0  # a day to redo the work first
    steps.escalate(session, ctx, at=local("2026-03-03T11:00"))
    assert reload(session, item).level == 1
    assert [a for a, _ in actions_of(session, item.id or 0)][:2] == ["parked", "reopened"]


def test_waive_closes_the_item_for_the_unit_too(
    client: TestClient, session: Session, ctx: Context, item: Occurrence, now: Clock
) -> None:
    csrf = log_in(client, session, "boss")
    client.post(f"/desk/items/{item.id}/waive", data={"csrf": csrf, "reason": "该市场已关闭"})
    assert reload(session, item).status_at(now.at) == "waived"
    posted = client.post(path_of(ctx, item, now.at), data={"note": "已完成"})
    assert posted.status_code == 409 and "已由管理部门免除" in posted.text


def test_a_failed_check_reopens_the_item_and_counts_against_the_unit(
    client: TestClient, session: Session, ctx: Context, item: Occurrence, now: Clock
) -> None:
    client.post(path_of(ctx, item, now.at), data={"note": "已抽查"})
    assert reload(session, item).done_at is not None
    csrf = log_in(client, session, "boss")
    report = session.execute(select(Confirmation)).scalar_one()
    unexplained = client.post(
        f"/desk/items/{item.id}/verify", data={"csrf": csrf, "confirmation_id": report.id, "verdict": "fail"}
    )
    assert unexplained.status_code == 400 and "请填写理由" in unexplained.text
    failed = client.post(
        f"/desk/items/{item.id}/verify",
        data={"csrf": csrf, "confirmation_id": report.id, "verdict": "fail", "note": "现场仍有垃圾堆放"},
    )
    assert failed.status_code == 200 and "核查不通过累计 1 次" in failed.text
    back = reload(session, item)
    assert back.done_at is None and back.achieved == 0 and back.status_at(now.at) == "due"
    session.expire_all()
    assert session.get(Confirmation, report.id).verdict == "fail"  # type: ignore[union-attr]
    twice = client.post(
        f"/desk/items/{item.id}/verify", data={"csrf": csrf, "confirmation_id": report.id, "verdict": "pass"}
    )
    assert twice.status_code == 400 and "已核查过" in twice.text


def test_a_talk_is_recorded_with_date_attendees_and_minutes(
    client: TestClient, session: Session, item: Occurrence, now: Clock
) -> None:
    csrf = log_in(client, session, "boss")
    data = {
        "csrf": csrf,
        "held_on": "2026-02-03",
        "attendees": "市城管办张三；吴兴区市场监管局李四",
        "minutes": "限期三日整改",
    }
    assert client.post(f"/desk/items/{item.id}/talk", data=data).status_code == 200
    talk = session.execute(select(Talk)).scalar_one()
    assert talk.held_on == date(2026, 2, 3) and talk.recorded_by == "user:boss" and "李四" in talk.attendees
    assert ("talk_recorded", "user:boss") in actions_of(session, item.id or 0)


def test_a_district_manager_sees_only_its_district(
    client: TestClient, session: Session, ctx: Context, item: Occurrence, now: Clock
) -> None:
    steps.plan(session, ctx, start=date(2026, 2, 1), end=date(2026, 2, 8), at=local("2026-01-20T08:00"), only=CORE)
    other = session.execute(select(Occurrence).where(col(Occurrence.unit_id) == "anji-msb")).scalars().first()
    assert other is not None
    csrf = log_in(client, session, "wuxing-boss", district="wuxing")
    listing = client.get("/desk/items")
    assert f'data-id="{item.id}"' in listing.text and f'data-id="{other.id}"' not in listing.text
    assert client.get(f"/desk/items/{other.id}").status_code == 404
    before = ledger_state(session)
    assert client.post(f"/desk/items/{other.id}/waive", data={"csrf": csrf, "reason": "x"}).status_code == 404
    assert client.get("/desk/deliveries").status_code == 403
    headers = api_headers(session, "wuxing-script", district="wuxing")
    assert client.get(f"/api/occurrences/{other.id}", headers=headers).status_code == 404
    assert client.post(f"/api/occurrences/{other.id}/waive", json={"reason": "x"}, headers=headers).status_code == 404
    units = {row["unit"] for row in client.get("/api/occurrences", headers=headers).json()}
    assert "wuxing-msb" in units and all(u.startswith("wuxing") for u in units)
    assert ledger_state(session) == before


def test_the_api_needs_a_token_and_acts_like_the_desk(
    client: TestClient, session: Session, item: Occurrence, now: Clock
) -> None:
    assert client.get("/api/occurrences").status_code == 401
    assert client.get("/api/occurrences", headers={"Authorization": "Bearer dt_forged"}).status_code == 401
    headers = api_headers(session, "script")
    assert client.get("/api/me", headers=headers).json() == {"username": "script", "role": "city", "district": None}
    refused = client.post(f"/api/occurrences/{item.id}/waive", json={"reason": ""}, headers=headers)
    assert refused.status_code == 409 and refused.json()["detail"] == "请填写理由。"
    done = client.post(
        f"/api/occurrences/{item.id}/extend", json={"reason": "顺延", "due": "2026-02-13"}, headers=headers
    )
    assert done.status_code == 200 and done.json()["occurrence"]["due"] == "2026-02-13T17:00:00+08:00"
    detail = client.get(f"/api/occurrences/{item.id}", headers=headers).json()
    assert [e["action"] for e in detail["timeline"]] == ["extended"] and detail["timeline"][0]["actor"] == "api:script"
    counts = client.get("/api/counts", headers=headers).json()
    assert counts["status"]["due"] >= 1 and set(counts["level"]) == {"0", "1", "2", "3"}
    assert "/api/occurrences/{occurrence_id}/{action}" in client.get("/openapi.json").json()["paths"]


def test_the_list_filters_and_counts(
    client: TestClient, session: Session, ctx: Context, item: Occurrence, now: Clock
) -> None:
    steps.plan(session, ctx, start=date(2026, 2, 1), end=date(2026, 2, 8), at=local("2026-01-20T08:00"), only=CORE)
    log_in(client, session, "boss")
    now.at = local("2026-02-10T09:00")
    everything = client.get("/desk/items")
    overdue = client.get("/desk/items", params={"status": "overdue", "district": "wuxing"})
    rows = overdue.text.split('id="items"')[1]
    assert overdue.status_code == 200 and 'data-status="due"' not in rows and "安吉" not in rows
    assert f'data-id="{item.id}"' in rows and "已逾期 <b>1</b>" in overdue.text
    bad_date = client.get("/desk/items", params={"from": "2026-13-01"})
    assert bad_date.status_code == 200 and "无法识别" in bad_date.text
    assert everything.text.count("<tr class=") > overdue.text.count("<tr class=") > 0


@pytest.mark.parametrize("case", ["revoked", "unit-page", "unit-tampered", "unit-expired"])
def test_links_units_hold(
    client: TestClient, session: Session, ctx: Context, item: Occurrence, now: Clock, case: str
) -> None:
    """A revoked link is refused; a unit link lists that unit's open items and nothing else."""
    from web.tokens import make_unit_token

    old = path_of(ctx, item, now.at)
    if case == "revoked":
        item.link_version += 1
        session.commit()
        before = ledger_state(session)
        response = client.post(old, data={"note": "已完成"})
        assert response.status_code == 410 and "链接已作废" in response.text
        assert ledger_state(session) == before
        assert client.post(path_of(ctx, item, now.at), data={"note": "已完成"}).status_code == 200
        return
    expires = local("2026-02-10T00:00")
    token = make_unit_token(ctx.secret, unit_id="wuxing-msb", expires_at=expires)
    if case == "unit-page":
        page = client.get(f"/u/{token}")
        assert page.status_code == 200 and "吴兴区市场监督管理局" in page.text and item.title in page.text
        assert path_of(ctx, item, now.at) in page.text and "anji" not in page.text
    elif case == "unit-tampered":
        assert client.get(f"/u/{token[:-2]}xx").status_code == 400
    else:
        now.at = expires
        assert client.get(f"/u/{token}").status_code == 410
