"""The session behind one API object: front list, connection and login state, subscriptions,
reconnect and failover, and the pump that moves ticks from the adapter to the dispatcher.

It runs on the IO thread (:mod:`ctpshim.runtime.io_loop`).  Methods called from user threads are
marked; they only read simple attributes and post to the dispatcher or the IO loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from typing import Any, Iterator

from ..ctp import calendar
from .. import errors
from . import io_loop, queue_policy, reconnect
from ..fronts import registry
from .dispatcher import Dispatcher

log = logging.getLogger("ctpshim")


class _Unmuted:
    """A batch less the ticks of muted instruments, filtered when the dispatcher iterates it: a
    batch may make its ticks only then, on that thread (the ``Adapter.ticks`` contract).

    ``len()`` is the unfiltered count; the queue policy counts the same number in and out.
    """

    __slots__ = ("batch", "muted")

    def __init__(self, batch: Any, muted: frozenset[str]) -> None:
        self.batch = batch
        self.muted = muted

    def __len__(self) -> int:
        return len(self.batch)

    def __iter__(self) -> Iterator[Any]:
        muted = self.muted
        return iter([tick for tick in self.batch if tick.InstrumentID not in muted])


class Session:
    def __init__(self, name: str, dispatcher: Dispatcher, fronts: list[str], pump_ticks: bool) -> None:
        self.name = name
        self.dispatcher = dispatcher
        self.rotation = reconnect.FrontRotation(fronts)
        self.pump_ticks = pump_ticks
        self.adapter: Any = None
        self.front_url = ""
        self.connected = False
        self.front_id = 1
        self.session_id = 0
        # IDs unsubscribed by the user whose adapter has not confirmed yet: their ticks are
        # dropped so none arrives after OnRspUnSubMarketData.  Replaced, never mutated, so the
        # pump can read it from the IO thread while user threads update it.
        self._muted: frozenset[str] = frozenset()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._broken: asyncio.Future[int] | None = None
        self._generation = 0
        self._random = random.Random()
        self._mute_lock = threading.Lock()
        self._guards: set[asyncio.Future[None]] = set()
        # What the program has subscribed (kept across reconnects, in order; user threads update
        # it under _mute_lock) and, on the IO thread, which of those the session restored on
        # this connection without the program asking again (see reconnect.RESUBSCRIBE_AFTER_RELOGIN;
        # always a part of _told).
        self._wanted: dict[str, None] = {}
        self._restored: set[str] = set()
        self._told: set[str] = set()  # what the adapter was asked to deliver on this connection
        # Per front URL, the adapter's state that outlives one connection (Adapter.carry): a new
        # connection goes on where the last one stopped.
        self._carry: dict[str, dict[str, Any]] = {}

    # -- user threads ---------------------------------------------------------------------------

    def start(self) -> None:
        io_loop.submit(self._run())

    def close(self) -> None:
        self._closed = True
        self.connected = False
        io_loop.call_soon(self._cancel)

    def trading_day(self) -> str:
        """The current trading day (YYYYMMDD): the source's own if it keeps a clock."""
        adapter = self.adapter
        day = adapter.trading_day() if adapter is not None else None
        return day or calendar.yyyymmdd(calendar.trading_day_of(calendar.now_china()))

    def subscribe(self, ids: list[str]) -> None:
        """Called from a user thread after the OnRspSubMarketData replies were posted."""
        with self._mute_lock:
            self._wanted.update(dict.fromkeys(ids))
        io_loop.call_soon(self._change_subscription, self._generation, ids, True)

    def mute(self, ids: list[str]) -> None:
        """Called from a user thread before the OnRspUnSubMarketData replies are posted."""
        with self._mute_lock:
            self._muted = self._muted | set(ids)
            for instrument in ids:
                self._wanted.pop(instrument, None)

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

    async def _connect_once(self) -> None:
        url = self.rotation.current()
        adapter = None
        try:
            # In a worker thread: the adapter's check reads files (a recording's), which must not
            # hold up the IO thread every other API object shares.
            adapter = await asyncio.to_thread(registry.create_adapter, url)
            adapter.carry = self._carry.setdefault(url, {})
            await asyncio.wait_for(adapter.connect(), reconnect.CONNECT_TIMEOUT)
        except asyncio.CancelledError:
            await self._close_adapter(adapter)
            raise
        except BaseException as exc:  # noqa: BLE001 - any adapter failure makes the front unreachable
            await self._close_adapter(adapter)
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
        if self._closed:  # Release() raced the connect (wait_for can swallow its cancellation on 3.11)
            await self._close_adapter(adapter)
            return
        self.rotation.connected()
        self._generation += 1
        self._restored = set()
        self._told = set()
        self.adapter = adapter
        self.front_url = url
        self.session_id = self._random.randint(-(2**31), 2**31 - 1)
        self.connected = True
        self.dispatcher.post("OnFrontConnected")
        try:
            reason = await self._serve(adapter)
        finally:  # also when Release() cancels us: the adapter's connections must be closed
            self.connected = False
            self.adapter = None
            with self._mute_lock:
                self._muted = frozenset()
            await self._close_adapter(adapter)
        if self._closed:
            return
        log.warning("%s: front %s disconnected (reason %d); reconnecting", self.name, url, reason)
        self.dispatcher.post("OnFrontDisconnected", reason)
        await asyncio.sleep(self.rotation.dropped())

    async def _serve(self, adapter: Any) -> int:
        """Run until the link breaks; return the CTP reason code."""
        self._broken = asyncio.get_running_loop().create_future()
        pump = asyncio.create_task(self._pump(adapter)) if self.pump_ticks else None
        try:
            return await self._broken
        finally:
            if pump is not None:
                pump.cancel()
                with contextlib.suppress(BaseException):
                    await pump

    def _break(self, exc: BaseException) -> None:
        if isinstance(exc, errors.UpstreamError):
            reason = exc.reason
            log.warning("%s: %s", self.name, exc)
        else:
            reason = errors.REASON_BAD_MESSAGE
            log.error("%s: the adapter for %s failed", self.name, self.front_url, exc_info=exc)
        if self._broken is not None and not self._broken.done():
            self._broken.set_result(reason)

    async def _pump(self, adapter: Any) -> None:
        post = self.dispatcher.post_ticks
        high_water = queue_policy.HIGH_WATER
        try:
            async for batch in adapter.ticks():
                if self._closed:
                    return
                muted = self._muted
                if muted:
                    batch = _Unmuted(batch, muted)
                if batch and post(batch) > high_water:
                    await self.dispatcher.wait_for_room()
                else:
                    # Let the loop run other sessions (and cancellation) even when an adapter
                    # produces batches without ever suspending, as sim:// at speed=max does.
                    await asyncio.sleep(0)
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - reported as a disconnect
            self._break(exc)

    def _restore(self, generation: int, wanted: list[str]) -> None:
        if generation != self._generation or self.adapter is None:
            return
        missing = [i for i in wanted if i not in self._told]
        if missing:
            log.info("%s: restoring %d subscription(s) after the new login: %s",
                     self.name, len(missing), ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
            self._change_subscription(generation, missing, True)
            self._restored.update(missing)

    def _change_subscription(self, generation: int, ids: list[str], add: bool) -> None:
        if generation != self._generation or self.adapter is None:
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
            with self._mute_lock:
                self._muted = self._muted - set(ids)
            self._told.update(ids)
            coro = self.adapter.subscribe(ids)
        else:
            self._told.difference_update(ids)
            self._restored.difference_update(ids)
            coro = self.adapter.unsubscribe(ids)
        task = asyncio.ensure_future(self._guard(coro, None if add else ids))
        self._guards.add(task)  # the loop holds tasks only weakly
        task.add_done_callback(self._guards.discard)

    async def _guard(self, coro: Any, unmute: list[str] | None) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - reported as a disconnect
            self._break(exc)
            return
        if unmute:
            with self._mute_lock:
                self._muted = self._muted - set(unmute)

    @staticmethod
    async def _close_adapter(adapter: Any) -> None:
        if adapter is None:
            return
        try:
            await adapter.close()
        except Exception:  # noqa: BLE001 - closing must not hide the original problem
            log.debug("closing adapter failed", exc_info=True)
