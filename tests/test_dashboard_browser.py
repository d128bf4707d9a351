"""The leaders' dashboard in chromium, at a desk (1440x900) and on a phone: the SVG charts are drawn with their
Chinese labels in a CJK font, the page does not overflow the phone's width, and the screenshots land under
test-artifacts/screenshots/ (test_the_dashboard_at_a_desk*.png, test_the_dashboard_on_a_phone*.png)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, ViewportSize, expect
from sqlmodel import Session

from tests.browser_support import CJK_FAMILIES, Screenshot, fonts_for
from tests.desk_support import PASSWORD, add_manager
from tests.test_browser import PHONE_WIDTH, page_width, serving
from tests.test_dashboard import NOW, city  # noqa: F401  (the fixture)

DESK_VIEWPORT: ViewportSize = {"width": 1440, "height": 900}


def log_in_to_dashboard(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/desk/")
    expect(page).to_have_url(re.compile(r"/desk/login\?next=/desk/"))
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page).to_have_url(f"{base}/desk/")


def svg_text(page: Page, selector: str) -> str:
    return str(page.locator(f"{selector} svg").first.evaluate("svg => svg.textContent"))


@pytest.mark.usefixtures("city")
def test_the_dashboard_at_a_desk(desk_page: Page, screenshot: Screenshot, session: Session) -> None:
    add_manager(session, "boss")
    desk_page.set_viewport_size(DESK_VIEWPORT)
    with serving(NOW) as base:
        log_in_to_dashboard(desk_page, base, "boss")
        expect(desk_page.locator("#chart-bars svg")).to_be_visible()
        bars, trend = svg_text(desk_page, "#chart-bars"), svg_text(desk_page, "#chart-trend")
        assert "按期完成率" in bars and "吴兴区" in bars and "南浔区" in bars
        assert "按期完成率" in trend and "吴兴区" in trend and "10月" in trend
        assert desk_page.locator("#chart-bars svg a").count() >= 5  # each bar a link to its items
        fonts = fonts_for(desk_page, "#chart-bars svg .title")
        assert any(family in font for font in fonts for family in CJK_FAMILIES), fonts
        assert desk_page.locator("#heatmap tbody tr").count() > 0
        shot = screenshot(desk_page)
        assert shot.stat().st_size > 10_000
        figure = desk_page.locator("#tile-overdue .big a").inner_text()
        desk_page.locator("#tile-overdue .big a").click()
        expect(desk_page).to_have_url(re.compile(r"/desk/items\?.*status=overdue"))
        assert desk_page.locator("#total").inner_text() == figure  # the list behind the figure holds as many


@pytest.mark.usefixtures("city")
def test_the_dashboard_on_a_phone(phone_page: Page, screenshot: Screenshot, session: Session) -> None:
    add_manager(session, "wx", district="wuxing")
    with serving(NOW) as base:
        log_in_to_dashboard(phone_page, base, "wx")
        expect(phone_page.locator("#chart-bars svg")).to_be_visible()
        assert "按期完成率" in svg_text(phone_page, "#chart-bars")
        assert "吴兴区" in svg_text(phone_page, "#chart-trend")
        assert "南浔" not in phone_page.content()
        expect(phone_page.locator("#district-rank")).to_contain_text("个区县")
        assert page_width(phone_page) <= PHONE_WIDTH, "the dashboard overflows the phone's width"
        fonts = fonts_for(phone_page, "#tile-on-time .small")
        assert any(family in font for font in fonts for family in CJK_FAMILIES), fonts
        screenshot(phone_page)
