"""Bad input gets the documented envelope, never a 5xx, and leaves no trace in the ledger."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.server.api.envelope import assert_error
from tests.server.api.tables import METERING_TABLES, nothing_metered, row_counts
from tests.support.wattfare_server import InProcess, in_process

# Every test runs on SQLite and on PostgreSQL: a refusal must leave either database untouched.
pytestmark = pytest.mark.usefixtures("each_store")

MODEL = "openai/gpt-4o-mini"
HELLO = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}]}


def body_with(**changes: object) -> dict[str, object]:
    """HELLO with fields replaced (a value of `...` removes the field)."""
    body: dict[str, object] = dict(HELLO)
    for name, value in changes.items():
        if value is ...:
            body.pop(name, None)
        else:
            body[name] = value
    return body


# -- POST /chat/completions, one bad field at a time


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("content", "param"),
    [
        (b"", None),
        (b"{", None),
        (b"{'model': 'x'}", None),
        (b"\xff\xfe{}", None),
        (b'{"model": "openai/gpt-4o-mini", "messages": [], }', None),
        (b"[]", None),
        (b"null", None),
        (b'"a string"', None),
        (b"42", None),
        (b"[" * 5000 + b"]" * 5000, None),
        (json.dumps(body_with(model=...)).encode(), "model"),
        (json.dumps(body_with(model="")).encode(), "model"),
        (json.dumps(body_with(model=None)).encode(), "model"),
        (json.dumps(body_with(model=["openai/gpt-4o-mini"])).encode(), "model"),
        (json.dumps(body_with(model="m" * 300)).encode(), "model"),
        (json.dumps(body_with(messages=...)).encode(), "messages"),
        (json.dumps(body_with(messages="hello")).encode(), "messages"),
        (json.dumps(body_with(messages={"role": "user", "content": "hi"})).encode(), "messages"),
        (json.dumps(body_with(messages=[])).encode(), "messages"),
        (json.dumps(body_with(messages=[{"content": "hi"}])).encode(), "messages[0]"),
        (json.dumps(body_with(messages=[{"role": "user", "content": "hi"}, "hi"])).encode(), "messages[1]"),
        (json.dumps(body_with(messages=[{"role": 1, "content": "hi"}])).encode(), "messages[0]"),
        (json.dumps(body_with(messages=[None])).encode(), "messages[0]"),
        (json.dumps(body_with(stream="true")).encode(), "stream"),
        (json.dumps(body_with(stream=1)).encode(), "stream"),
        (json.dumps(body_with(stream={})).encode(), "stream"),
        (json.dumps(body_with(max_tokens=0)).encode(), "max_tokens"),
        (json.dumps(body_with(max_tokens=-1)).encode(), "max_tokens"),
        (json.dumps(body_with(max_tokens="10")).encode(), "max_tokens"),
        (json.dumps(body_with(max_tokens=True)).encode(), "max_tokens"),
        (json.dumps(body_with(max_tokens=1e9)).encode(), "max_tokens"),
        (json.dumps(body_with(max_tokens=10.5)).encode(), "max_tokens"),
        (json.dumps(body_with(max_tokens=1_000_000_000)).encode(), "max_tokens"),
        (json.dumps(body_with(max_completion_tokens=0)).encode(), "max_completion_tokens"),
        (json.dumps(body_with(max_completion_tokens="many")).encode(), "max_completion_tokens"),
        (json.dumps(body_with(n=0)).encode(), "n"),
        (json.dumps(body_with(n=17)).encode(), "n"),
        (json.dumps(body_with(n="2")).encode(), "n"),
        (json.dumps(body_with(n=False)).encode(), "n"),
        (json.dumps(body_with(tools={"type": "function"})).encode(), "tools"),
        (json.dumps(body_with(tools="get_weather")).encode(), "tools"),
        (json.dumps(body_with(stream_options=True)).encode(), "stream_options"),
        (json.dumps(body_with(response_format="json")).encode(), "response_format"),
        (json.dumps(body_with(user=42)).encode(), "user"),
        (json.dumps(body_with(user=["u1"])).encode(), "user"),
        (json.dumps(body_with(user="u" * 257)).encode(), "user"),
    ],
)
async def test_a_malformed_completion_is_refused_with_the_envelope_and_writes_nothing(
    tmp_path: Path, content: bytes, param: str | None
) -> None:
    async with in_process(tmp_path) as wf:
        response = await wf.client.post(
            "/chat/completions", content=content, headers=wf.auth() | {"content-type": "application/json"}
        )
        assert_error(response, 400, "invalid_request", param)
        assert nothing_metered(tmp_path / "wattfare.db")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("header", "body_user"),
    [(None, ...), (None, None), (None, ""), ("", ...), ("", "")],
)
async def test_a_completion_that_names_no_end_user_is_refused(
    tmp_path: Path, header: str | None, body_user: object
) -> None:
    async with in_process(tmp_path) as wf:
        headers = wf.auth(user=header)
        response = await wf.client.post("/chat/completions", json=body_with(user=body_user), headers=headers)
        assert_error(response, 400, "invalid_request", "user")
        assert nothing_metered(tmp_path / "wattfare.db")


@pytest.mark.anyio
@pytest.mark.parametrize("user", ["tab\tuser", "line\nbreak", "x" * 257])
async def test_an_unprintable_or_overlong_end_user_in_the_header_is_refused(tmp_path: Path, user: str) -> None:
    async with in_process(tmp_path) as wf:
        response = await wf.client.post("/chat/completions", json=HELLO, headers=wf.auth(user=user))
        assert_error(response, 400, "invalid_request", "user")
        assert nothing_metered(tmp_path / "wattfare.db")


@pytest.mark.anyio
async def test_the_body_user_names_the_end_user_when_the_header_is_absent(tmp_path: Path) -> None:
    # The control for the refusals above: the same request with a user is served and charged to them.
    async with in_process(tmp_path) as wf:
        response = await wf.client.post("/chat/completions", json=body_with(user="zoe"), headers=wf.auth(user=None))
        assert response.status_code == 200, response.text
        status = await wf.client.get("/status", params={"appUserId": "zoe"}, headers=wf.auth())
        assert status.json()["connected"] is True


@pytest.mark.anyio
async def test_the_wattfare_user_header_wins_over_the_body_user(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        response = await wf.client.post("/chat/completions", json=body_with(user="zoe"), headers=wf.auth(user="yan"))
        assert response.status_code == 200, response.text
        for user, connected in (("yan", True), ("zoe", False)):
            status = await wf.client.get("/status", params={"appUserId": user}, headers=wf.auth())
            assert status.json()["connected"] is connected


@pytest.mark.anyio
@pytest.mark.parametrize(
    "model", ["openai/gpt-nonexistent", "gpt-4o-mini", "OPENAI/GPT-4O-MINI", " openai/gpt-4o-mini"]
)
async def test_an_unknown_model_is_model_not_found_and_charges_nothing(tmp_path: Path, model: str) -> None:
    async with in_process(tmp_path) as wf:
        response = await wf.client.post("/chat/completions", json=body_with(model=model), headers=wf.auth())
        assert_error(response, 404, "model_not_found", "model")
        assert nothing_metered(tmp_path / "wattfare.db")


# -- POST /embeddings, one bad field at a time

EMBEDDER = "openai/text-embedding-3-small"
EMBED = {"model": EMBEDDER, "input": "hello"}


def embedding_with(**changes: object) -> bytes:
    """EMBED with fields replaced (a value of `...` removes the field), as JSON."""
    body: dict[str, object] = dict(EMBED)
    for name, value in changes.items():
        if value is ...:
            body.pop(name, None)
        else:
            body[name] = value
    return json.dumps(body).encode()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("content", "param"),
    [
        (b"", None),
        (b"{", None),
        (b"[]", None),
        (b'"hello"', None),
        (b"[" * 5000 + b"]" * 5000, None),
        (b'{"model": "' + EMBEDDER.encode() + b'", "input": ' + b"[" * 100 + b"1" + b"]" * 100 + b"}", None),
        (embedding_with(model=...), "model"),
        (embedding_with(model=""), "model"),
        (embedding_with(model=7), "model"),
        (embedding_with(model="m" * 300), "model"),
        (embedding_with(input=...), "input"),
        (embedding_with(input=None), "input"),
        (embedding_with(input=""), "input"),
        (embedding_with(input=[]), "input"),
        (embedding_with(input=42), "input"),
        (embedding_with(input=4.5), "input"),
        (embedding_with(input=True), "input"),
        (embedding_with(input={"text": "hi"}), "input"),
        (embedding_with(input=["ok", ""]), "input[1]"),
        (embedding_with(input=["ok", None]), "input[1]"),
        (embedding_with(input=["ok", 3.5]), "input[1]"),
        (embedding_with(input=["ok", {"a": 1}]), "input[1]"),
        (embedding_with(input=["ok", 7]), "input[1]"),
        (embedding_with(input=[1, 2, -3]), "input"),
        (embedding_with(input=[1, 2.5]), "input"),
        (embedding_with(input=[1, True]), "input"),
        (embedding_with(input=[1, "two"]), "input"),
        (embedding_with(input=[1, 2**31]), "input"),
        (embedding_with(input=[[1, 2], []]), "input[1]"),
        (embedding_with(input=[[1, 2], [3, -1]]), "input[1]"),
        (embedding_with(input=[[1, 2], ["x"]]), "input[1]"),
        (embedding_with(input=[[1, 2], "mixed"]), "input"),
        (embedding_with(input=["a"] * 2049), "input"),
        (embedding_with(input=[[1]] * 2049), "input"),
        (embedding_with(dimensions=0), "dimensions"),
        (embedding_with(dimensions=-5), "dimensions"),
        (embedding_with(dimensions=8193), "dimensions"),
        (embedding_with(dimensions="256"), "dimensions"),
        (embedding_with(dimensions=256.5), "dimensions"),
        (embedding_with(dimensions=True), "dimensions"),
        (embedding_with(encoding_format="binary"), "encoding_format"),
        (embedding_with(encoding_format=["base64"]), "encoding_format"),
        (embedding_with(encoding_format=1), "encoding_format"),
        (embedding_with(user=42), "user"),
        (embedding_with(user="u" * 257), "user"),
        (embedding_with(openai_api_key="sk-leftover"), "openai_api_key"),
        (embedding_with(access_token="secret"), "access_token"),
    ],
)
async def test_a_malformed_embedding_request_is_refused_with_the_envelope_and_writes_nothing(
    tmp_path: Path, content: bytes, param: str | None
) -> None:
    async with in_process(tmp_path) as wf:
        response = await wf.client.post(
            "/embeddings", content=content, headers=wf.auth() | {"content-type": "application/json"}
        )
        assert_error(response, 400, "invalid_request", param)
        assert response.headers["Wattfare-Request-Id"].startswith("req_")
        assert nothing_metered(tmp_path / "wattfare.db")


@pytest.mark.anyio
async def test_the_limits_themselves_are_served(tmp_path: Path) -> None:
    # The control for the refusals above: 2,048 inputs, the largest token id, and 8,192 dimensions are served.
    async with in_process(tmp_path) as wf:
        for content in (
            embedding_with(input=["a"] * 2048, dimensions=4),
            embedding_with(input=[[0, 2**31 - 1]] * 2048, dimensions=4),
            embedding_with(input="wide", dimensions=8192, encoding_format="base64"),
        ):
            response = await wf.client.post("/embeddings", content=content, headers=wf.auth())
            assert response.status_code == 200, response.text


@pytest.mark.anyio
@pytest.mark.parametrize(("header", "body_user"), [(None, ...), (None, ""), ("", ...), ("tab\tuser", ...)])
async def test_an_embedding_that_names_no_printable_end_user_is_refused(
    tmp_path: Path, header: str | None, body_user: object
) -> None:
    async with in_process(tmp_path) as wf:
        headers = wf.auth(user=header)
        response = await wf.client.post("/embeddings", content=embedding_with(user=body_user), headers=headers)
        assert_error(response, 400, "invalid_request", "user")
        assert nothing_metered(tmp_path / "wattfare.db")


@pytest.mark.anyio
async def test_an_oversized_embedding_body_is_refused_with_413(tmp_path: Path) -> None:
    async with in_process(tmp_path, max_body_bytes=2048) as wf:
        response = await wf.client.post("/embeddings", content=embedding_with(input="a" * 4096), headers=wf.auth())
        assert_error(response, 413, "invalid_request")
        assert nothing_metered(tmp_path / "wattfare.db")
        served = await wf.client.post("/embeddings", content=embedding_with(input="a" * 1800), headers=wf.auth())
        assert served.status_code == 200, served.text


# -- oversized bodies


async def _chunks(total: int, size: int = 512) -> AsyncIterator[bytes]:
    prefix = b'{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "'
    yield prefix
    sent = len(prefix)
    while sent < total:
        yield b"a" * size
        sent += size
    yield b'"}]}'


@pytest.mark.anyio
async def test_an_oversized_body_with_a_content_length_is_refused_with_413(tmp_path: Path) -> None:
    async with in_process(tmp_path, max_body_bytes=2048) as wf:
        body = body_with(messages=[{"role": "user", "content": "a" * 4096}])
        response = await wf.client.post("/chat/completions", json=body, headers=wf.auth())
        assert "content-length" in response.request.headers
        assert_error(response, 413, "invalid_request")
        assert nothing_metered(tmp_path / "wattfare.db")
        # Just under the limit is served: the limit is the setting, not something smaller.
        small = body_with(messages=[{"role": "user", "content": "a" * 1800}])
        assert (await wf.client.post("/chat/completions", json=small, headers=wf.auth())).status_code == 200


@pytest.mark.anyio
async def test_an_oversized_chunked_body_is_refused_with_413(tmp_path: Path) -> None:
    async with in_process(tmp_path, max_body_bytes=2048) as wf:
        response = await wf.client.post(
            "/chat/completions", content=_chunks(8192), headers=wf.auth() | {"content-type": "application/json"}
        )
        assert "content-length" not in response.request.headers
        assert response.request.headers["transfer-encoding"] == "chunked"
        assert_error(response, 413, "invalid_request")
        assert nothing_metered(tmp_path / "wattfare.db")
        served = await wf.client.post(
            "/chat/completions", content=_chunks(1024), headers=wf.auth() | {"content-type": "application/json"}
        )
        assert served.status_code == 200, served.text


@pytest.mark.anyio
@pytest.mark.parametrize("declared", ["abc", "-1", "1e3", "12 34"])
async def test_a_garbled_content_length_is_refused(tmp_path: Path, declared: str) -> None:
    async with in_process(tmp_path) as wf:
        request = wf.client.build_request("POST", "/chat/completions", content=b"{}", headers=wf.auth())
        request.headers["content-length"] = declared
        response = await wf.client.send(request)
        assert_error(response, 400, "invalid_request")
        assert nothing_metered(tmp_path / "wattfare.db")


@pytest.mark.anyio
async def test_oversized_session_bodies_are_refused_with_413(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        body = {"appUserId": "u1", "padding": "x" * (70 * 1024)}
        assert_error(await wf.client.post("/sessions", json=body, headers=wf.auth()), 413, "invalid_request")


# -- routing


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nope", 404),
        ("POST", "/completions", 404),
        ("GET", "/chat", 404),
        ("GET", "/api/v2/models", 404),
        ("GET", "/chat/completions", 405),
        ("PUT", "/chat/completions", 405),
        ("GET", "/embeddings", 405),
        ("DELETE", "/embeddings", 405),
        ("POST", "/embeddings/models", 404),
        ("DELETE", "/models", 405),
        ("POST", "/status", 405),
        ("PATCH", "/connections", 405),
        ("GET", "/connections/u1", 405),
        ("POST", "/usage", 405),
    ],
)
async def test_unknown_routes_and_wrong_methods_answer_in_the_envelope(
    tmp_path: Path, method: str, path: str, status: int
) -> None:
    async with in_process(tmp_path) as wf:
        url = path if path.startswith("/api/") else f"/api/v1{path}"
        response = await wf.client.request(method, f"http://wattfare.test{url}", headers=wf.auth())
        assert_error(response, status, "invalid_request", None)
        assert nothing_metered(tmp_path / "wattfare.db")


# -- properties: arbitrary input never breaks the server nor touches the ledger

JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


USER_IDS = st.text(st.characters(codec="ascii", min_codepoint=32, max_codepoint=126), min_size=1, max_size=12)
MONEY = st.integers(min_value=-10, max_value=2_000_000) | st.floats(allow_nan=False, allow_infinity=False)


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value for the field, sometimes any JSON at all (so one field at a time goes bad)."""
    return st.integers(min_value=0, max_value=9).flatmap(lambda pick: valid if pick else JSON_VALUES)


# Any string is a role to the proxy (it checks only the type); non-object elements come from `maybe(MESSAGES)`.
MESSAGES = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "system", "assistant", "tool"]) | st.text(max_size=5)},
        optional={"content": maybe(st.text(max_size=20)), "tool_calls": JSON_VALUES, "name": JSON_VALUES},
    ),
    min_size=1,
    max_size=3,
)
# Near-valid bodies: every field the proxy checks, each plausible or arbitrary, so the fuzz reaches past the
# first check into pricing, hold, the upstream call and the stream relay.
COMPLETION_BODIES = st.fixed_dictionaries(
    {
        "model": maybe(st.sampled_from([MODEL, "openai/gpt-4o"])),
        "messages": maybe(MESSAGES),
        "stream": maybe(st.sampled_from([True, False, None])),
    },
    optional={
        "max_tokens": maybe(st.integers(min_value=-2, max_value=20)),
        "max_completion_tokens": maybe(st.integers(min_value=-2, max_value=20)),
        "n": maybe(st.integers(min_value=-1, max_value=18)),
        "tools": maybe(st.lists(JSON_VALUES, max_size=2)),
        "tool_choice": JSON_VALUES,
        "user": maybe(USER_IDS),
        "stream_options": maybe(st.fixed_dictionaries({}, optional={"include_usage": JSON_VALUES})),
        "response_format": maybe(st.fixed_dictionaries({"type": st.sampled_from(["text", "json_object"])})),
        "temperature": JSON_VALUES,
    },
)
TOKEN_IDS = st.integers(min_value=-2, max_value=2**31)
# Near-valid embedding bodies: each form of `input`, plausible or arbitrary, with the optional fields.
EMBEDDING_BODIES = st.fixed_dictionaries(
    {
        "model": maybe(st.sampled_from([EMBEDDER, "openai/text-embedding-3-large", MODEL])),
        "input": maybe(
            st.one_of(
                st.text(max_size=20),
                st.lists(st.text(max_size=10), max_size=4),
                st.lists(TOKEN_IDS, max_size=4),
                st.lists(st.lists(TOKEN_IDS, max_size=3), max_size=3),
            )
        ),
    },
    optional={
        "dimensions": maybe(st.integers(min_value=-1, max_value=9000)),
        "encoding_format": maybe(st.sampled_from(["float", "base64", "binary"])),
        "user": maybe(USER_IDS),
        "input_type": JSON_VALUES,
    },
)
SESSION_BODIES = st.fixed_dictionaries(
    {"appUserId": maybe(USER_IDS)},
    optional={"requestLimit": maybe(st.fixed_dictionaries({}, optional={"monthlyUsd": maybe(MONEY)}))},
)
CONNECTION_BODIES = st.fixed_dictionaries({}, optional={"monthlyUsd": maybe(MONEY), "extra": JSON_VALUES})
RAW_BODIES = st.binary(max_size=200)
EMBEDDING_CONTENT = st.one_of(
    EMBEDDING_BODIES.map(json.dumps).map(str.encode),
    EMBEDDING_BODIES.map(json.dumps).map(str.encode),
    JSON_VALUES.map(json.dumps).map(str.encode),
    RAW_BODIES,
)
# Near-valid bodies twice as often as arbitrary JSON or bytes: they are what reaches the deep paths.
COMPLETION_CONTENT = st.one_of(
    COMPLETION_BODIES.map(json.dumps).map(str.encode),
    COMPLETION_BODIES.map(json.dumps).map(str.encode),
    JSON_VALUES.map(json.dumps).map(str.encode),
    RAW_BODIES,
)
QUERY_TEXT = st.text(st.characters(codec="utf-8"), max_size=30)
DATES = st.dates().map(str) | QUERY_TEXT
QUERIES = st.fixed_dictionaries(
    {"appUserId": st.integers(min_value=0, max_value=3).flatmap(lambda pick: USER_IDS if pick else QUERY_TEXT)},
    optional={"from": DATES, "to": DATES, "x": QUERY_TEXT},
)


@contextmanager
def blocking_server(tmp_path: Path) -> Iterator[tuple[BlockingPortal, InProcess]]:
    """One in-process server on an event loop in a background thread, for sync (hypothesis) tests."""
    with (
        start_blocking_portal(backend="asyncio") as portal,
        portal.wrap_async_context_manager(in_process(tmp_path)) as wf,
    ):
        yield portal, wf


def send(portal: BlockingPortal, wf: InProcess, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        return await wf.client.request(method, path, **kwargs)

    return portal.call(go)


def examples(count: int) -> settings:
    """Hypothesis settings for a property over one shared server (about 150 examples across this module)."""
    return settings(max_examples=count, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def test_arbitrary_completion_bodies_never_5xx_and_only_a_served_request_is_metered(tmp_path: Path) -> None:
    with blocking_server(tmp_path) as (portal, wf):
        db = tmp_path / "wattfare.db"

        @examples(70)
        @given(content=COMPLETION_CONTENT, named=st.integers(min_value=0, max_value=3))
        def check(content: bytes, named: int) -> None:
            headers = wf.auth(user="fuzz" if named else None)
            before = row_counts(db, METERING_TABLES)
            response = send(portal, wf, "POST", "/chat/completions", content=content, headers=headers)
            assert response.status_code < 500, response.text
            after = row_counts(db, METERING_TABLES)
            assert after["holds"] == 0
            if response.status_code == 200:
                assert after["ledger"] == before["ledger"] + 1
                return
            error = assert_error(response, response.status_code, response.json()["error"]["code"])
            assert after["ledger"] == before["ledger"]
            if error["code"] != "budget_exceeded":
                # Only a refusal for budget follows test-mode auto-approval (which connects the user).
                assert after == before

        check()


def test_arbitrary_embedding_bodies_never_5xx_and_only_a_served_request_is_metered(tmp_path: Path) -> None:
    with blocking_server(tmp_path) as (portal, wf):
        db = tmp_path / "wattfare.db"

        @examples(50)
        @given(content=EMBEDDING_CONTENT, named=st.integers(min_value=0, max_value=3))
        def check(content: bytes, named: int) -> None:
            headers = wf.auth(user="fuzz" if named else None)
            before = row_counts(db, METERING_TABLES)
            response = send(portal, wf, "POST", "/embeddings", content=content, headers=headers)
            assert response.status_code < 500, response.text
            after = row_counts(db, METERING_TABLES)
            assert after["holds"] == 0
            if response.status_code == 200:
                assert after["ledger"] == before["ledger"] + 1
                assert response.json()["object"] == "list"
                return
            error = assert_error(response, response.status_code, response.json()["error"]["code"])
            assert after["ledger"] == before["ledger"]
            if error["code"] != "budget_exceeded":
                assert after == before

        check()


def test_arbitrary_session_and_approval_bodies_never_5xx_nor_touch_the_ledger(tmp_path: Path) -> None:
    with blocking_server(tmp_path) as (portal, wf):
        db = tmp_path / "wattfare.db"
        token = send(portal, wf, "POST", "/sessions", json={"appUserId": "fuzz"}, headers=wf.auth()).json()["token"]
        token_headers = {"Authorization": f"Bearer {token}"}

        @examples(40)
        @given(session=SESSION_BODIES | JSON_VALUES, approval=CONNECTION_BODIES | JSON_VALUES, raw=RAW_BODIES)
        def check(session: object, approval: object, raw: bytes) -> None:
            for path, headers, content in (
                ("/sessions", wf.auth(), json.dumps(session).encode()),
                ("/sessions", wf.auth(), raw),
                ("/connections", token_headers, json.dumps(approval).encode()),
                ("/connections", token_headers, raw),
            ):
                response = send(portal, wf, "POST", path, content=content, headers=headers)
                # A session token approves once (a later approval is a replay: 401), and session minting is
                # rate limited per app (429): both are typed refusals, never a 5xx.
                assert response.status_code in (200, 400, 401, 429), response.text
                if response.status_code == 400:
                    assert_error(response, 400, "invalid_request")
                elif response.status_code == 401:
                    assert path == "/connections"
                    assert "already used" in assert_error(response, 401, "auth")["message"]
                elif response.status_code == 429:
                    assert path == "/sessions"
                    assert_error(response, 429, "rate_limited")
                counts = row_counts(db, ("ledger", "holds", "counters"))
                assert counts == {"ledger": 0, "holds": 0, "counters": 0}

        check()


def test_arbitrary_status_and_usage_queries_never_5xx_nor_touch_the_ledger(tmp_path: Path) -> None:
    with blocking_server(tmp_path) as (portal, wf):
        db = tmp_path / "wattfare.db"
        served = send(portal, wf, "POST", "/chat/completions", json=HELLO, headers=wf.auth())
        assert served.status_code == 200
        before = row_counts(db)

        @examples(40)
        @given(query=QUERIES, raw_query=st.binary(max_size=60))
        @example(query={"from": "0001-01-01", "to": "9999-12-31"}, raw_query=b"to=9999-12-31")
        def check(query: dict[str, str], raw_query: bytes) -> None:
            for path in ("/status", "/usage"):
                for params in (query, httpx.QueryParams(raw_query.decode("latin-1"))):
                    response = send(portal, wf, "GET", path, params=params, headers=wf.auth())
                    assert response.status_code in (200, 400), response.text
                    if response.status_code == 400:
                        assert_error(response, 400, "invalid_request")
            assert row_counts(db) == before

        check()
