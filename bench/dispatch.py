"""Dispatch through the outbox against raw apprise, same messages, same loopback receiver, same process.

    python -m bench.dispatch [--messages 300] [--rounds 5]

Prints seconds per round (median, after a warm-up, alternating which side goes first) and the ratio raw / outbox:
1.0 means the outbox costs nothing on top of apprise; the goal is at least 0.8, with every delivery durably recorded
(claimed, then its outcome committed).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import apprise
from sqlmodel import Session

from notify import outbox
from notify.receivers import Inbox
from notify.send import send_apprise
from store.db import create_tables, make_engine
from store.models import Contact, Delivery
from store.queries import count_rows
from store.scratch import one_occurrence

AT = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)


def raw_apprise(urls: list[str]) -> float:
    started = time.perf_counter()
    for url in urls:
        notifier = apprise.Apprise()
        notifier.add(url)
        assert notifier.notify(body="正文", title="【工作提醒】测试", body_format=apprise.NotifyFormat.TEXT)
    return time.perf_counter() - started


def through_outbox(urls: list[str], folder: Path) -> float:
    engine = make_engine(f"sqlite:///{folder / 'bench.db'}")
    create_tables(engine)
    with Session(engine, expire_on_commit=False) as session:
        occurrence_id = one_occurrence(session, at=AT)
        contacts = [Contact(unit_id="u", name=str(n), channel="json", url=url) for n, url in enumerate(urls)]
        session.add_all(contacts)
        session.flush()
        outbox.queue(
            session,
            occurrence_id=occurrence_id,
            stage="remind:0d",
            contacts=contacts,
            title="【工作提醒】测试",
            body="正文",
            at=AT,
        )
        session.commit()
        started = time.perf_counter()
        report = outbox.dispatch(session, send_apprise, at=AT)
        elapsed = time.perf_counter() - started
        assert report.sent == len(urls) == count_rows(session, Delivery)
    engine.dispose()
    return elapsed


def outbox_round(urls: list[str]) -> float:
    with tempfile.TemporaryDirectory() as folder:
        return through_outbox(urls, Path(folder))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    inbox = Inbox().start()
    try:
        urls = [inbox.hook_url(f"hook/{n}") for n in range(args.messages)]
        raw_apprise(urls[:20])  # warm-up: apprise loads its plugins on first use, which is no part of either figure
        raw, boxed = [], []
        for round_number in range(args.rounds):
            # Alternate which goes first, so a slow spell on a noisy machine falls on both sides alike.
            pair = [lambda: raw.append(raw_apprise(urls)), lambda: boxed.append(outbox_round(urls))]
            for run in pair if round_number % 2 == 0 else reversed(pair):
                run()
            print(f"round {round_number + 1}: raw apprise {raw[-1]:.3f} s, outbox {boxed[-1]:.3f} s", flush=True)
    finally:
        inbox.stop()
    raw_s, box_s = statistics.median(raw), statistics.median(boxed)
    print()
    print(f"| dispatch, {args.messages} webhook messages to 127.0.0.1 | seconds (median of {args.rounds}) | msg/s |")
    print("|---|---|---|")
    print(f"| raw apprise, one Apprise per message | {raw_s:.3f} | {args.messages / raw_s:.0f} |")
    print(f"| duties outbox (SQLite, claim + record each) | {box_s:.3f} | {args.messages / box_s:.0f} |")
    print(f"| ratio raw / outbox (goal ≥ 0.8) | {raw_s / box_s:.2f} | |")


if __name__ == "__main__":
    main()
