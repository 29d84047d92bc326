"""One connection to a ``ctpshim serve`` server: the handshake, frames both ways, heartbeats, calls.

Used by the md adapter (:class:`ctpshim.adapters.ctpshim.CtpshimAdapter`) and the trader backend
(:class:`ctpshim.adapters.ctpshim.trader.RemoteTrader`), each with a connection of its own.  It
runs on the IO loop; :meth:`Link.call_blocking` lets another thread make a call and wait for its
code.  The frames and payloads are :mod:`ctpshim.wire`'s (``docs/PROTOCOL.md``).

Liveness as SERVER_PROTOCOLS.md 5.2 maps it to CTP: a HEARTBEAT goes out after ``heartbeat``
seconds with nothing sent (at most the server's interval from HELLO_ACK); ``timeout`` seconds
with nothing received (at least three of the server's intervals) ends the link with reason 0x2001; a read failure or the server closing gives 0x1001, a write failure 0x1002, a malformed
frame 0x2003.

Over TLS (``ctpshims://``) a failed handshake raises :class:`TlsFailed` naming the cause (the
certificate is not trusted, it is for another host name, the port does not speak TLS): the
server accepted the connection and it ended before the session began, which CTP reports as
``OnFrontDisconnected(4097)``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import ssl
import time
from typing import Any, Callable

from ... import errors
from ...runtime import io_loop
from ...wire import calls, frames, handshake

log = logging.getLogger("ctpshim")

OnFrame = Callable[[Any], None]


class ServerRefused(errors.UpstreamUnavailable):
    """The server answered HELLO with an ERROR (a bad token, an unknown source, a layout it cannot
    serve); ``error_id`` and the message are the server's."""

    def __init__(self, message: str, error_id: int) -> None:
        super().__init__(message)
        self.error_id = error_id


class TlsFailed(errors.UpstreamDisconnected):
    """The TLS handshake with the server failed (the message says why: an untrusted certificate,
    another host name, no TLS on that port)."""

    reason = errors.REASON_READ_FAILED
    # The server accepted and the link ended before the session: CTP's OnFrontDisconnected(4097)
    # without OnFrontConnected (the session reads this mark).
    front_disconnected = True


# X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
_NAME_MISMATCH = (62, 64)


def tls_failure(where: str, host: str, exc: ssl.SSLError) -> TlsFailed:
    """The :class:`TlsFailed` of a failed handshake, in words."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = exc.verify_message or exc.reason or str(exc)
        if exc.verify_code in _NAME_MISMATCH:
            return TlsFailed(f"{where}: TLS handshake failed: hostname mismatch: the server's certificate is not "
                             f"valid for {host!r} ({detail}); connect by a name or address the certificate lists")
        return TlsFailed(f"{where}: TLS handshake failed: the server's certificate is not trusted ({detail}); "
                         "give the certificate of its CA (or the server's own, if self-signed) with ?ca=FILE, "
                         "or ?verify=0 for a test")
    reason = exc.reason or str(exc)
    return TlsFailed(f"{where}: TLS handshake failed: {reason} (is this the binary port of a ctpshim serve "
                     "started with --tls-cert? without TLS the address is ctpshim://)")


class Link:
    """A connected, handshaken connection (made by :meth:`open`).

    ``on_callback(name, args)`` gets every CALLBACK, ``on_ticks(frame)`` every TICK/TICK_BATCH
    frame, both on the IO loop in arrival order.  ``lost`` resolves with the CTP reason code when
    the link ends (not by :meth:`close`).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ack: dict[str, Any],
                 flavour: str, heartbeat: float, timeout: float, label: str,
                 frame_reader: frames.FrameReader | None = None) -> None:
        self.ack = ack
        self.flavour = flavour
        self.label = label
        self.on_callback: Callable[[str, tuple[Any, ...]], None] = lambda name, args: None
        self.on_ticks: OnFrame = lambda frame: None
        self.loop = asyncio.get_running_loop()
        self.lost: asyncio.Future[int] = self.loop.create_future()
        self.last_received = time.monotonic()
        self._reader = reader
        self._frame_reader = frame_reader or frames.FrameReader()
        self._writer = writer
        # The server's interval rules both ways: it counts a client silent for 3 of its intervals
        # as gone, and sends its own heartbeat only after one idle interval.
        server_heartbeat = ack.get("heartbeat")
        if isinstance(server_heartbeat, (int, float)) and not isinstance(server_heartbeat, bool) and server_heartbeat > 0:
            heartbeat = min(heartbeat, float(server_heartbeat))
            timeout = max(timeout, 3 * float(server_heartbeat))
        self._heartbeat = heartbeat
        self._timeout = timeout
        self._seq = 1  # HELLO was frame 1
        self._pending: dict[int, concurrent.futures.Future[int]] = {}
        self._last_sent = time.monotonic()
        self._closed = False
        self._paused = False
        self._leftover: list[Any] = []
        self._tasks = [self.loop.create_task(self._read()), self.loop.create_task(self._keep_alive())]

    # -- making one --------------------------------------------------------------------------

    @classmethod
    async def open(cls, host: str, port: int, hello: dict[str, Any], *, connect_timeout: float,
                   heartbeat: float, timeout: float, label: str,
                   ssl_context: ssl.SSLContext | None = None) -> "Link":
        """Connect (over TLS with ``ssl_context``), send HELLO, wait for HELLO_ACK.
        ``UpstreamUnavailable`` when the server cannot be reached or does not answer in
        ``connect_timeout``; :class:`TlsFailed` when the TLS handshake fails; :class:`ServerRefused`
        when it answers with an ERROR (its text included); ``UpstreamProtocolError`` for anything else."""
        where = label
        tls: dict[str, Any] = {}
        if ssl_context is not None:
            tls = {"ssl": ssl_context, "server_hostname": host, "ssl_handshake_timeout": connect_timeout}
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, **tls), connect_timeout)
        except ssl.SSLError as exc:
            raise tls_failure(where, host, exc) from None
        except (OSError, asyncio.TimeoutError) as exc:
            cause = "timed out" if isinstance(exc, asyncio.TimeoutError) else (exc.strerror or str(exc))
            raise errors.UpstreamUnavailable(f"{where}: cannot connect: {cause}") from None
        try:
            writer.write(frames.encode_frame(frames.FrameType.HELLO, frames.encode_json(hello), seq=1))
            frame_reader = frames.FrameReader()
            frame, leftover = await asyncio.wait_for(_first_frame(reader, frame_reader), connect_timeout)
        except asyncio.TimeoutError:
            writer.close()
            raise errors.UpstreamUnavailable(
                f"{where}: connected, but no answer to HELLO within {connect_timeout:g} s "
                "(is this a ctpshim serve binary port? the web port is another one)") from None
        except ssl.SSLError as exc:
            writer.close()
            raise tls_failure(where, host, exc) from None
        except (OSError, asyncio.IncompleteReadError):
            writer.close()
            hint = "" if ssl_context is not None else " (if it was started with --tls-cert, the address is ctpshims://)"
            raise errors.UpstreamUnavailable(f"{where}: the server closed the connection during the handshake{hint}") from None
        except frames.WireError as exc:
            writer.close()
            raise errors.UpstreamProtocolError(f"{where}: not a ctpshim server: {exc}") from None
        except BaseException:  # cancelled (Release() during the handshake)
            writer.close()
            raise
        if frame.type == frames.FrameType.ERROR:
            writer.close()
            error_id, message, _ = _error_of(frame)
            raise ServerRefused(f"{where}: the server refused the connection: {message} (ErrorID {error_id})", error_id)
        if frame.type != frames.FrameType.HELLO_ACK:
            writer.close()
            raise errors.UpstreamProtocolError(f"{where}: expected HELLO_ACK, got frame type {frame.type}")
        try:
            ack = json.loads(frame.payload)
            if not isinstance(ack, dict):
                raise ValueError
        except ValueError:
            writer.close()
            raise errors.UpstreamProtocolError(f"{where}: HELLO_ACK is not a JSON object") from None
        link = cls(reader, writer, ack, "mdapi" if hello.get("api") == "md" else "tdapi", heartbeat, timeout, where,
                   frame_reader)
        link._leftover = leftover  # dispatched first by the reading task, once the caller set the handlers
        return link

    # -- calls -----------------------------------------------------------------------------------

    def send_call(self, method: str, args: tuple[Any, ...]) -> "concurrent.futures.Future[int]":
        """Send CALL ``method(*args)`` (IO loop only); a future of the code its RESULT carries,
        ``-1`` when the link ends first."""
        future: concurrent.futures.Future[int] = concurrent.futures.Future()
        if self._closed or self.lost.done():
            future.set_result(-1)
            return future
        data = calls.call_frame(method, args, self._seq + 1, self.flavour)  # WireError for bad arguments
        self._seq += 1
        self._pending[self._seq] = future
        self._write(data)
        return future

    async def call(self, method: str, args: tuple[Any, ...], timeout: float) -> int:
        """:meth:`send_call` and wait for its code; ``UpstreamDisconnected`` when it takes longer
        than ``timeout``."""
        future = asyncio.wrap_future(self.send_call(method, args))
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise errors.UpstreamDisconnected(f"{self.label}: no RESULT for {method} within {timeout:g} s",
                                              errors.REASON_HEARTBEAT_TIMEOUT) from None

    def call_blocking(self, method: str, args: tuple[Any, ...], timeout: float) -> int:
        """From any thread but the IO loop's: send CALL and wait up to ``timeout`` s for its code
        (``-1`` when the link ends or no RESULT comes in time)."""
        box: concurrent.futures.Future[concurrent.futures.Future[int]] = concurrent.futures.Future()

        def send() -> None:
            try:
                box.set_result(self.send_call(method, args))
            except BaseException as exc:  # noqa: BLE001 - an encoding error goes to the caller
                box.set_exception(exc)

        self.loop.call_soon_threadsafe(send)
        deadline = time.monotonic() + timeout
        try:
            inner = box.result(timeout)
            return inner.result(max(0.0, deadline - time.monotonic()))
        except concurrent.futures.TimeoutError:
            log.warning("%s: no RESULT for %s within %g s; answering -1", self.label, method, timeout)
            return -1

    def pause_reading(self) -> None:
        """Stop reading from the socket (the consumer is behind; the server conflates meanwhile)."""
        self._paused = True
        with contextlib.suppress(Exception):
            self._writer.transport.pause_reading()

    def resume_reading(self) -> None:
        self._paused = False
        self.last_received = time.monotonic()
        with contextlib.suppress(Exception):
            self._writer.transport.resume_reading()

    @property
    def tls_version(self) -> str | None:
        """The TLS version of the link (``"TLSv1.3"``), ``None`` on plain TCP."""
        ssl_object = self._writer.get_extra_info("ssl_object")
        return ssl_object.version() if ssl_object is not None else None

    def send_heartbeat(self) -> None:
        self._write(frames.encode_frame(frames.FrameType.HEARTBEAT, b"", seq=self._next_seq()))

    # -- ending ------------------------------------------------------------------------------

    async def close(self) -> None:
        """Say BYE and close; ``lost`` never resolves after this."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            if not self._writer.is_closing():
                self._writer.write(frames.encode_frame(frames.FrameType.BYE, b"", seq=self._next_seq()))
        self._end_pending()
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        with contextlib.suppress(Exception):
            self._writer.close()
            await asyncio.wait_for(self._writer.wait_closed(), 1.0)

    def _fail(self, reason: int, why: str) -> None:
        if self._closed or self.lost.done():
            return
        log.warning("%s: link lost: %s", self.label, why)
        self.lost.set_result(reason)
        self._end_pending()
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        with contextlib.suppress(Exception):
            self._writer.close()

    def _end_pending(self) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_result(-1)

    # -- inside ----------------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _write(self, data: bytes) -> None:
        try:
            self._writer.write(data)
        except Exception as exc:  # noqa: BLE001 - the transport is broken
            self._fail(errors.REASON_WRITE_FAILED, f"write failed: {exc}")
            return
        self._last_sent = time.monotonic()

    async def _read(self) -> None:
        reader = self._frame_reader
        try:
            leftover, self._leftover = self._leftover, []
            if leftover:
                self._dispatch(leftover)
            while True:
                data = await self._reader.read(1 << 16)
                if not data:
                    self._fail(errors.REASON_READ_FAILED, "the server closed the connection")
                    return
                self.last_received = time.monotonic()
                self._dispatch(reader.feed(data))
        except frames.WireError as exc:
            self._fail(errors.REASON_BAD_MESSAGE, f"malformed frame from the server: {exc}")
        except (OSError, asyncio.IncompleteReadError) as exc:
            self._fail(errors.REASON_READ_FAILED, f"read failed: {exc}")

    def _dispatch(self, got: list[Any]) -> None:
        kind = frames.FrameType
        for frame in got:
            if frame.type in (kind.TICK, kind.TICK_BATCH):
                self.on_ticks(frame)
            elif frame.type == kind.CALLBACK:
                try:
                    name, args = calls.decode_callback(frame.payload, self.flavour, frame.request_id, frame.flags)
                except frames.WireError as exc:
                    self._fail(errors.REASON_BAD_MESSAGE, f"malformed CALLBACK: {exc}")
                    return
                self.on_callback(name, args)
            elif frame.type == kind.RESULT:
                try:
                    seq, code = calls.result_seq(frame), calls.decode_result(frame.payload)
                except frames.WireError as exc:
                    self._fail(errors.REASON_BAD_MESSAGE, f"malformed RESULT: {exc}")
                    return
                future = self._pending.pop(seq, None)
                if future is not None and not future.done():
                    future.set_result(code)
            elif frame.type == kind.ERROR:
                error_id, message, reason = _error_of(frame)
                self._fail(reason, f"the server sent an error: {message} (ErrorID {error_id})")
                return
            elif frame.type == kind.BYE:
                self._fail(errors.REASON_READ_FAILED, "the server said goodbye")
                return
            # HEARTBEAT, and frame types of later versions: alive, nothing else to do.

    async def _keep_alive(self) -> None:
        step = max(0.05, min(self._heartbeat, self._timeout) / 4)
        while True:
            await asyncio.sleep(step)
            now = time.monotonic()
            if self._paused:
                self.last_received = now  # not reading is not silence
            elif now - self.last_received > self._timeout:
                self._fail(errors.REASON_HEARTBEAT_TIMEOUT,
                           f"nothing received for {self._timeout:g} s (heartbeat timeout)")
                return
            if now - self._last_sent >= self._heartbeat:
                self.send_heartbeat()


async def _first_frame(reader: asyncio.StreamReader, frame_reader: frames.FrameReader) -> tuple[Any, list[Any]]:
    """The first frame the server sends, and any that came in the same reads (``frame_reader``
    keeps a partial one)."""
    while True:
        data = await reader.read(1 << 16)
        if not data:
            raise asyncio.IncompleteReadError(b"", None)
        got = frame_reader.feed(data)
        if got:
            return got[0], got[1:]


def _error_of(frame: Any) -> tuple[int, str, int]:
    """An ERROR frame's ErrorID, ErrorMsg and the nReason to report."""
    try:
        info = handshake.ErrorInfo.decode(frame.payload)
        return info.ErrorID, info.ErrorMsg, info.Reason
    except frames.WireError:
        return -1, frame.payload[:200].decode("utf-8", "replace"), errors.REASON_READ_FAILED
