"""Jinja2 templates, rendered by one helper (DESIGN principle 7).

``messages/`` holds the texts units receive; ``pages/`` holds the web pages. HTML is autoescaped, text is not.
Every template may use ``programme`` (calendars.schema.ProgrammeSpec, or None for a folder that names no guidance):
the document it cites (``clause|cite(programme)``) and the office that signs (``messages/signature.txt.j2``).
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from templates.labels import actor_label, channel_label, detail_value, stage_label

FOLDER = Path(__file__).parent
WEEKDAYS = "一二三四五六日"


def local_time(value: datetime, zone: Any) -> str:
    """2026年2月27日（周五）17:00, the way a notice in Chinese writes a moment."""
    moment = value.astimezone(zone)
    return f"{moment.year}年{moment.month}月{moment.day}日（周{WEEKDAYS[moment.weekday()]}）{moment:%H:%M}"


def readable(value: Any, zone: Any) -> Any:
    """An ISO moment from an audit event, the way local_time writes it; anything else as it is."""
    if isinstance(value, str) and len(value) >= 19 and value[10:11] == "T":
        try:
            return local_time(datetime.fromisoformat(value), zone)
        except ValueError:
            return value
    return value


def cite(clause: str, programme: Any) -> str:
    """附件1 第6项 举措2 with its document in front (湖城管委〔2022〕2号 附件1 第6项 举措2), when there is one."""
    return programme.cite(clause) if programme is not None else clause


def percent(value: float | None) -> str:
    """0.8765 → 87.7%; no rate (nothing to count) → —."""
    return "—" if value is None else f"{value * 100:.1f}%"


CHINESE_NUMBERS = "一二三四五六七八九十"


def chinese_number(value: int) -> str:
    """1 → 一 … 10 → 十, for the numbered sections of a 通报; larger numbers as digits."""
    return CHINESE_NUMBERS[value - 1] if 1 <= value <= len(CHINESE_NUMBERS) else str(value)


@lru_cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(FOLDER),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["local_time"] = local_time
    env.filters["readable"] = readable
    env.filters["cite"] = cite
    env.filters["stage_label"] = stage_label
    env.filters["channel_label"] = channel_label
    env.filters["actor_label"] = actor_label
    env.filters["detail_value"] = detail_value
    env.filters["percent"] = percent
    env.filters["chinese_number"] = chinese_number
    return env


def render(name: str, **context: Any) -> str:
    context.setdefault("programme", None)
    return environment().get_template(name).render(**context)
