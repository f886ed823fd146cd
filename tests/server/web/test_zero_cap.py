"""A $0 cap is refused where a person types one (the consent popup, /account), with what to do instead."""

from __future__ import annotations

import pytest

from tests.server.web.pages_client import approve, pages, sign_up

pytestmark = pytest.mark.anyio


async def test_the_consent_popup_refuses_a_zero_dollar_cap_and_points_at_deny(database_url: str) -> None:
    async with pages(database_url) as site, site.browser() as browser:
        await sign_up(browser, "ann@example.com")
        token = await site.session_token("ann-user")

        refused = await approve(browser, token, cap="0")

        assert refused.status_code == 422
        assert "more than 0" in refused.text
        assert "choose Deny" in refused.text
        assert (await site.status("ann-user"))["connected"] is False
        approved = await approve(browser, token, cap="0.50")
        assert approved.status_code == 200
        assert (await site.status("ann-user"))["limits"] == {"monthlyUsd": 0.5}
