"""The two backends behind an API object (ctpshim.runtime.backends): which one a front gets, and
what a request returns on each before ``Init``, while no front is connected and after ``Release``,
compared with the real openctp-ctp doing the same."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any, Callable, Iterator

import pytest

from ctpshim import mdapi, tdapi
from ctpshim.adapters import tcp
from ctpshim.adapters.sim import SimAdapter
from ctpshim.errors import UpstreamUnavailable
from ctpshim.fronts import registry
from ctpshim.runtime import backends
from ctpshim.runtime.dispatcher import Dispatcher
from ctpshim.testing import SilentAdapter

from ..conftest import FRIDAY_MORNING, wait_for
from ..stand_in_openctp import StandIn
from .test_td_emulation import RecordingTraderSpi


class _Unreachable(SilentAdapter):
    """A source that never answers: every connection attempt fails (and is noted)."""

    attempts = threading.Event()

    async def connect(self) -> None:
        _Unreachable.attempts.set()
        await asyncio.sleep(0)
        raise UpstreamUnavailable("nothing listens there")


@pytest.fixture
def unreachable() -> Iterator[str]:
    _Unreachable.attempts.clear()
    registry.register_adapter("unreachable", _Unreachable)
    yield "unreachable://"
    registry.unregister_adapter("unreachable")


@pytest.fixture
def refused_port() -> int:
    closed = socket.create_server(("127.0.0.1", 0))
    port: int = closed.getsockname()[1]
    closed.close()
    return port


def _md_answers(api: Any, module: Any) -> dict[str, Any]:
    return {
        "ReqUserLogin": api.ReqUserLogin(module.CThostFtdcReqUserLoginField(), 1),
        "ReqUserLogout": api.ReqUserLogout(module.CThostFtdcUserLogoutField(), 2),
        "SubscribeMarketData": api.SubscribeMarketData([b"rb2701"], 1),
        "UnSubscribeMarketData": api.UnSubscribeMarketData([b"rb2701"], 1),
        "SubscribeForQuoteRsp": api.SubscribeForQuoteRsp([b"rb2701"], 1),
        "GetTradingDay": api.GetTradingDay(),
    }


def _td_answers(api: Any, module: Any) -> dict[str, Any]:
    info = module.CThostFtdcFrontInfoField()
    api.GetFrontInfo(info)
    return {
        "ReqAuthenticate": api.ReqAuthenticate(module.CThostFtdcReqAuthenticateField(), 1),
        "ReqUserLogin": api.ReqUserLogin(module.CThostFtdcReqUserLoginField(), 2),
        "ReqQryInstrument": api.ReqQryInstrument(module.CThostFtdcQryInstrumentField(), 3),
        "ReqOrderInsert": api.ReqOrderInsert(module.CThostFtdcInputOrderField(), 4),
        "GetTradingDay": api.GetTradingDay(),
        "GetFrontInfo": (info.FrontAddr, info.QryFreq, info.FTDPkgFreq),
    }


def _real(openctp: Any, flow_dir: str, front: str | None) -> tuple[Any, Any]:
    md = openctp.mdapi.CThostFtdcMdApi.CreateFtdcMdApi(flow_dir + "real_md_")
    td = openctp.tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(flow_dir + "real_td_")
    if front is not None:
        for api in (md, td):
            api.RegisterFront(front)
            api.Init()
    return md, td


def _ours(flow_dir: str, front: str | None) -> tuple[Any, Any]:
    md = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(flow_dir + "md_")
    td = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(flow_dir + "td_")
    if front is not None:
        for api in (md, td):
            api.RegisterFront(front)
            api.Init()
    return md, td


def _release(*apis: Any) -> None:
    for api in apis:
        api.Release()


@pytest.mark.parametrize("front", [None, "sim://", "tcp://127.0.0.1:10131"])
def test_before_init_every_backend_answers_as_openctp_does(front, flow_dir, openctp):
    real_md, real_td = _real(openctp, flow_dir, None)
    md, td = _ours(flow_dir, None)
    try:
        if front is not None:
            md.RegisterFront(front)
            td.RegisterFront(front)
        assert _md_answers(md, mdapi) == _md_answers(real_md, openctp.mdapi)
        assert _td_answers(td, tdapi) == _td_answers(real_td, openctp.tdapi)
        assert md._backend is backends.NOT_STARTED and td._backend is backends.NOT_STARTED
    finally:
        _release(md, td, real_md, real_td)


def test_while_no_front_is_connected_both_backends_answer_as_openctp_does(
        flow_dir, openctp, unreachable, refused_port):
    real = f"tcp://127.0.0.1:{refused_port}"
    real_md, real_td = _real(openctp, flow_dir, real)
    session_md, session_td = _ours(flow_dir + "s", unreachable)
    bridge_md, bridge_td = _ours(flow_dir + "b", real)
    try:
        assert _Unreachable.attempts.wait(10), "the session never tried its front"
        expected_md, expected_td = _md_answers(real_md, openctp.mdapi), _td_answers(real_td, openctp.tdapi)
        assert expected_md["ReqUserLogin"] == -1 and expected_td["GetTradingDay"] == "19800100"
        for md, td, kind in ((session_md, session_td, backends.SessionBackend), (bridge_md, bridge_td, tcp.Bridge)):
            assert type(md._backend) is kind and type(td._backend) is kind
            assert not md._backend.connected and not td._backend.connected
            assert _md_answers(md, mdapi) == expected_md
            assert _td_answers(td, tdapi) == expected_td
    finally:
        _release(session_md, session_td, bridge_md, bridge_td, real_md, real_td)


_AFTER_RELEASE: list[tuple[str, Callable[[Any], Any]]] = [
    ("ReqUserLogin", lambda api: api.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 1)),
    ("GetTradingDay", lambda api: api.GetTradingDay()),
    ("RegisterFront", lambda api: api.RegisterFront("sim://")),
    ("Init", lambda api: api.Init()),
]


@pytest.mark.parametrize("front", [None, f"sim://?start={FRIDAY_MORNING}", "tcp://127.0.0.1:10131"])
@pytest.mark.parametrize("name, call", _AFTER_RELEASE)
def test_after_release_every_backend_refuses_use_and_join_returns(front, name, call, flow_dir, monkeypatch, openctp):
    # The CTP library crashes when a released object is used; ctpshim raises instead, on every backend.
    stand_ins = {"mdapi": StandIn(openctp.mdapi, "mdapi"), "tdapi": StandIn(openctp.tdapi, "tdapi")}
    monkeypatch.setattr(tcp, "load_openctp", lambda flavour: stand_ins[flavour])
    api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(flow_dir)
    if front is not None:
        api.RegisterFront(front)
        api.Init()
    api.Release()
    with pytest.raises(RuntimeError, match=f"{name}: this API object was released"):
        call(api)
    assert api.Join() == 1
    api.Release()
    if front is not None and front.startswith("tcp"):
        assert ("Release",) in stand_ins["mdapi"].calls


def test_the_backend_is_chosen_by_the_schemes_pass_through(flow_dir, openctp, monkeypatch):
    monkeypatch.setattr(tcp, "load_openctp", lambda flavour: StandIn(getattr(openctp, flavour), flavour))

    def context(front: str) -> backends.BackendContext:
        return backends.BackendContext(
            name="t", flavour="mdapi", module=mdapi, dispatcher=Dispatcher("t-callbacks", "CThostFtdcMdSpi"),
            flow_path=flow_dir, create_args=(), fronts=[front], name_servers=[], setup=[],
            responder=mdapi.CThostFtdcMdApi._responder(mdapi),
        )

    assert type(backends.open_backend(context("sim://"))) is backends.SessionBackend
    assert type(backends.open_backend(context("tcp://127.0.0.1:10131"))) is tcp.Bridge
    assert type(backends.open_backend(context("ssl://127.0.0.1:443"))) is tcp.Bridge


def test_the_bridge_never_calls_a_real_api_that_is_not_running(flow_dir, openctp, monkeypatch):
    # Another thread may call between Init choosing the bridge and starting it, or race Release:
    # the CTP library would crash on a released API, so the bridge answers as if not connected.
    stand_in = StandIn(openctp.mdapi, "mdapi")
    monkeypatch.setattr(tcp, "load_openctp", lambda flavour: stand_in)
    bridge = tcp.Bridge(backends.BackendContext(
        name="t", flavour="mdapi", module=mdapi, dispatcher=Dispatcher("t-callbacks", "CThostFtdcMdSpi"),
        flow_path=flow_dir, create_args=(), fronts=["tcp://127.0.0.1:10131"], name_servers=[], setup=[],
    ))
    login = mdapi.CThostFtdcReqUserLoginField()

    def answers() -> tuple[Any, ...]:
        info = tdapi.CThostFtdcFrontInfoField()
        bridge.front_info(info)
        return (bridge.request("ReqUserLogin", login, 1), bridge.subscribe("SubscribeMarketData", ["rb2701"]),
                bridge.trading_day(), info.FrontAddr, bridge.connected)

    assert answers() == (-1, -1, "19800100", "", False)
    bridge.start()
    assert bridge.request("ReqUserLogin", login, 2) == 0
    bridge.close()
    assert answers() == (-1, -1, "19800100", "", False)
    names = [call[0] for call in stand_in.calls]
    assert names.count("ReqUserLogin") == 1 and names[-1] == "Release"


def test_a_backend_missing_a_hook_cannot_be_made():
    class Partial(backends.Backend):
        @property
        def connected(self) -> bool:
            return False

        def start(self) -> None:
            pass

    with pytest.raises(TypeError, match="abstract"):
        Partial()  # type: ignore[abstract]


def test_a_session_front_answers_on_the_dispatcher_thread_in_order(make_md):
    api, spi = make_md(f"sim://?start={FRIDAY_MORNING}&instruments=rb2701", subscribe=["rb2701"])
    wait_for(lambda: spi.ticks, what="a tick")
    names = spi.names()
    assert names[:3] == ["OnFrontConnected", "OnRspUserLogin", "OnRspSubMarketData"]
    assert {thread for _, _, thread in spi.events} == {api._dispatcher.name}
    assert api.GetTradingDay() == spi.events[1][1][0].TradingDay


class _WatchedSim(SimAdapter):
    """sim:// that notes the thread of every call the facade's answers depend on."""

    threads: list[tuple[str, str]] = []

    def trading_day(self) -> str | None:
        _WatchedSim.threads.append(("trading_day", threading.current_thread().name))
        return super().trading_day()

    def instruments(self) -> list[Any]:
        _WatchedSim.threads.append(("instruments", threading.current_thread().name))
        return super().instruments()


@pytest.fixture
def watched() -> Iterator[str]:
    _WatchedSim.threads = []
    registry.register_adapter("watchedsim", _WatchedSim)
    yield f"watchedsim://?start={FRIDAY_MORNING}&instruments=rb2701,TA701"
    registry.unregister_adapter("watchedsim")


def test_logins_and_instrument_queries_run_no_adapter_code_on_the_callers_thread(make_md, make_td, watched):
    md, md_spi = make_md(watched, subscribe=["rb2701"])
    spi = RecordingTraderSpi()
    td = make_td(spi, watched)
    wait_for(lambda: spi.get("OnFrontConnected") and md_spi.ticks, what="both APIs connected")
    assert td.ReqUserLogin(tdapi.CThostFtdcReqUserLoginField(), 1) == 0
    assert td.ReqQryInstrument(tdapi.CThostFtdcQryInstrumentField(), 2) == 0
    wait_for(lambda: any(args[3] for args in spi.get("OnRspQryInstrument")), what="the last instrument")
    listed = [args[0].InstrumentID for args in spi.get("OnRspQryInstrument")]
    assert {"rb2701", "TA701"} <= set(listed)
    day = spi.get("OnRspUserLogin")[0][0].TradingDay
    assert td.GetTradingDay() == md.GetTradingDay() == day
    calls = list(_WatchedSim.threads)
    assert {name for name, _ in calls} == {"trading_day", "instruments"}
    assert {thread for _, thread in calls} == {"ctpshim-io"}, calls


def test_front_info_shows_the_connected_front_cut_to_what_front_addr_holds(make_td):
    front = (f"sim://?start={FRIDAY_MORNING}&instruments=rb2701,TA701,au2612,cu2612,IF2612,ag2612,sc2612"
             "&seed=12345&speed=1")
    assert len(front) > 100
    spi = RecordingTraderSpi()
    api = make_td(spi, front)
    wait_for(lambda: spi.get("OnFrontConnected"))
    info = tdapi.CThostFtdcFrontInfoField()
    api.GetFrontInfo(info)
    assert info.FrontAddr == front[:100] and (info.QryFreq, info.FTDPkgFreq) == (0, 0)


def test_release_racing_init_leaves_no_session_running(flow_dir):
    from ctpshim.runtime import hub

    front = f"sim://?start={FRIDAY_MORNING}&instruments=rb2701&seed=77"
    for number in range(20):
        api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(flow_dir + f"race{number}_")
        api.RegisterFront(front)
        both = threading.Barrier(2)

        def init(api: Any = api, both: threading.Barrier = both) -> None:
            both.wait(5)
            try:
                api.Init()
            except RuntimeError:  # released first: "this API object was released"
                pass

        starter = threading.Thread(target=init)
        starter.start()
        both.wait(5)
        api.Release()
        starter.join(10)
        assert not starter.is_alive() and api.Join() == 1
    key = hub.market_key(front)
    wait_for(lambda: key not in {market.key for market in hub.markets()}, what="the market to close")
