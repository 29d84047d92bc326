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

Everything here runs on the IO loop.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable

if TYPE_CHECKING:
    from .fanout import EncodedTick
    from .metrics import Metrics
    from .settings import Limits

log = logging.getLogger("ctpshim.server")


class ClientChannel:
    """The queues and the writer loop of one client (see the module docstring).

    ``send(replies, ticks)`` writes them (replies first) and awaits the transport's drain only
    when its buffer is above the high-water mark.  Run :meth:`run` as the connection's writer
    task; :meth:`close` ends it.
    """

    def __init__(self, name: str, send: Callable[[list[Any], list["EncodedTick"]], Awaitable[None]],
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
        self._fresh: list["EncodedTick"] = []  # ticks since the writer last ran, while not sending
        self._waiting: dict[str, "EncodedTick"] = {}  # latest per instrument, while a send is in progress
        self._sending = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

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
        self._wake.set()

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
        else:
            self._fresh.append(tick)
        self._wake.set()

    async def run(self) -> None:
        """The writer loop: until closed or cut off; a failing ``send`` (connection lost) ends it."""
        self._task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        try:
            while not self.closed:
                if not (self._replies or self._fresh or self._waiting):
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                replies = [item for item, _ in self._replies]
                self._replies.clear()
                self._reply_bytes = 0
                ticks = self._fresh
                if self._waiting:
                    ticks = ticks + list(self._waiting.values())
                    self._waiting = {}
                self._fresh = []
                self._sending = True
                deadline = loop.call_later(self.limits.write_deadline, self._stalled)
                try:
                    await self._send(replies, ticks)
                finally:
                    deadline.cancel()
                    self._sending = False
                self.delivered += len(ticks)
                self.replies_sent += len(replies)
                self.metrics.delivered += len(ticks)
                self.metrics.count_messages(len(ticks) + len(replies))
        except asyncio.CancelledError:
            if self.cut_off_reason is None and not self.closed:
                raise
        except (ConnectionError, OSError) as exc:
            log.debug("%s: send failed: %s", self.name, exc)
            self.closed = True
        except Exception as exc:  # noqa: BLE001 - a protocol's fault ends this client only
            log.error("client %s: sending failed", self.name, exc_info=exc)
            self.cut_off(f"sending failed: {type(exc).__name__}: {exc}")
        finally:
            self._task = None

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
        """End the writer loop; what waits is not sent."""
        if self.closed:
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
