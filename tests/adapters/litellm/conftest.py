"""Fixtures for the `wattfare/` LiteLLM provider's tests: one real Wattfare server, and registered handlers.

Every test here talks to a `wattfare serve` process in test mode (the sandbox upstream), through a
handler whose httpx transport logs each request, so a test can count what reached Wattfare. LiteLLM
must never need the network: its model cost map is read from the package, and any lookup of or connection
to a non-loopback host fails the test. The server and the network guard are every adapter's
(tests/support/adapter_fixtures.py); the handlers are LiteLLM's alone.
"""

from __future__ import annotations

import os

# Before LiteLLM is imported anywhere: its import would otherwise try to download the price map.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import litellm
import pytest

import wattfare_litellm
from tests.adapters.litellm.request_log import AsyncLoggingTransport, LoggingTransport, RequestLog
from tests.support.adapter_fixtures import mark_folder
from tests.support.adapter_fixtures import no_network_but_loopback as no_network
from tests.support.adapter_fixtures import sandbox_server as wattfare_server
from tests.support.wattfare_server import ServerProcess
from wattfare import Wattfare
from wattfare_litellm import WattfareLLM

__all__ = ["no_network", "wattfare_server"]  # fixtures (tests/support/adapter_fixtures.py), registered for this folder

MODEL = "anthropic/claude-sonnet-4"
HERE = Path(__file__).parent

# Warnings LiteLLM 1.110.2 raises on first use that we cannot fix; named exactly, for these tests only.
LITELLM_WARNINGS = (
    # pydantic, building schemas of LiteLLM's TypedDicts that mark items `ReadOnly` (litellm/types/*).
    "ignore:Items? .* on TypedDict class '_?[A-Za-z]+' (is|are) using the `ReadOnly` qualifier:UserWarning",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_folder(items, HERE, *(pytest.mark.filterwarnings(spec) for spec in LITELLM_WARNINGS))


@pytest.fixture
def wattfare(wattfare_server: ServerProcess) -> Iterator[Wattfare]:
    """The SDK, to set caps and read the ledger."""
    with Wattfare(wattfare_server.secret, wattfare_server.base_url) as client:
        yield client


@pytest.fixture
def credentials(wattfare_server: ServerProcess) -> dict[str, str]:
    """A deployment's `api_key` and `api_base`."""
    return {"api_key": wattfare_server.secret, "api_base": wattfare_server.base_url}


@pytest.fixture
def user_id() -> str:
    return f"u_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def request_log() -> RequestLog:
    return RequestLog()


@pytest.fixture
def provider(request_log: RequestLog, monkeypatch: pytest.MonkeyPatch) -> Iterator[WattfareLLM]:
    """A registered handler whose sync requests are logged; the provider map is restored afterwards."""
    monkeypatch.setattr(litellm, "custom_provider_map", list(litellm.custom_provider_map))
    with httpx.Client(transport=LoggingTransport(request_log)) as http:
        yield wattfare_litellm.register(WattfareLLM(http_client=http))


@pytest.fixture
async def async_provider(request_log: RequestLog, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[WattfareLLM]:
    """A registered handler whose async requests are logged (its pool lives in the test's event loop)."""
    monkeypatch.setattr(litellm, "custom_provider_map", list(litellm.custom_provider_map))
    async with httpx.AsyncClient(transport=AsyncLoggingTransport(request_log)) as http:
        yield wattfare_litellm.register(WattfareLLM(async_http_client=http))
