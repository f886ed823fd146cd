"""`POST /embeddings` in-process over the sandbox, on SQLite and PostgreSQL: metered, capped and booked as embeddings.

Costs are checked to the nano with exact arithmetic: the model's listed price per input token times the tokens
the upstream reported, rounded half-up to the nano, which is what the headers, the `wattfare` object, the
connection's status and the usage report must all say.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.api.envelope import assert_error
from tests.support import wattfare_server
from tests.support.ledger import Ledger
from tests.support.wattfare_server import InProcess, database_url_for, in_process, provision_async
from wattfare.metering import embedding_token_bound, usd_to_nanos
from wattfare.server.app import create_app
from wattfare.server.services import Services
from wattfare.server.settings import Settings
from wattfare.server.store import Store, StoreUnavailableError, open_store

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("each_store")]

SMALL = "openai/text-embedding-3-small"
LARGE = "openai/text-embedding-3-large"
PRICES = {SMALL: Decimal("0.00000002"), LARGE: Decimal("0.00000013")}
NANO = Decimal("1e-9")


def books(tmp_path: Path) -> Ledger:
    return Ledger(wattfare_server.database_override or database_url_for(tmp_path / "wattfare.db"))


def exact_cost(model: str, tokens: int) -> Decimal:
    return (tokens * PRICES[model]).quantize(NANO, rounding=ROUND_HALF_UP)


async def embed(wf: InProcess, user: str = "u1", **body: Any) -> httpx.Response:
    return await wf.client.post(
        "/embeddings", json={"model": SMALL, "input": "hello"} | body, headers=wf.auth(user=user)
    )


async def test_an_embedding_is_charged_its_input_tokens_at_the_listed_price(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        response = await embed(wf, "alice", input="The quick brown fox jumps over the lazy dog.")

        assert response.status_code == 200, response.text
        body = response.json()
        assert body["object"] == "list"
        assert body["model"] == SMALL
        [item] = body["data"]
        assert (item["object"], item["index"]) == ("embedding", 0)
        assert len(item["embedding"]) == 1536
        tokens = body["usage"]["prompt_tokens"]
        assert body["usage"]["total_tokens"] == tokens > 0
        cost = Decimal(response.headers["Wattfare-Cost-Usd"])
        assert cost == exact_cost(SMALL, tokens)
        assert Decimal(response.headers["Wattfare-Remaining-Usd"]) == Decimal(10) - cost
        request_id = response.headers["Wattfare-Request-Id"]
        assert body["wattfare"] == {
            "requestId": request_id,
            "costUsd": float(cost),
            "remainingUsd": float(Decimal(10) - cost),
        }
        assert "Wattfare-Max-Tokens" not in response.headers  # nothing is written, so nothing is capped
        status = (await wf.client.get("/status", params={"appUserId": "alice"}, headers=wf.auth())).json()
        assert Decimal(str(status["spentUsd"])) == cost
        entry = books(tmp_path).entry(request_id)
        assert entry is not None
        assert (entry.endpoint, entry.kind, entry.prompt_tokens, entry.completion_tokens) == (
            "embeddings",
            "charge",
            tokens,
            0,
        )
        assert entry.amount == usd_to_nanos(cost)


async def test_batches_and_token_arrays_get_one_vector_each_in_order(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        texts = await embed(wf, input=["first", "second text", "ünïcödé third"], model=LARGE)
        tokens = await embed(wf, input=[[1, 2, 3], [40, 50]])
        single = await embed(wf, input=[7, 8, 9, 10])

        for response in (texts, tokens, single):
            assert response.status_code == 200, response.text
        assert [item["index"] for item in texts.json()["data"]] == [0, 1, 2]
        assert {len(item["embedding"]) for item in texts.json()["data"]} == {3072}
        assert [item["index"] for item in tokens.json()["data"]] == [0, 1]
        assert len(single.json()["data"]) == 1
        # Token arrays are counted exactly: the sandbox reports their lengths, and that is what is charged.
        assert tokens.json()["usage"]["prompt_tokens"] == 5
        assert single.json()["usage"]["prompt_tokens"] == 4
        assert Decimal(tokens.headers["Wattfare-Cost-Usd"]) == exact_cost(SMALL, 5)
        assert Decimal(texts.headers["Wattfare-Cost-Usd"]) == exact_cost(LARGE, texts.json()["usage"]["prompt_tokens"])


async def test_dimensions_and_base64_are_honoured(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        floats = await embed(wf, input="same text", dimensions=256)
        encoded = await embed(wf, input="same text", dimensions=256, encoding_format="base64")

        assert len(floats.json()["data"][0]["embedding"]) == 256
        assert isinstance(encoded.json()["data"][0]["embedding"], str)
        assert floats.json()["usage"] == encoded.json()["usage"]


async def test_the_usage_report_says_embeddings_beside_chat_with_the_exact_cost(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        told = Decimal(0)
        tokens = 0
        for text in ("one", "two two", "three three three"):
            response = await embed(wf, "ursula", input=text)
            told += Decimal(response.headers["Wattfare-Cost-Usd"])
            tokens += response.json()["usage"]["prompt_tokens"]
        chat = await wf.client.post(
            "/chat/completions",
            json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            headers=wf.auth(user="ursula"),
        )
        assert chat.status_code == 200

        rows = (await wf.client.get("/usage", headers=wf.auth())).json()["data"]

        by_model = {row["model"]: row for row in rows}
        assert by_model["openai/gpt-4o-mini"]["endpoint"] == "chat.completions"
        embedding = by_model[SMALL]
        assert embedding["endpoint"] == "embeddings"
        assert (embedding["requests"], embedding["promptTokens"], embedding["completionTokens"]) == (3, tokens, 0)
        # $0.02 per million tokens is 20 nanos a token: each request's cost, and so their sum, is exact.
        assert Decimal(str(embedding["costUsd"])) == told == exact_cost(SMALL, tokens)


async def test_a_chat_model_on_embeddings_and_an_embedding_model_on_chat_are_refused_typed(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        chat_model = await embed(wf, model="openai/gpt-4o-mini")
        embedding_model = await wf.client.post(
            "/chat/completions",
            json={"model": SMALL, "messages": [{"role": "user", "content": "hi"}]},
            headers=wf.auth(),
        )

        assert "not an embedding model" in assert_error(chat_model, 400, "invalid_request", "model")["message"]
        assert "/embeddings" in assert_error(embedding_model, 400, "invalid_request", "model")["message"]
        for refused in (chat_model, embedding_model):
            assert refused.headers["Wattfare-Request-Id"].startswith("req_")
        assert books(tmp_path).totals().holds == books(tmp_path).totals().ledger_rows == 0


@pytest.mark.parametrize(
    ("model", "hint"),
    [("text-embedding-3-small", SMALL), ("openai/text-embeding-3-large", LARGE), ("nobody/embedder", None)],
)
async def test_an_unknown_embedding_model_is_model_not_found_with_a_hint(
    tmp_path: Path, model: str, hint: str | None
) -> None:
    async with in_process(tmp_path) as wf:
        error = assert_error(await embed(wf, model=model), 404, "model_not_found", "model")
        assert ("Did you mean" in error["message"]) is (hint is not None)
        if hint:
            assert repr(hint) in error["message"]


async def test_a_spent_cap_refuses_embeddings_with_budget_exceeded_and_never_overspends(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        cap = Decimal("0.000001")  # 1,000 nanos; each request below holds 340 and is charged 80
        session = await wf.client.post(
            "/sessions", json={"appUserId": "bea", "requestLimit": {"monthlyUsd": float(cap)}}, headers=wf.auth()
        )
        assert session.status_code == 200
        text = "x" * 13
        hold = embedding_token_bound([text]) * usd_to_nanos(PRICES[SMALL])
        assert hold == 17 * 20  # 13 bytes and 4 for the model's own tokens, at 20 nanos a token

        codes: list[object] = []
        for _ in range(12):
            response = await embed(wf, "bea", input=text)
            codes.append(response.status_code if response.status_code == 200 else response.json()["error"]["code"])
            if response.status_code == 402:
                error = assert_error(response, 402, "budget_exceeded")
                assert error["resetsAt"].endswith("T00:00:00Z")
                break

        assert codes[-1] == "budget_exceeded"
        assert codes[:-1] == [200] * (len(codes) - 1)
        account = books(tmp_path).assert_balanced("bea")[0]
        assert account.spent <= account.cap == usd_to_nanos(cap)
        # Refused only once the spend left no room for this request's bound.
        assert account.cap - account.spent < hold


async def test_an_unconnected_live_user_is_not_connected_and_nothing_is_held(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        response = await wf.client.post(
            "/embeddings",
            json={"model": SMALL, "input": "hello"},
            headers=wf.auth(key=wf.app.secret_keys["live"], user="stranger"),
        )

        assert_error(response, 402, "not_connected")
        assert books(tmp_path).totals().holds == 0


async def test_a_provider_refusal_releases_the_hold(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        response = await embed(wf, "ray", input=["fine", "but [sandbox:upstream_error] here"])

        assert_error(response, 502, "upstream")
        [entry] = books(tmp_path).entries("ray")
        assert (entry.endpoint, entry.kind, entry.amount) == ("embeddings", "released", 0)


async def test_hints_name_only_models_the_endpoint_serves(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        on_chat = await wf.client.post(
            "/chat/completions",
            json={"model": "text-embedding-3-smal", "messages": [{"role": "user", "content": "hi"}]},
            headers=wf.auth(),
        )
        on_embeddings = await embed(wf, model="text-embedding-3-smal")

        assert "Did you mean" not in assert_error(on_chat, 404, "model_not_found", "model")["message"]
        assert repr(SMALL) in assert_error(on_embeddings, 404, "model_not_found", "model")["message"]


# -- the store going away


class FlakyStore:
    """A real store whose named methods answer as an unreachable database does (fakes over mocks)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.down: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        if name in self.down:

            async def unreachable(*args: object, **kwargs: object) -> None:
                raise StoreUnavailableError("the test took the database away")

            return unreachable
        return getattr(self._store, name)


@asynccontextmanager
async def over_flaky_store(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, FlakyStore, Services, str]]:
    url = wattfare_server.database_override or database_url_for(tmp_path / "wattfare.db")
    provisioned = await provision_async(url)
    store = FlakyStore(open_store(url))
    app = create_app(Settings.from_env({}, database_url=url), store=store)  # type: ignore[arg-type]
    services: Services = app.state.services
    await services.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://wattfare.test/api/v1") as client:
            yield client, store, services, provisioned.secret_keys["test"]
    finally:
        await services.stop()


async def test_a_store_outage_before_the_hold_is_a_typed_503_and_holds_nothing(tmp_path: Path) -> None:
    async with over_flaky_store(tmp_path) as (client, store, _, secret):
        store.down = {"budget"}
        response = await client.post(
            "/embeddings",
            json={"model": SMALL, "input": "hi"},
            headers={"Authorization": f"Bearer {secret}", "Wattfare-User": "u"},
        )

        assert_error(response, 503, "unavailable")
        assert response.headers["retry-after"] == "1"
        assert response.headers["Wattfare-Request-Id"].startswith("req_")
        assert books(tmp_path).totals().holds == 0


async def test_an_answer_whose_settle_meets_an_outage_is_served_and_charged_once_the_store_is_back(
    tmp_path: Path,
) -> None:
    async with over_flaky_store(tmp_path) as (client, store, services, secret):
        store.down = {"settle"}
        response = await client.post(
            "/embeddings",
            json={"model": SMALL, "input": "hi"},
            headers={"Authorization": f"Bearer {secret}", "Wattfare-User": "u"},
        )
        assert response.status_code == 200, response.text
        assert "Wattfare-Cost-Usd" not in response.headers  # no one can confirm the charge yet
        request_id = response.headers["Wattfare-Request-Id"]
        assert books(tmp_path).hold(request_id) is not None  # still held, never released nor expired

        store.down = set()
        await services.meter.sweep()

        entry = books(tmp_path).entry(request_id)
        assert entry is not None
        assert (entry.endpoint, entry.kind, entry.amount) == (
            "embeddings",
            "charge",
            20 * response.json()["usage"]["prompt_tokens"],
        )
        assert books(tmp_path).totals().holds == 0
