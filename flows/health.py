"""Health: the store, the Prefect API, and the age of the last completed tick. /healthz and `duties status` say
the same. ``status`` is ``ok``, ``degraded`` (the store answers, but the scheduler is unreachable or ticks have
stopped) or ``error`` (the store does not answer).

`duties status` asks the Prefect API directly. /healthz goes through ``PrefectCheck``: one check in flight at a time
per process, a short timeout, and the last answer served while the next one is fetched, so a hanging Prefect API
never holds a web worker's thread, however many pollers there are. URLs are reported with credentials masked.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from sqlalchemy import text
from sqlmodel import Session

from store.queries import get_value
from store.settings import get_settings

STALE_AFTER = timedelta(minutes=15)  # three missed five-minute ticks
_SECRET_PARAM = re.compile(r"token|key|secret|pass|auth|sig|credential|session", re.IGNORECASE)


def prefect_api_url() -> str:
    return os.environ.get("PREFECT_API_URL") or f"http://127.0.0.1:{get_settings().prefect_port}/api"


def prefect_state(url: str, *, timeout: float = 2.0) -> str:
    try:
        answer = httpx.get(f"{url.rstrip('/')}/health", timeout=timeout)
    except httpx.HTTPError as problem:
        return f"unreachable: {type(problem).__name__}"
    return "ok" if answer.status_code == 200 else f"error: HTTP {answer.status_code}"


def redact_url(url: str) -> str:
    """The URL without its secrets: ``user:password@`` becomes ``***@``, token-like query values ``***``."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rsplit("@", 1)[-1]
        netloc = f"***@{host}" if "@" in parts.netloc else parts.netloc
        query = [(name, "***" if _SECRET_PARAM.search(name) else value) for name, value in parse_qsl(parts.query, True)]
        return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="*"), ""))
    except ValueError:  # not even a URL: say nothing of it
        return "***"


class PrefectCheck:
    """The Prefect API's state for /healthz: checked at most once per ``ttl`` seconds, one check in flight at a
    time, each with its own short ``timeout``. Callers get the last known state at once, while a fresh one is
    fetched in a background thread; only the very first caller of a URL waits, and it gets a future to await."""

    def __init__(
        self,
        *,
        timeout: float = 1.0,
        ttl: float = 30.0,
        probe: Callable[..., str] = prefect_state,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout, self.ttl = timeout, ttl
        self._probe, self._clock = probe, clock
        self._lock = threading.Lock()
        self._known: dict[str, tuple[float, str]] = {}
        self._pending: dict[str, Future[str]] = {}

    def poll(self, url: str) -> str | Future[str]:
        """The last known state, refreshed in the background when older than ``ttl``; or, when nothing is known
        yet, the future of the check under way."""
        with self._lock:
            known = self._known.get(url)
            if (known is None or self._clock() - known[0] >= self.ttl) and url not in self._pending:
                self._pending[url] = self._start(url)
            return known[1] if known is not None else self._pending[url]

    def _start(self, url: str) -> Future[str]:
        future: Future[str] = Future()
        future.set_running_or_notify_cancel()  # running: an awaiting request that gives up cannot cancel it for all
        threading.Thread(target=self._refresh, args=(url, future), name="prefect-health", daemon=True).start()
        return future

    def _refresh(self, url: str, future: Future[str]) -> None:
        try:
            state = self._probe(url, timeout=self.timeout)
        except Exception as exc:  # a bug in the probe must not leave the future pending forever
            state = f"error: {type(exc).__name__}"
        with self._lock:
            self._known[url] = (self._clock(), state)
            self._pending.pop(url, None)
        future.set_result(state)


def report(session: Session, *, at: datetime, check_prefect: bool = True, prefect: str | None = None) -> dict[str, Any]:
    """The health report; ``prefect`` is a Prefect state already known (PrefectCheck), else it is asked now."""
    try:
        session.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means the store is down: report it, do not crash
        session.rollback()
        return {"status": "error", "database": f"error: {type(exc).__name__}"}
    last = get_value(session, key="last_tick_at")
    age = None if last is None else round((at - datetime.fromisoformat(last)).total_seconds())
    url = prefect_api_url()
    if prefect is None:
        prefect = prefect_state(url) if check_prefect else "not checked"
    stale = age is None or age > STALE_AFTER.total_seconds()
    return {
        "status": "degraded" if stale or prefect.startswith(("unreachable", "error", "unknown")) else "ok",
        "database": "ok",
        "prefect_api": prefect,
        "prefect_api_url": redact_url(url),
        "last_tick_at": last,
        "last_tick_age_seconds": age,
        "ticks_stale": stale,
    }
