"""The 考核 snapshot's life: a draft replaced, frozen at the cut-off and announced, objections, the numbered 通报,
a 更正, the tick doing both on time, and ``duties assess`` / ``duties ranking``; on SQLite and PostgreSQL.

The ledger is tests/score_support.py's November 2026: cut-off Monday 7 December 17:00, objections until Thursday
10 December 17:00 (3 working days later).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import Session, col
from typer.testing import CliRunner

from calendars.schema import DEDUCTIONS
from flows import assessment, steps
from flows.assessment import AssessmentError
from flows.cli import app
from flows.scores import compute, span_of
from flows.steps import Context
from store import db
from store.models import Assessment, AssessmentScore, Deduction, Delivery
from store.settings import get_settings
from templates import render
from tests.conftest import local
from tests.score_support import (
    CUTOFF,
    OBJECTION_UNTIL,
    PERIOD,
    Ledger,
    build_ledger,
    confirm,
    item,
    scoring_context,
    write_calendars,
)

runner = CliRunner()


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's calendars, also for the CLI (DUTIES_CALENDARS)."""
    written = write_calendars(tmp_path / "scoring-calendars")
    monkeypatch.setenv("DUTIES_CALENDARS", str(written))
    get_settings.cache_clear()
    return written


@pytest.fixture
def any_session(store: str, folder: Path) -> Iterator[Session]:
    with db.session_scope() as opened:
        yield opened


@pytest.fixture
def scored(any_session: Session, folder: Path) -> tuple[Context, Ledger]:
    ctx = scoring_context(any_session, folder)
    return ctx, build_ledger(any_session, ctx)


def stored(session: Session, assessment_id: int) -> dict[str, Any]:
    """Everything a snapshot holds, as plain values to compare before and after."""
    session.expire_all()
    found = session.get(Assessment, assessment_id)
    assert found is not None
    head = found.model_dump(exclude={"summary"}) | {"summary": json.dumps(found.summary, sort_keys=True)}
    scores = session.execute(
        select(AssessmentScore)
        .where(col(AssessmentScore.assessment_id) == assessment_id)
        .order_by(col(AssessmentScore.id))
    ).scalars()
    deductions = session.execute(
        select(Deduction).where(col(Deduction.assessment_id) == assessment_id).order_by(col(Deduction.id))
    ).scalars()
    return {
        "head": head,
        "scores": [json.dumps(s.model_dump(), sort_keys=True, default=str) for s in scores],
        "deductions": [d.model_dump() for d in deductions],
    }


def deliveries(session: Session, stage: str) -> list[Delivery]:
    query = select(Delivery).where(col(Delivery.stage) == stage).order_by(col(Delivery.id))
    return list(session.execute(query).scalars())


def score_of(session: Session, snapshot: Assessment, unit: str) -> AssessmentScore:
    (row,) = [r for r in assessment.scores_of(session, snapshot.id or 0) if r.unit_id == unit]
    return row


# ---------------------------------------------------------------- reproducible, draft, frozen


def test_the_same_ledger_gives_the_same_digest_and_scores(any_session: Session, scored: tuple) -> None:
    ctx, _ = scored
    program, scoring = ctx.program, ctx.program.scoring
    first = compute(any_session, program, scoring, span_of(PERIOD), at=CUTOFF, zone=ctx.zone)
    second = compute(any_session, program, scoring, span_of(PERIOD), at=CUTOFF, zone=ctx.zone)
    assert first.digest == second.digest
    assert [(u, r.counts, r.rates, r.deductions) for u, r in first.units.items()] == [
        (u, r.counts, r.rates, r.deductions) for u, r in second.units.items()
    ]
    frozen = assessment.assess(any_session, ctx, PERIOD, at=CUTOFF)
    assert frozen.digest == first.digest  # the stored snapshot says which inputs it was computed from


def test_a_draft_is_replaced_until_the_cutoff_then_frozen_and_announced(any_session: Session, scored: tuple) -> None:
    ctx, _ = scored
    session = any_session
    draft = assessment.assess(session, ctx, PERIOD, at=local("2026-12-01T09:00"))
    assert draft.status == "draft" and draft.objection_until is None and draft.cutoff_at == CUTOFF
    first_rows = stored(session, draft.id or 0)
    confirm(session, item(session, "weekly", "s4", "2026-W48").id or 0, "2026-12-02T10:00")  # s4 reports late
    again = assessment.assess(session, ctx, PERIOD, at=local("2026-12-03T09:00"))
    assert again.id == draft.id and again.status == "draft"  # replaced, not a second one
    assert len(stored(session, draft.id or 0)["scores"]) == len(first_rows["scores"])
    assert score_of(session, again, "s4").indicators["late_done"] == 1
    assert deliveries(session, f"assess:{draft.id}") == []  # a draft tells nobody
    frozen = assessment.assess(session, ctx, PERIOD, at=CUTOFF)
    assert (frozen.id, frozen.status, frozen.objection_until) == (draft.id, "open", OBJECTION_UNTIL)
    assert frozen.computed_at == CUTOFF and frozen.document == ""


def test_freezing_tells_each_unit_its_own_and_the_leaders_the_whole(any_session: Session, scored: tuple) -> None:
    ctx, _ = scored
    frozen = assessment.assess(any_session, ctx, PERIOD, at=CUTOFF)
    sent = deliveries(any_session, f"assess:{frozen.id}")
    assert all(d.occurrence_id is None and d.title.startswith("【考核公示】") for d in sent)
    by_contact = {(d.unit_id, d.contact_id) for d in sent}
    assert len(by_contact) == len(sent)  # one per contact
    # 10 scored units with one staff contact each, plus s1's leader (a street's leader reads the street's own
    # result); the leaders of the city office and the two district offices get the whole text.
    scored_units = {"m1", "m2", "m3", "m4", "s1", "s2", "s3", "s4", "depot", "msb"}
    assert {d.unit_id for d in sent} == scored_units | {"office", "d1", "d2"} and len(sent) == 14
    for delivery in sent:
        whole = delivery.unit_id in ("office", "d1", "d2")
        assert ("各位领导" in delivery.body) == whole, delivery.unit_id
        assert ("你单位得分" in delivery.body) == (not whole), delivery.unit_id
    leader = next(d for d in sent if d.unit_id == "office")
    assert "一号市场" in leader.body and "四号街道" in leader.body


def test_a_frozen_snapshot_does_not_move_with_the_ledger(any_session: Session, scored: tuple) -> None:
    ctx, _ = scored
    session = any_session
    frozen = assessment.assess(session, ctx, PERIOD, at=CUTOFF)
    before = stored(session, frozen.id or 0)
    confirm(session, item(session, "weekly", "s4", "2026-W48").id or 0, "2026-12-08T10:00")
    steps.tick(session, ctx, at=local("2026-12-08T11:00"))
    again = assessment.assess(session, ctx, PERIOD, at=local("2026-12-09T09:00"))
    assert again.id == frozen.id and stored(session, frozen.id or 0) == before


# ---------------------------------------------------------------- objections, publication, numbering, 更正


def test_publish_waits_for_the_window_and_the_objections_then_numbers_without_gaps(
    any_session: Session, scored: tuple
) -> None:
    ctx, _ = scored
    session = any_session
    frozen = assessment.assess(session, ctx, PERIOD, at=CUTOFF)
    with pytest.raises(AssessmentError, match="异议期至2026年12月10日"):
        assessment.publish(session, ctx, frozen, at=local("2026-12-10T16:59"), actor="user:boss")
    (late,) = [d for d in assessment.deductions_of(session, frozen.id or 0, "m2") if d.reason == "late_done"]
    objection = assessment.object_to(
        session,
        ctx,
        deduction_id=late.id or 0,
        unit_id="m2",
        reason="当日停电，次日补报",
        evidence=[],
        at=local("2026-12-08T10:00"),
    )
    with pytest.raises(AssessmentError, match="1 条异议未处理"):
        assessment.publish(session, ctx, frozen, at=OBJECTION_UNTIL, actor="user:boss")
    assessment.decide(
        session,
        ctx,
        objection_id=objection.id or 0,
        accept=True,
        answer="情况属实",
        actor="user:boss",
        at=OBJECTION_UNTIL,
    )
    assert score_of(session, frozen, "m2").score == 77.5  # 76.5 + the late_done point withdrawn
    published = assessment.publish(session, ctx, frozen, at=OBJECTION_UNTIL, actor="user:boss")
    # The refusals took no number: the first 通报 of the year is 1号.
    assert (published.status, published.document) == ("published", "测城管考〔2026〕1号")
    report = deliveries(session, f"report:{published.id}")
    assert report and all(d.title.startswith("【考核通报】测城管考〔2026〕1号") for d in report)
    assert all(d.occurrence_id is None for d in report)
    with pytest.raises(AssessmentError, match=r"已通报.*--correct"):
        assessment.publish(session, ctx, published, at=OBJECTION_UNTIL, actor="user:boss")
    again = assessment.assess(session, ctx, PERIOD, at=OBJECTION_UNTIL)  # shows it; never computes it again
    assert (again.id, again.status, again.digest) == (published.id, "published", published.digest)


def publish_on_time(session: Session, ctx: Context) -> Assessment:
    frozen = assessment.assess(session, ctx, PERIOD, at=CUTOFF)
    return assessment.publish(session, ctx, frozen, at=OBJECTION_UNTIL, actor="user:boss")


def test_a_published_snapshot_never_changes_and_a_correction_is_the_next_number(
    any_session: Session, scored: tuple
) -> None:
    ctx, _ = scored
    session = any_session
    frozen = assessment.assess(session, ctx, PERIOD, at=CUTOFF)
    (late,) = [d for d in assessment.deductions_of(session, frozen.id or 0, "m2") if d.reason == "late_done"]
    objection = assessment.object_to(
        session, ctx, deduction_id=late.id or 0, unit_id="m2", reason="停电", evidence=[], at=local("2026-12-08T10:00")
    )
    assessment.decide(
        session, ctx, objection_id=objection.id or 0, accept=True, answer="属实", actor="user:boss", at=OBJECTION_UNTIL
    )
    published = assessment.publish(session, ctx, frozen, at=OBJECTION_UNTIL, actor="user:boss")
    before = stored(session, published.id or 0)
    # Later activity: m3's W48 reported, a tick, a draft attempt refused.
    confirm(session, item(session, "weekly", "m3", "2026-W48").id or 0, "2026-12-11T10:00")
    steps.tick(session, ctx, at=local("2026-12-11T11:00"))
    assert stored(session, published.id or 0) == before
    corrected = assessment.correct(
        session, ctx, PERIOD, reason="三号市场抽查记录录入有误", at=local("2026-12-14T10:00"), actor="user:boss"
    )
    assert (corrected.version, corrected.corrects, corrected.document) == (2, published.id, "测城管考〔2026〕2号")
    assert corrected.status == "published" and corrected.reason == "三号市场抽查记录录入有误"
    assert stored(session, published.id or 0) == before  # version 1 as it was
    # The accepted objection's deduction stays withdrawn: m2 has no late_done in version 2.
    assert [d.reason for d in assessment.deductions_of(session, corrected.id or 0, "m2")] == ["check_failed"]
    assert score_of(session, corrected, "m2").score == 77.5
    # Computed as of the same cut-off: m3's report of 11 December does not count.
    assert score_of(session, corrected, "m3").score == score_of(session, published, "m3").score == 53.5
    assert assessment.latest(session, PERIOD).id == corrected.id  # type: ignore[union-attr]
    titles = {d.title for d in deliveries(session, f"report:{corrected.id}")}
    assert titles and all("测城管考〔2026〕2号" in t and "（更正）" in t for t in titles)


# ---------------------------------------------------------------- the tick


def test_the_tick_freezes_at_the_cutoff_and_publishes_when_the_window_closes(
    any_session: Session, scored: tuple
) -> None:
    ctx, _ = scored
    session = any_session
    # Before the cut-off the tick keeps a draft for the dashboard; nobody is told anything.
    assert steps.tick(session, ctx, at=local("2026-12-07T16:55")).assessment == "draft"
    draft = assessment.latest(session, PERIOD)
    assert draft is not None and draft.status == "draft" and deliveries(session, f"assess:{draft.id}") == []
    assert steps.tick(session, ctx, at=CUTOFF).assessment == "frozen"
    frozen = assessment.latest(session, PERIOD)
    assert frozen is not None and frozen.status == "open" and frozen.objection_until == OBJECTION_UNTIL
    assert steps.tick(session, ctx, at=local("2026-12-08T09:00")).assessment in ("", "draft")  # December's draft
    assert assessment.latest(session, PERIOD) == frozen  # November waits for its window
    assert steps.tick(session, ctx, at=OBJECTION_UNTIL).assessment == "published"
    published = assessment.latest(session, PERIOD)
    assert published is not None and published.document == "测城管考〔2026〕1号"
    assert steps.tick(session, ctx, at=local("2026-12-11T09:00")).assessment in ("", "draft")


def test_the_tick_leaves_a_month_with_no_items_alone(any_session: Session, folder: Path) -> None:
    ctx = scoring_context(any_session, folder)  # first install: nothing planned for November
    assert steps.tick(any_session, ctx, at=CUTOFF).assessment in ("", "draft")  # at most December's draft
    assert assessment.latest(any_session, PERIOD) is None
    assert [a.period for a in any_session.execute(select(Assessment)).scalars()] in ([], ["2026-12"])
    assert [d for d in any_session.execute(select(Delivery)).scalars() if d.occurrence_id is None] == []


# ---------------------------------------------------------------- the CLI


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_duties_assess_and_ranking_speak_chinese(any_session: Session, scored: tuple) -> None:
    code, out, err = run("assess", "--month", "2026-11", "--at", "2026-12-07T17:00")
    assert code == 0, err
    assert "2026年11月考核：" in out and "异议期至 2026年12月10日" in out
    assert "参评单位 10 个，应完成 39 项" in out and "市场红黑榜：红榜 一号市场；黑榜 三号市场" in out
    code, _, err = run("assess", "--month", "2026-11", "--publish", "--at", "2026-12-08T09:00")
    assert code == 1 and "异议期至" in err and "Traceback" not in err
    code, out, err = run("assess", "--month", "2026-11", "--publish", "--at", "2026-12-10T17:00")
    assert code == 0 and "测城管考〔2026〕1号" in out, err
    code, _, err = run("assess", "--month", "2026-11", "--publish", "--at", "2026-12-11T09:00")
    assert code == 1 and "已通报" in err and "Traceback" not in err
    code, out, err = run("ranking", "--month", "2026-11", "--json")
    assert code == 0, err
    ranking = json.loads(out)
    assert ranking["status"] == "published"
    markets = next(g for g in ranking["groups"] if g["id"] == "markets")
    assert [(line["unit"], line["rank"]) for line in markets["ranking"]] == [("m1", 1), ("m2", 2), ("m4", 2), ("m3", 4)]
    code, out, err = run("assess", "--month", "2026-11", "--json", "--at", "2026-12-11T09:00")
    assert code == 0, err
    rows = {row["unit"]: row for row in json.loads(out)}  # the contract: one row per unit
    assert {rows[unit]["rank"] for unit in ("m2", "m4")} == {2} and rows["m1"]["document"] == "测城管考〔2026〕1号"
    assert all(row["on_time_rate"] is None or 0 <= row["on_time_rate"] <= 1 for row in rows.values())


@pytest.mark.parametrize("month", ["2026-13", "11/2026", "2026-Q5"])
def test_a_bad_month_is_a_clean_chinese_error(any_session: Session, folder: Path, month: str) -> None:
    code, out, err = run("assess", "--month", month, "--at", "2026-12-07T17:00")
    assert code == 1 and "Traceback" not in out + err
    assert "考核期" in err or "月份" in err


# ---------------------------------------------------------------- what the messages say


def texts(session: Session, stage: str) -> dict[str, str]:
    """Each unit's message at a stage (the leaders' whole text under their office's id)."""
    return {d.unit_id: d.body for d in deliveries(session, stage)}


TALLY = re.compile(r"应完成(\d+)项：按期完成(\d+)项，逾期完成(\d+)项，逾期未完成(\d+)项(?:，挂账(\d+)项)?")


def consistent(body: str, row: AssessmentScore) -> None:
    """What any unit's text must never do: contradict its own numbers."""
    assert f"你单位得分：{row.score:g}分（{row.grade}）" in body
    due, *parts = TALLY.search(body).groups()  # type: ignore[union-attr]
    assert int(due) == sum(int(part or 0) for part in parts) == row.indicators["due"]
    lines = re.findall(r"^- .+：扣([\d.]+)分", body, flags=re.M)
    if "本期无扣分" in body:
        assert lines == [] and "扣分项有异议" not in body and row.deducted == 0
        return
    listed = re.search(r"扣分(\d+)项，(?:共|合计)([\d.]+)分", body)
    assert listed is not None and int(listed.group(1)) == len(lines)
    assert abs(float(listed.group(2)) - sum(float(points) for points in lines)) < 0.001
    assert f"{row.deducted:g}分" in body


def test_the_messages_state_the_facts_and_never_contradict_themselves(any_session: Session, scored: tuple) -> None:
    ctx, ledger = scored
    session = any_session
    frozen = assessment.assess(session, ctx, PERIOD, at=CUTOFF)
    opened = texts(session, f"assess:{frozen.id}")
    rows = {row.unit_id: row for row in assessment.scores_of(session, frozen.id or 0)}
    for unit, row in rows.items():
        consistent(opened[unit], row)
    m3 = opened["m3"]
    assert "你单位得分：53.5分（不合格），在农贸市场中排第4名。" in m3
    assert f"- 逾期未完成：扣2分（事项编号{ledger.ids['m3-after-cutoff']}）" in m3 and "- 抽查不合格：扣2.5分" in m3
    assert "扣分3项，共6.5分" in m3 and "如对扣分项有异议，请在2026年12月10日（周四）17:00前" in m3
    # s1's deductions add up to 12.5; the cap of 10 is said, not hidden behind a total the list contradicts.
    assert "扣分4项，合计12.5分，超过扣分上限，按10分计" in opened["s1"] and "挂账1项" in opened["s1"]
    assert "本期无扣分" in opened["m1"] and "/u/" in opened["m1"]
    leaders = opened["office"]
    assert leaders == opened["d1"] == opened["d2"] and "各位领导" in leaders and "你单位" not in leaders
    assert "第1名 一号市场：100分（优秀）" in leaders and "第2名 二号市场：76.5分（良好）" in leaders
    assert "第2名 四号市场：76.5分（良好）" in leaders and "市场红黑榜：红榜 一号市场；黑榜 三号市场" in leaders
    assert "1. 甲区城管办：平均得分73.47分" in leaders and "2. 乙区城管办：平均得分68.17分" in leaders
    assert "升级至交办2项、督办0项、约谈1项（按最高层级计）" in leaders and "参评单位10个，平均得分72.19分" in leaders
    published = assessment.publish(session, ctx, frozen, at=OBJECTION_UNTIL, actor="user:boss")
    report = texts(session, f"report:{published.id}")
    for unit, row in rows.items():
        consistent(report[unit], row)
        assert "现将结果通报如下（测城管考〔2026〕1号）" in report[unit]  # the number in the text, not only the title
    assert "你单位列入市场红黑榜·黑榜" in report["m3"] and "你单位列入市场红黑榜·红榜" in report["m1"]
    assert "列入市场红黑榜" not in report["m2"] and "红榜：一号市场（100分）" in report["m2"]
    assert "黑榜：三号市场（53.5分）" in report["s1"]


def test_a_unit_with_nothing_assessed_and_a_board_with_no_one_on_it(any_session: Session, scored: tuple) -> None:
    ctx, _ = scored
    equal = [
        AssessmentScore(
            assessment_id=1,
            unit_id=unit,
            group_id="markets",
            score=80.0,
            rank=1,
            grade="良好",
            indicators={"raw": 80.0},
        )
        for unit in ("m1", "m2", "m3")
    ]
    snapshot = Assessment(
        period=PERIOD,
        starts_at=local("2026-11-01T00:00"),
        ends_at=local("2026-12-01T00:00"),
        cutoff_at=CUTOFF,
        computed_at=CUTOFF,
        objection_until=OBJECTION_UNTIL,
        scoring={"clause": "四3"},
        summary=assessment.summarize(ctx, ctx.program.scoring, equal, families=[]),
    )
    common = {
        "assessment": snapshot,
        "span": span_of(PERIOD),
        "programme": ctx.program.programme,
        "labels": DEDUCTIONS,
        "zone": ctx.zone,
        "at": CUTOFF,
        "link": "L",
        "board": "",
        "group_title": "农贸市场",
    }
    leaders = render("messages/assessment_open.txt.j2", **common, whole=True, row=None, unit=None, deductions=[])
    assert "市场红黑榜：红榜 无；黑榜 无" in leaders and "第1名 三号市场：80分（良好）" in leaders
    idle = AssessmentScore(assessment_id=1, unit_id="s5", group_id="streets", indicators={"raw": None})
    own = render(
        "messages/assessment_open.txt.j2", **common, whole=False, row=idle, unit=ctx.program.units["s5"], deductions=[]
    )
    assert "你单位本期无应考核事项，不计分、不排名。" in own
    assert "得分" not in own and "排第" not in own and "扣分项有异议" not in own and "本单位考核明细：\nL" in own
