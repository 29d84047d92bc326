"""The market-data API behaves like CTP: callback order, threads, snapshots, Join/Release,
failover, reconnect, raising and slow callbacks."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest

from ctpshim.runtime import hub, io_loop, queue_policy, reconnect
from ctpshim import mdapi
from ctpshim.fronts import registry
from ctpshim.adapters.base import Adapter
from ctpshim.errors import REASON_READ_FAILED, UpstreamDisconnected, UpstreamUnavailable
from ctpshim.ctp.market_data import blank_values, depth_index, make_tick
from ctpshim.errors import FrontAddressError

from ..conftest import FRIDAY_MORNING, RecordingMdSpi, wait_for

FRONT = f"sim://?start={FRIDAY_MORNING}&speed=20"


def test_callback_sequence_login_subscribe_snapshot_then_changes(make_md):
    api, spi = make_md(FRONT, subscribe=["rb2701", "au2612", "IF2612"])
    wait_for(lambda: len(spi.ticks) >= 12, what="ticks")
    names = spi.names()
    assert names[0] == "OnFrontConnected"
    assert names[1] == "OnRspUserLogin"
    assert names[2:5] == ["OnRspSubMarketData"] * 3
    subs = [e for e in spi.events if e[0] == "OnRspSubMarketData"]
    assert [e[1][0].InstrumentID for e in subs] == ["rb2701", "au2612", "IF2612"]
    assert [e[1][3] for e in subs] == [False, False, True]  # bIsLast on the last one only
    assert all(e[1][1].ErrorID == 0 and e[1][2] == 0 for e in subs)  # nRequestID 0
    # The current snapshot of each instrument comes first, at once, before any change.
    assert [t.InstrumentID for t in spi.ticks[:3]] == ["rb2701", "au2612", "IF2612"]
    later = spi.ticks[3:]
    assert {t.InstrumentID for t in later} == {"rb2701", "au2612", "IF2612"}
    for instrument in ("rb2701", "au2612"):
        stamps = [(t.UpdateTime, t.UpdateMillisec) for t in spi.ticks if t.InstrumentID == instrument]
        assert stamps == sorted(stamps)


def test_login_reply_carries_trading_day_time_and_session(make_md):
    api, spi = make_md(FRONT)
    wait_for(lambda: "OnRspUserLogin" in spi.names())
    _, (login, info, request_id, last), _ = next(e for e in spi.events if e[0] == "OnRspUserLogin")
    assert (info.ErrorID, request_id, last) == (0, 7, True)
    assert login.TradingDay == "20261120" == api.GetTradingDay()
    assert len(login.LoginTime) == 8 and login.LoginTime[2] == ":"
    assert login.FrontID == 1 and login.SessionID != 0


def test_all_callbacks_of_an_api_run_on_one_thread_of_its_own(make_md):
    api1, spi1 = make_md(FRONT, subscribe=["rb2701"])
    api2, spi2 = make_md(FRONT, subscribe=["rb2701"])
    wait_for(lambda: len(spi1.ticks) > 5 and len(spi2.ticks) > 5)
    threads1 = {e[2] for e in list(spi1.events)}
    threads2 = {e[2] for e in list(spi2.events)}
    assert len(threads1) == 1 and len(threads2) == 1
    assert threads1 != threads2
    assert threading.main_thread().name not in threads1 | threads2


def test_init_returns_at_once_without_calling_back_on_the_callers_thread(make_md):
    gate = threading.Event()

    class GatedSpi(RecordingMdSpi):
        def OnFrontConnected(self):
            gate.wait(10)  # held until Init() has returned: Init must not wait for callbacks
            super().OnFrontConnected()

    api, spi = make_md(FRONT, init=False, spi_class=GatedSpi)
    started = time.monotonic()
    api.Init()
    assert time.monotonic() - started < 1.0
    assert spi.names() == []  # the gate still holds OnFrontConnected: nothing ran synchronously
    gate.set()
    wait_for(lambda: spi.names())
    assert threading.current_thread().name not in {e[2] for e in spi.events}


def test_requests_accept_lists_of_str_and_use_only_n_ids(make_md):
    api, spi = make_md(FRONT)
    wait_for(lambda: "OnRspUserLogin" in spi.names())
    assert api.SubscribeMarketData(["rb2701", "au2612", "cu2612"], 2) == 0
    wait_for(lambda: spi.names().count("OnRspSubMarketData") == 2)
    # Every listed contract ticks each round, so cu2612 would have ticked by rb2701's third tick.
    wait_for(lambda: sum(t.InstrumentID == "rb2701" for t in spi.ticks) >= 3)
    assert {t.InstrumentID for t in spi.ticks} == {"rb2701", "au2612"}


def test_unknown_instruments_are_accepted_warned_about_and_never_tick(make_md, caplog):
    api, spi = make_md(FRONT, subscribe=["rb2701", "RB2605", "IC8888"])
    with caplog.at_level(logging.WARNING):
        wait_for(lambda: len(spi.ticks) >= 6)
        wait_for(lambda: "RB2605" in caplog.text)
    subs = [e[1] for e in spi.events if e[0] == "OnRspSubMarketData"]
    assert [(s[0].InstrumentID, s[1].ErrorID) for s in subs] == [("rb2701", 0), ("RB2605", 0), ("IC8888", 0)]
    assert {t.InstrumentID for t in spi.ticks} == {"rb2701"}
    assert "IC8888" in caplog.text


def test_unsubscribe_stops_the_ticks_after_the_reply(make_md):
    api, spi = make_md(FRONT, subscribe=["rb2701", "au2612"])
    wait_for(lambda: len(spi.ticks) >= 10)
    assert api.UnSubscribeMarketData([b"au2612"], 1) == 0
    wait_for(lambda: "OnRspUnSubMarketData" in spi.names())
    count = len(spi.events)
    wait_for(lambda: len(spi.events) > count + 10)
    after = spi.events[spi.names().index("OnRspUnSubMarketData") + 1:]
    assert after and all(e[1][0].InstrumentID == "rb2701" for e in after if e[0] == "OnRtnDepthMarketData")


def test_join_blocks_until_release_from_another_thread(make_md):
    api, spi = make_md(FRONT)
    returned = []
    joiner = threading.Thread(target=lambda: returned.append(api.Join()))
    joiner.start()
    witness, witness_spi = make_md(FRONT, subscribe=["rb2701"])  # the same market: its ticks mark time
    wait_for(lambda: len(witness_spi.ticks) >= 3)
    assert joiner.is_alive()
    api.Release()
    joiner.join(5)
    assert not joiner.is_alive() and returned == [1]


def test_release_from_inside_a_callback_stops_all_further_callbacks(make_md):
    class ReleasingSpi(RecordingMdSpi):
        def OnRtnDepthMarketData(self, tick):
            super().OnRtnDepthMarketData(tick)
            if len(self.ticks) == 5:
                self.api.Release()

    witness, witness_spi = make_md(FRONT, subscribe=["rb2701"])  # the same market: its ticks mark time
    api, spi = make_md(FRONT, subscribe=["rb2701", "au2612"], spi_class=ReleasingSpi)
    joined: list[int] = []
    joiner = threading.Thread(target=lambda: joined.append(api.Join()), daemon=True)
    joiner.start()
    joiner.join(10)  # Join returns because the callback released the API
    assert joined == [1], f"Join() did not return; {len(spi.ticks)} ticks came"
    seen = len(witness_spi.ticks)
    wait_for(lambda: len(witness_spi.ticks) >= seen + 5)
    assert len(spi.ticks) == 5


def test_release_from_the_main_thread_while_ticks_flow(make_md):
    front = f"sim://?start={FRIDAY_MORNING}&speed=max"
    api, spi = make_md(front, subscribe=["rb2701"])
    witness, witness_spi = make_md(front, subscribe=["rb2701"])  # the same market: its ticks mark time
    wait_for(lambda: len(spi.ticks) > 1000 and len(witness_spi.ticks) > 10)
    api.Release()
    count = len(spi.ticks)
    seen = len(witness_spi.ticks)
    wait_for(lambda: len(witness_spi.ticks) >= seen + 1000)
    assert len(spi.ticks) == count


def test_a_batch_still_being_built_when_the_api_stops_is_not_delivered():
    # Replay's batches build their ticks when the dispatcher iterates them, which takes a while;
    # a Release() meanwhile must still mean "no callback after this".
    from ctpshim.runtime.dispatcher import Dispatcher

    building, go_on = threading.Event(), threading.Event()

    class SlowRows:
        def __len__(self) -> int:
            return 3

        def __iter__(self):
            building.set()
            go_on.wait(5)
            return iter([make_tick(blank_values("rb2701", "SHFE")) for _ in range(3)])

    delivered = []

    class Spi:
        def OnRtnDepthMarketData(self, tick):
            delivered.append(tick)

    dispatcher = Dispatcher("test-dispatcher", "CThostFtdcMdSpi")
    dispatcher.spi = Spi()
    dispatcher.start()
    dispatcher.post_ticks([make_tick(blank_values("au2612", "SHFE"))])
    dispatcher.post_ticks(SlowRows())
    assert building.wait(5)
    dispatcher.stop()
    go_on.set()
    dispatcher.join(5)
    assert [tick.InstrumentID for tick in delivered] == ["au2612"]


def test_stopping_in_the_middle_of_a_lazily_made_batch_ends_it_after_the_current_callback():
    # Replay's batches are generators that make each tick just before its callback; stop() from
    # another thread must not race with them, and no callback may follow it.
    from ctpshim.runtime.dispatcher import Dispatcher

    made: list[int] = []

    def lazy_batch():
        for number in range(100):
            made.append(number)
            yield make_tick(blank_values(f"rb26{number:02d}", "SHFE"))

    class Batch:
        def __len__(self) -> int:
            return 100

        def __iter__(self):
            return lazy_batch()

    in_callback, go_on = threading.Event(), threading.Event()
    delivered: list[str] = []

    class Spi:
        def OnRtnDepthMarketData(self, tick):
            delivered.append(tick.InstrumentID)
            if len(delivered) == 3:
                in_callback.set()
                go_on.wait(5)

    dispatcher = Dispatcher("test-dispatcher", "CThostFtdcMdSpi")
    dispatcher.spi = Spi()
    dispatcher.start()
    dispatcher.post_ticks(Batch())
    assert in_callback.wait(5)
    dispatcher.stop()
    go_on.set()
    dispatcher.join(5)
    assert delivered == ["rb2600", "rb2601", "rb2602"]
    assert len(made) <= 4  # the rest of the batch was never made


@pytest.mark.parametrize("made_before_the_fault", [[], ["ag2606"]], ids=["at-once", "midway"])
def test_a_batch_that_cannot_be_made_is_reported_and_the_next_one_is_delivered(caplog, made_before_the_fault):
    # A replay batch may fail as its iteration starts (a damaged row group) or part way through.
    from ctpshim.runtime.dispatcher import Dispatcher

    class Batch:
        def __len__(self) -> int:
            return 2

        def __iter__(self):
            if not made_before_the_fault:
                raise ValueError("row group 3 is damaged")
            return self.ticks()

        def ticks(self):
            for instrument in made_before_the_fault:
                yield make_tick(blank_values(instrument, "SHFE"))
            raise ValueError("row group 3 is damaged")

    delivered: list[str] = []
    done = threading.Event()

    class Spi:
        def OnRtnDepthMarketData(self, tick):
            delivered.append(tick.InstrumentID)
            if tick.InstrumentID == "rb2701":
                done.set()

    dispatcher = Dispatcher("test-dispatcher", "CThostFtdcMdSpi")
    dispatcher.spi = Spi()
    with caplog.at_level(logging.ERROR, logger="ctpshim"):
        dispatcher.start()
        dispatcher.post_ticks([make_tick(blank_values("au2612", "SHFE"))])
        dispatcher.post_ticks(Batch())
        dispatcher.post_ticks([make_tick(blank_values("rb2701", "SHFE"))])
        assert done.wait(5)
        dispatcher.stop()
        dispatcher.join(5)
    assert delivered == ["au2612", *made_before_the_fault, "rb2701"]
    assert "a batch of 2 ticks could not be made; the rest of it is skipped" in caplog.text
    assert "row group 3 is damaged" in caplog.text
    assert "exception in" not in caplog.text  # not blamed on the program's callback


def test_failover_to_the_next_front_when_one_is_down(make_md, fast_reconnect):
    api, spi = make_md("sim://?refuse=true", FRONT, subscribe=["rb2701"])
    wait_for(lambda: spi.ticks)
    assert spi.names().count("OnFrontConnected") == 1


def test_nothing_reachable_means_no_callback_and_silent_retries(make_md, fast_reconnect, caplog):
    with caplog.at_level(logging.WARNING):
        api, spi = make_md("sim://?refuse=true")
        wait_for(lambda: caplog.text.count("cannot be reached") >= 2)
    assert spi.names() == []


def test_after_a_disconnect_the_api_reconnects_and_the_program_logs_in_again(make_md, fast_reconnect):
    api, spi = make_md(f"sim://?start={FRIDAY_MORNING}&speed=20&disconnect_after=30", subscribe=["rb2701"])
    wait_for(lambda: spi.names().count("OnFrontConnected") >= 2, what="a reconnection")
    names = spi.names()
    cut = names.index("OnFrontDisconnected")
    assert spi.events[cut][1] == (4097,)
    assert names[cut + 1] == "OnFrontConnected"
    wait_for(lambda: spi.names().count("OnRspUserLogin") >= 2)
    wait_for(lambda: spi.names()[spi.names().index("OnFrontConnected", cut):].count("OnRtnDepthMarketData") > 3)


class SubscribeOnceSpi(RecordingMdSpi):
    """Subscribes after the first login only, as a program that does not expect reconnects."""

    def OnRspUserLogin(self, *args: Any) -> None:
        first = "OnRspUserLogin" not in self.names()
        super().OnRspUserLogin(*args)
        if first:
            assert self.api.SubscribeMarketData([b"rb2701", b"cu2612"], 2) == 0
            assert self.api.UnSubscribeMarketData([b"cu2612"], 1) == 0


def test_after_a_reconnect_the_session_restores_subscriptions_at_the_new_login(make_md, fast_reconnect):
    api, spi = make_md(f"sim://?start={FRIDAY_MORNING}&speed=20&disconnect_after=30", spi_class=SubscribeOnceSpi)
    wait_for(lambda: spi.names().count("OnRspUserLogin") >= 2, what="a second login")
    cut = spi.names().index("OnFrontDisconnected")
    wait_for(lambda: spi.names()[cut:].count("OnRtnDepthMarketData") > 3, what="ticks after the reconnect")
    after = spi.events[cut:]
    names = [e[0] for e in after]
    # nothing between the drop and the new login; then only what was still subscribed
    assert "OnRtnDepthMarketData" not in names[: names.index("OnRspUserLogin")]
    assert "OnRspSubMarketData" not in names  # restored quietly: the program did not ask
    assert {e[1][0].InstrumentID for e in after if e[0] == "OnRtnDepthMarketData"} == {"rb2701"}


def test_restoring_can_be_switched_off(make_md, fast_reconnect, monkeypatch):
    monkeypatch.setattr(reconnect, "RESUBSCRIBE_AFTER_RELOGIN", False)
    front = f"sim://?start={FRIDAY_MORNING}&speed=20&disconnect_after=30"
    api, spi = make_md(front, spi_class=SubscribeOnceSpi)
    wait_for(lambda: spi.names().count("OnRspUserLogin") >= 2, what="a second login")
    cut = spi.names().index("OnFrontDisconnected")
    # A second program on the same market subscribes at every login: rb2701 keeps ticking there.
    other, other_spi = make_md(front, subscribe=["rb2701"])
    wait_for(lambda: len(other_spi.ticks) >= 13, what="rb2701 ticking on the same market")  # 6 s of market time
    assert "OnRtnDepthMarketData" not in spi.names()[cut:]


def test_a_raising_callback_is_reported_and_dispatch_goes_on(make_md, capfd):
    class RaisingSpi(RecordingMdSpi):
        def OnRtnDepthMarketData(self, tick):
            super().OnRtnDepthMarketData(tick)
            raise ValueError(f"boom {len(self.ticks)}")

    api, spi = make_md(FRONT, subscribe=["rb2701"], spi_class=RaisingSpi)
    wait_for(lambda: len(spi.ticks) >= 8)
    err = capfd.readouterr().err
    assert "exception in CThostFtdcMdSpi.OnRtnDepthMarketData" in err and "ValueError: boom 1" in err
    assert "are counted, not printed" in err  # no flood of identical tracebacks


def test_a_slow_callback_holds_the_source_back_without_losing_or_reordering(make_md, monkeypatch, caplog):
    monkeypatch.setattr(queue_policy, "HIGH_WATER", 64)
    monkeypatch.setattr(queue_policy, "LOW_WATER", 16)
    monkeypatch.setattr(queue_policy, "WARN_AFTER", 0.2)

    class SlowSpi(RecordingMdSpi):
        def OnRtnDepthMarketData(self, tick):
            time.sleep(0.01)
            super().OnRtnDepthMarketData(tick)

    with caplog.at_level(logging.WARNING):
        api, spi = make_md(f"sim://?start={FRIDAY_MORNING}&speed=max", subscribe=["rb2701"], spi_class=SlowSpi)
        wait_for(lambda: len(spi.ticks) >= 60, timeout=20)
        wait_for(lambda: "slower than the source" in caplog.text)
    api.Release()
    ticks = [t for t in spi.ticks if t is not spi.ticks[0]]
    volumes = [t.Volume for t in ticks]
    assert volumes == sorted(volumes)
    stamps = [(t.UpdateTime, t.UpdateMillisec) for t in ticks]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)  # one per 0.5 s: none skipped
    seconds = [int(t.UpdateTime[6:]) * 1000 + t.UpdateMillisec for t in ticks[:50]]
    assert all(b - a == 500 for a, b in zip(seconds, seconds[1:]) if b > a)


def test_logout_reply(make_md):
    api, spi = make_md(FRONT)
    wait_for(lambda: "OnRspUserLogin" in spi.names())
    logout = mdapi.CThostFtdcUserLogoutField()
    logout.UserID = "u1"
    assert api.ReqUserLogout(logout, 9) == 0
    wait_for(lambda: "OnRspUserLogout" in spi.names())
    rsp = next(e[1] for e in spi.events if e[0] == "OnRspUserLogout")
    assert rsp[0].UserID == "u1" and rsp[2] == 9


def test_front_environment_variable_replaces_the_programs_front(make_md, monkeypatch):
    monkeypatch.setenv("CTPSHIM_FRONT", FRONT)
    api, spi = make_md("tcp://180.168.146.187:10131", subscribe=["rb2701"])
    wait_for(lambda: spi.ticks)


@pytest.mark.parametrize("front, words", [
    ("nonsense", ["no scheme"]),
    ("foo://x", ["unknown scheme 'foo'", "sim://"]),
    ("ctpshim://127.0.0.1", ["has no port", "7780"]),
    ("sim://?speed=fast", ["speed='fast'", "max"]),
    ("sim://?sped=2", ["unknown setting 'sped'", "speed"]),
    ("sim://?seed=1&seed=2", ["given twice"]),
    ("sim://?instruments=rb2701,XX99", ["XX99", "rb2701"]),
    ("sim://?hours=sometimes", ["hours='sometimes'", "real, always"]),
    ("sim://?start=yesterday", ["start='yesterday'", "2026-11-20T09:00"]),
])
def test_bad_front_addresses_raise_at_once_naming_the_bad_part(make_md, front, words):
    api, spi = make_md(init=False)
    with pytest.raises(FrontAddressError) as info:
        api.RegisterFront(front)
    for word in words:
        assert word in str(info.value)
    assert isinstance(info.value, ValueError)


def test_join_on_the_main_thread_returns_when_a_helper_thread_releases(make_md):
    api, spi = make_md(FRONT, subscribe=["rb2701"])
    wait_for(lambda: spi.ticks)
    helper = threading.Timer(0.2, api.Release)
    helper.start()
    started = time.monotonic()
    assert api.Join() == 1
    assert 0.1 < time.monotonic() - started < 5
    helper.join()


def test_unregistering_the_spi_before_release_stops_the_callbacks(make_md):
    api, spi = make_md(FRONT, subscribe=["rb2701"])
    wait_for(lambda: len(spi.ticks) > 2)
    witness, witness_spi = make_md(FRONT, subscribe=["rb2701"])  # the same market: its ticks mark time
    wait_for(lambda: witness_spi.ticks)
    api.RegisterSpi(None)  # SFIT's recommended shutdown order: RegisterSpi(None), then Release()
    seen = len(witness_spi.ticks)
    wait_for(lambda: len(witness_spi.ticks) >= seen + 2)  # a callback running as the Spi went has ended
    count = len(spi.ticks)
    wait_for(lambda: len(witness_spi.ticks) >= seen + 7)
    assert len(spi.ticks) == count
    api.Release()


def test_quote_request_subscriptions_and_multicast_queries_are_answered(make_md):
    class QuoteSpi(RecordingMdSpi):
        def OnRspSubForQuoteRsp(self, *args):
            self._record("OnRspSubForQuoteRsp", *args)

        def OnRspUnSubForQuoteRsp(self, *args):
            self._record("OnRspUnSubForQuoteRsp", *args)

        def OnRspQryMulticastInstrument(self, *args):
            self._record("OnRspQryMulticastInstrument", *args)

    api, spi = make_md(FRONT, spi_class=QuoteSpi)
    wait_for(lambda: "OnRspUserLogin" in spi.names())
    assert api.SubscribeForQuoteRsp([b"rb2701", b"au2612"], 2) == 0
    assert api.UnSubscribeForQuoteRsp([b"rb2701"], 1) == 0
    assert api.ReqQryMulticastInstrument(mdapi.CThostFtdcQryMulticastInstrumentField(), 4) == 0
    wait_for(lambda: "OnRspQryMulticastInstrument" in spi.names())
    subs = [e[1] for e in spi.events if e[0] == "OnRspSubForQuoteRsp"]
    assert [(s[0].InstrumentID, s[3]) for s in subs] == [("rb2701", False), ("au2612", True)]
    assert [e[1][0].InstrumentID for e in spi.events if e[0] == "OnRspUnSubForQuoteRsp"] == ["rb2701"]
    assert next(e[1] for e in spi.events if e[0] == "OnRspQryMulticastInstrument") == (None, None, 4, True)
    assert spi.ticks == []  # quote requests are not market data


class ScriptedAdapter(Adapter):
    """A front the test drives: a snapshot for every subscribe call, a drop on demand."""

    scheme = "scripted"
    subscribe_calls: list[list[str]] = []
    drop: asyncio.Event | None = None

    carries: list[dict[str, Any]] = []
    refuse: dict[str, int] = {}  # host -> connection attempts to refuse
    refusal: Any = UpstreamUnavailable  # what a refused attempt raises

    async def connect(self) -> None:
        self._queue: asyncio.Queue[list[Any]] = asyncio.Queue()
        ScriptedAdapter.carries.append(self.carry)
        left = ScriptedAdapter.refuse.get(self.url.host, 0)
        if left:
            ScriptedAdapter.refuse[self.url.host] = left - 1
            raise ScriptedAdapter.refusal(f"{self.url.raw}: refused by the test")
        ScriptedAdapter.drop = asyncio.Event()
        self.carry["connections"] = self.carry.get("connections", 0) + 1

    async def subscribe(self, ids: Any) -> None:
        ids = list(ids)
        ScriptedAdapter.subscribe_calls.append(ids)
        ticks = []
        for instrument in ids:
            values = blank_values(instrument, "SHFE")
            values[depth_index()["LastPrice"]] = 3000.0
            ticks.append(make_tick(values))
        self._queue.put_nowait(ticks)

    async def unsubscribe(self, ids: Any) -> None:
        pass

    async def ticks(self) -> Any:
        assert ScriptedAdapter.drop is not None
        while True:
            getter = asyncio.ensure_future(self._queue.get())
            dropper = asyncio.ensure_future(ScriptedAdapter.drop.wait())
            try:
                done, _ = await asyncio.wait({getter, dropper}, return_when=asyncio.FIRST_COMPLETED)
            finally:  # also when the session cancels this generator
                getter.cancel()
                dropper.cancel()
            if dropper in done:
                raise UpstreamDisconnected("dropped by the test", REASON_READ_FAILED)
            yield getter.result()


@pytest.fixture
def scripted() -> Any:
    ScriptedAdapter.subscribe_calls = []
    ScriptedAdapter.carries = []
    ScriptedAdapter.refuse = {}
    ScriptedAdapter.refusal = UpstreamUnavailable
    registry.register_adapter("scripted", ScriptedAdapter)
    yield ScriptedAdapter
    registry.unregister_adapter("scripted")


def test_a_program_that_subscribes_again_after_relogin_gets_one_snapshot_not_two(make_md, scripted, fast_reconnect):
    api, spi = make_md("scripted://", subscribe=["rb2701", "cu2612"])
    wait_for(lambda: len(spi.ticks) == 2)
    io_loop.call_soon(lambda: scripted.drop.set())
    wait_for(lambda: spi.names().count("OnRspSubMarketData") == 4, what="the program's own resubscription")
    wait_for(lambda: len(spi.ticks) >= 4)
    # A third instrument's snapshot comes through the same adapter queue and dispatcher: a second
    # snapshot still owed for the others would come before it.
    assert api.SubscribeMarketData([b"au2612"], 1) == 0
    wait_for(lambda: spi.ticks[-1].InstrumentID == "au2612", what="the later subscription's snapshot")
    assert [t.InstrumentID for t in spi.ticks] == ["rb2701", "cu2612", "rb2701", "cu2612", "au2612"]
    assert scripted.subscribe_calls == [["rb2701", "cu2612"], ["rb2701", "cu2612"], ["au2612"]]
    after = spi.names()[spi.names().index("OnFrontDisconnected"):]
    assert after.index("OnRspUserLogin") < after.index("OnRtnDepthMarketData")


def test_an_adapters_carry_outlives_its_connection(make_md, scripted, fast_reconnect):
    api, spi = make_md("scripted://")
    wait_for(lambda: "OnRspUserLogin" in spi.names())
    io_loop.call_soon(lambda: scripted.drop.set())
    wait_for(lambda: spi.names().count("OnRspUserLogin") == 2, what="the login after the reconnect")
    first, second = scripted.carries[:2]
    assert first is second and second["connections"] == 2  # one dict per market for its lifetime
    other, other_spi = make_md("scripted://")
    wait_for(lambda: "OnRspUserLogin" in other_spi.names())
    assert len(scripted.carries) == 2  # another API object on the same front shares the market
    api.Release()
    other.Release()
    wait_for(lambda: not [m for m in hub.markets() if m.key == "scripted://"], what="the market to close")
    again, again_spi = make_md("scripted://")
    wait_for(lambda: "OnRspUserLogin" in again_spi.names())
    assert scripted.carries[-1] is not first  # a market opened afresh starts afresh


def test_an_adapters_carry_outlives_failed_reconnect_attempts(make_md, scripted, fast_reconnect):
    api, spi = make_md("scripted://a", "scripted://b")
    wait_for(lambda: "OnRspUserLogin" in spi.names())
    first = scripted.carries[0]
    # The link drops; the next attempt on a is refused, so is the one on b, then a answers again.
    scripted.refuse.update({"a": 1, "b": 1})
    io_loop.call_soon(lambda: scripted.drop.set())
    wait_for(lambda: spi.names().count("OnRspUserLogin") == 2, what="the login after the failed attempts")
    assert len(scripted.carries) == 4  # a, a refused, b refused, a
    assert scripted.carries[1] is first and scripted.carries[3] is first and first["connections"] == 2
    assert scripted.carries[2] is not first  # b's market has its own
    api.Release()
    wait_for(lambda: not [m for m in hub.markets() if m.key in ("scripted://a", "scripted://b")],
             what="both markets to close once the API object is released")
    again, again_spi = make_md("scripted://a")
    wait_for(lambda: "OnRspUserLogin" in again_spi.names())
    assert scripted.carries[-1] is not first


class ClosedAfterAccepting(UpstreamDisconnected):
    """A front that accepts the connection, then closes it (as a refused TLS handshake does)."""

    front_disconnected = True

    def __init__(self, message: str) -> None:
        super().__init__(message, REASON_READ_FAILED)


def test_a_front_that_closes_after_accepting_is_a_disconnect_without_a_connect(make_md, scripted, fast_reconnect):
    scripted.refuse["a"] = 1
    scripted.refusal = ClosedAfterAccepting
    api, spi = make_md("scripted://a")
    wait_for(lambda: "OnRspUserLogin" in spi.names(), what="the login after the refused attempt")
    names = [n for n in spi.names() if n in ("OnFrontConnected", "OnFrontDisconnected")]
    assert names[:2] == ["OnFrontDisconnected", "OnFrontConnected"]
    assert next(e[1] for e in spi.events if e[0] == "OnFrontDisconnected") == (REASON_READ_FAILED,)


def test_an_unreachable_front_is_retried_without_callbacks(make_md, scripted, fast_reconnect):
    scripted.refuse["a"] = 1
    api, spi = make_md("scripted://a")
    wait_for(lambda: "OnRspUserLogin" in spi.names(), what="the login after the refused attempt")
    assert "OnFrontDisconnected" not in spi.names() and spi.names().count("OnFrontConnected") == 1


class MadeWhenIterated:
    """A batch that makes its ticks when iterated, as sim:// and replay:// batches do, noting the thread."""

    made_on: list[str] = []

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Any:
        MadeWhenIterated.made_on.append(threading.current_thread().name)
        return iter([make_tick(blank_values(instrument, "SHFE")) for instrument in self.ids])


class LazyAdapter(Adapter):
    """Every 5 ms a lazy batch with a tick of each subscribed instrument; unsubscribing takes until
    the test lets it finish, so the session has to mute the instrument meanwhile."""

    scheme = "lazy"
    unsubscribed: asyncio.Event | None = None

    async def connect(self) -> None:
        self.subscribed: list[str] = []
        LazyAdapter.unsubscribed = asyncio.Event()

    async def subscribe(self, ids: Any) -> None:
        self.subscribed += list(ids)

    async def unsubscribe(self, ids: Any) -> None:
        assert LazyAdapter.unsubscribed is not None
        await LazyAdapter.unsubscribed.wait()
        self.subscribed = [i for i in self.subscribed if i not in ids]

    async def ticks(self) -> Any:
        for _ in range(2000):  # bounded: 10 s
            await asyncio.sleep(0.005)
            if self.subscribed:
                yield MadeWhenIterated(list(self.subscribed))


def test_muting_an_unsubscribed_instrument_leaves_the_ticks_to_be_made_on_the_callback_thread(make_md):
    MadeWhenIterated.made_on = []
    registry.register_adapter("lazy", LazyAdapter)
    try:
        api, spi = make_md("lazy://", subscribe=["rb2701", "cu2612"])
        wait_for(lambda: len(spi.ticks) >= 4)
        assert api.UnSubscribeMarketData([b"cu2612"], 1) == 0
        wait_for(lambda: "OnRspUnSubMarketData" in spi.names())
        count = len(spi.ticks)
        wait_for(lambda: len(spi.ticks) > count + 10, what="ticks while cu2612 is muted")
        cut = spi.names().index("OnRspUnSubMarketData")
        after = [e[1][0].InstrumentID for e in spi.events[cut:] if e[0] == "OnRtnDepthMarketData"]
        assert after and set(after) == {"rb2701"}
        callback_threads = {e[2] for e in spi.events if e[0] == "OnRtnDepthMarketData"}
        assert set(MadeWhenIterated.made_on) == callback_threads and len(callback_threads) == 1
    finally:
        io_loop.call_soon(lambda: LazyAdapter.unsubscribed.set())
        registry.unregister_adapter("lazy")
