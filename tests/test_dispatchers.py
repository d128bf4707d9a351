"""Dispatcher processes under stress: killed with SIGKILL at random points, and two at once on PostgreSQL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import Session, col

from notify import outbox
from notify.receivers import Inbox
from store import db
from store.models import Contact, Delivery
from store.scratch import one_occurrence
from tests.conftest import local

T0 = local("2026-03-02T09:30")


def fill_outbox(session: Session, inbox: Inbox, count: int, path: str = "hook") -> None:
    """``count`` deliveries, each to its own webhook path so every arrival can be traced to its delivery."""
    occurrence_id = one_occurrence(session, at=T0)
    contacts = [
        Contact(unit_id="u", name=f"hook-{n}", channel="json", url=inbox.hook_url(f"{path}/{n}")) for n in range(count)
    ]
    session.add_all(contacts)
    session.flush()
    outbox.queue(session, occurrence_id=occurrence_id, stage="remind:0d", contacts=contacts, title="t", body="b", at=T0)
    session.commit()


def start_dispatcher(at_offset: timedelta) -> subprocess.Popen[bytes]:
    command = [str(Path(sys.executable).parent / "duties"), "dispatch", "--at", (T0 + at_offset).isoformat()]
    return subprocess.Popen(command, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def arrivals_by_delivery(inbox: Inbox) -> dict[str, set[str]]:
    keys: dict[str, set[str]] = defaultdict(set)
    for post in inbox.posts:
        keys[post.path].add(post.key)
    return keys


@pytest.fixture
def webhook_store(sqlite_store: str, fresh_inbox: Inbox) -> Iterator[Inbox]:
    yield fresh_inbox


def test_killing_the_dispatcher_loses_nothing(webhook_store: Inbox) -> None:
    inbox, count, kills = webhook_store, 250, 0
    with db.session_scope() as session:
        # A receiver that takes 100 ms an answer: a run sends at most about ten messages before its kill, so the
        # outbox cannot empty before the twentieth kill however fast the machine starts a process.
        fill_outbox(session, inbox, count, path="delay/100/hook")
    chooser = random.Random(20261125)  # random points, the same ones in every run
    step = outbox.LEASE + timedelta(seconds=1)  # each restart comes after the previous leases expired
    for run in range(1, 60):
        process = start_dispatcher(step * run)
        try:
            process.wait(timeout=chooser.uniform(0.3, 1.5))  # the kill lands at start-up, mid-batch or between
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
        if kills >= 20:
            break
    assert kills >= 20
    final = start_dispatcher(step * 100)  # then one that is left to finish
    assert final.wait(timeout=120) == 0, final.stderr.read() if final.stderr else ""
    with db.session_scope() as session:
        status = col(Delivery.status)
        states = dict(session.execute(select(status, func.count()).group_by(status)).tuples().all())
        keys = dict(session.execute(select(col(Delivery.contact_id), col(Delivery.idempotency_key))).tuples().all())
        paths = {c.id: "/" + c.url.split("/", 3)[3] for c in session.execute(select(Contact)).scalars()}
    assert states == {"sent": count}, states
    arrived = arrivals_by_delivery(inbox)
    assert len(arrived) == count  # no message lost
    for contact_id, key in keys.items():
        assert arrived[paths[contact_id]] == {key}  # every copy of a message carries its own key
    assert len(inbox.posts) >= count
    print(f"crash test: {kills} SIGKILLs, {len(inbox.posts)} arrivals for {count} messages, none lost")


@pytest.mark.postgres
def test_two_dispatchers_on_postgresql_send_each_message_once(store: str, fresh_inbox: Inbox) -> None:
    if not store.startswith("postgresql"):
        pytest.skip("this case is about PostgreSQL's row locks; SQLite is covered by the crash test")
    count = 2000
    with db.session_scope() as session:
        fill_outbox(session, fresh_inbox, count)
    first, second = start_dispatcher(timedelta(0)), start_dispatcher(timedelta(0))
    assert first.wait(timeout=300) == 0 and second.wait(timeout=300) == 0
    assert len(fresh_inbox.posts) == count
    assert len({post.key for post in fresh_inbox.posts}) == count  # zero duplicates
    with db.session_scope() as session:
        assert session.execute(select(func.count()).where(col(Delivery.status) == "sent")).scalar_one() == count


def fill_with_bots_and_mail(session: Session, inbox: Inbox, count: int) -> None:
    """``count`` deliveries, alternately to a DingTalk bot and a mailbox that take 100 ms each, each traceable."""
    occurrence_id = one_occurrence(session, at=T0)
    base = f"http://127.0.0.1:{inbox.http_port}/delay/100"
    contacts = [
        Contact(unit_id="u", name=f"bot-{n}", channel="dingtalk", url=f"dingtalk://t{n}?base={base}/bot/{n}")
        if n % 2
        else Contact(unit_id="u", name=f"mail-{n}", channel="mailto", url=inbox.mail_url(f"delay100-{n}@x.local"))
        for n in range(count)
    ]
    session.add_all(contacts)
    session.flush()
    outbox.queue(session, occurrence_id=occurrence_id, stage="remind:0d", contacts=contacts, title="t", body="b", at=T0)
    session.commit()


def arrivals_by_contact(inbox: Inbox) -> dict[str, int]:
    """How often each contact's message arrived, by the contact's name."""
    counts: dict[str, int] = defaultdict(int)
    for post in inbox.posts:
        counts[f"bot-{post.path.split('/')[4]}"] += 1
    for mail in inbox.mails:
        counts[f"mail-{mail.recipients[0].split('-')[1].split('@')[0]}"] += 1
    return counts


def arrived_count(inbox: Inbox) -> int:
    return len(inbox.posts) + len(inbox.mails)


def wait_for_arrivals(inbox: Inbox, process: subprocess.Popen[bytes], *, more_than: int) -> bool:
    """Wait until the running dispatcher has delivered something; False if it ended first."""
    while arrived_count(inbox) <= more_than:
        if process.poll() is not None:
            return False
        threading.Event().wait(0.01)
    return True


def outbox_states(session: Session) -> dict[str, str]:
    query = select(col(Contact.name), col(Delivery.status)).join(Contact, col(Contact.id) == col(Delivery.contact_id))
    return dict(session.execute(query).tuples().all())


def test_killing_the_dispatcher_strands_only_the_message_in_flight(
    sqlite_store: str, fresh_inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bots and mailboxes do not dedupe: a kill may leave one message uncertain, never its whole batch. One at a time
    here; tests/test_parallel_dispatch.py kills dispatchers that send several at once."""
    monkeypatch.setenv("DUTIES_SEND_CONCURRENCY", "1")
    count, kills = 120, 0
    with db.session_scope() as session:
        fill_with_bots_and_mail(session, fresh_inbox, count)
    chooser = random.Random(20261203)
    step = outbox.LEASE + timedelta(seconds=1)
    for run in range(1, 40):
        process = start_dispatcher(step * run)
        if wait_for_arrivals(fresh_inbox, process, more_than=arrived_count(fresh_inbox)):
            try:  # then a kill at a random point of the batch: in a send, or between two
                process.wait(timeout=chooser.uniform(0.0, 0.5))
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                kills += 1
        process.wait()
        if kills >= 8:
            break
    final = start_dispatcher(step * 100)
    assert final.wait(timeout=120) == 0, final.stderr.read() if final.stderr else ""
    with db.session_scope() as session:
        states = outbox_states(session)
    arrived = arrivals_by_contact(fresh_inbox)
    unknown = [name for name, status in states.items() if status == "unknown"]
    assert kills >= 8
    assert len(unknown) <= kills, f"{len(unknown)} uncertain after {kills} kills"
    assert {status for status in states.values()} <= {"sent", "unknown"}
    assert all(arrived[name] == 1 for name, status in states.items() if status == "sent")  # none lost, none twice
    assert all(arrived[name] <= 1 for name in unknown)  # an uncertain one was never sent again
    print(f"crash test (bots, mail): {kills} SIGKILLs, {len(unknown)} uncertain of {count}")


def test_a_stopped_dispatcher_finishes_its_send_and_hands_the_rest_back(sqlite_store: str, fresh_inbox: Inbox) -> None:
    """SIGTERM is a normal service stop: nothing becomes uncertain, nothing is sent twice."""
    count = 60
    with db.session_scope() as session:
        fill_with_bots_and_mail(session, fresh_inbox, count)
    process = start_dispatcher(timedelta(0))
    assert wait_for_arrivals(fresh_inbox, process, more_than=2), "the dispatcher ended before it could be stopped"
    process.send_signal(signal.SIGTERM)  # mid-batch
    assert process.wait(timeout=10) == 143
    with db.session_scope() as session:
        stopped = outbox_states(session)
    assert set(stopped.values()) <= {"sent", "pending"} and "pending" in stopped.values()
    final = start_dispatcher(timedelta(minutes=1))  # at once: nothing waits for a lease to expire
    assert final.wait(timeout=120) == 0, final.stderr.read() if final.stderr else ""
    with db.session_scope() as session:
        assert set(outbox_states(session).values()) == {"sent"}
    assert arrivals_by_contact(fresh_inbox) == {name: 1 for name in stopped}
