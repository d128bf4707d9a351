"""Fixtures and helpers for the web tests: a frozen app clock, a test client, one planned item, its link path.

Registered for every test module by tests/conftest.py (``pytest_plugins``).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from datetime import date, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session, col

from flows import steps
from flows.steps import Context
from store.models import AuditEvent, Confirmation, Occurrence
from store.queries import count_rows
from tests.conftest import local
from tests.test_steps import CORE
from web.app import app, clock


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def now() -> Clock:
    return Clock(local("2026-02-03T10:00"))


@pytest.fixture
def client(ctx: Context, now: Clock) -> Iterator[TestClient]:
    app.dependency_overrides[clock] = now
    with TestClient(app) as test_client:
        yield test_client
    app.dependency_overrides.clear()


@pytest.fixture
def item(session: Session, ctx: Context) -> Occurrence:
    steps.plan(session, ctx, start=date(2026, 2, 1), end=date(2026, 2, 8), at=local("2026-01-20T08:00"), only=CORE)
    query = select(Occurrence).where(col(Occurrence.unit_id) == "wuxing-msb")
    return session.execute(query).scalar_one()


def path_of(ctx: Context, occurrence: Occurrence, at: datetime) -> str:
    return "/c/" + steps.confirmation_link(ctx.settings, ctx.secret, occurrence, at=at).rsplit("/c/", 1)[1]


def ledger_state(session: Session) -> tuple[int, int, list[object]]:
    session.expire_all()
    done = [o.done_at for o in session.execute(select(Occurrence)).scalars()]
    return count_rows(session, Confirmation), count_rows(session, AuditEvent), done


def png(width: int = 1) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" + b"\x10\x80\x40" * width)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
