"""GET / PATCH /app (the app's output allowance) and the caps a connection may have, on both stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.server.api.envelope import assert_error
from tests.support.wattfare_server import InProcess, in_process
from wattfare.server.billing.pricebook import load_snapshot, price_models

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("each_store")]

MINI = "openai/gpt-4o-mini"


async def complete(wf: InProcess, model: str = MINI, **body: Any) -> Any:
    payload = {"model": model, "messages": [{"role": "user", "content": "hi"}], **body}
    return await wf.client.post("/chat/completions", json=payload, headers=wf.auth())


async def test_an_apps_output_allowance_is_read_changed_and_sent_upstream(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        start = await wf.client.get("/app", headers=wf.auth(user=None))
        assert start.status_code == 200
        assert start.json()["outputAllowanceTokens"] is None
        assert start.json()["defaultOutputAllowanceTokens"] == {"chat": 4096, "reasoning": 25000}
        assert (await complete(wf)).headers["wattfare-max-tokens"] == "4096"

        changed = await wf.client.patch("/app", json={"outputAllowanceTokens": 1500}, headers=wf.auth(user=None))
        assert changed.status_code == 200
        assert changed.json()["outputAllowanceTokens"] == 1500
        assert (await complete(wf)).headers["wattfare-max-tokens"] == "1500"
        # A client that asks for more still gets it.
        assert (await complete(wf, max_tokens=3000)).headers["wattfare-max-tokens"] == "3000"

        reset = await wf.client.patch("/app", json={"outputAllowanceTokens": None}, headers=wf.auth(user=None))
        assert reset.json()["outputAllowanceTokens"] is None
        assert (await complete(wf)).headers["wattfare-max-tokens"] == "4096"


async def test_reasoning_models_get_the_larger_default_allowance(tmp_path: Path) -> None:
    models = price_models(load_snapshot())
    reasoner = next(m for m in models.values() if m.reasons and (m.max_output_tokens or 0) >= 25000)
    assert not models[MINI].reasons
    async with in_process(tmp_path) as wf:
        answer = await complete(wf, reasoner.id)
        assert answer.status_code == 200, answer.text
        assert answer.headers["wattfare-max-tokens"] == "25000"


@pytest.mark.parametrize("bad", [0, -5, 1_000_001, 2.5, True, "4096", [], {}])
async def test_an_output_allowance_out_of_range_or_of_the_wrong_type_is_refused(tmp_path: Path, bad: object) -> None:
    async with in_process(tmp_path) as wf:
        refused = await wf.client.patch("/app", json={"outputAllowanceTokens": bad}, headers=wf.auth(user=None))
        assert_error(refused, 400, "invalid_request", "outputAllowanceTokens")
        assert (await wf.client.get("/app", headers=wf.auth(user=None))).json()["outputAllowanceTokens"] is None


async def test_an_unknown_app_setting_is_refused_by_name(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        refused = await wf.client.patch("/app", json={"maxTokens": 10}, headers=wf.auth(user=None))
        assert_error(refused, 400, "invalid_request", "maxTokens")


async def test_app_settings_need_a_secret_key(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        assert_error(await wf.client.get("/app"), 401, "auth")
        assert_error(await wf.client.patch("/app", json={"outputAllowanceTokens": 5}), 401, "auth")


async def test_a_zero_dollar_cap_is_refused_with_what_to_do_instead(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        suggested = await wf.client.post(
            "/sessions", json={"appUserId": "u9", "requestLimit": {"monthlyUsd": 0}}, headers=wf.auth(user=None)
        )
        error = assert_error(suggested, 400, "invalid_request", "requestLimit.monthlyUsd")
        assert "more than 0" in str(error["message"])
