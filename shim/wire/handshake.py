"""The JSON control payloads of the ``ctpshim://`` protocol: HELLO, HELLO_ACK, ERROR and BYE
(``docs/PROTOCOL.md`` section 4), and the ErrorID of every ERROR the server sends.

Parsing is strict about what it needs (a missing or mistyped key is a :class:`WireError` naming
it and the valid values) and ignores keys it does not know, so either side may add keys later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .frames import MAGIC, PROTOCOL_VERSION, WireError, decode_json, encode_json

API_KINDS = ("md", "td")
RESTART, RESUME, QUICK, NONE = 0, 1, 2, 3  # THOST_TE_RESUME_TYPE
RESUME_TYPES = (RESTART, RESUME, QUICK, NONE)

# ERROR frame ErrorIDs (the connection closes after each); negative, as webctp's are, so that
# they never collide with CTP's own ErrorIDs, which travel in RspInfo structs.
E_BAD_FRAME = -400  # a frame that breaks the protocol (the message says what and where)
E_BAD_TOKEN = -401  # the token is missing or wrong
E_UNKNOWN_SOURCE = -404  # HELLO names a source the server does not have
E_TIMEOUT = -408  # nothing received for 3 heartbeat intervals, or no HELLO within one
E_MISMATCH = -409  # another protocol version or struct layout id than the server's
E_TOO_SLOW = -429  # the client does not read fast enough (replies over budget / no write progress)
E_INTERNAL = -500  # the server failed handling a frame (a bug; logged)
E_SOURCE_DOWN = -503  # the source is not connected (after HELLO: it went down), or the server is full/stopping
ERROR_NAMES = {
    E_BAD_FRAME: "bad frame", E_BAD_TOKEN: "bad token", E_UNKNOWN_SOURCE: "unknown source",
    E_TIMEOUT: "timeout", E_MISMATCH: "version or layout mismatch", E_TOO_SLOW: "too slow",
    E_INTERNAL: "internal error", E_SOURCE_DOWN: "unavailable",
}


def _get(values: dict[str, Any], key: str, kinds: type | tuple[type, ...], what: str, default: Any = ...) -> Any:
    if key not in values:
        if default is ...:
            raise WireError(f"{what} lacks the key {key!r}")
        return default
    value = values[key]
    if not isinstance(value, kinds) or (isinstance(value, bool) and kinds in (int, (int, float))):
        expected = " or ".join(kind.__name__ for kind in (kinds if isinstance(kinds, tuple) else (kinds,)))
        raise WireError(f"{what} key {key!r} is {value!r}: expected a JSON {expected}")
    return value


@dataclass(frozen=True)
class Hello:
    """The client's HELLO: which API, source, token and struct layout it brings."""

    api: str
    layout: str
    source: str = ""
    token: str = ""
    client: str = ""
    version: int = PROTOCOL_VERSION
    private_resume: int = RESUME  # td only: SubscribePrivateTopic's THOST_TE_RESUME_TYPE
    public_resume: int = RESUME  # td only: SubscribePublicTopic's

    def encode(self) -> bytes:
        values: dict[str, Any] = {"magic": MAGIC, "version": self.version, "api": self.api, "source": self.source,
                                  "token": self.token, "layout": self.layout, "client": self.client}
        if self.api == "td":
            values["private_resume"] = self.private_resume
            values["public_resume"] = self.public_resume
        return encode_json(values)

    @classmethod
    def decode(cls, payload: bytes) -> "Hello":
        values = decode_json(payload, "HELLO")
        magic = _get(values, "magic", str, "HELLO")
        if magic != MAGIC:
            raise WireError(f"HELLO magic {magic!r}: expected {MAGIC!r}")
        version = _get(values, "version", int, "HELLO")
        api = _get(values, "api", str, "HELLO")
        if api not in API_KINDS:
            raise WireError(f"HELLO api {api!r}: expected 'md' or 'td'")
        resumes = []
        for key in ("private_resume", "public_resume"):
            resume = _get(values, key, int, "HELLO", RESUME)
            if resume not in RESUME_TYPES:
                raise WireError(f"HELLO {key} {resume!r}: expected 0 (RESTART), 1 (RESUME), 2 (QUICK) or 3 (NONE)")
            resumes.append(resume)
        return cls(
            api=api, layout=_get(values, "layout", str, "HELLO"), source=_get(values, "source", str, "HELLO", ""),
            token=_get(values, "token", str, "HELLO", ""), client=_get(values, "client", str, "HELLO", ""),
            version=version, private_resume=resumes[0], public_resume=resumes[1],
        )


@dataclass(frozen=True)
class HelloAck:
    """The server's HELLO_ACK: the session it opened and the limits it applies."""

    layout: str
    heartbeat: float
    server_time: str  # ISO 8601, China time, as the server's clock says
    trading_day: str  # YYYYMMDD of the source ('' when it does not know yet)
    source: str  # the source's name (the default one's when HELLO gave '')
    front_id: int
    session_id: int
    limits: dict[str, Any] = field(default_factory=dict)
    instruments: list[dict[str, str]] = field(default_factory=list)  # InstrumentID, ExchangeID, InstrumentName
    version: int = PROTOCOL_VERSION

    def encode(self) -> bytes:
        return encode_json({
            "version": self.version, "layout": self.layout, "heartbeat": self.heartbeat,
            "server_time": self.server_time, "trading_day": self.trading_day, "source": self.source,
            "front_id": self.front_id, "session_id": self.session_id, "limits": self.limits,
            "instruments": self.instruments,
        })

    @classmethod
    def decode(cls, payload: bytes) -> "HelloAck":
        values = decode_json(payload, "HELLO_ACK")
        limits = _get(values, "limits", dict, "HELLO_ACK", {})
        return cls(
            version=_get(values, "version", int, "HELLO_ACK"), layout=_get(values, "layout", str, "HELLO_ACK"),
            heartbeat=float(_get(values, "heartbeat", (int, float), "HELLO_ACK")),
            server_time=_get(values, "server_time", str, "HELLO_ACK", ""),
            trading_day=_get(values, "trading_day", str, "HELLO_ACK", ""),
            source=_get(values, "source", str, "HELLO_ACK", ""),
            front_id=_get(values, "front_id", int, "HELLO_ACK", 0),
            session_id=_get(values, "session_id", int, "HELLO_ACK", 0), limits=limits,
            instruments=_get(values, "instruments", list, "HELLO_ACK", []),
        )


@dataclass(frozen=True)
class ErrorInfo:
    """An ERROR frame's payload: ``ErrorID`` (one of the ``E_*`` codes), ``ErrorMsg`` in words, and
    ``Reason``: the ``OnFrontDisconnected`` nReason a CTP-ABI client reports for it."""

    ErrorID: int
    ErrorMsg: str
    Reason: int = 0x1001

    def encode(self) -> bytes:
        return encode_json({"ErrorID": self.ErrorID, "ErrorMsg": self.ErrorMsg, "Reason": self.Reason})

    @classmethod
    def decode(cls, payload: bytes) -> "ErrorInfo":
        values = decode_json(payload, "ERROR")
        return cls(
            ErrorID=_get(values, "ErrorID", int, "ERROR"), ErrorMsg=_get(values, "ErrorMsg", str, "ERROR", ""),
            Reason=_get(values, "Reason", int, "ERROR", 0x1001),
        )


def encode_bye(reason: str = "") -> bytes:
    """A BYE payload: ``{"reason": ...}``."""
    return encode_json({"reason": reason})


def decode_bye(payload: bytes) -> str:
    if not payload:
        return ""
    return str(_get(decode_json(payload, "BYE"), "reason", str, "BYE", ""))
