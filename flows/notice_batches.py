"""Escalation notices, grouped: each recipient hears once per pass, however many notices concern it.

The ladder numbers a notice (or counts a repeat) and leaves ``Escalation.notified_at`` empty. This pass then takes
every notice still waiting, claims it by setting ``notified_at`` in the same transaction that queues its messages,
and groups them by recipient:

- the unit's own recipients (``unit``, ``unit_leaders`` in the level's audience) get their notices: the numbered
  document itself when there is one, else one message listing each notice with its number, deadline and link;
- copied offices (``lead``, ``city_office``, ``district_office``) get one 抄送 summary per pass, with no action
  links: a lead department must not confirm on the unit's behalf. Repeats are not copied: the office was told once.

A crash between numbering and this pass loses nothing: the next pass finds the notices still waiting.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlmodel import Session

from calendars.schema import DutySpec, LadderSpec, LevelSpec
from flows.common import SYSTEM, Context
from flows.notices import (
    Outgoing,
    confirmation_link,
    message,
    recipients_by_unit,
    title_and_body,
    unit_link,
    unit_version,
)
from store.models import Contact, Escalation, Occurrence, Unit
from templates import render

LISTED = 30  # notices listed in one message; the rest are counted, with a link to where they all are
OWN = {"unit": ("staff",), "unit_leaders": ("leader",)}


@dataclass(frozen=True, eq=False)  # compared and hashed as itself: the rows it holds are not hashable
class Notice:
    escalation: Escalation
    occurrence: Occurrence
    duty: DutySpec
    ladder: LadderSpec
    step: LevelSpec

    @property
    def key(self) -> tuple[int, int]:
        return self.escalation.id or 0, self.escalation.repeats


def queue_notices(session: Session, ctx: Context, *, at: datetime) -> int:
    """Queue the messages for every notice waiting whose sending window is open. Returns how many messages."""
    notices = _claim_waiting(session, ctx, at)
    own, contacts = _own_recipients(session, notices)
    copies = _copy_recipients(session, ctx, [n for n in notices if n.escalation.repeats == 0], contacts)
    outgoing = Outgoing()
    groups = _groups(own, copies)
    for (addressed, copied), members in groups.items():
        stage, title, body = _message(session, ctx, addressed, copied, at=at)
        first = addressed[0] if addressed else _first_copied(copied)
        outgoing.queue(ctx, first.occurrence, stage, [contacts[c] for c in members], title, body, at=at)
    for notice in notices:
        outgoing.audit(
            at=at,
            actor=SYSTEM,
            action="notice_queued",
            occurrence_id=notice.occurrence.id,
            level=notice.step.level,
            document=notice.escalation.document,
            repeat=notice.escalation.repeats,
            recipients=sum(1 for listed in own.values() if notice in listed),
        )
    outgoing.write(session)
    session.commit()
    return len(groups)


def _claim_waiting(session: Session, ctx: Context, at: datetime) -> list[Notice]:
    """Take the waiting notices whose sending window is open; another worker's pass cannot take the same ones.

    A notice outside its window (at night, at the weekend) keeps waiting instead of being queued for the morning:
    then the morning's pass groups it with the others, and the unit gets one message, not one per night tick.
    """
    col, items_col = Escalation.__table__.c, Occurrence.__table__.c  # type: ignore[attr-defined]
    waiting = (
        select(Escalation, Occurrence)
        .join(Occurrence, items_col.id == col.occurrence_id)
        .where(col.status == "issued", col.notified_at.is_(None))
        .order_by(items_col.unit_id, col.id)
    )
    rows = [(e, o) for e, o in session.execute(waiting).tuples() if _window_open(ctx, o, at)]
    if not rows:
        return []
    ids = [e.id for e, _ in rows]
    taking = update(Escalation.__table__).where(col.id.in_(ids), col.notified_at.is_(None)).values(notified_at=at)  # type: ignore[attr-defined]
    won = set(session.execute(taking.returning(col.id)).scalars())
    return [n for e, o in rows if e.id in won and (n := _notice(ctx, e, o, at))]


def _window_open(ctx: Context, occurrence: Occurrence, at: datetime) -> bool:
    duty = ctx.program.duties.get(occurrence.duty_id)
    if duty is None or not ctx.settings.send_windows:
        return True
    return ctx.program.workdays.window_opening(at, duty.send_window, ctx.zone) <= at


def _notice(ctx: Context, escalation: Escalation, occurrence: Occurrence, at: datetime) -> Notice | None:
    """The notice to send, or None when the item was closed meanwhile (it is then dropped, already claimed)."""
    duty = ctx.program.duties.get(occurrence.duty_id)
    ladder = ctx.program.ladders.get(duty.ladder) if duty else None
    if duty is None or ladder is None or occurrence.status_at(at) not in ("overdue", "due", "scheduled"):
        return None
    return Notice(escalation, occurrence, duty, ladder, ladder.levels[escalation.level - 1])


Copied = tuple[str, tuple[Notice, ...]]  # the copied office's unit id, and the notices copied to it


def _first_copied(copied: Copied | None) -> Notice:
    assert copied is not None  # a group has own notices, copies, or both
    return copied[1][0]


def _own_recipients(session: Session, notices: list[Notice]) -> tuple[dict[int, list[Notice]], dict[int, Contact]]:
    """Each of the units' own recipients with the notices addressed to it (by the levels' audiences)."""
    units = sorted({n.occurrence.unit_id for n in notices})
    by_role = {role: recipients_by_unit(session, units, roles=roles) for role, roles in OWN.items()}
    wanted: dict[int, list[Notice]] = defaultdict(list)
    contacts: dict[int, Contact] = {}
    for notice in notices:
        for role in OWN:
            if role in notice.step.audience:
                for contact in by_role[role].get(notice.occurrence.unit_id, []):
                    wanted[contact.id or 0].append(notice)
                    contacts[contact.id or 0] = contact
    return wanted, contacts


def _copy_recipients(
    session: Session, ctx: Context, notices: list[Notice], contacts: dict[int, Contact]
) -> dict[int, Copied]:
    """Each copied office's recipients with the other units' notices copied to it; ``contacts`` gains them."""
    copied: dict[str, list[Notice]] = defaultdict(list)
    for notice in notices:
        for unit_id in _copied_units(ctx, notice):
            if unit_id != notice.occurrence.unit_id:  # a unit is not copied on its own notices
                copied[unit_id].append(notice)
    wanted: dict[int, Copied] = {}
    for unit_id, listed in copied.items():
        for contact in recipients_by_unit(session, [unit_id], roles=_copy_roles(ctx, unit_id)).get(unit_id, []):
            wanted[contact.id or 0] = (unit_id, tuple(sorted(listed, key=lambda n: n.key)))
            contacts[contact.id or 0] = contact
    return wanted


def _groups(
    own: dict[int, list[Notice]], copies: dict[int, Copied]
) -> dict[tuple[tuple[Notice, ...], Copied | None], list[int]]:
    """Recipients grouped by exactly what they get, own notices and copies: one message for each, rendered once.

    A recipient that gets both (the city office, about its own items and as the office copied on everyone's) gets
    them in one message.
    """
    groups: dict[tuple[tuple[Notice, ...], Copied | None], list[int]] = defaultdict(list)
    for contact_id in sorted(set(own) | set(copies)):
        addressed = tuple(sorted(own.get(contact_id, []), key=lambda n: n.key))
        groups[(addressed, copies.get(contact_id))].append(contact_id)
    return groups


def _message(
    session: Session, ctx: Context, addressed: tuple[Notice, ...], copied: Copied | None, *, at: datetime
) -> tuple[str, str, str]:
    """The stage, title and body of one recipient's message: its own notices, then any copies."""
    copy = _copy_message(ctx, session.get(Unit, copied[0]), list(copied[1]), at=at) if copied else None
    if not addressed:
        assert copied is not None and copy is not None
        first = copied[1][0]
        return f"cc:{first.key[0]}:{first.key[1]}", *copy
    stage, title, body = _own_message(ctx, addressed, at=at)
    if copied is None or copy is None:
        return stage, title, body
    copy_title, copy_body = copy
    return stage, f"{title}（另附抄送 {len(copied[1])} 份）", f"{body}\n——————\n\n{copy_title}\n\n{copy_body}"


def _copied_units(ctx: Context, notice: Notice) -> list[str]:
    program, unit_id = ctx.program, notice.occurrence.unit_id
    chosen: list[str] = []
    for who in notice.step.audience:
        if who == "lead":
            chosen += [u for selector in notice.duty.lead for u in program.resolve_near(selector, unit_id)]
        elif who == "city_office":
            chosen += program.resolve("kind:city_office")
        elif who == "district_office":
            chosen += program.resolve_near("kind:district_office", unit_id)
    return list(dict.fromkeys(chosen))


def _copy_roles(ctx: Context, unit_id: str) -> tuple[str, ...]:
    """The city office's leaders read the summary too; elsewhere the staff who handle it."""
    unit = ctx.program.units.get(unit_id)
    return ("staff", "leader") if unit is not None and unit.kind == "city_office" else ("staff",)


def _own_message(ctx: Context, group: Iterable[Notice], *, at: datetime) -> tuple[str, str, str]:
    """The stage and text of a unit's message: the notice itself when there is one, else the list of them."""
    notices = list(group)
    first = notices[0]
    if len(notices) == 1:
        repeat = first.escalation.repeats
        stage = f"level:{first.step.level}" + (f":repeat:{repeat}" if repeat else "")
        title, body = message(
            ctx,
            "escalation",
            first.occurrence,
            first.duty,
            at=at,
            step=first.step,
            ladder=first.ladder,
            deadline=first.escalation.deadline_at,
            document=first.escalation.document,
            repeat=repeat,
        )
        return stage, title, body
    entries = [{"notice": n, "link": confirmation_link(ctx.settings, ctx.secret, n.occurrence, at=at)} for n in notices]
    unit = ctx.program.units[first.occurrence.unit_id]
    text = render(
        "messages/notices.txt.j2",
        unit=unit,
        entries=entries[:LISTED],
        more=len(entries) - LISTED,
        unit_link=unit_link(ctx.settings, ctx.secret, unit.id, at=at, version=unit_version(first.occurrence)),
        programme=ctx.program.programme,
        zone=ctx.zone,
        at=at,
    )
    title, body = title_and_body(text)
    return f"notices:{first.key[0]}:{first.key[1]}", title, body


def _copy_message(ctx: Context, office: Unit | None, notices: list[Notice], *, at: datetime) -> tuple[str, str]:
    entries = [{"notice": n, "unit": ctx.program.units[n.occurrence.unit_id]} for n in notices]
    text = render(
        "messages/copy.txt.j2",
        office=office,
        entries=entries[:LISTED],
        more=len(entries) - LISTED,
        counts=_counts(notices),
        desk=f"{ctx.settings.base_url}/desk",
        programme=ctx.program.programme,
        zone=ctx.zone,
        at=at,
    )
    return title_and_body(text)


def _counts(notices: list[Notice]) -> str:
    """交办 3 份、督办 1 份: by level, in the ladder's order."""
    by_name: dict[str, int] = defaultdict(int)
    for notice in sorted(notices, key=lambda n: n.step.level):
        by_name[notice.step.name] += 1
    return "、".join(f"{name} {count} 份" for name, count in by_name.items())
