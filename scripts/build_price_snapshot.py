"""Build the bundled model price snapshot (`server/billing/data/models_snapshot.json`) from LiteLLM's price list.

The proxy prices requests from its upstream's live `/models` list; this snapshot is the fallback it ships
with, in the same OpenRouter `/models` format (string USD prices per token). The prices come from
LiteLLM's `model_prices_and_context_window` JSON, which ships inside the `litellm` wheel, so the script
needs nothing but the package index:

    python scripts/build_price_snapshot.py                    # pip-downloads litellm==DEFAULT_VERSION
    python scripts/build_price_snapshot.py --version 1.106.1  # another release
    python scripts/build_price_snapshot.py --from prices.json # a local copy (or a .whl)

Entries keyed `openrouter/<slug>` become `<slug>`. Prices are converted from the JSON numbers through
their shortest repr into `Decimal`, so 1.5e-07 becomes "0.00000015" and no float arithmetic touches
them. A zero price is kept only for `:free` variants: other zero-priced entries are routers or
promotions whose real price is unknown, and an unknown price must refuse, never be free.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

# The last litellm release whose price list still carries the `openrouter/` entries: later
# releases (1.106.2 on) dropped them, which would leave only the fallback ids below.
DEFAULT_VERSION = "1.106.1"

PRICE_MEMBERS = ("model_prices_and_context_window.json", "model_prices_and_context_window_backup.json")
OUT = (
    Path(__file__).resolve().parents[1] / "packages/wattfare-core/src/wattfare/server/billing/data/models_snapshot.json"
)

# Ids the docs and tests rely on, with LiteLLM provider-native keys to fall back on (first found wins).
REQUIRED: dict[str, tuple[str, ...]] = {
    "openai/gpt-4o-mini": ("gpt-4o-mini",),
    "openai/gpt-4o": ("gpt-4o",),
    "anthropic/claude-sonnet-4": ("claude-sonnet-4-20250514", "anthropic.claude-sonnet-4-20250514-v1:0"),
    "google/gemini-2.5-flash": ("gemini/gemini-2.5-flash", "gemini-2.5-flash", "vertex_ai/gemini-2.5-flash"),
    "meta-llama/llama-3.1-8b-instruct": (
        "deepinfra/meta-llama/Meta-Llama-3.1-8B-Instruct",
        "together_ai/meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo",
        "novita/meta-llama/llama-3.1-8b-instruct",
    ),
}

SERVED_MODES = {"chat", "completion", None}
AUTHORS = {
    "openai": "OpenAI",
    "anthropic": "Anthropic",
    "google": "Google",
    "meta-llama": "Meta",
    "mistralai": "Mistral",
    "deepseek": "DeepSeek",
    "x-ai": "xAI",
    "qwen": "Qwen",
    "cohere": "Cohere",
    "nvidia": "NVIDIA",
    "microsoft": "Microsoft",
    "amazon": "Amazon",
}
# LiteLLM key -> OpenRouter pricing key, for the optional prices.
EXTRA_PRICES = {
    "cache_read_input_token_cost": "input_cache_read",
    "cache_creation_input_token_cost": "input_cache_write",
    "output_cost_per_reasoning_token": "internal_reasoning",
    "input_cost_per_image": "image",
}
# Long-context prices (`input_cost_per_token_above_200k_tokens`) become OpenRouter `overrides` entries.
TIERED = re.compile(
    r"^(?P<key>input_cost_per_token|output_cost_per_token|cache_read_input_token_cost|cache_creation_input_token_cost)"
    r"_above_(?P<k>\d+)k_tokens$"
)
TIERED_KEYS = {
    "input_cost_per_token": "prompt",
    "output_cost_per_token": "completion",
    "cache_read_input_token_cost": "input_cache_read",
    "cache_creation_input_token_cost": "input_cache_write",
}


def price(value: Any) -> str | None:
    """A LiteLLM price (JSON number) as an exact decimal string, or None when it is not a price."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        amount = Decimal(repr(value) if not isinstance(value, str) else value)
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount < 0:
        return None
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def display_name(slug: str) -> str:
    author, _, model = slug.partition("/")
    return f"{AUTHORS.get(author, author.replace('-', ' ').title())}: {model}"


def convert(slug: str, entry: dict[str, Any], created: int) -> dict[str, Any] | None:
    """One LiteLLM entry in OpenRouter's `/models` shape, or None when it cannot be priced."""
    if entry.get("mode") not in SERVED_MODES:
        return None
    prompt, completion = price(entry.get("input_cost_per_token")), price(entry.get("output_cost_per_token"))
    if prompt is None or completion is None:
        return None
    if prompt == "0" and completion == "0" and not slug.endswith(":free"):
        return None
    pricing: dict[str, Any] = {"prompt": prompt, "completion": completion}
    for source, target in EXTRA_PRICES.items():
        if (extra := price(entry.get(source))) is not None:
            pricing[target] = extra
    tiers: dict[int, dict[str, Any]] = {}
    for key, value in entry.items():
        if (match := TIERED.match(key)) and (amount := price(value)) is not None:
            threshold = int(match["k"]) * 1000
            tiers.setdefault(threshold, {"min_prompt_tokens": threshold})[TIERED_KEYS[match["key"]]] = amount
    if tiers:
        pricing["overrides"] = [tiers[threshold] for threshold in sorted(tiers)]

    context = entry.get("max_input_tokens") or entry.get("max_tokens")
    inputs = ["text"]
    for flag, modality in (
        ("supports_vision", "image"),
        ("supports_pdf_input", "file"),
        ("supports_audio_input", "audio"),
        ("supports_video_input", "video"),
    ):
        if entry.get(flag):
            inputs.append(modality)
    parameters = ["max_tokens", "temperature", "top_p", "stop", "seed"]
    if entry.get("supports_function_calling"):
        parameters += ["tools", "tool_choice"]
    if entry.get("supports_response_schema"):
        parameters += ["response_format", "structured_outputs"]
    if entry.get("supports_reasoning"):
        parameters += ["reasoning", "include_reasoning"]
    model: dict[str, Any] = {
        "id": slug,
        "name": display_name(slug),
        "created": created,
        "context_length": context,
        "pricing": pricing,
        "top_provider": {"context_length": context, "max_completion_tokens": entry.get("max_output_tokens")},
        "architecture": {
            "modality": "+".join(inputs) + "->text",
            "input_modalities": inputs,
            "output_modalities": ["text"],
        },
        "supported_parameters": parameters,
    }
    deprecation = entry.get("deprecation_date")
    if isinstance(deprecation, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", deprecation):
        model["expiration_date"] = deprecation
    return model


def build(prices: dict[str, Any], *, source: str, generated: date) -> dict[str, Any]:
    """The whole snapshot document from LiteLLM's price map."""
    created = int(datetime.combine(generated, time(), tzinfo=UTC).timestamp())
    models: dict[str, dict[str, Any]] = {}
    for key, entry in prices.items():
        if key.startswith("openrouter/") and isinstance(entry, dict):
            slug = key.removeprefix("openrouter/")
            if (model := convert(slug, entry, created)) is not None:
                models[slug] = model
    for slug, native_keys in REQUIRED.items():
        for native in native_keys:
            if slug in models:
                break
            if isinstance(entry := prices.get(native), dict) and (model := convert(slug, entry, created)):
                models[slug] = model
        if slug not in models:
            raise SystemExit(f"required model {slug} has no price in the source (tried {', '.join(native_keys)})")
    return {"source": source, "generated": generated.isoformat(), "data": [models[slug] for slug in sorted(models)]}


def read_wheel(wheel: Path) -> dict[str, Any]:
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.rsplit("/", 1)[-1] in PRICE_MEMBERS:
                return json.loads(archive.read(name))
    raise SystemExit(f"{wheel.name} holds no {' or '.join(PRICE_MEMBERS)}")


def download(version: str, into: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", f"litellm=={version}", "--no-deps", "--quiet", "-d", str(into)]
    subprocess.run(command, check=True)
    wheels = sorted(into.glob("litellm-*.whl"))
    if not wheels:
        raise SystemExit(f"pip downloaded no litellm {version} wheel")
    return wheels[0]


def wheel_version(wheel: Path) -> str:
    return wheel.name.split("-")[1]


def dump(snapshot: dict[str, Any]) -> str:
    """Compact JSON with one model per line, so diffs between snapshots stay readable."""
    head = json.dumps({"source": snapshot["source"], "generated": snapshot["generated"]}, ensure_ascii=False)
    lines = [json.dumps(model, ensure_ascii=False, separators=(",", ":")) for model in snapshot["data"]]
    return head[:-1] + ', "data": [\n' + ",\n".join(lines) + "\n]}\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--from", dest="source", type=Path, help="a LiteLLM price JSON or litellm wheel")
    parser.add_argument("--version", default=DEFAULT_VERSION, help="litellm release to download (no --from)")
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the snapshot")
    parser.add_argument("--date", type=date.fromisoformat, help="the `generated` date (default: today, UTC)")
    args = parser.parse_args(argv)
    generated: date = args.date or datetime.now(UTC).date()

    if args.source is None:
        with tempfile.TemporaryDirectory() as tmp:
            wheel = download(args.version, Path(tmp))
            prices, label = read_wheel(wheel), f"litellm {wheel_version(wheel)}"
    elif args.source.suffix == ".whl":
        prices, label = read_wheel(args.source), f"litellm {wheel_version(args.source)}"
    else:
        prices, label = json.loads(args.source.read_text(encoding="utf-8")), f"litellm ({args.source.name})"

    snapshot = build(prices, source=f"{label} model_prices_and_context_window", generated=generated)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dump(snapshot), encoding="utf-8")
    print(f"wrote {len(snapshot['data'])} models from {label} to {args.out}")


if __name__ == "__main__":
    main()
