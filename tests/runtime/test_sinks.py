"""Sinks and their delivery policies: backpressure delivers every tick, conflation keeps the latest
per instrument and never stalls the upstream, a bound cuts a consumer off with a reason; a lazy
batch shared by several readers is made once."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Iterable, Iterator

import pytest

from ctpshim.adapters.base import Adapter
from ctpshim.ctp.market_data import blank_values, depth_index, make_tick
from ctpshim.fronts import registry
from ctpshim.runtime import hub, io_loop
from ctpshim.runtime.sinks import BoundedSink, ConflatingSink, SharedBatch, Sink

from ..conftest import wait_for

INSTRUMENTS = ["rb2701", "cu2612", "au2612"]
ROUNDS = 20  # one round of every instrument each 500 ms of source time: 10 s in all


def stamped(instrument: str, round_number: int) -> Any:
    values = blank_values(instrument, "SHFE")
    index = depth_index()
    millis = round_number * 500
    values[index["UpdateTime"]] = f"09:00:{millis // 1000:02d}"
    values[index["UpdateMillisec"]] = millis % 1000
    values[index["LastPrice"]] = 3000.0 + round_number
    return make_tick(values)


class ClockedAdapter(Adapter):
    """A source whose time the test controls: once released, ten seconds of source time (20 rounds
    of every subscribed instrument) as fast as the consumers take them; then silence."""

    scheme = "clocked"
    go: asyncio.Event
    rounds_sent = 0

    async def connect(self) -> None:
        self.subscribed: list[str] = []
        ClockedAdapter.go = asyncio.Event()
        ClockedAdapter.rounds_sent = 0

    async def subscribe(self, ids: Iterable[str]) -> None:
        self.subscribed += [i for i in ids if i not in self.subscribed]

    async def unsubscribe(self, ids: Iterable[str]) -> None:
        self.subscribed = [i for i in self.subscribed if i not in ids]

    async def ticks(self) -> Any:
        await ClockedAdapter.go.wait()
        for round_number in range(ROUNDS):
            yield [stamped(i, round_number) for i in self.subscribed]
            ClockedAdapter.rounds_sent = round_number + 1
        await asyncio.Event().wait()  # silent, connected


@pytest.fixture
def clocked() -> Any:
    registry.register_adapter("clocked", ClockedAdapter)
    yield ClockedAdapter
    registry.unregister_adapter("clocked")


def attach(sink: Sink, front: str, ids: list[str]) -> hub.Market:
    """Attach ``sink`` to the (already connected) market of ``front`` and subscribe it (IO thread)."""

    async def run() -> hub.Market:
        market = hub.market_for(front)
        market.attach(sink)
        await market.connect()
        market.subscribe(sink, ids)
        return market

    return io_loop.submit(run()).result(10)


def detach(sink: Sink) -> None:
    market = sink.market
    if market is not None:
        io_loop.call_soon(market.detach, sink)


def start(clocked: Any) -> None:
    io_loop.call_soon(clocked.go.set)


def test_a_conflating_consumer_that_stops_reading_resumes_with_the_latest_snapshot_while_a_backpressured_one_got_every_tick(
        make_md, clocked) -> None:
    api, spi = make_md("clocked://", subscribe=INSTRUMENTS)
    wait_for(lambda: spi.names().count("OnRspSubMarketData") == 3)
    remote = ConflatingSink("remote")
    market = attach(remote, "clocked://", INSTRUMENTS)
    try:
        start(clocked)  # the remote consumer reads nothing for the 10 s of source time
        wait_for(lambda: len(spi.ticks) == ROUNDS * len(INSTRUMENTS), what="every tick on the md API")
        assert [(t.InstrumentID, t.UpdateTime, t.UpdateMillisec) for t in spi.ticks] == [
            (i, stamped(i, r).UpdateTime, stamped(i, r).UpdateMillisec) for r in range(ROUNDS) for i in INSTRUMENTS]
        latest = remote.take()
        assert [(t.InstrumentID, t.UpdateTime, t.UpdateMillisec) for t in latest] == [
            (i, "09:00:09", 500) for i in INSTRUMENTS]
        assert remote.conflated == (ROUNDS - 1) * len(INSTRUMENTS)
        assert remote.take() == []  # nothing changed since
        assert remote.cut_off_reason is None and remote.market is market
    finally:
        detach(remote)


def test_a_conflating_consumer_that_does_not_read_for_too_long_is_cut_off_and_the_others_go_on(make_md, clocked, caplog) -> None:
    api, spi = make_md("clocked://", subscribe=INSTRUMENTS)
    wait_for(lambda: spi.names().count("OnRspSubMarketData") == 3)
    now = [0.0]
    cut = threading.Event()
    remote = ConflatingSink("remote", cut_off_after=5.0, clock=lambda: now[0], on_cut_off=lambda reason: cut.set())
    attach(remote, "clocked://", INSTRUMENTS)
    now[0] = 6.0  # the consumer has not read for 6 s of its clock
    start(clocked)
    assert cut.wait(10), "the consumer was not cut off"
    wait_for(lambda: len(spi.ticks) == ROUNDS * len(INSTRUMENTS), what="every tick on the md API")
    assert remote.market is None
    assert "not taken ticks for over 5 s" in remote.cut_off_reason
    assert "remote: cut off: it has not taken ticks for over 5 s" in caplog.text


def test_a_bounded_consumer_is_cut_off_past_its_bound_without_holding_the_upstream_back(make_md, clocked) -> None:
    api, spi = make_md("clocked://", subscribe=INSTRUMENTS)
    wait_for(lambda: spi.names().count("OnRspSubMarketData") == 3)
    cut = threading.Event()
    recorder = BoundedSink("recorder", limit=10, on_cut_off=lambda reason: cut.set())
    attach(recorder, "clocked://", INSTRUMENTS)
    start(clocked)
    assert cut.wait(10)
    wait_for(lambda: len(spi.ticks) == ROUNDS * len(INSTRUMENTS), what="every tick on the md API")
    assert recorder.cut_off_reason.startswith("12 ticks waiting, over its bound of 10")


def test_a_bounded_consumer_that_keeps_up_gets_every_tick_in_order(make_md, clocked) -> None:
    api, spi = make_md("clocked://", subscribe=INSTRUMENTS)
    wait_for(lambda: spi.names().count("OnRspSubMarketData") == 3)
    recorder = BoundedSink("recorder", limit=10**6)
    attach(recorder, "clocked://", INSTRUMENTS[:2])
    try:
        start(clocked)
        got: list[Any] = []
        for _ in range(1000):  # bounded
            got += recorder.take(timeout=0.05)
            if len(got) >= ROUNDS * 2:
                break
        assert [(t.InstrumentID, t.LastPrice) for t in got] == [
            (i, 3000.0 + r) for r in range(ROUNDS) for i in INSTRUMENTS[:2]]  # its own instruments only
    finally:
        detach(recorder)


class CountedBatch:
    """A lazy batch noting how many ticks it made."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.made = 0

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Any]:
        for number in range(self.count):
            self.made += 1
            yield stamped(INSTRUMENTS[number % 3], number // 3)


def test_a_shared_batch_is_made_once_for_readers_on_several_threads() -> None:
    source = CountedBatch(2000)
    shared = SharedBatch(source)
    results: list[list[Any]] = [[] for _ in range(4)]
    threads = [threading.Thread(target=lambda out=out: out.extend(shared)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert source.made == 2000 and len(shared) == 2000
    assert all(len(out) == 2000 for out in results)
    assert all(all(a is b for a, b in zip(out, results[0])) for out in results[1:])
    assert shared.latest() == {t.InstrumentID: t for t in results[0][-3:]}


def test_a_shared_batch_that_fails_to_make_its_ticks_fails_for_every_reader() -> None:
    def broken() -> Iterator[Any]:
        yield stamped("rb2701", 0)
        raise ValueError("row 1 is damaged")

    class Broken:
        def __len__(self) -> int:
            return 3

        def __iter__(self) -> Iterator[Any]:
            return broken()

    shared = SharedBatch(Broken())
    for _ in range(2):
        with pytest.raises(ValueError, match="row 1 is damaged"):
            list(shared)
