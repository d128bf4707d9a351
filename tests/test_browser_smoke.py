"""The browser infrastructure itself: uvicorn serves a small page in Chinese on loopback, chromium opens it as a phone
in DingTalk, a tap runs the page's script, and the screenshot shows the Chinese in a CJK font."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tests.browser_support import CJK_FAMILIES, Screenshot, fonts_for, serve_app

PAGE = """<!doctype html>
<html lang="zh-CN">
<head>
  <meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>值班提醒</title>
</head>
<body style="font-family: sans-serif; padding: 16px">
  <h1>城市管理值班提醒</h1>
  <p id="state">待确认：二月份排水设施巡查</p>
  <button id="confirm" style="font-size: 18px; padding: 12px 24px">确认收到</button>
  <script>
    document.getElementById("confirm").addEventListener("click", () => {
      document.getElementById("state").textContent = "已确认：二月份排水设施巡查";
    });
  </script>
</body>
</html>"""


async def home(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


app = Starlette(routes=[Route("/", home)])


def test_phone_taps_a_button_and_the_chinese_renders(phone_page: Page, screenshot: Screenshot) -> None:
    with serve_app(app) as base:
        phone_page.goto(f"{base}/")
        assert "DingTalk" in phone_page.evaluate("navigator.userAgent")
        assert phone_page.evaluate("[window.innerWidth, window.devicePixelRatio]") == [390, 3]
        expect(phone_page.locator("#state")).to_have_text("待确认：二月份排水设施巡查")

        phone_page.locator("#confirm").tap()

        expect(phone_page.locator("#state")).to_have_text("已确认：二月份排水设施巡查")
        fonts = fonts_for(phone_page, "#state")
        assert any(family in font for font in fonts for family in CJK_FAMILIES), (
            f"the Chinese was drawn with {fonts}, no CJK font: run `make browser` (fonts-noto-cjk)"
        )
        shot: Path = screenshot(phone_page)
    assert shot.stat().st_size > 0
