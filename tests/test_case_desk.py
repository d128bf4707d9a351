"""Units push back on their link (退回 / 延期申请 / 挂账申请) and managers decide on the desk; the case desk lists
cases, dispatches them, shows their photos to those allowed, and 核查 closes or reopens them. Through the real app
with a frozen clock, real SQLite, and the real SMTP receiver."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select
from sqlmodel import Session, col

from flows import cases
from flows.cases import NewCase
from flows.common import Context
from flows.steps import confirm
from notify import outbox
from notify.receivers import Inbox
from store.models import Case, Delivery, Occurrence, UnitRequest
from tests.conftest import local
from tests.desk_support import PASSWORD, csrf_of, log_in
from tests.web_support import Clock, path_of, png
from web import auth, common, photos

FILED = "2026-03-03 09:00"  # a Tuesday: the market's 30-minute clock runs in its opening hours


def _file(session: Session, ctx: Context, place: str = "飞英农贸市场东门", *, reporter: str = "user:insp0") -> Case:
    photo = photos.store_photo(png(3), "png")
    new = NewCase(category_id="market-litter", place=place, note="门口一堆菜叶", photos=[photo])
    filed = cases.file_case(session, ctx, new, reporter=reporter, source="inspector", at=local(FILED))
    return filed.case


def _item(session: Session, case: Case) -> Occurrence:
    session.expire_all()
    fresh = session.get(Case, case.id)
    assert fresh is not None and fresh.occurrence_id is not None
    item = session.get(Occurrence, fresh.occurrence_id)
    assert item is not None
    return item


def _link(ctx: Context, session: Session, case: Case) -> str:
    return path_of(ctx, _item(session, case), local(FILED))


def _ask(client: TestClient, link: str, kind: str, reason: str, form_id: str = "f1", **extra: str) -> Response:
    return client.post(f"{link}/requests", data={"kind": kind, "reason": reason, "form_id": form_id, **extra})


def _requests(session: Session) -> list[UnitRequest]:
    session.expire_all()
    return list(session.execute(select(UnitRequest).order_by(col(UnitRequest.id))).scalars())


def _inspector(client: TestClient, session: Session, username: str) -> str:
    auth.add_user(
        session,
        username=username,
        password=PASSWORD,
        role="inspector",
        district=None,
        display_name=username,
        at=local("2026-01-01 09:00"),
    )
    form = client.get("/desk/login")
    data = {"username": username, "password": PASSWORD, "csrf": csrf_of(form.text), "next": "/desk/items"}
    assert client.post("/desk/login", data=data, follow_redirects=False).status_code == 303
    return csrf_of(form.text)


# ---------------------------------------------------------------- the unit's side


def test_the_unit_sees_its_case_as_found_and_the_time_left(
    client: TestClient, session: Session, ctx: Context, now: Clock
) -> None:
    case = _file(session, ctx)
    now.at = local("2026-03-03 09:05")
    page = client.get(_link(ctx, session, case))
    assert page.status_code == 200
    assert "飞英农贸市场东门" in page.text and "门口一堆菜叶" in page.text
    assert "剩余 25 分钟" in page.text and "处置完毕，上传处置后照片" in page.text
    assert f"/photos/{case.photos[0]}?thumb=1" in page.text
    assert "无法按时完成或不属于本单位？" in page.text and 'value="return"' in page.text
    now.at = local("2026-03-03 09:40")
    assert "已超时 10 分钟" in client.get(_link(ctx, session, case)).text
    assert _requests(session) == []  # GET changes nothing


def test_a_return_waits_in_the_city_queue_and_not_in_another_districts(
    client: TestClient, session: Session, ctx: Context, now: Clock
) -> None:
    case = _file(session, ctx)
    link = _link(ctx, session, case)
    now.at = local("2026-03-03 09:05")
    response = _ask(client, link, "return", "不是本市场范围，属月河市场")
    assert response.status_code == 200, response.text
    assert response.headers["X-Duties-Outcome"] == "requested"
    assert "已提交，等待审批；审批前请照常处置，时限照常计算" in response.text
    assert 'id="pushback"' not in response.text  # the forms hide while one waits
    log_in(client, session, "nanxun-boss", district="nanxun")
    assert "不是本市场范围" not in client.get("/desk/requests").text
    client.cookies.clear()
    log_in(client, session, "boss")
    now.at = local("2026-03-03 09:25")
    queue = client.get("/desk/requests")
    assert queue.status_code == 200
    assert "不是本市场范围，属月河市场" in queue.text and "飞英农贸市场" in queue.text
    assert "已等待 20 分钟" in queue.text
    client.cookies.clear()
    log_in(client, session, "wuxing-boss", district="wuxing")
    assert "不是本市场范围" in client.get("/desk/requests").text


def test_approving_a_return_with_a_unit_reassigns_at_once_and_mails_the_new_unit(
    client: TestClient, session: Session, ctx: Context, now: Clock, fresh_inbox: Inbox
) -> None:
    case = _file(session, ctx)
    first = _item(session, case)
    now.at = local("2026-03-03 09:05")
    _ask(client, _link(ctx, session, case), "return", "不是本市场范围")
    csrf = log_in(client, session, "boss")
    asked = _requests(session)[0]
    now.at = local("2026-03-03 09:10")
    data = {"csrf": csrf, "answer": "同意，改派月河", "unit": "wuxing-yuehe-market"}
    response = client.post(f"/desk/requests/{asked.id}/approve", data=data)
    assert response.status_code == 200 and "案件已改派给月河农贸市场" in response.text
    item = _item(session, case)
    assert item.id != first.id and item.unit_id == "wuxing-yuehe-market"
    assert item.due_at == local("2026-03-03 09:40")  # a fresh 30-minute clock from the reassignment
    assert session.get(Occurrence, first.id).waived_at == local("2026-03-03 09:10")  # type: ignore[union-attr]
    dispatched = [mail for mail in fresh_inbox.mails if "【案件派遣】" in mail.subject]
    assert any("wuxing-yuehe-market" in " ".join(mail.recipients) for mail in dispatched), dispatched
    assert _requests(session)[0].status == "approved"


def test_a_reassignment_to_a_unit_not_of_the_category_decides_nothing(
    client: TestClient, session: Session, ctx: Context, now: Clock
) -> None:
    case = _file(session, ctx)
    now.at = local("2026-03-03 09:05")
    _ask(client, _link(ctx, session, case), "return", "不是本市场范围")
    csrf = log_in(client, session, "boss")
    asked = _requests(session)[0]
    data = {"csrf": csrf, "answer": "同意", "unit": "nanxun"}
    response = client.post(f"/desk/requests/{asked.id}/approve", data=data)
    assert response.status_code == 400 and "该单位不负责此类案件" in response.text
    assert _requests(session)[0].status == "open" and _item(session, case).waived_at is None


def test_an_approved_extension_moves_the_due(client: TestClient, session: Session, ctx: Context, now: Clock) -> None:
    case = _file(session, ctx)
    now.at = local("2026-03-03 09:05")
    response = _ask(client, _link(ctx, session, case), "extend", "需调用清运车", due="2026-03-03T15:00")
    assert response.headers["X-Duties-Outcome"] == "requested"
    csrf = log_in(client, session, "boss")
    asked = _requests(session)[0]
    assert asked.due_at == local("2026-03-03 15:00")
    response = client.post(f"/desk/requests/{asked.id}/approve", data={"csrf": csrf, "answer": "同意延期"})
    assert response.status_code == 200 and "已同意飞英农贸市场的延期申请" in response.text
    assert _item(session, case).due_at == local("2026-03-03 15:00")


def test_a_rejected_request_keeps_the_due_and_the_unit_is_told(
    client: TestClient, session: Session, ctx: Context, now: Clock, fresh_inbox: Inbox
) -> None:
    case = _file(session, ctx)
    link = _link(ctx, session, case)
    now.at = local("2026-03-03 09:05")
    _ask(client, link, "extend", "人手不够", due="2026-03-04T09:00")
    csrf = log_in(client, session, "boss")
    asked = _requests(session)[0]
    response = client.post(f"/desk/requests/{asked.id}/reject", data={"csrf": csrf, "answer": "30分钟内必须清理"})
    assert response.status_code == 200 and "已未同意" not in response.text and "未同意" in response.text
    assert _item(session, case).due_at == local("2026-03-03 09:30")
    told = session.execute(select(Delivery).where(col(Delivery.stage) == f"request:{asked.id}:rejected")).scalars()
    assert [d.occurrence_id for d in told] and all(d.occurrence_id == _item(session, case).id for d in told)
    outbox.dispatch(session, ctx.send, at=local("2026-03-03 09:06"), stop=lambda: False)
    mails = [m for m in fresh_inbox.mails if "wuxing-feiying-market" in " ".join(m.recipients)]
    assert any("30分钟内必须清理" in m.body for m in mails), [m.subject for m in mails]
    page = client.get(link)
    assert "未同意" in page.text and "30分钟内必须清理" in page.text and 'id="pushback"' in page.text


def test_a_second_request_while_one_waits_is_refused(
    client: TestClient, session: Session, ctx: Context, now: Clock
) -> None:
    case = _file(session, ctx)
    link = _link(ctx, session, case)
    now.at = local("2026-03-03 09:05")
    _ask(client, link, "return", "不是本市场范围", form_id="a")
    response = _ask(client, link, "extend", "再申请延期", form_id="b", due="2026-03-03T12:00")
    assert response.status_code == 409
    assert "该事项已有一项申请待审批" in response.text
    assert [r.kind for r in _requests(session)] == ["return"]


def test_a_double_submitted_form_is_one_request(client: TestClient, session: Session, ctx: Context, now: Clock) -> None:
    case = _file(session, ctx)
    link = _link(ctx, session, case)
    now.at = local("2026-03-03 09:05")
    assert _ask(client, link, "return", "不是本市场").headers["X-Duties-Outcome"] == "requested"
    again = _ask(client, link, "return", "不是本市场")
    assert again.status_code == 200 and again.headers["X-Duties-Outcome"] == "already"
    assert len(_requests(session)) == 1


def test_a_refused_request_shows_the_reason_and_keeps_what_was_typed(
    client: TestClient, session: Session, ctx: Context, now: Clock
) -> None:
    case = _file(session, ctx)
    link = _link(ctx, session, case)
    now.at = local("2026-03-03 09:05")
    early = _ask(client, link, "extend", "清运车在路上", due="2026-03-03T09:20")
    assert early.status_code == 400
    assert "延期申请须填写晚于原截止时间的新日期" in early.text
    assert "清运车在路上</textarea>" in early.text and 'value="2026-03-03T09:20"' in early.text
    garbled = _ask(client, link, "extend", "清运车在路上", due="明天")
    assert garbled.status_code == 400 and "请填写申请延期至的日期和时间" in garbled.text
    empty = _ask(client, link, "park", "  ", review_on="2026-04-01")
    assert empty.status_code == 400 and "请填写理由" in empty.text
    assert _requests(session) == []


def test_a_planned_item_cannot_be_returned(
    client: TestClient, session: Session, ctx: Context, item: Occurrence
) -> None:
    link = path_of(ctx, item, local("2026-02-03 10:00"))
    page = client.get(link)
    assert 'value="extend"' in page.text and 'value="return"' not in page.text
    refused = _ask(client, link, "return", "不归我们")
    assert refused.status_code == 400 and "只有派遣给本单位的案件可以退回" in refused.text


def test_a_district_manager_cannot_decide_another_districts_request(
    client: TestClient, session: Session, ctx: Context, now: Clock
) -> None:
    case = _file(session, ctx)
    now.at = local("2026-03-03 09:05")
    _ask(client, _link(ctx, session, case), "return", "不是本市场范围")
    csrf = log_in(client, session, "nanxun-boss", district="nanxun")
    asked = _requests(session)[0]
    response = client.post(f"/desk/requests/{asked.id}/approve", data={"csrf": csrf, "answer": "同意"})
    assert response.status_code == 404 and "申请不存在" in response.text
    assert _requests(session)[0].status == "open"
    no_csrf = client.post(f"/desk/requests/{asked.id}/approve", data={"answer": "同意"})
    assert no_csrf.status_code == 403


def test_the_unit_page_shows_a_waiting_request_beside_its_item(
    client: TestClient, session: Session, ctx: Context, now: Clock
) -> None:
    from flows.notices import unit_link

    case = _file(session, ctx)
    now.at = local("2026-03-03 09:05")
    _ask(client, _link(ctx, session, case), "return", "不是本市场范围")
    link = unit_link(ctx.settings, ctx.secret, "wuxing-feiying-market", at=local("2026-03-03 09:05"))
    page = client.get("/u/" + link.rsplit("/u/", 1)[1])
    assert page.status_code == 200 and 'data-waiting="return"' in page.text and "不是本市场范围" in page.text


# ---------------------------------------------------------------- the case desk


def test_the_list_puts_undispatched_first_and_filters(
    client: TestClient, session: Session, ctx: Context, now: Clock
) -> None:
    handled = _file(session, ctx)
    waiting = _file(session, ctx, place="人民广场")
    late = _file(session, ctx, place="月河农贸市场北门")
    now.at = local("2026-03-03 09:20")
    client.post(_link(ctx, session, handled), data={"note": "已清扫", "form_id": "r1"})
    now.at = local("2026-03-03 09:45")
    log_in(client, session, "boss")
    page = client.get("/desk/cases")
    assert page.status_code == 200
    order = [int(n) for n in re.findall(r'<tr data-case="(\d+)"', page.text)]
    assert order == [waiting.id, late.id, handled.id]  # 待派遣, 已超时, 待核查
    assert "已超时 15 分钟" in page.text
    only = client.get("/desk/cases?status=overdue").text
    assert re.findall(r'<tr data-case="(\d+)"', only) == [str(late.id)]
    assert re.findall(r'<tr data-case="(\d+)"', client.get("/desk/cases?category=site-dust").text) == []
    client.cookies.clear()
    log_in(client, session, "nanxun-boss", district="nanxun")
    assert re.findall(r'<tr data-case="(\d+)"', client.get("/desk/cases").text) == []
    assert client.get(f"/desk/cases/{late.id}").status_code == 404


def test_the_list_counts_every_closed_case_though_it_lists_the_latest(
    client: TestClient, session: Session, ctx: Context, now: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from web import desk_cases

    monkeypatch.setattr(desk_cases, "CLOSED_SHOWN", 1)
    now.at = local("2026-03-03 09:30")
    for case in (_file(session, ctx), _file(session, ctx)):
        steps_confirm(session, _item(session, case).id or 0, local("2026-03-03 09:10"))
        cases.verify(
            session, ctx, case_id=case.id or 0, passed=True, note="", actor="user:boss", at=now.at, role="city"
        )
    log_in(client, session, "boss")
    page = client.get("/desk/cases").text
    assert len(re.findall(r'<tr data-case="(\d+)"', page)) == 1
    assert "已结案 2" in page and "共 2 件（已结案只列出最近 1 件）" in page


def steps_confirm(session: Session, occurrence_id: int, at: datetime) -> None:
    confirm(session, occurrence_id=occurrence_id, note="已处置", evidence=[], at=at, client="test")


def test_an_undispatched_case_is_dispatched_from_the_desk_and_its_unit_mailed(
    client: TestClient, session: Session, ctx: Context, now: Clock, fresh_inbox: Inbox
) -> None:
    case = _file(session, ctx, place="人民广场")
    csrf = log_in(client, session, "boss")
    now.at = local("2026-03-03 09:10")
    page = client.get(f"/desk/cases/{case.id}")
    assert page.status_code == 200 and "待派遣" in page.text and 'value="wuxing-yuehe-market"' in page.text
    refused = client.post(f"/desk/cases/{case.id}/assign", data={"csrf": csrf, "unit": "nanxun", "reason": "x"})
    assert refused.status_code == 400 and "请选择负责此类案件" in refused.text
    response = client.post(
        f"/desk/cases/{case.id}/assign", data={"csrf": csrf, "unit": "wuxing-yuehe-market", "reason": "广场归月河"}
    )
    assert response.status_code == 200 and "处置中" in response.text
    assert _item(session, case).unit_id == "wuxing-yuehe-market"
    assert any("wuxing-yuehe-market" in " ".join(m.recipients) for m in fresh_inbox.mails)


def test_a_failed_check_reopens_and_a_passed_one_closes(
    client: TestClient, session: Session, ctx: Context, now: Clock
) -> None:
    case = _file(session, ctx)
    link = _link(ctx, session, case)
    now.at = local("2026-03-03 09:20")
    files = [("evidence", ("after.png", png(5), "image/png"))]
    assert client.post(link, data={"note": "已清扫", "form_id": "r1"}, files=files).status_code == 200
    csrf = log_in(client, session, "boss")
    now.at = local("2026-03-03 09:25")
    page = client.get(f"/desk/cases/{case.id}")
    assert 'id="verify"' in page.text and "待核查" in page.text
    after = photos.store_photo(png(5), "png")
    assert page.text.index(f"photos/{case.photos[0]}") < page.text.index(f"photos/{after}")  # before, then after
    empty = client.post(f"/desk/cases/{case.id}/verify", data={"csrf": csrf, "passed": "0", "note": ""})
    assert empty.status_code == 400 and "请填写理由" in empty.text
    failed = client.post(f"/desk/cases/{case.id}/verify", data={"csrf": csrf, "passed": "0", "note": "仍有积水"})
    assert failed.status_code == 200 and 'data-state="handling"' in failed.text
    assert _item(session, case).done_at is None
    now.at = local("2026-03-03 09:35")
    client.post(link, data={"note": "积水已清", "form_id": "r2"})
    passed = client.post(f"/desk/cases/{case.id}/verify", data={"csrf": csrf, "passed": "1", "note": ""})
    assert passed.status_code == 200 and 'data-state="closed"' in passed.text
    session.expire_all()
    closed = session.get(Case, case.id)
    assert closed is not None and closed.closed_at == local("2026-03-03 09:35") and closed.closed_by == "user:boss"


def test_the_reporting_inspector_may_verify_and_another_sees_nothing(
    client: TestClient, session: Session, ctx: Context, now: Clock
) -> None:
    case = _file(session, ctx, reporter="user:insp1")
    now.at = local("2026-03-03 09:20")
    client.post(_link(ctx, session, case), data={"note": "已清扫", "form_id": "r1"})
    csrf = _inspector(client, session, "insp2")
    assert client.get(f"/desk/cases/{case.id}").status_code == 404
    refused = client.post(f"/desk/cases/{case.id}/verify", data={"csrf": csrf, "passed": "1"})
    assert refused.status_code == 404
    client.cookies.clear()
    csrf = _inspector(client, session, "insp1")
    page = client.get(f"/desk/cases/{case.id}")
    assert page.status_code == 200 and 'id="verify"' in page.text and 'id="assign"' not in page.text
    passed = client.post(f"/desk/cases/{case.id}/verify", data={"csrf": csrf, "passed": "1"})
    assert passed.status_code == 200 and 'data-state="closed"' in passed.text


def test_photos_are_served_only_to_those_allowed(
    client: TestClient, session: Session, ctx: Context, now: Clock, item: Occurrence
) -> None:
    case = _file(session, ctx)
    name = case.photos[0]
    stranger = photos.store_photo(png(7), "png")  # stored, but of no case
    link = _link(ctx, session, case)
    now.at = local("2026-03-03 09:05")
    assert client.get(f"{link}/photos/{name}").status_code == 200
    assert client.get(f"{link}/photos/{name}?thumb=1").headers["content-type"].startswith("image/")
    assert client.get(f"{link}/photos/{stranger}").status_code == 404
    other_link = path_of(ctx, item, local("2026-03-03 09:05"))  # another unit's item: not this case's photos
    assert client.get(f"{other_link}/photos/{name}").status_code == 404
    assert client.get(f"/desk/cases/{case.id}/photos/{name}", follow_redirects=False).status_code == 303  # login
    log_in(client, session, "nanxun-boss", district="nanxun")
    assert client.get(f"/desk/cases/{case.id}/photos/{name}").status_code == 404
    client.cookies.clear()
    log_in(client, session, "boss")
    shown = client.get(f"/desk/cases/{case.id}/photos/{name}")
    assert shown.status_code == 200 and shown.content == png(3)
    assert client.get(f"/desk/cases/{case.id}/photos/{stranger}").status_code == 404
    assert client.get(f"/desk/cases/{case.id}/photos/..%2F..%2Fsecret").status_code == 404


def test_the_case_page_shows_dispatches_timeline_and_the_item_links_back(
    client: TestClient, session: Session, ctx: Context, now: Clock
) -> None:
    case = _file(session, ctx)
    first = _item(session, case)
    now.at = local("2026-03-03 09:05")
    _ask(client, _link(ctx, session, case), "return", "不是本市场范围")
    csrf = log_in(client, session, "boss")
    asked = _requests(session)[0]
    data = {"csrf": csrf, "answer": "同意", "unit": "wuxing-yuehe-market"}
    client.post(f"/desk/requests/{asked.id}/approve", data=data)
    page = client.get(f"/desk/cases/{case.id}")
    assert page.text.count("<tr data-item=") == 2 and "已退回/改派" in page.text
    for action in ("case_filed", "case_dispatched", "request_made", "request_approved", "case_withdrawn"):
        assert f'data-action="{action}"' in page.text, action
    assert "附件1 第6项 目标2" in page.text and "北纬" not in page.text
    assert f'href="/desk/cases/{case.id}"' in client.get(f"/desk/items/{first.id}").text


@pytest.fixture
def paused(calendars_dir: Path) -> Iterator[None]:
    """The 30-minute category with ``pause_while_requested``: its clock stops while a request waits."""
    path = calendars_dir / "huzhou" / "cases.yaml"
    text = path.read_text(encoding="utf-8")
    paused_text = text.replace("deadline: 30 minutes\n", "deadline: 30 minutes\n    pause_while_requested: true\n", 1)
    assert paused_text != text
    path.write_text(paused_text, encoding="utf-8")
    common.program.cache_clear()  # the app reads the calendars once per process
    yield
    common.program.cache_clear()


def test_a_category_that_pauses_says_so_and_gives_the_waited_time_back(
    paused: None, client: TestClient, session: Session, ctx: Context, now: Clock
) -> None:
    case = _file(session, ctx)
    now.at = local("2026-03-03 09:05")
    response = _ask(client, _link(ctx, session, case), "extend", "需调用抽水泵", due="2026-03-03T15:00")
    assert "审批期间暂停计时" in response.text and "时限照常计算" not in response.text
    assert _item(session, case).next_escalate_at is None
    csrf = log_in(client, session, "boss")
    now.at = local("2026-03-03 09:15")
    asked = _requests(session)[0]
    client.post(f"/desk/requests/{asked.id}/reject", data={"csrf": csrf, "answer": "先清扫路面"})
    assert _item(session, case).due_at == local("2026-03-03 09:40")  # the ten minutes it waited, given back


def test_the_verifier_sees_each_photos_flags_and_a_thumbnail(
    client: TestClient, session: Session, ctx: Context, now: Clock
) -> None:
    photo = photos.store_photo(png(3), "png")
    place = "飞英农贸市场东门"
    new = NewCase(category_id="market-litter", place=place, latitude=30.87, longitude=120.09, photos=[photo])
    case = cases.file_case(session, ctx, new, reporter="user:insp0", source="inspector", at=local(FILED)).case
    now.at = local("2026-03-03 09:20")
    files = [("evidence", ("after.png", png(5), "image/png"))]  # no EXIF: neither a time nor a place
    client.post(_link(ctx, session, case), data={"note": "已清扫", "form_id": "r1"}, files=files)
    log_in(client, session, "boss")
    page = client.get(f"/desk/cases/{case.id}")
    assert "北纬 30.870000，东经 120.090000" in page.text
    after = page.text[page.text.index('id="after"') :]
    assert "无拍摄时间" in after and "无定位信息" in after
    thumb = client.get(f"/desk/cases/{case.id}/photos/{photo}?thumb=1")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.content.startswith(b"\xff\xd8")  # a JPEG made from the PNG, not the PNG itself
