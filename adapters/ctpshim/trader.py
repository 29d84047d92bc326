"""A tdapi object on a ``ctpshim://`` front: its trader runs in the server.

:class:`RemoteTrader` is the :class:`ctpshim.runtime.backends.Backend` of such an API object
(``CtpshimAdapter.open_trader_backend``).  It keeps a connection of its own to the server
(HELLO with ``api`` ``td``); the server makes a trader API of its own for it on the source's
simulated counter (:class:`ctpshim.server.trading.ServerTrader`), so every client on one account
shares that account.

* Every ``Req*`` is a CALL; the code in its RESULT is what the method returns, after a bounded
  wait (``call_timeout``; ``-1`` past it).  The wait is on the IO loop, never on the API's
  dispatcher, so a callback may call a request too.
* Every callback the server's trader makes comes back as a CALLBACK and is posted to this API
  object's dispatcher, in order, with the field objects of the API's own module.
* ``OnFrontConnected``: at HELLO_ACK, which the server sends once its trader is connected to
  the source.  The server's source going down: its ``OnFrontDisconnected(reason)``, then the
  server closes.  The link lost: ``OnFrontDisconnected`` with CTP's reason
  (0x1001 read failure or the server closed, 0x2001 heartbeat timeout, 0x2003 a malformed
  frame), then reconnecting after ``reconnect.RETRY_AFTER_DROP`` s, as CTP's library does; a
  server that cannot be reached (or refuses the token) is tried again every
  ``reconnect.RETRY_UNREACHABLE`` s, silently apart from the log.  The program logs in again
  from ``OnFrontConnected``, as with CTP.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Any

from ...ctp.fields import Field, from_values, values_of
from ...errors import UpstreamError
from ...runtime import io_loop, reconnect
from ...wire import handshake
from ...runtime.backends import NOT_SENT, TRADING_DAY_BEFORE_LOGIN, Backend, BackendContext, _fill_front_info
from .link import Link, ServerRefused

if TYPE_CHECKING:
    from . import CtpshimAdapter

log = logging.getLogger("ctpshim")

_CONFIGURATION_ERRORS = (handshake.E_BAD_TOKEN, handshake.E_UNKNOWN_SOURCE, handshake.E_MISMATCH)
_LINK_EVENTS = ("OnFrontConnected", "OnFrontDisconnected", "OnHeartBeatWarning")


def resume_modes(setup: list[tuple[str, tuple[Any, ...]]]) -> tuple[int, int]:
    """The program's ``SubscribePrivateTopic`` / ``SubscribePublicTopic`` modes (the last call of
    each wins; CTP's default when not called: RESUME)."""
    private = public = 1
    for method, args in setup:
        if method == "SubscribePrivateTopic":
            private = args[0]
        elif method == "SubscribePublicTopic":
            public = args[0]
    return private, public


class RemoteTrader(Backend):
    """One tdapi object's link to the server's trader (see the module docstring)."""

    def __init__(self, context: BackendContext, adapter_class: "type[CtpshimAdapter]") -> None:
        self.context = context
        self.dispatcher = context.dispatcher
        self.module = context.module
        self.fronts = list(context.fronts) + list(context.name_servers)
        self.adapter_class = adapter_class
        self.private_resume, self.public_resume = resume_modes(context.setup)
        self._settings = adapter_class.from_url(self.fronts[0]).config
        self._down_posted = False  # OnFrontDisconnected already posted for the current link
        self.link: Link | None = None
        self.front_url = ""
        self._connected = False  # the server's trader is connected (OnFrontConnected posted)
        self._closed = False
        self._day = TRADING_DAY_BEFORE_LOGIN
        self._task: asyncio.Task[None] | None = None
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    # -- the Backend interface ---------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected and not self._closed

    def start(self) -> None:
        io_loop.submit(self._run())

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._connected = False
        io_loop.call_soon(self._stop)

    def trading_day(self) -> str:
        return self._day

    def front_info(self, target: Any) -> None:
        _fill_front_info(target, self.front_url if self.connected else "")

    def subscribe(self, method: str, ids: list[str]) -> int:
        return NOT_SENT  # a trader API has no market-data subscriptions

    def request(self, name: str, field: Any, request_id: int) -> int:
        return self._call(name, (field, request_id))

    def system_info(self, name: str, field: Any) -> int:
        if not self.connected:
            return 0  # kept until connected, as the facade keeps them for a real front
        return self._call(name, (field,))

    # -- inside ----------------------------------------------------------------------------------

    def _call(self, name: str, args: tuple[Any, ...]) -> int:
        link = self.link
        if link is None or not self.connected:
            return NOT_SENT
        if io_loop.on_io_thread():  # cannot wait here: sent, and the code is assumed
            link.send_call(name, args)
            return 0
        return link.call_blocking(name, args, self.config["call_timeout"])

    @property
    def config(self) -> dict[str, Any]:
        return self._settings

    async def _run(self) -> None:
        self._task = asyncio.current_task()
        rotation = reconnect.FrontRotation(self.fronts)
        try:
            while not self._closed:
                url = rotation.current()
                try:
                    link = await self._open(url)
                except UpstreamError as exc:
                    delay = rotation.unreachable()
                    self._log_unreachable(url, exc, delay)
                    if getattr(exc, "front_disconnected", False):
                        # Accepted, then closed before a session (a failed TLS handshake): CTP's
                        # OnFrontDisconnected without OnFrontConnected.
                        self.dispatcher.post("OnFrontDisconnected", exc.reason)
                    await asyncio.sleep(delay)
                    continue
                rotation.connected()
                reason = await self._serve(url, link)
                if self._closed:
                    return
                self.link = None
                log.warning("%s: front %s disconnected (reason %d); reconnecting", self.context.name, url, reason)
                if not self._down_posted:
                    self.dispatcher.post("OnFrontDisconnected", reason)
                await asyncio.sleep(rotation.dropped())
        except asyncio.CancelledError:
            pass
        finally:
            link, self.link = self.link, None
            if link is not None:
                await link.close()

    async def _open(self, url: str) -> Link:
        adapter = self.adapter_class.from_url(url)
        return await adapter.open_link("td", extra={"private_resume": self.private_resume,
                                                    "public_resume": self.public_resume})

    def _log_unreachable(self, url: str, exc: UpstreamError, delay: float) -> None:
        text = str(exc)
        if isinstance(exc, ServerRefused) or getattr(exc, "front_disconnected", False):
            if text not in self._warned:  # once: it stays refused until the server or the address changes
                self._warned.add(text)
                # a bad token, an unknown source, another protocol, TLS: the address needs fixing
                configuration = not isinstance(exc, ServerRefused) or exc.error_id in _CONFIGURATION_ERRORS
                level = logging.ERROR if configuration else logging.WARNING
                log.log(level, "%s: %s; retrying every %.0f s", self.context.name, text, reconnect.RETRY_UNREACHABLE)
            else:
                log.debug("%s: %s", self.context.name, text)
            return
        log.warning("%s: front %s cannot be reached (%s); next try in %.0f s", self.context.name, url, text, delay)

    async def _serve(self, url: str, link: Link) -> int:
        """Deliver the link's callbacks until it is lost; the reason code.  The server sends
        HELLO_ACK once its trader is connected to the source: that is OnFrontConnected."""
        with self._lock:
            closed = self._closed
            if not closed:
                self.link = link
                self.front_url = url
                self._down_posted = False
                self._connected = True
        if closed:
            await link.close()
            return 0
        link.on_callback = self._callback
        self.dispatcher.post("OnFrontConnected")
        try:
            return await link.lost
        finally:
            with self._lock:
                self._connected = False
            # self.link stays set: when Release cancels this wait, _run's finally closes it (BYE)

    def _callback(self, name: str, args: tuple[Any, ...]) -> None:
        """A CALLBACK from the server's trader, on the IO loop."""
        if self._closed:
            return
        if name in _LINK_EVENTS:
            if name == "OnFrontConnected":
                return  # the link's own (HELLO_ACK) was posted
            if name == "OnFrontDisconnected":  # the server's source went down; the server closes next
                with self._lock:
                    if not self._connected:
                        return
                    self._connected = False
                    self._down_posted = True
        elif name == "OnRspUserLogin" and args and args[0] is not None:
            info = args[1] if len(args) > 1 else None
            if info is None or getattr(info, "ErrorID", 0) == 0:
                day = getattr(args[0], "TradingDay", "")
                if day:
                    self._day = day
        self.dispatcher.post(name, *[_own(arg, self.module) for arg in args])

    def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


def _own(value: Any, module: Any) -> Any:
    """A field object of ``module``'s class (the API's own), the same object when it is one."""
    if not isinstance(value, Field):
        return value
    cls = getattr(module, type(value).__name__, None)
    if cls is None or type(value) is cls:
        return value
    return from_values(cls, list(values_of(value)))
