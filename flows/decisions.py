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
