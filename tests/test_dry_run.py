"""Issue 18, defect 7: `--dry-run` on a command that sends or numbers says what it would do and changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlmodel import col
from typer.testing import CliRunner

from flows.cli import app as cli
from notify import outbox
from notify.receivers import Inbox
from store import db
from store.models import AuditEvent, Contact, Delivery, DocumentCounter, Escalation, Occurrence
from tests.conftest import local

AT = local("2026-02-04T09:00")


def duties(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def ledger() -> tuple[int, ...]:
    with db.session_scope() as session:
        tables = (Occurrence, Delivery, Escalation, AuditEvent, DocumentCounter)
        counts = tuple(int(session.execute(select(func.count()).select_from(t)).scalar_one()) for t in tables)
        numbers = session.execute(select(func.coalesce(func.sum(col(DocumentCounter.last)), 0))).scalar_one()
        return (*counts, int(numbers))


@pytest.mark.parametrize("moment", ["2026-02-04T09:00", "2026-02-09T17:05"])  # reminders; then 交办 notices
def test_a_dry_run_tick_reports_and_changes_nothing(store: str, fresh_inbox: Inbox, moment: str) -> None:
    duties("plan", "--from", "2026-02-01", "--to", "2026-02-08", "--at", "2026-01-20T08:00")
    before = ledger()
    said = duties("tick", "--dry-run", "--at", moment)
    assert said.startswith("（演练，未写入、未发送）")
    if moment.endswith("17:05"):
        assert "将编号：湖城管交〔2026〕1号" in said and "交办通知" in said
    else:
        assert "提醒" in said
    assert ledger() == before and fresh_inbox.mails == [] and fresh_inbox.posts == []
    duties("tick", "--at", moment)  # the real tick then does what the rehearsal said
    assert ledger() != before and (fresh_inbox.mails or fresh_inbox.posts)


def test_a_dry_run_approval_names_the_number_it_would_take_and_takes_none(store: str) -> None:
    duties("plan", "--from", "2026-02-01", "--to", "2026-02-08", "--at", "2026-01-20T08:00")
    for moment in ("2026-02-09T17:05", "2026-02-14T17:05", "2026-02-26T17:05"):
        duties("tick", "--at", moment)
    with db.session_scope() as session:
        waiting = session.execute(select(Escalation).where(col(Escalation.status) == "pending")).scalars().first()
    assert waiting is not None
    before = ledger()
    said = duties("approve", str(waiting.id), "--dry-run", "--at", "2026-02-27T10:00")
    assert said.startswith("（演练，未写入）将审批，通知文号 湖城管谈〔2026〕1号") and ledger() == before
    real = duties("approve", str(waiting.id), "--at", "2026-02-27T10:00")
    assert "湖城管谈〔2026〕1号" in real and ledger() != before


def test_a_dry_run_dispatch_lists_what_is_due_and_sends_nothing(sqlite_store: str, fresh_inbox: Inbox) -> None:
    duties("plan", "--from", "2026-02-01", "--to", "2026-02-08", "--at", "2026-01-20T08:00")
    with db.session_scope() as session:
        item = session.execute(select(Occurrence)).scalars().first()
        assert item is not None
        contacts = session.execute(select(Contact).where(col(Contact.unit_id) == item.unit_id)).scalars().all()
        outbox.queue(
            session, occurrence_id=item.id or 0, stage="level:1", contacts=list(contacts), title="t", body="b", at=AT
        )
        session.commit()
    said = duties("dispatch", "--dry-run", "--at", "2026-02-04T09:01")
    assert f"交办通知 {len(contacts)} 条" in said and fresh_inbox.mails == [] and fresh_inbox.posts == []
    duties("dispatch", "--at", "2026-02-04T09:01")
    assert len(fresh_inbox.mails) + len(fresh_inbox.posts) == len(contacts)
