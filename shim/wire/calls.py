"""CALL and CALLBACK payloads (``docs/PROTOCOL.md`` section 5), derived from the spec's signatures.

A CALL carries one API method call, a CALLBACK one Spi callback, for every method and callback
of ``CThostFtdcMdApi``/``CThostFtdcTraderApi`` and their Spi classes in the spec's ``modules``
section (no hand-written list).  Both payloads are::

    u8  name length, then the name (ASCII): "ReqUserLogin", "OnRspUserLogin"
    then each parameter in declaration order, encoded by its C type:
      CThostFtdc*Field *  u8 presence (0 = NULL, 1 = present) + the struct's bytes if present
      char *[] + nCount   i32 count + count x (u8 length + the ID's bytes); nCount is not sent again
      char *              u16 length + the bytes (GB18030)
      int, THOST_TE_RESUME_TYPE  i32;   bool  u8 (0 or 1)
    except ``int nRequestID``, which travels in the frame header's request_id, and ``bool
    bIsLast``, which is the header's flags bit 1.

``args`` are always the Python arguments of the CTP call as openctp-ctp takes them:
``("ReqUserLogin", (field, 3))``, ``("SubscribeMarketData", ([b"rb2505"], 1))``,
``("OnRspUserLogin", (login, info, 3, True))``; decoding gives them back that way (IDs as bytes,
nRequestID and bIsLast from the header), ready for ``getattr(api, name)(*args)``.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from typing import Any, NamedTuple

from ..ctp.fields import load_spec
from .frames import FLAG_LAST, HEADER, LENGTH_BASE, Frame, FrameType, WireError
from .structs import layout

_I32 = struct.Struct("<i")
_U16 = struct.Struct("<H")
_U32 = 1 << 32
MAX_ID_BYTES = 255  # an ID in a char *[] is u8-length-prefixed (CTP's are at most 80 bytes)

# parameter encodings
STRUCT, IDS, COUNT, TEXT, INT, BOOL = "struct", "ids", "count", "text", "int", "bool"
REQUEST_ID, IS_LAST = "request_id", "is_last"
FLAVOUR_CLASSES = {
    "mdapi": ("CThostFtdcMdApi", "CThostFtdcMdSpi"),
    "tdapi": ("CThostFtdcTraderApi", "CThostFtdcTraderSpi"),
}


class Signature(NamedTuple):
    """How one method's or callback's parameters travel: ``encodings[i]`` for parameter ``i``
    (``STRUCT``, ``IDS``, ``COUNT``, ``TEXT``, ``INT``, ``BOOL``, ``REQUEST_ID``, ``IS_LAST``),
    ``classes[i]`` its field class name (``STRUCT`` only); ``error`` says why the method cannot
    travel at all ('' when it can)."""

    name: str
    params: tuple[str, ...]
    encodings: tuple[str, ...]
    classes: tuple[str, ...]
    error: str


def _signature(name: str, params: list[list[str]]) -> Signature:
    encodings: list[str] = []
    classes: list[str] = []
    error = ""
    for position, (param, ctype) in enumerate(params):
        cls = ""
        if ctype.startswith("CThostFtdc") and ctype.endswith("Field"):
            encoding, cls = STRUCT, ctype
        elif ctype == "char *[]":
            encoding = IDS
        elif ctype == "int" and param == "nCount" and position and encodings[-1] == IDS:
            encoding = COUNT
        elif ctype == "int" and param == "nRequestID":
            encoding = REQUEST_ID
        elif ctype in ("int", "THOST_TE_RESUME_TYPE"):
            encoding = INT
        elif ctype == "bool" and param == "bIsLast":
            encoding = IS_LAST
        elif ctype == "bool":
            encoding = BOOL
        elif ctype == "char *":
            encoding = TEXT
        else:
            encoding = ""
            error = error or f"its parameter {param} ({ctype}) cannot travel"
        encodings.append(encoding)
        classes.append(cls)
    return Signature(name, tuple(param for param, _ctype in params), tuple(encodings), tuple(classes), error)


@lru_cache(maxsize=None)
def signatures(flavour: str, side: str) -> dict[str, Signature]:
    """Every method (``side="api"``) or callback (``side="spi"``) of ``flavour`` by name."""
    if flavour not in FLAVOUR_CLASSES:
        raise ValueError(f"flavour {flavour!r}: expected 'mdapi' or 'tdapi'")
    if side not in ("api", "spi"):
        raise ValueError(f"side {side!r}: expected 'api' or 'spi'")
    methods = load_spec()["modules"][flavour][side]["methods"]
    return {method["name"]: _signature(method["name"], method["params"]) for method in methods if not method["static"]}


def signature(flavour: str, side: str, name: str) -> Signature:
    """The signature of ``name``; ``WireError`` naming the class when it has no such member."""
    found = signatures(flavour, side).get(name)
    if found is None:
        owner = FLAVOUR_CLASSES[flavour][0 if side == "api" else 1]
        raise WireError(f"{owner} has no method {name!r}")
    return found


def _name_bytes(name: str) -> bytes:
    raw = name.encode("ascii")
    return bytes((len(raw),)) + raw


def _encode_args(sig: Signature, args: tuple[Any, ...], owner: str) -> bytearray:
    if sig.error:
        raise WireError(f"{owner}.{sig.name} cannot be sent: {sig.error}")
    if len(args) != len(sig.params):
        raise WireError(f"{owner}.{sig.name} takes {len(sig.params)} arguments ({', '.join(sig.params)}), "
                        f"got {len(args)}")
    out = bytearray(_name_bytes(sig.name))
    for position, (encoding, value) in enumerate(zip(sig.encodings, args)):
        param = sig.params[position]
        if encoding == STRUCT:
            if value is None:
                out.append(0)
            else:
                out.append(1)
                out += layout(sig.classes[position]).pack(value)
        elif encoding == IDS:
            count = len(value) if value is not None else 0
            if sig.encodings[position + 1 : position + 2] == (COUNT,):
                given = args[position + 1]
                if not isinstance(given, int) or not 0 <= given <= count:
                    raise WireError(f"{owner}.{sig.name}: nCount {given!r} must be an int from 0 to {count} "
                                    "(the number of IDs given)")
                count = given
            out += _I32.pack(count)
            for item in list(value or ())[:count]:
                raw = item if isinstance(item, bytes) else str(item).encode("gb18030")
                end = raw.find(b"\x00")
                if end >= 0:
                    raw = raw[:end]
                if len(raw) > MAX_ID_BYTES:
                    raise WireError(f"{owner}.{sig.name}: ID {item!r} is longer than {MAX_ID_BYTES} bytes")
                out.append(len(raw))
                out += raw
        elif encoding == TEXT:
            raw = b"" if value is None else value if isinstance(value, bytes) else str(value).encode("gb18030")
            if len(raw) > 0xFFFF:
                raise WireError(f"{owner}.{sig.name}: {param} is longer than 65535 bytes")
            out += _U16.pack(len(raw)) + raw
        elif encoding == INT:
            try:
                out += _I32.pack(value)
            except struct.error:
                raise WireError(f"{owner}.{sig.name}: {param} = {value!r} is not an int32") from None
        elif encoding == BOOL:
            out.append(1 if value else 0)
        # COUNT, REQUEST_ID, IS_LAST: in the IDs or the header
    return out


class _Cursor:
    __slots__ = ("data", "position", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.position = 0
        self.what = what

    def take(self, size: int, purpose: str) -> bytes:
        end = self.position + size
        if end > len(self.data):
            raise WireError(f"{self.what} payload ends inside {purpose}: needs {size} bytes at byte {self.position}, "
                            f"has {len(self.data) - self.position}")
        chunk = self.data[self.position:end]
        self.position = end
        return chunk

    def byte(self, purpose: str) -> int:
        return self.take(1, purpose)[0]

    def finish(self) -> None:
        extra = len(self.data) - self.position
        if extra:
            raise WireError(f"{self.what} payload has {extra} bytes after its last argument (at byte {self.position})")


def _read_name(cursor: _Cursor) -> str:
    size = cursor.byte("the name's length")
    raw = cursor.take(size, "the name")
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise WireError(f"{cursor.what} name {raw!r} is not ASCII") from None


def _decode_args(sig: Signature, cursor: _Cursor, flavour: str, request_id: int, is_last: bool) -> tuple[Any, ...]:
    if sig.error:
        raise WireError(f"{sig.name} cannot travel: {sig.error}")
    args: list[Any] = []
    for position, encoding in enumerate(sig.encodings):
        param = sig.params[position]
        if encoding == STRUCT:
            presence = cursor.byte(f"{param}'s presence byte")
            if presence == 0:
                args.append(None)
            elif presence == 1:
                shape = layout(sig.classes[position])
                args.append(shape.unpacker(flavour)(cursor.take(shape.size, f"{param} ({shape.name})"), 0))
            else:
                raise WireError(f"{cursor.what} {sig.name}: {param}'s presence byte is {presence}, expected 0 or 1")
        elif encoding == IDS:
            count = _I32.unpack(cursor.take(4, f"{param}'s count"))[0]
            if count < 0:
                raise WireError(f"{cursor.what} {sig.name}: {param}'s count is {count}, expected 0 or more")
            if count > len(cursor.data) - cursor.position:  # each ID takes at least its length byte
                raise WireError(f"{cursor.what} {sig.name}: {param}'s count {count} exceeds the payload "
                                f"({len(cursor.data) - cursor.position} bytes left)")
            ids = []
            for index in range(count):
                size = cursor.byte(f"the length of {param}[{index}]")
                ids.append(cursor.take(size, f"{param}[{index}]"))
            args.append(ids)
        elif encoding == COUNT:
            args.append(len(args[-1]))
        elif encoding == TEXT:
            size = _U16.unpack(cursor.take(2, f"{param}'s length"))[0]
            args.append(cursor.take(size, param).decode("gb18030", "replace"))
        elif encoding == INT:
            args.append(_I32.unpack(cursor.take(4, param))[0])
        elif encoding == BOOL:
            args.append(cursor.byte(param) != 0)
        elif encoding == REQUEST_ID:
            args.append(request_id)
        elif encoding == IS_LAST:
            args.append(is_last)
    cursor.finish()
    return tuple(args)


def _header_of(sig: Signature, args: tuple[Any, ...]) -> tuple[int, int]:
    request_id = 0
    flags = 0
    for encoding, value in zip(sig.encodings, args):
        if encoding == REQUEST_ID:
            if not isinstance(value, int) or not -(1 << 31) <= value < 1 << 31:
                raise WireError(f"{sig.name}: nRequestID {value!r} is not an int32")
            request_id = value
        elif encoding == IS_LAST and value:
            flags |= FLAG_LAST
    return request_id, flags


def _flavour_for(name: str, side: str, flavour: str | None) -> str:
    if flavour is not None:
        return flavour
    for candidate in FLAVOUR_CLASSES:
        if name in signatures(candidate, side):
            return candidate
    raise WireError(f"no CTP {'method' if side == 'api' else 'callback'} {name!r}")


def encode_call(method: str, args: tuple[Any, ...], flavour: str | None = None) -> bytes:
    """A CALL payload of ``method`` with the API call's Python ``args`` (nRequestID included:
    it is not in the payload, see :func:`call_header`).  ``flavour`` defaults to the first API
    class that has the method (md, then td)."""
    flavour = _flavour_for(method, "api", flavour)
    return bytes(_encode_args(signature(flavour, "api", method), tuple(args), FLAVOUR_CLASSES[flavour][0]))


def decode_call(payload: bytes, flavour: str, request_id: int = 0) -> tuple[str, tuple[Any, ...]]:
    """``(method, args)`` of a CALL payload: args as the API method takes them, with
    ``request_id`` (the header's) as nRequestID; ``WireError`` for an unknown method or a bad payload."""
    cursor = _Cursor(payload, "CALL")
    name = _read_name(cursor)
    return name, _decode_args(signature(flavour, "api", name), cursor, flavour, request_id, False)


def encode_callback(name: str, args: tuple[Any, ...], flavour: str | None = None) -> bytes:
    """A CALLBACK payload of Spi callback ``name`` with its Python ``args`` (nRequestID and
    bIsLast included: they go in the header, see :func:`callback_header`)."""
    flavour = _flavour_for(name, "spi", flavour)
    return bytes(_encode_args(signature(flavour, "spi", name), tuple(args), FLAVOUR_CLASSES[flavour][1]))


def decode_callback(payload: bytes, flavour: str, request_id: int = 0, flags: int = 0) -> tuple[str, tuple[Any, ...]]:
    """``(callback, args)`` of a CALLBACK payload, args ready for ``getattr(spi, callback)(*args)``
    (field objects of ``flavour``; nRequestID and bIsLast from the header's ``request_id`` and ``flags``)."""
    cursor = _Cursor(payload, "CALLBACK")
    name = _read_name(cursor)
    return name, _decode_args(signature(flavour, "spi", name), cursor, flavour, request_id, bool(flags & FLAG_LAST))


def call_header(method: str, args: tuple[Any, ...], flavour: str | None = None) -> int:
    """The request_id a CALL of ``method`` with ``args`` carries (its nRequestID, 0 if none)."""
    flavour = _flavour_for(method, "api", flavour)
    return _header_of(signature(flavour, "api", method), tuple(args))[0]


def callback_header(name: str, args: tuple[Any, ...], flavour: str | None = None) -> tuple[int, int]:
    """``(request_id, flags)`` a CALLBACK of ``name`` with ``args`` carries."""
    flavour = _flavour_for(name, "spi", flavour)
    return _header_of(signature(flavour, "spi", name), tuple(args))


def callback_parts(name: str, args: tuple[Any, ...], flavour: str | None = None) -> tuple[bytes, int, int]:
    """``(payload, request_id, flags)`` of a CALLBACK of ``name`` with ``args``: what a sender
    that numbers its frames when it writes them needs."""
    flavour = _flavour_for(name, "spi", flavour)
    sig = signature(flavour, "spi", name)
    payload = bytes(_encode_args(sig, tuple(args), FLAVOUR_CLASSES[flavour][1]))
    request_id, flags = _header_of(sig, tuple(args))
    return payload, request_id, flags


def _frame(frame_type: int, payload: bytes, request_id: int, flags: int, seq: int) -> bytes:
    return HEADER.pack(LENGTH_BASE + len(payload), frame_type, 0, flags, seq % _U32, request_id % _U32) + payload


def call_frame(method: str, args: tuple[Any, ...], seq: int = 0, flavour: str | None = None) -> bytes:
    """A whole CALL frame: the payload and the header with nRequestID."""
    flavour = _flavour_for(method, "api", flavour)
    sig = signature(flavour, "api", method)
    payload = bytes(_encode_args(sig, tuple(args), FLAVOUR_CLASSES[flavour][0]))
    return _frame(FrameType.CALL, payload, _header_of(sig, tuple(args))[0], 0, seq)


def callback_frame(name: str, args: tuple[Any, ...], seq: int = 0, flavour: str | None = None) -> bytes:
    """A whole CALLBACK frame: the payload and the header with nRequestID and bIsLast."""
    payload, request_id, flags = callback_parts(name, args, flavour)
    return _frame(FrameType.CALLBACK, payload, request_id, flags, seq)


RESULT = struct.Struct("<iI")


def encode_result(code: int, call_seq: int) -> bytes:
    """A RESULT payload: the CTP return code (i32) and the seq of the CALL it answers (u32)."""
    return RESULT.pack(code, call_seq % _U32)


def decode_result(payload: bytes) -> int:
    """The CTP return code of a RESULT payload."""
    return _result(payload)[0]


def result_seq(frame: Frame) -> int:
    """The seq of the CALL a RESULT frame answers."""
    return _result(frame.payload)[1]


def _result(payload: bytes) -> tuple[int, int]:
    if len(payload) != RESULT.size:
        raise WireError(f"RESULT payload must be {RESULT.size} bytes (i32 code, u32 CALL seq), got {len(payload)}")
    code, seq = RESULT.unpack(payload)
    return code, seq
