"""tcp:// and ssl://: the pass-through to real CTP fronts through openctp-ctp.

The data path runs against a stand-in for openctp-ctp's modules (tests/stand_in_openctp.py)
whose objects are the real openctp field classes; the connection-failure paths run the real
openctp-ctp against local sockets on 127.0.0.1.
"""

from __future__ import annotations

import importlib.machinery
import socket
import threading
import time
from typing import Any, Iterator

import pytest

from ctpshim import mdapi, tdapi
from ctpshim.adapters import tcp
from ctpshim.errors import FrontAddressError

from ..conftest import RecordingMdSpi, wait_for
from ..stand_in_openctp import StandIn, make_real_tick

FRONT = "tcp://127.0.0.1:10131"


@pytest.fixture
def stand_in(openctp: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, StandIn]:
    modules = {"mdapi": StandIn(openctp.mdapi, "mdapi"), "tdapi": StandIn(openctp.tdapi, "tdapi")}
    monkeypatch.setattr(tcp, "load_openctp", lambda flavour: modules[flavour])
    return modules


def test_the_md_data_path_converts_requests_and_callbacks_and_keeps_ctps_order(make_md, stand_in, openctp):
    api, spi = make_md(FRONT, init=False, login=False, subscribe=["rb2605", "cu2607"])
    api.Init()
    wait_for(lambda: "OnFrontConnected" in spi.names())
    login = mdapi.CThostFtdcReqUserLoginField()
    login.BrokerID, login.UserID, login.Password, login.UserProductInfo = "9999", "u1", "pw", "测试"
    assert api.ReqUserLogin(login, 5) == 0
    wait_for(lambda: len(spi.ticks) == 2)
    assert spi.names() == ["OnFrontConnected", "OnRspUserLogin", "OnRspSubMarketData", "OnRspSubMarketData",
                           "OnRtnDepthMarketData", "OnRtnDepthMarketData"]
    # every callback on the API's own dispatcher thread, never on openctp's
    assert {thread for _, _, thread in spi.events} == {api._dispatcher.name}

    md = stand_in["mdapi"]
    sent = next(call for call in md.calls if call[0] == "ReqUserLogin")
    assert type(sent[1]) is openctp.mdapi.CThostFtdcReqUserLoginField and sent[2] == 5
    assert (sent[1].BrokerID, sent[1].UserID, sent[1].Password) == ("9999", "u1", "pw")
    # Non-ASCII text reaches the front exactly as openctp-ctp itself would send it (openctp stores
    # a str as UTF-8 and reads it back as GBK: the same bytes either way).
    direct = openctp.mdapi.CThostFtdcReqUserLoginField()
    direct.UserProductInfo = "测试"
    assert sent[1].UserProductInfo == direct.UserProductInfo
    assert ("SubscribeMarketData", [b"rb2605", b"cu2607"], 2) in md.calls

    response, info, request_id, last = spi.events[1][1]
    assert type(response) is mdapi.CThostFtdcRspUserLoginField
    assert (response.TradingDay, response.SystemName, response.SessionID, response.MaxOrderRef) == (
        "20261120", "TradingHosting", -12345, "100")
    assert (info.ErrorID, info.ErrorMsg, request_id, last) == (0, "CTP:OK", 5, True)
    assert [e[1][3] for e in spi.events if e[0] == "OnRspSubMarketData"] == [False, True]

    tick = spi.ticks[0]
    assert type(tick) is mdapi.CThostFtdcDepthMarketDataField
    expected = make_real_tick(openctp.mdapi, "rb2605")
    for member in mdapi.CThostFtdcDepthMarketDataField.__annotations__:
        assert getattr(tick, member) == getattr(expected, member), member
    assert api.GetTradingDay() == "20261120"


def test_the_api_is_created_registered_and_released_as_the_program_asked(stand_in):
    api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(_flow(), True, False)
    try:
        api.RegisterFront(FRONT)
        api.RegisterFront("tcp://127.0.0.1:10132")
        api.RegisterNameServer("tcp://127.0.0.1:10133")
        api.Init()
    finally:
        api.Release()
    calls = [call for call in stand_in["mdapi"].calls if call[0] != "RegisterSpi"]
    assert calls[0][0] == "CreateFtdcMdApi" and calls[0][2:] == (True, False)
    assert calls[1:] == [("RegisterFront", FRONT), ("RegisterFront", "tcp://127.0.0.1:10132"),
                         ("RegisterNameServer", "tcp://127.0.0.1:10133"), ("Init",), ("Release",)]


_flows = iter(range(10**6))


def _flow() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="ctpshim-tcp-") + f"/f{next(_flows)}_"


class TraderSpi(tdapi.CThostFtdcTraderSpi):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, tuple[Any, ...]]] = []

    def OnFrontConnected(self) -> None:
        self.events.append(("OnFrontConnected", ()))

    def OnFrontDisconnected(self, nReason: int) -> None:
        self.events.append(("OnFrontDisconnected", (nReason,)))

    def OnRtnOrder(self, pOrder: Any) -> None:
        self.events.append(("OnRtnOrder", (pOrder,)))

    def OnRspQryInvestorPosition(self, *args: Any) -> None:
        self.events.append(("OnRspQryInvestorPosition", args))


def test_the_trader_data_path_forwards_topics_orders_and_null_pointers(make_td, stand_in, openctp):
    spi = TraderSpi()
    api = make_td(spi, FRONT)
    wait_for(lambda: spi.events)
    order = tdapi.CThostFtdcInputOrderField()
    order.InstrumentID, order.OrderRef, order.Direction = "rb2605", "42", tdapi.THOST_FTDC_D_Buy
    order.LimitPrice, order.VolumeTotalOriginal = 3123.0, 2
    assert api.ReqOrderInsert(order, 8) == 0
    assert api.ReqQryInvestorPosition(tdapi.CThostFtdcQryInvestorPositionField(), 9) == 0
    wait_for(lambda: len(spi.events) == 3)
    td = stand_in["tdapi"]
    names = [call[0] for call in td.calls]
    assert names.index("SubscribePrivateTopic") < names.index("Init")
    assert ("SubscribePrivateTopic", tdapi.THOST_TERT_QUICK) in td.calls
    sent = next(call for call in td.calls if call[0] == "ReqOrderInsert")[1]
    assert type(sent) is openctp.tdapi.CThostFtdcInputOrderField
    assert (sent.InstrumentID, sent.OrderRef, sent.Direction, sent.LimitPrice, sent.VolumeTotalOriginal) == (
        "rb2605", "42", "0", 3123.0, 2)
    echoed = spi.events[1][1][0]
    assert type(echoed) is tdapi.CThostFtdcOrderField
    assert (echoed.OrderRef, echoed.StatusMsg, echoed.LimitPrice, echoed.OrderStatus) == ("42", "Not traded", 3123.0, "3")
    assert spi.events[2] == ("OnRspQryInvestorPosition", (None, None, 9, True))


def test_ctps_own_disconnects_and_reason_codes_pass_through(make_md, stand_in):
    api, spi = make_md(FRONT, subscribe=["rb2605"])
    wait_for(lambda: spi.ticks)
    stand_in["mdapi"].apis[0].drop(8193)
    wait_for(lambda: spi.names().count("OnFrontConnected") == 2)
    cut = spi.names().index("OnFrontDisconnected")
    assert spi.events[cut][1] == (8193,)


def test_released_from_inside_a_callback_no_more_callbacks(make_md, stand_in):
    class ReleasingSpi(RecordingMdSpi):
        def OnRtnDepthMarketData(self, tick: Any) -> None:
            super().OnRtnDepthMarketData(tick)
            self.api.Release()

    api, spi = make_md(FRONT, subscribe=["rb2605", "cu2607"], spi_class=ReleasingSpi)
    wait_for(lambda: ("Release",) in stand_in["mdapi"].calls)
    # Once the callback thread has ended, nothing can call the Spi again, whatever the front still sends.
    dispatcher = api._dispatcher._thread
    wait_for(lambda: dispatcher is not None and not dispatcher.is_alive(), what="the callback thread to end")
    assert len(spi.ticks) == 1


def test_a_slow_program_holds_the_real_fronts_thread_and_loses_no_tick(make_md, stand_in):
    from ctpshim.runtime import queue_policy

    class SlowSpi(RecordingMdSpi):
        most_waiting = 0

        def OnRtnDepthMarketData(self, tick: Any) -> None:
            super().OnRtnDepthMarketData(tick)
            SlowSpi.most_waiting = max(SlowSpi.most_waiting, self.api._dispatcher._pending_ticks)
            if len(self.ticks) % 100 == 0:
                time.sleep(0.01)

    api, spi = make_md(FRONT, subscribe=["rb2605"], spi_class=SlowSpi)
    wait_for(lambda: spi.ticks)
    stand_in["mdapi"].apis[0].burst("rb2605", 5000)
    wait_for(lambda: len(spi.ticks) == 5001, timeout=30, what="every tick of the burst")
    assert [t.Volume for t in spi.ticks[1:]] == list(range(1, 5001))
    assert SlowSpi.most_waiting <= queue_policy.HIGH_WATER + 1


# -- bad input ------------------------------------------------------------------------------------

def test_without_openctp_installed_the_error_names_the_extra(make_md, monkeypatch):
    real_find = importlib.machinery.PathFinder.find_spec
    monkeypatch.setattr(importlib.machinery.PathFinder, "find_spec",
                        classmethod(lambda cls, name, *a: None if name == "openctp_ctp" else real_find(name, *a)))
    api, spi = make_md(init=False)
    with pytest.raises(FrontAddressError, match=r"pip install 'ctpshim\[openctp\]'"):
        api.RegisterFront(FRONT)


def test_a_missing_locale_is_reported_instead_of_ending_the_process(make_md, monkeypatch):
    monkeypatch.setattr(tcp, "_locale_installed", lambda: False)
    api, spi = make_md(init=False)
    with pytest.raises(FrontAddressError, match="zh_CN.GB18030.*localedef"):
        api.RegisterFront("ssl://127.0.0.1:443")


@pytest.mark.parametrize("front, words", [
    ("tcp://127.0.0.1", ["no port"]),
    ("tcp://:10131", ["needs a host"]),
    ("tcp://127.0.0.1:10131/md", ["only host:port"]),
    ("tcp://127.0.0.1:10131?x=1", ["unknown setting 'x'"]),
])
def test_malformed_tcp_addresses(make_md, front, words, openctp):
    api, spi = make_md(init=False)
    with pytest.raises(FrontAddressError) as info:
        api.RegisterFront(front)
    for word in words:
        assert word in str(info.value)


def test_real_fronts_and_other_sources_cannot_share_a_failover_list(make_md, openctp):
    api, spi = make_md(init=False)
    api.RegisterFront("sim://")
    with pytest.raises(FrontAddressError, match="cannot be mixed"):
        api.RegisterFront(FRONT)


# -- the real openctp-ctp against local sockets ---------------------------------------------------

@pytest.fixture
def listener() -> Iterator[Any]:
    """A TCP listener on 127.0.0.1 whose behaviour a test sets: 'close' or 'garbage'."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    state = {"mode": "close", "stop": False, "accepted": 0}

    def serve() -> None:
        deadline = time.monotonic() + 60
        while not state["stop"] and time.monotonic() < deadline:
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            state["accepted"] += 1
            if state["mode"] == "garbage":
                connection.sendall(b"\x7fnot a CTP frame\x00" * 64)
                time.sleep(0.2)
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    state["port"] = server.getsockname()[1]
    yield state
    state["stop"] = True
    thread.join(5)
    server.close()


def test_real_openctp_a_front_that_accepts_then_closes_gives_4097_without_connected(make_md, listener, openctp):
    api, spi = make_md(f"tcp://127.0.0.1:{listener['port']}")
    wait_for(lambda: spi.names().count("OnFrontDisconnected") >= 2, what="two 4097 disconnects")
    assert set(spi.names()) == {"OnFrontDisconnected"}  # never OnFrontConnected: no CTP handshake
    assert {e[1] for e in spi.events} == {(4097,)}


def test_real_openctp_released_from_a_callback_then_join_returns(make_md, listener, openctp):
    released = threading.Event()

    class ReleasingSpi(RecordingMdSpi):
        def OnFrontDisconnected(self, nReason: int) -> None:
            super().OnFrontDisconnected(nReason)
            self.api.Release()  # the real API released from ctpshim's dispatcher thread
            released.set()

    api, spi = make_md(f"tcp://127.0.0.1:{listener['port']}", spi_class=ReleasingSpi)
    assert released.wait(15), "Release() from OnFrontDisconnected did not return"
    joined: list[int] = []
    joiner = threading.Thread(target=lambda: joined.append(api.Join()), daemon=True)
    joiner.start()
    joiner.join(5)
    assert joined == [1] and spi.names() == ["OnFrontDisconnected"]


def test_real_openctp_garbage_from_the_front_gives_8195(make_md, listener, openctp):
    listener["mode"] = "garbage"
    api, spi = make_md(f"tcp://127.0.0.1:{listener['port']}")
    wait_for(lambda: "OnFrontDisconnected" in spi.names(), what="a disconnect")
    assert spi.events[0][1] == (8195,)


def test_real_openctp_a_refused_front_gives_no_callback_at_all(make_md, openctp):
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    api, spi = make_md(f"tcp://127.0.0.1:{port}")
    assert api.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 1) == -1
    time.sleep(1.5)  # CTP retries a dead front silently
    assert spi.names() == []


@pytest.mark.parametrize("flavour", ["mdapi", "tdapi"])
def test_every_field_class_converts_both_ways_without_loss(flavour, openctp):
    from ctpshim.ctp.fields import load_spec, values_of

    own = mdapi if flavour == "mdapi" else tdapi
    real = getattr(openctp, flavour)
    samples = {"str": "A1", "bytes": "A1", "int": -7, "short": 3, "double": 1.5, "char": "1"}
    bytes_members = set(load_spec()["modules"][flavour]["bytes_members"])
    checked = 0
    for class_name, members in load_spec()["fields"].items():
        ours = getattr(own, class_name)()
        for member, _typedef, kind, size in members:
            if f"{class_name}.{member}" in bytes_members:
                kind = "bytes"
            value = samples[kind]
            setattr(ours, member, value[: size - 1] if kind in ("str", "bytes") else value)
        theirs = tcp.to_openctp(ours, real)
        assert type(theirs) is getattr(real, class_name)
        back = tcp.from_openctp(theirs, own)
        assert type(back) is type(ours) and values_of(back) == values_of(ours), class_name
        checked += 1
    assert checked == 502
