"""What every ``duties`` command shares: Chinese errors without tracebacks, --at and --json, the opened store."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from sqlmodel import Session

from calendars.loader import CalendarError, Program
from flows import runtime
from flows.redate import Move
from store.db import create_tables, get_engine, session_scope
from store.models import Occurrence
from store.queries import FIRST_DAY, LAST_DAY

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

AtOption = Annotated[str | None, typer.Option("--at", help="以此时刻运行（ISO 8601），默认为当前时间")]
JsonOption = Annotated[bool, typer.Option("--json", help="输出 JSON")]
LimitOption = Annotated[
    int | None,
    typer.Option("--limit", min=0, help="最多输出条数；0 为全部。默认：表格 1000 条，--json 全部"),
]
TABLE_ROWS = 1000


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]错误：[/red]{message}", highlight=False)
    raise typer.Exit(code)


MAX_ROW_ID = 2**63 - 1  # the largest id a database row can have (a signed 64-bit integer)
DAYS = f"{FIRST_DAY} 至 {LAST_DAY}"


def out_of_range(what: str, value: object, bounds: str) -> NoReturn:
    """The one refusal for a moment, a day or an id outside what the store can hold: exit status 2, no traceback."""
    fail(f"{what} 超出允许范围（{bounds}）：{value}", 2)


def moment(value: str | None) -> datetime:
    """``--at``, or now; a moment whose local day is outside 1900–2999 is refused."""
    if value is None:
        return runtime.now()
    try:
        parsed = runtime.parse_moment(value)
    except OverflowError:
        out_of_range("--at", value, DAYS)
    except ValueError as exc:
        fail(str(exc), 2)
    if not FIRST_DAY <= parsed.astimezone(runtime.get_settings().zone).date() <= LAST_DAY:
        out_of_range("--at", value, DAYS)
    return parsed


def day(value: str | None, option: str) -> date | None:
    """A date option; one outside 1900–2999 is refused."""
    if value is None:
        return None
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        fail(f"{option} 需要日期（YYYY-MM-DD）：{value!r}", 2)
    if not FIRST_DAY <= parsed <= LAST_DAY:
        out_of_range(option, value, DAYS)
    return parsed


def _row_id(param: typer.CallbackParam, value: int | None) -> int | None:
    if value is not None and not 1 <= value <= MAX_ROW_ID:
        out_of_range(getattr(param, "help", None) or param.name, value, f"1 至 {MAX_ROW_ID}")
    return value


def id_argument(label: str) -> Any:
    """The argument of every command that names a row by its id: refused at the edge when no row can have it."""
    return typer.Argument(help=label, callback=_row_id)


def program_or_exit() -> Program:
    try:
        return runtime.load_calendars()
    except CalendarError as error:
        sys.stderr.write("".join(f"{problem}\n" for problem in error.problems))
        fail(f"日历文件有 {len(error.problems)} 处问题，未写入任何数据。")


@contextmanager
def opened_store() -> Iterator[Session]:
    """A session on the store, its tables created first if this is a new store."""
    create_tables(get_engine())
    with session_scope() as session:
        yield session


def occurrence_or_exit(session: Session, occurrence_id: int) -> Occurrence:
    occurrence = session.get(Occurrence, occurrence_id)
    if occurrence is None:
        fail(f"没有 id 为 {occurrence_id} 的任务。")
    return occurrence


def rows_to_show(limit: int | None, as_json: bool) -> int | None:
    """How many rows a listing prints; None for all. A script reading --json gets every row unless it asks fewer."""
    if limit is None:
        return None if as_json else TABLE_ROWS
    return limit or None


def shown_of(shown: int, total: int) -> str:
    """The last line of a listing for people: how many rows there are, and how many of them are shown."""
    return f"共 {total} 条。" if shown >= total else f"显示 {shown} 条，共 {total} 条（--limit 0 显示全部）。"


def say_if_cut(shown: int, total: int) -> None:
    """On stderr, so the JSON on stdout stays parseable: a listing that stopped short says so."""
    if shown < total:
        err.print(f"仅输出 {shown} 条，共 {total} 条；用 --limit 0 输出全部。", highlight=False)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def describe_moves(moves: list[Move], *, planned: bool = False) -> str:
    """One line on what a calendar change did (or, ``planned``, would do) to items already in the ledger."""
    if not moves:
        return "已排期事项无需改期。"
    moved = [move for move in moves if move.new_due is not None]
    told = sum(move.reminded for move in moves)
    verb = "将" if planned else "已"
    return (
        f"按新日历{verb}改期 {len(moved)} 项、撤销 {len(moves) - len(moved)} 项；"
        f"其中 {told} 项已提醒过单位，{verb}发送变更通知。"
    )


def moves_lines(moves: list[Move], zone: Any) -> list[str]:
    """The moves grouped by their reason, one line an item: narrow enough for a terminal, complete for 300 items."""
    by_reason: dict[str, list[Move]] = {}
    for move in moves:
        by_reason.setdefault(move.reason, []).append(move)
    lines = []
    for reason, group in by_reason.items():
        lines.append(f"原因：{reason}（{len(group)} 项）")
        for move in sorted(group, key=lambda m: (m.old_due, m.unit_id, m.occurrence_id)):
            new_due = f"{move.new_due.astimezone(zone):%Y-%m-%d %H:%M}" if move.new_due else "撤销"
            told = "  需通知单位" if move.reminded else ""
            lines.append(
                f"  #{move.occurrence_id} {move.title} {move.unit_id}："
                f"{move.old_due.astimezone(zone):%Y-%m-%d %H:%M} → {new_due}{told}"
            )
    return lines
