"""An unedited openctp-ctp trading program under ``ctpshim run`` on ``replay://`` gets real answers
from the simulated counter, and a second run finds what the first left in the database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ctpshim.ctp.rates import rates_for

PROGRAM = Path(__file__).parents[1] / "programs" / "openctp_td_program.py"
INSTRUMENT = "ru1901"  # the bundled real day: SHFE ru1901, 2018-10-08 night and 2018-10-09 day


def run_program(front: str, cwd: Path) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "CTPSHIM_FRONT"}
    return subprocess.run([sys.executable, "-m", "ctpshim", "run", "--front", front, str(PROGRAM), INSTRUMENT],
                          capture_output=True, text=True, timeout=120, cwd=str(cwd), env=environment)


def facts(stdout: str) -> dict[str, list[str]]:
    """``key: values`` lines -> {key: [values of its last line split]}; order/trade lines kept as lists."""
    found: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        key, _, rest = line.partition(": ")
        found[key] = rest.split()
    return found


def numbers(line: list[str]) -> dict[str, float]:
    """'balance 1.0 available 2.0 position profit 3.0' -> {'balance': 1.0, ...} (names may be two words)."""
    text = " ".join(line)
    return {name.strip(): float(value) for name, value in re.findall(r"([a-z ]+?) (-?[0-9.]+)", text)}


def test_an_openctp_td_program_gets_real_answers_and_a_rerun_finds_its_position(tmp_path):
    db = tmp_path / "trader.sqlite"
    front = f"replay://?speed=max&trader.db={db}&trader.flow_control=false"
    first = run_program(front, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.splitlines()[-1] == "ok"
    got = facts(first.stdout)
    assert got["instrument"][:6] == [INSTRUMENT, "SHFE", "tick", "5", "multiple", "10"]  # SHFE ru: 5 yuan, 10 t a lot
    # A new account holds the documented default balance, 10,000,000, and nothing yet.
    assert numbers(got["account before"]) == {"balance": 10_000_000.0, "available": 10_000_000.0, "commission": 0.0}
    assert got["positions before"][:4] == ["0", "records,", "0", "long"]
    # The fill: one lot at a price between the limits; the order was confirmed by SHFE with a
    # 12-character right-aligned OrderSysID (SIM_TRADING.md 0.6), then all traded.
    trades = [line.split(": ", 1)[1] for line in first.stdout.splitlines() if line.startswith("trade: ")]
    assert len(trades) == 1
    trade_id, ref, direction, offset, price, volume = re.match(r"'( *\d+)' (\d+) (\S) (\S) ([\d.]+) (\d+)", trades[0]).groups()
    assert len(trade_id) == 12 and (direction, offset, volume) == ("0", "0", "1")
    price = float(price)
    reports: dict[str, list[tuple[str, str, str]]] = {}
    for line in first.stdout.splitlines():
        if line.startswith("order: "):
            number, status, submit, sys_id, words = re.match(
                r"order: (\d+) status (\S) submit (\S) traded \d+ left \d+ sys '([^']*)' msg (.*)$", line).groups()
            reports.setdefault(number, []).append((status, submit, words))
            assert sys_id == "" or re.fullmatch(r" +\d+", sys_id) and len(sys_id) == 12, line
    crossing, resting = sorted(reports, key=int)
    assert crossing == ref
    # SFIT's sequences (SIM_TRADING.md 1.4): an immediate full fill on SHFE is Unknown, Unknown, then
    # "全部成交报单已提交" with OrderSubmitStatus still '0', then the trade; accepted then cancelled is
    # Unknown -> 未成交 -> (the cancel) 未成交 CancelSubmitted -> 已撤单.
    assert reports[crossing] == [("a", "0", "报单已提交"), ("a", "0", "报单已提交"), ("0", "0", "全部成交报单已提交")]
    assert reports[resting] == [("a", "0", "报单已提交"), ("3", "3", "未成交"), ("3", "1", "未成交"), ("5", "3", "已撤单")]
    lines = first.stdout.splitlines()
    assert lines.index(trades and "trade: " + trades[0]) > max(i for i, line in enumerate(lines)
                                                                  if line.startswith(f"order: {crossing} "))
    # Money, worked by hand from the rate table (SIM_TRADING.md 3.2): margin on today's lot at its
    # open price, commission at the trade price, Balance = PreBalance + PositionProfit - Commission.
    rates = rates_for(INSTRUMENT)
    after = numbers(got["account after"])
    assert abs(after["commission"] - (1 * price * 10 * rates.OpenRatioByMoney + 1 * rates.OpenRatioByVolume)) < 1e-6
    assert abs(after["margin"] - 1 * price * 10 * rates.LongMarginRatioByMoney) < 1e-6
    assert abs(after["balance"] - (10_000_000 + after["position profit"] - after["commission"])) < 1e-6
    assert got["positions after"][:2] == ["1", "long"]

    # Another process, the same database: the account carries the first run's position and money.
    second = run_program(front, tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    again = facts(second.stdout)
    # The login's MaxOrderRef continues after the account's highest OrderRef today (the first run's 3)
    assert int(again["login"][3].strip("'")) >= int(resting), again["login"]
    assert again["positions before"][2] == "1" and again["positions after"][:2] == ["2", "long"]
    assert int(again["orders"][0]) >= 4 and int(again["trades"][0]) >= 2  # the day's orders of both sessions
    paid = numbers(got["account after"])["commission"]
    assert numbers(again["account before"])["commission"] == paid  # the first fill's commission, same trading day


def test_the_program_on_the_simulated_market_keeps_its_account_under_ctpshim_home(tmp_path):
    # No trader.db: the default database is $CTPSHIM_HOME/trader.sqlite (DESIGN15 front settings).
    environment = {k: v for k, v in os.environ.items() if k != "CTPSHIM_FRONT"}
    environment.update(CTPSHIM_HOME=str(tmp_path / "home"),
                       CTPSHIM_FRONT="sim://?start=2026-11-20T09:35&instruments=rb2701&trader.flow_control=false")
    done = subprocess.run([sys.executable, "-m", "ctpshim", "run", str(PROGRAM), "rb2701"], capture_output=True,
                          text=True, timeout=120, cwd=str(tmp_path), env=environment)
    assert done.returncode == 0, done.stdout + done.stderr
    assert facts(done.stdout)["instrument"][:6] == ["rb2701", "SHFE", "tick", "1", "multiple", "10"]
    assert (tmp_path / "home" / "trader.sqlite").is_file()


# -- a program across the end of a trading day ------------------------------------------------

BROKER, USER = "9999", "dayend"


class DayEndProgram:
    """md + td on one front: buys a lot on the first tick, then watches for the next trading day."""

    def __init__(self, front: str, folder: Path) -> None:
        from ctpshim import mdapi, tdapi

        self.tdapi = tdapi
        self.cond = threading.Condition()
        self.events: list[tuple[str, Any]] = []
        self.first_day = ""
        self.new_day = ""
        self.ref = 0
        self.settlement = 0.0  # the first day's SettlementPrice, from its closing snapshot
        program = self

        class Td(tdapi.CThostFtdcTraderSpi):
            def OnFrontConnected(self) -> None:
                r = tdapi.CThostFtdcReqUserLoginField()
                r.BrokerID, r.UserID = BROKER, USER
                program.td.ReqUserLogin(r, 1)

            def OnRspUserLogin(self, *a: Any) -> None:
                program.confirm()

            def OnRspSettlementInfoConfirm(self, *args: Any) -> None:
                program.add("OnRspSettlementInfoConfirm", args)

            def OnRtnTrade(self, *args: Any) -> None:
                program.add("OnRtnTrade", args)

            def OnRspOrderInsert(self, *args: Any) -> None:
                program.add("OnRspOrderInsert", args)

            def OnRspQrySettlementInfo(self, *args: Any) -> None:
                program.add("OnRspQrySettlementInfo", args)

            def OnRspQryInvestorPosition(self, *args: Any) -> None:
                program.add("OnRspQryInvestorPosition", args)

        class Md(mdapi.CThostFtdcMdSpi):
            def OnFrontConnected(self) -> None:
                program.md.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 1)

            def OnRspUserLogin(self, *a: Any) -> None:
                program.md.SubscribeMarketData([b"rb2701"], 1)

            def OnRtnDepthMarketData(self, tick: Any) -> None:
                program.on_tick(tick)

        self.td = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(f"{folder}/td_")
        self.md = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(f"{folder}/md_")
        self.td_spi, self.md_spi = Td(), Md()
        self.td.RegisterSpi(self.td_spi)
        self.td.SubscribePrivateTopic(tdapi.THOST_TERT_QUICK)
        self.td.RegisterFront(front)
        self.md.RegisterSpi(self.md_spi)
        self.md.RegisterFront(front)

    def add(self, name: str, args: Any) -> None:
        with self.cond:
            self.events.append((name, args))
            self.cond.notify_all()

    def wait(self, condition: Any, what: str, timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not (value := condition()):
                left = deadline - time.monotonic()
                assert left > 0, f"timed out waiting for {what}: {[e[0] for e in self.events][-10:]}"
                self.cond.wait(left)
            return value

    def got(self, name: str) -> list[Any]:
        return [args for event, args in self.events if event == name]

    def confirm(self) -> None:
        r = self.tdapi.CThostFtdcSettlementInfoConfirmField()
        r.BrokerID, r.InvestorID = BROKER, USER
        self.td.ReqSettlementInfoConfirm(r, 2)

    def order(self, tick: Any) -> None:
        tdapi = self.tdapi
        self.ref += 1
        r = tdapi.CThostFtdcInputOrderField()
        r.BrokerID, r.InvestorID, r.UserID, r.InstrumentID, r.ExchangeID = BROKER, USER, USER, "rb2701", "SHFE"
        r.OrderRef, r.Direction, r.CombOffsetFlag, r.CombHedgeFlag = str(self.ref), "0", "0", "1"
        r.OrderPriceType, r.LimitPrice, r.VolumeTotalOriginal, r.MinVolume = "2", tick.UpperLimitPrice, 1, 1
        r.TimeCondition, r.VolumeCondition, r.ContingentCondition, r.ForceCloseReason = "3", "1", "1", "0"
        assert self.td.ReqOrderInsert(r, 100 + self.ref) == 0

    def on_tick(self, tick: Any) -> None:
        with self.cond:
            if not self.first_day:
                self.first_day = tick.TradingDay
                self.order(tick)
            elif tick.TradingDay == self.first_day and 0 < tick.SettlementPrice < 1e300:
                self.settlement = tick.SettlementPrice
            elif tick.TradingDay != self.first_day and not self.new_day:
                self.new_day = tick.TradingDay
                self.order(tick)  # before confirming the new day's statement: refused (42)
                self.cond.notify_all()


def test_a_program_across_a_day_end_gets_a_statement_to_confirm_and_yesterdays_position(tmp_path):
    # Friday 14:59 at full speed: the close, then the night session of Monday's trading day.
    front = (f"sim://?start=2026-11-20T14:59&speed=max&instruments=rb2701&trader.db={tmp_path / 'trader.sqlite'}"
             "&trader.flow_control=false")
    program = DayEndProgram(front, tmp_path)
    program.td.Init()
    try:
        program.wait(lambda: program.got("OnRspSettlementInfoConfirm"), "the first confirmation")
        program.md.Init()
        program.wait(lambda: program.got("OnRtnTrade"), "the fill on Friday")
        bought = program.got("OnRtnTrade")[0][0]
        program.wait(lambda: program.new_day, "the next trading day's first tick", 60)
        assert (program.first_day, program.new_day) == ("20261120", "20261123")  # Friday, then Monday (the night)
        refused = program.wait(lambda: program.got("OnRspOrderInsert"), "the order of the unconfirmed day")
        assert refused[0][1].ErrorID == 42  # CTP:结算结果未确认 (CTP_SEMANTICS 7.1)
        query = program.tdapi.CThostFtdcQrySettlementInfoField()
        query.BrokerID, query.InvestorID = BROKER, USER
        assert program.td.ReqQrySettlementInfo(query, 5) == 0
        pieces = program.wait(lambda: (rows := program.got("OnRspQrySettlementInfo")) and rows[-1][3] and rows,
                              "the statement")
        assert all(len(p[0].Content) <= 500 for p in pieces)
        assert [p[0].SequenceNo for p in pieces] == list(range(1, len(pieces) + 1))
        text = b"".join(p[0].Content for p in pieces).decode("gb18030")
        assert "结算单" in text and "rb2701" in text and bought.TradeID.strip() in text
        program.confirm()
        program.wait(lambda: len(program.got("OnRspSettlementInfoConfirm")) == 2, "the second confirmation")
        assert program.td.ReqQryInvestorPosition(program.tdapi.CThostFtdcQryInvestorPositionField(), 6) == 0
        rows = program.wait(lambda: (rows := program.got("OnRspQryInvestorPosition")) and rows[-1][3] and rows,
                            "the positions")
        held = [r[0] for r in rows if r[0] is not None and r[0].InstrumentID == "rb2701"]
        # SHFE: Friday's lot is now a history record (PositionDate '2'), YdPosition 1, nothing today
        assert [(p.PosiDirection, p.PositionDate, p.Position, p.YdPosition, p.TodayPosition) for p in held] == \
            [("2", "2", 1, 1, 0)]
        # settled at the price the feed published (SIM_TRADING.md 4.1), now yesterday's settlement
        assert program.settlement > 0 and held[0].PreSettlementPrice == program.settlement
        assert held[0].TradingDay == "20261123"
        assert {p[0].TradingDay for p in pieces} == {"20261120"}  # the statement's own trading day
    finally:
        program.md.Release()
        program.td.Release()


def test_two_api_objects_on_one_account_each_see_every_report(tmp_path):
    """CTP_SEMANTICS 7.5: every session of an account gets all private reports; only the sender is
    answered for what CTP refuses."""
    from ctpshim import tdapi

    front = f"sim://?start=2026-11-20T09:35&instruments=rb2701&trader.db={tmp_path / 'trader.sqlite'}"
    cond = threading.Condition()
    seen: dict[int, list[tuple[str, str, str]]] = {0: [], 1: []}
    confirmed: set[int] = set()
    apis: list[Any] = []
    sys_ids: list[str] = []

    class Spi(tdapi.CThostFtdcTraderSpi):
        def __init__(self, number: int) -> None:
            super().__init__()
            self.number = number

        def OnFrontConnected(self) -> None:
            r = tdapi.CThostFtdcReqUserLoginField()
            r.BrokerID, r.UserID = "9999", "shared"
            apis[self.number].ReqUserLogin(r, 1)

        def OnRspUserLogin(self, *a: Any) -> None:
            r = tdapi.CThostFtdcSettlementInfoConfirmField()
            r.BrokerID, r.InvestorID = "9999", "shared"
            apis[self.number].ReqSettlementInfoConfirm(r, 2)

        def OnRspSettlementInfoConfirm(self, *a: Any) -> None:
            with cond:
                confirmed.add(self.number)
                cond.notify_all()

        def OnRtnOrder(self, pOrder: Any) -> None:
            with cond:
                seen[self.number].append(("order", pOrder.OrderRef.strip(), pOrder.OrderStatus))
                if pOrder.OrderSysID and not sys_ids:
                    sys_ids.append(pOrder.OrderSysID)
                cond.notify_all()

        def OnRspOrderInsert(self, pInputOrder: Any, pRspInfo: Any, *a: Any) -> None:
            with cond:
                seen[self.number].append(("refused", pInputOrder.OrderRef.strip(), str(pRspInfo.ErrorID)))
                cond.notify_all()

    def wait(condition: Any, what: str) -> None:
        deadline = time.monotonic() + 15
        with cond:
            while not condition():
                left = deadline - time.monotonic()
                assert left > 0, f"timed out waiting for {what}: {seen}"
                cond.wait(left)

    spis = [Spi(0), Spi(1)]
    for number, spi in enumerate(spis):
        api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(f"{tmp_path}/td{number}_")
        apis.append(api)
        api.RegisterSpi(spi)
        api.SubscribePrivateTopic(tdapi.THOST_TERT_QUICK)
        api.RegisterFront(front)
    try:
        for api in apis:
            api.Init()
        wait(lambda: confirmed == {0, 1}, "both logins")
        def order(ref: str, instrument: str) -> Any:
            field = tdapi.CThostFtdcInputOrderField()
            field.BrokerID, field.InvestorID, field.UserID = "9999", "shared", "shared"
            field.InstrumentID, field.ExchangeID, field.OrderRef = instrument, "SHFE", ref
            field.Direction, field.CombOffsetFlag, field.CombHedgeFlag = "0", "0", "1"
            field.OrderPriceType, field.LimitPrice, field.VolumeTotalOriginal, field.MinVolume = "2", 3000.0, 1, 1
            field.TimeCondition, field.VolumeCondition, field.ContingentCondition = "3", "1", "1"
            return field

        assert apis[0].ReqOrderInsert(order("7", "rb2701"), 3) == 0  # rests below the market, inside its limits
        assert apis[0].ReqOrderInsert(order("8", "xx2701"), 4) == 0  # an unknown instrument: CTP refuses it (16)
        wait(lambda: any(e[0] == "refused" for e in seen[0]) and ("order", "7", "3") in seen[1], "the order queued")
        with cond:
            sys_id = sys_ids[0]
        # the other session cancels it, by the exchange's key (CTP_SEMANTICS 7.4)
        action = tdapi.CThostFtdcInputOrderActionField()
        action.BrokerID, action.InvestorID, action.UserID = "9999", "shared", "shared"
        action.InstrumentID, action.ExchangeID, action.OrderSysID, action.ActionFlag = "rb2701", "SHFE", sys_id, "0"
        assert apis[1].ReqOrderAction(action, 5) == 0
        wait(lambda: ("order", "7", "5") in seen[0] and ("order", "7", "5") in seen[1], "the cancel's reports")
        # the order's reports reach both sessions alike; the CTP refusal only its sender
        assert [e for e in seen[0] if e[0] == "order"] == [e for e in seen[1] if e[0] == "order"]
        assert [e for e in seen[0] if e[0] == "refused"] == [("refused", "8", "16")]
        assert not [e for e in seen[1] if e[0] == "refused"]
    finally:
        for api in apis:
            api.Release()
