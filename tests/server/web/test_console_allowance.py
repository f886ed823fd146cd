"""The developer console sets an app's output allowance, and the proxy sends it, on both stores."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.server.web.pages_client import PUBLIC_URL, csrf_of, pages, sign_up

pytestmark = pytest.mark.anyio


async def test_the_console_sets_and_clears_an_apps_output_allowance(database_url: str) -> None:
    async with pages(database_url) as site, site.browser() as browser:
        await sign_up(browser, "dev@example.com")
        console = await browser.get("/developers")
        made = await browser.post("/developers/apps", data={"csrf": csrf_of(console), "name": "Acme", "origins": ""})
        assert made.status_code == 200, made.text
        secret = re.search(r'data-test="secret-test">([^<]+)<', made.text)
        assert secret is not None
        app_id = re.search(r"/developers/apps/(app_[A-Za-z0-9]+)", made.text)
        assert app_id is not None
        page_url = f"/developers/apps/{app_id.group(1)}"

        async def max_tokens_sent() -> str:
            async with httpx.AsyncClient(transport=site.transport, base_url=PUBLIC_URL) as api:
                answer = await api.post(
                    "/api/v1/chat/completions",
                    json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                    headers={"Authorization": f"Bearer {secret.group(1)}", "Wattfare-User": "u1"},
                )
            assert answer.status_code == 200, answer.text
            return answer.headers["wattfare-max-tokens"]

        assert await max_tokens_sent() == "4096"
        page = await browser.get(page_url)
        assert "Output allowance" in page.text
        saved = await browser.post(f"{page_url}/allowance", data={"csrf": csrf_of(page), "allowance": "2,000"})
        assert saved.status_code == 303
        assert 'value="2000"' in (await browser.get(page_url)).text
        assert await max_tokens_sent() == "2000"

        refused = await browser.post(f"{page_url}/allowance", data={"csrf": csrf_of(page), "allowance": "lots"})
        assert refused.status_code == 422
        assert await max_tokens_sent() == "2000"

        cleared = await browser.post(f"{page_url}/allowance", data={"csrf": csrf_of(page), "allowance": ""})
        assert cleared.status_code == 303
        assert await max_tokens_sent() == "4096"
