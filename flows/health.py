"""Health: the store, the Prefect API, and the age of the last completed tick. /healthz and `duties status` say
the same. ``status`` is ``ok``, ``degraded`` (the store answers, but the scheduler is unreachable or ticks have
stopped) or ``error`` (the store does not answer)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlmodel import Session

from store.queries import get_value
from store.settings import get_settings

STALE_AFTER = timedelta(minutes=15)  # three missed five-minute ticks


def prefect_api_url() -> str:
    return os.environ.get("PREFECT_API_URL") or f"http://127.0.0.1:{get_settings().prefect_port}/api"


def prefect_state(url: str, *, timeout: float = 2.0) -> str:
    try:
        answer = httpx.get(f"{url.rstrip('/')}/health", timeout=timeout)
    except httpx.HTTPError as problem:
        return f"unreachable: {type(problem).__name__}"
    return "ok" if answer.status_code == 200 else f"error: HTTP {answer.status_code}"


def report(session: Session, *, at: datetime, check_prefect: bool = True) -> dict[str, Any]:
    try:
        session.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means the store is down: report it, do not crash
        session.rollback()
        return {"status": "error", "database": f"error: {type(exc).__name__}"}
    last = get_value(session, key="last_tick_at")
    age = None if last is None else round((at - datetime.fromisoformat(last)).total_seconds())
    url = prefect_api_url()
    prefect = prefect_state(url) if check_prefect else "not checked"
    stale = age is None or age > STALE_AFTER.total_seconds()
    return {
        "status": "degraded" if stale or prefect.startswith(("unreachable", "error")) else "ok",
        "database": "ok",
        "prefect_api": prefect,
        "prefect_api_url": url,
        "last_tick_at": last,
        "last_tick_age_seconds": age,
        "ticks_stale": stale,
    }
