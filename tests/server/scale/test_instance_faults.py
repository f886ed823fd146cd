"""Faults of the scale-out deployment itself: an instance killed mid-stream, and the database going away.

Each test runs its own `wattfare serve` on its own fresh PostgreSQL database (these faults would
disturb the shared deployment), reads the books straight from the database, and asks the stand-in
upstream how many requests really reached a model, so nothing can be served unmetered unnoticed.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx
import pytest

from tests.server.process.sse_wire import data_fields
from tests.server.scale.figures import record
from tests.server.scale.forwarder import Forwarder
from tests.support import postgres
from tests.support.ledger import AsyncLedger
from tests.support.standin_upstream import StandIn
from tests.support.wattfare_server import CLIENT_LIMITS, Instance, launch, provision_async, wait_healthy
from wattfare.server.access.app_registration import ProvisionedApp

pytestmark = [pytest.mark.postgres, pytest.mark.anyio, pytest.mark.xdist_group("scale")]

SLOW = {"model": "standin/slow", "messages": [{"role": "user", "content": "Take your time."}], "stream": True}
QUICK = {"model": "standin/ok", "messages": [{"role": "user", "content": "Hello."}], "max_tokens": 5}
TIMEOUT = httpx.Timeout(30.0)
TTL_SECONDS = 5  # holds of dead requests expire this soon (the default is 15 minutes)


@pytest.fixture
def database_url() -> Iterator[str]:
    with postgres.fresh_database() as url:
        yield url


def api(instance: Instance, app: ProvisionedApp) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {app.secret_keys['test']}"}
    return httpx.AsyncClient(base_url=instance.api_url, headers=headers, timeout=TIMEOUT, limits=CLIENT_LIMITS)


async def start(name: str, log_dir: Path, env: dict[str, str], port: int | None = None) -> Instance:
    """Launch an instance and wait for it without blocking the event loop (the forwarder may live there)."""
    instance = launch(name, log_dir, env, port)
    try:
        await anyio.to_thread.run_sync(wait_healthy, [instance])
    except BaseException:
        await anyio.to_thread.run_sync(instance.stop)
        raise
    return instance


async def read_data_events(lines: object, count: int) -> None:
    seen = 0
    async for line in lines:  # type: ignore[attr-defined]
        seen += line.startswith("data:")
        if seen == count:
            return


async def test_holds_of_an_instance_killed_mid_stream_expire_after_its_restart(
    database_url: str, tmp_path: Path, standin_env: dict[str, str]
) -> None:
    app = await provision_async(database_url)
    env = standin_env | {"WATTFARE_DATABASE_URL": database_url, "WATTFARE_HOLD_TTL_SECONDS": str(TTL_SECONDS)}
    books, user, streams = AsyncLedger(database_url), f"doomed-{uuid.uuid4().hex[:8]}", 3
    # A second instance on the same database keeps serving while the first is dead (its own holds last 15 min).
    survivor = await start("survivor", tmp_path, env | {"WATTFARE_HOLD_TTL_SECONDS": "900"})
    doomed = await start("doomed", tmp_path, env)
    try:
        request_ids: list[str] = []
        cut_off: list[bool] = []
        ready = anyio.Event()
        # Both are set inside the task group below; anyio types its exit `-> bool` (a task group swallows its own
        # cancellation), so without a binding here pyright calls them possibly unbound after it.
        holds: dict[str, int | None] = {}
        killed_at = 0.0

        async def stream(client: httpx.AsyncClient) -> None:
            headers = {"Wattfare-User": user}
            try:
                async with client.stream("POST", "/chat/completions", json=SLOW, headers=headers) as response:
                    assert response.status_code == 200
                    request_ids.append(response.headers["wattfare-request-id"])
                    lines = response.aiter_lines()
                    await read_data_events(lines, 2)
                    if len(request_ids) == streams:
                        ready.set()
                    await read_data_events(lines, 1_000)
            except httpx.TransportError:
                cut_off.append(True)  # the server died under it

        async with api(doomed, app) as client, anyio.create_task_group() as group:
            for _ in range(streams):
                group.start_soon(stream, client)
            with anyio.fail_after(20):
                await ready.wait()
            holds = {request_id: await books.hold(request_id) for request_id in request_ids}
            # Killed well within the TTL, so the dying instance's own sweeper cannot have settled them.
            assert all(hold is not None and hold > 0 for hold in holds.values()), holds
            await anyio.to_thread.run_sync(doomed.kill_hard)
            killed_at = time.monotonic()
        assert len(cut_off) == streams
        # Nothing settled them: the process died holding its holds.
        for request_id, hold in holds.items():
            assert await books.hold(request_id) == hold
            assert await books.entry(request_id) is None
        # The other instance serves on, the dead one's user included (what the dead one holds is not spendable).
        async with api(survivor, app) as client:
            for someone in (user, f"{user}-other"):
                answer = await client.post("/chat/completions", json=QUICK, headers={"Wattfare-User": someone})
                assert answer.status_code == 200, answer.text
    finally:
        await anyio.to_thread.run_sync(doomed.stop)
        if sys.exc_info()[0] is not None:
            await anyio.to_thread.run_sync(survivor.stop)

    try:
        restarted = await start("doomed", tmp_path, env, port=doomed.port)
    finally:
        if sys.exc_info()[0] is not None:
            await anyio.to_thread.run_sync(survivor.stop)
    try:
        settled_within = 0.0
        for request_id, hold in holds.items():
            entry = await books.wait_for_entry(request_id, within=45.0)
            settled_within = time.monotonic() - killed_at
            # Settled by whichever instance swept first: at the reserved amount, the conservative charge.
            assert (entry.kind, entry.amount) == ("expired", hold)
        assert settled_within < 45.0
        charged_before = sum(
            e.amount for e in await books.entries(app_user_prefix=user) if e.app_user_id == user and e.kind == "charge"
        )
        await books.assert_balanced(user)
        account = await books.account(user)
        assert account.spent == sum(holds.values()) + charged_before  # type: ignore[arg-type]
        # The user can spend again through the restarted instance, with the expired holds counted as spent.
        async with api(restarted, app) as client:
            again = await client.post("/chat/completions", json=QUICK, headers={"Wattfare-User": user})
        assert again.status_code == 200, again.text
        charged = await books.entry(again.headers["wattfare-request-id"])
        assert charged is not None
        await books.assert_balanced(user)
        account = await books.account(user)
        assert account.spent == sum(holds.values()) + charged_before + charged.amount  # type: ignore[arg-type]
        # Both lives of the restarted instance (SIGKILL leaves no trace) and the survivor: no error logged.
        assert "Traceback" not in restarted.log_text() + survivor.log_text()
    finally:
        await anyio.to_thread.run_sync(restarted.stop)
        await anyio.to_thread.run_sync(survivor.stop)
    record(
        "kill-9",
        "`kill -9` of an instance mid-stream, then restart",
        [
            ("instances on the database", "2 (one killed with SIGKILL mid-stream, then restarted; one serving on)"),
            ("streams in flight when the instance was killed", streams),
            ("WATTFARE_HOLD_TTL_SECONDS", TTL_SECONDS),
            ("holds left by the dead process", f"{streams}, untouched until the restart"),
            (
                "time from `kill -9` to the last hold settled `expired` at its reserved amount",
                f"{settled_within:.1f} s",
            ),
            ("bound asserted (the guarantee is 60 s)", "45 s"),
            ("counters after", "spent == ledger sum, nothing reserved, the user spends again"),
        ],
    )


def through(url: str, port: int) -> str:
    """`url` with its host and port replaced by the forwarder's."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{port}"))


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "unavailable"
    assert error["type"] == "api_error"
    assert isinstance(error["message"], str)


async def test_database_down_fails_closed_with_503_and_recovers(
    database_url: str, tmp_path: Path, standin: StandIn, standin_env: dict[str, str]
) -> None:
    target = urlsplit(database_url)
    forwarder = Forwarder(target.hostname or "127.0.0.1", target.port or 5432)
    await forwarder.start()
    app = await provision_async(database_url)
    env = standin_env | {
        "WATTFARE_DATABASE_URL": through(database_url, forwarder.port),
        "WATTFARE_HOLD_TTL_SECONDS": str(TTL_SECONDS),
    }
    books, user = AsyncLedger(database_url), f"outage-{uuid.uuid4().hex[:8]}"
    headers = {"Wattfare-User": user}
    upstream_before = standin.stats()["total"]
    instance = await start("outage", tmp_path, env)
    refusals = 0
    try:
        async with api(instance, app) as client:
            # Up: answered, streamed too; one slow stream is still in flight when the database goes.
            assert (await client.post("/chat/completions", json=QUICK, headers=headers)).status_code == 200
            streamed = await client.post("/chat/completions", json=QUICK | {"stream": True}, headers=headers)
            assert streamed.status_code == 200
            assert data_fields(streamed.content)[-1] == "[DONE]"
            async with client.stream("POST", "/chat/completions", json=SLOW, headers=headers) as cut:
                assert cut.status_code == 200
                cut_id = cut.headers["wattfare-request-id"]
                await read_data_events(cut.aiter_lines(), 2)

                await forwarder.stop()
                served_before_outage = standin.stats()["total"]
                # Down: every request that needs the books is refused, and none reaches the model.
                for round_ in range(3):
                    for body in (QUICK, QUICK | {"stream": True}, SLOW):
                        assert_unavailable(await client.post("/chat/completions", json=body, headers=headers))
                    assert_unavailable(await client.get("/status", params={"appUserId": user}))
                    assert_unavailable(await client.post("/sessions", json={"appUserId": f"{user}-{round_}"}))
                    refusals += 5
                assert standin.stats()["total"] == served_before_outage
            # The client leaves the stream cut by the outage; the server cannot settle it with the database away.
            with anyio.fail_after(10):
                while "deferred" not in instance.log_text().split(cut_id)[-1]:
                    await anyio.sleep(0.1)
            assert await books.entry(cut_id) is None

            await forwarder.start()
            down_until = time.monotonic()
            # Back: the pool reconnects on its own.
            with anyio.fail_after(30):
                while (
                    answer := await client.post("/chat/completions", json=QUICK, headers=headers)
                ).status_code != 200:
                    assert_unavailable(answer)
                    await anyio.sleep(0.1)
            recovered_in = time.monotonic() - down_until
            status = await client.get("/status", params={"appUserId": user})
            assert status.status_code == 200
            assert status.json()["connected"] is True
            assert (await client.post("/sessions", json={"appUserId": user})).status_code == 200

            # The stream cut by the outage is charged for what it relayed once the database is back: its
            # settlement waited in the meter (its hold renewed meanwhile), never expiring at its worst case.
            entry = await books.wait_for_entry(cut_id, within=30.0)
            assert entry.kind == "estimated"
    finally:
        await anyio.to_thread.run_sync(instance.stop)
        await forwarder.stop()

    # Nothing unmetered: every request that reached the model has exactly one ledger row, and the books balance.
    upstream_requests = standin.stats()["total"] - upstream_before
    entries = await books.entries(app_user_prefix=user)
    assert len(entries) == upstream_requests == 4
    assert sorted(entry.kind for entry in entries) == ["charge", "charge", "charge", "estimated"]
    await books.assert_balanced(user)
    # Every answer was checked above; the one error logged is the cut stream's settle, after its response began.
    assert instance.log_text().count("unhandled") <= 1
    assert forwarder.connections > 1
    record(
        "database-down",
        "Database down (a TCP forwarder between Wattfare and PostgreSQL, stopped then restarted)",
        [
            ("requests while the database was away", refusals),
            ("answered 503 `unavailable` (the error envelope)", refusals),
            ("requests that reached the model while it was away", 0),
            ("time to serve again after the database came back", f"{recovered_in:.2f} s (the pool reconnects)"),
            ("stream cut by the outage", "charged what it relayed once the database was back (its hold never expired)"),
            ("requests that reached the model / ledger rows", f"{upstream_requests} / {len(entries)}"),
        ],
    )
