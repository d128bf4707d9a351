"""A manager's decision that changes a unit's obligations reaches the unit: 延期, 挂账, 返工, 免除, a failed 核查.

Each is one message to the unit's recipients, with the decision, the manager's reason, what it means for the unit
now, and the item's link where the unit has something to do. The desk and the API both call ``tell_unit`` after an
action has been committed; a decision is never silent.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from flows.common import Context
from flows.notices import confirmation_link, queue, recipients_of, title_and_body, unit_link, unit_version
from store.models import Occurrence
from templates import render

# The desk's action → what the unit is told was decided. 记录约谈 is not among them: the unit attended it.
DECISIONS = {
    "extend": "同意延期",
    "park": "挂账",
    "reopen": "返工",
    "waive": "免除",
    "verify": "核查不通过",
}


def tell_unit(
    session: Session, ctx: Context, *, occurrence_id: int, action: str, reason: str, at: datetime, passed: bool = False
) -> bool:
    """Queue the message about ``action`` on the item to its unit; the caller commits. False when nothing to say."""
    occurrence = session.get(Occurrence, occurrence_id, populate_existing=True)
    duty = ctx.program.duties.get(occurrence.duty_id) if occurrence else None
    if occurrence is None or duty is None or action not in DECISIONS or (action == "verify" and passed):
        return False
    open_now = occurrence.status_at(at) in ("scheduled", "due", "overdue")
    text = render(
        "messages/decision.txt.j2",
        unit=ctx.program.units[occurrence.unit_id],
        occurrence=occurrence,
        duty=duty,
        decision=DECISIONS[action],
        action=action,
        reason=reason.strip(),
        link=confirmation_link(ctx.settings, ctx.secret, occurrence, at=at) if open_now else "",
        unit_link=unit_link(ctx.settings, ctx.secret, occurrence.unit_id, at=at, version=unit_version(occurrence)),
        programme=ctx.program.programme,
        zone=ctx.zone,
        at=at,
    )
    title, body = title_and_body(text)
    contacts = recipients_of(session, [occurrence.unit_id], roles=("staff", "leader"))
    queue(session, ctx, occurrence, f"decision:{action}@{at:%Y%m%d%H%M%S}", contacts, title, body, at=at)
    return True


def tell_units(
    session: Session, ctx: Context, *, occurrence_ids: list[int], action: str, reason: str, at: datetime
) -> int:
    """The same decision on many items (a bulk action): one message per unit listing its items. Returns how many
    units were told; the caller commits."""
    items = [session.get(Occurrence, i, populate_existing=True) for i in occurrence_ids]
    by_unit: dict[str, list[Occurrence]] = {}
    for item in items:
        if item is not None and item.duty_id in ctx.program.duties:
            by_unit.setdefault(item.unit_id, []).append(item)
    for unit_id, mine in by_unit.items():
        if len(mine) == 1:
            tell_unit(session, ctx, occurrence_id=mine[0].id or 0, action=action, reason=reason, at=at)
            continue
        entries = [
            {
                "item": item,
                "link": confirmation_link(ctx.settings, ctx.secret, item, at=at)
                if item.status_at(at) in ("scheduled", "due", "overdue")
                else "",
            }
            for item in mine
        ]
        text = render(
            "messages/decisions.txt.j2",
            unit=ctx.program.units[unit_id],
            entries=entries,
            decision=DECISIONS[action],
            action=action,
            reason=reason.strip(),
            unit_link=unit_link(ctx.settings, ctx.secret, unit_id, at=at, version=unit_version(mine[0])),
            programme=ctx.program.programme,
            zone=ctx.zone,
            at=at,
        )
        title, body = title_and_body(text)
        contacts = recipients_of(session, [unit_id], roles=("staff", "leader"))
        queue(session, ctx, mine[0], f"decision:{action}@{at:%Y%m%d%H%M%S}", contacts, title, body, at=at)
    return len(by_unit)
