"""Cases on the ledger: filed, dispatched with a clock, climbing the category's own ladder, pushed back by the unit,
verified and closed, with the messages at the real SMTP receiver."""

from __future__ import annotations

import pytest
from sqlmodel import Session, col

from calendars.loader import Program
from flows import cases, steps
from flows.cases import Asked, CaseError, NewCase
from flows.common import Context
from flows.runtime import make_context
from flows.steps import confirm
from notify.receivers import Inbox
from notify.send import send_apprise
from store import db
from store.models import Case, Escalation, Occurrence
from tests.conftest import local


def _file(session: Session, ctx: Context, place: str = "飞英农贸市场东门", **extra: object) -> cases.Filed:
    new = NewCase(category_id=extra.pop("category", "market-litter"), place=place, note="门口一堆菜叶", **extra)  # type: ignore[arg-type]
    return cases.file_case(
        session, ctx, new, reporter="user:inspector1", source="inspector", at=local("2026-03-03 09:00")
    )


def test_a_case_is_dispatched_at_once_and_its_first_message_sent(
    session: Session, ctx: Context, fresh_inbox: Inbox
) -> None:
    filed = _file(session, ctx)
    item = session.get(Occurrence, filed.case.occurrence_id)
    assert item is not None and item.unit_id == "wuxing-feiying-market" and item.period == f"C{filed.case.id}"
    assert item.due_at == local("2026-03-03 09:30")
    assert item.next_escalate_at == local("2026-03-03 09:30")
    cases.send_now(session, ctx, filed.delivery_ids, at=local("2026-03-03 09:00"))
    subjects = [mail.subject for mail in fresh_inbox.mails]
    assert any("【案件派遣】市场零星垃圾、积水：飞英农贸市场东门" in subject for subject in subjects), subjects


def test_the_same_external_id_is_one_case(session: Session, ctx: Context) -> None:
    first = _file(session, ctx, external_id="12345-0001")
    again = _file(session, ctx, external_id="12345-0001")
    assert first.created and not again.created and again.case.id == first.case.id


def test_an_unknown_category_is_refused_and_nothing_written(session: Session, ctx: Context) -> None:
    with pytest.raises(CaseError, match="没有编号为 nope 的案件类别"):
        _file(session, ctx, category="nope")
    assert session.query(Case).count() == 0


def test_a_place_naming_no_unit_waits_for_the_dispatcher(session: Session, ctx: Context) -> None:
    filed = _file(session, ctx, place="人民广场")
    assert filed.case.occurrence_id is None and [c.id for c in cases.undispatched(session)] == [filed.case.id]
    item = cases.reassign(
        session,
        ctx,
        case_id=filed.case.id or 0,
        unit_id="wuxing-yuehe-market",
        reason="月河市场",
        actor="city",
        at=local("2026-03-03 09:10"),
    )
    assert item.unit_id == "wuxing-yuehe-market" and item.due_at == local("2026-03-03 09:40")


def test_the_short_ladder_climbs_at_thirty_minutes_and_two_hours(
    session: Session, ctx: Context, fresh_inbox: Inbox
) -> None:
    filed = _file(session, ctx)
    assert cases.supervise(session, ctx, at=local("2026-03-03 09:29")).climbed == 0
    assert cases.supervise(session, ctx, at=local("2026-03-03 09:31")).climbed == 1
    item = session.get(Occurrence, filed.case.occurrence_id, populate_existing=True)
    assert item is not None and item.level == 1 and item.next_escalate_at == local("2026-03-03 11:00")
    assert cases.supervise(session, ctx, at=local("2026-03-03 11:01")).climbed == 1
    levels = session.query(Escalation).filter(col(Escalation.occurrence_id) == item.id).all()
    assert sorted(e.name for e in levels) == ["交办", "督办"]


def test_a_return_goes_back_to_the_dispatcher_and_a_failed_check_reopens(
    session: Session, ctx: Context, fresh_inbox: Inbox
) -> None:
    filed = _file(session, ctx)
    first = filed.case.occurrence_id or 0
    request = cases.ask(
        session,
        ctx,
        occurrence_id=first,
        asked=Asked("return", "不是本市场范围", form_id="f1"),
        at=local("2026-03-03 09:05"),
    )
    assert (
        cases.ask(
            session,
            ctx,
            occurrence_id=first,
            asked=Asked("return", "again", form_id="f1"),
            at=local("2026-03-03 09:06"),
        ).id
        == request.id
    )
    cases.decide(
        session,
        ctx,
        request_id=request.id or 0,
        approve=True,
        answer="同意，改派",
        actor="city",
        at=local("2026-03-03 09:08"),
        role="city",
    )
    case = session.get(Case, filed.case.id, populate_existing=True)
    assert case is not None and case.occurrence_id is None
    item = cases.reassign(
        session,
        ctx,
        case_id=case.id or 0,
        unit_id="wuxing-yuehe-market",
        reason="属月河",
        actor="city",
        at=local("2026-03-03 09:10"),
    )
    assert item.period == f"C{case.id}.2"
    from flows.steps import confirm

    confirm(session, occurrence_id=item.id or 0, note="已清扫", evidence=[], at=local("2026-03-03 09:20"), client="t")
    with pytest.raises(CaseError, match="请填写理由"):
        cases.verify(
            session,
            ctx,
            case_id=case.id or 0,
            passed=False,
            note="",
            actor="inspector1",
            at=local("2026-03-03 09:25"),
            role="city",
        )
    cases.verify(
        session,
        ctx,
        case_id=case.id or 0,
        passed=False,
        note="仍有积水",
        actor="inspector1",
        at=local("2026-03-03 09:25"),
        role="city",
    )
    again = session.get(Occurrence, item.id, populate_existing=True)
    assert again is not None and again.done_at is None
    confirm(
        session,
        occurrence_id=item.id or 0,
        note="积水已清",
        evidence=[],
        at=local("2026-03-03 09:35"),
        client="t",
        form_id="2",
    )
    closed = cases.verify(
        session,
        ctx,
        case_id=case.id or 0,
        passed=True,
        note="",
        actor="inspector1",
        at=local("2026-03-03 09:40"),
        role="city",
    )
    assert closed.closed_at == local("2026-03-03 09:40")
    assert cases.case_status(closed, item, local("2026-03-03 09:41")) == "closed"
    dispatched = [mail for mail in fresh_inbox.mails if "【案件派遣】" in mail.subject]
    assert len(dispatched) == 1 and "wuxing-yuehe-market" in " ".join(
        dispatched[0].recipients
    )  # the reassignment is sent at once


def test_the_loop_on_each_database(store: str, program: Program, fresh_inbox: Inbox) -> None:
    """Filing (idempotent on the caller's id), the 30-minute climb, a 退回 decided and a reassignment, closing: on
    SQLite and on the real PostgreSQL, where the unique keys and NULLs behave as written."""
    with db.session_scope() as session:
        steps.sync_program(session, program, at=local("2026-03-03 08:00"))
        ctx = make_context(session, program, send=send_apprise)
        first = _file(session, ctx, external_id="12345-9")
        assert not _file(session, ctx, external_id="12345-9").created
        assert _file(session, ctx).created and _file(session, ctx).created  # no external id: each is a case
        assert cases.supervise(session, ctx, at=local("2026-03-03 09:31")).climbed == 3
        item_id = first.case.occurrence_id or 0
        asked = cases.ask(
            session, ctx, occurrence_id=item_id, asked=Asked("return", "不归本市场"), at=local("2026-03-03 09:40")
        )
        cases.decide(
            session,
            ctx,
            request_id=asked.id or 0,
            approve=True,
            answer="同意",
            actor="boss",
            at=local("2026-03-03 09:45"),
            role="city",
        )
        again = cases.reassign(
            session,
            ctx,
            case_id=first.case.id or 0,
            unit_id="wuxing-yuehe-market",
            reason="属月河",
            actor="boss",
            at=local("2026-03-03 09:50"),
        )
        confirm(
            session, occurrence_id=again.id or 0, note="已处置", evidence=[], at=local("2026-03-03 10:00"), client="t"
        )
        closed = cases.verify(
            session,
            ctx,
            case_id=first.case.id or 0,
            passed=True,
            note="",
            actor="boss",
            at=local("2026-03-03 10:05"),
            role="city",
        )
        assert closed.closed_at == local("2026-03-03 10:05") and closed.dispatches == 2
        assert [c.id for c in cases.undispatched(session)] == []
