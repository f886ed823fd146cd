"""The server in-process for page tests: an httpx client that keeps cookies, like one browser."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import httpx

from tests.support.wattfare_server import served
from wattfare.server.access.app_registration import ProvisionedApp
from wattfare.server.instants import utc_now
from wattfare.server.services import Services
from wattfare.server.store.records import Mode

PUBLIC_URL = "http://127.0.0.1:8787"
PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Pages:
    """One running server, its provisioned app, and a way to open browsers (cookie jars) on it."""

    app: ProvisionedApp
    services: Services
    transport: httpx.ASGITransport

    def browser(self, address: str | None = None) -> httpx.AsyncClient:
        """A new cookie jar, as if another person opened the site (from the client `address`, if given)."""
        transport = (
            self.transport if address is None else httpx.ASGITransport(self.transport.app, client=(address, 50000))
        )
        return httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL)

    async def session_token(self, app_user_id: str, mode: Mode = "live", monthly_usd: float = 5) -> str:
        async with self.browser() as server:
            response = await server.post(
                "/api/v1/sessions",
                json={"appUserId": app_user_id, "requestLimit": {"monthlyUsd": monthly_usd}},
                headers={"Authorization": f"Bearer {self.app.secret_keys[mode]}"},
            )
        assert response.status_code == 200, response.text
        return response.json()["token"]

    async def status(self, app_user_id: str, mode: Mode = "live") -> dict[str, object]:
        async with self.browser() as server:
            response = await server.get(
                "/api/v1/status",
                params={"appUserId": app_user_id},
                headers={"Authorization": f"Bearer {self.app.secret_keys[mode]}"},
            )
        assert response.status_code == 200, response.text
        return response.json()

    async def complete(self, app_user_id: str, mode: Mode = "live", **body: object) -> httpx.Response:
        payload = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]} | body
        async with self.browser() as server:
            return await server.post(
                "/api/v1/chat/completions",
                json=payload,
                headers={"Authorization": f"Bearer {self.app.secret_keys[mode]}", "Wattfare-User": app_user_id},
            )


@asynccontextmanager
async def pages(
    database_url: str, clock: Callable[[], datetime] = utc_now, **settings: object
) -> AsyncGenerator[Pages]:
    """The server in-process (`served`) at PUBLIC_URL, over `database_url`, its time told by `clock`."""
    async with served(database_url, clock, public_url=PUBLIC_URL, **settings) as server:
        yield Pages(server.app, server.services, httpx.ASGITransport(app=server.asgi))


def csrf_of(page: httpx.Response) -> str:
    match = _CSRF.search(page.text)
    assert match is not None, page.text
    return match.group(1)


async def sign_up(browser: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    form = await browser.get("/signup")
    return await browser.post("/signup", data={"csrf": csrf_of(form), "email": email, "password": password})


async def approve(browser: httpx.AsyncClient, token: str, cap: str = "5") -> httpx.Response:
    """Open the consent page for `token` and press Approve with `cap`."""
    consent = await browser.get("/connect", params={"session": token})
    data = {"csrf": csrf_of(consent), "session": token, "monthlyUsd": cap, "decision": "approve"}
    return await browser.post("/connect", data=data)
