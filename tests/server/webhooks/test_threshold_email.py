"""Members' threshold emails, through a real SMTP server: sent by the delivery loop, once, at the share they chose.

The server runs in this process (its delivery loop polls only at start, so the test runs each round itself with
`deliverer.run_once`); the member, their credits and their live connection are made through the store, a real
request with a prompt spends a little, and holds settled through the store push the month's spend across the
thresholds, as the proxy's settles do.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from tests.support.smtp_server import SmtpServer, smtp_server
from tests.support.wattfare_server import Served, served
from wattfare.metering import usd_to_nanos, window_containing
from wattfare.server.access.keys import new_id
from wattfare.server.store.records import Connection, Mode, NewHold, Settlement

pytestmark = pytest.mark.anyio

CAP = usd_to_nanos("1")
PROMPT = "the secret recipe of zephyr-marmalade"


@pytest.fixture
def mail() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


class Member:
    """A member with credits, and the helpers that spend on their connections."""

    def __init__(self, server: Served, member_id: str, email: str) -> None:
        self.server = server
        self.id = member_id
        self.email = email

    async def connect(self, app_user_id: str, mode: Mode = "live") -> Connection:
        services = self.server.services
        return await services.store.approve_member_connection(
            new_id("conn"), self.server.app.app.id, app_user_id, mode, CAP, self.id, services.clock()
        )

    async def spend_to(self, connection: Connection, percent: int) -> None:
        """Settle one hold that brings the connection's spend this month to `percent` of its cap."""
        store, now = self.server.services.store, self.server.services.clock()
        window = window_containing(now).key
        budget = await store.budget(connection.app_id, connection.mode, connection.app_user_id, window)
        spent = 0 if budget is None else budget.spent
        amount = CAP * percent // 100 - spent
        assert amount > 0
        hold = NewHold(f"req_{uuid.uuid4().hex}", connection.id, window, amount, "m", now, now + timedelta(minutes=5))
        assert await store.try_reserve_credited(hold, self.id)
        settled = await store.settle(Settlement(hold.id, amount), now)
        assert settled is not None
        assert settled.spent == CAP * percent // 100


async def member_of(server: Served, email: str) -> Member:
    store, now = server.services.store, server.services.clock()
    made = await store.create_member(new_id("mem"), email, "$argon2id$not-used", now)
    assert made is not None
    await store.grant_credits(made.id, usd_to_nanos("10"), "test", now)
    return Member(server, made.id, email)


async def test_crossing_80_percent_emails_the_member_once_and_100_percent_sends_nothing_more(
    database_url: str, mail: SmtpServer
) -> None:
    async with served(database_url, smtp_url=mail.url, webhook_poll_seconds=3600) as server:
        nia = await member_of(server, "nia@example.com")
        connection = await nia.connect("nia-user")
        # A real request first: its prompt must never reach the email.
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=server.asgi), base_url="http://wattfare.test/api/v1"
        ) as api:
            answer = await api.post(
                "/chat/completions",
                json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]},
                headers={"Authorization": f"Bearer {server.app.secret_keys['live']}", "Wattfare-User": "nia-user"},
            )
        assert answer.status_code == 200, answer.text
        deliverer = server.services.deliverer

        await nia.spend_to(connection, 79)
        assert await deliverer.run_once() == 0  # 50% crossed: the member chose 80
        await nia.spend_to(connection, 85)
        assert await deliverer.run_once() == 1
        assert await deliverer.run_once() == 0  # sent: not again
        await nia.spend_to(connection, 100)
        assert await deliverer.run_once() == 0

    [letter] = mail.to("nia@example.com")
    assert letter.message["Subject"] == "Test app reached 80% of its monthly cap"
    assert "Test app has spent $0.85 of the $1.00 a month you allowed it (80%)." in letter.text
    assert "/account" in letter.text
    assert "zephyr" not in letter.text
    assert "zephyr" not in str(letter.message)
    assert [received.recipients for received in mail.received] == [["nia@example.com"]]


async def test_the_share_a_member_chooses_decides_which_email_and_never_sends_none(
    database_url: str, mail: SmtpServer
) -> None:
    async with served(database_url, smtp_url=mail.url, webhook_poll_seconds=3600) as server:
        store, deliverer = server.services.store, server.services.deliverer
        oto = await member_of(server, "oto@example.com")
        at_100 = await oto.connect("oto-at-100")
        never = await oto.connect("oto-never")
        test_mode = await oto.connect("oto-test", mode="test")
        assert await store.set_alert_percent(oto.id, at_100.id, 100)
        assert await store.set_alert_percent(oto.id, never.id, None)
        assert not await store.set_alert_percent("mem_someone_else", never.id, 80)  # not theirs: refused

        for connection in (at_100, never, test_mode):
            await oto.spend_to(connection, 85)
        assert await deliverer.run_once() == 0
        assert mail.to("oto@example.com") == []

        for connection in (at_100, never, test_mode):
            await oto.spend_to(connection, 100)
        assert await deliverer.run_once() == 1
        assert await deliverer.run_once() == 0

    [letter] = mail.to("oto@example.com")
    assert letter.message["Subject"] == "Test app reached 100% of its monthly cap"
    assert "(100%)" in letter.text
    assert "It can spend nothing more until the month ends" in letter.text
