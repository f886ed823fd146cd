"""Live deliveries reach public addresses only, checked when each connection is made (no DNS record needed here).

A name is resolved by an injected resolver, as the operating system would resolve an attacker's record: pointed at
127.0.0.1 or at the metadata address 169.254.169.254, the delivery is refused before any byte is sent; allowed, the
request goes to the very address that was checked, with the name kept in `Host` (and, over TLS, in SNI).
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.webhook_receiver import webhook_receiver
from wattfare.server.billing.key_vault import KeyVault, new_vault_key
from wattfare.server.mail.message import Email
from wattfare.server.settings import Settings
from wattfare.server.store import Store, open_store
from wattfare.server.webhooks.deliverer import Deliverer
from wattfare.server.webhooks.endpoints import InvalidEndpointError, add_endpoint, checked_url
from wattfare.server.webhooks.public_addresses import Address, NotPublicError, PublicOnlyTransport, Resolver, is_public

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def resolving_to(*addresses: str) -> tuple[list[str], Resolver]:
    """A resolver that answers `addresses` for any name, and the names it was asked."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[Address]:
        asked.append(f"{host}:{port}")
        return [ipaddress.ip_address(address) for address in addresses]

    return asked, resolve


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # a cloud's metadata service
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),  # multicast, which `is_global` lets through
        ("255.255.255.255", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4 inside IPv6: mapped,
        ("64:ff9b::7f00:1", False),  # NAT64 (which `is_global` calls public),
        ("2002:7f00:1::", False),  # 6to4 (likewise),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),  # and Teredo, whose client is 127.0.0.1
    ],
)
def test_what_counts_as_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


async def test_a_name_is_sent_to_the_address_that_was_checked_with_the_name_in_host() -> None:
    with webhook_receiver() as receiver:
        port = urlsplit(receiver.url).port
        asked, resolve = resolving_to("127.0.0.1")
        transport = PublicOnlyTransport(httpx.AsyncHTTPTransport(), resolve, allowed=lambda _: True)
        async with httpx.AsyncClient(transport=transport) as client:
            answer = await client.post(f"http://hooks.example.test:{port}/hooks/wattfare", content=b"{}")

        assert answer.status_code == 200
        assert asked == [f"hooks.example.test:{port}"]
        [arrival] = receiver.arrivals()
        assert arrival.headers["host"] == f"hooks.example.test:{port}"


@pytest.mark.parametrize(
    "answers",
    [("127.0.0.1",), ("169.254.169.254",), ("::1",), ("93.184.215.14", "10.0.0.7"), ()],
    ids=["loopback", "metadata", "ipv6-loopback", "one-private-among-public", "no-address"],
)
async def test_a_name_that_resolves_anywhere_private_is_refused_before_anything_is_sent(
    answers: tuple[str, ...],
) -> None:
    with webhook_receiver() as receiver:
        port = urlsplit(receiver.url).port
        _, resolve = resolving_to(*answers)
        transport = PublicOnlyTransport(httpx.AsyncHTTPTransport(), resolve)
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(NotPublicError, match="not a public address"):
                await client.post(f"http://rebinding.example.test:{port}/hooks/wattfare", content=b"{}")

        assert receiver.arrivals() == []


async def test_an_address_in_the_url_is_checked_without_resolving() -> None:
    async def never(host: str, port: int) -> list[Address]:
        raise AssertionError("an address needs no resolving")

    transport = PublicOnlyTransport(httpx.AsyncHTTPTransport(), never)
    async with httpx.AsyncClient(transport=transport) as client:
        for url in ("http://127.0.0.1:9/", "http://[::ffff:10.0.0.1]:9/", "http://[64:ff9b::a9fe:a9fe]/"):
            with pytest.raises(NotPublicError):
                await client.post(url, content=b"{}")


@pytest.mark.parametrize(
    "url", ["https://[64:ff9b::7f00:1]/hooks", "https://224.0.0.1/hooks", "https://[::ffff:169.254.169.254]/hooks"]
)
def test_a_live_endpoint_at_an_address_hidden_inside_another_is_refused_when_saved(url: str) -> None:
    with pytest.raises(InvalidEndpointError, match="must be public"):
        checked_url(url, "live")


class Letters:
    async def send(self, email: Email) -> None:
        raise AssertionError("no email here")


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = open_store(database_url)
    await store.upgrade()
    await store.create_app("app_a", "A", 10_000, NOW)
    try:
        yield store
    finally:
        await store.close()


async def test_a_live_endpoint_whose_name_points_inside_gets_nothing_and_the_attempt_says_why(store: Store) -> None:
    vault = KeyVault()
    vault.load(new_vault_key())
    asked, resolve = resolving_to("169.254.169.254")
    live = (await add_endpoint(store, vault, "app_a", "live", "https://hooks.example.com/wattfare", "", NOW)).endpoint
    await store.ensure_connection("conn_1", "app_a", "u1", "live", 1_000, NOW)  # an event for the endpoint
    deliverer = Deliverer(
        store, vault, Letters(), lambda: NOW, account_url="http://wattfare.test/account", timeout=5, resolve=resolve
    )

    assert await deliverer.run_once() == 1

    assert asked == ["hooks.example.com:443"]
    [record] = await store.recent_deliveries("app_a", live.id)
    assert record.last_status is None
    assert record.last_error is not None
    assert "hooks.example.com resolves to 169.254.169.254, which is not a public address" in record.last_error
    assert record.state == "pending"  # retried on the schedule, checked again each time


async def test_an_operator_can_hold_test_mode_deliveries_to_public_addresses_too(store: Store) -> None:
    """`WATTFARE_WEBHOOK_PRIVATE_TEST_ENDPOINTS=0`: a hosted Wattfare whose developers may not probe its network."""
    vault = KeyVault()
    vault.load(new_vault_key())
    with webhook_receiver() as receiver:
        endpoint = (await add_endpoint(store, vault, "app_a", "test", receiver.url, "", NOW)).endpoint
        await store.ensure_connection("conn_1", "app_a", "u1", "test", 1_000, NOW)
        held = Deliverer(
            store,
            vault,
            Letters(),
            lambda: NOW,
            account_url="http://wattfare.test/account",
            private_test_endpoints=False,
        )

        assert await held.run_once() == 1

        assert receiver.arrivals() == []
        [record] = await store.recent_deliveries("app_a", endpoint.id)
        assert record.last_error is not None
        assert "127.0.0.1, which is not a public address" in record.last_error


@pytest.mark.parametrize(
    ("value", "private"), [(None, True), ("1", True), ("on", True), ("0", False), ("False", False)]
)
def test_the_switch_reads_as_a_switch(value: str | None, private: bool) -> None:
    env = {} if value is None else {"WATTFARE_WEBHOOK_PRIVATE_TEST_ENDPOINTS": value}
    assert Settings.from_env(env).webhook_private_test_endpoints is private


def test_a_switch_set_to_anything_else_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="WATTFARE_WEBHOOK_PRIVATE_TEST_ENDPOINTS must be 1 or 0"):
        Settings.from_env({"WATTFARE_WEBHOOK_PRIVATE_TEST_ENDPOINTS": "sometimes"})
