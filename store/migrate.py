"""Create or upgrade the store with alembic (store/migrations).

A new store is created from the models and stamped at the newest revision (one step, fast); an existing one is
upgraded. A store with tables but no alembic_version was made by create_all: by the first release (stamped 0001,
then upgraded) or, when its tables already match the models, by a later build (stamped at the newest revision).
Every command does this at start, so many processes may do it at once on a new store: each takes a lock first (an
advisory lock on PostgreSQL, the write lock on SQLite), so the second waits and then finds the store made.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from store.db import lock_for_writing

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


def _differs(connection: Connection) -> bool:
    """Whether the tables differ from what the models describe (then they are the first release's)."""
    return bool(compare_metadata(MigrationContext.configure(connection), SQLModel.metadata))


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the store to the newest revision. Returns (revision before, after); before is None for a new store."""
    import store.models  # noqa: F401  (registers the tables)

    newest = head()
    if current(engine) == newest:  # the usual case, read without the lock, which would make every command queue
        return newest, newest
    with engine.begin() as connection:
        lock_for_writing(connection, key=LOCK)  # before looking: what another process makes meanwhile is seen
        tables = set(inspect(connection).get_table_names())
        before = MigrationContext.configure(connection).get_current_revision()
        cfg = config(connection)
        if "occurrence" not in tables:
            SQLModel.metadata.create_all(connection)
            command.stamp(cfg, "head")
            return None, newest
        if before is None:  # tables without a version: made by create_all, by the first release or a later build
            before = FIRST if _differs(connection) else newest
            command.stamp(cfg, before)
        command.upgrade(cfg, "head")
    return before, newest


def new_revision(message: str) -> None:
    """Write a migration for what the models changed: autogenerate against a scratch store at the newest revision."""
    import tempfile

    from sqlalchemy import create_engine

    with tempfile.TemporaryDirectory() as scratch:
        engine = create_engine(f"sqlite:///{scratch}/scratch.db")
        with engine.begin() as connection:
            cfg = config(connection)
            command.upgrade(cfg, "head")
            command.revision(cfg, message=message, autogenerate=True, rev_id=f"{int(head()) + 1:04d}")
        engine.dispose()


if __name__ == "__main__":  # python -m store.migrate "what changed"
    import sys

    import store.models  # noqa: F401  (registers the tables)

    new_revision(" ".join(sys.argv[1:]) or "changes")
