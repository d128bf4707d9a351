"""Issue 18, the manager's working day: search by id, keyword or unit, kept in the URL, and the list as filtered
exported to Excel with every cell inert."""

from __future__ import annotations

import io
from datetime import date

from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlmodel import Session

from flows import steps
from flows.steps import Context
from tests.conftest import local
from tests.desk_support import log_in
from tests.web_support import Clock


def february(session: Session, ctx: Context) -> None:
    steps.plan(session, ctx, start=date(2026, 2, 1), end=date(2026, 2, 28), at=local("2026-01-20T08:00"))


def ids_on(page: str) -> set[str]:
    return {part.split('"', 1)[0] for part in page.split('data-id="')[1:]}


def test_search_finds_by_keyword_unit_and_id(session: Session, ctx: Context, client: TestClient, now: Clock) -> None:
    february(session, ctx)
    now.at = local("2026-02-10T09:00")
    log_in(client, session, "boss")
    by_word = client.get("/desk/items", params={"q": "抽查"}).text
    assert ids_on(by_word) and "市场清扫保洁质量抽查" in by_word and 'value="抽查"' in by_word  # kept in the form
    by_unit = client.get("/desk/items", params={"q": "安吉县市场监督"}).text
    table = by_unit.split('<table id="items">', 1)[1]
    assert ids_on(by_unit) and "安吉县市场监督管理局" in table and "吴兴区市场监督管理局" not in table
    first = sorted(ids_on(by_word), key=int)[0]
    assert first in ids_on(client.get("/desk/items", params={"q": first}).text)
    assert ids_on(client.get("/desk/items", params={"q": "%抽查"}).text) == set()  # a wildcard is taken literally


def test_the_filtered_list_exports_to_excel(session: Session, ctx: Context, client: TestClient, now: Clock) -> None:
    february(session, ctx)
    now.at = local("2026-02-10T09:00")
    log_in(client, session, "wuxing", district="wuxing")
    page = client.get("/desk/items", params={"status": "overdue"}).text
    assert 'href="/desk/items.xlsx?status=overdue"' in page
    answer = client.get("/desk/items.xlsx", params={"status": "overdue"})
    assert answer.status_code == 200 and "attachment" in answer.headers["content-disposition"]
    sheet = load_workbook(io.BytesIO(answer.content))["事项清单"]
    rows = list(sheet.iter_rows(min_row=3, values_only=True))
    assert rows and {row[4] for row in rows} == {"已逾期"} and len(rows) == len(ids_on(page))
    assert all("安吉" not in str(row[2]) for row in rows)  # a district exports its own district only


def test_columns_sort_both_ways_and_the_order_is_kept_in_the_url(
    session: Session, ctx: Context, client: TestClient, now: Clock
) -> None:
    february(session, ctx)
    now.at = local("2026-02-10T09:00")
    log_in(client, session, "boss")
    listing = client.get("/desk/items").text
    assert 'href="?sort=unit"' in listing
    by_unit = client.get("/desk/items", params={"sort": "unit"}).text
    names = [cell.split("</td>", 1)[0] for cell in by_unit.split('<td class="unit">')[1:]]
    assert 'href="?sort=-unit"' in by_unit and "责任单位 ↑" in by_unit
    ids = [int(i) for i in ids_in_order(by_unit)]
    backwards = [int(i) for i in ids_in_order(client.get("/desk/items", params={"sort": "-id"}).text)]
    assert backwards == sorted(backwards, reverse=True) and len(ids) == len(backwards)
    assert len(names) == len(ids) > 1 and names == sorted(names)
    assert client.get("/desk/items", params={"sort": "evil;drop"}).status_code == 200  # an unknown key is ignored


def ids_in_order(page: str) -> list[str]:
    return [part.split('"', 1)[0] for part in page.split('data-id="')[1:]]
