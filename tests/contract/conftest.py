"""Fixtures shared by the Postgres contract tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.contract.test_ledger import POSTGRES


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    """A fresh, empty schema of the test database, dropped afterwards."""
    name = f"contract_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(POSTGRES)
    await conn.execute(f'CREATE SCHEMA "{name}"')
    yield name
    await conn.execute(f'DROP SCHEMA "{name}" CASCADE')
    await conn.close()
