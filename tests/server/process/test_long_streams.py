"""A stream may outlive the hold TTL: its hold is renewed while it runs, so it is never swept as dead."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from tests.server.process.sse_wire import data_fields
from tests.support.ledger import Ledger
from tests.support.wattfare_server import wattfare_process

pytestmark = pytest.mark.xdist_group("long_streams")

SLOW = {"model": "standin/slow", "messages": [{"role": "user", "content": "Take your time."}], "stream": True}


def test_a_stream_longer_than_the_hold_ttl_is_charged_its_usage_not_expired(
    tmp_path: Path, standin_env: dict[str, str]
) -> None:
    # TTL 2 s against a ~10 s stream: without renewal the sweeper would settle the hold as `expired` mid-way.
    env = standin_env | {"WATTFARE_HOLD_TTL_SECONDS": "2"}
    user = f"user-{uuid.uuid4().hex[:12]}"
    with (
        wattfare_process(tmp_path, env=env) as server,
        httpx.Client(base_url=server.api_url, timeout=60) as client,
    ):
        headers = {"Authorization": f"Bearer {server.secret}", "Wattfare-User": user}
        with client.stream("POST", "/chat/completions", json=SLOW, headers=headers) as response:
            assert response.status_code == 200
            request_id = response.headers["wattfare-request-id"]
            body = response.read()
        events = data_fields(body)
        assert events[-1] == "[DONE]"
        assert b'"error"' not in body
        entry = Ledger(server.db_path).wait_for_entry(request_id, within=5.0)
        assert entry.kind == "charge"
        Ledger(server.db_path).assert_balanced()
