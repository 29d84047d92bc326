"""The webctp JSON WebSocket protocol on ``/md/`` and ``/td/`` (SERVER_PROTOCOLS.md section 1).

A superset of the openctp/webctp and Homalos/homalos-webctp dialects, so clients written for
either work unchanged:

* one JSON object per text frame; requests ``{"MsgType": "<CTP method>", "<body key>": {...},
  "RequestID": n}``, responses ``{"MsgType": "<callback without On>", "RspInfo": {...} | null,
  "RequestID": n, "IsLast": true, "<body key>": {...} | null}``.  Body keys are the CTP struct
  names without ``CThostFtdc`` and ``Field``; members keep their CTP names.  ``RequestID`` is
  sent only when non-zero, ``IsLast`` only when true; ``RspInfo`` is ``null`` when CTP gave none.
  Single ``char`` members travel as 1-character strings, NUL as ``"\\u0000"``.
* errors: ``-400`` a frame that is not JSON (with ``Detail``; the connection stays) or a request
  whose member values CTP refuses; ``-401`` any request before ``ReqUserLogin``; ``-404`` an
  unknown ``MsgType``; ``-1``/``-2``/``-3`` a CTP request that returned that code, and ``-3``
  also for a client over the control-message rate (every frame counts, ``Pong`` and undecodable
  ones too; closed with 1008 if it keeps on).  A JSON
  message of the wrong shape (not an object, ``MsgType`` not a string, a body that is not an
  object, ``InstrumentID`` not a list of strings) is answered with ``-400`` and closes that
  client with code 1008 and the reason.
* heartbeat (Homalos): ``{"MsgType": "Ping", "Timestamp": <epoch ms>}`` on connect and every
  ``limits.heartbeat`` seconds; ``{"MsgType": "Pong"}`` is accepted, never required: any inbound
  frame and WebSocket-level pongs count as alive.
* token: ``?token=``, ``Authorization: Bearer``, or (when neither is given) a ``Token`` key at the
  top level of the first message or inside its ``ReqUserLogin`` (md also takes
  ``ReqUserLogin.Password``).  A bad token in the URL or header is refused before the handshake
  (HTTP 403); one in the first message closes the socket with 1008 and the reason.

``/md/``: ``ReqUserLogin`` (no ``RequestID`` needed) answers ``RspUserLogin`` with the source's
trading day; ``SubscribeMarketData`` / ``UnSubscribeMarketData`` answer one
``RspSubMarketData`` / ``RspUnSubMarketData`` per instrument (``IsLast`` on the last), then the
latest snapshot of each instrument another client already had; every tick is a
``RtnDepthMarketData`` with all 48 members (prices DBL_MAX -> 0, other doubles raw), its own text
frame, encoded once for all clients (both dialects read the same message).  A client's run of ticks is
written as chunks of whole frames, one transport write each, the chunks shared by every client handed
the same ticks (``SourceFeed.batches``).  Past ``limits.max_subscriptions`` the extra instruments are answered with
ErrorID 6000 (CTP's ``OVER_SUB_INST_LIMIT``, as on ``ctpshim://``) and not subscribed; a request
listing too many IDs to answer one by one within ``limits.reply_budget`` is answered once (6000,
nothing done).  A source that
goes down is told as ``{"MsgType": "FrontDisconnected", "Reason": n}``; the server reconnects it and
the subscriptions stay.

``/td/``: ``ReqUserLogin`` creates a :class:`~ctpshim.server.trading.ServerTrader` on the
source's simulated counter, connects, authenticates, logs in and confirms the settlement, and only
then answers ``RspUserLogin`` (Homalos' order; a failed confirmation fails the login).  Every
method of webctp's call map is then forwarded, and every callback of the trader API comes back as
a message by the rules above; replies are never dropped.

The source is the server's default one, or ``?source=<name>``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import time
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from aiohttp import WSMsgType, web

from ..ctp import clock, error_codes
from ..ctp.fields import field_class, load_spec, member_names, values_of
from ..ctp.market_data import DBL_MAX
from .limits import AuthError
from .web import WebSocketClient, client_channel, dumps, serve_socket

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger("ctpshim.server")
TEXT = WSMsgType.TEXT

OK = error_codes.error("NONE")
ERRORS = {
    -1: "CTP请求失败", -2: "未处理请求超过许可数", -3: "每秒发送请求数超过许可数",
    -400: "参数有误", -401: "未登录", -404: "未实现",
}
SUBSCRIPTION_LIMIT_ERROR = error_codes.error("OVER_SUB_INST_LIMIT")  # 6000, as the binary protocol answers

# webctp's td call map (both dialects), plus Homalos' ReqQrySettlementInfoConfirm.
TD_CALLS = frozenset({
    "ReqQryInstrument", "ReqQryExchange", "ReqQryProduct", "ReqQryDepthMarketData",
    "ReqQryInvestorPositionDetail", "ReqQryExchangeMarginRate", "ReqQryInstrumentOrderCommRate",
    "ReqQryOptionInstrTradeCost", "ReqQryOptionInstrCommRate", "ReqQryOrder", "ReqQryMaxOrderVolume",
    "ReqOrderAction", "ReqOrderInsert", "ReqUserPasswordUpdate", "ReqQryTrade", "ReqQryInvestorPosition",
    "ReqQryTradingAccount", "ReqQryInvestor", "ReqQryTradingCode", "ReqQryInstrumentMarginRate",
    "ReqQryInstrumentCommissionRate", "ReqQrySettlementInfoConfirm",
})
REPLY_BYTES = 130  # about one RspSubMarketData without its InstrumentID
LOGIN_TIMEOUT = 10.0  # s for each step of the td login (connect, authenticate, login, confirm)


class ProtocolError(Exception):
    """A message of the wrong shape: the client is answered -400 and closed (1008)."""


def rsp_info(code: int, message: str | None = None) -> dict[str, Any]:
    return {"ErrorID": code, "ErrorMsg": ERRORS.get(code, "") if message is None else message}


def response(msg_type: str, info: dict[str, Any] | None, request_id: int = 0, is_last: bool = False,
             **body: Any) -> dict[str, Any]:
    """A response by the omission rules: RequestID only when non-zero, IsLast only when true."""
    message: dict[str, Any] = {"MsgType": msg_type, "RspInfo": info}
    if request_id:
        message["RequestID"] = request_id
    if is_last:
        message["IsLast"] = True
    message.update(body)
    return message


def body_key(class_name: str) -> str:
    """``CThostFtdcInputOrderField`` -> ``InputOrder``."""
    return class_name.removeprefix("CThostFtdc").removesuffix("Field")


def response_type(msg_type: str) -> str:
    """The response's MsgType for a request's: ``ReqQryOrder`` -> ``RspQryOrder``,
    ``SubscribeMarketData`` -> ``RspSubMarketData``."""
    if msg_type == "SubscribeMarketData":
        return "RspSubMarketData"
    if msg_type == "UnSubscribeMarketData":
        return "RspUnSubMarketData"
    if msg_type.startswith("Req"):
        return "Rsp" + msg_type[3:]
    return msg_type


# ---- field objects <-> JSON ----------------------------------------------------------------

def _finite(value: float) -> float:
    return value if value - value == 0 else 0.0


@lru_cache(maxsize=None)
def _encoder(flavour: str, class_name: str) -> Callable[[Any], dict[str, Any]]:
    """A function turning a field object of ``class_name`` into its JSON object."""
    members = load_spec()["fields"][class_name]
    empty = load_spec()["modules"][flavour]["char_empty"]
    kinds = [kind for _name, _typedef, kind, _size in members]
    names = [name for name, _typedef, _kind, _size in members]
    bytes_members = {m.split(".", 1)[1] for m in load_spec()["modules"][flavour]["bytes_members"]
                     if m.startswith(class_name + ".")}

    def encode(obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, kind, value in zip(names, kinds, values_of(obj)):
            if kind == "char":
                value = "\u0000" if value == empty or value is None else value
            elif kind == "double":
                value = _finite(value)
            elif name in bytes_members and isinstance(value, bytes):
                value = value.decode("gbk", "replace")
            out[name] = value
        return out

    return encode


def encode_field(flavour: str, obj: Any) -> dict[str, Any] | None:
    """A field object as the JSON object of its members (``None`` -> ``None``)."""
    if obj is None:
        return None
    return _encoder(flavour, type(obj).__name__)(obj)


def decode_field(flavour: str, class_name: str, body: Any) -> Any:
    """A request body as a field object of ``class_name``; ``ValueError`` naming the bad member."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ProtocolError(f"{body_key(class_name)} must be a JSON object, not {type(body).__name__}")
    cls = field_class(flavour, class_name)
    valid = set(member_names(cls))
    obj = cls()
    for key, value in body.items():
        if key not in valid:
            raise ValueError(f"{body_key(class_name)} has no member {key!r}")
        try:
            setattr(obj, key, value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"{body_key(class_name)}.{key}={value!r}: {exc}") from None
    return obj


_PRICE_TYPE = "TThostFtdcPriceType"


@lru_cache(maxsize=1)
def _depth_plan() -> tuple[tuple[str, int, int], ...]:
    """(name, position, rule) per depth member in alphabetical order; rule 1 = price (DBL_MAX -> 0),
    2 = other double (raw, non-finite -> 0), 0 = as is."""
    members = load_spec()["fields"]["CThostFtdcDepthMarketDataField"]
    plan = []
    for position, (name, typedef, kind, _size) in enumerate(members):
        rule = 1 if typedef == _PRICE_TYPE else 2 if kind == "double" else 0
        plan.append((name, position, rule))
    return tuple(sorted(plan))


def depth_body(tick: Any) -> dict[str, Any]:
    """The ``DepthMarketData`` object of a tick: all 48 members, keys in alphabetical order."""
    values = values_of(tick)
    body: dict[str, Any] = {}
    for name, position, rule in _depth_plan():
        value = values[position]
        if rule == 1:
            value = 0 if value == DBL_MAX or value - value != 0 else value
        elif rule == 2:
            value = _finite(value)
        body[name] = value
    return body


def encode_tick(tick: Any) -> bytes:
    """A tick's ``RtnDepthMarketData`` message as UTF-8 (the "webctp" format of an EncodedTick: made
    once per tick, sent as it is in a text frame to every client)."""
    return dumps({"MsgType": "RtnDepthMarketData", "DepthMarketData": depth_body(tick)}).encode("utf-8")


FRAMES_FORMAT = "webctp-frames"  # SourceFeed.batches: a list of ticks as text frames, in chunks
CHUNK_BYTES = 256 * 1024  # whole frames per transport write, at most about this much
_LENGTH_16 = struct.Struct("!BBH").pack
_LENGTH_64 = struct.Struct("!BBQ").pack


def text_frame(payload: bytes) -> bytes:
    """``payload`` as one unmasked, final WebSocket text frame (RFC 6455 5.2), as a server sends it."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return _LENGTH_16(0x81, 126, size) + payload
    return _LENGTH_64(0x81, 127, size) + payload


def tick_frames(ticks: list[Any]) -> list[bytes]:
    """The ticks' ``RtnDepthMarketData`` messages, one text frame each (each tick's JSON made once for
    every client), joined into chunks of whole frames of about CHUNK_BYTES."""
    chunks: list[bytes] = []
    parts: list[bytes] = []
    size = 0
    for tick in ticks:
        frame = text_frame(tick.get("webctp", encode_tick))
        parts.append(frame)
        size += len(frame)
        if size >= CHUNK_BYTES:
            chunks.append(b"".join(parts))
            parts, size = [], 0
    if parts:
        chunks.append(parts[0] if len(parts) == 1 else b"".join(parts))
    return chunks


@lru_cache(maxsize=1)
def _callback_plans() -> dict[str, tuple[tuple[str, str], ...]]:
    """Per trader Spi callback: (parameter name, type) of each argument."""
    return {m["name"]: tuple((p[0], p[1]) for p in m["params"])
            for m in load_spec()["modules"]["tdapi"]["spi"]["methods"]}


def callback_message(name: str, args: tuple[Any, ...]) -> dict[str, Any]:
    """A trader Spi callback as a webctp message: ``OnRtnOrder(order)`` -> ``{"MsgType": "RtnOrder",
    "RspInfo": null, "Order": {...}}``."""
    info: dict[str, Any] | None = None
    request_id = 0
    is_last = False
    body: dict[str, Any] = {}
    for (param, kind), value in zip(_callback_plans().get(name, ()), args):
        if kind == "CThostFtdcRspInfoField":
            info = None if value is None else {"ErrorID": value.ErrorID, "ErrorMsg": value.ErrorMsg}
        elif param == "nRequestID":
            request_id = int(value or 0)
        elif param == "bIsLast":
            is_last = bool(value)
        elif kind.startswith("CThostFtdc"):
            body[body_key(kind)] = encode_field("tdapi", value)
        else:
            body[param[1:] if param[:1] in "nb" and param[1:2].isupper() else param] = value
    return response(name[2:] if name.startswith("On") else name, info, request_id, is_last, **body)


@lru_cache(maxsize=1)
def _request_classes() -> dict[str, str]:
    """Per trader API request method: the class of its struct argument."""
    out = {}
    for method in load_spec()["modules"]["tdapi"]["api"]["methods"]:
        params = method["params"]
        if params and params[0][1].startswith("CThostFtdc"):
            out[method["name"]] = params[0][1]
    return out


# ---- the connection ------------------------------------------------------------------------

def _int_request_id(message: dict[str, Any]) -> int:
    value = message.get("RequestID", 0)
    if value is None:
        return 0
    if type(value) is not int:
        raise ProtocolError(f"RequestID={value!r}: must be an integer")
    return value


class WebctpConnection(WebSocketClient):
    """One webctp WebSocket client: the reader loop, the writer channel, the heartbeat."""

    def __init__(self, server: "Server", request: web.Request, ws: web.WebSocketResponse,
                 name: str | None, source: str | None) -> None:
        super().__init__(server, request, ws, name, source)
        self.logged_in = False
        self.channel = client_channel(server, self.name, self._send, self._cut_off)
        self.info.channel = self.channel

    # -- sending
    def _send(self, replies: list[Any], ticks: list[Any]) -> Awaitable[None] | None:
        """The channel's writer: each reply and each tick its own text frame, replies first.  The
        frames are written a chunk at a time (one transport write each, the ticks' chunks shared by
        every client handed the same ticks); returns the drain when the transport's buffer passes its
        high-water mark (the rest follows it), else None."""
        ws = self.ws
        if ws.closed:
            return None
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the connection is gone")
        if self.stream is None:  # frames aiohttp must make itself (compressed)
            return self._send_each(replies, ticks)
        chunks: list[bytes] = []
        if replies:
            chunks.append(b"".join([text_frame(data) for data in replies]))
        if ticks:
            chunks += self.feed.batches.get(FRAMES_FORMAT, ticks, tick_frames)
        return self._write(chunks, 0)

    def _write(self, chunks: list[bytes], start: int) -> Awaitable[None] | None:
        transport = self.transport
        high = transport.get_write_buffer_limits()[1]
        for index in range(start, len(chunks)):
            transport.write(chunks[index])
            if transport.get_write_buffer_size() > high:
                return self._drain_then(chunks, index + 1)
        return None

    async def _drain_then(self, chunks: list[bytes], start: int) -> None:
        # shielded: aiohttp's protocol has one drain future for every waiter, and cancelling this
        # writer must not cancel it under the close's own drain
        await asyncio.shield(self.stream.drain())
        if start < len(chunks):
            if self.ws.closed:
                return
            if self.transport.is_closing():
                raise ConnectionResetError("the connection is gone")
            rest = self._write(chunks, start)
            if rest is not None:
                await rest

    async def _send_each(self, replies: list[Any], ticks: list[Any]) -> None:
        send = self.ws.send_frame
        for data in replies:
            await send(data, TEXT)
        for tick in ticks:
            await send(tick.get("webctp", encode_tick), TEXT)

    def send(self, message: dict[str, Any]) -> None:
        """Queue one message (never dropped; the channel cuts off a client past its reply budget)."""
        data = dumps(message).encode("utf-8")
        self.channel.reply(data, len(data))

    def _cut_off(self, reason: str) -> None:
        log.warning("webctp %s client %s (%s) cut off: %s", self.protocol, self.name, self.info.peer, reason)
        self.close(1008, reason)

    def close(self, code: int, reason: str, final: dict[str, Any] | None = None) -> None:
        """Close with ``code`` and ``reason``, sending ``final`` (the error that explains it) first."""
        super().close(code, reason, None if final is None else dumps(final))

    def _stop_writer(self) -> None:
        self.channel.close()

    async def _heartbeat(self) -> None:
        interval = self.limits.heartbeat
        while not self.ws.closed:
            self.send({"MsgType": "Ping", "Timestamp": int(time.time() * 1000)})
            await asyncio.sleep(interval)

    # -- the connection's life
    async def run(self) -> None:
        """Read and answer until the socket closes (the client is registered already)."""
        writer = asyncio.ensure_future(self.channel.run())
        heartbeat = asyncio.ensure_future(self._heartbeat())
        try:
            await self.read()
        finally:
            heartbeat.cancel()
            self.closed()
            self.channel.close()
            writer.cancel()
            await self._closed_by_us()

    def closed(self) -> None:
        """The socket is gone: release what the connection holds."""

    def _bad_json(self, detail: str) -> dict[str, Any]:
        self.server.metrics.dropped += 1
        return {"MsgType": "", "RspInfo": rsp_info(-400), "Detail": detail}

    def _undecodable(self, detail: str) -> None:
        verdict = self.check_rate()
        if verdict is None:
            self.send(self._bad_json(detail))
        elif verdict == "close":
            self._over_rate(response("", rsp_info(-3)))

    async def _on_text(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError as exc:
            verdict = self.check_rate()
            if verdict is None:
                self.send(self._bad_json(str(exc)))
            elif verdict == "close":
                self._over_rate(response("", rsp_info(-3)))
            return
        msg_type = ""
        try:
            if not isinstance(message, dict):
                raise ProtocolError(f"a message must be a JSON object, not {type(message).__name__}")
            msg_type = message.get("MsgType")
            if not isinstance(msg_type, str):
                raise ProtocolError(f"MsgType={msg_type!r}: must be a string naming a CTP method")
            if msg_type in ("Pong", "Ping"):
                if self.check_rate() == "close":
                    self._over_rate(None)
                return
            if not self._authenticate(message):
                return
            verdict = self.check_rate()
            if verdict is not None:
                refusal = response(response_type(msg_type), rsp_info(-3), _safe_request_id(message))
                if verdict == "close":
                    self._over_rate(refusal)
                else:
                    self.send(refusal)
                return
            await self.handle(msg_type, message)
        except ProtocolError as exc:
            self.server.metrics.dropped += 1
            reason = str(exc)
            log.info("webctp %s client %s (%s) closed: %s", self.protocol, self.name, self.info.peer, reason)
            self.close(1008, f"malformed message: {reason}", {
                "MsgType": msg_type if isinstance(msg_type, str) else "", "RspInfo": rsp_info(-400), "Detail": reason})

    def _over_rate(self, final: dict[str, Any] | None) -> None:
        self.close(1008, f"more than {self.limits.control_rate:g} control messages per second (limits.control_rate)",
                   final)

    def _authenticate(self, message: dict[str, Any]) -> bool:
        first, self._first = self._first, False
        if self.authenticated:
            return True
        token = message.get("Token")
        login = message.get("ReqUserLogin")
        if token is None and isinstance(login, dict):
            token = login.get("Token")
            if token is None and self.protocol == "webctp-md":
                token = login.get("Password")
        reason = "a token is required (?token=, Authorization: Bearer, or Token in the first message)"
        if isinstance(token, str) and first:
            try:
                self.accept_token(token)
                return True
            except AuthError as exc:
                reason = str(exc) or "bad token"
        self.close(1008, reason, response(response_type(message.get("MsgType", "")), rsp_info(-401, reason)))
        return False

    async def handle(self, msg_type: str, message: dict[str, Any]) -> None:
        raise NotImplementedError


def _safe_request_id(message: dict[str, Any]) -> int:
    value = message.get("RequestID")
    return value if type(value) is int else 0


class MdConnection(WebctpConnection):
    """``/md/``: login, subscriptions and ticks from the source's shared feed."""

    protocol = "webctp-md"

    def deliver(self, tick: Any) -> None:
        self.channel.tick(tick)

    def deliver_many(self, ticks: list[Any]) -> None:
        self.channel.ticks(ticks)

    def source_down(self, reason: int) -> None:
        self.send({"MsgType": "FrontDisconnected", "Reason": reason})

    async def run(self) -> None:
        self.feed.subscribe(self, [])  # told when the source goes down, subscribed or not
        await super().run()

    def closed(self) -> None:
        self.feed.drop(self)

    async def handle(self, msg_type: str, message: dict[str, Any]) -> None:
        request_id = _int_request_id(message)
        if msg_type == "ReqUserLogin":
            self._login(message, request_id)
        elif msg_type in ("SubscribeMarketData", "UnSubscribeMarketData"):
            ids = message.get("InstrumentID")
            if isinstance(ids, str):
                ids = [ids]
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise ProtocolError(f"InstrumentID={ids!r}: must be a list of instrument IDs")
            if not self.logged_in:
                self.send(response(response_type(msg_type), rsp_info(-401), request_id))
            elif len(ids) * REPLY_BYTES + sum(map(len, ids)) > self.limits.reply_budget // 2:
                # one answer, not one per ID: that many answers would pass the reply budget
                self.send(response(response_type(msg_type), {
                    "ErrorID": SUBSCRIPTION_LIMIT_ERROR.code,
                    "ErrorMsg": f"{SUBSCRIPTION_LIMIT_ERROR.message}: {len(ids)} instruments in one request, too many "
                                f"to answer one by one within limits.reply_budget ({self.limits.reply_budget} bytes; "
                                f"at most {self.limits.max_subscriptions} are served per client); none done, ask in "
                                "smaller requests"},
                    request_id, True, SpecificInstrument=None))
            elif msg_type == "SubscribeMarketData":
                self._subscribe(ids, request_id)
            else:
                self._unsubscribe(ids, request_id)
        elif msg_type == "ReqUserLogout" and self.logged_in:
            self.logged_in = False
            self.feed.drop(self)
            self.feed.subscribe(self, [])
            self.send(response("RspUserLogout", rsp_info(0, OK.message), request_id, True, UserLogout={
                "BrokerID": "", "UserID": ""}))
        elif msg_type == "ReqUserLogout":
            self.send(response(response_type(msg_type), rsp_info(-401), request_id))
        else:
            self.send(response(msg_type, rsp_info(-404, f"{ERRORS[-404]}: {msg_type}"), request_id))

    def _login(self, message: dict[str, Any], request_id: int) -> None:
        body = message.get("ReqUserLogin", {})
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise ProtocolError(f"ReqUserLogin must be a JSON object, not {type(body).__name__}")
        now = clock.now().strftime("%H:%M:%S")
        fields = {name: "" for name in member_names(field_class("mdapi", "CThostFtdcRspUserLoginField"))}
        fields.update(TradingDay=self.feed.trading_day(), LoginTime=now, BrokerID=str(body.get("BrokerID") or ""),
                      UserID=str(body.get("UserID") or ""), SystemName="ctpshim", FrontID=0, SessionID=0,
                      MaxOrderRef="1", SHFETime=now, DCETime=now, CZCETime=now, FFEXTime=now, INETime=now,
                      GFEXTime=now)
        self.logged_in = True
        self.send(response("RspUserLogin", rsp_info(0, OK.message), request_id, True, RspUserLogin=fields))

    def _subscribe(self, ids: list[str], request_id: int) -> None:
        current = self.feed.subscriptions(self)
        room = self.limits.max_subscriptions - len(current)
        accepted: list[str] = []
        refused: list[str] = []
        for instrument in dict.fromkeys(ids):
            if instrument in current or instrument in accepted:
                accepted.append(instrument)
            elif room > 0:
                accepted.append(instrument)
                room -= 1
            else:
                refused.append(instrument)
        new = [i for i in accepted if i not in current]
        snapshots = self.feed.subscribe(self, new) if new else []
        ordered = [i for i in ids]
        last = len(ordered) - 1
        refused_set = set(refused)
        limit_info = {"ErrorID": SUBSCRIPTION_LIMIT_ERROR.code,
                      "ErrorMsg": f"{SUBSCRIPTION_LIMIT_ERROR.message}: more than "
                                  f"{self.limits.max_subscriptions} instruments per client"}
        for n, instrument in enumerate(ordered):
            info = limit_info if instrument in refused_set else rsp_info(0, OK.message)
            self.send(response("RspSubMarketData", info, request_id, n == last,
                               SpecificInstrument={"InstrumentID": instrument}))
        if not ordered:
            self.send(response("RspSubMarketData", rsp_info(0, OK.message), request_id, True, SpecificInstrument=None))
        for snapshot in snapshots:
            self.channel.tick(snapshot)

    def _unsubscribe(self, ids: list[str], request_id: int) -> None:
        current = self.feed.subscriptions(self)
        gone = [i for i in dict.fromkeys(ids) if i in current]
        if gone:
            self.feed.unsubscribe(self, gone)
        last = len(ids) - 1
        for n, instrument in enumerate(ids):
            self.send(response("RspUnSubMarketData", rsp_info(0, OK.message), request_id, n == last,
                               SpecificInstrument={"InstrumentID": instrument}))
        if not ids:
            self.send(response("RspUnSubMarketData", rsp_info(0, OK.message), request_id, True,
                               SpecificInstrument=None))


class _LoginFailed(Exception):
    def __init__(self, info: dict[str, Any] | None, reason: str) -> None:
        super().__init__(reason)
        self.info = info


class TdConnection(WebctpConnection):
    """``/td/``: a ServerTrader per client on the source's simulated counter."""

    protocol = "webctp-td"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trader: Any = None
        self.loop = asyncio.get_running_loop()
        self._waiters: dict[str, asyncio.Future[tuple[Any, ...]]] = {}
        self._held: list[tuple[str, tuple[Any, ...]]] | None = None  # callbacks during the login
        self._login_request: Any = None
        self._relogin = False

    def closed(self) -> None:
        if self.trader is not None:
            self.trader.close()
            self.trader = None

    # -- callbacks: on the API's dispatcher thread, handed to the loop
    def _forward(self, name: str, args: tuple[Any, ...]) -> None:
        self.loop.call_soon_threadsafe(self._on_callback, name, args)

    def _on_callback(self, name: str, args: tuple[Any, ...]) -> None:
        waiter = self._waiters.pop(name, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(args)
            return
        if name == "OnFrontConnected" and self.logged_in and not self._relogin:
            self._relogin = True
            asyncio.ensure_future(self._login_again())
        if self._held is not None:
            self._held.append((name, args))
            return
        if self.closing is None:
            self.send(callback_message(name, args))

    def _expect(self, name: str) -> "asyncio.Future[tuple[Any, ...]]":
        future: asyncio.Future[tuple[Any, ...]] = self.loop.create_future()
        self._waiters[name] = future
        return future

    async def _step(self, waiter: "asyncio.Future[tuple[Any, ...]]", what: str) -> tuple[Any, ...]:
        try:
            return await asyncio.wait_for(waiter, LOGIN_TIMEOUT)
        except asyncio.TimeoutError:
            raise _LoginFailed(rsp_info(-1, f"{what}: no answer within {LOGIN_TIMEOUT:g} s"), what) from None

    async def _call(self, method: str, *args: Any) -> int:
        return await asyncio.wrap_future(self.trader.call(method, *args))

    async def _login_step(self, method: str, field: Any, request_id: int, what: str) -> tuple[Any, ...]:
        """Call ``method`` and await its ``OnRsp...``; its callback arguments.  ``_LoginFailed``
        (naming ``what``) when the call returns non-zero, the answer carries an error or never comes."""
        waiter = self._expect("On" + response_type(method))
        code = await self._call(method, field, request_id)
        if code:
            raise _LoginFailed(rsp_info(code), method)
        answer = await self._step(waiter, method)
        info = answer[1]
        if info is not None and info.ErrorID:
            raise _LoginFailed({"ErrorID": info.ErrorID, "ErrorMsg": info.ErrorMsg}, what)
        return answer

    async def _login_steps(self, request: Any, request_id: int) -> tuple[Any, ...]:
        """Authenticate, log in and confirm the settlement; the login's callback arguments."""
        auth = field_class("tdapi", "CThostFtdcReqAuthenticateField")()
        auth.BrokerID, auth.UserID, auth.AppID, auth.AuthCode = request.BrokerID, request.UserID, "ctpshim", ""
        await self._login_step("ReqAuthenticate", auth, request_id, "authentication")
        login = await self._login_step("ReqUserLogin", request, request_id, "login")
        confirm = field_class("tdapi", "CThostFtdcSettlementInfoConfirmField")()
        confirm.BrokerID, confirm.InvestorID = request.BrokerID, request.UserID
        await self._login_step("ReqSettlementInfoConfirm", confirm, request_id, "settlement confirmation")
        return login

    async def _login(self, message: dict[str, Any], request_id: int) -> None:
        if self.trader is not None:
            self.send(response("RspUserLogin", rsp_info(-1, "already logged in on this connection"), request_id, True,
                               RspUserLogin=None))
            return
        body = dict(message.get("ReqUserLogin") or {})
        body.pop("Token", None)
        try:
            request = decode_field("tdapi", "CThostFtdcReqUserLoginField", body)
        except ValueError as exc:
            self.send(response("RspUserLogin", rsp_info(-400), request_id, True, RspUserLogin=None, Detail=str(exc)))
            return
        if not request.UserProductInfo:
            request.UserProductInfo = "ctpshim"
        from .trading import ServerTrader

        self._held = []
        waiter = self._expect("OnFrontConnected")
        self.trader = ServerTrader(self.server, self.feed.name, self.name, self._forward)
        self.trader.start(2, 2)  # THOST_TERT_QUICK, as webctp subscribes
        try:
            await self._step(waiter, "connecting to the trader front")
            login = await self._login_steps(request, request_id)
        except _LoginFailed as failed:
            self._waiters.clear()
            self._held = None
            self.send(response("RspUserLogin", failed.info, request_id, True, RspUserLogin=None))
            self.trader.close()
            self.trader = None
            return
        self.logged_in = True
        self._login_request = request
        held, self._held = self._held, None
        self.send(callback_message("OnRspUserLogin", login))
        for name, args in held:
            if name not in ("OnFrontConnected",):
                self.send(callback_message(name, args))

    async def _login_again(self) -> None:
        """After the trader front came back: log in again as the client did (its reports go on)."""
        try:
            await self._login_steps(self._login_request, 0)
        except _LoginFailed as failed:
            self.send(response("RspUserLogin", failed.info, 0, True, RspUserLogin=None))
        finally:
            self._relogin = False

    async def handle(self, msg_type: str, message: dict[str, Any]) -> None:
        request_id = _int_request_id(message)
        if msg_type == "ReqUserLogin":
            await self._login(message, request_id)
            return
        if msg_type not in TD_CALLS:
            self.send(response(msg_type, rsp_info(-404, f"{ERRORS[-404]}: {msg_type}"), request_id))
            return
        if not self.logged_in:
            self.send(response(response_type(msg_type), rsp_info(-401), request_id))
            return
        class_name = _request_classes()[msg_type]
        key = body_key(class_name)
        try:
            request = decode_field("tdapi", class_name, message.get(key))
        except ValueError as exc:
            self.send(response(response_type(msg_type), rsp_info(-400), request_id, True, Detail=str(exc)))
            return
        try:
            code = await self._call(msg_type, request, request_id)
        except (TypeError, ValueError) as exc:
            self.send(response(response_type(msg_type), rsp_info(-400), request_id, True, Detail=str(exc)))
            return
        if code:
            self.send(response(response_type(msg_type), rsp_info(code), request_id, True))


async def serve(server: "Server", request: web.Request, kind: str) -> web.StreamResponse:
    """The handler of ``/md/`` (``kind`` "md") and ``/td/`` ("td")."""
    connection_class = MdConnection if kind == "md" else TdConnection
    # ticks: CPU over bandwidth, so no permessage-deflate
    return await serve_socket(server, request, connection_class, bearer=True, compress=False)
