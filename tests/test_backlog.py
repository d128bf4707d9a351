"""Issue 18, defect 6: planning into the past asks for intent, says what it did, and by default escalates nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import col
from typer.testing import CliRunner

from flows.cli import app as cli
from store import db
from store.models import Delivery, Escalation, Occurrence

AT = "2026-03-02T09:00"  # planning February after the fact


def duties(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def count(model: type, *conditions: Any) -> int:
    with db.session_scope() as session:
        return int(session.execute(select(func.count()).select_from(model).where(*conditions)).scalar_one())


def test_by_default_past_items_are_recorded_and_nothing_is_sent_or_numbered(sqlite_store: str) -> None:
    said = duties("plan", "--from", "2026-02-01", "--to", "2026-03-31", "--at", AT)
    past = count(Occurrence, col(Occurrence.due_at) < Occurrence.created_at)
    assert past > 20 and f"其中 {past} 项截止时间已过（往期补录）：只补录到台账" in said
    duties("tick", "--at", "2026-03-02T09:05")
    duties("tick", "--at", "2026-03-20T09:05")
    assert count(Escalation) == count(
        Escalation,
        col(Escalation.occurrence_id).not_in(
            select(Occurrence.id).where(col(Occurrence.due_at) < Occurrence.created_at)  # type: ignore[call-overload]
        ),
    )  # no past item climbed: only March's own items may have
    overdue = json.loads(duties("overdue", "--json", "--at", "2026-03-02T09:05"))
    assert any("往期补录" in o["flags"] for o in overdue)  # visible to managers, as overdue


@pytest.mark.parametrize("policy", ["remind", "escalate"])
def test_a_chosen_backlog_policy_is_carried_out(sqlite_store: str, policy: str) -> None:
    plan = json.loads(
        duties("plan", "--from", "2026-02-01", "--to", "2026-02-28", "--backlog", policy, "--at", AT, "--json")
    )
    assert plan["backlog"] == plan["added"] > 0 and plan["backlog_policy"] == policy
    duties("tick", "--at", "2026-03-02T09:05")
    notices = count(Escalation)
    backlog_messages = count(Delivery, col(Delivery.stage).startswith("backlog:"))
    if policy == "remind":
        assert notices == 0 and backlog_messages > 0
        with db.session_scope() as session:
            told = session.execute(
                select(col(Delivery.unit_id), col(Delivery.occurrence_id)).where(
                    col(Delivery.stage).startswith("backlog:")
                )
            ).tuples()
            pairs = set(told)
        assert len(pairs) == len({unit for unit, _ in pairs})  # one message per unit, however many items it has
    else:
        assert notices > 0 and backlog_messages == 0


def test_an_unknown_policy_is_refused(sqlite_store: str) -> None:
    result = CliRunner().invoke(cli, ["plan", "--from", "2026-02-01", "--to", "2026-02-28", "--backlog", "some"])
    assert result.exit_code == 2 and "--backlog 只能是 ignore|remind|escalate" in result.output
