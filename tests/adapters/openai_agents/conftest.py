"""Fixtures for WattfareModelProvider's tests: one real Wattfare server (sandbox upstream), no other network.

The Agents SDK exports traces to OpenAI by default; here tracing is off for the whole test process and its
exporter removed, so nothing can leave this machine even if a test turns tracing back on (test_tracing.py does,
with an in-memory processor of its own). Requests go through an httpx2 transport that logs them, so a test can
count what reached Wattfare. The server and the network guard are every adapter's (tests/support/adapter_fixtures.py).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx2
import pytest
from agents import RunConfig, set_trace_processors, set_tracing_disabled

from tests.adapters.openai_request_log import LoggingTransport, RequestLog
from tests.support.adapter_fixtures import no_network_but_loopback as no_network
from tests.support.adapter_fixtures import sandbox_server as wattfare_server
from tests.support.wattfare_server import ServerProcess
from wattfare import Wattfare
from wattfare_agents import WattfareModelProvider

__all__ = ["no_network", "wattfare_server"]  # fixtures (tests/support/adapter_fixtures.py), registered for this folder

MODEL = "openai/gpt-4o-mini"


@pytest.fixture(scope="session", autouse=True)
def no_trace_export() -> None:
    set_tracing_disabled(True)
    set_trace_processors([])  # drops the default exporter (to OpenAI) for this test process


@pytest.fixture
def wattfare(wattfare_server: ServerProcess) -> Iterator[Wattfare]:
    """The SDK, to set caps and read what each user was charged."""
    with Wattfare(wattfare_server.secret, wattfare_server.base_url) as client:
        yield client


@pytest.fixture
def user_id() -> str:
    return f"u_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def request_log() -> RequestLog:
    return RequestLog()


@pytest.fixture
async def provider(wattfare_server: ServerProcess, request_log: RequestLog) -> AsyncIterator[WattfareModelProvider]:
    """A provider with no user of its own (tests call `for_user`), whose requests are logged."""
    async with httpx2.AsyncClient(transport=LoggingTransport(request_log)) as http:
        provider = WattfareModelProvider(
            api_key=wattfare_server.secret, base_url=wattfare_server.base_url, http_client=http
        )
        yield provider
        await provider.aclose()


def config_for(provider: WattfareModelProvider, user_id: str) -> RunConfig:
    """A run charged to `user_id`, traced nowhere."""
    return RunConfig(model_provider=provider.for_user(user_id), tracing_disabled=True)


def charged_requests(wattfare: Wattfare, user_id: str) -> int:
    """How many completions Wattfare charged to `user_id` (its usage API, read from the ledger)."""
    return sum(row.requests for row in wattfare.usage(user_id).data)
