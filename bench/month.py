"""A simulated month of the demo, read as its recipients read it: how many messages each one got, and how many
escalation messages any one recipient got in a single tick.

    python -m bench.month [--start 2026-03-02] [--days 45] [--every 15] [--confirm 0.5] [--inbox DIR] [--keep DIR]

The shipped calendars and demo units, a fresh SQLite store, and the local SMTP and HTTP receivers; one tick every
``--every`` minutes from 08:00 to 18:00. Each working day at 10:00 each unit confirms, with probability ``--confirm``
(fixed seed), the items due within three days, and at 11:00 a city manager approves every waiting 约谈. A spot check
that rates markets names one, drawn with its own fixed seed, and finds it 不合格 about one time in four, so the
month's 红黑榜 has results to rank. Nothing here
is a speed measurement: the output is what the office would receive (docs/benchmarks.md keeps the figures).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlmodel import Session, col

from notify.receivers import Inbox

if TYPE_CHECKING:
    from bench.month_cases import CaseDay
    from calendars.loader import Program
    from flows.common import Context
    from flows.spot_checks import SpotCheck
    from store.models import Occurrence

REPO = Path(__file__).resolve().parent.parent
ZONE = ZoneInfo("Asia/Shanghai")
ESCALATION = re.compile(r"【(交办|督办|约谈)通知|【升级通知】|【抄送】")
FAILED_SHARE = 0.25  # of spot checks that find a market 不合格
PROBLEMS = (
    "市场周边垃圾未及时清运",
    "摊位前地面油污、积水未清理",
    "公共厕所保洁不到位，有异味",
    "垃圾分类桶满溢，未及时更换",
    "市场出入口乱堆放杂物",
)


@dataclass
class Tally:
    """Messages per recipient (a mailbox, or a bot's path), and escalation messages in the worst tick."""

    inbox: Inbox
    messages: Counter[str] = field(default_factory=Counter)
    escalations: Counter[str] = field(default_factory=Counter)
    worst_tick: Counter[str] = field(default_factory=Counter)
    seen: tuple[int, int] = (0, 0)

    def count_new(self) -> None:
        arrived = [(m.recipients[0], m.subject) for m in self.inbox.mails[self.seen[0] :]]
        arrived += [(p.path.split("?")[0], str(p.payload)[:200]) for p in self.inbox.posts[self.seen[1] :]]
        self.seen = (len(self.inbox.mails), len(self.inbox.posts))
        this_tick: Counter[str] = Counter()
        for who, heading in arrived:
            self.messages[who] += 1
            if ESCALATION.search(heading):
                self.escalations[who] += 1
                this_tick[who] += 1
        for who, count in this_tick.items():
            self.worst_tick[who] = max(self.worst_tick[who], count)

    def report(self, days: int) -> str:
        lines = [
            f"| recipient | messages in {days} days | escalation messages | most escalation messages in one tick |",
            "|---|---|---|---|",
        ]
        for who, count in self.escalations.most_common(12):
            lines.append(f"| {who} | {self.messages[who]} | {count} | {self.worst_tick[who]} |")
        lines.append(
            f"\nall recipients: {sum(self.messages.values())} messages, "
            f"{sum(self.escalations.values())} escalation messages; most escalation messages to one recipient in "
            f"one tick: {max(self.worst_tick.values(), default=0)}"
        )
        return "\n".join(lines)


def prepare(folder: Path, inbox: Inbox) -> None:
    """The shipped calendars with the demo contacts pointed at this run's receivers, and the settings for them."""
    target = inbox.calendars_for(REPO / "calendars", folder / "calendars")
    os.environ.update(
        DUTIES_VAR_DIR=str(folder / "var"),
        DUTIES_CALENDARS=str(target),
        DUTIES_SECRET_KEY="month",
        DUTIES_UNANNOUNCED_SEED="month",
    )


def simulate(tally: Tally, start: date, days: int, every: int, confirm_share: float) -> CaseDay:
    from bench.month_cases import CaseDay
    from flows import ladder, runtime, steps
    from store.db import create_tables, get_engine, session_scope

    chooser = random.Random(20261203)
    results = random.Random(20261204)  # its own draws: the confirmations stay those of a run without results
    program = runtime.load_calendars()
    create_tables(get_engine())
    found = CaseDay()
    with session_scope() as session:
        ctx = runtime.make_context(session, program)
        for day in (start + timedelta(days=n) for n in range(days)):
            moment = datetime.combine(day, time(8, 0), tzinfo=ZONE)
            while moment.time() <= time(18, 0):
                if program.workdays.is_workday(day):
                    found.at_tick(session, ctx, moment)
                if moment.time() == time(10, 0) and program.workdays.is_workday(day):
                    confirm_some(session, chooser, confirm_share, moment, checks=(ctx, results))
                if moment.time() == time(11, 0) and program.workdays.is_workday(day):
                    found.at_eleven(session, ctx, moment)
                    for escalation, _ in ladder.pending(session):
                        try:
                            ladder.approve(session, ctx, escalation_id=escalation.id or 0, actor="user:boss", at=moment)
                        except ladder.LadderError:
                            session.rollback()
                steps.tick(session, ctx, at=moment)
                tally.count_new()
                moment += timedelta(minutes=every)
    return found


def confirm_some(
    session: Session,
    chooser: random.Random,
    share: float,
    moment: datetime,
    *,
    checks: tuple[Context, random.Random] | None = None,
) -> None:
    from flows import spot_checks, steps
    from store.models import Occurrence

    query = select(Occurrence).where(
        col(Occurrence.case_id).is_(None),  # cases are handled by bench/month_cases.py
        col(Occurrence.done_at).is_(None),
        col(Occurrence.waived_at).is_(None),
        col(Occurrence.due_at) <= moment + timedelta(days=3),
        col(Occurrence.first_remind_at) <= moment,
    )
    for item in session.execute(query.order_by(col(Occurrence.id))).scalars().all():
        if chooser.random() < share:
            check = spot_check(session, item, checks[0].program, checks[1]) if checks else None
            steps.confirm(
                session, occurrence_id=item.id or 0, note="已完成", evidence=[], at=moment, client="month", check=check
            )
            if checks and check is not None and not check.passed:  # as the check's own page does
                spot_checks.file_finding(session, checks[0], occurrence=item, form_id="single", at=moment)


def spot_check(session: Session, item: Occurrence, program: Program, draws: random.Random) -> SpotCheck | None:
    """What the item's check found at one market of its district, for a spot check that rates markets."""
    from flows import spot_checks
    from store.models import Duty, Unit

    duty, checker = session.get(Duty, item.duty_id), session.get(Unit, item.unit_id)
    if duty is None or checker is None or item.finding_id is not None:
        return None
    subjects = spot_checks.subjects_for(session, program, spot_checks.selectors_of(duty), checker)
    if not subjects:
        return None
    market = draws.choice(subjects)
    if draws.random() < FAILED_SHARE:
        return spot_checks.SpotCheck(market.id, False, draws.choice(PROBLEMS))
    return spot_checks.SpotCheck(market.id, True)


def main() -> None:
    parser = argparse.ArgumentParser(description="A simulated month of the demo, counted per recipient.")
    parser.add_argument("--start", default="2026-03-02")
    parser.add_argument("--days", type=int, default=45)
    parser.add_argument("--every", type=int, default=15, help="minutes between ticks")
    parser.add_argument("--confirm", type=float, default=0.5, help="share of items units confirm on time")
    parser.add_argument("--inbox", type=Path, help="also write every message received here, to read them")
    parser.add_argument(
        "--keep", type=Path, help="keep the store and calendars here and receive on 8025/8026 into DIR/var/inbox"
    )
    args = parser.parse_args()
    inbox = (demo_inbox(args.keep.resolve()) if args.keep else Inbox(folder=args.inbox)).start()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            folder = args.keep.resolve() if args.keep else Path(scratch)
            prepare(folder, inbox)
            tally = Tally(inbox)
            found = simulate(tally, date.fromisoformat(args.start), args.days, args.every, args.confirm)
            print(tally.report(args.days))
            print(found.report())
            if args.keep:
                print(f"\nthe store is kept: {' '.join(f'{k}={os.environ[k]}' for k in KEPT)} duties …")
    finally:
        inbox.stop()


def demo_inbox(folder: Path) -> Inbox:
    """A kept run receives on the demo's own ports into its var/inbox/, as `duties receivers` does: after the run,
    `duties receivers` and `duties dispatch` on the kept store go on delivering to the same place."""
    return Inbox(folder=folder / "var" / "inbox", smtp_port=8025, http_port=8026)


KEPT = ("DUTIES_VAR_DIR", "DUTIES_CALENDARS", "DUTIES_SECRET_KEY", "DUTIES_UNANNOUNCED_SEED")


if __name__ == "__main__":
    main()
