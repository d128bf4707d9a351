"""A unit, a duty and one occurrence: something for deliveries to belong to in benchmarks and tests."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from store.models import Duty, Occurrence, Unit


def one_occurrence(session: Session, *, at: datetime, due: datetime | None = None) -> int:
    """Add them and return the occurrence's id (not committed)."""
    session.add(Unit(id="u", name="测试单位", kind="street", tags=[]))
    session.add(Duty(id="d", family="f", title="t", clause="附件1 第1项 举措5"))
    session.flush()
    occurrence = Occurrence(
        duty_id="d",
        unit_id="u",
        period="p",
        title="测试任务",
        starts_at=at,
        due_at=due or at,
        first_remind_at=at,
        created_at=at,
    )
    session.add(occurrence)
    session.flush()
    return occurrence.id or 0
