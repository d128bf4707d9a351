"""An inspection campaign end to end, from the CLI and the desk: findings, 整改, a 复检 that fails, then 交办, 督办,
an approved 约谈 that is recorded, and the four lists exported as XLSX and CSV, with notices at a real SMTP server."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import select
from sqlmodel import col
from typer.testing import CliRunner

from flows.cli import app as cli
from notify.receivers import Inbox
from store import db
from store.models import AuditEvent, Escalation, Finding, Talk
from tests.conftest import local
from tests.desk_support import csrf_of, log_in
from tests.web_support import Clock
from web.app import app, clock

runner = CliRunner()


def duties(*args: str, input_text: str | None = None) -> str:
    result = runner.invoke(cli, list(args), input=input_text)
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout


def test_a_campaign_from_finding_to_recorded_talk(sqlite_store: str, fresh_inbox: Inbox, tmp_path: Path) -> None:
    duties("init", "--at", "2026-03-02T09:00")
    assert "已新建检查 1" in duties(
        "inspect", "new", "safety-fire", "--name", "2026年一季度消防设施检查", "--at", "2026-03-02T09:00"
    )
    duties(
        "inspect",
        "finding",
        "1",
        "--unit",
        "wuxing-feiying",
        "--site",
        "飞英街道某小区3号楼",
        "--problem",
        "消防通道堆放杂物",
        "--general",
        "张三",
        "--area",
        "李四",
        "--point",
        "王五",
        "--at",
        "2026-03-02T10:00",
    )
    duties(
        "inspect",
        "finding",
        "1",
        "--unit",
        "nanxun-town",
        "--site",
        "南浔古镇某商铺",
        "--problem",
        "灭火器过期",
        "--at",
        "2026-03-02T10:30",
    )
    duties("dispatch", "--at", "2026-03-02T10:31")
    notice = next(m for m in fresh_inbox.mails if m.recipients == ["wuxing-feiying@demo.huzhou.local"])
    assert notice.subject.startswith("【整改通知】整改：飞英街道某小区3号楼")
    assert "2026年3月16日（周一）17:00 前完成整改" in notice.body and "消防通道堆放杂物" in notice.body

    # The unit says it has rectified, through the link in the notice; the 复检 finds otherwise.
    link = re.search(r"http://\S+/c/\S+", notice.body)
    assert link is not None
    with TestClient(app) as client:
        app.dependency_overrides[clock] = Clock(local("2026-03-05T10:00"))
        path = link.group(0).split("127.0.0.1:8000", 1)[-1]
        confirmed = client.post(path, data={"note": "已清理通道"})
        assert confirmed.status_code == 200 and "确认已整改" not in confirmed.text
    duties("inspect", "reinspect", "2", "--pass", "--at", "2026-03-17T09:00")
    failed = duties("inspect", "reinspect", "1", "--fail", "--note", "杂物仍未清理干净", "--at", "2026-03-17T10:00")
    assert "进入督办阶梯" in failed
    duties("tick", "--at", "2026-03-17T10:01")  # the next tick queues and sends the notice
    jiaoban = [m for m in fresh_inbox.mails if m.subject.startswith("【交办通知】湖城管交〔2026〕")]
    assert jiaoban and "经检查" in jiaoban[0].body and "2026年3月24日（周二）17:00 前完成整改" in jiaoban[0].body

    duties("tick", "--at", "2026-03-24T17:30")  # the 交办 deadline passed: 督办
    duties("tick", "--at", "2026-03-27T17:30")  # the 督办 deadline passed: 约谈 waits for approval
    assert any(m.subject.startswith("【督办通知】湖城管督〔2026〕") for m in fresh_inbox.mails)
    assert "约谈" in duties("approvals")

    with db.session_scope() as session, TestClient(app) as client:
        app.dependency_overrides[clock] = Clock(local("2026-03-30T09:00"))
        csrf = log_in(client, session, "city-boss")
        queue = client.get("/desk/approvals")
        pending = session.execute(select(Escalation).where(col(Escalation.status) == "pending")).scalar_one()
        assert f'data-escalation="{pending.id}"' in queue.text
        approved = client.post(f"/desk/approvals/{pending.id}/approve", data={"csrf": csrf}, follow_redirects=False)
        assert approved.status_code == 303
        item_id = session.execute(select(col(Finding.occurrence_id)).where(col(Finding.id) == 1)).scalar_one()
        talk = {
            "csrf": csrf,
            "held_on": "2026-03-31",
            "attendees": "市城管办主任；飞英街道分管副主任",
            "minutes": "责令三日内清理完毕",
        }
        assert client.post(f"/desk/items/{item_id}/talk", data=talk, follow_redirects=False).status_code == 303
        item_page = client.get(f"/desk/items/{item_id}")
        assert "湖城管谈〔2026〕1号" in item_page.text and "责令三日内清理完毕" in item_page.text
        workbook = client.get("/desk/campaigns/1/lists.xlsx")
        listing = client.get("/desk/campaigns/1/lists/复检清单.csv")
        campaign_page = client.get("/desk/campaigns/1")
        app.dependency_overrides.clear()
        assert session.execute(select(Talk)).scalar_one().recorded_by == "user:city-boss"
        query = select(col(AuditEvent.action)).where(col(AuditEvent.occurrence_id) == item_id)
        actions = list(session.execute(query).scalars())
    assert actions[:3] == ["finding_recorded", "confirmed", "reinspected_fail"]
    assert {"escalated", "escalation_pending", "talk_recorded"} <= set(actions)
    assert campaign_page.status_code == 200 and "消防通道堆放杂物" in campaign_page.text and csrf_of(campaign_page.text)
    duties("tick", "--at", "2026-03-30T09:01")  # the approved notice goes out with the next tick
    assert any(m.subject.startswith("【约谈通知】湖城管谈〔2026〕1号") for m in fresh_inbox.mails)

    sheets = load_workbook(io.BytesIO(workbook.content))
    assert sheets.sheetnames == ["检查结果清单", "整改清单", "责任清单", "复检清单"]
    responsibility = list(sheets["责任清单"].values)
    assert responsibility[2][4:7] == ("张三", "李四", "王五")
    rectification = list(sheets["整改清单"].values)
    assert (rectification[2][5], rectification[2][8]) == ("已逾期", "约谈")
    # The second was never confirmed by its unit; the 复检 on the 17th found it fixed, a day after its deadline.
    assert (rectification[3][5], rectification[3][8]) == ("逾期完成", "—")
    rows = list(csv.reader(io.StringIO(listing.content.decode("utf-8-sig"))))
    assert rows[0][5] == "复检结果" and sorted(r[5] for r in rows[1:] if r[5] in ("通过", "不通过")) == [
        "不通过",
        "通过",
    ]

    exported = duties("inspect", "export", "1", "--out", str(tmp_path), "--at", "2026-04-01T09:00").split()
    assert sorted(Path(p).name for p in exported) == sorted(
        [
            "检查1-四清单.xlsx",
            "检查1-检查结果清单.csv",
            "检查1-整改清单.csv",
            "检查1-责任清单.csv",
            "检查1-复检清单.csv",
        ]
    )
    results = (tmp_path / "检查1-检查结果清单.csv").read_bytes()
    assert results.startswith("\ufeff".encode()) and "南浔古镇某商铺" in results.decode("utf-8-sig")


def test_bad_inspection_input_is_refused_in_chinese(sqlite_store: str) -> None:
    duties("init", "--at", "2026-03-02T09:00")
    refused = runner.invoke(cli, ["inspect", "new", "clean-home-street", "--name", "x"])
    assert refused.exit_code == 1 and "没有“检查—整改—复检”链条" in refused.stderr and "safety-fire" in refused.stderr
    duties("inspect", "new", "safety-fire", "--name", "消防检查", "--at", "2026-03-02T09:00")
    nobody = runner.invoke(cli, ["inspect", "finding", "1", "--unit", "nobody", "--site", "x", "--problem", "y"])
    assert nobody.exit_code == 1 and "没有 id 为 nobody 的单位" in nobody.stderr
    with db.session_scope() as session:
        assert session.execute(select(Finding)).first() is None
    unexplained = runner.invoke(cli, ["inspect", "reinspect", "9", "--fail"])
    assert unexplained.exit_code == 1 and "没有编号为 9 的问题" in unexplained.stderr
    missing = runner.invoke(cli, ["inspect", "export", "7"])
    assert missing.exit_code == 1 and "没有编号为 7 的检查" in missing.stderr
