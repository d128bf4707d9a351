"""The `duties` command: clear errors for bad input, exit status 1 for bad calendars, nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from store import db
from store.models import Occurrence, Unit
from store.queries import count_rows

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_check_prints_path_line_problems_and_exits_1(settings_env: Path, calendars_dir: Path) -> None:
    duties = calendars_dir / "huzhou" / "duties.yaml"
    text = duties.read_text(encoding="utf-8")
    duties.write_text(
        text.replace('assignees: ["tag:spot-check"]', 'assignees: ["tag:nobody"]').replace(
            "    reminders: [4, 0]", "    reminders: [4, 0]\n    colour: red"
        ),
        encoding="utf-8",
    )
    code, out, _ = run("check", str(calendars_dir))
    assert code == 1
    lines = [line for line in out.splitlines() if line.startswith(str(duties))]
    assert len(lines) == 1 and ": unknown field 'duties.2.colour'" in lines[0]
    assert lines[0].split(":")[1].isdigit()


def test_init_with_a_bad_calendar_writes_nothing(settings_env: Path, calendars_dir: Path) -> None:
    units = calendars_dir / "huzhou" / "units.yaml"
    units.write_text(units.read_text(encoding="utf-8").replace("kind: street", "kind: Street!", 1), encoding="utf-8")
    code, _, err = run("init")
    assert code == 1 and "units.yaml:" in err and "未写入任何数据" in err
    assert not (settings_env / "var" / "duties.db").exists()


def test_bad_times_and_filters_are_refused_in_chinese(sqlite_store: str) -> None:
    code, _, err = run("tick", "--at", "next tuesday")
    assert code == 2 and "不是有效的日期时间" in err
    code, _, err = run("plan", "--from", "2026-03-01", "--to", "2026-02-01")
    assert code == 2 and "--to 不能早于 --from" in err
    code, _, err = run("occurrences", "--status", "finished")
    assert code == 2 and "--status 只能是" in err


def test_plan_occurrences_and_overdue_speak_json(sqlite_store: str) -> None:
    code, out, _ = run(
        "plan",
        "--from",
        "2026-02-01",
        "--to",
        "2026-02-08",
        "--at",
        "2026-01-20T08:00",
        "--json",
        "--duty",
        "market-spot-check",
        "--duty",
        "clean-home-street",
    )
    assert code == 0 and json.loads(out)["added"] == 5
    code, out, _ = run("occurrences", "--json", "--at", "2026-02-07T09:00", "--status", "overdue")
    items = json.loads(out)
    assert len(items) == 5 and {i["status"] for i in items} == {"overdue"} and items[0]["due"].endswith("+08:00")
    code, out, _ = run("overdue", "--at", "2026-02-07T09:00")
    assert code == 0 and "已逾期" in out and "共 5 条" in out
    with db.session_scope() as session:
        assert count_rows(session, Occurrence) == 5 and count_rows(session, Unit) == 75
    code, _, err = run("plan", "--from", "2026-02-01", "--to", "2026-02-08", "--duty", "no-such-duty")
    assert code == 2 and "没有这些任务：no-such-duty" in err


def test_user_add_token_and_list(sqlite_store: str) -> None:
    assert run("init")[0] == 0
    code, _, err = run("user", "add", "wx", "--role", "district", "--district", "nowhere", "--password-stdin")
    assert code == 1 and "没有名为 nowhere 的区县" in err
    result = runner.invoke(
        app,
        ["user", "add", "wx", "--role", "district", "--district", "wuxing", "--password-stdin"],
        input="longenough\n",
    )
    assert result.exit_code == 0 and "已创建账号 wx" in result.stdout
    short = runner.invoke(app, ["user", "add", "boss", "--role", "city", "--password-stdin"], input="short\n")
    assert short.exit_code == 1 and "密码至少 8 位" in short.stderr
    code, token, _ = run("user", "token", "wx")
    assert code == 0 and token.startswith("dt_")
    code, out, _ = run("user", "list", "--json")
    assert json.loads(out) == [
        {"username": "wx", "name": "wx", "role": "district", "district": "wuxing", "active": True}
    ]
    with db.session_scope() as session:
        from web import auth

        user = auth.find_user(session, "wx")
        assert user is not None and user.password_hash.startswith("$argon2")
        assert auth.authenticate(session, "wx", "longenough") is not None


def test_link_revoke_and_unit_link(sqlite_store: str) -> None:
    run("plan", "--from", "2026-02-01", "--to", "2026-02-08", "--at", "2026-01-20T08:00")
    code, first, _ = run("link", "1", "--at", "2026-02-02T09:00")
    code, second, err = run("link", "1", "--revoke", "--at", "2026-02-02T09:00")
    assert code == 0 and "已作废" in err and second == ""  # revoked items get no link until re-issued
    code, third, err = run("link", "1", "--reissue", "--at", "2026-02-02T09:00")
    assert code == 0 and "重新下发" in err and first != third and "/c/" in third
    code, unit_link, _ = run("link", "--unit", "wuxing-msb", "--at", "2026-02-02T09:00")
    assert code == 0 and "/u/" in unit_link
    code, _, err = run("link")
    assert code == 2 and "二者选一" in err


def test_status_says_what_healthz_says(sqlite_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # the discard port: nothing answers there
    run("tick", "--at", "2026-02-03T09:55")
    code, out, _ = run("status", "--json", "--at", "2026-02-03T10:00")
    body = json.loads(out)
    assert code == 1 and body["status"] == "degraded" and body["database"] == "ok"
    assert body["last_tick_age_seconds"] == 300 and body["prefect_api"].startswith("unreachable")
    code, out, _ = run("status", "--at", "2026-02-03T10:00")
    assert code == 1 and "状态：部分异常" in out and "上次心跳：300 秒前" in out
