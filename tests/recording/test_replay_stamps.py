"""replay:// stamping: rebase=now reads the one clock and stamps with the one stamper, per exchange,
with the dates= convention; rebase=none keeps the recorded stamps."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import pytest

from ctpshim.ctp import clock
from ctpshim.errors import FrontAddressError
from ctpshim.fronts.registry import create_adapter

from .days import alternating_day

FRIDAY_NIGHT = datetime(2026, 11, 20, 21, 30, 15, 250_000)  # the night session of Monday 2026-11-23


def first_ticks(front: str, ids: list[str], count: int) -> list:
    async def run() -> list:
        adapter = create_adapter(front)
        await adapter.connect()
        await adapter.subscribe(ids)
        stream = adapter.ticks()
        ticks: list = []
        while len(ticks) < count:
            ticks += await asyncio.wait_for(stream.__anext__(), 10)
        await adapter.close()
        return ticks[:count]

    return asyncio.run(asyncio.wait_for(run(), 30))


def stamps(tick) -> tuple:
    return tick.TradingDay, tick.ActionDay, tick.UpdateTime, tick.UpdateMillisec


@pytest.mark.parametrize("dates, expected", [
    ("correct", ("20261123", "20261120", "21:30:15", 250)),
    ("exchange", ("20261120", "20261120", "21:30:15", 0)),  # CZCE at night: TradingDay is the calendar day
])
def test_rebase_now_stamps_with_the_clock_and_the_dates_convention(dates, expected):
    with clock.using(FRIDAY_NIGHT):
        ticks = first_ticks(f"replay://?bundled=RM705&speed=max&dates={dates}", ["RM705"], 50)
    assert {stamps(t) for t in ticks} == {expected}


def test_rebase_none_keeps_the_recorded_stamps_whatever_the_clock():
    with clock.using(FRIDAY_NIGHT):
        ticks = first_ticks("replay://?bundled=RM705&speed=max&rebase=none", ["RM705"], 3)
    assert [t.TradingDay for t in ticks] == ["20170320"] * 3 and ticks[0].UpdateTime == "09:00:00"


def test_dates_with_rebase_none_is_refused_naming_both():
    with pytest.raises(FrontAddressError, match="dates=exchange .* rebase=none"):
        create_adapter("replay://?bundled=RM705&rebase=none&dates=exchange")


def mixed_exchanges(folder: Path) -> Path:
    """A day whose rows alternate between a DCE and an SHFE contract, 10 ms apart."""
    return alternating_day(folder / "20170320.parquet", 400,
                           {"InstrumentID": ("m2701", "rb2701"), "ExchangeID": ("DCE", "SHFE")})


def test_rows_of_several_exchanges_are_stamped_each_by_its_exchange_in_their_order(tmp_path):
    target = mixed_exchanges(tmp_path)
    with clock.using(FRIDAY_NIGHT):
        ticks = first_ticks(f"replay://{target}?speed=max&dates=exchange", ["m2701", "rb2701"], 400)
    assert [t.Volume for t in ticks] == list(range(400))  # the recorded order
    by_exchange = {t.ExchangeID: stamps(t) for t in ticks}
    assert len({stamps(t) for t in ticks}) == 2
    assert by_exchange == {"DCE": ("20261123", "20261123", "21:30:15", 250),  # DCE at night: ActionDay too
                           "SHFE": ("20261123", "20261120", "21:30:15", 250)}


def test_a_snapshot_owed_on_subscribe_is_stamped_like_the_ticks(tmp_path):
    async def run() -> tuple[list, list]:
        adapter = create_adapter(f"replay://{mixed_exchanges(tmp_path)}?speed=max")
        await adapter.connect()
        await adapter.subscribe(["m2701"])
        stream = adapter.ticks()
        first = list(await asyncio.wait_for(stream.__anext__(), 10))
        await adapter.subscribe(["rb2701"])
        snapshot = list(await asyncio.wait_for(stream.__anext__(), 10))
        await adapter.close()
        return first, snapshot

    with clock.using(FRIDAY_NIGHT):
        first, snapshot = asyncio.run(asyncio.wait_for(run(), 30))
    assert {t.InstrumentID for t in first} == {"m2701"}
    # rb2701's newest row played so far (at speed=max the whole piece of 400 rows was), stamped now
    assert first[-1].Volume == 398 and [(t.InstrumentID, t.Volume) for t in snapshot] == [("rb2701", 399)]
    assert stamps(snapshot[0]) == ("20261123", "20261120", "21:30:15", 250)
