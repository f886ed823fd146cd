"""The schema's bookkeeping in SQL: which migrations ran, applying the rest, and closing the engine."""

from __future__ import annotations

from datetime import UTC, datetime

from wattfare.server.store.migrations import MIGRATIONS, statements_for
from wattfare.server.store.sql.engine import Executor, SqlConcern
from wattfare.server.store.sql.statement import Statement, portable
from wattfare.server.store.timestamps import to_text

_CREATE_BOOKKEEPING = portable(
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)"
)
_APPLIED = portable("SELECT 1 FROM schema_migrations WHERE version = ?")
_RECORD = portable("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)")
# Each migration's statements as both engines spell them (`migrations` translates the schema once).
_SCHEMA: tuple[tuple[int, tuple[Statement, ...]], ...] = tuple(
    (
        version,
        tuple(
            Statement(sqlite=sqlite, postgres=postgres)
            for sqlite, postgres in zip(
                statements_for(version, "sqlite"), statements_for(version, "postgresql"), strict=True
            )
        ),
    )
    for version, _ in MIGRATIONS
)


class SqlLifecycle(SqlConcern):
    """`protocols.Lifecycle` over an engine."""

    async def upgrade(self) -> list[int]:
        """Apply pending migrations in order, each in its own exclusive transaction."""
        await self._engine.exclusive_write(lambda db: db.run(_CREATE_BOOKKEEPING))
        applied: list[int] = []
        for version, statements in _SCHEMA:
            if await self._engine.exclusive_write(lambda db, v=version, s=statements: _migrate(db, v, s)):
                applied.append(version)
        return applied

    async def close(self) -> None:
        """Let go of the database."""
        await self._engine.close()


async def _migrate(db: Executor, version: int, statements: tuple[Statement, ...]) -> bool:
    """Apply one migration unless it was; whether it was applied now."""
    if await db.one(_APPLIED, version):
        return False
    for statement in statements:
        await db.run(statement)
    await db.run(_RECORD, version, to_text(datetime.now(UTC)))
    return True
