"""Intake to first message: a case filed through POST /api/cases until the unit's mail is at the SMTP receiver,
against one outbox send of one already-queued delivery to the same receiver, in the same run.

    python -m bench.cases [--cases 200] [--warm-up 20]

What a user runs: the duties web app in its own process under uvicorn (one worker, as ``duties serve
--no-scheduler`` serves it) on 127.0.0.1 with a fresh SQLite store of the shipped calendars, its contacts pointed at
an aiosmtpd receiver (notify.receivers.Inbox) in this process, and an ``intake`` account's API token. The app's clock
is frozen at Tuesday 3 March 2026 09:00 where the app reads it (``flows.runtime.now``, as bench/confirm.py does), so
a run does not depend on the hour it is made at. Each case is a 零星垃圾 (market-litter) at 飞英农贸市场 with its own
``external_id``; the place names the market, so it is dispatched at once and its first message (【案件派遣】, one
mail to the market's duty mailbox) is sent in the request. Timed from just before the request is written until the
receiver has kept that mail (the receiver notes the moment it takes a mail), over one kept-alive connection.

The baseline, in this process against the same receiver and the same ``mailto://`` URL: one delivery queued in its
own SQLite store (not timed), then ``notify.outbox.dispatch`` with that one pending row, timed from the call until
the receiver has kept the mail. The two are interleaved case by case, so a slow spell on a noisy machine falls on
both alike; the first ``--warm-up`` of each are not counted.

Goal (issue 15): intake → first message p95 ≤ 2 × one outbox send's p95.

Both sides send through notify/mail.py, which builds its TLS contexts once per process (apprise's controller built
one per connection, 40-50 ms that sat in both figures and flattered the ratio until issue 16).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from notify.receivers import Inbox, Mail, free_port

REPO = Path(__file__).resolve().parent.parent
ZONE = ZoneInfo("Asia/Shanghai")
AT = datetime(2026, 3, 3, 9, 0, tzinfo=ZONE)  # a working Tuesday morning, inside the markets' service hours
HOST = "127.0.0.1"
MARKET, PLACE = "wuxing-feiying-market", "飞英农贸市场"
SERVER = [sys.executable, "-m", "bench.cases"]  # ``SERVER + ["--serve", "--port", N]`` serves the app
WAIT = 15.0  # seconds a message may take before the run is declared broken


class TimedInbox(Inbox):
    """The receivers, noting when each mail was kept (perf_counter, this process's clock) and waking a waiter."""

    def __init__(self) -> None:
        super().__init__()
        self.kept_at: list[float] = []
        self.arrived = threading.Condition()

    def keep_mail(self, mail: Mail, raw: bytes) -> None:
        moment = time.perf_counter()
        super().keep_mail(mail, raw)
        with self.arrived:
            self.kept_at.append(moment)
            self.arrived.notify_all()

    def wait_for(self, count: int) -> float:
        """The moment the ``count``-th mail was kept, waiting for it if need be."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.kept_at) >= count, timeout=WAIT):
                raise RuntimeError(f"mail {count} did not arrive within {WAIT} s")
            return self.kept_at[count - 1]


# ---------------------------------------------------------------- the app (its own process)


def serve(port: int) -> None:
    import uvicorn

    from flows import runtime
    from web.app import app

    runtime.now = lambda: AT  # this process serves the benchmark and nothing else
    uvicorn.run(app, host=HOST, port=port, log_level="warning")


@contextlib.contextmanager
def app_process(folder: Path) -> Iterator[int]:
    port = free_port()
    log = folder / "app.log"
    with log.open("wb") as sink:
        command = [*SERVER, "--serve", "--port", str(port)]
        child = subprocess.Popen(command, cwd=REPO, env=os.environ.copy(), stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not _healthy(port):
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the app did not start: {log.read_text()[-2000:]}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(0.1)  # wait on the process rather than sleep blind
        yield port
    finally:
        child.terminate()
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _healthy(port: int) -> bool:
    with contextlib.suppress(OSError):
        connection = http.client.HTTPConnection(HOST, port, timeout=2)
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    return False


def prepare_store(folder: Path, inbox: Inbox) -> tuple[str, str]:
    """A fresh SQLite store of the shipped calendars (contacts at ``inbox``) and an intake account. Returns its API
    token and the market's mailto URL (the baseline sends to the same one)."""
    calendars = inbox.calendars_for(REPO / "calendars", folder / "calendars")
    os.environ.update(
        DUTIES_VAR_DIR=str(folder / "var"),
        DUTIES_DATABASE_URL=f"sqlite:///{folder / 'var' / 'duties.db'}",
        DUTIES_CALENDARS=str(calendars),
        DUTIES_SECRET_KEY="bench-secret-key",
        DUTIES_UNANNOUNCED_SEED="bench seed",
        DUTIES_BASE_URL="http://127.0.0.1:8000",
    )
    from flows import runtime, steps
    from store import db
    from store.settings import get_settings
    from web import auth

    get_settings.cache_clear()
    db.get_engine.cache_clear()
    (folder / "var").mkdir(parents=True, exist_ok=True)
    db.create_tables(db.get_engine())
    program = runtime.load_calendars()
    with db.session_scope() as session:
        steps.sync_program(session, program, at=AT)
        user = auth.add_user(
            session,
            username="hotline",
            password="bench-password",
            role="intake",
            district=None,
            display_name="12345",
            at=AT,
        )
        token = auth.new_api_token(session, user)
    db.get_engine().dispose()
    url = next(contact.url for contact in program.units[MARKET].contacts if contact.url.startswith("mailto:"))
    return token, url


# ---------------------------------------------------------------- the two sides


@dataclass
class Intake:
    """POST /api/cases over one kept-alive connection, one case at a time."""

    port: int
    token: str
    inbox: TimedInbox
    connection: http.client.HTTPConnection = field(init=False)

    def __post_init__(self) -> None:
        self.connection = http.client.HTTPConnection(HOST, self.port, timeout=WAIT)

    def one(self, number: int) -> float:
        before = len(self.inbox.kept_at)  # one side at a time: the next mail kept is this case's
        body = json.dumps(
            {
                "category": "market-litter",
                "place": f"{PLACE}东门第{number}号摊位",
                "note": "门口一堆菜叶",
                "external_id": f"bench-{number}",
            },
            ensure_ascii=False,
        ).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}
        started = time.perf_counter()
        self.connection.request("POST", "/api/cases", body=body, headers=headers)
        response = self.connection.getresponse()
        answer = response.read()
        if response.status != 201:
            raise RuntimeError(f"POST /api/cases answered {response.status}: {answer[:500]!r}")
        return self.inbox.wait_for(before + 1) - started


@dataclass
class OutboxSend:
    """One delivery queued (not timed), then ``outbox.dispatch`` with that one pending row (timed)."""

    folder: Path
    url: str
    inbox: TimedInbox

    def __post_init__(self) -> None:
        from sqlmodel import Session

        from store.db import create_tables, make_engine
        from store.models import Contact
        from store.scratch import one_occurrence

        self.engine = make_engine(f"sqlite:///{self.folder / 'baseline.db'}")
        create_tables(self.engine)
        self.session = Session(self.engine, expire_on_commit=False)
        self.occurrence_id = one_occurrence(self.session, at=AT)
        self.contact = Contact(unit_id="u", name="值班邮箱", channel="mailto", url=self.url)
        self.session.add(self.contact)
        self.session.commit()

    def one(self, number: int) -> float:
        from notify import outbox
        from notify.send import send_apprise

        title = f"【案件派遣】市场零星垃圾、积水：{PLACE}东门第{number}号摊位"
        outbox.queue(
            self.session,
            occurrence_id=self.occurrence_id,
            stage=f"case:{number}",
            contacts=[self.contact],
            title=title,
            body="门口一堆菜叶",
            at=AT,
        )
        self.session.commit()
        before = len(self.inbox.kept_at)
        started = time.perf_counter()
        report = outbox.dispatch(self.session, send_apprise, at=AT)
        if report.sent != 1:
            raise RuntimeError(f"the outbox sent {report.sent} messages, not 1")
        return self.inbox.wait_for(before + 1) - started

    def close(self) -> None:
        self.session.close()
        self.engine.dispose()


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def measure(cases: int, warm_up: int) -> tuple[list[float], list[float]]:
    inbox = TimedInbox()
    inbox.start()
    try:
        with tempfile.TemporaryDirectory() as name:
            folder = Path(name)
            token, url = prepare_store(folder, inbox)
            baseline = OutboxSend(folder, url, inbox)
            with app_process(folder) as port:
                intake = Intake(port, token, inbox)
                intakes: list[float] = []
                sends: list[float] = []
                for number in range(warm_up + cases):
                    # Alternate which goes first; each waits for its own mail, so the counts stay in step.
                    steps: list[tuple[list[float], Callable[[], float]]] = [
                        (intakes, functools.partial(intake.one, number)),
                        (sends, functools.partial(baseline.one, number)),
                    ]
                    for found, run in steps if number % 2 == 0 else reversed(steps):
                        seconds = run()
                        if number >= warm_up:
                            found.append(seconds)
                intake.connection.close()
            baseline.close()
            subjects = [mail.subject for mail in inbox.mails]
            if sum("【案件派遣】" in subject for subject in subjects) != 2 * (warm_up + cases):
                raise RuntimeError(f"unexpected mails: {subjects[:5]} …")
    finally:
        inbox.stop()
    return intakes, sends


def report(intakes: list[float], sends: list[float]) -> None:
    ms = 1000
    a, b = p95(intakes) * ms, p95(sends) * ms
    print()
    print(f"| {len(intakes)} cases, one at a time, 127.0.0.1 | p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|")
    for label, values in (
        ("intake → first message (POST /api/cases until the mail is at the receiver)", intakes),
        ("one outbox send (one queued delivery, outbox.dispatch until the mail is there)", sends),
    ):
        row = statistics.median(values) * ms, p95(values) * ms, max(values) * ms
        print(f"| {label} | {row[0]:.1f} | {row[1]:.1f} | {row[2]:.1f} |")
    print()
    print(f"intake → first message p95 {a:.1f} ms vs one outbox send p95 {b:.1f} ms: ratio {a / b:.2f} (goal ≤ 2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--warm-up", type=int, default=20)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.port)
        return
    started = time.perf_counter()
    intakes, sends = measure(args.cases, args.warm_up)
    report(intakes, sends)
    print(f"\n({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
