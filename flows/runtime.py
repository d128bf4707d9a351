"""Wiring shared by the CLI, the flows and the web app: settings, the program on disk, the step context."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pendulum
from sqlmodel import Session

from calendars import compiled
from calendars.loader import Program
from flows.steps import Context
from notify.send import Sender, send_apprise
from store.db import secret_key, unannounced_seed
from store.settings import get_settings

__all__ = ["get_settings", "load_calendars", "make_context", "now", "parse_moment"]


def parse_moment(value: str) -> datetime:
    """An ISO date or datetime; one without an offset is read in DUTIES_TZ. Raises ValueError when unreadable."""
    try:
        parsed = pendulum.parse(value, tz=get_settings().tz)
    except (pendulum.parsing.exceptions.ParserError, ValueError) as exc:
        raise ValueError(f"不是有效的日期时间（ISO 8601，如 2026-02-27T09:00）：{value!r}") from exc
    if not isinstance(parsed, datetime):
        raise ValueError(f"需要日期时间：{value!r}")
    return datetime.fromisoformat(parsed.isoformat()).astimezone(UTC)


def now() -> datetime:
    return datetime.now(UTC)


def load_calendars() -> Program:
    """The calendars, parsed again only when a file under the folder changed (each tick asks for them).

    Within a process the files' times and sizes tell; across processes the compiled programme in the var folder,
    keyed on the files' bytes, spares each command the parse (calendars/compiled.py).
    """
    settings = get_settings()
    root = settings.calendars
    stamp = _stamp(root)
    cached = _LOADED.get(root)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    program = compiled.load(root, settings.var_dir)
    _LOADED[root] = (stamp, program)
    return program


_LOADED: dict[Path, tuple[tuple[tuple[str, int, int], ...], Program]] = {}


def _stamp(root: Path) -> tuple[tuple[str, int, int], ...]:
    """Every calendar file with its modification time and size: a change to any of them means parse again."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml"))
    return tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)


def make_context(session: Session, program: Program, send: Sender = send_apprise) -> Context:
    return Context(
        program=program, settings=get_settings(), secret=secret_key(session), send=send, seed=unannounced_seed(session)
    )
