"""Concurrent ticks (issue 20, finding 7): real `duties tick` processes started at once on a new store, and again
right after a calendar change, all succeed and leave what a single tick leaves. Table creation and the calendar
sync take turns under a lock (an advisory lock on PostgreSQL, the write lock on SQLite) and write with upserts."""

from __future__ import annotations

import multiprocessing
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlmodel import Session

from calendars.loader import load_program
from flows.cli import main
from flows.steps import sync_program
from store import db
from store.models import AuditEvent, Contact, Delivery, Duty, Occurrence, Setting, Unit
from store.queries import count_rows
from store.settings import get_settings
from tests.conftest import POSTGRES_PROBLEM, POSTGRES_URL, local

AT = "2026-03-02T09:30"  # a Monday morning: the tick plans the horizon and sends the reminders due today
TICKS = 12
TABLES = (Unit, Contact, Duty, Occurrence, Delivery, Setting)


@pytest.fixture
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """A maker of fresh stores of one kind: SQLite files, or PostgreSQL schemas dropped afterwards."""
    if request.param == "sqlite":
        yield lambda: f"sqlite:///{tmp_path / uuid.uuid4().hex[:10] / 'duties.db'}"
        return
    if POSTGRES_PROBLEM:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 not reachable ({POSTGRES_PROBLEM})")
    admin = create_engine(POSTGRES_URL)
    schemas: list[str] = []

    def make() -> str:
        schemas.append(f"duties_test_{uuid.uuid4().hex[:10]}")
        with admin.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {schemas[-1]}"))
        return f"{POSTGRES_URL}?options=-csearch_path%3D{schemas[-1]}"

    yield make
    with admin.begin() as connection:
        for schema in schemas:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@dataclass
class Run:
    code: int
    output: str


def ticks(url: str, count: int, logs: Path) -> list[Run]:
    """``count`` processes of `duties tick` started at once on the store at ``url``; each one's exit and output.

    Each is a forked process entering the command's own entry point (flows.cli:main): as real as a new `duties`
    process, without paying the imports a dozen times. The secret key is left to the store, so they also race to
    generate it.
    """
    logs.mkdir(exist_ok=True)
    started = []
    for n in range(count):
        log = logs / f"tick-{uuid.uuid4().hex[:8]}-{n}.log"
        process = FORK.Process(target=_tick, args=(url, log))
        process.start()
        started.append((process, log))
    runs = []
    for process, log in started:
        process.join(timeout=120)
        runs.append(Run(process.exitcode if process.exitcode is not None else -1, log.read_text(encoding="utf-8")))
    return runs


FORK = multiprocessing.get_context("fork")


def _tick(url: str, log: Path) -> None:
    """In the child: the environment of a `duties tick` process of its own, its output in ``log``."""
    os.environ.update(DUTIES_DATABASE_URL=url, DUTIES_SEND_WINDOWS="false")
    os.environ.pop("DUTIES_SECRET_KEY", None)
    output = open(log, "w", encoding="utf-8")  # noqa: SIM115  (open until the process ends)
    os.dup2(output.fileno(), 1)
    os.dup2(output.fileno(), 2)
    sys.stdout = sys.stderr = output
    sys.argv = ["duties", "tick", "--at", AT, "--json"]
    # The parent's engines and settings are not this process's: forget them without closing the parent's connections.
    db.get_engine.cache_clear()
    get_settings.cache_clear()
    main()


def assert_all_succeeded(runs: list[Run]) -> None:
    failed = [run.output.strip().splitlines()[-2:] for run in runs if run.code != 0]
    assert not failed, f"{len(failed)} of {len(runs)} ticks failed: {failed}"


def ledger(url: str) -> dict[str, int]:
    """Rows per table, and how often the calendars were loaded (once per change, however many ticks saw it)."""
    engine = db.make_engine(url)
    try:
        with Session(engine) as session:
            found = {model.__name__: count_rows(session, model) for model in TABLES}
            events = AuditEvent.__table__.c  # type: ignore[attr-defined]
            loaded = select(func.count()).where(events.action == "calendars_loaded")
            moved = select(func.count()).where(events.action == "redated")
            found["calendars_loaded"] = session.execute(loaded).scalar_one()
            found["moved"] = session.execute(moved).scalar_one()
            return found
    finally:
        engine.dispose()


def change_calendars(folder: Path) -> None:
    """Rename one street and add another (a changed unit, a new one, its contact and its items), and move the
    streets' 大扫除 an hour earlier (items re-dated)."""
    duties = folder / "huzhou" / "duties.yaml"
    content = duties.read_text(encoding="utf-8")
    duties.write_text(content.replace('time: "17:00"', 'time: "16:00"', 1), encoding="utf-8")
    units = folder / "huzhou" / "units.yaml"
    content = units.read_text(encoding="utf-8").replace("name: 爱山街道", "name: 爱山街道（更名）")
    new_street = """
  - id: wuxing-new
    name: 新设街道
    kind: street
    district: wuxing
    contacts:
      - name: 值班邮箱
        url: mailto://127.0.0.1:8025?from=duties@huzhou.local&to=wuxing-new@demo.huzhou.local
"""
    units.write_text(content.replace("\nunits:\n", "\nunits:" + new_street, 1), encoding="utf-8")


@pytest.mark.parametrize("new_store", ["sqlite", "postgresql"], indirect=True)
def test_concurrent_ticks_on_a_new_store_and_after_a_calendar_change(
    settings_env: Path, calendars_dir: Path, new_store: Callable[[], str]
) -> None:
    logs = settings_env / "logs"
    single, shared = new_store(), new_store()
    assert_all_succeeded(ticks(single, 1, logs))
    assert_all_succeeded(ticks(shared, TICKS, logs))
    assert ledger(shared) == ledger(single)
    revoke_unit_links(shared, "wuxing-aishan")

    change_calendars(calendars_dir)
    assert_all_succeeded(ticks(single, 1, logs))
    assert_all_succeeded(ticks(shared, TICKS, logs))
    after = ledger(shared)
    assert after == ledger(single)
    assert after["calendars_loaded"] == 2 and after["moved"] > 0
    engine = db.make_engine(shared)
    with Session(engine) as session:
        street = session.get(Unit, "wuxing-aishan")
        assert street is not None and street.name == "爱山街道（更名）" and street.link_version == 1
        assert session.get(Unit, "wuxing-new") is not None
    engine.dispose()


def revoke_unit_links(url: str, unit_id: str) -> None:
    """What `duties link --unit … --revoke` does to the unit's row."""
    engine = db.make_engine(url)
    with Session(engine) as session:
        unit = session.get(Unit, unit_id)
        assert unit is not None
        unit.link_version += 1
        session.commit()
    engine.dispose()


def test_a_calendar_change_keeps_what_the_store_added_to_a_unit(store: str, calendars_dir: Path) -> None:
    """The sync writes the calendars' columns only: a unit's link_version, raised to revoke its links, stays."""
    with db.session_scope() as session:
        assert sync_program(session, load_program(calendars_dir), at=local("2026-03-02T09:00"))
        street = session.get(Unit, "wuxing-aishan")
        assert street is not None
        street.link_version = 3
        session.commit()
        change_calendars(calendars_dir)
        assert sync_program(session, load_program(calendars_dir), at=local("2026-03-02T09:30"))
        street = session.get(Unit, "wuxing-aishan")
        assert street is not None and street.name == "爱山街道（更名）" and street.link_version == 3
        assert session.get(Unit, "wuxing-new") is not None
