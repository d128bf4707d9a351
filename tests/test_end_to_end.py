"""The whole loop with real parts: the `duties` command, aiosmtpd and an HTTP receiver on 127.0.0.1, the web app
served by uvicorn, and a confirmation posted from the link in the e-mail that actually arrived."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import time_machine
import uvicorn

from calendars.loader import Program
from notify.receivers import Inbox, free_port
from tests.conftest import local
from web.app import app


def duties(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed command, as an operator would, in this test's environment."""
    command = [str(Path(sys.executable).parent / "duties"), *args]
    return subprocess.run(command, capture_output=True, text=True, env=os.environ.copy(), timeout=120, check=False)


def ok(*args: str) -> str:
    result = duties(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def web(sqlite_store: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("DUTIES_BASE_URL", base)
    from store.settings import get_settings

    get_settings.cache_clear()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = 400
    while not server.started and deadline:
        thread.join(0.025)  # wait for the server thread to bind, without sleeping blind
        deadline -= 1
    assert server.started, "uvicorn did not start"
    yield base
    server.should_exit = True
    thread.join(10)


def link_in(text: str, base: str) -> str:
    match = re.search(re.escape(base) + r"/c/[A-Za-z0-9_.\-]+", text)
    assert match, text
    return match.group(0)


def test_reminder_link_confirmation_and_escalation(web: str, fresh_inbox: Inbox, program: Program) -> None:
    assert f"已载入 {len(program.units)} 个单位、{len(program.duties)} 项任务" in ok("init", "--at", "2026-01-20T08:00")
    planned = json.loads(ok("plan", "--from", "2026-02-01", "--to", "2026-02-28", "--json", "--at", "2026-01-20T08:00"))
    assert planned["added"] >= 57  # at least the four core families (tests/test_steps.py counts those exactly)
    assert json.loads(ok("plan", "--from", "2026-02-01", "--to", "2026-02-28", "--json"))["added"] == 0

    # Monday 2 Feb, 09:30: the spot-check reminders of week 6 are due (4 days before Friday).
    report = json.loads(ok("tick", "--at", "2026-02-02T09:30", "--json"))
    assert report["failed"] == 0 and report["sent"] >= 10
    mail = next(m for m in fresh_inbox.mails if m.recipients == ["wuxing-msb@demo.huzhou.local"])
    assert "市场清扫保洁质量抽查" in mail.subject and "附件1 第6项 举措2" in mail.body
    bot = next(p for p in fresh_inbox.posts if p.path.startswith("/dingtalk/wuxing-msb/robot/send?access_token="))
    card = bot.payload["actionCard"]  # a card with a button to the item, for the clerk's phone
    assert card["singleURL"] == link_in(mail.body, web) and link_in(card["text"], web) == card["singleURL"]

    link = link_in(mail.body, web)
    with time_machine.travel(local("2026-02-03T10:00"), tick=True):
        shown = httpx.get(link)
        assert shown.status_code == 200 and "吴兴区市场监督管理局" in shown.text
        confirmed = httpx.post(link, data={"note": "已抽查飞英、月河农贸市场"})
        assert confirmed.status_code == 200 and "已确认完成" in confirmed.text
        again = httpx.post(link, data={"note": "重复提交"})
        assert again.headers["X-Duties-Outcome"] == "already"

    mine = json.loads(
        ok(
            "occurrences",
            "--unit",
            "wuxing-msb",
            "--duty",
            "market-spot-check",
            "--to",
            "2026-02-08",
            "--json",
            "--at",
            "2026-02-03T10:05",
        )
    )
    assert [(o["period"], o["status"], o["level"]) for o in mine] == [("2026-W06", "done", 0)]

    # Anji never confirms. After the grace day (Monday 9 Feb, 17:00) the tick raises it to 交办 and sends the notice.
    fresh_inbox.mails.clear()
    report = json.loads(ok("tick", "--at", "2026-02-09T17:05", "--json"))
    overdue = json.loads(ok("overdue", "--json", "--at", "2026-02-09T17:05"))
    spot_checks = [o for o in overdue if o["duty"] == "market-spot-check" and o["level"] == 1]
    assert len(spot_checks) == 4  # the four districts that did not record a check in week 6
    assert report["escalated"] >= 4
    anji = next(o for o in overdue if o["unit"] == "anji-msb" and o["period"] == "2026-W06")
    assert (anji["status"], anji["level"], anji["clause"]) == ("overdue", 1, "附件1 第6项 举措2")
    assert all(o["unit"] != "wuxing-msb" or o["period"] != "2026-W06" for o in overdue)
    notice = next(m for m in fresh_inbox.mails if m.recipients == ["anji-msb@demo.huzhou.local"])
    assert notice.subject.startswith("【交办通知】") and "附件1 第4项 举措4" in notice.body
    assert "2026年2月14日（周六）17:00" in notice.body  # five working days, counting the make-up Saturday
    to_lead = [m for m in fresh_inbox.mails if m.recipients == ["city-msb@demo.huzhou.local"]]
    (copy,) = [m for m in to_lead if "升级通知" in m.subject or "交办通知" in m.subject]  # one 抄送, not 4 notices
    assert copy.subject.startswith("【抄送】") and "安吉县市场监督管理局" in copy.body


def test_link_command_prints_a_working_link(web: str) -> None:
    ok("plan", "--from", "2026-02-01", "--to", "2026-02-08", "--at", "2026-01-20T08:00")
    first = json.loads(ok("occurrences", "--json", "--at", "2026-01-20T08:00"))[0]
    link = ok("link", str(first["id"])).strip()
    assert link.startswith(web + "/c/")
    assert httpx.get(link).status_code == 200
    missing = duties("link", "999999")
    assert missing.returncode == 1 and "没有 id 为 999999 的任务" in missing.stderr
