"""Planning remembers the days it has planned under the current calendars, so a tick plans only new days; a changed
calendar or working-day arrangement plans again, and nothing is ever missed or written twice."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from sqlalchemy import func, select
from sqlmodel import Session

from calendars.loader import load_program
from flows import steps
from flows.runtime import make_context
from flows.steps import PLANNED_RANGE, Context
from store.models import Occurrence
from store.queries import count_rows, get_value, put_value
from tests.conftest import local

AT = local("2026-01-20T08:00")
NEW_STREET = """
  - id: wuxing-newtown
    name: 新城街道
    kind: street
    district: wuxing
    contacts:
      - name: 值班邮箱
        url: mailto://127.0.0.1:8025?from=duties@huzhou.local&to=wuxing-newtown@demo.huzhou.local
"""


COLUMNS = Occurrence.__table__.c  # type: ignore[attr-defined]


def planned(session: Session) -> set[tuple[str, str, str]]:
    return set(session.execute(select(COLUMNS.duty_id, COLUMNS.unit_id, COLUMNS.period)).tuples())


def plan(session: Session, ctx: Context, start: date, end: date, **only: set[str]) -> int:
    return steps.plan(session, ctx, start=start, end=end, at=AT, **only)


def every_duty(ctx: Context) -> dict[str, set[str]]:
    """``only`` naming every duty: the same rows, but the remembered range is neither read nor written."""
    return {"only": set(ctx.program.duties)}


def test_a_wider_window_plans_only_the_days_not_yet_planned(session: Session, ctx: Context) -> None:
    first = plan(session, ctx, date(2026, 2, 1), date(2026, 2, 8))
    wider = plan(session, ctx, date(2026, 1, 25), date(2026, 2, 28))
    assert first > 0 and wider > 0
    # Looking every duty up again over the whole window finds nothing missing.
    assert plan(session, ctx, date(2026, 1, 25), date(2026, 2, 28), **every_duty(ctx)) == 0
    assert count_rows(session, Occurrence) == first + wider
    remembered = json.loads(get_value(session, key=PLANNED_RANGE) or "{}")
    assert (remembered["from"], remembered["to"]) == ("2026-01-25", "2026-02-28")
    assert plan(session, ctx, date(2026, 2, 3), date(2026, 2, 20)) == 0


def test_the_remembered_range_matches_a_plan_made_in_one_go(session: Session, ctx: Context) -> None:
    for start, end in ((date(2026, 3, 1), date(2026, 3, 10)), (date(2026, 3, 11), date(2026, 3, 31))):
        plan(session, ctx, start, end)
    in_pieces = planned(session)
    session.execute(COLUMNS.id.table.delete())
    put_value(session, key=PLANNED_RANGE, value="{}")
    session.commit()
    plan(session, ctx, date(2026, 3, 1), date(2026, 3, 31))
    in_one_go = planned(session)
    assert in_pieces == in_one_go and len(in_one_go) > 50


def test_a_new_unit_in_the_calendars_is_planned_for_days_already_planned(
    session: Session, ctx: Context, calendars_dir: Path
) -> None:
    plan(session, ctx, date(2026, 2, 1), date(2026, 2, 28))
    units = calendars_dir / "huzhou" / "units.yaml"
    units.write_text(units.read_text(encoding="utf-8").rstrip("\n") + "\n" + NEW_STREET, encoding="utf-8")
    changed = load_program(calendars_dir)
    steps.sync_program(session, changed, at=AT)
    added = plan(session, make_context(session, changed), date(2026, 2, 1), date(2026, 2, 28))
    newcomer = session.execute(select(func.count()).where(COLUMNS.unit_id == "wuxing-newtown")).scalar_one()
    assert added == newcomer > 0


def test_a_published_holiday_arrangement_plans_again(session: Session, ctx: Context) -> None:
    plan(session, ctx, date(2026, 2, 1), date(2026, 2, 28))
    before = steps.plan_marker(ctx)
    ctx.program.workdays.add_year(2026, holidays=[date(2026, 2, 27)], workdays=[])
    assert steps.plan_marker(ctx) != before
    planned = steps._planned_range(session, steps.plan_marker(ctx))
    assert steps._unplanned_windows(planned, date(2026, 2, 1), date(2026, 2, 28)) == [
        (date(2026, 2, 1), date(2026, 2, 28))
    ]
