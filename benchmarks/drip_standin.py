"""The slow stand-in upstream: nginx + njs dripping an OpenAI-wire SSE stream, a token every so often.

Like `standin.py` (whose bodies and model it reuses), nginx runs as a process of its own on a loopback
port, from a config written into the run's temp dir; the difference is the stream, which takes the time
a real model takes, so a proxy in front of it holds thousands of streams open at once:

    POST /v1/chat/completions          JSON (standin's completion) or, when Accept names text/event-stream,
                                       the dripped stream (drip_standin.js): the role chunk at once, then
                                       `tokens` content chunks of one token each, one every 1/`rate` s, then
                                       the finish chunk, a usage chunk and [DONE]
    POST /sse/v1/chat/completions      always the dripped stream (for clients that do not send that Accept)
    GET  /v1/models, /sse/v1/models    standin's OpenRouter-format model list pricing MODEL (Wattfare reads
                                       its prices at start-up)

The timers are njs's `setTimeout` (njs 0.7.9 streams with `r.send`); each stream costs nginx one pending
timer and one write per token, so the stand-in stays far from being the bottleneck (open_streams.py
measures its CPU and a direct run with the same number of streams).

    .venv/bin/python benchmarks/drip_standin.py [--tokens 200 --rate 20]   # serve until Ctrl-C
"""

from __future__ import annotations

import argparse
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import standin
from processes import Server, free_port, stop_all

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "drip_standin.js"
HELPER_SOURCE = HERE / "drip_standin.c"
NJS_MODULE = Path("/usr/lib/nginx/modules/ngx_http_js_module.so")
MODEL = standin.MODEL
TOKENS = 200
RATE = 20.0  # tokens per second
# Events of a dripped stream that carry no token: the role chunk, the finish chunk, the usage chunk, [DONE].
FRAMING_EVENTS = 4


def raise_open_files() -> int:
    """Lift this process's open-file limit to its hard limit (children inherit it); return the new limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _quoted(text: str) -> str:
    # nginx single-quoted strings: only the quote and the backslash need escaping; `$` would start a variable.
    assert "$" not in text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def write_config(directory: Path, port: int, tokens: int = TOKENS, rate: float = RATE) -> Path:
    """Write nginx.conf (one worker, njs loaded, room for 20,000 connections) into `directory`."""
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    # More connections than the process may open files would only earn a warning: stay within the limit.
    connections = min(20_000, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    interval_ms = max(1, round(1000 / rate))
    conf = directory / "nginx.conf"
    conf.write_text(
        f"""
load_module {NJS_MODULE};
daemon off;
master_process on;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/nginx-error.log warn;
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    client_body_buffer_size 1m;
    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    js_import drip from {SCRIPT};
    server {{
        listen 127.0.0.1:{port} backlog=8192;
        location = /v1/chat/completions {{
            if ($http_accept ~* "event-stream") {{ rewrite ^ /_drip/sse last; }}
            rewrite ^ /_drip/json last;
        }}
        location = /sse/v1/chat/completions {{ rewrite ^ /_drip/sse last; }}
        location = /_drip/json {{
            internal;
            default_type application/json;
            return 200 {_quoted(standin.completion_body())};
        }}
        location = /_drip/sse {{
            internal;
            set $drip_model "{MODEL}";
            set $drip_tokens {tokens};
            set $drip_interval_ms {interval_ms};
            set $drip_prompt_tokens {standin.PROMPT_TOKENS};
            # Without this nginx holds back writes smaller than 1460 bytes: no token would go out alone.
            postpone_output 0;
            js_content drip.stream;
        }}
        location ~ ^(/sse)?/v1/models$ {{ default_type application/json; return 200 {_quoted(standin.models_body())}; }}
    }}
}}
"""
    )
    return conf


def compiled_helper() -> Path:
    """drip_standin.c built into results/tmp/ (gitignored), again whenever the source is newer."""
    binary = HERE / "results" / "tmp" / "drip_standin"
    if not binary.exists() or binary.stat().st_mtime < HELPER_SOURCE.stat().st_mtime:
        binary.parent.mkdir(parents=True, exist_ok=True)
        command = ["gcc", "-O2", "-Wall", "-Wextra", "-o", str(binary), str(HELPER_SOURCE)]
        subprocess.run(command, check=True, capture_output=True, text=True)
    return binary


def command_line(kind: str, directory: Path, port: int, tokens: int, rate: float) -> list[str]:
    """The stand-in's command line: `c` (the compiled helper) or `njs` (nginx + drip_standin.js)."""
    directory.mkdir(parents=True, exist_ok=True)
    if kind == "njs":
        conf = write_config(directory, port, tokens, rate)
        return ["nginx", "-p", str(directory), "-c", str(conf), "-e", str(directory / "nginx-error.log")]
    completion, models = directory / "completion.json", directory / "models.json"
    completion.write_text(standin.completion_body())
    models.write_text(standin.models_body())
    interval_ms = max(1, round(1000 / rate))
    arguments = [port, tokens, interval_ms, MODEL, standin.PROMPT_TOKENS, completion, models]
    return [str(compiled_helper()), *(str(a) for a in arguments)]


def start(
    tmp: Path, tokens: int = TOKENS, rate: float = RATE, name: str = "drip", kind: str = "c"
) -> tuple[Server, int]:
    """Start a dripping stand-in under `tmp`/`name` (a process of its own, stopped by PID); return it and its port."""
    raise_open_files()
    port = free_port()
    server = Server(name, command_line(kind, tmp / name, port, tokens, rate), tmp / f"{name}.log")
    server.start()
    retry = (OSError, httpx.TransportError)
    server.wait_ready(lambda: httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200, 20, retry)
    return server, port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=TOKENS, help="content chunks (one token each) per stream")
    parser.add_argument("--rate", type=float, default=RATE, help="tokens per second per stream")
    parser.add_argument("--kind", choices=("c", "njs"), default="c", help="the compiled helper or nginx + njs")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `kill <pid>` still stops nginx (the finally below)
    tmp = Path(tempfile.mkdtemp(prefix="wattfare-drip-"))
    tmp.chmod(0o755)
    try:
        _, port = start(tmp, args.tokens, args.rate, kind=args.kind)
        url = f"http://127.0.0.1:{port}/sse/v1/chat/completions"
        print(f"dripping {args.tokens} tokens at {args.rate:g}/s: curl -N -X POST -d '{{}}' {url}", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        stop_all()


if __name__ == "__main__":
    raise SystemExit(main())
