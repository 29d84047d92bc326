"""Framing of the ``ctpshim://`` binary protocol (``docs/PROTOCOL.md`` sections 2 and 3).

Every frame is a 16-byte little-endian header and a payload::

    offset size field
    0      4    length      u32: bytes after this field (12 + payload size)
    4      2    type        u16: a FrameType
    6      1    codec       u8: 0 = CTP struct bytes / binary, 2 = JSON (UTF-8)
    7      1    flags       u8: bit 1 (0x02) = bIsLast; bit 0 (compression) is not supported
    8      4    seq         u32: the sender's frame counter, 1 for its first frame
    12     4    request_id  u32 (two's complement of CTP's int nRequestID)

A receiver rejects (with :class:`WireError`) a length below 12 or above its limit, an unknown
type, a codec the type does not use, and the compression flag.
"""

from __future__ import annotations

import enum
import json
import struct
from typing import Any, NamedTuple

HEADER = struct.Struct("<IHBBII")
HEADER_SIZE = HEADER.size  # 16
LENGTH_BASE = HEADER_SIZE - 4  # what ``length`` counts besides the payload
MAX_FRAME = 16 << 20  # the largest ``length`` any receiver accepts
PROTOCOL_VERSION = 1
MAGIC = "CTPS"

CODEC_BINARY = 0
CODEC_JSON = 2
FLAG_COMPRESSED = 0x01  # reserved: v1 has no compression
FLAG_LAST = 0x02  # CTP's bIsLast

_U32 = 1 << 32


class FrameType(enum.IntEnum):
    """The frame types of protocol version 1."""

    HELLO = 1
    HELLO_ACK = 2
    HEARTBEAT = 3
    BYE = 4
    CALL = 10
    RESULT = 11
    CALLBACK = 12
    TICK = 30
    TICK_BATCH = 31
    ERROR = 90


# type -> the one codec its payload uses
CODECS: dict[int, int] = {
    FrameType.HELLO: CODEC_JSON,
    FrameType.HELLO_ACK: CODEC_JSON,
    FrameType.HEARTBEAT: CODEC_BINARY,
    FrameType.BYE: CODEC_JSON,
    FrameType.CALL: CODEC_BINARY,
    FrameType.RESULT: CODEC_BINARY,
    FrameType.CALLBACK: CODEC_BINARY,
    FrameType.TICK: CODEC_BINARY,
    FrameType.TICK_BATCH: CODEC_BINARY,
    FrameType.ERROR: CODEC_JSON,
}
_TYPE_NAMES = {int(member): member.name for member in FrameType}


class WireError(Exception):
    """Malformed protocol input; the message names what is wrong and where."""


class Frame(NamedTuple):
    """One decoded frame; ``request_id`` is signed (CTP's ``int nRequestID``)."""

    type: int
    codec: int
    flags: int
    seq: int
    request_id: int
    payload: bytes

    @property
    def is_last(self) -> bool:
        return bool(self.flags & FLAG_LAST)

    @property
    def type_name(self) -> str:
        return type_name(self.type)


def type_name(frame_type: int) -> str:
    """``"TICK"`` for 30; ``"type 77"`` for a number that is no frame type."""
    return _TYPE_NAMES.get(frame_type, f"type {frame_type}")


def encode_frame(type: int, payload: bytes = b"", *, codec: int | None = None, flags: int = 0, seq: int = 0,
                 request_id: int = 0) -> bytes:
    """One frame's bytes.  ``codec`` defaults to the type's (JSON for HELLO, HELLO_ACK, BYE and
    ERROR, binary otherwise); ``request_id`` may be negative (sent as its u32 two's complement)."""
    if codec is None:
        codec = CODECS.get(type, CODEC_BINARY)
    return HEADER.pack(LENGTH_BASE + len(payload), type, codec, flags, seq % _U32, request_id % _U32) + payload


def _signed(value: int) -> int:
    return value - _U32 if value >= 1 << 31 else value


class FrameReader:
    """Splits a byte stream into frames; ``max_frame`` bounds ``length`` (bytes after the length field).

    ``feed`` returns the frames completed by ``data`` and keeps any partial one; after the first
    :class:`WireError` the reader is unusable (the stream has lost its framing).
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        if not LENGTH_BASE <= max_frame <= MAX_FRAME:
            raise ValueError(f"max_frame {max_frame}: expected {LENGTH_BASE} to {MAX_FRAME}")
        self.max_frame = max_frame
        self._buffer = bytearray()
        self._offset = 0  # stream offset of the buffer's start, for error messages
        self._failed: WireError | None = None

    @property
    def pending(self) -> int:
        """Bytes received that do not yet make a whole frame."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        if self._failed is not None:
            raise self._failed
        buffer = self._buffer
        buffer += data
        frames: list[Frame] = []
        position = 0
        end = len(buffer)
        unpack = HEADER.unpack_from
        try:
            while end - position >= HEADER_SIZE:
                length, frame_type, codec, flags, seq, request_id = unpack(buffer, position)
                if length > self.max_frame or length < LENGTH_BASE:
                    raise self._error(position, f"frame length {length}: expected {LENGTH_BASE} to {self.max_frame}")
                stop = position + 4 + length
                if stop > end:
                    break
                expected = CODECS.get(frame_type)
                if expected is None:
                    raise self._error(position, f"unknown frame type {frame_type} (known: "
                                      + ", ".join(f"{m.name}={m.value}" for m in FrameType) + ")")
                if codec != expected:
                    raise self._error(position, f"{type_name(frame_type)} frame with codec {codec}: "
                                      f"expected {expected}")
                if flags & FLAG_COMPRESSED:
                    raise self._error(position, f"{type_name(frame_type)} frame has the compression flag, "
                                      "which protocol version 1 does not support")
                frames.append(Frame(frame_type, codec, flags, seq, _signed(request_id),
                                    bytes(buffer[position + HEADER_SIZE:stop])))
                position = stop
            if end - position >= 4 and position + HEADER_SIZE > end:
                length = int.from_bytes(buffer[position:position + 4], "little")
                if length > self.max_frame or length < LENGTH_BASE:
                    raise self._error(position, f"frame length {length}: expected {LENGTH_BASE} to {self.max_frame}")
        finally:
            if position:
                del buffer[:position]
                self._offset += position
        return frames

    def eof(self) -> None:
        """The stream ended: a :class:`WireError` if it ended inside a frame."""
        if self._buffer:
            have = len(self._buffer)
            if have >= 4:
                need = 4 + int.from_bytes(self._buffer[:4], "little")
                detail = f"{have} of its {need} bytes"
            else:
                detail = f"{have} bytes of its 4-byte length"
            raise WireError(f"the stream ended inside a frame at byte {self._offset}: {detail}")

    def _error(self, position: int, message: str) -> WireError:
        self._failed = WireError(f"{message} (frame at byte {self._offset + position})")
        return self._failed


def decode_frame(data: bytes, max_frame: int = MAX_FRAME) -> Frame:
    """Exactly one frame from ``data`` (a golden vector, a capture); ``WireError`` otherwise."""
    reader = FrameReader(max_frame)
    frames = reader.feed(data)
    if not frames:
        reader.eof()
        raise WireError("no frame in the data")  # pragma: no cover - eof raised
    if len(frames) > 1 or reader.pending:
        raise WireError(f"{len(data)} bytes hold more than one frame")
    return frames[0]


def encode_json(value: Any) -> bytes:
    """A JSON payload: UTF-8, compact, non-ASCII kept as is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_json(payload: bytes, what: str) -> dict[str, Any]:
    """A JSON object payload of frame ``what`` (``"HELLO"``); ``WireError`` naming the problem."""
    try:
        value = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise WireError(f"{what} payload is not UTF-8: {exc}") from None
    except ValueError as exc:
        raise WireError(f"{what} payload is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise WireError(f"{what} payload must be a JSON object, got {type(value).__name__}")
    return value
