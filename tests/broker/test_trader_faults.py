"""Bad input and faults against the simulated counter, through the public API: each mistake gets
a clear answer at the earliest point, and nothing acknowledged to a program is lost.

* a bad ``trader.*`` setting: ``FrontAddressError`` at RegisterFront (and exit 2 from ``ctpshim run``);
* wrong argument types to ReqOrderInsert: openctp's TypeError;
* garbage in an order's fields: CTP error 15 through OnRspOrderInsert and OnErrRtnOrderInsert;
* a raising or slow Spi callback: every report still arrives, in order;
* a corrupt or locked trader.db: a clear error naming the file, and the file left as it was;
* kill -9 of a program while it is filled: every trade it was told of is in the database.
"""

from __future__ import annotations

import ast
import json
import math
import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from ctpshim import mdapi, tdapi
from ctpshim.errors import FrontAddressError

from ..conftest import FRIDAY_MORNING

ROOT = Path(__file__).parents[2]
BROKER, USER = "9999", "faults"
TIMEOUT = 15.0
SIM = f"sim://?start={FRIDAY_MORNING}&instruments=rb2701"


# -- settings ---------------------------------------------------------------------------------

@pytest.mark.parametrize("setting, words", [
    ("trader.balance=abc", ["trader.balance='abc'", "expected a number"]),
    ("trader.balance=-5", ["trader.balance='-5'", "expected a number"]),
    ("trader.partial=maybe", ["trader.partial='maybe'", "true or false"]),
    ("trader.queue=2", ["trader.queue='2'", "true or false"]),
    ("trader.rate_level=retail", ["trader.rate_level='retail'", "broker, exchange"]),
    ("trader.lockstep=sometimes", ["trader.lockstep='sometimes'", "auto, true or false"]),
    ("trader.hours=never", ["trader.hours='never'", "auto"]),
    ("trader.rates=/no/such/rates.csv", ["trader.rates='/no/such/rates.csv'", "no file"]),
    ("trader.balanse=1", ["unknown setting 'trader.balanse'", "trader.balance", "trader.db"]),
])
def test_a_bad_trader_setting_is_refused_at_register_front_naming_it_and_what_is_valid(setting, words, tmp_path):
    api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(str(tmp_path) + os.sep)
    try:
        with pytest.raises(FrontAddressError) as caught:
            api.RegisterFront(f"{SIM}&{setting}")
        message = str(caught.value)
        assert isinstance(caught.value, ValueError)
        for word in words:
            assert word in message, message
    finally:
        api.Release()


def test_a_bad_rates_file_is_refused_at_register_front_by_line_and_column(tmp_path):
    rates = tmp_path / "rates.csv"
    rates.write_text("ExchangeID,ProductID,level\nSHFE,rb,broker\n")
    api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(str(tmp_path) + os.sep)
    try:
        with pytest.raises(FrontAddressError) as caught:
            api.RegisterFront(f"{SIM}&trader.rates={rates}")
        assert str(rates) in str(caught.value)
    finally:
        api.Release()


def test_ctpshim_run_refuses_a_bad_trader_setting_before_the_program_runs(tmp_path):
    program = tmp_path / "never.py"
    program.write_text("print('the program ran')\n")
    environment = {k: v for k, v in os.environ.items() if k != "CTPSHIM_FRONT"}
    done = subprocess.run([sys.executable, "-m", "ctpshim", "run", "--front", f"{SIM}&trader.partial=maybe", str(program)],
                          capture_output=True, text=True, timeout=60, env=environment)
    assert done.returncode == 2 and "the program ran" not in done.stdout
    assert "trader.partial='maybe'" in done.stderr and "Traceback" not in done.stderr


# -- argument types -----------------------------------------------------------------------------

WRONG_CALLS = r"""
import json, os, sys
if sys.argv[1] == "openctp":
    from openctp_ctp import tdapi
else:
    from ctpshim import tdapi
api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(sys.argv[2])
calls = [
    lambda: api.ReqOrderInsert("InstrumentID=rb2701", 1),
    lambda: api.ReqOrderInsert(tdapi.CThostFtdcInputOrderField(), "1"),
    lambda: api.ReqOrderInsert(tdapi.CThostFtdcInputOrderActionField(), 1),
    lambda: api.ReqOrderInsert(tdapi.CThostFtdcInputOrderField(), 1.5),
    lambda: setattr(tdapi.CThostFtdcInputOrderField(), "LimitPrice", "3150"),
    lambda: setattr(tdapi.CThostFtdcInputOrderField(), "VolumeTotalOriginal", 1.5),
]
answers = []
for call in calls:
    try:
        call()
        answers.append(None)
    except TypeError as exc:
        answers.append(str(exc))
print(json.dumps(answers))
"""


def test_wrong_argument_types_to_req_order_insert_raise_openctps_type_error(openctp, tmp_path):
    # Each in a process of its own: the real openctp-ctp is a native library.
    answers = {}
    for name in ("openctp", "ctpshim"):
        done = subprocess.run([sys.executable, "-c", WRONG_CALLS, name, str(tmp_path) + os.sep + name],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        answers[name] = json.loads(done.stdout.strip().splitlines()[-1])
    assert None not in answers["openctp"] and None not in answers["ctpshim"]  # every call: a TypeError
    for theirs, ours in zip(answers["openctp"][:4], answers["ctpshim"][:4]):  # the ReqOrderInsert calls
        assert ours.startswith(theirs), (ours, theirs)  # SWIG's words first, then what to pass
    # None, which SWIG passes on as a NULL pointer (openctp-ctp 6.7.11 dies of a segmentation
    # fault), is a TypeError here: nothing may crash the interpreter.
    with pytest.raises(TypeError, match="argument 2 of type 'CThostFtdcInputOrderField \\*'"):
        tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(str(tmp_path) + os.sep + "none").ReqOrderInsert(None, 1)


# -- a logged-in program ----------------------------------------------------------------------

class Spi(tdapi.CThostFtdcTraderSpi):
    """Records every callback; logs in and confirms; ``hook`` runs inside OnRtnOrder (a fault)."""

    def __init__(self) -> None:
        super().__init__()
        self.api: Any = None
        self.cond = threading.Condition()
        self.events: list[tuple[str, tuple]] = []
        self.hook: Callable[[Any], None] | None = None
        self.login: Any = None

    def _add(self, name: str, *args: Any) -> None:
        with self.cond:
            self.events.append((name, args))
            self.cond.notify_all()

    def wait(self, condition: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not (value := condition()):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout} s waiting for {what}; got {self.names()}")
                self.cond.wait(left)
            return value

    def names(self) -> list[str]:
        return [e[0] for e in self.events]

    def get(self, name: str) -> list[tuple]:
        return [args for event, args in self.events if event == name]

    def OnFrontConnected(self) -> None:
        self._add("OnFrontConnected")
        req = tdapi.CThostFtdcReqUserLoginField()
        req.BrokerID, req.UserID, req.Password = BROKER, USER, "pw"
        self.api.ReqUserLogin(req, 1)

    def OnRspUserLogin(self, pRspUserLogin: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
        self.login = pRspUserLogin
        self._add("OnRspUserLogin", pRspUserLogin, pRspInfo)
        if pRspInfo is None or pRspInfo.ErrorID == 0:
            req = tdapi.CThostFtdcSettlementInfoConfirmField()
            req.BrokerID, req.InvestorID = BROKER, USER
            self.api.ReqSettlementInfoConfirm(req, 2)

    def OnRspSettlementInfoConfirm(self, *args: Any) -> None:
        self._add("OnRspSettlementInfoConfirm", *args)

    def OnRspOrderInsert(self, *args: Any) -> None:
        self._add("OnRspOrderInsert", *args)

    def OnErrRtnOrderInsert(self, *args: Any) -> None:
        self._add("OnErrRtnOrderInsert", *args)

    def OnRtnOrder(self, pOrder: Any) -> None:
        self._add("OnRtnOrder", pOrder.OrderRef.strip(), pOrder.OrderStatus, pOrder.OrderSubmitStatus, pOrder.OrderSysID,
                  pOrder.ExchangeID)
        if self.hook is not None:
            self.hook(pOrder)

    def OnRtnTrade(self, pTrade: Any) -> None:
        self._add("OnRtnTrade", pTrade.TradeID, pTrade.OrderRef.strip())

    def OnRspOrderAction(self, *args: Any) -> None:
        self._add("OnRspOrderAction", *args)

    def OnRspQryOrder(self, pOrder: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
        self._add("OnRspQryOrder", None if pOrder is None else (pOrder.OrderRef.strip(), pOrder.OrderStatus), bIsLast)

    def OnRspQryTrade(self, pTrade: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
        self._add("OnRspQryTrade", None if pTrade is None else pTrade.TradeID, bIsLast)


class Quotes(mdapi.CThostFtdcMdSpi):
    def __init__(self, instrument: str) -> None:
        super().__init__()
        self.api: Any = None
        self.instrument = instrument
        self.latest: Any = None
        self.ticked = threading.Event()

    def OnFrontConnected(self) -> None:
        self.api.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 1)

    def OnRspUserLogin(self, *args: Any) -> None:
        self.api.SubscribeMarketData([self.instrument.encode()], 1)

    def OnRtnDepthMarketData(self, pDepthMarketData: Any) -> None:
        self.latest = pDepthMarketData
        self.ticked.set()


@pytest.fixture
def trader(tmp_path):
    """A td API logged in and confirmed on sim://, an md API ticking rb2701: (td, spi, quotes)."""
    front = f"{SIM}&trader.db={tmp_path / 'trader.sqlite'}&trader.flow_control=false"
    spi, quotes = Spi(), Quotes("rb2701")
    td = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(str(tmp_path) + os.sep + "td_")
    md = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(str(tmp_path) + os.sep + "md_")
    spi.api, quotes.api = td, md
    td.RegisterSpi(spi)
    td.SubscribePrivateTopic(tdapi.THOST_TERT_QUICK)
    td.RegisterFront(front)
    md.RegisterSpi(quotes)
    md.RegisterFront(front)
    td.Init()
    md.Init()
    try:
        spi.wait(lambda: spi.get("OnRspSettlementInfoConfirm"), "login and confirmation")
        assert quotes.ticked.wait(TIMEOUT), "no rb2701 tick"
        yield td, spi, quotes
    finally:
        md.Release()
        td.Release()


def limit_order(ref: str, price: float, direction: str = tdapi.THOST_FTDC_D_Buy, volume: int = 1) -> Any:
    req = tdapi.CThostFtdcInputOrderField()
    req.BrokerID, req.InvestorID, req.UserID = BROKER, USER, USER
    req.InstrumentID, req.ExchangeID, req.OrderRef = "rb2701", "SHFE", ref
    req.Direction, req.CombOffsetFlag, req.CombHedgeFlag = direction, tdapi.THOST_FTDC_OF_Open, tdapi.THOST_FTDC_HF_Speculation
    req.OrderPriceType, req.LimitPrice, req.VolumeTotalOriginal, req.MinVolume = tdapi.THOST_FTDC_OPT_LimitPrice, price, volume, 1
    req.TimeCondition, req.VolumeCondition = tdapi.THOST_FTDC_TC_GFD, tdapi.THOST_FTDC_VC_AV
    req.ContingentCondition, req.ForceCloseReason = tdapi.THOST_FTDC_CC_Immediately, tdapi.THOST_FTDC_FCC_NotForceClose
    return req


GARBAGE = [
    ("Direction", "x"),
    ("CombOffsetFlag", "9"),
    ("CombHedgeFlag", "z"),
    ("OrderPriceType", "Q"),
    ("TimeCondition", "8"),
    ("VolumeCondition", "7"),
    ("ContingentCondition", "#"),
    ("VolumeTotalOriginal", 0),
    ("VolumeTotalOriginal", -3),
    ("LimitPrice", math.nan),
    ("LimitPrice", math.inf),
    ("LimitPrice", -3150.0),
]


def test_an_order_with_garbage_fields_gets_ctp_error_15_and_no_order_report(trader):
    td, spi, quotes = trader
    price = quotes.latest.BidPrice1
    for number, (member, value) in enumerate(GARBAGE, start=1):
        order = limit_order(str(number), price)
        setattr(order, member, value)
        assert td.ReqOrderInsert(order, 100 + number) == 0
    spi.wait(lambda: len(spi.get("OnErrRtnOrderInsert")) == len(GARBAGE), "every refusal")
    answers = {args[0].OrderRef: (args[1].ErrorID, args[2], args[3]) for args in spi.get("OnRspOrderInsert")}
    for number, (member, value) in enumerate(GARBAGE, start=1):
        assert answers[str(number)] == (15, 100 + number, True), (member, value, answers[str(number)])
    assert all(args[1].ErrorID == 15 and args[1].ErrorMsg.startswith("CTP:报单字段有误")
               for args in spi.get("OnErrRtnOrderInsert"))
    assert spi.get("OnRtnOrder") == []  # refused by CTP: never an order (SIM_TRADING.md 6.1)
    # The counter is still there: a good order after the garbage is accepted.
    assert td.ReqOrderInsert(limit_order(str(len(GARBAGE) + 1), quotes.latest.LowerLimitPrice + 1), 200) == 0
    spi.wait(lambda: any(a[1] == "3" for a in spi.get("OnRtnOrder")), "the good order queued")


def test_a_raising_and_slow_on_rtn_order_loses_no_report(trader):
    td, spi, quotes = trader
    calls = [0]

    def misbehave(order: Any) -> None:
        calls[0] += 1
        time.sleep(0.05)  # a slow program
        if calls[0] % 2:
            raise RuntimeError("a bug in the program's OnRtnOrder")

    spi.hook = misbehave
    low = quotes.latest.LowerLimitPrice + 1  # rests: far below the bid, inside the limits
    refs = ["1", "2", "3"]
    for ref in refs:
        assert td.ReqOrderInsert(limit_order(ref, low), int(ref)) == 0
    spi.wait(lambda: sum(1 for a in spi.get("OnRtnOrder") if a[1] == "3") == 3, "three orders queued", 30)
    queued = {a[0]: a for a in spi.get("OnRtnOrder") if a[1] == "3"}
    for ref in refs:
        action = tdapi.CThostFtdcInputOrderActionField()
        action.BrokerID, action.InvestorID, action.UserID = BROKER, USER, USER
        action.InstrumentID, action.ExchangeID, action.OrderSysID = "rb2701", queued[ref][4], queued[ref][3]
        action.ActionFlag = tdapi.THOST_FTDC_AF_Delete
        assert td.ReqOrderAction(action, 10 + int(ref)) == 0
    spi.wait(lambda: sum(1 for a in spi.get("OnRtnOrder") if a[1] == "5") == 3, "three cancels", 30)
    # Each order's reports, in SFIT's order (SIM_TRADING.md 1.4, accepted then cancelled):
    # Unknown -> 未成交 (accepted) -> [cancel] 未成交 CancelSubmitted -> 已撤单
    for ref in refs:
        seen = [(a[1], a[2]) for a in spi.get("OnRtnOrder") if a[0] == ref]
        assert seen == [("a", "0"), ("3", "3"), ("3", "1"), ("5", "3")], (ref, seen)
    assert calls[0] == 12
    assert td.ReqQryOrder(tdapi.CThostFtdcQryOrderField(), 50) == 0
    spi.wait(lambda: any(a[1] for a in spi.get("OnRspQryOrder")), "the order query")
    assert sorted(a[0] for a in spi.get("OnRspQryOrder")) == [(ref, "5") for ref in refs]


# -- the database -----------------------------------------------------------------------------

def login_outcome(tmp_path: Path, db: Path) -> str:
    """Try RegisterFront, Init and a login on ``db``: the error the program is given (raised at
    RegisterFront, or the login's ErrorMsg), or '' when the login succeeded."""
    spi = Spi()
    td = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(str(tmp_path) + os.sep + "probe_")
    spi.api = td
    td.RegisterSpi(spi)
    try:
        try:
            td.RegisterFront(f"{SIM}&trader.db={db}")
        except FrontAddressError as exc:
            return str(exc)
        td.Init()
        spi.wait(lambda: spi.get("OnRspUserLogin"), "the login's answer", 20)
        info = spi.get("OnRspUserLogin")[0][1]
        return "" if info is None or info.ErrorID == 0 else f"{info.ErrorID} {info.ErrorMsg}"
    finally:
        td.Release()


@pytest.mark.parametrize("content", [b"this is not a database\n" * 200,
                                     b"SQLite format 3\x00" + bytes(range(256)) * 40],
                         ids=["garbage", "damaged-sqlite"])
def test_a_corrupt_trader_db_is_a_clear_error_and_is_left_as_it_was(tmp_path, content):
    db = tmp_path / "trader.sqlite"
    db.write_bytes(content)
    problem = login_outcome(tmp_path, db)
    assert problem, "a corrupt database was used (reset?) without an error"
    assert db.read_bytes() == content  # never a silent reset
    assert str(db) in problem, problem  # the program is told which file, not only CTP's 89


def test_a_locked_trader_db_is_a_clear_error_not_a_hang(tmp_path):
    db = tmp_path / "trader.sqlite"
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("CREATE TABLE someone_elses (x)")
        started = time.monotonic()
        problem = login_outcome(tmp_path, db)
        assert problem and str(db) in problem and "lock" in problem, problem
        assert time.monotonic() - started < 20
    finally:
        holder.close()


# -- kill -9 during fills ---------------------------------------------------------------------

CHILD = r"""
import sys, threading
from ctpshim import mdapi, tdapi
front = sys.argv[1]
BROKER, USER = "9999", "faults"
state = {"ref": 0, "long": 0}
lock = threading.Lock()
class Td(tdapi.CThostFtdcTraderSpi):
    def OnFrontConnected(self):
        r = tdapi.CThostFtdcReqUserLoginField(); r.BrokerID, r.UserID = BROKER, USER
        td.ReqUserLogin(r, 1)
    def OnRspUserLogin(self, *a):
        r = tdapi.CThostFtdcSettlementInfoConfirmField(); r.BrokerID, r.InvestorID = BROKER, USER
        td.ReqSettlementInfoConfirm(r, 2)
    def OnRspSettlementInfoConfirm(self, *a):
        md.Init()
    def OnRtnOrder(self, o):
        print("ORDER", o.OrderRef.strip(), o.OrderStatus, flush=True)
    def OnRtnTrade(self, t):
        with lock:
            state["long"] += t.Volume if t.Direction == "0" else -t.Volume
        print("TRADE", repr(t.TradeID), t.Price, t.Volume, flush=True)
    def OnRspOrderInsert(self, f, info, *a):
        print("REFUSED", f.OrderRef, info.ErrorID, info.ErrorMsg, flush=True)
class Md(mdapi.CThostFtdcMdSpi):
    def OnFrontConnected(self):
        md.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 1)
    def OnRspUserLogin(self, *a):
        md.SubscribeMarketData([b"rb2701"], 1)
    def OnRtnDepthMarketData(self, k):
        with lock:
            state["ref"] += 1
            buy = state["long"] <= 0
        r = tdapi.CThostFtdcInputOrderField()
        r.BrokerID, r.InvestorID, r.UserID, r.InstrumentID, r.ExchangeID = BROKER, USER, USER, "rb2701", "SHFE"
        r.OrderRef = str(state["ref"]); r.Direction = "0" if buy else "1"
        r.CombOffsetFlag = "0" if buy else "3"; r.CombHedgeFlag = "1"; r.OrderPriceType = "2"
        r.LimitPrice = k.UpperLimitPrice if buy else k.LowerLimitPrice
        r.VolumeTotalOriginal = 1; r.MinVolume = 1; r.TimeCondition = "3"; r.VolumeCondition = "1"
        r.ContingentCondition = "1"; r.ForceCloseReason = "0"
        td.ReqOrderInsert(r, state["ref"])
td = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(sys.argv[2] + "/td_")
md = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(sys.argv[2] + "/md_")
tspi, mspi = Td(), Md()
td.RegisterSpi(tspi); td.SubscribePrivateTopic(tdapi.THOST_TERT_QUICK); td.RegisterFront(front)
md.RegisterSpi(mspi); md.RegisterFront(front)
td.Init()
threading.Event().wait(120)
"""


def test_kill_9_during_fills_then_a_restart_finds_every_trade_the_program_was_told_of(tmp_path):
    db = tmp_path / "trader.sqlite"
    # speed=50: about a hundred ticks a second, an order on each, the same trading day throughout
    front = f"sim://?start={FRIDAY_MORNING}&speed=50&instruments=rb2701&trader.db={db}&trader.flow_control=false"
    environment = {k: v for k, v in os.environ.items() if k != "CTPSHIM_FRONT"}
    child = subprocess.Popen([sys.executable, "-c", CHILD, front, str(tmp_path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=environment, cwd=str(tmp_path))
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in child.stdout], daemon=True)
    reader.start()
    told: list[str] = []
    refs: list[int] = []
    refused: list[str] = []
    deadline = time.monotonic() + 30
    try:
        while len(told) < 40 and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                break
            if line.startswith("TRADE "):
                told.append(ast.literal_eval(re.match(r"TRADE ('[^']*')", line).group(1)))  # the repr of the TradeID, spaces kept
            elif line.startswith("ORDER "):
                refs.append(int(line.split()[1]))
            elif line.startswith("REFUSED "):
                refused.append(line)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    assert len(told) >= 40, f"only {len(told)} trades before the deadline; refused {refused[:3]}; {child.stderr.read()[-2000:]}"
    # While the killed program printed on, no line after the kill is counted: `told` is what it was told.
    spi = Spi()
    td = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(str(tmp_path) + os.sep + "again_")
    spi.api = td
    td.RegisterSpi(spi)
    td.SubscribePrivateTopic(tdapi.THOST_TERT_RESTART)  # the day's private flow again (CTP_SEMANTICS 7.1)
    td.RegisterFront(front)
    td.Init()
    try:
        spi.wait(lambda: spi.get("OnRspSettlementInfoConfirm"), "the restarted login")
        spi.wait(lambda: set(told) <= {a[0] for a in spi.get("OnRtnTrade")}, "every trade told, replayed")
        assert int(spi.login.MaxOrderRef) >= max(refs)  # CTP_SEMANTICS 7.3: the next ref continues
        assert td.ReqQryTrade(tdapi.CThostFtdcQryTradeField(), 9) == 0
        spi.wait(lambda: any(a[1] for a in spi.get("OnRspQryTrade")), "the trade query")
        stored = {a[0] for a in spi.get("OnRspQryTrade") if a[0] is not None}
        assert set(told) <= stored, sorted(set(told) - stored)[:5]
    finally:
        td.Release()
