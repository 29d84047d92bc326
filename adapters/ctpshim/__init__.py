"""ctpshim://host:port[/source] (ctpshims:// over TLS): a `ctpshim serve` front server (md, and td on its simulated trader).

``ctpshim://127.0.0.1:7780`` is the binary port of a ``ctpshim serve`` (``docs/PROTOCOL.md``);
``/source`` picks one of its sources by name (default: its first).  ``ctpshims://`` is the same
over TLS, to a server started with ``--tls-cert``/``--tls-key``: the server's certificate is
checked against the system's roots and the host name (``?ca=FILE`` trusts that PEM file's
certificates instead; ``?verify=0`` checks nothing, for self-signed tests only).  Settings:

``token``            the server's token (``--token``); refused with the server's error otherwise
``heartbeat``        seconds with nothing sent before the client sends a heartbeat (default 5)
``timeout``          seconds with nothing received before the link counts as lost, reported as
                     ``OnFrontDisconnected(8193)`` (0x2001, heartbeat timeout; default 20)
``connect_timeout``  seconds to connect and finish the handshake (default 5)
``call_timeout``     seconds a trader request waits for the server's return code (default 10;
                     ``-1`` past it)
``ca``               ``ctpshims://`` only: a PEM file of the certificate(s) to trust
``verify``           ``ctpshims://`` only: ``0`` to skip every certificate check (default 1)

Market data: :class:`CtpshimAdapter` is an ordinary adapter, so a process's md API objects
share one connection per address (the market hub), subscriptions are reference-counted, and a
lost link gives ``OnFrontDisconnected(reason)``, a reconnect, ``OnFrontConnected`` and, after
the program's next login, its subscriptions back (``ctpshim.runtime.reconnect``).  Trading:
``capabilities.remote_trader``: each tdapi object gets :class:`~.trader.RemoteTrader`, a
connection of its own to a trader the server runs for it on the source's simulated counter
(accounts shared by every client of that server).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import re
import ssl
import time
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterable, Iterator

from ...ctp.products import parse_instrument
from ...ctp.stocks import StockInfo
from ...errors import (
    REASON_BAD_MESSAGE, REASON_READ_FAILED, UpstreamDisconnected, UpstreamProtocolError, UpstreamUnavailable,
)
from ...fronts.url import FrontURL, Setting, boolean, number
from ...wire import frames, structs
from ..base import Adapter, Capabilities
from .link import Link, ServerRefused

if TYPE_CHECKING:
    from ...runtime.backends import BackendContext
    from .trader import RemoteTrader

__all__ = ["CtpshimAdapter", "CtpshimsAdapter", "ServerRefused"]

log = logging.getLogger("ctpshim")

DEFAULT_PORT = 7780
_SOURCE = re.compile(r"^[A-Za-z0-9_-]+$")
RATE_LIMITED = -3  # RESULT of a CALL over the server's control_rate (not executed)
RATE_RETRY_FIRST = 0.05  # s before the first retry of a rate-limited subscription, doubling to 1 s
QUEUED_BATCHES = 64  # batches waiting for the hub before the socket stops being read (the server conflates)
COALESCE = 4096  # ticks: frames that arrive while the hub has not taken the last batch join it up to this
_TRADING_DAY_AT = structs.layout(structs.TICK_CLASS).offsets[structs.layout(structs.TICK_CLASS).members.index("TradingDay")]


class PackedTicks:
    """A batch of ticks as the frames brought them: ``len()`` at once, the tick objects made when
    it is iterated (on the consuming thread, not the IO loop)."""

    __slots__ = ("_parts", "_count")

    def __init__(self, payload: bytes, offset: int, count: int) -> None:
        self._parts = [(payload, offset, count)]
        self._count = count

    def add(self, payload: bytes, offset: int, count: int) -> None:
        self._parts.append((payload, offset, count))
        self._count += count

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Any]:
        for payload, offset, count in self._parts:
            yield from structs.unpack_ticks(payload, count, offset)


def _token(text: str) -> str:
    if any(c in text for c in "\r\n\0"):
        raise ValueError("expected the token as plain text (no line breaks or NUL)")
    return text


def parse_address(url: FrontURL) -> tuple[str, int, str]:
    """``(host, port, source)`` of a ``ctpshim://`` (or ``ctpshims://``) address; ``ValueError``
    naming the bad part."""
    scheme = url.scheme or "ctpshim"
    if not url.host:
        raise ValueError(f"{scheme}:// needs the server's host and port, e.g. {scheme}://127.0.0.1:{DEFAULT_PORT}")
    if url.port is None:
        raise ValueError(f"{scheme}://{url.host} has no port; write {scheme}://{url.host}:PORT "
                         f"(the binary port of ctpshim serve, {DEFAULT_PORT} by default)")
    if url.port == 0:
        raise ValueError(f"{scheme}://{url.host}:0: port 0 is not a server's port; expected 1 to 65535")
    source = url.path.strip("/")
    if source and not _SOURCE.match(source):
        raise ValueError(f"{scheme}:// source {source!r} (the path) is not a source name: expected letters, "
                         f"digits, '_' and '-' only, e.g. {scheme}://host:port/sim")
    return url.host, url.port, source


def _ca_file(text: str) -> str:
    """A PEM file of certificates to trust, loaded once here so a bad one is named at RegisterFront."""
    from pathlib import Path

    path = Path(text).expanduser()
    if not text.strip():
        raise ValueError("expected the path of a PEM file of CA certificates")
    if not path.is_file():
        raise ValueError("no such file" if not path.exists() else "not a file")
    try:
        ssl.create_default_context(cafile=str(path))
    except ssl.SSLError as exc:
        raise ValueError(f"not a PEM file of certificates ({exc.reason or exc})") from None
    except OSError as exc:
        raise ValueError(f"cannot be read: {exc.strerror or exc}") from None
    return str(path)


def client_ssl_context(ca: str, verify: bool) -> ssl.SSLContext:
    """The ``SSLContext`` of a ``ctpshims://`` link: the system's roots (or ``ca``'s certificates)
    and the host name checked; with ``verify`` false, nothing checked."""
    context = ssl.create_default_context(cafile=ca or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class CtpshimAdapter(Adapter):
    """Market data from a ``ctpshim serve`` server (see the module docstring)."""

    scheme = "ctpshim"
    settings = (
        Setting("token", _token, "", "the server's access token"),
        Setting("heartbeat", number(0, 3600), 5.0, "seconds idle before the client sends a heartbeat"),
        Setting("timeout", number(0, 3600), 20.0, "seconds of silence from the server before the link is lost"),
        Setting("connect_timeout", number(0, 600), 5.0, "seconds to connect and finish the handshake"),
        Setting("call_timeout", number(0, 600), 10.0, "seconds a trader request waits for its return code"),
    )
    capabilities = Capabilities(depth_levels=5, has_instruments=True, can_trade=True, remote_trader=True)

    @classmethod
    def check(cls, url: FrontURL, settings: dict[str, Any]) -> None:
        parse_address(url)

    @classmethod
    def open_trader_backend(cls, context: "BackendContext") -> "RemoteTrader":
        """The backend of a tdapi object on these fronts (not started): its trader runs in the server."""
        from .trader import RemoteTrader

        return RemoteTrader(context, cls)

    def __init__(self, url: FrontURL, settings: dict[str, Any]) -> None:
        super().__init__(url, settings)
        self.host, self.port, self.source = parse_address(url)
        self.link: Link | None = None
        self.ack: dict[str, Any] = {}
        self._day: str | None = None
        self._instruments: list[Any] = []
        self._wanted: set[str] = set()
        self._batches: collections.deque[Any] = collections.deque()
        self._wake: asyncio.Event | None = None
        self._paused = False
        self._newest = 0.0  # monotonic time of the newest tick received
        self._day_bytes = b""

    # -- the connection ------------------------------------------------------------------------

    async def open_link(self, api: str, extra: dict[str, Any] | None = None) -> Link:
        """A handshaken connection to the server for ``api`` (``"md"`` or ``"td"``)."""
        hello = {"magic": frames.MAGIC, "version": frames.PROTOCOL_VERSION, "api": api, "source": self.source,
                 "token": self.config["token"], "layout": structs.LAYOUT_ID, "client": f"ctpshim {api} (python)"}
        hello.update(extra or {})
        return await Link.open(self.host, self.port, hello, connect_timeout=self.config["connect_timeout"],
                               heartbeat=self.config["heartbeat"], timeout=self.config["timeout"],
                               label=f"{self.scheme}://{self.host}:{self.port}" + (f"/{self.source}" if self.source else ""),
                               ssl_context=self.ssl_context())

    def ssl_context(self) -> ssl.SSLContext | None:
        """``None``: plain TCP (``ctpshim://``)."""
        return None

    async def connect(self) -> None:
        link = await self.open_link("md")
        self.link, self.ack = link, link.ack
        self._wake = asyncio.Event()
        link.on_ticks = self._on_ticks
        link.on_callback = self._on_callback
        link.lost.add_done_callback(lambda _: self._wake.set() if self._wake is not None else None)
        self._day = str(self.ack.get("trading_day") or "") or None
        self._day_bytes = (self._day or "").encode()
        listed = self.ack.get("instruments")
        self._instruments = [i for i in (_instrument(item, self._day) for item in
                                         (listed if isinstance(listed, list) else [])) if i is not None]

    async def close(self) -> None:
        link, self.link = self.link, None
        if link is not None:
            await link.close()

    # -- subscriptions ---------------------------------------------------------------------------

    async def subscribe(self, ids: Iterable[str]) -> None:
        wanted = list(dict.fromkeys(ids))
        self._wanted.update(wanted)
        await self._subscription("SubscribeMarketData", wanted)
        if self._instruments:
            known = {i.instrument_id for i in self._instruments}
            self.warn_unknown([i for i in wanted if i not in known], "not an instrument of the server's source")

    async def unsubscribe(self, ids: Iterable[str]) -> None:
        gone = list(dict.fromkeys(ids))
        self._wanted.difference_update(gone)
        await self._subscription("UnSubscribeMarketData", gone)
        # None come after the RESULT; the ones already queued are taken out here (made now, rarely).
        dropped = set(gone)
        self._batches = collections.deque(
            kept for kept in ([t for t in batch if t.InstrumentID not in dropped] for batch in self._batches) if kept)

    async def _subscription(self, method: str, ids: list[str]) -> None:
        link = self._live()
        encoded = [i.encode("gb18030") for i in ids]
        deadline = time.monotonic() + self.config["call_timeout"]
        pause = RATE_RETRY_FIRST
        while True:
            code = await link.call(method, (encoded, len(encoded)), self.config["call_timeout"])
            if code != RATE_LIMITED or time.monotonic() + pause > deadline:
                break
            # Over the server's control_rate: the CALL was not executed; try again once the bucket refills.
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)
        if code != 0:
            if link.lost.done():
                raise UpstreamDisconnected(f"{link.label}: the link was lost during {method}", link.lost.result())
            raise UpstreamProtocolError(f"{link.label}: {method} of {len(ids)} instrument(s) returned {code}")

    def _live(self) -> Link:
        link = self.link
        if link is None:
            raise UpstreamUnavailable(f"{self.scheme}://{self.host}:{self.port}: not connected")
        if link.lost.done():
            raise UpstreamDisconnected(f"{link.label}: the link was lost", link.lost.result())
        return link

    # -- ticks -------------------------------------------------------------------------------------

    def _on_ticks(self, frame: Any) -> None:
        """A TICK or TICK_BATCH frame, on the IO loop: checked for size and queued unpacked (the
        ticks are made when the consuming thread iterates the batch)."""
        payload = frame.payload
        if frame.type == frames.FrameType.TICK:
            count, offset = 1, 0
        else:
            count, offset = int.from_bytes(payload[:2], "little"), 2
        if len(payload) != offset + count * structs.TICK_SIZE:
            assert self.link is not None
            self.link._fail(REASON_BAD_MESSAGE, f"{frame.type_name} frame of {len(payload)} bytes does not hold "
                            f"{count} tick(s) of {structs.TICK_SIZE} bytes")
            return
        if not count:
            return
        self._newest = time.monotonic()
        last = offset + (count - 1) * structs.TICK_SIZE + _TRADING_DAY_AT
        day = payload[last:last + 8]
        if day != self._day_bytes and day.isdigit():  # the source's day moved on during this connection
            self._day_bytes, self._day = day, day.decode()
        queued = self._batches
        if queued and isinstance(queued[-1], PackedTicks) and len(queued[-1]) < COALESCE:
            queued[-1].add(payload, offset, count)  # not taken yet: one batch for the consumer
        else:
            queued.append(PackedTicks(payload, offset, count))
        if self._wake is not None:
            self._wake.set()
        if len(queued) >= QUEUED_BATCHES and not self._paused and self.link is not None:
            self._paused = True
            self.link.pause_reading()

    def _on_callback(self, name: str, args: tuple[Any, ...]) -> None:
        if name == "OnFrontDisconnected" and self.link is not None:  # the server's source went down
            self.link._fail(int(args[0]) if args else REASON_READ_FAILED, "the server's source is down")
        elif name == "OnRspSubMarketData" and len(args) > 1 and args[1] is not None and args[1].ErrorID:
            instrument = args[0].InstrumentID if args[0] is not None else "?"
            log.warning("%s: the server refused the subscription of %s: %s (ErrorID %d)", self.link.label
                        if self.link else self.url.raw, instrument, args[1].ErrorMsg, args[1].ErrorID)

    async def ticks(self) -> AsyncIterator[Any]:
        while True:
            link = self.link
            wake = self._wake
            if link is None or wake is None:
                raise UpstreamUnavailable(f"{self.scheme}://{self.host}:{self.port}: not connected")
            if self._batches:
                batch = self._batches.popleft()
                if self._paused and len(self._batches) < QUEUED_BATCHES // 2:
                    self._paused = False
                    link.resume_reading()
                yield batch
                continue
            if link.lost.done():
                raise UpstreamDisconnected(f"{link.label}: the link to the server was lost", link.lost.result())
            wake.clear()
            await wake.wait()

    # -- what the source knows ---------------------------------------------------------------

    def instruments(self) -> list[Any]:
        return list(self._instruments)

    def trading_day(self) -> str | None:
        return self._day

    async def probe(self) -> dict[str, Any]:
        """One round trip (an empty SubscribeMarketData CALL and its RESULT) and what the server
        said about itself in its HELLO_ACK."""
        link = self._live()
        started = time.perf_counter()
        code = await link.call("SubscribeMarketData", ([], 0), self.config["call_timeout"])
        round_trip = (time.perf_counter() - started) * 1000
        if code != 0:
            raise UpstreamProtocolError(f"{link.label}: the probe's CALL returned {code}")
        details: dict[str, Any] = {
            "round_trip_ms": round(round_trip, 2),
            "protocol_version": self.ack.get("version"),
            "source": self.ack.get("source", self.source),
            "trading_day": self._day,
            "server_time": self.ack.get("server_time"),
            "instruments": len(self._instruments),
            "heartbeat_s": self.ack.get("heartbeat"),
        }
        if link.tls_version:
            details["tls"] = link.tls_version
        if self._newest:
            details["age_s"] = round(time.monotonic() - self._newest, 1)
        return json.loads(json.dumps(details, default=str))


class CtpshimsAdapter(CtpshimAdapter):
    """``ctpshims://``: :class:`CtpshimAdapter` over TLS (see the module docstring)."""

    scheme = "ctpshims"
    summary = ("ctpshims://host:port[/source]: ctpshim:// over TLS, to a `ctpshim serve --tls-cert ... --tls-key ...`; "
               "the certificate is checked against the system's roots (?ca=FILE: that file's; ?verify=0: none, tests only).")
    settings = CtpshimAdapter.settings + (
        Setting("ca", _ca_file, "", "a PEM file of the certificate(s) to trust instead of the system's roots"),
        Setting("verify", boolean, True, "0 = do not check the server's certificate at all (self-signed tests only)"),
    )

    @classmethod
    def check(cls, url: FrontURL, settings: dict[str, Any]) -> None:
        parse_address(url)
        if settings.get("ca") and not settings.get("verify", True):
            raise ValueError("ca= and verify=0 contradict each other: ca= trusts that file's certificates, "
                             "verify=0 checks none; give one of them")

    def ssl_context(self) -> ssl.SSLContext:
        return client_ssl_context(self.config["ca"], self.config["verify"])


def _instrument(item: Any, day: str | None) -> Any:
    """An ``InstrumentInfo``/``StockInfo`` from one entry of the server's instrument list."""
    from datetime import date

    if isinstance(item, str):
        item = {"InstrumentID": item}
    if not isinstance(item, dict) or not isinstance(item.get("InstrumentID"), str):
        return None
    instrument_id = item["InstrumentID"]
    today = date(int(day[:4]), int(day[4:6]), int(day[6:8])) if day and len(day) == 8 and day.isdigit() else None
    info = parse_instrument(instrument_id, today)
    if info is not None:
        return info
    exchange = item.get("ExchangeID")
    if isinstance(exchange, str) and exchange in ("SSE", "SZSE", "BSE", "HKEX"):
        code = instrument_id[2:] if instrument_id[:2].lower() in ("sh", "sz", "bj", "hk") else instrument_id
        return StockInfo(instrument_id, exchange, code, str(item.get("InstrumentName", "")))
    return None
