"""What would an optimisation buy? Measured on the real app before anyone edits the server.

`serve` runs Wattfare's own ASGI app (`create_app` tuned as `wattfare serve` runs it, same uvicorn
options) with benchmark-only substitutions switched on by flags:

    --client httptools   the upstream is `RawUpstream` below (asyncio Protocol + httptools, the parser
                         uvicorn already uses) instead of Wattfare's aiohttp client; a prototype: no
                         timeouts, no TLS, no proxy support
    --access-log         uvicorn's access log on (off in `wattfare serve` unless WATTFARE_ACCESS_LOG=1)
    --memory-store       the same SQLite store and statements on an in-memory database: metering with its
                         durable-write costs taken away (an upper bound of what batching them could buy)

The first round of proposals measured here (cached price rates, checkpoints off the request path,
gc.freeze, no access log, and the httpx -> aiohttp client) has shipped; PROFILE.md keeps their table.

`compare` starts the nginx stand-in and one server per cumulative variant (shipped `wattfare serve`, then
each substitution added in turn), measures them in interleaved rounds (CPU per request at c=32 and c=1,
req/s, added latency), and writes benchmarks/results/whatif.json.

    .venv/bin/python benchmarks/whatif.py compare [--rounds 3 --seconds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


# ---------------------------------------------------------------- a minimal HTTP/1.1 client on httptools


class _Connection(asyncio.Protocol):
    """One keep-alive connection; httptools parses the responses, body parts go to a queue."""

    def __init__(self, pool: list[_Connection]) -> None:
        import httptools

        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.headers: dict[str, str] = {}
        self.head: asyncio.Future[None] | None = None
        self.parts: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        self.complete = False
        self.reusable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except Exception as exc:
            self.reusable = False
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        if not self.complete:
            self._fail(exc or ConnectionError("upstream closed the connection"))

    def _fail(self, exc: BaseException) -> None:
        if self.head is not None and not self.head.done():
            self.head.set_exception(exc)
        else:
            self.parts.put_nowait(exc)

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.reusable = self.parser.should_keep_alive()
        if self.head is not None and not self.head.done():
            self.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.parts.put_nowait(bytes(body))

    def on_message_complete(self) -> None:
        self.complete = True
        self.parts.put_nowait(None)

    async def request(self, data: bytes) -> int:
        self.headers = {}
        self.complete = False
        self.head = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(data)
        await self.head
        return int(self.parser.get_status_code())

    def release(self) -> None:
        if self.complete and self.reusable and self.transport is not None and not self.transport.is_closing():
            self.pool.append(self)
        elif self.transport is not None:
            self.transport.close()


class _Chunks:
    def __init__(self, connection: _Connection) -> None:
        self._connection = connection
        self._done = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        part = await self._connection.parts.get()
        if part is None:
            await self.aclose()
            raise StopAsyncIteration
        if isinstance(part, BaseException):
            await self.aclose()
            from wattfare.server.upstream.openai_compatible import UpstreamStreamBrokenError

            raise UpstreamStreamBrokenError(f"the upstream stream broke: {part!r}") from part
        return part

    async def aclose(self) -> None:
        if not self._done:
            self._done = True
            self._connection.release()


class RawUpstream:
    """An OpenAI-compatible upstream over `_Connection`s; `list_models` (rare) still goes through httpx."""

    name = "openai-compatible"

    def __init__(self, base_url: str, api_key: str | None) -> None:
        from wattfare.server.upstream.openai_compatible import OpenAICompatibleUpstream

        self._models = OpenAICompatibleUpstream(base_url, api_key)
        authority = base_url.split("//", 1)[1].split("/", 1)[0]
        self._host, _, port = authority.partition(":")
        self._port = int(port or 80)
        self._path = "/" + base_url.split("//", 1)[1].split("/", 1)[1].rstrip("/") + "/chat/completions"
        self._head = f"POST {self._path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n"
        self._head += "X-Title: Wattfare\r\n"
        if api_key:
            self._head += f"Authorization: Bearer {api_key}\r\n"
        self._idle: list[_Connection] = []

    async def list_models(self) -> list[dict[str, Any]]:
        return await self._models.list_models()

    async def list_embedding_models(self) -> list[dict[str, Any]]:
        return await self._models.list_embedding_models()

    async def embed(self, request: Any) -> Any:
        return await self._models.embed(request)  # embeddings are off the measured path: through aiohttp

    async def send(self, request: Any) -> Any:
        from wattfare.server.upstream.base import UpstreamResponse, UpstreamUnavailableError

        head = self._head
        if request.stream:
            head += "Accept: text/event-stream\r\nAccept-Encoding: identity\r\n"
        data = f"{head}Content-Length: {len(request.body)}\r\n\r\n".encode() + request.body
        connection = None
        while self._idle:
            candidate = self._idle.pop()
            if candidate.transport is not None and not candidate.transport.is_closing():
                connection = candidate
                break
        try:
            if connection is None:
                _, connection = await asyncio.get_running_loop().create_connection(
                    lambda: _Connection(self._idle), self._host, self._port
                )
            status = await connection.request(data)
        except (OSError, ConnectionError) as exc:
            raise UpstreamUnavailableError(f"could not reach the upstream: {exc!r}", timed_out=False) from exc
        kept = {k: v for k, v in connection.headers.items() if k in ("content-type", "retry-after", "x-generation-id")}
        if request.stream and status == 200:
            return UpstreamResponse(status=200, headers=kept, chunks=_Chunks(connection))
        parts: list[bytes] = []
        while (part := await connection.parts.get()) is not None:
            if isinstance(part, BaseException):
                raise UpstreamUnavailableError(f"the answer broke off: {part!r}", timed_out=False) from part
            parts.append(part)
        connection.release()
        return UpstreamResponse(status=status, headers=kept, body=b"".join(parts))

    async def aclose(self) -> None:
        for connection in self._idle:
            if connection.transport is not None:
                connection.transport.close()
        await self._models.aclose()


# ---------------------------------------------------------------- serve


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from wattfare.server.app import create_app, tuned_for_serving
    from wattfare.server.services import build_upstreams
    from wattfare.server.settings import Settings
    from wattfare.server.store.records import Mode
    from wattfare.server.upstream.base import Upstream

    settings = Settings.from_env()
    upstreams: dict[Mode, Upstream] = build_upstreams(settings)
    if args.client == "httptools":
        raw = RawUpstream(settings.upstream_url, settings.upstream_key)
        upstreams = {mode: raw if u.name == "openai-compatible" else u for mode, u in upstreams.items()}
    store = None
    if args.memory_store:
        # The same store and SQL, in memory: no WAL page writes, no file locks, no checkpoints. What the
        # metering writes would cost if they were batched out of the request path (e.g. budget leases).
        from wattfare.server.store.sqlite import SQLiteStore

        store = SQLiteStore(":memory:")
        source = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"))
        source.backup(store._db)  # pyright: ignore[reportPrivateUsage]  # the provisioned app and its keys
        source.close()
    app = tuned_for_serving(create_app(settings, store=store, upstreams=upstreams))
    if args.server == "granian":
        serve_with_granian(app, args.host, args.port)
        return
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning" if not args.access_log else "info",
        access_log=args.access_log,
        proxy_headers=True,
        server_header=False,
    )


def serve_with_granian(app: Any, host: str, port: int) -> None:
    """Serve an ASGI app with Granian (Rust HTTP server) in this process, on uvloop as uvicorn would run it."""
    import uvloop
    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server.embed import Server as Granian

    server = Granian(app, address=host, port=port, interface=Interfaces.ASGI, log_level=LogLevels.warning)
    uvloop.run(server.serve())


# ---------------------------------------------------------------- compare

ALL_PROPOSALS = ["--client", "httptools", "--memory-store"]
VARIANTS: list[tuple[str, list[str] | None]] = [
    ("shipped (wattfare serve, uvicorn)", None),
    ("same app via this launcher (uvicorn)", ["--client", "shipped"]),
    ("same app on granian", ["--client", "shipped", "--server", "granian"]),
    ("+ metering writes in memory (granian)", ["--client", "shipped", "--server", "granian", "--memory-store"]),
    ("bare pass-through, uvicorn (the floor)", ["bare", "--client", "wattfare"]),
    ("bare pass-through, granian", ["bare", "--client", "wattfare", "--server", "granian"]),
]


def start_whatif(tmp: Path, name: str, upstream: str, flags: list[str]) -> tuple[Any, int, str]:
    """Start `whatif.py serve` with `flags` over a fresh provisioned SQLite file: (server, port, secret key)."""
    from processes import Server, free_port
    from servers import RETRY, child_env, probe_json, provision_wattfare

    port = free_port()
    db = tmp / f"{name}.db"
    secret = provision_wattfare(db, "1000000")
    env = child_env(
        WATTFARE_DATABASE_URL=f"sqlite:///{db}",
        WATTFARE_UPSTREAM="openai-compatible",
        WATTFARE_UPSTREAM_URL=upstream,
        WATTFARE_UPSTREAM_KEY="bench-upstream-key",
        WATTFARE_TEST_UPSTREAM="live",
        WATTFARE_TEST_DEFAULT_CAP_USD="1000000",
    )
    command = [sys.executable, str(HERE / "whatif.py"), "serve", "--port", str(port), *flags]
    server = Server(name, command, tmp / f"{name}.log", env=env, cwd=tmp)
    server.start()
    headers = {"Authorization": f"Bearer {secret}", "Wattfare-User": "bench-user"}
    server.wait_ready(lambda: probe_json(port, "/api/v1/chat/completions", headers), 60, RETRY)
    return server, port, secret


def compare(args: argparse.Namespace) -> None:
    import standin
    from load import Target, measure_ttfb, run_wrk, wrk_script
    from processes import Server, free_port, stop_all
    from servers import RETRY, child_env, probe_json, start_nginx, start_wattfare

    tmp = Path(tempfile.mkdtemp(prefix="wattfare-whatif-"))
    tmp.chmod(0o755)
    servers: dict[str, tuple[Server, Target]] = {}
    rows: dict[str, dict[str, list[float]]] = {}
    try:
        _, nginx_port = start_nginx(tmp)
        upstream = f"http://127.0.0.1:{nginx_port}/v1"
        direct = Target("direct", nginx_port, "/v1/chat/completions", standin.MODEL, standin.MODEL)
        for index, (label, flags) in enumerate(VARIANTS):
            if flags is None:
                server, port, secret = start_wattfare(tmp, f"v{index}", upstream, 1, None)
            elif flags[0] == "bare":
                port = free_port()
                command = [sys.executable, str(HERE / "bare_proxy.py"), "--port", str(port), "--upstream", upstream]
                server = Server(f"v{index}", [*command, *flags[1:]], tmp / f"v{index}.log", env=child_env())
                server.start()
                server.wait_ready(lambda p=port: probe_json(p, "/v1/chat/completions", {}), 60, RETRY)
                secret = ""
            else:
                server, port, secret = start_whatif(tmp, f"v{index}", upstream, flags)
            target = Target(
                f"v{index}",
                port,
                "/api/v1/chat/completions" if secret else "/v1/chat/completions",
                standin.MODEL,
                standin.MODEL,
                headers={"Authorization": f"Bearer {secret}"} if secret else {},
                user_header="Wattfare-User" if secret else None,
            )
            servers[label] = (server, target)
        scripts: dict[tuple[str, bool, int], Path] = {}

        def measure(server: Server | None, target: Target, *, stream: bool, users: int, connections: int) -> Any:
            key = (target.name, stream, users)
            if key not in scripts:
                scripts[key] = tmp / f"{target.name}-{stream}-{users}.lua"
                scripts[key].write_text(wrk_script(target, stream=stream, users=users))
            before = server.cpu() if server else 0.0
            result = run_wrk(
                scripts[key],
                f"http://127.0.0.1:{target.port}{target.path}",
                connections=connections,
                seconds=args.seconds,
                threads=1 if connections == 1 else 2,
            )
            cpu = (server.cpu() - before) if server else 0.0
            return result, 1000 * cpu / max(1, result.requests)

        for server, target in servers.values():  # warm-up, and every spread user connected
            measure(server, target, stream=False, users=1000, connections=8)
        for rnd in range(args.rounds):
            order = list(servers.items())
            order = order[rnd % len(order) :] + order[: rnd % len(order)]
            direct_c1, _ = measure(None, direct, stream=False, users=1, connections=1)
            for label, (server, target) in order:
                row = rows.setdefault(label, {})
                c32, cpu32 = measure(server, target, stream=False, users=1000, connections=32)
                s32, scpu32 = measure(server, target, stream=True, users=1000, connections=32)
                c1, cpu1 = measure(server, target, stream=False, users=1, connections=1)
                for name, value in (
                    ("cpu_ms_c32", cpu32),
                    ("rps_c32", c32.rps),
                    ("stream_cpu_ms_c32", scpu32),
                    ("stream_rps_c32", s32.rps),
                    ("cpu_ms_c1", cpu1),
                    ("added_p50_ms_c1", c1.p50_ms - direct_c1.p50_ms),
                    ("added_p99_ms_c1", c1.p99_ms - direct_c1.p99_ms),
                ):
                    row.setdefault(name, []).append(value)
                print(
                    f"round {rnd + 1} {label:<36} c32 {c32.rps:6.0f} req/s {cpu32:6.3f} ms CPU/req | "
                    f"stream {s32.rps:6.0f} req/s {scpu32:6.3f} ms | c1 {cpu1:6.3f} ms CPU, "
                    f"+{c1.p50_ms - direct_c1.p50_ms:.2f} ms p50",
                    flush=True,
                )
            ttfb = measure_ttfb([direct] + [t for _, t in servers.values()], args.ttfb_requests)
            for label, (_, target) in servers.items():
                rows[label].setdefault("added_ttfb_p50_ms", []).append(
                    ttfb[target.name].ttfb_p50_ms - ttfb["direct"].ttfb_p50_ms
                )
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {label: {k: statistics.median(v) for k, v in row.items()} for label, row in rows.items()}
    out = HERE / "results" / "whatif.json"
    out.write_text(
        json.dumps({"rounds": args.rounds, "seconds": args.seconds, "runs": rows, "median": summary}, indent=2) + "\n"
    )
    print(
        "\n| variant (cumulative) | CPU ms/req c=32 | req/s c=32 | stream CPU ms/req | stream req/s | CPU ms/req c=1 "
        "| added p50 / p99 ms c=1 | added TTFB p50 ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, m in summary.items():
        print(
            f"| {label} | {m['cpu_ms_c32']:.3f} | {m['rps_c32']:.0f} | {m['stream_cpu_ms_c32']:.3f} "
            f"| {m['stream_rps_c32']:.0f} | {m['cpu_ms_c1']:.3f} "
            f"| {m['added_p50_ms_c1']:.2f} / {m['added_p99_ms_c1']:.2f} | {m['added_ttfb_p50_ms']:.2f} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--client", choices=["shipped", "httptools"], default="shipped")
    s.add_argument("--access-log", action="store_true")
    s.add_argument("--memory-store", action="store_true")
    s.add_argument("--server", choices=["uvicorn", "granian"], default="uvicorn", help="the ASGI server")
    c = sub.add_parser("compare")
    c.add_argument("--rounds", type=int, default=3)
    c.add_argument("--seconds", type=float, default=4.0)
    c.add_argument("--ttfb-requests", type=int, default=100)
    args = parser.parse_args()
    if args.command == "serve":
        serve(args)
    else:
        compare(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
