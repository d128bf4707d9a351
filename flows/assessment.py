"""考核 snapshots: frozen at the cut-off, open to 异议 for a few working days, then published as a numbered 通报.

``assess`` computes a period (flows/scores.py) and stores it: as a ``draft`` before the cut-off, frozen (``open``)
from the cut-off on, when every scored unit is told its result and may object to a deduction until
``objection_until``. ``publish`` numbers the 通报, sends it to every unit and to the leaders, and from then on the
numbers never change: a later correction is a new, numbered snapshot (``correct``). The tick freezes and publishes
on time (``assessment_step``); a manager may do both from the CLI.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlmodel import Session

from calendars.schema import DEDUCTIONS, ScoringSpec, SendWindowSpec
from flows.common import SYSTEM, Context, workday_moment
from flows.ladder import document_name, next_document
from flows.notices import recipients_by_unit, title_and_body, unit_link
from flows.scores import (
    OTHERS,
    OTHERS_TITLE,
    Computed,
    Span,
    compute,
    cutoff_of,
    final_score,
    month_before,
    month_of,
    ratio,
    span_of,
)
from notify import outbox
from store.db import lock_for_writing
from store.models import Assessment, AssessmentScore, Deduction, Delivery, Objection, Occurrence, Unit
from store.queries import audit, get_value, insert_ignoring_conflicts, put_value
from templates import local_time, render

LEADER_KINDS = ("city_office", "district_office")  # their leaders receive the whole 通报
DRAFT_EVERY = timedelta(hours=1)  # how stale the dashboard's current month may get
DRAFT_KEY = "assessment.draft_refreshed_at"
DRAFT_LOCK = 4_242_014  # beside steps.SYNC_LOCK's 4_242_002


class AssessmentError(Exception):
    """A refusal to show the user, in Chinese."""


def scoring_of(ctx: Context) -> ScoringSpec:
    if ctx.program.scoring is None:
        raise AssessmentError("日程中没有考核设置（scoring），无法考核：请在日程文件中加入 scoring 段")
    return ctx.program.scoring


def latest(session: Session, period: str) -> Assessment | None:
    """The newest version of a period's assessment."""
    col = Assessment.__table__.c  # type: ignore[attr-defined]
    query = select(Assessment).where(col.period == period).order_by(col.version.desc()).limit(1)
    return session.execute(query.execution_options(populate_existing=True)).scalar_one_or_none()


def assess(session: Session, ctx: Context, period: str, *, at: datetime, actor: str = SYSTEM) -> Assessment:
    """The period's assessment as of ``at``: a draft before the cut-off, the frozen snapshot from then on."""
    scoring, span = scoring_of(ctx), span_of(period)
    cutoff = cutoff_of(ctx.program, scoring, span, ctx.zone)
    current = latest(session, span.key)
    if current is not None and current.status == "published":
        return current  # published numbers never change: a correction is a new snapshot (``correct``)
    if current is not None and current.status == "open":
        return current  # frozen: objections are being decided on these numbers
    if at < span.bounds(ctx.zone)[0]:
        raise AssessmentError(f"{span.label}尚未开始，无从考核")
    frozen = at >= cutoff
    computed = compute(session, ctx.program, scoring, span, at=cutoff if frozen else at, zone=ctx.zone)
    assessment = current or Assessment(period=span.key, version=1)
    _fill(assessment, computed, scoring, cutoff=cutoff, at=at)
    if frozen:
        assessment.status = "open"
        assessment.objection_until = workday_moment(ctx.program, cutoff, scoring.objection_workdays)
    _store(session, ctx, assessment, computed, scoring)
    if frozen:
        audit(session, at=at, actor=actor, action="assessment_frozen", period=span.key, digest=computed.digest)
        _announce(session, ctx, assessment, stage=f"assess:{assessment.id}", template="assessment_open", at=at)
    session.commit()
    return assessment


def correct(session: Session, ctx: Context, period: str, *, reason: str, at: datetime, actor: str) -> Assessment:
    """A 更正 of a published assessment: the period computed again as of its cut-off, the deductions withdrawn by
    accepted objections kept withdrawn, published at once under a new number. The published one stays as it was."""
    scoring, span = scoring_of(ctx), span_of(period)
    published = latest(session, span.key)
    if published is None or published.status != "published":
        raise AssessmentError(f"{span.label}考核尚未通报，无需更正：请直接重新考核或处理异议")
    if not reason.strip():
        raise AssessmentError("更正须写明理由（--reason）")
    computed = compute(session, ctx.program, scoring, span, at=published.cutoff_at, zone=ctx.zone)
    withdrawn = _withdrawn(session, published.id or 0)
    for result in computed.units.values():
        result.deductions = [d for d in result.deductions if (d[0], d[1]) not in withdrawn]
    assessment = Assessment(period=span.key, version=published.version + 1, corrects=published.id, reason=reason)
    _fill(assessment, computed, scoring, cutoff=published.cutoff_at, at=at)
    assessment.status, assessment.objection_until = "open", at
    _store(session, ctx, assessment, computed, scoring)
    audit(session, at=at, actor=actor, action="assessment_corrected", period=span.key, reason=reason)
    return publish(session, ctx, assessment, at=at, actor=actor)


def publish(session: Session, ctx: Context, assessment: Assessment, *, at: datetime, actor: str) -> Assessment:
    """Number the 通报 and send it. Refused before the objection window closes, and while objections are open."""
    scoring = scoring_of(ctx)
    label = span_of(assessment.period).label
    if assessment.status == "published":
        raise AssessmentError(
            f"{label}考核已通报（{assessment.document}），通报后的数据不再改变；"
            f"如需更正，请用 duties assess --month {assessment.period} --correct --reason 更正理由"
        )
    if assessment.status != "open":
        raise AssessmentError(f"{label}考核尚未冻结（{_when(ctx, assessment.cutoff_at)}冻结），不能通报")
    if assessment.objection_until is not None and at < assessment.objection_until:
        raise AssessmentError(f"{label}考核异议期至{_when(ctx, assessment.objection_until)}，期满后方可通报")
    waiting = open_objections(session, assessment.id or 0)
    if waiting:
        raise AssessmentError(f"{label}考核还有 {waiting} 条异议未处理，请先在工作台处理后再通报")
    number = next_document(session, prefix=scoring.document_prefix, year=at.astimezone(ctx.zone).year)
    assessment.document = document_name(scoring.document_prefix, at.astimezone(ctx.zone).year, number)
    assessment.status, assessment.published_at, assessment.published_by = "published", at, actor
    session.add(assessment)
    session.flush()
    audit(
        session,
        at=at,
        actor=actor,
        action="assessment_published",
        period=assessment.period,
        document=assessment.document,
    )
    _announce(session, ctx, assessment, stage=f"report:{assessment.id}", template="assessment_report", at=at)
    session.commit()
    return assessment


def assessment_step(session: Session, ctx: Context, *, at: datetime) -> str:
    """The tick's part: freeze last month at its cut-off, publish it when the objection window has closed and no
    objection waits. Cheap when there is nothing to do: one row read."""
    if ctx.program.scoring is None:
        return ""
    drafted = refresh_draft(session, ctx, at)
    span = month_before(at.astimezone(ctx.zone).date())
    current = latest(session, span.key)
    if current is None and not _anything_due(session, span, ctx.zone):
        return drafted  # a month before the office started, or with nothing at all to hold anyone to
    if at < cutoff_of(ctx.program, ctx.program.scoring, span, ctx.zone):
        return drafted
    if current is None or current.status == "draft":
        assess(session, ctx, span.key, at=at)
        return "frozen"
    window_over = current.objection_until is not None and at >= current.objection_until
    if current.status == "open" and window_over and not open_objections(session, current.id or 0):
        publish(session, ctx, current, at=at, actor=SYSTEM)
        return "published"
    return drafted


def refresh_draft(session: Session, ctx: Context, at: datetime) -> str:
    """Store this month's draft, and last month's until its cut-off, at most once per DRAFT_EVERY: the dashboard
    reads these snapshots (units x months rows), never the ledger, so its time does not follow the ledger's size.
    The claim is taken under the write lock and committed first: of ticks running at once, one computes."""
    scoring = scoring_of(ctx)
    lock_for_writing(session.connection(), key=DRAFT_LOCK)
    last = get_value(session, key=DRAFT_KEY)
    if last is not None and timedelta(0) <= at - datetime.fromisoformat(last) < DRAFT_EVERY:
        session.commit()
        return ""
    put_value(session, key=DRAFT_KEY, value=at.isoformat())
    session.commit()
    this_month = month_of(at.astimezone(ctx.zone).date())
    last_month = month_before(this_month.starts)
    drafted = ""
    for span in (last_month, this_month):
        if not _anything_due(session, span, ctx.zone):
            continue
        if span == last_month and at >= cutoff_of(ctx.program, scoring, span, ctx.zone):
            continue  # frozen by now (assessment_step), or about to be
        current = latest(session, span.key)
        if current is None or current.status == "draft":
            assess(session, ctx, span.key, at=at)
            drafted = "draft"
    return drafted


# ---------------------------------------------------------------- objections


def object_to(
    session: Session, ctx: Context, *, deduction_id: int, unit_id: str, reason: str, evidence: list[str], at: datetime
) -> Objection:
    """A unit's 异议 against one of its deductions, while the window is open; one per deduction."""
    deduction = session.get(Deduction, deduction_id)
    if deduction is None or deduction.unit_id != unit_id:
        raise AssessmentError("找不到该扣分项")
    assessment = session.get(Assessment, deduction.assessment_id)
    if assessment is None or assessment.status != "open" or assessment.objection_until is None:
        raise AssessmentError("该考核不在公示期，不能提出异议")
    if at > assessment.objection_until:
        raise AssessmentError(f"异议期已于{_when(ctx, assessment.objection_until)}结束")
    if not reason.strip():
        raise AssessmentError("请写明异议理由")
    if len(reason) > 1000:
        raise AssessmentError("异议理由请控制在1000字以内")
    objection = Objection(
        assessment_id=assessment.id or 0,
        deduction_id=deduction_id,
        unit_id=unit_id,
        reason=reason.strip(),
        evidence=evidence,
        at=at,
    )
    if not insert_ignoring_conflicts(session, Objection, [objection.model_dump(exclude={"id"})]):
        raise AssessmentError("该扣分项已提出过异议，请等待处理结果")
    audit(
        session,
        at=at,
        actor=f"unit:{unit_id}",
        action="objection_filed",
        occurrence_id=deduction.occurrence_id,
        period=assessment.period,
        deduction=DEDUCTIONS.get(deduction.reason, deduction.reason),
        reason=reason.strip(),
    )
    session.commit()
    col = Objection.__table__.c  # type: ignore[attr-defined]
    return session.execute(select(Objection).where(col.deduction_id == deduction_id)).scalar_one()


def decide(
    session: Session, ctx: Context, *, objection_id: int, accept: bool, answer: str, actor: str, at: datetime
) -> Objection:
    """A manager's answer to an objection: accepted, the deduction goes and the unit's score and rank are
    recomputed; rejected, with the reason. Audited, and the unit is told either way."""
    objection = session.get(Objection, objection_id, populate_existing=True)
    if objection is None:
        raise AssessmentError("找不到该异议")
    assessment = session.get(Assessment, objection.assessment_id)
    if objection.status != "open" or assessment is None or assessment.status != "open":
        raise AssessmentError("该异议已处理，或考核已通报")
    if not accept and not answer.strip():
        raise AssessmentError("不予采纳须写明理由")
    deduction = session.get(Deduction, objection.deduction_id)
    assert deduction is not None
    before = _score_row(session, assessment.id or 0, objection.unit_id)
    score_before = before.score if before else None
    objection.status = "accepted" if accept else "rejected"
    objection.answer, objection.decided_by, objection.decided_at = answer.strip(), actor, at
    session.add(objection)
    if accept:
        deduction.withdrawn = True
        session.add(deduction)
        session.flush()
        rescore(session, ctx, assessment, objection.unit_id)
    after = _score_row(session, assessment.id or 0, objection.unit_id)
    audit(
        session,
        at=at,
        actor=actor,
        action="objection_accepted" if accept else "objection_rejected",
        occurrence_id=deduction.occurrence_id,
        period=assessment.period,
        deduction=DEDUCTIONS.get(deduction.reason, deduction.reason),
        points=deduction.points,
        answer=answer.strip(),
        score_before=score_before,
        score_after=after.score if after else None,
    )
    _tell_decision(session, ctx, assessment, objection, deduction, after, at=at)
    session.commit()
    return objection


def open_objections(session: Session, assessment_id: int) -> int:
    col = Objection.__table__.c  # type: ignore[attr-defined]
    query = select(func.count()).where(col.assessment_id == assessment_id, col.status == "open")
    return int(session.execute(query).scalar_one())


def rescore(session: Session, ctx: Context, assessment: Assessment, unit_id: str) -> None:
    """Recompute one unit's score from its stored rates and the deductions still standing, then its group's ranks
    and the summary. Nothing is read from the ledger: the snapshot stays the snapshot."""
    scoring = ScoringSpec.model_validate(assessment.scoring)
    row = _score_row(session, assessment.id or 0, unit_id)
    if row is None:
        return
    points = [d.points for d in _deductions(session, assessment.id or 0, unit_id)]
    row.score = final_score(scoring, row.indicators.get("raw"), points) or 0.0
    row.deducted = round(min(scoring.max_deduction, sum(points)), 2)
    row.grade = scoring.grade(row.score) if row.indicators.get("raw") is not None else ""
    session.add(row)
    scores = scores_of(session, assessment.id or 0)
    _rank(scores)
    assessment.summary = summarize(ctx, scoring, scores, families=assessment.summary.get("families", []))
    session.add(assessment)


# ---------------------------------------------------------------- reading


def scores_of(session: Session, assessment_id: int) -> list[AssessmentScore]:
    col = AssessmentScore.__table__.c  # type: ignore[attr-defined]
    query = (
        select(AssessmentScore).where(col.assessment_id == assessment_id).order_by(col.group_id, col.rank, col.unit_id)
    )
    return list(session.execute(query.execution_options(populate_existing=True)).scalars())


def deductions_of(session: Session, assessment_id: int, unit_id: str) -> list[Deduction]:
    """A unit's deductions in an assessment, withdrawn ones included (the page shows them struck through)."""
    col = Deduction.__table__.c  # type: ignore[attr-defined]
    query = select(Deduction).where(col.assessment_id == assessment_id, col.unit_id == unit_id).order_by(col.id)
    return list(session.execute(query).scalars())


def summarize(
    ctx: Context, scoring: ScoringSpec, scores: list[AssessmentScore], *, families: list[dict[str, Any]]
) -> dict[str, Any]:
    """What the 通报, the dashboard and the API show: every group's ranking and board, the districts, the families."""
    by_group: dict[str, list[AssessmentScore]] = defaultdict(list)
    for row in scores:
        if row.rank is not None:
            by_group[row.group_id].append(row)
    groups = []
    for spec_id, title, board in [(g.id, g.title, g.board) for g in scoring.groups] + [(OTHERS, OTHERS_TITLE, None)]:
        ranked = sorted(by_group.get(spec_id, []), key=lambda r: (r.rank or 0, r.unit_id))
        if not ranked:
            continue
        entry: dict[str, Any] = {
            "id": spec_id,
            "title": title,
            "ranking": [_line(ctx, r) for r in ranked],
            "board": None,
        }
        if board is not None:
            red, black = _board(ranked, board.top, board.bottom)
            entry["board"] = {
                "title": board.title,
                "clause": board.clause,
                "red": [_line(ctx, r) for r in red],
                "black": [_line(ctx, r) for r in reversed(black)],
            }
        groups.append(entry)
    return {"groups": groups, "districts": _districts(ctx, scores), "families": families, "totals": _totals(scores)}


def as_json(snapshot: Assessment, zone: Any) -> dict[str, Any]:
    """An assessment as the API and ``--json`` give it."""

    def iso(value: datetime | None) -> str | None:
        return value.astimezone(zone).isoformat() if value is not None else None

    return {
        "id": snapshot.id,
        "period": snapshot.period,
        "version": snapshot.version,
        "corrects": snapshot.corrects,
        "status": snapshot.status,
        "document": snapshot.document or None,
        "cutoff_at": iso(snapshot.cutoff_at),
        "objection_until": iso(snapshot.objection_until),
        "published_at": iso(snapshot.published_at),
        "digest": snapshot.digest,
        "summary": snapshot.summary,
    }


def score_json(row: AssessmentScore, names: dict[str, str]) -> dict[str, Any]:
    """One unit's score as the API gives it; ``duties assess --json`` flattens its indicators."""
    return {
        "unit": row.unit_id,
        "name": names.get(row.unit_id, row.unit_id),
        "group": row.group_id,
        "district": row.district,
        "score": row.score,
        "deducted": row.deducted,
        "grade": row.grade,
        "rank": row.rank,
        "indicators": row.indicators,
    }


# ---------------------------------------------------------------- inside


def _fill(assessment: Assessment, computed: Computed, scoring: ScoringSpec, *, cutoff: datetime, at: datetime) -> None:
    start, end = computed.span.bounds(computed.at.tzinfo)
    assessment.starts_at, assessment.ends_at = start, end
    assessment.cutoff_at, assessment.computed_at = cutoff, at
    assessment.digest = computed.digest
    assessment.scoring = scoring.model_dump(mode="json")


def _store(session: Session, ctx: Context, assessment: Assessment, computed: Computed, scoring: ScoringSpec) -> None:
    """Write the snapshot's rows, replacing a draft's; ranks and the summary from the rows just written."""
    session.add(assessment)
    session.flush()
    assessment_id = assessment.id or 0
    for table in (Deduction.__table__, AssessmentScore.__table__):  # type: ignore[attr-defined]
        session.execute(delete(table).where(table.c.assessment_id == assessment_id))
    scores: list[Any] = [_score(assessment_id, result, scoring) for result in computed.units.values()]
    _rank(scores)
    # One core INSERT of plain rows: the ORM's unit of work cost more than computing the scores (bench/assess.py).
    if scores:  # executed with an empty list, the INSERT would write one row of defaults
        session.execute(AssessmentScore.__table__.insert(), [_values(row) for row in scores])  # type: ignore[attr-defined]
    deductions = [
        {"assessment_id": assessment_id, "unit_id": r.unit_id, "occurrence_id": item, "reason": why, "points": pts}
        for r in computed.units.values()
        for item, why, pts in r.deductions
    ]
    if deductions:
        session.execute(Deduction.__table__.insert(), deductions)  # type: ignore[attr-defined]
    families = [
        {"family": name, "due": int(f["due"]), "on_time": int(f["on_time"]), "rate": ratio(f["on_time"], f["due"])}
        for name, f in sorted(computed.families.items())
    ]
    assessment.summary = summarize(ctx, scoring, scores, families=families)
    session.add(assessment)
    session.flush()


@dataclass
class _Scored:
    """A score row before it is stored: what _rank and summarize read, without an ORM object's cost (a third of
    the time of storing 10,000 units' scores, bench/assess.py)."""

    assessment_id: int
    unit_id: str
    group_id: str
    district: str | None
    score: float
    deducted: float
    grade: str
    rank: int | None
    indicators: dict[str, Any]


def _score(assessment_id: int, result: Any, scoring: ScoringSpec) -> _Scored:
    score = result.score(scoring)
    return _Scored(
        assessment_id=assessment_id,
        unit_id=result.unit_id,
        group_id=result.group_id,
        district=result.district,
        score=score if score is not None else 0.0,
        deducted=round(min(scoring.max_deduction, sum(points for _, _, points in result.deductions)), 2),
        grade=scoring.grade(score) if score is not None else "",
        rank=0 if score is not None else None,
        indicators=result.indicators(),
    )


def _values(row: _Scored) -> dict[str, Any]:
    return {name: getattr(row, name) for name in SCORE_COLUMNS}


SCORE_COLUMNS = ("assessment_id", "unit_id", "group_id", "district", "score", "deducted", "grade", "rank", "indicators")


def _rank(scores: list[AssessmentScore]) -> None:
    """Competition ranking within each group (1, 2, 2, 4): equal scores share a rank."""
    by_group: dict[str, list[AssessmentScore]] = defaultdict(list)
    for row in scores:
        if row.indicators.get("raw") is not None:
            by_group[row.group_id].append(row)
    for rows in by_group.values():
        rows.sort(key=lambda r: (-r.score, r.unit_id))
        for position, row in enumerate(rows, start=1):
            row.rank = position if position == 1 or row.score != rows[position - 2].score else rows[position - 2].rank


def _board(ranked: list[AssessmentScore], top: int, bottom: int) -> tuple[list[AssessmentScore], list[AssessmentScore]]:
    """The red list: ranks 1…top; the black list: the last ``bottom`` places. A tie at the edge takes in every unit
    tied; a unit on the highest score is never black and one on the lowest never red, so when all are equal both
    lists are empty rather than drawn by name."""
    if not ranked:
        return [], []
    best, worst = ranked[0].score, ranked[-1].score
    red = [r for r in ranked if (r.rank or 0) <= top and r.score > worst]
    cut = ranked[max(0, len(ranked) - bottom)].score
    black = [r for r in ranked if r.score <= cut and r.score < best and r not in red]
    return red, black


def _line(ctx: Context, row: AssessmentScore) -> dict[str, Any]:
    unit = ctx.program.units.get(row.unit_id)
    return {
        "unit": row.unit_id,
        "name": unit.name if unit else row.unit_id,
        "rank": row.rank,
        "score": row.score,
        "grade": row.grade,
        "on_time_rate": row.indicators.get("on_time_rate"),
    }


def _districts(ctx: Context, scores: list[AssessmentScore]) -> list[dict[str, Any]]:
    """Each district's units together: their items pooled for the rate, their scores averaged, ranked by score."""
    pooled: dict[str, dict[str, float]] = defaultdict(lambda: {"due": 0, "on_time": 0, "units": 0, "scores": 0.0})
    for row in scores:
        if row.district is None or row.indicators.get("raw") is None:
            continue
        entry = pooled[row.district]
        entry["due"] += row.indicators.get("due", 0)
        entry["on_time"] += row.indicators.get("on_time", 0)
        entry["units"] += 1
        entry["scores"] += row.score
    rows: list[dict[str, Any]] = [
        {
            "district": district,
            "name": ctx.program.units[district].name if district in ctx.program.units else district,
            "units": int(entry["units"]),
            "due": int(entry["due"]),
            "on_time": int(entry["on_time"]),
            "on_time_rate": ratio(entry["on_time"], entry["due"]),
            "score": round(entry["scores"] / entry["units"], 2),
        }
        for district, entry in pooled.items()
    ]
    rows.sort(key=lambda r: (-r["score"], r["district"]))
    for position, district_row in enumerate(rows, start=1):
        district_row["rank"] = position
    return rows


def _totals(scores: list[AssessmentScore]) -> dict[str, Any]:
    keys = ("due", "on_time", "late_done", "overdue", "parked", "extended", "rework", "level_1", "level_2", "level_3")
    totals: dict[str, Any] = {key: int(sum(row.indicators.get(key, 0) for row in scores)) for key in keys}
    assessed = [row.score for row in scores if row.indicators.get("raw") is not None]
    totals["on_time_rate"] = ratio(totals["on_time"], totals["due"])
    totals["units"] = len(assessed)
    totals["mean_score"] = round(sum(assessed) / len(assessed), 2) if assessed else None
    return totals


def _anything_due(session: Session, span: Span, zone: Any) -> bool:
    col = Occurrence.__table__.c  # type: ignore[attr-defined]
    start, end = span.bounds(zone)
    query = select(col.id).where(col.due_at >= start, col.due_at < end).limit(1)
    return session.execute(query).first() is not None


def _score_row(session: Session, assessment_id: int, unit_id: str) -> AssessmentScore | None:
    col = AssessmentScore.__table__.c  # type: ignore[attr-defined]
    query = select(AssessmentScore).where(col.assessment_id == assessment_id, col.unit_id == unit_id)
    return session.execute(query.execution_options(populate_existing=True)).scalar_one_or_none()


def _deductions(session: Session, assessment_id: int, unit_id: str) -> list[Deduction]:
    return [d for d in deductions_of(session, assessment_id, unit_id) if not d.withdrawn]


def _standing(session: Session, assessment_id: int) -> dict[str, list[Any]]:
    """Every unit's deductions not withdrawn, in one query (one per unit cost a second per thousand units)."""
    col = Deduction.__table__.c  # type: ignore[attr-defined]
    query = (
        select(col.id, col.unit_id, col.occurrence_id, col.reason, col.points)
        .where(col.assessment_id == assessment_id, col.withdrawn.is_(False))
        .order_by(col.id)
    )
    found: dict[str, list[Any]] = defaultdict(list)
    for row in session.execute(query):
        found[row.unit_id].append(row)
    return found


def _withdrawn(session: Session, assessment_id: int) -> set[tuple[int | None, str]]:
    col = Deduction.__table__.c  # type: ignore[attr-defined]
    query = select(col.occurrence_id, col.reason).where(col.assessment_id == assessment_id, col.withdrawn.is_(True))
    return {(occurrence_id, reason) for occurrence_id, reason in session.execute(query)}


def _when(ctx: Context, moment: datetime) -> str:
    return local_time(moment, ctx.zone)


def _announce(
    session: Session, ctx: Context, assessment: Assessment, *, stage: str, template: str, at: datetime
) -> None:
    """Tell every scored unit its own result; the leaders of the city and district offices get the whole text."""
    table = AssessmentScore.__table__  # type: ignore[attr-defined]
    stored = session.execute(select(table).where(table.c.assessment_id == assessment.id))  # rows, not ORM objects
    scores = {row.unit_id: row for row in stored}
    standing = _standing(session, assessment.id or 0)
    units = {unit.id: unit for unit in session.execute(select(Unit).where(Unit.id.in_(list(scores)))).scalars()}  # type: ignore[attr-defined]
    leader_units = [unit_id for unit_id, spec in ctx.program.units.items() if spec.kind in LEADER_KINDS]
    leaders = recipients_by_unit(session, leader_units, roles=("leader",))
    leader_ids = {contact.id for contacts in leaders.values() for contact in contacts}
    opening = ctx.program.workdays.window_opening(at, SendWindowSpec(), ctx.zone) if ctx.settings.send_windows else at
    rows: list[dict[str, Any]] = []
    common = {"assessment": assessment, "span": span_of(assessment.period), "programme": ctx.program.programme}
    for unit_id, contacts in recipients_by_unit(session, list(scores), roles=("staff", "leader")).items():
        mine = [contact for contact in contacts if contact.id not in leader_ids]
        unit = units.get(unit_id)
        if not mine or unit is None:
            continue
        link = unit_link(ctx.settings, ctx.secret, unit_id, at=at, version=unit.link_version)
        text = render(
            f"messages/{template}.txt.j2",
            **common,
            unit=ctx.program.units[unit_id],
            row=scores[unit_id],
            deductions=standing.get(unit_id, []),
            board=board_place(assessment, unit_id),
            group_title=group_title_of(assessment, scores[unit_id].group_id),
            whole=False,
            link=link,
            labels=DEDUCTIONS,
            zone=ctx.zone,
            at=at,
        )
        title, body = title_and_body(text)
        rows += outbox.delivery_rows(
            occurrence_id=None, stage=stage, contacts=mine, title=title, body=body, at=at, not_before=opening
        )
    if leader_ids:
        text = render(
            f"messages/{template}.txt.j2",
            **common,
            whole=True,
            group_title="",
            row=None,
            unit=None,
            deductions=[],
            board="",
            link="",
            labels=DEDUCTIONS,
            zone=ctx.zone,
            at=at,
        )
        title, body = title_and_body(text)
        contacts = [contact for found in leaders.values() for contact in found]
        rows += outbox.delivery_rows(
            occurrence_id=None, stage=stage, contacts=contacts, title=title, body=body, at=at, not_before=opening
        )
    insert_ignoring_conflicts(session, Delivery, rows)


def group_title_of(assessment: Assessment, group_id: str) -> str:
    titles = {group["id"]: group["title"] for group in assessment.summary.get("groups", [])}
    return titles.get(group_id, "同类单位")


def board_place(assessment: Assessment, unit_id: str) -> str:
    """红榜 or 黑榜 with the board's title, when the unit is on one."""
    for group in assessment.summary.get("groups", []):
        board = group["board"]
        if board is None:
            continue
        if any(line["unit"] == unit_id for line in board["red"]):
            return f"{board['title']}·红榜"
        if any(line["unit"] == unit_id for line in board["black"]):
            return f"{board['title']}·黑榜"
    return ""


def _tell_decision(
    session: Session,
    ctx: Context,
    assessment: Assessment,
    objection: Objection,
    deduction: Deduction,
    row: AssessmentScore | None,
    *,
    at: datetime,
) -> None:
    text = render(
        "messages/objection_decided.txt.j2",
        span=span_of(assessment.period),
        unit=ctx.program.units.get(objection.unit_id),
        objection=objection,
        deduction_label=DEDUCTIONS.get(deduction.reason, deduction.reason),
        deduction=deduction,
        row=row,
        programme=ctx.program.programme,
        zone=ctx.zone,
        at=at,
    )
    title, body = title_and_body(text)
    contacts = recipients_by_unit(session, [objection.unit_id], roles=("staff", "leader")).get(objection.unit_id, [])
    rows = outbox.delivery_rows(
        occurrence_id=None, stage=f"objection:{objection.id}", contacts=contacts, title=title, body=body, at=at
    )
    insert_ignoring_conflicts(session, Delivery, rows)
