"""The market hub: one upstream per source shared by every API object in the process, reference-
counted subscriptions, snapshots for late subscribers, lazy batches made once, the observation
hook, and no adapter code on a user thread."""

from __future__ import annotations

import asyncio
import datetime
import threading
from typing import Any, Iterable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctpshim.adapters.base import Adapter
from ctpshim.ctp.market_data import blank_values, depth_index, make_tick
from ctpshim.fronts import registry
from ctpshim.runtime import hub, io_loop
from ctpshim.runtime.sinks import BoundedSink

from ..conftest import FRIDAY_MORNING, RecordingMdSpi, wait_for


def on_io(coro: Any, timeout: float = 10.0) -> Any:
    return io_loop.submit(coro).result(timeout)


def tick_of(instrument: str, price: float = 3000.0) -> Any:
    values = blank_values(instrument, "SHFE")
    values[depth_index()["LastPrice"]] = price
    return make_tick(values)


class CountingAdapter(Adapter):
    """A front the test drives: what it was asked for, a tick of every subscribed instrument on demand."""

    scheme = "counting"
    made: list["CountingAdapter"] = []

    async def connect(self) -> None:
        self.subscribed: set[str] = set()
        self.calls: list[tuple[str, list[str]]] = []
        self.queue: asyncio.Queue[list[Any]] = asyncio.Queue()
        self.price = 3000.0
        CountingAdapter.made.append(self)

    async def subscribe(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        self.calls.append(("subscribe", ids))
        self.subscribed.update(ids)
        self.queue.put_nowait([tick_of(i, self.price) for i in ids])

    async def unsubscribe(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        self.calls.append(("unsubscribe", ids))
        self.subscribed.difference_update(ids)

    def emit(self) -> None:
        """One batch: a tick of each subscribed instrument at a new price (IO thread)."""
        self.price += 1.0
        self.queue.put_nowait([tick_of(i, self.price) for i in sorted(self.subscribed)])

    async def ticks(self) -> Any:
        while True:
            yield await self.queue.get()


@pytest.fixture
def counting() -> Any:
    CountingAdapter.made = []
    registry.register_adapter("counting", CountingAdapter)
    yield CountingAdapter
    registry.unregister_adapter("counting")


class LoggingInTdSpi:
    """A trader Spi that logs in on connect and notes the login reply."""

    def __init__(self) -> None:
        self.api: Any = None
        self.logins: list[Any] = []

    def OnFrontConnected(self) -> None:
        from ctpshim import tdapi

        assert self.api.ReqUserLogin(tdapi.CThostFtdcReqUserLoginField(), 1) == 0

    def OnRspUserLogin(self, login: Any, info: Any, request_id: int, last: bool) -> None:
        self.logins.append(login)


def make_td_api(make_td: Any, front: str) -> LoggingInTdSpi:
    from ctpshim import tdapi

    spi = LoggingInTdSpi()
    spi.__class__ = type("TdSpi", (LoggingInTdSpi, tdapi.CThostFtdcTraderSpi), {})
    spi.api = make_td(spi, front)
    return spi


def market_of(front: str) -> hub.Market:
    key = hub.market_key(front)
    return next(m for m in hub.markets() if m.key == key)


def test_the_front_address_is_normalised_into_one_key() -> None:
    assert hub.market_key("SIM://?seed=1&speed=max") == hub.market_key("sim://?speed=max&seed=1")
    assert hub.market_key("sim://?seed=1") != hub.market_key("sim://?seed=2")


def test_md_and_td_apis_on_one_replay_front_share_one_upstream(make_md, make_td) -> None:
    opened = hub.opened_adapters()
    front = "replay://?speed=max"
    api, spi = make_md(front, subscribe=["ru1901"])
    td = make_td_api(make_td, "replay://?speed=max")
    wait_for(lambda: len(spi.ticks) > 10 and td.logins, what="ticks on md and a login on td")
    assert hub.opened_adapters() - opened == 1
    market = market_of(front)
    assert market.opens == 1 and len(market._sinks) == 2
    # Both read the one source's trading day, cached on the IO thread.
    login = next(e[1][0] for e in spi.events if e[0] == "OnRspUserLogin")
    assert td.logins[0].TradingDay == login.TradingDay == market.trading_day


def test_a_hundred_md_apis_on_one_sim_front_get_identical_ticks_from_one_upstream(make_md) -> None:
    opened = hub.opened_adapters()
    front = f"sim://?start={FRIDAY_MORNING}&speed=50&seed=3"
    pairs = [make_md(front, subscribe=["rb2701", "au2612"]) for _ in range(100)]
    wait_for(lambda: all(len(spi.ticks) >= 30 for _, spi in pairs), timeout=30, what="30 ticks on each API")
    assert hub.opened_adapters() - opened == 1
    with_locks = []
    for _, spi in pairs:
        with spi.lock:
            with_locks.append(list(spi.ticks))
    # Each joined at its own moment; from the last one's first tick on, every API got the same
    # tick objects in the same order (one upstream, each tick made once).
    latest_start = max(ticks[0].UpdateTime + f".{ticks[0].UpdateMillisec:03d}" for ticks in with_locks)
    tails = [[t for t in ticks if t.UpdateTime + f".{t.UpdateMillisec:03d}" > latest_start] for ticks in with_locks]
    shortest = min(len(tail) for tail in tails)
    assert shortest >= 10
    reference = tails[0][:shortest]
    for tail in tails[1:]:
        assert all(a is b for a, b in zip(tail[:shortest], reference))


def test_a_late_subscriber_gets_the_markets_latest_tick_at_once_and_the_adapter_is_asked_once(make_md, counting) -> None:
    first, first_spi = make_md("counting://", subscribe=["rb2701"])
    wait_for(lambda: len(first_spi.ticks) == 1, what="the first snapshot")
    adapter = counting.made[0]
    for _ in range(3):
        io_loop.call_soon(adapter.emit)
    wait_for(lambda: len(first_spi.ticks) == 4)
    second, second_spi = make_md("counting://", subscribe=["rb2701"])
    wait_for(lambda: len(second_spi.ticks) == 1, what="the late subscriber's snapshot")
    assert second_spi.ticks[0] is first_spi.ticks[-1]  # the latest the market made, not a new one
    io_loop.call_soon(adapter.emit)
    wait_for(lambda: len(second_spi.ticks) == 2 and len(first_spi.ticks) == 5)
    assert second_spi.ticks[1] is first_spi.ticks[4]
    assert adapter.calls == [("subscribe", ["rb2701"])]
    assert len(counting.made) == 1


def test_the_adapter_drops_an_instrument_when_its_last_consumer_leaves(make_md, counting) -> None:
    first, first_spi = make_md("counting://", subscribe=["rb2701", "cu2612"])
    second, second_spi = make_md("counting://", subscribe=["rb2701"])
    wait_for(lambda: len(second_spi.ticks) == 1 and len(first_spi.ticks) == 2)
    adapter = counting.made[0]
    assert first.UnSubscribeMarketData([b"rb2701"], 1) == 0
    wait_for(lambda: "OnRspUnSubMarketData" in first_spi.names())
    io_loop.call_soon(adapter.emit)
    wait_for(lambda: len(second_spi.ticks) == 2 and len(first_spi.ticks) == 3)
    assert first_spi.ticks[-1].InstrumentID == "cu2612"  # rb2701 is still upstream, for the second only
    assert second_spi.ticks[-1].InstrumentID == "rb2701"
    assert ("unsubscribe", ["rb2701"]) not in adapter.calls
    second.Release()
    wait_for(lambda: ("unsubscribe", ["rb2701"]) in adapter.calls, what="the upstream drop")
    assert adapter.subscribed == {"cu2612"}


def test_a_lazy_batch_for_several_apis_is_made_once_on_a_callback_thread(make_md) -> None:
    from .test_md_session import LazyAdapter, MadeWhenIterated

    MadeWhenIterated.made_on = []
    registry.register_adapter("lazy", LazyAdapter)
    try:
        one, one_spi = make_md("lazy://", subscribe=["rb2701"])
        two, two_spi = make_md("lazy://", subscribe=["rb2701"])
        wait_for(lambda: len(one_spi.ticks) > 20 and len(two_spi.ticks) > 20)
        one.Release()
        two.Release()
        callback_threads = {e[2] for spi in (one_spi, two_spi) for e in spi.events if e[0] == "OnRtnDepthMarketData"}
        assert set(MadeWhenIterated.made_on) <= callback_threads
        shared = {id(t) for t in one_spi.ticks} & {id(t) for t in two_spi.ticks}
        assert len(shared) > 10  # both programs were handed the same tick objects: made once
    finally:
        io_loop.call_soon(lambda: LazyAdapter.unsubscribed and LazyAdapter.unsubscribed.set())
        registry.unregister_adapter("lazy")


def test_the_observer_sees_exactly_the_ticks_the_program_was_given_in_order_just_before_it(make_md) -> None:
    observed: list[tuple[Any, str]] = []

    just_before: list[bool] = []

    class Watching(RecordingMdSpi):
        def OnRtnDepthMarketData(self, tick: Any) -> None:
            just_before.append(bool(observed) and observed[-1][0] is tick)
            super().OnRtnDepthMarketData(tick)

    front = f"sim://?start={FRIDAY_MORNING}&speed=20"
    api, spi = make_md(front, subscribe=["rb2701", "IF2612"], spi_class=Watching)
    wait_for(lambda: spi.ticks, what="the first tick")
    market = market_of(front)
    watch = market.observe(lambda tick: observed.append((tick, threading.current_thread().name)))
    try:
        wait_for(lambda: len(observed) > 20, what="observed ticks")
    finally:
        watch.close()
    api.Release()
    with spi.lock:
        given_after = [t for t in spi.ticks if any(t is o for o, _ in observed)]
    assert [o for o, _ in observed] == given_after  # the same objects, in the same order
    first = next(i for i, t in enumerate(spi.ticks) if t is observed[0][0])
    assert all(a is b for a, b in zip(spi.ticks[first:first + len(observed)], [o for o, _ in observed], strict=True))
    assert all(just_before[first:first + len(observed)])  # each was observed just before the program got it
    callback_thread = next(e[2] for e in spi.events if e[0] == "OnRtnDepthMarketData")
    assert {name for _, name in observed} == {callback_thread}


def test_the_trading_day_and_instruments_are_read_from_the_cache_the_io_thread_keeps(make_md, counting, monkeypatch) -> None:
    threads: list[str] = []

    def trading_day(self: Any) -> str:
        threads.append(threading.current_thread().name)
        return "20261120"

    def instruments(self: Any) -> list[Any]:
        threads.append(threading.current_thread().name)
        from ctpshim.ctp.products import parse_instrument
        return [parse_instrument("rb2701", datetime.date(2026, 11, 20))]

    monkeypatch.setattr(CountingAdapter, "trading_day", trading_day)
    monkeypatch.setattr(CountingAdapter, "instruments", instruments)
    api, spi = make_md("counting://")
    wait_for(lambda: "OnRspUserLogin" in spi.names())
    assert api.GetTradingDay() == "20261120"
    session = api._backend.session
    listed = session.instruments()
    assert isinstance(listed, tuple) and [i.instrument_id for i in listed] == ["rb2701"]
    assert session.trading_day() == "20261120"
    assert threads and set(threads) == {"ctpshim-io"}  # never the caller's thread


# -- reference counting under churn (property) ----------------------------------------------------

INSTRUMENTS = ["rb2701", "cu2612", "au2612", "IF2612"]
operations = st.lists(
    st.tuples(st.integers(0, 3), st.booleans(), st.lists(st.sampled_from(INSTRUMENTS), min_size=1, max_size=3)),
    min_size=1, max_size=30,
)


class ChurnAdapter(CountingAdapter):
    scheme = "churn"


@pytest.fixture(scope="module")
def churn_front() -> Any:
    registry.register_adapter("churn", ChurnAdapter)
    yield "churn://"
    registry.unregister_adapter("churn")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_the_upstream_set_is_always_the_union_of_the_consumers(churn_front: str, ops: list[Any]) -> None:
    async def run() -> None:
        market = hub.market_for(churn_front)
        sinks = [BoundedSink(f"consumer{i}", limit=10**9) for i in range(4)]
        for sink in sinks:
            market.attach(sink)
        await market.connect()
        adapter = market.adapter
        try:
            for index, add, ids in ops:
                sink = sinks[index]
                if add:
                    market.subscribe(sink, ids)
                else:
                    sink.mute(ids)
                    market.unsubscribe(sink, ids)
                union = set().union(*(s.ids for s in sinks))
                assert market.wanted_ids() == union
                if market._changes is not None:
                    await market._changes  # the adapter has been told
                assert adapter.subscribed == union == set(market.upstream_ids())
                for s in sinks:
                    assert s.filter is None if s.ids == union else s.filter == s.ids
        finally:
            for sink in sinks:
                market.detach(sink)
        assert hub.market_key(churn_front) not in {m.key for m in hub.markets()}

    on_io(run())


def test_a_late_subscribers_snapshot_is_the_tick_just_before_those_that_follow_it(make_md) -> None:
    front = f"sim://?start={FRIDAY_MORNING}&speed=max&seed=4"
    first, first_spi = make_md(front, subscribe=["rb2701", "au2612"])
    wait_for(lambda: len(first_spi.ticks) > 2000, what="the first program well into the stream")
    late, late_spi = make_md(front, subscribe=["au2612"])
    wait_for(lambda: len(late_spi.ticks) > 500, what="the late program's ticks")
    first.Release()
    late.Release()
    mine = list(late_spi.ticks)
    theirs = [t for t in first_spi.ticks if t.InstrumentID == "au2612"]
    start = next(i for i, t in enumerate(theirs) if t is mine[0])  # the snapshot: a tick the first was handed
    # ... and from there on the same ticks as the first program: none skipped, none twice.
    overlap = min(len(mine), len(theirs) - start)
    assert overlap > 100
    assert all(a is b for a, b in zip(mine[:overlap], theirs[start:start + overlap], strict=True))


def test_the_cached_trading_day_follows_the_sources_clock(make_md) -> None:
    front = "sim://?start=2026-11-20T14:59:50&speed=max&seed=2"  # Friday's close, then the night session
    api, spi = make_md(front, subscribe=["rb2701"])
    wait_for(lambda: spi.ticks, what="the first tick")
    market = market_of(front)
    first_day = spi.ticks[0].TradingDay
    assert market.trading_day == first_day == api.GetTradingDay()
    wait_for(lambda: any(t.TradingDay != first_day for t in list(spi.ticks)), timeout=20, what="the next trading day")
    next_day = next(t.TradingDay for t in list(spi.ticks) if t.TradingDay != first_day)
    wait_for(lambda: market.trading_day is not None and market.trading_day >= next_day,
             what="the cache to follow the source's clock")
    assert api._backend.session.trading_day() == market.trading_day


def test_a_drop_disconnects_every_api_on_the_market_and_one_new_connection_serves_them_all(make_md, fast_reconnect) -> None:
    from .test_md_session import ScriptedAdapter

    ScriptedAdapter.subscribe_calls = []
    ScriptedAdapter.carries = []
    registry.register_adapter("scripted", ScriptedAdapter)
    try:
        one, one_spi = make_md("scripted://", subscribe=["rb2701"])
        two, two_spi = make_md("scripted://", subscribe=["cu2612"])
        wait_for(lambda: len(one_spi.ticks) == 1 and len(two_spi.ticks) == 1)
        io_loop.call_soon(lambda: ScriptedAdapter.drop.set())
        for spi in (one_spi, two_spi):
            wait_for(lambda: spi.names().count("OnRspUserLogin") == 2 and len(spi.ticks) == 2,
                     what="the reconnect, the new login and the restored subscription")
            names = spi.names()
            assert names.index("OnFrontDisconnected") < names.index("OnFrontConnected", names.index("OnFrontDisconnected"))
        assert [t.InstrumentID for t in one_spi.ticks] == ["rb2701"] * 2
        assert [t.InstrumentID for t in two_spi.ticks] == ["cu2612"] * 2
        assert len(ScriptedAdapter.carries) == 2 and ScriptedAdapter.carries[0] is ScriptedAdapter.carries[1]
        assert sorted(map(tuple, ScriptedAdapter.subscribe_calls)) == [("cu2612",), ("cu2612",), ("rb2701",), ("rb2701",)]
    finally:
        registry.unregister_adapter("scripted")


def test_an_observer_of_one_api_object_sees_only_what_that_program_was_given(make_md, counting) -> None:
    one, one_spi = make_md("counting://", subscribe=["rb2701"])
    two, two_spi = make_md("counting://", subscribe=["rb2701", "cu2612"])
    wait_for(lambda: len(one_spi.ticks) == 1 and len(two_spi.ticks) == 2)
    market = market_of("counting://")
    seen_by_two: list[Any] = []
    seen_by_all: list[Any] = []
    watch_two = market.observe(seen_by_two.append, only=two._backend.session.dispatcher)
    watch_all = market.observe(seen_by_all.append)
    try:
        for _ in range(3):
            io_loop.call_soon(counting.made[0].emit)
        wait_for(lambda: len(one_spi.ticks) == 4 and len(two_spi.ticks) == 8)
        wait_for(lambda: len(seen_by_all) == 9)
    finally:
        watch_two.close()
        watch_all.close()
    assert all(a is b for a, b in zip(seen_by_two, two_spi.ticks[2:], strict=True))
    assert sorted(map(id, seen_by_all)) == sorted(map(id, one_spi.ticks[1:] + two_spi.ticks[2:]))


def test_a_late_subscriber_waits_for_the_other_programs_point_in_the_stream_when_it_is_behind(make_md, counting) -> None:
    release = threading.Event()

    class Stuck(RecordingMdSpi):
        def OnRtnDepthMarketData(self, tick: Any) -> None:
            super().OnRtnDepthMarketData(tick)
            if len(self.ticks) == 2:
                assert release.wait(10)  # the program is busy with its second tick

    one, one_spi = make_md("counting://", subscribe=["rb2701"], spi_class=Stuck)
    wait_for(lambda: len(one_spi.ticks) == 1, what="the first snapshot")
    adapter = counting.made[0]
    io_loop.call_soon(adapter.emit)  # the tick the first program is stuck on
    wait_for(lambda: len(one_spi.ticks) == 2)
    io_loop.call_soon(adapter.emit)  # queued behind it
    two, two_spi = make_md("counting://", subscribe=["rb2701"])
    wait_for(lambda: "OnRspSubMarketData" in two_spi.names())
    market = market_of("counting://")
    wait_for(lambda: len(market._sinks) == 2 and all(s.ids for s in market._sinks), what="both subscribed")
    io_loop.call_soon(adapter.emit)  # after the late subscription
    wait_for(lambda: one_spi.api._backend.session.dispatcher.pending_ticks >= 2, what="ticks waiting behind the stuck one")
    release.set()
    wait_for(lambda: len(two_spi.ticks) == 2 and len(one_spi.ticks) == 4)
    # The late program's snapshot is the newest tick queued for the first when it subscribed
    # (the one behind the stuck one), then the tick that came after: nothing older, nothing missed.
    assert two_spi.ticks[0] is one_spi.ticks[2] and two_spi.ticks[1] is one_spi.ticks[3]
