"""The assessment on paper: the printable 通报 (PDF) and its workbook (XLSX), and the streaming XLSX writer that the
full ledger export shares.

Both documents are built from one ``View`` of a snapshot. A district manager's view holds only that district's units,
its own line of the district ranking and its own totals: no other district's name is in the file at all.
"""

from __future__ import annotations

import io
import itertools
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from fpdf import FPDF
from fpdf.enums import TextMode, WrapMode
from fpdf.fonts import FontFace
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from sqlalchemy import select
from sqlmodel import Session

from calendars.schema import DEDUCTIONS, INDICATORS, ScoringSpec
from flows.assessment import AssessmentError, scores_of
from flows.common import Context
from flows.inspections import inert
from flows.scores import span_of
from store.models import (
    LEVEL_NAMES,
    OBJECTION_STATES,
    STATUS_LABELS,
    Assessment,
    AssessmentScore,
    Deduction,
    Objection,
    Occurrence,
)
from templates import chinese_number, local_time, percent

# Where Debian and Ubuntu put a CJK font (fonts-noto-cjk, fonts-wqy-zenhei, fonts-arphic-uming), best first.
FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
)
FONT = "cjk"
EXCEL_ROWS = 1_048_576  # the most rows one sheet holds

# Every indicator of AssessmentScore.indicators in words, in the order the workbook shows them. A key added later and
# not named here still gets a column, under its own name.
INDICATOR_LABELS = {
    "due": "应完成",
    "on_time": "按期完成",
    "case_due": "应处置案件",
    "case_on_time": "按期处置案件",
    "late_done": STATUS_LABELS["late_done"],
    "overdue": DEDUCTIONS["overdue"],
    "parked": STATUS_LABELS["parked"],
    "extended": DEDUCTIONS["extended"],
    "rework": "返工",
    "level_1": f"被{LEVEL_NAMES[1]}",
    "level_2": f"被{LEVEL_NAMES[2]}",
    "level_3": f"被{LEVEL_NAMES[3]}",
    "quota_required": "应抽查次数",
    "quota_done": "已抽查次数",
    "targets": "年度目标数",
    "target_progress": "目标进度合计",
    "escalations": "收到升级通知",
    "acknowledged": "确认收到",
    "checked": "被抽查次数",
    "check_failed": DEDUCTIONS["check_failed"],
    **INDICATORS,
    "raw": "扣分前得分",
    "response_hours": "平均收到用时（小时）",
}
RATES = set(INDICATORS)


class ReportError(AssessmentError):
    """A report that cannot be made (no CJK font), said in Chinese."""


# ---------------------------------------------------------------- what both documents show


@dataclass
class View:
    assessment: Assessment
    office: str
    office_short: str
    title: str
    document: str
    state: str  # "" when published; 预评 or 公示 otherwise, printed across every page
    district: str | None
    district_name: str
    totals: dict[str, Any]
    districts: list[dict[str, Any]]
    district_count: int  # in the whole city: a district's own line says where it stands among them
    groups: list[dict[str, Any]]
    families: list[dict[str, Any]]
    scores: list[AssessmentScore]
    basis: list[str]
    dated: str
    units: dict[str, str] = field(default_factory=dict)


def view(session: Session, ctx: Context, assessment: Assessment, *, district: str | None = None) -> View:
    """The snapshot as the documents show it; ``district`` narrows it to one district ("" to nothing)."""
    span, summary = span_of(assessment.period), assessment.summary
    scores = [row for row in scores_of(session, assessment.id or 0) if district is None or row.district == district]
    mine = {row.unit_id for row in scores}
    programme = ctx.program.programme
    names = {unit_id: spec.name for unit_id, spec in ctx.program.units.items()}
    correction = "更正" if assessment.corrects else ""
    return View(
        assessment=assessment,
        office=programme.office if programme else "",
        office_short=programme.office_short if programme else "管理部门",
        title=f"关于{span.label}精细化管理考核情况的{correction}通报",
        document=_document_line(ctx, assessment),
        state={"draft": "预评", "open": "公示"}.get(assessment.status, ""),
        district=district,
        district_name=names.get(district or "", district or ""),
        totals=summary.get("totals", {}) if district is None else _totals(scores),
        districts=[d for d in summary.get("districts", []) if district is None or d["district"] == district],
        district_count=len(summary.get("districts", [])),
        groups=[g for g in (_scoped_group(group, mine, district) for group in summary.get("groups", [])) if g],
        families=summary.get("families", []) if district is None else [],
        scores=scores,
        basis=_basis(ctx, assessment),
        dated=_date(ctx, assessment.published_at or assessment.computed_at),
        units=names,
    )


def _document_line(ctx: Context, assessment: Assessment) -> str:
    if assessment.status == "published":
        return assessment.document
    if assessment.status == "open" and assessment.objection_until is not None:
        return f"公示稿（异议期至{local_time(assessment.objection_until, ctx.zone)}），未编号"
    return f"预评稿（{local_time(assessment.cutoff_at, ctx.zone)}冻结前的数据，仅供参考），未编号"


def _scoped_group(group: dict[str, Any], mine: set[str], district: str | None) -> dict[str, Any] | None:
    if district is None:
        return group
    ranking = [line for line in group["ranking"] if line["unit"] in mine]
    if not ranking:
        return None
    board = group["board"]
    if board is not None:
        board = board | {kind: [line for line in board[kind] if line["unit"] in mine] for kind in ("red", "black")}
    return group | {"ranking": ranking, "board": board}


def _totals(scores: list[AssessmentScore]) -> dict[str, Any]:
    """A district's own totals, the way flows.assessment sums the city's."""
    keys = ("due", "on_time", "late_done", "overdue", "parked", "extended", "rework", "level_1", "level_2", "level_3")
    totals: dict[str, Any] = {key: int(sum(row.indicators.get(key, 0) for row in scores)) for key in keys}
    assessed = [row.score for row in scores if row.indicators.get("raw") is not None]
    totals["on_time_rate"] = round(totals["on_time"] / totals["due"], 4) if totals["due"] else None
    totals["units"] = len(assessed)
    totals["mean_score"] = round(sum(assessed) / len(assessed), 2) if assessed else None
    return totals


def _basis(ctx: Context, assessment: Assessment) -> list[str]:
    """The scoring rules the numbers came from, as frozen with the snapshot, each with its clause cited."""
    scoring = ScoringSpec.model_validate(assessment.scoring)
    programme = ctx.program.programme
    cite = programme.cite if programme else (lambda clause: clause)
    lines = [f"依据{cite(scoring.clause)}：“{scoring.quote}”。"]
    weights = "、".join(f"{INDICATORS[key]}{_points(value)}分" for key, value in scoring.weights.items() if value)
    lines.append(
        f"评分办法：基础分{_points(scoring.base)}分，按比例扣分（{weights}；单位当月无该类事项的不扣）；"
        + "逐项扣分："
        + "、".join(f"{DEDUCTIONS[key]}每项{_points(value)}分" for key, value in scoring.deductions.items() if value)
        + f"，合计最多扣{_points(scoring.max_deduction)}分。"
    )
    lines.append(
        "等次：" + "、".join(f"{grade.name}（{_points(grade.min)}分及以上）" for grade in scoring.grades) + "。"
    )
    for group in scoring.groups:
        if group.board is not None:
            board = group.board
            lines.append(
                f"{board.title}依据{cite(board.clause)}，{group.title}得分前{board.top}名列入红榜、"
                f"后{board.bottom}名列入黑榜（并列一并列入，全部同分不设榜）。"
            )
    if scoring.inferred:
        lines.append(f"说明：文件未规定具体分值，以上为推定办法（{scoring.assumption}）")
    return lines


def _points(value: float) -> str:
    return f"{value:g}"


def _date(ctx: Context, moment: datetime) -> str:
    local = moment.astimezone(ctx.zone)
    return f"{local.year}年{local.month}月{local.day}日"


# ---------------------------------------------------------------- the 通报 as PDF


def font_path(ctx: Context) -> Path:
    """DUTIES_PDF_FONT, or the first CJK font installed; a clear refusal when there is none."""
    chosen = ctx.settings.pdf_font.strip()
    if chosen:
        if not Path(chosen).is_file():
            raise ReportError(
                f"环境变量 DUTIES_PDF_FONT 指向的字体文件不存在：{chosen}。请改为已安装的中文字体文件"
                "（.ttc/.ttf/.otf），或安装 fonts-noto-cjk（apt-get install fonts-noto-cjk）后不设此变量"
            )
        return Path(chosen)
    for candidate in FONTS:
        if Path(candidate).is_file():
            return Path(candidate)
    raise ReportError(
        "找不到中文字体，无法生成 PDF 通报：请安装 fonts-noto-cjk（apt-get install fonts-noto-cjk），"
        "或用环境变量 DUTIES_PDF_FONT 指定中文字体文件（.ttc/.ttf/.otf）"
    )


@lru_cache(maxsize=8)
def _face(path: str) -> int:
    """In a font collection, the Simplified Chinese face (Noto Sans CJK SC is the third); 0 in a single font."""
    if not path.lower().endswith((".ttc", ".otc")):
        return 0
    from fontTools.ttLib import TTCollection  # fpdf2's own dependency

    with TTCollection(path, lazy=True) as collection:
        names = [str(font["name"].getDebugName(4) or "") for font in collection.fonts]
    for wanted in (" SC", " CN", "GB", "Zen Hei", "Micro Hei"):
        for index, name in enumerate(names):
            if wanted in name and "Mono" not in name:
                return index
    return 0


def report_pdf(session: Session, ctx: Context, assessment: Assessment, *, district: str | None = None) -> bytes:
    """The 通报 laid out as the office prints it: red header, number, title, sections, signature and date."""
    found = view(session, ctx, assessment, district=district)
    regular = font_path(ctx)
    pdf = Notice(found.state, found.document)
    try:
        # One face: loading and subsetting a CJK face takes seconds, so emphasis is drawn (outlined), not a 2nd face.
        pdf.add_font(FONT, "", str(regular), collection_font_number=_face(str(regular)))
    except Exception as problem:  # a corrupt or non-font file named by DUTIES_PDF_FONT
        raise ReportError(f"字体文件无法使用（{regular}）：{problem}。请用 DUTIES_PDF_FONT 指定其他中文字体") from None
    pdf.add_page()
    _head(pdf, found)
    sections = _sections(found)
    for number, (heading, draw) in enumerate(sections, start=1):
        pdf.heading(f"{chinese_number(number)}、{heading}")
        draw(pdf, found)
    _signature(pdf, found)
    return bytes(pdf.output())


class Notice(FPDF):
    """fpdf2 with this document's watermark, page footer, and its paragraph, heading and table styles."""

    def __init__(self, state: str, document: str) -> None:
        super().__init__(format="A4")
        self.state, self.document = state, document
        self.set_margins(20, 18, 20)
        self.set_auto_page_break(True, margin=20)
        self.set_title(document)

    def header(self) -> None:
        if self.state:  # a draft or an open snapshot says so across every page
            self.plain(90)
            self.set_text_color(238, 238, 238)
            with self.rotation(35, x=self.w / 2, y=self.h / 2):
                self.text(self.w / 2 - 45, self.h / 2 + 12, f"{self.state}稿")
            self.set_text_color(0, 0, 0)

    def footer(self) -> None:
        self.set_y(-14)
        self.plain(9)
        self.set_text_color(110, 110, 110)
        self.cell(0, 6, f"{self.document}　第 {self.page_no()} 页 / 共 {{nb}} 页", align="C")
        self.set_text_color(0, 0, 0)

    @contextmanager
    def strong(self, size: float) -> Iterator[None]:
        """A heading's weight without a bold face: the glyphs filled and outlined, in a saved graphics state (fpdf2
        would otherwise leave the outline mode on for the text after)."""
        self.set_font(FONT, "", size)
        with self.local_context(text_mode=TextMode.FILL_STROKE, line_width=size / 60):
            yield

    def plain(self, size: float) -> None:
        self.set_font(FONT, "", size)

    def paragraph(self, text: str, *, size: float = 11, indent: bool = True) -> None:
        self.plain(size)
        prefix = "\u3000\u3000" if indent else ""
        self.multi_cell(0, size * 0.62, prefix + text, wrapmode=WrapMode.CHAR, new_x="LMARGIN", new_y="NEXT")
        self.ln(1.5)

    def heading(self, text: str) -> None:
        if self.will_page_break(30):  # never a heading alone at the foot of a page
            self.add_page()
        self.ln(2)
        with self.strong(13):
            self.cell(0, 9, text, new_x="LMARGIN", new_y="NEXT")

    def subheading(self, text: str) -> None:
        if self.will_page_break(24):
            self.add_page()
        with self.strong(11.5):
            self.cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")

    def grid(self, header: list[str], rows: list[list[str]], widths: tuple[float, ...]) -> None:
        """A table whose header row repeats on every page it runs onto."""
        self.plain(9.5)
        style = FontFace(emphasis=None, fill_color=(235, 235, 235))
        with self.table(
            col_widths=widths,
            width=sum(widths),
            headings_style=style,
            line_height=6,
            text_align="CENTER",
            wrapmode=WrapMode.CHAR,
            repeat_headings=1,
        ) as table:
            for values in [header, *rows]:
                line = table.row()
                for value in values:
                    line.cell(value)
        self.ln(3)


def _head(pdf: Any, found: View) -> None:
    pdf.set_text_color(200, 16, 16)
    pdf.set_draw_color(200, 16, 16)
    with pdf.strong(22):
        pdf.multi_cell(
            0, 12, found.office or "考核通报", align="C", wrapmode=WrapMode.CHAR, new_x="LMARGIN", new_y="NEXT"
        )
    pdf.set_text_color(0, 0, 0)
    pdf.plain(11)
    pdf.cell(0, 8, found.document, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_draw_color(200, 16, 16)
    pdf.set_line_width(0.6)
    pdf.line(pdf.l_margin, pdf.get_y() + 1, pdf.w - pdf.r_margin, pdf.get_y() + 1)
    pdf.set_draw_color(0, 0, 0)
    pdf.set_line_width(0.2)
    pdf.ln(6)
    with pdf.strong(16):
        pdf.multi_cell(0, 9, found.title, align="C", wrapmode=WrapMode.CHAR, new_x="LMARGIN", new_y="NEXT")
    if found.district is not None:
        pdf.plain(11)
        pdf.cell(0, 7, f"（{found.district_name or found.district}范围）", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.paragraph("各区县城管办、市级有关部门、各责任单位：", indent=False)
    span = span_of(found.assessment.period)
    reason = found.assessment.reason
    correction = f"现对{span.label}考核通报予以更正（更正理由：{reason}），" if found.assessment.corrects else ""
    pdf.paragraph(
        f"根据考核办法，{found.office_short}对{span.label}各责任单位常态化任务完成情况进行了考核。{correction}"
        "现将有关情况通报如下。"
    )


def _sections(found: View) -> list[tuple[str, Any]]:
    sections: list[tuple[str, Any]] = [("总体情况", _overall)]
    if found.districts:
        sections.append(("区县排名", _district_table))
    if found.groups:
        sections.append(("各类单位排名", _group_tables))
    if any(group["board"] is not None for group in found.groups):
        sections.append(("红黑榜", _boards))
    sections.append(("考核依据", _basis_text))
    return sections


def _overall(pdf: Any, found: View) -> None:
    t = found.totals
    levels = "、".join(f"被{LEVEL_NAMES[n]}{t.get(f'level_{n}', 0)}项" for n in (1, 2, 3))
    mean = t.get("mean_score")
    pdf.paragraph(
        f"参评单位{t.get('units', 0)}个，应完成任务{t.get('due', 0)}项，按期完成{t.get('on_time', 0)}项，"
        f"按期完成率{percent(t.get('on_time_rate'))}；逾期完成{t.get('late_done', 0)}项，"
        f"逾期未完成{t.get('overdue', 0)}项，延期{t.get('extended', 0)}项，挂账{t.get('parked', 0)}项，"
        f"返工{t.get('rework', 0)}项；{levels}。平均得分{mean if mean is not None else '—'}分。"
    )


def _district_table(pdf: Any, found: View) -> None:
    header = ["名次", "区县", "参评单位", "应完成", "按期完成", "按期完成率", "平均得分"]
    rows = [_district_line(d) for d in found.districts]
    if found.district is not None:
        pdf.paragraph(
            f"{found.districts[0]['name']}在全市{found.district_count}个区县中排名第{found.districts[0]['rank']}。"
        )
    pdf.grid(header, rows, (10, 80, 14, 14, 16, 19, 17))


def _district_line(d: dict[str, Any]) -> list[str]:
    counts = [str(d[key]) for key in ("units", "due", "on_time")]
    return [str(d["rank"]), d["name"], *counts, percent(d["on_time_rate"]), f"{d['score']:.2f}"]


def _group_tables(pdf: Any, found: View) -> None:
    for number, group in enumerate(found.groups, start=1):
        pdf.subheading(f"（{chinese_number(number)}）{group['title']}")
        rows = [
            [str(line["rank"]), line["name"], f"{line['score']:.2f}", line["grade"], percent(line["on_time_rate"])]
            for line in group["ranking"]
        ]
        pdf.grid(["名次", "单位", "得分", "等次", "按期完成率"], rows, (14, 86, 22, 20, 28))


def _boards(pdf: Any, found: View) -> None:
    for group in found.groups:
        board = group["board"]
        if board is None:
            continue
        pdf.subheading(f"{board['title']}（{group['title']}）")
        for kind, label in (("red", "红榜"), ("black", "黑榜")):
            lines = board[kind]
            if not lines:
                pdf.paragraph(f"{label}：无（得分相同，不设{label}）。")
                continue
            pdf.paragraph(f"{label}：" + "、".join(line["name"] for line in lines) + "。")
            rows = [[str(line["rank"]), line["name"], f"{line['score']:.2f}", line["grade"]] for line in lines]
            pdf.grid(["名次", "单位", "得分", "等次"], rows, (16, 106, 24, 24))


def _basis_text(pdf: Any, found: View) -> None:
    for line in found.basis:
        pdf.paragraph(line)
    digest = found.assessment.digest[:16]
    frozen = local_time(found.assessment.cutoff_at, found.assessment.cutoff_at.tzinfo)
    pdf.paragraph(f"数据截至{frozen}（输入摘要 {digest}），扣分明细见考核工作簿。")


def _signature(pdf: Any, found: View) -> None:
    pdf.ln(8)
    pdf.plain(11)
    pdf.cell(0, 7, found.office, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 7, found.dated, align="R", new_x="LMARGIN", new_y="NEXT")


# ---------------------------------------------------------------- the workbook


@dataclass
class Sheet:
    """One sheet of a streamed workbook: a title line, a bold header, then rows that may be a generator."""

    name: str
    header: list[str]
    rows: Iterable[list[Any]]
    title: str = ""
    widths: Sequence[float] = ()
    formats: dict[int, str] = field(default_factory=dict)  # column index → number format, e.g. 0.0%


def write_xlsx(target: IO[bytes], sheets: Iterable[Sheet]) -> None:
    """A workbook in openpyxl's write-only mode: rows go to disk as they come, so a million cost what a thousand do.
    Every text cell is inert (no formula); a sheet that fills up continues on the next, named 名称（2）."""
    book = Workbook(write_only=True)
    for sheet in sheets:
        rows: Iterator[list[Any]] = iter(sheet.rows)
        part = 1
        while _fill_sheet(book, sheet.name if part == 1 else f"{sheet.name}（{part}）", sheet, rows):
            following = next(rows, None)
            if following is None:
                break  # the rows filled the sheet exactly: no empty sheet after it
            rows, part = itertools.chain([following], rows), part + 1
    book.save(target)


def _fill_sheet(book: Workbook, name: str, sheet: Sheet, rows: Iterator[list[Any]]) -> bool:
    """One sheet's worth of ``rows``; True when rows are left over for another."""
    out = book.create_sheet(name[:31])
    for index, width in enumerate(sheet.widths):
        out.column_dimensions[_letter(index)].width = width
    used = 0
    if sheet.title:
        out.append([_cell(out, sheet.title, bold=True, size=13)])
        used += 1
    out.freeze_panes = f"A{used + 2}"
    out.append([_cell(out, text, bold=True) for text in sheet.header])
    used += 1
    formatted = bool(sheet.formats)
    for row in rows:
        if formatted:
            out.append([_cell(out, value, number_format=sheet.formats.get(i)) for i, value in enumerate(row)])
        else:
            out.append([inert(value) for value in row])
        used += 1
        if used >= EXCEL_ROWS:
            return True
    return False


def _cell(
    sheet: Any, value: Any, *, bold: bool = False, size: float | None = None, number_format: str | None = None
) -> Any:
    cell = WriteOnlyCell(sheet, value=inert(value))
    if bold:
        cell.font = Font(bold=True, size=size)
    if number_format and isinstance(value, int | float):
        cell.number_format = number_format
    return cell


def _letter(index: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(index + 1)


def report_xlsx(session: Session, ctx: Context, assessment: Assessment, *, district: str | None = None) -> bytes:
    """汇总 (totals, districts), one sheet per ranking group with every indicator, and 扣分明细."""
    found = view(session, ctx, assessment, district=district)
    buffer = io.BytesIO()
    write_xlsx(buffer, _report_sheets(session, ctx, found))
    return buffer.getvalue()


def _report_sheets(session: Session, ctx: Context, found: View) -> Iterator[Sheet]:
    heading = f"{found.title}（{found.document}）"
    yield Sheet("汇总", ["项目", "数值"], _summary_rows(found), title=heading, widths=[28, 60])
    by_unit = {row.unit_id: row for row in found.scores}
    keys = list(INDICATOR_LABELS) + sorted({k for row in found.scores for k in row.indicators} - set(INDICATOR_LABELS))
    header = ["名次", "单位", "单位编号", "得分", "等次", "扣分"] + [INDICATOR_LABELS.get(key, key) for key in keys]
    formats = {6 + i: "0.0%" for i, key in enumerate(keys) if key in RATES}
    for group in found.groups:
        rows = [_group_row(line, by_unit.get(line["unit"]), keys) for line in group["ranking"]]
        widths = [6, 36, 24, 8, 8, 8] + [12] * len(keys)
        yield Sheet(
            group["title"][:31], header, rows, title=f"{heading} · {group['title']}", widths=widths, formats=formats
        )
    yield Sheet(
        "扣分明细",
        ["单位", "单位编号", "事项编号", "事项", "截止时间", "扣分原因", "扣分", "异议", "因异议撤销"],
        _deduction_rows(session, ctx, found),
        title=f"{heading} · 扣分明细",
        widths=[36, 24, 10, 48, 18, 24, 8, 10, 12],
    )


def _summary_rows(found: View) -> list[list[Any]]:
    a, t = found.assessment, found.totals
    rows: list[list[Any]] = [
        ["考核期", span_of(a.period).label],
        ["文号", found.document],
        ["状态", {"draft": "预评", "open": "公示中", "published": "已通报"}.get(a.status, a.status)],
        ["范围", found.district_name or found.district or "全市"],
        ["参评单位", t.get("units", 0)],
        ["应完成", t.get("due", 0)],
        ["按期完成", t.get("on_time", 0)],
        ["按期完成率", percent(t.get("on_time_rate"))],
    ]
    rows += [[INDICATOR_LABELS[key], t.get(key, 0)] for key in ("late_done", "overdue", "extended", "parked", "rework")]
    rows += [[INDICATOR_LABELS[f"level_{n}"], t.get(f"level_{n}", 0)] for n in (1, 2, 3)]
    rows += [["平均得分", t.get("mean_score")], ["输入摘要", a.digest], [], ["区县排名"]]
    rows += [["名次·区县", "参评单位 / 应完成 / 按期完成 / 按期完成率 / 平均得分"]]
    if found.district is not None:
        rows.append(["全市区县数", found.district_count])
    for d in found.districts:
        line = f"{d['units']} / {d['due']} / {d['on_time']} / {percent(d['on_time_rate'])} / {d['score']:.2f}"
        rows.append([f"{d['rank']}. {d['name']}", line])
    for family in found.families:
        rows.append([f"任务类别：{family['family']}", f"应完成 {family['due']}，按期完成率 {percent(family['rate'])}"])
    return rows


def _group_row(line: dict[str, Any], row: AssessmentScore | None, keys: list[str]) -> list[Any]:
    indicators = row.indicators if row is not None else {}
    deducted = row.deducted if row is not None else None
    return [line["rank"], line["name"], line["unit"], line["score"], line["grade"], deducted] + [
        indicators.get(key) for key in keys
    ]


def _deduction_rows(session: Session, ctx: Context, found: View) -> Iterator[list[Any]]:
    """Every deduction behind the scores in the view, withdrawn ones marked; streamed from the store."""
    d, o = Deduction.__table__.c, Occurrence.__table__.c  # type: ignore[attr-defined]
    j = Objection.__table__.c  # type: ignore[attr-defined]
    query = (
        select(d.unit_id, d.occurrence_id, o.title, o.due_at, d.reason, d.points, j.status, d.withdrawn)
        .select_from(Deduction.__table__)  # type: ignore[attr-defined]
        .outerjoin(Occurrence.__table__, o.id == d.occurrence_id)  # type: ignore[attr-defined]
        .outerjoin(Objection.__table__, j.deduction_id == d.id)  # type: ignore[attr-defined]
        .where(d.assessment_id == found.assessment.id)
        .order_by(d.unit_id, d.id)
    )
    if found.district is not None:
        s = AssessmentScore.__table__.c  # type: ignore[attr-defined]
        mine = select(s.unit_id).where(s.assessment_id == found.assessment.id, s.district == found.district)
        query = query.where(d.unit_id.in_(mine))
    for unit_id, item, title, due_at, reason, points, objection, withdrawn in session.execute(
        query.execution_options(yield_per=2000)
    ):
        due = f"{due_at.astimezone(ctx.zone):%Y-%m-%d %H:%M}" if due_at is not None else ""
        yield [
            found.units.get(unit_id, unit_id),
            unit_id,
            item,
            title or "",
            due,
            DEDUCTIONS.get(reason, reason),
            points,
            OBJECTION_STATES.get(objection or "", ""),
            "是" if withdrawn else "否",
        ]


# ---------------------------------------------------------------- files


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path`` and rename it over: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
