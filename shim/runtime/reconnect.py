"""Reconnect and failover policy: the one place that decides when to try which front.

Modelled on the CTP library: a front that cannot be reached is retried silently about every
5 s; an established session that drops is reconnected about 1 s later, on the same front.
With several fronts registered, an unreachable one is skipped at once in favour of the next.

Subscriptions after a reconnect: the CTP library forgets them, and programs written for it
subscribe again after the new login (vnpy keeps a set for that).  Programs that do not would
silently get no more ticks, so the session restores the instruments the program had subscribed
as soon as it logs in again (``RESUBSCRIBE_AFTER_RELOGIN``).  A program that subscribes again
itself gets its ``OnRspSubMarketData`` replies as usual and no second snapshot.  Nothing is
delivered before the new ``OnRspUserLogin``, as with CTP.
"""

from __future__ import annotations

RETRY_UNREACHABLE = 5.0  # seconds between rounds when no registered front can be reached
RETRY_AFTER_DROP = 1.0  # seconds before reconnecting after an established session dropped
CONNECT_TIMEOUT = 10.0  # seconds an adapter may take to connect before it counts as unreachable
RESUBSCRIBE_AFTER_RELOGIN = True  # restore the program's subscriptions at its next login (see above)
# A polled feed with a fallback source (tencent:// falls back to Sina) keeps the session up while
# the fallback answers; it asks the primary again this often, and goes back to it once it answers.
RETRY_PRIMARY_FEED = RETRY_UNREACHABLE


class FrontRotation:
    """Which front to try next, and how long to wait first."""

    def __init__(self, fronts: list[str]) -> None:
        if not fronts:
            raise ValueError("no front registered")
        self.fronts = list(fronts)
        self._index = 0
        self._failed_in_round = 0

    def current(self) -> str:
        return self.fronts[self._index]

    def unreachable(self) -> float:
        """The current front could not be reached: move on; return the delay before the next try."""
        self._index = (self._index + 1) % len(self.fronts)
        self._failed_in_round += 1
        if self._failed_in_round >= len(self.fronts):
            self._failed_in_round = 0
            return RETRY_UNREACHABLE
        return 0.0

    def connected(self) -> None:
        self._failed_in_round = 0

    def dropped(self) -> float:
        """An established session on the current front dropped: retry it after a short pause."""
        return RETRY_AFTER_DROP
