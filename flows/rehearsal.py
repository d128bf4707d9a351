"""Dry runs (``--dry-run``): a command that can send messages or take document numbers does all its work on a
throwaway store, with a sender that records instead of sending, and reports what it would have done.

On SQLite the throwaway store is an online copy of the file (SQLite's backup API); on PostgreSQL it is the real
store inside one transaction that is rolled back (the steps' own commits become savepoints). Either way the real
store is never written and nothing leaves the machine.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlmodel import Session, col

from notify.send import Outcome
from store.backup import online_copy
from store.db import create_tables, get_engine, make_engine
from store.models import Delivery, Escalation
from store.settings import get_settings
from templates.labels import stage_label


@dataclass
class Recorder:
    """A sender that sends nothing: every message is counted as sent, as the real one would have sent it."""

    messages: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, url: str, title: str, body: str, *, key: str = "") -> Outcome:
        self.messages.append((url, title))
        return Outcome("sent", "演练：未发送")


@contextmanager
def throwaway_store() -> Iterator[Session]:
    """A session whose writes never reach the real store."""
    engine = get_engine()
    create_tables(engine)
    url = get_settings().resolved_database_url
    if url.startswith("sqlite"):
        with tempfile.TemporaryDirectory(prefix="duties-dry-run-") as scratch:
            copy = Path(scratch) / "dry-run.db"
            online_copy(Path(url.split("///", 1)[1]), copy)
            scratch_engine = make_engine(f"sqlite:///{copy}")
            try:
                with Session(scratch_engine, expire_on_commit=False) as session:
                    yield session
            finally:
                scratch_engine.dispose()
        return
    with engine.connect() as connection:
        outer = connection.begin()
        try:
            with Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False) as session:
                yield session
        finally:
            outer.rollback()


def what_happened(session: Session, *, at: datetime, units: dict[str, str]) -> list[str]:
    """The lines a dry run prints: messages per unit and kind, and the numbered notices with their numbers."""
    now_or_later = (col(Delivery.sent_at) == at) | (
        (col(Delivery.created_at) == at) & (col(Delivery.status) == "pending")
    )
    per_unit: Counter[tuple[str, str]] = Counter()
    for d in session.execute(select(Delivery).where(now_or_later)).scalars():
        later = "" if d.status == "sent" else "（办公时间内发出）"
        per_unit[(units.get(d.unit_id, d.unit_id), stage_label(d.stage) + later)] += 1
    notices = select(Escalation).where(col(Escalation.at) == at, col(Escalation.document) != "")
    numbered = [f"{e.document}（{e.name}，事项 {e.occurrence_id}）" for e in session.execute(notices).scalars()]
    numbered += [
        f"{e.document}（{e.name}，事项 {e.occurrence_id}，经审批）"
        for e in session.execute(select(Escalation).where(col(Escalation.approved_at) == at)).scalars()
        if e.at != at
    ]
    lines = [f"{unit}：{kind} {count} 条" for (unit, kind), count in sorted(per_unit.items())]
    lines += [f"将编号：{document}" for document in numbered]
    return lines or ["无消息发出，无通知编号。"]
