"""ServerTrader: a remote client's trader API in the server, on the source's simulated counter."""

from __future__ import annotations

import threading
import zlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ctpshim import tdapi
from ctpshim.server.trading import ServerTrader, flow_directory

BROKER, USER = "9999", "000001"
WAIT = 10.0


class FakeServer:
    """What ServerTrader reads of a Server: feed(source).url/.name and home."""

    def __init__(self, home: Path, sources: dict[str, str]) -> None:
        self.home = home
        self.sources = sources

    def feed(self, source: str | None) -> Any:
        name = source or next(iter(self.sources))
        if name not in self.sources:
            raise KeyError(f"no source {name!r}; valid: {', '.join(self.sources)}")
        return SimpleNamespace(name=name, url=self.sources[name])


class Forwarded:
    """Records forward(name, args) calls with the thread each came on; waits with a timeout."""

    def __init__(self) -> None:
        self.events: list[tuple[str, tuple[Any, ...], str]] = []
        self.cond = threading.Condition()

    def __call__(self, name: str, args: tuple[Any, ...]) -> None:
        with self.cond:
            self.events.append((name, args, threading.current_thread().name))
            self.cond.notify_all()

    def all(self, name: str) -> list[tuple[Any, ...]]:
        with self.cond:
            return [a for n, a, _ in self.events if n == name]

    def wait(self, name: str, count: int = 1, last_of: int | None = None) -> list[tuple[Any, ...]]:
        def found() -> bool:
            got = [a for n, a, _ in self.events if n == name]
            if last_of is not None:
                return any(a[2] == last_of and a[3] for a in got)
            return len(got) >= count
        with self.cond:
            if not self.cond.wait_for(found, WAIT):
                raise AssertionError(f"timed out waiting for {name}; got {[n for n, _, _ in self.events]}")
        return self.all(name)


def sim_front(tmp_path: Path) -> str:
    seed = zlib.crc32(str(tmp_path).encode())
    return ("sim://?start=2026-11-20T09:35&instruments=rb2701&price=rb2701:3100&speed=1"
            f"&seed={seed}&trader.db={tmp_path / 'accounts.sqlite'}&trader.flow_control=false")


class Client:
    def __init__(self, server: FakeServer, name: str, resume: int = tdapi.THOST_TERT_QUICK) -> None:
        self.forwarded = Forwarded()
        self.trader = ServerTrader(server, None, name, self.forwarded)  # type: ignore[arg-type]
        self.trader.start(resume, resume)
        self.forwarded.wait("OnFrontConnected")
        self.request = 0

    def send(self, method: str, field: Any) -> int:
        self.request += 1
        assert self.trader.call(method, field, self.request).result(WAIT) == 0
        return self.request

    def login(self) -> Any:
        field = tdapi.CThostFtdcReqUserLoginField()
        field.BrokerID, field.UserID = BROKER, USER
        self.send("ReqUserLogin", field)
        return self.forwarded.wait("OnRspUserLogin")[-1]

    def confirm(self) -> None:
        field = tdapi.CThostFtdcSettlementInfoConfirmField()
        field.BrokerID, field.InvestorID = BROKER, USER
        self.send("ReqSettlementInfoConfirm", field)
        self.forwarded.wait("OnRspSettlementInfoConfirm")

    def buy(self, price: float, ref: str) -> int:
        field = tdapi.CThostFtdcInputOrderField()
        field.BrokerID, field.InvestorID, field.UserID = BROKER, USER, USER
        field.InstrumentID, field.ExchangeID, field.OrderRef = "rb2701", "SHFE", ref
        field.OrderPriceType, field.Direction, field.CombOffsetFlag, field.CombHedgeFlag = "2", "0", "0", "1"
        field.LimitPrice, field.VolumeTotalOriginal = price, 1
        field.TimeCondition, field.VolumeCondition, field.ContingentCondition = "3", "1", "1"
        field.ForceCloseReason = "0"
        return self.send("ReqOrderInsert", field)

    def account(self) -> Any:
        field = tdapi.CThostFtdcQryTradingAccountField()
        field.BrokerID, field.InvestorID = BROKER, USER
        request_id = self.send("ReqQryTradingAccount", field)
        return [a for a in self.forwarded.wait("OnRspQryTradingAccount", last_of=request_id)
                if a[2] == request_id][0][0]


@pytest.fixture
def clients(tmp_path: Path):
    server = FakeServer(tmp_path / "home", {"sim": sim_front(tmp_path)})
    made: list[Client] = []

    def make(name: str) -> Client:
        client = Client(server, name)
        made.append(client)
        return client

    yield make
    for client in made:
        client.trader.close()


def test_login_order_fill_and_query_are_forwarded_on_the_apis_dispatcher(clients, tmp_path):
    client = clients("alice")
    login, info, _, last = client.login()
    assert info is None or info.ErrorID == 0
    assert login.BrokerID == BROKER and login.UserID == USER and last
    assert isinstance(login, tdapi.CThostFtdcRspUserLoginField)
    client.confirm()
    client.buy(3300.0, "1")  # above the market: fills at the ask
    client.forwarded.wait("OnRtnTrade")
    orders = [o[0] for o in client.forwarded.all("OnRtnOrder")]
    assert orders and orders[-1].OrderStatus == "0" and orders[-1].OrderRef == "1"
    trade = client.forwarded.all("OnRtnTrade")[0][0]
    assert trade.InstrumentID == "rb2701" and trade.Volume == 1 and trade.Price < 3300.0
    account = client.account()
    assert account.CurrMargin > 0 and account.Available < 10_000_000
    # Every callback came on one thread: the API's dispatcher, not the caller's nor the worker's.
    threads = {t for _, _, t in client.forwarded.events}
    assert len(threads) == 1 and threads.pop().endswith("-callbacks")
    assert (tmp_path / "home" / "flow" / "alice").is_dir()


def test_two_traders_on_one_account_see_one_balance(clients):
    first, second = clients("alice"), clients("bob")
    first.login()
    second.login()
    first.confirm()
    first.buy(3300.0, "1")
    first.forwarded.wait("OnRtnTrade")
    second.forwarded.wait("OnRtnTrade")  # the private report reaches every session of the account
    a, b = first.account(), second.account()
    assert a.Available == b.Available and a.CurrMargin == b.CurrMargin > 0


def test_calls_run_in_order_and_bad_ones_are_refused_clearly(clients, tmp_path):
    client = clients("carol")
    with pytest.raises(ValueError, match="'Release' is not a trader API request"):
        client.trader.call("Release")
    with pytest.raises(ValueError, match="'Join'"):
        client.trader.call("Join")
    bad = client.trader.call("ReqUserLogin", "not a field", 1)
    with pytest.raises(TypeError):
        bad.result(WAIT)
    # Queries with the counter's flow control off all go out, answered in the order they were called.
    field = tdapi.CThostFtdcQryInstrumentField()
    futures = [client.trader.call("ReqQryInstrument", field, 100 + i) for i in range(5)]
    assert [f.result(WAIT) for f in futures] == [0] * 5  # before login the facade still sends (CTP answers)


def test_close_answers_later_calls_with_minus_one_and_stops_forwarding(clients):
    client = clients("dave")
    client.trader.close()
    client.trader.close()  # twice is harmless
    assert client.trader.call("ReqUserLogin", tdapi.CThostFtdcReqUserLoginField(), 1).result(WAIT) == -1


def test_an_unknown_source_and_a_bad_resume_mode_are_named(tmp_path):
    server = FakeServer(tmp_path, {"sim": "sim://"})
    with pytest.raises(KeyError, match="valid: sim"):
        ServerTrader(server, "nope", "x", lambda n, a: None)  # type: ignore[arg-type]
    trader = ServerTrader(server, "sim", "x", lambda n, a: None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="private_resume=7"):
        trader.start(7, 0)
    trader.close()


def test_flow_directory_names_are_made_safe(tmp_path):
    assert flow_directory(tmp_path, "../../etc").startswith(str(tmp_path / "flow") + "/")
    assert flow_directory(tmp_path, "a/b") == str(tmp_path / "flow" / "a_b") + "/"


def test_a_server_trader_on_a_real_server_trades_on_its_source(serve_factory, tmp_path):
    server = serve_factory(f"main={sim_front(tmp_path)}", http=None)
    forwarded = Forwarded()
    trader = ServerTrader(server, "main", "erin", forwarded)
    try:
        trader.start(tdapi.THOST_TERT_QUICK, tdapi.THOST_TERT_QUICK)
        forwarded.wait("OnFrontConnected")
        field = tdapi.CThostFtdcReqUserLoginField()
        field.BrokerID, field.UserID = BROKER, USER
        assert trader.call("ReqUserLogin", field, 1).result(WAIT) == 0
        login = forwarded.wait("OnRspUserLogin")[0][0]
        assert login.UserID == USER and len(login.TradingDay) == 8
        assert (server.home / "flow" / "erin").is_dir()
    finally:
        trader.close()
