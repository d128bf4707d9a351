"""Migrations: a store made at the first revision, filled with data, upgraded to head, loses nothing; the migrations
build exactly the tables the models describe; and a first-release store without a version table is upgraded too."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

from store import migrate
from store.db import make_engine
from store.models import Confirmation, Escalation, Occurrence, Unit

AT = datetime(2026, 2, 9, 9, 0, tzinfo=UTC)
ROWS = {  # what a first-release store holds, one of each, written as that release wrote them
    "unit": "INSERT INTO unit (id, name, kind, district, tags, delivery) VALUES "
    "('wuxing-msb', '吴兴区市场监督管理局', 'market_supervision', 'wuxing', '[]', 'all')",
    "contact": "INSERT INTO contact (id, unit_id, name, channel, url, role, priority, active) VALUES "
    "(1, 'wuxing-msb', '值班邮箱', 'mailto', 'mailto://127.0.0.1:8025?to=a@b.c', 'staff', 0, true)",
    "duty": "INSERT INTO duty (id, kind, family, title, clause, quote, spec, source) VALUES "
    "('market-spot-check', 'quota', '市场', '市场抽查', '附件1 第6项 举措2', '每周不少于1次', '{}', 'duties.yaml')",
    "occurrence": "INSERT INTO occurrence (id, duty_id, unit_id, period, title, detail, starts_at, due_at, flags, "
    "first_remind_at, required, achieved, reminders_sent, level, level_at, next_escalate_at, created_at) VALUES "
    "(7, 'market-spot-check', 'wuxing-msb', '2026-W06', '市场抽查（2026年第6周）', '', :at, :at, '[]', :at, "
    "1, 1, 2, 1, :at, :at, :at)",
    "delivery": "INSERT INTO delivery (id, occurrence_id, stage, contact_id, unit_id, channel, status, "
    "idempotency_key, title, body, log, attempts, max_attempts, created_at, sent_at) VALUES "
    "(3, 7, 'level:1', 1, 'wuxing-msb', 'mailto', 'sent', 'k', '【交办通知】', '正文', 'ok', 1, 5, :at, :at)",
    "confirmation": "INSERT INTO confirmation (id, occurrence_id, form_id, amount, note, evidence, confirmed_at, late, "
    "client) VALUES (5, 7, 'f1', 1, '已抽查', '[\"ab.jpg\"]', :at, true, 'phone')",
    "escalation": "INSERT INTO escalation (id, occurrence_id, level, name, at, deadline_at) VALUES "
    "(2, 7, 1, '交办', :at, :at)",
    "auditevent": "INSERT INTO auditevent (id, at, actor, action, occurrence_id, detail) VALUES "
    "(9, :at, 'system', 'escalated', 7, '{\"level\": 1}')",
}


@pytest.fixture
def engine(any_database_url: str) -> Iterator[Engine]:
    made = make_engine(any_database_url)
    yield made
    made.dispose()


def first_release_store(engine: Engine, *, with_version_table: bool) -> None:
    with engine.begin() as connection:
        command.upgrade(migrate.config(connection), migrate.FIRST)
        for statement in ROWS.values():
            connection.execute(text(statement), {"at": AT})
        if not with_version_table:  # the first release created its tables without alembic
            connection.execute(text("DROP TABLE alembic_version"))


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() for table in ROWS}


@pytest.mark.parametrize("with_version_table", [True, False])
def test_upgrading_a_first_release_store_loses_nothing(engine: Engine, with_version_table: bool) -> None:
    first_release_store(engine, with_version_table=with_version_table)
    before = counts(engine)
    assert migrate.upgrade(engine) == (migrate.FIRST, migrate.head())
    assert counts(engine) == before == dict.fromkeys(ROWS, 1)
    with Session(engine) as session:
        item = session.get(Occurrence, 7)
        assert item is not None and item.level == 1 and item.due_at == AT and item.link_version == 0
        assert item.status_at(AT) == "overdue" and item.title == "市场抽查（2026年第6周）"
        report = session.get(Confirmation, 5)
        assert report is not None and report.evidence == ["ab.jpg"] and report.verdict == "" and report.late
        notice = session.exec(select(Escalation)).one()
        assert (notice.status, notice.document, notice.repeats) == ("issued", "", 0)
        assert notice.notified_at == notice.at  # an old notice was sent when issued: the grouped pass must skip it
        assert not item.links_revoked and session.exec(select(Unit)).one().link_version == 0
    assert migrate.upgrade(engine) == (migrate.head(), migrate.head())  # a second run changes nothing


def test_the_migrations_build_what_the_models_describe(engine: Engine) -> None:
    import store.models  # noqa: F401

    with engine.begin() as connection:
        command.upgrade(migrate.config(connection), "head")
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert differences == [], "the models changed without a migration: add one (see store/migrate.py)"


def test_a_new_store_is_created_at_head(engine: Engine) -> None:
    assert migrate.upgrade(engine) == (None, migrate.head())
    assert migrate.current(engine) == migrate.head()


def test_init_upgrades_an_old_store(settings_env: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    monkeypatch.setenv("DUTIES_DATABASE_URL", database_url)
    old = make_engine(database_url)
    first_release_store(old, with_version_table=False)
    old.dispose()
    result = CliRunner().invoke(app, ["init", "--at", "2026-02-10T09:00"])
    assert result.exit_code == 0, result.stderr
    assert "已升级" in result.stdout and migrate.head() in result.stdout
    after = counts(make_engine(database_url))  # init also loads the shipped units and duties
    assert {t: after[t] for t in ("occurrence", "delivery", "confirmation", "escalation")} == dict.fromkeys(
        ("occurrence", "delivery", "confirmation", "escalation"), 1
    )
