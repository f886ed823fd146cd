"""The `wattfare` command's way to its database: settings from the environment, one store per command.

Whatever goes wrong on the way (an unsupported or unreachable database, a malformed `WATTFARE_*` variable)
becomes one line on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import click

from wattfare.server.settings import Settings
from wattfare.server.store import Store, StoreUnavailableError, open_store

T = TypeVar("T")


def load_settings() -> Settings:
    """The server settings from `WATTFARE_*` variables, or a one-line error naming what is wrong."""
    try:
        return Settings.from_env()
    except ValueError as exc:
        raise click.ClickException(f"invalid configuration in the WATTFARE_* environment variables: {exc}") from None


def shown_url(database_url: str) -> str:
    """A database URL fit to print: any password replaced by `***`."""
    parts = urlsplit(database_url)
    if parts.password is None:
        return database_url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _one_line(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    text = f"{exc} ({cause})" if cause is not None and str(cause) and str(cause) not in str(exc) else str(exc)
    return " ".join(text.split())


def with_store(settings: Settings, work: Callable[[Store], Awaitable[T]], *, migrate: bool = True) -> T:
    """Open the configured database, migrate it (unless told not to), run `work` on it, close it.

    Returns what `work` returned.
    """
    where = shown_url(settings.database_url)
    try:
        store = open_store(settings.database_url)
    except ValueError as exc:
        raise click.ClickException(f"WATTFARE_DATABASE_URL: {exc}") from None
    except (OSError, sqlite3.Error, StoreUnavailableError) as exc:
        raise click.ClickException(f"cannot open the database {where}: {_one_line(exc)}") from None

    async def run() -> T:
        try:
            if migrate:
                await store.upgrade()
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except StoreUnavailableError as exc:
        raise click.ClickException(f"cannot reach the database {where}: {_one_line(exc)}") from None
