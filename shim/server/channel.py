"""The send policy of one client connection (SERVER_PROTOCOLS.md 6.4), written once for every
protocol.

* Replies (``Rsp*``, ``RtnOrder``, errors ...) wait in a FIFO and are never dropped.  More than
  ``limits.reply_budget`` bytes of them waiting cuts the client off.
* Ticks: while the client keeps up, every tick is sent.  While a send is in progress (the
  protocol's ``send`` awaits its transport's drain: the socket is above its high-water mark),
  ticks wait one per instrument; a newer tick replaces a waiting one of the same instrument
  (counted in ``conflated``), so a slow client gets the latest snapshot of each instrument, in
  the order the instruments first changed.
* A send that does not finish within ``limits.write_deadline`` seconds cuts the client off.
* Cut off: logged with the reason, counted in the metrics, the queues emptied, and the
  protocol's ``on_cut_off(reason)`` called (soon, on the IO loop), which closes the connection
  its own way (binary: ERROR then close; WebSocket: close 1008/1013).

A client that keeps up costs no task switch: the ticks and replies given to its channel during
one turn of the loop are written by one callback per loop (``_LoopWork.flush``) that drives the
protocol's ``send`` directly; only a send that has to wait (for the transport's drain) is handed to
the channel's writer task (:meth:`ClientChannel.run`), which then writes what came meanwhile.
The write deadline is watched by one timer per loop, not one per send.

Everything here runs on the IO loop.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import weakref
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Generator

if TYPE_CHECKING:
    from .fanout import EncodedTick
    from .metrics import Metrics
    from .settings import Limits

log = logging.getLogger("ctpshim.server")

WATCHDOG_PERIOD = 0.25  # s at most between two checks of the write deadlines (a quarter of the shortest, if less)


class _Resumed:
    """The rest of a coroutine that was started outside a task and suspended at ``step``: awaiting
    this in a task goes on from there (what the task sends or throws in goes to the coroutine)."""

    __slots__ = ("_coro", "_step")

    def __init__(self, coro: Any, step: Any) -> None:
        self._coro = coro
        self._step = step

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, step = self._coro, self._step
        while True:
            try:
                sent = yield step
            except BaseException as exc:  # noqa: BLE001 - a cancellation thrown in by the task
                try:
                    step = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    step = coro.send(sent)
                except StopIteration as stop:
                    return stop.value

    def close(self) -> None:
        self._coro.close()


class _LoopWork:
    """Per event loop: the channels that have something to write this turn, and the write-deadline
    watchdog over the channels that are running."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.dirty: list[ClientChannel] = []
        self.scheduled = False
        self.watched: set[ClientChannel] = set()
        self.timer: asyncio.TimerHandle | None = None

    def mark(self, channel: "ClientChannel") -> None:
        self.dirty.append(channel)
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        dirty, self.dirty = self.dirty, []
        for channel in dirty:
            channel._flush()

    def watch(self, channel: "ClientChannel") -> None:
        self.watched.add(channel)
        if self.timer is None:
            self._schedule()

    def unwatch(self, channel: "ClientChannel") -> None:
        self.watched.discard(channel)

    def _schedule(self) -> None:
        shortest = min((c.limits.write_deadline for c in self.watched), default=WATCHDOG_PERIOD * 4)
        self.timer = self.loop.call_later(min(WATCHDOG_PERIOD, shortest / 4), self._check)

    def _check(self) -> None:
        self.timer = None
        now = self.loop.time()
        for channel in list(self.watched):
            if channel._sending and now - channel._send_started > channel.limits.write_deadline:
                channel._stalled()
        if self.watched:
            self._schedule()


_work: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopWork]" = weakref.WeakKeyDictionary()


def _work_of(loop: asyncio.AbstractEventLoop) -> _LoopWork:
    work = _work.get(loop)
    if work is None:
        work = _work[loop] = _LoopWork(loop)
    return work


class ClientChannel:
    """The queues and the writer of one client (see the module docstring).

    ``send(replies, ticks)`` writes them (replies first) and returns None, or, when the transport's
    buffer is above the high-water mark, an awaitable (a coroutine) that ends once it has drained.
    Run :meth:`run` as the connection's writer task; :meth:`close` ends it.
    """

    def __init__(self, name: str, send: Callable[[list[Any], list["EncodedTick"]], Awaitable[None] | None],
                 limits: "Limits", metrics: "Metrics", on_cut_off: Callable[[str], None]) -> None:
        self.name = name
        self._send = send
        self.limits = limits
        self.metrics = metrics
        self._on_cut_off = on_cut_off
        self.delivered = 0  # ticks handed to send
        self.conflated = 0  # ticks replaced by a newer one of the same instrument before being sent
        self.replies_sent = 0
        self.cut_off_reason: str | None = None
        self.closed = False
        self._replies: collections.deque[tuple[Any, int]] = collections.deque()
        self._reply_bytes = 0
        self._fresh: list["EncodedTick"] = []  # ticks since the last send, while not sending
        self._waiting: dict[str, "EncodedTick"] = {}  # latest per instrument, while a send is in progress
        self._sending = False
        self._send_started = 0.0
        self._dirty = False  # queued for this turn's flush
        self._inflight: tuple[Any, list[Any], list["EncodedTick"]] | None = None  # a send for the writer to finish
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop_work: _LoopWork | None = None

    @property
    def reply_bytes(self) -> int:
        """Bytes of replies waiting."""
        return self._reply_bytes

    @property
    def pending_ticks(self) -> int:
        return len(self._fresh) + len(self._waiting)

    @property
    def behind(self) -> bool:
        """Whether a send is in progress (new ticks are being conflated)."""
        return self._sending

    @property
    def _work(self) -> _LoopWork:
        work = self._loop_work
        if work is None:
            work = self._loop_work = _work_of(asyncio.get_running_loop())
        return work

    def reply(self, item: Any, size: int) -> None:
        """Queue a reply (never dropped); past ``reply_budget`` bytes waiting, cut off."""
        if self.closed:
            return
        self._replies.append((item, size))
        self._reply_bytes += size
        if self._reply_bytes > self.limits.reply_budget:
            self.cut_off(f"{self._reply_bytes} bytes of replies waiting, over the reply budget of "
                         f"{self.limits.reply_budget} (limits.reply_budget)")
            return
        if not self._sending and not self._dirty:
            self._dirty = True
            self._work.mark(self)

    def tick(self, tick: "EncodedTick") -> None:
        """Queue a tick: every one while the client keeps up, the latest per instrument while not."""
        if self.closed:
            return
        if self._sending:
            waiting = self._waiting
            instrument = tick.instrument
            if instrument in waiting:
                self.conflated += 1
                self.metrics.conflated += 1
            waiting[instrument] = tick  # keeps the instrument's first-dirty position
            return
        self._fresh.append(tick)
        if not self._dirty:
            self._dirty = True
            self._work.mark(self)

    def ticks(self, ticks: list["EncodedTick"]) -> None:
        """Queue several ticks, in order, as :meth:`tick` each."""
        if self.closed or not ticks:
            return
        if self._sending:
            waiting = self._waiting
            for tick in ticks:
                instrument = tick.instrument
                if instrument in waiting:
                    self.conflated += 1
                    self.metrics.conflated += 1
                waiting[instrument] = tick
            return
        self._fresh.extend(ticks)
        if not self._dirty:
            self._dirty = True
            self._work.mark(self)

    # -- writing --------------------------------------------------------------------------------

    def _take(self) -> tuple[list[Any], list["EncodedTick"]]:
        replies = [item for item, _ in self._replies]
        self._replies.clear()
        self._reply_bytes = 0
        ticks = self._fresh
        if self._waiting:
            ticks = ticks + list(self._waiting.values())
            self._waiting = {}
        self._fresh = []
        self._sending = True
        self._send_started = self._work.loop.time()
        return replies, ticks

    def _sent(self, replies: list[Any], ticks: list["EncodedTick"]) -> None:
        self._sending = False
        self.delivered += len(ticks)
        self.replies_sent += len(replies)
        self.metrics.delivered += len(ticks)
        self.metrics.count_messages(len(ticks) + len(replies))

    def _has_work(self) -> bool:
        return bool(self._replies or self._fresh or self._waiting)

    def _flush(self) -> None:
        """This turn's writing, when no send is in progress: ``send`` driven here; handed to the
        writer task only if it has to wait."""
        self._dirty = False
        if self.closed or self._sending or not self._has_work():
            return
        replies, ticks = self._take()
        try:
            pending = self._send(replies, ticks)
            if pending is None:  # written without waiting
                self._sent(replies, ticks)
                return
            if hasattr(pending, "send") and hasattr(pending, "throw"):  # a coroutine: run it up to its first wait
                try:
                    step = pending.send(None)
                except StopIteration:
                    self._sent(replies, ticks)
                    return
                pending = _Resumed(pending, step)
        except (ConnectionError, OSError) as exc:
            self._sending = False
            self._lost(exc)
            return
        except Exception as exc:  # noqa: BLE001 - a protocol's fault ends this client only
            self._sending = False
            self._failed(exc)
            return
        self._inflight = (pending, replies, ticks)
        self._work.watch(self)
        self._wake.set()

    async def run(self) -> None:
        """The writer task: finishes the sends that had to wait and writes what came meanwhile,
        until closed or cut off; a failing ``send`` (connection lost) ends it."""
        self._task = asyncio.current_task()
        work = self._work
        work.watch(self)
        try:
            while not self.closed:
                inflight = self._inflight
                if inflight is not None:
                    self._inflight = None
                    pending, replies, ticks = inflight
                    try:
                        await pending
                    finally:
                        self._sending = False
                    self._sent(replies, ticks)
                elif self._has_work() and not self._dirty:
                    replies, ticks = self._take()  # came while a send was in progress
                    try:
                        pending = self._send(replies, ticks)
                        if pending is not None:
                            await pending
                    finally:
                        self._sending = False
                    self._sent(replies, ticks)
                else:
                    self._wake.clear()
                    await self._wake.wait()
        except asyncio.CancelledError:
            if self.cut_off_reason is None and not self.closed:
                raise
        except (ConnectionError, OSError) as exc:
            self._lost(exc)
        except Exception as exc:  # noqa: BLE001 - a protocol's fault ends this client only
            self._failed(exc)
        finally:
            self._task = None
            work.unwatch(self)

    def _lost(self, exc: BaseException) -> None:
        log.debug("%s: send failed: %s", self.name, exc)
        self.closed = True
        self._shut()

    def _failed(self, exc: BaseException) -> None:
        log.error("client %s: sending failed", self.name, exc_info=exc)
        self.cut_off(f"sending failed: {type(exc).__name__}: {exc}")

    def _stalled(self) -> None:
        self.cut_off(f"no write progress for {self.limits.write_deadline:g} s (limits.write_deadline)")

    def cut_off(self, reason: str) -> None:
        """Stop sending for good, logging ``reason``; the protocol is told to close the connection."""
        if self.cut_off_reason is not None or self.closed:
            return
        self.cut_off_reason = reason
        log.warning("client %s cut off: %s", self.name, reason)
        self.metrics.cut_off += 1
        self._shut()
        asyncio.get_running_loop().call_soon(self._tell_cut_off, reason)

    def _tell_cut_off(self, reason: str) -> None:
        try:
            self._on_cut_off(reason)
        except Exception:  # noqa: BLE001 - closing a broken client must not break the server
            log.exception("client %s: closing it after the cut-off failed", self.name)

    def close(self) -> None:
        """End the writer; what waits is not sent."""
        if self.closed and self._task is None and self._inflight is None:
            return
        self._shut()

    def _shut(self) -> None:
        self.closed = True
        self._replies.clear()
        self._reply_bytes = 0
        self._fresh = []
        self._waiting = {}
        self._wake.set()
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        inflight, self._inflight = self._inflight, None
        if inflight is not None and task is None:  # no writer to finish it
            closer = getattr(inflight[0], "close", None)
            if closer is not None:
                closer()
        work = self._loop_work
        if work is not None:
            work.unwatch(self)
