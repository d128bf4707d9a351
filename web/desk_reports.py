"""An assessment's documents on the desk: the printable 通报 (PDF) and its workbook (XLSX).

A district manager gets its own district's part only (flows.reports.view): its units, its district's line, its
totals. An assessment that does not exist answers 404.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from flows import reports
from flows.scores import span_of
from store.models import Assessment, User
from web.common import RowId, SessionDep, context, download, problem_page
from web.desk import UserDep

router = APIRouter(prefix="/desk")
PDF = "application/pdf"


@router.get("/assessments/{assessment_id}.pdf")
def assessment_pdf(assessment_id: RowId, session: SessionDep, user: UserDep) -> Response:
    """The 通报 to print: numbered once published, marked 预评 or 公示 before."""
    found = session.get(Assessment, assessment_id)
    if found is None:
        return _missing()
    try:
        data = reports.report_pdf(session, context(session), found, district=_district(user))
    except reports.ReportError as problem:
        return problem_page(503, "无法生成 PDF", str(problem))
    return download(data, f"{_name(found)}.pdf", media_type=PDF)


@router.get("/assessments/{assessment_id}.xlsx")
def assessment_xlsx(assessment_id: RowId, session: SessionDep, user: UserDep) -> Response:
    """The workbook: 汇总, one sheet per ranking group with every indicator, and 扣分明细."""
    found = session.get(Assessment, assessment_id)
    if found is None:
        return _missing()
    data = reports.report_xlsx(session, context(session), found, district=_district(user))
    return download(data, f"{_name(found)}.xlsx")


def _district(user: User) -> str | None:
    """None: the whole city. A district account without a district sees nothing ("" matches no unit)."""
    return None if user.role == "city" else (user.district or "")


def _name(found: Assessment) -> str:
    label = span_of(found.period).label
    version = f"（更正{found.version - 1}）" if found.corrects else ""
    state = {"draft": "-预评稿", "open": "-公示稿"}.get(found.status, "")
    return f"{label}考核通报{version}{state}"


def _missing() -> Response:
    return problem_page(404, "考核不存在", "找不到该考核，请从考核列表进入。")
