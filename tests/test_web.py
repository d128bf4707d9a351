"""The web app against a real SQLite store: links that change nothing on GET, idempotent POSTs, bad tokens."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from flows import steps
from flows.steps import Context
from store.models import Occurrence
from tests.conftest import local
from tests.desk_support import api_headers, log_in
from tests.test_steps import CORE
from tests.web_support import Clock, ledger_state, path_of, png
from web.tokens import make_token


def test_get_shows_the_duty_and_changes_nothing(
    client: TestClient, ctx: Context, session: Session, item: Occurrence, now: Clock
) -> None:
    before = ledger_state(session)
    page = client.get(path_of(ctx, item, now.at))
    assert page.status_code == 200
    for fragment in (
        "市场清扫保洁质量抽查",
        "附件1 第6项 举措2",
        "吴兴区市场监督管理局",
        "2026年2月6日（周五）17:00",
        "记录一次检查",
        "完成进度",
        'name="note"',
    ):
        assert fragment in page.text
    assert ledger_state(session) == before


def test_post_confirms_once_and_a_second_post_changes_nothing(
    client: TestClient, ctx: Context, session: Session, item: Occurrence, now: Clock
) -> None:
    path = path_of(ctx, item, now.at)
    first = client.post(path, data={"note": "已抽查6个市场"})
    assert first.status_code == 200 and "已确认完成" in first.text and "已抽查6个市场" in first.text
    after_first = ledger_state(session)
    second = client.post(path, data={"note": "第二次"})
    assert second.status_code == 200 and second.headers["X-Duties-Outcome"] == "already"
    assert "第二次" not in second.text
    assert ledger_state(session) == after_first
    session.expire_all()
    assert session.get(Occurrence, item.id).status_at(now.at) == "done"  # type: ignore[union-attr]


def test_a_confirmation_after_the_due_date_is_late_done(
    client: TestClient, ctx: Context, session: Session, item: Occurrence, now: Clock
) -> None:
    now.at = local("2026-02-07T09:00")
    response = client.post(path_of(ctx, item, now.at), data={"note": "补报"})
    assert "逾期完成" in response.text
    session.expire_all()
    assert session.get(Occurrence, item.id).status_at(now.at) == "late_done"  # type: ignore[union-attr]


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize(
    ("case", "status", "words"),
    [
        ("tampered", 400, "链接无效"),
        ("expired", 410, "链接已过期"),
        ("unknown", 404, "事项不存在"),
        ("other-unit", 404, "事项不存在"),
    ],
)
def test_bad_links_get_a_chinese_page_and_change_nothing(
    client: TestClient,
    ctx: Context,
    session: Session,
    item: Occurrence,
    now: Clock,
    method: str,
    case: str,
    status: int,
    words: str,
) -> None:
    good = path_of(ctx, item, now.at)
    paths = {
        "tampered": good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB"),
        "expired": path_of(ctx, item, local("2025-01-01T00:00")),
        "unknown": "/c/"
        + make_token(ctx.secret, occurrence_id=99999, unit_id="wuxing-msb", expires_at=local("2027-01-01T00:00")),
        "other-unit": "/c/"
        + make_token(ctx.secret, occurrence_id=item.id or 0, unit_id="anji-msb", expires_at=local("2027-01-01T00:00")),
    }
    if case == "expired":
        now.at = local("2026-06-01T00:00")  # after due date + 90 days
    before = ledger_state(session)
    response = client.request(method.upper(), paths[case], data={"note": "x"} if method == "post" else None)
    assert response.status_code == status
    assert words in response.text and "<html" in response.text and "Traceback" not in response.text
    assert ledger_state(session) == before


def test_bad_evidence_keeps_the_note_and_writes_nothing(
    client: TestClient, ctx: Context, session: Session, item: Occurrence, now: Clock, settings_env: Path
) -> None:
    before = ledger_state(session)
    response = client.post(
        path_of(ctx, item, now.at),
        data={"note": "已完成，照片见附件"},
        files={"evidence": ("scan.pdf", b"%PDF-1.4 not an image", "application/pdf")},
    )
    assert response.status_code == 400
    assert "不是 JPEG 或 PNG 图片" in response.text and "已完成，照片见附件" in response.text
    assert ledger_state(session) == before
    assert not (settings_env / "var" / "evidence").exists()


def test_photos_are_stored_once_by_content_hash(
    client: TestClient, ctx: Context, session: Session, item: Occurrence, now: Clock, settings_env: Path
) -> None:
    photo = png()
    response = client.post(
        path_of(ctx, item, now.at),
        data={"note": "见照片"},
        files=[("evidence", ("a.png", photo, "image/png")), ("evidence", ("b.png", photo, "image/png"))],
    )
    # The same picture chosen twice is one photo: stored once, and listed once.
    assert response.status_code == 200 and "已上传照片 1 张" in response.text
    stored = list((settings_env / "var" / "evidence").rglob("*.png"))
    assert len(stored) == 1 and stored[0].read_bytes() == photo


def test_overdue_view_puts_the_highest_level_first(
    client: TestClient, ctx: Context, session: Session, item: Occurrence, now: Clock
) -> None:
    steps.plan(session, ctx, start=date(2026, 2, 9), end=date(2026, 2, 14), at=local("2026-01-20T08:00"), only=CORE)
    steps.escalate(session, ctx, at=local("2026-02-09T17:00"))  # W06 → 交办
    steps.escalate(session, ctx, at=local("2026-02-14T17:00"))  # W06 → 督办
    now.at = local("2026-02-24T18:00")
    # W07 was due on Saturday the 14th (a make-up working day); its grace day is the 24th, after the holiday.
    assert steps.escalate(session, ctx, at=local("2026-02-17T09:00")) == 0
    steps.escalate(session, ctx, at=local("2026-02-24T17:00"))
    items = client.get("/api/overdue", headers=api_headers(session, "city")).json()
    assert {"id", "duty", "title", "clause", "unit", "due", "status", "level"} <= set(items[0])
    assert [i["level"] for i in items][:5] == [2, 2, 2, 2, 2] and items[0]["due"].startswith(
        "2026-02-06T17:00:00+08:00"
    )
    assert [i["level"] for i in items][5:] == [1, 1, 1, 1, 1]
    log_in(client, session, "manager")
    page = client.get("/desk/overdue")
    assert page.status_code == 200 and "督办" in page.text and "交办" in page.text
    assert page.text.index("2026-02-06 17:00") < page.text.index("2026-02-14 17:00")


def test_api_rejects_bad_filters_with_json_and_unknown_pages_in_chinese(client: TestClient, session: Session) -> None:
    headers = api_headers(session, "script")
    response = client.get("/api/occurrences", params={"status": "finished"}, headers=headers)
    assert response.status_code == 422 and response.headers["content-type"].startswith("application/json")
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and "页面不存在" in missing.text


def test_healthz_reports_the_store_prefect_and_the_last_tick(
    client: TestClient, ctx: Context, session: Session, now: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.headers.update(api_headers(session, "ops"))  # the details are for operators (tests/test_healthz.py)
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{free_port()}/api")  # nothing listens there
    first = client.get("/healthz").json()
    assert first["last_tick_at"] is None and first["status"] == "degraded"
    assert first["prefect_api"].startswith("unreachable")
    steps.tick(session, ctx, at=local("2026-02-03T09:55"))
    with prefect_health_endpoint() as url:
        monkeypatch.setenv("PREFECT_API_URL", url)
        body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["database"] == "ok" and body["prefect_api"] == "ok"
    assert body["last_tick_age_seconds"] == 300 and not body["ticks_stale"]
    now.at = local("2026-02-03T11:00")  # an hour without a tick
    assert client.get("/healthz").json()["ticks_stale"] is True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def prefect_health_endpoint() -> Iterator[str]:
    """A loopback server that answers /api/health as a Prefect server does."""

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/api/health" else 404)
            self.end_headers()
            self.wfile.write(b"true")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api"
    finally:
        server.shutdown()
        server.server_close()
