"""The outbox: every message is a delivery row before it is sent, and its state says what happens next.

pending → claimed (held with a lease) → sending (committed just before its own send) → sent | retry (backoff with
jitter, up to max_attempts) | failed | unknown.

Only the rows in flight can be uncertain. A dispatcher sends up to DUTIES_SEND_CONCURRENCY messages at once (default
8; 1 sends them one by one), so one that dies leaves at most that many ``sending`` rows behind, and ``claimed`` rows
that provably never started. Once their lease has expired, claimed rows are sent again; a sending row is resent where
the receiver dedupes by idempotency key (webhooks) and marked ``unknown`` elsewhere, for a person to decide. A
dispatcher asked to stop (SIGTERM, a service stop) finishes the sends in flight and hands the rest of its batch back
at once. Several dispatchers may run at once: each row is claimed with a conditional update, so one of them sends it.
"""

from __future__ import annotations

import hashlib
import random
import signal
import sys
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import bindparam, or_, select, update
from sqlmodel import Session

from notify.send import KEYED_SCHEMES, Outcome, Sender
from store.models import Contact, Delivery, Unit
from store.queries import audit, claim, insert_ignoring_conflicts
from store.settings import get_settings

LEASE = timedelta(minutes=10)
FIRST_BACKOFF = timedelta(minutes=1)
MAX_BACKOFF = timedelta(hours=2)
# Rows claimed at a time. A dispatcher holds at most CLAIM × min(concurrency, per host) waiting rows: even all to one
# host, each of its places sends at most 20 of them one after another, and 20 sends at their worst timeouts (15 s) fit
# in the lease.
CLAIM = 20
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
    concurrency: int | None = None,
) -> DispatchReport:
    """Send what is due: pending rows and retries whose time has come. Returns what happened to them.

    ``only``: just these rows, if they are due (a case's first message, sent in the request that filed it); the rows
    are claimed as always, so a dispatcher running at the same moment sends each of them once.

    ``concurrency`` (default DUTIES_SEND_CONCURRENCY): messages in flight at once, through a pool of threads that only
    send; this thread claims, marks and records. 1 sends one by one in this thread.

    ``stop`` is asked before every send: when it says yes, the sends in flight finish and are recorded, and the rest
    of the claimed rows are handed back unsent. Without one, SIGTERM and SIGINT raise it (``stopping_on_signals``),
    and the process then exits.
    """
    if stop is None:
        with stopping_on_signals() as signalled:
            return dispatch(session, send, at=at, limit=limit, stop=signalled, only=only, concurrency=concurrency)
    settings = get_settings()
    workers = concurrency or settings.send_concurrency
    if only is not None:
        workers = max(1, min(workers, len(only)))  # a case's one message: sent in this thread, no pool
    report = DispatchReport(recovered=recover_expired(session, at=at))
    with _pool(workers) as pool:
        _Batch(session, send, pool, at=at, workers=workers, per_host=settings.send_per_host).run(
            report, limit=limit, stop=stop, only=only
        )
    return report


@contextmanager
def _pool(workers: int) -> Iterator[Executor]:
    """Threads that only send, or this thread itself for one at a time (today's sequential path, no thread hop)."""
    if workers == 1:
        yield _InThisThread()
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="duties-send") as pool:
        yield pool


class _InThisThread(Executor):
    """An executor that runs each call at once, in the caller's thread."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the caller through the future, as a pool would
            future.set_exception(exc)
        return future


@dataclass
class _Row:
    """A claimed delivery with what the limits need, worked out once when it is claimed."""

    delivery: Delivery
    contact: Contact | None
    host: str = ""
    bot: str = ""  # the URL of a rate-limited bot, else empty

    @classmethod
    def of(cls, delivery: Delivery, contact: Contact | None) -> _Row:
        if contact is None:
            return cls(delivery, None)
        return cls(delivery, contact, host_of(contact.url), contact.url if contact.channel in RATE_LIMITS else "")


class _Batch:
    """One dispatch: claimed rows wait in ``ready``; those in ``flying`` are being sent by the pool.

    Only this thread touches the session, so SQLite sees one writer and every write is short. A row is marked
    ``sending`` and committed before its send is submitted; its outcome is recorded when the send returns and
    committed at the next wake-up. A kill therefore leaves at most ``workers`` rows uncertain: the ones in flight.
    Limits within the batch: at most ``per_host`` sends to one host at once, and a rate-limited bot (DingTalk, WeCom,
    Feishu) gets one send at a time, each counted against its per-minute quota before it starts.
    """

    def __init__(self, session: Session, send: Sender, pool: Executor, *, at: datetime, workers: int, per_host: int):
        self.session, self.send, self.pool, self.at = session, send, pool, at
        self.workers, self.per_host = workers, per_host
        self.ready: deque[_Row] = deque()
        self.flying: dict[Future[Outcome | None], _Row] = {}
        self.hosts: Counter[str] = Counter()
        self.bots: set[str] = set()  # rate-limited bots with a send in flight
        self.claimed = 0
        self.drained = False  # the last claim found fewer rows than it asked for
        self.stopping = False
        self.error: BaseException | None = None

    def run(
        self, report: DispatchReport, *, limit: int | None, stop: Callable[[], bool], only: list[int] | None
    ) -> None:
        done: set[Future[Outcome | None]] = set()
        while True:
            for future in done:
                self._count(report, self._finish(future))
            self.stopping = self.stopping or stop()  # asked before claiming more, and before each send below
            claimed = self._refill(limit, only)
            self._launch(report, stop)
            if not self.flying:
                self.session.commit()  # the last outcomes
                if self.ready or (claimed and not self.stopping):
                    done = set()
                    continue  # all claimed rows were deferred or skipped: look for more
                break
            done, _ = wait(self.flying, return_when=FIRST_COMPLETED)
        if self.error is not None:
            raise self.error

    def _refill(self, limit: int | None, only: list[int] | None) -> int:
        """Claim more rows when the ready ones cannot fill the free places; the number claimed."""
        idle = not self.flying and not self.ready
        if self.stopping or (self.drained and not idle):  # a failover may have queued rows: look again when idle
            return 0
        enough = len(self.ready) >= CLAIM * min(self.workers, self.per_host)  # see CLAIM: the lease must cover them
        if enough or self._startable(self.workers - len(self.flying)):
            return 0
        size = CLAIM if limit is None else min(CLAIM, limit - self.claimed)
        if size <= 0:
            return 0
        ids = _claim_batch(self.session, self.at, size, only=only)
        self.claimed += len(ids)
        self.drained = len(ids) < size
        self.ready.extend(_Row.of(delivery, contact) for delivery, contact in (_load(self.session, ids) if ids else []))
        return len(ids)

    def _startable(self, wanted: int) -> bool:
        """Whether at least ``wanted`` ready rows could start now."""
        found = 0
        for row in self.ready:
            if found >= wanted:
                break
            found += self._may_start(row)
        return found >= wanted

    def _launch(self, report: DispatchReport, stop: Callable[[], bool]) -> None:
        """Start what fits: mark each row sending, commit them together, then hand them to the pool."""
        starting: list[_Row] = []
        waiting: list[_Row] = []
        while self.ready and len(self.flying) + len(starting) < self.workers:
            self.stopping = self.stopping or stop()
            if self.stopping:
                break
            row = self.ready.popleft()
            if not self._may_start(row):
                waiting.append(row)
                continue
            outcome = self._begin(row)
            if outcome is None:
                starting.append(row)
                self._hold(row, +1)
            else:
                self._count(report, outcome)
        self.ready.extendleft(reversed(waiting))
        if self.stopping and self.ready:
            report.released += _release(self.session, [row.delivery.id or 0 for row in self.ready])
            self.ready.clear()
        self.session.commit()  # the rows about to be sent are durably "sending", with the outcomes recorded so far
        for row in starting:
            self.flying[self.pool.submit(self._send, row)] = row

    def _send(self, row: _Row) -> Outcome | None:
        """In a sending thread: no session here."""
        if row.contact is None:
            return None
        return self.send(row.contact.url, row.delivery.title, row.delivery.body, key=row.delivery.idempotency_key)

    def _may_start(self, row: _Row) -> bool:
        return row.bot not in self.bots and self.hosts[row.host] < self.per_host

    def _hold(self, row: _Row, change: int) -> None:
        self.hosts[row.host] += change
        if row.bot:
            (self.bots.add if change > 0 else self.bots.discard)(row.bot)

    def _begin(self, row: _Row) -> str | None:
        """Mark the row as in flight (uncommitted yet), or say why it is not sent now: retry (the bot's quota is used
        up this minute; no attempt spent) or skipped (our lease expired and another dispatcher took the row over)."""
        delivery_id = row.delivery.id or 0
        free_at = _rate_limit_free_at(self.session, row.contact, self.at) if row.bot and row.contact else None
        if free_at is not None:
            deferred = {
                "status": "retry",
                "next_attempt_at": free_at,
                "lease_until": None,
                "log": f"rate limit: wait until {free_at.isoformat()}",
            }
            _record(self.session, delivery_id, deferred)
            return "retry"
        started = self.session.connection().execute(_START, {"delivery_id": delivery_id}).rowcount == 1
        return None if started else "skipped"

    def _finish(self, future: Future[Outcome | None]) -> str:
        """Record a returned send's outcome (committed at the next wake-up); the outcome's name."""
        row = self.flying.pop(future)
        self._hold(row, -1)
        try:
            outcome = future.result()
        except Exception as exc:  # a sender that raised: the row stays "sending", as after a crash
            self.error = self.error or exc
            self.stopping = True
            return "unknown"
        return _conclude(self.session, row.delivery, row.contact, outcome, at=self.at)

    @staticmethod
    def _count(report: DispatchReport, outcome: str) -> None:
        setattr(report, outcome, getattr(report, outcome) + 1)


def host_of(url: str) -> str:
    """The host a contact's messages go to, for the per-host limit: a bot's ``?base=`` or its cloud, else the URL's."""
    parts = urlsplit(url)
    base = parse_qs(parts.query).get("base")
    if base:
        return urlsplit(base[0]).netloc.lower()
    cloud = CLOUDS.get(parts.scheme.lower())
    if cloud:
        return cloud
    return parts.netloc.rsplit("@", 1)[-1].lower()


# Bots name only a token in their URL; their messages all go to their cloud's host.
CLOUDS = {"dingtalk": "oapi.dingtalk.com", "wecombot": "qyapi.weixin.qq.com", "feishu": "open.feishu.cn"}


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


def _conclude(
    session: Session, delivery: Delivery, contact: Contact | None, outcome: Outcome | None, *, at: datetime
) -> str:
    """Record a send's outcome (``None``: the contact was removed). Returns the status: sent, retry, failed or
    unknown."""
    delivery_id = delivery.id or 0
    attempts = delivery.attempts + 1
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

    Counted over the deliveries to the same URL recorded as sent, and those in flight now (counted as sent at ``at``):
    several dispatchers share one quota.
    """
    limit = RATE_LIMITS.get(contact.channel)
    if limit is None:
        return None
    count, window = limit
    col, contacts = Delivery.__table__.c, Contact.__table__.c  # type: ignore[attr-defined]
    counted = ((col.status == "sent") & (col.sent_at > at - window)) | (col.status == "sending")
    recent = [
        sent_at or at  # in flight: it will count as sent now
        for sent_at in session.execute(
            select(col.sent_at)
            .join(Contact.__table__, contacts.id == col.contact_id)  # type: ignore[attr-defined]
            .where(contacts.url == contact.url, counted)
            .order_by(col.sent_at.desc().nulls_first())
            .limit(count)
        ).scalars()
    ]
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
