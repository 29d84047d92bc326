"""The ledger against SimNow's own numbers, to the cent, and its rules worked by hand.

Golden sources (SIM_TRADING.md):

* the SimNow settlement statement of 2023-02-15 (openctp/openctp
  ``tools/Settle/getsettle/sample.out``, §2.1 and §4.4): five trades in ag2306 and au2308 on a
  10,000,000 account; the facts (trades, prices, figures) are written here, the file is not copied;
* the SimNow capture of an INE position and account (Homalos/homalos-webctp ``docs/td_protocol.md``,
  §2.1/§2.2): six yesterday lots, pre-settlement 571.8, latest 557.4 (position) / 557.0 (account).
"""

from __future__ import annotations

import json

import pytest

from ctpshim.broker.ledger import Ledger, LedgerError, LedgerParams, cents
from ctpshim.broker.orders import Trade
from ctpshim.broker.terms import parse_info, terms_for
from ctpshim.ctp.rates import MARGIN_COLUMNS

AG, AU, SC = (terms_for(parse_info(i)) for i in ("ag2306", "au2308", "sc2306"))


def trade(terms, trade_id: str, direction: str, offset: str, price: float, volume: int, day: str = "20230215",
          hedge: str = "1") -> Trade:
    return Trade(BrokerID="9999", InvestorID="123456", UserID="123456", InstrumentID=terms.InstrumentID,
                 ExchangeID=terms.ExchangeID, OrderRef="1", OrderSysID="1", OrderLocalID="1",
                 TradeID=trade_id.rjust(12), Direction=direction, OffsetFlag=offset, HedgeFlag=hedge,
                 Price=price, Volume=volume, TradeDate=day, TradeTime="10:00:00", TradingDay=day,
                 BrokerOrderSeq=1, SequenceNo=1)


def book(ledger: Ledger, key: int, terms, t: Trade) -> float:
    """An order frozen then filled, as the counter drives it."""
    ledger.freeze(key, terms, t.Direction, t.OffsetFlag, t.HedgeFlag, t.Price, t.Volume)
    return ledger.fill(key, terms, t)


def simnow_day() -> Ledger:
    """The 2023-02-15 statement's day, in the order of its trade numbers (72736 < 76886 < 167995 <
    168738 < 168930): buy-open 4 ag @4942, sell-close-today those 4 @4946, sell-open 2 ag @4927,
    sell-open 2 au @413.1, buy-open 4 ag @4927.  Pre-settlement ag 4941, au 412.98."""
    ledger = Ledger("9999", "123456", balance=10_000_000, trading_day="20230215")
    ledger.mark(AG, 4942, pre_settlement=4941)
    ledger.mark(AU, 413.1, pre_settlement=412.98)
    book(ledger, 1, AG, trade(AG, "72736", "0", "0", 4942, 4))
    book(ledger, 2, AG, trade(AG, "76886", "1", "3", 4946, 4))
    book(ledger, 3, AG, trade(AG, "167995", "1", "0", 4927, 2))
    book(ledger, 4, AU, trade(AU, "168738", "1", "0", 413.1, 2))
    book(ledger, 5, AG, trade(AG, "168930", "0", "0", 4927, 4))
    return ledger


def test_simnow_statement_fees_are_charged_per_trade_at_the_trade_price():
    ledger = Ledger("9999", "123456", balance=10_000_000, trading_day="20230215")
    ledger.mark(AG, 4942, pre_settlement=4941)
    fees = [book(ledger, 1, AG, trade(AG, "72736", "0", "0", 4942, 4)),
            book(ledger, 2, AG, trade(AG, "76886", "1", "3", 4946, 4)),
            book(ledger, 3, AG, trade(AG, "167995", "1", "0", 4927, 2))]
    # 4 x 4942 x 15 x 1e-5 = 2.9652 (statement 2.97); close-today on ag is free; 2 x 4927 x 15 x 1e-5
    assert fees == pytest.approx([2.9652, 0.0, 1.4781], abs=1e-9)
    assert [cents(f) for f in fees] == [2.97, 0.00, 1.48]
    assert ledger.account_values()["Commission"] == pytest.approx(2.9652 + 1.4781, abs=1e-9)  # not rounded


def test_simnow_statement_reconciles_to_the_cent():
    ledger = simnow_day()
    summary = ledger.settle({"ag2306": 4928, "au2308": 413.8}, "20230216")
    a = summary["account"]
    assert round(a["PreBalance"], 2) == 10_000_000.00
    assert round(a["CloseProfit"], 2) == 240.00  # 4 x (4946 - 4942) x 15
    assert round(a["PositionProfit"], 2) == -1370.00  # ag +60 -30, au -1400
    assert round(a["Commission"], 2) == 11.41  # 2.97 + 1.48 + 4.00 + 2.96, each to the cent
    assert round(a["Balance"], 2) == 9_998_858.59
    assert round(a["CurrMargin"], 2) == 172_043.20  # ag max(56,179.20, 28,089.60) + au 115,864.00
    assert round(a["Available"], 2) == 9_826_815.39
    assert f"{a['RiskDegree']:.2f}" == "1.72"
    details = {(d["InstrumentID"], d["Direction"]): d for d in summary["details"]}
    assert set(details) == {("ag2306", "0"), ("ag2306", "1"), ("au2308", "1")}
    for key, (volume, profit, margin) in {("ag2306", "0"): (4, 60.0, 56_179.20), ("ag2306", "1"): (2, -30.0, 28_089.60),
                                          ("au2308", "1"): (2, -1400.0, 115_864.00)}.items():
        d = details[key]
        assert d["Volume"] == volume
        assert round(d["PositionProfitByDate"], 2) == round(d["PositionProfitByTrade"], 2) == profit
        assert round(d["Margin"], 2) == margin
    closed = summary["closed"]
    assert len(closed) == 1
    assert (closed[0]["Volume"], closed[0]["OpenPrice"], closed[0]["LastSettlementPrice"], closed[0]["Price"]) == \
        (4, 4942, 4941, 4946)
    assert round(closed[0]["CloseProfitByDate"], 2) == 240.00
    positions = {p["InstrumentID"]: p for p in summary["positions"]}
    assert (positions["ag2306"]["LongPosition"], positions["ag2306"]["ShortPosition"]) == (4, 2)
    assert round(positions["ag2306"]["PositionProfit"], 2) == 30.00
    assert round(positions["ag2306"]["Margin"], 2) == 56_179.20
    assert round(positions["au2308"]["Margin"], 2) == 115_864.00
    turnover = sum(t["Turnover"] for t in summary["trades"])
    assert round(turnover, 2) == 1_862_910.00 and sum(t["Volume"] for t in summary["trades"]) == 16


def test_the_day_after_the_statement_starts_from_balance_cf():
    ledger = simnow_day()
    ledger.settle({"ag2306": 4928, "au2308": 413.8}, "20230216")
    a = ledger.account_values()
    assert a["TradingDay"] == "20230216"
    assert round(a["PreBalance"], 2) == 9_998_858.59
    assert (a["CloseProfit"], a["Commission"], a["PositionProfit"]) == (0, 0, 0)  # marked at settlement
    assert round(a["CurrMargin"], 2) == 172_043.20  # yesterday's lots at the settlement price
    assert round(a["Available"], 2) == 9_826_815.39
    rows = {(p["InstrumentID"], p["PosiDirection"], p["PositionDate"]): p for p in ledger.position_values()}
    assert set(rows) == {("ag2306", "2", "2"), ("ag2306", "3", "2"), ("au2308", "3", "2")}  # history records
    long = rows[("ag2306", "2", "2")]
    assert (long["Position"], long["YdPosition"], long["TodayPosition"], long["OpenVolume"]) == (4, 4, 0, 0)
    assert long["PositionCost"] == pytest.approx(4 * 4928 * 15)
    assert long["OpenCost"] == pytest.approx(4 * 4927 * 15)
    assert long["PreSettlementPrice"] == 4928


def sc_yesterday(balance_after: float = 19_742_599.89) -> Ledger:
    """Six sc2306 lots opened on 20230420 (5 @573.5, 1 @573.4: OpenCost 3,440,900 as captured),
    settled at 571.8; the opening balance is chosen so that PreBalance is the captured 19,742,599.89
    (6 lots x 20 yuan fee, and (571.8 x 6 - 3440.9) x 1000 = -10,100 marked at settlement)."""
    ledger = Ledger("9999", "028742", balance=balance_after + 120 + 10_100, trading_day="20230420")
    ledger.mark(SC, 573.5, pre_settlement=570.0)
    book(ledger, 1, SC, trade(SC, "1", "0", "0", 573.5, 5, day="20230420"))
    book(ledger, 2, SC, trade(SC, "2", "0", "0", 573.4, 1, day="20230420"))
    ledger.settle({"sc2306": 571.8}, "20230421")
    return ledger


def test_homalos_ine_position_capture():
    ledger = sc_yesterday()
    ledger.mark(SC, 557.4, pre_settlement=571.8)
    (row,) = ledger.position_values()
    assert (row["PosiDirection"], row["PositionDate"], row["Position"], row["YdPosition"], row["TodayPosition"]) == \
        ("2", "2", 6, 6, 0)
    assert row["PositionCost"] == pytest.approx(3_430_800.0)  # 6 x 571.8 x 1000
    assert row["OpenCost"] == pytest.approx(3_440_900.0)
    assert row["PositionProfit"] == pytest.approx(-86_400.0)  # (557.4 - 571.8) x 6 x 1000
    assert row["UseMargin"] == pytest.approx(583_236.0) == row["ExchangeMargin"]  # 6 x 571.8 x 1000 x 0.17
    assert (row["PreSettlementPrice"], row["SettlementPrice"]) == (571.8, 557.4)
    assert row["PreMargin"] == pytest.approx(583_236.0)


def test_homalos_ine_account_capture():
    ledger = sc_yesterday()
    ledger.mark(SC, 557.0, pre_settlement=571.8)
    a = ledger.account_values()
    assert round(a["PreBalance"], 2) == 19_742_599.89
    assert round(a["PositionProfit"], 2) == -88_800.00
    assert round(a["Balance"], 2) == 19_653_799.89
    assert a["CurrMargin"] == pytest.approx(583_236.0) == a["ExchangeMargin"]
    assert round(a["Available"], 2) == 19_070_563.89  # the loss is in Balance, no second deduction
    assert a["WithdrawQuota"] == pytest.approx(15_256_451.112, abs=1e-3)
    assert a["MortgageableFund"] == pytest.approx(a["Available"])
    assert a["PreDeposit"] == a["PreBalance"] and a["PreMargin"] == pytest.approx(583_236.0)


def test_floating_profit_is_not_available_but_loss_is():
    ledger = Ledger("9999", "1", balance=1_000_000, trading_day="20230420")
    ledger.mark(SC, 500.0, pre_settlement=500.0)
    book(ledger, 1, SC, trade(SC, "1", "0", "0", 500.0, 1, day="20230420"))
    margin = 500.0 * 1000 * 0.17
    ledger.mark(SC, 510.0)  # +10,000 floating
    a = ledger.account_values()
    assert a["Balance"] == pytest.approx(1_000_000 - 20 + 10_000)
    assert a["Available"] == pytest.approx(1_000_000 - 20 - margin)
    ledger.mark(SC, 490.0)  # -10,000 floating
    assert ledger.available() == pytest.approx(1_000_000 - 20 - 10_000 - margin)
    everything = Ledger.from_state({**ledger.to_state(), "params": {**ledger.to_state()["params"], "Algorithm": "1"}})
    everything.mark(SC, 510.0)
    assert everything.available() == pytest.approx(1_000_000 - 20 + 10_000 - margin)


def test_open_order_freezes_margin_and_commission_in_available_only_until_released():
    ledger = Ledger("9999", "1", balance=1_000_000, trading_day="20230420")
    before = ledger.account_values()
    ledger.freeze(7, SC, "0", "0", "1", 500.0, 3)
    a = ledger.account_values()
    assert a["FrozenMargin"] == pytest.approx(3 * 500 * 1000 * 0.17)  # at the order price
    assert a["FrozenCommission"] == pytest.approx(60.0)
    assert a["Balance"] == before["Balance"] and a["CurrMargin"] == 0
    assert a["Available"] == pytest.approx(1_000_000 - 255_000 - 60)
    ledger.fill(7, SC, trade(SC, "9", "0", "0", 499.0, 1, day="20230420"))  # one lot, at a better price
    a = ledger.account_values()
    assert a["FrozenMargin"] == pytest.approx(2 * 500 * 1000 * 0.17)
    assert a["FrozenCommission"] == pytest.approx(40.0)
    assert a["CurrMargin"] == pytest.approx(499 * 1000 * 0.17) and a["Commission"] == pytest.approx(20.0)
    ledger.release(7, 2)
    a = ledger.account_values()
    assert (a["FrozenMargin"], a["FrozenCommission"]) == (0, 0)


def test_single_side_product_freezes_only_what_exceeds_the_larger_side():
    ledger = Ledger("9999", "1", balance=10_000_000, trading_day="20230215")
    book(ledger, 1, AG, trade(AG, "1", "0", "0", 5000, 4))  # long margin 4 x 5000 x 15 x 0.19 = 57,000
    margin, _ = ledger.order_cost(AG, "1", "0", 5000, 2)
    assert margin == 0  # 2 short lots (28,500) stay under the long side
    margin, _ = ledger.order_cost(AG, "1", "0", 5000, 6)
    assert margin == pytest.approx(6 * 5000 * 15 * 0.19 - 57_000)
    ledger.freeze(2, AG, "1", "0", "1", 5000, 6)
    assert ledger.account_values()["FrozenMargin"] == pytest.approx(85_500 - 57_000)


def test_shfe_close_today_and_close_yesterday_address_their_records():
    ledger = simnow_day()
    ledger.settle({"ag2306": 4928, "au2308": 413.8}, "20230216")
    book(ledger, 1, AG, trade(AG, "500", "0", "0", 4930, 3, day="20230216"))  # today long 3, yesterday long 4
    assert ledger.closable(AG, "1", "3", "1") == 3  # close-today: today's lots
    assert ledger.closable(AG, "1", "1", "1") == 4  # close = close-yesterday on SHFE
    assert ledger.closable(AG, "1", "4", "1") == 4
    ledger.freeze(2, AG, "1", "1", "1", 4935, 3)
    assert ledger.closable(AG, "1", "1", "1") == 1
    rows = {(p["PosiDirection"], p["PositionDate"]): p for p in ledger.position_values()}
    assert rows[("2", "2")]["ShortFrozen"] == 3 and rows[("2", "2")]["LongFrozen"] == 0
    assert rows[("2", "1")]["ShortFrozen"] == 0
    with pytest.raises(LedgerError, match="closable"):
        ledger.freeze(3, AG, "1", "1", "1", 4935, 2)
    fee = ledger.fill(2, AG, trade(AG, "501", "1", "1", 4935, 3, day="20230216"))
    assert fee == pytest.approx(3 * 4935 * 15 * 1e-5)  # the close tier (yesterday's lots)
    history = {(p["PosiDirection"], p["PositionDate"]): p for p in ledger.position_values()}[("2", "2")]
    assert (history["Position"], history["YdPosition"], history["ShortFrozen"]) == (1, 4, 0)  # YdPosition static
    assert history["CloseProfit"] == pytest.approx(3 * (4935 - 4928) * 15)  # vs settlement of 20230215
    assert history["CloseProfitByTrade"] == pytest.approx(3 * (4935 - 4927) * 15)  # vs the open price


def test_dce_close_takes_yesterday_first_and_charges_by_what_it_consumed():
    m = terms_for(parse_info("m2309"))  # DCE: one record; 0.2 close, 0.1 close-today per lot (broker table)
    rates = m.rates
    ledger = Ledger("9999", "1", balance=1_000_000, trading_day="20230420")
    book(ledger, 1, m, trade(m, "1", "0", "0", 3000, 2, day="20230420"))
    ledger.settle({"m2309": 3010}, "20230421")
    book(ledger, 2, m, trade(m, "2", "0", "0", 3020, 2, day="20230421"))
    (row,) = ledger.position_values()
    assert (row["PositionDate"], row["Position"], row["YdPosition"], row["TodayPosition"]) == ("1", 4, 2, 2)
    assert ledger.closable(m, "1", "3", "1") == 4 == ledger.closable(m, "1", "1", "1")  # any close: the total
    fee = ledger.fill(3, m, trade(m, "3", "1", "1", 3030, 3, day="20230421"))
    assert fee == pytest.approx(rates.commission(2, 3030, "1") + rates.commission(1, 3030, "3"))
    (row,) = ledger.position_values()
    assert (row["Position"], row["TodayPosition"]) == (1, 1)
    assert row["CloseProfit"] == pytest.approx((2 * (3030 - 3010) + (3030 - 3020)) * 10)
    (detail_left,) = [d for d in ledger.detail_values() if d["Volume"]]
    assert (detail_left["TradeID"].strip(), detail_left["Volume"]) == ("2", 1)


def test_state_round_trips_through_json():
    ledger = simnow_day()
    ledger.freeze(9, AU, "0", "3", "1", 413.0, 2)  # buy to close the 2 au lots today
    ledger.freeze(10, AG, "0", "0", "1", 4930.0, 1)
    copy = Ledger.from_state(json.loads(json.dumps(ledger.to_state())))
    assert copy.account_values() == ledger.account_values()
    assert copy.position_values() == ledger.position_values()
    assert copy.detail_values() == ledger.detail_values()
    assert copy.settle({"ag2306": 4928, "au2308": 413.8}, "20230216") == \
        ledger.settle({"ag2306": 4928, "au2308": 413.8}, "20230216")


def test_the_incremental_json_is_the_state_through_a_day_a_settlement_and_a_reload():
    ledger = simnow_day()
    assert json.loads(ledger.to_json()) == ledger.to_state()  # rows serialised as they were added
    ledger.mark(AG, 4931.0)  # a detail's values change: it is serialised again
    ledger.freeze(9, AU, "0", "3", "1", 413.0, 2)
    assert json.loads(ledger.to_json()) == ledger.to_state()
    ledger.release(9, 2)
    ledger.settle({"ag2306": 4928, "au2308": 413.8}, "20230216")
    assert json.loads(ledger.to_json()) == ledger.to_state()
    reloaded = Ledger.from_state(json.loads(ledger.to_json()))
    assert json.loads(reloaded.to_json()) == reloaded.to_state() == ledger.to_state()


def flat_facts(state: dict) -> dict:
    """The facts as versions 1 and 2 stored them: the four margin ratios beside the terms."""
    return {i: {**{k: v for k, v in f.items() if k != "rates"}, **{k: f["rates"][k] for k in MARGIN_COLUMNS}}
            for i, f in state["facts"].items()}


def test_a_state_of_the_second_version_still_loads():
    # Version 2 kept only the margin ratios of each instrument's rates, not the whole row.
    ledger = simnow_day()
    state = json.loads(json.dumps(ledger.to_state()))
    assert state["version"] == 3
    assert state["facts"]["ag2306"]["rates"]["LongMarginRatioByMoney"] == AG.rates.LongMarginRatioByMoney
    copy = Ledger.from_state(dict(state, version=2, facts=flat_facts(state)))
    assert (copy.account_values(), copy.position_values(), copy.detail_values()) == \
        (ledger.account_values(), ledger.position_values(), ledger.detail_values())
    # Commission still comes from the terms handed in: a close of the reloaded au lots charges au's close-today fee.
    assert book(copy, 6, AU, trade(AU, "170000", "0", "3", 413.0, 2)) == \
        pytest.approx(AU.rates.commission(2, 413.0, "3"), abs=1e-12)
    assert copy.settle({"ag2306": 4928, "au2308": 413.8}, "20230216")["account"]["CurrMargin"] > 0


def test_a_state_of_the_first_version_still_loads():
    # Version 1 (accounts stored before the compact state) kept every row as a dict of its names.
    ledger = simnow_day()
    state = json.loads(json.dumps(ledger.to_state()))
    state["facts"] = flat_facts(state)
    record_fields, detail_fields = state.pop("record_fields"), state.pop("detail_fields")
    old = dict(state, version=1, records=[
        {**dict(zip(record_fields, values)), "details": [dict(zip(detail_fields, d)) for d in details]}
        for *values, details in state["records"]],
        trades=[dict(zip(state["trades"]["keys"][r[0]], r[1:])) for r in state["trades"]["rows"]],
        closed=[dict(zip(state["closed"]["keys"][r[0]], r[1:])) for r in state["closed"]["rows"]])
    del old["settled"]
    copy = Ledger.from_state(old)
    assert (copy.account_values(), copy.position_values(), copy.detail_values()) == \
        (ledger.account_values(), ledger.position_values(), ledger.detail_values())
    assert copy.settle({"ag2306": 4928, "au2308": 413.8}, "20230216") == \
        ledger.settle({"ag2306": 4928, "au2308": 413.8}, "20230216")


@pytest.mark.parametrize("call, match", [
    (lambda l: l.deposit(-5), "deposit -5"),
    (lambda l: l.deposit(float("nan")), "deposit nan"),
    (lambda l: l.withdraw(2_000_000), "withdraw quota"),
    (lambda l: l.freeze(1, SC, "2", "0", "1", 500.0, 1), "Direction '2'"),
    (lambda l: l.freeze(1, SC, "0", "9", "1", 500.0, 1), "OffsetFlag '9'"),
    (lambda l: l.freeze(1, SC, "0", "0", "1", 500.0, 0), "volume 0"),
    (lambda l: l.fill(1, SC, trade(SC, "1", "1", "1", 500.0, 1)), "holds 0"),
    (lambda l: l.settle({}, "20230101"), "next_trading_day '20230101'"),
    (lambda l: l.settle({}, "20231399"), "next_trading_day '20231399'"),  # eight digits, not a date
    (lambda l: Ledger("9999", "1", balance=1, trading_day="20230230"), "trading_day '20230230'"),
])
def test_bad_requests_name_the_value(call, match):
    ledger = Ledger("9999", "1", balance=1_000_000, trading_day="20230420")
    with pytest.raises(LedgerError, match=match):
        call(ledger)


def test_bad_params_and_states_are_refused():
    with pytest.raises(ValueError, match="MarginPriceType '9'"):
        LedgerParams(MarginPriceType="9")
    with pytest.raises(LedgerError, match="not a ledger state"):
        Ledger.from_state({"version": 1, "BrokerID": "9999"})
    with pytest.raises(LedgerError, match="version"):
        Ledger.from_state({"version": 7})


def test_single_side_margin_nets_across_months_of_a_product():
    ag08 = terms_for(parse_info("ag2308"))
    ledger = Ledger("9999", "1", balance=10_000_000, trading_day="20230215")
    book(ledger, 1, AG, trade(AG, "1", "0", "0", 5000, 4))  # long 57,000
    book(ledger, 2, ag08, trade(ag08, "2", "1", "0", 5100, 3))  # short 3 x 5100 x 15 x 0.19 = 43,605
    assert ledger.account_values()["CurrMargin"] == pytest.approx(57_000)
    dce = terms_for(parse_info("m2309"))  # DCE: no single-side rule, both sides count
    book(ledger, 3, dce, trade(dce, "3", "0", "0", 3000, 1))
    book(ledger, 4, dce, trade(dce, "4", "1", "0", 3000, 1))
    assert ledger.account_values()["CurrMargin"] == pytest.approx(57_000 + 2 * 3000 * 10 * 0.14)


@pytest.mark.parametrize("kind, expected", [("4", 5000), ("1", 4900), ("2", 5050)])
def test_margin_price_type_prices_todays_lots(kind, expected):
    ledger = Ledger("9999", "1", balance=10_000_000, trading_day="20230215", params=LedgerParams(MarginPriceType=kind))
    ledger.mark(AG, 5000, pre_settlement=4900)
    book(ledger, 1, AG, trade(AG, "1", "0", "0", 5000, 2))
    ledger.mark(AG, 5050)
    (row,) = ledger.position_values()
    assert row["UseMargin"] == pytest.approx(2 * expected * 15 * 0.19)


def test_frozen_margin_at_pre_settlement_when_asked():
    ledger = Ledger("9999", "1", balance=10_000_000, trading_day="20230215",
                    params=LedgerParams(frozen_margin_price="pre_settlement"))
    ledger.mark(AG, 5000, pre_settlement=4900)
    ledger.freeze(1, AG, "0", "0", "1", 5010, 2)
    assert ledger.account_values()["FrozenMargin"] == pytest.approx(2 * 4900 * 15 * 0.19)


def test_close_profit_and_floating_profit_options_of_available():
    def day(params: LedgerParams) -> float:
        ledger = Ledger("9999", "1", balance=1_000_000, trading_day="20230420", params=params)
        book(ledger, 1, SC, trade(SC, "1", "0", "0", 500.0, 2, day="20230420"))
        book(ledger, 2, SC, trade(SC, "2", "1", "3", 505.0, 1, day="20230420"))  # +5,000 closed, free close-today
        ledger.mark(SC, 490.0)  # the remaining lot: -10,000 floating
        return ledger.available()
    base = 1_000_000 - 40 + 5_000 - 10_000 - 500 * 1000 * 0.17
    assert day(LedgerParams()) == pytest.approx(base)
    assert day(LedgerParams(AvailIncludeCloseProfit="2")) == pytest.approx(base - 5_000)
    assert day(LedgerParams(Algorithm="3")) == pytest.approx(base + 10_000)  # the loss is not deducted
    assert day(LedgerParams(Algorithm="4")) == pytest.approx(base + 10_000)


def test_short_record_shows_pending_buy_to_close_in_long_frozen():
    ledger = Ledger("9999", "1", balance=10_000_000, trading_day="20230215")
    book(ledger, 1, AU, trade(AU, "1", "1", "0", 413.1, 3))
    ledger.freeze(2, AU, "0", "3", "1", 413.0, 2)
    (row,) = ledger.position_values()
    assert (row["PosiDirection"], row["LongFrozen"], row["ShortFrozen"]) == ("3", 2, 0)
    assert row["FrozenCommission"] == 0 and ledger.closable(AU, "0", "3", "1") == 1  # au close-today is free
    ledger.release(2, 2)
    assert ledger.closable(AU, "0", "3", "1") == 3


def test_deposit_and_withdraw_move_balance_and_respect_the_quota():
    ledger = Ledger("9999", "1", balance=100_000, trading_day="20230215")
    ledger.deposit(50_000)
    ledger.withdraw(20_000)
    a = ledger.account_values()
    assert (a["Deposit"], a["Withdraw"], a["Balance"]) == (50_000, 20_000, 130_000)
    assert a["WithdrawQuota"] == pytest.approx(0.8 * 130_000)
    with pytest.raises(LedgerError, match="withdraw quota 104000.00"):
        ledger.withdraw(104_001)
    ledger.settle({}, "20230216")
    assert ledger.account_values()["PreBalance"] == 130_000 and ledger.account_values()["Deposit"] == 0


def test_an_expired_contract_is_closed_at_settlement_without_fee():
    expiring = terms_for(parse_info("sc2303"))
    last_day = expiring.info.expire_date.strftime("%Y%m%d")
    ledger = Ledger("9999", "1", balance=1_000_000, trading_day=last_day)
    book(ledger, 1, expiring, trade(expiring, "1", "1", "0", 600.0, 1, day=last_day))
    summary = ledger.settle({"sc2303": 590.0}, "20991231", terms_of=lambda _: expiring)
    assert summary["account"]["CloseProfit"] == pytest.approx(10_000)  # short 1 lot, 600 -> 590
    assert summary["account"]["Commission"] == 20  # the opening fee only
    assert summary["details"] == [] and summary["closed"][0]["expired"]
    assert ledger.position_values() == [] and ledger.account_values()["PreBalance"] == pytest.approx(1_009_980)


def test_simnow_day_intraday_records_and_details():
    ledger = simnow_day()
    ledger.mark(AG, 4930)
    rows = {(p["InstrumentID"], p["PosiDirection"]): p for p in ledger.position_values()}
    long = rows[("ag2306", "2")]
    assert long["PositionDate"] == "1"  # today's record on SHFE
    assert (long["Position"], long["TodayPosition"], long["YdPosition"]) == (4, 4, 0)
    assert (long["OpenVolume"], long["CloseVolume"]) == (8, 4)
    assert long["OpenAmount"] == pytest.approx((4 * 4942 + 4 * 4927) * 15)
    assert long["CloseAmount"] == pytest.approx(4 * 4946 * 15)
    assert long["CloseProfit"] == pytest.approx(240.0) == long["CloseProfitByTrade"]
    assert long["Commission"] == pytest.approx(2.9652 + 2.9562)
    assert long["PositionCost"] == pytest.approx(4 * 4927 * 15) == long["OpenCost"]
    assert long["PositionProfit"] == pytest.approx(4 * (4930 - 4927) * 15)
    assert long["UseMargin"] == pytest.approx(4 * 4927 * 15 * 0.19)  # today's lots at the open price
    assert (long["PreSettlementPrice"], long["SettlementPrice"]) == (4941, 4930)  # latest price intraday
    short = rows[("ag2306", "3")]
    assert short["PositionProfit"] == pytest.approx(-2 * (4930 - 4927) * 15)
    details = [d for d in ledger.detail_values() if d["InstrumentID"] == "ag2306" and d["Direction"] == "0"]
    assert [(d["TradeID"].strip(), d["Volume"], d["CloseVolume"]) for d in details] == [("72736", 0, 4),
                                                                                         ("168930", 4, 0)]
    assert details[0]["CloseProfitByDate"] == pytest.approx(240.0)
    assert details[1]["LastSettlementPrice"] == 4941
    a = ledger.account_values()
    assert a["CurrMargin"] == pytest.approx(4 * 4927 * 15 * 0.19 + 2 * 413.1 * 1000 * 0.14)
    assert a["Commission"] == pytest.approx(11.3995)


def test_a_tick_of_the_old_day_handed_in_after_settlement_is_ignored():
    ledger = simnow_day()
    ledger.settle({"ag2306": 4928, "au2308": 413.8}, "20230216")
    before = (ledger.account_values(), ledger.position_values())
    # The old day's last tick (its TradingDay 20230215) reaches the ledger after the settlement.
    ledger.mark(AG, 4990, pre_settlement=4941, trading_day="20230215")
    assert (ledger.account_values(), ledger.position_values()) == before
    # A tick of the new day marks the yesterday lots against the settlement: 4 long, 2 short ag.
    ledger.mark(AG, 4930, pre_settlement=4928, trading_day="20230216")
    assert ledger.account_values()["PositionProfit"] == pytest.approx((4 - 2) * (4930 - 4928) * 15)


def test_a_settlement_at_the_ledgers_fallback_is_rebased_on_the_exchanges_price(caplog):
    # No ag settlement price reached the ledger (a restart across the day end): it settles ag at
    # its last mark, 4942.  The new day's first ag tick carries the exchange's 4928 (the SimNow
    # statement's): re-based on it, the account is the statement's to the cent.
    ledger = simnow_day()
    ledger.settle({"au2308": 413.8}, "20230216")
    ledger = Ledger.from_state(json.loads(json.dumps(ledger.to_state())))  # stored, then a new process
    assert ledger.account_values()["PreBalance"] == pytest.approx(9_998_858.59 - 4 * (4928 - 4942) * 15
                                                                  + 2 * (4928 - 4942) * 15, abs=0.005)
    with caplog.at_level("WARNING", logger="ctpshim.broker.ledger"):
        ledger.mark(AG, 4930, pre_settlement=4928, trading_day="20230216")
    assert "ag2306 at 4942" in caplog.text and "4928" in caplog.text and "re-based" in caplog.text
    a = ledger.account_values()
    assert round(a["PreBalance"], 2) == 9_998_858.59  # Balance c/f of the statement
    assert round(a["PreMargin"], 2) == 172_043.20  # its Margin Occupied
    long = next(p for p in ledger.position_values() if p["InstrumentID"] == "ag2306" and p["PosiDirection"] == "2")
    assert long["PreSettlementPrice"] == 4928 and long["PositionProfit"] == pytest.approx(4 * (4930 - 4928) * 15)
    assert round(long["PreMargin"], 2) == 56_179.20
    assert all(d["LastSettlementPrice"] == 4928 for d in ledger.detail_values() if d["InstrumentID"] == "ag2306")
    assert a["Balance"] == pytest.approx(a["PreBalance"] + 4 * 2 * 15 - 2 * 2 * 15)  # au marked at 413.8
    again = Ledger.from_state(json.loads(json.dumps(ledger.to_state())))
    again.mark(AG, 4930, pre_settlement=4928, trading_day="20230216")
    assert (again.position_values(), again.account_values()) == (ledger.position_values(), ledger.account_values())
    # An instrument the ledger did not settle takes the feed's pre-settlement for its new lots.
    ledger.mark(SC, 575.0, pre_settlement=571.8, trading_day="20230216")
    book(ledger, 9, SC, trade(SC, "9", "0", "0", 575.0, 1, day="20230216"))
    assert next(d for d in ledger.detail_values() if d["InstrumentID"] == "sc2306")["LastSettlementPrice"] == 571.8
    with pytest.raises(LedgerError, match="trading_day 20230216"):
        ledger.mark(AG, 4930, trading_day=20230216)  # type: ignore[arg-type]


def test_a_lot_opened_before_the_pre_settlement_was_known_takes_it_from_the_next_mark():
    # The counter may fill an order before it marked the instrument (no tick seen yet by it).
    ledger = Ledger("9999", "1", balance=1_000_000, trading_day="20230215")
    book(ledger, 1, AG, trade(AG, "1", "0", "0", 4942, 1))
    assert [d["LastSettlementPrice"] for d in ledger.detail_values()] == [0]
    ledger.mark(AG, 4945, pre_settlement=4941, trading_day="20230215")
    assert [d["LastSettlementPrice"] for d in ledger.detail_values()] == [4941]
    # The statement's Prev. Sttl of the lot is then the pre-settlement, as on SimNow's (4941).
    summary = ledger.settle({"ag2306": 4928}, "20230216")
    assert [r["LastSettlementPrice"] for r in summary["positions"]] == [4941]


def test_a_hedge_orders_close_is_costed_on_its_own_records_lots():
    # DCE m (one record per direction and hedge flag): 0.2 a lot to close, 0.1 to close today
    # (broker table).  Hedge '3' holds 2 yesterday lots and 2 of today's; a 3-lot close takes the
    # 2 yesterday lots first, then 1 of today's: 2 x 0.2 + 1 x 0.1 = 0.5 (not 3 x 0.2).
    m = terms_for(parse_info("m2309"))
    ledger = Ledger("9999", "1", balance=1_000_000, trading_day="20230420")
    book(ledger, 1, m, trade(m, "1", "0", "0", 3000, 2, day="20230420", hedge="3"))
    ledger.settle({"m2309": 3010}, "20230421")
    book(ledger, 2, m, trade(m, "2", "0", "0", 3020, 2, day="20230421", hedge="3"))
    margin, commission = ledger.order_cost(m, "1", "1", 3030.0, 3, hedge="3")
    assert (margin, commission) == (0.0, pytest.approx(2 * 0.2 + 1 * 0.1))
    before = ledger.account_values()["FrozenCommission"]
    ledger.freeze(3, m, "1", "1", "3", 3030.0, 3)
    assert ledger.account_values()["FrozenCommission"] - before == pytest.approx(commission)


def test_an_order_is_costed_at_the_price_it_is_handed_and_nothing_else():
    # The costing price of a market order is the caller's rule (checks.cost_price); the ledger
    # adds no fallback of its own, so the check (order_cost) and the freeze agree whatever it is.
    # sc (INE, 1000 barrels): open 1 lot at 500 = 500 x 1000 x the long margin ratio.
    ledger = Ledger("9999", "1", balance=1_000_000, trading_day="20230420")
    ledger.mark(SC, 510.0, pre_settlement=505.0)
    assert ledger.order_cost(SC, "0", "0", 500.0, 1) == \
        (pytest.approx(500 * 1000 * SC.rates.LongMarginRatioByMoney + SC.rates.LongMarginRatioByVolume),
         pytest.approx(SC.rates.commission(1, 500.0, "0")))
    # No price: no margin and only the per-lot fee (sc: 20 yuan a lot), not the last (510) nor
    # the pre-settlement (505).
    assert ledger.order_cost(SC, "0", "0", 0.0, 1) == (0.0, SC.rates.OpenRatioByVolume) == (0.0, 20.0)
    ledger.freeze(1, SC, "0", "0", "1", 0.0, 1)
    a = ledger.account_values()
    assert (a["FrozenMargin"], a["FrozenCommission"]) == (0.0, 20.0)


def test_a_pre_settlement_difference_is_only_logged_when_rebasing_would_not_be_sound(caplog):
    # A price the counter settled at (the feed's, or its VWAP rule) is kept: ag settled at 4928.
    ledger = simnow_day()
    ledger.settle({"ag2306": 4928, "au2308": 413.8}, "20230216")
    before = ledger.account_values()
    with caplog.at_level("WARNING", logger="ctpshim.broker.ledger"):
        ledger.mark(AG, 4930, pre_settlement=4925, trading_day="20230216")
        ledger.mark(AG, 4931, pre_settlement=4925, trading_day="20230216")
    assert caplog.text.count("ag2306") == 1 and "stays on 4928" in caplog.text
    assert ledger.account_values()["PreBalance"] == before["PreBalance"]
    long = next(p for p in ledger.position_values() if p["InstrumentID"] == "ag2306" and p["PosiDirection"] == "2")
    assert long["PreSettlementPrice"] == 4928 and long["PositionProfit"] == pytest.approx(4 * (4931 - 4928) * 15)
    # A fallback settlement of a product the account already traded today: its close profit and
    # fees rest on the ledger's 4942, so it is kept too.
    caplog.clear()
    ledger = simnow_day()
    ledger.settle({"au2308": 413.8}, "20230216")
    book(ledger, 1, AG, trade(AG, "200001", "1", "1", 4931, 1, day="20230216"))  # sell-close a yesterday lot
    before = ledger.account_values()["PreBalance"]
    with caplog.at_level("WARNING", logger="ctpshim.broker.ledger"):
        ledger.mark(AG, 4930, pre_settlement=4928, trading_day="20230216")
    assert "already traded" in caplog.text and "stays on 4942" in caplog.text
    assert ledger.account_values()["PreBalance"] == before
    assert all(d["LastSettlementPrice"] == 4942 for d in ledger.detail_values() if d["InstrumentID"] == "ag2306")
