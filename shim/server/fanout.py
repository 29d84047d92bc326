"""One feed per source: subscriptions reference-counted over every client, the latest snapshot of
each instrument for late subscribers, each tick encoded at most once per format (and, through
:class:`SharedBatches`, each list of ticks that several clients are handed).

A :class:`SourceFeed` is one sink (:class:`FeedSink`) on the source's market
(:mod:`ctpshim.runtime.hub`): the hub is asked for an instrument when the first client wants it
and told to drop it when the last one leaves.  Ticks are handed to the clients' ``deliver`` (or
``deliver_many``, a run of them at once) on the IO loop as the batch arrives; a late subscriber's
snapshot never follows a newer live tick.  The sink never holds the upstream back (each client's channel
conflates on its own, :mod:`.channel`).  When the source's link drops, every client is told
(``source_down``) and the feed reconnects by :mod:`ctpshim.runtime.reconnect`'s policy,
restoring the subscriptions of the clients still there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Callable, Protocol

from ..ctp import calendar, clock
from ..runtime import hub, reconnect
from ..runtime.sinks import Sink, Snapshot

log = logging.getLogger("ctpshim.server")


class EncodedTick:
    """One upstream tick, encoded at most once per format for all clients.

    ``tick`` is the shared ``CThostFtdcDepthMarketDataField``: read-only for everyone."""

    __slots__ = ("tick", "instrument", "_encoded")

    def __init__(self, tick: Any, instrument: str | None = None) -> None:
        self.tick = tick
        self.instrument = tick.InstrumentID if instrument is None else instrument
        self._encoded: dict[str, Any] | None = None

    def get(self, fmt: str, encoder: Callable[[Any], Any]) -> Any:
        """``encoder(tick)``, made on the first call for ``fmt`` and kept for the others."""
        encoded = self._encoded
        if encoded is None:
            encoded = self._encoded = {}
        else:
            value = encoded.get(fmt, _MISSING)
            if value is not _MISSING:
                return value
        value = encoded[fmt] = encoder(self.tick)
        return value

    def __repr__(self) -> str:
        return f"<EncodedTick {self.instrument}>"


_MISSING = object()


class SharedBatches:
    """Encodings of whole lists of ticks, each made once for every client handed the same ticks
    (the same :class:`EncodedTick` objects in the same order), as the clients of one dispatch
    usually are.  Keeps the last ``size`` lists' encodings (IO loop only)."""

    __slots__ = ("size", "_last", "_made")

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._last: tuple[tuple[Any, ...], Any] | None = None
        self._made: dict[tuple[Any, ...], Any] = {}

    def get(self, fmt: str, ticks: list[EncodedTick], encoder: Callable[[list[EncodedTick]], Any]) -> Any:
        """``encoder(ticks)``, made on the first call for these ticks in ``fmt`` and kept for the others."""
        key = (fmt, *ticks)
        last = self._last
        if last is not None and last[0] == key:  # the common case: the same list as the previous client's
            return last[1]
        made = self._made
        value = made.get(key, _MISSING)
        if value is _MISSING:
            if len(made) >= self.size:
                made.clear()
            value = made[key] = encoder(ticks)
        self._last = (key, value)
        return value


class Subscriber(Protocol):
    """A client connection's view of a feed, implemented by each protocol.

    A subscriber may also have ``deliver_many(ticks)``: a list of ticks of its instruments at once,
    in source order (the feed then calls it instead of ``deliver`` once per tick)."""

    name: str

    def deliver(self, tick: EncodedTick) -> None:
        """A tick of one of its instruments (IO loop); must not block (usually ``channel.tick``)."""

    def source_down(self, reason: int) -> None:
        """The source's link went down (a CTP reason code, :mod:`ctpshim.errors`)."""


class FeedSink(Sink):
    """The feed's one sink on its market: hands each tick to the feed at once, never waits."""

    def __init__(self, feed: "SourceFeed") -> None:
        super().__init__(f"serve:{feed.name}", on_up=feed._on_up, on_down=feed._on_down)
        self.feed = feed

    def offer(self, batch: Any) -> int:
        # Not under self.lock (as Sink.offer would): delivering may change subscriptions.
        with self.lock:
            wanted = self.filter
        if isinstance(batch, Snapshot):
            self.feed._snapshot_later(batch)
            return 0
        self.feed._dispatch(batch, wanted)
        return 0


class SourceFeed:
    """One source's feed for every client of the server (see the module docstring).

    Everything runs on the IO loop, except the read-only attributes ``name``, ``url``, ``up``."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self.up = False
        self.down_reason: int | None = None
        self.ticks_in = 0  # ticks received from the upstream
        self._sink = FeedSink(self)
        self._market: Any = None
        self._clients: dict[Any, set[str]] = {}  # subscriber -> its instruments
        self._by_instrument: dict[str, dict[Any, None]] = {}  # instrument -> its subscribers, in order
        self._latest: dict[str, EncodedTick] = {}
        self.batches = SharedBatches()  # the protocols' encodings of whole tick lists, shared by their clients
        self._task: asyncio.Task[None] | None = None
        self._up_event: asyncio.Event | None = None
        self._broken: asyncio.Future[int] | None = None
        self._stopped = False
        self._tasks: set[asyncio.Future[Any]] = set()

    def __repr__(self) -> str:
        return f"<SourceFeed {self.name} {self.url} {'up' if self.up else 'down'}, {len(self._clients)} client(s)>"

    # -- life -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Attach to the source's market and keep it connected (returns at once; see :meth:`wait_up`)."""
        self._up_event = asyncio.Event()
        self._market = hub.market_for(self.url)
        self._market.attach(self._sink)
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        for pending in list(self._tasks):
            pending.cancel()
        market, self._market = self._market, None
        if market is not None:
            market.detach(self._sink)
        self.up = False

    async def wait_up(self, timeout: float) -> bool:
        """Whether the source is up, waiting for it at most ``timeout`` s."""
        if self.up:
            return True
        event = self._up_event
        if event is None:
            return False
        waiter = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait([waiter], timeout=timeout)
        finally:
            waiter.cancel()
        return self.up

    async def _run(self) -> None:
        rotation = reconnect.FrontRotation([self.url])
        loop = asyncio.get_running_loop()
        while not self._stopped:
            market = self._market
            if market is None:
                return
            self._broken = loop.create_future()
            try:
                await market.connect()
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - any adapter failure: the source is unreachable
                delay = rotation.unreachable()
                cause = "timed out" if isinstance(exc, asyncio.TimeoutError) else str(exc) or type(exc).__name__
                log.warning("source %s (%s) cannot be reached (%s); next try in %.0f s",
                            self.name, self.url, cause, delay or reconnect.RETRY_UNREACHABLE)
                await asyncio.sleep(delay or reconnect.RETRY_UNREACHABLE)
                continue
            rotation.connected()
            self._mark_up()
            reason = await self._broken
            log.warning("source %s (%s) went down (reason %d); reconnecting", self.name, self.url, reason)
            await asyncio.sleep(rotation.dropped())

    def _mark_up(self) -> None:
        if self.up:
            return
        self.up = True
        self.down_reason = None
        if self._up_event is not None:
            self._up_event.set()
        wanted = list(self._by_instrument)
        if wanted and self._market is not None:
            self._market.subscribe(self._sink, wanted)  # the clients still here keep theirs
        log.info("source %s (%s) is up", self.name, self.url)

    def _on_up(self) -> None:
        # The market connected (perhaps another user's attempt): our loop marks us up once its
        # connect() returns; a market reopened by someone else needs the same.
        if self._broken is not None and not self._broken.done() and not self.up:
            self._mark_up()

    def _on_down(self, reason: int) -> None:
        self.up = False
        self.down_reason = reason
        self._up_event = asyncio.Event()
        self._latest.clear()
        if self._broken is not None and not self._broken.done():
            self._broken.set_result(reason)
        for client in list(self._clients):
            try:
                client.source_down(reason)
            except Exception:  # noqa: BLE001 - one client's failure must not stop the others
                log.exception("source %s: telling %s the source is down failed", self.name, _name(client))

    # -- subscriptions --------------------------------------------------------------------------

    def subscribe(self, client: Subscriber, ids: list[str]) -> list[EncodedTick]:
        """Count ``ids`` for ``client``; the hub is asked for the ones no client had.  Returns the
        latest snapshots of the ids other clients already had (send them after the reply).

        From its first call (``ids`` may be empty: a protocol calls ``subscribe(client, [])`` when
        the client connects) until :meth:`drop`, the client is told when the source goes down."""
        mine = self._clients.setdefault(client, set())
        first: list[str] = []
        snapshots: list[EncodedTick] = []
        for instrument in ids:
            if instrument in mine:
                continue
            mine.add(instrument)
            holders = self._by_instrument.get(instrument)
            if holders is None:
                self._by_instrument[instrument] = {client: None}
                first.append(instrument)
            else:
                holders[client] = None
                latest = self._latest.get(instrument)
                if latest is not None:
                    snapshots.append(latest)
        if first and self.up and self._market is not None:
            self._market.subscribe(self._sink, first)
        return snapshots

    def unsubscribe(self, client: Subscriber, ids: list[str]) -> None:
        """``client`` no longer wants ``ids``; the hub is told of the ones no client wants."""
        mine = self._clients.get(client)
        if mine is None:
            return
        self._release(client, [i for i in dict.fromkeys(ids) if i in mine])
        mine.difference_update(ids)

    def drop(self, client: Subscriber) -> None:
        """All of ``client``'s instruments; it is no longer told about the source (it is gone)."""
        mine = self._clients.pop(client, None)
        if mine:
            self._release(client, list(mine))

    def _release(self, client: Any, ids: list[str]) -> None:
        gone = []
        for instrument in ids:
            holders = self._by_instrument.get(instrument)
            if holders is None:
                continue
            holders.pop(client, None)
            if not holders:
                del self._by_instrument[instrument]
                self._latest.pop(instrument, None)
                gone.append(instrument)
        if gone and self._market is not None:
            self._market.unsubscribe(self._sink, gone)

    def subscriptions(self, client: Any) -> frozenset[str]:
        return frozenset(self._clients.get(client, ()))

    @property
    def counts(self) -> dict[str, int]:
        """How many clients want each instrument."""
        return {instrument: len(holders) for instrument, holders in self._by_instrument.items()}

    def clients(self) -> list[Any]:
        return list(self._clients)

    def latest(self, instrument: str) -> EncodedTick | None:
        return self._latest.get(instrument)

    def upstream_ids(self) -> frozenset[str]:
        """What the market was asked to deliver for this feed (the hub's view)."""
        market = self._market
        return frozenset(self._sink.ids) if market is not None else frozenset()

    # -- source facts ---------------------------------------------------------------------------

    def trading_day(self) -> str:
        """The source's trading day (YYYYMMDD), or the calendar's when it keeps no clock."""
        market = self._market
        day = market.trading_day if market is not None else None
        return day or calendar.yyyymmdd(calendar.trading_day_of(clock.now()))

    def instruments(self) -> list[Any]:
        """What the source lists (``InstrumentInfo``), as the market last read it."""
        market = self._market
        return list(market.instruments) if market is not None and self.up else []

    # -- ticks ----------------------------------------------------------------------------------

    def _dispatch(self, batch: Any, wanted: frozenset[str] | None) -> None:
        # Consecutive ticks held by the same clients are handed over together: one call per client
        # and run of ticks (deliver_many), not one per client and tick.
        by_instrument = self._by_instrument
        latest = self._latest
        count = 0
        run: list[EncodedTick] = []
        run_holders: tuple[Any, ...] = ()
        for tick in batch:
            count += 1
            instrument = tick.InstrumentID
            if wanted is not None and instrument not in wanted:
                continue
            holders = by_instrument.get(instrument)
            if not holders:
                continue
            encoded = EncodedTick(tick, instrument)
            latest[instrument] = encoded
            key = tuple(holders)
            if key == run_holders:
                run.append(encoded)
                continue
            if run:
                self._hand(run_holders, run)
            run, run_holders = [encoded], key
        if run:
            self._hand(run_holders, run)
        self.ticks_in += count

    def _hand(self, clients: tuple[Any, ...], ticks: list[EncodedTick]) -> None:
        for client in clients:
            try:
                many = getattr(client, "deliver_many", None)
                if many is not None:
                    many(ticks)
                else:
                    for tick in ticks:
                        client.deliver(tick)
            except Exception:  # noqa: BLE001 - one client's failure must not stop the others
                log.exception("source %s: delivering to %s failed", self.name, _name(client))

    def _snapshot_later(self, snapshot: Snapshot) -> None:
        """A snapshot the hub asked of another in-process consumer: waited for off the loop.  Live
        ticks may come meanwhile: an instrument that has had one since gets nothing of the snapshot
        (its clients already have a newer tick)."""
        latest = self._latest
        asked = {instrument: latest.get(instrument) for instrument in snapshot.ids}

        async def wait() -> None:
            ticks = await asyncio.to_thread(list, snapshot)
            self._dispatch([tick for tick in ticks if latest.get(tick.InstrumentID) is asked.get(tick.InstrumentID)],
                           None)

        task = asyncio.ensure_future(wait())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _name(client: Any) -> str:
    return str(getattr(client, "name", client))
