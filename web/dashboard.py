"""The leaders' dashboard, the desk's front page: this month against last, by district, the trend, the worst units.

Charts are SVG drawn on the server by pygal and written into the page. Why not ECharts: no ~1 MB script to fetch
over slow government networks, nothing from a CDN (pygal's tooltip script is switched off: ``js=[]``, and its CSS
is inlined), the charts show with scripts blocked and print as they are, each bar and point is a link to the items
behind it, and the server decides the Chinese text and the font stack (CJK_FONTS) Chromium draws it with. The
heatmap of units x months is an HTML table of coloured cells, each cell a link.

Where the figures come from, and why the page's time does not follow the ledger's size: every monthly figure is
read from the stored assessment snapshots (Assessment, AssessmentScore: units x months rows), past months frozen or
published, the current month (and last month until its cut-off) from the draft the tick refreshes at most once an
hour (flows.assessment.refresh_draft). The ledger itself is read only for bounded things through indexes: the
items due on each of the next 7 working days (occurrence.due_at) and the levels waiting for approval
(escalation.status). Figures are as of their snapshot's moment; the page says when that was.

Scope as everywhere (web.common.scope_filters): a district account sees its own district's units and bars, and
its district's rank (第N名/共M个区县), never another district's name or figures.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import pygal
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from pygal.style import Style
from sqlalchemy import select
from sqlmodel import Session

from flows import ladder
from flows.scores import PeriodError, Span, span_of
from store.models import Assessment, AssessmentScore
from store.queries import count_matching, day_bound
from store.settings import get_settings
from web import auth
from web.auth import Scope
from web.common import NowDep, SessionDep, problem_page, program, scope_filters
from web.desk import UserDep, desk_page

router = APIRouter()

MONTHS = 12  # the trend and the heatmap
WORST = 10
UPCOMING_WORKDAYS = 7
HEAT_ROWS = 30  # the city's heatmap without a district chosen: the units worst in the latest month
DISTRICT_ROWS = 100  # a district's heatmap
CJK_FONTS = '"Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", "Source Han Sans SC", sans-serif'
MONTH_KEYS = ("due", "on_time", "overdue", "level_2", "level_3")


class StatsError(ValueError):
    """A month or district the dashboard cannot show; the message is in Chinese, ``field`` the query parameter."""

    def __init__(self, message: str, field: str = "month") -> None:
        super().__init__(message)
        self.field = field


# ---------------------------------------------------------------- routes


@router.get("/desk/", response_class=HTMLResponse, include_in_schema=False)
def dashboard(
    request: Request,
    session: SessionDep,
    at: NowDep,
    user: UserDep,
    month: Annotated[str, Query(max_length=10)] = "",
    district: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    scope = auth.scope_of(user)
    try:
        stats = figures(session, scope, at=at, month=month or None, district=district or None)
    except StatsError as problem:
        return problem_page(400, "无法显示", str(problem))
    choices = [(d, _district_name(d)) for d in auth.districts(session)] if scope.role == "city" else []
    return desk_page(
        request,
        user,
        "dashboard.html",
        at=at,
        stats=stats,
        charts=charts(stats),
        choices=choices,
        heat_colour=heat_colour,
        change=change,
        weekday_label=weekday_label,
    )


# ---------------------------------------------------------------- the figures (the page and /api/stats)


def figures(session: Session, scope: Scope, *, at: datetime, month: str | None, district: str | None) -> dict[str, Any]:
    """Everything the dashboard shows, as JSON-ready data (interface contract: /api/stats). Raises StatsError."""
    zone = get_settings().zone
    span = _month(month or f"{at.astimezone(zone):%Y-%m}")
    view = _view(session, scope, district)
    months = _months(span)
    snaps = _snapshots(session, [m.key for m in months])
    current, previous = snaps.get(months[-1].key), snaps.get(months[-2].key)
    return {
        "month": span.key,
        "label": span.label,
        "previous_month": months[-2].key,
        "district": view,
        "district_name": _district_name(view) if view else None,
        "current": _month_figures(session, current, months[-1], view),
        "previous": _month_figures(session, previous, months[-2], view),
        "district_rank": _rank_of(current, view) if view else None,
        "bars": _bars(session, current, span, view),
        "trend": _trend(snaps, months, view),
        "heatmap": _heatmap(session, snaps, months, view),
        "worst": _worst(session, span, current, view),
        "upcoming": _upcoming(session, scope, at, view),
        "pending_approvals": _pending(session) if scope.role == "city" else None,
    }


def _month(text: str) -> Span:
    try:
        span = span_of(text)
    except PeriodError as problem:
        raise StatsError(str(problem)) from None
    if span.ends - span.starts > timedelta(days=31):
        raise StatsError(f"请指定月份（如 2026-11），而不是“{text}”")
    return span


def _view(session: Session, scope: Scope, district: str | None) -> str | None:
    """Whose figures: a district account's own district always; a city manager's chosen district, or the city."""
    if scope.role != "city":
        return scope.district or ""
    if district and district not in auth.districts(session):
        raise StatsError(f"没有名为“{district}”的区县", "district")
    return district or None


def _months(span: Span) -> list[Span]:
    """The MONTHS months ending with ``span``, oldest first."""
    found = [span]
    while len(found) < MONTHS:
        first = found[0].starts - timedelta(days=1)
        found.insert(0, span_of(f"{first:%Y-%m}"))
    return found


@dataclass(frozen=True)
class Snap:
    """What the dashboard reads of an assessment: not its ``summary``'s rankings, which hold every unit."""

    id: int
    period: str
    status: str
    computed_at: datetime
    cutoff_at: datetime
    districts: list[dict[str, Any]]
    totals: dict[str, Any]


def _snaps(session: Session, where: list[Any], *, limit: int | None = None) -> list[Snap]:
    """Assessments, newest period and version first, with only the summary's districts and totals: the database
    takes them out of the JSON (json_extract, ->), so the page never parses the rankings of thousands of units."""
    col = Assessment.__table__.c  # type: ignore[attr-defined]
    query = select(
        col.id,
        col.period,
        col.status,
        col.computed_at,
        col.cutoff_at,
        col.summary["districts"],
        col.summary["totals"],
    ).where(*where)
    rows = session.execute(query.order_by(col.period.desc(), col.version.desc()).limit(limit))
    return [Snap(row[0], row[1], row[2], row[3], row[4], row[5] or [], row[6] or {}) for row in rows]


def _snapshots(session: Session, periods: list[str]) -> dict[str, Snap]:
    """The newest version of each period's assessment: one query, one row per period and version."""
    found: dict[str, Snap] = {}
    for snap in _snaps(session, [Assessment.__table__.c.period.in_(periods)]):  # type: ignore[attr-defined]
        found.setdefault(snap.period, snap)
    return found


def _score_rows(
    session: Session, assessment_ids: list[int], *, district: str | None = None, units: list[str] | None = None
) -> list[Any]:
    col = AssessmentScore.__table__.c  # type: ignore[attr-defined]
    query = select(col.assessment_id, col.unit_id, col.district, col.score, col.rank, col.indicators).where(
        col.assessment_id.in_(assessment_ids)
    )
    if district is not None:
        query = query.where(col.district == district)
    if units is not None:
        query = query.where(col.unit_id.in_(units))
    return list(session.execute(query))


def _month_figures(session: Session, snap: Snap | None, span: Span, view: str | None) -> dict[str, Any]:
    """按期完成率, 逾期未完成, 督办/约谈, 平均得分 of a month, with the snapshot's moment and the lists behind them."""
    base: dict[str, Any] = {"period": span.key, "label": span.label, "status": None, "as_of": None}
    base |= dict.fromkeys((*MONTH_KEYS, "on_time_rate", "mean_score"), None)
    base["links"] = _month_links(span, view)
    if snap is None:
        return base
    base["status"] = snap.status
    as_of = min(snap.computed_at, snap.cutoff_at)  # a draft's moment, or the cut-off a frozen one stands at
    base["as_of"] = as_of.astimezone(get_settings().zone).isoformat()
    totals = snap.totals if view is None else _pooled(_score_rows(session, [snap.id], district=view))
    base |= {key: totals.get(key) for key in (*MONTH_KEYS, "on_time_rate", "mean_score")}
    return base


def _pooled(rows: list[Any]) -> dict[str, Any]:
    """A district's units added up as the snapshot's totals are: items pooled for the rate, scores averaged."""
    totals: dict[str, Any] = {key: int(sum(row.indicators.get(key, 0) for row in rows)) for key in MONTH_KEYS}
    assessed = [row.score for row in rows if row.indicators.get("raw") is not None]
    totals["on_time_rate"] = round(totals["on_time"] / totals["due"], 4) if totals["due"] else None
    totals["mean_score"] = round(sum(assessed) / len(assessed), 2) if assessed else None
    return totals


def _month_links(span: Span, view: str | None, unit: str | None = None) -> dict[str, str]:
    common = {"from": span.starts.isoformat(), "to": (span.ends - timedelta(days=1)).isoformat()}
    common |= {"district": view or "", "unit": unit or ""}
    return {
        "all": items_link(**common),
        "on_time": items_link(**common, status="done"),
        "overdue": items_link(**common, status="overdue"),
        "level_2": items_link(**common, level="2"),
        "level_3": items_link(**common, level="3"),
    }


def month_link(span: Span, view: str | None, unit: str | None = None) -> str:
    """The list of a month's items (of a district, of a unit): the link of every cell, bar and point."""
    found = f"/desk/items?from={span.starts.isoformat()}&to={(span.ends - timedelta(days=1)).isoformat()}"
    return found + (f"&district={quote(view)}" if view else "") + (f"&unit={quote(unit)}" if unit else "")


def items_link(**filters: str) -> str:
    """The desk's list with these filters (web.desk.list_choices); empty ones left out."""
    return "/desk/items?" + urlencode({k: v for k, v in filters.items() if v})


def _rank_of(snap: Snap | None, view: str | None) -> dict[str, int] | None:
    """第N名/共M个区县 for a district account: its own place only, never the others' names or figures."""
    districts = snap.districts if snap is not None else []
    mine = [row for row in districts if row["district"] == view]
    return {"rank": mine[0]["rank"], "of": len(districts)} if mine else None


def _bars(session: Session, snap: Snap | None, span: Span, view: str | None) -> list[dict[str, Any]]:
    """按期完成率 per district (the city), or per unit of the district."""
    if snap is None:
        return []
    if view is None:
        return [
            _bar(row["district"], _district_name(row["district"]), row, month_link(span, row["district"]))
            for row in snap.districts
        ]
    rows = sorted(_score_rows(session, [snap.id], district=view), key=lambda r: r.unit_id)
    return [
        _bar(row.unit_id, _name(row.unit_id), row.indicators, month_link(span, view, row.unit_id))
        for row in rows
        if row.indicators.get("due")
    ]


def _bar(key: str, name: str, counts: Any, link: str) -> dict[str, Any]:
    return {
        "id": key,
        "name": name,
        "due": int(counts.get("due", 0)),
        "on_time": int(counts.get("on_time", 0)),
        "on_time_rate": counts.get("on_time_rate"),
        "link": link,
    }


def _trend(snaps: dict[str, Snap], months: list[Span], view: str | None) -> dict[str, Any]:
    """Each district's 按期完成率 month by month (a district account: its own line only)."""
    series: dict[str, list[float | None]] = {}
    for index, span in enumerate(months):
        snap = snaps.get(span.key)
        for row in snap.districts if snap is not None else []:
            if view is None or row["district"] == view:
                series.setdefault(row["district"], [None] * len(months))[index] = row["on_time_rate"]
    return {
        "months": [span.key for span in months],
        "series": [
            {
                "district": key,
                "name": _district_name(key),
                "rates": rates,
                "links": [month_link(span, key) for span in months],
            }
            for key, rates in sorted(series.items())
        ],
    }


def _heatmap(session: Session, snaps: dict[str, Snap], months: list[Span], view: str | None) -> dict[str, Any]:
    """Units x months of 按期完成率: a district's units, or the city's HEAT_ROWS worst in the latest month."""
    ids = {snap.id: span for span in months if (snap := snaps.get(span.key)) is not None}
    units = _heat_units(session, snaps, months, view)
    cells: dict[str, dict[str, float | None]] = defaultdict(dict)
    for row in _score_rows(session, [i for i in ids if i], units=units) if units else []:
        cells[row.unit_id][ids[row.assessment_id].key] = row.indicators.get("on_time_rate")
    return {
        "months": [span.key for span in months],
        "rows": [
            {
                "unit": unit,
                "name": _name(unit),
                "rates": [cells[unit].get(span.key) for span in months],
                "links": [month_link(span, view, unit) for span in months],
            }
            for unit in units
        ],
    }


def _heat_units(session: Session, snaps: dict[str, Snap], months: list[Span], view: str | None) -> list[str]:
    """The heatmap's rows, worst first by the latest month's score: the city's HEAT_ROWS worst units, or a district's
    units (those with no score yet after them, by id), at most DISTRICT_ROWS."""
    latest = next((snaps[m.key] for m in reversed(months) if m.key in snaps), None)
    ranked: list[str] = []
    if latest is not None:
        col = AssessmentScore.__table__.c  # type: ignore[attr-defined]
        query = select(col.unit_id).where(col.assessment_id == latest.id, col.rank.is_not(None))
        query = query.where(col.district == view) if view is not None else query
        limit = DISTRICT_ROWS if view is not None else HEAT_ROWS
        ranked = list(session.execute(query.order_by(col.score, col.unit_id).limit(limit)).scalars())
    if view is None:
        return ranked
    known = sorted(unit_id for unit_id, spec in program().units.items() if (spec.district or unit_id) == view)
    seen = set(ranked)
    return (ranked + [unit_id for unit_id in known if unit_id not in seen])[:DISTRICT_ROWS]


def _worst(session: Session, span: Span, current: Snap | None, view: str | None) -> dict[str, Any]:
    """The WORST lowest-scoring units of the latest frozen or published month up to ``span``, else of its draft."""
    col = Assessment.__table__.c  # type: ignore[attr-defined]
    frozen = [col.status.in_(("open", "published")), col.period.like("____-__"), col.period <= span.key]
    snap = next(iter(_snaps(session, frozen, limit=1)), None) or current
    if snap is None:
        return {"period": None, "label": None, "status": None, "assessment_id": None, "link": None, "units": []}
    scores = AssessmentScore.__table__.c  # type: ignore[attr-defined]
    rows = select(AssessmentScore).where(scores.assessment_id == snap.id, scores.rank.is_not(None))
    if view is not None:
        rows = rows.where(scores.district == view)
    found = session.execute(rows.order_by(scores.score, scores.unit_id).limit(WORST)).scalars()
    month = span_of(snap.period)
    return {
        "period": snap.period,
        "label": month.label,
        "status": snap.status,
        "assessment_id": snap.id,
        "link": f"/desk/assessments/{snap.id}",
        "units": [
            {
                "unit": row.unit_id,
                "name": _name(row.unit_id),
                "district_name": _district_name(row.district) if row.district else "",
                "score": row.score,
                "rank": row.rank,
                "on_time_rate": row.indicators.get("on_time_rate"),
                "overdue": int(row.indicators.get("overdue", 0)),
                "link": month_link(month, view, row.unit_id),
                "deductions_link": f"/desk/assessments/{snap.id}/units/{quote(row.unit_id)}",
            }
            for row in found
        ],
    }


def _upcoming(session: Session, scope: Scope, at: datetime, view: str | None) -> list[dict[str, Any]]:
    """Items due on each of the next UPCOMING_WORKDAYS working days (today included when it is one): counts through
    the index on occurrence.due_at, each equal to the total of the list it links to."""
    zone = get_settings().zone
    workdays = program().workdays
    today = at.astimezone(zone).date()
    first = today if workdays.is_workday(today) else workdays.add_workdays(today, 1)
    days = [first] + [workdays.add_workdays(first, n) for n in range(1, UPCOMING_WORKDAYS)]
    filters = scope_filters(scope, district=view)
    return [
        {
            "date": day.isoformat(),
            "count": count_matching(
                session, at=at, start=day_bound(day, zone), end=day_bound(day, zone, end=True), **filters
            ),
            "link": items_link(**{"from": day.isoformat(), "to": day.isoformat(), "district": view or ""}),
        }
        for day in days
    ]


def _pending(session: Session) -> dict[str, Any]:
    """The levels waiting for the city's approval (the escalation.status index keeps this small)."""
    return {"count": len(ladder.pending(session)), "link": "/desk/approvals"}


def _name(unit_id: str | None) -> str:
    spec = program().units.get(unit_id or "")
    return spec.name if spec is not None else (unit_id or "")


def _district_name(district: str | None) -> str:
    """吴兴区 for 吴兴区城市管理委员会办公室（吴兴区城管办）: a district is named by its office, too long to chart."""
    name = _name(district)
    short = re.match(r"^\w{1,6}?[区县市旗]", name)
    return short.group(0) if short else name


# ---------------------------------------------------------------- charts


def _style() -> Style:
    parts = ("", "label_", "major_label_", "title_", "legend_", "value_", "value_label_", "tooltip_", "no_data_")
    fonts = {f"{part}font_family": CJK_FONTS for part in parts}
    sizes = {"title_font_size": 18, "label_font_size": 13, "major_label_font_size": 13, "legend_font_size": 14}
    return Style(background="transparent", plot_background="#ffffff", **fonts, **sizes)


def _chart(kind: Any, title: str, **options: Any) -> Any:
    """A pygal chart that fetches nothing: no tooltip script from its CDN, its CSS inlined, no XML declaration."""
    return kind(
        title=title,
        style=_style(),
        js=[],
        disable_xml_declaration=True,
        width=720,
        height=340,
        range=(0, 100),
        value_formatter=lambda v: "—" if v is None else f"{v:.1f}%",
        print_values=False,
        no_data_text="暂无考核数据",
        **options,
    )


def _point(rate: float | None, link: str, label: str) -> dict[str, Any] | None:
    if rate is None:
        return None
    return {"value": round(rate * 100, 1), "label": label, "xlink": {"href": link, "target": "_top"}}


def charts(stats: dict[str, Any]) -> dict[str, Markup]:
    """The bars and the trend as inline SVG (each bar and point a link)."""
    whose = "按区县" if stats["district"] is None else "按单位"
    bars = _chart(pygal.Bar, f"{stats['label']}按期完成率（{whose}）", show_legend=False, x_label_rotation=20)
    bars.x_labels = [bar["name"] for bar in stats["bars"]]
    bars.add("按期完成率", [_point(bar["on_time_rate"], bar["link"], bar["name"]) for bar in stats["bars"]])
    months = stats["trend"]["months"]
    lines = _chart(pygal.Line, "按期完成率近12个月走势", legend_at_bottom=True, allow_interruptions=True)
    lines.x_labels = [f"{int(key[5:])}月" for key in months]
    for series in stats["trend"]["series"]:
        pairs = zip(series["rates"], series["links"], strict=True)
        lines.add(series["name"], [_point(rate, link, series["name"]) for rate, link in pairs])
    return {"bars": _svg(bars), "trend": _svg(lines)}


def _svg(chart: Any) -> Markup:
    """The chart's SVG without the config script pygal writes for its tooltip script, which is not loaded: the page
    runs no script at all."""
    return Markup(re.sub(r"<script[^>]*>.*?</script>", "", chart.render(is_unicode=True), flags=re.S))


def heat_colour(rate: float | None) -> str:
    """Red at 0 to green at 100%: a cell's background, with dark text readable on all of them."""
    if rate is None:
        return "#eef2f6"
    return f"hsl({round(rate * 120)}, 70%, 80%)"


def change(current: float | None, previous: float | None) -> str:
    """↑ or ↓ (or → when equal), nothing when either month has no figure."""
    if current is None or previous is None:
        return ""
    return "↑" if current > previous else "↓" if current < previous else "→"


def weekday_label(day: str) -> str:
    moment = date.fromisoformat(day)
    return f"{moment.month}月{moment.day}日（周{'一二三四五六日'[moment.weekday()]}）"
