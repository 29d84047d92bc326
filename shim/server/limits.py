"""Tokens and per-client rate limits (SERVER_PROTOCOLS.md 6.1, 6.3)."""

from __future__ import annotations

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
