"""Property-based fuzzing of the metered endpoints against an instance of the PostgreSQL deployment.

Bodies range from valid requests with odd values to arbitrary JSON and raw bytes. Whatever comes in,
the answer is never a 5xx, a refused request leaves the books exactly as they were, and an answered one
adds exactly one ledger row (completions) or none (sessions).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server.scale.figures import record
from tests.support.ledger import Ledger, Totals
from tests.support.wattfare_server import CLIENT_LIMITS, Deployment, provision

pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("scale")]

EXAMPLES = 50
USERS = ("fuzz-a", "fuzz-b", "fuzz b/ü")
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # real HTTP to a real server on a shared machine
    database=None,  # nothing written to .hypothesis/
    suppress_health_check=[HealthCheck.too_slow],
)

json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "system", "assistant", "tool"]) | st.text(max_size=5)},
        optional={"content": st.text(max_size=60) | json_values, "name": json_values},
    )
    | json_values,
    max_size=4,
)
odd_fields = {
    "stream": st.booleans() | json_values,
    "max_tokens": st.integers(-3, 2**64) | json_values,
    "max_completion_tokens": st.integers(-3, 10**6),
    "n": st.integers(-1, 4) | json_values,
    "user": st.sampled_from(USERS) | st.text(max_size=300) | json_values,
    "temperature": st.floats(allow_nan=False, allow_infinity=False) | json_values,
    "stream_options": st.fixed_dictionaries({}, optional={"include_usage": json_values}) | json_values,
    "tools": json_values,
    "response_format": json_values,
    "stop": json_values,
}
models = st.sampled_from(["standin/ok", "standin/cost-0.000123"])
# Near-valid bodies (a priced model, well-formed messages, odd optional fields) reach metering and the upstream.
near_valid = st.fixed_dictionaries(
    {
        "model": models,
        "messages": st.lists(
            st.fixed_dictionaries({"role": st.just("user"), "content": st.text(max_size=60)}), min_size=1, max_size=3
        ),
    },
    optional={**odd_fields, "stream": st.booleans(), "max_tokens": st.integers(-3, 2**64)},
)
# Anything-goes bodies mostly stop at validation.
anything = st.fixed_dictionaries(
    {},
    optional={"model": models | st.text(max_size=20) | json_values, "messages": messages | json_values, **odd_fields},
)
completion_bodies = near_valid | near_valid | anything
session_bodies = st.fixed_dictionaries(
    {},
    optional={
        "appUserId": st.sampled_from(USERS) | st.text(max_size=300) | json_values,
        "requestLimit": st.fixed_dictionaries(
            {},
            optional={
                "monthlyUsd": st.decimals(allow_nan=False, allow_infinity=False).map(str)
                | st.integers(-10, 10**30)
                | st.floats()
                | json_values
            },
        )
        | json_values,
    },
)


def session_text(user: str, usd: str) -> bytes:
    """A near-valid session request: the cap is a JSON number written from its decimal text, never a float."""
    return f'{{"appUserId": {orjson.dumps(user).decode()}, "requestLimit": {{"monthlyUsd": {usd}}}}}'.encode()


# Any precision, any size, negative too.
near_valid_sessions = st.builds(
    session_text,
    st.sampled_from(USERS),
    st.decimals(min_value=-1, max_value=10**9, allow_nan=False, allow_infinity=False, places=12).map(
        lambda usd: format(usd, "f")
    ),
)


def encoded(body: Any) -> bytes:
    """`body` as JSON text, keeping numbers orjson would refuse (huge integers, NaN) as Python writes them."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return repr(body).encode()  # not JSON at all: fine, that is a body to fuzz with too


@pytest.fixture(scope="module")
def fuzz_client(deployment: Deployment) -> Iterator[httpx.Client]:
    # Its own app, so the fuzzed session minting cannot use up the rate limit of the app the storm uses.
    app = provision(deployment.database_url)
    headers = {"Authorization": f"Bearer {app.secret_keys['test']}"}
    api_url = deployment.instances[0].api_url
    with httpx.Client(base_url=api_url, headers=headers, timeout=60, limits=CLIENT_LIMITS) as client:
        yield client


def totals(deployment: Deployment) -> Totals:
    return Ledger(deployment.database_url).totals()


def post(client: httpx.Client, path: str, content: bytes, user: str | None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if user is not None:
        headers["Wattfare-User"] = user
    return client.post(path, content=content, headers=headers)


@dataclass
class FuzzLog:
    """What the fuzzed requests got, per endpoint: (status, whether the books changed)."""

    outcomes: dict[str, list[tuple[int, bool]]] = field(
        default_factory=lambda: {"/chat/completions": [], "/sessions": []}
    )


@pytest.fixture(scope="module")
def fuzz_log(deployment: Deployment) -> Iterator[FuzzLog]:
    """Collects outcomes; afterwards checks the whole database balances and records the figures."""
    log = FuzzLog()
    yield log
    Ledger(deployment.database_url).assert_balanced()
    if not all(log.outcomes.values()):
        return  # a partial run (-k): nothing worth publishing
    rows: list[tuple[str, object]] = []
    for path, outcomes in log.outcomes.items():
        statuses = [status for status, _ in outcomes]
        counts = ", ".join(f"{status}: {statuses.count(status)}" for status in sorted(set(statuses)))
        rows.append((f"POST {path}: examples (statuses)", f"{len(statuses)} ({counts})"))
    everything = [outcome for outcomes in log.outcomes.values() for outcome in outcomes]
    rows += [
        ("5xx answers", sum(status >= 500 for status, _ in everything)),
        ("refused requests that changed the books", sum(status != 200 and changed for status, changed in everything)),
        ("books balanced afterwards (spent == ledger, nothing held)", "yes"),
    ]
    record("fuzzing", "Fuzzing on PostgreSQL (hypothesis)", rows)


@FUZZ
@given(
    body=completion_bodies.map(encoded) | json_values.map(encoded) | st.binary(max_size=80),
    user=st.sampled_from([*USERS[:2], None, "", "a b", "x" * 300]),
)
def test_fuzzed_completions_never_5xx_and_refusals_never_touch_the_books(
    deployment: Deployment, fuzz_client: httpx.Client, fuzz_log: FuzzLog, body: bytes, user: str | None
) -> None:
    before = totals(deployment)
    response = post(fuzz_client, "/chat/completions", body, user)
    after = totals(deployment)

    fuzz_log.outcomes["/chat/completions"].append((response.status_code, after != before))
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        assert after.ledger_rows == before.ledger_rows + 1
        assert after.holds == before.holds
        assert after.spent - before.spent == after.ledger_amount - before.ledger_amount
    else:
        assert response.json()["error"]["code"]
        assert after == before


@FUZZ
@given(
    body=near_valid_sessions
    | near_valid_sessions
    | session_bodies.map(encoded)
    | json_values.map(encoded)
    | st.binary()
)
def test_fuzzed_session_requests_never_5xx_and_never_touch_the_books(
    deployment: Deployment, fuzz_client: httpx.Client, fuzz_log: FuzzLog, body: bytes
) -> None:
    before = totals(deployment)
    response = post(fuzz_client, "/sessions", body, None)
    after = totals(deployment)

    fuzz_log.outcomes["/sessions"].append((response.status_code, after != before))
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        assert response.json()["error"]["code"]
    assert after == before
