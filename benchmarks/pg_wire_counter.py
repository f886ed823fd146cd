"""A TCP relay between a PostgreSQL client and the server that counts round trips and statements from outside.

The relay reads the frontend half of the PostgreSQL v3 protocol (client -> server) just enough to know what
was asked: Parse (its SQL text, kept per connection under its statement name), Bind (which statement), Execute,
a simple Query (its text), Sync and Flush. The backend half is forwarded unread: all the relay needs from it is
*that* it answered. A round trip is one turn-around: the client sent something, then the server's answer came
back. asyncpg never pipelines across a Sync, so each turn-around is one wait of the client on the database.

Turn-arounds are grouped into *units*, one per thing the client did on the database:

- a transaction: from the exchange that sends `BEGIN` to the one that sends `COMMIT` or `ROLLBACK`;
- otherwise one exchange (a single statement), with a preceding prepare-only exchange (Parse/Describe, sent
  the first time a connection runs a statement) attached to it.

Each unit records its statements' texts, in order: the SQL the client sent, never a parameter (parameters
travel in Bind messages, which the relay does not decode). The relay asks connecting clients not to use TLS
(it answers an SSLRequest or GSSENCRequest with `N` itself), so it can read their messages.

The relay runs on its own event loop in a thread (`WireCounter.start`); the caller reads the units recorded so
far with `units()` and compares two periods. `tally` sorts units into the Wattfare store's calls (`CALLS`: budget
read, reserve, settle, key lookup, ...) by a piece of SQL only that call sends, and counts each call's round trips
with the pool's reset query that follows it on the same connection (asyncpg sends one on every release).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104
_CANCEL_REQUEST = 80877102
_TRANSACTION_START = ("BEGIN", "START TRANSACTION")
_TRANSACTION_END = ("COMMIT", "ROLLBACK", "END", "ABORT")
_TRANSACTION_CONTROL = (*_TRANSACTION_START, *_TRANSACTION_END, "SAVEPOINT", "RELEASE")
TEXT_CHARS = 80  # the part of a statement's text a unit keeps


@dataclass
class Unit:
    """One thing a client did on the database: a transaction, or a single statement outside one.

    Attributes:
        connection: which relayed connection (a number, in order of connecting).
        round_trips: turn-arounds (client sent, then server answered) the unit took.
        statements: the SQL of each statement executed (Execute or simple Query), in order, on one line.
        prepares: Parse messages sent (a statement prepared on this connection for the first time).
        ended: `time.monotonic()` when its last answer arrived.
    """

    connection: int
    round_trips: int = 0
    statements: list[str] = field(default_factory=list)
    prepares: int = 0
    ended: float = 0.0

    @property
    def transaction_control(self) -> int:
        """BEGIN, COMMIT, ROLLBACK, SAVEPOINT and RELEASE statements."""
        return sum(is_transaction_control(s) for s in self.statements)

    @property
    def work_statements(self) -> list[str]:
        """The statements that are not transaction control."""
        return [s for s in self.statements if not is_transaction_control(s)]


def is_transaction_control(text: str) -> bool:
    return text.lstrip().upper().startswith(_TRANSACTION_CONTROL)


def one_line(text: str) -> str:
    """A statement's text on one line."""
    return " ".join(text.split())


def short(text: str) -> str:
    """A statement's text on one line, cut to TEXT_CHARS characters (what reports show)."""
    return one_line(text)[:TEXT_CHARS]


class _Connection:
    """The frontend parser and unit grouping of one relayed connection."""

    def __init__(self, number: int, sink: WireCounter) -> None:
        self.number = number
        self.sink = sink
        self.buffer = b""
        self.started = False  # past the startup message (the only untyped one)
        self.prepared: dict[str, str] = {}  # statement name -> SQL text, as this connection parsed them
        self.portals: dict[str, str] = {}  # portal name -> SQL text of the statement bound to it
        self.pending_statements: list[str] = []  # executed since the last answer
        self.pending_prepares = 0
        self.sent = False  # the client sent a message the server has not answered yet
        self.unit: Unit | None = None  # the unit in progress (a transaction, or a prepare awaiting its run)
        self.in_transaction = False

    def client_bytes(self, data: bytes) -> tuple[bytes, bytes]:
        """Parse what the client sent: (what to answer it directly, what to forward to the server).

        Only whole messages are forwarded (a partial one waits in the buffer for the rest), and never a TLS
        request, which the relay itself refuses.
        """
        self.buffer += data
        reply = forward = b""
        while True:
            if not self.started:
                if len(self.buffer) < 8:
                    break
                length, code = struct.unpack("!ii", self.buffer[:8])
                if len(self.buffer) < length:
                    break
                message, self.buffer = self.buffer[:length], self.buffer[length:]
                if code in (_SSL_REQUEST, _GSSENC_REQUEST):
                    reply += b"N"  # no TLS: the startup message follows in the clear
                    continue
                forward += message
                self.started = code != _CANCEL_REQUEST
                continue
            if len(self.buffer) < 5:
                break
            kind = self.buffer[:1]
            (length,) = struct.unpack("!i", self.buffer[1:5])
            if len(self.buffer) < 1 + length:
                break
            message, self.buffer = self.buffer[: 1 + length], self.buffer[1 + length :]
            forward += message
            self._message(kind, message[5:])
        return reply, forward

    def _message(self, kind: bytes, body: bytes) -> None:
        if kind == b"P":  # Parse: statement name, query text, parameter types
            name, rest = _cstring(body)
            text, _ = _cstring(rest)
            self.prepared[name] = text
            self.pending_prepares += 1
        elif kind == b"B":  # Bind: portal name, statement name, then the parameters (never read)
            portal, rest = _cstring(body)
            statement, _ = _cstring(rest)
            self.portals[portal] = self.prepared.get(statement, f"<unknown statement {statement!r}>")
        elif kind == b"E":  # Execute: portal name, row limit
            portal, _ = _cstring(body)
            self.pending_statements.append(one_line(self.portals.get(portal, f"<unknown portal {portal!r}>")))
        elif kind == b"Q":  # a simple query: its text (asyncpg sends only parameterless SQL this way)
            text, _ = _cstring(body)
            self.pending_statements.append(one_line(text))
        elif kind == b"X":  # Terminate: no answer comes
            return
        self.sent = True

    def server_answered(self) -> None:
        """The server sent something: if the client was waiting, that closes one exchange."""
        if not self.sent:
            return  # unprompted (ParameterStatus, a notification, the rest of an answer already counted)
        self.sent = False
        statements, self.pending_statements = self.pending_statements, []
        prepares, self.pending_prepares = self.pending_prepares, 0
        unit = self.unit or Unit(self.number)
        unit.round_trips += 1
        unit.prepares += prepares
        unit.statements += statements
        unit.ended = time.monotonic()
        if any(s.upper().startswith(_TRANSACTION_START) for s in statements):
            self.in_transaction = True
        if any(s.upper().startswith(_TRANSACTION_END) for s in statements):
            self.in_transaction = False
        if self.in_transaction or not statements:
            self.unit = unit  # a transaction goes on; a prepare-only exchange waits for the run it prepares
            return
        self.unit = None
        self.sink.record(unit)


def _cstring(data: bytes) -> tuple[str, bytes]:
    end = data.index(b"\0")
    return data[:end].decode(errors="replace"), data[end + 1 :]


class WireCounter:
    """The relay: listens on 127.0.0.1 (a free port), forwards to `upstream`, records `Unit`s."""

    def __init__(self, upstream_host: str = "127.0.0.1", upstream_port: int = 5432) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._units: list[Unit] = []
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def record(self, unit: Unit) -> None:
        with self._lock:
            self._units.append(unit)

    def units(self) -> list[Unit]:
        """Every unit completed so far, in order of completion (slice two readings' lengths to compare)."""
        with self._lock:
            return list(self._units)

    def start(self) -> int:
        """Start relaying in a thread of its own; return the port clients should connect to."""
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="pg-wire-counter", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self.port

    def stop(self) -> None:
        """Close the listener and every relayed connection, then end the thread."""
        loop, server = self._loop, self._server
        if loop is None or server is None:
            return

        async def shutdown() -> None:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        connection = _Connection(next(self._numbers), self)
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.close()
            self._tasks.discard(task)  # type: ignore[arg-type]
            return
        try:
            await asyncio.gather(
                self._client_to_server(connection, client_reader, client_writer, server_writer),
                self._server_to_client(connection, server_reader, client_writer),
            )
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            for writer in (client_writer, server_writer):
                with contextlib.suppress(Exception):
                    writer.close()
            self._tasks.discard(task)  # type: ignore[arg-type]

    @staticmethod
    async def _client_to_server(
        connection: _Connection,
        reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        server_writer: asyncio.StreamWriter,
    ) -> None:
        while data := await reader.read(65536):
            # Parsed before it is forwarded: the answer cannot come back before the exchange is known.
            reply, forward = connection.client_bytes(data)
            if reply:
                client_writer.write(reply)
                await client_writer.drain()
            if forward:
                server_writer.write(forward)
                await server_writer.drain()
        server_writer.close()

    @staticmethod
    async def _server_to_client(
        connection: _Connection, reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        while data := await reader.read(65536):
            connection.server_answered()
            client_writer.write(data)
            await client_writer.drain()
        client_writer.close()


# ---------------------------------------------------------------- Wattfare's database calls, told apart by their SQL


# Each call of the server's store, by a piece of SQL only it sends (matched in order; the first match names it).
CALLS: tuple[tuple[str, str], ...] = (
    ("pool reset", "SELECT pg_advisory_unlock_all()"),
    ("reserve", "INSERT INTO holds "),
    ("settle", "DELETE FROM holds WHERE id"),
    ("settle", "pg_one_trip_settle("),
    ("settle", "wattfare_settle_usual("),
    ("budget read", "LEFT JOIN counters k ON"),
    ("key lookup (cache miss)", "FROM api_keys k"),
    ("new user: connection created", "INSERT INTO connections "),
    ("new user: requested cap read", "FROM requested_caps"),
    ("new user: connection read", "updated_at FROM connections WHERE app_id"),
    ("revocation poll (streams)", "SELECT id, state FROM connections WHERE id IN"),
    ("webhook/alert deliverer poll", "webhook_deliveries SET claimed_until"),
    ("webhook/alert deliverer poll", "member_alerts SET claimed_until"),
)


def call_of(unit: Unit) -> str:
    """Which call of the server's store a unit is, from its statements' text."""
    if unit.statements and unit.statements[0].startswith(CALLS[0][1]):
        return CALLS[0][0]
    text = " | ".join(unit.statements)
    for name, marker in CALLS[1:]:
        if marker in text:
            return name
    first = next(iter(unit.work_statements), "(none)")
    return f"other: {short(first)[:60]}"


def tally(units: list[Unit]) -> dict[str, dict[str, Any]]:
    """Per database call: how many, their round trips (the pool's reset after each counted with it), statements."""
    calls: dict[str, dict[str, Any]] = {}
    last_call: dict[int, str] = {}  # per connection: the call a following pool reset belongs to
    for unit in units:
        call = call_of(unit)
        if call == "pool reset":
            owner = last_call.get(unit.connection, "other: (reset of an unseen call)")
            calls.setdefault(owner, empty_tally())["reset_round_trips"] += unit.round_trips
            continue
        last_call[unit.connection] = call
        entry = calls.setdefault(call, empty_tally())
        entry["calls"] += 1
        entry["round_trips"] += unit.round_trips
        entry["statements"] += len(unit.work_statements)
        entry["transaction_control"] += unit.transaction_control
        entry["prepares"] += unit.prepares
        entry["sequences"][" | ".join(short(s) for s in unit.statements)] += 1
    return calls


def empty_tally() -> dict[str, Any]:
    return {
        "calls": 0,
        "round_trips": 0,
        "reset_round_trips": 0,
        "statements": 0,
        "transaction_control": 0,
        "prepares": 0,
        "sequences": Counter(),
    }
