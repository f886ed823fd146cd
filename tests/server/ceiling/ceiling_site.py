"""An in-process Wattfare whose live requests go to a stand-in OpenRouter with its key management API.

The stand-in is a real process serving both the model API and OpenRouter's `/api/v1/keys`, and enforcing each
key's `limit` as OpenRouter does; Wattfare is configured with the stand-in's management key, so every
credit-funded member gets a ceiling key there.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.server.web.pages_client import PUBLIC_URL, Pages, approve, csrf_of, sign_up
from tests.support.standin_upstream import MANAGEMENT_KEY, StandIn
from tests.support.wattfare_server import served_with_meter
from wattfare.server.billing.meter import Meter
from wattfare.server.instants import utc_now
from wattfare.server.services import Services

MODEL = "standin/premium"  # $3/M prompt, $15/M completion: "hello" costs 15,000 + 300,000 nano-USD


@asynccontextmanager
async def ceiling_site(
    tmp_path: Path, standin: StandIn, meter: Callable[[Services], Meter] | None = None
) -> AsyncGenerator[Pages]:
    """The server in-process over SQLite, its live upstream and key management the stand-in's."""
    settings: dict[str, object] = {
        "public_url": PUBLIC_URL,
        "live_upstream": "openai-compatible",
        "upstream_url": standin.base_url,
        "upstream_key": "sk-or-v1-operator-key",
        "openrouter_url": standin.url,
        "openrouter_management_key": MANAGEMENT_KEY,
    }
    async with served_with_meter(f"sqlite:///{tmp_path / 'w.db'}", utc_now, meter, settings) as server:
        yield Pages(server.app, server.services, httpx.ASGITransport(app=server.asgi))


async def member_with_connection(site: Pages, browser: httpx.AsyncClient, email: str, user: str, cap: str) -> str:
    """Sign `email` up and approve a live connection of `user` with `cap`; the member's id."""
    await sign_up(browser, email)
    done = await approve(browser, await site.session_token(user), cap)
    assert done.status_code == 200, done.text
    found = await site.services.store.member_credentials(email)
    assert found is not None
    return found.member.id


async def account_form(browser: httpx.AsyncClient, path: str, **fields: str) -> httpx.Response:
    """Post one of `/account`'s forms (with its CSRF token)."""
    page = await browser.get("/account")
    return await browser.post(path, data={"csrf": csrf_of(page), **fields})


def managed_keys(standin: StandIn) -> list[dict[str, Any]]:
    """The keys the stand-in's management API made, with their limits, state and usage."""
    return standin.stats()["managed_keys"]


def database_text(db: Path) -> str:
    """Every value of every table of a SQLite file, as one text (to look for what must not be there)."""
    connection = sqlite3.connect(db)
    try:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return "\n".join(repr(row) for table in tables for row in connection.execute(f'SELECT * FROM "{table}"'))
    finally:
        connection.close()


async def ask(site: Pages, user: str, **body: object) -> httpx.Response:
    """A live chat completion of `MODEL` for `user`."""
    return await site.complete(user, "live", model=MODEL, **body)
