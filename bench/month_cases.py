"""The cases of the simulated month (bench/month.py): problems found at markets, sites and on streets, as the office
would meet them, with a fixed seed.

On each working day an inspector files a few cases between 08:00 and 16:00 (about one tick in four); a place that
names no unit waits for the dispatcher. A unit handles most of its cases within its tick, some late, and sends about
one in ten back (退回) as not its own. At 11:00 a city manager decides every waiting request (a 退回 is approved and
reassigned to the unit the place names, or to the first candidate), dispatches what waits, and the reporter verifies
each handled case: one in five fails 核查 and is handled again. A failed market spot check files a case of the
duty's ``finding_category`` for the market, as the check's confirmation page does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session, col

from flows import cases, steps
from flows.common import Context
from store.models import Case, Occurrence, UnitRequest

FOUND = (  # category, place, note
    ("market-litter", "飞英农贸市场东门", "门口菜叶堆积"),
    ("market-litter", "月河农贸市场水产区", "地面积水"),
    ("market-litter", "南浔农贸市场北侧通道", "零星垃圾未清"),
    ("market-litter", "双林农贸市场", "熟食区纸屑散落"),
    ("market-hygiene", "武康农贸市场", "垃圾桶满溢"),
    ("site-dust", "吴兴区重点建筑工地（演示）", "出入口未冲洗，道路扬尘"),
    ("site-dust", "南浔区重点建筑工地（演示）", "渣土未覆盖"),
    ("road-damage", "吴兴区飞英街道红旗路88号", "人行道砖块松动"),
    ("road-damage", "衣裳街口", "路面坑洼积水"),
    ("road-damage", "人民广场西侧", "井盖破损"),  # names no unit: the dispatcher decides
)
HANDLED_SHARE = 0.7
RETURN_SHARE = 0.1
FAILED_CHECK_SHARE = 0.2
INSPECTOR = "user:xunchayuan"


@dataclass
class CaseDay:
    """The month's cases and what came of them."""

    draws: random.Random = field(default_factory=lambda: random.Random(20261215))
    filed: int = 0
    returned: int = 0
    failed_checks: int = 0

    def at_tick(self, session: Session, ctx: Context, moment: datetime) -> None:
        """What happens at one tick of a working day: a case may be found, units act on theirs."""
        if moment.hour < 16 and self.draws.random() < 0.25:
            self.file_one(session, ctx, moment)
        for item in _open_case_items(session):
            if item.created_at == moment:
                continue  # the unit reads its message first
            if self.draws.random() < RETURN_SHARE and cases.waiting_request(session, item.id or 0) is None:
                asked = cases.Asked("return", "该点位不属于本单位管辖", form_id=f"month-{item.id}")
                cases.ask(session, ctx, occurrence_id=item.id or 0, asked=asked, at=moment)
                self.returned += 1
            elif self.draws.random() < HANDLED_SHARE:
                steps.confirm(
                    session,
                    occurrence_id=item.id or 0,
                    note="已处置",
                    evidence=[],
                    at=moment,
                    client="month",
                    form_id=f"handled-{moment:%d%H%M}",
                )
        cases.supervise(session, ctx, at=moment)

    def file_one(self, session: Session, ctx: Context, moment: datetime) -> None:
        category, place, note = self.draws.choice(FOUND)
        new = cases.NewCase(category_id=category, place=place, note=note)
        filed = cases.file_case(session, ctx, new, reporter=INSPECTOR, source="inspector", at=moment)
        cases.send_now(session, ctx, filed.delivery_ids, at=moment)
        self.filed += 1

    def at_eleven(self, session: Session, ctx: Context, moment: datetime) -> None:
        """The city manager's round: requests, the dispatcher's queue, and 核查 of what was handled."""
        for request, _item, _ in cases.open_requests(session):
            cases.decide(
                session,
                ctx,
                request_id=request.id or 0,
                approve=True,
                answer="同意",
                actor="user:boss",
                at=moment,
                role="city",
            )
        for case in cases.undispatched(session):
            category = ctx.program.categories[case.category_id]
            unit = cases.resolve_unit(ctx.program, category, case.place)
            returned_by = _returned_by(session, case)
            choices = [u for u in cases.candidates(ctx.program, category) if u not in returned_by]
            target = unit if unit and unit not in returned_by else choices[0]
            cases.reassign(
                session, ctx, case_id=case.id or 0, unit_id=target, reason="按属地派遣", actor="user:boss", at=moment
            )
        for case, _item in _to_verify(session, moment):
            passed = self.draws.random() >= FAILED_CHECK_SHARE
            self.failed_checks += not passed
            note = "" if passed else "现场仍有垃圾，请重新处置"
            cases.verify(
                session, ctx, case_id=case.id or 0, passed=passed, note=note, actor="xunchayuan", at=moment, role="city"
            )

    def report(self) -> str:
        return (
            f"cases: {self.filed} filed, {self.returned} sent back (退回) and reassigned, "
            f"{self.failed_checks} failed 核查 and handled again"
        )


def file_from_check(session: Session, ctx: Context, item: Occurrence, market: str, problem: str, at: datetime) -> None:
    """A failed market spot check becomes a case of its duty's finding category for the market."""
    duty = ctx.program.duties.get(item.duty_id)
    category = getattr(duty.quota, "finding_category", None) if duty and duty.quota else None
    if category is None:
        return
    place = ctx.program.units[market].name
    new = cases.NewCase(category_id=category, place=place, note=problem, unit_id=market)
    filed = cases.file_case(session, ctx, new, reporter=f"unit:{item.unit_id}", source="check", at=at)
    cases.send_now(session, ctx, filed.delivery_ids, at=at)


def _open_case_items(session: Session) -> list[Occurrence]:
    query = select(Occurrence).where(
        col(Occurrence.case_id).is_not(None), col(Occurrence.done_at).is_(None), col(Occurrence.waived_at).is_(None)
    )
    return list(session.execute(query.order_by(col(Occurrence.id))).scalars())


def _to_verify(session: Session, moment: datetime) -> list[tuple[Case, Occurrence]]:
    query = (
        select(Case, Occurrence)
        .join(Occurrence, col(Occurrence.id) == col(Case.occurrence_id))
        .where(col(Case.closed_at).is_(None), col(Occurrence.done_at).is_not(None), col(Occurrence.done_at) <= moment)
    )
    return [(c, o) for c, o in session.execute(query).tuples()]


def _returned_by(session: Session, case: Case) -> set[str]:
    query = (
        select(col(UnitRequest.unit_id))
        .join(Occurrence, col(Occurrence.id) == col(UnitRequest.occurrence_id))
        .where(col(Occurrence.case_id) == case.id, col(UnitRequest.kind) == "return")
    )
    return set(session.execute(query).scalars())
