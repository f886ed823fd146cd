"""Driving the `wattfare` command in-process (click's runner) and checking what it did in the database and the API."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx
import pytest
from click.testing import CliRunner, Result

from wattfare.server.access.keys import hash_key
from wattfare.server.app import create_app
from wattfare.server.cli.main import main
from wattfare.server.settings import Settings
from wattfare.server.store import Store, open_store

T = TypeVar("T")
SECRET_KEY = re.compile(r"sk_(?:test|live)_[A-Za-z0-9_-]+")
PUBLISHABLE_KEY = re.compile(r"pk_(?:test|live)_[A-Za-z0-9_-]+")


def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop every WATTFARE_*/OPENROUTER_* variable of the test process, so only the test's own count."""
    for name in list(os.environ):
        if name.startswith(("WATTFARE_", "OPENROUTER_")):
            monkeypatch.delenv(name)


@dataclass
class Wattfare:
    """The `wattfare` command over one database."""

    database_url: str
    runner: CliRunner

    def __call__(self, *args: str, code: int = 0, stdin: str | None = None) -> Result:
        """Run `wattfare ARGS`; assert its exit status (an unexpected exception fails the test with its traceback)."""
        result = self.runner.invoke(main, list(args), input=stdin, catch_exceptions=False)
        assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
        return result

    def store(self, work: Callable[[Store], Awaitable[T]]) -> T:
        """Run `work` on the command's database (migrated) and return its result."""

        async def run() -> T:
            store = open_store(self.database_url)
            try:
                await store.upgrade()
                return await work(store)
            finally:
                await store.close()

        return asyncio.run(run())

    def authenticates(self, secret_key: str) -> bool:
        """Whether the store's key lookup (what the API authenticates with) accepts this secret key."""

        async def lookup(store: Store) -> bool:
            return await store.find_secret_key(hash_key(secret_key)) is not None

        return self.store(lookup)

    def api_status(self, secret_key: str) -> int:
        """The status `GET /api/v1/status` answers with this key, from a fresh in-process server."""

        async def call() -> int:
            app = create_app(Settings.from_env({}, database_url=self.database_url))
            services = app.state.services
            await services.start()
            try:
                async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://wattfare.test/api/v1"
                ) as client:
                    answer = await client.get(
                        "/status", params={"appUserId": "u1"}, headers={"Authorization": f"Bearer {secret_key}"}
                    )
                    return answer.status_code
            finally:
                await services.stop()

        return asyncio.run(call())


def one_error_line(result: Result) -> str:
    """The single `Error: …` line a failed command printed, asserting it printed no traceback."""
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def wattfare_over(database_url: str, monkeypatch: pytest.MonkeyPatch, cwd: os.PathLike[str]) -> Wattfare:
    """The command over `database_url`, run from `cwd`, with no other WATTFARE_* setting in force."""
    clean_environment(monkeypatch)
    monkeypatch.setenv("WATTFARE_DATABASE_URL", database_url)
    monkeypatch.chdir(cwd)
    return Wattfare(database_url, CliRunner())
