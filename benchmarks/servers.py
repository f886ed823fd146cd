"""The servers a benchmark run starts, each on 127.0.0.1 and stopped by PID (`processes.stop_all`).

nginx (the stand-in upstream), the bare pass-through, `wattfare serve` over a freshly provisioned SQLite
file, and the LiteLLM proxy (installed into its own virtualenv on first use).

Wattfare is provisioned and its command line written as the tests do it (`tests/support/wattfare_server.py`,
which imports no pytest); the process itself is a `processes.Server`, whose CPU and memory are measured.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import standin
from load import request_body
from processes import Server, free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LITELLM_VENV = HERE / ".venv-litellm"
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # for `tests.support`, imported where it is used
LITELLM_MASTER_KEY = "sk-bench-master"
RETRY = (OSError, httpx.TransportError)  # a server still starting refuses or drops connections


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WATTFARE_", "OPENROUTER_", "LITELLM_"))}
    env |= {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost", "PYTHONUNBUFFERED": "1"}
    return env | extra


# ---------------------------------------------------------------- the servers


def start_nginx(tmp: Path) -> tuple[Server, int]:
    port = free_port()
    conf = standin.write_config(tmp / "nginx", port)
    server = Server(
        "nginx",
        ["nginx", "-p", str(tmp / "nginx"), "-c", str(conf), "-e", str(tmp / "nginx" / "nginx-error.log")],
        tmp / "nginx.log",
    )
    server.start()
    server.wait_ready(lambda: httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200, 20, RETRY)
    return server, port


def start_bare(tmp: Path, upstream: str, client: str = "wattfare") -> tuple[Server, int]:
    port = free_port()
    command = [sys.executable, str(HERE / "bare_proxy.py"), "--port", str(port), "--upstream", upstream]
    command += ["--client", client]
    server = Server("bare", command, tmp / "bare.log", env=child_env())
    server.start()
    server.wait_ready(lambda: probe_json(port, "/v1/chat/completions", {}), 30, RETRY)
    return server, port


def provision_wattfare(db: Path, cap_usd: str) -> str:
    """Create an app (test keys only) in a fresh SQLite file and return its test secret key."""
    from tests.support.wattfare_server import provision

    return provision(db, "Benchmark app", cap_usd, modes=("test",)).secret_keys["test"]


def wattfare_env(database_url: str, port: int, upstream: str, cap_usd: str, **extra: str) -> dict[str, str]:
    """The environment of a benchmarked `wattfare serve`: the stand-in upstream, live in test mode, users auto-connected
    with `cap_usd` (so the benchmark never hits a cap)."""
    return child_env(
        WATTFARE_DATABASE_URL=database_url,
        WATTFARE_PUBLIC_URL=f"http://127.0.0.1:{port}",
        WATTFARE_UPSTREAM="openai-compatible",
        WATTFARE_UPSTREAM_URL=upstream,
        WATTFARE_UPSTREAM_KEY="bench-upstream-key",
        WATTFARE_TEST_UPSTREAM="live",
        WATTFARE_TEST_DEFAULT_CAP_USD=cap_usd,
        **extra,
    )


def start_wattfare(tmp: Path, name: str, upstream: str, workers: int, log_level: str | None) -> tuple[Server, int, str]:
    from tests.support.wattfare_server import serve_command

    port = free_port()
    db = tmp / f"{name}.db"
    cap = "1000000"  # test-mode users auto-connect with this cap: the benchmark never hits it
    secret = provision_wattfare(db, cap)
    env = wattfare_env(f"sqlite:///{db}", port, upstream, cap)
    if log_level:
        env["WATTFARE_LOG_LEVEL"] = log_level
    server = Server(name, serve_command(port, workers), tmp / f"{name}.log", env=env, cwd=tmp)
    server.start()
    headers = {"Authorization": f"Bearer {secret}", "Wattfare-User": "bench-user"}
    server.wait_ready(lambda: probe_json(port, "/api/v1/chat/completions", headers), 60, RETRY)
    return server, port, secret


def install_litellm(version: str, tmp: Path) -> str | None:
    """Make benchmarks/.venv-litellm hold `litellm[proxy]==version`; return why not, or None on success."""
    marker = LITELLM_VENV / f".installed-{version}"
    if marker.exists():
        return None
    log(f"installing litellm[proxy]=={version} into {LITELLM_VENV.relative_to(ROOT)} (first run only)")
    python = LITELLM_VENV / "bin" / "python"
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True, timeout=120)
        with (tmp / "litellm-install.log").open("wb") as out:
            subprocess.run(
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--disable-pip-version-check",
                    f"litellm[proxy]=={version}",
                ],
                check=True,
                timeout=900,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
    except (subprocess.SubprocessError, OSError) as exc:
        tail = (
            (tmp / "litellm-install.log").read_text(errors="replace")[-1500:]
            if (tmp / "litellm-install.log").exists()
            else ""
        )
        return f"could not install litellm[proxy]=={version}: {exc}\n{tail}"
    for old in LITELLM_VENV.glob(".installed-*"):
        old.unlink()
    marker.touch()
    return None


def start_litellm(tmp: Path, nginx_port: int) -> tuple[Server, int]:
    port = free_port()
    config = tmp / "litellm.yaml"
    # Two aliases of the same model: the stand-in picks the stream by path for clients that do not send
    # `Accept: text/event-stream`. `openai/` makes LiteLLM use its OpenAI-compatible client; the model
    # name is in LiteLLM's bundled cost map, so its cost tracking runs as in production.
    config.write_text(
        f"""model_list:
  - model_name: {standin.MODEL}
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:{nginx_port}/v1
      api_key: bench-upstream-key
  - model_name: {standin.MODEL}-sse
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:{nginx_port}/sse/v1
      api_key: bench-upstream-key
general_settings:
  master_key: {LITELLM_MASTER_KEY}
"""
    )
    # No DATABASE_URL: no database. The local cost map keeps start-up off the network.
    env = child_env(LITELLM_LOCAL_MODEL_COST_MAP="True")
    command = [str(LITELLM_VENV / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--num_workers", "1"]
    server = Server("litellm", command, tmp / "litellm.log", env=env, cwd=tmp)
    server.start()
    headers = {"Authorization": f"Bearer {LITELLM_MASTER_KEY}"}
    server.wait_ready(lambda: probe_json(port, "/v1/chat/completions", headers), 180, RETRY)
    return server, port


def probe_json(port: int, path: str, headers: dict[str, str]) -> bool:
    response = httpx.post(
        f"http://127.0.0.1:{port}{path}",
        content=request_body(standin.MODEL, stream=False),
        headers={"content-type": "application/json", **headers},
        timeout=10,
    )
    if response.status_code >= 500 or response.status_code == 404:
        return False
    if response.status_code != 200:
        raise RuntimeError(f"probe of :{port}{path} answered {response.status_code}: {response.text[:500]}")
    return True
