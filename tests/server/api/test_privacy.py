"""Prompts and completions are never stored or logged; secret keys are never at rest in plaintext.

Runs a real `wattfare serve` process at debug log level, so every logger the server has is loud.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.standin_upstream import run_standin
from tests.support.wattfare_server import ServerProcess, wattfare_process
from wattfare.server.access.keys import hash_key

MODEL = "openai/gpt-4o-mini"
PROMPT = "zebra-secret-prompt-7731"
SYSTEM_PROMPT = "zebra-secret-system-5521"
STREAM_PROMPT = "okapi-secret-prompt-9902"
TOOL_PROMPT = "narwhal-secret-prompt-4417"
TOOL_NAME = "narwhal_secret_tool_4417"
REFUSED_PROMPT = "quokka-secret-prompt-3308"
MARKERS = (PROMPT, SYSTEM_PROMPT, STREAM_PROMPT, TOOL_PROMPT, TOOL_NAME, REFUSED_PROMPT)


def slices(text: str, width: int = 24) -> set[str]:
    """Overlapping pieces of `text`, so that storing any part of it (not only all of it) is caught."""
    if len(text) <= width:
        return {text}
    return {text[start : start + width] for start in range(0, len(text) - width + 1, width // 2)}


def stored_bytes(db_path: Path) -> bytes:
    """The database file and its WAL and shared-memory files, as they are on disk right now."""
    parts = [db_path, db_path.with_name(db_path.name + "-wal"), db_path.with_name(db_path.name + "-shm")]
    return b"".join(part.read_bytes() for part in parts if part.exists())


def streamed_text(client: httpx.Client, body: dict[str, object], headers: dict[str, str]) -> str:
    """The content of a streamed completion, read up to `[DONE]` (the SSE end marker)."""
    pieces: list[str] = []
    with client.stream("POST", "/chat/completions", json=body | {"stream": True}, headers=headers) as response:
        assert response.status_code == 200
        lines: Iterator[str] = response.iter_lines()
        for line in lines:
            if not line.startswith("data: "):
                continue
            data = line.removeprefix("data: ")
            if data == "[DONE]":
                break
            for choice in json.loads(data).get("choices", []):
                pieces.append(choice.get("delta", {}).get("content") or "")
    return "".join(pieces)


def exercise(server: ServerProcess) -> list[str]:
    """Send distinctive prompts every way the API takes them; return the completion texts it produced."""
    headers = {"Authorization": f"Bearer {server.secret}", "Wattfare-User": "privacy-user"}
    texts: list[str] = []
    with httpx.Client(base_url=server.api_url, timeout=30) as client:
        plain = client.post(
            "/chat/completions",
            json={
                "model": MODEL,
                "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": PROMPT}],
            },
            headers=headers,
        )
        assert plain.status_code == 200, plain.text
        texts.append(plain.json()["choices"][0]["message"]["content"])

        streamed = streamed_text(
            client, {"model": MODEL, "messages": [{"role": "user", "content": STREAM_PROMPT}]}, headers
        )
        texts.append(streamed)

        tool = {
            "type": "function",
            "function": {
                "name": TOOL_NAME,
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
        called = client.post(
            "/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": TOOL_PROMPT}], "tools": [tool]},
            headers=headers,
        )
        assert called.status_code == 200, called.text
        texts.extend(call["function"]["arguments"] for call in called.json()["choices"][0]["message"]["tool_calls"])

        # Refused requests must not leak their prompt either (into an error log, say).
        for refused in (
            {"model": MODEL, "messages": [{"role": "user", "content": REFUSED_PROMPT}], "n": 17},
            {"model": "nobody/" + REFUSED_PROMPT, "messages": [{"role": "user", "content": REFUSED_PROMPT}]},
        ):
            assert client.post("/chat/completions", json=refused, headers=headers).status_code in (400, 404)
        usage = client.get("/usage", headers=headers).json()["data"]
        assert sum(row["requests"] for row in usage) == 3
    assert all(texts)
    assert PROMPT in texts[0]  # the sandbox quotes the prompt: the answer is as sensitive as the question
    return texts


@pytest.mark.timeout(60)
def test_prompts_completions_and_secret_keys_never_reach_the_database_or_the_log(tmp_path: Path) -> None:
    with wattfare_process(tmp_path, env={"WATTFARE_LOG_LEVEL": "debug", "WATTFARE_ACCESS_LOG": "1"}) as server:
        completions = exercise(server)
        while_running = stored_bytes(server.db_path)
        log_while_running = server.log_text()
    at_rest = stored_bytes(server.db_path)
    log = server.log_path.read_text(errors="replace")
    assert "POST /api/v1/chat/completions" in log  # the log is really being written at this level

    secrets = set(MARKERS)
    for text in completions:
        secrets |= slices(text)
    for mode, secret_key in server.app.secret_keys.items():
        random_part = secret_key.removeprefix(f"sk_{mode}_{server.app.app.id}_")
        assert len(random_part) >= 40
        secrets |= {secret_key, random_part}
        # Controls: the key is kept, as its hash, in the very bytes searched below.
        assert hash_key(secret_key).encode() in at_rest
    # And the app user id, which is kept by design, is found in them while running and at rest.
    assert b"privacy-user" in while_running
    assert b"privacy-user" in at_rest
    for secret in sorted(secrets):
        for where, content in (("database", while_running), ("database at rest", at_rest)):
            assert secret.encode() not in content, f"{secret!r} found in the {where}"
        for where, text in (("log", log), ("log while running", log_while_running)):
            assert secret not in text, f"{secret!r} found in the {where}"


@pytest.mark.timeout(60)
def test_the_provider_never_learns_the_app_user_id_nor_the_apps_key(tmp_path: Path) -> None:
    provider_key = "provider-key-for-the-standin"
    with run_standin() as standin:
        env = {
            "WATTFARE_UPSTREAM_URL": standin.base_url,
            "WATTFARE_UPSTREAM_KEY": provider_key,
            "WATTFARE_TEST_UPSTREAM": "live",  # test keys served by the real (stand-in) provider
        }
        with wattfare_process(tmp_path, env=env) as server, httpx.Client(base_url=server.api_url, timeout=30) as client:
            seen: dict[str, str] = {}
            for user, body_user in (("dana@example.com", None), ("dana@example.com", "ignored"), ("eli", None)):
                body: dict[str, object] = {"model": "standin/ok", "messages": [{"role": "user", "content": "hi"}]}
                if body_user is not None:
                    body["user"] = body_user
                headers = {"Authorization": f"Bearer {server.secret}", "Wattfare-User": user}
                response = client.post("/chat/completions", json=body, headers=headers)
                assert response.status_code == 200, response.text
                stats = standin.stats()
                raw = str(stats["last_raw"])
                sent_headers = json.dumps(stats["last_headers"])
                for leak in (user, "ignored", server.secret, server.app.app.id):
                    assert leak not in raw
                    assert leak not in sent_headers
                assert provider_key in sent_headers
                anonymous = stats["last_request"]["user"]
                assert anonymous.startswith("wf_")
                assert seen.setdefault(user, anonymous) == anonymous  # stable per user, so abuse is traceable
            assert seen["dana@example.com"] != seen["eli"]
