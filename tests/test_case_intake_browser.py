"""The inspector's phone form in a real browser: an inspector signs in on a phone in DingTalk, takes the position,
describes the problem, attaches a camera JPEG (capture time and GPS in its EXIF), submits, and reads 已受理; the
market's duty mailbox holds the 【案件派遣】 mail by then. Screenshots: test-artifacts/screenshots/case_intake_phone.png
(已受理) and case_intake_phone_form.png (the form filled in).
"""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image, ImageDraw
from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlmodel import Session

from flows.steps import Context
from notify.receivers import Inbox
from store.models import Case, Occurrence
from tests.conftest import local
from tests.desk_support import PASSWORD
from tests.test_browser import PHONE_WIDTH, page_width, serving
from web import auth

AT = local("2026-03-03T09:00")  # a Tuesday, inside the market's hours (05:30–18:30)
EXIF_IFD, GPS_IFD, DATE_TIME_ORIGINAL = 0x8769, 0x8825, 36867
FEIYING = (30.870200, 120.093600)  # near 飞英农贸市场, where the inspector stands


def camera_jpeg(path: Path) -> bytes:
    """A JPEG as a phone camera writes it: a picture, the moment it was taken and where, in EXIF."""
    image = Image.new("RGB", (800, 600), (120, 110, 100))
    draw = ImageDraw.Draw(image)
    draw.ellipse((300, 250, 520, 420), fill=(60, 140, 60))  # a heap of vegetable leaves
    exif = Image.Exif()
    exif.get_ifd(EXIF_IFD)[DATE_TIME_ORIGINAL] = "2026:03:03 08:55:00"
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (30.0, 52.0, 12.72), 3: "E", 4: (120.0, 5.0, 36.96)})
    image.save(path, "JPEG", exif=exif, quality=85)
    return path.read_bytes()


def test_an_inspector_files_a_case_with_a_photo_from_the_phone(
    phone_page: Page, artifacts_dir: Path, session: Session, ctx: Context, fresh_inbox: Inbox, tmp_path: Path
) -> None:
    auth.add_user(
        session,
        username="walker",
        password=PASSWORD,
        role="inspector",
        district=None,
        display_name="巡查员小王",
        at=local("2026-01-01T09:00"),
    )
    picture = tmp_path / "现场.jpg"
    camera_jpeg(picture)
    page = phone_page
    with serving(AT) as base:
        page.context.grant_permissions(["geolocation"], origin=base)
        page.context.set_geolocation({"latitude": FEIYING[0], "longitude": FEIYING[1], "accuracy": 8})
        page.goto(f"{base}/desk/cases/new")
        expect(page).to_have_url(re.compile(r"/desk/login\?next="))
        page.get_by_label("用户名").fill("walker")
        page.get_by_label("密码").fill(PASSWORD)
        page.get_by_role("button", name="登录").tap()
        expect(page).to_have_url(f"{base}/desk/cases/new")

        page.get_by_label("问题类别").select_option("market-litter")
        page.get_by_label("问题地点").fill("飞英农贸市场东门")
        page.get_by_role("button", name="使用当前位置").tap()
        expect(page.locator("#located")).to_contain_text("已填入当前位置")
        expect(page.locator("#latitude")).to_have_value("30.870200")
        page.get_by_label("问题描述（选填）").fill("东门口一堆菜叶，地面积水")
        page.set_input_files("#evidence", str(picture))
        assert page.locator("#evidence").get_attribute("capture") == "environment"
        assert page_width(page) <= PHONE_WIDTH, "the form is wider than the phone"
        page.screenshot(path=str(artifacts_dir / "case_intake_phone_form.png"), full_page=True)
        page.get_by_role("button", name="提交上报").tap()

        filed = page.locator("#filed")
        expect(filed.locator("h1")).to_have_text("已受理")
        expect(page.locator("#case-unit")).to_have_text("飞英农贸市场")
        expect(filed).to_contain_text("2026年3月3日（周二）09:30 前")
        assert page_width(page) <= PHONE_WIDTH, "the 已受理 page is wider than the phone"
        page.screenshot(path=str(artifacts_dir / "case_intake_phone.png"), full_page=True)
        number = page.locator("#case-number").inner_text()

    mails = [mail for mail in fresh_inbox.mails if "【案件派遣】" in mail.subject]
    assert mails and "wuxing-feiying-market@demo.huzhou.local" in mails[0].recipients
    session.expire_all()
    case = session.execute(select(Case)).scalar_one()
    assert str(case.id) == number and case.reporter == "user:walker" and case.source == "inspector"
    assert (case.latitude, case.longitude) == FEIYING
    (name,) = case.photos
    assert case.photos_taken == {name: "2026-03-03 08:55"}
    assert name in case.photos_gps and abs(case.photos_gps[name][0] - FEIYING[0]) < 1e-4
    item = session.get(Occurrence, case.occurrence_id)
    assert item is not None and item.unit_id == "wuxing-feiying-market" and item.due_at == local("2026-03-03T09:30")
