"""Tokens, per-client rate limits and the per-IP new-connection limit (SERVER_PROTOCOLS.md 6.1, 6.3)."""

from __future__ import annotations

import collections
import hmac
import time
from typing import Callable


class AuthError(Exception):
    """A client's token is missing or wrong (the message is safe to send to the client)."""


class LimitError(Exception):
    """A client went past one of the server's limits (the message names the limit and its value)."""


def tokens_match(given: str, secret: str) -> bool:
    """Whether ``given`` equals ``secret``, in time independent of where they differ."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), secret.encode("utf-8", "surrogatepass"))


class RateLimiter:
    """A token bucket: ``burst`` messages at once, refilled at ``rate`` per second."""

    __slots__ = ("rate", "burst", "_clock", "_tokens", "_stamp")

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate {rate!r} must be > 0 and burst {burst!r} at least 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def allow(self) -> bool:
        """Take one token if there is one."""
        now = self._clock()
        tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return True
        self._tokens = tokens
        return False


class ConnectionLimiter:
    """At most ``rate`` new connections from one IP address in any ``window`` seconds (``rate`` 0:
    no limit), the one rule of both listeners (binary and WebSocket).

    Only admitted connections count, so a client that keeps trying gets in again once its earlier
    connections are ``window`` old.  A *burst* is the run of refusals of one address between two
    admissions: :meth:`admit` numbers each refusal in it (1 = the first, the one to log) and, on the
    admission that ends it, says how many it had.
    """

    PRUNE_AT = 4096  # addresses kept before the quiet ones are forgotten

    def __init__(self, rate: int, window: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if rate < 0 or window <= 0:
            raise ValueError(f"rate {rate!r} must be >= 0 and window {window!r} > 0")
        self.rate = int(rate)
        self.window = float(window)
        self._clock = clock
        self._stamps: dict[str, collections.deque[float]] = {}
        self._refused: dict[str, int] = {}

    def admit(self, address: str) -> tuple[bool, int]:
        """``(True, n)``: admitted, ending a burst of ``n`` refusals (0: none); ``(False, n)``:
        refused, the ``n``-th refusal of this burst."""
        if not self.rate:
            return True, 0
        now = self._clock()
        stamps = self._stamps.get(address)
        if stamps is None:
            if len(self._stamps) >= self.PRUNE_AT:
                self._prune(now)
            stamps = self._stamps[address] = collections.deque()
        while stamps and now - stamps[0] >= self.window:
            stamps.popleft()
        if len(stamps) >= self.rate:
            refused = self._refused.get(address, 0) + 1
            self._refused[address] = refused
            return False, refused
        stamps.append(now)
        return True, self._refused.pop(address, 0)

    def _prune(self, now: float) -> None:
        for address in [a for a, s in self._stamps.items() if not s or now - s[-1] >= self.window]:
            del self._stamps[address]
            self._refused.pop(address, None)
