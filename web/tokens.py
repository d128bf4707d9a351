"""Signed, expiring confirmation links (itsdangerous).

A token names one occurrence and its unit and carries its own expiry, so a link opened after that moment is refused
even though the signature is good.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from itsdangerous import BadSignature, URLSafeSerializer

SALT = "duties.confirm.v1"


class BadLink(Exception):
    """A link that cannot be used; ``reason`` is one of tampered, expired, unknown."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LinkClaim:
    occurrence_id: int
    unit_id: str
    expires_at: datetime


def make_token(secret: str, *, occurrence_id: int, unit_id: str, expires_at: datetime) -> str:
    payload = {"o": occurrence_id, "u": unit_id, "e": int(expires_at.timestamp())}
    return str(URLSafeSerializer(secret, salt=SALT).dumps(payload))


def read_token(secret: str, token: str, *, at: datetime) -> LinkClaim:
    try:
        payload = URLSafeSerializer(secret, salt=SALT).loads(token)
        claim = LinkClaim(int(payload["o"]), str(payload["u"]), datetime.fromtimestamp(int(payload["e"]), UTC))
    except (BadSignature, KeyError, TypeError, ValueError):
        raise BadLink("tampered") from None
    if at >= claim.expires_at:
        raise BadLink("expired")
    return claim
