"""The dashboards show what embeddings cost beside chat: the developer's usage per user, the member's chart."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from datetime import UTC, datetime

import httpx
import pytest

from tests.server.web.pages_client import PUBLIC_URL, Pages, approve, csrf_of, pages, sign_up
from wattfare.metering import usd_to_nanos
from wattfare.server.text_formats import usd_text

pytestmark = pytest.mark.anyio
EMBEDDER = "openai/text-embedding-3-large"
CHAT = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


async def spend(site: Pages, secret: str, user: str, path: str, body: Mapping[str, object]) -> int:
    """Make one request; return what it cost, in nano-USD, as its headers said."""
    async with httpx.AsyncClient(transport=site.transport, base_url=PUBLIC_URL) as api:
        answer = await api.post(
            f"/api/v1/{path}", json=dict(body), headers={"Authorization": f"Bearer {secret}", "Wattfare-User": user}
        )
    assert answer.status_code == 200, answer.text
    return usd_to_nanos(answer.headers["wattfare-cost-usd"])


async def test_the_console_shows_each_users_embedding_spend_apart(database_url: str) -> None:
    async with pages(database_url) as site, site.browser() as browser:
        await sign_up(browser, "dev@example.com")
        console = await browser.get("/developers")
        made = await browser.post("/developers/apps", data={"csrf": csrf_of(console), "name": "Rag", "origins": ""})
        secret = re.search(r'data-test="secret-test">([^<]+)<', made.text)
        app_id = re.search(r"/developers/apps/(app_[A-Za-z0-9]+)", made.text)
        assert secret is not None
        assert app_id is not None

        chat = await spend(site, secret.group(1), "reader", "chat/completions", CHAT)
        embedded = 0
        for text in ("a document about cats", "another about dogs"):
            embedded += await spend(site, secret.group(1), "reader", "embeddings", {"model": EMBEDDER, "input": text})
        await spend(site, secret.group(1), "chatter", "chat/completions", CHAT)

        page = (await browser.get(f"/developers/apps/{app_id.group(1)}")).text

        cells = dict(
            re.findall(
                r'<tr data-test="usage-row"><td>([^<]+)</td>.*?data-test="usage-embeddings">(.*?)</td>', page, re.S
            )
        )
        assert html.unescape(cells["reader"]) == f'{usd_text(embedded)} <span class="hint">(2 requests)</span>'
        assert "none" in cells["chatter"]
        assert usd_text(chat + embedded) in page


async def test_the_members_chart_splits_this_months_spend_by_endpoint(database_url: str) -> None:
    async with pages(database_url) as site, site.browser() as browser:
        await sign_up(browser, "mia@example.com")
        await approve(browser, await site.session_token("mia-user"), "5")
        member = await site.services.store.member_credentials("mia@example.com")
        assert member is not None
        await site.services.store.grant_credits(member.member.id, 10**9, "test", datetime.now(UTC))
        secret = site.app.secret_keys["live"]

        chat = await spend(site, secret, "mia-user", "chat/completions", CHAT)
        embedded = await spend(site, secret, "mia-user", "embeddings", {"model": EMBEDDER, "input": ["x" * 400] * 3})

        page = (await browser.get("/account")).text

        shown = re.search(r'data-test="embeddings-spend">([^<]+)<', page)
        assert shown is not None
        assert shown.group(1) == usd_text(embedded)
        assert f"Chat completions {usd_text(chat)}" in html.unescape(page)
        segments = [
            int(nanos) for nanos in re.findall(r'class="bar embeddings"[^>]*data-embeddings-nanos="(\d+)"', page)
        ]
        assert segments == [embedded]
        bars = [int(nanos) for nanos in re.findall(r'class="bar" [^>]*data-nanos="(\d+)"', page)]
        assert bars == [chat + embedded]
