"""Create or upgrade the store with alembic (store/migrations).

A new store is created from the models and stamped at the newest revision (one step, fast); an existing one is
upgraded. A store made by the first release has tables but no alembic_version: it is stamped at 0001 first.
On PostgreSQL an advisory lock keeps two processes from migrating at once.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

FIRST = "0001"
LOCK = 4_242_001  # pg_advisory_xact_lock key for migrations of this store


def config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    revision = ScriptDirectory.from_config(config()).get_current_head()
    assert revision is not None
    return revision


def current(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the store to the newest revision. Returns (revision before, after); before is None for a new store."""
    import store.models  # noqa: F401  (registers the tables)

    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK})
        tables = set(inspect(connection).get_table_names())
        before = MigrationContext.configure(connection).get_current_revision()
        cfg = config(connection)
        if "occurrence" not in tables:
            SQLModel.metadata.create_all(connection)
            command.stamp(cfg, "head")
            return None, head()
        if before is None:
            command.stamp(cfg, FIRST)  # made by the first release, which had no migrations
            before = FIRST
        command.upgrade(cfg, "head")
    return before, head()
