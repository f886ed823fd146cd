"""GET /models (what Wattfare can meter, at what price) and GET /usage (what was spent, by whom, on what)."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.server.api.envelope import assert_error
from tests.support.wattfare_server import InProcess, in_process

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("each_store")]

MINI = "openai/gpt-4o-mini"
GPT4O = "openai/gpt-4o"


def usd(value: object) -> Decimal:
    assert isinstance(value, int | float)
    assert not isinstance(value, bool)
    return Decimal(str(value))


def price(text: object) -> Decimal:
    """A listed price: a decimal string, never a JSON number (floats cannot carry prices exactly)."""
    assert isinstance(text, str), text
    amount = Decimal(text)
    assert amount.is_finite()
    return amount


async def models(wf: InProcess) -> dict[str, dict[str, object]]:
    response = await wf.client.get("/models", headers=wf.auth())
    assert response.status_code == 200, response.text
    listing = response.json()
    assert listing["object"] == "list"
    return {entry["id"]: entry for entry in listing["data"]}


# -- GET /models


async def test_models_lists_priced_models_with_prices_as_decimal_strings(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        listed = await models(wf)
        assert len(listed) > 10
        assert {MINI, GPT4O} <= set(listed)
        assert list(listed) == sorted(listed)
        for model_id, entry in listed.items():
            assert entry["object"] == "model"
            assert entry["owned_by"] == model_id.split("/", 1)[0]
            pricing = entry["pricing"]
            assert isinstance(pricing, dict)
            assert price(pricing["prompt"]) >= 0
            assert price(pricing["completion"]) >= 0
            for name, value in pricing.items():
                if name == "overrides":
                    for override in value:
                        for key, amount in override.items():
                            if not key.startswith(("min_", "max_")):
                                price(amount)
                else:
                    price(value)
        mini = listed[MINI]["pricing"]
        assert isinstance(mini, dict)
        assert (mini["prompt"], mini["completion"]) == ("0.00000015", "0.0000006")


async def test_a_completion_costs_its_tokens_at_the_listed_prices(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        listed = await models(wf)
        for model_id in (MINI, GPT4O):
            pricing = listed[model_id]["pricing"]
            assert isinstance(pricing, dict)
            body = {"model": model_id, "messages": [{"role": "user", "content": "price me"}], "max_tokens": 40}
            response = await wf.client.post("/chat/completions", json=body, headers=wf.auth())
            assert response.status_code == 200, response.text
            usage = response.json()["usage"]
            expected = usage["prompt_tokens"] * price(pricing["prompt"]) + usage["completion_tokens"] * price(
                pricing["completion"]
            )
            expected = expected.quantize(Decimal("1e-9"), rounding=ROUND_HALF_UP)
            assert expected > 0
            assert Decimal(response.headers["Wattfare-Cost-Usd"]) == expected


async def test_every_listed_model_is_accepted_by_the_proxy(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        listed = await models(wf)
        chat = sorted(model_id for model_id, entry in listed.items() if not embeds(entry))
        for model_id in (chat[0], chat[len(chat) // 2], chat[-1]):
            body = {"model": model_id, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
            response = await wf.client.post("/chat/completions", json=body, headers=wf.auth())
            assert response.status_code == 200, (model_id, response.text)
        for model_id in sorted(model_id for model_id, entry in listed.items() if embeds(entry)):
            response = await wf.client.post("/embeddings", json={"model": model_id, "input": "hi"}, headers=wf.auth())
            assert response.status_code == 200, (model_id, response.text)


def embeds(entry: dict[str, Any]) -> bool:
    """Whether a listed model is an embedding model, told the way OpenRouter tells it."""
    return "embeddings" in (entry.get("architecture") or {}).get("output_modalities", [])


async def test_models_lists_embedding_models_with_their_input_prices_apart_from_chat_models(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        listed: dict[str, Any] = await models(wf)

        embedding: dict[str, Any] = {model_id: entry for model_id, entry in listed.items() if embeds(entry)}
        assert {
            model_id: (price(entry["pricing"]["prompt"]) * 1_000_000, price(entry["pricing"]["completion"]))
            for model_id, entry in embedding.items()
            if model_id.startswith("openai/")
        } == {
            "openai/text-embedding-3-small": (Decimal("0.02"), 0),
            "openai/text-embedding-3-large": (Decimal("0.13"), 0),
            "openai/text-embedding-ada-002": (Decimal("0.10"), 0),
        }
        for entry in embedding.values():
            assert entry["architecture"]["output_modalities"] == ["embeddings"]
            assert entry["top_provider"] == {"max_completion_tokens": None}
        assert not embeds(listed[MINI])
        assert listed[MINI]["architecture"]["output_modalities"] == ["text"]


# -- GET /usage


async def spend(wf: InProcess, user: str, model: str, *, stream: bool = False) -> tuple[Decimal, int, int]:
    """Run one completion; return its cost as the client was told it, and its token counts."""
    body = {"model": model, "messages": [{"role": "user", "content": f"usage for {user}"}], "stream": stream}
    response = await wf.client.post("/chat/completions", json=body, headers=wf.auth(user=user))
    assert response.status_code == 200, response.text
    if not stream:
        usage = response.json()["usage"]
        return Decimal(response.headers["Wattfare-Cost-Usd"]), usage["prompt_tokens"], usage["completion_tokens"]
    events = [line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    final = json.loads(events[-2])
    usage = final["usage"]
    return usd(final["wattfare"]["costUsd"]), usage["prompt_tokens"], usage["completion_tokens"]


async def usage_rows(wf: InProcess, key: str | None = None, **params: str) -> list[dict[str, object]]:
    response = await wf.client.get("/usage", params=params, headers=wf.auth(key))
    assert response.status_code == 200, response.text
    return response.json()["data"]


def totals(rows: list[dict[str, Any]]) -> dict[tuple[object, object], tuple[int, int, int, Decimal]]:
    return {
        (row["appUserId"], row["model"]): (
            row["requests"],
            row["promptTokens"],
            row["completionTokens"],
            usd(row["costUsd"]),
        )
        for row in rows
    }


async def test_usage_totals_match_the_costs_reported_to_the_client(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        expected: dict[tuple[object, object], list[object]] = defaultdict(lambda: [0, 0, 0, Decimal(0)])
        for user, model, stream in [
            ("alice", MINI, False),
            ("alice", MINI, True),
            ("alice", GPT4O, False),
            ("bob", MINI, False),
            ("bob", MINI, True),
            ("bob", MINI, False),
        ]:
            cost, prompt, completion = await spend(wf, user, model, stream=stream)
            assert cost > 0
            row = expected[(user, model)]
            row[0] += 1  # type: ignore[operator]
            row[1] += prompt  # type: ignore[operator]
            row[2] += completion  # type: ignore[operator]
            row[3] += cost  # type: ignore[operator]
        rows = await usage_rows(wf)
        for row in rows:
            assert set(row) == {
                "appUserId",
                "model",
                "endpoint",
                "requests",
                "promptTokens",
                "completionTokens",
                "costUsd",
            }
            assert row["endpoint"] == "chat.completions"
        assert [(row["appUserId"], row["model"]) for row in rows] == sorted(expected)  # type: ignore[type-var]
        assert totals(rows) == {key: tuple(value) for key, value in expected.items()}
        # And the users' status agrees with the ledger.
        for user in ("alice", "bob"):
            status = (await wf.client.get("/status", params={"appUserId": user}, headers=wf.auth())).json()
            assert usd(status["spentUsd"]) == sum(v[3] for k, v in expected.items() if k[0] == user)  # type: ignore[misc]


async def test_usage_filters_by_app_user_id(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        alice_cost, _, _ = await spend(wf, "alice", MINI)
        await spend(wf, "bob", MINI)
        await spend(wf, "alice-smith", MINI)
        rows = await usage_rows(wf, appUserId="alice")
        assert [(row["appUserId"], row["model"], usd(row["costUsd"])) for row in rows] == [("alice", MINI, alice_cost)]
        assert await usage_rows(wf, appUserId="nobody") == []
        assert await usage_rows(wf, appUserId="%") == []


async def test_usage_filters_by_from_and_to_dates(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        cost, _, _ = await spend(wf, "alice", MINI)
        today = datetime.now(UTC).date()
        yesterday, tomorrow = today - timedelta(days=1), today + timedelta(days=1)

        async def cost_between(start: object, end: object) -> Decimal:
            return sum(
                (usd(row["costUsd"]) for row in await usage_rows(wf, **{"from": str(start), "to": str(end)})),
                Decimal(0),
            )

        assert await cost_between(today, today) == cost
        assert await cost_between(yesterday, tomorrow) == cost
        assert await cost_between(yesterday, yesterday) == 0
        assert await cost_between(tomorrow, tomorrow + timedelta(days=30)) == 0
        response = await wf.client.get("/usage", params={"from": str(today), "to": str(today)}, headers=wf.auth())
        assert response.json()["from"] == f"{today}T00:00:00Z"
        assert response.json()["to"] == f"{tomorrow}T00:00:00Z"


async def test_usage_defaults_to_the_current_month(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        await spend(wf, "alice", MINI)
        response = await wf.client.get("/usage", headers=wf.auth())
        now = datetime.now(UTC)
        assert response.json()["from"] == f"{now:%Y-%m}-01T00:00:00Z"
        assert response.json()["to"].endswith("-01T00:00:00Z")
        assert len(response.json()["data"]) == 1


async def test_usage_accepts_the_widest_date_range(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        cost, _, _ = await spend(wf, "alice", MINI)
        response = await wf.client.get("/usage", params={"from": "0001-01-01", "to": "9999-12-31"}, headers=wf.auth())
        assert response.status_code == 200, response.text
        assert response.json()["from"] == "0001-01-01T00:00:00Z"
        assert response.json()["to"].startswith("9999-12-31T")
        assert [usd(row["costUsd"]) for row in response.json()["data"]] == [cost]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"from": "2026-13-01"}, "from"),
        ({"from": "2026-02-30"}, "from"),
        ({"from": "yesterday"}, "from"),
        ({"from": ""}, "from"),
        ({"from": "01/02/2026"}, "from"),
        ({"to": "2026-00-10"}, "to"),
        ({"to": "10000-01-01"}, "to"),
        ({"from": "2026-05-02", "to": "2026-05-01"}, "to"),
        ({"appUserId": ""}, "appUserId"),
    ],
)
async def test_bad_usage_queries_are_refused_naming_the_parameter(
    tmp_path: Path, params: dict[str, str], param: str
) -> None:
    async with in_process(tmp_path) as wf:
        response = await wf.client.get("/usage", params=params, headers=wf.auth())
        assert_error(response, 400, "invalid_request", param)


async def test_live_usage_does_not_include_test_spend(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        await spend(wf, "alice", MINI)
        assert await usage_rows(wf, key=wf.app.secret_keys["live"]) == []


async def test_a_request_the_provider_refused_costs_nothing(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        body = {"model": MINI, "messages": [{"role": "user", "content": "hi [sandbox:upstream_error]"}]}
        response = await wf.client.post("/chat/completions", json=body, headers=wf.auth(user="alice"))
        assert response.status_code == 502, response.text
        assert response.json()["error"]["code"] == "upstream"
        assert "Wattfare-Cost-Usd" not in response.headers
        status = (await wf.client.get("/status", params={"appUserId": "alice"}, headers=wf.auth())).json()
        assert status["spentUsd"] == 0
        assert all(usd(row["costUsd"]) == 0 for row in await usage_rows(wf))


async def test_a_stray_body_on_a_usage_request_is_ignored(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        response = await wf.client.request("GET", "/usage", content=b"not json", headers=wf.auth())
        assert response.status_code == 200
        assert isinstance(response.json()["data"], list)
