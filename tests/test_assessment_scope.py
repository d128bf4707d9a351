"""考核 scope: a district manager reads its own district's units' scores, deductions and objections and its district's
rank, never another district's, on the desk pages, the unit drill-down and the API; only the city decides and
publishes. The ledger is tests/test_objections.py's: wuxing has wuxing-msb and two markets, nanxun has nanxun-msb and
one market, anji, changxing and deqing one bureau each."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session, col

from flows.assessment import assess
from flows.steps import Context
from store.models import Assessment, Deduction, Objection, Unit
from tests.conftest import local
from tests.desk_support import api_headers, log_in
from tests.test_objections import CUTOFF, build_ledger, unit_path
from tests.web_support import Clock, png

WUXING = {"wuxing-msb", "wuxing-feiying-market", "wuxing-yuehe-market"}
OTHERS = {"nanxun-msb", "nanxun-town-market", "anji-msb", "changxing-msb", "deqing-msb"}


@pytest.fixture
def assessment(session: Session, ctx: Context, client: TestClient, now: Clock) -> Assessment:
    """February frozen, with one objection from wuxing-msb (and a photo) and one from nanxun-msb, both open."""
    build_ledger(session, ctx)
    frozen = assess(session, ctx, "2026-02", at=CUTOFF)
    now.at = local("2026-03-09T10:00")
    for unit_id in ("wuxing-msb", "nanxun-msb"):
        target = session.execute(
            select(Deduction).where(col(Deduction.unit_id) == unit_id, col(Deduction.reason) == "late_done")
        ).scalar_one()
        response = client.post(
            f"{unit_path(ctx, session, unit_id)}/objections/{target.id}",
            data={"reason": f"{unit_id} 的异议"},
            files={"evidence": ("site.png", png(), "image/png")},
        )
        assert response.status_code == 200
    return frozen


def names(session: Session, ids: set[str]) -> set[str]:
    return {unit.name for unit in session.execute(select(Unit).where(col(Unit.id).in_(ids))).scalars()}


def objection(session: Session, unit_id: str) -> Objection:
    return session.execute(select(Objection).where(col(Objection.unit_id) == unit_id)).scalar_one()


def test_a_district_reads_only_its_units_and_its_own_rank_on_the_desk(
    client: TestClient, session: Session, assessment: Assessment
) -> None:
    log_in(client, session, "wuxing-boss", district="wuxing")
    page = client.get(f"/desk/assessments/{assessment.id}")
    assert page.status_code == 200
    for unit_id in WUXING:
        assert f'data-unit="{unit_id}"' in page.text
    for unit_id in OTHERS:
        assert unit_id not in page.text
    for name in names(session, OTHERS):
        assert name not in page.text
    assert 'data-district="wuxing"' in page.text and "/共5个" in page.text
    assert 'data-district="nanxun"' not in page.text and 'id="totals"' not in page.text
    # Its own objection only, and no form to decide it or to publish.
    mine, theirs = objection(session, "wuxing-msb"), objection(session, "nanxun-msb")
    assert f'data-objection="{mine.id}"' in page.text and f'data-objection="{theirs.id}"' not in page.text
    assert (
        "nanxun-msb 的异议" not in page.text and 'name="decision"' not in page.text and 'id="publish"' not in page.text
    )
    listing = client.get("/desk/assessments").text
    assert 'data-waiting="1"' in listing


def test_a_district_gets_404_for_another_districts_unit_and_items(
    client: TestClient, session: Session, assessment: Assessment
) -> None:
    log_in(client, session, "wuxing-boss", district="wuxing")
    theirs = session.execute(select(Deduction).where(col(Deduction.unit_id) == "nanxun-msb")).scalars().first()
    assert theirs is not None and theirs.occurrence_id is not None
    other = client.get(f"/desk/assessments/{assessment.id}/units/nanxun-msb")
    assert other.status_code == 404 and "不在您的管辖范围内" in other.text and "69.50" not in other.text
    assert client.get(f"/desk/items/{theirs.occurrence_id}").status_code == 404
    photo = objection(session, "nanxun-msb").evidence[0]
    evidence_url = (
        f"/desk/assessments/{assessment.id}/objections/{objection(session, 'nanxun-msb').id}/evidence/{photo}"
    )
    assert client.get(evidence_url).status_code == 404
    own = client.get(f"/desk/assessments/{assessment.id}/units/wuxing-msb")
    mine = session.execute(select(Deduction).where(col(Deduction.unit_id) == "wuxing-msb")).scalar_one()
    assert own.status_code == 200 and "69.50" in own.text and "第1名/共5个" in own.text
    assert f'href="/desk/items/{mine.occurrence_id}"' in own.text and "逾期完成" in own.text
    assert client.get(f"/desk/assessments/{assessment.id}/units/no-such-unit").status_code == 404
    assert client.get("/desk/assessments/999999").status_code == 404


def test_only_the_city_decides_objections_and_publishes(
    client: TestClient, session: Session, assessment: Assessment, now: Clock
) -> None:
    csrf = log_in(client, session, "wuxing-boss", district="wuxing")
    mine = objection(session, "wuxing-msb")
    decided = client.post(
        f"/desk/assessments/{assessment.id}/objections/{mine.id}",
        data={"csrf": csrf, "decision": "accept", "answer": ""},
    )
    assert decided.status_code == 403 and "仅市级管理员" in decided.text
    now.at = local("2026-03-12T09:00")
    published = client.post(f"/desk/assessments/{assessment.id}/publish", data={"csrf": csrf})
    assert published.status_code == 403
    session.expire_all()
    assert objection(session, "wuxing-msb").status == "open"
    assert session.get(Assessment, assessment.id).status == "open"  # type: ignore[union-attr]


def test_the_city_sees_every_unit_and_every_objection(
    client: TestClient, session: Session, assessment: Assessment
) -> None:
    log_in(client, session, "city-boss")
    page = client.get(f"/desk/assessments/{assessment.id}").text
    for unit_id in WUXING | OTHERS:
        assert f'data-unit="{unit_id}"' in page
    assert 'data-district="nanxun"' in page and 'id="totals"' in page
    assert page.count('name="decision" value="reject"') == 2
    assert 'data-red="wuxing-yuehe-market"' in page and 'data-black="wuxing-feiying-market"' in page
    assert f'href="/desk/assessments/{assessment.id}.pdf"' in page and f"/desk/assessments/{assessment.id}.xlsx" in page
    assert 'data-waiting="2"' in client.get("/desk/assessments").text
    photo = objection(session, "nanxun-msb")
    served = client.get(f"/desk/assessments/{assessment.id}/objections/{photo.id}/evidence/{photo.evidence[0]}")
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"


def test_the_api_is_scoped_like_the_desk(
    client: TestClient, session: Session, ctx: Context, assessment: Assessment
) -> None:
    district = api_headers(session, "wuxing-bot", district="wuxing")
    city = api_headers(session, "city-bot")
    detail = client.get(f"/api/assessments/{assessment.id}", headers=district)
    assert detail.status_code == 200
    body = detail.json()
    assert body["status"] == "open" and body["period"] == "2026-02"
    assert {row["unit"] for row in body["scores"]} == WUXING
    assert {row["unit"] for row in body["deductions"]} == {"wuxing-msb", "wuxing-feiying-market"}
    assert [line["district"] for line in body["summary"]["districts"]] == ["wuxing"]
    assert body["summary"]["district_count"] == 5
    lines = [line["unit"] for group in body["summary"]["groups"] for line in group["ranking"]]
    board = next(group["board"] for group in body["summary"]["groups"] if group["board"])
    assert set(lines) == WUXING and {line["unit"] for line in board["red"] + board["black"]} <= WUXING
    assert "nanxun" not in detail.text
    late = next(row for row in body["deductions"] if row["unit"] == "wuxing-msb")
    assert late["label"] == "逾期完成" and late["objection"]["status"] == "open" and late["objection"]["evidence"] == 1
    everything = client.get(f"/api/assessments/{assessment.id}", headers=city).json()
    assert {row["unit"] for row in everything["scores"]} == WUXING | OTHERS
    assert len(everything["summary"]["districts"]) == 5
    # The list, paged: February's snapshot and March's draft.
    assess(session, ctx, "2026-03", at=local("2026-03-09T10:00"))
    first = client.get("/api/assessments?limit=1", headers=district)
    assert first.status_code == 200 and first.headers["x-total-count"] == "2" and 'rel="next"' in first.headers["link"]
    (newest,) = first.json()
    assert (newest["period"], newest["status"], "summary" in newest) == ("2026-03", "draft", False)
    (older,) = client.get("/api/assessments?limit=1&offset=1", headers=district).json()
    assert older["open_objections"] == 1 and older["status_label"] == "公示中（可提异议）"
    assert client.get("/api/assessments?limit=1&offset=1", headers=city).json()[0]["open_objections"] == 2
    assert client.get("/api/assessments/999999", headers=city).status_code == 404
    assert client.get("/api/assessments").status_code == 401
