"""The fast stand-in upstream: nginx answering fixed OpenAI-wire bodies from memory.

nginx (Debian's package) is started as a process of its own, on a loopback port, from a config written
into the run's temp dir. It answers, without reading anything from disk:

    POST /v1/chat/completions          a chat completion (JSON), or, when the request's Accept header
                                       names text/event-stream, a 20-chunk SSE stream + a final usage chunk
    POST /sse/v1/chat/completions      always the SSE stream (for clients that do not send that Accept)
    GET  /v1/models, /sse/v1/models    an OpenRouter-format model list pricing MODEL

So it costs the proxies under test nothing but the wire: every microsecond they add is their own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MODEL = "openai/gpt-4o-mini"  # priced like OpenRouter's entry, and known to LiteLLM's cost map
PROMPT_TOKENS = 24
COMPLETION_TOKENS = 20
STREAM_CHUNKS = 20


def _usage() -> dict[str, int]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
    }


def completion_body() -> str:
    """The non-streamed answer."""
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello! " * 10},
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(),
        },
        separators=(",", ":"),
    )


def stream_body() -> str:
    """The streamed answer: a role chunk, 20 content chunks, the finish chunk, the usage chunk, [DONE]."""
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": MODEL}
    chunks: list[dict[str, Any]] = [base | {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    chunks += [
        base | {"choices": [{"index": 0, "delta": {"content": f"word{i} "}, "finish_reason": None}]}
        for i in range(STREAM_CHUNKS)
    ]
    chunks.append(base | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks.append(base | {"choices": [], "usage": _usage()})
    events = [f"data: {json.dumps(c, separators=(',', ':'))}\n\n" for c in chunks]
    return "".join(events) + "data: [DONE]\n\n"


def models_body() -> str:
    """OpenRouter's `/models` shape, with string USD-per-token prices."""
    entry = {
        "id": MODEL,
        "name": "OpenAI: GPT-4o-mini",
        "context_length": 128000,
        "pricing": {"prompt": "0.00000015", "completion": "0.0000006", "request": "0", "image": "0"},
        "top_provider": {"context_length": 128000, "max_completion_tokens": 16384},
    }
    return json.dumps({"data": [entry]}, separators=(",", ":"))


def _quoted(text: str) -> str:
    # nginx single-quoted strings: only the quote and the backslash need escaping. `$` would start a
    # variable; none of the bodies contains one (checked).
    assert "$" not in text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def write_config(directory: Path, port: int) -> Path:
    """Write nginx.conf (one worker, keep-alive without limits, no access log) into `directory`."""
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi", "www/_bench"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    # The stream is longer than an nginx config token may be, so it is a file (read from the page cache;
    # nginx's static handler refuses POST with 405, which `error_page 405 =200 $uri` turns into the file).
    (directory / "www/_bench/sse").write_text(stream_body())
    conf = directory / "nginx.conf"
    conf.write_text(
        f"""
daemon off;
master_process on;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    client_body_buffer_size 1m;
    sendfile on;
    open_file_cache max=16 inactive=1h;
    open_file_cache_valid 1h;
    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {directory}/www;
        location = /v1/chat/completions {{
            if ($http_accept ~* "event-stream") {{ rewrite ^ /_bench/sse last; }}
            rewrite ^ /_bench/json last;
        }}
        location = /sse/v1/chat/completions {{ rewrite ^ /_bench/sse last; }}
        location = /_bench/json {{ internal; default_type application/json; return 200 {_quoted(completion_body())}; }}
        location = /_bench/sse {{
            internal;
            default_type text/event-stream;
            error_page 405 =200 $uri;
        }}
        location ~ ^(/sse)?/v1/models$ {{ default_type application/json; return 200 {_quoted(models_body())}; }}
    }}
}}
"""
    )
    return conf
