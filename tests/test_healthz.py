"""/healthz (issue 20 finding 9): a status only for anonymous callers, details with masked URLs for operators, and
a hanging Prefect API that neither stalls /healthz past its short timeout nor slows the other pages."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, create_engine

from flows import health
from flows.steps import Context
from store.models import Occurrence
from tests.desk_support import api_headers, log_in
from tests.web_support import Clock, path_of
from web.app import PREFECT, app, get_session

POLLERS = 60


@contextmanager
def hanging_server() -> Iterator[str]:
    """A loopback 'Prefect API' that accepts every connection and never answers."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=256)
    listener.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/api"
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


def refused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def timed(client: TestClient, path: str, **kwargs: Any) -> float:
    started = time.perf_counter()
    response = client.get(path, **kwargs)
    assert response.status_code < 500, response.text
    return time.perf_counter() - started


def test_anonymous_callers_get_a_status_only_and_operators_a_masked_url(
    client: TestClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = refused_port()
    secret_url = f"http://prefect:s3cret@127.0.0.1:{port}/api?token=t0ken&region=cn"
    monkeypatch.setenv("PREFECT_API_URL", secret_url)
    anonymous = client.get("/healthz")
    assert anonymous.status_code == 200 and anonymous.json() == {"status": "degraded"}
    headers = api_headers(session, "ops")
    with_token = client.get("/healthz", headers=headers).json()
    log_in(client, session, "boss")
    with_session = client.get("/healthz").json()
    for body in (with_token, with_session):
        assert body["prefect_api_url"] == f"http://***@127.0.0.1:{port}/api?token=***&region=cn"
        assert body["prefect_api"].startswith("unreachable") and body["database"] == "ok"
    forged = client.get("/healthz", headers={"Authorization": "Bearer dt_guessed"}, cookies={"duties_session": "x"})
    assert forged.json() == {"status": "degraded"}


def test_a_store_that_does_not_answer_is_a_503_with_the_status_only(client: TestClient, tmp_path: Path) -> None:
    broken = create_engine(f"sqlite:///{tmp_path / 'no such folder' / 'duties.db'}")

    async def no_store() -> AsyncIterator[Session]:
        with Session(broken) as session:
            yield session

    app.dependency_overrides[get_session] = no_store
    try:
        response = client.get("/healthz")
    finally:
        del app.dependency_overrides[get_session]
    assert response.status_code == 503 and response.json() == {"status": "error"}


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:4200/api", "http://127.0.0.1:4200/api"),
        ("https://user:pass@prefect.example/api", "https://***@prefect.example/api"),
        ("https://token@prefect.example/api", "https://***@prefect.example/api"),
        ("http://h/api?api_key=k&x=1", "http://h/api?api_key=***&x=1"),
        ("http://h/api?Signature=s&access_token=a", "http://h/api?Signature=***&access_token=***"),
        ("http://h/api#secret", "http://h/api"),
    ],
)
def test_credentials_in_urls_are_masked(url: str, shown: str) -> None:
    assert health.redact_url(url) == shown


def test_a_hanging_prefect_api_answers_within_the_short_timeout_and_is_then_cached(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    with hanging_server() as url:
        monkeypatch.setenv("PREFECT_API_URL", url)
        first = timed(client, "/healthz")
        assert first < PREFECT.timeout + 0.7, f"/healthz took {first:.2f} s with a hanging Prefect API"
        again = timed(client, "/healthz")
        assert again < 0.5, f"the second /healthz took {again:.2f} s: the answer was not cached"
        assert client.get("/healthz").json() == {"status": "degraded"}


def test_healthz_pollers_do_not_slow_the_units_confirmation_page(
    client: TestClient, ctx: Context, item: Occurrence, now: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = path_of(ctx, item, now.at)
    timed(client, page)  # the first request compiles the templates: not part of the baseline
    baseline = max(timed(client, page) for _ in range(3))
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            client.get("/healthz")

    with hanging_server() as url:
        monkeypatch.setenv("PREFECT_API_URL", url)
        pollers = [threading.Thread(target=poll, daemon=True) for _ in range(POLLERS)]
        for poller in pollers:
            poller.start()
        try:
            time.sleep(0.3)  # let every poller reach /healthz (a test may wait; the code under test never does)
            loaded = max(timed(client, page) for _ in range(5))
        finally:
            stop.set()
            for poller in pollers:
                poller.join(timeout=10)
    bound = max(1.0, 10 * baseline)
    assert loaded < bound, f"the unit's page took {loaded:.2f} s under {POLLERS} pollers (alone {baseline:.3f} s)"


def test_one_check_in_flight_and_the_last_answer_served_while_refreshing() -> None:
    calls: list[str] = []
    release = threading.Event()
    moment = [0.0]

    def probe(url: str, *, timeout: float) -> str:
        calls.append(url)
        release.wait(timeout=10)
        return f"ok #{len(calls)}"

    check = health.PrefectCheck(timeout=1.0, ttl=30.0, probe=probe, clock=lambda: moment[0])
    first = [check.poll("http://p/api") for _ in range(20)]
    assert len(calls) == 1 and all(f is first[0] for f in first)  # one future, shared by every waiting caller
    release.set()
    assert first[0].result(timeout=5) == "ok #1"  # type: ignore[union-attr]
    release.clear()
    moment[0] = 31.0  # stale: the next caller starts one refresh and is answered at once with the last value
    assert [check.poll("http://p/api") for _ in range(20)] == ["ok #1"] * 20
    assert len(calls) == 2
    release.set()
    deadline = time.monotonic() + 5
    while check.poll("http://p/api") != "ok #2" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert check.poll("http://p/api") == "ok #2" and len(calls) == 2
