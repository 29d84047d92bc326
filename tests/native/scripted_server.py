"""A scripted peer of the ``ctpshim://`` binary protocol, for testing the native libraries slot by slot.

It is not ``ctpshim serve``: it answers what a test tells it to, and records what it receives.
Every connection (a :class:`Peer`) gets HELLO_ACK for its HELLO and a RESULT for each CALL (code 0, or
``result_code(call)``); each CALL is decoded with :mod:`ctpshim.wire` and recorded as a :class:`Call`
(method name, request id, decoded arguments); the test sends CALLBACK, TICK_BATCH or any other frame
whenever it wants (:meth:`Peer.send_callback`, :meth:`Peer.send_ticks`, :meth:`Peer.send_frame`), or
lets ``on_call(peer, call)`` answer (see :func:`md_replies`).  HEARTBEATs go out every half interval,
so a library never sees a silent server.  Threads only; every wait takes a timeout.

    with ScriptedServer() as server:
        ...start a program on server.front ("tcp://127.0.0.1:PORT")...
        peer = server.wait_peer("md", timeout=20)
        peer.wait_calls(1, timeout=20)
        peer.send_callback("OnRspError", (info, 7, True))
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from ctpshim.wire.calls import callback_parts, decode_call, encode_result
from ctpshim.wire.frames import (CODEC_BINARY, HEADER, LENGTH_BASE, Frame, FrameReader, FrameType, WireError,
                                 encode_frame)
from ctpshim.wire.handshake import ErrorInfo, Hello, HelloAck, decode_bye, encode_bye
from ctpshim.wire.structs import LAYOUT_ID

FLAVOURS = {"md": "mdapi", "td": "tdapi"}
_U32 = 1 << 32
_COUNT = struct.Struct("<H")


@dataclass
class Call:
    """One CALL as received: ``args`` as :func:`ctpshim.wire.calls.decode_call` gives them (field objects of
    ctpshim's flavour, IDs as bytes), or ``error`` when the payload did not decode (``method`` is then the
    name as far as it could be read)."""

    method: str
    request_id: int
    args: tuple[Any, ...]
    seq: int
    error: str = ""
    code: int = 0  # the RESULT code sent back


def _name_of(payload: bytes) -> str:
    size = payload[0] if payload else 0
    return payload[1:1 + size].decode("ascii", "replace")


class Peer:
    """One client connection: its HELLO, its CALLs, and the frames the test sends it."""

    def __init__(self, server: "ScriptedServer", sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.hello: Hello | None = None
        self.api = ""
        self.calls: list[Call] = []
        self.heartbeats = 0
        self.ticks_sent = 0  # by send_ticks, so far
        self.bye: str | None = None
        self.closed = threading.Event()
        self.close_reason = ""
        self._seq = 0
        self._write = threading.Lock()
        self._cond = threading.Condition()

    # -- sending ---------------------------------------------------------------------------------------

    def send_frame(self, frame_type: int, payload: bytes = b"", *, flags: int = 0, request_id: int = 0,
                   codec: int | None = None) -> None:
        """One frame, numbered in this connection's sequence; OSError when the connection is gone."""
        with self._write:
            self._seq += 1
            self.sock.sendall(encode_frame(frame_type, payload, codec=codec, flags=flags, seq=self._seq,
                                           request_id=request_id))

    def send_callback(self, name: str, args: tuple[Any, ...]) -> None:
        """CALLBACK ``name`` with its Python arguments (nRequestID and bIsLast included, as the Spi takes them)."""
        payload, request_id, flags = callback_parts(name, tuple(args), self.flavour)
        self.send_frame(FrameType.CALLBACK, payload, flags=flags, request_id=request_id)

    def send_raw_callback(self, payload: bytes, *, request_id: int = 0, flags: int = 0) -> None:
        """A CALLBACK frame with any payload (an unknown name, a truncated struct)."""
        self.send_frame(FrameType.CALLBACK, payload, flags=flags, request_id=request_id)

    def send_ticks(self, tick: bytes, count: int, batch: int = 1000) -> None:
        """``count`` copies of one packed tick as TICK_BATCH frames of up to ``batch`` ticks, as fast as the
        socket takes them (the payload is built once per batch size; the header per frame)."""
        if not 1 <= batch <= 0xFFFF:
            raise ValueError(f"batch {batch}: expected 1 to 65535")
        payloads: dict[int, bytes] = {}
        left = count
        while left > 0:
            n = min(batch, left)
            payload = payloads.get(n)
            if payload is None:
                payload = payloads[n] = _COUNT.pack(n) + tick * n
            with self._write:
                self._seq += 1
                header = HEADER.pack(LENGTH_BASE + len(payload), FrameType.TICK_BATCH, CODEC_BINARY, 0,
                                     self._seq % _U32, 0)
                sent = self.sock.sendmsg([header, payload])
                if sent < len(header) + len(payload):
                    self.sock.sendall(memoryview(header + payload)[sent:])
            left -= n
            self.ticks_sent += n

    def send_error(self, error_id: int, message: str, reason: int) -> None:
        """ERROR, then close (as the server does)."""
        self.send_frame(FrameType.ERROR, ErrorInfo(error_id, message, reason).encode())
        self.close("sent ERROR")

    def close(self, reason: str = "closed by the test") -> None:
        if not self.close_reason:
            self.close_reason = reason
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- waiting --------------------------------------------------------------------------------------------

    @property
    def flavour(self) -> str:
        return FLAVOURS[self.api]

    def wait_calls(self, count: int, timeout: float) -> list[Call]:
        """The first ``count`` CALLs; TimeoutError naming what came when fewer arrive in ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.calls) < count:
                left = deadline - time.monotonic()
                if left <= 0 or (self.closed.is_set() and len(self.calls) < count):
                    got = [f"{c.method}#{c.request_id}" for c in self.calls[-10:]]
                    raise TimeoutError(f"{len(self.calls)} of {count} CALLs within {timeout:g} s "
                                       f"(closed: {self.close_reason or 'no'}); last: {got}")
                self._cond.wait(min(left, 0.5))
            return list(self.calls[:count])

    def wait_closed(self, timeout: float) -> bool:
        return self.closed.wait(timeout)

    # -- the reader ------------------------------------------------------------------------------------------

    def _serve(self) -> None:
        reader = FrameReader()
        try:
            while True:
                data = self.sock.recv(1 << 16)
                if not data:
                    self.close_reason = self.close_reason or "EOF from the client"
                    return
                for frame in reader.feed(data):
                    if not self._handle(frame):
                        return
        except WireError as exc:
            self.close_reason = f"bad frame from the client: {exc}"
        except OSError as exc:
            self.close_reason = self.close_reason or f"socket: {exc}"
        finally:
            with self._cond:
                self.closed.set()
                self._cond.notify_all()
            try:
                self.sock.close()
            except OSError:
                pass

    def _handle(self, frame: Frame) -> bool:
        if self.hello is None:
            if frame.type != FrameType.HELLO:
                self.close_reason = f"first frame was {frame.type_name}, not HELLO"
                return False
            self.hello = Hello.decode(frame.payload)
            self.api = self.hello.api
            refusal = self.server.refuse
            if refusal is not None:
                self.send_error(*refusal)
                return False
            ack = HelloAck(layout=LAYOUT_ID, heartbeat=self.server.heartbeat,
                           server_time="2026-12-03T09:00:00.000+08:00",
                           trading_day=self.server.trading_day, source="scripted", front_id=3, session_id=77,
                           limits={"max_subscriptions": 4000, "control_rate": 1e6, "control_burst": 1_000_000,
                                   "max_frame": 1 << 20, "reply_budget": 1 << 30, "write_deadline": 60.0},
                           instruments=[])
            self.send_frame(FrameType.HELLO_ACK, ack.encode())
            self.server._joined(self)
            return True
        if frame.type == FrameType.HEARTBEAT:
            self.heartbeats += 1
            return True
        if frame.type == FrameType.BYE:
            self.bye = decode_bye(frame.payload)
            self.close_reason = f"BYE {self.bye!r}"
            return False
        if frame.type != FrameType.CALL:
            self.close_reason = f"client sent a {frame.type_name} frame"
            return False
        try:
            method, args = decode_call(frame.payload, self.flavour, frame.request_id)
            call = Call(method, frame.request_id, args, frame.seq)
        except WireError as exc:
            call = Call(_name_of(frame.payload), frame.request_id, (), frame.seq, error=str(exc))
        if self.server.result_code is not None:
            call.code = self.server.result_code(call)
        self.send_frame(FrameType.RESULT, encode_result(call.code, frame.seq), request_id=frame.request_id)
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()
        if self.server.on_call is not None and not call.error:
            self.server.on_call(self, call)
        return True

    def _beat(self) -> None:
        interval = max(0.05, self.server.heartbeat / 2)
        while not self.closed.wait(interval):
            try:
                self.send_frame(FrameType.HEARTBEAT)
            except OSError:
                return


class ScriptedServer:
    """A loopback listener whose every connection is a :class:`Peer` (see the module's docstring).

    ``result_code(call) -> int`` chooses each RESULT's code (default 0); ``on_call(peer, call)`` runs after
    the RESULT went out (on the connection's reader thread); ``refuse = (ErrorID, ErrorMsg, Reason)``
    answers every HELLO with that ERROR instead.
    """

    def __init__(self, *, trading_day: str = "20261203", heartbeat: float = 5.0,
                 result_code: Callable[[Call], int] | None = None,
                 on_call: Callable[[Peer, Call], None] | None = None) -> None:
        self.trading_day = trading_day
        self.heartbeat = heartbeat
        self.result_code = result_code
        self.on_call = on_call
        self.refuse: tuple[int, str, int] | None = None
        self.peers: list[Peer] = []
        self._cond = threading.Condition()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._stopped = False
        self._accepter: threading.Thread | None = None
        self._sockets: list[socket.socket] = []

    @property
    def front(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self) -> "ScriptedServer":
        self._listener.listen(16)
        self._accepter = threading.Thread(target=self._accept, name="scripted-accept", daemon=True)
        self._accepter.start()
        return self

    def __enter__(self) -> "ScriptedServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopped = True
        try:
            self._listener.close()
        except OSError:
            pass
        with self._cond:
            peers = list(self.peers)
            sockets = list(self._sockets)
        for peer in peers:
            peer.close("server stopped")
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for peer in peers:
            peer.closed.wait(5)
        if self._accepter is not None:
            self._accepter.join(5)

    def wait_peer(self, api: str | None = None, timeout: float = 20.0, index: int = 0) -> Peer:
        """The ``index``-th connection (of ``api``, when given) that has had its HELLO_ACK."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [p for p in self.peers if api is None or p.api == api]
                if len(found) > index:
                    return found[index]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {api or 'client'} connection #{index} within {timeout:g} s "
                                       f"({len(self.peers)} connected)")
                self._cond.wait(min(left, 0.5))

    def bye_everyone(self) -> None:
        """BYE to every peer (the server stopping)."""
        for peer in list(self.peers):
            try:
                peer.send_frame(FrameType.BYE, encode_bye("scripted server stopping"))
            except OSError:
                pass

    def _joined(self, peer: Peer) -> None:
        with self._cond:
            self.peers.append(peer)
            self._cond.notify_all()
        threading.Thread(target=peer._beat, name="scripted-beat", daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                sock, _address = self._listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._cond:
                self._sockets.append(sock)
            peer = Peer(self, sock)
            threading.Thread(target=peer._serve, name="scripted-peer", daemon=True).start()


def md_replies(trading_day: str = "20261204") -> Callable[[Peer, Call], None]:
    """An ``on_call`` answering md CALLs as ``ctpshim serve`` does (PROTOCOL.md 7.2): OnRspUserLogin
    (TradingDay ``trading_day``), OnRspUserLogout, and one OnRspSubMarketData / OnRspUnSubMarketData
    per ID."""
    from ctpshim import mdapi

    def info() -> Any:
        rsp = mdapi.CThostFtdcRspInfoField()
        rsp.ErrorID, rsp.ErrorMsg = 0, "CTP:正确"
        return rsp

    def answer(peer: Peer, call: Call) -> None:
        if call.method == "ReqUserLogin":
            login = mdapi.CThostFtdcRspUserLoginField()
            login.TradingDay, login.FrontID, login.SessionID = trading_day, 3, 77
            peer.send_callback("OnRspUserLogin", (login, info(), call.request_id, True))
        elif call.method == "ReqUserLogout":
            peer.send_callback("OnRspUserLogout", (mdapi.CThostFtdcUserLogoutField(), info(), call.request_id, True))
        elif call.method in ("SubscribeMarketData", "UnSubscribeMarketData"):
            ids = call.args[0]
            name = "OnRspSubMarketData" if call.method == "SubscribeMarketData" else "OnRspUnSubMarketData"
            for position, raw in enumerate(ids):
                specific = mdapi.CThostFtdcSpecificInstrumentField()
                specific.InstrumentID = raw.decode("gb18030")
                peer.send_callback(name, (specific, info(), 0, position == len(ids) - 1))

    return answer
