"""ctpshim://: unmodified md and td programs moved to a `ctpshim serve` server by the front address
alone, against a real Server on loopback ports."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import socket
import threading
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from ctpshim import mdapi, tdapi
from ctpshim.adapters.ctpshim import CtpshimAdapter, ServerRefused
from ctpshim.errors import FrontAddressError
from ctpshim.fronts import registry
from ctpshim.server.server import Server
from ctpshim.testing import AdapterConformance
from tests.conftest import wait_for
from tests.server.conftest import make_settings

BROKER, USER = "9999", "000001"
WAIT = 15.0
REPO = Path(__file__).resolve().parents[2]


def sim_front(tmp_path: Path, speed: str = "1") -> str:
    seed = zlib.crc32(str(tmp_path).encode()) % 100000
    return ("sim://?start=2026-11-20T09:35&instruments=rb2701,m2701&price=rb2701:3100"
            f"&speed={speed}&seed={seed}&trader.db={tmp_path / 'accounts.sqlite'}&trader.flow_control=false")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``serve(*sources, **settings)``: a started Server (no HTTP unless asked), stopped afterwards."""
    made: list[Server] = []

    def make(*sources: Any, **overrides: Any) -> Server:
        overrides.setdefault("http", None)
        server = Server(make_settings(sources, tmp_path / f"serve{len(made)}", **overrides))
        made.append(server)
        server.start()
        return server

    yield make
    for server in reversed(made):
        server.stop(5.0)


class ServeProcess:
    """``ctpshim serve`` in a process of its own on a fixed loopback port: killable, restartable."""

    def __init__(self, front: str, home: Path, *extra: str) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.args = [sys.executable, "-m", "ctpshim", "serve", f"main={front}", "--listen", f"127.0.0.1:{self.port}",
                     "--http", "off", "--status", "off", "--home", str(home), *extra]
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        env={**os.environ, "PYTHONPATH": str(REPO)})
        process = self.process

        def listening_or_ended() -> bool:
            if process.poll() is not None:
                return True
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", self.port)) == 0

        wait_for(listening_or_ended, 30, "ctpshim serve to listen")
        if process.poll() is not None:
            raise AssertionError(f"ctpshim serve ended: {process.stderr.read().decode()[-2000:]}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    @property
    def address(self) -> str:
        return f"ctpshim://127.0.0.1:{self.port}"


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    made: list[ServeProcess] = []

    def make(front: str, *extra: str) -> ServeProcess:
        made.append(ServeProcess(front, tmp_path / f"home{len(made)}", *extra))
        return made[-1]

    yield make
    for process in made:
        process.kill()


def address(server: Server, path: str = "", **settings: str) -> str:
    host, port = server.binary_address
    query = "&".join(f"{k}={v}" for k, v in settings.items())
    return f"ctpshim://{host}:{port}{path}" + (f"?{query}" if query else "")


# -- the address --------------------------------------------------------------------------------


@pytest.mark.parametrize("front, words", [
    ("ctpshim://", "needs the server's host and port"),
    ("ctpshim://127.0.0.1", "has no port"),
    ("ctpshim://127.0.0.1:7780/bad name", "is not a source name"),
    ("ctpshim://127.0.0.1:7780?tokn=x", "unknown setting 'tokn'"),
    ("ctpshim://127.0.0.1:7780?heartbeat=-1", "heartbeat='-1' is not valid"),
])
def test_bad_addresses_are_refused_at_registerfront_naming_the_bad_part(front, words, flow_dir):
    api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(flow_dir)
    try:
        with pytest.raises(FrontAddressError, match=words.replace("(", r"\(").replace("'", "'")):
            api.RegisterFront(front)
    finally:
        api.Release()


def test_the_scheme_is_registered_with_its_capabilities():
    cls = registry.adapter_class("ctpshim", "ctpshim://127.0.0.1:7780")
    assert cls is CtpshimAdapter
    assert cls.capabilities.remote_trader and cls.capabilities.has_instruments and cls.capabilities.depth_levels == 5


# -- market data --------------------------------------------------------------------------------


def md_run(make_md: Callable[..., Any], front: str, ticks: int = 3) -> list[str]:
    api, spi = make_md(front, subscribe=["rb2701"])
    wait_for(lambda: len(spi.ticks) >= ticks, WAIT, f"{ticks} ticks from {front}")
    api.Release()
    names = []
    for name in spi.names():
        if not names or names[-1] != name or name != "OnRtnDepthMarketData":
            names.append(name)
    return names


def test_an_md_program_gets_the_same_callbacks_as_on_sim_directly(serve, make_md, tmp_path):
    front = sim_front(tmp_path)
    server = serve(front)
    direct = md_run(make_md, front)
    remote = md_run(make_md, address(server))
    assert remote == direct == ["OnFrontConnected", "OnRspUserLogin", "OnRspSubMarketData", "OnRtnDepthMarketData"]


def test_ticks_carry_the_sources_values_and_unsubscribe_stops_them(serve, make_md, tmp_path):
    server = serve(sim_front(tmp_path))
    api, spi = make_md(address(server), subscribe=["rb2701", "m2701"])
    wait_for(lambda: {t.InstrumentID for t in spi.ticks} == {"rb2701", "m2701"}, WAIT, "ticks of both")
    tick = [t for t in spi.ticks if t.InstrumentID == "rb2701"][-1]
    assert type(tick) is mdapi.CThostFtdcDepthMarketDataField
    assert tick.ExchangeID == "SHFE" and tick.AskPrice5 > tick.AskPrice1 > tick.BidPrice1 > tick.BidPrice5 and len(tick.TradingDay) == 8 and tick.LastPrice > 0
    assert api.GetTradingDay() == tick.TradingDay
    assert api.UnSubscribeMarketData([b"m2701"], 1) == 0
    wait_for(lambda: "OnRspUnSubMarketData" in spi.names(), WAIT, "OnRspUnSubMarketData")
    with spi.lock:
        seen = len(spi.ticks)
    wait_for(lambda: len(spi.ticks) >= seen + 4, WAIT, "more rb2701 ticks")
    with spi.lock:
        assert all(t.InstrumentID == "rb2701" for t in spi.ticks[seen + 1:])


def test_subscriptions_over_the_servers_control_rate_are_retried_not_lost(serve, make_md, tmp_path):
    server = serve(sim_front(tmp_path), limits={"control_rate": 5.0, "control_burst": 2})
    api, spi = make_md(address(server))
    wait_for(lambda: "OnRspUserLogin" in spi.names(), WAIT, "login")
    for instrument in (b"rb2701", b"rb2702", b"rb2703", b"rb2704", b"rb2705", b"m2701"):
        assert api.SubscribeMarketData([instrument], 1) == 0
    wait_for(lambda: {t.InstrumentID for t in spi.ticks} >= {"rb2701", "m2701"}, WAIT, "ticks of the first and last")
    assert "OnFrontDisconnected" not in spi.names()


def test_a_subscription_past_the_servers_limit_is_logged_naming_it(serve, make_md, tmp_path, caplog):
    server = serve(sim_front(tmp_path), limits={"max_subscriptions": 1})
    caplog.set_level(logging.WARNING, "ctpshim")
    api, spi = make_md(address(server), subscribe=["rb2701", "m2701"])
    wait_for(lambda: "6000" in caplog.text, WAIT, "the refusal in the log")
    assert "m2701" in caplog.text and "sub too many insts" in caplog.text
    wait_for(lambda: spi.ticks, WAIT, "ticks of the first")
    assert {t.InstrumentID for t in spi.ticks} == {"rb2701"}


def test_two_md_programs_in_one_process_share_one_connection(serve, make_md, tmp_path):
    server = serve(sim_front(tmp_path))
    front = address(server)
    (_, first), (_, second) = make_md(front, subscribe=["rb2701"]), make_md(front, subscribe=["rb2701"])
    wait_for(lambda: first.ticks and second.ticks, WAIT, "ticks in both")
    binary = [c for c in server.clients if c.protocol == "binary"]
    assert len(binary) == 1


def test_the_server_stopped_and_restarted_gives_a_disconnect_then_connect_login_and_ticks(
        serve, make_md, tmp_path, fast_reconnect):
    front = sim_front(tmp_path)
    server = serve(front)
    port = server.binary_address[1]
    api, spi = make_md(address(server), subscribe=["rb2701"])
    wait_for(lambda: spi.ticks, WAIT, "ticks before the restart")
    server.stop(5.0)
    wait_for(lambda: "OnFrontDisconnected" in spi.names(), WAIT, "OnFrontDisconnected")
    reason = [e[1][0] for e in spi.events if e[0] == "OnFrontDisconnected"][0]
    assert reason in (0x1001, 0x2001)
    with spi.lock:
        before = len(spi.ticks)
    serve(front, listen=("127.0.0.1", port))
    wait_for(lambda: spi.names().count("OnFrontConnected") == 2, WAIT, "OnFrontConnected again")
    wait_for(lambda: spi.names().count("OnRspUserLogin") == 2, WAIT, "the new login")
    wait_for(lambda: len(spi.ticks) > before, WAIT, "ticks after the restart (subscriptions restored)")
    names = spi.names()
    assert names.index("OnFrontDisconnected") < len(names) - 1 - names[::-1].index("OnFrontConnected")


def test_the_server_process_killed_and_started_again_md_and_td_programs_carry_on(
        serve_process, make_md, make_td, tmp_path, fast_reconnect):
    served = serve_process(sim_front(tmp_path))
    api, spi = make_md(served.address, subscribe=["rb2701"])
    trader = TdProgram()
    make_td(trader, served.address)
    wait_for(lambda: spi.ticks, WAIT, "ticks before the kill")
    trader.wait("OnRspUserLogin")
    served.kill()  # SIGKILL: no BYE, the sockets are reset by the kernel
    wait_for(lambda: "OnFrontDisconnected" in spi.names(), WAIT, "md OnFrontDisconnected")
    assert [e[1][0] for e in spi.events if e[0] == "OnFrontDisconnected"] == [0x1001]
    assert trader.wait("OnFrontDisconnected")[0] == (0x1001,)
    with spi.lock:
        before = len(spi.ticks)
    served.start()
    wait_for(lambda: spi.names().count("OnRspUserLogin") == 2, WAIT, "the md program's new login")
    wait_for(lambda: len(spi.ticks) > before, WAIT, "ticks after the restart (subscriptions restored)")
    trader.wait("OnRspUserLogin", 2)
    assert trader.names().count("OnFrontConnected") == 2


def test_a_bad_token_is_refused_with_a_clear_error(serve, make_md, tmp_path, caplog):
    server = serve(sim_front(tmp_path), tokens=["s3cret-token:alice"])
    caplog.set_level(logging.WARNING, "ctpshim")
    api, spi = make_md(address(server, token="wrong"), subscribe=["rb2701"])
    wait_for(lambda: "refused" in caplog.text, WAIT, "the refusal in the log")
    assert "bad token" in caplog.text
    assert "OnFrontConnected" not in spi.names()
    # The adapter alone says the same, for `ctpshim ping`.
    import asyncio

    adapter = CtpshimAdapter.from_url(address(server, token="wrong"))
    with pytest.raises(ServerRefused, match="bad token"):
        asyncio.run(adapter.connect())
    # The right token works.
    api, spi = make_md(address(server, token="s3cret-token"), subscribe=["rb2701"])
    wait_for(lambda: spi.ticks, WAIT, "ticks with the right token")


def test_an_unknown_source_is_refused_naming_the_valid_ones(serve, make_md, tmp_path, caplog):
    server = serve(f"main={sim_front(tmp_path)}")
    caplog.set_level(logging.WARNING, "ctpshim")
    api, spi = make_md(address(server, "/nope"), subscribe=["rb2701"])
    wait_for(lambda: "refused" in caplog.text, WAIT, "the refusal in the log")
    assert "nope" in caplog.text and "main" in caplog.text
    api, spi = make_md(address(server, "/main"), subscribe=["rb2701"])
    wait_for(lambda: spi.ticks, WAIT, "ticks of the named source")


def test_probe_answers_a_round_trip_and_what_the_server_said(serve, tmp_path):
    import asyncio

    server = serve(sim_front(tmp_path))

    async def probe() -> dict[str, Any]:
        adapter = CtpshimAdapter.from_url(address(server))
        await adapter.connect()
        try:
            return await adapter.probe()
        finally:
            await adapter.close()

    details = asyncio.run(probe())
    json.dumps(details)
    assert details["round_trip_ms"] >= 0 and details["protocol_version"] == 1 and len(details["trading_day"]) == 8


# -- trading --------------------------------------------------------------------------------------


class TdProgram(tdapi.CThostFtdcTraderSpi):
    """An ordinary CTP trader program: login, confirm, one crossing buy, an account query."""

    def __init__(self) -> None:
        super().__init__()
        self.api: Any = None
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        self.cond = threading.Condition()
        self.request = 0

    def __getattribute__(self, name: str) -> Any:
        if name.startswith(("OnRsp", "OnErrRtn", "OnRtn", "OnFront")) and name != "OnFrontConnected":
            def record(*args: Any) -> None:
                with object.__getattribute__(self, "cond"):
                    object.__getattribute__(self, "events").append((name, args))
                    object.__getattribute__(self, "cond").notify_all()
            return record
        return object.__getattribute__(self, name)

    def OnFrontConnected(self) -> None:
        with self.cond:
            self.events.append(("OnFrontConnected", ()))
            self.cond.notify_all()
        field = tdapi.CThostFtdcReqUserLoginField()
        field.BrokerID, field.UserID = BROKER, USER
        assert self.api.ReqUserLogin(field, self.next_id()) == 0  # from the callback thread

    def next_id(self) -> int:
        self.request += 1
        return self.request

    def names(self) -> list[str]:
        with self.cond:
            return [n for n, _ in self.events]

    def wait(self, name: str, count: int = 1) -> list[tuple[Any, ...]]:
        with self.cond:
            if not self.cond.wait_for(lambda: sum(n == name for n, _ in self.events) >= count, WAIT):
                raise AssertionError(f"timed out waiting for {count} {name}; got {[n for n, _ in self.events]}")
            return [a for n, a in self.events if n == name]

    def trade(self) -> Any:
        self.wait("OnRspUserLogin")
        confirm = tdapi.CThostFtdcSettlementInfoConfirmField()
        confirm.BrokerID, confirm.InvestorID = BROKER, USER
        assert self.api.ReqSettlementInfoConfirm(confirm, self.next_id()) == 0
        self.wait("OnRspSettlementInfoConfirm")
        order = tdapi.CThostFtdcInputOrderField()
        order.BrokerID, order.InvestorID, order.UserID = BROKER, USER, USER
        order.InstrumentID, order.ExchangeID, order.OrderRef = "rb2701", "SHFE", "1"
        order.OrderPriceType, order.Direction, order.CombOffsetFlag, order.CombHedgeFlag = "2", "0", "0", "1"
        order.LimitPrice, order.VolumeTotalOriginal = 3300.0, 1
        order.TimeCondition, order.VolumeCondition, order.ContingentCondition = "3", "1", "1"
        order.ForceCloseReason = "0"
        assert self.api.ReqOrderInsert(order, self.next_id()) == 0
        self.wait("OnRtnTrade")
        return self.account()

    def account(self) -> Any:
        count = len([n for n in self.names() if n == "OnRspQryTradingAccount"])
        query = tdapi.CThostFtdcQryTradingAccountField()
        query.BrokerID, query.InvestorID = BROKER, USER
        assert self.api.ReqQryTradingAccount(query, self.next_id()) == 0
        return self.wait("OnRspQryTradingAccount", count + 1)[-1][0]


def td_names(program: TdProgram) -> list[str]:
    """The callbacks in order, repeats of one report collapsed (how many OnRtnOrder a fill gives
    is the counter's business, not the transport's)."""
    names: list[str] = []
    for name in program.names():
        if not names or names[-1] != name:
            names.append(name)
    return names


def test_a_td_program_moved_to_the_server_gets_the_same_callbacks(serve, make_td, tmp_path):
    direct_front = sim_front(tmp_path / "direct")
    server = serve(sim_front(tmp_path / "served"))
    direct = TdProgram()
    make_td(direct, direct_front)
    direct_account = direct.trade()
    remote = TdProgram()
    api = make_td(remote, address(server))
    remote_account = remote.trade()
    assert td_names(remote) == td_names(direct), (td_names(remote), td_names(direct))
    assert td_names(direct)[:3] == ["OnFrontConnected", "OnRspUserLogin", "OnRspSettlementInfoConfirm"]
    assert {"OnRtnOrder", "OnRtnTrade", "OnRspQryTradingAccount"} <= set(td_names(direct)), td_names(direct)
    assert type(remote_account) is tdapi.CThostFtdcTradingAccountField
    assert remote_account.CurrMargin > 0 and remote_account.Available < 10_000_000
    assert len(api.GetTradingDay()) == 8 and api.GetTradingDay() != "19800100"
    info = tdapi.CThostFtdcFrontInfoField()
    api.GetFrontInfo(info)
    assert info.FrontAddr.startswith("ctpshim://")
    del direct_account


def test_releasing_a_td_program_closes_its_connection_and_the_servers_trader(serve, tmp_path, flow_dir):
    server = serve(sim_front(tmp_path))
    program = TdProgram()
    api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(flow_dir + "released_")
    program.api = api
    api.RegisterSpi(program)
    api.RegisterFront(address(server))
    api.Init()
    program.wait("OnRspUserLogin")
    assert len(server.clients) == 1
    api.Release()
    wait_for(lambda: not server.clients, what="the server to see the released trader's connection close")


def test_the_trader_reconnects_after_the_server_restarts(serve, make_td, tmp_path, fast_reconnect):
    front = sim_front(tmp_path)
    server = serve(front)
    port = server.binary_address[1]
    program = TdProgram()
    make_td(program, address(server))
    program.wait("OnRspUserLogin")
    server.stop(5.0)
    program.wait("OnFrontDisconnected")
    assert program.events[[n for n, _ in program.events].index("OnFrontDisconnected")][1][0] in (0x1001, 0x2001)
    serve(front, listen=("127.0.0.1", port))
    program.wait("OnFrontConnected", 2)
    program.wait("OnRspUserLogin", 2)  # it logged in again from OnFrontConnected


def test_a_bad_token_refuses_the_trader_with_a_clear_error(serve, make_td, tmp_path, caplog):
    server = serve(sim_front(tmp_path), tokens=["s3cret-token:alice"])
    caplog.set_level(logging.WARNING, "ctpshim")
    program = TdProgram()
    api = make_td(program, address(server, token="nope"))
    wait_for(lambda: "bad token" in caplog.text, WAIT, "the refusal in the log")
    assert "OnFrontConnected" not in program.names()
    assert api.ReqUserLogin(tdapi.CThostFtdcReqUserLoginField(), 1) == -1


CLIENT = r"""
import json, os, sys, threading
sys.path.insert(0, {repo!r})
from ctpshim import tdapi
from tests.adapters.test_ctpshim import TdProgram
program = TdProgram()
api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi({flow!r})
program.api = api
api.RegisterSpi(program)
api.SubscribePrivateTopic(tdapi.THOST_TERT_QUICK)
api.RegisterFront({front!r})
api.Init()
account = program.trade() if {trade!r} else (program.wait("OnRspUserLogin"), program.account())[1]
print(json.dumps({{"CurrMargin": account.CurrMargin, "Available": account.Available}}))
api.Release()
"""


def run_client(front: str, flow: Path, trade: bool) -> dict[str, float]:
    flow.parent.mkdir(parents=True, exist_ok=True)
    script = CLIENT.format(repo=str(REPO), flow=str(flow), front=front, trade=trade)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_two_client_processes_share_one_account_on_the_server(serve, tmp_path):
    server = serve(sim_front(tmp_path))
    front = address(server)
    after_trade = run_client(front, tmp_path / "one" / "td_", trade=True)
    seen_by_other = run_client(front, tmp_path / "two" / "td_", trade=False)
    assert after_trade["CurrMargin"] > 0
    assert seen_by_other == after_trade


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- the conformance suite ------------------------------------------------------------------------


class TestCtpshimConformance(AdapterConformance):
    adapter_class = CtpshimAdapter
    instrument = "rb2701"
    other_instrument = "m2701"
    bad_fronts = ("ctpshim://127.0.0.1", "ctpshim://127.0.0.1:7780/no such source")
    unreachable_front = f"ctpshim://127.0.0.1:{_closed_port()}?connect_timeout=1"

    @pytest.fixture
    def front(self, serve_process, tmp_path):
        # In a process of its own: the server's own warnings (its sim's about an unknown ID) stay there.
        return serve_process(sim_front(tmp_path, speed="20")).address
