"""The upstream's event stream split into its events' data, whatever the pieces it came in."""

from __future__ import annotations

from skillwire.server.llm._sse import SseDataSplitter

STREAM = (
    b": a comment\r\n"
    b"event: chunk\r\n"
    b'data: {"a":1}\r\n'
    b"id: 7\r\n"
    b"\r\n"
    b"data:first\n"
    b"data\n"
    b"data:  two spaces\n"
    b"\n"
    b"retry: 100\r"
    b"data: cr only\r"
    b"\r"
    b"database: not data\n"
    b"\n"
    b"data: [DONE]\n"
    b"\n"
    b"data: unfinished\n"
)
EXPECTED = [b'{"a":1}', b"first\n\n two spaces", b"cr only", b"[DONE]"]


def _split(pieces: list[bytes]) -> list[bytes]:
    splitter = SseDataSplitter()
    return [data for piece in pieces for data in splitter.feed(piece)]


def test_whole_stream_gives_each_events_data() -> None:
    """CRLF, LF and CR lines, comments, other fields, multi-line data, a dropped unfinished event."""
    assert _split([STREAM]) == EXPECTED


def test_byte_by_byte_gives_the_same_data() -> None:
    """Fed one byte at a time (a CRLF split between reads), the events are the same."""
    assert _split([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


def test_split_after_cr_does_not_end_an_extra_event() -> None:
    """A CR ending one piece and its LF starting the next are one line end, not two."""
    assert _split([b"data: a\r", b"\n", b"data: b\r\n\r", b"\n"]) == [b"a\nb"]


def test_several_events_in_one_piece_come_in_order() -> None:
    """One read holding many events gives all of them, in order."""
    piece = b"".join(b"data: %d\n\n" % i for i in range(5))
    assert _split([piece]) == [b"0", b"1", b"2", b"3", b"4"]
