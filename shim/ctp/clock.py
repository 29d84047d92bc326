"""China time: the one clock that every part of ctpshim reads "now" from.

CTP's times are China time (UTC+8, no daylight saving) whatever the machine's zone: a tick's
UpdateTime, a login's LoginTime, the trading day a moment belongs to.  Everything that needs the
current moment calls :func:`now` (naive China time); nothing reads the system clock itself.

By default the clock is the system's (:class:`SystemClock`).  Tests and embedders put another one
in place for a scope::

    from ctpshim.ctp import clock

    with clock.using(datetime(2026, 11, 20, 21, 0)):        # a fixed moment (a FixedClock)
        ...
    with clock.using(clock.RunningClock(datetime(2026, 11, 20, 8, 59, 50))):  # starts there, runs
        ...

The clock is process-wide, not per thread or per task: the IO thread and the dispatcher threads
read the same one as the caller, so a program under ``using`` sees one consistent time.  Scopes
nest; leaving one puts back the clock that was there when it was entered.
"""

from __future__ import annotations

import threading
import time as _time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from typing import Iterator

CHINA = timezone(timedelta(hours=8), "CST")

__all__ = ["CHINA", "Clock", "SystemClock", "FixedClock", "RunningClock", "china_time", "now", "today",
           "current", "install", "using"]


def china_time(moment: datetime) -> datetime:
    """``moment`` as naive China time: an aware datetime is converted, a naive one taken as China time."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(CHINA).replace(tzinfo=None)


class Clock(ABC):
    """A source of the current China time.  Implementations must be safe to call from any thread."""

    @abstractmethod
    def now(self) -> datetime:
        """The current moment as naive China time."""


class SystemClock(Clock):
    """The machine's clock, in China time."""

    def now(self) -> datetime:
        return datetime.now(CHINA).replace(tzinfo=None)

    def __repr__(self) -> str:
        return "SystemClock()"


class FixedClock(Clock):
    """A clock that stands still at ``moment`` until it is :meth:`set` or :meth:`advance`\\d."""

    def __init__(self, moment: datetime) -> None:
        self._moment = china_time(moment)

    def now(self) -> datetime:
        return self._moment

    def set(self, moment: datetime) -> None:
        """Stand at ``moment`` from now on (aware moments are converted to China time)."""
        self._moment = china_time(moment)

    def advance(self, delta: timedelta | float) -> datetime:
        """Move forward by ``delta`` (a timedelta or seconds); returns the new moment."""
        self._moment += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        return self._moment

    def __repr__(self) -> str:
        return f"FixedClock({self._moment.isoformat(' ')})"


class RunningClock(Clock):
    """A clock that reads ``start`` when it is made and then runs, ``rate`` times as fast as real
    time (measured on the monotonic clock, so changes to the system time do not move it)."""

    def __init__(self, start: datetime, rate: float = 1.0) -> None:
        if not rate > 0:
            raise ValueError(f"rate={rate!r}: expected a number above 0")
        self._start = china_time(start)
        self._rate = float(rate)
        self._origin = _time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=(_time.monotonic() - self._origin) * self._rate)

    def __repr__(self) -> str:
        return f"RunningClock({self._start.isoformat(' ')}, rate={self._rate:g})"


_current: Clock = SystemClock()
_lock = threading.Lock()


def now() -> datetime:
    """The current moment as naive China time, from the installed clock."""
    return _current.now()


def today() -> date:
    """The current calendar date in China, from the installed clock."""
    return _current.now().date()


def current() -> Clock:
    """The installed clock."""
    return _current


def install(clock: Clock) -> Clock:
    """Put ``clock`` in place for the whole process; returns the clock it replaces.

    Prefer :func:`using`, which puts the previous one back; this is for embedders that set a
    clock once at start-up.
    """
    global _current
    if not isinstance(clock, Clock):
        raise TypeError(f"expected a ctpshim.ctp.clock.Clock, got {type(clock).__name__}")
    with _lock:
        previous, _current = _current, clock
    return previous


@contextmanager
def using(clock: Clock | datetime) -> Iterator[Clock]:
    """Put ``clock`` in place while the ``with`` block runs, then restore the one before.

    A ``datetime`` stands for ``FixedClock(moment)``.  Yields the clock in place, so a test can
    move a fixed one: ``with clock.using(moment) as c: ... c.advance(60)``.
    """
    installed = FixedClock(clock) if isinstance(clock, datetime) else clock
    previous = install(installed)
    try:
        yield installed
    finally:
        install(previous)
