"""Framing: the header, the streaming reader over any chunking, malformed input, JSON payloads."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from ctpshim.wire import handshake
from ctpshim.wire.frames import (
    FLAG_LAST, HEADER, MAX_FRAME, Frame, FrameReader, FrameType, WireError, decode_frame, decode_json, encode_frame,
    encode_json, type_name,
)
from ctpshim.wire.structs import LAYOUT_ID


def test_the_header_is_16_little_endian_bytes() -> None:
    data = encode_frame(FrameType.RESULT, b"\x01\x02\x03\x04", flags=FLAG_LAST, seq=5, request_id=-1)
    assert HEADER.size == 16 and len(data) == 20
    assert data[:16] == struct.pack("<IHBBII", 16, 11, 0, 2, 5, 0xFFFFFFFF)
    frame = decode_frame(data)
    assert frame == Frame(11, 0, 2, 5, -1, b"\x01\x02\x03\x04")
    assert frame.is_last and frame.type_name == "RESULT"


def test_json_types_get_codec_2_by_default() -> None:
    for frame_type in (FrameType.HELLO, FrameType.HELLO_ACK, FrameType.ERROR, FrameType.BYE):
        assert encode_frame(frame_type, b"{}")[6] == 2
    for frame_type in (FrameType.CALL, FrameType.RESULT, FrameType.CALLBACK, FrameType.TICK, FrameType.HEARTBEAT):
        assert encode_frame(frame_type, b"")[6] == 0


frames_strategy = st.lists(st.tuples(
    st.sampled_from(list(FrameType)), st.binary(max_size=300), st.integers(0, 255).map(lambda f: f & ~1),
    st.integers(0, 2**32 - 1), st.integers(-(2**31), 2**31 - 1)), max_size=12)


@settings(max_examples=150, deadline=None)
@given(frames_strategy, st.lists(st.integers(1, 97), min_size=1, max_size=20))
def test_the_reader_splits_any_chunking_into_the_same_frames(frames: list[Any], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(t, p, flags=f, seq=s, request_id=r) for t, p, f, s, r in frames)
    reader = FrameReader()
    got: list[Frame] = []
    position = 0
    index = 0
    while position < len(stream):
        size = cuts[index % len(cuts)]
        got.extend(reader.feed(stream[position:position + size]))
        position += size
        index += 1
    reader.eof()
    assert [(f.type, f.payload, f.flags, f.seq, f.request_id) for f in got] == [
        (int(t), p, f, s, r) for t, p, f, s, r in frames]
    assert reader.pending == 0


def test_truncated_stream_is_named_at_eof() -> None:
    data = encode_frame(FrameType.CALL, b"x" * 20, seq=1)
    reader = FrameReader()
    assert reader.feed(data[:-3]) == []
    with pytest.raises(WireError, match="the stream ended inside a frame at byte 0: 33 of its 36 bytes"):
        reader.eof()
    reader = FrameReader()
    reader.feed(data[:2])
    with pytest.raises(WireError, match="2 bytes of its 4-byte length"):
        reader.eof()
    with pytest.raises(WireError, match="ended inside a frame"):
        decode_frame(data[:10])


def test_oversized_frames_are_refused_as_soon_as_the_length_arrives() -> None:
    reader = FrameReader(max_frame=1 << 20)
    with pytest.raises(WireError, match=r"frame length 1048577: expected 12 to 1048576 \(frame at byte 0\)"):
        reader.feed(struct.pack("<I", (1 << 20) + 1))
    with pytest.raises(WireError, match="frame length"):  # the reader stays failed
        reader.feed(b"")
    with pytest.raises(WireError, match="frame length 3: expected 12"):
        FrameReader().feed(struct.pack("<IHBBII", 3, 1, 2, 0, 0, 0))
    with pytest.raises(ValueError, match="max_frame"):
        FrameReader(MAX_FRAME + 1)


def test_unknown_type_wrong_codec_and_compression_are_refused() -> None:
    good = encode_frame(FrameType.HEARTBEAT, seq=1)
    with pytest.raises(WireError, match=r"unknown frame type 77 \(known: HELLO=1, .*ERROR=90\) \(frame at byte 16\)"):
        FrameReader().feed(good + encode_frame(77, b""))
    with pytest.raises(WireError, match="HELLO frame with codec 0: expected 2"):
        FrameReader().feed(encode_frame(FrameType.HELLO, b"{}", codec=0))
    with pytest.raises(WireError, match="TICK frame with codec 1: expected 0"):
        FrameReader().feed(encode_frame(FrameType.TICK, b"", codec=1))
    with pytest.raises(WireError, match="compression flag"):
        FrameReader().feed(encode_frame(FrameType.CALL, b"", flags=1))
    with pytest.raises(WireError, match="more than one frame"):
        decode_frame(good + good)
    assert type_name(77) == "type 77"


def test_bad_json_is_named() -> None:
    with pytest.raises(WireError, match="HELLO payload is not JSON"):
        decode_json(b"{nope", "HELLO")
    with pytest.raises(WireError, match="HELLO payload is not UTF-8"):
        decode_json(b"\xff\xfe", "HELLO")
    with pytest.raises(WireError, match="must be a JSON object, got list"):
        decode_json(b"[1]", "HELLO")
    assert decode_json(encode_json({"a": "正确"}), "X") == {"a": "正确"}
    assert encode_json({"a": "正"}) == '{"a":"正"}'.encode()


def hello(**keys: Any) -> bytes:
    values = {"magic": "CTPS", "version": 1, "api": "md", "layout": LAYOUT_ID}
    values.update(keys)
    return encode_json({k: v for k, v in values.items() if v is not None})


def test_hello_is_checked_key_by_key() -> None:
    parsed = handshake.Hello.decode(hello(token="t", source="a", client="c++ 1.0", extra="ignored"))
    assert (parsed.api, parsed.token, parsed.source, parsed.client) == ("md", "t", "a", "c++ 1.0")
    assert parsed.private_resume == 1
    assert handshake.Hello.decode(parsed.encode()) == parsed
    td = handshake.Hello("td", LAYOUT_ID, private_resume=2, public_resume=0)
    assert handshake.Hello.decode(td.encode()) == td
    cases = [
        (hello(magic="XXXX"), "HELLO magic 'XXXX': expected 'CTPS'"),
        (hello(magic=None), "HELLO lacks the key 'magic'"),
        (hello(version="1"), "HELLO key 'version' is '1': expected a JSON int"),
        (hello(version=True), "HELLO key 'version' is True"),
        (hello(api="fx"), "HELLO api 'fx': expected 'md' or 'td'"),
        (hello(layout=None), "HELLO lacks the key 'layout'"),
        (hello(token=5), "HELLO key 'token' is 5: expected a JSON str"),
        (hello(private_resume=4), "HELLO private_resume 4: expected 0 \\(RESTART\\)"),
        (b"[]", "HELLO payload must be a JSON object"),
    ]
    for payload, words in cases:
        with pytest.raises(WireError, match=words):
            handshake.Hello.decode(payload)


def test_hello_ack_error_and_bye_round_trip() -> None:
    ack = handshake.HelloAck(LAYOUT_ID, 5.0, "2026-11-20T09:35:00.000+08:00", "20261120", "sim", 1, 7,
                             {"max_subscriptions": 4000}, [{"InstrumentID": "rb2701", "ExchangeID": "SHFE",
                                                           "InstrumentName": "螺纹钢2701"}])
    assert handshake.HelloAck.decode(ack.encode()) == ack
    error = handshake.ErrorInfo(handshake.E_BAD_TOKEN, "bad token")
    assert handshake.ErrorInfo.decode(error.encode()) == error and error.Reason == 0x1001
    assert handshake.decode_bye(handshake.encode_bye("bye")) == "bye" and handshake.decode_bye(b"") == ""
    with pytest.raises(WireError, match="ERROR lacks the key 'ErrorID'"):
        handshake.ErrorInfo.decode(b"{}")
