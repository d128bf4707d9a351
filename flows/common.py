"""What every step shares: the context, the system actor, and the scan over open items whose moment has come."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from calendars.loader import Program
from notify.send import Sender
from store.models import Occurrence
from store.settings import Settings

BATCH = 500
SYSTEM = "system"


@dataclass
class Context:
    """What every step needs besides the session and the time."""

    program: Program
    settings: Settings
    secret: str
    send: Sender
    seed: str = ""  # draws the days of unannounced checks

    @property
    def zone(self) -> Any:
        return self.settings.zone


def open_rows(session: Session, moment: str, at: datetime) -> Iterator[Occurrence]:
    for batch in open_batches(session, moment, at):
        yield from batch


def open_batches(session: Session, moment: str, at: datetime) -> Iterator[list[Occurrence]]:
    """Open occurrences whose ``moment`` column has come, in batches; each batch is committed after use.

    Only the rows that are due cost anything (the column is indexed), so a tick's cost follows the work due, not
    the size of the ledger. A row another worker has just claimed may show up again: it is yielded only once.
    """
    col = Occurrence.__table__.c  # type: ignore[attr-defined]
    query = (
        select(Occurrence)
        .where(col[moment] <= at, col.done_at.is_(None), col.waived_at.is_(None), col.parked_at.is_(None))
        .order_by(col[moment], col.id)
        .limit(BATCH)
        .execution_options(populate_existing=True)
    )
    seen: set[int] = set()
    while True:
        fresh = [row for row in session.execute(query).scalars() if row.id not in seen]
        if not fresh:
            return
        seen.update(row.id or 0 for row in fresh)
        yield fresh
        session.commit()
