"""Issue 20, finding 5: a district never learns an unannounced check's day before its ``visible_from``.

Not from a list, and not from any path that reaches one row by its id (ids are sequential): the item page, its
actions and evidence on the desk, the single item and its actions in the API. Before the day, a district account and
a district token get exactly the answer a nonexistent id gets; the city office sees the check all along; from the
day on the district sees it too. The moment is the request's (the app clock), never the wall clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from flows.steps import Context
from store.models import AuditEvent, Occurrence
from store.queries import count_rows
from tests.conftest import SHANGHAI, local
from tests.desk_support import api_headers, log_in
from tests.test_kinds import occurrences_of, plan_only
from tests.web_support import Clock
from web.app import app

MISSING = 10**6
DESK_ACTIONS = {
    "extend": {"due": "2026-03-31", "reason": "试探"},
    "park": {"review_on": "2026-03-31", "reason": "试探"},
    "reopen": {"reason": "试探"},
    "waive": {"reason": "试探"},
    "talk": {"held_on": "2026-02-20", "attendees": "某某", "minutes": "试探"},
    "verify": {"confirmation_id": "1", "verdict": "pass", "note": "试探"},
    "no-such-action": {},
}
API_ACTIONS = {name: fields for name, fields in DESK_ACTIONS.items() if name != "no-such-action"}


@pytest.fixture
def check(session: Session, ctx: Context) -> Occurrence:
    """Wuxing's first unannounced site check of February 2026, with the month's other checks planned beside it."""
    plan_only(session, ctx, "site-dust-noise-check", date(2026, 2, 1), date(2026, 2, 28), at=local("2026-01-20T08:00"))
    first = min(
        (o for o in occurrences_of(session, "site-dust-noise-check") if o.unit_id == "wuxing-ecology"),
        key=lambda o: o.due_at,
    )
    assert first.visible_from is not None and first.visible_from < first.due_at
    return first


@pytest.fixture
def elsewhere(session: Session, check: Occurrence) -> Occurrence:
    """A check outside Wuxing: out of the district's scope, whatever the day."""
    return next(o for o in occurrences_of(session, "site-dust-noise-check") if o.unit_id == "nanxun-ecology")


@pytest.fixture
def city_desk(client: TestClient, session: Session) -> Iterator[TestClient]:
    """A second browser, logged in as the city office (the ``client`` browser is the district's)."""
    with TestClient(app) as browser:
        log_in(browser, session, "city-boss")
        yield browser


def before_its_day(check: Occurrence) -> datetime:
    assert check.visible_from is not None
    return check.visible_from - timedelta(seconds=1)


def secrets_of(check: Occurrence) -> list[str]:
    """What would betray the check: its title, and its day in every way a page or the JSON writes a date."""
    due = check.due_at.astimezone(SHANGHAI)
    return [check.title, due.date().isoformat(), f"{due.year}年{due.month}月{due.day}日", due.isoformat()]


def assert_secret(body: str, check: Occurrence) -> None:
    for secret in secrets_of(check):
        assert secret not in body, f"{secret!r} leaked"


def ledger(session: Session, check: Occurrence) -> tuple[int, Any]:
    session.expire_all()
    fresh = session.get(Occurrence, check.id)
    assert fresh is not None
    return count_rows(session, AuditEvent), fresh.model_dump()


def test_before_its_day_the_district_desk_answers_every_item_path_as_for_a_missing_id(
    client: TestClient, session: Session, check: Occurrence, elsewhere: Occurrence, now: Clock
) -> None:
    csrf = log_in(client, session, "wuxing-boss", district="wuxing")
    now.at = before_its_day(check)
    before = ledger(session, check)
    probes: list[tuple[str, str, dict[str, str] | None]] = [
        ("GET", "/desk/items/{}", None),
        ("GET", "/desk/items/{}/evidence/" + "0" * 64 + ".jpg", None),
    ]
    probes += [("POST", f"/desk/items/{{}}/{name}", fields | {"csrf": csrf}) for name, fields in DESK_ACTIONS.items()]
    for method, path, form in probes:
        hidden = client.request(method, path.format(check.id), data=form, follow_redirects=False)
        missing = client.request(method, path.format(MISSING), data=form, follow_redirects=False)
        outside = client.request(method, path.format(elsewhere.id), data=form, follow_redirects=False)
        assert hidden.status_code == missing.status_code == outside.status_code == 404, path
        assert hidden.text == missing.text == outside.text, path
        assert_secret(hidden.text, check)
    assert ledger(session, check) == before  # nothing was done to it, not even a refused attempt recorded


def test_before_its_day_the_district_desk_lists_and_counts_do_not_show_it(
    client: TestClient, session: Session, check: Occurrence, now: Clock
) -> None:
    log_in(client, session, "wuxing-boss", district="wuxing")
    now.at = before_its_day(check)
    for query in ("", "?unit=wuxing-ecology", "?status=scheduled", "?from=2026-02-01&to=2026-02-28"):
        listed = client.get(f"/desk/items{query}")
        assert listed.status_code == 200 and f'/desk/items/{check.id}"' not in listed.text
        assert_secret(listed.text, check)
    # The pages that list deliveries, approvals, campaigns and their exports are the city office's alone.
    for path in ("/desk/deliveries", "/desk/approvals", "/desk/campaigns", "/desk/campaigns/1/lists.xlsx"):
        refused = client.get(path)
        assert refused.status_code == 403, path
        assert_secret(refused.text, check)


def test_before_its_day_a_district_token_gets_a_404_like_a_missing_id(
    client: TestClient, session: Session, check: Occurrence, elsewhere: Occurrence, now: Clock
) -> None:
    headers = api_headers(session, "wuxing-script", district="wuxing")
    now.at = before_its_day(check)
    before = ledger(session, check)
    probes: list[tuple[str, str, dict[str, str] | None]] = [("GET", "/api/occurrences/{}", None)]
    probes += [("POST", f"/api/occurrences/{{}}/{name}", fields) for name, fields in API_ACTIONS.items()]
    for method, path, body in probes:
        hidden = client.request(method, path.format(check.id), json=body, headers=headers)
        missing = client.request(method, path.format(MISSING), json=body, headers=headers)
        outside = client.request(method, path.format(elsewhere.id), json=body, headers=headers)
        assert hidden.status_code == missing.status_code == outside.status_code == 404, path
        assert hidden.json() == missing.json() == outside.json(), path
        assert_secret(hidden.text, check)
    assert ledger(session, check) == before
    for path in ("/api/occurrences", "/api/occurrences?unit=wuxing-ecology", "/api/overdue"):
        listed = client.get(path, headers=headers)
        assert check.id not in [o["id"] for o in listed.json()]
        assert_secret(listed.text, check)
    counts = client.get("/api/counts", params={"unit": "wuxing-ecology"}, headers=headers).json()
    assert sum(counts["status"].values()) == sum(counts["level"].values()) == 0


def test_the_city_office_sees_the_check_ahead(
    client: TestClient, city_desk: TestClient, session: Session, check: Occurrence, now: Clock
) -> None:
    now.at = before_its_day(check)
    page = city_desk.get(f"/desk/items/{check.id}")
    assert page.status_code == 200 and check.title in page.text and secrets_of(check)[2] in page.text
    token = api_headers(session, "city-script")
    shown = client.get(f"/api/occurrences/{check.id}", headers=token)
    assert shown.status_code == 200 and shown.json()["due"] == secrets_of(check)[3]


def test_from_its_day_the_district_sees_it_on_every_path(
    client: TestClient, session: Session, check: Occurrence, now: Clock
) -> None:
    csrf = log_in(client, session, "wuxing-boss", district="wuxing")
    headers = api_headers(session, "wuxing-script", district="wuxing")
    assert check.visible_from is not None
    now.at = check.visible_from
    page = client.get(f"/desk/items/{check.id}")
    assert page.status_code == 200 and check.title in page.text and secrets_of(check)[2] in page.text
    shown = client.get(f"/api/occurrences/{check.id}", headers=headers)
    assert shown.status_code == 200 and shown.json()["due"] == secrets_of(check)[3]
    assert check.id in [o["id"] for o in client.get("/api/occurrences", headers=headers).json()]
    photo = client.get(f"/desk/items/{check.id}/evidence/" + "0" * 64 + ".jpg")
    assert photo.status_code == 404 and "照片不存在" in photo.text  # the item is there; the photo is not
    refused = client.post(f"/desk/items/{check.id}/reopen", data={"csrf": csrf, "reason": "试探"})
    assert refused.status_code == 400 and check.title in refused.text  # an action reaches it, and is judged
    waived = client.post(f"/api/occurrences/{check.id}/waive", json={"reason": "本月停工"}, headers=headers)
    assert waived.status_code == 200 and waived.json()["occurrence"]["status"] == "waived"


def test_a_city_extension_keeps_the_new_day_hidden_until_that_day(session: Session, check: Occurrence) -> None:
    """A 延期 of an unannounced check moves the day it becomes visible by as much as its due date."""
    from flows import actions

    assert check.visible_from is not None
    old_visible, at = check.visible_from, before_its_day(check)
    actions.extend(
        session, occurrence_id=check.id or 0, due=check.due_at + timedelta(days=7), reason="雨天", actor="city", at=at
    )
    session.expire_all()
    moved = session.get(Occurrence, check.id)
    assert moved is not None and moved.visible_from == old_visible + timedelta(days=7)
