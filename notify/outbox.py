"""The outbox: every message is a delivery row before it is sent, and its state says what happens next.

pending → claimed (held with a lease) → sending (committed just before its own send) → sent | retry (backoff with
jitter, up to max_attempts) | failed | unknown.

Only the row in flight can be uncertain. A dispatcher that dies leaves at most one ``sending`` row behind, and
``claimed`` rows that provably never started. Once their lease has expired, claimed rows are sent again; a sending
row is resent where the receiver dedupes by idempotency key (webhooks) and marked ``unknown`` elsewhere, for a
person to decide. A dispatcher asked to stop (SIGTERM, a service stop) finishes the send in flight and hands the
rest of its batch back at once. Several dispatchers may run at once: each row is claimed with a conditional update,
so one of them sends it.
"""

from __future__ import annotations

import hashlib
import random
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlmodel import Session

from notify.send import KEYED_SCHEMES, Sender
from store.models import Contact, Delivery, Unit
from store.queries import audit, claim, insert_ignoring_conflicts

LEASE = timedelta(minutes=10)
FIRST_BACKOFF = timedelta(minutes=1)
MAX_BACKOFF = timedelta(hours=2)
CLAIM = 20  # rows a dispatcher holds at once: 20 sends at their worst timeouts (15 s) fit in the lease
# Messages a bot accepts per window: DingTalk custom bots and WeCom group bots allow 20 a minute, Feishu 100.
RATE_LIMITS = {
    "dingtalk": (20, timedelta(minutes=1)),
    "wecombot": (20, timedelta(minutes=1)),
    "feishu": (100, timedelta(minutes=1)),
}


@dataclass
class DispatchReport:
    sent: int = 0
    retry: int = 0
    failed: int = 0
    unknown: int = 0
    recovered: int = 0
    released: int = 0  # claimed rows handed back unsent because the dispatcher was asked to stop
    skipped: int = 0  # rows whose lease expired mid-batch and that another dispatcher took over


def idempotency_key(occurrence_id: int | None, stage: str, contact_id: int) -> str:
    """The same for every attempt at one delivery, different for every other one."""
    return hashlib.sha256(f"duties|{occurrence_id}|{stage}|{contact_id}".encode()).hexdigest()[:32]


def queue(
    session: Session,
    *,
    occurrence_id: int | None,
    stage: str,
    contacts: Sequence[Contact],
    title: str,
    body: str,
    at: datetime,
    not_before: datetime | None = None,
) -> None:
    """Write one delivery per contact, to go out at ``not_before`` (the sending window) or now.

    A second call for the same stage adds nothing.
    """
    rows = delivery_rows(
        occurrence_id=occurrence_id,
        stage=stage,
        contacts=contacts,
        title=title,
        body=body,
        at=at,
        not_before=not_before,
    )
    insert_ignoring_conflicts(session, Delivery, rows)


def delivery_rows(
    *,
    occurrence_id: int | None,
    stage: str,
    contacts: Sequence[Contact],
    title: str,
    body: str,
    at: datetime,
    not_before: datetime | None = None,
) -> list[dict[str, Any]]:
    """The delivery rows ``queue`` writes, for a caller that writes a whole batch's rows at once."""
    later = not_before if not_before is not None and not_before > at else None
    return [
        {
            "occurrence_id": occurrence_id,
            "stage": stage,
            "contact_id": c.id,
            "unit_id": c.unit_id,
            "channel": c.channel,
            "status": "pending",
            "idempotency_key": idempotency_key(occurrence_id, stage, c.id or 0),
            "title": title,
            "body": body,
            "log": "",
            "attempts": 0,
            "max_attempts": 5,
            "created_at": at,
            "next_attempt_at": later,
        }
        for c in contacts
    ]


def backoff(delivery_id: int, attempts: int) -> timedelta:
    """Exponential backoff with ±20 % jitter, the same for the same delivery and attempt (reproducible)."""
    base = min(FIRST_BACKOFF * 2 ** max(attempts - 1, 0), MAX_BACKOFF)
    jitter = random.Random(delivery_id * 1000 + attempts).uniform(0.8, 1.2)
    return base * jitter


def dispatch(
    session: Session,
    send: Sender,
    *,
    at: datetime,
    limit: int | None = None,
    stop: Callable[[], bool] | None = None,
    only: list[int] | None = None,
) -> DispatchReport:
    """Send what is due: pending rows and retries whose time has come. Returns what happened to them.

    ``only``: just these rows, if they are due (a case's first message, sent in the request that filed it); the rows
    are claimed as always, so a dispatcher running at the same moment sends each of them once.

    ``stop`` is asked before every send: when it says yes, the rest of the claimed batch is handed back unsent.
    Without one, SIGTERM and SIGINT raise it (``stopping_on_signals``), and the process then exits.
    """
    if stop is None:
        with stopping_on_signals() as signalled:
            return dispatch(session, send, at=at, limit=limit, stop=signalled, only=only)
    report = DispatchReport(recovered=recover_expired(session, at=at))
    done = 0
    while (limit is None or done < limit) and not stop():
        claimed = _claim_batch(session, at, CLAIM if limit is None else min(CLAIM, limit - done), only=only)
        if not claimed:
            break
        for position, (delivery, contact) in enumerate(_load(session, claimed)):
            if stop():
                report.released = _release(session, claimed[position:])
                break
            outcome = _deliver(session, send, delivery, contact, at=at)
            setattr(report, outcome, getattr(report, outcome) + 1)
        session.commit()  # the batch's last outcome
        done += len(claimed)
    return report


@contextmanager
def stopping_on_signals() -> Iterator[Callable[[], bool]]:
    """A stop flag that SIGTERM and SIGINT raise instead of ending the process in the middle of a send.

    The dispatcher then finishes the message in flight, hands the rest back, and the command exits with 143 (130 for
    SIGINT) as a stopped service should. Outside the main thread signals cannot be caught: the flag never rises.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    previous = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    for number in previous:
        signal.signal(number, lambda number, _frame: received.append(number))
    try:
        yield lambda: bool(received)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if received:
        sys.stderr.write("收到停止信号：正在发送的一条已发完，其余已退回发件箱，由下次发送。\n")
        raise SystemExit(128 + received[0])


def _load(session: Session, ids: list[int]) -> list[tuple[Delivery, Contact | None]]:
    """The claimed rows and their contacts in one query, in claim order."""
    col, contacts = Delivery.__table__.c, Contact.__table__.c  # type: ignore[attr-defined]
    query = (
        select(Delivery, Contact)
        .outerjoin(Contact.__table__, contacts.id == col.contact_id)  # type: ignore[attr-defined]
        .where(col.id.in_(ids))
        .order_by(col.id)
        .execution_options(populate_existing=True)
    )
    return [(row[0], row[1]) for row in session.execute(query).all()]


def _claim_batch(session: Session, at: datetime, size: int, *, only: list[int] | None = None) -> list[int]:
    """Take up to ``size`` due rows for this dispatcher (status claimed, with a lease), committed before sending.

    One statement: ``UPDATE … WHERE id IN (due rows) AND status still due RETURNING id``. PostgreSQL skips rows
    another dispatcher holds (FOR UPDATE SKIP LOCKED); SQLite runs one writer at a time. Either way each row is won
    by exactly one dispatcher.
    """
    col = Delivery.__table__.c  # type: ignore[attr-defined]
    due = col.status.in_(("pending", "retry")) & or_(col.next_attempt_at.is_(None), col.next_attempt_at <= at)
    if only is not None:
        due = due & col.id.in_(only)
    candidates = select(col.id).where(due).order_by(col.id).limit(size)
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    taking = (
        update(Delivery.__table__)  # type: ignore[attr-defined]
        .where(col.id.in_(candidates.scalar_subquery()), due)
        .values(status="claimed", lease_until=at + LEASE)
        .returning(col.id)
    )
    ids = sorted(session.execute(taking).scalars())
    session.commit()
    return ids


def _deliver(session: Session, send: Sender, delivery: Delivery, contact: Contact | None, *, at: datetime) -> str:
    """Send one claimed delivery and record the outcome. Returns it: sent, retry, failed, unknown or skipped."""
    delivery_id = delivery.id or 0
    free_at = _rate_limit_free_at(session, contact, at) if contact else None
    if free_at is not None:  # the bot's quota for this minute is used: wait without spending an attempt
        deferred = {
            "status": "retry",
            "next_attempt_at": free_at,
            "lease_until": None,
            "log": f"rate limit: wait until {free_at.isoformat()}",
        }
        _record(session, delivery_id, deferred)
        return "retry"
    if not _start(session, delivery_id):
        return "skipped"  # our lease expired and another dispatcher took the row over
    attempts = delivery.attempts + 1
    outcome = send(contact.url, delivery.title, delivery.body, key=delivery.idempotency_key) if contact else None
    status = outcome.status if outcome else "failed"
    if status == "retry" and attempts >= delivery.max_attempts:
        status = "failed"
    values: dict[str, Any] = {
        "status": status,
        "log": outcome.log if outcome else "contact removed",
        "lease_until": None,
    }
    if status == "sent":
        values["sent_at"] = at
    if status == "retry":
        values["next_attempt_at"] = at + backoff(delivery_id, attempts)
    if status == "failed" and contact is not None:
        values["log"] += _fail_over(session, delivery, contact, at=at)
    _record(session, delivery_id, values)
    return status


# One statement object for every outcome: the SET clause comes from the keys of the parameters given.
_TABLE = Delivery.__table__  # type: ignore[attr-defined]
_RECORD = update(_TABLE).where(_TABLE.c.id == bindparam("delivery_id"))
_START = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("delivery_id"), _TABLE.c.status == "claimed")
    .values(status="sending", attempts=_TABLE.c.attempts + 1)
)


def _start(session: Session, delivery_id: int) -> bool:
    """Mark the row as in flight and commit, immediately before its send: only this row can now be uncertain.

    The same commit makes the previous row's outcome durable, so a message costs one commit, as before. False when
    the row is no longer ours to send.
    """
    started = session.connection().execute(_START, {"delivery_id": delivery_id}).rowcount == 1
    session.commit()
    return started


def _record(session: Session, delivery_id: int, values: dict[str, Any]) -> None:
    """Write a delivery's new state; the next row's start, or the end of the batch, commits it.

    Core on the connection with a statement built once: this runs once per message, and the ORM and statement
    construction were most of the outbox's own cost per message.
    """
    session.connection().execute(_RECORD, {"delivery_id": delivery_id, **values})


_RELEASE = (
    update(_TABLE)
    .where(_TABLE.c.id.in_(bindparam("ids", expanding=True)), _TABLE.c.status == "claimed")
    .values(status="pending", lease_until=None)
)


def _release(session: Session, ids: list[int]) -> int:
    """Hand claimed rows back unsent, for the next dispatcher to send at once."""
    released = session.connection().execute(_RELEASE, {"ids": ids}).rowcount
    session.commit()
    return int(released)


def _fail_over(session: Session, delivery: Delivery, contact: Contact, *, at: datetime) -> str:
    """For a unit that lists its channels in priority order, queue the same message on the next one."""
    unit = session.get(Unit, contact.unit_id)
    if unit is None or unit.delivery != "failover":
        return ""
    col = Contact.__table__.c  # type: ignore[attr-defined]
    following = session.execute(
        select(Contact)
        .where(col.unit_id == contact.unit_id, col.active.is_(True), col.priority > contact.priority)
        .order_by(col.priority)
        .limit(1)
    ).scalar_one_or_none()
    if following is None:
        return "\nno further channel to fail over to"
    queue(
        session,
        occurrence_id=delivery.occurrence_id,
        stage=delivery.stage,
        contacts=[following],
        title=delivery.title,
        body=delivery.body,
        at=at,
    )
    return f"\nfailed over to {following.name} ({following.channel})"


def _rate_limit_free_at(session: Session, contact: Contact, at: datetime) -> datetime | None:
    """When the bot behind this contact may take another message, if its per-minute quota is used up now.

    Counted over the deliveries recorded as sent to the same URL, so several dispatchers share one quota.
    """
    limit = RATE_LIMITS.get(contact.channel)
    if limit is None:
        return None
    count, window = limit
    col, contacts = Delivery.__table__.c, Contact.__table__.c  # type: ignore[attr-defined]
    recent = list(
        session.execute(
            select(col.sent_at)
            .join(Contact.__table__, contacts.id == col.contact_id)  # type: ignore[attr-defined]
            .where(contacts.url == contact.url, col.status == "sent", col.sent_at > at - window)
            .order_by(col.sent_at.desc())
            .limit(count)
        ).scalars()
    )
    if len(recent) < count:
        return None
    return min(recent) + window


def recover_expired(session: Session, *, at: datetime) -> int:
    """Rows a dispatcher that died left behind, once their lease has expired.

    Claimed rows never started: they are due again at once. The one row it was sending may have arrived: resent where
    the receiver dedupes, else marked unknown.
    """
    col = Delivery.__table__.c  # type: ignore[attr-defined]
    stale = list(
        session.execute(
            select(col.id, col.channel, col.status).where(col.status.in_(("claimed", "sending")), col.lease_until < at)
        ).tuples()
    )
    for delivery_id, channel, status in stale:
        safe = status == "claimed" or channel in KEYED_SCHEMES  # the contact's channel is its URL scheme
        claim(
            session,
            Delivery,
            row_id=delivery_id,
            expect={"status": status},
            values={"status": "retry" if safe else "unknown", "next_attempt_at": at, "lease_until": None},
        )
    session.commit()
    return len(stale)


def resend(session: Session, *, delivery_id: int, at: datetime, actor: str) -> bool:
    """Send one delivery again on purpose (a person decided, e.g. for an unknown or failed one)."""
    delivery = session.get(Delivery, delivery_id)
    if delivery is None or delivery.status in ("pending", "claimed", "sending"):
        return False
    previous = delivery.status
    won = claim(
        session,
        Delivery,
        row_id=delivery_id,
        expect={"status": previous},
        values={"status": "pending", "next_attempt_at": None, "max_attempts": delivery.attempts + 5},
    )
    if won:
        audit(
            session,
            at=at,
            actor=actor,
            action="delivery_resent",
            occurrence_id=delivery.occurrence_id,
            delivery=delivery_id,
            previous=previous,
        )
    session.commit()
    return won
