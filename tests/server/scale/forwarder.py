"""A TCP forwarder put between Wattfare and PostgreSQL, to take the database away and bring it back.

Stopping it closes the listening socket and cuts every forwarded connection, which is what a database
crash or a network partition looks like from Wattfare: pooled connections break, new ones are refused.
Starting it again on the same port is the database coming back.
"""

from __future__ import annotations

import asyncio
import contextlib

from tests.support.wattfare_server import free_port

_CHUNK = 65536


class Forwarder:
    """Forwards 127.0.0.1:`port` to `target_host`:`target_port` while started (in the running event loop)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.connections = 0  # accepted since creation: shows that Wattfare reconnected
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Listen (again) on the same port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)

    async def stop(self) -> None:
        """Stop listening and cut every forwarded connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, upstream_writer}
        pipes = (
            asyncio.ensure_future(self._pipe(reader, upstream_writer)),
            asyncio.ensure_future(self._pipe(upstream_reader, writer)),
        )
        self._pipes.update(pipes)
        try:
            # Either side closing ends both: a half-open PostgreSQL connection is of no use to anyone.
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in pipes:
                pipe.cancel()
            for side in (writer, upstream_writer):
                side.transport.abort()
                self._writers.discard(side)
            self._pipes.difference_update(pipes)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(_CHUNK):
                writer.write(data)
                await writer.drain()
