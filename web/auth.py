"""Desk accounts: argon2 passwords, a signed session cookie, CSRF tokens, API tokens, and what each role may see.

A city manager sees every item. A district manager sees the items of the units in its district (a unit's
``district``, or the district office itself), on the pages and through the API alike: both go through ``Scope``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import func, select
from sqlmodel import Session

from store.models import ROLES, Unit, User

SESSION_COOKIE = "duties_session"
CSRF_COOKIE = "duties_csrf"
SESSION_SECONDS = 12 * 3600  # one working day; a manager logs in again the next morning
_HASHER = PasswordHasher()


class AccountError(Exception):
    """A user that cannot be created as asked; the message is in Chinese."""


@dataclass(frozen=True)
class Scope:
    """What one manager may see: everything (city) or one district."""

    username: str
    role: str
    district: str | None = None

    @property
    def district_filter(self) -> str | None:
        return None if self.role == "city" else self.district

    def allows(self, unit: Unit) -> bool:
        return self.role == "city" or (unit.district or unit.id) == self.district


def add_user(
    session: Session, *, username: str, password: str, role: str, district: str | None, display_name: str, at: datetime
) -> User:
    if role not in ROLES:
        raise AccountError(f"角色只能是 {'、'.join(ROLES)}。")
    if role == "district" and not district:
        raise AccountError("区县管理员须指定 --district。")
    if role == "district" and district not in districts(session):
        raise AccountError(f"没有名为 {district} 的区县；可选：{'、'.join(districts(session))}。")
    if len(password) < 8:
        raise AccountError("密码至少 8 位。")
    if find_user(session, username) is not None:
        raise AccountError(f"用户 {username} 已存在。")
    user = User(
        username=username,
        display_name=display_name or username,
        password_hash=_HASHER.hash(password),
        role=role,
        district=district if role == "district" else None,
        created_at=at,
    )
    session.add(user)
    session.commit()
    return user


def districts(session: Session) -> list[str]:
    """The districts units name; a district office's own id is its district."""
    column = Unit.__table__.c.district  # type: ignore[attr-defined]
    return sorted(d for d in session.execute(select(func.distinct(column))).scalars() if d)


def find_user(session: Session, username: str) -> User | None:
    return session.execute(select(User).where(User.username == username)).scalar_one_or_none()  # type: ignore[arg-type]


def authenticate(session: Session, username: str, password: str) -> User | None:
    user = find_user(session, username)
    if user is None or not user.active:
        _HASHER.hash(password)  # the same work as a real check, so timing does not tell which usernames exist
        return None
    try:
        _HASHER.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = _HASHER.hash(password)
        session.commit()
    return user


def scope_of(user: User) -> Scope:
    return Scope(username=user.username, role=user.role, district=user.district)


def new_api_token(session: Session, user: User) -> str:
    """A fresh API token for scripts; only its hash is kept, so it is shown once."""
    token = "dt_" + secrets.token_urlsafe(32)
    user.api_token_hash = _token_hash(token)
    session.add(user)
    session.commit()
    return token


def user_for_api_token(session: Session, token: str) -> User | None:
    user = session.execute(
        select(User).where(User.api_token_hash == _token_hash(token))  # type: ignore[arg-type]
    ).scalar_one_or_none()
    return user if user is not None and user.active else None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_cookie(secret: str, user: User) -> str:
    return str(_serializer(secret).dumps({"u": user.id, "h": user.password_hash[-16:]}))


def user_for_session(session: Session, secret: str, cookie: str | None) -> User | None:
    """The user a session cookie names, if it is genuine, recent, and the password has not changed since."""
    if not cookie:
        return None
    try:
        data: Any = _serializer(secret).loads(cookie, max_age=SESSION_SECONDS)
        user = session.get(User, int(data["u"]))
    except (BadSignature, KeyError, TypeError, ValueError):
        return None
    if user is None or not user.active or user.password_hash[-16:] != data.get("h"):
        return None
    return user


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="duties.desk.session.v1")


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def csrf_ok(cookie: str | None, submitted: str | None) -> bool:
    """Double-submit: the form's hidden field must equal the cookie another site can neither read nor set."""
    # Bytes: compare_digest refuses str with characters beyond ASCII, and a forged form may carry any.
    return bool(cookie) and bool(submitted) and hmac.compare_digest(str(cookie).encode(), str(submitted).encode())
