"""sim:// keeps CTP's invariants, follows the trading calendar and is deterministic per seed."""

from __future__ import annotations

import asyncio
import threading
import math
from datetime import date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ctpshim.adapters.sim import model
from ctpshim.ctp import calendar
from ctpshim.ctp.fields import member_names
from ctpshim.ctp.market_data import DBL_MAX
from ctpshim.ctp.products import parse_instrument, trading_day_sessions
from ctpshim.fronts.registry import create_adapter

# Contracts listed on the start dates below (November 2026).
CONTRACTS = ["rb2705", "au2706", "cu2707", "sc2703", "m2705", "i2705", "TA705", "SR705", "IF2612", "T2703",
             "si2705", "lc2705", "ag2706", "jd2705"]
STARTS = ["2026-11-20T09:35", "2026-11-20T21:00", "2026-11-20T23:59:58", "2026-11-19T08:30", "2026-11-20T14:59"]
PRICES = ["LastPrice", "OpenPrice", "HighestPrice", "LowestPrice"] + [
    f"{side}Price{i}" for i in range(1, 6) for side in ("Bid", "Ask")]


def collect(url: str, ids: list[str], count: int, max_batches: int = 10_000) -> list:
    async def run():
        adapter = create_adapter(url)
        await adapter.connect()
        await adapter.subscribe(ids)
        ticks: list = []
        batches = 0
        async for batch in adapter.ticks():
            ticks += batch
            batches += 1
            if len(ticks) >= count or batches >= max_batches:
                break
        await adapter.close()
        return ticks

    return asyncio.run(asyncio.wait_for(run(), 60))


def values(tick) -> tuple:
    """All of a tick's members, in order (to compare ticks)."""
    return tuple(getattr(tick, name) for name in member_names(type(tick)))


def moment(tick) -> datetime:
    return datetime.strptime(tick.ActionDay + tick.UpdateTime, "%Y%m%d%H:%M:%S") + timedelta(
        milliseconds=tick.UpdateMillisec)


def ticks_at(product, when: datetime) -> bool:
    """A moment a real front sends: inside a session (its end included), the opening auction a minute
    before the first session, or CFFEX's settlement half an hour after the close."""
    day = calendar.trading_day_of(when)
    sessions = trading_day_sessions(product, day)
    if any(start < when <= end for start, end in sessions):
        return True
    if sessions and when == sessions[0][0] - timedelta(minutes=1):
        return True
    return product.exchange == "CFFEX" and when == sessions[-1][1] + timedelta(minutes=30)


def on_grid(price: float, step: float) -> bool:
    return abs(price / step - round(price / step)) < 1e-6


def check_invariants(ticks: list, hours_real: bool = True) -> None:
    by_instrument: dict[str, list] = {}
    for tick in ticks:
        by_instrument.setdefault(tick.InstrumentID, []).append(tick)
    for instrument, series in by_instrument.items():
        product = parse_instrument(instrument).product
        step = product.tick
        previous = None
        for index, t in enumerate(series):
            assert t.ExchangeID == product.exchange and t.reserve1 == instrument == t.ExchangeInstID
            assert isinstance(t.LastPrice, float) and isinstance(t.Volume, int)
            assert t.LowerLimitPrice < t.PreSettlementPrice < t.UpperLimitPrice
            for name in PRICES + ["UpperLimitPrice", "LowerLimitPrice", "PreSettlementPrice", "PreClosePrice"]:
                price = getattr(t, name)
                if price != DBL_MAX:
                    assert on_grid(price, step), (name, price, step)
            for name in PRICES:
                price = getattr(t, name)
                if price != DBL_MAX:
                    assert t.LowerLimitPrice <= price <= t.UpperLimitPrice, (name, price)
            if t.ClosePrice != DBL_MAX:  # the day's closing snapshot, then the settlement
                assert t.ClosePrice == t.LastPrice and on_grid(t.ClosePrice, step)
            else:
                assert t.SettlementPrice == DBL_MAX
            # The book: levels present from the top down, bids falling, asks rising, a spread of a tick or more.
            bids = [(getattr(t, f"BidPrice{i}"), getattr(t, f"BidVolume{i}")) for i in range(1, 6)]
            asks = [(getattr(t, f"AskPrice{i}"), getattr(t, f"AskVolume{i}")) for i in range(1, 6)]
            for side in (bids, asks):
                present = [p != DBL_MAX for p, _ in side]
                assert present == sorted(present, reverse=True)
                assert all((v > 0) == (p != DBL_MAX) for p, v in side)
            bid_prices = [p for p, _ in bids if p != DBL_MAX]
            ask_prices = [p for p, _ in asks if p != DBL_MAX]
            assert bid_prices == sorted(bid_prices, reverse=True) and len(set(bid_prices)) == len(bid_prices)
            assert ask_prices == sorted(ask_prices) and len(set(ask_prices)) == len(ask_prices)
            if bid_prices and ask_prices:
                assert ask_prices[0] - bid_prices[0] >= step - 1e-9
            # Open/High/Low agree with LastPrice; before the first trade of the day they are absent.
            if t.Volume == 0:
                assert t.OpenPrice == t.HighestPrice == t.LowestPrice == DBL_MAX and t.Turnover == 0
            else:
                assert t.LowestPrice <= t.LastPrice <= t.HighestPrice
                assert t.LowestPrice <= t.OpenPrice <= t.HighestPrice
                vwap = t.Turnover / t.Volume / product.multiplier
                assert t.LowestPrice - 1e-6 <= vwap <= t.HighestPrice + 1e-6
                if product.exchange == "CZCE":
                    assert on_grid(t.AveragePrice, step)
                    assert abs(t.AveragePrice - t.Turnover / t.Volume / product.multiplier) <= step / 2 + 1e-6
                else:
                    assert t.AveragePrice == pytest.approx(t.Turnover / t.Volume)
            assert t.OpenInterest >= 0
            # Dates: TradingDay is the trading day of the tick's moment; ActionDay its calendar date.
            when = moment(t)
            assert t.TradingDay == calendar.yyyymmdd(calendar.trading_day_of(when))
            if hours_real and index > 0:
                assert ticks_at(product, when), (instrument, when)
            if previous is not None:
                assert when >= moment(previous)
                if previous.TradingDay == t.TradingDay:
                    assert t.Volume >= previous.Volume and t.Turnover >= previous.Turnover - 1e-6
                    traded = t.Volume - previous.Volume
                    if traded:  # a snapshot's trades are valued inside the day's range
                        value = (t.Turnover - previous.Turnover) / traded / product.multiplier
                        assert t.LowestPrice - 1e-6 <= value <= t.HighestPrice + 1e-6
                else:
                    assert t.TradingDay > previous.TradingDay and t.PreSettlementPrice > 0
            previous = t


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), ids=st.lists(st.sampled_from(CONTRACTS), min_size=1, max_size=4, unique=True),
       start=st.sampled_from(STARTS))
def test_ticks_keep_ctps_invariants(seed, ids, start):
    ticks = collect(f"sim://?seed={seed}&speed=max&start={start}", ids, 600)
    assert ticks
    check_invariants(ticks)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10**6), volatility=st.sampled_from(["0.05", "0.5", "3"]))
def test_invariants_hold_around_the_clock_and_at_the_limits(seed, volatility):
    # High volatility drives prices into the limit band's edges, where book levels go missing.
    ticks = collect(f"sim://?seed={seed}&speed=max&hours=always&volatility={volatility}&start=2026-11-20T16:00",
                    ["au2706", "TA705"], 3000)
    check_invariants(ticks, hours_real=False)


def test_the_same_seed_gives_the_same_ticks_whatever_else_is_subscribed():
    url = "sim://?seed=42&speed=max&start=2026-11-20T09:35"
    alone = [values(t) for t in collect(url, ["rb2705"], 300)]
    again = [values(t) for t in collect(url, ["rb2705"], 300)]
    mixed = [values(t) for t in collect(url, ["au2706", "rb2705", "TA705"], 900) if t.InstrumentID == "rb2705"]
    assert alone == again
    assert mixed[:250] == alone[:250]
    other_seed = [values(t) for t in collect(url.replace("seed=42", "seed=43"), ["rb2705"], 300)]
    assert other_seed != alone


def test_friday_night_belongs_to_monday_and_the_weekend_is_closed():
    ticks = collect("sim://?speed=max&start=2026-11-20T20:59", ["rb2705", "au2706"], 200_000, max_batches=3000)
    rb = [t for t in ticks if t.InstrumentID == "rb2705"][1:]
    au = [t for t in ticks if t.InstrumentID == "au2706"][1:]
    friday_night = [t for t in rb if t.ActionDay == "20261120"]
    assert friday_night and all(t.TradingDay == "20261123" for t in friday_night)
    assert friday_night[0].UpdateTime == "20:59:00"  # the opening auction
    assert max(t.UpdateTime for t in friday_night) == "23:00:00"
    after_midnight = [t for t in au if t.ActionDay == "20261121"]
    assert after_midnight and all(t.TradingDay == "20261123" and t.UpdateTime <= "02:30:00" for t in after_midnight)
    assert after_midnight[-1].UpdateTime == "02:30:00"
    assert not [t for t in rb if t.ActionDay in ("20261121", "20261122")]
    monday = [t for t in rb if t.ActionDay == "20261123" and t.UpdateTime < "15:00:00"]
    assert monday and monday[0].UpdateTime == "09:00:00" and monday[0].UpdateMillisec == 500
    # Monday's day session continues Monday's trading day that began on Friday night: no reset.
    assert monday[0].Volume >= friday_night[-1].Volume
    monday_night = [t for t in rb if t.ActionDay == "20261123" and t.UpdateTime >= "21:00:00"]
    assert monday_night, "the run should reach Monday's night session"
    closing, opening = [t for t in rb if t.TradingDay == "20261123"][-1], monday_night[0]
    assert opening.TradingDay == "20261124"
    # The close carries the settlement (the day's volume-weighted price, truncated to the tick);
    # the new day starts from it.
    assert closing.UpdateTime == "15:00:00" and closing.ClosePrice == closing.LastPrice
    assert closing.SettlementPrice == math.floor(closing.Turnover / closing.Volume / 10 + 1e-7)
    assert opening.PreSettlementPrice == closing.SettlementPrice
    assert opening.PreClosePrice == closing.ClosePrice and opening.PreOpenInterest == closing.OpenInterest
    assert opening.Volume < closing.Volume  # the cumulative members restarted


def test_no_night_session_before_a_holiday():
    assert not calendar.is_trading_day(date(2026, 10, 1))
    assert not calendar.has_night_session(date(2026, 9, 30))
    ticks = collect("sim://?speed=max&start=2026-09-30T20:00", ["rb2701"], 3)
    resumed = calendar.next_trading_day(date(2026, 9, 30))
    # No night session: the day auction at 08:59 opens the trading day, then 09:00:00.500.
    assert ticks[1].ActionDay == calendar.yyyymmdd(resumed) and ticks[1].UpdateTime == "08:59:00"
    assert ticks[2].UpdateTime == "09:00:00" and ticks[1].TradingDay == calendar.yyyymmdd(resumed)


def test_exchange_date_convention_reproduces_dce_and_czce_quirks():
    url = "sim://?speed=max&dates=exchange&start=2026-11-19T21:00"
    ticks = collect(url, ["m2705", "TA705", "rb2705"], 60)
    night = {t.InstrumentID: t for t in ticks[3:]}
    assert night["rb2705"].TradingDay == "20261120" and night["rb2705"].ActionDay == "20261119"
    assert night["m2705"].TradingDay == "20261120" and night["m2705"].ActionDay == "20261120"  # DCE
    assert night["TA705"].TradingDay == "20261119" and night["TA705"].ActionDay == "20261119"  # CZCE
    assert all(t.UpdateMillisec == 0 for t in ticks if t.InstrumentID == "TA705")


def test_settings_shape_the_market():
    ticks = collect("sim://?speed=max&start=2026-11-20T09:35&price=rb2705:4000&depth=1&interval=1", ["rb2705"], 50)
    assert ticks[0].PreSettlementPrice == 4000.0
    assert all(t.BidPrice2 == DBL_MAX and t.AskVolume2 == 0 for t in ticks)
    seconds = [moment(t) for t in ticks[1:]]
    assert all((b - a).total_seconds() == 1.0 for a, b in zip(seconds, seconds[1:]))


def test_speed_is_honoured_on_the_market_clock():
    async def run():
        adapter = create_adapter("sim://?speed=20&start=2026-11-20T09:35&interval=0.5")
        await adapter.connect()
        await adapter.subscribe(["rb2705"])
        loop = asyncio.get_running_loop()
        begin = loop.time()
        ticks = []
        async for batch in adapter.ticks():
            ticks += batch
            if len(ticks) >= 41:
                break
        return ticks, loop.time() - begin

    ticks, wall = asyncio.run(run())
    market = (moment(ticks[-1]) - moment(ticks[1])).total_seconds()
    assert market == pytest.approx(19.5)
    assert market / wall == pytest.approx(20, rel=0.35)


def test_default_instruments_span_the_six_exchanges():
    adapter = create_adapter("sim://?start=2026-11-20T09:35")
    exchanges = {info.exchange_id for info in adapter.instruments()}
    assert exchanges == {"SHFE", "INE", "DCE", "CZCE", "CFFEX", "GFEX"}
    assert all(math.isfinite(info.product.tick) for info in adapter.instruments())


def batches(url: str, ids: list[str], count: int) -> list:
    """The first ``count`` batches of ``ids``, none of them iterated."""
    async def run():
        adapter = create_adapter(url)
        await adapter.connect()
        await adapter.subscribe(ids)
        taken: list = []
        async for batch in adapter.ticks():
            taken.append(batch)
            if len(taken) >= count:
                break
        await adapter.close()
        return taken

    return asyncio.run(asyncio.wait_for(run(), 60))


URL = "sim://?seed=11&speed=max&start=2026-11-20T10:14"
IDS = ["rb2705", "au2706", "TA705"]


def test_several_consumers_of_one_adapter_get_the_same_ticks_in_any_order():
    expected = [[values(t) for t in batch] for batch in batches(URL, IDS, 40)]
    # Every batch iterated twice gives the same tick objects; iterating the last batch first
    # makes the earlier ones first, so what anyone sees is the ticks of the in-order run.
    taken = batches(URL, IDS, 40)
    last = list(taken[-1])
    assert [values(t) for t in last] == expected[-1]
    for batch, ticks in zip(taken, expected):
        first, again = list(batch), list(batch)
        assert [values(t) for t in first] == ticks
        assert all(a is b for a, b in zip(first, again))


def test_threads_racing_to_make_the_batches_make_each_once():
    expected = [[values(t) for t in batch] for batch in batches(URL, IDS, 60)]
    taken = batches(URL, IDS, 60)
    seen: dict[int, list] = {}
    start = threading.Barrier(4)

    def consume(name: int, order: list) -> None:
        start.wait(10)
        seen[name] = [[t for t in taken[i]] for i in order]

    orders = [list(range(60)), list(range(60)), list(reversed(range(60))), list(range(30, 60)) + list(range(30))]
    threads = [threading.Thread(target=consume, args=(n, order)) for n, order in enumerate(orders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    for name, order in enumerate(orders):
        got = dict(zip(order, seen[name]))
        assert [[values(t) for t in got[i]] for i in range(60)] == expected
        assert all(a is b for i in range(60) for a, b in zip(got[i], seen[0][i]))


def test_a_block_names_the_last_tick_of_each_contract():
    for batch in batches(URL, IDS, 5):
        ticks = list(batch)
        last = {t.InstrumentID: t for t in ticks}
        assert batch.latest().keys() == last.keys()
        assert all(batch.latest()[i] is last[i] for i in last)


def test_probe_tells_the_market_time_trading_day_and_listed_contracts():
    async def run():
        adapter = create_adapter("sim://?start=2026-11-20T21:05&speed=max")
        await adapter.connect()
        return await adapter.probe()

    assert asyncio.run(run()) == {"market_time": "2026-11-20T21:05:00", "trading_day": "20261123", "contracts": 12}


def test_a_contract_subscribed_again_after_a_pause_is_where_a_later_start_would_show_it():
    url = "sim://?seed=5&speed=max&start=2026-11-20T09:35"

    async def run():
        adapter = create_adapter(url)
        await adapter.connect()
        await adapter.subscribe(["rb2705", "au2706"])
        stream = adapter.ticks()
        seen = 0
        async for batch in stream:
            seen += len(list(batch))
            if seen >= 400:
                break
        await adapter.unsubscribe(["rb2705"])
        async for batch in stream:  # au2706 alone: an hour of market time
            list(batch)
            if adapter.market_clock.next >= datetime(2026, 11, 20, 10, 40):
                break
        resumed_at = adapter.market_clock.next
        await adapter.subscribe(["rb2705"])
        snapshot = next(t for t in list(await stream.__anext__()) if t.InstrumentID == "rb2705")
        await stream.aclose()
        return snapshot, resumed_at

    snapshot, resumed_at = asyncio.run(asyncio.wait_for(run(), 60))
    later = collect(url.replace("2026-11-20T09:35", resumed_at.isoformat(timespec="milliseconds")), ["rb2705"], 1)[0]
    assert snapshot.UpdateTime == later.UpdateTime and snapshot.UpdateTime >= "10:39:59"
    assert values(snapshot) == values(later)


@settings(max_examples=300, deadline=None)
@given(begin=st.integers(0, 200), end=st.integers(0, 200), low=st.integers(0, 50), width=st.integers(0, 150),
       steps=st.lists(st.integers(-3, 3), max_size=400))
def test_a_bridge_ends_where_it_must_inside_its_range(begin, end, low, width, steps):
    high = low + width
    begin, end = min(max(begin, low), high), min(max(end, low), high)
    path = model._bridge(begin, end, list(steps), low, high)
    assert len(path) == len(steps)
    if path:
        assert path[-1] == end and all(low <= p <= high for p in path)
        # The miss is spread evenly over the steps, and clamping never lengthens a move.
        miss = abs(end - begin - sum(steps))
        moves = [b - a for a, b in zip([begin] + path, path)]
        assert max(map(abs, moves)) <= max(map(abs, steps)) + -(-miss // len(steps))
