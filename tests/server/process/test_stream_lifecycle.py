"""Streams that end early, against real processes: the client leaves, the user is revoked, the server dies.

Each uses `standin/slow` (a token every 200 ms, 50 in all), so a stream is surely still in flight when
the test acts on it, and reads the server's books (its SQLite file) to see what was charged.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.process.sse_wire import data_fields, decoded
from tests.support.ledger import Ledger
from tests.support.wattfare_server import ServerProcess, wattfare_process

pytestmark = pytest.mark.xdist_group("stream_lifecycle")

SLOW = {"model": "standin/slow", "messages": [{"role": "user", "content": "Take your time."}], "stream": True}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, standin_env: dict[str, str]) -> Iterator[ServerProcess]:
    with wattfare_process(tmp_path_factory.mktemp("lifecycle"), env=standin_env) as running:
        yield running


def api_client(server: ServerProcess, secret: str | None = None) -> httpx.Client:
    """A client of `server`'s API with a secret key (by default the one of the app it provisioned)."""
    authorization = f"Bearer {secret or server.secret}"
    return httpx.Client(base_url=server.api_url, headers={"Authorization": authorization}, timeout=20)


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


def read_events(lines: Iterator[str], count: int) -> list[str]:
    """Read until `count` data events have arrived; return them."""
    events: list[str] = []
    while len(events) < count:
        line = next(lines)
        if line.startswith("data:"):
            events.append(line.removeprefix("data:").strip())
    return events


def test_client_that_leaves_mid_stream_is_charged_for_what_was_used(server: ServerProcess) -> None:
    books, user = Ledger(server.db_path), new_user()
    with api_client(server) as client:
        with client.stream("POST", "/chat/completions", json=SLOW, headers={"Wattfare-User": user}) as response:
            assert response.status_code == 200
            request_id = response.headers["wattfare-request-id"]
            # Kept in a name: a dropped line iterator closes the connection when it is collected.
            lines = response.iter_lines()
            read_events(lines, 5)
            hold = books.hold(request_id)
            assert hold is not None
            assert hold > 0
        # Leaving the block closes the connection with the stream half read.

        entry = books.wait_for_entry(request_id, within=2.0)

    assert entry.kind == "estimated"
    assert 0 < entry.amount < hold
    # Only what had streamed when the client left: far fewer than the 50 tokens the stand-in would send.
    assert 0 < entry.completion_tokens < 50 * len("word49 ") // 2
    books.assert_balanced()


def revoke_during_slow_stream(stream_via: ServerProcess, revoke_via: ServerProcess) -> tuple[list[str], float, str]:
    """Start a slow stream on one server, revoke its user through another; return what followed and how fast."""
    user = new_user()
    with api_client(stream_via) as streaming, api_client(revoke_via, stream_via.secret) as revoking:
        with streaming.stream("POST", "/chat/completions", json=SLOW, headers={"Wattfare-User": user}) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            read_events(lines, 2)
            revoked_at = time.monotonic()
            assert revoking.delete(f"/connections/{user}").status_code == 204
            rest = "\n".join(lines)
            took = time.monotonic() - revoked_at
        refused = streaming.post("/chat/completions", json=SLOW | {"stream": False}, headers={"Wattfare-User": user})
    assert refused.status_code == 402
    assert refused.json()["error"]["code"] == "not_connected"
    return data_fields(rest.encode() + b"\n\n"), took, response.headers["wattfare-request-id"]


# Wattfare stops streams within a second of a revocation; the slack absorbs a loaded shared machine while
# staying far below the 10 s a slow stand-in stream runs on its own.
REVOCATION_BOUND = 2.5


def assert_stopped_for_revocation(events: list[str], took: float, *, within: float) -> None:
    assert events[-1] == "[DONE]"
    assert decoded(events[-2])["error"]["code"] == "not_connected"
    assert took < within
    # The stream stopped early: most of the 50 tokens never came.
    assert len(events) < 20


def test_revoking_a_connection_ends_its_stream_in_flight(server: ServerProcess) -> None:
    events, took, request_id = revoke_during_slow_stream(server, server)

    assert_stopped_for_revocation(events, took, within=REVOCATION_BOUND)
    books = Ledger(server.db_path)
    assert books.wait_for_entry(request_id, within=2.0).kind == "estimated"
    books.assert_balanced()


def test_revocation_made_by_another_server_process_ends_the_stream(tmp_path: Path, standin_env: dict[str, str]) -> None:
    # Two servers over one SQLite file: the revocation reaches the streaming one only through its poll.
    with wattfare_process(tmp_path, env=standin_env) as streaming, wattfare_process(tmp_path, env=standin_env) as other:
        # `other` provisioned a second app in the same file; the first app's key works on both servers.
        assert streaming.db_path == other.db_path

        events, took, request_id = revoke_during_slow_stream(streaming, other)

        assert_stopped_for_revocation(events, took, within=REVOCATION_BOUND)
        books = Ledger(streaming.db_path)
        assert books.wait_for_entry(request_id, within=2.0).kind == "estimated"
        books.assert_balanced()


def test_hold_of_a_killed_server_expires_at_its_reserved_amount(tmp_path: Path, standin_env: dict[str, str]) -> None:
    env = standin_env | {"WATTFARE_HOLD_TTL_SECONDS": "1"}
    books, user = Ledger(tmp_path / "wattfare.db"), new_user()
    with wattfare_process(tmp_path, env=env) as doomed, api_client(doomed) as client:
        secret = doomed.secret
        with client.stream("POST", "/chat/completions", json=SLOW, headers={"Wattfare-User": user}) as response:
            assert response.status_code == 200
            request_id = response.headers["wattfare-request-id"]
            lines = response.iter_lines()
            # Killed well within the 1 s TTL, so the dying server's own sweeper cannot settle the hold first.
            read_events(lines, 2)
            hold = books.hold(request_id)
            assert hold is not None
            assert hold > 0
            os.kill(doomed.process.pid, signal.SIGKILL)
            doomed.process.wait(5)
            with pytest.raises(httpx.TransportError):
                list(lines)
        # Nothing settled it: the process died holding the hold.
        assert books.hold(request_id) == hold
        assert books.entry(request_id) is None

    with wattfare_process(tmp_path, env=env) as restarted:
        assert restarted.db_path == books.database  # the very file the dead server wrote
        entry = books.wait_for_entry(request_id, within=5.0)

        assert entry.kind == "expired"
        assert entry.amount == hold
        books.assert_balanced()
        # The user can spend again, with the expired hold counted as spent.
        with api_client(restarted, secret) as client:
            again = client.post(
                "/chat/completions", json=SLOW | {"stream": False, "max_tokens": 1}, headers={"Wattfare-User": user}
            )
        assert again.status_code == 200
        account = books.account(user)
        assert account.spent == hold + books.entry(again.headers["wattfare-request-id"]).amount  # type: ignore[union-attr]
        books.assert_balanced()
