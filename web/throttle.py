"""Login throttling, kept in the store (``LoginThrottle``) so every web worker counts the same failures.

Two counters are kept per attempt: one for the account (``user:NAME``, also for names that do not exist, so the
answer never tells whether an account exists) and one for the client address (``addr:IP``). After ``LIMIT`` failures
on either, every attempt is refused, even with the right password, until the lock ends. The lock lasts
``FIRST_WAIT`` and doubles with each further failure, up to ``MAX_WAIT``. A counter starts over once it has been quiet
for ``WINDOW`` (no failure since, and no lock ending within it). A successful login clears the account's counter;
the address's counter stays, so one valid account cannot be used to reset the count of a password-spraying address.

Every change is a conditional update on the values just read (DESIGN principle 4), so two workers failing at the
same moment both count, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlmodel import Session

from store.db import one_writer
from store.models import LoginThrottle
from store.queries import insert_ignoring_conflicts

LIMIT = 5
WINDOW = timedelta(minutes=15)
FIRST_WAIT = timedelta(minutes=1)
MAX_WAIT = timedelta(minutes=15)
_RETRIES = 20  # conditional updates lost to other workers before giving up; each loss means another one counted

_TABLE = LoginThrottle.__table__  # type: ignore[attr-defined]


def keys_for(username: str, address: str) -> list[str]:
    return [account_key(username), f"addr:{address[:150]}"]


def account_key(username: str) -> str:
    return f"user:{username.strip().casefold()[:150]}"


def wait_left(session: Session, keys: list[str], *, at: datetime) -> timedelta | None:
    """How long the longest lock among ``keys`` still lasts at ``at``; None when none holds."""
    ends = session.execute(select(_TABLE.c.locked_until).where(_TABLE.c.key.in_(keys))).scalars()
    remaining = [end - at for end in ends if end is not None and end > at]
    return max(remaining) if remaining else None


def record_failure(session: Session, keys: list[str], *, at: datetime) -> None:
    """Count one failed attempt against every key, locking those that reach ``LIMIT``."""
    with one_writer(session):
        _prune(session, at)
        session.commit()  # its own transaction: the rows it locked must not wait on the counting below
        for key in keys:
            for _ in range(_RETRIES):
                insert_ignoring_conflicts(session, LoginThrottle, [{"key": key, "failures": 0}])
                if _count_once(session, key, at):
                    break
        session.commit()


def clear(session: Session, key: str) -> None:
    with one_writer(session):
        session.execute(delete(_TABLE).where(_TABLE.c.key == key))
        session.commit()


def lock_length(failures: int) -> timedelta:
    """1 minute at ``LIMIT`` failures, doubling with each one after, capped at ``MAX_WAIT``."""
    doublings = min(failures - LIMIT, 10)  # 2**10 minutes is already far past the cap
    return min(FIRST_WAIT * 2**doublings, MAX_WAIT)


def _count_once(session: Session, key: str, at: datetime) -> bool:
    """One compare-and-set of the key's counter; False when another worker changed it in between."""
    row = session.execute(
        select(_TABLE.c.failures, _TABLE.c.first_failed_at, _TABLE.c.locked_until).where(_TABLE.c.key == key)
    ).first()
    if row is None:  # pruned by another worker in between: insert it again
        return False
    failures, first, locked = row
    if _quiet(first, locked, at):
        new_failures, new_first, locked = 1, at, None
    else:
        new_failures, new_first = failures + 1, first
    new_locked = at + lock_length(new_failures) if new_failures >= LIMIT else locked
    unchanged = [
        _TABLE.c.key == key,
        _TABLE.c.failures == failures,
        _TABLE.c.first_failed_at.is_(None) if first is None else _TABLE.c.first_failed_at == first,
    ]
    values = {"failures": new_failures, "first_failed_at": new_first, "locked_until": new_locked}
    result = session.execute(update(_TABLE).where(*unchanged).values(**values))
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _prune(session: Session, at: datetime) -> None:
    """Quiet rows count as nothing (``_quiet``), so they go: the table holds recent failures only, however many
    names and addresses were tried. A row just inserted by another worker (no failure yet) is never one of them."""
    cutoff = at - WINDOW
    locks_over = or_(_TABLE.c.locked_until.is_(None), _TABLE.c.locked_until <= cutoff)
    session.execute(delete(_TABLE).where(_TABLE.c.first_failed_at <= cutoff, locks_over))


def _quiet(first: datetime | None, locked: datetime | None, at: datetime) -> bool:
    """No failure counted and no lock ended within ``WINDOW`` before ``at``: the count starts over."""
    latest = max((moment for moment in (first, locked) if moment is not None), default=None)
    return latest is None or at - latest >= WINDOW
