"""Alembic environment for the inferwatch store.

``Database.migrate()`` runs this programmatically and hands over its own connection through
``config.attributes["connection"]`` (so ``sqlite:///:memory:`` migrates the database the store
uses). Run from the command line, it connects to ``sqlalchemy.url`` from the Alembic config or
the ``INFERWATCH_STORAGE`` environment variable instead.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=None,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url") or os.environ.get("INFERWATCH_STORAGE")
    if not url:
        raise RuntimeError("no database: set sqlalchemy.url or INFERWATCH_STORAGE")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


_main()
