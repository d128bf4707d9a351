"""Desk accounts: argon2 passwords, a signed session cookie, CSRF tokens, API tokens, and what each role may see.

A session cookie carries the user's ``session_version``. Logging out, changing the password and deactivating the
account raise it, so every cookie signed before (on every device of that user) stops working at once.

A city manager sees every item. A district manager sees the items of the units in its district (a unit's
``district``, or the district office itself), on the pages and through the API alike: both go through ``Scope``.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import func, select, update
from sqlmodel import Session

from store.models import ROLES, Unit, User
from web import throttle

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

    @property
    def manages(self) -> bool:
        """A manager (city or district) sees items and acts on them; an inspector or an intake account only files
        cases (and an inspector verifies its own)."""
        return self.role in MANAGER_ROLES

    def allows(self, unit: Unit) -> bool:
        return self.role == "city" or (unit.district or unit.id) == self.district


MANAGER_ROLES = ("city", "district")
FILING_ROLES = ("city", "district", "inspector", "intake")


def add_user(
    session: Session, *, username: str, password: str, role: str, district: str | None, display_name: str, at: datetime
) -> User:
    if role not in ROLES:
        raise AccountError(f"角色只能是 {'、'.join(ROLES)}。")
    if role == "district" and not district:
        raise AccountError("区县管理员须指定 --district。")
    if role != "city" and district and district not in districts(session):
        raise AccountError(f"没有名为 {district} 的区县；可选：{'、'.join(districts(session))}。")
    _check_password(password)
    if find_user(session, username) is not None:
        raise AccountError(f"用户 {username} 已存在。")
    user = User(
        username=username,
        display_name=display_name or username,
        password_hash=_HASHER.hash(password),
        role=role,
        district=district if role != "city" else None,
        created_at=at,
    )
    session.add(user)
    session.commit()
    return user


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise AccountError("密码至少 8 位。")


def set_password(session: Session, user: User, password: str) -> None:
    """A new password (a change or an administrator's reset): every session of the user ends with it."""
    _check_password(password)
    user.password_hash = _HASHER.hash(password)
    session.add(user)
    session.commit()
    end_sessions(session, user)


def set_active(session: Session, user: User, active: bool) -> None:
    """Deactivate or reactivate an account; deactivating also ends its sessions (a cookie must not outlive it)."""
    user.active = active
    session.add(user)
    session.commit()
    if not active:
        end_sessions(session, user)


def end_sessions(session: Session, user: User) -> None:
    """Raise the user's session version: every session cookie of this user, on every device, stops working.

    That is the design decision for logout too: the store keeps one version per user, not a row per session, so
    logging out on one computer logs the user out everywhere. An increment in SQL, so two at once both count.
    """
    table = User.__table__  # type: ignore[attr-defined]
    session.execute(update(table).where(table.c.id == user.id).values(session_version=table.c.session_version + 1))
    session.commit()
    session.refresh(user)


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


def log_in(
    session: Session, *, username: str, password: str, address: str, at: datetime
) -> tuple[User | None, timedelta | None]:
    """A throttled password check: the user, or None and how long this account or address is locked (None when
    it is not, and the password was simply wrong). A locked caller is refused before the password is looked at."""
    keys = throttle.keys_for(username, address)
    wait = throttle.wait_left(session, keys, at=at)
    if wait is not None:
        return None, wait
    user = authenticate(session, username.strip(), password)
    if user is None:
        throttle.record_failure(session, keys, at=at)
        return None, throttle.wait_left(session, keys, at=at)
    throttle.clear(session, throttle.account_key(username))
    return user, None


def wait_text(wait: timedelta) -> str:
    """A lock's remaining time as a person reads it: 1 分 30 秒, 2 分钟, 45 秒."""
    seconds = max(1, math.ceil(wait.total_seconds()))
    minutes, rest = divmod(seconds, 60)
    if not minutes:
        return f"{rest} 秒"
    return f"{minutes} 分 {rest} 秒" if rest else f"{minutes} 分钟"


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
    data = {"u": user.id, "h": user.password_hash[-16:], "v": user.session_version}
    return str(_serializer(secret).dumps(data))


def user_for_session(session: Session, secret: str, cookie: str | None) -> User | None:
    """The user a session cookie names, if it is genuine, recent, and neither logged out nor re-passworded since.

    A cookie whose session version is not the user's current one was ended by a logout, a password change or a
    deactivation: it counts as logged out.
    """
    if not cookie:
        return None
    try:
        data: Any = _serializer(secret).loads(cookie, max_age=SESSION_SECONDS)
        user = session.get(User, int(data["u"]), populate_existing=True)  # another worker may have logged it out
    except (BadSignature, KeyError, TypeError, ValueError):
        return None
    if user is None or not user.active or user.password_hash[-16:] != data.get("h"):
        return None
    return user if data.get("v") == user.session_version else None


def _serializer(secret: str) -> URLSafeTimedSerializer:
    # v2: the token carries the session version; a v1 cookie (without one) is simply no longer valid.
    return URLSafeTimedSerializer(secret, salt="duties.desk.session.v2")


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def csrf_ok(cookie: str | None, submitted: str | None) -> bool:
    """Double-submit: the form's hidden field must equal the cookie another site can neither read nor set."""
    # Bytes: compare_digest refuses str with characters beyond ASCII, and a forged form may carry any.
    return bool(cookie) and bool(submitted) and hmac.compare_digest(str(cookie).encode(), str(submitted).encode())
