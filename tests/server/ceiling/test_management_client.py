"""The management client (`upstream.openrouter_keys`) against the stand-in's OpenRouter key management API."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.standin_upstream import MANAGEMENT_KEY, StandIn, run_standin
from wattfare.metering import usd_to_nanos
from wattfare.server.upstream.openrouter_keys import KeyManagementError, OpenRouterKeys

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def standin() -> Iterator[StandIn]:
    with run_standin() as running:
        yield running


async def test_a_key_is_made_with_a_monthly_limit_then_patched_read_and_deleted(standin: StandIn) -> None:
    keys = OpenRouterKeys(standin.url, MANAGEMENT_KEY)
    try:
        made = await keys.create("wattfare member mem_x", usd_to_nanos("2.5"))
        [listed] = [k for k in standin.stats()["managed_keys"] if k["hash"] == made.hash]
        assert listed["key"] == made.key
        assert (listed["limit"], listed["limit_reset"], listed["disabled"]) == (2.5, "monthly", False)
        assert listed["name"] == "wattfare member mem_x"

        state = await keys.update(made.hash, limit=usd_to_nanos("0.000123456"), disabled=True)
        assert (state.limit, state.disabled, state.usage_monthly) == (123_456, True, 0)
        # The same call again changes nothing: limits are set, never added to.
        assert await keys.update(made.hash, limit=usd_to_nanos("0.000123456"), disabled=True) == state
        assert await keys.state(made.hash) == state

        # The key checks itself as OpenRouter's `GET /api/v1/key` answers it.
        own = httpx.get(f"{standin.url}/api/v1/key", headers={"Authorization": f"Bearer {made.key}"})
        assert own.json()["data"]["limit"] == 0.000123456

        await keys.delete(made.hash)
        with pytest.raises(KeyManagementError):
            await keys.state(made.hash)
    finally:
        await keys.aclose()


async def test_a_wrong_management_key_fails_without_showing_any_key(standin: StandIn) -> None:
    keys = OpenRouterKeys(standin.url, "sk-or-v1-not-a-management-key")
    try:
        with pytest.raises(KeyManagementError) as raised:
            await keys.create("x", 1)
        assert "401" in str(raised.value)
        assert "sk-or" not in str(raised.value)
    finally:
        await keys.aclose()


async def test_an_unreachable_api_is_a_key_management_error() -> None:
    keys = OpenRouterKeys("http://127.0.0.1:9", MANAGEMENT_KEY)
    try:
        with pytest.raises(KeyManagementError):
            await keys.state("abc")
    finally:
        await keys.aclose()
