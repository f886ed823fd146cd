"""The provider ceiling: each credit-funded member's requests go out on a key of their own with a hard monthly limit.

In-process Wattfare (so a test double of the meter can be wired in through `create_app`) against the stand-in
OpenRouter, a real process serving the model API and the key management API, enforcing each key's `limit`.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from prometheus_client import REGISTRY

from tests.server.ceiling.ceiling_site import (
    account_form,
    ask,
    ceiling_site,
    database_text,
    managed_keys,
    member_with_connection,
)
from tests.support.standin_upstream import StandIn, run_standin
from wattfare.metering import usd_to_nanos, window_containing
from wattfare.server.access.keys import new_request_id
from wattfare.server.billing.hold import HeldRequest, Hold, Refusal
from wattfare.server.billing.meter import Meter
from wattfare.server.billing.pricebook import PricedModel
from wattfare.server.billing.reconciliation import reconcile
from wattfare.server.instants import utc_now
from wattfare.server.services import Services
from wattfare.server.store import Store
from wattfare.server.store.grant_records import Grant
from wattfare.server.store.records import Endpoint, KeyRecord

pytestmark = pytest.mark.anyio


@pytest.fixture
def standin() -> Iterator[StandIn]:
    # No delay between the premium model's tokens: nothing here depends on timing.
    with run_standin(premium_delay=0) as running:
        yield running


class AdmitsEverything(Meter):
    """A meter with a bug: it admits every request, holding nothing (a test double; production has no such switch)."""

    def __init__(self, services: Services) -> None:
        super().__init__(services.store, services.clock, hold_ttl=timedelta(minutes=15))
        self._rows: Store = services.store

    async def reserve(
        self,
        key: KeyRecord,
        app_user_id: str,
        model: PricedModel,
        *,
        prompt_token_bound: int,
        requested_max_tokens: int | None,
        choices: int = 1,
        images: int = 0,
        request_id: str | None = None,
        endpoint: Endpoint = "chat.completions",
        grant: Grant | None = None,
    ) -> HeldRequest | Refusal:
        assert grant is None  # this double meters connections only
        connection = await self._rows.get_connection(key.app_id, key.mode, app_user_id)
        assert connection is not None
        now = utc_now()
        hold = Hold(
            id=request_id or new_request_id(),
            connection=connection,
            window=window_containing(now),
            amount=usd_to_nanos(1000),
            model=model,
            max_tokens=requested_max_tokens,
            clamped=False,
            remaining_before=0,
            started_at=now,
            prompt_token_bound=prompt_token_bound,
            funding=await self._rows.connection_funding(connection.id),
        )
        return HeldRequest(self, hold)


def sse_errors(text: str) -> list[dict[str, object]]:
    """The error objects of a relayed stream's events."""
    events = [line.removeprefix("data: ") for line in text.splitlines() if line.startswith("data: {")]
    return [parsed["error"] for parsed in map(orjson.loads, events) if "error" in parsed]


async def test_the_ceiling_key_is_made_and_its_limit_follows_grants_caps_and_revocations(
    tmp_path: Path, standin: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with ceiling_site(tmp_path, standin) as site, site.browser() as browser:
        member = await member_with_connection(site, browser, "cleo@example.com", "cleo-user", "5")
        # Nothing to spend yet (no credits): no key is made, and a request is refused by the meter.
        assert managed_keys(standin) == []
        assert (await ask(site, "cleo-user")).json()["error"]["code"] == "funding_invalid"

        await site.services.store.grant_credits(member, usd_to_nanos(2), "test", utc_now())
        # Credits, but no ceiling key made yet: nothing is sent on the operator's key meanwhile.
        unsent = await ask(site, "cleo-user")
        assert unsent.json()["error"]["code"] == "funding_invalid"
        assert "not set up yet" in unsent.json()["error"]["message"]
        assert standin.stats()["total"] == 0
        await site.services.ceilings.sync_all()  # the periodic job (a grant by the CLI also syncs at once)
        [key] = managed_keys(standin)
        # Credits ($2) are lower than the cap ($5): the limit is the credits.
        assert (key["limit"], key["limit_reset"], key["disabled"]) == (2.0, "monthly", False)

        served = await ask(site, "cleo-user")
        assert served.status_code == 200, served.text
        assert standin.stats()["last_headers"]["authorization"] == f"Bearer {key['key']}"  # not the operator's
        assert (await site.services.store.credit_balance(member)).spent == 315_000
        assert managed_keys(standin)[0]["usage_monthly"] == 0.000315  # the provider counted what the ledger did

        # A cap lowered to $1 is now the lower bound: this month's charge plus the cap's headroom, i.e. $1.
        [connection] = await site.services.store.member_connections(member, window_containing(utc_now()).key)
        changed = await account_form(browser, f"/account/connections/{connection.connection.id}/cap", monthlyUsd="1")
        assert changed.status_code == 303
        assert managed_keys(standin)[0]["limit"] == 1.0

        # Syncing again changes nothing: no call is made when the limit is in step.
        patches = sum(call["method"] == "PATCH" for call in standin.stats()["key_calls"])
        await site.services.ceilings.sync_all()
        assert sum(call["method"] == "PATCH" for call in standin.stats()["key_calls"]) == patches

        # Revoked: nothing left to spend this month, so the key is disabled at the charge already made.
        revoked = await account_form(browser, f"/account/connections/{connection.connection.id}/revoke")
        assert revoked.status_code == 303
        [key] = managed_keys(standin)
        assert (key["disabled"], key["limit"]) == (True, 0.000315)

        # A grant with an approved connection again re-enables it (cap $3, credits $2 - spent: the credits bind).
        again = await member_with_connection(site, site.browser(), "cleo@example.com", "cleo-user", "3")
        assert again == member
        [key] = managed_keys(standin)
        assert (key["disabled"], key["limit"]) == (False, 2.0)

        # Never in clear: not in the database, not in the log.
        assert key["key"] not in database_text(tmp_path / "w.db")
        assert key["key"][12:] not in database_text(tmp_path / "w.db")
        assert key["key"][12:] not in caplog.text


async def test_a_meter_that_admits_everything_is_stopped_by_the_ceiling_mid_stream_and_reconciliation_reports_it(
    tmp_path: Path, standin: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    reached_before = REGISTRY.get_sample_value("wattfare_provider_ceiling_reached_total") or 0.0
    async with (
        ceiling_site(tmp_path, standin, meter=AdmitsEverything) as site,
        site.browser() as browser,
    ):
        member = await member_with_connection(site, browser, "dora@example.com", "dora-user", "5")
        await site.services.store.grant_credits(member, usd_to_nanos("0.002"), "test", utc_now())
        await site.services.ceilings.sync_all()
        [key] = managed_keys(standin)
        assert key["limit"] == 0.002
        # The real meter would refuse even one request: its worst case ($0.06 of output allowance) passes $0.002.

        # Streams run whole while the key has room; the first that would pass the limit is cut there by the
        # provider, and the member's stream ends with `funding_invalid`.
        whole = 0
        while True:
            streamed = await ask(site, "dora-user", stream=True)
            assert streamed.status_code == 200, streamed.text
            errors = sse_errors(streamed.text)
            if errors:
                break
            whole += 1
            assert whole < 20
        assert whole == 6  # 6 x $0.000315 fit under $0.002; the 7th did not
        [error] = errors
        assert error["code"] == "funding_invalid"
        assert "provider ceiling reached" in str(error["message"])
        assert "word0" in streamed.text  # it was cut mid-stream, after some tokens

        # Then the provider refuses outright: the member's own refusal, never the operator's `upstream` error.
        refused = None
        for _ in range(5):
            answer = await ask(site, "dora-user")
            if answer.status_code != 200:
                refused = answer
                break
        assert refused is not None
        assert refused.status_code == 402
        assert refused.json()["error"]["code"] == "funding_invalid"
        assert "provider ceiling reached" in refused.json()["error"]["message"]
        assert managed_keys(standin)[0]["usage_monthly"] >= 0.002

        # The backstop caught what the meter did not: a metric, an error log line, a note on /account.
        reached = REGISTRY.get_sample_value("wattfare_provider_ceiling_reached_total") or 0.0
        assert reached - reached_before == 2
        logged = [r for r in caplog.records if r.name == "wattfare.ceiling" and r.levelno == logging.ERROR]
        assert len(logged) == 2
        assert all("provider ceiling reached" in r.getMessage() for r in logged)
        account = await browser.get("/account")
        assert 'data-test="ceiling-reached"' in account.text
        # The app's developer (here the same person) sees it beside that user in the console's usage.
        app_id = site.app.app.id
        with closing(sqlite3.connect(tmp_path / "w.db")) as db, db:
            db.execute("UPDATE apps SET owner_member_id = ? WHERE id = ?", (member, app_id))
        console = await browser.get(f"/developers/apps/{app_id}", params={"mode": "live"})
        assert console.status_code == 200
        [row] = [line for line in console.text.split("<tr") if "dora-user" in line]
        assert 'data-test="ceiling-reached"' in row

        # Reconciliation: the provider counted about $0.002 on the key; the buggy meter charged nothing.
        keys = site.services.ceilings.keys
        assert keys is not None
        [found] = await reconcile(site.services.store, keys, utc_now())
        assert found.member_id == member
        assert found.ledger == 0
        assert found.provider_usage is not None
        assert found.provider_usage >= usd_to_nanos("0.002")
        assert found.beyond_tolerance


async def test_with_the_real_meter_a_stream_cut_by_the_ceiling_ends_its_hold_and_reconciles(
    tmp_path: Path, standin: StandIn
) -> None:
    async with ceiling_site(tmp_path, standin) as site, site.browser() as browser:
        member = await member_with_connection(site, browser, "emil@example.com", "emil-user", "5")
        await site.services.store.grant_credits(member, usd_to_nanos(1), "test", utc_now())
        await site.services.ceilings.sync_all()
        assert (await ask(site, "emil-user", stream=True, stream_options={"include_usage": True})).status_code == 200
        keys = site.services.ceilings.keys
        assert keys is not None
        [comparison] = await reconcile(site.services.store, keys, utc_now())
        assert comparison.difference == 0  # every request metered: the two counts agree exactly
        assert not comparison.beyond_tolerance

        # An operator's mistake at OpenRouter (the limit lowered by hand): the next stream is cut by the provider.
        [key] = managed_keys(standin)
        await keys.update(key["hash"], limit=usd_to_nanos("0.0004"), disabled=False)
        streamed = await ask(site, "emil-user", stream=True)
        [error] = sse_errors(streamed.text)
        assert error["code"] == "funding_invalid"

        # The hold ended once: nothing held on the cap or the credits, the cut stream charged to both.
        balance = await site.services.store.credit_balance(member)
        assert balance.reserved == 0
        snapshot = await site.services.store.budget(
            site.app.app.id, "live", "emil-user", window_containing(utc_now()).key
        )
        assert snapshot is not None
        assert snapshot.reserved == 0
        assert snapshot.spent == balance.spent > 315_000
        # The ledger charged the cut stream its bound; the provider billed what it served: within the tolerance.
        [comparison] = await reconcile(site.services.store, keys, utc_now())
        assert comparison.ledger == balance.spent
        assert comparison.difference < 0
        assert not comparison.beyond_tolerance
