"""The server: its sources' feeds, its endpoints (binary, HTTP, Redis), its clients and counters.

Everything runs on the IO loop (:mod:`ctpshim.runtime.io_loop`); :meth:`Server.start` and
:meth:`Server.stop` are called from another thread and wait for it.  Endpoints are optional
modules, started when they import: ``ctpshim.server.binary.start_binary(server)`` (an
``asyncio.Server``), ``ctpshim.server.web.start_web(server)`` (an ``aiohttp.web.AppRunner``, when
``settings.http`` is set) and ``ctpshim.server.redis_bus.RedisPublisher(server, settings.redis)``
(when ``settings.redis`` is set).

With ``settings.tls`` both listeners take :attr:`Server.ssl_context` (``ctpshims://``, ``https``/
``wss``).  Each new connection passes :meth:`Server.admit_binary` / :meth:`Server.admit_web` first:
the per-IP new-connection limit (``limits.connection_rate`` per ``limits.connection_window``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib
import inspect
import logging
from pathlib import Path
from typing import Any, Callable

from ..runtime import io_loop
from .fanout import SourceFeed
from .limits import AuthError, ConnectionLimiter, LimitError, tokens_match
from .metrics import Metrics
from .settings import ServeSettings

log = logging.getLogger("ctpshim.server")

START_TIMEOUT = 30.0  # s Server.start waits for the IO loop (adapter checks may read files)
ANONYMOUS = "anonymous"
REFUSAL_READ = 0.5  # s a refused binary connection is read (its HELLO) and given to flush the ERROR


class ClientInfo:
    """One connected client, as the server lists it (``/health``, ``/metrics``, the status line).

    A protocol makes one per connection and passes it to :meth:`Server.register`.  ``subscriptions``,
    ``delivered`` and ``conflated`` are read from ``subscriber`` (on ``feed``) and ``channel`` when
    given, else from the plain attributes the protocol keeps.  ``close``, when given, is called by
    :meth:`Server.stop` to disconnect the client (it may return an awaitable).
    """

    def __init__(self, name: str, protocol: str, peer: str = "", source: str = "", *,
                 channel: Any = None, feed: SourceFeed | None = None, subscriber: Any = None,
                 close: Callable[[], Any] | None = None) -> None:
        self.name = name
        self.protocol = protocol  # "binary" | "webctp-md" | "webctp-td" | "diff"
        self.peer = peer
        self.source = source
        self.channel = channel
        self.feed = feed
        self.subscriber = subscriber
        self.close = close
        self._subscriptions = 0
        self._delivered = 0
        self._conflated = 0

    def __repr__(self) -> str:
        return f"<ClientInfo {self.name} {self.protocol} {self.peer} {self.source}>"

    @property
    def subscriptions(self) -> int:
        if self.feed is not None and self.subscriber is not None:
            return len(self.feed.subscriptions(self.subscriber))
        return self._subscriptions

    @subscriptions.setter
    def subscriptions(self, value: int) -> None:
        self._subscriptions = value

    @property
    def delivered(self) -> int:
        return self.channel.delivered if self.channel is not None else self._delivered

    @delivered.setter
    def delivered(self, value: int) -> None:
        self._delivered = value

    @property
    def conflated(self) -> int:
        return self.channel.conflated if self.channel is not None else self._conflated

    @conflated.setter
    def conflated(self, value: int) -> None:
        self._conflated = value


def _optional(module: str) -> Any:
    """``module`` if it exists; ``None`` when it is not there (an error inside it is raised)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None
        raise


class Server:
    """``ctpshim serve``'s server (see the module docstring).

    Attributes after :meth:`start`: ``binary_address`` and ``http_address`` (what was actually
    bound; ``None`` when that endpoint is off or its module is absent), ``feeds`` (name ->
    :class:`~ctpshim.server.fanout.SourceFeed`), ``clients`` (the registered
    :class:`ClientInfo` objects), ``metrics``, ``home`` (where the server keeps flow files).
    """

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.binary_address: tuple[str, int] | None = None
        self.http_address: tuple[str, int] | None = None
        self.feeds: dict[str, SourceFeed] = {}
        self.clients: list[ClientInfo] = []
        self.home = Path(settings.home) if settings.home else _default_home()
        self.started = False
        self.ssl_context: Any = None  # ssl.SSLContext once started with settings.tls
        limits = settings.limits
        self.connection_limiter = ConnectionLimiter(limits.connection_rate, limits.connection_window)
        self._binary: Any = None
        self._web: Any = None
        self._redis: Any = None
        self._stopping = False

    def __repr__(self) -> str:
        return f"<Server binary={self.binary_address} http={self.http_address} sources={list(self.settings.sources)}>"

    # -- life (any thread but the IO thread) ----------------------------------------------------

    def start(self) -> None:
        """Check the sources, start their feeds and every endpoint; return once listening.

        Raises ``ValueError`` (a bad source address, naming it) or ``OSError`` (an address in
        use ...), after undoing what had started."""
        if io_loop.on_io_thread():
            raise RuntimeError("Server.start() waits for the IO loop: call it from another thread")
        if self.started:
            return
        self._check_sources()
        if self.settings.tls is not None:
            self.ssl_context = self.settings.tls.context()  # ValueError naming the file
        self.home.mkdir(parents=True, exist_ok=True)
        future = io_loop.submit(self._start())
        try:
            future.result(START_TIMEOUT)
        except concurrent.futures.TimeoutError:
            future.cancel()
            self.stop()
            raise OSError(f"the server did not start within {START_TIMEOUT:g} s") from None
        except BaseException:
            self.stop()
            raise
        self.started = True

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnect every client, close the listeners and the feeds (at most ``timeout`` s)."""
        if io_loop.on_io_thread():
            raise RuntimeError("Server.stop() waits for the IO loop: call it from another thread")
        future = io_loop.submit(self._stop(timeout))
        try:
            future.result(timeout + 1.0)
        except concurrent.futures.TimeoutError:
            log.warning("the server did not stop within %g s", timeout)
        self.started = False

    def _check_sources(self) -> None:
        from ..errors import FrontAddressError
        from ..fronts import registry

        for name, url in self.settings.sources.items():
            try:
                registry.validate_front(url)
            except FrontAddressError as exc:
                raise ValueError(f"source {name} = {url!r}: {exc}") from None

    async def _start(self) -> None:
        for name, url in self.settings.sources.items():
            feed = SourceFeed(name, url)
            self.feeds[name] = feed
            await feed.start()
        binary = _optional("ctpshim.server.binary")
        if binary is not None:
            self._binary = await binary.start_binary(self)
            self.binary_address = _bound(self._binary.sockets)
        else:
            log.warning("the binary protocol is not available (no ctpshim.server.binary)")
        if self.settings.http is not None:
            web = _optional("ctpshim.server.web")
            if web is not None:
                self._web = await web.start_web(self)
                self.http_address = _runner_address(self._web, self.settings.http)
            else:
                log.warning("the HTTP endpoint is not available (no ctpshim.server.web)")
        if self.settings.redis is not None:
            bus = _optional("ctpshim.server.redis_bus")
            if bus is None:
                raise ValueError("redis: publishing to Redis is not available (no ctpshim.server.redis_bus)")
            self._redis = bus.RedisPublisher(self, self.settings.redis)
            await self._redis.start()

    async def _stop(self, timeout: float) -> None:
        self._stopping = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        binary, self._binary = self._binary, None
        if binary is not None:
            binary.close()  # no new connections
        closing = []
        for info in list(self.clients):
            if info.close is not None:
                try:
                    result = info.close()
                except Exception:  # noqa: BLE001 - the others are closed anyway
                    log.exception("closing client %s failed", info.name)
                    continue
                if inspect.isawaitable(result):
                    closing.append(asyncio.ensure_future(result))
        if closing:
            await asyncio.wait(closing, timeout=max(0.1, deadline - loop.time()))
        web, self._web = self._web, None
        if web is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(web.cleanup(), max(0.1, deadline - loop.time()))
        redis, self._redis = self._redis, None
        if redis is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(redis.stop(), max(0.1, deadline - loop.time()))
        if binary is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(binary.wait_closed(), max(0.1, deadline - loop.time()))
        for feed in list(self.feeds.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(feed.stop(), max(0.1, deadline - loop.time()))
        self._stopping = False

    # -- used by the protocols (IO loop) --------------------------------------------------------

    def feed(self, source: str | None) -> SourceFeed:
        """The feed of ``source`` (``None`` or ``""``: the default, the first); ``KeyError`` naming
        the valid sources."""
        if not source:
            source = next(iter(self.settings.sources))
        feed = self.feeds.get(source)
        if feed is None:
            raise KeyError(f"no source {source!r}; this server has: {', '.join(self.settings.sources)}")
        return feed

    def authenticate(self, token: str | None) -> str:
        """The client name of ``token``; ``AuthError("bad token")`` if none matches (every token is
        compared, in constant time).  With no tokens configured every client is ``anonymous``."""
        tokens = self.settings.tokens
        if not tokens:
            return ANONYMOUS
        given = token if isinstance(token, str) else ""
        found = None
        for candidate in tokens:
            if tokens_match(given, candidate.secret) and found is None:
                found = candidate.name
        if found is None:
            self.metrics.rejected["auth"] += 1
            raise AuthError("bad token")
        return found

    def register(self, client: ClientInfo) -> None:
        """List a connected client; ``LimitError`` past ``limits.max_clients`` (refuse it then)."""
        if self._stopping:
            raise LimitError("the server is shutting down")
        if len(self.clients) >= self.settings.limits.max_clients:
            self.metrics.rejected["max_clients"] += 1
            raise LimitError(f"too many clients: {len(self.clients)} connected, the limit is "
                             f"{self.settings.limits.max_clients} (limits.max_clients)")
        if client not in self.clients:
            self.clients.append(client)

    def unregister(self, client: ClientInfo) -> None:
        with contextlib.suppress(ValueError):
            self.clients.remove(client)

    def admit(self, peer: Any, protocol: str) -> str | None:
        """Count a new connection from ``peer`` (an address tuple or ``"host[:port]"``) against the
        per-IP limit; ``None`` when admitted, else the refusal's text (counted in
        ``rejected["connection_rate"]``, logged once per burst)."""
        address = _peer_host(peer)
        admitted, refused = self.connection_limiter.admit(address)
        limits = self.settings.limits
        if admitted:
            if refused > 1:
                log.info("%s: the burst of new connections ended; %d refused in it (limits.connection_rate)",
                         address, refused)
            return None
        self.metrics.rejected["connection_rate"] += 1
        text = (f"too many new connections from {address}: more than {limits.connection_rate} in "
                f"{limits.connection_window:g} s (limits.connection_rate); try again later")
        if refused == 1:
            log.warning("%s connection refused: %s; the further refusals of this burst are counted, not logged",
                        protocol, text)
        return text

    async def admit_binary(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """The binary listener's check of a new connection: ``True`` to serve it; else it got
        ERROR -429 with the reason and is closed (``False``)."""
        refusal = self.admit(writer.get_extra_info("peername"), "binary")
        if refusal is None:
            return True
        from ..wire import frames, handshake

        try:
            # Read what the client sent first (its HELLO), so closing does not reset the link
            # before the client has read the ERROR.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(reader.read(1 << 16), REFUSAL_READ)
            error = handshake.ErrorInfo(handshake.E_TOO_SLOW, refusal, 0x1001).encode()
            writer.write(frames.encode_frame(frames.FrameType.ERROR, error, seq=1))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(writer.drain(), REFUSAL_READ)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
        return False

    def admit_web(self, request: Any) -> None:
        """The HTTP listener's check of a new WebSocket: raises HTTP 429 (with ``Retry-After`` and
        the reason) when the peer is over the per-IP limit."""
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        refusal = self.admit(peer or request.remote or "", "websocket")
        if refusal is not None:
            from aiohttp import web

            retry = max(1, round(self.settings.limits.connection_window))
            raise web.HTTPTooManyRequests(text=f"{refusal}\n", headers={"Retry-After": str(retry)})

    # -- views (any thread) ---------------------------------------------------------------------

    def addresses(self) -> list[str]:
        """What the server listens on, as URLs (the lines ``ctpshim serve`` prints)."""
        lines = []
        secure = self.settings.tls is not None
        if self.binary_address is not None:
            lines.append(f"{'ctpshims' if secure else 'ctpshim'}://{_hostport(self.binary_address)}")
        if self.http_address is not None:
            lines.append(f"{'https' if secure else 'http'}://{_hostport(self.http_address)}/")
        return lines

    def health(self) -> dict[str, Any]:
        return self.metrics.health(self)

    def render_prometheus(self) -> str:
        return self.metrics.render_prometheus(self)


def _default_home() -> Path:
    from ..broker.settings import home

    return home() / "serve"


def _bound(sockets: Any) -> tuple[str, int] | None:
    for sock in sockets or ():
        name = sock.getsockname()
        return str(name[0]), int(name[1])
    return None


def _runner_address(runner: Any, wanted: tuple[str, int]) -> tuple[str, int]:
    for address in getattr(runner, "addresses", None) or ():
        if isinstance(address, tuple) and len(address) >= 2:
            return str(address[0]), int(address[1])
    return wanted


def _peer_host(peer: Any) -> str:
    """The IP address of a peer: from ``(host, port, ...)``, else ``"host:port"`` text as given."""
    if isinstance(peer, (tuple, list)) and peer:
        return str(peer[0])
    text = str(peer or "")
    if text.startswith("[") and "]" in text:
        return text[1:text.index("]")]
    if text.count(":") == 1:
        return text.partition(":")[0]
    return text


def _hostport(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
