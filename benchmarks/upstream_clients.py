"""CPU per upstream call of candidate HTTP clients, against the nginx stand-in, on uvloop.

Wattfare's upstream client is httpx; this measures what one POST costs in the client alone (no server
framework around it) for httpx (the way Wattfare calls it), httpcore's pool directly, aiohttp, and a
minimal keep-alive client on asyncio streams (the floor for Python), at concurrency 1 and 32.

It needs aiohttp, which the main virtualenv does not have, so run it with the LiteLLM venv's Python
(it has httpx, aiohttp and uvloop): `benchmarks/.venv-litellm/bin/python benchmarks/upstream_clients.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import standin
from processes import Server, free_port, stop_all

BODY = json.dumps(
    {"model": standin.MODEL, "messages": [{"role": "user", "content": "Say hello in ten words."}], "max_tokens": 64}
).encode()
HEADERS = {"content-type": "application/json", "authorization": "Bearer bench", "x-title": "Wattfare"}

Call = Callable[[], Awaitable[bytes]]


async def httpx_client(url: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import httpx

    client = httpx.AsyncClient(
        timeout=httpx.Timeout(300.0, connect=10.0),
        limits=httpx.Limits(max_connections=512, max_keepalive_connections=128, keepalive_expiry=30.0),
    )

    async def call() -> bytes:
        # As OpenAICompatibleUpstream.send does it: build, send streaming, read, close.
        request = client.build_request("POST", url, content=BODY, headers=dict(HEADERS))
        response = await client.send(request, stream=True)
        try:
            return await response.aread()
        finally:
            await response.aclose()

    return call, client.aclose


async def httpcore_pool(url: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import httpcore

    pool = httpcore.AsyncConnectionPool(max_connections=512, max_keepalive_connections=128, keepalive_expiry=30.0)
    headers = list(HEADERS.items())

    async def call() -> bytes:
        response = await pool.request("POST", url, headers=headers, content=BODY)
        return response.content

    return call, pool.aclose


async def aiohttp_client(url: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import aiohttp

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=512, keepalive_timeout=30), timeout=aiohttp.ClientTimeout(total=300)
    )

    async def call() -> bytes:
        async with session.post(url, data=BODY, headers=HEADERS) as response:
            return await response.read()

    return call, session.close


async def raw_client(url: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    """Keep-alive HTTP/1.1 over asyncio streams; Content-Length bodies only (what the stand-in sends)."""
    host_port = url.split("//", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    path = "/" + url.split("//", 1)[1].split("/", 1)[1]
    head = f"POST {path} HTTP/1.1\r\nHost: {host_port}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())
    request = (head + f"content-length: {len(BODY)}\r\n\r\n").encode() + BODY
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def call() -> bytes:
        reader, writer = idle.pop() if idle else await asyncio.open_connection(host, int(port))
        writer.write(request)
        header = await reader.readuntil(b"\r\n\r\n")
        start = header.lower().index(b"content-length:") + 15
        length = int(header[start : header.index(b"\r\n", start)])
        body = await reader.readexactly(length)
        idle.append((reader, writer))
        return body

    async def close() -> None:
        for _, writer in idle:
            writer.close()

    return call, close


CLIENTS = {"httpx (as Wattfare)": httpx_client, "httpcore pool": httpcore_pool, "aiohttp": aiohttp_client}
CLIENTS["asyncio streams (floor)"] = raw_client


async def measure(
    make: Callable[[str], Awaitable[tuple[Call, Callable[[], Awaitable[None]]]]], url: str, n: int, c: int
) -> dict[str, float]:
    call, close = await make(url)
    try:
        for _ in range(50):
            await call()
        per_worker = n // c

        async def worker() -> None:
            for _ in range(per_worker):
                await call()

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(c)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await close()
    done = per_worker * c
    return {"us_cpu_per_call": 1e6 * cpu / done, "calls_per_s": done / wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "upstream_clients.json"
    )
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        uvloop = None
    available = {}
    for name, make in CLIENTS.items():
        module = {"httpx (as Wattfare)": "httpx", "httpcore pool": "httpcore", "aiohttp": "aiohttp"}.get(name)
        try:
            if module:
                __import__(module)
            available[name] = make
        except ImportError:
            print(f"skipping {name}: {module} is not installed")
    tmp = Path(tempfile.mkdtemp(prefix="wattfare-clients-"))
    tmp.chmod(0o755)
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    try:
        port = free_port()
        conf = standin.write_config(tmp / "nginx", port)
        nginx = Server(
            "nginx",
            ["nginx", "-p", str(tmp / "nginx"), "-c", str(conf), "-e", str(tmp / "nginx/err.log")],
            tmp / "nginx.log",
        )
        nginx.start()
        nginx.wait_ready(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models").status == 200, 20)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        run = uvloop.run if uvloop else asyncio.run
        for _ in range(args.rounds):
            for name, make in available.items():
                for c in (1, 32):
                    r = run(measure(make, url, args.calls, c))
                    results.setdefault(name, {}).setdefault(f"c{c}", []).append(r)
                    print(
                        f"{name:<26} c={c:<3} {r['us_cpu_per_call']:7.1f} µs CPU/call  {r['calls_per_s']:8.0f} calls/s",
                        flush=True,
                    )
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {
        name: {c: min(r["us_cpu_per_call"] for r in rs) for c, rs in by_c.items()} for name, by_c in results.items()
    }
    print("\nbest of rounds, µs CPU per call:", json.dumps(summary, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"loop": "uvloop" if uvloop else "asyncio", "runs": results, "best": summary}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
