"""One database for every store: the SQLAlchemy engine, the shared metadata and the migrations.

``Database(url)`` opens ``sqlite:///path.db`` (WAL, one file) or ``postgresql+psycopg://…`` (a
plain ``postgresql://`` gets the psycopg 3 driver we ship); ``migrate()`` brings the schema to the
newest revision of the one Alembic history in ``storage/migrations`` (two processes starting at
once on PostgreSQL take an advisory lock, so only one creates the schema). Stores are built on a
``Database``; each defines its tables on ``metadata`` and owns its SQL.

>>> db = Database("sqlite:///:memory:"); db.migrate(); db.dialect
'sqlite'
>>> db.close()
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.pool import StaticPool

__all__ = ["IN_CHUNK", "Database", "Dialect", "Upsert", "in_chunks", "metadata"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: Maximum number of values bound in one ``IN (...)`` list (SQLite limits bound variables).
IN_CHUNK = 500

#: Every table of every store (mirrors ``storage/migrations``; a test checks that they agree).
metadata = sa.MetaData()

Dialect = Literal["sqlite", "postgresql"]
#: An INSERT that can say ``ON CONFLICT … DO UPDATE / DO NOTHING`` (both dialects can).
Upsert = sqlite.Insert | postgresql.Insert


def in_chunks(values: Sequence[str] | None) -> Iterator[Sequence[str] | None]:
    """``None`` (no filter) once, else the distinct values in IN-list sized chunks."""
    if values is None:
        yield None
        return
    distinct = list(dict.fromkeys(values))
    for i in range(0, len(distinct), IN_CHUNK):
        yield distinct[i : i + IN_CHUNK]


class Database:
    """The engine and what differs between SQLite and PostgreSQL. Thread-safe: the collector
    writes from a worker thread while the web app reads."""

    def __init__(self, url: str) -> None:
        parsed = sa.make_url(url)
        if parsed.drivername in ("postgresql", "postgres"):  # psycopg 3 is the driver we ship
            parsed = parsed.set(drivername="postgresql+psycopg")
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            memory = parsed.database in (None, "", ":memory:")
            if memory:
                self.engine = sa.create_engine(parsed, connect_args={"check_same_thread": False},
                                               poolclass=StaticPool)
            else:
                self.engine = sa.create_engine(parsed, connect_args={"check_same_thread": False})
            sa.event.listen(self.engine, "connect", _sqlite_pragmas(wal=not memory))
            self.dialect: Dialect = "sqlite"
        elif backend == "postgresql":
            self.engine = sa.create_engine(parsed, pool_pre_ping=True)
            self.dialect = "postgresql"
        else:
            raise ValueError(f"unsupported storage URL {url!r}: use sqlite:/// or postgresql://")

    def upsert(self, table: sa.Table) -> Upsert:
        """``INSERT`` of this dialect, with ``on_conflict_do_update``/``on_conflict_do_nothing``."""
        return sqlite.insert(table) if self.dialect == "sqlite" else postgresql.insert(table)

    def bulk_insert(self, conn: sa.Connection, table: sa.Table, columns: Sequence[str],
                    rows: Sequence[Sequence[object]]) -> None:
        """Rows (tuples in ``columns`` order) inserted inside ``conn``'s transaction, through the
        driver itself: SQLite's ``executemany``, PostgreSQL's COPY (several times faster than
        pipelined INSERTs). Errors are SQLAlchemy's, as ``conn.execute`` would raise them."""
        if not rows:
            return
        names = ", ".join(conn.dialect.identifier_preparer.quote(n) for n in columns)
        dbapi = conn.dialect.loaded_dbapi
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            if self.dialect == "postgresql":
                statement = f"COPY {table.name} ({names}) FROM STDIN"
                with cursor.copy(statement) as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                statement = f"INSERT INTO {table.name} ({names}) VALUES ({', '.join('?' * len(columns))})"
                cursor.executemany(statement, rows)
        except dbapi.Error as exc:  # the same exception types as conn.execute would raise
            raise sa.exc.DBAPIError.instance(statement, None, exc, dbapi.Error) from exc
        finally:
            cursor.close()

    def floor(self, x: sa.ColumnElement[float]) -> sa.ColumnElement[int]:
        """SQL ``floor(x)`` for the non-negative ``x`` of time arithmetic, without SQLite's
        optional math functions (there CAST truncation is floor)."""
        if self.dialect == "sqlite":
            return sa.cast(x, sa.Integer)
        return sa.func.floor(x)

    def migrate(self) -> None:
        """Bring the schema to the newest revision (creates it on a fresh database)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.set_main_option("path_separator", "os")
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                # Two processes starting at once must not both create the schema.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(7393620517)"))
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(*, wal: bool) -> Callable[[object, object], None]:
    def on_connect(dbapi_connection: object, _record: object) -> None:
        cur = dbapi_connection.cursor()  # type: ignore[attr-defined]
        try:
            if wal:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
        finally:
            cur.close()

    return on_connect
