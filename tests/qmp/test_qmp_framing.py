"""Cutting the byte stream into requests, independent of sockets."""

from __future__ import annotations

import pytest

from vcpuhp.qmp.framing import FramingError, MessageSplitter, decode
from vcpuhp.qmp.wire import QmpError

STREAM = (b'{"execute": "a", "arguments": {"s": "x}]\\"{"}}{"execute": "b"}\n'
          b'  {"execute":\n  "c"}\n[1, [2]] 42 "s"\n')
MESSAGES = [b'{"execute": "a", "arguments": {"s": "x}]\\"{"}}', b'{"execute": "b"}',
            b'{"execute":\n  "c"}', b"[1, [2]]", b"42", b'"s"']


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, len(STREAM)])
def test_requests_come_out_whole_however_the_bytes_arrive(chunk: int) -> None:
    splitter = MessageSplitter()
    frames = []
    for start in range(0, len(STREAM), chunk):
        frames += splitter.feed(STREAM[start:start + chunk])
    assert frames == MESSAGES
    assert splitter.pending == 0


@pytest.mark.parametrize(("data", "desc"), [
    (b"}", "stray '}'"),
    (b'{"a": [1}', "'}' does not close '['"),
    (b'{"a": "no end', "newline inside a string"),
    (b"[" * 200, "nesting deeper than 128 levels"),
    (b'{"a": "' + b"x" * 200 + b'"}', "longer than 100 bytes"),
])
def test_errors_resynchronise_at_the_next_line(data: bytes, desc: str) -> None:
    splitter = MessageSplitter(limit=100 if b"x" * 200 in data else 64 * 1024)
    frames = splitter.feed(data + b' {"lost": 1}\n{"next": 2}\n')
    assert len(frames) == 2, frames
    assert isinstance(frames[0], FramingError) and desc in frames[0].desc
    assert frames[1] == b'{"next": 2}'


@pytest.mark.parametrize(("text", "desc"), [
    (b'{"a": NaN}', "invalid keyword 'NaN'"),
    (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
    (b'{"a": "\xc3"}', "invalid UTF-8"),
    (b'{"a" 1}', "expecting ':' delimiter"),
])
def test_decode_rejects_what_qemus_parser_rejects(text: bytes, desc: str) -> None:
    with pytest.raises(QmpError, match=desc) as raised:
        decode(text)
    assert raised.value.error_class == "GenericError"
    assert raised.value.desc.startswith("JSON parse error, ")


def test_decode_accepts_unicode_and_escapes() -> None:
    assert decode('{"id": "c\\u00e9 ✓"}'.encode()) == {"id": "cé ✓"}


@pytest.mark.parametrize("byte", [b",", b"\x0b", b"\x0c"])
def test_a_stray_top_level_byte_is_one_error_not_endless_empty_frames(byte: bytes) -> None:
    """Issue 8, item 1: these bytes made the splitter emit empty frames forever."""
    splitter = MessageSplitter()
    frames = splitter.feed(b'{"execute": "query-status"}' + byte + b'\n{"execute": "b"}\n')
    assert frames[0] == b'{"execute": "query-status"}'
    assert frames[-1] == b'{"execute": "b"}'
    assert len(frames) == 3, frames
    assert b"" not in frames
    assert splitter.pending == 0


def test_a_comma_between_requests_is_reported_and_the_next_request_kept() -> None:
    frames = MessageSplitter().feed(b'{"a": 1},{"b": 2}\n')
    assert frames == [b'{"a": 1}', FramingError("JSON parse error, stray ','"), b'{"b": 2}']


@pytest.mark.parametrize("number", [b"1e999", b"-1e999", b"1E400"])
def test_a_number_beyond_a_double_is_a_parse_error_not_infinity(number: bytes) -> None:
    """Issue 8, item 5: ``"id": 1e999`` was echoed as ``Infinity``, which is not JSON."""
    with pytest.raises(QmpError, match="out of range"):
        decode(b'{"execute": "query-status", "id": ' + number + b"}")
