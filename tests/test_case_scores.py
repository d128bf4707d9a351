"""按期处置率 (issue 15): a unit's cases are judged by their own rate, handled (处置) by the category's deadline. A
case returned (退回) or reassigned (改派) counts neither for nor against the unit that gave it back; a failed 核查 is
返工; case items are not in 按期完成率; and the rate as of a moment is the rate as the ledger stood then.

The shipped calendars: 零星垃圾 (market-litter) at a market is due 30 minutes after it is found (05:30–18:30);
道路破损 (road-damage) on 人民路 goes to the street wuxing-feiying within 3 working days. Tuesday 3 March 2026."""

from __future__ import annotations

from datetime import date, datetime

from sqlmodel import Session

from flows import cases, steps
from flows.cases import Asked, NewCase
from flows.scores import Computed, compute, span_of
from flows.steps import Context
from store.models import Occurrence
from tests.conftest import local

MARKET, OTHER_MARKET, STREET = "wuxing-feiying-market", "wuxing-yuehe-market", "wuxing-feiying"
LATER = local("2026-04-10 17:00")  # long after March: every case of March judged


def file(session: Session, ctx: Context, at: datetime, *, category: str = "market-litter", place: str = "") -> int:
    """A case filed at ``at``; its current dispatch (item) id."""
    new = NewCase(category_id=category, place=place or "飞英农贸市场东门", note="门口一堆菜叶")
    filed = cases.file_case(session, ctx, new, reporter="user:inspector1", source="inspector", at=at)
    assert filed.case.occurrence_id is not None
    return filed.case.occurrence_id


def handle(session: Session, item_id: int, at: datetime, form_id: str = "single") -> None:
    """The unit reports 处置 (a confirmation): the item is done at ``at``."""
    steps.confirm(session, occurrence_id=item_id, note="已清扫", evidence=[], at=at, client="t", form_id=form_id)


def check(session: Session, ctx: Context, item_id: int, at: datetime, *, passed: bool) -> None:
    case_id = _case_of(session, item_id)
    note = "" if passed else "仍有积水"
    cases.verify(session, ctx, case_id=case_id, passed=passed, note=note, actor="inspector1", at=at, role="city")


def _case_of(session: Session, item_id: int) -> int:
    item = session.get(Occurrence, item_id)
    assert item is not None and item.case_id is not None
    return item.case_id


def march(session: Session, ctx: Context, at: datetime = LATER) -> Computed:
    assert ctx.program.scoring is not None
    return compute(session, ctx.program, ctx.program.scoring, span_of("2026-03"), at=at, zone=ctx.zone)


def counts(computed: Computed, unit: str) -> dict[str, float]:
    """The counts that are not zero."""
    return {name: value for name, value in computed.units[unit].counts.items() if value}


def reasons(computed: Computed, unit: str) -> list[tuple[str, float]]:
    return sorted((reason, points) for _, reason, points in computed.units[unit].deductions)


def test_on_time_late_and_never_handled_cases_make_the_rate(session: Session, ctx: Context) -> None:
    on_time = file(session, ctx, local("2026-03-03 09:00"))  # due 09:30
    late = file(session, ctx, local("2026-03-03 10:00"))  # due 10:30
    file(session, ctx, local("2026-03-03 11:00"))  # due 11:30, never handled
    handle(session, on_time, local("2026-03-03 09:30"))  # at the deadline itself: on time
    handle(session, late, local("2026-03-03 10:31"))
    market = march(session, ctx).units[MARKET]
    assert counts(march(session, ctx), MARKET) == {"case_due": 3, "case_on_time": 1, "late_done": 1, "overdue": 1}
    assert market.rates["case_on_time_rate"] == 0.3333
    assert market.rates["on_time_rate"] is None  # no planned item: 按期完成率 does not judge it
    assert reasons(march(session, ctx), MARKET) == [("late_done", 0.5), ("overdue", 2.0)]
    # assessment.yaml weighs 按期处置率 10 points: two thirds of them lost; the deductions come on top
    assert market.raw == round(100 - 10 * (1 - 0.3333), 2)
    assert market.score(ctx.program.scoring) == round(100 - 10 * (1 - 0.3333) - 2.5, 2)  # type: ignore[arg-type]


def test_case_items_are_not_in_the_on_time_rate_of_planned_items(session: Session, ctx: Context) -> None:
    steps.plan(session, ctx, start=date(2026, 3, 1), end=date(2026, 3, 31), at=local("2026-02-20 09:00"))
    before = march(session, ctx)
    assert before.units[STREET].counts["due"] > 0 and before.units[STREET].rates["case_on_time_rate"] is None
    road = file(session, ctx, local("2026-03-03 09:00"), category="road-damage", place="人民路路面塌陷")
    handle(session, road, local("2026-03-20 09:00"))  # weeks after its three working days
    after = march(session, ctx).units[STREET]
    for name in ("due", "on_time"):
        assert after.counts[name] == before.units[STREET].counts[name]
    assert after.rates["on_time_rate"] == before.units[STREET].rates["on_time_rate"]
    assert (after.counts["case_due"], after.counts["case_on_time"], after.rates["case_on_time_rate"]) == (1, 0, 0.0)
    assert after.counts["late_done"] == before.units[STREET].counts["late_done"] + 1  # its lateness still counts


def test_a_returned_case_counts_only_for_the_unit_it_was_reassigned_to(session: Session, ctx: Context) -> None:
    first = file(session, ctx, local("2026-03-03 09:00"))
    asked = Asked("return", "不是本市场范围", form_id="r1")
    request = cases.ask(session, ctx, occurrence_id=first, asked=asked, at=local("2026-03-03 09:05"))
    decided = local("2026-03-03 09:08")
    cases.decide(
        session, ctx, request_id=request.id or 0, approve=True, answer="同意", actor="city", at=decided, role="city"
    )
    second = cases.reassign(
        session,
        ctx,
        case_id=_case_of(session, first),
        unit_id=OTHER_MARKET,
        reason="属月河",
        actor="city",
        at=local("2026-03-03 09:10"),
    )
    handle(session, second.id or 0, local("2026-03-03 09:35"))  # within 09:10 + 30 minutes
    computed = march(session, ctx)
    assert MARKET not in computed.units or computed.units[MARKET].counts["case_due"] == 0
    assert counts(computed, OTHER_MARKET) == {"case_due": 1, "case_on_time": 1}
    assert computed.units[OTHER_MARKET].rates["case_on_time_rate"] == 1.0


def test_a_failed_check_is_rework_and_the_case_is_judged_by_its_last_handling(session: Session, ctx: Context) -> None:
    item = file(session, ctx, local("2026-03-03 09:00"))  # due 09:30
    handle(session, item, local("2026-03-03 09:20"))
    check(session, ctx, item, local("2026-03-03 09:25"), passed=False)  # reopened: not handled after all
    handle(session, item, local("2026-03-03 09:40"), form_id="again")  # handled again, after its deadline
    check(session, ctx, item, local("2026-03-03 09:45"), passed=True)
    computed = march(session, ctx)
    assert counts(computed, MARKET) == {"case_due": 1, "late_done": 1, "rework": 1}
    assert computed.units[MARKET].rates["case_on_time_rate"] == 0.0
    assert reasons(computed, MARKET) == [("late_done", 0.5), ("rework", 1.0)]


def test_as_of_a_moment_a_case_counts_as_it_stood_then(session: Session, ctx: Context) -> None:
    """Handled at 09:20, failed 核查 at 09:25, handled again at 10:00: at 09:22 it was on time, with no rework; at
    09:50 it was overdue (the failed check reopened it); from 10:00 it is late, with one rework."""
    item = file(session, ctx, local("2026-03-03 09:00"))  # due 09:30
    handle(session, item, local("2026-03-03 09:20"))
    check(session, ctx, item, local("2026-03-03 09:25"), passed=False)
    handle(session, item, local("2026-03-03 10:00"), form_id="again")
    expected = {
        local("2026-03-03 09:10"): None,  # not yet due: not judged
        local("2026-03-03 09:22"): {"case_due": 1, "case_on_time": 1},
        local("2026-03-03 09:50"): {"case_due": 1, "overdue": 1, "rework": 1},
        local("2026-03-03 10:05"): {"case_due": 1, "late_done": 1, "rework": 1},
    }
    for at, then in expected.items():
        computed = march(session, ctx, at)
        found = counts(computed, MARKET) if MARKET in computed.units else None
        assert (at, found or None) == (at, then)


def test_a_case_due_in_april_is_not_in_march(session: Session, ctx: Context) -> None:
    item = file(session, ctx, local("2026-03-31 18:20"))  # 10 minutes of service left, 20 more from 05:30 on 1 April
    handle(session, item, local("2026-04-01 05:45"))
    assert MARKET not in march(session, ctx).units
    april = compute(session, ctx.program, ctx.program.scoring, span_of("2026-04"), at=LATER, zone=ctx.zone)  # type: ignore[arg-type]
    assert counts(april, MARKET) == {"case_due": 1, "case_on_time": 1}
