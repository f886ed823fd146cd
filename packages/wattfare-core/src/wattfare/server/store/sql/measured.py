"""An engine that times every database call and counts outages, for `wattfare_store_*` (see `observability`).

It wraps the engine a store runs on, so both databases are measured at the same seam and the SQL written once
knows nothing of it: each call's duration goes to `wattfare_store_duration_seconds{operation}` (`read`,
`write`, `grouped_write`, `exclusive_write`), and a call that fails as unavailable to
`wattfare_store_unavailable_total`, whatever it was.
"""

from __future__ import annotations

import time
from typing import TypeVar

from wattfare.server.observability import metrics
from wattfare.server.store.protocols import StoreUnavailableError
from wattfare.server.store.sql.engine import Engine, Row, Work
from wattfare.server.store.sql.statement import Statement

T = TypeVar("T")


class MeasuredEngine:
    """`engine`, each call timed and each outage counted."""

    __slots__ = ("_engine", "_exclusive", "_grouped", "_read", "_write")

    def __init__(self, engine: Engine) -> None:
        """Measure `engine`."""
        self._engine = engine
        self._read = metrics.store_timer("read")
        self._write = metrics.store_timer("write")
        self._grouped = metrics.store_timer("grouped_write")
        self._exclusive = metrics.store_timer("exclusive_write")

    async def one(self, statement: Statement, *params: object) -> Row | None:
        """`Engine.one`, timed as a `read`."""
        started = time.perf_counter()
        try:
            return await self._engine.one(statement, *params)
        except StoreUnavailableError:
            metrics.store_unavailable()
            raise
        finally:
            self._read.observe(time.perf_counter() - started)

    async def all(self, statement: Statement, *params: object) -> list[Row]:
        """`Engine.all`, timed as a `read`."""
        started = time.perf_counter()
        try:
            return await self._engine.all(statement, *params)
        except StoreUnavailableError:
            metrics.store_unavailable()
            raise
        finally:
            self._read.observe(time.perf_counter() - started)

    async def write(self, work: Work[T]) -> T:
        """`Engine.write`, timed."""
        started = time.perf_counter()
        try:
            return await self._engine.write(work)
        except StoreUnavailableError:
            metrics.store_unavailable()
            raise
        finally:
            self._write.observe(time.perf_counter() - started)

    async def grouped_write(self, work: Work[T]) -> T:
        """`Engine.grouped_write`, timed (waiting for the group's COMMIT included: that is its latency)."""
        started = time.perf_counter()
        try:
            return await self._engine.grouped_write(work)
        except StoreUnavailableError:
            metrics.store_unavailable()
            raise
        finally:
            self._grouped.observe(time.perf_counter() - started)

    async def write_statement(self, statement: Statement, *params: object) -> Row | None:
        """`Engine.write_statement`, timed as a `write`."""
        started = time.perf_counter()
        try:
            return await self._engine.write_statement(statement, *params)
        except StoreUnavailableError:
            metrics.store_unavailable()
            raise
        finally:
            self._write.observe(time.perf_counter() - started)

    async def exclusive_write(self, work: Work[T]) -> T:
        """`Engine.exclusive_write`, timed."""
        started = time.perf_counter()
        try:
            return await self._engine.exclusive_write(work)
        except StoreUnavailableError:
            metrics.store_unavailable()
            raise
        finally:
            self._exclusive.observe(time.perf_counter() - started)

    async def close(self) -> None:
        """`Engine.close`."""
        await self._engine.close()
