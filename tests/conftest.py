"""Shared fixtures: database URLs and a migrated ``Store`` on SQLite and PostgreSQL.

PostgreSQL tests need the server at 127.0.0.1:5432 (trust auth, user ``root`` or ``postgres``,
database ``test``). One fresh database ``inferwatch_test_<random>`` is created per test session
and dropped at the end; between tests its ``public`` schema is dropped and recreated. Without a
server, the PostgreSQL cases are skipped with the reason.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USERS = ("root", "postgres")


def _pg_admin_connect():  # -> (psycopg.Connection, user)
    import psycopg

    errors = []
    for user in PG_USERS:
        try:
            conn = psycopg.connect(
                host=PG_HOST,
                port=PG_PORT,
                user=user,
                dbname="test",
                autocommit=True,
                connect_timeout=3,
            )
        except psycopg.Error as exc:
            errors.append(f"{user}: {exc}".strip())
            continue
        return conn, user
    raise ConnectionError("; ".join(errors))


@pytest.fixture(scope="session")
def postgres_database_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database for this test session (dropped afterwards)."""
    try:
        admin, user = _pg_admin_connect()
    except ConnectionError as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}: {exc}")
    name = f"inferwatch_test_{secrets.token_hex(6)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://{user}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        admin, _ = _pg_admin_connect()
        with admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _reset_pg_schema(url: str) -> None:
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database: a SQLite file under ``tmp_path``, or the session's
    PostgreSQL database with an empty schema (reset after the test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'inferwatch.db'}"
        return
    url = request.getfixturevalue("postgres_database_url")
    _reset_pg_schema(url)
    try:
        yield url
    finally:
        _reset_pg_schema(url)


@pytest.fixture
def store(store_url: str):  # -> Iterator[collector.store.Store]
    """A migrated ``Store`` on ``store_url``, closed after the test."""
    from inferwatch.stores import Stores

    s = Stores.open(store_url)
    s.migrate()
    try:
        yield s
    finally:
        s.close()
