"""Every way a send can fail, produced by a real local server, and what the outbox concludes from it.

A failure proves one of three things: the message never left (resend), it may have arrived (resend only where the
receiver dedupes by our key, else ``unknown`` for a person), or the receiver refused it (give up). A chat bot that
gets a message twice posts it twice in the group, so "maybe" must never become "retry" for one.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta

import pytest
from sqlmodel import Session

from notify import outbox
from notify.receivers import Inbox, free_port
from notify.send import failure_mode, send_apprise
from tests.conftest import LEDGER_AT
from tests.failing_servers import HTTP_MODES, failing_server, full_backlog
from tests.test_outbox import deliveries, queue_to

AT = LEDGER_AT  # the ledger fixture's moment (tests/conftest.py)
FAST = "cto=0.5&rto=0.5"


def bot_urls(base: str) -> dict[str, str]:
    """One URL per channel without idempotency, and a webhook (which dedupes), all pointing at ``base``."""
    host_port = base.split("://", 1)[1]
    return {
        "dingtalk": f"dingtalk://token?base={base}&{FAST}",
        "wecombot": f"wecombot://key?base={base}&{FAST}",
        "feishu": f"feishu://hook?base={base}&{FAST}",
        "smsgw": f"smsgw://{host_port}/sms?to=13800000000&sign=湖州城管",
        "json": f"json://{host_port}/hook?{FAST}",
    }


def send_each(session: Session, urls: dict[str, str]) -> dict[str, str]:
    queued = queue_to(session, list(urls.values()))
    outbox.dispatch(session, send_apprise, at=AT)
    statuses = {d.id: d.status for d in deliveries(session)}
    return {channel: statuses[d.id] for channel, d in zip(urls, queued, strict=True)}


MAYBE = {"dingtalk": "unknown", "wecombot": "unknown", "feishu": "unknown", "smsgw": "unknown", "json": "retry"}
NEVER = dict.fromkeys(MAYBE, "retry")


@pytest.mark.parametrize("mode", HTTP_MODES)
def test_a_request_that_arrived_without_an_answer_is_never_resent_to_a_bot(ledger: Session, mode: str) -> None:
    """Read timeout, "Remote end closed connection without response", a reset, a truncated answer."""
    with failing_server(mode) as server:
        urls = bot_urls(f"http://127.0.0.1:{server.port}")
        if mode == "hang":  # the SMS example's timeout is fixed at 8 s: its hang is the same case as the others
            del urls["smsgw"]
        outcomes = send_each(ledger, urls)
        assert server.arrived == len(urls)  # every request did reach the receiver
    assert outcomes == {channel: MAYBE[channel] for channel in urls}
    # The next dispatch, any time later, resends only the webhook, whose receiver dedupes by key.
    report = outbox.dispatch(ledger, send_apprise, at=AT + timedelta(days=1))
    assert report.sent + report.retry == 1


def connection_refused() -> AbstractContextManager[int]:
    return nullcontext(free_port())


@pytest.mark.parametrize(
    ("case", "server"),
    [("refused", connection_refused), ("connect timeout", full_backlog)],
)
def test_a_request_that_never_left_is_sent_again(ledger: Session, case: str, server: object) -> None:
    with server() as port:  # type: ignore[operator]
        outcomes = send_each(ledger, bot_urls(f"http://127.0.0.1:{port}"))
    assert outcomes == NEVER, case
    assert all(failure_mode(d.log) == "never_sent" for d in deliveries(ledger))


def test_a_failed_tls_handshake_is_sent_again(ledger: Session, fresh_inbox: Inbox) -> None:
    """The plain-HTTP inbox behind https:// fails the handshake: nothing of the request was sent."""
    base = f"https://127.0.0.1:{fresh_inbox.http_port}"
    urls = {k: v for k, v in bot_urls(base).items() if k not in ("smsgw", "json")}
    urls["jsons"] = f"jsons://127.0.0.1:{fresh_inbox.http_port}/hook?{FAST}"
    assert send_each(ledger, urls) == dict.fromkeys(urls, "retry")
    assert fresh_inbox.posts == []


def test_refusals_and_busy_answers(ledger: Session, fresh_inbox: Inbox) -> None:
    base = f"http://127.0.0.1:{fresh_inbox.http_port}"
    urls = {
        "http 404": f"json://127.0.0.1:{fresh_inbox.http_port}/status/404",
        "http 429": f"json://127.0.0.1:{fresh_inbox.http_port}/status/429",
        "http 503": f"dingtalk://t?base={base}/status/503",
        "bot errcode": f"wecombot://k?base={base}/errcode/93000",
        "bot too fast": f"dingtalk://t?base={base}/errcode/130101",
        "no mailbox": fresh_inbox.mail_url("reject@demo.huzhou.local"),
    }
    expected = {
        "http 404": "failed",
        "http 429": "retry",
        "http 503": "retry",
        "bot errcode": "failed",
        "bot too fast": "retry",
        "no mailbox": "failed",
    }
    assert send_each(ledger, urls) == expected


def test_an_smtp_server_that_hangs_up_after_the_message_leaves_it_unknown(ledger: Session) -> None:
    with failing_server("smtp-hangup") as server:
        urls = {
            "hangup": f"mailto://127.0.0.1:{server.port}?from=duties@huzhou.local&to=a@demo.huzhou.local",
            "refused": f"mailto://127.0.0.1:{free_port()}?from=duties@huzhou.local&to=a@demo.huzhou.local",
        }
        outcomes = send_each(ledger, urls)
        assert server.arrived == 1
    assert outcomes == {"hangup": "unknown", "refused": "retry"}
