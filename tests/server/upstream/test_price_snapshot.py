from __future__ import annotations

import importlib.util
import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from wattfare.server.upstream.sandbox.models import load_bundled_models

ROOT = Path(__file__).resolve().parents[3]
REQUIRED_IDS = [
    "openai/gpt-4o-mini",
    "openai/gpt-4o",
    "anthropic/claude-sonnet-4",
    "google/gemini-2.5-flash",
    "meta-llama/llama-3.1-8b-instruct",
]


@pytest.fixture(scope="module")
def builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_price_snapshot", ROOT / "scripts/build_price_snapshot.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def litellm_prices(**entries: dict[str, Any]) -> dict[str, Any]:
    """A LiteLLM price map holding the required ids natively, plus `entries`."""
    native = {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "mode": "chat"}
    prices: dict[str, Any] = {
        "gpt-4o-mini": native,
        "gpt-4o": native,
        "claude-sonnet-4-20250514": native,
        "gemini/gemini-2.5-flash": native,
        "deepinfra/meta-llama/Meta-Llama-3.1-8B-Instruct": native,
    }
    return prices | entries


def test_the_bundled_snapshot_has_the_documented_models_with_string_prices() -> None:
    models = {model["id"]: model for model in load_bundled_models()}

    for model_id in REQUIRED_IDS:
        pricing = models[model_id]["pricing"]
        assert isinstance(pricing["prompt"], str)
        assert isinstance(pricing["completion"], str)
        assert Decimal(pricing["prompt"]) > 0
        assert Decimal(pricing["completion"]) > 0
    assert models["openai/gpt-4o-mini"]["pricing"]["prompt"] == "0.00000015"
    assert models["openai/gpt-4o-mini"]["pricing"]["completion"] == "0.0000006"


def test_every_bundled_price_is_a_plain_decimal_string() -> None:
    for model in load_bundled_models():
        for key in ("prompt", "completion"):
            text = model["pricing"][key]
            assert isinstance(text, str)
            assert "e" not in text.lower(), (model["id"], text)
            assert Decimal(text) >= 0


def test_the_bundled_snapshot_records_its_source_and_date() -> None:
    document = json.loads(
        (ROOT / "packages/wattfare-core/src/wattfare/server/billing/data/models_snapshot.json").read_text()
    )

    assert document["source"].startswith("litellm ")
    assert date.fromisoformat(document["generated"])


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.5e-07, "0.00000015"), (6e-07, "0.0000006"), (1e-05, "0.00001"), (2.5e-06, "0.0000025"), (0, "0"), (3, "3")],
)
def test_prices_convert_exactly_from_their_json_numbers(builder: ModuleType, value: float, text: str) -> None:
    assert builder.price(value) == text


@pytest.mark.parametrize("value", [None, True, -1e-06, "abc", float("nan")])
def test_non_prices_are_refused(builder: ModuleType, value: object) -> None:
    assert builder.price(value) is None


def test_openrouter_entries_become_slugs_and_unpriced_ones_are_skipped(builder: ModuleType) -> None:
    prices = litellm_prices(
        **{
            "openrouter/acme/good": {"input_cost_per_token": 1.5e-07, "output_cost_per_token": 6e-07, "mode": "chat"},
            "openrouter/acme/no-output": {"input_cost_per_token": 1.5e-07, "mode": "chat"},
            "openrouter/acme/router": {"input_cost_per_token": 0, "output_cost_per_token": 0, "mode": "chat"},
            "openrouter/acme/gift:free": {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0},
            "openrouter/acme/painter": {
                "input_cost_per_token": 1e-06,
                "output_cost_per_token": 1e-06,
                "mode": "image_generation",
            },
        }
    )
    snapshot = builder.build(prices, source="litellm test", generated=date(2025, 1, 2))
    models = {model["id"]: model for model in snapshot["data"]}

    assert {"acme/good", "acme/gift:free"} <= set(models)
    assert not {"acme/no-output", "acme/router", "acme/painter"} & set(models)
    assert models["acme/good"]["pricing"] == {"prompt": "0.00000015", "completion": "0.0000006"}
    assert (snapshot["source"], snapshot["generated"]) == ("litellm test", "2025-01-02")


def test_missing_required_ids_come_from_provider_native_entries(builder: ModuleType) -> None:
    prices = litellm_prices(
        **{"openrouter/openai/gpt-4o": {"input_cost_per_token": 5e-06, "output_cost_per_token": 2e-05}}
    )
    models = {model["id"]: model for model in builder.build(prices, source="s", generated=date(2025, 1, 2))["data"]}

    assert set(REQUIRED_IDS) <= set(models)
    assert models["openai/gpt-4o"]["pricing"]["prompt"] == "0.000005"  # OpenRouter's own entry wins
    assert models["openai/gpt-4o-mini"]["pricing"]["prompt"] == "0.000001"


def test_a_required_id_without_any_price_stops_the_build(builder: ModuleType) -> None:
    prices = litellm_prices()
    del prices["gpt-4o"]

    with pytest.raises(SystemExit, match="openai/gpt-4o"):
        builder.build(prices, source="s", generated=date(2025, 1, 2))


def test_long_context_prices_become_overrides(builder: ModuleType) -> None:
    entry = {
        "input_cost_per_token": 3e-06,
        "output_cost_per_token": 1.5e-05,
        "input_cost_per_token_above_200k_tokens": 6e-06,
        "output_cost_per_token_above_200k_tokens": 2.25e-05,
    }
    snapshot = builder.build(litellm_prices(**{"openrouter/acme/big": entry}), source="s", generated=date(2025, 1, 2))
    [big] = [model for model in snapshot["data"] if model["id"] == "acme/big"]

    assert big["pricing"]["overrides"] == [
        {"min_prompt_tokens": 200000, "prompt": "0.000006", "completion": "0.0000225"}
    ]


def test_the_written_file_is_one_model_per_line_and_valid_json(builder: ModuleType, tmp_path: Path) -> None:
    source = tmp_path / "prices.json"
    source.write_text(json.dumps(litellm_prices()))
    out = tmp_path / "snapshot.json"

    builder.main(["--from", str(source), "--out", str(out), "--date", "2025-01-02"])

    document = json.loads(out.read_text())
    assert len(document["data"]) == len(REQUIRED_IDS)
    assert len(out.read_text().splitlines()) == len(REQUIRED_IDS) + 2
