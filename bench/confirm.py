"""The confirmation endpoint against a bare endpoint served the same way, driven by the same clients, in the two
configurations the README documents, both with ``DUTIES_SECRET_KEY`` unset (the documented default: the key is
generated once and kept in the store).

    python -m bench.confirm [--database sqlite|postgresql|both] [--clients 50] [--rounds 3] [--gets 1500]
                            [--budget 20] [--client raw|httpx] [--postgres URL]

- **sqlite**: one machine. Each app runs in its own process under uvicorn with one worker
  (``uvicorn.run(app, host="127.0.0.1", port=…, log_level="warning")``); the duties app serves a fresh SQLite store
  with its clock frozen where the app reads it (``flows.runtime.now``). The bare app is a FastAPI app with the same
  route shapes that answers a small page without touching a store (the earlier baseline, kept so the figures compare).
- **postgresql**: the multi-worker server as an operator starts it, ``duties serve --no-scheduler --workers 2``, on a
  scratch schema of the PostgreSQL at ``--postgres`` (real clock: the links are made for the moment of the run).
  The bare app is a FastAPI app under uvicorn with 2 workers and the same log level that does the same
  primary-key read for GET (``SELECT … FROM bare_item WHERE id = %s``, a copy of the planned items) and the same
  update for POST (``UPDATE bare_item SET done_at = … WHERE id = %s``), each one round trip in autocommit, with the
  same driver (psycopg 3) and at most as many connections per worker as the duties engine keeps (store.db.POOL_SIZE).

Every request goes over a kept-alive connection on 127.0.0.1; 50 clients each send their next request when the
previous answer has arrived (closed loop). Measured in rounds that alternate which app goes first: GET /c/{token};
POST /c/{token} for a fresh slice of the links (first confirmations); the same forms again (a double tap: answered
"already"). req/s is the median of the rounds, the ratio the median of each round's ratio to the bare endpoint in
the same round, p50 and p99 over every request. A measurement sends for at most ``--budget`` seconds; a request
unanswered after 15 s counts as an error.

The default client writes HTTP/1.1 on asyncio streams: it costs a few microseconds a request, so it measures the
server, not itself. ``--client httpx`` uses httpx.AsyncClient, whose own cost per request caps the bare endpoint's
figure on a small machine (and so flatters the ratio).

Goals: SQLite, one worker: ≥ 0.4 of the bare endpoint's requests per second with p99 < 100 ms (issue 9).
PostgreSQL, 2 workers, 50 clients: GET and POST ≥ 0.5 of the bare endpoint, p99 of both sides reported (issue 16).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx

REPO = Path(__file__).resolve().parent.parent
ZONE = ZoneInfo("Asia/Shanghai")
AT = datetime(2026, 1, 5, 10, 0, tzinfo=ZONE)  # the SQLite app's frozen clock, and when its links were made
PLANNED_AT = datetime(2026, 1, 1, 8, 0, tzinfo=ZONE)
PLAN_FROM, PLAN_TO = date(2026, 1, 1), date(2027, 12, 31)
WARM_UP = 200
REQUEST_TIMEOUT = 15.0  # seconds without an answer: the request counts as failed (status 0)
HOST = "127.0.0.1"
WORKERS = 2  # the PostgreSQL configuration's uvicorn workers, on both sides
POSTGRES = os.environ.get("DUTIES_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BARE_CONNECTIONS = 15  # per worker: as many as the duties engine keeps (store.db.POOL_SIZE)
BARE_PAGE = (
    "<!doctype html><html lang=zh-CN><head><meta charset=utf-8><title>确认</title></head><body>"
    "<h1>已收到</h1><p>{token}</p><p>{note}</p></body></html>"
)


# ---------------------------------------------------------------- the servers (run in their own processes)


def bare_app() -> object:
    """A FastAPI app with the same route shapes: GET shows a page, POST takes the form and answers a page."""
    from fastapi import FastAPI, Form
    from fastapi.responses import HTMLResponse

    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/c/{token}", response_class=HTMLResponse)
    def show(token: str) -> HTMLResponse:  # def, like the duties GET route
        return HTMLResponse(BARE_PAGE.format(token=token[:12], note=""))

    @app.post("/c/{token}", response_class=HTMLResponse)
    async def confirm(  # async def, like the duties POST route
        token: str,
        note: Annotated[str, Form()] = "",
        form_id: Annotated[str, Form(max_length=64)] = "single",
    ) -> HTMLResponse:
        return HTMLResponse(BARE_PAGE.format(token=token[:12], note=note), headers={"X-Duties-Outcome": "confirmed"})

    return app


class Connections:
    """At most ``size`` psycopg connections, opened when first needed and kept: the bare side's pool."""

    def __init__(self, conninfo: str, size: int) -> None:
        self.conninfo, self.free, self.slots = conninfo, queue.LifoQueue[Any](), queue.Queue[None]()
        for _ in range(size):
            self.slots.put(None)

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        import psycopg

        self.slots.get()  # waits while every connection is in use, as a pool at its limit does
        try:
            try:
                connection = self.free.get_nowait()
            except queue.Empty:
                connection = psycopg.connect(self.conninfo, autocommit=True)  # one round trip a statement
            yield connection
            self.free.put(connection)
        finally:
            self.slots.put(None)


def bare_pg_app() -> object:
    """The same routes doing the one primary-key read (GET) or update (POST) on PostgreSQL, and a small page."""
    from fastapi import FastAPI, Form
    from fastapi.responses import HTMLResponse

    pool = Connections(os.environ["DUTIES_DATABASE_URL"].replace("+psycopg", ""), BARE_CONNECTIONS)
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/c/{item}", response_class=HTMLResponse)
    def show(item: int) -> HTMLResponse:  # def, like the duties routes: the driver blocks
        with pool.connection() as connection:
            row = connection.execute("SELECT * FROM bare_item WHERE id = %s", (item,)).fetchone()
        return HTMLResponse(BARE_PAGE.format(token=row[4] if row else "", note=""))

    @app.post("/c/{item}", response_class=HTMLResponse)
    def confirm(
        item: int,
        note: Annotated[str, Form()] = "",
        form_id: Annotated[str, Form(max_length=64)] = "single",
    ) -> HTMLResponse:
        with pool.connection() as connection:
            query = "UPDATE bare_item SET done_at = coalesce(done_at, now()) WHERE id = %s RETURNING title"
            row = connection.execute(query, (item,)).fetchone()  # committed by itself: autocommit
        page = BARE_PAGE.format(token=row[0] if row else "", note=note)
        return HTMLResponse(page, headers={"X-Duties-Outcome": "confirmed"})

    return app


def duties_app(at: datetime) -> object:
    """The duties app with its clock frozen where the clock reads the time (``flows.runtime.now``): an entry in
    ``app.dependency_overrides`` would make FastAPI inspect the override's signature on every request, a cost
    the real service does not pay."""
    from flows import runtime
    from web.app import app

    runtime.now = lambda: at  # this process serves the benchmark and nothing else
    return app


def serve(kind: str, port: int, at: datetime) -> None:
    import uvicorn

    if kind == "bare-pg":  # like ``duties serve --workers 2``: the app by name in each worker, access log on
        uvicorn.run(
            "bench.confirm:bare_pg_app",
            factory=True,
            host=HOST,
            port=port,
            log_level="info",
            workers=WORKERS,
            proxy_headers=False,
        )
        return
    app = duties_app(at) if kind == "duties" else bare_app()
    uvicorn.run(app, host=HOST, port=port, log_level="warning")  # type: ignore[arg-type]


@contextlib.contextmanager
def server_process(kind: str, folder: Path) -> Iterator[int]:
    """``kind``: duties or bare (SQLite, one worker, this module), or duties-serve or bare-pg (2 workers)."""
    from notify.receivers import free_port

    port = free_port()
    log = folder / f"{kind}.log"
    if kind == "duties-serve":  # the command an operator runs
        duties = str(Path(sys.executable).parent / "duties")
        command = [duties, "serve", "--no-scheduler", "--workers", str(WORKERS), "--host", HOST, "--port", str(port)]
    else:
        command = [sys.executable, "-m", "bench.confirm", "--serve", kind, "--port", str(port)]
    with log.open("wb") as sink:
        child = subprocess.Popen(command, cwd=REPO, env=os.environ.copy(), stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{kind} server did not start: {log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://{HOST}:{port}/healthz", timeout=5).status_code == 200:
                    break
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


# ---------------------------------------------------------------- the store and the links


@dataclass(frozen=True)
class Link:
    path: str  # /c/{token} on the duties side
    item: int  # the occurrence id: /c/{item} on the bare PostgreSQL side


def prepare_store(folder: Path, url: str, *, links_at: datetime, secret_key: str = "") -> list[Link]:
    """A fresh store at ``url`` with the shipped calendars planned; the link of every item a unit can confirm, made
    at ``links_at`` with the key the store generated (DUTIES_SECRET_KEY unset, as documented), or ``secret_key``."""
    os.environ.pop("DUTIES_SECRET_KEY", None)
    if secret_key:
        os.environ["DUTIES_SECRET_KEY"] = secret_key
    os.environ.update(
        DUTIES_VAR_DIR=str(folder / "var"),
        DUTIES_DATABASE_URL=url,
        DUTIES_CALENDARS=str(REPO / "calendars"),
        DUTIES_UNANNOUNCED_SEED="bench seed",
        DUTIES_BASE_URL="http://127.0.0.1:8000",
    )
    from sqlalchemy import select

    from flows import runtime, steps
    from store import db
    from store.models import Occurrence
    from store.settings import get_settings

    get_settings.cache_clear()
    db.get_engine.cache_clear()
    db.create_tables(db.get_engine())
    program = runtime.load_calendars()
    with db.session_scope() as session:
        steps.sync_program(session, program, at=PLANNED_AT)
        ctx = runtime.make_context(session, program)
        steps.plan(session, ctx, start=PLAN_FROM, end=PLAN_TO, at=PLANNED_AT)
        # Targets take an amount; everything else is confirmed by a note alone, which is what this measures.
        occurrences = [
            o
            for o in session.execute(select(Occurrence).order_by(Occurrence.id)).scalars()  # type: ignore[arg-type]
            if program.duties[o.duty_id].kind != "target"
        ]
        links = [
            Link("/c/" + steps.confirmation_link(ctx.settings, ctx.secret, o, at=links_at).rsplit("/c/", 1)[1], o.id)
            for o in occurrences
            if o.id is not None
        ]
    db.get_engine().dispose()
    return links


def postgres_problem(server: str) -> str:
    """Why the PostgreSQL server cannot be used, or "" when it answers."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(server, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return str(getattr(exc, "orig", None) or exc).splitlines()[0]
    finally:
        engine.dispose()
    return ""


@contextlib.contextmanager
def postgres_schema(server: str) -> Iterator[str]:
    """A scratch schema on the PostgreSQL server, dropped afterwards; the store's URL with it as search_path."""
    from sqlalchemy import create_engine, text

    schema = f"bench_confirm_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{server}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def copy_items(url: str) -> None:
    """The bare side's table: the planned items as they are, with the same primary key."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE bare_item AS SELECT * FROM occurrence"))
        connection.execute(text("ALTER TABLE bare_item ADD PRIMARY KEY (id)"))
    engine.dispose()


# ---------------------------------------------------------------- the clients


@dataclass
class Request:
    method: str
    path: str
    form: dict[str, str] | None = None

    def raw(self, port: int) -> bytes:
        head = f"{self.method} {self.path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUser-Agent: bench.confirm\r\n"
        if self.form is None:
            return (head + "\r\n").encode()
        body = urlencode(self.form).encode()
        head += f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
        return head.encode() + body


@dataclass
class Result:
    deadline: float = 0.0  # no new request is sent after this moment (perf_counter)
    seconds: float = 0.0
    issued: int = 0
    latencies: list[float] = field(default_factory=list)  # of every answer, errors included
    statuses: Counter[int] = field(default_factory=Counter)  # 0: the connection failed or timed out
    outcomes: Counter[str] = field(default_factory=Counter)
    body_bytes: int = 0

    @property
    def ok(self) -> int:
        return self.statuses[200]

    @property
    def rps(self) -> float:
        """Answers with status 200 per second."""
        return self.ok / self.seconds

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    def take(self, work: Iterator[Request]) -> Iterator[Request]:
        for request in work:  # one iterator shared by every client: each takes the next request
            if time.perf_counter() > self.deadline:
                return
            self.issued += 1
            yield request


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    if "content-length" not in headers:
        raise RuntimeError(f"answer without Content-Length: {head}")
    return status, headers, await reader.readexactly(int(headers["content-length"]))


async def _raw_client(port: int, work: Iterator[Request], result: Result, start: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    await start.wait()
    try:
        for request in work:
            raw = request.raw(port)
            started = time.perf_counter()
            try:
                writer.write(raw)
                status, headers, body = await asyncio.wait_for(_read_response(reader), REQUEST_TIMEOUT)
            except (OSError, asyncio.IncompleteReadError, TimeoutError):
                result.latencies.append(time.perf_counter() - started)
                _count(result, 0, "", 0)
                writer.close()
                reader, writer = await asyncio.open_connection(HOST, port)
                continue
            result.latencies.append(time.perf_counter() - started)
            _count(result, status, headers.get("x-duties-outcome", ""), len(body))
            if headers.get("connection", "").lower() == "close":
                writer.close()
                reader, writer = await asyncio.open_connection(HOST, port)
    finally:
        writer.close()


async def _httpx_client(client: httpx.AsyncClient, work: Iterator[Request], result: Result) -> None:
    for request in work:
        started = time.perf_counter()
        try:
            answer = await client.request(request.method, request.path, data=request.form)
        except httpx.HTTPError:
            result.latencies.append(time.perf_counter() - started)
            _count(result, 0, "", 0)
            continue
        result.latencies.append(time.perf_counter() - started)
        _count(result, answer.status_code, answer.headers.get("x-duties-outcome", ""), len(answer.content))


def _count(result: Result, status: int, outcome: str, size: int) -> None:
    result.statuses[status] += 1
    if outcome:
        result.outcomes[outcome] += 1
    result.body_bytes += size


async def _drive(port: int, requests: list[Request], clients: int, kind: str, budget: float) -> Result:
    result = Result()
    work = result.take(iter(requests))
    if kind == "httpx":
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        timeout = httpx.Timeout(REQUEST_TIMEOUT)
        async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", limits=limits, timeout=timeout) as client:
            started = time.perf_counter()
            result.deadline = started + budget
            await asyncio.gather(*(_httpx_client(client, work, result) for _ in range(clients)))
    else:
        start = asyncio.Event()
        tasks = [asyncio.create_task(_raw_client(port, work, result, start)) for _ in range(clients)]
        await asyncio.sleep(0.2)  # let every client connect before the clock starts
        started = time.perf_counter()
        result.deadline = started + budget
        start.set()
        await asyncio.gather(*tasks)
    result.seconds = time.perf_counter() - started
    return result


def drive(port: int, requests: list[Request], clients: int, kind: str, budget: float) -> Result:
    return asyncio.run(_drive(port, requests, clients, kind, budget))


# ---------------------------------------------------------------- the run


@dataclass(frozen=True)
class Setup:
    """One configuration: how each side is served, how the bare side names an item, the goal."""

    database: str
    duties: str  # server_process kind
    bare: str
    bare_by_id: bool  # the bare side reads the item: /c/{occurrence id}; else it gets the duties path
    goal: float
    title: str


SETUPS = {
    "sqlite": Setup("sqlite", "duties", "bare", False, 0.4, "SQLite, 1 uvicorn worker, bare endpoint without a store"),
    "postgresql": Setup(
        "postgresql",
        "duties-serve",
        "bare-pg",
        True,
        0.5,
        f"PostgreSQL, `duties serve --no-scheduler --workers {WORKERS}` against a bare endpoint with {WORKERS} "
        "workers doing the same primary-key read or update",
    ),
}


def posts(links: list[Link], tag: str, *, by_id: bool = False) -> list[Request]:
    """One form per link; the same ``tag`` gives the same form_id, as a double tap or a retried request does."""
    note = "已按要求完成，现场已清理。"
    return [
        Request("POST", f"/c/{link.item}" if by_id else link.path, {"note": note, "form_id": f"{tag}-{n}"})
        for n, link in enumerate(links)
    ]


def gets(links: list[Link], count: int, *, by_id: bool = False) -> list[Request]:
    picked = (links[n % len(links)] for n in range(count))
    return [Request("GET", f"/c/{link.item}" if by_id else link.path) for link in picked]


@dataclass
class Row:
    """One line of the table: a measurement in each round, beside the baseline measured in the same round."""

    name: str
    expected: set[str]  # the X-Duties-Outcome answers that are right here
    is_baseline: bool = False
    rounds: list[Result] = field(default_factory=list)
    baselines: list[Result] = field(default_factory=list)
    planned: int = 0

    @property
    def pooled(self) -> Result:
        pooled = Result()
        for result in self.rounds:
            pooled.latencies += result.latencies
            pooled.statuses.update(result.statuses)
            pooled.outcomes.update(result.outcomes)
            pooled.body_bytes += result.body_bytes
            pooled.issued += result.issued
            pooled.seconds += result.seconds
        return pooled

    @property
    def rps(self) -> float:
        return statistics.median(result.rps for result in self.rounds)

    @property
    def share(self) -> float:
        """The median over the rounds of this round's req/s ÷ the baseline's in the same round."""
        pairs = zip(self.rounds, self.baselines, strict=True)
        return statistics.median(mine.rps / theirs.rps for mine, theirs in pairs)

    def problems(self) -> str:
        pooled = self.pooled
        wrong = {k: v for k, v in pooled.outcomes.items() if k not in self.expected}
        failed = {k: v for k, v in pooled.statuses.items() if k != 200}
        parts = [f"status {k or 'none (no answer in 15 s)'}: {v}" for k, v in sorted(failed.items())]
        parts += [f"outcome {k}: {v}" for k, v in sorted(wrong.items())]
        if pooled.statuses[0]:
            parts.append(f"the server stopped answering after {pooled.ok} answers; later rounds were not run")
        elif pooled.issued < self.planned:
            parts.append(f"stopped at the time budget after {pooled.issued} of {self.planned} requests")
        return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--postgres", default=POSTGRES, help="a PostgreSQL server's URL (a scratch schema is made)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gets", type=int, default=1500, help="GET requests per round and side")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds of sending per measurement, at most")
    parser.add_argument(
        "--secret-key",
        default="",
        help="set DUTIES_SECRET_KEY, as this benchmark did before issue 16 (it skipped a store read a request)",
    )
    parser.add_argument("--serve", choices=["duties", "bare", "bare-pg"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, AT)
        return
    started = time.perf_counter()
    chosen = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    if "postgresql" in chosen and (problem := postgres_problem(args.postgres)):
        if args.database == "postgresql":
            raise SystemExit(f"PostgreSQL at {args.postgres} not reachable: {problem}")
        print(f"PostgreSQL at {args.postgres} not reachable ({problem}): only the SQLite configuration is measured")
        chosen.remove("postgresql")
    tables = [(SETUPS[name], run_setup(SETUPS[name], args)) for name in chosen]
    for setup, rows in tables:
        print_table(setup, rows, args)
    print(f"\n({time.perf_counter() - started:.0f} s in all)")


def run_setup(setup: Setup, args: argparse.Namespace) -> list[Row]:
    print(f"\n{setup.title}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-confirm-") as name, contextlib.ExitStack() as stack:
        folder = Path(name)
        if setup.database == "sqlite":
            links = prepare_store(
                folder, f"sqlite:///{folder / 'var' / 'duties.db'}", links_at=AT, secret_key=args.secret_key
            )
        else:
            url = stack.enter_context(postgres_schema(args.postgres))
            # `duties serve` reads the real clock: the links are made for now, which the plan (2026–2027) covers.
            links = prepare_store(folder, url, links_at=datetime.now(UTC), secret_key=args.secret_key)
            copy_items(url)
        warm, measured = links[:WARM_UP], links[WARM_UP:]
        print(f"{len(links)} confirmable items planned, {len(measured)} measured in {args.rounds} rounds", flush=True)
        bare = stack.enter_context(server_process(setup.bare, folder))
        duties = stack.enter_context(server_process(setup.duties, folder))
        return measure(setup, bare, duties, warm, measured, args)


def measure(
    setup: Setup, bare: int, duties: int, warm: list[Link], measured: list[Link], args: argparse.Namespace
) -> list[Row]:
    def run(port: int, requests: list[Request], row: Row) -> Result:
        result = drive(port, requests, args.clients, args.client, args.budget)
        row.rounds.append(result)
        row.planned += len(requests)
        print(f"  {row.name}: {result.ok} answers in {result.seconds:.1f} s, {result.rps:.0f} req/s", flush=True)
        return result

    by_id = setup.bare_by_id
    what = "primary-key read" if by_id else "page"
    bare_get = Row(f"bare GET ({what})", set(), is_baseline=True)
    duties_get = Row("duties GET /c/{token} (shows the item)", set())
    bare_post = Row(f"bare POST form ({'primary-key update' if by_id else 'note, form_id'})", {"confirmed"}, True)
    first = Row("duties POST /c/{token}, first confirmation", {"confirmed", "recorded"})
    again = Row("duties POST /c/{token}, the same form again", {"already"})
    # Warm-up, not measured: imports, the first template renders, the pool's connections, in every worker.
    drive(bare, gets(warm, WARM_UP, by_id=by_id) + posts(warm, "warm", by_id=by_id), args.clients, args.client, 30)
    drive(duties, gets(warm, WARM_UP), args.clients, args.client, 30)
    share = -(-len(measured) // args.rounds)
    for number in range(args.rounds):
        # Alternate which side goes first, so a slow spell on a busy machine falls on both alike.
        flip = number % 2 == 1
        links = measured[number * share : (number + 1) * share]
        steps = [
            (bare, bare_get, gets(measured, args.gets, by_id=by_id)),
            (duties, duties_get, gets(measured, args.gets)),
        ]
        for port, row, requests in reversed(steps) if flip else steps:
            run(port, requests, row)
        duties_get.baselines.append(bare_get.rounds[-1])
        forms = posts(links, f"r{number}")
        # The bare endpoint answers in a fraction of the time: three times the forms give it a steady figure.
        steps = [(bare, bare_post, posts(links, f"r{number}", by_id=by_id) * 3), (duties, first, forms)]
        for port, row, requests in reversed(steps) if flip else steps:
            run(port, requests, row)
        first.baselines.append(bare_post.rounds[-1])
        if first.rounds[-1].statuses[0]:
            break  # requests went unanswered: the server is stuck, and would answer the repeats no better
        # The same forms again (a double tap, a retried request), for the links this round reached.
        run(duties, forms[: first.rounds[-1].issued], again)
        again.baselines.append(bare_post.rounds[-1])
    return [row for row in (bare_get, duties_get, bare_post, first, again) if row.rounds]


def print_table(setup: Setup, rows: list[Row], args: argparse.Namespace) -> None:
    secret = "set (flatters the duties side)" if args.secret_key else "unset"
    print(f"\n{setup.title}; {args.clients} clients, 127.0.0.1, {args.client} client, DUTIES_SECRET_KEY {secret}\n")
    goal = f"req/s ÷ bare (goal ≥ {setup.goal})"
    print(f"| | answers 200 | errors | req/s (median) | p50 ms | p99 ms | KB/answer | {goal} | p99 < 100 ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        pooled = row.pooled
        answered = max(len(pooled.latencies), 1)
        ratio, met = "baseline", ""
        if not row.is_baseline:
            ratio = f"{row.share:.2f}" if row.share >= setup.goal else f"**{row.share:.2f}**"
            met = "yes" if pooled.percentile(0.99) < 0.1 else "**no**"
        print(
            f"| {row.name} | {pooled.ok} | {answered - pooled.ok if pooled.latencies else 0} | {row.rps:.0f} "
            f"| {pooled.percentile(0.5) * 1000:.1f} | {pooled.percentile(0.99) * 1000:.1f} "
            f"| {pooled.body_bytes / answered / 1024:.1f} | {ratio} | {met} |"
        )
    notes = [f"- {row.name}: {problems}" for row in rows if (problems := row.problems())]
    if notes:
        print()
        print("\n".join(notes))


if __name__ == "__main__":
    main()
