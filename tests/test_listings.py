"""Issue 18, defect 10 and the pages' words: a listing never stops short without saying so, and no page shows the
ledger's codes (``level:1:repeat:1``, ``mailto``) where a manager reads."""

from __future__ import annotations

import json
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session
from typer.testing import CliRunner

from flows import steps
from flows.cli import app as cli
from flows.steps import Context
from notify import outbox
from store.models import Contact, Occurrence
from templates.labels import channel_label, stage_label
from tests.conftest import local
from tests.desk_support import log_in
from tests.web_support import Clock

AT = local("2026-01-20T08:00")


@pytest.fixture
def february(session: Session, ctx: Context) -> int:
    """Every February item of the shipped programme: more than a small --limit."""
    return steps.plan(session, ctx, start=date(2026, 2, 1), end=date(2026, 2, 28), at=AT)


def run(*args: str) -> tuple[str, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout, result.stderr


def test_json_listings_give_every_row_unless_asked_fewer_and_then_say_so(february: int) -> None:
    everything, quiet = run("occurrences", "--json", "--at", "2026-01-20T08:00")
    assert len(json.loads(everything)) == february > 20 and quiet == ""
    some, note = run("occurrences", "--json", "--limit", "20", "--at", "2026-01-20T08:00")
    assert len(json.loads(some)) == 20 and f"仅输出 20 条，共 {february} 条" in note


def test_a_table_says_how_many_it_shows_of_how_many(february: int) -> None:
    table, _ = run("occurrences", "--limit", "5", "--at", "2026-01-20T08:00")
    assert f"显示 5 条，共 {february} 条（--limit 0 显示全部）" in table
    whole, _ = run("occurrences", "--limit", "0", "--at", "2026-01-20T08:00")
    assert f"共 {february} 条。" in whole


def test_the_deliveries_page_names_its_tab_counts_all_and_speaks_in_words(
    session: Session, ctx: Context, item: Occurrence, client: TestClient, now: Clock
) -> None:
    contact = Contact(
        unit_id=item.unit_id, name="机器人", channel="dingtalk", url="dingtalk://t?base=http://127.0.0.1:9"
    )
    session.add(contact)
    session.flush()
    for stage in ("level:1", "level:1:repeat:1", "remind:3d@20260206"):
        outbox.queue(session, occurrence_id=item.id or 0, stage=stage, contacts=[contact], title="t", body="b", at=AT)
    session.commit()
    now.at = AT
    log_in(client, session, "boss")
    page = client.get("/desk/deliveries?status=pending").text
    assert "待发送的消息共 3 条" in page and "发送失败或结果未知的消息" not in page
    assert "交办通知（第 2 次送达）" in page and "到期前 3 天提醒" in page and "钉钉群机器人" in page
    assert "level:1" not in page and ">dingtalk<" not in page and ">wuxing-msb<" not in page


@pytest.mark.parametrize(
    ("stage", "words"),
    [
        ("remind:0d@20260206", "到期当天提醒"),
        ("level:3", "约谈通知"),
        ("notices:12:0", "升级通知汇总"),
        ("cc:12:0", "升级通知抄送"),
        ("decision:extend@20260205100000", "事项变更（延期）"),
        ("digest:202602050900", "提醒汇总"),
        ("moved:202602050900", "变更通知"),
        ("finding", "整改通知"),
    ],
)
def test_every_stage_has_words(stage: str, words: str) -> None:
    assert stage_label(stage) == words
    assert channel_label("mailto") == "邮件" and channel_label("smsgw") == "短信"


def test_the_api_says_how_many_there_are_and_where_the_next_page_is(
    session: Session, ctx: Context, february: int, client: TestClient, now: Clock
) -> None:
    from tests.desk_support import api_headers

    now.at = AT
    headers = api_headers(session, "script")
    first = client.get("/api/occurrences", params={"limit": 10}, headers=headers)
    assert len(first.json()) == 10 and first.headers["X-Total-Count"] == str(february)
    assert first.links["next"]["url"].endswith("offset=10")
    seen, url = [], "/api/occurrences?limit=50"
    while url:  # a script following the links gets every item once
        page = client.get(url, headers=headers)
        seen += [row["id"] for row in page.json()]
        url = page.links.get("next", {}).get("url", "")
    assert len(seen) == len(set(seen)) == february


def test_the_items_page_speaks_in_words(
    session: Session, ctx: Context, item: Occurrence, client: TestClient, now: Clock
) -> None:
    """No user:boss, unit:wuxing-msb, 2026-W06, level numbers or 逾期：False where a manager reads an item."""
    at = local("2026-02-05T10:00")
    steps.confirm(session, occurrence_id=item.id or 0, note="已抽查", evidence=[], at=at, client="t")
    now.at = local("2026-02-05T11:00")
    csrf = log_in(client, session, "boss")
    client.post(f"/desk/items/{item.id}/reopen", data={"reason": "照片不清", "csrf": csrf})
    whole = client.get(f"/desk/items/{item.id}").text
    assert "（2026年第6周）</dd>" in whole and "2026-W06" not in whole
    timeline = whole.split('id="timeline"', 1)[1]
    assert "吴兴区市场监督管理局" in timeline and "管理员 boss" in timeline and "逾期：否" in timeline
    for code in ("user:boss", "unit:wuxing-msb", "False", "True"):
        assert code not in timeline, code
