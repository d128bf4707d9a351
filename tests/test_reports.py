"""Issue 14: the assessment's printable 通报 (PDF) and workbook (XLSX), from the CLI and the desk, scoped by district.

The ledger is the shipped calendars' November 2026: 吴兴区's units confirm every item on time, 安吉县's a day late, the
rest not at all; 吴兴区市场监管局 checks the seven markets each week with a different number of failures per market,
so the markets' ranking and its 红黑榜 are known in advance.
"""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from pypdf import PdfReader
from pypdf.generic import ByteStringObject, ContentStream, TextStringObject
from sqlalchemy import select
from sqlmodel import Session, col
from typer.testing import CliRunner

from calendars.loader import Program
from calendars.schema import DEDUCTIONS
from flows import assessment, reports, steps
from flows.cli import app as cli
from flows.runtime import make_context
from flows.steps import Context, sync_program
from store import db
from store.models import STATUS_LABELS, Assessment, CheckResult, Confirmation, Deduction, Occurrence, Unit
from store.queries import occurrences_json
from store.settings import get_settings
from tests.conftest import local
from tests.desk_support import log_in
from tests.web_support import Clock
from web import desk

FROZEN, PUBLISHED = local("2026-12-08T09:00"), local("2026-12-14T09:00")  # after the cut-off; after the 异议期
# Failed checks out of four weekly checks: the markets' order from best to worst.
FAILURES = {
    "wuxing-feiying-market": 0,
    "anji-dipu-market": 1,
    "deqing-wukang-market": 2,
    "wuxing-yuehe-market": 3,
    "changxing-zhicheng-market": 3,
    "nanxun-town-market": 4,
    "nanxun-shuanglin-market": 4,
}
needs_font = pytest.mark.skipif(
    not any(Path(path).is_file() for path in reports.FONTS),
    reason="no CJK font installed (make browser installs fonts-noto-cjk)",
)
runner = CliRunner()


def november(session: Session, ctx: Context) -> None:
    steps.plan(session, ctx, start=date(2026, 11, 1), end=date(2026, 11, 30), at=local("2026-10-20T08:00"))
    units = {unit.id: unit for unit in session.execute(select(Unit)).scalars()}
    checks = []
    for item in session.execute(select(Occurrence).order_by(col(Occurrence.id))).scalars():
        district = units[item.unit_id].district or item.unit_id
        if district == "wuxing":
            item.done_at = item.due_at - timedelta(hours=2)
        elif district == "anji":
            item.done_at = item.due_at + timedelta(days=1)
        if item.duty_id == "market-spot-check" and item.unit_id == "wuxing-msb" and item.due_at.month == 11:
            checks.append(item)
        session.add(item)
    session.flush()
    for week, check in enumerate(checks):
        report = Confirmation(occurrence_id=check.id or 0, confirmed_at=check.due_at - timedelta(hours=3))
        session.add(report)
        session.flush()
        for market, failures in FAILURES.items():
            passed = week >= failures
            at = check.due_at - timedelta(hours=3)
            problem = "" if passed else "地面积水"
            result = CheckResult(
                occurrence_id=check.id or 0,
                confirmation_id=report.id or 0,
                subject_id=market,
                passed=passed,
                problem=problem,
                at=at,
            )
            session.add(result)
    session.commit()
    assert len(checks) == 4


@pytest.fixture
def published(session: Session, ctx: Context) -> Assessment:
    november(session, ctx)
    frozen = assessment.assess(session, ctx, "2026-11", at=FROZEN)
    assert frozen.status == "open" and frozen.objection_until is not None and frozen.objection_until < PUBLISHED
    return assessment.publish(session, ctx, frozen, at=PUBLISHED, actor="test")


def pdf_text(data: bytes) -> str:
    """The document's text, read with pypdf, line breaks removed (a name wrapped at a line's end reads whole)."""
    return "".join(pdf_pages(data))


def pdf_pages(data: bytes) -> list[str]:
    """Each page's text. Not pypdf's ``extract_text``: fpdf2 embeds Noto Sans CJK (a CID-keyed CFF font) with its
    encoding CMap as a stream, which pypdf does not read (it takes the two-byte codes one byte at a time,
    py-pdf/pypdf#2295). So each shown string's two-byte codes go through the font's own ToUnicode map, as a PDF
    viewer's copy and paste does."""
    reader = PdfReader(io.BytesIO(data))
    pages = []
    for page in reader.pages:
        resources: Any = page["/Resources"]
        fonts = {name: _to_unicode(font.get_object()) for name, font in resources["/Font"].items()}
        codes: dict[int, str] = {}
        shown: list[str] = []
        for operands, operator in ContentStream(page.get_contents(), reader).operations:
            if operator == b"Tf":
                codes = fonts[operands[0]]
            elif operator in (b"Tj", b"TJ"):
                strings = operands[0] if operator == b"TJ" else [operands[0]]
                for text in strings:
                    if isinstance(text, TextStringObject | ByteStringObject):
                        raw = text.get_original_bytes() if isinstance(text, TextStringObject) else bytes(text)
                        shown += [codes.get(int.from_bytes(raw[i : i + 2]), "") for i in range(0, len(raw), 2)]
        pages.append("".join(shown).replace("\n", ""))
    return pages


def _to_unicode(font: Any) -> dict[int, str]:
    stream = font["/ToUnicode"].get_object().get_data().decode("latin-1")
    pairs = re.findall(r"<([0-9A-F]{4})> <([0-9A-F]+)>", stream)
    return {int(code, 16): bytes.fromhex(text).decode("utf-16-be") for code, text in pairs}


def group(snapshot: Assessment, group_id: str) -> dict[str, Any]:
    return next(entry for entry in snapshot.summary["groups"] if entry["id"] == group_id)


def other_districts_names(ctx: Context, district: str) -> list[str]:
    return [
        spec.name
        for unit_id, spec in ctx.program.units.items()
        if (spec.district or (unit_id if spec.kind == "district_office" else None)) not in (None, district)
    ]


@needs_font
def test_the_pdf_is_the_numbered_notice_with_the_ranking_and_the_boards(
    session: Session, ctx: Context, published: Assessment
) -> None:
    text = pdf_text(reports.report_pdf(session, ctx, published))
    assert published.document == "湖城管考〔2026〕1号" and published.document in text
    assert "湖州市城市管理委员会办公室" in text and "关于2026年11月精细化管理考核情况的通报" in text
    markets = group(published, "markets")
    names = [line["name"] for line in markets["ranking"]]
    assert names[0] == "飞英农贸市场" and set(names[-2:]) == {"南浔农贸市场", "双林农贸市场"}
    positions = [text.index(name, text.index("农贸市场名次")) for name in names]
    assert positions == sorted(positions)  # the table lists them in rank order
    board = markets["board"]
    red = [line["name"] for line in board["red"]]
    black = [line["name"] for line in board["black"]]
    assert red == ["飞英农贸市场", "递铺农贸市场", "武康农贸市场"] and {"南浔农贸市场", "双林农贸市场"} <= set(black)
    assert "红榜：" + "、".join(red) in text and "黑榜：" + "、".join(black) in text
    assert "湖城管委〔2022〕2号 附件1 第6项 举措3" in text and "湖城管委〔2022〕2号 四3" in text
    assert "2026年12月14日" in text and "公示稿" not in text


@needs_font
def test_a_table_that_runs_onto_the_next_page_repeats_its_header(
    session: Session, ctx: Context, published: Assessment
) -> None:
    towns = group(published, "towns")
    towns["ranking"] = [towns["ranking"][0] | {"name": f"测试街道{n}号", "rank": n} for n in range(1, 121)]
    pages = pdf_pages(reports.report_pdf(session, ctx, published))  # the summary as read, not stored
    holding = [page for page in pages if "测试街道" in page]
    assert len(holding) >= 3
    assert all("名次单位得分等次按期完成率" in page for page in holding)
    positions = ["".join(pages).index(f"测试街道{n}号") for n in (1, 60, 120)]
    assert positions == sorted(positions)


@needs_font
def test_an_unpublished_snapshot_says_so_and_a_correction_is_titled_so(
    session: Session, ctx: Context, published: Assessment
) -> None:
    later = assessment.correct(session, ctx, "2026-11", reason="核减一项误扣", at=local("2026-12-20T09:00"), actor="t")
    text = pdf_text(reports.report_pdf(session, ctx, later))
    assert "关于2026年11月精细化管理考核情况的更正通报" in text and "湖城管考〔2026〕2号" in text
    assert "核减一项误扣" in text
    draft = Assessment(**published.model_dump(exclude={"id", "document", "status"}), status="open")
    draft.period, draft.version = "2026-11", 9
    session.add(draft)
    session.flush()
    open_text = pdf_text(reports.report_pdf(session, ctx, draft))
    assert "公示稿" in open_text and "未编号" in open_text and "湖城管考〔2026〕" not in open_text


def test_the_workbook_has_a_sheet_per_group_and_every_deduction(
    session: Session, ctx: Context, published: Assessment
) -> None:
    book = load_workbook(io.BytesIO(reports.report_xlsx(session, ctx, published)))
    titles = [entry["title"] for entry in published.summary["groups"]]
    assert book.sheetnames == ["汇总", *titles, "扣分明细"] and "农贸市场" in titles
    markets = list(book["农贸市场"].iter_rows(min_row=3, values_only=True))
    header = next(book["农贸市场"].iter_rows(min_row=2, max_row=2, values_only=True))
    assert header[:6] == ("名次", "单位", "单位编号", "得分", "等次", "扣分") and "抽查合格率" in header
    assert "按期完成率" in header and "被督办" in header and "平均收到用时（小时）" in header
    expected = [(line["rank"], line["name"], line["score"]) for line in group(published, "markets")["ranking"]]
    assert [(row[0], row[1], row[3]) for row in markets] == expected
    pass_rate = book["农贸市场"].cell(row=3, column=header.index("抽查合格率") + 1)
    assert (pass_rate.value, pass_rate.number_format) == (1.0, "0.0%")  # 飞英: every check passed
    stored = session.execute(select(Deduction).where(col(Deduction.assessment_id) == published.id)).scalars().all()
    rows = list(book["扣分明细"].iter_rows(min_row=3, values_only=True))
    assert len(rows) == len(stored) > 0
    assert sorted((r[1], r[2], r[5], r[6]) for r in rows) == sorted(
        (d.unit_id, d.occurrence_id, DEDUCTIONS[d.reason], d.points) for d in stored
    )
    failed = [r for r in rows if r[1] == "nanxun-town-market"]
    assert len(failed) == 4 and {r[5] for r in failed} == {"抽查不合格"} and {r[8] for r in failed} == {"否"}
    assert all(r[3] and r[4].startswith("2026-11-") for r in failed)  # the checking item's title and due date


def test_a_unit_name_that_looks_like_a_formula_stays_text(session: Session, ctx: Context) -> None:
    feiying = ctx.program.units["wuxing-feiying-market"]
    ctx.program.units["wuxing-feiying-market"] = feiying.model_copy(update={"name": '=HYPERLINK("http://x","飞英")'})
    november(session, ctx)
    snapshot = assessment.assess(session, ctx, "2026-11", at=FROZEN)
    book = load_workbook(io.BytesIO(reports.report_xlsx(session, ctx, snapshot)))
    cells = [cell for sheet in book.worksheets for row in sheet.iter_rows() for cell in row if cell.value is not None]
    assert all(cell.data_type != "f" for cell in cells)
    assert '\'=HYPERLINK("http://x","飞英")' in {cell.value for cell in cells}


def test_a_district_manager_downloads_only_its_own_district(
    session: Session, ctx: Context, published: Assessment, client: TestClient, now: Clock
) -> None:
    now.at = PUBLISHED
    log_in(client, session, "wuxing", district="wuxing")
    workbook = client.get(f"/desk/assessments/{published.id}.xlsx")
    assert workbook.status_code == 200 and "attachment" in workbook.headers["content-disposition"]
    book = load_workbook(io.BytesIO(workbook.content))
    cells = {str(cell) for sheet in book.worksheets for row in sheet.iter_rows(values_only=True) for cell in row}
    text = "\n".join(cells)
    assert "飞英农贸市场" in text and "月河农贸市场" in text and "吴兴区城市管理委员会办公室（吴兴区城管办）" in text
    leaked = [name for name in other_districts_names(ctx, "wuxing") if name in text]
    assert leaked == []
    details = list(book["扣分明细"].iter_rows(min_row=3, values_only=True))
    wuxing = {unit_id for unit_id, spec in ctx.program.units.items() if spec.district == "wuxing"}
    assert details and {row[1] for row in details} <= wuxing
    if any(Path(path).is_file() for path in reports.FONTS):
        document = client.get(f"/desk/assessments/{published.id}.pdf")
        assert document.status_code == 200 and document.headers["content-type"] == "application/pdf"
        pdf = pdf_text(document.content)
        assert "飞英农贸市场" in pdf and "在全市5个区县中排名第1" in pdf  # 吴兴区: every item on time
        assert [name for name in other_districts_names(ctx, "wuxing") if name in pdf] == []
    assert client.get("/desk/assessments/999.xlsx").status_code == 404


def test_the_city_sees_every_district_and_a_stranger_is_sent_to_log_in(
    session: Session, ctx: Context, published: Assessment, client: TestClient, now: Clock
) -> None:
    now.at = PUBLISHED
    anonymous = client.get(f"/desk/assessments/{published.id}.xlsx", follow_redirects=False)
    assert anonymous.status_code == 303 and "/desk/login" in anonymous.headers["location"]
    log_in(client, session, "boss")
    book = load_workbook(io.BytesIO(client.get(f"/desk/assessments/{published.id}.xlsx").content))
    text = "\n".join(str(c) for row in book["汇总"].iter_rows(values_only=True) for c in row)
    assert all(d["name"] in text for d in published.summary["districts"]) and len(published.summary["districts"]) == 5


def test_the_cli_writes_both_files_and_asks_for_an_assessment_first(
    session: Session, ctx: Context, tmp_path: Path
) -> None:
    november(session, ctx)
    missing = runner.invoke(cli, ["report", "--month", "2026-11", "--xlsx", str(tmp_path / "a.xlsx")])
    assert missing.exit_code == 1 and "请先运行 duties assess --month 2026-11" in missing.stderr
    assessment.assess(session, ctx, "2026-11", at=FROZEN)
    target = tmp_path / "out" / "通报.xlsx"
    args = ["report", "--month", "2026-11", "--xlsx", str(target)]
    if any(Path(path).is_file() for path in reports.FONTS):
        args += ["--pdf", str(tmp_path / "out" / "通报.pdf")]
    written = runner.invoke(cli, args)
    assert written.exit_code == 0, written.stderr
    assert str(target.resolve()) in written.stdout and "公示中" in written.stderr
    assert load_workbook(target).sheetnames[0] == "汇总"
    assert [p.name for p in target.parent.iterdir() if p.name.startswith(".")] == []  # no temporary file left
    if "--pdf" in args:
        assert "公示稿" in pdf_text((tmp_path / "out" / "通报.pdf").read_bytes())
    blocked = runner.invoke(cli, ["report", "--month", "2026-11", "--xlsx", str(target / "inside-a-file.xlsx")])
    assert blocked.exit_code == 1 and "无法写入" in blocked.stderr and "Traceback" not in blocked.stderr


def test_without_a_font_the_refusal_names_the_setting_and_the_package(
    session: Session,
    ctx: Context,
    published: Assessment,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    client: TestClient,
    now: Clock,
) -> None:
    missing = str(tmp_path / "no-such-font.ttc")
    elsewhere = dataclasses.replace(ctx, settings=ctx.settings.model_copy(update={"pdf_font": missing}))
    with pytest.raises(reports.ReportError, match="DUTIES_PDF_FONT") as refused:
        reports.report_pdf(session, elsewhere, published)
    assert missing in str(refused.value) and "fonts-noto-cjk" in str(refused.value)
    monkeypatch.setattr(reports, "FONTS", (str(tmp_path / "none.ttc"),))  # a machine with no CJK font at all
    with pytest.raises(reports.ReportError, match="找不到中文字体") as none:
        reports.report_pdf(session, ctx, published)
    assert "DUTIES_PDF_FONT" in str(none.value) and "apt-get install fonts-noto-cjk" in str(none.value)
    monkeypatch.setenv("DUTIES_PDF_FONT", missing)
    get_settings.cache_clear()
    answer = runner.invoke(cli, ["report", "--month", "2026-11", "--pdf", str(tmp_path / "x.pdf")])
    assert answer.exit_code == 1 and "DUTIES_PDF_FONT" in answer.stderr and "fonts-noto-cjk" in answer.stderr
    assert "Traceback" not in answer.stdout + answer.stderr and not (tmp_path / "x.pdf").exists()
    now.at = PUBLISHED
    log_in(client, session, "boss")
    page = client.get(f"/desk/assessments/{published.id}.pdf")
    assert page.status_code == 503 and "DUTIES_PDF_FONT" in page.text and "无法生成 PDF" in page.text


@pytest.fixture
def any_ledger(store: str, program: Program) -> Iterator[tuple[Session, Context]]:
    """February 2026 planned on SQLite and on PostgreSQL, with items done on time, late, parked and waived."""
    with db.session_scope() as opened:
        sync_program(opened, program, at=local("2026-01-01T00:00"))
        ctx = make_context(opened, program)
        steps.plan(opened, ctx, start=date(2026, 2, 1), end=date(2026, 2, 28), at=local("2026-01-20T08:00"))
        for n, item in enumerate(opened.execute(select(Occurrence).order_by(col(Occurrence.id))).scalars()):
            if n % 5 == 0:
                item.done_at = item.due_at - timedelta(hours=1)
            elif n % 5 == 1:
                item.done_at = item.due_at + timedelta(days=2)
            elif n % 11 == 2:
                item.parked_at = item.due_at
            elif n % 13 == 3:
                item.waived_at = item.due_at - timedelta(days=1)
            opened.add(item)
        opened.commit()
        yield opened, ctx


def test_the_streamed_export_is_the_desk_list_row_for_row(
    any_ledger: tuple[Session, Context], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The full export reads the store a few rows at a time (here 7, so every list crosses many chunks, through a
    server-side cursor on PostgreSQL) and gives exactly the list's rows, order and derived status."""
    session, ctx = any_ledger
    monkeypatch.setattr(desk, "EXPORT_CHUNK", 7)
    at = local("2026-02-20T09:00")
    cases: list[dict[str, Any]] = [{}, {"status": "overdue"}, {"district": "wuxing", "hide_unannounced": True}]
    for sort in ("", "unit", "-due", "level"):
        for filters in cases:
            listed = occurrences_json(session, at=at, zone=ctx.zone, overdue_first=True, sort=sort, **filters)
            expected = [
                (r["id"], r["unit_name"], r["due"][:16].replace("T", " "), STATUS_LABELS[r["status"]]) for r in listed
            ]
            exported = [
                (r[0], r[2], r[3], r[4]) for r in desk.export_rows(session, at=at, zone=ctx.zone, sort=sort, **filters)
            ]
            assert exported == expected and len(expected) > 7
    statuses = {row[4] for row in desk.export_rows(session, at=at, zone=ctx.zone, sort="")}
    assert {"已完成", "逾期完成", "挂账", "免除", "已逾期"} <= statuses


def test_a_sheet_that_fills_up_continues_on_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reports, "EXCEL_ROWS", 10)  # Excel's 1,048,576, made small
    buffer = io.BytesIO()
    rows = ([n, f"=第{n}项"] for n in range(1, 26))  # a generator: the writer never holds the rows
    reports.write_xlsx(buffer, [reports.Sheet("事项清单", ["编号", "任务"], rows, title="事项清单")])
    book = load_workbook(buffer)
    assert book.sheetnames == ["事项清单", "事项清单（2）", "事项清单（3）", "事项清单（4）"]
    numbers = [row[0] for sheet in book.worksheets for row in sheet.iter_rows(min_row=3, values_only=True)]
    assert numbers == list(range(1, 26)) and book["事项清单（4）"]["B3"].value == "'=第25项"
    assert [sheet.max_row for sheet in book.worksheets] == [10, 10, 10, 3]  # title and header on each
    exact = io.BytesIO()
    reports.write_xlsx(exact, [reports.Sheet("清单", ["编号"], ([n] for n in range(16)), title="清单")])
    assert load_workbook(exact).sheetnames == ["清单", "清单（2）"]  # 16 rows fill two sheets: no empty third
