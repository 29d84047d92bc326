"""sim:// paced rounds: made ahead of their mark, released at the mark, never before it."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from typing import Any

from ctpshim.adapters.sim import adapter as sim_adapter
from ctpshim.adapters.sim.adapter import Block
from ctpshim.fronts.registry import create_adapter


def moment(tick: Any) -> datetime:
    return datetime.strptime(tick.ActionDay + tick.UpdateTime, "%Y%m%d%H:%M:%S") + timedelta(
        milliseconds=tick.UpdateMillisec)


async def until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.002)


def test_paced_rounds_are_made_before_their_mark_and_leave_at_it() -> None:
    async def run() -> list[tuple[float, Any]]:
        adapter = create_adapter("sim://?speed=1&start=2026-11-20T09:35&interval=0.05")
        await adapter.connect()
        await adapter.subscribe(["rb2705", "cu2707", "au2706"])
        got: list[tuple[float, Any]] = []
        async for batch in adapter.ticks():
            got.append((time.monotonic(), batch))
            if len(got) >= 12:
                break
        clock = adapter.market_clock
        await adapter.close()
        return [(now, batch, clock.due(moment(next(iter(batch))))) for now, batch in got]

    got = asyncio.run(asyncio.wait_for(run(), 30))
    rounds = got[1:]  # the first is the subscription's snapshot
    assert all(now >= due for now, _, due in rounds), [now - due for now, _, due in rounds]
    # Made before it was handed on (at the mark, nothing is left to compute).
    assert all(isinstance(batch, Block) and batch._made is not None for _, batch, _ in rounds)
    assert all([t.InstrumentID for t in batch] == ["rb2705", "cu2707", "au2706"] for _, batch, _ in rounds)
    stamps = [moment(next(iter(batch))) for _, batch, _ in rounds]
    assert all((b - a) == timedelta(milliseconds=50) for a, b in zip(stamps, stamps[1:]))


def test_a_subscription_changed_while_a_round_is_held_takes_effect_after_it(monkeypatch: Any) -> None:
    # Hold each round for about 0.3 s before its mark, so that the changes surely come during a hold.
    monkeypatch.setattr(sim_adapter, "TIMER_SLACK", 0.3)

    async def run() -> tuple[list[tuple[float, list[Any]]], Any]:
        adapter = create_adapter("sim://?speed=1&start=2026-11-20T09:35&interval=1")
        await adapter.connect()
        await adapter.subscribe(["rb2705", "cu2707"])
        got: list[tuple[float, list[Any]]] = []

        async def consume() -> None:
            async for batch in adapter.ticks():
                got.append((time.monotonic(), list(batch)))

        task = asyncio.ensure_future(consume())
        try:
            await until(lambda: len(got) >= 2)  # the snapshot and a first round
            await until(lambda: adapter._holding)
            held_from = len(got)
            await adapter.subscribe(["au2706"])
            await adapter.unsubscribe(["cu2707"])
            await until(lambda: len(got) >= held_from + 3)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        clock = adapter.market_clock
        await adapter.close()
        return got[held_from:held_from + 3], clock

    (held, snapshot, following), clock = asyncio.run(asyncio.wait_for(run(), 30))
    # The held round: made before the changes, without the contract dropped meanwhile.
    assert [t.InstrumentID for t in held[1]] == ["rb2705"]
    mark = moment(held[1][0])
    assert held[0] >= clock.due(mark)
    # Then the new contract's snapshot, no newer than the round, and its ticks from the next round.
    assert [t.InstrumentID for t in snapshot[1]] == ["au2706"]
    assert moment(snapshot[1][0]) <= mark
    assert [t.InstrumentID for t in following[1]] == ["rb2705", "au2706"]
    assert all(moment(t) == mark + timedelta(seconds=1) for t in following[1])
    assert following[0] >= clock.due(mark + timedelta(seconds=1))
