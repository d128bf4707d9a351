"""Alembic's environment for the duties store: the tables of store.models, on the engine ``duties init`` uses.

SQLite cannot alter most of a table in place, so migrations run in batch mode there (copy and move).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import store.models  # noqa: F401  (registers the tables)
from store.db import get_engine

target_metadata = SQLModel.metadata


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run(connection)
else:  # alembic's own command line: the store DUTIES_DATABASE_URL names
    with get_engine().connect() as opened:
        run(opened)
        opened.commit()
