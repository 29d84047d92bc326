"""The session behind one API object: front list, connection and login state, subscriptions,
reconnect and failover.  Its ticks come from the front's market (:mod:`ctpshim.runtime.hub`), one
per source per process, through a backpressure sink into the API object's dispatcher.

It runs on the IO thread (:mod:`ctpshim.runtime.io_loop`).  Methods called from user threads are
marked; they only read attributes the IO thread caches and post to the dispatcher or the IO loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from typing import TYPE_CHECKING, Any

from ..ctp import calendar, clock
from .. import errors
from . import hub, io_loop, reconnect
from .dispatcher import Dispatcher
from .sinks import BackpressureSink

if TYPE_CHECKING:
    from .hub import Market

log = logging.getLogger("ctpshim")


class Session:
    """One API object's view of its front(s).

    Read from any thread: ``connected``, ``front_url``, ``front_id``, ``session_id``, ``market``
    (the market while connected, else ``None``), :meth:`trading_day`, :meth:`instruments`.
    """

    def __init__(self, name: str, dispatcher: Dispatcher, fronts: list[str], pump_ticks: bool) -> None:
        self.name = name
        self.dispatcher = dispatcher
        self.rotation = reconnect.FrontRotation(fronts)
        self.pump_ticks = pump_ticks
        self.market: Market | None = None
        self.front_url = ""
        self.connected = False
        self.front_id = 1
        self.session_id = 0
        self._sink = BackpressureSink(name, dispatcher, wants_ticks=pump_ticks, on_down=self._dropped)
        self._attached: Market | None = None  # kept across a drop, so the market (and its carry) lives on
        self._returning: set[Market] = set()  # left after a failed attempt, to be tried again (hub.Market.detach)
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._broken: asyncio.Future[int] | None = None
        self._generation = 0
        self._market_generation = 0
        self._random = random.Random()
        self._mute_lock = threading.Lock()
        # What the program has subscribed (kept across reconnects, in order; user threads update
        # it under _mute_lock) and, on the IO thread, which of those the session restored on
        # this connection without the program asking again (see reconnect.RESUBSCRIBE_AFTER_RELOGIN;
        # always a part of _told).
        self._wanted: dict[str, None] = {}
        self._restored: set[str] = set()
        self._told: set[str] = set()  # what the market was asked to deliver on this connection

    # -- user threads ---------------------------------------------------------------------------

    def start(self) -> None:
        io_loop.submit(self._run())

    def close(self) -> None:
        self._closed = True
        self.connected = False
        io_loop.call_soon(self._cancel)

    def trading_day(self) -> str:
        """The current trading day (YYYYMMDD): the source's own if it keeps a clock (as the IO
        thread last read it), else the calendar's."""
        market = self.market
        day = market.trading_day if market is not None else None
        return day or calendar.yyyymmdd(calendar.trading_day_of(clock.now()))

    def instruments(self) -> tuple[Any, ...]:
        """The instruments the source knows (``InstrumentInfo``), as the IO thread last read them;
        empty when not connected."""
        market = self.market
        return market.instruments if market is not None and self.connected else ()

    def subscribe(self, ids: list[str]) -> None:
        """Called from a user thread after the OnRspSubMarketData replies were posted."""
        with self._mute_lock:
            self._wanted.update(dict.fromkeys(ids))
        io_loop.call_soon(self._change_subscription, self._generation, ids, True)

    def mute(self, ids: list[str]) -> None:
        """Called from a user thread before the OnRspUnSubMarketData replies are posted: no tick
        of these is handed on from now on."""
        with self._mute_lock:
            for instrument in ids:
                self._wanted.pop(instrument, None)
        self._sink.mute(ids)

    def unsubscribe(self, ids: list[str]) -> None:
        io_loop.call_soon(self._change_subscription, self._generation, ids, False)

    def logged_in(self) -> None:
        """Called from a user thread after the OnRspUserLogin reply was posted."""
        if not reconnect.RESUBSCRIBE_AFTER_RELOGIN:
            return
        with self._mute_lock:
            wanted = list(self._wanted)
        if wanted:
            io_loop.call_soon(self._restore, self._generation, wanted)

    # -- IO thread ------------------------------------------------------------------------------

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        self._task = asyncio.current_task()
        try:
            while not self._closed:
                await self._connect_once()
        except asyncio.CancelledError:
            pass
        finally:
            self._leave()
            returning, self._returning = self._returning, set()
            for market in returning:
                market.forget(self._sink)

    def _leave(self, returning: bool = False) -> None:
        market, self._attached = self._attached, None
        if market is not None:
            market.detach(self._sink, returning=returning)
            if returning:
                self._returning.add(market)

    def _dropped(self, reason: int) -> None:
        if self._broken is not None and not self._broken.done():
            self._broken.set_result(reason)

    async def _connect_once(self) -> None:
        url = self.rotation.current()
        market = hub.market_for(url)
        if market is not self._attached:
            self._leave()
            market.attach(self._sink)
            self._returning.discard(market)
            self._attached = market
        self._broken = asyncio.get_running_loop().create_future()
        try:
            await market.connect()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - any adapter failure makes the front unreachable
            self._leave(returning=True)  # the next try may be another front; this one keeps its carry
            if getattr(exc, "front_disconnected", False):
                # The front accepted, then closed (a TLS handshake refused): CTP reports that as
                # OnFrontDisconnected without an OnFrontConnected before it.
                self.dispatcher.post("OnFrontDisconnected", exc.reason)
            delay = self.rotation.unreachable()
            cause = "timed out" if isinstance(exc, asyncio.TimeoutError) else str(exc) or type(exc).__name__
            if not isinstance(exc, (errors.UpstreamError, errors.FrontAddressError, asyncio.TimeoutError, OSError)):
                log.error("%s: adapter for %s failed to connect", self.name, url, exc_info=exc)
            log.warning(
                "%s: front %s cannot be reached (%s); next try: %s in %.0f s",
                self.name, url, cause, self.rotation.current(), delay,
            )
            await asyncio.sleep(delay)
            return
        if self._closed:
            return
        self.rotation.connected()
        self._generation += 1
        self._market_generation = market.generation
        self._restored = set()
        self._told = set()
        self.market = market
        self.dispatcher.tap = market
        self.front_url = url
        self.session_id = self._random.randint(-(2**31), 2**31 - 1)
        self.connected = True
        self.dispatcher.post("OnFrontConnected")
        try:
            reason = await self._broken
        finally:  # also when Release() cancels us
            self.connected = False
            self.market = None
            self.dispatcher.tap = None
        if self._closed:
            return
        log.warning("%s: front %s disconnected (reason %d); reconnecting", self.name, url, reason)
        self.dispatcher.post("OnFrontDisconnected", reason)
        await asyncio.sleep(self.rotation.dropped())

    def _current(self, generation: int) -> Market | None:
        """The market, if the connection ``generation`` is still the one it serves."""
        market = self.market
        if generation != self._generation or market is None or market.generation != self._market_generation:
            return None
        return market

    def _restore(self, generation: int, wanted: list[str]) -> None:
        if self._current(generation) is None:
            return
        missing = [i for i in wanted if i not in self._told]
        if missing:
            log.info("%s: restoring %d subscription(s) after the new login: %s",
                     self.name, len(missing), ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
            self._change_subscription(generation, missing, True)
            self._restored.update(missing)

    def _change_subscription(self, generation: int, ids: list[str], add: bool) -> None:
        market = self._current(generation)
        if market is None:
            return  # the connection this was meant for is gone; CTP forgets it too
        if add:
            # The program subscribing again to what the session restored: its snapshot was
            # already delivered.
            again = [i for i in ids if i in self._restored]
            if again:
                self._restored.difference_update(again)
                ids = [i for i in ids if i not in again]
                if not ids:
                    return
            self._told.update(ids)
            market.subscribe(self._sink, ids)
        else:
            self._told.difference_update(ids)
            self._restored.difference_update(ids)
            market.unsubscribe(self._sink, ids)
