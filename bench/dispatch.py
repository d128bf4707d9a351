"""Dispatch through the outbox against the identical send call, same messages, same receiver, same run.

    python -m bench.dispatch [--messages 300] [--rounds 5] [--slow-messages 2000] [--slow-rounds 2] [--delay-ms 100]

The send call is what notify/send.py does per message: ``apprise.Apprise.instantiate(url).notify(...)`` on the URL
with its idempotency key. Two cases, each side timed from the first send until the last one returned:

- a receiver that answers at once: the outbox as shipped (DUTIES_SEND_CONCURRENCY, default 8) and one by one, against
  the send call in a plain loop, one after another; apprise's fan-out (``Apprise().add(url).notify``, the old
  baseline) is printed too. Goal: the outbox ≥ 0.8× the sequential send call.
- e-mail to the local SMTP receiver, ``--mails`` of them one by one: the TLS context built once per process (as
  shipped) against one built per connection (apprise's own controller's way).
- a receiver that answers after ``--delay-ms`` (real receivers are 50–300 ms away): the outbox as shipped against a
  ThreadPoolExecutor calling the same send call with the same concurrency limit. Goal: ≥ 0.8×.

The outbox side claims every row, marks it sending and commits before its send, and records every outcome: each
round checks that all messages are recorded as sent. The receiver runs in its own process, as a real one would, so it
does not take the senders' interpreter lock. Sides alternate which goes first, and the median of the rounds is kept.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from multiprocessing.synchronize import Event
from pathlib import Path

import apprise
from sqlalchemy import func, select
from sqlmodel import Session, col

import notify.mail
from notify import outbox, plugins
from notify.receivers import Inbox, free_port
from notify.send import send_apprise, with_key
from store.db import create_tables, make_engine
from store.models import Contact, Delivery
from store.scratch import one_occurrence
from store.settings import get_settings

AT = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
TITLE, BODY = "【工作提醒】测试", "正文"


def send_call(url: str) -> bool:
    """What notify/send.py calls per message, without its log capture and classification."""
    plugin = apprise.Apprise.instantiate(url)
    assert plugin is not None
    return bool(plugin.notify(body=BODY, title=TITLE, body_format=apprise.NotifyFormat.TEXT))


def sequential(urls: list[str]) -> float:
    started = time.perf_counter()
    for url in urls:
        assert send_call(url)
    return time.perf_counter() - started


def concurrent(urls: list[str], workers: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        assert all(pool.map(send_call, urls))
    return time.perf_counter() - started


def fan_out(urls: list[str]) -> float:
    """The old baseline: apprise's own fan-out path, which the product does not take."""
    started = time.perf_counter()
    for url in urls:
        notifier = apprise.Apprise()
        notifier.add(url)
        assert notifier.notify(body=BODY, title=TITLE, body_format=apprise.NotifyFormat.TEXT)
    return time.perf_counter() - started


def through_outbox(urls: list[str], folder: Path, concurrency: int | None) -> float:
    engine = make_engine(f"sqlite:///{folder / 'bench.db'}")
    create_tables(engine)
    with Session(engine, expire_on_commit=False) as session:
        occurrence_id = one_occurrence(session, at=AT)
        contacts = [Contact(unit_id="u", name=str(n), channel="json", url=url) for n, url in enumerate(urls)]
        session.add_all(contacts)
        session.flush()
        outbox.queue(
            session, occurrence_id=occurrence_id, stage="remind:0d", contacts=contacts, title=TITLE, body=BODY, at=AT
        )
        session.commit()
        started = time.perf_counter()
        report = outbox.dispatch(session, send_apprise, at=AT, stop=lambda: False, concurrency=concurrency)
        elapsed = time.perf_counter() - started
        recorded = session.execute(select(func.count()).where(col(Delivery.status) == "sent")).scalar_one()
        assert report.sent == len(urls) == recorded, (report, recorded)
    engine.dispose()
    return elapsed


def outbox_round(urls: list[str], concurrency: int | None = None) -> float:
    with tempfile.TemporaryDirectory() as folder:
        return through_outbox(urls, Path(folder), concurrency)


def keyed(urls: list[str]) -> list[str]:
    """The URLs as the outbox sends them: with an idempotency key header, so both sides send the same request."""
    return [with_key(url, outbox.idempotency_key(1, "remind:0d", n)) for n, url in enumerate(urls)]


def rounds(sides: dict[str, Callable[[], float]], count: int, label: str) -> dict[str, float]:
    """Each side once per round, the order rotating so a slow spell falls on all sides alike; the medians."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for number in range(count):
        order = names[number % len(names) :] + names[: number % len(names)]
        for name in order:
            times[name].append(sides[name]())
        shown = ", ".join(f"{name} {times[name][-1]:.3f} s" for name in names)
        print(f"{label} round {number + 1}: {shown}", flush=True)
    return {name: statistics.median(values) for name, values in times.items()}


def mails(urls: list[str], *, context_per_connection: bool) -> float:
    started = time.perf_counter()
    for url in urls:
        if context_per_connection:
            notify.mail._CONTEXTS.clear()  # as apprise's controller: a new ssl.create_default_context() each time
        assert send_apprise(url, TITLE, BODY).ok
    return time.perf_counter() - started


def mail_case(inbox: Inbox, count: int, rounds_count: int) -> None:
    urls = [inbox.mail_url(f"unit-{n}@demo.huzhou.local") for n in range(count)]
    mails(urls[:5], context_per_connection=False)  # warm-up
    medians = rounds(
        {
            "TLS context per connection": lambda: mails(urls, context_per_connection=True),
            "TLS context per process (shipped)": lambda: mails(urls, context_per_connection=False),
        },
        rounds_count,
        "mail",
    )
    base = medians["TLS context per connection"]
    print()
    print(f"| e-mail, {count} messages one by one to 127.0.0.1 | ms a message (median of {rounds_count}) | speed-up |")
    print("|---|---|---|")
    for name, seconds in medians.items():
        print(f"| {name} | {seconds / count * 1000:.1f} | {base / seconds:.2f} |")
    print()


def _serve(http_port: int, smtp_port: int, ready: Event, done: Event) -> None:
    # A listen backlog as a real server's (nginx: 511) instead of socketserver's 5: with eight senders at once, a
    # full backlog drops connections, and each dropped one waits a second for its SYN to be sent again, on either side.
    ThreadingHTTPServer.request_queue_size = 128
    inbox = Inbox(http_port=http_port, smtp_port=smtp_port).start()
    ready.set()
    done.wait()
    inbox.stop()


def instant_case(inbox: Inbox, messages: int, count: int, workers: int) -> None:
    urls = [inbox.hook_url(f"hook/{n}") for n in range(messages)]
    sent = keyed(urls)
    sequential(sent[:20])  # warm-up: apprise loads its plugins on first use, which is no part of either figure
    outbox_round(urls[:20])
    medians = rounds(
        {
            "send call, sequential": lambda: sequential(sent),
            "apprise fan-out": lambda: fan_out(sent),
            "outbox, concurrency 1": lambda: outbox_round(urls, 1),
            f"outbox, concurrency {workers}": lambda: outbox_round(urls),
        },
        count,
        "0 ms",
    )
    shipped = f"outbox, concurrency {workers}"
    title = f"dispatch, {messages} webhook messages, receiver answers at once"
    table(title, medians, "send call, sequential", messages, count)
    goal = medians["send call, sequential"] / medians[shipped]
    print(f"| goal: outbox as shipped ≥ 0.8× the send call, sequential | | | {goal:.2f} |")
    print()


def delayed_case(inbox: Inbox, messages: int, count: int, workers: int, delay_ms: int) -> None:
    urls = [inbox.hook_url(f"delay/{delay_ms}/hook/{n}") for n in range(messages)]
    sent = keyed(urls)
    medians = rounds(
        {
            f"send call, {workers} threads": lambda: concurrent(sent, workers),
            f"outbox, concurrency {workers}": lambda: outbox_round(urls),
        },
        count,
        f"{delay_ms} ms",
    )
    raw, shipped = f"send call, {workers} threads", f"outbox, concurrency {workers}"
    table(f"dispatch, {messages} webhook messages, receiver answers after {delay_ms} ms", medians, raw, messages, count)
    goal = medians[raw] / medians[shipped]
    print(f"| goal: outbox ≥ 0.8× a raw concurrent sender, same limit, all outcomes recorded | | | {goal:.2f} |")
    print()


def table(title: str, medians: dict[str, float], baseline: str, messages: int, count: int) -> None:
    base = medians[baseline]
    print()
    print(f"| {title} | seconds (median of {count}) | msg/s | ratio to: {baseline} |")
    print("|---|---|---|---|")
    for name, seconds in medians.items():
        print(f"| {name} | {seconds:.3f} | {messages / seconds:.0f} | {base / seconds:.2f} |")


def main() -> None:
    plugins.ready()  # the product's e-mail and bots, as notify/send.py reads every URL with them
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--slow-messages", type=int, default=2000)
    parser.add_argument("--slow-rounds", type=int, default=2)
    parser.add_argument("--delay-ms", type=int, default=100)
    parser.add_argument("--mails", type=int, default=50)
    args = parser.parse_args()
    settings = get_settings()
    workers = settings.send_concurrency
    print(f"DUTIES_SEND_CONCURRENCY={workers}, DUTIES_SEND_PER_HOST={settings.send_per_host}", flush=True)
    inbox = Inbox(http_port=free_port(), smtp_port=free_port())
    spawn = multiprocessing.get_context("spawn")
    ready, done = spawn.Event(), spawn.Event()
    receiver = spawn.Process(target=_serve, args=(inbox.http_port, inbox.smtp_port, ready, done), daemon=True)
    receiver.start()
    try:
        assert ready.wait(60), "the receiver did not start"
        instant_case(inbox, args.messages, args.rounds, workers)
        mail_case(inbox, args.mails, args.rounds)
        delayed_case(inbox, args.slow_messages, args.slow_rounds, workers, args.delay_ms)
    finally:
        done.set()
        receiver.join(10)


if __name__ == "__main__":
    main()
