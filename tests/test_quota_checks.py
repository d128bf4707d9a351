"""Issue 18, defect 12: a quota ("每周不少于1次") records every check, also once the minimum is reached."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlmodel import Session, col

from flows.steps import Context
from store.models import Confirmation, Occurrence
from tests.conftest import local
from tests.web_support import Clock, path_of


def test_a_second_check_in_a_week_is_recorded_and_the_form_stays(
    session: Session, ctx: Context, item: Occurrence, client: TestClient, now: Clock
) -> None:
    assert ctx.program.duties[item.duty_id].kind == "quota" and item.required == 1
    now.at = local("2026-02-03T10:00")
    link = path_of(ctx, item, now.at)
    first = client.post(link, data={"note": "周二抽查东门市场", "form_id": "a"})
    assert first.headers["X-Duties-Outcome"] == "confirmed"
    assert "记录一次检查" in first.text  # the form is still there for the next check
    now.at = local("2026-02-05T15:00")
    second = client.post(link, data={"note": "周四抽查西门市场", "form_id": "b"})
    assert second.headers["X-Duties-Outcome"] == "recorded" and "本期已记录 2 次检查" in second.text
    session.expire_all()
    checks = select(func.count()).where(col(Confirmation.occurrence_id) == item.id)
    assert session.execute(checks).scalar_one() == 2
    done = session.get(Occurrence, item.id)
    assert done is not None and done.achieved == 2 and done.done_at == local("2026-02-03T10:00")  # done at the first
    again = client.post(link, data={"note": "周四抽查西门市场", "form_id": "b"})  # the same form twice counts once
    assert again.headers["X-Duties-Outcome"] == "already"
