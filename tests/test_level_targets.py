"""Issue 18, defect 11: a rate (亮灯率不低于98%) is a level, not a running total: the form asks for the current value,
the page shows the latest one, and there is no pro-rata line."""

from __future__ import annotations

import json
from datetime import date

from fastapi.testclient import TestClient
from sqlmodel import Session
from typer.testing import CliRunner

from flows.cli import app as cli
from flows.notices import message
from flows.steps import Context
from tests.conftest import local
from tests.test_kinds import occurrences_of, plan_only, report_progress
from tests.web_support import Clock, path_of


def test_a_rate_is_asked_for_its_current_value_and_judged_against_its_goal(
    session: Session, ctx: Context, client: TestClient, now: Clock
) -> None:
    plan_only(session, ctx, "streetlight-rate", date(2026, 3, 1), date(2026, 3, 31), at=local("2026-03-01T08:00"))
    (item,) = occurrences_of(session, "streetlight-rate")
    now.at = local("2026-03-10T10:00")
    form = client.get(path_of(ctx, item, now.at)).text
    assert "当前数值" in form and "不是增量" in form and "本次新增完成数量" not in form
    report_progress(session, item, amount=97.5, at=now.at, form_id="a")
    page = client.get(path_of(ctx, item, now.at)).text
    assert "最新报送 97.5" in page and "尚未达标" in page and "累计" not in page
    report_progress(session, item, amount=98.4, at=now.at, form_id="b")  # the latest counts, not the sum
    (row,) = json.loads(CliRunner().invoke(cli, ["targets", "--json", "--at", "2026-03-10T10:00"]).stdout)
    assert (row["mode"], row["achieved"], row["expected"], row["on_track"]) == ("level", 98.4, 98, True)


def test_a_rate_reminder_asks_for_the_latest_value(session: Session, ctx: Context) -> None:
    plan_only(session, ctx, "streetlight-rate", date(2026, 3, 1), date(2026, 3, 31), at=local("2026-03-01T08:00"))
    (item,) = occurrences_of(session, "streetlight-rate")
    duty = ctx.program.duties["streetlight-rate"]
    _, body = message(ctx, "reminder", item, duty, at=local("2026-03-17T09:00"), days_left=14)
    assert "不低于 98 %（亮灯率）" in body and "最新值，不是增量" in body and "累计" not in body
