"""The one clock: China time by default, another one for a scope, restored after it."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from ctpshim.ctp import calendar, clock


def test_the_default_clock_is_the_system_clock_in_china_time() -> None:
    assert isinstance(clock.current(), clock.SystemClock)
    before = datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(hours=8)
    now = clock.now()
    after = datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(hours=8)
    assert now.tzinfo is None
    assert before <= now <= after
    assert clock.today() == clock.now().date()


def test_a_fixed_moment_for_a_scope_then_the_previous_clock_again() -> None:
    moment = datetime(2026, 8, 6, 10, 0)
    with clock.using(moment) as fixed:
        assert isinstance(fixed, clock.FixedClock)
        assert clock.now() == moment
        assert fixed.advance(90) == moment + timedelta(seconds=90)
        assert clock.now() == moment + timedelta(seconds=90)
        fixed.set(datetime(2026, 8, 7, 21, 0))
        assert calendar.trading_day_of(clock.now()).isoformat() == "2026-08-10"  # Friday night -> Monday
    assert isinstance(clock.current(), clock.SystemClock)


def test_scopes_nest_and_are_restored_even_on_an_exception() -> None:
    outer, inner = datetime(2026, 1, 5, 9, 0), datetime(2026, 1, 6, 9, 0)
    with clock.using(outer):
        with pytest.raises(RuntimeError):
            with clock.using(inner):
                assert clock.now() == inner
                raise RuntimeError("the test's own error")
        assert clock.now() == outer
    assert isinstance(clock.current(), clock.SystemClock)


def test_an_aware_moment_is_taken_in_china_time() -> None:
    with clock.using(datetime(2026, 8, 6, 2, 0, tzinfo=timezone.utc)):
        assert clock.now() == datetime(2026, 8, 6, 10, 0)


def test_a_running_clock_starts_at_its_moment_and_runs() -> None:
    start = datetime(2026, 11, 20, 8, 59, 59)
    running = clock.RunningClock(start, rate=1000.0)
    with clock.using(running):
        first = clock.now()
        deadline = time.monotonic() + 5
        while clock.now() - first < timedelta(seconds=5) and time.monotonic() < deadline:
            time.sleep(0.001)
        assert start <= first < start + timedelta(seconds=5)
        assert clock.now() - first >= timedelta(seconds=5)  # 5 clock seconds in about 5 ms
    with pytest.raises(ValueError, match="rate"):
        clock.RunningClock(start, rate=0)


def test_every_thread_reads_the_installed_clock() -> None:
    seen: list[datetime] = []
    moment = datetime(2026, 3, 3, 13, 30)
    with clock.using(moment):
        worker = threading.Thread(target=lambda: seen.append(clock.now()))
        worker.start()
        worker.join(timeout=10)
    assert seen == [moment]


def test_install_returns_the_clock_it_replaces_and_refuses_a_non_clock() -> None:
    fixed = clock.FixedClock(datetime(2026, 1, 5, 9, 0))
    previous = clock.install(fixed)
    try:
        assert clock.current() is fixed
    finally:
        assert clock.install(previous) is fixed
    with pytest.raises(TypeError, match="Clock"):
        clock.install(datetime(2026, 1, 5))  # type: ignore[arg-type]


def test_a_clock_must_implement_now() -> None:
    class Broken(clock.Clock):
        pass

    with pytest.raises(TypeError):
        Broken()  # type: ignore[abstract]

