"""Splitting SSE bytes into events: any chunking of any stream gives the events the spec's rules give."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wattfare.server.proxy.sse_frames import SSEFrames, event_data

SEPARATORS = (b"\r\n\r\n", b"\n\n", b"\r\r")


def reference_events(stream: bytes) -> tuple[list[bytes], bytes]:
    """Events (with their blank line) and the unterminated rest: the earliest separator wins each time."""
    events: list[bytes] = []
    start = 0
    while True:
        found = [(at, len(sep)) for sep in SEPARATORS if (at := stream.find(sep, start)) != -1]
        if not found:
            return events, stream[start:]
        at, width = min(found)
        events.append(stream[start : at + width])
        start = at + width


pieces = st.lists(
    st.one_of(
        st.sampled_from([b"data: {}", b"data: [DONE]", b": keep-alive", b"\n", b"\r", b"\r\n", b"\n\n", b"x"]),
        st.binary(max_size=12),
    ),
    max_size=40,
)


@given(pieces, st.lists(st.integers(min_value=0, max_value=64), max_size=20))
def test_any_chunking_yields_the_reference_events(parts: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(parts)
    positions = sorted({min(cut, len(stream)) for cut in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *positions], [*positions, len(stream)], strict=True)]
    frames = SSEFrames()
    events = [event for chunk in chunks for event in frames.feed(chunk)]
    expected, rest = reference_events(stream)
    assert events == expected
    assert frames.pending == rest


def test_a_whole_stream_in_one_read_splits_into_its_events() -> None:
    stream = b"".join(b'data: {"i":%d}\n\n' % i for i in range(20)) + b"data: [DONE]\n\n"
    events = SSEFrames().feed(stream)
    assert len(events) == 21
    assert [event_data(event) for event in events][-2:] == [b'{"i":19}', b"[DONE]"]


def test_crlf_streams_keep_their_bytes() -> None:
    frames = SSEFrames()
    assert frames.feed(b"data: a\r\n\r\ndata: b\r\n") == [b"data: a\r\n\r\n"]
    assert frames.feed(b"\r\n") == [b"data: b\r\n\r\n"]


def _data_line_by_line(event: bytes) -> bytes | None:
    """`event_data` as the SSE specification reads it, with no shortcut: the reference for its fast path."""
    data = [
        line[5:][1:] if line[5:].startswith(b" ") else line[5:]
        for line in event.splitlines()
        if line.startswith(b"data:")
    ]
    return b"\n".join(data) if data else None


@given(
    st.lists(
        st.sampled_from([b"data: ", b"data:", b": keep-alive", b"event: x", b"{}", b"\r", b"\n", b"[DONE]", b"a b"]),
        max_size=8,
    ),
    st.sampled_from([b"\n\n", b"\r\n\r\n", b"\r\r"]),
)
def test_event_data_reads_every_event_as_the_specification_does(parts: list[bytes], end: bytes) -> None:
    event = b"".join(parts) + end
    assert event_data(event) == _data_line_by_line(event)


def test_the_usual_event_is_its_data_line() -> None:
    assert event_data(b'data: {"choices":[]}\n\n') == b'{"choices":[]}'
    assert event_data(b"data: one\ndata: two\n\n") == b"one\ntwo"
    assert event_data(b": comment\n\n") is None
