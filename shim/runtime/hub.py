"""The market hub: one upstream per source per process, shared by every API object.

A :class:`Market` is the one adapter of one front address (normalised by :func:`market_key`): it
is opened when its first user needs it, and closed when its last user leaves for good.  A user
whose connection attempt failed and who will try again (a session waiting to reconnect) leaves
*returning* (:meth:`Market.detach`): while any such user may come back, the market keeps its
``carry`` (and its place in the process) with no adapter open, until they come back or
:meth:`Market.forget` them.  Its users are
sinks (:mod:`ctpshim.runtime.sinks`): the session of each md and td API object, and later a
simulated trader's matcher, a front server's clients, a recorder.  The market

* connects the adapter (made in a worker thread: its ``check`` may read files), keeps its
  ``carry`` for the market's life, and tells every sink when the link goes up or down; the
  sessions turn that into ``OnFrontConnected`` / ``OnFrontDisconnected`` and decide when to try
  again (:mod:`ctpshim.runtime.reconnect`); the first to ask reopens the market for all;
* counts each instrument's subscribers: the adapter is asked for an instrument when its first
  sink wants it and told to drop it when the last one leaves; a later sink gets its current
  snapshot first (:class:`~ctpshim.runtime.sinks.Snapshot`: the newest tick of it that another
  sink's dispatcher had handed on at the point of the stream where the subscription came);
* hands each batch to every sink that wants some of it, with that sink's policy.  A lazy batch
  (made when iterated, on the consuming thread) handed to several sinks is shared
  (:class:`~ctpshim.runtime.sinks.SharedBatch`) so no tick is made twice; with one sink it goes
  through untouched;
* caches what the facade reads from the source (trading day, instruments), refreshed on the IO
  thread, so no adapter code runs on a user thread;
* lets a consumer observe each tick at the moment an API object hands it to the program
  (:meth:`Market.observe`).

Everything here runs on the IO thread (:mod:`ctpshim.runtime.io_loop`) unless a docstring says
otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from .. import errors
from ..fronts import registry
from ..fronts.url import TRADER_PREFIX, parse_front_url
from . import io_loop, reconnect
from .sinks import SharedBatch, Snapshot

if TYPE_CHECKING:
    from .sinks import Sink

log = logging.getLogger("ctpshim")

REFRESH_AFTER_BATCH = 0.05  # s: the cached trading day is read again after a batch at most this often
REFRESH_EVERY = 1.0  # s: and this often while the market is up (a quiet source's clock moves too)

_markets: dict[str, "Market"] = {}
_opened = 0


def market_key(raw: str) -> str:
    """The normalised front address: one market per key per process.

    Scheme and host are case-insensitive and the settings' order does not matter; the
    ``trader.*`` settings (the simulated counter's) are left out, so md and td APIs that differ
    only in those share one market.
    """
    url = parse_front_url(raw)
    netloc = url.host.lower() + (f":{url.port}" if url.port is not None else "")
    query = "&".join(f"{key}={value}" for key, value in sorted(url.query.items())
                     if not key.startswith(TRADER_PREFIX))
    return f"{url.scheme.lower()}://{netloc}{url.path}" + (f"?{query}" if query else "")


def market_for(raw: str) -> "Market":
    """The market of the front ``raw``, made if there is none (it opens on :meth:`Market.connect`)."""
    key = market_key(raw)
    market = _markets.get(key)
    if market is None:
        market = _markets[key] = Market(key, raw)
    return market


def markets() -> list["Market"]:
    """The markets open in this process."""
    return list(_markets.values())


def opened_adapters() -> int:
    """How many adapters the hub has made in this process (each market's opens, summed)."""
    return _opened


class Observation:
    """A callback observing the ticks API objects hand to their programs (all of the market's, or
    only the one whose dispatcher is ``only``); :meth:`close` ends it."""

    def __init__(self, market: "Market", callback: Callable[[Any], None], only: Any = None) -> None:
        self.market = market
        self.callback = callback
        self.only = only

    def close(self) -> None:
        self.market._unobserve(self)


class Market:
    """The one upstream of one source (see the module docstring)."""

    def __init__(self, key: str, url: str) -> None:
        self.key = key
        self.url = url
        self.adapter: Any = None
        self.up = False
        self.generation = 0  # +1 each time the adapter connects
        self.opens = 0  # adapters made for this market
        # Read from any thread (plain attribute reads of immutable values):
        self.trading_day: str | None = None  # the source's own, when it has a clock
        self.instruments: tuple[Any, ...] = ()
        self.observers: tuple[Observation, ...] = ()
        self.shared_ticks = False  # two or more attached sinks want ticks (read by dispatchers)
        self._carry: dict[str, Any] = {}
        self._sinks: dict[Sink, set[str]] = {}  # attached sinks -> the instruments counted for each
        self._returning: set[Sink] = set()  # detached after a failed attempt, to try again (see detach)
        self._idle = False  # only returning users: no adapter open, no attempt made
        self._counts: dict[str, int] = {}
        self._upstream: set[str] = set()  # asked of the adapter and not yet confirmed dropped
        self._consumers: tuple[Sink, ...] = ()  # sinks that want some instruments now
        self._connecting: asyncio.Task[None] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._changes: asyncio.Future[None] | None = None  # the last queued subscription change
        self._tasks: set[asyncio.Future[Any]] = set()
        self._refreshed = 0.0
        self._closed = False
        self._observe_lock = threading.Lock()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("up" if self.up else "down")
        returning = f", {len(self._returning)} returning" if self._returning else ""
        return f"<Market {self.key} {state}, {len(self._sinks)} sink(s){returning}, {len(self._counts)} instrument(s)>"

    # -- users ----------------------------------------------------------------------------------

    def attach(self, sink: "Sink") -> None:
        """Add a user.  It learns the link is up from :meth:`connect` returning."""
        if sink in self._sinks:
            return
        if self._closed:
            raise RuntimeError(f"{self!r} is closed; ask hub.market_for() for a new one")
        self._returning.discard(sink)
        self._idle = False
        sink.market = self
        self._sinks[sink] = set()
        self.shared_ticks = sum(s.wants_ticks for s in self._sinks) > 1
        self._start_pump()

    def detach(self, sink: "Sink", returning: bool = False) -> None:
        """Remove a user and its subscriptions; the last one to leave closes the market.

        ``returning``: the user will try again (its connection attempt failed): the market keeps
        its carry until the user attaches again or is forgotten (:meth:`forget`); with no user
        attached, only its adapter is closed."""
        counted = self._sinks.pop(sink, None)
        if counted is None:
            return
        sink.market = None
        with sink.lock:
            sink.ids, sink.filter = frozenset(), None
        if returning:
            self._returning.add(sink)
        self.shared_ticks = sum(s.wants_ticks for s in self._sinks) > 1
        self._release(counted)
        self._update_consumers()
        self._left()

    def forget(self, sink: "Sink") -> None:
        """A user that left returning will not come back (its API object was released)."""
        self._returning.discard(sink)
        self._left()

    def _left(self) -> None:
        if self._sinks:
            return
        if self._returning:
            self._idle = True
            if self._connecting is not None:
                self._connecting.cancel()
            if self.up:
                self._down()
        elif not self._closed:
            self._close()

    async def connect(self) -> None:
        """Return once the adapter is connected (at once if it is); raise what connecting raised.

        Several users may wait for one attempt; an attempt is made only when someone asks."""
        if self.up:
            return
        if self._closed:
            raise errors.UpstreamUnavailable(f"{self.url}: the market was closed")
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
        await asyncio.shield(self._connecting)

    # -- subscriptions --------------------------------------------------------------------------

    def subscribe(self, sink: "Sink", ids: list[str]) -> None:
        """``sink`` wants these instruments: the adapter is asked for the ones nobody had (its
        snapshot comes through ``ticks()``); for the others, ``sink`` gets their current snapshot
        first (see :class:`~ctpshim.runtime.sinks.Snapshot`)."""
        counted = self._sinks.get(sink)
        if counted is None or not self.up:
            return
        first, late = [], []
        for instrument in ids:
            if instrument in counted:
                continue
            counted.add(instrument)
            count = self._counts.get(instrument, 0)
            self._counts[instrument] = count + 1
            (late if count else first).append(instrument)
        with sink.lock:
            sink.ids = sink.ids | set(ids)
        if first:
            self._upstream.update(first)
            self._queue_change(first, True)
        self._update_consumers()
        if late:
            self._snapshots_for(sink, late)

    def _snapshots_for(self, sink: "Sink", ids: list[str]) -> None:
        """Queue for ``sink`` the current snapshot of instruments other sinks already have: asked
        of a dispatcher that hands them on, at this point of its queue."""
        by_holder: dict[Any, list[str]] = {}
        for instrument in ids:
            holder = next((other for other in self._sinks if other is not sink
                           and getattr(other, "dispatcher", None) is not None and instrument in other.ids), None)
            if holder is not None:
                by_holder.setdefault(holder, []).append(instrument)
        for holder, wanted in by_holder.items():
            snapshot = Snapshot(wanted)
            holder.dispatcher.post_mark(snapshot.fill)
            sink.offer(snapshot)

    def unsubscribe(self, sink: "Sink", ids: list[str]) -> None:
        """``sink`` no longer wants these instruments; the adapter drops the ones nobody wants."""
        counted = self._sinks.get(sink)
        if counted is None:
            return
        with sink.lock:
            sink.ids = sink.ids - set(ids)
        self._release([i for i in dict.fromkeys(ids) if i in counted])
        counted.difference_update(ids)
        self._update_consumers()

    def upstream_ids(self) -> frozenset[str]:
        """What the adapter delivers now: asked for, and not yet confirmed dropped."""
        return frozenset(self._upstream)

    def wanted_ids(self) -> frozenset[str]:
        """The union of what the sinks want (the reference-counted instruments)."""
        return frozenset(self._counts)

    def delivered_ids(self) -> frozenset[str]:
        """The instruments some API object's dispatcher hands to its program (any thread; a
        snapshot): the ticks :meth:`observe` sees.  Sinks without a dispatcher (a front server's
        clients) are left out: what they take is never observed."""
        for _ in range(3):
            try:
                sinks = list(self._sinks)
            except RuntimeError:  # changed on the IO thread while copied
                continue
            held: set[str] = set()
            for sink in sinks:
                if sink.wants_ticks and getattr(sink, "dispatcher", None) is not None:
                    held.update(sink.ids)
            return frozenset(held)
        return frozenset()

    def _release(self, ids: Any) -> None:
        gone = []
        for instrument in ids:
            count = self._counts.get(instrument, 0) - 1
            if count > 0:
                self._counts[instrument] = count
            elif count == 0:
                del self._counts[instrument]
                gone.append(instrument)
        if gone and self.up:
            self._queue_change(gone, False)

    def _queue_change(self, ids: list[str], add: bool) -> None:
        """Tell the adapter, in order after the changes already queued."""
        previous, generation = self._changes, self.generation

        async def change() -> None:
            if previous is not None:
                with contextlib.suppress(BaseException):
                    await previous
            adapter = self.adapter
            if adapter is None or generation != self.generation:
                return  # that connection is gone, and the adapter's subscriptions with it
            try:
                await (adapter.subscribe(ids) if add else adapter.unsubscribe(ids))
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - reported as a disconnect
                self._break(exc)
                return
            if not add and generation == self.generation:
                self._upstream.difference_update([i for i in ids if i not in self._counts])
                self._update_consumers()

        self._changes = self._track(change())

    def _update_consumers(self) -> None:
        upstream = self._upstream
        consumers = []
        for sink in self._sinks:
            with sink.lock:
                if sink.ids:
                    consumers.append(sink)
                sink.filter = None if sink.ids == upstream else sink.ids
        self._consumers = tuple(consumers)

    def _start_pump(self) -> None:
        if self.up and self._pump is None and any(sink.wants_ticks for sink in self._sinks):
            self._pump = self._track(self._run_pump(self.adapter))

    # -- observers (any thread) -----------------------------------------------------------------

    def delivering(self) -> list[Any]:
        """The dispatchers of the attached sinks that hand ticks on (any thread; a snapshot, which
        may miss a sink attaching at that moment): an observer that starts late asks them, with
        ``post_mark``, for the newest tick of each instrument they have handed on."""
        for _ in range(3):
            try:
                sinks = list(self._sinks)
            except RuntimeError:  # changed on the IO thread while copied
                continue
            return [d for d in (getattr(s, "dispatcher", None) for s in sinks if s.wants_ticks) if d is not None]
        return []

    def observe(self, callback: Callable[[Any], None], only: Any = None) -> Observation:
        """Call ``callback(tick)`` on an API object's dispatcher thread just before that object's
        ``OnRtnDepthMarketData(tick)``: for every API object on this market (a tick handed to two
        programs is observed twice), or, with ``only`` (a session's ``dispatcher``), for that API
        object alone.  Never for a tick no program has been given.  An exception it raises is
        logged and delivery goes on."""
        observation = Observation(self, callback, only)
        with self._observe_lock:
            self.observers = self.observers + (observation,)
        return observation

    def _unobserve(self, observation: Observation) -> None:
        with self._observe_lock:
            self.observers = tuple(o for o in self.observers if o is not observation)

    # -- the link -------------------------------------------------------------------------------

    async def _open(self) -> None:
        global _opened
        adapter = None
        try:
            # In a worker thread: the adapter's check reads files (a recording's), which must not
            # hold up the IO thread every other API object shares.
            adapter = await asyncio.to_thread(registry.create_adapter, self.url)
            self.opens += 1
            _opened += 1
            adapter.carry = self._carry
            await asyncio.wait_for(adapter.connect(), reconnect.CONNECT_TIMEOUT)
            if self._closed or self._idle:  # the last user left meanwhile (wait_for can swallow a cancellation on 3.11)
                raise asyncio.CancelledError
        except BaseException:
            self._connecting = None
            if adapter is not None:
                self._track(_close_adapter(adapter), closing=True)
            raise
        self._connecting = None
        self.adapter = adapter
        self.generation += 1
        self.up = True
        self._refresh(force=True)
        self._refresher = self._track(self._keep_fresh())
        self._start_pump()
        for sink in list(self._sinks):
            sink.on_up()

    def _break(self, exc: BaseException) -> None:
        """The adapter failed: the link is down for every sink."""
        if not self.up:
            return
        if isinstance(exc, errors.UpstreamError):
            reason = exc.reason
            log.warning("%s: %s", self.url, exc)
        else:
            reason = errors.REASON_BAD_MESSAGE
            log.error("the adapter for %s failed", self.url, exc_info=exc)
        self._down()
        for sink in list(self._sinks):
            sink.on_down(reason)

    def _down(self) -> None:
        adapter, pump, refresher = self.adapter, self._pump, self._refresher
        self.adapter, self._pump, self._refresher = None, None, None
        self.up = False
        self._counts.clear()
        self._upstream.clear()
        for sink, counted in self._sinks.items():
            counted.clear()
            with sink.lock:
                sink.ids, sink.filter = frozenset(), None
        self._consumers = ()
        self._track(_retire(adapter, pump, refresher), closing=True)

    def _close(self) -> None:
        self._closed = True
        if _markets.get(self.key) is self:
            del _markets[self.key]
        if self._connecting is not None:
            self._connecting.cancel()
        if self.up:
            self._down()

    def _track(self, coro: Any, closing: bool = False) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(coro)
        if closing:
            task.set_name(f"{io_loop.CLOSING_TASK} {self.key}")
        self._tasks.add(task)  # the loop holds tasks only weakly
        task.add_done_callback(self._tasks.discard)
        return task

    # -- ticks and the cache --------------------------------------------------------------------

    async def _run_pump(self, adapter: Any) -> None:
        try:
            async for batch in adapter.ticks():
                consumers = self._consumers
                if consumers and batch:
                    if len(consumers) > 1 and not isinstance(batch, list):
                        batch = SharedBatch(batch)  # made once, whoever reaches a tick first
                    for sink in consumers:
                        sink.offer(batch)  # a lone sink gets the batch as it came: the speed path
                    waited = False
                    for sink in consumers:
                        if sink.over_high_water():
                            await sink.wait_for_room()
                            waited = True
                    if not waited:
                        # Let the loop run other work (and cancellation) even when an adapter
                        # produces batches without ever suspending, as sim:// at speed=max does.
                        await asyncio.sleep(0)
                else:
                    await asyncio.sleep(0)
                if time.monotonic() - self._refreshed >= REFRESH_AFTER_BATCH:
                    self._refresh()
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - reported as a disconnect
            self._break(exc)

    async def _keep_fresh(self) -> None:
        while self.up:
            await asyncio.sleep(REFRESH_EVERY)
            self._refresh(force=True)

    def _refresh(self, force: bool = False) -> None:
        """Read the source's trading day into the cache, and its instruments when ``force`` is
        given (on connect and every ``REFRESH_EVERY``) or the day changed."""
        adapter = self.adapter
        if adapter is None:
            return
        self._refreshed = time.monotonic()
        try:
            day = adapter.trading_day() or None
            if force or day != self.trading_day:
                self.instruments = tuple(adapter.instruments())
            self.trading_day = day
        except Exception:  # noqa: BLE001 - keep the last values; the adapter's fault is logged
            log.exception("%s: reading the trading day or instruments failed", self.url)


async def _retire(adapter: Any, *tasks: asyncio.Future[Any] | None) -> None:
    """Stop a connection's tasks, then close its adapter."""
    for task in tasks:
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
    await _close_adapter(adapter)


async def _close_adapter(adapter: Any) -> None:
    if adapter is None:
        return
    try:
        await adapter.close()
    except Exception:  # noqa: BLE001 - closing must not hide the original problem
        log.debug("closing adapter failed", exc_info=True)
