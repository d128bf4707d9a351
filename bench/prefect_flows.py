"""The Prefect flows against their baselines, on one real local Prefect server started once.

    python -m bench.prefect_flows [--rounds 3] [--reminders 1000] [--workers 8] [--senders loopback stub]

(a) One tick as a flow run (flows.tick.tick_flow) against the same work as a plain call (steps.tick with the same
    loading around it), on the same ledger: the shipped calendars planned ten days ahead on 1 Feb 2026 and ticked on
    Monday 2 Feb at 09:30, when 6 reminders (11 messages) are due. The difference is what Prefect costs a tick.
(b) The whole design against one task per reminder: ``--reminders`` street units, each with one item whose reminder is
    due at the tick. The whole design is one tick flow run (plan the horizon, queue every reminder, send them through
    the outbox in bulk steps). The naive design is a flow that maps a @task over the due items, each task claiming,
    rendering, queueing, sending and recording its own reminder (the same claim and message code, the same outbox
    rows; ``--workers`` threads, 8 by default: 1 and 32 were no faster). The same tick as a plain call shows what
    Prefect itself costs each design. Both designs send through the same sender and are checked to have sent each
    reminder exactly once: ``loopback`` sends with apprise to the loopback HTTP receiver (notify.receivers.Inbox);
    ``stub`` records every message as sent without sending, which leaves the designs' own cost.

Each run starts from a fresh copy of the same prepared SQLite ledger, and rounds alternate which side goes first.
The Prefect server runs as in tests/test_flows.py: SQLite, no UI, with the task-run recorder, event persister and
other background services off; in this process the flow heartbeat is off, logs are not sent to the API and the
console log level is WARNING. That makes per-task overhead here a lower bound: a production server that records
every task run costs the naive design more, not less.

Goal: the whole design at least 20 times faster than one task per reminder.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

REPO = Path(__file__).resolve().parent.parent
ZONE = ZoneInfo("Asia/Shanghai")
SHIPPED_PLANNED_AT = datetime(2026, 2, 1, 8, 0, tzinfo=ZONE)
SHIPPED_TICK = "2026-02-02T09:30"  # Monday: the week-6 spot checks and one unannounced check are due
BULK_PLANNED_AT = datetime(2026, 3, 1, 8, 0, tzinfo=ZONE)
SERVER_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_ENABLED": "false",
    # As in tests/test_flows.py: the recorder and persister write to SQLite on every run.
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    "PREFECT_SERVER_DATABASE_TIMEOUT": "30",
    "PREFECT_LOGGING_TO_API_ENABLED": "false",
}


# ---------------------------------------------------------------- the Prefect server


@contextlib.contextmanager
def prefect_server(home: Path) -> Iterator[str]:
    """A real `prefect server start` on a free loopback port; this process talks to it with the heartbeat off."""
    from notify.receivers import free_port

    port = free_port()
    env = {**os.environ, **SERVER_ENV, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    command = [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--no-ui", "--analytics-off"]
    log_path = home / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=home
        )
    api = f"http://127.0.0.1:{port}/api"
    try:
        _wait_healthy(api, server, log_path)
        from prefect.settings import (
            PREFECT_API_URL,
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
            PREFECT_HOME,
            PREFECT_LOGGING_TO_API_ENABLED,
            temporary_settings,
        )

        updates: dict[Any, Any] = {
            PREFECT_API_URL: api,
            PREFECT_HOME: str(home),
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
            PREFECT_LOGGING_TO_API_ENABLED: False,
        }
        with temporary_settings(updates=updates):
            yield api
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _wait_healthy(api: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"Prefect server exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{api}/health", timeout=1).status_code == 200:
                return
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(0.2)  # wait on the process rather than sleep blind
    raise RuntimeError("Prefect server did not become healthy in 120 s")


# ---------------------------------------------------------------- ledgers


def use_store(path: Path) -> None:
    """Point the settings and the engine at this SQLite file."""
    from store import db
    from store.settings import get_settings

    if db.get_engine.cache_info().currsize:
        db.get_engine().dispose()
    os.environ["DUTIES_DATABASE_URL"] = f"sqlite:///{path}"
    get_settings.cache_clear()
    db.get_engine.cache_clear()


def fresh_copy(template: Path, ledger: Path) -> None:
    """Work on a copy of a closed template ledger (never on the template: its changes would sit in its WAL)."""
    shutil.copy(template, ledger)
    use_store(ledger)


def use_calendars(folder: Path) -> None:
    from store.settings import get_settings

    os.environ["DUTIES_CALENDARS"] = str(folder)
    get_settings.cache_clear()


def prepare(template: Path, calendars: Path, planned_at: datetime, start: date, end: date) -> None:
    """A ledger with the calendars loaded and planned from start to end, closed so it can be copied as a file."""
    from flows import runtime, steps
    from store import db

    use_calendars(calendars)
    use_store(template)
    db.create_tables(db.get_engine())
    program = runtime.load_calendars()
    with db.session_scope() as session:
        steps.sync_program(session, program, at=planned_at)
        steps.plan(session, runtime.make_context(session, program), start=start, end=end, at=planned_at)
    db.get_engine().dispose()


def shipped_calendars(folder: Path, smtp_port: int, http_port: int) -> Path:
    """The shipped calendars, with the demo contacts pointed at this run's receivers (as tests/conftest.py does)."""
    target = folder / "calendars-shipped"
    shutil.copytree(REPO / "calendars", target, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    for path in target.rglob("*.yaml"):
        content = path.read_text(encoding="utf-8")
        content = content.replace("127.0.0.1:8025", f"127.0.0.1:{smtp_port}")
        content = content.replace("127.0.0.1:8026", f"127.0.0.1:{http_port}")
        path.write_text(content, encoding="utf-8")
    return target


BULK_DUTY = """duties:
  - id: bench-monthly
    family: 双月环境卫生大扫除
    title: 基准测试：月度环境卫生大扫除
    clause: 附件1 第1项 举措5
    quote: 开展“整洁家园、干净街道”双月环境卫生大扫除活动。
    lead: [city-office]
    assignees: ["kind:street"]
    recurrence:
      rrule: FREQ=MONTHLY
      period: month
    due: {rule: last_workday, time: "17:00"}
    reminders: [3]
"""


def bulk_calendars(folder: Path, units: int, http_port: int) -> Path:
    """``units`` street units, each with one webhook contact on the loopback receiver, and one monthly duty."""
    target = folder / "calendars-bulk"
    target.mkdir()
    shutil.copy(REPO / "calendars" / "huzhou" / "ladders.yaml", target / "ladders.yaml")
    hook = f"json://127.0.0.1:{http_port}"
    lines = ["units:", "  - id: city-office", "    name: 市城管办", "    kind: city_office", "    contacts:"]
    lines += ["      - name: 值班", f"        url: {hook}/city-office"]
    for number in range(units):
        lines += [f"  - id: street-{number:04d}", f"    name: 第{number}街道", "    kind: street", "    contacts:"]
        lines += ["      - name: 值班", f"        url: {hook}/street-{number:04d}"]
    (target / "units.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (target / "duties.yaml").write_text(BULK_DUTY, encoding="utf-8")
    return target


def bulk_tick_moment(template: Path, units: int) -> str:
    """A minute after the latest March reminder: every unit's reminder is due, and no item is due yet."""
    from sqlalchemy import func, select

    from store import db
    from store.models import Occurrence

    use_store(template)
    col = Occurrence.__table__.c  # type: ignore[attr-defined]
    with db.session_scope() as session:
        query = select(func.count(), func.max(col.first_remind_at)).where(col.period == "2026-03")
        count, latest = session.execute(query).one()
    db.get_engine().dispose()
    if count != units:
        raise RuntimeError(f"expected {units} March items, planned {count}")
    latest = latest.replace(tzinfo=latest.tzinfo or ZONE)
    return (latest + timedelta(minutes=1)).astimezone(ZONE).strftime("%Y-%m-%dT%H:%M")


# ---------------------------------------------------------------- the two sides


def tick_direct(at: str) -> dict[str, Any]:
    """What tick_flow does, as a plain call: the same loading, the same step."""
    from flows import runtime, steps
    from store.db import create_tables, get_engine, session_scope

    when = runtime.parse_moment(at)
    program = runtime.load_calendars()
    create_tables(get_engine())
    with session_scope() as session:
        report = steps.tick(session, runtime.make_context(session, program), at=when)
    return asdict(report)


def tick_flow_run(at: str) -> dict[str, Any]:
    from flows.tick import tick_flow

    state = tick_flow(at=at, return_state=True)
    if not state.is_completed():
        raise RuntimeError(f"tick flow run ended {state.type}: {state.message}")
    return dict(state.result())


def naive_flow_run(at: str, workers: int) -> dict[str, Any]:
    from prefect.task_runners import ThreadPoolTaskRunner

    flow = naive_reminders_flow().with_options(task_runner=ThreadPoolTaskRunner(max_workers=workers))
    state = flow(at=at, return_state=True)
    if not state.is_completed():
        raise RuntimeError(f"naive flow run ended {state.type}: {state.message}")
    return dict(state.result())


@functools.cache
def naive_reminders_flow() -> Any:
    """The design DESIGN.md rules out: one flow run whose tasks each handle one reminder. Built once, on first use,
    so that Prefect is imported only after its settings are in place."""
    from prefect import flow, task, unmapped
    from prefect.cache_policies import NO_CACHE
    from sqlalchemy import select

    from flows import runtime, steps
    from store.db import create_tables, get_engine, session_scope
    from store.models import Occurrence

    shared: dict[str, Any] = {}

    @task(name="remind-one", cache_policy=NO_CACHE)
    def remind_one(occurrence_id: int, when: datetime) -> int:
        """Claim this item's reminder, render and queue its message, send it and record the outcome."""
        ctx = shared["ctx"]
        with session_scope() as session:
            occurrence = session.get(Occurrence, occurrence_id)
            assert occurrence is not None
            # The bulk step's own claim, recipients and message code, on a batch of one.
            queued = steps.remind_batch(session, ctx, [occurrence], at=when)
            session.commit()
            if not queued:
                return 0
            return send_own(session, ctx, occurrence_id, at=when)

    @flow(name="bench-naive-reminders")
    def naive_reminders(at: str) -> dict[str, Any]:
        when = runtime.parse_moment(at)
        program = runtime.load_calendars()
        create_tables(get_engine())
        col = Occurrence.__table__.c  # type: ignore[attr-defined]
        with session_scope() as session:
            shared["ctx"] = runtime.make_context(session, program)
            due = select(col.id).where(col.next_remind_at <= when, col.done_at.is_(None)).order_by(col.id)
            ids = list(session.execute(due).scalars())
        futures = remind_one.map(ids, when=unmapped(when))
        return {"reminded": len(ids), "sent": sum(future.result() for future in futures)}

    return naive_reminders


def send_own(session: Any, ctx: Any, occurrence_id: int, *, at: datetime) -> int:
    """Send this item's pending deliveries as the outbox does: claimed and committed before sending, then recorded."""
    from sqlalchemy import select

    from notify.outbox import LEASE
    from store.models import Contact, Delivery
    from store.queries import claim

    col, contacts = Delivery.__table__.c, Contact.__table__.c  # type: ignore[attr-defined]
    query = (
        select(Delivery, Contact)
        .join(Contact.__table__, contacts.id == col.contact_id)  # type: ignore[attr-defined]
        .where(col.occurrence_id == occurrence_id, col.status == "pending")
    )
    sent = 0
    for delivery, contact in session.execute(query).all():
        taking = {"status": "sending", "attempts": delivery.attempts + 1, "lease_until": at + LEASE}
        if not claim(session, Delivery, row_id=delivery.id, expect={"status": "pending"}, values=taking):
            continue
        session.commit()
        outcome = ctx.send(contact.url, delivery.title, delivery.body, key=delivery.idempotency_key)
        done = {
            "status": outcome.status,
            "log": outcome.log,
            "lease_until": None,
            "sent_at": at if outcome.ok else None,
        }
        claim(session, Delivery, row_id=delivery.id, expect={"status": "sending"}, values=done)
        session.commit()
        sent += int(outcome.ok)
    return sent


# ---------------------------------------------------------------- the run


LEDGERS = itertools.count()


@dataclass
class Side:
    name: str
    run: Callable[[], dict[str, Any]]
    seconds: list[float] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def compare(sides: tuple[Side, ...], template: Path, folder: Path, rounds: int, check: Callable[[Side], None]) -> None:
    """Each side once per round on a fresh copy of the template ledger; the first side alternates."""
    for number in range(rounds):
        for side in sides if number % 2 == 0 else reversed(sides):
            fresh_copy(template, folder / f"ledger-{next(LEDGERS)}.db")
            started = time.perf_counter()
            side.report = side.run()
            side.seconds.append(time.perf_counter() - started)
            check(side)
            print(f"  round {number + 1}: {side.name}: {side.seconds[-1]:.3f} s", flush=True)


def count_sent() -> int:
    from sqlmodel import col, func, select

    from store import db
    from store.models import Delivery

    with db.session_scope() as session:
        return int(session.exec(select(func.count()).where(col(Delivery.status) == "sent")).one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reminders", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=8, help="threads of the naive flow's task runner")
    parser.add_argument(
        "--senders", nargs="+", choices=["loopback", "stub"], default=["loopback", "stub"], help="for (b)"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-prefect-") as name:
        folder = Path(name)
        home = os.getcwd()
        os.chdir(folder)  # Prefect reads .env and prefect.toml from the current folder: keep both out of the way
        os.environ.update(
            PREFECT_HOME=str(folder / "prefect"),
            PREFECT_LOGGING_LEVEL="WARNING",
            DUTIES_VAR_DIR=str(folder / "var"),
            DUTIES_SECRET_KEY="bench-secret-key",
            DUTIES_UNANNOUNCED_SEED="a fixed seed, so the drawn days are the same in every run",
        )
        (folder / "prefect").mkdir()
        # Prefect's console handler on the root logger would print every DEBUG line apprise writes while
        # notify.send records them (the recorder is on apprise's own logger and still sees them all).
        logging.getLogger("apprise").propagate = False
        from notify.receivers import Inbox

        inbox = Inbox().start()
        try:
            with prefect_server(folder / "prefect"):
                print(f"Prefect server up after {time.perf_counter() - started:.1f} s", flush=True)
                rows = run_both(folder, inbox, args)
        finally:
            inbox.stop()
            use_store(folder / "closed.db")  # dispose of the last engine before its folder goes
            os.chdir(home)
    print_table(rows, args)
    print(f"\n({time.perf_counter() - started:.0f} s in all)")


def run_both(folder: Path, inbox: Any, args: argparse.Namespace) -> list[tuple[Side, ...]]:
    def cleared(run: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        def clear_then_run() -> dict[str, Any]:
            inbox.mails.clear()
            inbox.posts.clear()
            return run()

        return clear_then_run

    # (a) one tick: as a flow run, and as a plain call
    shipped = prepare_shipped(folder, inbox)
    direct = Side("(a) steps.tick called directly", cleared(lambda: tick_direct(SHIPPED_TICK)))
    flowed = Side("(a) tick_flow, one flow run", cleared(lambda: tick_flow_run(SHIPPED_TICK)))
    expected_a: dict[str, Any] = {}

    def check_a(side: Side) -> None:
        report = {key: side.report[key] for key in ("reminded", "sent", "failed")}
        expected_a.setdefault("report", report)
        if report != expected_a["report"] or report["failed"] or not report["sent"]:
            raise RuntimeError(f"{side.name}: {report}, expected {expected_a['report']}")

    # Warm-up, not measured, on its own copy: Prefect's client, the first flow run, the first template renders.
    fresh_copy(shipped, folder / "warm-up.db")
    tick_flow_run(SHIPPED_TICK)
    print(f"(a) one tick on the shipped calendars at {SHIPPED_TICK}", flush=True)
    compare((direct, flowed), shipped, folder, args.rounds * 2, check_a)
    rows: list[tuple[Side, ...]] = [(direct, flowed)]

    # (b) the whole design against one task per reminder, once per sender; the plain tick shows Prefect's share
    bulk, at = prepare_bulk(folder, inbox, args.reminders)
    for sender in args.senders:
        label = "loopback HTTP receiver" if sender == "loopback" else "stub sender"
        whole = Side(f"(b) whole design: one tick_flow run, {label}", cleared(lambda: tick_flow_run(at)))
        naive = Side(
            f"(b) one task per reminder ({args.workers} threads), {label}",
            cleared(lambda: naive_flow_run(at, args.workers)),
        )
        plain = Side(f"(b) the same tick as a plain call (no Prefect), {label}", cleared(lambda: tick_direct(at)))

        def check_b(side: Side, received: int = args.reminders if sender == "loopback" else 0) -> None:
            sent = count_sent()
            if {side.report.get("reminded"), sent} != {args.reminders} or len(inbox.posts) != received:
                raise RuntimeError(f"{side.name}: {side.report}, {sent} sent, {len(inbox.posts)} received")

        print(f"(b) {args.reminders} reminders due at {at}, {label}", flush=True)
        with sending(sender):
            compare((whole, naive, plain), bulk, folder, args.rounds, check_b)
        rows.append((naive, whole, plain))
    return rows


@contextlib.contextmanager
def sending(sender: str) -> Iterator[None]:
    """Every step context made in this process (tick_flow's and the naive flow's) sends with ``sender``."""
    from flows import runtime
    from notify.send import Outcome

    def stub(url: str, title: str, body: str, *, key: str = "") -> Outcome:
        return Outcome("sent", "stub")

    original = runtime.make_context
    if sender == "stub":
        runtime.make_context = functools.partial(original, send=stub)
    try:
        yield
    finally:
        runtime.make_context = original


def prepare_shipped(folder: Path, inbox: Any) -> Path:
    template = folder / "shipped.db"
    calendars = shipped_calendars(folder, inbox.smtp_port, inbox.http_port)
    start = SHIPPED_PLANNED_AT.date()
    prepare(template, calendars, SHIPPED_PLANNED_AT, start, start + timedelta(days=10))  # plan_flow(days=10)
    return template


def prepare_bulk(folder: Path, inbox: Any, units: int) -> tuple[Path, str]:
    template = folder / "bulk.db"
    calendars = bulk_calendars(folder, units, inbox.http_port)
    # Planned past the tick's horizon, so the tick plans nothing new and its work is the reminders.
    prepare(template, calendars, BULK_PLANNED_AT, date(2026, 3, 1), date(2026, 6, 30))
    return template, bulk_tick_moment(template, units)


def print_table(rows: list[tuple[Side, ...]], args: argparse.Namespace) -> None:
    (direct, flowed), *bulk = rows
    n = args.reminders
    print()
    print("| Prefect 3 flows, local server, median of the rounds | seconds | per reminder | ratio |")
    print("|---|---|---|---|")
    print(f"| {direct.name} (baseline) | {direct.median:.3f} | | |")
    print(
        f"| {flowed.name} | {flowed.median:.3f} | | {flowed.median / direct.median:.2f}×: Prefect adds "
        f"{(flowed.median - direct.median) * 1000:.0f} ms a tick |"
    )
    for naive, whole, plain in bulk:
        speedup = naive.median / whole.median
        verdict = "met" if speedup >= 20 else "**missed**"
        print(f"| {naive.name} (baseline) | {naive.median:.3f} | {naive.median / n * 1000:.2f} ms | |")
        print(
            f"| {whole.name} | {whole.median:.3f} | {whole.median / n * 1000:.2f} ms "
            f"| {speedup:.1f}× faster (goal ≥ 20×: {verdict}) |"
        )
        extra = (whole.median - plain.median) * 1000
        whole_cost = f"{extra:.0f} ms in all" if extra > 0 else f"nothing measurable ({extra:.0f} ms: noise)"
        print(
            f"| {plain.name} | {plain.median:.3f} | {plain.median / n * 1000:.2f} ms | on top of it, "
            f"Prefect costs the whole design {whole_cost}, "
            f"one task per reminder {(naive.median - plain.median) / n * 1000:.1f} ms a reminder |"
        )
    print()
    print(f"(a) each tick: {direct.report}")
    for naive, whole, _ in bulk:
        print(f"{whole.name}: {whole.report}; naive: {naive.report}")


if __name__ == "__main__":
    main()
