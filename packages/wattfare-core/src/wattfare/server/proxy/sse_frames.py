"""Splitting an upstream's SSE byte stream into whole events, keeping every byte as it came.

The proxy forwards events untouched; it only needs to know where one ends and to peek at its data.
"""

from __future__ import annotations

_SEPARATORS = (b"\r\n\r\n", b"\n\n", b"\r\r")


class SSEFrames:
    """Incremental splitter: feed raw bytes, get complete events (each with its terminating blank line)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return the events they complete."""
        buffer = self._buffer + data if self._buffer else data
        if b"\r" not in buffer:
            # The usual wire (every provider we know ends lines with LF): one split instead of a scan per
            # separator per event, which is quadratic in a read that carries a whole stream.
            *events, self._buffer = buffer.split(b"\n\n")
            return [event + b"\n\n" for event in events]
        events: list[bytes] = []
        start = 0
        while True:
            end = -1
            width = 0
            for separator in _SEPARATORS:
                found = buffer.find(separator, start)
                if found != -1 and (end == -1 or found < end):
                    end, width = found, len(separator)
            if end == -1:
                break
            events.append(buffer[start : end + width])
            start = end + width
        self._buffer = buffer[start:]
        return events

    @property
    def pending(self) -> bytes:
        """Bytes of an event not yet terminated."""
        return self._buffer


def event_data(event: bytes) -> bytes | None:
    """The `data` field of an event (lines joined by newlines), or None for a comment-only event."""
    if event.startswith(b"data: ") and event.find(b"\n", 6) == len(event) - 2 and b"\r" not in event:
        return event[6:-2]  # the usual event, one `data: ` line ended by LF LF: nothing to split
    data: list[bytes] = []
    for line in event.splitlines():
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(data) if data else None
