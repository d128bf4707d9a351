"""What a manager does to one item: extend, park, reopen, waive, record a 约谈, verify a confirmation.

Plain functions with ``at`` and ``actor``, shared by the desk and the API. Each checks that the action makes sense
for the item's status at ``at``, changes the row, writes an audit event and commits, or raises ``ActionError``
with a message in Chinese and changes nothing.

How the ladder takes them (DESIGN: the level is history, the clock moves):
- 延期 keeps the level and moves the clock: reminders restart towards the new due date, and the next escalation
  waits until the new due date.
- 挂账 stops reminders and escalation until the review date; the item keeps its level.
- 返工 (and a 核查 that fails) reopens a done, parked or waived item at the level it had; if it is already past
  due, the next escalation waits one day so the unit can redo the work first.

A level awaiting approval (a 约谈 for the city to approve) is settled by every action that changes the item: it is
withdrawn with the action as its reason (``ladder.withdraw_pending``). Only the approver's authority may do that: a
district account's action on an item in the city's approval queue is refused with the reason (``role``).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from sqlmodel import Session

from flows import ladder
from store.models import Confirmation, Occurrence, Talk
from store.queries import audit

REDO_GRACE = timedelta(days=1)
MAX_REASON = 500
MAX_MINUTES = 5000
ACTIONS = {
    "extend": "延期",
    "park": "挂账",
    "reopen": "返工",
    "waive": "免除",
    "talk": "记录约谈",
    "verify": "核查",
}


class ActionError(Exception):
    """An action that cannot be taken; the message says why, in Chinese, for the manager."""


def extend(
    session: Session,
    *,
    occurrence_id: int,
    due: datetime,
    reason: str,
    actor: str,
    at: datetime,
    role: str = "city",
) -> None:
    occurrence = _open_item(session, occurrence_id, at, action="extend")
    _need_reason(reason)
    if due <= at:
        raise ActionError("新的截止时间须晚于当前时间。")
    if due <= occurrence.due_at:
        raise ActionError("新的截止时间须晚于原截止时间。")
    _settle(session, occurrence, role=role, action="extend", actor=actor, at=at)
    previous = occurrence.due_at
    occurrence.due_at = due
    if occurrence.visible_from is not None:  # an unannounced check's new day stays hidden until that day too
        occurrence.visible_from += due - previous
    occurrence.next_remind_at = at  # the reminder step works out which reminder the new date calls for
    occurrence.next_escalate_at = due
    _done(session, occurrence, at, actor, "extended", reason=reason, previous_due=previous.isoformat())


def park(
    session: Session,
    *,
    occurrence_id: int,
    review_on: date,
    reason: str,
    actor: str,
    at: datetime,
    zone: Any,
    role: str = "city",
) -> None:
    occurrence = _open_item(session, occurrence_id, at, action="park")
    _need_reason(reason)
    review_at = datetime.combine(review_on, time(9, 0), tzinfo=zone)
    if review_at <= at:
        raise ActionError("复核日期须晚于今天。")
    _settle(session, occurrence, role=role, action="park", actor=actor, at=at)
    occurrence.parked_at = at
    occurrence.review_at = review_at
    _done(session, occurrence, at, actor, "parked", reason=reason, review_on=review_on.isoformat())


def reopen(session: Session, *, occurrence_id: int, reason: str, actor: str, at: datetime, role: str = "city") -> None:
    occurrence = _item(session, occurrence_id)
    if occurrence.status_at(at) not in ("done", "late_done", "parked", "waived"):
        raise ActionError("只有已完成、挂账或免除的事项可以返工。")
    _need_reason(reason)
    _settle(session, occurrence, role=role, action="reopen", actor=actor, at=at)
    _reopen(occurrence, at)
    _done(session, occurrence, at, actor, "reopened", reason=reason)


def waive(session: Session, *, occurrence_id: int, reason: str, actor: str, at: datetime, role: str = "city") -> None:
    occurrence = _open_item(session, occurrence_id, at, action="waive", parked_ok=True)
    _need_reason(reason)
    _settle(session, occurrence, role=role, action="waive", actor=actor, at=at)
    occurrence.waived_at = at
    occurrence.next_remind_at = occurrence.next_escalate_at = None
    _done(session, occurrence, at, actor, "waived", reason=reason)


def record_talk(
    session: Session,
    *,
    occurrence_id: int,
    held_on: date,
    attendees: str,
    minutes: str,
    actor: str,
    at: datetime,
    role: str = "city",
) -> int:
    """Record a 约谈; returns the talk's id. A talk may be recorded whatever the item's status."""
    occurrence = _item(session, occurrence_id)
    if not attendees.strip():
        raise ActionError("请填写参加约谈的人员。")
    if not minutes.strip():
        raise ActionError("请填写约谈纪要。")
    if len(minutes) > MAX_MINUTES or len(attendees) > MAX_REASON:
        raise ActionError(f"参加人员最多 {MAX_REASON} 字，纪要最多 {MAX_MINUTES} 字。")
    if held_on > at.date() + timedelta(days=1):
        raise ActionError("约谈日期不能晚于今天：请在约谈后记录。")
    _settle(session, occurrence, role=role, action="talk", actor=actor, at=at)
    talk = Talk(
        occurrence_id=occurrence_id,
        held_on=held_on,
        attendees=attendees.strip(),
        minutes=minutes.strip(),
        recorded_by=actor,
        recorded_at=at,
    )
    session.add(talk)
    session.flush()
    _done(session, occurrence, at, actor, "talk_recorded", held_on=held_on.isoformat(), talk=talk.id)
    return talk.id or 0


def verify(
    session: Session,
    *,
    occurrence_id: int,
    confirmation_id: int,
    passed: bool,
    note: str,
    actor: str,
    at: datetime,
    role: str = "city",
) -> None:
    """核查 a unit's report. A fail takes its amount back, reopens the item and counts against the unit."""
    occurrence = _item(session, occurrence_id)
    report = session.get(Confirmation, confirmation_id)
    if report is None or report.occurrence_id != occurrence_id:
        raise ActionError("该确认记录不属于此事项。")
    if report.verdict:
        raise ActionError("该确认记录已核查过。")
    if not passed:
        _need_reason(note)
    report.verdict, report.verified_by, report.verified_at = ("pass" if passed else "fail"), actor, at
    if not passed:
        occurrence.achieved = max(occurrence.achieved - report.amount, 0.0)
        if occurrence.done_at is not None and occurrence.achieved < occurrence.required:
            _settle(session, occurrence, role=role, action="verify", actor=actor, at=at)
            _reopen(occurrence, at)
    action = "verified_pass" if passed else "verified_fail"
    _done(session, occurrence, at, actor, action, confirmation=confirmation_id, note=note.strip())


def _item(session: Session, occurrence_id: int) -> Occurrence:
    occurrence = session.get(Occurrence, occurrence_id, populate_existing=True)
    if occurrence is None:
        raise ActionError("事项不存在。")
    return occurrence


def _open_item(
    session: Session, occurrence_id: int, at: datetime, *, action: str, parked_ok: bool = False
) -> Occurrence:
    occurrence = _item(session, occurrence_id)
    status = occurrence.status_at(at)
    allowed = {"scheduled", "due", "overdue"} | ({"parked"} if parked_ok else set())
    if status not in allowed:
        raise ActionError(f"该事项当前状态不能{ACTIONS[action]}。")
    return occurrence


def _settle(session: Session, occurrence: Occurrence, *, role: str, action: str, actor: str, at: datetime) -> None:
    """Withdraw the item's level awaiting approval, which this action makes moot; only the approver may."""
    waiting = ladder.has_pending(session, occurrence.id or 0)
    if not waiting:
        return
    if role != "city":
        raise ActionError(f"该事项的{waiting}正待市级审批，区县账号不能{ACTIONS[action]}；请联系市级管理员处理。")
    ladder.withdraw_pending(session, occurrence, reason=f"{ACTIONS[action]}（{actor}）", actor=actor, at=at)


def _need_reason(reason: str) -> None:
    if not reason.strip():
        raise ActionError("请填写理由。")
    if len(reason) > MAX_REASON:
        raise ActionError(f"理由最多 {MAX_REASON} 字。")


def _reopen(occurrence: Occurrence, at: datetime) -> None:
    occurrence.done_at = occurrence.parked_at = occurrence.review_at = occurrence.waived_at = None
    if occurrence.achieved >= occurrence.required:
        occurrence.achieved = 0.0  # the work is to be done again: the old reports no longer count
    occurrence.next_remind_at = at
    occurrence.next_escalate_at = max(occurrence.due_at, at + REDO_GRACE)


def _done(session: Session, occurrence: Occurrence, at: datetime, actor: str, action: str, **detail: Any) -> None:
    audit(session, at=at, actor=actor, action=action, occurrence_id=occurrence.id, level=occurrence.level, **detail)
    session.add(occurrence)
    session.commit()
