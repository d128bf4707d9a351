"""The app in a real browser: a unit confirms on its phone with a photo, a city manager works the overdue list and one
item at the desk, and a district manager sees only its own district, on the pages and through the API.

Each test serves the app with uvicorn on loopback (the clock fixed through ``app.dependency_overrides``), drives
chromium through it, saves screenshots under test-artifacts/screenshots/, and then checks the store itself."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw
from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlmodel import Session, col

from flows import steps
from flows.steps import Context
from store.models import AuditEvent, Confirmation, Occurrence, Talk, Unit
from store.settings import get_settings
from tests.browser_support import Screenshot, serve_app
from tests.conftest import local
from tests.desk_support import PASSWORD, add_manager, api_headers
from tests.test_steps import CORE
from web.app import app, clock

PHONE_WIDTH = 390
TAKEN_EXIF = "2026:02:03 09:12:00"  # what the camera wrote: DateTimeOriginal in the Exif IFD
EXIF_IFD, DATE_TIME_ORIGINAL = 0x8769, 36867
DESK_NOW = local("2026-02-24T18:00")  # after the Spring Festival: W06 is 督办, W07 交办, the month's items still due


@contextmanager
def serving(at: datetime) -> Iterator[str]:
    """The app on a loopback port with its clock stopped at ``at``; the override goes when the block ends."""
    app.dependency_overrides[clock] = lambda: at
    try:
        with serve_app(app) as base:
            yield base
    finally:
        app.dependency_overrides.pop(clock, None)


@pytest.fixture
def february(session: Session, ctx: Context) -> dict[str, Unit]:
    """CORE over February 2026, escalated as the ticks would have: W06 twice (督办), W07 and W08 once (交办)."""
    steps.plan(session, ctx, start=date(2026, 2, 1), end=date(2026, 2, 28), at=local("2026-01-20T08:00"), only=CORE)
    steps.escalate(session, ctx, at=local("2026-02-09T17:00"))  # W06 → 交办
    steps.escalate(session, ctx, at=local("2026-02-14T17:00"))  # W06 → 督办
    steps.escalate(session, ctx, at=local("2026-02-24T17:00"))  # W07 → 交办 (its grace day is after the holiday)
    return {unit.id: unit for unit in session.execute(select(Unit)).scalars()}


def all_items(session: Session) -> list[Occurrence]:
    session.expire_all()
    return list(session.execute(select(Occurrence).order_by(col(Occurrence.id))).scalars())


def district_of(unit: Unit) -> str:
    return unit.district or unit.id


def one_item(session: Session, duty: str, unit: str, period: str) -> Occurrence:
    query = select(Occurrence).where(
        col(Occurrence.duty_id) == duty, col(Occurrence.unit_id) == unit, col(Occurrence.period) == period
    )
    return session.execute(query).scalar_one()


def photo_with_exif(path: Path) -> bytes:
    """A real JPEG, as a phone camera writes it: a picture and the moment it was taken in EXIF."""
    image = Image.new("RGB", (640, 480), (70, 130, 80))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 300, 640, 480), fill=(120, 110, 100))  # a pavement
    draw.ellipse((420, 60, 600, 240), fill=(30, 90, 40))  # a pruned tree
    exif = Image.Exif()
    exif.get_ifd(EXIF_IFD)[DATE_TIME_ORIGINAL] = TAKEN_EXIF
    image.save(path, "JPEG", exif=exif, quality=85)
    return path.read_bytes()


def page_width(page: Page) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))


def log_in_browser(page: Page, base: str, username: str) -> None:
    """Open the desk, get sent to the login form, fill it in as a person would, and land on the list."""
    page.goto(f"{base}/desk/items")
    expect(page).to_have_url(re.compile(r"/desk/login\?next="))
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page).to_have_url(f"{base}/desk/items")
    expect(page.locator("header nav")).to_contain_text(username)


def listed_ids(page: Page) -> list[int]:
    return [
        int(i) for i in page.locator("#items tbody tr[data-id]").evaluate_all("rows => rows.map(r => r.dataset.id)")
    ]


# ---------------------------------------------------------------- 1. a unit confirms on its phone


def test_phone_confirms_with_a_photo_and_its_capture_time(
    phone_page: Page, screenshot: Screenshot, session: Session, ctx: Context, february: dict[str, Unit], tmp_path: Path
) -> None:
    at = local("2026-02-03T10:00")  # the first reminder went out at 09:00; the photo was taken at 09:12
    item = one_item(session, "greening-monthly", "wuxing-greening", "2026-02")
    link = steps.confirmation_link(ctx.settings, ctx.secret, item, at=at)
    picture = tmp_path / "现场照片.jpg"
    photo = photo_with_exif(picture)
    note = "已完成飞英公园、爱山广场行道树修剪，清运枝叶3车"

    with serving(at) as base:
        page = phone_page
        page.goto(base + "/c/" + link.rsplit("/c/", 1)[1])
        expect(page.locator("h1")).to_have_text("园林绿化月度养护清单（2026年2月）")
        expect(page.locator("dt:text-is('截止时间') + dd")).to_have_text("2026年2月28日（周六）17:00")
        expect(page.locator("dt:text-is('当前状态') + dd .status")).to_have_text("待完成")
        expect(page.locator("dt:text-is('责任单位') + dd")).to_have_text(february[item.unit_id].name)
        page.set_input_files("#evidence", str(picture))
        page.get_by_label("完成情况说明（选填）").fill(note)
        assert page.locator("#evidence").evaluate("input => input.files[0].name") == "现场照片.jpg"
        assert page_width(page) <= PHONE_WIDTH, "the form is wider than the phone"
        screenshot(page, "before")

        page.get_by_role("button", name="确认已完成").tap()

        outcome = page.locator("#outcome")
        expect(outcome.locator("h1")).to_have_text("已确认完成")
        expect(outcome).to_contain_text(note)
        expect(outcome).to_contain_text("已上传照片 1 张")
        expect(outcome.locator("[data-taken]")).to_have_text("照片 1 拍摄于 2026-02-03 09:12")
        expect(page.locator("dt:text-is('当前状态') + dd .status")).to_have_text("已完成")
        expect(page.get_by_role("button", name="确认已完成")).to_have_count(0)  # nothing left to submit
        assert page_width(page) <= PHONE_WIDTH, "the confirmed page is wider than the phone"
        screenshot(page, "after")

    session.expire_all()
    reports = list(session.execute(select(Confirmation)).scalars())
    assert len(reports) == 1
    report = reports[0]
    assert report.occurrence_id == item.id and report.note == note and not report.late
    assert "DingTalk" in report.client  # the phone's browser, as it said who it was
    assert len(report.evidence) == 1
    name = report.evidence[0]
    assert name.endswith(".jpg") and report.evidence_taken == {name: "2026-02-03 09:12"}
    stored = get_settings().var_dir / "evidence" / name[:2] / name
    assert stored.is_file() and stored.read_bytes() == photo
    confirmed = session.get(Occurrence, item.id)
    assert confirmed is not None and confirmed.done_at == at and confirmed.status_at(at) == "done"
    events = list(session.execute(select(AuditEvent).where(col(AuditEvent.action) == "confirmed")).scalars())
    assert [(e.occurrence_id, e.actor, e.detail["evidence"]) for e in events] == [(item.id, "unit:wuxing-greening", 1)]


# ---------------------------------------------------------------- 2. a city manager at the desk


def test_city_manager_filters_overdue_extends_and_records_a_talk(
    desk_page: Page, screenshot: Screenshot, session: Session, february: dict[str, Unit]
) -> None:
    add_manager(session, "city-boss")
    overdue = [o for o in all_items(session) if o.status_at(DESK_NOW) == "overdue"]
    levels = {level: sum(o.level == level for o in overdue) for level in (1, 2)}
    # The plan this test stands on: W06 at 督办; W07 and W08 (all 春节, due the Saturday before it) at 交办.
    assert len(overdue) == 15 and levels == {1: 10, 2: 5}
    page = desk_page

    with serving(DESK_NOW) as base:
        log_in_browser(page, base, "city-boss")
        expect(page.locator("#total")).to_have_text(str(len(all_items(session))))

        page.locator("#filter-status").select_option("overdue")
        page.get_by_role("button", name="筛选").click()
        expect(page).to_have_url(re.compile(r"[?&]status=overdue"))
        expect(page.locator("#total")).to_have_text(str(len(overdue)))
        expect(page.locator("#status-counts a[data-status=overdue] b")).to_have_text(str(len(overdue)))
        expect(page.locator("#level-counts")).to_contain_text(f"交办 {levels[1]}")
        expect(page.locator("#level-counts")).to_contain_text(f"督办 {levels[2]}")
        rows = page.locator("#items tbody tr[data-id]")
        expect(rows).to_have_count(len(overdue))
        assert set(listed_ids(page)) == {o.id for o in overdue}
        assert set(rows.evaluate_all("rows => rows.map(r => r.dataset.status)")) == {"overdue"}
        shown_levels = [int(level) for level in rows.evaluate_all("rows => rows.map(r => r.dataset.level)")]
        assert shown_levels == sorted(shown_levels, reverse=True)  # 督办 before 交办
        screenshot(page, "overdue-list")

        first = rows.first
        item_id = int(first.get_attribute("data-id") or 0)
        first.locator("td").nth(2).get_by_role("link").click()
        expect(page).to_have_url(f"{base}/desk/items/{item_id}")
        expect(page.locator("#status")).to_have_text("已逾期")
        expect(page.locator("#level")).to_have_text("督办")
        expect(page.locator("#due")).to_have_text("2026年2月6日（周五）17:00")

        # The browser will not send the form without a reason (required); the server's own checks come next.
        page.locator("#extend-due").fill("2026-03-06")
        assert page.locator("#extend").evaluate("form => form.checkValidity()") is False
        page.locator("#extend-reason").fill("春节后市场陆续开业，抽查顺延至3月第一周")
        page.locator("#extend").get_by_role("button", name="延期").click()
        expect(page).to_have_url(f"{base}/desk/items/{item_id}#timeline")
        expect(page.locator("#due")).to_have_text("2026年3月6日（周五）17:00")
        expect(page.locator("#status")).to_have_text("待完成")
        extended = page.locator("#timeline tr[data-action=extended]")
        expect(extended).to_have_count(1)
        expect(extended).to_contain_text("延期")
        expect(extended).to_contain_text("管理员 city-boss")
        expect(extended).to_contain_text("春节后市场陆续开业")

        # A date before the (new) due date: the server refuses in Chinese and keeps what was typed.
        again = "3月2日前务必完成"
        page.locator("#extend-due").fill("2026-03-02")
        page.locator("#extend-reason").fill(again)
        with page.expect_response(lambda r: r.request.method == "POST") as refused:
            page.locator("#extend").get_by_role("button", name="延期").click()
        assert refused.value.status == 400
        expect(page.locator("#error")).to_have_text("新的截止时间须晚于原截止时间。")
        expect(page.locator("#extend-reason")).to_have_value(again)
        expect(page.locator("#extend-due")).to_have_value("2026-03-02")
        expect(page.locator("#due")).to_have_text("2026年3月6日（周五）17:00")
        screenshot(page, "extend-refused")

        page.locator("#talk-date").fill("2026-02-24")
        page.locator("#talk-attendees").fill("市城管办王科长；市场监管局分管副局长")
        page.locator("#talk-minutes").fill("通报W06抽查逾期未报，要求3月6日前补报并说明原因。")
        page.get_by_role("button", name="保存约谈记录").click()
        expect(page).to_have_url(f"{base}/desk/items/{item_id}#timeline")
        expect(page.locator("#talks")).to_contain_text("市城管办王科长；市场监管局分管副局长")
        talked = page.locator("#timeline tr[data-action=talk_recorded]")
        expect(talked).to_contain_text("记录约谈")
        expect(talked).to_contain_text("管理员 city-boss")
        screenshot(page, "item-after-actions")

    session.expire_all()
    item = session.get(Occurrence, item_id)
    assert item is not None and item.level == 2 and item.unit_id.endswith("-msb") and item.period == "2026-W06"
    assert item.due_at == local("2026-03-06T17:00") and item.next_escalate_at == local("2026-03-06T17:00")
    talks = list(session.execute(select(Talk)).scalars())
    assert [(t.occurrence_id, t.held_on, t.recorded_by) for t in talks] == [
        (item_id, date(2026, 2, 24), "user:city-boss")
    ]
    assert talks[0].minutes == "通报W06抽查逾期未报，要求3月6日前补报并说明原因。"
    query = select(AuditEvent).where(col(AuditEvent.actor) == "user:city-boss").order_by(col(AuditEvent.id))
    events = list(session.execute(query).scalars())
    assert [(e.action, e.occurrence_id) for e in events] == [("extended", item_id), ("talk_recorded", item_id)]
    assert events[0].detail["reason"] == "春节后市场陆续开业，抽查顺延至3月第一周"  # the refused attempt left nothing
    assert datetime.fromisoformat(events[0].detail["previous_due"]) == local("2026-02-06T17:00")
    assert events[1].detail["talk"] == talks[0].id


# ---------------------------------------------------------------- 3. a district manager sees its district only


def test_district_manager_sees_only_its_district_in_the_browser_and_the_api(
    desk_page: Page, screenshot: Screenshot, session: Session, february: dict[str, Unit]
) -> None:
    add_manager(session, "wuxing-boss", district="wuxing")
    items = all_items(session)
    wuxing = {o.id for o in items if o.id is not None and district_of(february[o.unit_id]) == "wuxing"}
    anji = [o for o in items if district_of(february[o.unit_id]) == "anji"]
    assert wuxing and anji  # both districts have work this month
    anji_overdue = next(o for o in anji if o.status_at(DESK_NOW) == "overdue")
    page = desk_page

    with serving(DESK_NOW) as base:
        log_in_browser(page, base, "wuxing-boss")
        expect(page.locator("header nav")).to_contain_text("吴兴区城市管理委员会办公室")
        expect(page.locator("#total")).to_have_text(str(len(wuxing)))
        expect(page.locator("#items tbody tr[data-id]")).to_have_count(len(wuxing))
        shown = listed_ids(page)
        assert set(shown) == wuxing
        assert all(district_of(february[o.unit_id]) == "wuxing" for o in items if o.id in shown)
        names = page.locator("#items tbody tr[data-id] td:nth-child(4)").all_inner_texts()
        assert set(names) <= {u.name for u in february.values() if district_of(u) == "wuxing"}
        units_offered = page.locator("#filter-unit option").evaluate_all("options => options.map(o => o.value)")
        assert [u for u in units_offered if u] and all(district_of(february[u]) == "wuxing" for u in units_offered if u)
        district_offered = page.locator("#filter-district option").evaluate_all("options => options.map(o => o.value)")
        assert set(district_offered) == {"", "wuxing"}
        screenshot(page, "district-list")

        answer = page.goto(f"{base}/desk/items/{anji_overdue.id}")
        assert answer is not None and answer.status == 404
        expect(page.locator("h1")).to_have_text("事项不存在")
        screenshot(page, "other-district-item")

    app.dependency_overrides[clock] = lambda: DESK_NOW
    try:
        client = TestClient(app)
        headers = api_headers(session, "wuxing-script", district="wuxing")
        assert client.get("/api/me", headers=headers).json()["district"] == "wuxing"
        missing = client.get(f"/api/occurrences/{anji_overdue.id}", headers=headers)
        assert missing.status_code == 404 and "事项不存在" in missing.json()["detail"]
        refused = client.post(
            f"/api/occurrences/{anji_overdue.id}/talk",
            json={"held_on": "2026-02-24", "attendees": "越权", "minutes": "不应记录"},
            headers=headers,
        )
        assert refused.status_code == 404
        listed = client.get("/api/occurrences", headers=headers).json()
        assert {i["id"] for i in listed} == wuxing
        assert {i["district"] for i in listed} == {"wuxing"} and not [i for i in listed if i["unit"].startswith("anji")]
        anji_asked = client.get("/api/occurrences", params={"district": "anji"}, headers=headers).json()
        assert {i["id"] for i in anji_asked} == wuxing  # asking for another district still answers with its own
        overdue = client.get("/api/overdue", headers=headers).json()
        assert overdue and {i["district"] for i in overdue} == {"wuxing"}
        ours = client.get(f"/api/occurrences/{min(wuxing)}", headers=headers)
        assert ours.status_code == 200 and ours.json()["district"] == "wuxing"
    finally:
        app.dependency_overrides.pop(clock, None)

    session.expire_all()
    assert list(session.execute(select(Talk)).scalars()) == []
    assert list(session.execute(select(AuditEvent).where(col(AuditEvent.actor).like("%wuxing%"))).scalars()) == []


def test_a_city_manager_approves_a_yuetan_on_a_phone(
    phone_page: Page, screenshot: Screenshot, session: Session, ctx: Context, february: dict[str, Unit]
) -> None:
    """Issue 18: the approvals page fits 390 px without sideways scrolling, tells approve from reject, and says what
    was done."""
    add_manager(session, "city-boss")
    steps.escalate(session, ctx, at=local("2026-02-26T17:00"))  # W06's 督办 deadline: five 约谈 wait
    page = phone_page
    with serving(local("2026-02-27T09:00")) as base:
        log_in_browser(page, base, "city-boss")
        page.goto(f"{base}/desk/approvals")
        cards = page.locator("#approvals section[data-escalation]")
        expect(cards).to_have_count(5)
        assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE_WIDTH  # no sideways scrolling
        approve, reject = cards.first.locator("button.approve"), cards.first.locator("button.reject")
        assert approve.evaluate("b => getComputedStyle(b).backgroundColor") != reject.evaluate(
            "b => getComputedStyle(b).backgroundColor"
        )
        screenshot(page, "approvals-phone")
        approve.click()
        expect(page.locator("#done")).to_contain_text("已同意约谈：文号 湖城管谈〔2026〕1号")
        expect(cards).to_have_count(4)
        screenshot(page, "approved")


def test_a_notice_saves_as_pdf_with_the_office_header(
    desk_page: Page, screenshot: Screenshot, session: Session, february: dict[str, Unit], artifacts_dir: Path
) -> None:
    """Issue 18: a numbered notice printed from the browser (chromium's own PDF), the office's name at its head."""
    add_manager(session, "city-boss")
    item = one_item(session, "market-spot-check", "wuxing-msb", "2026-W06")
    with serving(DESK_NOW) as base:
        log_in_browser(desk_page, base, "city-boss")
        desk_page.goto(f"{base}/desk/items/{item.id}/notices/2")
        expect(desk_page.locator(".office")).to_have_text("湖州市城市管理委员会办公室")
        expect(desk_page.locator("#document")).to_contain_text("湖城管督〔2026〕")
        screenshot(desk_page, "notice")
        pdf = desk_page.pdf(format="A4")
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
    (artifacts_dir / "notice-duban.pdf").write_bytes(pdf)


def test_a_simulated_month_from_the_managers_side(
    desk_page: Page, screenshot: Screenshot, session: Session, ctx: Context
) -> None:
    """Issue 18: February 2026 ticked as the scheduler would (every working day at 09:00 and 17:05), no unit
    confirming; then a city manager's Monday morning at the desk: the overdue list, the approval queue, one 约谈
    approved, a bulk 延期, the history in words, a notice printed. Screenshots under test-artifacts/."""
    add_manager(session, "city-boss")
    steps.plan(session, ctx, start=date(2026, 2, 1), end=date(2026, 3, 6), at=local("2026-01-20T08:00"), only=CORE)
    day = date(2026, 2, 2)
    while day <= date(2026, 3, 1):
        if ctx.program.workdays.is_workday(day):
            for moment in ("09:00", "17:05"):
                steps.tick(session, ctx, at=local(f"{day.isoformat()}T{moment}"))
        day = date.fromordinal(day.toordinal() + 1)
    monday = local("2026-03-02T09:00")
    page = desk_page
    with serving(monday) as base:
        log_in_browser(page, base, "city-boss")
        page.goto(f"{base}/desk/items?status=overdue")
        overdue = [o for o in all_items(session) if o.status_at(monday) == "overdue"]
        expect(page.locator("#total")).to_have_text(str(len(overdue)))
        screenshot(page, "monday-overdue")
        for code in ("level:", "remind:", "mailto", "user:", "unit:"):
            assert code not in page.content(), code

        page.goto(f"{base}/desk/approvals")
        waiting = page.locator("#approvals section[data-escalation]")
        count = waiting.count()
        assert count > 0
        screenshot(page, "monday-approvals")
        waiting.first.locator("button.approve").click()
        expect(page.locator("#done")).to_contain_text("文号 湖城管谈〔2026〕1号")
        expect(waiting).to_have_count(count - 1)

        page.goto(f"{base}/desk/items?status=overdue&level=1")
        first_two = page.locator("#items tbody tr[data-id] input[name=ids]")
        first_two.nth(0).check()
        first_two.nth(1).check()
        page.locator("#bulk-panel select[name=action]").select_option("extend")
        page.locator("#bulk-panel input[name=due]").fill("2026-03-13")
        page.locator("#bulk-panel input[name=reason]").fill("节后市场陆续开业，顺延一周")
        page.get_by_role("button", name="批量处理").click()
        expect(page.locator("main")).to_contain_text("已对 2 项延期")
        screenshot(page, "monday-bulk-extended")

        approved = next(o for o in all_items(session) if o.level == 3)
        page.goto(f"{base}/desk/items/{approved.id}")
        expect(page.locator("#timeline")).to_contain_text("管理员 city-boss")
        screenshot(page, "monday-item")
        page.goto(f"{base}/desk/items/{approved.id}/notices/3")
        expect(page.locator("#document")).to_have_text("湖城管谈〔2026〕1号")
        screenshot(page, "monday-notice")
    # Every notice issued in the month names a deadline after its own date and an item that was overdue then.
    for event in session.execute(select(AuditEvent).where(col(AuditEvent.action) == "escalated")).scalars():
        assert datetime.fromisoformat(event.detail["deadline"]) > event.at
