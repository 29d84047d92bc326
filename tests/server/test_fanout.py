"""The fan-out: one hub sink per source, subscriptions reference-counted over clients (a property
test under churn), snapshots for late subscribers, ticks encoded once per format, and the source
dropping and coming back."""

from __future__ import annotations

import asyncio
from typing import Any, Iterable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctpshim import errors
from ctpshim.adapters.base import Adapter
from ctpshim.ctp.market_data import blank_values, depth_index, make_tick
from ctpshim.fronts import registry
from ctpshim.runtime import hub, io_loop
from ctpshim.server.fanout import EncodedTick, SourceFeed

INSTRUMENTS = [f"i{n}" for n in range(8)]
SENTINEL = "zz-sentinel"
WAIT = 10.0


def on_io(coro: Any, timeout: float = 30.0) -> Any:
    return io_loop.submit(coro).result(timeout)


def tick_of(instrument: str, price: float) -> Any:
    values = blank_values(instrument, "SHFE")
    values[depth_index()["LastPrice"]] = price
    return make_tick(values)


class ChurnAdapter(Adapter):
    """A front the test drives: records what it was asked for; a tick per subscribed instrument on
    :meth:`emit`; :meth:`fail` breaks the link."""

    scheme = "churn"
    made: list["ChurnAdapter"] = []

    async def connect(self) -> None:
        self.subscribed: set[str] = set()
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.price = 1000.0
        ChurnAdapter.made.append(self)

    async def subscribe(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        self.subscribed.update(ids)
        self.queue.put_nowait([tick_of(i, self.price) for i in ids])

    async def unsubscribe(self, ids: Iterable[str]) -> None:
        self.subscribed.difference_update(ids)

    def emit(self) -> float:
        self.price += 1.0
        self.queue.put_nowait([tick_of(i, self.price) for i in sorted(self.subscribed)])
        return self.price

    def fail(self) -> None:
        self.queue.put_nowait(errors.UpstreamDisconnected("the test broke the link"))

    async def ticks(self) -> Any:
        while True:
            batch = await self.queue.get()
            if isinstance(batch, BaseException):
                raise batch
            yield batch


class Client:
    def __init__(self, name: str) -> None:
        self.name = name
        self.ticks: list[EncodedTick] = []
        self.downs: list[int] = []
        self.arrived: asyncio.Event = asyncio.Event()

    def deliver(self, tick: EncodedTick) -> None:
        self.ticks.append(tick)
        self.arrived.set()

    def source_down(self, reason: int) -> None:
        self.downs.append(reason)
        self.arrived.set()

    async def wait(self, condition: Any, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while not condition():
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}")
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except asyncio.TimeoutError:
                pass


@pytest.fixture
def churn() -> Any:
    ChurnAdapter.made = []
    registry.register_adapter("churn", ChurnAdapter)
    yield ChurnAdapter
    registry.unregister_adapter("churn")


async def settle(feed: SourceFeed) -> None:
    """Wait until the market has told the adapter every queued change."""
    market = feed._market
    if market is not None and market._changes is not None:
        await asyncio.wait_for(asyncio.shield(market._changes), WAIT)


async def started(url: str) -> SourceFeed:
    feed = SourceFeed("t", url)
    await feed.start()
    assert await feed.wait_up(WAIT)
    return feed


operations = st.lists(
    st.tuples(st.sampled_from(["subscribe", "unsubscribe", "drop"]), st.integers(0, 9),
              st.sets(st.sampled_from(INSTRUMENTS), max_size=5)),
    min_size=1, max_size=40)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=operations)
def test_reference_counts_under_churn(churn: Any, steps: list[tuple[str, int, set[str]]]) -> None:
    """At every step the hub's instruments are the union of the clients' subscriptions, and after
    a batch each client has received exactly one tick of each of its own instruments, no other."""

    async def run() -> None:
        feed = await started("churn://")
        sentinel = Client("sentinel")
        clients = [Client(f"c{n}") for n in range(10)]
        wanted: dict[Client, set[str]] = {c: set() for c in clients}
        try:
            feed.subscribe(sentinel, [SENTINEL])
            for operation, which, ids in steps:
                client = clients[which]
                if operation == "subscribe":
                    had = {i for c in clients for i in wanted[c]}
                    snapshots = feed.subscribe(client, sorted(ids))
                    # A snapshot is returned only for what another client already had (and not twice).
                    assert {s.instrument for s in snapshots} <= (had - wanted[client]) & set(ids)
                    wanted[client] |= ids
                elif operation == "unsubscribe":
                    feed.unsubscribe(client, sorted(ids))
                    wanted[client] -= ids
                else:
                    feed.drop(client)
                    wanted[client] = set()
                union = {i for c in clients for i in wanted[c]} | {SENTINEL}
                market = feed._market
                assert market.wanted_ids() == union
                assert feed.upstream_ids() == union
                assert feed.counts == {i: sum(i in wanted[c] for c in clients) + (i == SENTINEL) for i in union}
                for c in clients:
                    assert feed.subscriptions(c) == wanted[c]
                await settle(feed)
                adapter = ChurnAdapter.made[-1]
                assert adapter.subscribed == union
                for c in [sentinel, *clients]:
                    c.ticks.clear()
                price = adapter.emit()
                await sentinel.wait(lambda: any(t.tick.LastPrice == price for t in sentinel.ticks), "the batch")
                for c in clients:
                    assert {t.instrument for t in c.ticks} <= wanted[c]
                    current = sorted(t.instrument for t in c.ticks if t.tick.LastPrice == price)
                    assert current == sorted(wanted[c])
        finally:
            await feed.stop()

    on_io(run(), timeout=120)


def test_a_late_subscriber_gets_the_latest_snapshot_and_the_hub_is_asked_once(churn: Any) -> None:
    async def run() -> None:
        feed = await started("churn://")
        early, late = Client("early"), Client("late")
        try:
            assert feed.subscribe(early, ["i1", "i2"]) == []  # the adapter sends its snapshot as ticks
            await early.wait(lambda: {t.instrument for t in early.ticks} == {"i1", "i2"}, "the first snapshot")
            adapter = ChurnAdapter.made[-1]
            price = adapter.emit()
            await early.wait(lambda: any(t.tick.LastPrice == price for t in early.ticks), "a batch")
            snapshots = feed.subscribe(late, ["i2", "i3"])
            assert [(s.instrument, s.tick.LastPrice) for s in snapshots] == [("i2", price)]
            assert snapshots[0] is feed.latest("i2")
            await settle(feed)
            assert adapter.subscribed == {"i1", "i2", "i3"}
            feed.drop(early)
            await settle(feed)
            assert adapter.subscribed == {"i2", "i3"}
            assert feed.latest("i1") is None
        finally:
            await feed.stop()

    on_io(run())


def test_a_tick_is_encoded_once_per_format_for_every_client(churn: Any) -> None:
    calls: list[str] = []

    def encoder(name: str) -> Any:
        def encode(tick: Any) -> str:
            calls.append(name)
            return f"{name}:{tick.InstrumentID}"
        return encode

    async def run() -> None:
        feed = await started("churn://")
        clients = [Client(f"c{n}") for n in range(5)]
        try:
            for c in clients:
                feed.subscribe(c, ["i1"])
            await clients[-1].wait(lambda: len(clients[0].ticks) >= 1, "the snapshot")
            shared = {id(c.ticks[0]) for c in clients}
            assert len(shared) == 1  # one EncodedTick object for all
            tick = clients[0].ticks[0]
            for c in clients:
                assert tick.get("json", encoder("json")) == "json:i1"
                assert tick.get("bin", encoder("bin")) == "bin:i1"
        finally:
            await feed.stop()

    on_io(run())
    assert sorted(calls) == ["bin", "json"]


def test_the_source_dropping_tells_clients_and_the_feed_reconnects_with_their_subscriptions(
        churn: Any, fast_reconnect: None) -> None:
    async def run() -> None:
        feed = await started("churn://")
        client = Client("c")
        try:
            feed.subscribe(client, ["i1", "i5"])
            await settle(feed)
            first = ChurnAdapter.made[-1]
            first.fail()
            await client.wait(lambda: client.downs, "source_down")
            assert client.downs == [errors.REASON_READ_FAILED]
            assert await feed.wait_up(WAIT)
            await client.wait(lambda: len(ChurnAdapter.made) == 2 and ChurnAdapter.made[-1].subscribed == {"i1", "i5"},
                              "the new connection's subscriptions")
            client.ticks.clear()
            price = ChurnAdapter.made[-1].emit()
            await client.wait(lambda: sorted(t.instrument for t in client.ticks if t.tick.LastPrice == price)
                              == ["i1", "i5"], "ticks after the reconnect")
        finally:
            await feed.stop()

    on_io(run())


def test_an_unreachable_source_is_retried_and_stops_cleanly(fast_reconnect: None) -> None:
    async def run() -> None:
        feed = SourceFeed("down", "sim://?refuse=true")
        await feed.start()
        try:
            assert not await feed.wait_up(0.3)
            assert not feed.up
            assert feed.subscribe(Client("c"), ["rb2705"]) == []
            assert feed.counts == {"rb2705": 1}
        finally:
            await feed.stop()
        assert not any(m.key.startswith("sim://?refuse") for m in hub.markets())

    on_io(run())


def test_a_real_sim_source_feeds_clients(serve_factory: Any) -> None:
    server = serve_factory("sim://?hours=always&interval=0.01")

    async def run() -> None:
        feed = server.feed(None)
        assert await feed.wait_up(WAIT)
        ids = [i.instrument_id for i in feed.instruments()[:3]]
        a, b = Client("a"), Client("b")
        feed.subscribe(a, ids)
        feed.subscribe(b, ids[:1])
        await a.wait(lambda: {t.instrument for t in a.ticks} == set(ids), "ticks of every instrument")
        await b.wait(lambda: b.ticks, "ticks")
        assert {t.instrument for t in b.ticks} == {ids[0]}
        feed.drop(a)
        feed.drop(b)
        assert feed.counts == {}

    on_io(run())


def test_a_client_without_subscriptions_is_told_when_the_source_goes_down(churn: Any, fast_reconnect: None) -> None:
    async def run() -> None:
        feed = await started("churn://")
        idle, was_subscribed, gone = Client("idle"), Client("was"), Client("gone")
        try:
            assert feed.subscribe(idle, []) == []
            feed.subscribe(was_subscribed, ["i1"])
            feed.unsubscribe(was_subscribed, ["i1"])
            feed.subscribe(gone, ["i2"])
            feed.drop(gone)
            assert feed.counts == {}
            assert set(feed.clients()) == {idle, was_subscribed}
            await settle(feed)
            ChurnAdapter.made[-1].fail()
            await idle.wait(lambda: idle.downs and was_subscribed.downs, "source_down")
            assert gone.downs == []
        finally:
            await feed.stop()

    on_io(run())


class ManyClient(Client):
    """A subscriber that takes a run of ticks at once (Subscriber.deliver_many)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.runs: list[list[str]] = []

    def deliver_many(self, ticks: list[EncodedTick]) -> None:
        self.runs.append([t.instrument for t in ticks])
        self.ticks.extend(ticks)
        self.arrived.set()


def test_runs_of_ticks_held_by_the_same_clients_are_handed_over_at_once_in_source_order() -> None:
    async def run() -> None:
        feed = SourceFeed("t", "churn://")  # never started: the test dispatches itself
        both, alone, plain = ManyClient("both"), ManyClient("alone"), Client("plain")
        feed.subscribe(both, ["i1", "i2", "i3"])
        feed.subscribe(alone, ["i1", "i2", "i3", "i4"])
        feed.subscribe(plain, ["i2", "i4"])
        batch = [tick_of(i, 1.0) for i in ("i1", "i3", "i2", "i4", "i1", "i9")]
        feed._dispatch(batch, None)
        assert both.runs == [["i1", "i3"], ["i2"], ["i1"]]  # i2 has a third holder, i4 not this one
        assert alone.runs == [["i1", "i3"], ["i2"], ["i4"], ["i1"]]
        assert [t.instrument for t in plain.ticks] == ["i2", "i4"]
        shared = {id(c.ticks[0]) for c in (both, alone)}
        assert len(shared) == 1 and feed.latest("i1") is both.ticks[-1]
        assert feed.ticks_in == len(batch)

    on_io(run())


def test_shared_batches_encode_a_list_of_ticks_once_for_every_client_with_the_same_ticks() -> None:
    from ctpshim.server.fanout import SharedBatches

    made: list[list[str]] = []

    def encode(ticks: list[EncodedTick]) -> bytes:
        made.append([t.instrument for t in ticks])
        return b"|".join(t.instrument.encode() for t in ticks)

    batches = SharedBatches(size=2)
    a, b, c = (EncodedTick(tick_of(i, 1.0)) for i in ("i1", "i2", "i3"))
    first = batches.get("f", [a, b], encode)
    assert batches.get("f", [a, b], encode) is first  # another client's list of the same ticks
    assert batches.get("f", [a], encode) == b"i1"  # a client that holds fewer
    assert batches.get("f", [a, b], encode) is first  # still kept
    assert batches.get("g", [a, b], encode) == b"i1|i2"  # another format is made on its own
    same_instruments = [EncodedTick(tick_of(i, 2.0)) for i in ("i1", "i2")]
    assert batches.get("f", same_instruments, encode) == b"i1|i2"  # new ticks of the same instruments: made anew
    assert made == [["i1", "i2"], ["i1"], ["i1", "i2"], ["i1", "i2"]]
    batches.get("f", [c], encode)
    assert len(batches._made) <= 2  # bounded


def test_a_snapshot_that_arrives_after_live_ticks_gives_only_the_instruments_without_one() -> None:
    from ctpshim.runtime.sinks import Snapshot

    async def run() -> None:
        feed = SourceFeed("t", "churn://")  # never started: the test hands it the hub's batches itself
        client = Client("late")
        feed.subscribe(client, ["i1", "i2"])
        snapshot = Snapshot(["i1", "i2"])
        feed._sink.offer(snapshot)  # the hub asks another consumer for it; it is answered later
        feed._dispatch([tick_of("i1", 2.0)], None)  # a live tick first
        snapshot.fill({"i1": tick_of("i1", 1.0), "i2": tick_of("i2", 1.0)})
        await asyncio.wait_for(asyncio.gather(*feed._tasks), WAIT)
        assert [(t.instrument, t.tick.LastPrice) for t in client.ticks] == [("i1", 2.0), ("i2", 1.0)]
        assert feed.latest("i1").tick.LastPrice == 2.0

    on_io(run())
