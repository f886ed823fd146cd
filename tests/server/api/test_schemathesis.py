"""schemathesis fuzzes a live `wattfare serve` from its own OpenAPI document, on each store.

Every documented operation gets bounded examples that fit its schema (positive) and examples that break it
(negative), authenticated as an app with its test secret key and an end user (session-token operations get a
minted session token). Each answer must be no 5xx, a documented status, and fit the documented schema. Half the
metered requests name a model the price list knows, so the admitted path (reserve, sandbox upstream, settle)
is fuzzed as hard as the refusals. Afterwards the books must show no trace of a refused request: nothing held,
every account balanced, and a ledger row only for requests answered 200.

Byte-level bodies and raw header bytes, which schemathesis cannot send, are tests/server/api/test_bad_input.py's.
"""

from __future__ import annotations

from collections.abc import Iterator
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

# Per operation and generation mode: about 1,500 requests a store, well under a minute on two cores.
EXAMPLES = 40
METRICS_TOKEN = "metrics-token-for-schemathesis"
KNOWN_MODELS = {
    "/api/v1/chat/completions": "openai/gpt-4o-mini",
    "/api/v1/embeddings": "openai/text-embedding-3-small",
}
SESSION_PATHS = {"/api/v1/connections"}
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    env = {"WATTFARE_METRICS_TOKEN": METRICS_TOKEN}
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


def _with_known_model(case: Any, path: str, use_known: bool) -> Any:
    if use_known and path in KNOWN_MODELS and isinstance(case.body, dict) and "model" in case.body:
        case.body = {**case.body, "model": KNOWN_MODELS[path]}
    return case


def test_schemathesis_finds_no_server_error_no_schema_violation_and_no_refusal_in_the_books(
    server: ServerProcess, database_url: str
) -> None:
    schema = schemathesis.openapi.from_url(f"{server.api_url}/openapi.json")
    secret_auth = {"Authorization": f"Bearer {server.secret}", "Wattfare-User": "fuzz-user"}
    session_auth = {"Authorization": f"Bearer {_session_token(server, 'fuzz-popup-user')}"}
    metrics_auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    admitted: set[str] = set()
    refused: set[str] = set()
    failures: list[str] = []
    calls = 0

    for result in schema.get_all_operations():
        operation = result.ok()
        path = operation.path
        auth = session_auth if path in SESSION_PATHS else metrics_auth if path == "/metrics" else secret_auth
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            cases = st.tuples(operation.as_strategy(generation_mode=mode), st.booleans())

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(drawn=cases)
            def fuzz(drawn: tuple[Any, bool], path: str = path, auth: dict[str, str] = auth) -> None:
                nonlocal calls
                case = _with_known_model(drawn[0], path, drawn[1])
                response = case.call(base_url=server.base_url, headers={**auth, **(case.headers or {})}, timeout=30)
                calls += 1
                request_id = response.headers.get("wattfare-request-id")
                if request_id and path in KNOWN_MODELS:
                    (admitted if response.status_code == 200 else refused).add(request_id)
                try:
                    case.validate_response(response, checks=CHECKS)
                except BaseException as failure:  # schemathesis raises an exception group of its findings
                    failures.append(f"{operation.label} ({mode.value}): {failure}")

            try:
                fuzz()
            except Unsatisfiable:
                # Nothing in this operation can be made invalid (no parameters, no body): nothing to negate.
                assert mode is schemathesis.GenerationMode.NEGATIVE

    assert not failures, "\n\n".join(failures[:5])
    assert calls > 500
    assert admitted, "no metered request was admitted: the fuzzing missed the path that moves money"
    assert refused
    books = Ledger(database_url)
    rows = books.check()  # nothing held, every account balanced, nothing expired
    assert set(rows) <= admitted, f"ledger rows for requests not answered 200: {sorted(set(rows) - admitted)}"
    assert not set(rows) & refused
    assert "Traceback" not in server.log_text()
