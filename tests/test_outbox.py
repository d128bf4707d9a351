"""The outbox against real receivers on 127.0.0.1: an SMTP server that rejects one mailbox, an HTTP receiver that
answers 200, 500, 404 and slowly, and a port where nothing listens."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import Session, col

from notify import outbox
from notify.receivers import Inbox, free_port
from notify.send import send_apprise
from store import db
from store.models import AuditEvent, Contact, Delivery, Unit
from tests.conftest import LEDGER_AT, local

AT = LEDGER_AT  # the ledger fixture's moment (tests/conftest.py)


def queue_to(session: Session, urls: list[str], stage: str = "remind:3d") -> list[Delivery]:
    contacts = []
    for number, url in enumerate(urls):
        contact = Contact(unit_id="u", name=f"{stage}-{number}", channel=url.split("://")[0], url=url)
        session.add(contact)
        contacts.append(contact)
    session.flush()
    outbox.queue(session, occurrence_id=1, stage=stage, contacts=contacts, title="【工作提醒】测试", body="正文", at=AT)
    session.commit()
    return deliveries(session)


def deliveries(session: Session) -> list[Delivery]:
    query = select(Delivery).order_by(col(Delivery.id)).execution_options(populate_existing=True)
    return list(session.execute(query).scalars())


def test_each_outcome_is_classified_and_recorded(ledger: Session, fresh_inbox: Inbox) -> None:
    hook = f"json://127.0.0.1:{fresh_inbox.http_port}"
    queue_to(
        ledger,
        [
            fresh_inbox.mail_url("good@demo.huzhou.local"),
            fresh_inbox.mail_url("reject@demo.huzhou.local"),  # 550 for this mailbox
            f"{hook}/ok",
            f"{hook}/status/500",
            f"{hook}/status/404",
            f"{hook}/slow?rto=0.5",  # the answer comes after the read timeout; the webhook dedupes by key
            f"json://127.0.0.1:{free_port()}/nobody-listens",
            f"dingtalk://slow?base=http://127.0.0.1:{fresh_inbox.http_port}/slow&rto=0.5",  # a bot does not
        ],
    )
    report = outbox.dispatch(ledger, send_apprise, at=AT)
    assert (report.sent, report.retry, report.failed, report.unknown) == (2, 3, 2, 1)
    states = [d.status for d in deliveries(ledger)]
    assert states == ["sent", "failed", "sent", "retry", "failed", "retry", "retry", "unknown"]
    rejected = deliveries(ledger)[1]
    assert "550" in rejected.log and rejected.attempts == 1
    # Both receivers saw the idempotency key of their delivery.
    keys = {d.idempotency_key for d in deliveries(ledger)}
    assert fresh_inbox.mails[0].key in keys and fresh_inbox.posts[0].key in keys


def test_a_temporary_failure_is_retried_with_growing_backoff_then_given_up(ledger: Session, fresh_inbox: Inbox) -> None:
    (delivery,) = queue_to(ledger, [f"json://127.0.0.1:{fresh_inbox.http_port}/status/503"])
    moments = [AT]
    for _attempt in range(5):
        outbox.dispatch(ledger, send_apprise, at=moments[-1])
        (delivery,) = deliveries(ledger)
        if delivery.status != "retry":
            break
        assert delivery.next_attempt_at is not None
        assert outbox.dispatch(ledger, send_apprise, at=delivery.next_attempt_at - timedelta(seconds=1)).retry == 0
        moments.append(delivery.next_attempt_at)
    assert (delivery.status, delivery.attempts) == ("failed", 5)
    gaps = [later - earlier for earlier, later in itertools.pairwise(moments)]
    assert all(b > a for a, b in itertools.pairwise(gaps)), gaps
    assert timedelta(seconds=48) <= gaps[0] <= timedelta(seconds=72)  # one minute ± 20 %


def test_backoff_is_reproducible_and_spread() -> None:
    assert outbox.backoff(7, 3) == outbox.backoff(7, 3)
    spread = {outbox.backoff(delivery_id, 1) for delivery_id in range(50)}
    assert len(spread) > 40 and min(spread) >= timedelta(seconds=48) and max(spread) <= timedelta(seconds=72)
    assert outbox.backoff(1, 30) <= outbox.MAX_BACKOFF * 1.2


def test_an_interrupted_send_is_resent_only_where_the_receiver_dedupes(ledger: Session, fresh_inbox: Inbox) -> None:
    webhook, mail = queue_to(
        ledger, [f"json://127.0.0.1:{fresh_inbox.http_port}/hook", fresh_inbox.mail_url("someone@demo.huzhou.local")]
    )
    for delivery in (webhook, mail):  # as a dispatcher that died right after claiming them leaves them
        delivery.status, delivery.lease_until, delivery.attempts = "sending", AT + outbox.LEASE, 1
    ledger.commit()
    assert outbox.dispatch(ledger, send_apprise, at=AT + timedelta(minutes=1)).recovered == 0  # lease still held
    report = outbox.dispatch(ledger, send_apprise, at=AT + outbox.LEASE + timedelta(seconds=1))
    assert (report.recovered, report.sent) == (2, 1)
    webhook, mail = deliveries(ledger)
    assert (webhook.status, mail.status) == ("sent", "unknown")
    assert [p.key for p in fresh_inbox.posts] == [webhook.idempotency_key] and fresh_inbox.mails == []


def test_a_person_can_resend_an_unknown_delivery_on_purpose(ledger: Session, fresh_inbox: Inbox) -> None:
    base = f"http://127.0.0.1:{fresh_inbox.http_port}"
    queue_to(ledger, [f"dingtalk://bot?base={base}/slow&rto=0.5"])
    outbox.dispatch(ledger, send_apprise, at=AT)
    (delivery,) = deliveries(ledger)
    assert delivery.status == "unknown"
    assert outbox.dispatch(ledger, send_apprise, at=AT + timedelta(days=1)).sent == 0  # never by itself
    ledger.execute(  # the operator fixed the receiver's address
        Contact.__table__.update().values(url=f"dingtalk://bot?base={base}/fixed")  # type: ignore[attr-defined]
    )
    ledger.commit()
    assert outbox.resend(ledger, delivery_id=delivery.id or 0, at=AT + timedelta(days=1), actor="cli")
    assert outbox.dispatch(ledger, send_apprise, at=AT + timedelta(days=1)).sent == 1
    assert deliveries(ledger)[0].status == "sent"
    assert fresh_inbox.posts[-1].path.startswith("/fixed/robot/send")
    actions = [e.action for e in ledger.execute(select(AuditEvent)).scalars()]
    assert actions == ["delivery_resent"]


def test_queueing_the_same_stage_twice_adds_nothing(ledger: Session, fresh_inbox: Inbox) -> None:
    contact = Contact(unit_id="u", name="c", channel="json", url=f"json://127.0.0.1:{fresh_inbox.http_port}/x")
    ledger.add(contact)
    ledger.flush()
    for _ in range(2):
        outbox.queue(ledger, occurrence_id=1, stage="level:1", contacts=[contact], title="t", body="b", at=AT)
    ledger.commit()
    assert len(deliveries(ledger)) == 1


def test_chat_bots_are_judged_by_the_code_in_the_body(ledger: Session, fresh_inbox: Inbox) -> None:
    base = f"http://127.0.0.1:{fresh_inbox.http_port}"
    queue_to(
        ledger,
        [
            f"dingtalk://token1?base={base}/dingtalk",
            f"dingtalk://token2?base={base}/errcode/310000",  # keyword or signature check failed: permanent
            f"dingtalk://token3?base={base}/errcode/130101",  # sending too fast: later
            f"wecombot://key1?base={base}/wecom",
            f"wecombot://key2?base={base}/errcode/93000",  # invalid webhook key: permanent
            f"feishu://hook1?base={base}/feishu",
            f"feishu://hook2?base={base}/errcode/19021",  # signature mismatch: permanent
        ],
    )
    outbox.dispatch(ledger, send_apprise, at=AT)
    assert [d.status for d in deliveries(ledger)] == ["sent", "failed", "retry", "sent", "failed", "sent", "failed"]
    assert "errcode=310000" in deliveries(ledger)[1].log
    paths = sorted(p.path.split("?")[0] for p in fresh_inbox.posts)
    assert paths == ["/dingtalk/robot/send", "/feishu/open-apis/bot/v2/hook/hook1", "/wecom/cgi-bin/webhook/send"]
    dingtalk = next(p for p in fresh_inbox.posts if p.path.startswith("/dingtalk"))
    assert dingtalk.payload["msgtype"] == "text" and dingtalk.payload["text"]["content"].startswith("【工作提醒】测试")


def test_bots_sign_with_their_secret(ledger: Session, fresh_inbox: Inbox) -> None:
    import base64
    import hashlib
    import hmac
    from urllib.parse import parse_qs, urlsplit

    base = f"http://127.0.0.1:{fresh_inbox.http_port}"
    queue_to(ledger, [f"dingtalk://dsecret@token1?base={base}/dt", f"feishu://hook1?secret=fsecret&base={base}/fs"])
    assert outbox.dispatch(ledger, send_apprise, at=AT).sent == 2
    dingtalk = next(p for p in fresh_inbox.posts if p.path.startswith("/dt"))
    query = parse_qs(urlsplit(dingtalk.path).query)
    stamp = query["timestamp"][0]
    expected = hmac.new(b"dsecret", f"{stamp}\ndsecret".encode(), hashlib.sha256).digest()
    assert query["sign"][0] == base64.b64encode(expected).decode()
    feishu = next(p for p in fresh_inbox.posts if p.path.startswith("/fs")).payload
    key = f"{feishu['timestamp']}\nfsecret".encode()
    assert feishu["sign"] == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def test_a_dingtalk_bot_gets_at_most_20_messages_a_minute(ledger: Session, fresh_inbox: Inbox) -> None:
    bot = f"dingtalk://token1?base=http://127.0.0.1:{fresh_inbox.http_port}/dingtalk"
    for stage in range(25):  # 25 messages to the same bot, as 25 contacts of one unit's group would be
        queue_to(ledger, [bot], stage=f"remind:{stage}d")
    report = outbox.dispatch(ledger, send_apprise, at=AT)
    assert (report.sent, report.retry) == (20, 5) and len(fresh_inbox.posts) == 20
    waiting = [d for d in deliveries(ledger) if d.status == "retry"]
    assert {d.next_attempt_at for d in waiting} == {AT + timedelta(minutes=1)} and {d.attempts for d in waiting} == {0}
    assert outbox.dispatch(ledger, send_apprise, at=AT + timedelta(seconds=59)).sent == 0
    assert outbox.dispatch(ledger, send_apprise, at=AT + timedelta(minutes=1)).sent == 5


@pytest.mark.parametrize(
    ("moment", "opens"),
    [
        ("2026-03-02T10:00", "2026-03-02T10:00"),  # a Monday morning: now
        ("2026-03-02T07:00", "2026-03-02T08:30"),  # too early: at 08:30
        ("2026-03-06T19:00", "2026-03-09T08:30"),  # Friday evening: Monday
        ("2026-02-13T19:00", "2026-02-14T08:30"),  # the Friday before the make-up Saturday
        ("2026-02-14T18:30", "2026-02-24T08:30"),  # across the Spring Festival holiday
    ],
)
def test_the_sending_window_is_office_hours_on_working_days(moment: str, opens: str) -> None:
    from calendars.schema import SendWindowSpec
    from calendars.workdays import WorkdayCalendar
    from tests.conftest import SHANGHAI

    calendar = WorkdayCalendar()
    assert calendar.window_opening(local(moment), SendWindowSpec(), SHANGHAI) == local(opens)
    assert calendar.window_opening(local(moment), SendWindowSpec(always=True), SHANGHAI) == local(moment)
    late = SendWindowSpec(workdays_only=False)
    assert calendar.window_opening(local("2026-03-07T20:00"), late, SHANGHAI) == local("2026-03-08T08:30")


def test_an_escalation_at_night_waits_for_the_morning(sqlite_store: str, program: object, fresh_inbox: Inbox) -> None:
    from datetime import date

    from flows import steps
    from flows.notice_batches import queue_notices
    from flows.runtime import make_context

    with db.session_scope() as session:
        ctx = make_context(session, program)  # type: ignore[arg-type]
        steps.sync_program(session, ctx.program, at=AT)
        steps.plan(session, ctx, start=date(2026, 2, 1), end=date(2026, 2, 8), at=AT, only={"market-spot-check"})
        night = local("2026-02-09T22:00")  # the grace day has passed: 交办 now, but not in the middle of the night
        assert steps.escalate(session, ctx, at=night) == 5  # numbered now; the notices wait, unqueued …
        assert steps.dispatch(session, ctx, at=night).sent == 0 and deliveries(session) == []
        assert queue_notices(session, ctx, at=local("2026-02-10T08:29")) == 0
        morning = local("2026-02-10T08:30")  # … for the first tick in the window, which groups them
        assert queue_notices(session, ctx, at=morning) > 0
        assert steps.dispatch(session, ctx, at=morning).sent == len(deliveries(session))


def test_a_failover_unit_hears_on_its_next_channel_after_a_permanent_failure(
    ledger: Session, fresh_inbox: Inbox
) -> None:
    unit = ledger.get(Unit, "u")
    assert unit is not None
    unit.delivery = "failover"
    first = Contact(
        unit_id="u", name="邮箱", channel="mailto", url=fresh_inbox.mail_url("reject@demo.huzhou.local"), priority=0
    )
    second = Contact(unit_id="u", name="钉钉", channel="json", url=fresh_inbox.hook_url("bot"), priority=1)
    ledger.add_all([first, second])
    ledger.flush()
    outbox.queue(ledger, occurrence_id=1, stage="remind:0d", contacts=[first], title="t", body="b", at=AT)
    ledger.commit()
    report = outbox.dispatch(ledger, send_apprise, at=AT)
    assert (report.failed, report.sent) == (1, 1)
    failed, fallback = deliveries(ledger)
    assert (failed.status, failed.channel, fallback.status, fallback.channel) == ("failed", "mailto", "sent", "json")
    assert "failed over to 钉钉" in failed.log and fallback.stage == failed.stage
    assert [p.path for p in fresh_inbox.posts] == ["/bot"]


def test_a_failover_unit_gets_only_its_first_channel_at_first(
    settings_env: Path, calendars_dir: Path, sqlite_store: str
) -> None:
    from datetime import date

    from calendars.loader import load_program
    from flows import steps
    from flows.runtime import make_context

    units = calendars_dir / "huzhou" / "units.yaml"
    text = units.read_text(encoding="utf-8")
    units.write_text(
        text.replace("    tags: [spot-check]\n", "    tags: [spot-check]\n    delivery: failover\n"), encoding="utf-8"
    )
    with db.session_scope() as session:
        ctx = make_context(session, load_program(calendars_dir))
        steps.sync_program(session, ctx.program, at=AT)
        steps.plan(session, ctx, start=date(2026, 3, 2), end=date(2026, 3, 8), at=AT, only={"market-spot-check"})
        steps.remind(session, ctx, at=local("2026-03-02T09:30"))
        channels = sorted((d.unit_id, d.channel) for d in deliveries(session))
    assert channels == [(f"{d}-msb", "mailto") for d in ("anji", "changxing", "deqing", "nanxun", "wuxing")]


def test_the_sms_example_plugs_into_the_outbox(ledger: Session, fresh_inbox: Inbox) -> None:
    import apprise

    from notify import plugins

    plugins.ready()  # as the loader does before it reads a URL: smsgw:// is the product's own plugin

    gateway = f"smsgw://127.0.0.1:{fresh_inbox.http_port}/sms/send?to=13800000000,13900000000&sign=湖州城管"
    refused = f"smsgw://127.0.0.1:{fresh_inbox.http_port}/errcode/40001?to=13800000000&sign=湖州城管"
    unsigned = f"smsgw://127.0.0.1:{fresh_inbox.http_port}/sms/send?to=13700000000"  # the loader signs such contacts
    assert apprise.Apprise.instantiate(gateway) is not None
    queue_to(ledger, [gateway, refused, unsigned])
    report = outbox.dispatch(ledger, send_apprise, at=AT)
    assert report.sent == 1 and report.failed + report.retry == 2
    assert "no signature" in deliveries(ledger)[2].log
    (post,) = fresh_inbox.posts
    assert post.payload["phones"] == ["13800000000", "13900000000"]
    assert post.payload["content"].startswith("【湖州城管】【工作提醒】测试")


def test_the_operator_page_shows_failures_and_resends_on_purpose(ledger: Session, fresh_inbox: Inbox) -> None:
    from fastapi.testclient import TestClient

    from tests.desk_support import log_in
    from web.app import app, clock

    queue_to(
        ledger,
        [fresh_inbox.mail_url("reject@demo.huzhou.local"), f"json://127.0.0.1:{fresh_inbox.http_port}/slow?rto=0.5"],
    )
    outbox.dispatch(ledger, send_apprise, at=AT)
    app.dependency_overrides[clock] = lambda: AT
    try:
        with TestClient(app) as client:
            csrf = log_in(client, ledger, "operator")
            page = client.get("/desk/deliveries")
            assert page.status_code == 200 and "发送失败" in page.text and "结果未知" in page.text
            assert "550" in page.text  # the reason, as the SMTP server gave it
            failed_id = deliveries(ledger)[0].id
            forged = client.post(f"/desk/deliveries/{failed_id}/resend", data={"csrf": "guessed"})
            assert forged.status_code == 403 and deliveries(ledger)[0].status == "failed"
            done = client.post(f"/desk/deliveries/{failed_id}/resend", data={"csrf": csrf}, follow_redirects=False)
            assert done.status_code == 303 and deliveries(ledger)[0].status == "pending"
    finally:
        app.dependency_overrides.clear()


def test_the_local_demo_can_send_at_any_hour(
    sqlite_store: str, program: object, fresh_inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import date

    from flows import steps
    from flows.runtime import make_context
    from store.settings import get_settings

    monkeypatch.setenv("DUTIES_SEND_WINDOWS", "false")
    get_settings.cache_clear()
    with db.session_scope() as session:
        ctx = make_context(session, program)  # type: ignore[arg-type]
        steps.sync_program(session, ctx.program, at=AT)
        steps.plan(session, ctx, start=date(2026, 2, 1), end=date(2026, 2, 8), at=AT, only={"market-spot-check"})
        night = local("2026-02-09T22:00")
        steps.escalate(session, ctx, at=night)
        assert steps.dispatch(session, ctx, at=night).sent == len(deliveries(session)) > 0


def test_a_dingtalk_message_with_a_link_is_a_card_with_a_button_and_mentions_its_people(
    ledger: Session, fresh_inbox: Inbox
) -> None:
    """Issue 18: a clerk on a phone taps a button, and the unit's named contacts are @-mentioned."""
    base = f"http://127.0.0.1:{fresh_inbox.http_port}"
    item, unit_page = "http://127.0.0.1:8000/c/abc.def", "http://127.0.0.1:8000/u/ghi.jkl"
    contact = Contact(unit_id="u", name="bot", channel="dingtalk", url=f"dingtalk://tok/13800000000?base={base}/card")
    ledger.add(contact)
    ledger.flush()
    body = f"请完成后确认：\n{item}\n本单位全部待办事项：{unit_page}\n"
    outbox.queue(
        ledger, occurrence_id=1, stage="remind:3d", contacts=[contact], title="【工作提醒】抽查", body=body, at=AT
    )
    ledger.commit()
    assert outbox.dispatch(ledger, send_apprise, at=AT).sent == 1
    (post,) = fresh_inbox.posts
    card = post.payload["actionCard"]
    assert post.payload["msgtype"] == "actionCard" and card["singleURL"] == item and card["singleTitle"] == "打开办理"
    assert "@13800000000" in card["text"] and post.payload["at"]["atMobiles"] == ["13800000000"]
    assert "  \n" in card["text"] and unit_page in card["text"]  # every line kept, every link still there


def test_mail_comes_from_the_office_by_name(sqlite_store: str, program: object, fresh_inbox: Inbox) -> None:
    """Issue 18: mail shows the programme's office as the sender's name, not a bare address."""
    from calendars.loader import Program

    assert isinstance(program, Program)
    mail = next(c for unit in program.units.values() for c in unit.contacts if c.channel == "mailto")
    assert "name=%E5%B8%82%E5%9F%8E%E7%AE%A1%E5%8A%9E" in mail.url  # 市城管办
    assert send_apprise(mail.url, "【工作提醒】测试", "正文").ok
    assert fresh_inbox.mails[-1].sender.startswith("市城管办 <")
    assert fresh_inbox.mails[-1].parts == ["text/plain", "text/html"]  # the text as written, and HTML beside it
    own = mail.url.replace(
        "name=%E5%B8%82%E5%9F%8E%E7%AE%A1%E5%8A%9E", "name=%E5%90%B4%E5%85%B4"
    )  # 吴兴 chosen by the unit
    assert send_apprise(own, "【工作提醒】测试", "正文").ok and fresh_inbox.mails[-1].sender.startswith("吴兴 <")


def test_wecom_and_feishu_messages_with_a_link_can_be_acted_on_from_a_phone(
    ledger: Session, fresh_inbox: Inbox
) -> None:
    """Issue 18: WeCom gets markdown with a tappable link (or a text that @-mentions its named mobiles), Feishu an
    interactive card with a button."""
    base = f"http://127.0.0.1:{fresh_inbox.http_port}"
    item = "http://127.0.0.1:8000/c/abc.def"
    urls = [
        f"wecombot://k1?base={base}/wecom-card",
        f"wecombot://k2?base={base}/wecom-at&mobiles=13800000000",
        f"feishu://h1?base={base}/feishu-card",
    ]
    contacts = [Contact(unit_id="u", name=f"c{n}", channel=u.split("://")[0], url=u) for n, u in enumerate(urls)]
    ledger.add_all(contacts)
    ledger.flush()
    outbox.queue(
        ledger,
        occurrence_id=1,
        stage="remind:3d",
        contacts=contacts,
        title="【工作提醒】抽查",
        body=f"确认：{item}\n",
        at=AT,
    )
    ledger.commit()
    assert outbox.dispatch(ledger, send_apprise, at=AT).sent == 3
    by_path = {p.path.split("/")[1]: p.payload for p in fresh_inbox.posts}
    assert (
        by_path["wecom-card"]["msgtype"] == "markdown"
        and f"[打开办理]({item})" in by_path["wecom-card"]["markdown"]["content"]
    )
    assert by_path["wecom-at"]["text"]["mentioned_mobile_list"] == ["13800000000"]
    card = by_path["feishu-card"]["card"]
    assert by_path["feishu-card"]["msg_type"] == "interactive" and card["elements"][1]["actions"][0]["url"] == item


def test_mail_carries_the_text_as_written_and_an_html_part_with_its_layout_and_links(
    ledger: Session, fresh_inbox: Inbox, tmp_path: Path
) -> None:
    """Issue 18: an HTML alternative beside the text; the plain part stays exactly as rendered (indentation too)."""
    import email
    import email.policy

    body = "吴兴区市场监督管理局：\n\n1. 湖城管交〔2026〕5号\n   整改期限：2026年2月14日 17:00 前\n   确认：http://127.0.0.1:8000/c/abc.def\n"
    (delivery,) = queue_to(ledger, [fresh_inbox.mail_url("someone@demo.huzhou.local")])
    ledger.execute(Delivery.__table__.update().values(body=body))  # type: ignore[attr-defined]
    ledger.commit()
    folder = tmp_path / "inbox"
    fresh_inbox.folder = folder
    (folder / "mail").mkdir(parents=True)
    try:
        assert outbox.dispatch(ledger, send_apprise, at=AT).sent == 1
    finally:
        fresh_inbox.folder = None
    raw = next((folder / "mail").iterdir()).read_bytes()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    plain = message.get_body(preferencelist=("plain",))
    rich = message.get_body(preferencelist=("html",))
    assert plain is not None and rich is not None
    assert plain.get_content().replace("\r\n", "\n") == body  # exactly as written
    page = rich.get_content()
    assert "&nbsp;&nbsp;&nbsp;整改期限" in page and '<a href="http://127.0.0.1:8000/c/abc.def">' in page
    assert message["X-Duties-Idempotency-Key"] == delivery.idempotency_key
