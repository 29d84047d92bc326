"""The consumers of a market: each is a sink with a delivery policy (the policies and their numbers
are documented once, in :mod:`ctpshim.runtime.queue_policy`).

A :class:`~ctpshim.runtime.hub.Market` hands every batch from its adapter to each sink that has
instruments, through :meth:`Sink.offer`, on the IO thread.  A sink sees only its own instruments:
the batch is wrapped in a filter unless the sink wants exactly what the adapter was asked for.

* :class:`BackpressureSink`: an in-process API object (or a recorder).  Batches go to a
  :class:`~ctpshim.runtime.dispatcher.Dispatcher` queue; when too many ticks wait, the market stops
  reading from the adapter until they drain.  Nothing is dropped.
* :class:`ConflatingSink`: a consumer that may fall behind (a remote client).  Keeps only the latest
  tick per instrument until the consumer takes them; never holds the upstream back.  Cut off, with
  a logged reason, when it has not read for ``cut_off_after`` seconds.
* :class:`BoundedSink`: every tick in order, queued for a consumer on its own thread; never holds
  the upstream back; cut off, with a logged reason, when more than ``limit`` ticks wait.

Batches may be lazy (sim's blocks, replay's ``TickRows``: ticks made when iterated, on the consuming
thread).  With several sinks the market wraps such a batch in one :class:`SharedBatch`: the first
consumer to reach a tick makes it, the others read the same object, so no tick is made twice.
Sinks on one market therefore share tick objects: a program must not change a tick it was handed
(openctp's are read-only copies in practice; ctpshim's are shared).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from . import io_loop, queue_policy

if TYPE_CHECKING:
    from .dispatcher import Dispatcher

log = logging.getLogger("ctpshim")


class SharedBatch:
    """One lazy batch iterated by several sinks on several threads; each tick is made once.

    ``len()`` is the batch's own; iterating reads the memo, making the next ticks (under a lock,
    ``queue_policy.SHARED_CHUNK`` at a time) when this reader is the first to reach them.
    :meth:`latest` gives the last tick of each instrument, once the batch is made.
    """

    __slots__ = ("_source", "_iterator", "_made", "_lock", "_count", "_done", "_error", "_summary", "_last")

    def __init__(self, batch: Any) -> None:
        self._source = batch
        self._iterator: Iterator[Any] | None = None
        self._made: list[Any] = []
        self._lock = threading.Lock()
        self._count = len(batch)
        self._done = False
        self._error: BaseException | None = None
        # The source's own summary when it has one (sim's blocks), else one kept as ticks are made.
        self._summary: Callable[[], dict[str, Any]] | None = getattr(batch, "latest", None)
        self._last: dict[str, Any] | None = None if self._summary is not None else {}

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Any]:
        made = self._made
        have = 0
        while True:
            if have < len(made):
                end = len(made)
                yield from made[have:end]
                have = end
            elif not self._make(have):
                return

    def latest(self) -> dict[str, Any]:
        """The last tick of each instrument in this batch (call it once the batch is iterated)."""
        if self._summary is not None:
            return self._summary()
        return dict(self._last or {})

    def _make(self, have: int) -> bool:
        """Make more ticks unless another reader already has; False when the batch is exhausted."""
        with self._lock:
            if len(self._made) > have:
                return True
            if self._done:
                if self._error is not None:
                    raise self._error
                return False
            if self._iterator is None:
                self._iterator = iter(self._source)
            try:
                chunk = list(itertools.islice(self._iterator, queue_policy.SHARED_CHUNK))
            except BaseException as exc:
                self._done, self._error, self._iterator = True, exc, None
                raise
            if len(chunk) < queue_policy.SHARED_CHUNK:
                self._done, self._iterator = True, None
            last = self._last
            if last is not None:
                for tick in chunk:
                    last[tick.InstrumentID] = tick
            self._made.extend(chunk)
            return bool(chunk)


class Snapshot:
    """The current snapshot of some instruments for a sink that subscribed late: a batch whose
    ticks are the newest another sink's dispatcher had handed on when it reached the same point
    of the stream (:meth:`fill`, posted there as a mark).  Iterating it waits for that, at most
    ``queue_policy.SNAPSHOT_WAIT`` s; without an answer it is empty (the next ticks follow)."""

    __slots__ = ("ids", "_ticks", "_ready")

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self._ticks: list[Any] = []
        self._ready = threading.Event()

    def __len__(self) -> int:
        return len(self.ids)

    def fill(self, latest: dict[str, Any] | None) -> None:
        if latest is not None:
            self._ticks = [latest[i] for i in self.ids if i in latest]
        self._ready.set()

    def __iter__(self) -> Iterator[Any]:
        self._ready.wait(queue_policy.SNAPSHOT_WAIT)
        return iter(self._ticks)


class Filtered:
    """A batch less the ticks of instruments a sink does not want, filtered when it is iterated (on
    the consuming thread: a lazy batch makes its ticks only then).

    ``len()`` is the unfiltered count: the queue policy counts the same number in and out.
    """

    __slots__ = ("batch", "wanted")

    def __init__(self, batch: Any, wanted: frozenset[str]) -> None:
        self.batch = batch
        self.wanted = wanted

    def __len__(self) -> int:
        return len(self.batch)

    def __iter__(self) -> Iterator[Any]:
        wanted = self.wanted
        return (tick for tick in self.batch if tick.InstrumentID in wanted)

    @property
    def latest(self) -> Callable[[], dict[str, Any]] | None:
        """The inner batch's ``latest()``, limited to the wanted instruments; ``None`` (or
        ``AttributeError``) when the inner batch has none."""
        summary = self.batch.latest
        if summary is None:
            return None
        wanted = self.wanted
        return lambda: {key: tick for key, tick in summary().items() if key in wanted}


class Sink:
    """A consumer of one market.  Subclasses say what :meth:`_take` does with a batch.

    ``ids`` (what this sink wants) and ``filter`` (``None`` when it wants exactly what the adapter
    was asked for, else ``ids``) change under ``lock``: the market on the IO thread, and
    :meth:`mute` from any thread.  ``on_up``/``on_down(reason)``/``on_cut_off(reason)`` are called
    on the IO thread; override them or pass callables.  A sink made with ``wants_ticks=False``
    (a td API object's session) only follows the link; the market reads its adapter's ticks
    (and so notices a dropped link) while at least one attached sink wants ticks.
    """

    def __init__(self, name: str, *, wants_ticks: bool = True, on_up: Callable[[], None] | None = None,
                 on_down: Callable[[int], None] | None = None,
                 on_cut_off: Callable[[str], None] | None = None) -> None:
        self.name = name
        self.wants_ticks = wants_ticks
        self.lock = threading.Lock()
        self.ids: frozenset[str] = frozenset()
        self.filter: frozenset[str] | None = None
        self.market: Any = None  # the ctpshim.runtime.hub.Market it is attached to (set by the market)
        self.cut_off_reason: str | None = None
        self._on_up = on_up
        self._on_down = on_down
        self._on_cut_off = on_cut_off

    # -- called by the market (IO thread) -------------------------------------------------------

    def offer(self, batch: Any) -> int:
        """Take a batch (filtered to this sink's instruments); return the ticks now waiting."""
        with self.lock:
            wanted = self.filter
            if wanted is not None:
                batch = Filtered(batch, wanted)
            return self._take(batch)

    def _take(self, batch: Any) -> int:
        raise NotImplementedError

    def over_high_water(self) -> bool:
        """Whether the market must wait (:meth:`wait_for_room`) before reading on."""
        return False

    async def wait_for_room(self) -> None:
        return None

    def on_up(self) -> None:
        if self._on_up is not None:
            self._on_up()

    def on_down(self, reason: int) -> None:
        if self._on_down is not None:
            self._on_down(reason)

    def cut_off(self, reason: str) -> None:
        """Detach from the market for good, logging ``reason`` (IO thread)."""
        if self.cut_off_reason is not None:
            return
        self.cut_off_reason = reason
        log.warning("%s: cut off: %s", self.name, reason)
        market = self.market
        if market is not None:
            market.detach(self)
        if self._on_cut_off is not None:
            self._on_cut_off(reason)

    # -- any thread -----------------------------------------------------------------------------

    def mute(self, ids: Iterable[str]) -> None:
        """Stop handing on these instruments at once (before the market is told to drop them)."""
        with self.lock:
            self.ids = self.ids - set(ids)
            self.filter = self.ids


class BackpressureSink(Sink):
    """An in-process consumer: batches go to a dispatcher; the market waits when it is full."""

    def __init__(self, name: str, dispatcher: "Dispatcher", **callbacks: Any) -> None:
        super().__init__(name, **callbacks)
        self.dispatcher = dispatcher

    def _take(self, batch: Any) -> int:
        return self.dispatcher.post_ticks(batch, record=True)

    def over_high_water(self) -> bool:
        return self.dispatcher.pending_ticks > queue_policy.HIGH_WATER

    async def wait_for_room(self) -> None:
        await self.dispatcher.wait_for_room()


class ConflatingSink(Sink):
    """The latest tick per instrument, taken by the consumer when it is ready; never holds the
    market back.  Lazy batches are kept as they come and made into ticks by :meth:`take`, on the
    consumer's thread; past ``queue_policy.CONFLATE_BATCHES`` untaken batches they are folded
    on the IO thread so memory stays bounded by the number of instruments."""

    def __init__(self, name: str, cut_off_after: float | None = None,
                 clock: Callable[[], float] = time.monotonic, **callbacks: Any) -> None:
        super().__init__(name, **callbacks)
        self.cut_off_after = queue_policy.CONFLATE_CUT_OFF_AFTER if cut_off_after is None else cut_off_after
        self._clock = clock
        self._latest: dict[str, Any] = {}
        self._pending: list[Any] = []
        self._ready = threading.Condition(threading.Lock())
        self._last_read = clock()
        self.conflated = 0  # ticks replaced by a later one of the same instrument before being taken

    def _take(self, batch: Any) -> int:
        if self._clock() - self._last_read > self.cut_off_after:
            # Later: the market is handing out this batch, and this sink's lock is held.
            io_loop.call_soon(self.cut_off, f"it has not taken ticks for over {self.cut_off_after:g} s "
                              "(see ctpshim.runtime.queue_policy)")
            return 0
        with self._ready:
            self._pending.append(batch)
            if len(self._pending) > queue_policy.CONFLATE_BATCHES:
                self._fold()
            self._ready.notify_all()
            return 0

    def _fold(self) -> None:
        # With self._ready held.
        pending, self._pending = self._pending, []
        self.conflated += _fold_into(pending, self._latest)

    def take(self, timeout: float | None = 0.0) -> list[Any]:
        """The latest tick of each instrument that changed since the last take (consumer thread),
        in the order the instruments first changed; waits up to ``timeout`` s for one (``None``:
        for ever, ``0``: not at all)."""
        with self._ready:
            if not self._pending and not self._latest and timeout != 0:
                self._ready.wait(timeout)
            pending, self._pending = self._pending, []
            latest, self._latest = self._latest, {}
            self._last_read = self._clock()
        conflated = _fold_into(pending, latest)  # made here, without the lock: the market never waits for this
        with self._ready:
            self.conflated += conflated
        return list(latest.values())


def _fold_into(batches: list[Any], latest: dict[str, Any]) -> int:
    """Keep the newest tick of each instrument of ``batches`` in ``latest``; returns how many
    ticks a later one of the same instrument replaced."""
    replaced = 0
    for batch in batches:
        for tick in batch:
            instrument = tick.InstrumentID
            if instrument in latest:
                replaced += 1
            latest[instrument] = tick
    return replaced


class BoundedSink(Sink):
    """Every tick in order, for a consumer on its own thread; cut off past ``limit`` waiting ticks."""

    def __init__(self, name: str, limit: int | None = None, **callbacks: Any) -> None:
        super().__init__(name, **callbacks)
        self.limit = queue_policy.BOUNDED_LIMIT if limit is None else limit
        self._batches: list[Any] = []
        self._waiting = 0
        self._ready = threading.Condition(threading.Lock())

    def _take(self, batch: Any) -> int:
        with self._ready:
            self._waiting += len(batch)
            waiting = self._waiting
            if waiting <= self.limit:
                self._batches.append(batch)
                self._ready.notify_all()
                return waiting
            self._batches, self._waiting = [], 0
        io_loop.call_soon(self.cut_off, f"{waiting} ticks waiting, over its bound of {self.limit} "
                          "(see ctpshim.runtime.queue_policy)")
        return 0

    def take(self, timeout: float | None = 0.0) -> list[Any]:
        """Every tick since the last take, in order (consumer thread); waits up to ``timeout`` s."""
        with self._ready:
            if not self._batches and timeout != 0:
                self._ready.wait(timeout)
            batches, self._batches, self._waiting = self._batches, [], 0
        ticks: list[Any] = []
        for batch in batches:
            ticks.extend(batch)
        return ticks
