"""The outbox sending several messages at once (issue 16): every outcome recorded as one at a time records it, the
limits per host and per bot held within a batch, apprise's log kept per call across threads, and a killed or stopped
dispatcher that sends in parallel loses nothing and resends nothing to a bot. E-mail's TLS context built once."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import ssl
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col

import notify.mail
from notify import outbox
from notify.receivers import Inbox, free_port
from notify.send import _RECORDER, Outcome, send_apprise
from store import db
from store.models import Delivery
from store.settings import get_settings
from tests.conftest import LEDGER_AT
from tests.failing_servers import failing_server
from tests.test_dispatchers import (
    arrivals_by_contact,
    arrived_count,
    fill_with_bots_and_mail,
    outbox_states,
    start_dispatcher,
    wait_for_arrivals,
)
from tests.test_outbox import deliveries, queue_to

AT = LEDGER_AT


class CountingReceiver:
    """An HTTP receiver that answers 200/errcode 0 after ``delay`` seconds and notes the most requests it held at once,
    in all (``peak``) and per first path segment (``most``), and the paths it received."""

    def __init__(self, delay: float = 0.05) -> None:
        self.delay = delay
        self.lock = threading.Lock()
        self.now: Counter[str] = Counter()
        self.most: Counter[str] = Counter()
        self.peak = 0
        self.paths: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def base(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                group = self.path.strip("/").split("/")[0]
                with receiver.lock:
                    receiver.now[group] += 1
                    receiver.most[group] = max(receiver.most[group], receiver.now[group])
                    receiver.peak = max(receiver.peak, receiver.now.total())
                    receiver.paths.append(self.path.split("?")[0])
                threading.Event().wait(receiver.delay)  # a remote that takes its time
                with receiver.lock:
                    receiver.now[group] -= 1
                body = json.dumps({"errcode": 0, "errmsg": "ok"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[tuple[CountingReceiver, CountingReceiver]]:
    pair = (CountingReceiver(), CountingReceiver())
    yield pair
    for receiver in pair:
        receiver.stop()


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch, sqlite_store: str) -> Iterator[None]:
    """Six at once, at most two to one host."""
    monkeypatch.setenv("DUTIES_SEND_CONCURRENCY", "6")
    monkeypatch.setenv("DUTIES_SEND_PER_HOST", "2")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_sends_overlap_but_never_beyond_the_limits_per_host_and_per_bot(
    ledger: Session, limits: None, receivers: tuple[CountingReceiver, CountingReceiver]
) -> None:
    first, second = receivers
    hooks = [f"json://{host.base}/hook/{n}" for host in receivers for n in range(8)]
    bot = f"dingtalk://token1?base=http://{second.base}/bot"  # the same bot, on its own host
    queue_to(ledger, [*hooks, bot, bot, bot, bot])
    report = outbox.dispatch(ledger, send_apprise, at=AT)
    assert report.sent == 20 and {d.status for d in deliveries(ledger)} == {"sent"}
    assert first.peak == 2 and second.peak == 2  # six senders, but two at most to each host
    assert second.most["bot"] == 1  # the bot: never two at once
    assert len(first.paths) + len(second.paths) == 20 and len(set(first.paths)) == 8  # each exactly once


def test_a_bots_quota_counts_its_messages_in_flight(ledger: Session, receivers: tuple[CountingReceiver, ...]) -> None:
    """25 messages to one DingTalk bot, eight senders: 20 go this minute, one at a time; the rest wait."""
    bot = f"dingtalk://token1?base=http://{receivers[0].base}/bot"
    for stage in range(25):
        queue_to(ledger, [bot], stage=f"remind:{stage}d")
    report = outbox.dispatch(ledger, send_apprise, at=AT, concurrency=8)
    assert (report.sent, report.retry) == (20, 5) and receivers[0].most["bot"] == 1
    waiting = [d for d in deliveries(ledger) if d.status == "retry"]
    assert {d.next_attempt_at for d in waiting} == {AT + timedelta(minutes=1)}


def test_another_dispatchers_sends_in_flight_count_against_the_quota(ledger: Session, fresh_inbox: Inbox) -> None:
    bot = f"dingtalk://token1?base=http://127.0.0.1:{fresh_inbox.http_port}/bot"
    for stage in range(21):
        queue_to(ledger, [bot], stage=f"remind:{stage}d")
    ledger.execute(  # twenty of them are being sent right now by another dispatcher, lease held
        Delivery.__table__.update()  # type: ignore[attr-defined]
        .where(col(Delivery.id) <= 20)
        .values(status="sending", lease_until=AT + outbox.LEASE)
    )
    ledger.commit()
    report = outbox.dispatch(ledger, send_apprise, at=AT, concurrency=8)
    assert (report.sent, report.retry) == (0, 1) and fresh_inbox.posts == []
    assert deliveries(ledger)[20].next_attempt_at == AT + timedelta(minutes=1)


def test_each_parallel_send_is_classified_by_its_own_log(ledger: Session, fresh_inbox: Inbox) -> None:
    """The "Socket Exception" line alone tells a read timeout (maybe arrived: unknown for a bot) from a refused
    connection (never left: retry). With eight sends at once, each delivery must read its own lines."""
    refused = free_port()
    with failing_server("reset") as server:
        urls = [
            url
            for n in range(6)
            for url in (
                f"dingtalk://t{n}?base=http://127.0.0.1:{server.port}/maybe&cto=0.5&rto=0.5",
                f"dingtalk://r{n}?base=http://127.0.0.1:{refused}/never&cto=0.5&rto=0.5",
                f"json://127.0.0.1:{fresh_inbox.http_port}/status/404",
                f"json://127.0.0.1:{fresh_inbox.http_port}/ok/{n}",
            )
        ]
        queue_to(ledger, urls)
        report = outbox.dispatch(ledger, send_apprise, at=AT, concurrency=8)
    assert (report.unknown, report.retry, report.failed, report.sent) == (6, 6, 6, 6)
    expected = ["unknown", "retry", "failed", "sent"] * 6
    assert [d.status for d in deliveries(ledger)] == expected
    for delivery in deliveries(ledger):
        assert ("error=404" in delivery.log) == (delivery.status == "failed")
        assert ("Connection refused" in delivery.log) == (delivery.status == "retry")


def test_apprise_log_capture_is_per_thread_and_the_level_comes_back() -> None:
    """Two calls recording at once: the first to finish must not silence the other's DEBUG lines, and the last one
    puts apprise's logger back as it was (no console flooded with DEBUG afterwards)."""
    logger = logging.getLogger("apprise")
    before = logger.level
    first_in, first_out = threading.Event(), threading.Event()
    kept: dict[str, list[str]] = {}

    def first() -> None:
        with _RECORDER.recording() as lines:
            logger.warning("first's warning")
            first_in.set()
            first_out.wait(5)
        kept["first"] = lines

    thread = threading.Thread(target=first)
    thread.start()
    assert first_in.wait(5)
    with _RECORDER.recording() as lines:
        first_out.set()
        thread.join(5)  # the first call has finished recording …
        logger.debug("Socket Exception: Read timed out.")  # … and this DEBUG line must still be kept, here only
    assert kept["first"][0].endswith("first's warning") and len(kept["first"]) == 1
    assert len(lines) == 1 and lines[0].endswith("Socket Exception: Read timed out.")
    assert logger.level == before and _RECORDER.passing != logging.DEBUG


def test_one_at_a_time_sends_in_order_from_the_calling_thread(ledger: Session, fresh_inbox: Inbox) -> None:
    seen: list[tuple[str, str]] = []

    def sender(url: str, title: str, body: str, *, key: str = "") -> Outcome:
        seen.append((threading.current_thread().name, url))
        return Outcome("sent", "stub")

    urls = [fresh_inbox.hook_url(f"h/{n}") for n in range(30)]
    queue_to(ledger, urls)
    assert outbox.dispatch(ledger, sender, at=AT, concurrency=1).sent == 30
    assert seen == [(threading.current_thread().name, url) for url in urls]
    queue_to(ledger, urls, stage="remind:1d")
    seen.clear()
    assert outbox.dispatch(ledger, sender, at=AT, concurrency=4).sent == 30
    assert {name for name, _ in seen} <= {f"duties-send_{n}" for n in range(4)} and len(seen) == 30


def test_a_sender_that_raises_leaves_its_row_uncertain_and_the_others_recorded(ledger: Session) -> None:
    def sender(url: str, title: str, body: str, *, key: str = "") -> Outcome:
        if url.endswith("/3"):
            raise RuntimeError("a plugin's bug")
        return Outcome("sent", "stub")

    queue_to(ledger, [f"json://127.0.0.1:1/{n}" for n in range(40)])
    with pytest.raises(RuntimeError, match="a plugin's bug"):
        outbox.dispatch(ledger, sender, at=AT, concurrency=4)
    states = Counter(d.status for d in deliveries(ledger))
    assert states["sending"] == 1 and deliveries(ledger)[3].status == "sending"
    assert set(states) <= {"sent", "sending", "pending"} and states["sent"] >= 1  # the rest handed back, none lost


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("json://127.0.0.1:8026/hook", "127.0.0.1:8026"),
        ("mailto://user:secret@smtp.huzhou.gov.cn:465?to=a@b.cn", "smtp.huzhou.gov.cn:465"),
        ("dingtalk://secret@token", "oapi.dingtalk.com"),
        ("wecombot://key", "qyapi.weixin.qq.com"),
        ("feishu://hook?secret=s", "open.feishu.cn"),
        ("dingtalk://token?base=http://127.0.0.1:9000/dt", "127.0.0.1:9000"),
    ],
)
def test_the_host_a_contact_sends_to(url: str, host: str) -> None:
    assert outbox.host_of(url) == host


# ---------------------------------------------------------------- crashes and stops, four at once


@pytest.fixture
def four_at_once(sqlite_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUTIES_SEND_CONCURRENCY", "4")  # the dispatcher processes read it


def test_killing_a_parallel_dispatcher_strands_only_the_messages_in_flight(
    four_at_once: None, fresh_inbox: Inbox
) -> None:
    """SIGKILL at random points of batches sent four at a time: at most four uncertain per kill, every other message
    arrived exactly once, and no uncertain one was sent again."""
    import random

    count, kills = 160, 0
    with db.session_scope() as session:
        fill_with_bots_and_mail(session, fresh_inbox, count)
    chooser = random.Random(20261216)
    step = outbox.LEASE + timedelta(seconds=1)
    for run in range(1, 40):
        process = start_dispatcher(step * run)
        if wait_for_arrivals(fresh_inbox, process, more_than=arrived_count(fresh_inbox)):
            try:
                process.wait(timeout=chooser.uniform(0.0, 0.4))
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                kills += 1
        process.wait()
        if kills >= 6:
            break
    final = start_dispatcher(step * 100)
    assert final.wait(timeout=120) == 0, final.stderr.read() if final.stderr else ""
    with db.session_scope() as session:
        states = outbox_states(session)
    arrived = arrivals_by_contact(fresh_inbox)
    unknown = [name for name, status in states.items() if status == "unknown"]
    assert kills >= 6
    assert len(unknown) <= 4 * kills, f"{len(unknown)} uncertain after {kills} kills"
    assert set(states.values()) <= {"sent", "unknown"}
    assert all(arrived[name] == 1 for name, status in states.items() if status == "sent")  # none lost, none twice
    assert all(arrived[name] <= 1 for name in unknown)  # an uncertain one was never sent again


def test_a_stopped_parallel_dispatcher_finishes_its_sends_and_hands_the_rest_back(
    four_at_once: None, fresh_inbox: Inbox
) -> None:
    count = 60
    with db.session_scope() as session:
        fill_with_bots_and_mail(session, fresh_inbox, count)
    process = start_dispatcher(timedelta(0))
    assert wait_for_arrivals(fresh_inbox, process, more_than=2), "the dispatcher ended before it could be stopped"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 143
    with db.session_scope() as session:
        stopped = outbox_states(session)
    assert set(stopped.values()) <= {"sent", "pending"} and "pending" in stopped.values()  # the sends in flight ended
    final = start_dispatcher(timedelta(minutes=1))
    assert final.wait(timeout=120) == 0, final.stderr.read() if final.stderr else ""
    with db.session_scope() as session:
        assert set(outbox_states(session).values()) == {"sent"}
    assert arrivals_by_contact(fresh_inbox) == {name: 1 for name in stopped}


# ---------------------------------------------------------------- e-mail's TLS context


@pytest.fixture
def smtps(tmp_path: Path) -> Iterator[tuple[int, list[str]]]:
    """An SMTP server on implicit TLS with a self-signed certificate; the recipients of what it accepted."""
    from aiosmtpd.controller import Controller

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    request = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost"]
    subprocess.run(
        [*request, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    received: list[str] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.extend(envelope.rcpt_tos)
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, ssl_context=context)
    controller.start()
    try:
        yield port, received
    finally:
        with contextlib.suppress(Exception):
            controller.stop()


def test_mail_builds_its_tls_contexts_once_and_verify_still_means_verify(
    smtps: tuple[int, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, received = smtps
    built: list[ssl.SSLContext] = []
    original = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(original(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(notify.mail, "_CONTEXTS", {})  # as in a new process
    monkeypatch.setattr(ssl, "create_default_context", counting)

    def url(to: str, verify: str) -> str:
        return f"mailtos://127.0.0.1:{port}?mode=ssl&from=duties@huzhou.local&to={to}&verify={verify}"

    outcomes = [
        send_apprise(url("a@x.local", "no"), "t", "b"),
        send_apprise(url("b@x.local", "yes"), "t", "b"),  # self-signed: refused before anything is sent
        send_apprise(url("c@x.local", "no"), "t", "b"),
        send_apprise(url("d@x.local", "yes"), "t", "b"),
    ]
    assert [o.status for o in outcomes] == ["sent", "retry", "sent", "retry"]
    assert "CERTIFICATE_VERIFY_FAILED" in outcomes[1].log and "CERTIFICATE_VERIFY_FAILED" in outcomes[3].log
    assert received == ["a@x.local", "c@x.local"]
    assert len(built) == 2  # one context per process and mode, not one per connection
    verifying, trusting = notify.mail.tls_context(True), notify.mail.tls_context(False)
    assert (verifying.verify_mode, verifying.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert (trusting.verify_mode, trusting.check_hostname) == (ssl.CERT_NONE, False)
