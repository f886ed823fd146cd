"""schemathesis fuzzes a live `wattfare serve` from its own OpenAPI document, on each store.

Every documented operation gets bounded examples that fit its schema (positive) and examples that break it
(negative), authenticated as an app with its test secret key and an end user (session-token operations get a
minted session token). Each answer must be no 5xx, a documented status, and fit the documented schema. Half the
metered requests name a model the price list knows, so the admitted path (reserve, sandbox upstream, settle)
is fuzzed as hard as the refusals; the admitted requests are sent once more paid by a one-time grant, whose
state is then read (the fuzzed grant tokens are forged: they fuzz the refusals). Afterwards the books must show
no trace of a refused request: nothing held, every account balanced, and a ledger row only for requests
answered 200.

Byte-level bodies and raw header bytes, which schemathesis cannot send, are tests/server/api/test_bad_input.py's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from tests.support.ledger import Ledger
from tests.support.wattfare_server import ServerProcess, wattfare_process

pytestmark = pytest.mark.xdist_group("schemathesis")

# Per operation and generation mode: about 2,000 requests a store, about a minute on two cores.
EXAMPLES = 40
METRICS_TOKEN = "metrics-token-for-schemathesis"
KNOWN_MODELS = {
    "/api/v1/chat/completions": "openai/gpt-4o-mini",
    "/api/v1/embeddings": "openai/text-embedding-3-small",
}
SESSION_PATHS = {"/api/v1/connections"}
GRANTS = "/api/v1/grants"
GRANT_STATUS = "/api/v1/grants/current"
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    # The fuzzed webhook endpoints have fuzzed URLs: the delivery loop's only round is at start, so nothing is sent
    # to them (no request leaves the machine for a host the fuzzer made up).
    env = {"WATTFARE_METRICS_TOKEN": METRICS_TOKEN, "WATTFARE_WEBHOOK_POLL_SECONDS": "86400"}
    with wattfare_process(tmp_path, env=env, database_url=database_url) as running:
        yield running


def _session_token(server: ServerProcess, user: str) -> str:
    minted = httpx.post(
        f"{server.api_url}/sessions",
        json={"appUserId": user},
        headers={"Authorization": f"Bearer {server.secret}"},
        timeout=10,
    )
    assert minted.status_code == 200, minted.text
    return minted.json()["token"]


def _grant_token(server: ServerProcess) -> str:
    """A one-time grant of the app, minted with its test secret key, enough for every grant-paid request below."""
    minted = httpx.post(
        f"{server.api_url}/grants",
        json={"requests": 10, "maxUsd": "1"},
        headers={"Authorization": f"Bearer {server.secret}"},
        timeout=10,
    )
    assert minted.status_code == 201, minted.text
    return minted.json()["grantToken"]


def _metered(case: Any, path: str, known_model: bool, stream: bool) -> Any:
    """`case`, naming a model the price list knows (and asking for a stream or not) when told to."""
    if known_model and path in KNOWN_MODELS and isinstance(case.body, dict) and "model" in case.body:
        case.body = {**case.body, "model": KNOWN_MODELS[path]}
        if path == "/api/v1/chat/completions":
            case.body["stream"] = stream
    return case


def _headers(case: Any, auth: Mapping[str, str | None]) -> dict[str, str]:
    """The case's headers with the app's credentials instead of those schemathesis fills in (empty ones).

    A credential `auth` maps to None is dropped: minting a grant with the secret key, a publishable key
    schemathesis fills in would be read instead (a page's credential wins), and every case would be a 401.
    """
    ours = {name.lower() for name in auth}
    kept = {name: value for name, value in (case.headers or {}).items() if name.lower() not in ours}
    return kept | {name: value for name, value in auth.items() if value is not None}


@dataclass
class Findings:
    """What the fuzzing saw: failures of the checks, and the metered requests' ids by outcome."""

    failures: list[str] = field(default_factory=list)
    admitted: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)
    calls: int = 0
    answers: Counter[tuple[str, int, str]] = field(default_factory=Counter)

    def call(self, server: ServerProcess, case: Any, auth: Mapping[str, str | None], label: str) -> None:
        """Send `case`, note its outcome, and record what the checks find wrong with its answer."""
        path = case.operation.path
        response = case.call(base_url=server.base_url, headers=_headers(case, auth), timeout=30)
        self.calls += 1
        media_type = next(iter(response.headers.get("content-type", [])), "").split(";")[0]
        self.answers[(path, response.status_code, media_type)] += 1
        request_id = next(iter(response.headers.get("wattfare-request-id", [])), None)
        if request_id and path in KNOWN_MODELS:
            (self.admitted if response.status_code == 200 else self.refused).add(request_id)
        try:
            case.validate_response(response, checks=CHECKS)
        except BaseException as failure:  # schemathesis raises an exception group of its findings
            self.failures.append(f"{label}: {failure}")


# Sent first, on every run: the metered answers that move money, whole and streamed, each checked like the rest.
ADMITTED: dict[str, list[dict[str, Any]]] = {
    "/api/v1/chat/completions": [
        {"model": KNOWN_MODELS["/api/v1/chat/completions"], "messages": [{"role": "user", "content": "hi"}]},
        {
            "model": KNOWN_MODELS["/api/v1/chat/completions"],
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
        },
    ],
    "/api/v1/embeddings": [{"model": KNOWN_MODELS["/api/v1/embeddings"], "input": ["one", "two"]}],
}


def fuzz(server: ServerProcess, operation: Any, mode: Any, auth: Mapping[str, str | None], findings: Findings) -> None:
    """Run `EXAMPLES` cases of one operation in one generation mode against `server`, noting what happened."""
    path = operation.path

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=tuple(HealthCheck),  # pyright: ignore[reportArgumentType]
    )
    @given(drawn=st.tuples(operation.as_strategy(generation_mode=mode), st.booleans(), st.booleans()))
    def run(drawn: tuple[Any, bool, bool]) -> None:
        findings.call(server, _metered(*drawn[:1], path, *drawn[1:]), auth, f"{operation.label} ({mode.value})")

    try:
        run()
    except Unsatisfiable:
        # Nothing in this operation can be made invalid (no parameters, no body): nothing to negate.
        assert mode is schemathesis.GenerationMode.NEGATIVE


# A fixed budget of examples, not a time budget: its minute grows with every operation the API gains, and doubles
# on a machine shared with other work, so it gets more than the suite's two minutes before it is called stuck.
@pytest.mark.timeout(360)
def test_schemathesis_finds_no_server_error_no_schema_violation_and_no_refusal_in_the_books(
    server: ServerProcess, database_url: str
) -> None:
    schema = schemathesis.openapi.from_url(f"{server.api_url}/openapi.json")
    secret_auth = {"Authorization": f"Bearer {server.secret}", "Wattfare-User": "fuzz-user"}
    session_auth = {"Authorization": f"Bearer {_session_token(server, 'fuzz-popup-user')}"}
    metrics_auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    minting_auth: dict[str, str | None] = {"Authorization": f"Bearer {server.secret}", "Wattfare-Publishable-Key": None}
    grant_auth = {"Authorization": f"Bearer {server.secret}", "Wattfare-Grant": _grant_token(server)}
    findings = Findings()
    for result in schema.get_all_operations():
        operation = result.ok()  # pyright: ignore[reportAttributeAccessIssue]  # the document is valid
        path = operation.path
        auth: Mapping[str, str | None] = (
            session_auth
            if path in SESSION_PATHS
            else metrics_auth
            if path == "/metrics"
            else minting_auth
            if path == GRANTS
            else secret_auth
        )
        for body in ADMITTED.get(path, ()):
            findings.call(server, operation.Case(body=body, media_type="application/json"), auth, operation.label)
            paid = operation.Case(body=body, media_type="application/json")
            findings.call(server, paid, grant_auth, f"{operation.label} (paid by a grant)")
        if path == GRANT_STATUS:
            findings.call(server, operation.Case(), grant_auth, operation.label)
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            fuzz(server, operation, mode, auth, findings)

    assert not findings.failures, "\n\n".join(findings.failures[:5])
    assert findings.calls > 500
    assert findings.admitted, "no metered request was admitted: the fuzzing missed the path that moves money"
    assert findings.refused
    assert findings.answers[("/api/v1/chat/completions", 200, "text/event-stream")] >= 1
    assert findings.answers[("/api/v1/embeddings", 200, "application/json")] >= 1
    assert findings.answers[(GRANTS, 201, "application/json")] >= 1
    assert findings.answers[(GRANT_STATUS, 200, "application/json")] >= 1
    assert findings.answers[(GRANT_STATUS, 402, "application/json")] >= 1
    # Each admitted request sent paid by the grant counted once against it; nothing else did (forged tokens).
    grant = httpx.get(f"{server.api_url}/grants/current", headers=grant_auth, timeout=10).json()
    assert grant["requestsUsed"] == sum(len(bodies) for bodies in ADMITTED.values()), grant
    rows = Ledger(database_url).check()  # nothing held, every account balanced, nothing expired
    assert set(rows) <= findings.admitted, (
        f"rows for requests not answered 200: {sorted(set(rows) - findings.admitted)}"
    )
    assert not set(rows) & findings.refused
    assert "Traceback" not in server.log_text()
