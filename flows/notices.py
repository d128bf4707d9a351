"""Messages: the signed links they carry, who receives them, rendering, and handing them to the outbox."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from calendars.schema import DutySpec
from flows.common import Context
from notify import outbox
from store.models import Contact, Delivery, Occurrence, Unit
from store.queries import audit_many, insert_ignoring_conflicts
from store.settings import Settings
from templates import render
from web.tokens import make_token, make_unit_token


def confirmation_link(settings: Settings, secret: str, occurrence: Occurrence, *, at: datetime) -> str:
    """A signed link for the occurrence's unit, valid until link_valid_days after the later of due date and now.

    Empty for an item whose links a manager revoked: none is issued until one is re-issued, and a message says so
    where the link would stand (``messages/links.txt.j2``).
    """
    if occurrence.links_revoked:
        return ""
    expires = max(occurrence.due_at, at) + timedelta(days=settings.link_valid_days)
    token = make_token(
        secret,
        occurrence_id=occurrence.id or 0,
        unit_id=occurrence.unit_id,
        expires_at=expires,
        version=occurrence.link_version,
    )
    return f"{settings.base_url}/c/{token}"


def unit_link(settings: Settings, secret: str, unit_id: str, *, at: datetime, version: int = 0) -> str:
    """A signed link to the unit's own page of open items, valid for link_valid_days.

    ``version`` is the unit's link version (``Unit.link_version``): a link made with an older one is refused.
    """
    expires = at + timedelta(days=settings.link_valid_days)
    token = make_unit_token(secret, unit_id=unit_id, expires_at=expires, version=version)
    return f"{settings.base_url}/u/{token}"


def unit_version(occurrence: Occurrence) -> int:
    """The link version of the item's unit, read through the session that holds the item.

    Messages are rendered from items a step has loaded; the unit row is then in the same session, so asking for it
    again costs nothing. A detached item gives 0: its unit link then fails closed after a revocation.
    """
    session = Session.object_session(occurrence)
    unit = session.get(Unit, occurrence.unit_id) if session is not None else None
    return unit.link_version if unit is not None else 0


def message(
    ctx: Context, template: str, occurrence: Occurrence, duty: DutySpec, *, at: datetime, **extra: Any
) -> tuple[str, str]:
    program = ctx.program
    leads = [program.units[u].name for s in duty.lead for u in program.resolve_near(s, occurrence.unit_id)]
    context = {
        "programme": program.programme,  # the document cited and the office that signs (templates/__init__.py)
        "ladder": program.ladders.get(duty.ladder),
        "occurrence": occurrence,
        "duty": duty,
        "unit": program.units[occurrence.unit_id],
        "leads": "、".join(dict.fromkeys(leads)),
        "link": confirmation_link(ctx.settings, ctx.secret, occurrence, at=at),
        "unit_link": unit_link(ctx.settings, ctx.secret, occurrence.unit_id, at=at, version=unit_version(occurrence)),
        "zone": ctx.zone,
        "at": at,
    }
    return title_and_body(render(f"messages/{template}.txt.j2", **{**context, **extra}))


def title_and_body(text: str) -> tuple[str, str]:
    """A rendered message template: its first line is the title, the rest the body."""
    title, _, body = text.partition("\n")
    return title.strip(), body.strip() + "\n"


def recipients_of(session: Session, unit_ids: list[str], *, roles: tuple[str, ...]) -> list[Contact]:
    """Who hears of it: every active contact, or for a failover unit only its first (the rest wait their turn)."""
    by_unit = recipients_by_unit(session, unit_ids, roles=roles)
    return [contact for unit_id in sorted(by_unit) for contact in by_unit[unit_id]]


def recipients_by_unit(session: Session, unit_ids: list[str], *, roles: tuple[str, ...]) -> dict[str, list[Contact]]:
    """``recipients_of`` for each unit, in two queries however many units there are."""
    if not unit_ids:
        return {}
    col = Contact.__table__.c  # type: ignore[attr-defined]
    query = select(Contact).where(col.unit_id.in_(unit_ids), col.role.in_(roles), col.active.is_(True))
    contacts = session.execute(query.order_by(col.unit_id, col.priority, col.id)).scalars()
    units = Unit.__table__.c  # type: ignore[attr-defined]
    failover_query = select(units.id).where(units.id.in_(unit_ids), units.delivery == "failover")
    failover = set(session.execute(failover_query).scalars())
    chosen: dict[str, list[Contact]] = {}
    for contact in contacts:
        mine = chosen.setdefault(contact.unit_id, [])
        if contact.unit_id not in failover or not mine:
            mine.append(contact)
    return chosen


@dataclass
class Outgoing:
    """A batch's deliveries and audit events, written in two statements instead of two for every message."""

    deliveries: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def queue(
        self,
        ctx: Context,
        occurrence: Occurrence,
        stage: str,
        contacts: list[Contact],
        title: str,
        body: str,
        *,
        at: datetime,
    ) -> None:
        """Hand the message to the outbox, to go out when the duty's sending window is open (never at night)."""
        duty = ctx.program.duties.get(occurrence.duty_id)
        windows = duty is not None and ctx.settings.send_windows
        opening = ctx.program.workdays.window_opening(at, duty.send_window, ctx.zone) if windows and duty else at
        self.deliveries += outbox.delivery_rows(
            occurrence_id=occurrence.id or 0,
            stage=stage,
            contacts=contacts,
            title=title,
            body=body,
            at=at,
            not_before=opening,
        )

    def audit(self, *, at: datetime, actor: str, action: str, occurrence_id: int | None, **detail: Any) -> None:
        self.events.append(
            {"at": at, "actor": actor, "action": action, "occurrence_id": occurrence_id, "detail": detail}
        )

    def write(self, session: Session) -> None:
        insert_ignoring_conflicts(session, Delivery, self.deliveries)
        audit_many(session, self.events)
        self.deliveries, self.events = [], []


def queue(
    session: Session,
    ctx: Context,
    occurrence: Occurrence,
    stage: str,
    contacts: list[Contact],
    title: str,
    body: str,
    *,
    at: datetime,
) -> None:
    """Hand one message to the outbox now (see ``Outgoing.queue``)."""
    outgoing = Outgoing()
    outgoing.queue(ctx, occurrence, stage, contacts, title, body, at=at)
    outgoing.write(session)
