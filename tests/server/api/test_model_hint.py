"""An unknown model is answered with the priced ids the caller probably meant."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.server.api.envelope import assert_error
from tests.server.api.tables import nothing_metered
from tests.support.wattfare_server import in_process
from wattfare.server.billing.pricebook import similar_model_ids

KNOWN = ["openai/gpt-4o-mini", "openai/gpt-4o", "anthropic/claude-3.5-sonnet", "anthropic/claude-sonnet-4"]


@pytest.mark.parametrize(
    ("wanted", "hint"),
    [
        ("gpt-4o-mini", ["openai/gpt-4o-mini"]),
        ("OPENAI/GPT-4O-MINI", ["openai/gpt-4o-mini"]),
        ("claude-sonnet-4", ["anthropic/claude-sonnet-4"]),
        ("anthropic/claude-3.5-sonet", ["anthropic/claude-3.5-sonnet"]),
        ("totally-unrelated-name", []),
        ("", []),
        ("gpt-4o-mini" * 20, []),  # too long to be a typo: not compared at all
    ],
)
def test_the_hint_names_the_ids_a_caller_probably_meant(wanted: str, hint: list[str]) -> None:
    assert similar_model_ids(wanted, KNOWN)[: len(hint) or None] == hint


@pytest.mark.anyio
async def test_a_bare_model_name_is_refused_with_the_priced_id_to_use(tmp_path: Path) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    async with in_process(tmp_path) as wf:
        response = await wf.client.post("/chat/completions", json=body, headers=wf.auth())

    assert_error(response, 404, "model_not_found", "model")
    assert "Did you mean 'openai/gpt-4o-mini'?" in response.json()["error"]["message"]
    assert nothing_metered(tmp_path / "wattfare.db")
