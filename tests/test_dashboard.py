"""The leaders' dashboard (/desk/) and /api/stats: figures equal to those counted by hand from a small ledger, every
figure a link to a list with as many items, a district account that sees only its own district, and a page that
fetches nothing from another host."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlparse

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session, col

from calendars.loader import Program
from flows import assessment, ladder, steps
from flows.runtime import make_context
from flows.steps import Context, sync_program
from notify.send import send_apprise
from store import db
from store.models import Assessment, Escalation, Occurrence, Unit
from store.queries import get_value
from tests.conftest import local
from tests.desk_support import api_headers, log_in
from tests.test_steps import CORE
from tests.web_support import Clock
from web.auth import Scope
from web.dashboard import figures

NOW = local("2026-11-20T10:00")  # a Friday: October frozen at its cut-off (6 Nov), November's draft fresh
OTHER_DISTRICT_NAMES = ("南浔", "德清", "长兴", "安吉")


@pytest.fixture
def city(session: Session, ctx: Context, now: Clock) -> dict[str, Unit]:
    """CORE over October and November 2026. October: 吴兴's items done on time, 南浔's a day late, the others left
    open (overdue); November: 吴兴's items due by NOW done on time, the rest open. Escalated as the ticks would."""
    now.at = NOW
    steps.plan(session, ctx, start=date(2026, 10, 1), end=date(2026, 11, 30), at=local("2026-09-20T08:00"), only=CORE)
    units = {unit.id: unit for unit in session.execute(select(Unit)).scalars()}
    for item in session.execute(select(Occurrence)).scalars():
        district = units[item.unit_id].district or item.unit_id
        if item.due_at < local("2026-11-01T00:00") and district == "wuxing":
            item.done_at = item.due_at - timedelta(hours=1)
        elif item.due_at < local("2026-11-01T00:00") and district == "nanxun":
            item.done_at = item.due_at + timedelta(days=1)
        elif item.due_at <= NOW and district == "wuxing":
            item.done_at = item.due_at - timedelta(hours=2)
        session.add(item)
    session.commit()
    for day in ("2026-10-12T17:00", "2026-10-20T17:00", "2026-11-05T17:00", "2026-11-12T17:00", "2026-11-19T17:00"):
        steps.escalate(session, ctx, at=local(day))
    assessment.assess(session, ctx, "2026-10", at=NOW)  # after its cut-off: frozen
    assert assessment.refresh_draft(session, ctx, NOW) == "draft"
    return units


def by_hand(session: Session, units: dict[str, Unit], month: str, district: str | None) -> dict[str, Any]:
    """The month's figures counted item by item in Python (no target duties in CORE), as of its snapshot's moment:
    NOW for November's draft, the cut-off for October's frozen snapshot."""
    session.expire_all()
    snapshot = session.execute(select(Assessment).where(col(Assessment.period) == month)).scalar_one()
    as_of = min(snapshot.computed_at, snapshot.cutoff_at)
    start = local(f"{month}-01T00:00")
    end = local(f"{month[:4]}-{int(month[5:]) + 1:02d}-01T00:00")
    levels: dict[int, int] = {}
    for notice in session.execute(select(Escalation)).scalars():
        if notice.status == "issued" and notice.at <= as_of:
            levels[notice.occurrence_id] = max(levels.get(notice.occurrence_id, 0), notice.level)
    counted: dict[str, Any] = {"due": 0, "on_time": 0, "overdue": 0, "level_1": 0, "level_2": 0, "level_3": 0}
    for item in session.execute(select(Occurrence)).scalars():
        if not start <= item.due_at < end or item.due_at > as_of:
            continue
        if district is not None and (units[item.unit_id].district or item.unit_id) != district:
            continue
        done = item.done_at is not None and item.done_at <= as_of
        counted["due"] += 1
        counted["on_time"] += done and item.done_at <= item.due_at
        counted["overdue"] += not done
        counted[f"level_{levels.get(item.id or 0, 0)}"] = counted.get(f"level_{levels.get(item.id or 0, 0)}", 0) + 1
    counted["on_time_rate"] = round(counted["on_time"] / counted["due"], 4) if counted["due"] else None
    return counted


def listed_total(client: TestClient, link: str) -> int:
    page = client.get(link)
    assert page.status_code == 200, link
    found = re.search(r'<span id="total">(\d+)</span>', page.text)
    assert found, link
    return int(found.group(1))


def test_the_figures_are_those_counted_by_hand_and_each_links_to_as_many_items(
    client: TestClient, session: Session, city: dict[str, Unit]
) -> None:
    log_in(client, session, "boss")
    stats = client.get("/api/stats", headers=api_headers(session, "script")).json()
    for key, month in (("current", "2026-11"), ("previous", "2026-10")):
        expected = by_hand(session, city, month, None)
        figures = stats[key]
        assert {k: figures[k] for k in expected if k in figures} == {k: v for k, v in expected.items() if k in figures}
    assert stats["previous"]["status"] == "open" and stats["current"]["status"] == "draft"
    assert stats["previous"]["as_of"] == "2026-11-06T17:00:00+08:00" and stats["current"]["as_of"] == NOW.isoformat()
    bars = {bar["id"]: bar for bar in stats["bars"]}
    october = {row["district"]: row for row in stats["trend"]["series"]}
    index = stats["trend"]["months"].index("2026-10")
    assert october["wuxing"]["rates"][index] == 1.0 and october["nanxun"]["rates"][index] == 0.0
    assert bars["wuxing"]["on_time_rate"] == by_hand(session, city, "2026-11", "wuxing")["on_time_rate"] == 1.0
    assert stats["current"]["overdue"] > 0 and stats["previous"]["level_2"] > 0

    html = client.get("/desk/").text
    assert "按期完成率" in html and "<svg" in html and "吴兴区" in html
    # Every figure of this month links to a list whose total is the figure (the draft is as fresh as the list).
    current = stats["current"]
    for figure in ("overdue", "on_time", "level_2", "level_3"):
        assert listed_total(client, current["links"][figure]) == current[figure], figure
        assert f'href="{current["links"][figure].replace("&", "&amp;")}"' in html
    for day in stats["upcoming"]:
        assert listed_total(client, day["link"]) == day["count"]
    assert len(stats["upcoming"]) == 7 and stats["upcoming"][0]["date"] == "2026-11-20"
    assert [d["date"] for d in stats["upcoming"]][1:3] == ["2026-11-23", "2026-11-24"]  # the weekend skipped
    assert stats["pending_approvals"]["count"] == len(ladder.pending(session))
    worst = stats["worst"]
    assert worst["period"] == "2026-10" and worst["status"] == "open" and len(worst["units"]) == 10
    assert [u["score"] for u in worst["units"]] == sorted(u["score"] for u in worst["units"])
    assert client.get(worst["link"]).status_code == 200  # the ranking, and the deductions behind a score
    assert client.get(worst["units"][0]["deductions_link"]).status_code == 200
    heat = stats["heatmap"]["rows"][0]
    assert heat["links"][-1] == f"/desk/items?from=2026-11-01&to=2026-11-30&unit={heat['unit']}"


def test_a_district_account_sees_only_its_own_district(
    client: TestClient, session: Session, city: dict[str, Unit]
) -> None:
    log_in(client, session, "wx", district="wuxing")
    html = client.get("/desk/").text
    stats = client.get("/api/stats", headers=api_headers(session, "wx-script", district="wuxing")).json()
    for name in OTHER_DISTRICT_NAMES:
        assert name not in html, name
        assert name not in str(stats), name
    assert stats["district"] == "wuxing" and stats["current"] == stats["current"] | by_subset(session, city)
    rank = stats["district_rank"]
    assert rank is not None and rank["of"] == 5 and f"第{rank['rank']}名/共5个区县" in html
    assert {s["district"] for s in stats["trend"]["series"]} == {"wuxing"}
    assert all((city[row["unit"]].district or row["unit"]) == "wuxing" for row in stats["heatmap"]["rows"])
    assert all((city[row["unit"]].district or row["unit"]) == "wuxing" for row in stats["worst"]["units"])
    assert all((city[bar["id"]].district or bar["id"]) == "wuxing" for bar in stats["bars"])
    assert stats["pending_approvals"] is None
    # Asking for another district changes nothing for a district token.
    asked = client.get(
        "/api/stats", params={"district": "nanxun"}, headers=api_headers(session, "wx-2", district="wuxing")
    ).json()
    assert asked["district"] == "wuxing" and asked["current"] == stats["current"]


def by_subset(session: Session, city: dict[str, Unit]) -> dict[str, Any]:
    expected = by_hand(session, city, "2026-11", "wuxing")
    return {k: expected[k] for k in ("due", "on_time", "overdue", "level_2", "level_3", "on_time_rate")}


def test_the_page_fetches_nothing_from_another_host(
    client: TestClient, session: Session, city: dict[str, Unit]
) -> None:
    log_in(client, session, "boss")
    html = client.get("/desk/").text
    assert html.count("<svg") == 2 and "pygal" in html
    for url in re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)', html):
        assert urlparse(url).scheme not in ("http", "https") and not url.startswith("//"), url
    assert "<script" not in html


def test_bad_months_are_told_in_chinese(client: TestClient, session: Session, city: dict[str, Unit]) -> None:
    log_in(client, session, "boss")
    assert "月份“13”不在 1–12 之内" in client.get("/desk/", params={"month": "2026-13"}).text
    assert client.get("/desk/", params={"month": "2026-Q4"}).status_code == 400
    assert client.get("/desk/", params={"district": "nowhere"}).status_code == 400
    headers = api_headers(session, "script")
    refused = client.get("/api/stats", params={"month": "11/2026"}, headers=headers)
    assert refused.status_code == 422 and "无法识别" in refused.json()["detail"][0]["msg"]
    nowhere = client.get("/api/stats", params={"district": "nowhere"}, headers=headers)
    assert nowhere.status_code == 422 and nowhere.json()["detail"][0]["loc"] == ["query", "district"]
    earlier = client.get("/api/stats", params={"month": "2026-10"}, headers=headers).json()
    assert earlier["current"]["period"] == "2026-10" and earlier["previous"]["status"] is None


def test_the_desk_opens_on_the_dashboard(client: TestClient, session: Session) -> None:
    bounced = client.get("/desk/", follow_redirects=False)
    assert bounced.status_code == 303 and bounced.headers["location"] == "/desk/login?next=/desk/"
    assert client.get("/desk", follow_redirects=False).headers["location"] == "/desk/"
    log_in(client, session, "boss")
    page = client.get("/desk/")
    assert page.status_code == 200 and "尚无考核数据" in page.text and 'href="/desk/"' in page.text


def test_the_draft_is_refreshed_at_most_once_an_hour(session: Session, ctx: Context) -> None:
    steps.plan(session, ctx, start=date(2026, 11, 1), end=date(2026, 11, 30), at=local("2026-10-20T08:00"), only=CORE)
    assert assessment.assessment_step(session, ctx, at=NOW) == "draft"
    first = session.execute(select(Assessment).where(col(Assessment.period) == "2026-11")).scalar_one()
    assert first.status == "draft" and first.computed_at == NOW
    assert assessment.assessment_step(session, ctx, at=NOW + timedelta(minutes=59)) == ""
    assert assessment.assessment_step(session, ctx, at=NOW + timedelta(minutes=60)) == "draft"
    session.expire_all()
    again = session.execute(select(Assessment).where(col(Assessment.period) == "2026-11")).scalar_one()
    assert again.id == first.id and again.computed_at == NOW + timedelta(hours=1)
    assert get_value(session, key=assessment.DRAFT_KEY) == (NOW + timedelta(hours=1)).isoformat()


@pytest.fixture
def any_ctx(store: str, program: Program) -> Iterator[tuple[Session, Context]]:
    """A session and context on each database kind (SQLite, and PostgreSQL when it answers)."""
    with db.session_scope() as opened:
        sync_program(opened, program, at=local("2026-01-01T00:00"))
        yield opened, make_context(opened, program, send=send_apprise)


def test_the_snapshots_are_read_alike_on_every_database(any_ctx: tuple[Session, Context]) -> None:
    """The districts and totals come out of the summary's JSON in the database (json_extract on SQLite, -> on
    PostgreSQL): they must equal the summary as the ORM reads it whole."""
    session, ctx = any_ctx
    steps.plan(session, ctx, start=date(2026, 10, 1), end=date(2026, 11, 30), at=local("2026-09-20T08:00"), only=CORE)
    assessment.assess(session, ctx, "2026-10", at=NOW)
    assessment.refresh_draft(session, ctx, NOW)
    stats = figures(session, Scope("boss", "city"), at=NOW, month="2026-11", district=None)
    for key, period in (("current", "2026-11"), ("previous", "2026-10")):
        whole = assessment.latest(session, period)
        assert whole is not None
        assert {k: stats[key][k] for k in ("due", "overdue", "mean_score")} == {
            k: whole.summary["totals"][k] for k in ("due", "overdue", "mean_score")
        }
    october = assessment.latest(session, "2026-10")
    assert october is not None
    index = stats["trend"]["months"].index("2026-10")
    assert {s["district"]: s["rates"][index] for s in stats["trend"]["series"]} == {
        row["district"]: row["on_time_rate"] for row in october.summary["districts"]
    }
    mine = figures(session, Scope("wx", "district", "wuxing"), at=NOW, month="2026-11", district="nanxun")
    assert mine["district"] == "wuxing" and mine["district_rank"] is not None and mine["district_rank"]["of"] == 5
