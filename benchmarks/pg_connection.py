"""One short asyncpg connection, opened for one piece of work and closed: the benchmarks' reads and admin statements.

Beside the store (which has a pool of its own): a database read on a connection of the benchmark's, or the PostgreSQL
server's admin statements (CREATE DATABASE, DROP DATABASE) on an admin URL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

T = TypeVar("T")


def run_on_connection(url: str, work: Callable[[Any], Awaitable[T]]) -> T:
    """`work` on a connection of its own to `url`, closed after it, from synchronous code."""

    async def go() -> T:
        db = await asyncpg.connect(url, timeout=10)
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(go())


async def run_as_admin(admin: str, *statements: str) -> None:
    db = await asyncpg.connect(admin, timeout=10)
    try:
        for statement in statements:
            await db.execute(statement)
    finally:
        await db.close()
