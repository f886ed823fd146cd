"""A real `wattfare serve` writes one JSON line per request, and neither its log nor its database holds a prompt,
a completion, a key, or (in the log) an app's user id in clear.

The workload names its end users, sends distinctive prompts and a credential-shaped field, and calls every API
route that takes an app user id (in a header, a query, a path, a body). Then every log line must be a JSON
object; the request lines must say what the operator needs (route, status, code, app, mode, model, hashed user,
cost); and every table of the database, on each store, is scanned for the prompts, the answers and the keys.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.support.wattfare_server import ServerProcess, wattfare_process
from wattfare.server.proxy.request_body import anonymous_user

pytestmark = pytest.mark.xdist_group("log_privacy")

PROMPT = "pangolin-secret-prompt-6620"
STREAM_PROMPT = "axolotl-secret-prompt-1187"
EMBEDDED = "tapir-secret-input-4409"
REFUSED_PROMPT = "ibex-secret-prompt-7753"
USER = "carol@example.org"
OTHER_USER = "dmitri-user-5561"
MODEL = "openai/gpt-4o-mini"


def every_row(database_url: str) -> str:
    """Every row of every table of the database, as text."""
    if database_url.startswith("sqlite:///"):
        with closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as db:
            tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            return "\n".join(repr(db.execute(f'SELECT * FROM "{table}"').fetchall()) for table in tables)

    async def read() -> str:
        db = await asyncpg.connect(database_url, timeout=10)
        try:
            tables = await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            dumps = [repr(await db.fetch(f'SELECT * FROM "{row[0]}"')) for row in tables]
            return "\n".join(dumps)
        finally:
            await db.close()

    return asyncio.run(read())


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    with wattfare_process(tmp_path, env={"WATTFARE_LOG_LEVEL": "info"}, database_url=database_url) as running:
        yield running


def workload(server: ServerProcess) -> list[str]:
    """Use every route that names an app user or carries a prompt; return the completions' texts."""
    secret = {"Authorization": f"Bearer {server.secret}"}
    texts: list[str] = []
    with httpx.Client(base_url=server.api_url, timeout=30) as client:
        answer = client.post(
            "/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]},
            headers={**secret, "Wattfare-User": USER},
        )
        assert answer.status_code == 200, answer.text
        texts.append(answer.json()["choices"][0]["message"]["content"])
        streamed = client.post(
            "/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": STREAM_PROMPT}], "stream": True},
            headers={**secret, "Wattfare-User": USER},
        )
        assert streamed.status_code == 200
        texts.append(streamed.text)
        embedded = client.post(
            "/embeddings",
            json={"model": "openai/text-embedding-3-small", "input": EMBEDDED, "user": OTHER_USER},
            headers=secret,
        )
        assert embedded.status_code == 200, embedded.text
        refusals = (
            {"model": MODEL, "messages": [{"role": "user", "content": REFUSED_PROMPT}], "api_key": server.secret},
            {"model": "nobody/" + REFUSED_PROMPT, "messages": [{"role": "user", "content": REFUSED_PROMPT}]},
        )
        for body in refusals:
            refused = client.post("/chat/completions", json=body, headers={**secret, "Wattfare-User": USER})
            assert refused.status_code in (400, 404)
        wrong_key = {"Authorization": f"Bearer {server.secret}x"}
        assert client.post("/chat/completions", json={"model": MODEL}, headers=wrong_key).status_code == 401
        assert client.post("/sessions", json={"appUserId": OTHER_USER}, headers=secret).status_code == 200
        assert client.get("/status", params={"appUserId": USER}, headers=secret).status_code == 200
        assert client.get("/usage", params={"appUserId": USER}, headers=secret).status_code == 200
        assert client.delete(f"/connections/{OTHER_USER}", headers=secret).status_code == 204
    assert PROMPT in texts[0]  # the sandbox quotes the prompt: the answer is as sensitive as the question
    return texts


def test_one_json_line_per_request_and_no_secret_in_the_log_or_the_database(
    server: ServerProcess, database_url: str
) -> None:
    texts = workload(server)
    server.stop()
    log = server.log_text()

    lines = [json.loads(line) for line in log.splitlines() if line.strip()]  # every line is one JSON object
    requests = [line for line in lines if line.get("event") == "request"]
    by_endpoint: dict[str, list[dict[str, object]]] = {}
    for line in requests:
        by_endpoint.setdefault(str(line["endpoint"]), []).append(line)
    completions = by_endpoint["POST /api/v1/chat/completions"]
    assert [line["status"] for line in completions] == [200, 200, 400, 404, 401]
    whole = completions[0]
    assert whole["app_id"] == server.app.app.id
    assert (whole["mode"], whole["model"], whole["code"], whole["metered"]) == ("test", MODEL, "ok", "chat.completions")
    assert whole["user"] == anonymous_user(server.app.app.id, USER)
    cost, held = whole["cost_nano"], whole["held_nano"]
    assert isinstance(cost, int)
    assert isinstance(held, int)
    assert 0 < cost <= held
    assert str(whole["request_id"]).startswith("req_")
    assert isinstance(whole["upstream_ttfb_ms"], float)
    assert completions[1]["stream"] is True
    assert (completions[2]["code"], completions[3]["code"], completions[4]["code"]) == (
        "invalid_request",
        "model_not_found",
        "auth",
    )
    assert by_endpoint["POST /api/v1/embeddings"][0]["user"] == anonymous_user(server.app.app.id, OTHER_USER)
    assert by_endpoint["DELETE /api/v1/connections/{app_user_id:any_text}"][0]["status"] == 204
    for endpoint in ("POST /api/v1/sessions", "GET /api/v1/status", "GET /api/v1/usage"):
        assert by_endpoint[endpoint][0]["status"] == 200

    secret_key_part = server.secret.removeprefix(f"sk_test_{server.app.app.id}_")
    never_logged = {PROMPT, STREAM_PROMPT, EMBEDDED, REFUSED_PROMPT, USER, OTHER_USER, server.secret, secret_key_part}
    never_stored = {PROMPT, STREAM_PROMPT, EMBEDDED, REFUSED_PROMPT, server.secret, secret_key_part}
    answer_words = {word for text in texts for word in text.split() if len(word) > 12 and "secret" in word}
    stored = every_row(database_url)
    assert USER in stored  # the control: app user ids are kept in the books, by design, and the scan sees them
    for secret in sorted(never_logged | answer_words):
        assert secret not in log, f"{secret!r} is in the log"
    for secret in sorted(never_stored | answer_words):
        assert secret not in stored, f"{secret!r} is in the database"
