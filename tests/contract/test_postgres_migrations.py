"""Postgres migrations: numbered files, applied once, safe to run twice."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from broker.store.postgres import PostgresLedger, migrate, migrations
from tests.contract.test_ledger import POSTGRES


@pytest.fixture
async def conn() -> AsyncIterator[asyncpg.Connection]:
    schema = f"migrate_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(POSTGRES, server_settings={"search_path": schema})
    await connection.execute(f'CREATE SCHEMA "{schema}"')
    yield connection
    await connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
    await connection.close()


async def test_migrations_apply_once(conn: asyncpg.Connection) -> None:
    shipped = [name for _, name, _ in migrations()]
    assert shipped[0] == "0001_init.sql"
    assert await migrate(conn) == shipped
    assert await migrate(conn) == []  # a second run changes nothing
    versions = [row[0] for row in await conn.fetch("SELECT version FROM schema_version")]
    assert versions == [version for version, _, _ in migrations()]
    tables = {row[0] for row in await conn.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    )}  # fmt: skip
    assert {"jobs", "history", "broker_meta", "schema_version"} <= tables


def test_the_url_hides_the_password() -> None:
    ledger = PostgresLedger("postgresql://broker:s3cret@db:5432/orch")
    assert ledger.url == "postgresql://broker:***@db:5432/orch"
