"""The OpenAPI document is valid OpenAPI 3.1, complete, and true: real answers of a real server validate against it.

A `wattfare serve` process answers every documented operation, each way it succeeds and the ways it refuses;
every answer is checked against the schema the document gives for its path, method, status and content type
(a streamed completion event by event). A route the app serves but the document omits, or a documented status
the table of error codes does not know, fails here too.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from starlette.routing import Route

from tests.support.wattfare_server import ServerProcess, wattfare_process
from wattfare._error_codes import STATUS_BY_CODE
from wattfare.server.api.openapi import codes_by_status, openapi_document
from wattfare.server.app import create_app
from wattfare.server.settings import Settings
from wattfare.server.store import open_store

pytestmark = pytest.mark.xdist_group("openapi")

METRICS_TOKEN = "metrics-token-for-the-contract-test"
PAGE_ORIGIN = "https://tool.example"
EMBEDDING = {"model": "openai/text-embedding-3-small", "input": "hi"}
DOCUMENT = openapi_document()
# Routes of the app that are not the HTTP API: the people's pages, their forms and static files.
_PAGES_ARE_NOT_THE_API = ("/api/", "/healthz", "/readyz", "/metrics")


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(DOCUMENT)
    assert DOCUMENT["openapi"] == "3.1.0"


def test_every_error_code_is_in_the_envelope_and_each_status_lists_its_codes() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    assert schemas["ErrorCode"]["enum"] == sorted(STATUS_BY_CODE)
    table = codes_by_status()
    for code, status in STATUS_BY_CODE.items():
        assert code in table[status]
    for status, codes in table.items():
        response = DOCUMENT["components"]["responses"][f"E{status}"]
        documented = response["content"]["application/json"]["schema"]["allOf"][1]
        assert documented["properties"]["error"]["properties"]["code"]["enum"] == codes


def test_every_api_route_of_the_app_is_documented(tmp_path: Path) -> None:
    app = create_app(Settings.from_env({}, database_url=f"sqlite:///{tmp_path / 'w.db'}"))
    served: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, Route) and route.path.startswith(_PAGES_ARE_NOT_THE_API):
            for method in route.methods or ():
                if method != "HEAD":
                    served.add((re.sub(r"\{app_user_id(:\w+)?\}", "{appUserId}", route.path), method.lower()))
    documented = {(path, method) for path, item in DOCUMENT["paths"].items() for method in item}

    assert served == documented


# -------------------------------------------------------------------------------- real answers


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for a schema of the document (its `$ref`s resolve against the document's components)."""
    rooted = {**schema, "components": DOCUMENT["components"]}
    return Draft202012Validator(rooted, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _response_spec(path: str, method: str, status: int) -> dict[str, Any]:
    responses = DOCUMENT["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} answered {status}, which the document does not list"
    spec = responses[str(status)]
    if "$ref" in spec:
        spec = DOCUMENT["components"]["responses"][spec["$ref"].rsplit("/", 1)[-1]]
    return spec


def _sse_events(text: str) -> Iterator[str]:
    for block in text.split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                yield line.removeprefix("data: ")


def check(answer: httpx.Response, path: str, seen: set[tuple[str, str, int]]) -> httpx.Response:
    """Assert that `answer` is what the document says `path` answers with its status; note it as seen."""
    method = answer.request.method.lower()
    spec = _response_spec(path, method, answer.status_code)
    seen.add((path, method, answer.status_code))
    content = spec.get("content")
    if content is None:
        assert answer.content == b""
        return answer
    media_type = answer.headers["content-type"].split(";")[0]
    assert media_type in content, f"{method.upper()} {path} answered {media_type}, not one of {list(content)}"
    if media_type == "text/event-stream":
        events = list(_sse_events(answer.text))
        assert events[-1] == "[DONE]"
        chunk = _validator(DOCUMENT["components"]["schemas"]["ChatCompletionChunk"])
        error = _validator(DOCUMENT["components"]["schemas"]["Error"])
        for event in events[:-1]:
            parsed = json.loads(event)
            (error if "error" in parsed else chunk).validate(parsed)
        return answer
    if media_type == "text/plain":
        assert answer.text
        return answer
    _validator(content[media_type]["schema"]).validate(answer.json())
    return answer


def _register_origin(server: ServerProcess, origin: str) -> None:
    """Let the server's app's pages call it from `origin` (what the developer console does)."""

    async def register() -> None:
        store = open_store(f"sqlite:///{server.db_path}")
        try:
            await store.set_app_origins(server.app.app.id, [origin])
        finally:
            await store.close()

    asyncio.run(register())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with wattfare_process(tmp_path_factory.mktemp("openapi"), env={"WATTFARE_METRICS_TOKEN": METRICS_TOKEN}) as running:
        _register_origin(running, PAGE_ORIGIN)
        yield running


def _grant_calls(client: httpx.Client, server: ServerProcess, seen: set[tuple[str, str, int]]) -> None:
    """One-time grants: minted (by the app's server, and by its page), read, paid with, used up, refused."""
    v1 = "/api/v1"
    secret = {"Authorization": f"Bearer {server.secret}"}
    page = {"Wattfare-Publishable-Key": server.app.publishable_keys["test"]}
    chat = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 30}
    path = f"{v1}/grants"
    minted = check(client.post(path, json={"requests": 3, "maxUsd": "0.50"}, headers=secret), path, seen).json()
    assert minted["maxUsd"] == 0.5
    from_page = client.post(path, json={"requests": 1, "expiresInSeconds": 60}, headers=page | {"Origin": PAGE_ORIGIN})
    assert check(from_page, path, seen).json()["maxUsd"] is None
    check(client.post(path, json={"requests": 0}, headers=secret), path, seen)
    check(client.post(path, json={"requests": 1}), path, seen)
    check(client.post(path, json={"requests": 1}, headers=page), path, seen)  # a page, but from no origin: 403
    check(client.post(path, json={"requests": 1}, headers=page | {"Origin": "https://nobody.example"}), path, seen)
    granted = {**secret, "Wattfare-Grant": minted["grantToken"]}
    path = f"{v1}/grants/current"
    assert check(client.get(path, headers=granted), path, seen).json()["state"] == "active"
    check(client.get(path, headers=secret), path, seen)
    check(client.get(path, headers={**secret, "Wattfare-Grant": "wfg_" + "x" * 43}), path, seen)
    check(client.get(path, headers={"Wattfare-Grant": minted["grantToken"]}), path, seen)
    # Paying with the grant: three requests, whole, streamed and embeddings; refused ones never count.
    path = f"{v1}/chat/completions"
    check(client.post(path, json=chat, headers=granted), path, seen)
    check(client.post(path, json=chat | {"stream": True}, headers=granted), path, seen)
    check(client.post(path, json=chat, headers={**granted, "Wattfare-User": "contract-user"}), path, seen)
    check(client.post(path, json=chat | {"model": "nobody/nothing"}, headers=granted), path, seen)
    path = f"{v1}/embeddings"
    check(client.post(path, json=EMBEDDING, headers=granted), path, seen)
    used_up = check(client.post(path, json=EMBEDDING, headers=granted), path, seen)
    assert used_up.json()["error"]["code"] == "grant_invalid"
    path = f"{v1}/grants/current"
    status = check(client.get(path, headers=granted), path, seen).json()
    assert (status["state"], status["requestsUsed"], status["requestsLeft"]) == ("used_up", 3, 0)
    minting = [client.post(f"{v1}/grants", json={"requests": 1}, headers=secret) for _ in range(121)]
    check(minting[-1], f"{v1}/grants", seen)  # the grant minting limit: 120 a minute per app


def _webhook_calls(client: httpx.Client, server: ServerProcess, seen: set[tuple[str, str, int]]) -> None:
    """Webhook endpoints: made, read, changed, their deliveries listed and resent, rotated, deleted; and refused."""
    secret = {"Authorization": f"Bearer {server.secret}"}
    endpoints = "/api/v1/webhooks/endpoints"
    one = f"{endpoints}/{{endpointId}}"
    # Nothing listens on the discard port: the server's deliveries there fail at once, and are retried later.
    made = check(client.post(endpoints, json={"url": "http://127.0.0.1:9/hooks"}, headers=secret), endpoints, seen)
    assert made.json()["secret"].startswith("whsec_")
    check(client.post(endpoints, json={"url": "ftp://files.example/"}, headers=secret), endpoints, seen)
    check(client.post(endpoints, json={"url": "http://127.0.0.1:9/x"}), endpoints, seen)
    check(client.get(endpoints, headers=secret), endpoints, seen)
    at = f"{endpoints}/{made.json()['id']}"
    missing = f"{endpoints}/we_nobody"
    check(client.get(at, headers=secret), one, seen)
    check(client.get(missing, headers=secret), one, seen)
    check(client.patch(at, json={"description": "contract", "enabled": True}, headers=secret), one, seen)
    check(client.patch(at, json={"enabled": "yes"}, headers=secret), one, seen)
    check(client.patch(missing, json={"enabled": False}, headers=secret), one, seen)
    session = client.post("/api/v1/sessions", json={"appUserId": "webhook-user"}, headers=secret).json()["token"]
    approved = client.post("/api/v1/connections", headers={"Authorization": f"Bearer {session}"})
    assert approved.status_code == 200, approved.text
    path = f"{one}/deliveries"
    (delivery,) = check(client.get(f"{at}/deliveries", headers=secret), path, seen).json()["data"]
    assert delivery["type"] == "connection.approved"
    check(client.get(f"{at}/deliveries", params={"limit": 0}, headers=secret), path, seen)
    check(client.get(f"{missing}/deliveries", headers=secret), path, seen)
    path = f"{one}/deliveries/{{eventId}}/resend"
    check(client.post(f"{at}/deliveries/{delivery['eventId']}/resend", headers=secret), path, seen)
    check(client.post(f"{at}/deliveries/msg_nobody/resend", headers=secret), path, seen)
    path = f"{one}/rotate-secret"
    assert check(client.post(f"{at}/rotate-secret", headers=secret), path, seen).json()["secret"].startswith("whsec_")
    check(client.post(f"{missing}/rotate-secret", headers=secret), path, seen)
    check(client.delete(at, headers=secret), one, seen)
    check(client.delete(at, headers=secret), one, seen)


def test_real_answers_of_every_operation_match_the_document(server: ServerProcess) -> None:
    seen: set[tuple[str, str, int]] = set()
    v1 = "/api/v1"
    secret = {"Authorization": f"Bearer {server.secret}"}
    user = {**secret, "Wattfare-User": "contract-user"}
    chat = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 30}
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        # The metered endpoints: whole, streamed, and refused every way that needs no fault.
        path = f"{v1}/chat/completions"
        assert check(client.post(path, json=chat, headers=user), path, seen).headers["wattfare-request-id"]
        check(client.post(path, json=chat | {"stream": True}, headers=user), path, seen)
        check(client.post(path, json={"messages": []}, headers=user), path, seen)
        check(client.post(path, json=chat, headers={"Wattfare-User": "u"}), path, seen)
        check(client.post(path, json=chat | {"model": "nobody/nothing"}, headers=user), path, seen)
        check(client.post(path, content=b"x" * (8 * 1024 * 1024 + 1), headers=user), path, seen)
        path = f"{v1}/embeddings"
        check(client.post(path, json=EMBEDDING, headers=user), path, seen)
        check(client.post(path, json=EMBEDDING | {"input": []}, headers=user), path, seen)
        # The apps' API.
        path = f"{v1}/models"
        check(client.get(path, headers=secret), path, seen)
        check(client.get(path, headers={"Authorization": "Bearer pk_test_nope"}), path, seen)
        path = f"{v1}/sessions"
        minted = check(client.post(path, json={"appUserId": "popup-user"}, headers=secret), path, seen).json()
        check(client.post(path, json={"appUserId": ""}, headers=secret), path, seen)
        check(client.post(path, json={"appUserId": "x"}), path, seen)
        path = f"{v1}/status"
        check(client.get(path, params={"appUserId": "contract-user"}, headers=secret), path, seen)
        check(client.get(path, params={"appUserId": "nobody-yet"}, headers=secret), path, seen)
        check(client.get(path, headers=secret), path, seen)
        session = {"Authorization": f"Bearer {minted['token']}"}
        path = f"{v1}/connections"
        check(client.get(path, headers=session), path, seen)
        check(client.post(path, json={"monthlyUsd": 3}, headers=session), path, seen)
        check(client.post(path, json={"monthlyUsd": 3}, headers=session), path, seen)  # the token was spent
        check(client.post(path, json={"monthlyUsd": 3}, headers=session), path, seen)
        check(client.get(path, headers={**session, "Origin": "https://nobody.example"}), path, seen)
        check(client.delete(path, headers=session), path, seen)
        check(client.delete(path, headers=secret), path, seen)
        path = f"{v1}/connections/{{appUserId}}"
        check(client.delete(f"{v1}/connections/contract-user", headers=secret), path, seen)
        check(client.delete(f"{v1}/connections/contract-user"), path, seen)
        path = f"{v1}/chat/completions"
        check(client.post(path, json=chat, headers=user), path, seen)  # disconnected: 402
        _grant_calls(client, server, seen)
        _webhook_calls(client, server, seen)
        path = f"{v1}/usage"
        check(client.get(path, headers=secret), path, seen)
        check(client.get(path, params={"appUserId": "contract-user", "from": "2020-01-01"}, headers=secret), path, seen)
        check(client.get(path, params={"from": "yesterday"}, headers=secret), path, seen)
        path = f"{v1}/app"
        check(client.get(path, headers=secret), path, seen)
        check(client.patch(path, json={"outputAllowanceTokens": 512}, headers=secret), path, seen)
        check(client.patch(path, json={"colour": "blue"}, headers=secret), path, seen)
        check(client.get(path), path, seen)
        minting = [client.post(f"{v1}/sessions", json={"appUserId": "many"}, headers=secret) for _ in range(121)]
        check(minting[-1], f"{v1}/sessions", seen)  # the session minting limit: 120 a minute per app
        # The operator's.
        check(client.get(f"{v1}/openapi.json"), f"{v1}/openapi.json", seen)
        check(client.get("/healthz"), "/healthz", seen)
        check(client.get("/readyz"), "/readyz", seen)
        check(client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}), "/metrics", seen)
        check(client.get("/metrics"), "/metrics", seen)

    operations = {(path, method) for path, item in DOCUMENT["paths"].items() for method in item}
    assert {(path, method) for path, method, _ in seen} == operations
    statuses = {status for _, _, status in seen}
    assert {200, 201, 202, 204, 400, 401, 402, 403, 404, 413, 429} <= statuses
    assert ("/api/v1/grants", "post", 429) in seen


def test_the_server_serves_the_document_it_was_built_with(server: ServerProcess) -> None:
    served = httpx.get(f"{server.api_url}/openapi.json", timeout=10)

    assert served.status_code == 200
    assert served.json() == json.loads(json.dumps(DOCUMENT))


def test_an_app_user_id_with_a_line_break_is_refused_by_its_handler_not_unrouted(server: ServerProcess) -> None:
    # schemathesis found it: Starlette's `path` parameter stops at a line break, so this matched no route (404).
    answer = httpx.delete(
        f"{server.api_url}/connections/ann%0Aboleyn", headers={"Authorization": f"Bearer {server.secret}"}, timeout=10
    )

    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "appUserId"
