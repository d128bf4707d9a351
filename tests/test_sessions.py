"""The desk's sessions (issue 20 finding 8): login throttling kept in the store, logout and password changes that
end sessions on the server, and a Secure cookie over HTTPS, with forwarded headers believed from trusted proxies only.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session, col
from typer.testing import CliRunner

from flows.cli import app as cli
from store import db
from store.models import LoginThrottle
from store.settings import get_settings
from tests.conftest import local
from tests.desk_support import PASSWORD, add_manager, api_headers, csrf_of, log_in
from tests.web_support import Clock
from web import auth, throttle
from web.app import app

WRONG = "not the password"


def attempt(client: TestClient, username: str, password: str, **headers: str) -> httpx.Response:
    form = client.get("/desk/login")
    data = {"username": username, "password": password, "csrf": csrf_of(form.text), "next": "/desk/items"}
    return client.post("/desk/login", data=data, headers=headers, follow_redirects=False)


@pytest.fixture
def other_client(client: TestClient, now: Clock) -> Iterator[TestClient]:
    """A second browser, from another address (10.0.0.2), on the same app and clock."""
    with TestClient(app, client=("10.0.0.2", 50000)) as second:
        yield second


def alert_of(html: str) -> str:
    found = re.search(r'<p role="alert">(.*?)</p>', html)
    assert found, "the page shows no error"
    return found.group(1)


def session_cookie_header(response: httpx.Response) -> str:
    found = [c for c in response.headers.get_list("set-cookie") if c.startswith(f"{auth.SESSION_COOKIE}=")]
    assert found, f"no session cookie was set: {response.status_code} {response.text[:200]}"
    return found[0]


# ---------------------------------------------------------------- throttling


def test_after_five_failures_even_the_right_password_waits_and_the_wait_is_shown(
    client: TestClient, session: Session, now: Clock
) -> None:
    add_manager(session, "boss")
    codes = [attempt(client, "boss", WRONG).status_code for _ in range(5)]
    assert codes == [401, 401, 401, 401, 429]  # the fifth failure locks
    now.at += timedelta(seconds=30)
    refused = attempt(client, "boss", PASSWORD)
    assert refused.status_code == 429 and "登录失败次数过多，请 30 秒后再试" in refused.text
    assert refused.headers["retry-after"] == "30" and auth.SESSION_COOKIE not in refused.cookies
    now.at += timedelta(seconds=31)  # the one-minute lock is over
    assert attempt(client, "boss", PASSWORD).status_code == 303


def test_the_wait_doubles_with_each_failure_after_the_lock(client: TestClient, session: Session, now: Clock) -> None:
    add_manager(session, "boss")
    for _ in range(5):
        attempt(client, "boss", WRONG)
    now.at += timedelta(minutes=1)
    again = attempt(client, "boss", WRONG)
    assert again.status_code == 429 and "请 2 分钟后再试" in again.text
    assert throttle.lock_length(20) == timedelta(minutes=15)  # the cap


def test_an_unknown_username_is_counted_and_refused_exactly_like_a_real_one(
    client: TestClient, other_client: TestClient, session: Session
) -> None:
    add_manager(session, "boss")
    real = [attempt(client, "boss", WRONG) for _ in range(6)]
    ghost = [attempt(other_client, "ghost", WRONG) for _ in range(6)]
    assert [r.status_code for r in real] == [r.status_code for r in ghost] == [401] * 4 + [429] * 2
    assert alert_of(real[-1].text) == alert_of(ghost[-1].text) == "登录失败次数过多，请 1 分钟后再试。"


def test_an_address_trying_many_accounts_is_locked_for_all_of_them(
    client: TestClient, other_client: TestClient, session: Session
) -> None:
    add_manager(session, "boss")
    for name in ("a1", "a2", "a3", "a4", "a5"):
        attempt(client, name, WRONG)
    assert attempt(client, "boss", PASSWORD).status_code == 429
    assert attempt(other_client, "boss", PASSWORD).status_code == 303  # the account itself was never tried


def test_failures_counted_by_another_worker_hold_here(
    client: TestClient, session: Session, sqlite_store: str, now: Clock
) -> None:
    add_manager(session, "boss")
    other_worker = db.make_engine(sqlite_store)  # its own engine and connections on the same store file
    with Session(other_worker) as elsewhere:
        for _ in range(5):
            user, _wait = auth.log_in(elsewhere, username="boss", password=WRONG, address="10.7.7.7", at=now.at)
            assert user is None
    other_worker.dispose()
    assert attempt(client, "boss", PASSWORD).status_code == 429


def test_a_success_clears_the_accounts_count(client: TestClient, other_client: TestClient, session: Session) -> None:
    add_manager(session, "boss")
    for _ in range(4):
        attempt(client, "boss", WRONG)
    assert attempt(other_client, "boss", PASSWORD).status_code == 303
    assert attempt(other_client, "boss", WRONG).status_code == 401  # the count started over
    assert attempt(other_client, "boss", PASSWORD).status_code == 303


def test_quiet_counters_are_pruned(session: Session) -> None:
    at = local("2026-02-03T10:00")
    throttle.record_failure(session, ["user:a", "addr:10.0.0.9"], at=at)
    throttle.record_failure(session, ["user:b"], at=at + throttle.WINDOW)
    keys = session.execute(select(col(LoginThrottle.key)).order_by(col(LoginThrottle.key))).scalars().all()
    assert keys == ["user:b"]


def test_failures_at_the_same_moment_from_many_workers_all_count(store: str) -> None:
    at = local("2026-02-03T10:00")
    workers = 8
    start = threading.Barrier(workers)

    def fail_once() -> None:
        engine = db.make_engine(store)
        with Session(engine) as own:
            start.wait(timeout=30)
            throttle.record_failure(own, ["user:boss"], at=at)
        engine.dispose()

    threads = [threading.Thread(target=fail_once) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with db.session_scope() as reader:
        row = reader.execute(select(LoginThrottle).where(col(LoginThrottle.key) == "user:boss")).scalar_one()
    assert row.failures == workers and row.locked_until == at + throttle.lock_length(workers)


# ---------------------------------------------------------------- sessions ended on the server


def test_a_cookie_captured_before_logout_no_longer_works(
    client: TestClient, other_client: TestClient, session: Session
) -> None:
    csrf = log_in(client, session, "boss")
    captured = client.cookies[auth.SESSION_COOKIE]
    assert attempt(other_client, "boss", PASSWORD).status_code == 303  # a second device, also logged in
    assert other_client.get("/desk/items", follow_redirects=False).status_code == 200
    assert client.post("/desk/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    replayed = client.get("/desk/items", cookies={auth.SESSION_COOKIE: captured}, follow_redirects=False)
    assert replayed.status_code == 303 and replayed.headers["location"].startswith("/desk/login")
    assert other_client.get("/desk/items", follow_redirects=False).status_code == 303  # every session ended


def test_a_password_change_or_a_deactivation_ends_old_sessions(client: TestClient, session: Session) -> None:
    log_in(client, session, "boss")
    captured = {auth.SESSION_COOKIE: client.cookies[auth.SESSION_COOKIE]}
    changed = CliRunner().invoke(cli, ["user", "passwd", "boss", "--password-stdin"], input="a new password 2\n")
    assert changed.exit_code == 0, changed.output
    client.cookies.clear()
    assert client.get("/desk/items", cookies=captured, follow_redirects=False).status_code == 303
    assert attempt(client, "boss", PASSWORD).status_code == 401
    assert attempt(client, "boss", "a new password 2").status_code == 303
    captured = {auth.SESSION_COOKIE: client.cookies[auth.SESSION_COOKIE]}
    assert CliRunner().invoke(cli, ["user", "disable", "boss"]).exit_code == 0
    client.cookies.clear()
    assert client.get("/desk/items", cookies=captured, follow_redirects=False).status_code == 303


def test_a_password_reset_unlocks_the_account(client: TestClient, session: Session) -> None:
    add_manager(session, "boss")
    for _ in range(5):
        attempt(client, "boss", WRONG)
    reset = CliRunner().invoke(cli, ["user", "passwd", "boss", "--password-stdin"], input="a new password 2\n")
    assert reset.exit_code == 0, reset.output
    with TestClient(app, client=("10.0.0.3", 50000)) as elsewhere:  # the address that failed stays locked
        assert attempt(elsewhere, "boss", "a new password 2").status_code == 303


def test_a_deactivated_account_loses_its_api_token(client: TestClient, session: Session) -> None:
    headers = api_headers(session, "script")
    assert client.get("/api/me", headers=headers).status_code == 200
    assert CliRunner().invoke(cli, ["user", "disable", "script"]).exit_code == 0
    assert client.get("/api/me", headers=headers).status_code == 401
    assert CliRunner().invoke(cli, ["user", "disable", "script", "--enable"]).exit_code == 0
    assert client.get("/api/me", headers=headers).status_code == 200


# ---------------------------------------------------------------- HTTPS and proxies


def test_over_https_the_session_cookie_is_secure(client: TestClient, session: Session, now: Clock) -> None:
    add_manager(session, "boss")
    assert "secure" not in session_cookie_header(attempt(client, "boss", PASSWORD)).lower()
    with TestClient(app, base_url="https://testserver") as secure_client:
        assert "secure" in session_cookie_header(attempt(secure_client, "boss", PASSWORD)).lower()
        form = secure_client.get("/desk/login").headers["set-cookie"]  # the CSRF cookie too
        assert auth.CSRF_COOKIE in form and "secure" in form.lower()
    assert "secure" not in client.get("/desk/login").headers["set-cookie"].lower()


def test_forwarded_proto_is_believed_from_a_trusted_proxy_only(
    client: TestClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_manager(session, "boss")
    https = {"X-Forwarded-Proto": "https"}
    with TestClient(app, client=("127.0.0.1", 50000)) as via_proxy:  # the default trusts this machine
        assert "secure" in session_cookie_header(attempt(via_proxy, "boss", PASSWORD, **https)).lower()
    with TestClient(app, client=("203.0.113.9", 50000)) as stranger:
        assert "secure" not in session_cookie_header(attempt(stranger, "boss", PASSWORD, **https)).lower()
    monkeypatch.setenv("DUTIES_TRUSTED_PROXIES", "203.0.113.0/24")
    get_settings.cache_clear()
    with TestClient(app, client=("203.0.113.9", 50000)) as now_trusted:
        assert "secure" in session_cookie_header(attempt(now_trusted, "boss", PASSWORD, **https)).lower()


def test_the_throttled_address_comes_from_x_forwarded_for_only_via_a_trusted_proxy(
    client: TestClient, session: Session
) -> None:
    add_manager(session, "boss")
    with TestClient(app, client=("127.0.0.1", 50000)) as via_proxy:
        for n in range(5):  # a client may put anything on the left; the proxy appends what it saw
            attempt(via_proxy, f"x{n}", WRONG, **{"X-Forwarded-For": f"1.2.3.{n}, 198.51.100.7"})
        assert attempt(via_proxy, "boss", PASSWORD, **{"X-Forwarded-For": "198.51.100.7"}).status_code == 429
        assert attempt(via_proxy, "boss", PASSWORD, **{"X-Forwarded-For": "198.51.100.8"}).status_code == 303
    with TestClient(app, client=("203.0.113.9", 50000)) as stranger:  # not a proxy: its headers change nothing
        for n in range(5):
            attempt(stranger, f"y{n}", WRONG, **{"X-Forwarded-For": f"198.51.100.{20 + n}"})
        assert attempt(stranger, "boss", PASSWORD, **{"X-Forwarded-For": "198.51.100.99"}).status_code == 429
