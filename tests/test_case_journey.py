"""One case end to end, through the pages its people use and the messages they receive at the real SMTP and HTTP
receivers: a spot check finds a market 不合格, the case reaches the market within a second, the market sends it back
(退回), the city reassigns it, the new market handles it with a photo, fails 核查, handles it again and the case is
closed (结案); the month's assessment counts it."""

from __future__ import annotations

import re
import time
from datetime import date

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session, col

from flows import scores, steps
from flows.common import Context
from flows.scores import span_of
from notify.receivers import Inbox
from store.models import Case, Occurrence, UnitRequest
from tests.conftest import local
from tests.desk_support import log_in
from tests.web_support import Clock, path_of, png

LINK = re.compile(r"/c/[A-Za-z0-9_.\-]+")


def _mails_to(inbox: Inbox, unit_id: str, heading: str) -> list[str]:
    return [m.body for m in inbox.mails if unit_id in " ".join(m.recipients) and heading in m.subject]


def _link_in(body: str) -> str:
    found = LINK.search(body)
    assert found is not None, body
    return found.group(0)


def test_a_case_from_a_spot_check_to_its_closing_and_the_assessment(
    client: TestClient, session: Session, ctx: Context, now: Clock, fresh_inbox: Inbox
) -> None:
    steps.plan(session, ctx, start=date(2026, 3, 2), end=date(2026, 3, 8), at=local("2026-03-01 08:00"))
    check = session.execute(
        select(Occurrence).where(
            col(Occurrence.duty_id) == "market-spot-check", col(Occurrence.unit_id) == "wuxing-msb"
        )
    ).scalar_one()

    # 1. The market supervision bureau's weekly check finds 飞英农贸市场 不合格 on its own confirmation page.
    now.at = local("2026-03-03 10:00")
    started = time.perf_counter()
    page = client.post(
        path_of(ctx, check, now.at),
        data={"note": "周二抽查", "form_id": "check-1", "subject": "wuxing-feiying-market", "passed": "0"}
        | {"problem": "水产区地面积水，垃圾桶满溢"},
    )
    received = _mails_to(fresh_inbox, "wuxing-feiying-market", "【案件派遣】")
    elapsed = time.perf_counter() - started
    assert page.status_code == 200 and "已生成案件" in page.text
    assert len(received) == 1 and elapsed < 1.0, elapsed  # the market knows within a second of the finding
    case = session.execute(select(Case)).scalar_one()
    assert case.source == "check" and case.category_id == "market-hygiene" and "水产区地面积水" in received[0]

    # 2. The market sends it back from its link: the stalls are 月河's. The supervising bureau hears of it, by mail
    #    and on its DingTalk group (the HTTP receiver).
    now.at = local("2026-03-03 10:20")
    market_link = _link_in(received[0])
    returned = client.post(
        f"{market_link}/requests",
        data={"kind": "return", "reason": "该摊位由月河农贸市场管理", "form_id": "r1"},
    )
    assert returned.status_code == 200 and returned.headers["X-Duties-Outcome"] == "requested"
    steps.dispatch(session, ctx, at=now.at)  # the tick sends the request's notice
    assert _mails_to(fresh_inbox, "wuxing-msb", "【待审批】")
    assert any("待审批" in str(post.payload) for post in fresh_inbox.posts)

    # 3. The city approves the 退回 and reassigns the case to 月河农贸市场, whose mail arrives at once.
    now.at = local("2026-03-03 10:40")
    csrf = log_in(client, session, "boss")
    request = session.execute(select(UnitRequest)).scalar_one()
    decided = client.post(
        f"/desk/requests/{request.id}/approve",
        data={"csrf": csrf, "answer": "同意，改派月河农贸市场", "unit": "wuxing-yuehe-market"},
        follow_redirects=False,
    )
    assert decided.status_code == 303
    (yuehe_mail,) = _mails_to(fresh_inbox, "wuxing-yuehe-market", "【案件派遣】")
    steps.dispatch(session, ctx, at=now.at)
    assert _mails_to(fresh_inbox, "wuxing-feiying-market", "【申请结果】退回已同意")

    # 4. 月河 handles it with a photo; the city's 核查 fails, and 月河 is told why and by when.
    now.at = local("2026-03-03 14:00")
    yuehe_link = _link_in(yuehe_mail)
    handled = client.post(
        yuehe_link, data={"note": "已清理积水", "form_id": "h1"}, files={"evidence": ("after.png", png(4), "image/png")}
    )
    assert handled.status_code == 200
    now.at = local("2026-03-03 15:00")
    failed = client.post(
        f"/desk/cases/{case.id}/verify",
        data={"csrf": csrf, "passed": "0", "note": "垃圾桶仍满溢"},
        follow_redirects=False,
    )
    assert failed.status_code == 303
    steps.dispatch(session, ctx, at=now.at)
    (told,) = _mails_to(fresh_inbox, "wuxing-yuehe-market", "核查不通过")
    assert "垃圾桶仍满溢" in told and "重新处置" in told

    # 5. Handled again, checked and closed.
    now.at = local("2026-03-03 16:00")
    again = client.post(
        yuehe_link, data={"note": "已清运", "form_id": "h2"}, files={"evidence": ("after2.png", png(5), "image/png")}
    )
    assert again.status_code == 200
    now.at = local("2026-03-03 16:30")
    closed = client.post(f"/desk/cases/{case.id}/verify", data={"csrf": csrf, "passed": "1"}, follow_redirects=False)
    assert closed.status_code == 303
    session.expire_all()
    case = session.get(Case, case.id)
    assert case is not None and case.closed_at == local("2026-03-03 16:30") and case.dispatches == 2
    page = client.get(f"/desk/cases/{case.id}").text
    after = page.split('<div id="after">', 1)[1]
    assert "已结案" in page and after.count("<figure data-photo=") == 2  # both handlings' photos, side by side
    assert "无拍摄时间" in after  # a PNG carries no EXIF time: marked for the verifier, not refused

    # 6. The month counts it: 月河 handled its case in time but redid it; 飞英's returned dispatch counts for no one.
    scoring = ctx.program.scoring
    assert scoring is not None
    month = span_of("2026-03")
    computed = scores.compute(session, ctx.program, scoring, month, at=local("2026-04-08 17:00"), zone=ctx.zone)
    yuehe = computed.units["wuxing-yuehe-market"]
    assert yuehe.counts["case_due"] == 1 and yuehe.counts["case_on_time"] == 1 and yuehe.rates["case_on_time_rate"] == 1
    assert any(reason == "rework" for _, reason, _ in yuehe.deductions)
    assert computed.units["wuxing-feiying-market"].counts.get("case_due", 0) == 0
