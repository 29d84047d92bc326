"""The ``ctpshim://`` binary protocol endpoint (``docs/PROTOCOL.md``; codec in :mod:`ctpshim.wire`).

:func:`start_binary` listens on ``server.settings.listen``; each accepted connection is one
:class:`BinaryClient`:

* handshake: HELLO (JSON) is checked in this order: JSON and keys, protocol version, token,
  layout id, source (and that it is up), the client limit; the answer is HELLO_ACK or ERROR
  (then the connection closes);
* md: CALLs of ``ReqUserLogin``, ``ReqUserLogout``, ``ReqQryMulticastInstrument`` and the four
  ``Subscribe``/``UnSubscribe`` methods, each answered by a RESULT, then its CALLBACKs; ticks of
  the client's instruments as TICK / TICK_BATCH through the client's
  :class:`~ctpshim.server.channel.ClientChannel` (conflated when the client falls behind);
* td: a :class:`~ctpshim.server.trading.ServerTrader` per connection; HELLO_ACK once its API is
  connected; each CALL goes to ``trader.call``; every callback comes back as a CALLBACK, never
  dropped;
* RESULTs leave in CALL order, each before the callbacks that follow its CALL (td callbacks that
  arrive while a RESULT is due wait for it); CALLs past the rate limit get RESULT -3 (and nothing else);
* HEARTBEAT after ``limits.heartbeat`` seconds without sending; a client silent for three
  heartbeats is closed (ERROR -408);
* a malformed frame: ERROR -400 naming the problem, logged, and that client (only) is closed;
* the source goes down: CALLBACK ``OnFrontDisconnected(reason)``, then close.

Everything runs on the IO loop except the td callbacks, which are encoded on the trader API's
dispatcher thread and handed to the loop.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from ..api.arguments import instrument_ids
from ..ctp import clock
from ..ctp.error_codes import error
from ..runtime.backends import SUBSCRIPTIONS
from ..wire import calls, handshake
from ..wire.frames import (
    CODECS, HEADER, LENGTH_BASE, PROTOCOL_VERSION, Frame, FrameReader, FrameType, WireError, encode_frame,
)
from ..wire.structs import LAYOUT_ID, pack_tick
from .channel import ClientChannel
from .limits import AuthError, LimitError, RateLimiter

if TYPE_CHECKING:
    from .fanout import EncodedTick, SourceFeed
    from .server import Server

log = logging.getLogger("ctpshim.server")

TICK_FORMAT = "ctp-struct"  # EncodedTick format of pack_tick's bytes (shared with the Redis publisher)
HELLO_TIMEOUT = 10.0  # s a connection may take to send its HELLO
SOURCE_WAIT = 5.0  # s a HELLO waits for its source to come up before ERROR -503
TD_CONNECT_TIMEOUT = 15.0  # s a td HELLO waits for the server's trader API to connect
SILENCE_HEARTBEATS = 3  # a client silent this many heartbeat intervals is closed
HIGH_WATER = 256 << 10  # bytes buffered for the socket above which a send waits for it to drain
CLOSE_GRACE = 2.0  # s a closing connection may take to flush its last frames before it is aborted
READ_SIZE = 1 << 16
TLS_HANDSHAKE = b"\x16\x03"  # how a TLS ClientHello starts (record type 22, version 3.x)
MAX_BATCH = 0xFFFF  # ticks in one TICK_BATCH (u16 count)
MAX_PARTS = 512  # buffers in one os.writev (IOV_MAX is 1024 on Linux)
FRONT_ID = 1
TOO_MANY_PER_SECOND = -3  # CTP's send code: too many requests per second
OVER_SUB_LIMIT = error("OVER_SUB_INST_LIMIT")  # 6000 "CTP:sub too many insts"
MD_METHODS = frozenset(("ReqUserLogin", "ReqUserLogout", "ReqQryMulticastInstrument")) | frozenset(SUBSCRIPTIONS)

_sessions = itertools.count(1)
_U32 = 1 << 32
_CLOSE = object()  # a reply item: close the connection once what precedes it is written


async def start_binary(server: "Server") -> asyncio.Server:
    """Listen on ``server.settings.listen`` (port 0: any free port) and serve every connection."""
    host, port = server.settings.listen
    clients: set[BinaryClient] = set()

    admit = getattr(server, "admit_binary", None)  # the per-IP new-connection limit (stand-ins may have none)

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if admit is not None and not await admit(reader, writer):  # refused: told and closed by admit_binary
            return
        client = BinaryClient(server, reader, writer)
        clients.add(client)
        try:
            await client.serve()
        finally:
            clients.discard(client)

    listener = await asyncio.start_server(accept, host, port, limit=READ_SIZE,
                                          ssl=getattr(server, "ssl_context", None))
    log.info("binary protocol (ctpshim://) listening on %s", ", ".join(
        f"{sock.getsockname()[0]}:{sock.getsockname()[1]}" for sock in listener.sockets))
    return listener


def _md_module() -> Any:
    from .. import mdapi

    return mdapi


class BinaryClient:
    """One ``ctpshim://`` connection (see the module docstring); also the feed's subscriber."""

    def __init__(self, server: "Server", reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.limits = server.settings.limits
        self.reader = reader
        self.writer = writer
        self.transport = writer.transport
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer or "")
        self.name = f"binary@{self.peer}"  # the client name once HELLO named it
        self.api = ""  # "md" | "td" after HELLO
        self.loop = asyncio.get_running_loop()
        self.frames = FrameReader(self.limits.max_frame)
        self.channel: ClientChannel | None = None
        self.feed: "SourceFeed | None" = None
        self.info: Any = None
        self.trader: Any = None
        self.subscribed: set[str] = set()
        self._unsubscribed = False  # ticks of an instrument no longer subscribed may still wait in the channel
        self._fd = _direct_fd(writer)
        self.session_id = 0
        self.rate = RateLimiter(self.limits.control_rate, self.limits.control_burst)
        self.closed = False
        self.done = asyncio.Event()
        self._seq = 0
        self._last_sent = self.loop.time()
        self._last_received = self.loop.time()
        self._results: collections.deque[list[Any]] = collections.deque()
        self._held: list[tuple[str, tuple[bytes, int, int]]] = []  # td callbacks waiting for RESULTs due before them
        self._tasks: list[asyncio.Task[Any]] = []
        self._td_connected: asyncio.Future[None] | None = None
        self._acked = False
        self._early: list[Frame] = []  # frames that came with the HELLO

    def __repr__(self) -> str:
        return f"<BinaryClient {self.name} {self.api or 'before HELLO'}>"

    # -- the connection ------------------------------------------------------------------------

    async def serve(self) -> None:
        """Handshake, then read frames until the connection ends; always cleans up."""
        try:
            if await self._handshake():
                self._tasks.append(asyncio.ensure_future(self._watchdog()))
                await self._read_loop()
        except (ConnectionError, OSError) as exc:
            log.debug("%s: connection error: %s", self.name, exc)
        except Exception:  # noqa: BLE001 - one client's failure must not touch the others
            log.exception("%s: unexpected failure; closing it", self.name)
        finally:
            self._cleanup()
            if not self.transport.is_closing():
                self.transport.close()
            self.done.set()

    async def _read_loop(self) -> None:
        while not self.closed:
            data = await self.reader.read(READ_SIZE)
            if not data:
                try:
                    self.frames.eof()
                except WireError as exc:
                    log.info("%s: %s", self.name, exc)
                return
            self._last_received = self.loop.time()
            try:
                for frame in self.frames.feed(data):
                    self._handle(frame)
                    if self.closed:
                        return
            except WireError as exc:
                self.fail(handshake.E_BAD_FRAME, str(exc), 0x2003)
                return
            except Exception as exc:  # noqa: BLE001 - a server bug: this client only, and said so
                log.exception("%s: failed to handle a frame", self.name)
                self.fail(handshake.E_INTERNAL, f"internal server error: {type(exc).__name__}: {exc}")
                return

    async def _next_frame(self, timeout: float) -> Frame | None:
        """The first frame (the HELLO), or None when the connection ends or times out."""
        deadline = self.loop.time() + timeout
        first = True  # the connection's first bytes
        while True:
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                return None
            try:
                data = await asyncio.wait_for(self.reader.read(READ_SIZE), remaining)
            except asyncio.TimeoutError:
                return None
            if not data:
                return None
            self._last_received = self.loop.time()
            if first and data.startswith(TLS_HANDSHAKE) and self.transport.get_extra_info("sslcontext") is None:
                raise WireError("this looks like TLS (a ctpshims:// client): this server has no TLS; start it with "
                                "--tls-cert/--tls-key, or connect with ctpshim://")
            first = False
            frames = self.frames.feed(data)  # WireError: to the caller
            if frames:
                self._early = frames[1:]
                return frames[0]

    # -- handshake -----------------------------------------------------------------------------

    async def _handshake(self) -> bool:
        try:
            frame = await self._next_frame(HELLO_TIMEOUT)
        except WireError as exc:
            self.fail(handshake.E_BAD_FRAME, str(exc), 0x2003)
            return False
        if frame is None:
            if not self.reader.at_eof():
                self.fail(handshake.E_TIMEOUT, f"no HELLO within {HELLO_TIMEOUT:g} s")
            return False
        if frame.type != FrameType.HELLO:
            self.fail(handshake.E_BAD_FRAME, f"the first frame must be HELLO, got {frame.type_name}", 0x2003)
            return False
        try:
            hello = handshake.Hello.decode(frame.payload)
        except WireError as exc:
            self.fail(handshake.E_BAD_FRAME, str(exc), 0x2003)
            return False
        if hello.version != PROTOCOL_VERSION:
            self.fail(handshake.E_MISMATCH, f"protocol version {hello.version} is not supported; "
                      f"this server speaks version {PROTOCOL_VERSION}")
            return False
        try:
            client_name = self.server.authenticate(hello.token or None)
        except AuthError as exc:
            self.fail(handshake.E_BAD_TOKEN, str(exc))
            return False
        self.name = f"{client_name}@{self.peer}"
        if hello.layout != LAYOUT_ID:
            self.fail(handshake.E_MISMATCH, f"struct layout {hello.layout!r} is not this server's {LAYOUT_ID!r} "
                      "(CTP 6.7.11 headers)")
            return False
        try:
            feed = self.server.feed(hello.source)
        except KeyError as exc:
            self.fail(handshake.E_UNKNOWN_SOURCE, str(exc.args[0]))
            return False
        self.feed = feed
        self.api = hello.api
        if not feed.up and not await feed.wait_up(SOURCE_WAIT):
            self.fail(handshake.E_SOURCE_DOWN, f"source {feed.name} is not connected to {feed.url}")
            return False
        from .server import ClientInfo

        self.channel = ClientChannel(self.name, self._send, self.limits, self.server.metrics, self._cut_off)
        self.info = ClientInfo(client_name, "binary", self.peer, feed.name, channel=self.channel, feed=feed,
                               subscriber=self, close=self.shutdown)
        try:
            self.server.register(self.info)
        except LimitError as exc:
            self.info = None
            self.fail(handshake.E_SOURCE_DOWN, str(exc))
            return False
        if hello.api == "td" and not await self._start_trader(client_name, hello):
            return False
        self.session_id = next(_sessions)
        feed.subscribe(self, [])  # told when the source goes down, subscribed or not
        self._tasks.append(asyncio.ensure_future(self.channel.run()))
        ack = handshake.HelloAck(
            layout=LAYOUT_ID, heartbeat=self.limits.heartbeat,
            server_time=clock.now().isoformat(timespec="milliseconds"),
            trading_day=feed.trading_day(), source=feed.name, front_id=FRONT_ID if hello.api == "md" else 0,
            session_id=self.session_id if hello.api == "md" else 0,
            limits={"max_subscriptions": self.limits.max_subscriptions, "control_rate": self.limits.control_rate,
                    "control_burst": self.limits.control_burst, "max_frame": self.limits.max_frame,
                    "reply_budget": self.limits.reply_budget, "write_deadline": self.limits.write_deadline},
            instruments=_instruments(feed),
        )
        self.queue(FrameType.HELLO_ACK, ack.encode())
        self._acked = True
        self._release_held()
        log.info("%s: %s client %r on source %s", self.name, hello.api, hello.client, feed.name)
        early, self._early = self._early, []
        for frame in early:
            self._handle(frame)
            if self.closed:
                return False
        return True

    async def _start_trader(self, client_name: str, hello: handshake.Hello) -> bool:
        from .trading import ServerTrader

        self._td_connected = self.loop.create_future()
        try:
            self.trader = ServerTrader(self.server, hello.source, client_name, self._forward)
            self.trader.start(hello.private_resume, hello.public_resume)
        except (KeyError, ValueError) as exc:
            self.fail(handshake.E_UNKNOWN_SOURCE if isinstance(exc, KeyError) else handshake.E_BAD_FRAME,
                      str(exc.args[0]))
            return False
        try:
            await asyncio.wait_for(asyncio.shield(self._td_connected), TD_CONNECT_TIMEOUT)
        except asyncio.TimeoutError:
            self.fail(handshake.E_SOURCE_DOWN, f"the trader API on source {hello.source or 'default'} did not connect "
                      f"within {TD_CONNECT_TIMEOUT:g} s")
            return False
        return not self.closed

    # -- frames in -----------------------------------------------------------------------------

    def _handle(self, frame: Frame) -> None:
        kind = frame.type
        if kind == FrameType.CALL:
            self._call(frame)
        elif kind == FrameType.HEARTBEAT:
            return
        elif kind == FrameType.BYE:
            log.info("%s: said BYE", self.name)
            self.queue_close()
        else:
            self.fail(handshake.E_BAD_FRAME, f"a client may not send {frame.type_name} frames after HELLO "
                      "(only CALL, HEARTBEAT, BYE)", 0x2003)

    def _call(self, frame: Frame) -> None:
        flavour = "mdapi" if self.api == "md" else "tdapi"
        try:
            method, args = calls.decode_call(frame.payload, flavour, frame.request_id)
        except WireError as exc:
            self.fail(handshake.E_BAD_FRAME, f"CALL (seq {frame.seq}): {exc}", 0x2003)
            return
        if not self.rate.allow():
            self.server.metrics.rejected["rate"] += 1
            self._result(frame, TOO_MANY_PER_SECOND)
            return
        if self.api == "md":
            self._md_call(frame, method, args)
        else:
            self._td_call(frame, method, args)

    # -- md ------------------------------------------------------------------------------------

    def _md_call(self, frame: Frame, method: str, args: tuple[Any, ...]) -> None:
        if method not in MD_METHODS:
            self.fail(handshake.E_BAD_FRAME, f"CALL {method} cannot be called on a server (valid: "
                      f"{', '.join(sorted(MD_METHODS))}; the others are the client library's own)", 0x2003)
            return
        responder = _md_responder()
        request_id = frame.request_id
        if method != "ReqQryMulticastInstrument" and method not in SUBSCRIPTIONS and args[0] is None:
            # a NULL request (CTP itself would crash): answered as an empty one
            args = (responder.field("CThostFtdcReqUserLoginField" if method == "ReqUserLogin"
                                    else "CThostFtdcUserLogoutField"),) + args[1:]
        if method in SUBSCRIPTIONS:
            try:
                ids = instrument_ids(args[0], args[1], f"CThostFtdcMdApi_{method}")
            except TypeError as exc:
                self.fail(handshake.E_BAD_FRAME, f"CALL {method}: {exc}", 0x2003)
                return
            self._result(frame, 0, lambda: self._subscription(method, ids))
        elif method == "ReqUserLogin":
            front = SimpleNamespace(front_id=FRONT_ID, session_id=self.session_id)
            assert self.feed is not None
            login = responder.login_response(front, args[0], self.feed.trading_day())
            reply = (login, responder.rsp_info(), request_id, True)
            self._result(frame, 0, lambda: self.callback("OnRspUserLogin", reply))
        elif method == "ReqUserLogout":
            logout = responder.field("CThostFtdcUserLogoutField", BrokerID=args[0].BrokerID, UserID=args[0].UserID)
            reply = (logout, responder.rsp_info(), request_id, True)
            self._result(frame, 0, lambda: self.callback("OnRspUserLogout", reply))
        else:  # ReqQryMulticastInstrument: no records
            self._result(frame, 0, lambda: self.callback("OnRspQryMulticastInstrument", (None, None, request_id, True)))

    def _subscription(self, method: str, ids: list[str]) -> None:
        callback, add = SUBSCRIPTIONS[method]
        responder = _md_responder()
        feed = self.feed
        assert feed is not None
        ok = responder.rsp_info(0, "CTP:No Error")
        accepted: list[str] = []
        if add:
            room = self.limits.max_subscriptions - len(self.subscribed)
            fresh: set[str] = set()
            for index, instrument in enumerate(ids):
                info = ok
                if instrument not in self.subscribed and instrument not in fresh:
                    if len(fresh) >= room:
                        info = responder.rsp_info(OVER_SUB_LIMIT.code, OVER_SUB_LIMIT.message)
                    else:
                        fresh.add(instrument)
                        accepted.append(instrument)
                specific = responder.field("CThostFtdcSpecificInstrumentField", InstrumentID=instrument)
                self.callback(callback, (specific, info, 0, index == len(ids) - 1))
            if len(fresh) < len({i for i in ids if i not in self.subscribed}):
                self.server.metrics.rejected["subscriptions"] += 1
                log.info("%s: subscription cap %d reached (limits.max_subscriptions)", self.name,
                         self.limits.max_subscriptions)
            self.subscribed.update(accepted)
            for snapshot in feed.subscribe(self, accepted):
                assert self.channel is not None
                self.channel.tick(snapshot)
            return
        if add is False:
            self.subscribed.difference_update(ids)  # no tick of theirs after the replies
            self._unsubscribed = True
        for index, instrument in enumerate(ids):
            specific = responder.field("CThostFtdcSpecificInstrumentField", InstrumentID=instrument)
            self.callback(callback, (specific, ok, 0, index == len(ids) - 1))
        if add is False and ids:
            feed.unsubscribe(self, ids)

    # the Subscriber interface (SourceFeed)

    def deliver(self, tick: "EncodedTick") -> None:
        channel = self.channel
        if channel is not None:
            channel.tick(tick)

    def deliver_many(self, ticks: list["EncodedTick"]) -> None:
        channel = self.channel
        if channel is not None:
            channel.ticks(ticks)

    def source_down(self, reason: int) -> None:
        if self.closed:
            return
        log.info("%s: source %s went down (reason %#x); disconnecting", self.name,
                 self.feed.name if self.feed else "?", reason)
        self.callback("OnFrontDisconnected", (reason,))
        self.queue_close()

    # -- td ------------------------------------------------------------------------------------

    def _td_call(self, frame: Frame, method: str, args: tuple[Any, ...]) -> None:
        try:
            future = self.trader.call(method, *args)
        except ValueError as exc:
            self.fail(handshake.E_BAD_FRAME, f"CALL {method}: {exc}", 0x2003)
            return
        self._result(frame, asyncio.wrap_future(future, loop=self.loop))

    def _forward(self, name: str, args: tuple[Any, ...]) -> None:
        """A trader API callback, on its dispatcher thread: encoded here, queued on the loop."""
        if self.closed:
            return
        if name == "OnFrontConnected":
            self.loop.call_soon_threadsafe(self._trader_connected)
            return
        try:
            parts = calls.callback_parts(name, args, "tdapi")
        except WireError:
            log.exception("%s: cannot encode %s", self.name, name)
            return
        self.loop.call_soon_threadsafe(self._forwarded, name, parts)

    def _trader_connected(self) -> None:
        future = self._td_connected
        if future is not None and not future.done():
            future.set_result(None)

    def _forwarded(self, name: str, parts: tuple[bytes, int, int]) -> None:
        if self.closed or self.channel is None:
            return
        if self._results or not self._acked:  # HELLO_ACK and any RESULT still due go first
            self._held.append((name, parts))
            return
        payload, request_id, flags = parts
        self.queue(FrameType.CALLBACK, payload, flags, request_id)
        if name == "OnFrontDisconnected":
            log.info("%s: the trader API's front went down; disconnecting", self.name)
            self.queue_close()

    # -- frames out ----------------------------------------------------------------------------

    def _result(self, call: Frame, code: Any, after: Callable[[], None] | None = None) -> None:
        """RESULT for ``call`` (an int, or a future of one), in CALL order, then ``after()``."""
        self._results.append([call, code, after])
        if isinstance(code, asyncio.Future):
            code.add_done_callback(lambda _: self._flush_results())
        self._flush_results()

    def _flush_results(self) -> None:
        results = self._results
        while results:
            call, code, after = results[0]
            if isinstance(code, asyncio.Future):
                if not code.done():
                    return
                try:
                    code = code.result()
                except Exception as exc:  # noqa: BLE001 - the API refused the arguments
                    log.warning("%s: CALL %s failed: %s", self.name, call.seq, exc)
                    code = -1
            results.popleft()
            if self.closed:
                continue
            self.queue(FrameType.RESULT, calls.encode_result(int(code), call.seq), 0, call.request_id)
            if after is not None:
                try:
                    after()
                except Exception:  # noqa: BLE001 - logged; the client still gets its RESULT
                    log.exception("%s: answering CALL %s failed", self.name, call.seq)
        self._release_held()

    def _release_held(self) -> None:
        held, self._held = self._held, []
        for name, parts in held:
            self._forwarded(name, parts)

    def callback(self, name: str, args: tuple[Any, ...]) -> None:
        """Queue CALLBACK ``name(*args)``."""
        payload, request_id, flags = calls.callback_parts(name, args, "mdapi" if self.api == "md" else "tdapi")
        self.queue(FrameType.CALLBACK, payload, flags, request_id)

    def queue(self, frame_type: int, payload: bytes, flags: int = 0, request_id: int = 0) -> None:
        """Queue a frame behind every reply already waiting (never dropped)."""
        channel = self.channel
        if channel is not None and not self.closed:
            channel.reply((frame_type, payload, flags, request_id), LENGTH_BASE + 4 + len(payload))

    def queue_close(self) -> None:
        """Close once every reply queued so far has been written."""
        channel = self.channel
        if channel is not None and not self.closed:
            channel.reply(_CLOSE, 0)
        else:
            self._close_now()

    def _frame(self, frame_type: int, payload: bytes, flags: int = 0, request_id: int = 0) -> bytes:
        self._seq += 1
        return HEADER.pack(LENGTH_BASE + len(payload), frame_type, CODECS[frame_type], flags, self._seq % _U32,
                           request_id % _U32) + payload

    def _send(self, replies: list[Any], ticks: list["EncodedTick"]) -> Awaitable[None] | None:
        """The channel's writer: replies in order, then the ticks of the client's instruments; returns
        the transport's drain when its buffer is above HIGH_WATER, else None (nothing to wait for)."""
        if self.closed:
            return None
        parts: list[bytes] = []
        closing = False
        if replies:
            frames = []
            for item in replies:
                if item is _CLOSE:
                    closing = True
                    break
                frames.append(self._frame(*item))
            if frames:
                parts.append(frames[0] if len(frames) == 1 else b"".join(frames))
        if ticks and not closing:
            self._tick_parts(ticks, parts)
        if parts:
            self._write(parts)
            self._last_sent = self.loop.time()
        if closing:
            self._close_now()
            return None
        if self.transport.get_write_buffer_size() > HIGH_WATER:
            return self.writer.drain()
        return None

    def _tick_parts(self, ticks: list["EncodedTick"], parts: list[bytes]) -> None:
        """TICK / TICK_BATCH frames of ``ticks``: the payloads shared with every client handed the same
        ticks (SourceFeed.batches), a header of this connection's own (its seq) before each."""
        if self._unsubscribed:  # only then can the channel hold ticks the client no longer wants
            self._unsubscribed = False
            wanted = self.subscribed
            ticks = [tick for tick in ticks if tick.instrument in wanted]
            if not ticks:
                return
        assert self.feed is not None
        for frame_type, payload in self.feed.batches.get(TICK_FORMAT, ticks, _tick_payloads):
            self._seq += 1
            parts.append(HEADER.pack(LENGTH_BASE + len(payload), frame_type, CODECS[frame_type], 0,
                                     self._seq % _U32, 0))
            parts.append(payload)

    def _write(self, parts: list[bytes]) -> None:
        """Write ``parts`` in order: straight to the socket (one writev, no copy) while the transport
        holds nothing unsent, what the socket did not take (and everything else) through the transport."""
        transport = self.transport
        fd = self._fd
        if fd < 0 or len(parts) > MAX_PARTS or transport.get_write_buffer_size() or transport.is_closing():
            self.writer.writelines(parts)
            return
        try:
            written = os.writev(fd, parts)
        except (BlockingIOError, InterruptedError):
            written = 0
        except OSError:
            written = 0  # the transport meets the same error below and closes the connection its way
        if written == sum(map(len, parts)):
            return
        transport.write(b"".join(parts)[written:])

    # -- closing -------------------------------------------------------------------------------

    def fail(self, error_id: int, message: str, reason: int = 0x1001) -> None:
        """Send ERROR ``error_id`` with ``message`` now (ahead of anything waiting) and close."""
        if self.closed:
            return
        log.warning("%s: %s (ErrorID %d); closing the connection", self.name, message, error_id)
        with_error = encode_frame(FrameType.ERROR, handshake.ErrorInfo(error_id, message, reason).encode(),
                                  seq=self._seq + 1)
        self._seq += 1
        if not self.transport.is_closing():
            self.writer.write(with_error)
        self._close_now()

    def _cut_off(self, reason: str) -> None:
        self.fail(handshake.E_TOO_SLOW, f"cut off: {reason}")

    def _close_now(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._cleanup()
        if not self.transport.is_closing():
            self.transport.close()  # flushes what is buffered
        self.loop.call_later(CLOSE_GRACE, self._abort)

    def _abort(self) -> None:
        if not self.transport.is_closing() or self.transport.get_write_buffer_size():
            self.transport.abort()

    def _cleanup(self) -> None:
        self.closed = True
        if self.channel is not None:
            self.channel.close()
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        self._tasks = []
        if self.feed is not None:
            self.feed.drop(self)
        if self.trader is not None:
            trader, self.trader = self.trader, None
            trader.close()
        if self.info is not None:
            info, self.info = self.info, None
            self.server.unregister(info)
        future = self._td_connected
        if future is not None and not future.done():
            future.cancel()

    def shutdown(self) -> "asyncio.Future[Any]":
        """The server stops: BYE, then close (the returned awaitable ends when the connection did)."""
        if not self.closed:
            self.queue(FrameType.BYE, handshake.encode_bye("the server is stopping"))
            self.queue_close()
        return asyncio.ensure_future(self.done.wait())

    async def _watchdog(self) -> None:
        """HEARTBEAT after ``heartbeat`` s of sending nothing; ERROR -408 after 3 heartbeats of silence."""
        beat = self.limits.heartbeat
        while not self.closed:
            await asyncio.sleep(beat / 2)
            now = self.loop.time()
            if now - self._last_received > SILENCE_HEARTBEATS * beat:
                self.fail(handshake.E_TIMEOUT, f"nothing received for {SILENCE_HEARTBEATS * beat:g} s "
                          f"({SILENCE_HEARTBEATS} heartbeats of {beat:g} s)", 0x2001)
                return
            if now - self._last_sent >= beat:
                self._last_sent = now
                self.queue(FrameType.HEARTBEAT, b"")


def _tick_payloads(ticks: list["EncodedTick"]) -> list[tuple[int, bytes]]:
    """(frame type, payload) of the frames carrying ``ticks``: one TICK, or TICK_BATCHes of at most
    MAX_BATCH; a tick that cannot be packed is left out (logged)."""
    packed: list[bytes] = []
    for tick in ticks:
        try:
            packed.append(tick.get(TICK_FORMAT, pack_tick))
        except WireError as exc:
            log.warning("a tick of %s cannot be packed (not sent): %s", tick.instrument, exc)
    if len(packed) == 1:
        return [(FrameType.TICK, packed[0])]
    return [(FrameType.TICK_BATCH, len(chunk).to_bytes(2, "little") + b"".join(chunk))
            for chunk in (packed[start:start + MAX_BATCH] for start in range(0, len(packed), MAX_BATCH))]


def _direct_fd(writer: asyncio.StreamWriter) -> int:
    """The socket's descriptor when the server may write to it itself while the transport's buffer is
    empty (a plain TCP socket on a selector loop), else -1 (everything through the transport)."""
    sock = writer.get_extra_info("socket")
    if sock is None or writer.get_extra_info("sslcontext") is not None:
        return -1
    if not isinstance(asyncio.get_running_loop(), asyncio.SelectorEventLoop):
        return -1
    try:
        return int(sock.fileno())
    except (AttributeError, OSError, ValueError):
        return -1


def _instruments(feed: "SourceFeed") -> list[dict[str, str]]:
    """What the source lists, for HELLO_ACK: ID, exchange and name of each instrument."""
    listed = []
    for info in feed.instruments():
        instrument = getattr(info, "instrument_id", None)
        if isinstance(instrument, str):
            listed.append({"InstrumentID": instrument, "ExchangeID": str(getattr(info, "exchange_id", "")),
                           "InstrumentName": str(getattr(info, "name", ""))})
    return listed


_responder: Any = None


def _md_responder() -> Any:
    global _responder
    if _responder is None:
        from ..api.responders import MdResponder

        _responder = MdResponder(_md_module())
    return _responder

