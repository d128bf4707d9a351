"""Every 考核 indicator against numbers computed by hand, on the small ledger of tests/score_support.py.

Scoring (score_support.SCORING): base 100; a rate r loses weight × (1 − r): on_time_rate 40, quota_rate 20,
check_pass_rate 20, target_rate 10, response_rate 10 (a rate with nothing to count loses nothing). Deductions per
item: late_done 1, overdue 2, parked 3, extended 0.5, level_1 5, level_2 6, level_3 7, rework 1.5, quota_short 0.25
per missing check, check_failed 2.5; at most 10 in all; never below 0. Grades: 优秀 ≥ 90, 良好 ≥ 75, 合格 ≥ 60.
Everything is computed as of the cut-off, Monday 7 December 2026 17:00.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import Session, col

from calendars.schema import ScoringSpec
from flows import actions, assessment, ladder
from flows.assessment import summarize
from flows.scores import Computed, compute, span_of
from flows.steps import Context
from store.models import AssessmentScore, Confirmation
from tests.conftest import local
from tests.score_support import CUTOFF, PERIOD, Ledger, build_ledger, item, scoring_context, write_calendars


@pytest.fixture
def scored(session: Session, tmp_path: Path) -> tuple[Context, Ledger]:
    ctx = scoring_context(session, write_calendars(tmp_path / "scoring-calendars"))
    return ctx, build_ledger(session, ctx)


def scoring(ctx: Context) -> ScoringSpec:
    assert ctx.program.scoring is not None
    return ctx.program.scoring


def at_cutoff(session: Session, ctx: Context, at: object = CUTOFF) -> Computed:
    return compute(session, ctx.program, scoring(ctx), span_of(PERIOD), at=at, zone=ctx.zone)  # type: ignore[arg-type]


def counted(computed: Computed, unit: str) -> dict[str, float]:
    """The counts that are not zero."""
    return {name: value for name, value in computed.units[unit].counts.items() if value}


def reasons(computed: Computed, unit: str) -> list[tuple[str, float]]:
    return sorted((reason, points) for _, reason, points in computed.units[unit].deductions)


# ---------------------------------------------------------------- the markets: on time, late, overdue, spot checks


def test_a_market_on_time_with_two_passed_checks_scores_full_marks(session: Session, scored: tuple) -> None:
    ctx, _ = scored
    result = at_cutoff(session, ctx)
    # 4 weeks due, 4 on time; checked twice (10 and 20 November), passed twice: 100 − 0 − 0 = 100.
    assert counted(result, "m1") == {"due": 4, "on_time": 4, "checked": 2}
    assert result.units["m1"].rates["on_time_rate"] == 1.0 and result.units["m1"].rates["check_pass_rate"] == 1.0
    assert result.units["m1"].deductions == [] and result.units["m1"].score(scoring(ctx)) == 100.0


def test_a_late_week_and_a_failed_spot_check(session: Session, scored: tuple) -> None:
    ctx, _ = scored
    result = at_cutoff(session, ctx)
    # m2: W47 reported on 23 November, after its Friday: 3 of 4 on time, 1 逾期完成. Checked on the 10th (pass) and
    # the 20th (fail): pass rate 1/2.  raw = 100 − 40 × (1 − 0.75) − 20 × (1 − 0.5) = 100 − 10 − 10 = 80;
    # deductions late_done 1 + check_failed 2.5 = 3.5; score 76.5 (良好).
    assert counted(result, "m2") == {"due": 4, "on_time": 3, "late_done": 1, "checked": 2, "check_failed": 1}
    assert result.units["m2"].raw == 80.0
    assert reasons(result, "m2") == [("check_failed", 2.5), ("late_done", 1.0)]
    assert result.units["m2"].score(scoring(ctx)) == 76.5


def test_an_item_done_after_the_cutoff_is_overdue_as_of_the_cutoff(session: Session, scored: tuple) -> None:
    ctx, ledger = scored
    frozen = at_cutoff(session, ctx)
    # m3: W45, W46 on time; W47 reported on 8 December (after the cut-off); W48 never. As of the cut-off: 2 on time,
    # 2 overdue. Checked once (20 November), failed.  raw = 100 − 40 × 0.5 − 20 × 1 = 60;
    # deductions 2 × overdue 2 + check_failed 2.5 = 6.5; score 53.5 (不合格).
    assert counted(frozen, "m3") == {"due": 4, "on_time": 2, "overdue": 2, "checked": 1, "check_failed": 1}
    assert frozen.units["m3"].score(scoring(ctx)) == 53.5
    assert (ledger.ids["m3-after-cutoff"], "overdue", 2.0) in frozen.units["m3"].deductions
    # The same ledger read on 9 December sees W47 逾期完成: 1 overdue (2) + 1 late (1) + check 2.5 = 5.5.
    later = at_cutoff(session, ctx, local("2026-12-09T09:00"))
    assert counted(later, "m3")["late_done"] == 1 and counted(later, "m3")["overdue"] == 1
    assert later.units["m3"].score(scoring(ctx)) == 54.5


def test_an_extension_after_the_cutoff_leaves_the_month_as_it_stood(session: Session, scored: tuple) -> None:
    ctx, _ = scored
    frozen = at_cutoff(session, ctx)
    # m3's W48 (due 27 November) is overdue at the cut-off. On 9 December a manager extends it to 18 December: read
    # as of the cut-off, November still had it due on the 27th and overdue (a 更正 recomputes as of the cut-off).
    w48 = item(session, "weekly", "m3", "2026-W48").id or 0
    actions.extend(
        session,
        occurrence_id=w48,
        due=local("2026-12-18T17:00"),
        reason="补办",
        actor="user:boss",
        at=local("2026-12-09T09:00"),
    )
    again = at_cutoff(session, ctx)
    assert counted(again, "m3") == counted(frozen, "m3") and (w48, "overdue", 2.0) in again.units["m3"].deductions
    assert again.digest == frozen.digest
    # An extension before the cut-off does move the item: s1's W46, extended to 19 November, counts as extended.
    assert counted(again, "s1")["extended"] == 1


def test_work_reopened_after_the_cutoff_still_counts_as_it_stood(session: Session, scored: tuple) -> None:
    ctx, ledger = scored
    frozen = at_cutoff(session, ctx)
    # On 9 December s2's W46 (done on time on 13 November) fails its 核查 and is reopened; s1's W47 (免除 on
    # 18 November) is reopened too; s1's parked W45 is reopened. As of the cut-off none of that had happened.
    w46 = item(session, "weekly", "s2", "2026-W46").id or 0
    (report,) = session.execute(select(Confirmation).where(col(Confirmation.occurrence_id) == w46)).scalars()
    later = local("2026-12-09T09:00")
    actions.verify(
        session,
        occurrence_id=w46,
        confirmation_id=report.id or 0,
        passed=False,
        note="返工",
        actor="user:boss",
        at=later,
    )
    for reopened in (ledger.ids["s1-waived"], ledger.ids["s1-parked"]):
        actions.reopen(session, occurrence_id=reopened, reason="重新办理", actor="user:boss", at=later)
    again = at_cutoff(session, ctx)
    assert counted(again, "s2") == counted(frozen, "s2") and counted(again, "s1") == counted(frozen, "s1")
    assert again.digest == frozen.digest
    # Read on 10 December, the reopened items are what they are now: W46 overdue with its 返工, W47 due again.
    now = at_cutoff(session, ctx, local("2026-12-10T09:00"))
    assert counted(now, "s2")["overdue"] == 1 and counted(now, "s2")["rework"] == 2
    assert counted(now, "s1")["due"] == 5


# ---------------------------------------------------------------- the streets: 挂账, 延期, 免除, 返工, the ladder


def test_parked_extended_twice_waived_and_the_highest_level(session: Session, scored: tuple) -> None:
    ctx, ledger = scored
    result = at_cutoff(session, ctx)
    s1 = result.units["s1"]
    # Weekly: W45 挂账; W46 延期 twice, then done before its new date (on time, 延期 counted once); W47 免除 (not
    # counted at all); W48 on time. Monthly (due 2 November): never done, 交办 → 督办 → 约谈: level 3 only.
    assert counted(result, "s1") == {
        "due": 4,
        "on_time": 2,
        "overdue": 1,
        "parked": 1,
        "extended": 1,
        "level_3": 1,
        "escalations": 3,
        "acknowledged": 1,
    }
    assert ledger.ids["s1-waived"] not in {item for item, _, _ in s1.deductions}
    # 3 notices issued in November, 收到 for one (the 交办, two hours after it): 1/3, 2.0 hours.
    assert s1.rates["response_rate"] == 0.3333 and s1.response_hours == 2.0
    # raw = 100 − 40 × (1 − 0.5) − 10 × (1 − 0.3333) = 100 − 20 − 6.667 = 73.33
    assert s1.raw == 73.33
    # parked 3 + extended 0.5 + overdue 2 + level_3 7 = 12.5, capped at max_deduction 10: 73.33 − 10 = 63.33 (合格)
    assert reasons(result, "s1") == [("extended", 0.5), ("level_3", 7.0), ("overdue", 2.0), ("parked", 3.0)]
    assert s1.score(scoring(ctx)) == 63.33 and scoring(ctx).grade(63.33) == "合格"


def test_response_time_runs_from_the_notice_not_from_its_repeat(session: Session, scored: tuple) -> None:
    ctx, ledger = scored
    # s1's 约谈 (4 November 17:00) is repeated on the 5th at 17:00 for want of 收到; 收到 comes at 18:00. It took the
    # unit 25 hours, not the 1 hour since the repeat. With the 交办's 2 hours: (2 + 25) / 2 = 13.5 hours, 2 of 3.
    assert ladder.repeat_notices(session, ctx, at=local("2026-11-05T17:00")) >= 1
    assert ladder.acknowledge(
        session, occurrence_id=ledger.ids["s1-monthly"], actor="unit:s1", at=local("2026-11-05T18:00")
    )
    s1 = at_cutoff(session, ctx).units["s1"]
    assert (s1.counts["escalations"], s1.counts["acknowledged"], s1.response_hours) == (3, 2, 13.5)


def test_a_failed_check_and_a_late_item_after_jiaoban(session: Session, scored: tuple) -> None:
    ctx, ledger = scored
    result = at_cutoff(session, ctx)
    s2 = result.units["s2"]
    # W45 reported on time, failed its 核查 on the 9th, reported again on the 10th: 逾期完成 and 返工.
    # Monthly: 交办 on 2 November 17:00, 收到 at 21:00 (4 hours), done on the 3rd: 逾期完成, level 1.
    assert counted(result, "s2") == {
        "due": 5,
        "on_time": 3,
        "late_done": 2,
        "rework": 1,
        "level_1": 1,
        "escalations": 1,
        "acknowledged": 1,
    }
    assert s2.response_hours == 4.0 and s2.rates["response_rate"] == 1.0
    # raw = 100 − 40 × (1 − 3/5) = 84; deductions 1 + 1.5 + 1 + 5 = 8.5; score 75.5 (良好)
    assert s2.raw == 84.0 and s2.score(scoring(ctx)) == 75.5
    assert (ledger.ids["s2-rework"], "rework", 1.5) in s2.deductions


def test_a_failed_reinspection_is_rework_of_an_item_judged_like_any_other(session: Session, scored: tuple) -> None:
    ctx, ledger = scored
    result = at_cutoff(session, ctx)
    s3 = result.units["s3"]
    # 4 weeks on time. The 整改 item of a finding (due 4 November 17:00) done that morning, its 复检 failed on the
    # 10th (返工, and 交办 at once: one notice, never 收到), done again on the 11th: 逾期完成.
    # The 整改 item belongs to a duty with a target: it is still an item due, not progress towards the target.
    assert counted(result, "s3") == {
        "due": 5,
        "on_time": 4,
        "late_done": 1,
        "rework": 1,
        "level_1": 1,
        "escalations": 1,
    }
    # raw = 100 − 40 × (1 − 4/5) − 10 × (1 − 0) = 82; deductions late 1 + level_1 5 + rework 1.5 = 7.5; 74.5
    assert s3.rates["target_rate"] is None and s3.raw == 82.0
    rectify = ledger.ids["s3-rectify"]
    assert sorted(s3.deductions) == [(rectify, "late_done", 1.0), (rectify, "level_1", 5.0), (rectify, "rework", 1.5)]
    assert s3.score(scoring(ctx)) == 74.5 and s3.response_hours is None


def test_never_reporting_and_everything_waived(session: Session, scored: tuple) -> None:
    ctx, _ = scored
    result = at_cutoff(session, ctx)
    # s4: 4 overdue. raw = 100 − 40 = 60; 4 × 2 = 8; 52 (不合格).
    assert counted(result, "s4") == {"due": 4, "overdue": 4} and result.units["s4"].score(scoring(ctx)) == 52.0
    assert "s5" not in result.units  # all four weeks waived: nothing to assess


# ---------------------------------------------------------------- quota, target, and a unit in no group


def test_quota_fulfilment_and_target_progress_against_the_line(session: Session, scored: tuple) -> None:
    ctx, ledger = scored
    result = at_cutoff(session, ctx)
    msb = result.units["msb"]
    # Spot checks: 2 of the 3 the month asks for; the item is overdue at the cut-off. quota_rate 2/3 = 0.6667.
    assert counted(result, "msb") == {
        "due": 1,
        "overdue": 1,
        "quota_required": 3.0,
        "quota_done": 2.0,
        "targets": 1,
        "target_progress": pytest.approx(99 / (120 * 8016 / 8753)),
    }
    # Target: 120 in 2026, from 1 January 00:00 to the last working day, 31 December 17:00. By the end of November
    # (1 December 00:00) the line expects 120 × 334 days / (364 days 17 hours) = 120 × 8016 / 8753 = 109.896;
    # reported by the cut-off 55 + 44 = 99 (the 30 of 8 December comes after it): 99 / 109.896 = 0.9009.
    assert msb.rates["quota_rate"] == 0.6667 and msb.rates["target_rate"] == 0.9009
    # raw = 100 − 40 × 1 − 20 × 0.3333 − 10 × 0.0991 = 100 − 40 − 6.666 − 0.991 = 52.34
    assert msb.raw == 52.34
    # deductions: overdue 2 + one check short 0.25 = 2.25; 52.34 − 2.25 = 50.09
    assert sorted(msb.deductions) == [
        (ledger.ids["msb-quota"], "overdue", 2.0),
        (ledger.ids["msb-quota"], "quota_short", 0.25),
    ]
    assert msb.score(scoring(ctx)) == 50.09


def test_a_unit_in_no_group_is_ranked_among_the_others(session: Session, scored: tuple) -> None:
    ctx, _ = scored
    result = at_cutoff(session, ctx)
    assert result.units["depot"].group_id == "others" and result.units["depot"].score(scoring(ctx)) == 100.0
    groups = {unit: r.group_id for unit, r in result.units.items()}
    assert groups == {
        **dict.fromkeys(("m1", "m2", "m3", "m4"), "markets"),
        **dict.fromkeys(("s1", "s2", "s3", "s4"), "streets"),
        "msb": "departments",
        "depot": "others",
    }


def test_before_anything_falls_due_a_unit_has_no_score_and_no_rank(session: Session, scored: tuple) -> None:
    ctx, _ = scored
    early = at_cutoff(session, ctx, local("2026-11-02T08:00"))
    # Every item of November is still ahead of 2 November 08:00: the units are there, with nothing to judge. Only
    # the msb's yearly target has something to measure: 55 reported against the line as of now, 120 × (305 days
    # 8 hours) / (364 days 17 hours) = 120 × 7328 / 8753 = 100.46, so 55 / 100.46 = 0.5475 (not against the
    # 109.90 the line reaches by the month's end, which would give 0.5005).
    assert set(early.units) == {"m1", "m2", "m3", "m4", "s1", "s2", "s3", "s4", "s5", "depot", "msb"}
    idle = {unit: r for unit, r in early.units.items() if unit != "msb"}
    assert all(r.raw is None and r.score(scoring(ctx)) is None for r in idle.values())
    assert early.units["msb"].rates["target_rate"] == 0.5475
    draft = assessment.assess(session, ctx, PERIOD, at=local("2026-11-02T08:00"))
    rows = {row.unit_id: row for row in assessment.scores_of(session, draft.id or 0)}
    assert set(rows) == set(early.units) and draft.status == "draft"
    assert all(rows[unit].rank is None and rows[unit].grade == "" for unit in idle)
    assert [group["id"] for group in draft.summary["groups"]] == ["departments"]
    assert draft.summary["totals"]["units"] == 1 and draft.summary["districts"] == []


# ---------------------------------------------------------------- the cap, the floor, grades, digest


def test_the_cap_and_the_floor(session: Session, scored: tuple) -> None:
    ctx, _ = scored
    # With 20 points per overdue item and a cap of 100, s4 loses 4 × 20 = 80 of its 60: the score stops at 0.
    harsh = scoring(ctx).model_copy(update={"deductions": {"overdue": 20.0}, "max_deduction": 100.0})
    result = compute(session, ctx.program, harsh, span_of(PERIOD), at=CUTOFF, zone=ctx.zone)
    assert result.units["s4"].raw == 60.0 and result.units["s4"].score(harsh) == 0.0 and harsh.grade(0.0) == "不合格"
    # With a cap of 5, m3's 4 + 0 (check_failed now 0) = 4 stands, s4's 80 is cut to 5: 60 − 5 = 55.
    capped = harsh.model_copy(update={"max_deduction": 5.0})
    result = compute(session, ctx.program, capped, span_of(PERIOD), at=CUTOFF, zone=ctx.zone)
    assert result.units["s4"].score(capped) == 55.0 and result.units["m3"].score(capped) == 60.0 - 5.0


def test_the_same_ledger_gives_the_same_numbers_and_digest(session: Session, scored: tuple) -> None:
    ctx, _ = scored
    first, second = at_cutoff(session, ctx), at_cutoff(session, ctx)
    assert first.digest == second.digest and len(first.digest) == 64
    assert {u: r.score(scoring(ctx)) for u, r in first.units.items()} == {
        u: r.score(scoring(ctx)) for u, r in second.units.items()
    }
    assert at_cutoff(session, ctx, local("2026-12-09T09:00")).digest != first.digest  # a report came in since


# ---------------------------------------------------------------- ranks, roll-ups, boards (the stored snapshot)


def test_ranks_districts_families_and_the_board(session: Session, scored: tuple) -> None:
    ctx, _ = scored
    frozen = assessment.assess(session, ctx, PERIOD, at=CUTOFF)
    ranks = {row.unit_id: (row.rank, row.score, row.grade) for row in assessment.scores_of(session, frozen.id or 0)}
    # Markets: m1 100, m2 = m4 76.5, m3 53.5 → 1, 2, 2, 4.
    assert [ranks[u] for u in ("m1", "m2", "m4", "m3")] == [
        (1, 100.0, "优秀"),
        (2, 76.5, "良好"),
        (2, 76.5, "良好"),
        (4, 53.5, "不合格"),
    ]
    # Streets: s2 75.5, s3 74.5, s1 63.33, s4 52.
    assert [ranks[u][0] for u in ("s2", "s3", "s1", "s4")] == [1, 2, 3, 4]
    assert ranks["depot"][0] == 1 and ranks["msb"][0] == 1 and "s5" not in ranks
    groups = {group["id"]: group for group in frozen.summary["groups"]}
    assert list(groups) == ["markets", "streets", "departments", "others"]
    board = groups["markets"]["board"]
    assert [line["unit"] for line in board["red"]] == ["m1"] and [line["unit"] for line in board["black"]] == ["m3"]
    # Districts: d1 = m1 100, m2 76.5, s1 63.33, s2 75.5, s4 52 → 367.33 / 5 = 73.47; due 4+4+4+5+4 = 21, on time
    # 4+3+2+3+0 = 12. d2 = m3 53.5, m4 76.5, s3 74.5 → 204.5 / 3 = 68.17; due 4+4+5 = 13, on time 2+3+4 = 9.
    districts = [
        (d["district"], d["rank"], d["units"], d["score"], d["due"], d["on_time"]) for d in frozen.summary["districts"]
    ]
    assert districts == [("d1", 1, 5, 73.47, 21, 12), ("d2", 2, 3, 68.17, 13, 9)]
    # Families: 日常保洁 = the weekly items not waived: 9 units × 4 − s1's W47 = 35, on time 4+3+2+3+2+3+4+0+4 = 25;
    # 月度整治 2, none on time; 市场抽查 1, late; 安全检查 the 整改 item, late. The target is no family's item.
    families = {f["family"]: (f["due"], f["on_time"]) for f in frozen.summary["families"]}
    assert families == {"日常保洁": (35, 25), "月度整治": (2, 0), "市场抽查": (1, 0), "安全检查": (1, 0)}
    totals = frozen.summary["totals"]
    # 10 units; due 4×4 + 4+5+5+4 + 4 + 1 = 39, on time 4+3+2+3 + 2+3+4+0 + 4 + 0 = 25
    assert (totals["units"], totals["due"], totals["on_time"]) == (10, 39, 25)


def row(unit: str, score: float, group: str = "markets") -> AssessmentScore:
    return AssessmentScore(
        assessment_id=1, unit_id=unit, group_id=group, score=score, rank=0, indicators={"raw": score}
    )


def boards(ctx: Context, scores: list[AssessmentScore]) -> tuple[list[str], list[str], list[int | None]]:
    assessment._rank(scores)
    summary = summarize(ctx, scoring(ctx), scores, families=[])
    (markets,) = [g for g in summary["groups"] if g["id"] == "markets"]
    board = markets["board"]
    return (
        [x["unit"] for x in board["red"]],
        [x["unit"] for x in board["black"]],
        [x["rank"] for x in markets["ranking"]],
    )


def test_red_and_black_take_in_ties_and_stay_empty_when_all_are_equal(session: Session, scored: tuple) -> None:
    ctx, _ = scored
    # Top 1 and bottom 1: a tie at either edge takes in every unit tied.
    red, black, ranks = boards(ctx, [row("m1", 90), row("m2", 90), row("m3", 70), row("m4", 60), row("s5", 60)])
    assert (sorted(red), sorted(black), ranks) == (["m1", "m2"], ["m4", "s5"], [1, 1, 3, 4, 4])
    # All equal: nobody is best or worst, both lists empty.
    red, black, ranks = boards(ctx, [row("m1", 80), row("m2", 80), row("m3", 80)])
    assert (red, black, ranks) == ([], [], [1, 1, 1])
    # Two units: one red, one black; never the same unit on both.
    red, black, _ = boards(ctx, [row("m1", 80), row("m2", 70)])
    assert (red, black) == (["m1"], ["m2"])
