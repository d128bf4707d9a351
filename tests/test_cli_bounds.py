"""Issue 20, finding 3: moments, days and ids no store can hold are refused at the CLI's edge, in Chinese, with exit
status 2, no traceback and nothing written (``tick --at 0999-12-31`` once planned the year 999)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()
BAD_MOMENTS = ["0001-01-01", "9999-12-31T23:59", "0999-12-31", "1899-12-31T23:00", "3000-01-01T00:00"]
AT_COMMANDS = [
    ["init"],
    ["plan", "--from", "2026-02-01", "--to", "2026-02-08"],
    ["tick"],
    ["occurrences"],
    ["overdue"],
    ["status"],
    ["targets"],
    ["dispatch"],
    ["link", "1"],
    ["record", "1"],
    ["resend", "1"],
    ["approve", "1"],
    ["talk", "1", "--on", "2026-03-31", "--attendees", "甲", "--minutes", "乙"],
    ["inspect", "new", "safety-fire", "--name", "消防检查"],
    ["inspect", "finding", "1", "--unit", "wuxing-feiying", "--site", "某地", "--problem", "某问题"],
    ["inspect", "reinspect", "1", "--pass"],
    ["inspect", "show", "1"],
    ["inspect", "export", "1"],
]
BAD_DAYS = [
    ["plan", "--from", "0001-01-01", "--to", "0001-01-31"],
    ["plan", "--from", "9999-12-01", "--to", "9999-12-31"],
    ["workdays", "--from", "0001-01-01", "--to", "0001-01-31"],
    ["workdays", "--from", "9999-12-01", "--to", "9999-12-31"],
    ["preview", "market-spot-check", "--from", "0001-01-01"],
    ["preview", "market-spot-check", "--from", "9999-12-31"],
    ["preview", "clean-home-street", "--from", "9999-12-25"],
    ["occurrences", "--from", "0001-01-01"],
    ["talk", "1", "--on", "9999-12-31", "--attendees", "甲", "--minutes", "乙"],
    ["inspect", "new", "safety-fire", "--name", "消防检查", "--on", "0001-01-01"],
]
ID_COMMANDS = [
    ["link", "{id}"],
    ["record", "{id}"],
    ["resend", "{id}"],
    ["approve", "{id}"],
    ["talk", "{id}", "--on", "2026-03-31", "--attendees", "甲", "--minutes", "乙"],
    ["inspect", "show", "{id}"],
    ["inspect", "reinspect", "{id}", "--pass"],
    ["inspect", "finding", "{id}", "--unit", "wuxing-feiying", "--site", "某地", "--problem", "某问题"],
    ["inspect", "export", "{id}"],
]
BAD_IDS = [str(2**63), str(2**64 + 1), "0"]
CASES = (
    [[*command, "--at", at] for command in AT_COMMANDS for at in BAD_MOMENTS]
    + BAD_DAYS
    + [[part.format(id=bad) for part in command] for command in ID_COMMANDS for bad in BAD_IDS]
)


@pytest.mark.parametrize("args", CASES, ids=" ".join)
def test_out_of_range_input_is_refused_at_the_edge(settings_env: Path, args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert "超出允许范围" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr and not isinstance(result.exception, Exception)
    assert not (settings_env / "var" / "duties.db").exists()  # refused before the store is opened


def test_the_edges_of_the_range_are_accepted(settings_env: Path) -> None:
    for at in ("1900-01-01T00:00", "2999-12-31T23:59"):
        result = runner.invoke(app, ["overdue", "--at", at])
        assert result.exit_code == 0, result.stdout + result.stderr
    for args in (["workdays", "--from", "1900-01-01", "--to", "1900-01-31"], ["tick", "--at", "1900-01-01T00:00"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("DUTIES_LINK_VALID_DAYS", "-100", "环境变量 DUTIES_LINK_VALID_DAYS=-100 无效：须不小于 1"),
        ("DUTIES_PLAN_HORIZON_DAYS", "abc", "环境变量 DUTIES_PLAN_HORIZON_DAYS=abc 无效：须为整数"),
        ("DUTIES_SEND_WINDOWS", "maybe", "须为 true 或 false"),
        ("DUTIES_TZ", "Mars/Base", "不是已知的时区名"),
        ("DUTIES_TRUSTED_PROXIES", "foo", "须为逗号分隔的 IP 地址或网段"),
    ],
)
def test_a_bad_environment_value_is_one_chinese_line(
    settings_env: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, said: str
) -> None:
    from store.settings import get_settings

    monkeypatch.setenv(variable, value)
    get_settings.cache_clear()
    command = [str(Path(sys.executable).parent / "duties"), "occurrences"]
    result = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy(), timeout=60)
    get_settings.cache_clear()
    assert result.returncode == 2 and said in result.stderr and "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1
