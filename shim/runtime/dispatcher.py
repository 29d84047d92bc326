"""One dispatcher thread per API object: delivers every callback, in order, on one thread.

The IO thread and user threads post messages; the dispatcher thread calls the Spi.  Queue
limits and the slow-callback policy are in :mod:`ctpshim.runtime.queue_policy`.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Iterable

from . import queue_policy

if TYPE_CHECKING:
    import asyncio

log = logging.getLogger("ctpshim")

_CALL = 0
_TICKS = 1
_MARK = 2
FULL_TRACEBACKS = 5


class Dispatcher:
    """Queue of callbacks for one API object and the thread that runs them."""

    def __init__(self, name: str, spi_class_name: str) -> None:
        self.name = name
        self.spi_class_name = spi_class_name
        self.spi: Any = None
        # The market whose ticks this dispatcher delivers (its ``observers`` are called with each
        # tick just before the Spi's OnRtnDepthMarketData); set by the session, from any thread.
        self.tap: Any = None
        # The newest tick of each instrument this dispatcher has handed on (batches posted with
        # record=True); read on this thread only, by marks (post_mark).  While its market has no
        # other consumer (tap.shared_ticks false), the last few batches that can tell their
        # newest ticks later are kept instead, and folded in only when a mark needs them.
        self.latest: dict[str, Any] = {}
        self._kept: deque[Any] = deque()
        self._kept_lost = False  # a kept batch was let go unfolded: latest may be stale
        self._queue: deque[tuple[int, Any, Any]] = deque()
        lock = threading.Lock()
        self._cond = threading.Condition(lock)
        self._idle = threading.Condition(lock)  # apart from _cond: post's notify() must wake the thread
        self._pending_ticks = 0
        self._busy = False  # the thread is delivering a taken batch (wait_idle)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._room_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._last_slow_warning = 0.0
        self._halt: list[bool] = []  # stop() appends: the delivering loop checks it before each tick
        self._errors: dict[tuple[str, type], list[float]] = {}  # (callback, type) -> [count, last summary]

    # -- producer side (any thread) -------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def post(self, callback: str, *args: Any) -> None:
        """Queue ``spi.<callback>(*args)``."""
        with self._cond:
            if self._stopping:
                return
            self._queue.append((_CALL, callback, args))
            self._cond.notify()

    def post_ticks(self, ticks: Iterable[Any], record: bool = False) -> int:
        """Queue a batch of ``OnRtnDepthMarketData`` ticks (a list, or any sized iterable of
        ticks, iterated on the dispatcher thread); returns the ticks now waiting.

        ``record``: keep :attr:`latest` up to date with this batch, from its ``latest()`` (the
        last tick of each instrument in it) after delivering it when the batch has one (an
        attribute ``latest`` that is not ``None``), else tick by tick."""
        with self._cond:
            return self._queue_ticks(ticks, record)

    def post_mark(self, mark: Callable[[dict[str, Any] | None], None]) -> None:
        """Call ``mark(latest)`` on the dispatcher thread once everything queued before it was
        handed on: ``latest`` is then the newest tick per instrument of the batches before it.
        If the dispatcher stops first, ``mark(None)`` is called instead (on the stopping thread)."""
        with self._cond:
            if not self._stopping:
                self._queue.append((_MARK, mark, None))
                self._cond.notify()
                return
        mark(None)

    @property
    def pending_ticks(self) -> int:
        """Ticks queued and not yet being delivered."""
        return self._pending_ticks

    def _queue_ticks(self, ticks: Iterable[Any], record: bool = False) -> int:
        # With self._cond held.
        if self._stopping:
            return 0
        self._queue.append((_TICKS, ticks, record))
        self._pending_ticks += len(ticks)
        self._cond.notify()
        return self._pending_ticks

    def post_ticks_blocking(self, ticks: list[Any]) -> None:
        """``post_ticks`` for a source running on its own thread (openctp-ctp's): when too many
        ticks wait, block that thread until the callbacks have caught up (or the API stops)."""
        with self._cond:
            if self._queue_ticks(ticks) <= queue_policy.HIGH_WATER:
                return
            started = time.monotonic()
            while self._pending_ticks > queue_policy.LOW_WATER and not self._stopping:
                self._cond.wait(queue_policy.WARN_AFTER)
                if time.monotonic() - started >= queue_policy.WARN_AFTER:
                    started = time.monotonic()
                    self._warn_slow()

    async def wait_for_room(self) -> None:
        """Wait (on the IO loop) until the queue has drained below the low-water mark."""
        import asyncio  # here, not at the top: importing the facade must not cost asyncio's import

        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        with self._cond:
            if self._pending_ticks <= queue_policy.LOW_WATER or self._stopping:
                return
            self._room_waiters.append((loop, event))
        # A timer rather than asyncio.wait_for: on Python 3.11 wait_for can swallow a
        # cancellation that arrives as the event is set, which Release() does.
        timer = loop.call_later(queue_policy.WARN_AFTER, self._warn_slow)
        try:
            await event.wait()
        finally:
            timer.cancel()

    def _warn_slow(self) -> None:
        now = time.monotonic()
        if now - self._last_slow_warning >= queue_policy.WARN_INTERVAL:
            self._last_slow_warning = now
            log.warning(
                "%s: OnRtnDepthMarketData is slower than the source (%d ticks waiting for over %.0f s); "
                "the source is held back until the callbacks catch up (see ctpshim.runtime.queue_policy)",
                self.name, self._pending_ticks, queue_policy.WARN_AFTER,
            )

    def stop(self) -> None:
        """Stop delivering: nothing queued or posted later is delivered."""
        with self._cond:
            self._stopping = True
            self._idle.notify_all()
            marks = [first for kind, first, _ in self._queue if kind == _MARK]
            self._queue.clear()
            self._pending_ticks = 0
            waiters, self._room_waiters = self._room_waiters, []
            self._cond.notify_all()
        self._halt.append(True)  # the batch being delivered ends after the current callback
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)
        _cancel_marks(marks)

    def join(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def stopping(self) -> bool:
        return self._stopping

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is queued and no callback runs (or the dispatcher stops); ``False``
        if ``timeout`` seconds passed first.  On the dispatcher's own thread it returns ``True``
        at once (waiting for itself would never end)."""
        if self._thread is threading.current_thread():
            return True
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self._queue or self._busy) and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    # -- the dispatcher thread ------------------------------------------------------------------

    def _loop(self) -> None:
        cond = self._cond
        while True:
            with cond:
                if self._busy:
                    self._busy = False
                    self._idle.notify_all()
                while not self._queue and not self._stopping:
                    cond.wait()
                if self._stopping:
                    return
                batch, self._queue = self._queue, deque()
                self._busy = True
            while batch:
                kind, first, second = batch.popleft()
                if self._stopping:
                    _cancel_marks([first] if kind == _MARK else [])
                    _cancel_marks([f for k, f, _ in batch if k == _MARK])
                    return
                spi = self.spi
                if kind == _CALL:
                    if spi is not None:
                        self._call(spi, first, second)
                elif kind == _MARK:
                    try:
                        self._fold_kept()
                        first(self.latest)
                    except Exception:  # noqa: BLE001 - a mark's fault must not stop delivery
                        log.exception("%s: a mark failed", self.name)
                else:
                    # Counted out as its delivery starts, not when it ends: a source held back
                    # is let go while this batch is delivered, so a batch of thousands of ticks
                    # (a replay's) has the next one ready when it ends.
                    self._ticks_taken(len(first))
                    if spi is not None:
                        self._deliver(spi, first, second)

    def _ticks_taken(self, count: int) -> None:
        with self._cond:
            self._pending_ticks -= count
            if self._pending_ticks > queue_policy.LOW_WATER:
                return
            self._cond.notify_all()  # a source thread blocked in post_ticks_blocking
            if not self._room_waiters:
                return
            waiters, self._room_waiters = self._room_waiters, []
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    def _call(self, spi: Any, name: str, args: tuple[Any, ...]) -> None:
        try:
            getattr(spi, name)(*args)
        except BaseException as exc:  # noqa: BLE001 - user code: report and go on
            self._report(name, exc)

    def _deliver(self, spi: Any, ticks: Any, record: bool) -> None:
        callback = spi.OnRtnDepthMarketData
        halt = self._halt  # a list, not self._stopping: the cheapest check there is, once per tick
        tap = self.tap
        observations = tap.observers if tap is not None else ()
        observers = [o.callback for o in observations if o.only is None or o.only is self] if observations else ()
        summary = getattr(ticks, "latest", None) if record else None
        keep = False
        if record:
            if tap is not None and not tap.shared_ticks and (summary is not None or type(ticks) is list):
                keep, summary = True, None  # nobody can ask for these yet: fold them only if one does
            elif self._kept:
                self._fold_kept()
        latest = self.latest if record and not keep and summary is None else None
        try:
            # Iterating may make the ticks (a replay's TickRows, a sim:// block): a fault there
            # is the adapter's, and ends this batch only.  Three loops, so the common ones pay
            # only for what they do.
            if observers:
                for tick in ticks:
                    if halt:
                        return
                    if latest is not None:
                        latest[tick.InstrumentID] = tick
                    for observer in observers:
                        try:
                            observer(tick)
                        except Exception:  # noqa: BLE001 - an observer's fault must not stop delivery
                            log.exception("%s: a tick observer failed", self.name)
                    try:
                        callback(tick)
                    except BaseException as exc:  # noqa: BLE001 - user code: report and go on
                        self._report("OnRtnDepthMarketData", exc)
            elif latest is not None:
                for tick in ticks:
                    if halt:
                        return
                    latest[tick.InstrumentID] = tick
                    try:
                        callback(tick)
                    except BaseException as exc:  # noqa: BLE001 - user code: report and go on
                        self._report("OnRtnDepthMarketData", exc)
            else:
                for tick in ticks:
                    if halt:
                        return
                    try:
                        callback(tick)
                    except BaseException as exc:  # noqa: BLE001 - user code: report and go on
                        self._report("OnRtnDepthMarketData", exc)
            if summary is not None:
                self.latest.update(summary())
            elif keep:
                kept = self._kept
                kept.append(ticks)
                if len(kept) > queue_policy.KEEP_BATCHES:
                    kept.popleft()
                    self._kept_lost = True
        except Exception:  # noqa: BLE001 - an adapter's fault: report it, keep delivering
            log.exception("%s: a batch of %d ticks could not be made; the rest of it is skipped", self.name, len(ticks))

    def _fold_kept(self) -> None:
        """Bring :attr:`latest` up to date with the kept batches (oldest first); if one was let go
        unfolded, forget what came before it: an instrument then has no latest tick rather than
        a stale one."""
        if self._kept_lost:
            self.latest = {}
            self._kept_lost = False
        latest = self.latest
        kept, self._kept = self._kept, deque()
        for batch in kept:
            try:
                if type(batch) is list:
                    for tick in batch:
                        latest[tick.InstrumentID] = tick
                else:
                    latest.update(batch.latest())
            except Exception:  # noqa: BLE001 - an adapter's fault: that batch tells nothing
                log.exception("%s: a batch's latest ticks could not be read", self.name)

    def _report(self, name: str, exc: BaseException) -> None:
        if isinstance(exc, SystemExit):
            # openctp-ctp aborts the process when a callback calls exit(); programs rely on the
            # process ending there, so end it, with the code they asked for.
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            print(
                f"ctpshim: {self.spi_class_name}.{name} raised SystemExit({exc.code!r}): "
                "ending the process, as the CTP library does",
                file=sys.stderr,
            )
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        # Every traceback is printed, as openctp-ctp does, up to FULL_TRACEBACKS per callback and
        # exception type; after that one line a minute counts them, so a callback that fails on
        # every tick does not bury everything else.
        key = (name, type(exc))
        seen = self._errors.setdefault(key, [0, 0.0])
        seen[0] += 1
        if seen[0] <= FULL_TRACEBACKS:
            print(f"ctpshim: exception in {self.spi_class_name}.{name} (reported; dispatch goes on):", file=sys.stderr)
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
            if seen[0] == FULL_TRACEBACKS:
                print(f"ctpshim: further {type(exc).__name__} tracebacks from {name} are counted, not printed",
                      file=sys.stderr)
            return
        now = time.monotonic()
        if now - seen[1] >= 60.0:
            seen[1] = now
            print(f"ctpshim: {name} has raised {type(exc).__name__} {seen[0]} times: {exc}", file=sys.stderr)


def _cancel_marks(marks: list[Any]) -> None:
    for mark in marks:
        try:
            mark(None)
        except Exception:  # noqa: BLE001 - stopping goes on
            log.exception("a mark failed")
