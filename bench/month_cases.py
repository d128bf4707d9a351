"""The cases of the simulated month (bench/month.py): problems found at markets, sites and on streets, as the office
would meet them, with a fixed seed.

On each working day an inspector files a few cases between 08:00 and 16:00 (about one tick in four); a place that
names no unit waits for the dispatcher. A unit handles most of its cases within its tick, some late, and sends one
back (退回) when the dispatcher guessed wrong, naming whose it is. At 11:00 on working days a city manager approves
every waiting request, dispatches what waits (a first guess, or after a 退回 the unit the returning one named), and
the reporter verifies each handled case: one in five fails 核查 and is handled again. A failed spot check files a
case of its duty's ``finding_category`` for the unit checked (bench/month.py, through flows/spot_checks.py as the
check's page does).
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

FOUND = (  # category, place, note, the unit it really belongs to
    ("market-litter", "飞英农贸市场东门", "门口菜叶堆积", "wuxing-feiying-market"),
    ("market-litter", "月河农贸市场水产区", "地面积水", "wuxing-yuehe-market"),
    ("market-litter", "南浔农贸市场北侧通道", "零星垃圾未清", "nanxun-town-market"),
    ("market-litter", "双林农贸市场", "熟食区纸屑散落", "nanxun-shuanglin-market"),
    ("market-hygiene", "武康农贸市场", "垃圾桶满溢", "deqing-wukang-market"),
    ("site-dust", "吴兴区重点建筑工地（演示）", "出入口未冲洗，道路扬尘", "wuxing-site"),
    ("site-dust", "南浔区重点建筑工地（演示）", "渣土未覆盖", "nanxun-site"),
    ("road-damage", "吴兴区飞英街道红旗路88号", "人行道砖块松动", "wuxing-feiying"),
    ("road-damage", "衣裳街口", "路面坑洼积水", "wuxing-aishan"),
    # Names no unit: the dispatcher guesses, the street that is not it sends it back saying whose it is.
    ("road-damage", "人民广场西侧", "井盖破损", "wuxing-aishan"),
)
HANDLED_SHARE = 0.7
FAILED_CHECK_SHARE = 0.2
INSPECTOR = "user:xunchayuan"


@dataclass
class CaseDay:
    """The month's cases and what came of them."""

    draws: random.Random = field(default_factory=lambda: random.Random(20261215))
    owners: dict[int, str] = field(default_factory=dict)  # case id → the unit it really belongs to
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
            owner = self.owners.get(item.case_id or 0, item.unit_id)
            if owner != item.unit_id:
                if cases.waiting_request(session, item.id or 0) is None:
                    reason = f"该点位不属于本单位管辖，应属{ctx.program.units[owner].name}"
                    asked = cases.Asked("return", reason, form_id=f"month-{item.id}")
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
        category, place, note, owner = self.draws.choice(FOUND)
        new = cases.NewCase(category_id=category, place=place, note=note)
        filed = cases.file_case(session, ctx, new, reporter=INSPECTOR, source="inspector", at=moment)
        cases.send_now(session, ctx, filed.delivery_ids, at=moment)
        self.owners[filed.case.id or 0] = owner
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
            # A first guess among the category's units; after a 退回, the unit the returning one named.
            owner = self.owners.get(case.id or 0)
            guess = self.draws.choice(cases.candidates(ctx.program, category))
            target = owner if owner and _returned_by(session, case) else guess
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
