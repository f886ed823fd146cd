from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wattfare import ServerSentEvent, SSEDecoder


def decode(*pieces: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    return [event for piece in pieces for event in decoder.feed(piece)]


STREAM = (
    b": wattfare keep-alive\n\n"
    b'data: {"choices":[{"delta":{"content":"h\xc3\xa9llo \xf0\x9f\x91\x8b"}}]}\n\n'
    b"event: update\r\nid: 7\r\ndata: line one\r\ndata: line two\r\n\r\n"
    b"data:no-space\rdata:  two spaces\r\r"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    ServerSentEvent('{"choices":[{"delta":{"content":"héllo 👋"}}]}'),
    ServerSentEvent("line one\nline two", event="update", id="7"),
    ServerSentEvent("no-space\n two spaces", id="7"),
    ServerSentEvent("[DONE]", id="7"),
]


def test_events_decode_with_every_line_ending_and_comments_skipped() -> None:
    assert decode(STREAM) == EXPECTED


def test_splitting_the_bytes_at_any_single_position_decodes_identically() -> None:
    for cut in range(len(STREAM) + 1):
        assert decode(STREAM[:cut], STREAM[cut:]) == EXPECTED, cut


def test_feeding_one_byte_at_a_time_decodes_identically() -> None:
    assert decode(*(STREAM[i : i + 1] for i in range(len(STREAM)))) == EXPECTED


def test_an_event_cut_off_by_the_end_of_the_stream_is_never_returned() -> None:
    assert decode(b'data: {"partial": tr') == []
    assert decode(b"data: complete line but no blank line\n") == []


def test_a_crlf_split_between_feeds_is_one_line_ending_not_two() -> None:
    # Were the "\n" taken as a second (blank) line, "a" would be dispatched early, then "b" alone.
    assert decode(b"data: a\r", b"\ndata: b\r\n\r\n") == [ServerSentEvent("a\nb")]


def test_fields_without_data_dispatch_nothing_and_retry_is_read() -> None:
    assert decode(b"event: ping\n\nretry: 1500\ndata: x\n\n") == [ServerSentEvent("x", retry=1500)]


def test_a_leading_byte_order_mark_is_ignored() -> None:
    assert decode(b"\xef\xbb\xbfdata: x\n\n") == [ServerSentEvent("x")]


line_text = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=12)
event_strategy = st.tuples(st.lists(line_text, min_size=1, max_size=3), st.none() | line_text, st.booleans())


@given(
    events=st.lists(event_strategy, max_size=6),
    newline=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
)
def test_arbitrary_streams_split_at_arbitrary_positions_decode_identically(
    events: list[tuple[list[str], str | None, bool]], newline: bytes, cuts: list[int]
) -> None:
    lines: list[bytes] = []
    for data_lines, name, with_comment in events:
        if with_comment:
            lines.append(b": keep-alive")
        if name:
            lines.append(b"event: " + name.encode())
        lines.extend(b"data: " + line.encode() for line in data_lines)
        lines.append(b"")
    raw = b"".join(line + newline for line in lines)
    positions = sorted({cut % (len(raw) + 1) for cut in cuts})
    pieces = [raw[a:b] for a, b in zip([0, *positions], [*positions, len(raw)], strict=True)]

    decoded = decode(*pieces)

    assert decoded == decode(raw)
    assert [e.data for e in decoded] == ["\n".join(data_lines) for data_lines, _, _ in events]
    # An empty `event:` value means the default type, as the spec says.
    assert [e.event for e in decoded] == [name or None for _, name, _ in events]
