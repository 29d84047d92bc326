"""The server's HTTP endpoint (aiohttp), on ``settings.http``.

========================  =======================================================================
``GET /``                 the web page (``page/index.html``)
``GET /static/<file>``    the page's other files (``page/``: ``app.js``, ``style.css`` ...)
``/md/``, ``/td/``        webctp JSON over WebSocket (:mod:`.webctp`)
``/diff``                 TianQin's DIFF over WebSocket (:mod:`.diff`)
``GET /symbols.json``     the source's instruments in tqsdk's ``_stock=False`` format
                          (``?source=<name>``; :func:`symbols`)
``GET /health``           JSON: status, sources, clients per protocol, counters
``GET /metrics``          Prometheus text (``ctpshim_clients{protocol=...}`` ...)
========================  =======================================================================

A WebSocket message larger than ``limits.max_frame`` closes that connection (1009), a text frame that
is not UTF-8 too (1007).  A close this side starts (its last message, the close frame and the
handshake) gets ``limits.write_deadline`` seconds; a peer that reads nothing is then dropped.  Tokens:
``?token=`` or ``Authorization: Bearer`` (not on ``/diff``: tqsdk sends Shinny's token there), or
the protocol's first message; a bad token in the URL or header is refused before the handshake with
HTTP 403.  A peer over the server's per-IP connection rate (``Server.admit_web``) gets HTTP 429 before
that; with ``Server.ssl_context`` the endpoint is https/wss.  ``/health``, ``/metrics``, ``/symbols.json`` and the page need no token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from aiohttp import WSMsgType, web
from aiohttp.abc import AbstractStreamWriter

from ..ctp import clock, products
from .channel import ClientChannel
from .limits import AuthError, LimitError, RateLimiter

if TYPE_CHECKING:
    from .server import ClientInfo, Server

log = logging.getLogger("ctpshim.server")

PAGE = Path(__file__).with_name("page")
SERVER_KEY: web.AppKey["Server"] = web.AppKey("server")
SOURCE_UP_WAIT = 5.0  # s /symbols.json waits for a source that is still connecting
WS_PING_INTERVAL = 20.0  # s between WebSocket pings; a pong missing for half of it closes the socket


# ---- shared by the WebSocket protocols ------------------------------------------------------

def request_token(request: web.Request, bearer: bool) -> str | None:
    """The token a client gave in the URL (``?token=``) or, when ``bearer``, in
    ``Authorization: Bearer``; ``None`` when neither is there."""
    token = request.query.get("token")
    if token is None and bearer:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            token = value.strip()
    return token


def authenticate_request(server: "Server", request: web.Request, bearer: bool) -> str | None:
    """The client's name from the URL's or header's token; ``None`` when none was given and the
    server needs one (it must come in the first message).  A bad token: HTTP 403 before accept."""
    token = request_token(request, bearer)
    try:
        return server.authenticate(token)
    except AuthError as exc:
        if token is None:
            return None
        log.info("refused %s on %s: %s", request.remote, request.path, exc)
        raise web.HTTPForbidden(text=f"{exc}\n") from None


def client_channel(server: "Server", name: str, send: Callable[[list[Any], list[Any]], Awaitable[None]],
                   on_cut_off: Callable[[str], None]) -> ClientChannel:
    return ClientChannel(name, send, server.settings.limits, server.metrics, on_cut_off)


def client_info(server: "Server", name: str, protocol: str, request: web.Request, source: str,
                **extra: Any) -> "ClientInfo":
    from .server import ClientInfo

    peer = request.remote or ""
    if request.transport is not None:
        address = request.transport.get_extra_info("peername")
        if isinstance(address, tuple) and len(address) >= 2:
            peer = f"{address[0]}:{address[1]}"
    if "subscriber" in extra:
        extra.setdefault("feed", server.feed(source))
    return ClientInfo(name, protocol, peer, source, **extra)


def register(server: "Server", info: "ClientInfo") -> None:
    """List the client; past ``limits.max_clients`` (or while stopping) HTTP 503 before accept."""
    try:
        server.register(info)
    except LimitError as exc:
        raise web.HTTPServiceUnavailable(text=f"{exc}\n") from None


async def open_socket(server: "Server", request: web.Request,
                      compress: bool = True) -> tuple[web.WebSocketResponse, AbstractStreamWriter]:
    """Accept the WebSocket handshake with the server's frame limit and WebSocket pings;
    ``compress``: accept permessage-deflate when the client offers it.  The socket and its
    stream writer (whose ``drain()`` waits for the transport's buffer to come down)."""
    ws = web.WebSocketResponse(max_msg_size=server.settings.limits.max_frame, heartbeat=WS_PING_INTERVAL,
                               autoping=True, compress=compress)
    stream = await ws.prepare(request)
    return ws, stream


def dumps(message: dict[str, Any]) -> str:
    """One message as JSON text: UTF-8 as is, never NaN or Infinity (ValueError if one slipped in)."""
    return json.dumps(message, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def close_reason(reason: str) -> bytes:
    """A WebSocket close reason: at most 123 bytes of UTF-8, cut on a character boundary."""
    return reason.encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")


def _abort_unsent(transport: asyncio.BaseTransport) -> None:
    if isinstance(transport, asyncio.WriteTransport) and transport.get_write_buffer_size():
        transport.abort()


class WebSocketClient:
    """What every WebSocket client (webctp, DIFF) holds, and how it is closed.

    ``feed``: its source's shared feed; ``limits``: the server's; ``rate``: its control-message
    budget (``limits.control_rate``, ``limits.control_burst``); ``info``: its listing (subscriber
    itself, closed by :meth:`_server_close` when the server stops); ``name``: the client's name from
    its token, ``"anonymous"`` while the token is still owed (``authenticated`` false).  ``closing``
    is the reason once a close has started.  ``transport``: the connection's, once accepted;
    ``stream``: its stream writer (``drain()``) when this side may write whole WebSocket frames to
    ``transport`` itself (no compression was negotiated), else None (frames through ``ws`` only).
    A subclass sets ``protocol`` and writes :meth:`run`, which ends by awaiting
    :meth:`_closed_by_us`; :meth:`_stop_writer` ends its writer.
    """

    protocol = ""

    def __init__(self, server: "Server", request: web.Request, ws: web.WebSocketResponse,
                 name: str | None, source: str | None) -> None:
        self.server = server
        self.request = request
        self.ws = ws
        self.transport: asyncio.Transport | None = None
        self.stream: AbstractStreamWriter | None = None
        self.name = name or "anonymous"
        self.authenticated = name is not None
        self.feed = server.feed(source)
        self.limits = server.settings.limits
        self.rate = RateLimiter(self.limits.control_rate, self.limits.control_burst)
        self.strikes = 0
        self.closing: str | None = None
        self.info = client_info(server, self.name, self.protocol, request, self.feed.name, subscriber=self,
                                close=self._server_close)
        self._first = True  # the next message is the first (it may carry the token)
        self._closer: asyncio.Future[None] | None = None

    def accept_token(self, token: str | None) -> None:
        """Take the token of the first message; ``AuthError`` when it is bad or missing."""
        self.name = self.server.authenticate(token)
        self.info.name = self.name
        self.authenticated = True

    def check_rate(self) -> str | None:
        """``None`` when a control message is within ``limits.control_rate`` (strikes start again);
        else it is dropped (counted) and the verdict is ``"refuse"``, or ``"close"`` once the client
        has been over the rate more than ``limits.control_burst`` times in a row."""
        if self.rate.allow():
            self.strikes = 0
            return None
        self.strikes += 1
        self.server.metrics.dropped += 1
        return "close" if self.strikes > self.limits.control_burst else "refuse"

    def _stop_writer(self) -> None:
        """End the connection's writer: nothing more is sent but the close's last message."""

    def close(self, code: int, reason: str, final: str | None = None) -> None:
        """Close with ``code`` and ``reason`` (once), sending the text ``final`` first when given."""
        if self.closing is None:
            self.closing = reason
            self._closer = asyncio.ensure_future(self._close(code, reason, final))

    async def _close(self, code: int, reason: str, final: str | None) -> None:
        self._stop_writer()
        await self._bounded_close(code, close_reason(reason), final)

    async def _bounded_close(self, code: int, reason: bytes, final: str | None) -> None:
        """``final`` (when given), then the close frame and handshake, all within
        ``limits.write_deadline``; past it (a peer that reads nothing) the connection is dropped."""
        async def handshake() -> None:
            if final is not None and not self.ws.closed:
                await self.ws.send_str(final)
            await self.ws.close(code=code, message=reason)

        transport = self.transport
        try:
            await asyncio.wait_for(handshake(), self.limits.write_deadline)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            # not this task's cancellation: aiohttp's drain waiter (one future for every waiter)
            # was cancelled under it
            if transport is not None:
                transport.abort()
            return
        except (asyncio.TimeoutError, ConnectionError, OSError, RuntimeError):
            if transport is not None:
                transport.abort()
            return
        if transport is not None and transport.get_write_buffer_size():
            # closing, but the peer has not read what waits (aiohttp's close of the transport
            # waits for that): dropped unless it drains within the deadline
            asyncio.get_running_loop().call_later(self.limits.write_deadline, _abort_unsent, transport)

    async def _server_close(self) -> None:
        """The server stops: the client sees the socket close (1001, going away)."""
        self.closing = self.closing or "the server is shutting down"
        self._stop_writer()
        await self._bounded_close(1001, b"the server is shutting down", None)

    async def _closed_by_us(self) -> None:
        """Wait (bounded) for the close this side started, so the client gets its code and reason."""
        if self._closer is not None:
            await asyncio.wait({self._closer}, timeout=self.limits.write_deadline + 1.0)

    async def read(self) -> None:
        """Hand every text frame (and binary frame, as UTF-8) to :meth:`_on_text` until the socket
        closes, fails, or a close starts; a binary frame that is not UTF-8 goes to :meth:`_undecodable`.

        A close this message started makes the loop end at once: aiohttp's ``close()`` while this
        task waits in ``receive()`` drops the transport without the closing handshake, and the
        client, still sending, could then lose the close frame and its reason to a TCP reset."""
        async for msg in self.ws:
            if self.closing is not None:
                break
            if msg.type == WSMsgType.TEXT:
                await self._on_text(msg.data)
            elif msg.type == WSMsgType.BINARY:
                try:
                    text = msg.data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    self._undecodable(str(exc))
                else:
                    await self._on_text(text)
            elif msg.type == WSMsgType.ERROR:
                log.info("%s client %s: %s", self.protocol, self.name, self.ws.exception())
                break
            if self.closing is not None:
                break

    async def _on_text(self, text: str) -> None:
        raise NotImplementedError

    def _undecodable(self, detail: str) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        raise NotImplementedError


async def serve_socket(server: "Server", request: web.Request, connection_class: type[WebSocketClient],
                       bearer: bool, compress: bool) -> web.StreamResponse:
    """A WebSocket protocol's handler: the URL's token (``bearer``: also ``Authorization: Bearer``),
    ``?source=`` (an unknown one: HTTP 404), the client listed, the handshake (``compress``: accept
    permessage-deflate), then ``connection_class``'s :meth:`~WebSocketClient.run` until it ends."""
    admit = getattr(server, "admit_web", None)
    if admit is not None:
        admit(request)  # per-IP connection rate: HTTP 429 before anything else
    name = authenticate_request(server, request, bearer)
    source = request.query.get("source") or None
    try:
        server.feed(source)
    except KeyError as exc:
        raise web.HTTPNotFound(text=f"{exc.args[0] if exc.args else exc}\n") from None
    connection = connection_class(server, request, web.WebSocketResponse(), name, source)  # ws: set on accept
    register(server, connection.info)
    try:
        connection.ws, stream = await open_socket(server, request, compress)
        connection.transport = request.transport  # type: ignore[assignment]
        connection.stream = None if connection.ws.compress else stream
        await connection.run()
    finally:
        server.unregister(connection.info)
    return connection.ws


# ---- /symbols.json ---------------------------------------------------------------------------

def _clock_text(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"


_STOCK_HOURS = {"day": [["09:30:00", "11:30:00"], ["13:00:00", "15:00:00"]], "night": []}
_HK_HOURS = {"day": [["09:30:00", "12:00:00"], ["13:00:00", "16:00:00"]], "night": []}


def _trading_time(product: products.Product) -> dict[str, list[list[str]]]:
    """tqsdk's ``trading_time``: day and night spans as "HH:MM:SS"; past midnight 24+ hours."""
    day, night = products.SESSIONS[product.session]
    return {"day": [[_clock_text(a), _clock_text(b)] for a, b in day],
            "night": [[_clock_text(night[0]), _clock_text(night[1])]] if night else []}


def _expire_timestamp(day: Any) -> float:
    """tqsdk's ``expire_datetime``: the last trading day's 15:00 China time, as epoch seconds."""
    moment = datetime(day.year, day.month, day.day, 15, 0, tzinfo=clock.CHINA)
    return moment.timestamp()


def symbol_of(exchange_id: str, instrument_id: str) -> str:
    """tqsdk's instrument id: ``SHFE.rb2510``."""
    return f"{exchange_id}.{instrument_id}" if exchange_id else instrument_id


def symbol_entry(info: Any, today: Any) -> tuple[str, dict[str, Any]] | None:
    """One instrument in tqsdk's ``_stock=False`` format: (``"SHFE.rb2510"``, its object)."""
    from ..broker.terms import terms_for

    try:
        terms = terms_for(info)
    except Exception:  # noqa: BLE001 - an instrument the rate table cannot describe is left out
        log.debug("symbols.json: no terms for %r", info, exc_info=True)
        return None
    symbol = symbol_of(terms.ExchangeID, terms.InstrumentID)
    tick = terms.PriceTick
    decimals = f"{tick:.10f}".rstrip("0").split(".")[1] if "." in f"{tick:.10f}".rstrip("0") else ""
    entry: dict[str, Any] = {
        "class": "STOCK" if terms.is_stock else "FUTURE",
        "instrument_id": symbol,
        "exchange_id": terms.ExchangeID,
        "ins_id": terms.InstrumentID,
        "product_id": terms.ProductID,
        "price_tick": tick,
        "price_decs": len(decimals),
        "volume_multiple": terms.VolumeMultiple,
        "max_limit_order_volume": terms.MaxLimitOrderVolume,
        "max_market_order_volume": terms.MaxMarketOrderVolume,
        "min_limit_order_volume": 1,
        "min_market_order_volume": 1 if terms.MaxMarketOrderVolume else 0,
        "expired": False,
    }
    if terms.is_stock:
        entry["ins_name"] = info.name
        entry["trading_time"] = _HK_HOURS if terms.ExchangeID == "HKEX" else _STOCK_HOURS
    else:
        entry["ins_name"] = info.name
        entry["trading_time"] = _trading_time(info.product)
        entry["delivery_year"] = info.delivery_year
        entry["delivery_month"] = info.delivery_month
        expire = info.expire_date
        entry["expire_datetime"] = _expire_timestamp(expire)
        entry["expired"] = expire < today
        margin = _money_per_lot(terms)
        if margin is not None:
            entry["margin"], entry["commission"] = margin
    return symbol, entry


def _money_per_lot(terms: Any) -> tuple[float, float] | None:
    """An indicative margin and open commission per lot (TqSim needs both), at the product's
    typical price, from the rate table (``None`` when the table lacks a rate)."""
    rates = terms.rates
    try:
        price = terms.info.product.price
        value = price * terms.VolumeMultiple
        margin = value * max(rates.LongMarginRatioByMoney, rates.ShortMarginRatioByMoney) + max(
            rates.LongMarginRatioByVolume, rates.ShortMarginRatioByVolume)
        commission = value * rates.OpenRatioByMoney + rates.OpenRatioByVolume
    except AttributeError:
        return None
    if not (math.isfinite(margin) and math.isfinite(commission)):
        return None
    return round(margin, 2), round(commission, 2)


def symbols(infos: list[Any], today: Any) -> dict[str, dict[str, Any]]:
    """``/symbols.json``: every listed instrument keyed ``EXCHANGE.InstrumentID``."""
    out: dict[str, dict[str, Any]] = {}
    for info in infos:
        entry = symbol_entry(info, today)
        if entry is not None:
            out[entry[0]] = entry[1]
    return out


# ---- handlers ----------------------------------------------------------------------------------

async def _index(request: web.Request) -> web.StreamResponse:
    page = PAGE / "index.html"
    if not page.is_file():
        return web.Response(text="ctpshim serve: the web page is not installed (no page/index.html)\n",
                            status=404)
    return web.FileResponse(page)


async def _health(request: web.Request) -> web.Response:
    server = request.app[SERVER_KEY]
    body = server.metrics.health(server)
    return web.json_response(body, dumps=lambda value: json.dumps(value, ensure_ascii=False, allow_nan=False))


async def _metrics(request: web.Request) -> web.Response:
    server = request.app[SERVER_KEY]
    return web.Response(text=server.metrics.render_prometheus(server),
                        content_type="text/plain", headers={"X-Content-Type-Options": "nosniff"},
                        charset="utf-8")


async def _symbols(request: web.Request) -> web.Response:
    server = request.app[SERVER_KEY]
    try:
        feed = server.feed(request.query.get("source") or None)
    except KeyError as exc:
        raise web.HTTPNotFound(text=f"{exc.args[0]}\n") from None
    await feed.wait_up(SOURCE_UP_WAIT)
    body = symbols(feed.instruments(), clock.today())
    return web.json_response(body, dumps=lambda value: json.dumps(value, ensure_ascii=False, allow_nan=False))


async def start_web(server: "Server") -> web.AppRunner:
    """Start the HTTP endpoint on ``server.settings.http``; the runner (``await runner.cleanup()``
    stops it).  ``OSError`` when the address is in use."""
    from . import diff, webctp

    app = web.Application(client_max_size=server.settings.limits.max_frame)
    app[SERVER_KEY] = server

    async def md(request: web.Request) -> web.StreamResponse:
        return await webctp.serve(server, request, "md")

    async def td(request: web.Request) -> web.StreamResponse:
        return await webctp.serve(server, request, "td")

    async def diff_socket(request: web.Request) -> web.StreamResponse:
        return await diff.serve(server, request)

    app.router.add_get("/", _index)
    if PAGE.is_dir():
        app.router.add_static("/static/", PAGE, show_index=False, follow_symlinks=False)
    for path, handler in (("/md/", md), ("/md", md), ("/td/", td), ("/td", td), ("/diff", diff_socket),
                          ("/diff/", diff_socket)):
        app.router.add_get(path, handler)
    app.router.add_get("/symbols.json", _symbols)
    app.router.add_get("/health", _health)
    app.router.add_get("/metrics", _metrics)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    host, port = server.settings.http or ("127.0.0.1", 0)
    site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=getattr(server, "ssl_context", None))
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(exc.errno, f"the HTTP endpoint cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return runner
