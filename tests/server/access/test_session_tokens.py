"""A session token approves at most once; a trailing-slash URL is an error, not a redirect."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.wattfare_server import in_process

pytestmark = pytest.mark.anyio


async def test_a_session_token_replayed_after_approval_is_refused_and_changes_nothing(
    tmp_path: Path, database_url: str
) -> None:
    async with in_process(tmp_path, database_url) as wf:
        minted = await wf.client.post(
            "/sessions", json={"appUserId": "ann", "requestLimit": {"monthlyUsd": 5}}, headers=wf.auth()
        )
        token = {"Authorization": f"Bearer {minted.json()['token']}"}
        approved = await wf.client.post("/connections", json={"monthlyUsd": 3}, headers=token)
        assert approved.status_code == 200
        assert approved.json()["limits"]["monthlyUsd"] == 3
        replay = await wf.client.post("/connections", json={"monthlyUsd": 900}, headers=token)
        assert replay.status_code == 401
        assert replay.json()["error"]["code"] == "auth"
        # The token still reads and revokes its own connection; only approval is single use.
        read = await wf.client.get("/connections", headers=token)
        assert read.json()["limits"]["monthlyUsd"] == 3


async def test_an_invalid_approval_body_does_not_use_up_the_token(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        minted = await wf.client.post("/sessions", json={"appUserId": "ann"}, headers=wf.auth())
        token = {"Authorization": f"Bearer {minted.json()['token']}"}
        bad = await wf.client.post("/connections", json={"monthlyUsd": "lots"}, headers=token)
        assert bad.status_code == 400
        good = await wf.client.post("/connections", json={"monthlyUsd": 2}, headers=token)
        assert good.status_code == 200


async def test_a_trailing_slash_gets_the_error_envelope_not_a_redirect(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        response = await wf.client.post("/chat/completions/", json={}, headers=wf.auth())
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "invalid_request"
