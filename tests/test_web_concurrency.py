"""Fifty units confirming at once through a real uvicorn: every one is answered and recorded.

Async routes that reached the store with blocking calls once held the event loop while waiting for a pooled
connection, and under 50 concurrent clients the server stopped answering (bench/confirm.py found it)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date

import httpx
from sqlmodel import Session, select

from flows import steps
from flows.steps import Context
from store.models import Confirmation, Occurrence
from tests.browser_support import serve_app
from tests.conftest import local
from tests.test_steps import CORE
from tests.web_support import Clock, path_of
from web.app import app

CLIENTS = 50


def test_fifty_concurrent_confirmations_are_all_answered_and_recorded(
    session: Session, ctx: Context, now: Clock, client: object
) -> None:
    steps.plan(session, ctx, start=date(2026, 2, 1), end=date(2026, 2, 28), at=local("2026-01-20T08:00"), only=CORE)
    items = session.exec(select(Occurrence).limit(CLIENTS)).all()
    assert len(items) == CLIENTS
    paths = [path_of(ctx, item, now.at) for item in items]
    with serve_app(app) as base, ThreadPoolExecutor(CLIENTS) as pool:

        def confirm(path: str) -> int:
            with httpx.Client(base_url=base, timeout=30) as http:
                return http.post(path, data={"note": "已完成", "form_id": path[-12:]}).status_code

        answers = list(pool.map(confirm, paths * 2))  # each form twice: the second changes nothing
    assert answers == [200] * (2 * CLIENTS)
    session.expire_all()
    assert len(session.exec(select(Confirmation)).all()) == CLIENTS
