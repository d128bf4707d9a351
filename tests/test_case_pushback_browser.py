"""A unit pushes back on its phone, in a real browser: it opens its case link, sees the photo as found and the time
left, files a 退回 with a reason and sees that it waits; on another case it asks for a 延期 with a date. A city
manager then sees both in the queue and approves the 退回 with a reassignment. Screenshots under
test-artifacts/screenshots/ (case_return_phone.png, case_extend_phone.png, desk_requests.png, desk_case.png)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from PIL import Image, ImageDraw
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlmodel import Session, col

from flows import cases, steps
from flows.cases import NewCase
from flows.common import Context
from store.models import Case, Occurrence, UnitRequest
from tests.browser_support import new_page, serve_app
from tests.conftest import local
from tests.desk_support import PASSWORD, add_manager
from web import photos
from web.app import app, clock

PHONE_WIDTH = 390
FILED = local("2026-03-03 09:00")
AT = local("2026-03-03 09:05")
LOADED = "sel => { const img = document.querySelector(sel); return img && img.complete && img.naturalWidth > 0; }"


@contextmanager
def serving(at: datetime) -> Iterator[str]:
    app.dependency_overrides[clock] = lambda: at
    try:
        with serve_app(app) as base:
            yield base
    finally:
        app.dependency_overrides.pop(clock, None)


def litter_photo() -> bytes:
    """A JPEG of a market gate with a heap of vegetable leaves, as an inspector's phone would take it."""
    image = Image.new("RGB", (640, 480), (180, 190, 200))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 320, 640, 480), fill=(120, 110, 100))  # the pavement
    draw.ellipse((250, 300, 420, 400), fill=(60, 140, 60))  # the leaves
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def file_case(session: Session, ctx: Context, place: str) -> tuple[Case, str]:
    """A case with one photo as found, dispatched by its place; and its unit's link path."""
    name = photos.store_photo(litter_photo(), "jpg")
    new = NewCase(category_id="market-litter", place=place, note="门口一堆菜叶和积水", photos=[name])
    case = cases.file_case(session, ctx, new, reporter="user:insp1", source="inspector", at=FILED).case
    item = session.get(Occurrence, case.occurrence_id)
    assert item is not None
    return case, "/c/" + steps.confirmation_link(ctx.settings, ctx.secret, item, at=FILED).rsplit("/c/", 1)[1]


def width(page: Page) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))


def requests_in(session: Session) -> list[UnitRequest]:
    session.expire_all()
    return list(session.execute(select(UnitRequest).order_by(col(UnitRequest.id))).scalars())


def test_a_unit_returns_a_case_and_asks_to_extend_another_and_the_city_decides(
    browser: Browser, session: Session, ctx: Context, artifacts_dir: Path
) -> None:
    returned, return_link = file_case(session, ctx, "飞英农贸市场东门")
    extended, extend_link = file_case(session, ctx, "飞英农贸市场西门停车场")
    add_manager(session, "city-boss")

    with serving(AT) as base, new_page(browser, phone=True, base_url=base) as phone:
        phone.goto(return_link)
        expect(phone.locator("#case")).to_contain_text("飞英农贸市场东门")
        expect(phone.locator("#time-left")).to_have_text("剩余 25 分钟")
        as_found = phone.locator("#case-photos img")
        expect(as_found).to_have_count(1)
        phone.wait_for_function(LOADED, arg="#case-photos img")  # the photo as found is served under the link
        expect(phone.get_by_role("button", name="处置完毕，上传处置后照片")).to_be_visible()
        phone.get_by_text("无法按时完成或不属于本单位？").tap()
        phone.get_by_label("退回理由（必填）").fill("该门口属月河农贸市场管理范围")
        phone.get_by_role("button", name="申请退回").tap()
        waiting = phone.locator("#waiting")
        expect(waiting).to_contain_text("已提交，等待审批；审批前请照常处置，时限照常计算")
        expect(waiting).to_contain_text("该门口属月河农贸市场管理范围")
        expect(phone.locator("#pushback")).to_have_count(0)  # one request at a time
        assert width(phone) <= PHONE_WIDTH, "the page is wider than the phone"
        phone.screenshot(path=str(artifacts_dir / "case_return_phone.png"), full_page=True)

        phone.goto(extend_link)
        phone.get_by_text("无法按时完成或不属于本单位？").tap()
        phone.locator("#extend-due").fill("2026-03-03T15:00")
        phone.get_by_label("延期理由（必填）").fill("积水需调用抽水泵，下午到场")
        phone.get_by_role("button", name="提交延期申请").tap()
        expect(phone.locator("#waiting")).to_contain_text("延期申请已提交")
        expect(phone.locator("#waiting")).to_contain_text("2026年3月3日（周二）15:00")
        assert width(phone) <= PHONE_WIDTH, "the page is wider than the phone"
        phone.screenshot(path=str(artifacts_dir / "case_extend_phone.png"), full_page=True)

    asked = requests_in(session)
    assert [(r.kind, r.status) for r in asked] == [("return", "open"), ("extend", "open")]
    assert asked[1].due_at == local("2026-03-03 15:00") and asked[1].reason == "积水需调用抽水泵，下午到场"

    with serving(local("2026-03-03 09:12")) as base, new_page(browser, phone=False, base_url=base) as desk:
        desk.goto("/desk/requests")
        desk.get_by_label("用户名").fill("city-boss")
        desk.get_by_label("密码").fill(PASSWORD)
        desk.get_by_role("button", name="登录").click()
        expect(desk).to_have_url(f"{base}/desk/requests")
        cards = desk.locator("#requests section[data-request]")
        expect(cards).to_have_count(2)
        expect(cards.first).to_contain_text("该门口属月河农贸市场管理范围")  # oldest first
        expect(cards.first).to_contain_text("已等待 7 分钟")
        desk.screenshot(path=str(artifacts_dir / "desk_requests.png"), full_page=True)

        first = cards.first
        first.locator("form.approve input[name=answer]").fill("同意退回，改派月河农贸市场")
        first.locator("form.approve select[name=unit]").select_option("wuxing-yuehe-market")
        first.get_by_role("button", name="同意退回").click()
        expect(desk.locator("#done")).to_contain_text("案件已改派给月河农贸市场")
        expect(desk.locator("#requests section[data-request]")).to_have_count(1)

        desk.goto(f"/desk/cases/{returned.id}")
        expect(desk.locator("#state")).to_have_text("处置中")
        expect(desk.locator("#dispatches tr[data-item]")).to_have_count(2)
        expect(desk.locator("#before img")).to_have_count(1)
        desk.wait_for_function(LOADED, arg="#before img")  # the thumbnail, served to the manager
        desk.screenshot(path=str(artifacts_dir / "desk_case.png"), full_page=True)

    session.expire_all()
    case = session.get(Case, returned.id)
    assert case is not None and case.dispatches == 2
    item = session.get(Occurrence, case.occurrence_id)
    assert item is not None and item.unit_id == "wuxing-yuehe-market"
    assert [r.status for r in requests_in(session)] == ["approved", "open"]
    assert extended.id != returned.id
