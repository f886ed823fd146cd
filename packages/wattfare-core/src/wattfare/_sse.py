"""An incremental, I/O-free Server-Sent Events decoder (the WHATWG `text/event-stream` rules).

Feed it bytes as they arrive, split anywhere; it returns each event once its closing blank line is
in. Lines may end in `\\n`, `\\r\\n` or `\\r`; comment lines (`: ...`) are skipped; multi-line `data`
is joined with `\\n`. An event cut off by the end of the stream is never returned (per the spec),
so a truncated JSON payload can never reach a parser.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SSEDecoder", "ServerSentEvent"]

_LINE_ENDINGS = (b"\n", b"\r")


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event.

    Attributes:
        data: The event's data lines, joined with `\\n`.
        event: The `event:` field, or None for the default (`message`).
        id: The last event id seen so far in the stream, if any.
        retry: The `retry:` reconnection time in milliseconds, if this event set one.
    """

    data: str
    event: str | None = None
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Turns a byte stream into `ServerSentEvent`s, across arbitrary chunk boundaries.

    Example:
        >>> decoder = SSEDecoder()
        >>> decoder.feed(b"data: hel")
        []
        >>> decoder.feed(b"lo\\n\\n")
        [ServerSentEvent(data='hello', event=None, id=None, retry=None)]
    """

    def __init__(self) -> None:
        self._pending: list[bytes] = []  # an unterminated line, in pieces (joined once it ends)
        self._skip_lf = False  # the last piece ended in "\r": a "\n" next is part of that line ending
        self._started = False
        self._data: list[str] = []
        self._event: str | None = None
        self._retry: int | None = None
        self._last_id: str | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Add bytes; return the events they complete, in order."""
        if not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
                if not chunk:
                    return []
        if b"\n" not in chunk and b"\r" not in chunk:
            self._pending.append(chunk)
            return []
        if self._pending:
            self._pending.append(chunk)
            chunk = b"".join(self._pending)
            self._pending.clear()
        lines = chunk.splitlines(keepends=True)  # bytes.splitlines splits on exactly \n, \r\n and \r
        if not lines[-1].endswith(_LINE_ENDINGS):
            self._pending.append(lines.pop())
        self._skip_lf = chunk.endswith(b"\r")
        events: list[ServerSentEvent] = []
        for raw in lines:
            event = self._line(raw.rstrip(b"\r\n").decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not self._started:
            self._started = True
            line = line.removeprefix("\ufeff")
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._data:
            self._event = self._retry = None
            return None
        event = ServerSentEvent("\n".join(self._data), self._event or None, self._last_id, self._retry)
        self._data.clear()
        self._event = self._retry = None
        return event
