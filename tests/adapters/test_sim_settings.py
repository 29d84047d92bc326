"""Every sim:// setting has a range checked at RegisterFront; nothing a setting says can freeze the IO thread."""

from __future__ import annotations

import asyncio
import threading
import time
import tracemalloc
from datetime import datetime

import pytest

from ctpshim import mdapi
from ctpshim.adapters import sim
from ctpshim.adapters.sim import planning
from ctpshim.errors import FrontAddressError
from ctpshim.fronts.registry import create_adapter

from ..conftest import wait_for
from .test_sim import values


def first_ticks(url: str, ids: list[str], count: int) -> list:
    async def run() -> list:
        adapter = create_adapter(url)
        await adapter.connect()
        await adapter.subscribe(ids)
        ticks: list = []
        async for batch in adapter.ticks():
            ticks += batch
            if len(ticks) >= count:
                break
        await adapter.close()
        return ticks

    return asyncio.run(asyncio.wait_for(run(), 30))


@pytest.mark.parametrize("url, named", [
    ("sim://?interval=0.0000005", "interval"),
    ("sim://?interval=1e300", "interval"),
    ("sim://?speed=1e15", "speed"),
    ("sim://?start=0001-01-01T00:00", "start"),
    ("sim://?start=9999-12-31T23:59", "start"),
    ("sim://?price=0.5", "0.5"),
    ("sim://?price=1e10", "1e+10"),
    ("sim://?instruments=rb2705&price=3500.5", "not a multiple of rb's price tick 1"),
    ("sim://?instruments=rb2705&price=rb2705:40000", "outside rb's range 72 to 31500"),
    ("sim://?price=zz9999:100", "zz9999"),
    ("sim://?seed=-1", "seed"),
    ("sim://?disconnect_after=0", "disconnect_after"),
    ("sim://foo/bar", "no host or path (got 'foo/bar')"),
    ("sim://localhost:5000", "no host or path"),
    ("sim:///data", "no host or path"),
])
def test_a_bad_setting_is_refused_at_register_front_naming_it(url, named, tmp_path):
    api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(f"{tmp_path}/")
    try:
        with pytest.raises(FrontAddressError) as caught:
            api.RegisterFront(url)
        assert named in str(caught.value)
    finally:
        api.Release()


def test_a_start_with_a_time_zone_is_china_time():
    ticks = first_ticks("sim://?speed=max&start=2026-11-20T01:35:00Z", ["rb2705"], 3)
    assert ticks[1].ActionDay == "20261120" and ticks[1].UpdateTime == "09:35:00"
    shifted = first_ticks("sim://?speed=max&start=2026-11-20T09:35:00%2B08:00", ["rb2705"], 3)
    assert [values(t) for t in shifted] == [values(t) for t in ticks]


def test_the_market_clock_stops_at_the_calendars_end_at_any_speed(monkeypatch):
    # At the highest speed the clock reaches the end of the calendar's range after a while and
    # stays there: no overflow, and a trading day to log in to.
    adapter = create_adapter("sim://?speed=1000000&start=2099-12-31T23:00")
    assert adapter.trading_day() == "21000101"
    real = time.monotonic
    monkeypatch.setattr(planning.time, "monotonic", lambda: real() + 1e12)
    assert adapter.market_now() == sim.MARKET_END == datetime(2099, 12, 31, 23, 59, 59)
    assert adapter.trading_day() == "21000101"


def test_a_high_price_neither_blocks_the_io_thread_nor_grows_memory():
    # A price far above the product's level: the limit band is tabulated in a bounded window, never whole.
    tracemalloc.start()
    begin = time.monotonic()
    ticks = first_ticks("sim://?speed=max&start=2026-11-20T09:35&price=cu2705:800000&volatility=10",
                        ["cu2705"], 2000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert time.monotonic() - begin < 10
    assert peak < 30_000_000
    assert all(t.LowerLimitPrice <= t.LastPrice <= t.UpperLimitPrice for t in ticks)
    assert all(abs(t.LastPrice / 10 - round(t.LastPrice / 10)) < 1e-9 for t in ticks)


def test_a_low_price_keeps_a_book_and_positive_prices():
    # The lowest valid price keeps five ticks of band on each side: a book, and prices above zero.
    ticks = first_ticks("sim://?speed=max&start=2026-11-20T09:35&price=rb2705:72&volatility=3", ["rb2705"], 2000)
    assert all(t.LastPrice > 0 and t.LowerLimitPrice >= 67 for t in ticks)


def test_the_highest_speed_keeps_the_program_responsive(tmp_path):
    api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(f"{tmp_path}/")
    other = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(f"{tmp_path}/other_")
    connected = threading.Event()

    class Spi(mdapi.CThostFtdcMdSpi):
        def OnFrontConnected(self) -> None:
            connected.set()

    try:
        spi, spi2 = mdapi.CThostFtdcMdSpi(), Spi()
        api.RegisterSpi(spi)
        api.RegisterFront("sim://?speed=1000000&start=2026-11-20T09:35")
        api.Init()
        other.RegisterSpi(spi2)
        other.RegisterFront("sim://?speed=1000000&start=2099-12-31T23:00")
        other.Init()
        wait_for(connected.is_set, 10, "the second API object's OnFrontConnected")
        assert other.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 1) == 0
        wait_for(lambda: other.GetTradingDay() != "19800100", 10, "login at speed=1e6")
    finally:
        api.Release()
        other.Release()
