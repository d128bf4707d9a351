"""Prefect flows: thin wrappers over the steps. One flow run handles a whole tick in bulk, never one per item."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

from prefect import flow, get_run_logger

from flows import cases, runtime, steps
from store.db import create_tables, get_engine, session_scope


# One retry: every step is idempotent (claims and unique keys), so a tick that lost a race with another, such as a
# deadlock between two planners on PostgreSQL, may safely run again at once instead of waiting five minutes.
@flow(name="duties-tick", retries=1, retry_delay_seconds=2)
def tick_flow(at: str | None = None) -> dict[str, Any]:
    """One heartbeat: plan the horizon, send the reminders that are due, escalate the overdue."""
    when = runtime.parse_moment(at) if at else runtime.now()
    program = runtime.load_calendars()
    create_tables(get_engine())
    with session_scope() as session:
        report = steps.tick(session, runtime.make_context(session, program), at=when)
    logger = get_run_logger()
    logger.info("tick at %s: %s", when.isoformat(), report)
    for warning in report.flags:
        logger.warning(warning)
    return asdict(report)


@flow(name="duties-plan", retries=1)
def plan_flow(days: int = 120, at: str | None = None) -> int:
    """Write the ledger further ahead than a tick does, so managers can see the coming months."""
    when = runtime.parse_moment(at) if at else runtime.now()
    program = runtime.load_calendars()
    create_tables(get_engine())
    today = when.astimezone(runtime.get_settings().zone).date()
    with session_scope() as session:
        ctx = runtime.make_context(session, program)
        steps.sync_program(session, program, at=when)
        added = steps.plan(session, ctx, start=today, end=today + timedelta(days=days), at=when)
    get_run_logger().info("planned %d occurrences up to %s", added, today + timedelta(days=days))
    return added


@flow(name="duties-supervise", retries=1, retry_delay_seconds=2)
def supervise_flow(at: str | None = None) -> dict[str, Any]:
    """The minute-level ladder of cases (零星垃圾 30 分钟): climb what is late, send what is due. Cheap when idle."""
    when = runtime.parse_moment(at) if at else runtime.now()
    program = runtime.load_calendars()
    with session_scope() as session:
        report = cases.supervise(session, runtime.make_context(session, program), at=when)
    if report.climbed or report.sent:
        get_run_logger().info("supervision at %s: %s", when.isoformat(), report)
    return asdict(report)
