"""Start Wattfare and the demo app side by side and print both URLs: what `make dev` runs.

    python examples/demo_app/run.py            # live keys: Connect opens Wattfare's consent popup
    python examples/demo_app/run.py --test     # test keys: Connect succeeds at once, no sign-in

Wattfare runs as `wattfare dev` (SQLite in .wattfare/, sandbox models unless a provider key is set) with
$5 of credits for every new account, so a newcomer can sign up in the popup and chat at once. The demo app
is registered once (keys in .wattfare/demo.env) with the demo's origin allowed. Ctrl-C stops both.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from wattfare.server.access.app_registration import register_app
from wattfare.server.access.keys import hash_key
from wattfare.server.settings import Settings
from wattfare.server.store import open_store

REPO = Path(__file__).resolve().parents[2]
DEMO_ENV = Path(".wattfare") / "demo.env"


def _read_env(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


async def demo_keys(database_url: str, origin: str) -> dict[str, str]:
    """The demo app's keys: reused while they still work, else a new app registered for `origin`."""
    store = open_store(database_url)
    try:
        await store.upgrade()
        known = _read_env(DEMO_ENV)
        if known.get("DEMO_ORIGIN") == origin and await store.find_secret_key(hash_key(known.get("LIVE_SECRET", ""))):
            return known
        made = await register_app(store, "Demo chat", Settings().default_test_cap)
        await store.set_app_origins(made.app.id, [origin])
        return {
            "DEMO_ORIGIN": origin,
            "APP_ID": made.app.id,
            "LIVE_SECRET": made.secret_keys["live"],
            "LIVE_PUBLISHABLE": made.publishable_keys["live"],
            "TEST_SECRET": made.secret_keys["test"],
            "TEST_PUBLISHABLE": made.publishable_keys["test"],
        }
    finally:
        await store.close()


def _wait_until_up(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited early (code {process.returncode})")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not start within 30 s")


def main(argv: list[str] | None = None) -> None:
    """Run both servers until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wattfare-port", type=int, default=8787)
    parser.add_argument("--demo-port", type=int, default=8000)
    parser.add_argument("--test", action="store_true", help="use the demo app's test keys (no consent popup)")
    args = parser.parse_args(argv)

    # Stopped like Ctrl-C when terminated, so both servers are stopped too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    wattfare_url = f"http://127.0.0.1:{args.wattfare_port}"
    demo_url = f"http://127.0.0.1:{args.demo_port}"
    env = dict(os.environ)
    env.setdefault("WATTFARE_SIGNUP_CREDITS_USD", "5")
    env.setdefault("WATTFARE_PUBLIC_URL", wattfare_url)
    wattfare = subprocess.Popen(
        [sys.executable, "-m", "wattfare.server.cli.main", "dev", "--port", str(args.wattfare_port)], env=env
    )
    demo: subprocess.Popen[bytes] | None = None
    try:
        _wait_until_up(f"{wattfare_url}/healthz", wattfare, "Wattfare")
        keys = asyncio.run(demo_keys(Settings.from_env(env).database_url, demo_url))
        DEMO_ENV.parent.mkdir(exist_ok=True)
        DEMO_ENV.write_text("".join(f"{name}={value}\n" for name, value in keys.items()))
        DEMO_ENV.chmod(0o600)
        mode = "TEST" if args.test else "LIVE"
        demo_env = env | {
            "WATTFARE_BASE_URL": wattfare_url,
            "WATTFARE_SECRET_KEY": keys[f"{mode}_SECRET"],
            "WATTFARE_PUBLISHABLE_KEY": keys[f"{mode}_PUBLISHABLE"],
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        }
        command = [sys.executable, "-m", "uvicorn", "examples.demo_app.app:create_app", "--factory"]
        command += ["--host", "127.0.0.1", "--port", str(args.demo_port), "--log-level", "warning"]
        demo = subprocess.Popen(
            command,
            env=demo_env,
            cwd=REPO,
        )
        _wait_until_up(demo_url, demo, "The demo app")
        how = "test keys: Connect succeeds at once" if args.test else "live keys: Connect opens the consent popup"
        print(
            f"\n  Wattfare   {wattfare_url}   (your account: {wattfare_url}/account, "
            f"developers: {wattfare_url}/developers)\n"
            f"  Demo app   {demo_url}   ({how}; new accounts get $5 of dev credits)\n\n"
            "  Press Ctrl-C to stop both.\n",
            flush=True,
        )
        while wattfare.poll() is None and demo.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for process in (demo, wattfare):
            if process is not None and process.poll() is None:
                process.terminate()  # both shut down gracefully on SIGTERM
        for process in (demo, wattfare):
            if process is not None:
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()


if __name__ == "__main__":
    main()
