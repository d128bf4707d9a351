"""异议 end to end: the unit page shows the frozen assessment and its deductions, a unit objects to one, a manager
accepts or rejects on the desk, and publication waits for every objection and then fixes the numbers.

The ledger (``frozen``): the W06 market spot checks of the five district market-supervision bureaux, due Friday
6 Feb 2026 17:00. wuxing-msb and nanxun-msb report late (10 Feb); wuxing-msb's check found 飞英农贸市场 failing and
月河农贸市场 passing, nanxun-msb's found 南浔农贸市场 passing; the other three never report. February is frozen at
its cut-off, Friday 6 March 17:00 (the 5th working day), and objections run to Wednesday 11 March 17:00.

Hand-computed with the shipped scoring (base 100; weights 按期 30, 抽查完成 20, 抽查合格 30; a rate with nothing to
count loses nothing):
- anji/changxing/deqing-msb: on time 0/1 (−30), checks done 0/1 (−20): 50; overdue −2 → 48.0;
- wuxing-msb, nanxun-msb: on time 0/1 (−30), checks done 1/1: 70; late −0.5 → 69.5, sharing rank 1;
- 飞英农贸市场: checks passed 0/1 (−30): 70; check failed −2 → 68.0, rank 3 of 3 markets, on the 黑榜;
- 月河农贸市场, 南浔农贸市场: 100.0, rank 1, on the 红榜.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlmodel import Session, col

from flows import steps
from flows.assessment import assess, latest, scores_of
from flows.notices import unit_link
from flows.scores import cutoff_of, span_of
from flows.steps import Context
from store.models import (
    Assessment,
    AssessmentScore,
    AuditEvent,
    CheckResult,
    Confirmation,
    Deduction,
    Delivery,
    Objection,
    Occurrence,
    Unit,
)
from tests.browser_support import Screenshot
from tests.conftest import local
from tests.desk_support import log_in
from tests.test_browser import serving
from tests.test_steps import CORE
from tests.web_support import Clock, png

CUTOFF = local("2026-03-06T17:00")
WINDOW_ENDS = local("2026-03-11T17:00")
REPORTED = local("2026-02-10T10:00")
CHECKS = {
    "wuxing-msb": [("wuxing-feiying-market", False, "地面积水、垃圾未及时清运"), ("wuxing-yuehe-market", True, "")],
    "nanxun-msb": [("nanxun-town-market", True, "")],
}


@dataclass
class Frozen:
    assessment: Assessment

    @property
    def id(self) -> int:
        return self.assessment.id or 0


def build_ledger(session: Session, ctx: Context) -> None:
    steps.plan(session, ctx, start=date(2026, 2, 1), end=date(2026, 2, 8), at=local("2026-01-20T08:00"), only=CORE)
    for checker, results in CHECKS.items():
        item = session.execute(select(Occurrence).where(col(Occurrence.unit_id) == checker)).scalar_one()
        steps.confirm(session, occurrence_id=item.id or 0, note="本周抽查完成", evidence=[], at=REPORTED, client="t")
        report = session.execute(select(Confirmation).where(col(Confirmation.occurrence_id) == item.id)).scalar_one()
        for subject, passed, problem in results:
            session.add(
                CheckResult(
                    occurrence_id=item.id or 0,
                    confirmation_id=report.id or 0,
                    subject_id=subject,
                    passed=passed,
                    problem=problem,
                    at=REPORTED,
                )
            )
    session.commit()


@pytest.fixture
def frozen(session: Session, ctx: Context) -> Frozen:
    build_ledger(session, ctx)
    assert ctx.program.scoring is not None
    assert cutoff_of(ctx.program, ctx.program.scoring, span_of("2026-02"), ctx.zone) == CUTOFF
    assessment = assess(session, ctx, "2026-02", at=CUTOFF)
    assert assessment.status == "open" and assessment.objection_until == WINDOW_ENDS
    return Frozen(assessment)


def unit_path(ctx: Context, session: Session, unit_id: str) -> str:
    unit = session.get(Unit, unit_id)
    assert unit is not None
    link = unit_link(ctx.settings, ctx.secret, unit_id, at=local("2026-03-06T18:00"), version=unit.link_version)
    return "/u/" + link.rsplit("/u/", 1)[1]


def deduction(session: Session, unit_id: str, reason: str) -> Deduction:
    query = select(Deduction).where(col(Deduction.unit_id) == unit_id, col(Deduction.reason) == reason)
    return session.execute(query.execution_options(populate_existing=True)).scalar_one()


def score(session: Session, assessment_id: int, unit_id: str) -> AssessmentScore:
    session.expire_all()
    return next(row for row in scores_of(session, assessment_id) if row.unit_id == unit_id)


def audits(session: Session, action: str) -> list[AuditEvent]:
    return list(session.execute(select(AuditEvent).where(col(AuditEvent.action) == action)).scalars())


def objection_of(session: Session, deduction_id: int) -> Objection:
    session.expire_all()
    query = select(Objection).where(col(Objection.deduction_id) == deduction_id)
    return session.execute(query).scalar_one()


def csrf_in(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found
    return found.group(1)


def test_the_frozen_numbers_are_the_hand_computed_ones(session: Session, frozen: Frozen) -> None:
    scores = {row.unit_id: (row.score, row.rank, row.grade) for row in scores_of(session, frozen.id)}
    assert scores == {
        "anji-msb": (48.0, 3, "不合格"),
        "changxing-msb": (48.0, 3, "不合格"),
        "deqing-msb": (48.0, 3, "不合格"),
        "wuxing-msb": (69.5, 1, "合格"),
        "nanxun-msb": (69.5, 1, "合格"),
        "wuxing-feiying-market": (68.0, 3, "合格"),
        "wuxing-yuehe-market": (100.0, 1, "优秀"),
        "nanxun-town-market": (100.0, 1, "优秀"),
    }


def test_the_unit_page_shows_its_score_rank_board_and_every_deduction(
    client: TestClient, ctx: Context, session: Session, frozen: Frozen, now: Clock
) -> None:
    now.at = local("2026-03-09T10:00")
    page = client.get(unit_path(ctx, session, "wuxing-feiying-market"))
    assert page.status_code == 200
    section = page.text[page.text.index('id="assessment"') :]
    assert "本单位考核 · 2026年2月" in section and "68.00" in section and "合格" in section
    assert "农贸市场第3名/共3个" in section and "市场清扫保洁质量红黑榜·黑榜" in section
    assert "抽查合格率" in section and "0.0%" in section
    # The deduction, its points, the item behind it and the problem the check found.
    failed = deduction(session, "wuxing-feiying-market", "check_failed")
    assert f'data-deduction="{failed.id}"' in section and "抽查不合格" in section and "扣 2.0 分" in section
    assert "市场" in section and "地面积水、垃圾未及时清运" in section
    assert (
        'action="/u/' in section and f"/objections/{failed.id}" in section and "2026年3月11日（周三）17:00" in section
    )
    # A late report: the item's title, its due date and the day it was done.
    late = client.get(unit_path(ctx, session, "wuxing-msb")).text
    assert "逾期完成" in late and "扣 0.5 分" in late and "截止 2026年2月6日（周五）17:00" in late
    assert "完成 2026年2月10日（周二）10:00" in late and "第1名/共5个" in late


def test_a_draft_is_not_shown_to_the_unit(client: TestClient, ctx: Context, session: Session, now: Clock) -> None:
    build_ledger(session, ctx)
    draft = assess(session, ctx, "2026-02", at=local("2026-03-02T09:00"))
    assert draft.status == "draft"
    now.at = local("2026-03-02T10:00")
    page = client.get(unit_path(ctx, session, "wuxing-msb"))
    assert page.status_code == 200 and "本单位考核" not in page.text


def test_an_objection_is_stored_audited_and_only_once(
    client: TestClient, ctx: Context, session: Session, frozen: Frozen, now: Clock
) -> None:
    now.at = local("2026-03-09T10:00")
    path = unit_path(ctx, session, "wuxing-msb")
    late = deduction(session, "wuxing-msb", "late_done")
    filed = client.post(
        f"{path}/objections/{late.id}",
        data={"reason": "2月6日已现场抽查，系统故障未能及时上报"},
        files={"evidence": ("site.png", png(), "image/png")},
    )
    assert filed.status_code == 200 and "异议已提交" in filed.text
    objection = objection_of(session, late.id or 0)
    assert objection.status == "open" and objection.reason == "2月6日已现场抽查，系统故障未能及时上报"
    assert len(objection.evidence) == 1 and objection.evidence[0].endswith(".png")
    (event,) = audits(session, "objection_filed")
    assert event.actor == "unit:wuxing-msb" and event.occurrence_id == late.occurrence_id
    assert event.detail["deduction"] == "逾期完成"
    # The page now shows the objection and its state, and no form for that deduction.
    page = client.get(path).text
    assert "2月6日已现场抽查" in page and "待处理" in page and f'/objections/{late.id}"' not in page
    again = client.post(f"{path}/objections/{late.id}", data={"reason": "再提一次"})
    assert again.status_code == 400 and "已提出过异议" in again.text
    assert len(audits(session, "objection_filed")) == 1


def test_a_bad_objection_is_refused_in_chinese_and_the_text_kept(
    client: TestClient, ctx: Context, session: Session, frozen: Frozen, now: Clock
) -> None:
    now.at = local("2026-03-09T10:00")
    path = unit_path(ctx, session, "wuxing-msb")
    late = deduction(session, "wuxing-msb", "late_done")
    empty = client.post(f"{path}/objections/{late.id}", data={"reason": "   "})
    assert empty.status_code == 400 and "请写明异议理由" in empty.text
    long = "理" * 1001
    too_long = client.post(f"{path}/objections/{late.id}", data={"reason": long})
    assert too_long.status_code == 400 and "1000字以内" in too_long.text and long in too_long.text
    not_photo = client.post(
        f"{path}/objections/{late.id}",
        data={"reason": "见附件"},
        files={"evidence": ("x.png", b"not an image", "image/png")},
    )
    assert not_photo.status_code == 400 and "不是 JPEG 或 PNG 图片" in not_photo.text and "见附件" in not_photo.text
    # Another unit's deduction is not this unit's to object to.
    other = deduction(session, "nanxun-msb", "late_done")
    foreign = client.post(f"{path}/objections/{other.id}", data={"reason": "不是我的"})
    assert foreign.status_code == 400 and "找不到该扣分项" in foreign.text
    assert "Traceback" not in foreign.text
    assert session.execute(select(Objection)).first() is None


def test_after_the_window_the_form_is_gone_and_a_post_is_refused(
    client: TestClient, ctx: Context, session: Session, frozen: Frozen, now: Clock
) -> None:
    now.at = local("2026-03-11T17:01")
    path = unit_path(ctx, session, "wuxing-msb")
    late = deduction(session, "wuxing-msb", "late_done")
    page = client.get(path).text
    assert "异议期已于 2026年3月11日（周三）17:00 结束" in page and "/objections/" not in page
    refused = client.post(f"{path}/objections/{late.id}", data={"reason": "迟到的异议"})
    assert refused.status_code == 400 and "异议期已于" in refused.text and "迟到的异议" not in refused.text
    assert session.execute(select(Objection)).first() is None


def file(client: TestClient, ctx: Context, session: Session, unit_id: str, reason: str, text_: str) -> Objection:
    path = unit_path(ctx, session, unit_id)
    target = deduction(session, unit_id, reason)
    assert client.post(f"{path}/objections/{target.id}", data={"reason": text_}).status_code == 200
    return objection_of(session, target.id or 0)


def test_accepted_objection_raises_the_score_by_its_points_and_reranks(
    client: TestClient, ctx: Context, session: Session, frozen: Frozen, now: Clock
) -> None:
    now.at = local("2026-03-09T10:00")
    objection = file(client, ctx, session, "wuxing-msb", "late_done", "系统故障，已按时完成")
    assert (score(session, frozen.id, "wuxing-msb").rank, score(session, frozen.id, "nanxun-msb").rank) == (1, 1)
    csrf = log_in(client, session, "city-boss")
    page = client.get(f"/desk/assessments/{frozen.id}")
    assert f'data-objection="{objection.id}"' in page.text and "系统故障，已按时完成" in page.text
    decided = client.post(
        f"/desk/assessments/{frozen.id}/objections/{objection.id}",
        data={"csrf": csrf, "decision": "accept", "answer": "经核实属系统故障"},
        follow_redirects=False,
    )
    assert decided.status_code == 303
    assert "已采纳异议" in client.get(decided.headers["location"]).text
    assert objection_of(session, objection.deduction_id).status == "accepted"
    assert deduction(session, "wuxing-msb", "late_done").withdrawn
    # 69.5 + 0.5 = 70.0: ahead of nanxun-msb now, alone at rank 1.
    mine, theirs = score(session, frozen.id, "wuxing-msb"), score(session, frozen.id, "nanxun-msb")
    assert (mine.score, mine.deducted, mine.rank, theirs.score, theirs.rank) == (70.0, 0.0, 1, 69.5, 2)
    (event,) = audits(session, "objection_accepted")
    assert event.actor == "user:city-boss" and (event.detail["score_before"], event.detail["score_after"]) == (
        69.5,
        70.0,
    )
    told = session.execute(select(Delivery).where(col(Delivery.stage) == f"objection:{objection.id}")).scalars().all()
    assert told and all(d.unit_id == "wuxing-msb" and d.title.startswith("【异议处理】") for d in told)
    assert "已采纳" in told[0].title and "得分调整为70分" in told[0].body
    # The unit reads the answer.
    page = client.get(unit_path(ctx, session, "wuxing-msb")).text
    assert "已采纳" in page and "经核实属系统故障" in page and "70.00" in page and "已撤销" in page


def test_rejected_objection_needs_an_answer_and_leaves_the_score(
    client: TestClient, ctx: Context, session: Session, frozen: Frozen, now: Clock
) -> None:
    now.at = local("2026-03-09T10:00")
    objection = file(client, ctx, session, "wuxing-feiying-market", "check_failed", "当天下雨，积水已及时清理")
    csrf = log_in(client, session, "city-boss")
    url = f"/desk/assessments/{frozen.id}/objections/{objection.id}"
    blank = client.post(url, data={"csrf": csrf, "decision": "reject", "answer": " "})
    assert blank.status_code == 400 and "不予采纳须写明理由" in blank.text
    forged = client.post(url, data={"csrf": "forged", "decision": "reject", "answer": "x"})
    assert forged.status_code == 403 and objection_of(session, objection.deduction_id).status == "open"
    decided = client.post(url, data={"csrf": csrf, "decision": "reject", "answer": "抽查照片显示垃圾堆放"})
    assert decided.status_code == 200 and "已不予采纳异议" in decided.text
    assert objection_of(session, objection.deduction_id).status == "rejected"
    assert score(session, frozen.id, "wuxing-feiying-market").score == 68.0
    (event,) = audits(session, "objection_rejected")
    assert event.detail["answer"] == "抽查照片显示垃圾堆放" and event.detail["score_after"] == 68.0
    page = client.get(unit_path(ctx, session, "wuxing-feiying-market")).text
    assert "未采纳" in page and "抽查照片显示垃圾堆放" in page


def test_publication_waits_for_the_window_and_the_objections_then_numbers_never_change(
    client: TestClient, ctx: Context, session: Session, frozen: Frozen, now: Clock
) -> None:
    now.at = local("2026-03-09T10:00")
    objection = file(client, ctx, session, "anji-msb", "overdue", "抽查已完成，漏报")
    csrf = log_in(client, session, "city-boss")
    publish_url = f"/desk/assessments/{frozen.id}/publish"
    early = client.post(publish_url, data={"csrf": csrf})
    assert early.status_code == 400 and "期满后方可通报" in early.text
    now.at = local("2026-03-12T09:00")
    waiting = client.post(publish_url, data={"csrf": csrf})
    assert waiting.status_code == 400 and "还有 1 条异议未处理" in waiting.text and 'id="publish"' not in waiting.text
    assert latest(session, "2026-02") is not None and latest(session, "2026-02").status == "open"  # type: ignore[union-attr]
    client.post(
        f"/desk/assessments/{frozen.id}/objections/{objection.id}",
        data={"csrf": csrf, "decision": "reject", "answer": "无抽查记录"},
    )
    page = client.get(f"/desk/assessments/{frozen.id}")
    assert 'id="publish"' in page.text
    done = client.post(publish_url, data={"csrf": csrf})
    assert done.status_code == 200 and "湖城管考〔2026〕1号" in done.text and "已通报" in done.text
    before = {row.unit_id: (row.score, row.rank) for row in scores_of(session, frozen.id)}
    # After publication: the unit page says so and has no form; an objection is refused; nothing moves.
    path = unit_path(ctx, session, "nanxun-msb")
    page_after = client.get(path).text
    assert "已通报（湖城管考〔2026〕1号）" in page_after and "/objections/" not in page_after
    target = deduction(session, "nanxun-msb", "late_done")
    refused = client.post(f"{path}/objections/{target.id}", data={"reason": "补充异议"})
    assert refused.status_code == 400 and "不在公示期" in refused.text
    assert {row.unit_id: (row.score, row.rank) for row in scores_of(session, frozen.id)} == before
    again = client.post(publish_url, data={"csrf": csrf})
    assert again.status_code == 400 and "已通报" in again.text


def test_a_unit_objects_from_a_phone(
    phone_page: Page, screenshot: Screenshot, session: Session, ctx: Context, frozen: Frozen, tmp_path: Path
) -> None:
    """The section fits a 390 px phone; the unit picks a photo, writes its reason and sees the objection waiting."""
    picture = tmp_path / "现场照片.png"
    picture.write_bytes(png(4))
    late = deduction(session, "wuxing-msb", "late_done")
    page = phone_page
    with serving(local("2026-03-09T10:00")) as base:
        page.goto(base + unit_path(ctx, session, "wuxing-msb"))
        card = page.locator(f'[data-deduction="{late.id}"]')
        expect(page.locator("[data-rank]")).to_have_text("职能部门（市、区县）第1名/共5个")
        expect(card).to_contain_text("逾期完成")
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 390, "the section is wider than the phone"
        card.get_by_label("异议理由（必填，1000字以内）").fill("2月6日已完成抽查，系统故障未能按时上报")
        card.locator('input[type="file"]').set_input_files(str(picture))
        screenshot(page, "objection-form")
        card.get_by_role("button", name="提出异议").tap()
        expect(page.locator(".done")).to_contain_text("异议已提交")
        expect(page.locator(f'[data-deduction="{late.id}"] [data-objection="open"]')).to_contain_text("附照片 1 张")
        screenshot(page, "objection-filed")
    assert len(objection_of(session, late.id or 0).evidence) == 1
