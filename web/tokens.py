"""Signed, expiring confirmation links (itsdangerous).

A token names one occurrence and its unit and carries its own expiry, so a link opened after that moment is refused
even though the signature is good. It also carries the occurrence's link version: raising the version revokes every
link issued before. A unit link names a unit only and opens the unit's own page of open items; it carries the
unit's link version in the same way, so ``duties link --unit U --revoke`` voids every unit link issued before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from itsdangerous import BadSignature, URLSafeSerializer

SALT = "duties.confirm.v1"
UNIT_SALT = "duties.unit.v1"


class BadLink(Exception):
    """A link that cannot be used; ``reason`` is one of tampered, expired, revoked, unknown."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LinkClaim:
    occurrence_id: int
    unit_id: str
    expires_at: datetime
    version: int = 0


@lru_cache(maxsize=16)
def _serializer(secret: str, salt: str) -> URLSafeSerializer:
    """One serializer per key and purpose: a tick signs two links for every message it writes."""
    return URLSafeSerializer(secret, salt=salt)


def make_token(secret: str, *, occurrence_id: int, unit_id: str, expires_at: datetime, version: int = 0) -> str:
    payload: dict[str, int | str] = {"o": occurrence_id, "u": unit_id, "e": int(expires_at.timestamp())}
    if version:
        payload["v"] = version
    return str(_serializer(secret, SALT).dumps(payload))


def read_token(secret: str, token: str, *, at: datetime) -> LinkClaim:
    try:
        payload = _serializer(secret, SALT).loads(token)
        expires = datetime.fromtimestamp(int(payload["e"]), UTC)
        claim = LinkClaim(int(payload["o"]), str(payload["u"]), expires, int(payload.get("v", 0)))
    except (BadSignature, KeyError, TypeError, ValueError, AttributeError):
        raise BadLink("tampered") from None
    if at >= claim.expires_at:
        raise BadLink("expired")
    return claim


@dataclass(frozen=True)
class UnitClaim:
    unit_id: str
    version: int = 0


def make_unit_token(secret: str, *, unit_id: str, expires_at: datetime, version: int = 0) -> str:
    payload: dict[str, int | str] = {"u": unit_id, "e": int(expires_at.timestamp())}
    if version:  # version 0 is left out, so links made before versions existed keep their form and still open
        payload["v"] = version
    return str(_serializer(secret, UNIT_SALT).dumps(payload))


def read_unit_token(secret: str, token: str, *, at: datetime) -> UnitClaim:
    """The unit a unit link names and the unit's link version it was made with, if genuine and unexpired."""
    try:
        payload = _serializer(secret, UNIT_SALT).loads(token)
        expires = datetime.fromtimestamp(int(payload["e"]), UTC)
        claim = UnitClaim(str(payload["u"]), int(payload.get("v", 0)))
    except (BadSignature, KeyError, TypeError, ValueError, AttributeError):
        raise BadLink("tampered") from None
    if at >= expires:
        raise BadLink("expired")
    return claim


INSPECTOR_SALT = "duties.inspector.v1"


@dataclass(frozen=True)
class InspectorClaim:
    user_id: int
    version: int


def make_inspector_token(secret: str, *, user_id: int, session_version: int, expires_at: datetime) -> str:
    """A signed link to the case form for one inspector: no login on the phone, but it carries the account's
    session version, so a new password, a logout or a deactivation ends it like a session cookie."""
    payload = {"i": user_id, "v": session_version, "e": int(expires_at.timestamp())}
    return str(_serializer(secret, INSPECTOR_SALT).dumps(payload))


def read_inspector_token(secret: str, token: str, *, at: datetime) -> InspectorClaim:
    """The account an inspector link names and the session version it was made with, if genuine and unexpired;
    the caller compares the version with the account's current one."""
    try:
        payload = _serializer(secret, INSPECTOR_SALT).loads(token)
        expires = datetime.fromtimestamp(int(payload["e"]), UTC)
        claim = InspectorClaim(int(payload["i"]), int(payload["v"]))
    except (BadSignature, KeyError, TypeError, ValueError, AttributeError):
        raise BadLink("tampered") from None
    if at >= expires:
        raise BadLink("expired")
    return claim
