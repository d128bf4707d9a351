"""附件1 第6项 举措2/3: each weekly market spot check names the market it checked and what it found, and the results
rank the markets (flows/scores.py: check_pass_rate and the check_failed deduction of the 红黑榜's group)."""

from __future__ import annotations

import random
import re

from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlmodel import Session, col

from bench.month import spot_check
from flows import scores
from flows.spot_checks import subjects_for
from flows.steps import Context
from store.models import CheckResult, Confirmation, Occurrence, Unit
from store.settings import get_settings
from tests.browser_support import Screenshot
from tests.conftest import local
from tests.desk_support import log_in
from tests.test_browser import PHONE_WIDTH, page_width, serving
from tests.web_support import Clock, ledger_state, path_of

WUXING_MARKETS = {"wuxing-feiying-market": "飞英农贸市场", "wuxing-yuehe-market": "月河农贸市场"}
NANXUN_MARKET = "nanxun-town-market"


def results(session: Session) -> list[CheckResult]:
    session.expire_all()
    return list(session.execute(select(CheckResult).order_by(col(CheckResult.id))).scalars())


def options(html: str) -> dict[str, str]:
    """The select's choices: value to label (the empty 请选择 left out)."""
    select_html = html.split('<select id="subject"', 1)[1].split("</select>", 1)[0]
    return {value: label for value, label in re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)<', select_html) if value}


def test_the_form_asks_which_market_of_the_district_and_the_result(
    item: Occurrence, client: TestClient, ctx: Context, now: Clock
) -> None:
    page = client.get(path_of(ctx, item, now.at))
    assert page.status_code == 200
    assert "被抽查市场" in page.text and "抽查结果" in page.text and "存在问题（不合格时必填）" in page.text
    assert options(page.text) == WUXING_MARKETS  # 吴兴区市场监督管理局 checks 吴兴's markets, not 南浔's
    assert 'name="passed" value="1"' in page.text and 'name="passed" value="0"' in page.text


def test_a_pass_and_a_fail_are_stored_with_their_reports_once(
    session: Session, item: Occurrence, client: TestClient, ctx: Context, now: Clock
) -> None:
    link = path_of(ctx, item, now.at)
    first = client.post(link, data={"form_id": "a", "subject": "wuxing-feiying-market", "passed": "1"})
    assert first.headers["X-Duties-Outcome"] == "confirmed"
    now.at = local("2026-02-05T15:00")
    failed = {"form_id": "b", "subject": "wuxing-yuehe-market", "passed": "0", "problem": "  东门垃圾未清运  "}
    second = client.post(link, data=failed)
    assert second.headers["X-Duties-Outcome"] == "recorded"
    assert "已记录的抽查结果" in second.text and "月河农贸市场：" in second.text and "东门垃圾未清运" in second.text
    again = client.post(link, data=failed)  # a double tap: the same form recorded once
    assert again.headers["X-Duties-Outcome"] == "already"

    stored = results(session)
    reports = {r.form_id: r for r in session.execute(select(Confirmation)).scalars()}
    assert [(r.subject_id, r.passed, r.problem, r.occurrence_id) for r in stored] == [
        ("wuxing-feiying-market", True, "", item.id),
        ("wuxing-yuehe-market", False, "东门垃圾未清运", item.id),
    ]
    assert [r.confirmation_id for r in stored] == [reports["a"].id, reports["b"].id]
    assert [r.at for r in stored] == [reports["a"].confirmed_at, reports["b"].confirmed_at]
    assert stored[1].at == local("2026-02-05T15:00")


def test_a_fail_without_the_problem_is_refused_and_nothing_is_written(
    session: Session, item: Occurrence, client: TestClient, ctx: Context, now: Clock
) -> None:
    before = ledger_state(session)
    link = path_of(ctx, item, now.at)
    data = {"form_id": "a", "subject": "wuxing-yuehe-market", "passed": "0", "problem": "   ", "note": "周二上午抽查"}
    refused = client.post(link, data=data)
    assert refused.status_code == 400
    assert "抽查结果为不合格时，请填写月河农贸市场存在的问题。" in refused.text
    assert ledger_state(session) == before and results(session) == []
    # What the unit entered is still there to correct: the market, 不合格, the note.
    assert '<option value="wuxing-yuehe-market" selected>' in refused.text
    assert 'value="0" checked' in refused.text and "周二上午抽查" in refused.text
    fixed = client.post(link, data={**data, "problem": "地面积水", "form_id": "b"})
    assert fixed.headers["X-Duties-Outcome"] == "confirmed" and [r.problem for r in results(session)] == ["地面积水"]


def test_an_unknown_or_other_districts_market_is_refused(
    session: Session, item: Occurrence, client: TestClient, ctx: Context, now: Clock
) -> None:
    before = ledger_state(session)
    link = path_of(ctx, item, now.at)
    for subject in ("no-such-market", NANXUN_MARKET, "wuxing-msb"):
        refused = client.post(link, data={"form_id": subject, "subject": subject, "passed": "1"})
        assert refused.status_code == 400 and "所选市场不在本次抽查范围内" in refused.text, subject
    no_result = client.post(link, data={"form_id": "x", "subject": "wuxing-feiying-market"})
    assert no_result.status_code == 400 and "请选择对飞英农贸市场的抽查结果" in no_result.text
    assert ledger_state(session) == before and results(session) == []


def test_a_report_without_a_market_still_counts_the_check(
    session: Session, item: Occurrence, client: TestClient, ctx: Context, now: Clock
) -> None:
    """POST /c/{token} with a note alone (interface contract v1) still records the check; it rates no market."""
    done = client.post(path_of(ctx, item, now.at), data={"note": "已抽查"})
    assert done.headers["X-Duties-Outcome"] == "confirmed" and results(session) == []


def test_the_month_scores_the_markets_by_their_results(
    session: Session, item: Occurrence, client: TestClient, ctx: Context, now: Clock
) -> None:
    link = path_of(ctx, item, now.at)
    client.post(link, data={"form_id": "a", "subject": "wuxing-feiying-market", "passed": "1"})
    client.post(link, data={"form_id": "b", "subject": "wuxing-yuehe-market", "passed": "0", "problem": "积水"})
    scoring = ctx.program.scoring
    assert scoring is not None and scoring.deductions["check_failed"] == 2 and scoring.weights["check_pass_rate"] == 30
    # Before the finding's case falls due (1 workday: 2026-02-04 17:30), so only the check's result counts here.
    computed = scores.compute(
        session, ctx.program, scoring, scores.span_of("2026-02"), at=local("2026-02-04T12:00"), zone=get_settings().zone
    )
    failed, passed = computed.units["wuxing-yuehe-market"], computed.units["wuxing-feiying-market"]
    assert failed.group_id == passed.group_id == "markets"
    assert (failed.counts["checked"], failed.counts["check_failed"]) == (1, 1)
    assert (passed.counts["checked"], passed.counts["check_failed"]) == (1, 0)
    assert failed.deductions == [(item.id, "check_failed", 2.0)] and passed.deductions == []
    # Markets have no items of their own: 100 less 30 × (1 − 0/1) for the pass rate, less 2 for the failed check.
    assert failed.rates["check_pass_rate"] == 0.0 and failed.raw == 70.0 and failed.score(scoring) == 68.0
    assert passed.rates["check_pass_rate"] == 1.0 and passed.score(scoring) == 100.0
    assert NANXUN_MARKET not in computed.units  # never checked: not assessed


def test_the_desk_item_shows_the_results(
    session: Session, item: Occurrence, client: TestClient, ctx: Context, now: Clock
) -> None:
    link = path_of(ctx, item, now.at)
    client.post(link, data={"form_id": "a", "subject": "wuxing-feiying-market", "passed": "1"})
    client.post(link, data={"form_id": "b", "subject": "wuxing-yuehe-market", "passed": "0", "problem": "垃圾满溢"})
    log_in(client, session, "boss")
    page = client.get(f"/desk/items/{item.id}")
    assert page.status_code == 200
    shown = re.sub(r"<[^>]+>", "", page.text)
    assert "抽查 飞英农贸市场：合格" in shown and "抽查 月河农贸市场：不合格 垃圾满溢" in shown


def test_a_city_level_checker_may_name_any_market(session: Session, ctx: Context) -> None:
    city = Unit(id="city-msb", name="湖州市市场监督管理局", kind="market_supervision")
    wuxing = session.get(Unit, "wuxing-msb")
    assert wuxing is not None
    every = {u.id for u in subjects_for(session, ctx.program, ["kind:market"], city)}
    assert set(WUXING_MARKETS) < every and NANXUN_MARKET in every
    assert {u.id for u in subjects_for(session, ctx.program, ["kind:market"], wuxing)} == set(WUXING_MARKETS)


def test_the_simulated_month_finds_about_one_market_in_four_failing(
    session: Session, item: Occurrence, ctx: Context
) -> None:
    draws = random.Random(7)
    found = [spot_check(session, item, ctx.program, draws) for _ in range(400)]
    assert all(f is not None and f.subject_id in WUXING_MARKETS for f in found)
    failed = [f for f in found if f is not None and not f.passed]
    assert 0.18 < len(failed) / len(found) < 0.32 and all(f.problem for f in failed)


def test_a_phone_records_a_failed_check(
    phone_page: Page, screenshot: Screenshot, session: Session, item: Occurrence, ctx: Context
) -> None:
    at = local("2026-02-03T10:00")
    with serving(at) as base:
        page = phone_page
        page.goto(base + path_of(ctx, item, at))
        page.locator("#subject").select_option(label="月河农贸市场")
        page.get_by_role("radio", name="不合格").check()
        page.get_by_role("button", name="记录一次检查").tap()
        expect(page.locator("[role=alert]")).to_contain_text("请填写月河农贸市场存在的问题")
        assert page_width(page) <= PHONE_WIDTH, "the refused form is wider than the phone"
        page.get_by_label("存在问题（不合格时必填）").fill("摊位前地面油污未清理")
        screenshot(page, "before")
        page.get_by_role("button", name="记录一次检查").tap()
        expect(page.locator("#results")).to_contain_text("月河农贸市场：不合格 摊位前地面油污未清理")
        assert page_width(page) <= PHONE_WIDTH, "the recorded page is wider than the phone"
        screenshot(page, "after")
    assert [(r.subject_id, r.passed) for r in results(session)] == [("wuxing-yuehe-market", False)]
