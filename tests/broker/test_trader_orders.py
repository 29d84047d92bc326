"""The order rules end to end, as a program sees them through ``from ctpshim import tdapi, mdapi``
on ``sim://`` at speed=max: the callback sequences per exchange (SFIT's "报单回调规则",
SIM_TRADING.md 1.4), the ids and dates of the reports (0.6), the CTP-layer rejects (2.4:
OnRspOrderInsert + OnErrRtnOrderInsert, never OnRtnOrder), the exchange-layer rejects (0.1:
OnRtnOrder '5'/'4' with the code in StatusMsg), fills level by level against the displayed book,
and no look-ahead (an order sent from tick N's OnRtnDepthMarketData meets tick N's book).

Orders are sent from the md callback (``Program.on_tick``) with prices read from the tick the
program holds, so the expected fills are worked from that tick's own levels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ctpshim.broker import counter as counter_module

from .trader_harness import Program, Tick

THURSDAY_NIGHT = "2026-11-19T21:05"  # night session of trading day 20261120
FRIDAY_MORNING = "2026-11-20T09:35"
FRIDAY_CLOSE = "2026-11-20T14:59:55"
EXCHANGE = {"rb2701": "SHFE", "m2701": "DCE", "TA701": "CZCE", "sc2701": "INE", "si2701": "GFEX", "IF2612": "CFFEX"}
TICK_SIZE = {"rb2701": 1.0, "m2701": 1.0, "TA701": 2.0, "sc2701": 0.1, "si2701": 5.0, "IF2612": 0.2}


def front(tmp_path: Path, start: str, instruments: tuple[str, ...], *extra: str) -> str:
    settings = (f"start={start}", f"instruments={','.join(instruments)}", "seed=11", "speed=max",
                f"trader.db={tmp_path / 'trader.sqlite'}", "trader.flow_control=false", *extra)
    return "sim://?" + "&".join(settings)


@pytest.fixture(autouse=True)
def _fresh_counters():
    yield
    counter_module.forget_counters()


@pytest.fixture
def program(tmp_path):
    made: list[Program] = []

    def make(start: str, instruments: tuple[str, ...], *extra: str, confirm: bool = True) -> Program:
        made.append(Program(tmp_path / f"p{len(made)}", front(tmp_path, start, instruments, *extra), instruments,
                            confirm=confirm))
        return made[-1]

    yield make
    for made_program in made:
        made_program.close()


def once_per_instrument(program: Program, send: Any, after: int = 3) -> dict[str, Tick]:
    """Call ``send(tick)`` once for each instrument, on its ``after``-th tick; returns the ticks used."""
    used: dict[str, Tick] = {}

    def hook(tick: Tick) -> None:
        if tick.index == after and tick.InstrumentID not in used:
            send(tick)
            with program.cond:  # the test reads what send() did once it sees the tick here
                used[tick.InstrumentID] = tick

    program.on_tick(hook)
    program.wait_for(lambda: len(used) == len(program.instruments), "a tick of every instrument")
    return used


def first_fill(limit: float, level: float, last: float) -> float:
    """The price an arriving order trades at on the first level it meets: the median of its limit,
    the level's price and the last price (SIM_TRADING.md 1.4; a market order: limit +inf)."""
    return sorted((limit, level, last))[1]


def orders_only(story: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [entry for entry in story if entry[0] == "order"]


# -- a crossing order, per exchange; ids and dates ----------------------------------------------------


def test_a_crossing_order_at_night_tells_each_exchanges_sequence_ids_and_dates(program):
    instruments = ("rb2701", "m2701", "TA701")
    trader = program(THURSDAY_NIGHT, instruments)
    refs: dict[str, str] = {}
    refs_price: dict[str, float] = {}

    def send(tick: Tick) -> None:
        instrument = tick.InstrumentID
        refs_price[instrument] = tick.AskPrice1 + 2 * TICK_SIZE[instrument]
        refs[instrument] = trader.order(instrument, EXCHANGE[instrument], refs_price[instrument])

    used = once_per_instrument(trader, send)
    for ref in refs.values():
        trader.wait_for(lambda: trader.finished(ref), f"order {ref} filled")
    told = {instrument: trader.story(ref) for instrument, ref in refs.items()}
    one_lot = {i: ("trade", first_fill(refs_price[i], used[i].AskPrice1, used[i].LastPrice), 1) for i in instruments}
    # SHFE answers after matching: Unknown, Unknown, 全部成交报单已提交 (submit status still 0), trade.
    assert told["rb2701"] == [("order", "a", "0", "报单已提交", 0), ("order", "a", "0", "报单已提交", 0),
                              ("order", "0", "0", "全部成交报单已提交", 1), one_lot["rb2701"]]
    # DCE reports 未成交 first even for an immediate fill, and CTP's synthesised 全部成交 repeats nothing.
    assert told["m2701"] == [("order", "a", "0", "报单已提交", 0), ("order", "3", "3", "未成交", 0),
                             ("order", "0", "3", "全部成交", 1), one_lot["m2701"]]
    # CZCE: 未成交 first, then the previous state repeated before the new one.
    assert told["TA701"] == [("order", "a", "0", "报单已提交", 0), ("order", "3", "3", "未成交", 0),
                             ("order", "3", "3", "未成交", 0), ("order", "0", "3", "全部成交", 1), one_lot["TA701"]]
    for instrument, ref in refs.items():
        reports, trade = trader.reports(ref), trader.trades(ref)[0]
        tick = used[instrument]
        assert tick.TradingDay == "20261120" and tick.ActionDay == "20261119"
        # OrderSysID and TradeID right-aligned in 12 characters (SIM_TRADING.md 0.6), the same in the
        # trade as in the order; the first report (Unknown) comes before the exchange gave one.
        sys_id = reports[-1].OrderSysID
        assert sys_id.strip().isdigit() and sys_id == sys_id.strip().rjust(12)
        assert trade.TradeID.strip().isdigit() and trade.TradeID == trade.TradeID.strip().rjust(12)
        assert trade.OrderSysID == sys_id and trade.ExchangeID == EXCHANGE[instrument]
        assert trade.TradeTime == tick.UpdateTime and trade.TradingDay == "20261120"
        # InsertDate/TradeDate: the calendar day on SHFE, the trading day on DCE and CZCE (0.6).
        calendar = "20261119" if instrument == "rb2701" else "20261120"
        assert {r.InsertDate for r in reports} == {calendar} and trade.TradeDate == calendar
        assert all(r.TradingDay == "20261120" for r in reports)



def test_ine_and_cffex_answer_a_crossing_order_like_shfe_and_gfex_like_dce(program):
    instruments = ("sc2701", "IF2612", "si2701")
    trader = program(FRIDAY_MORNING, instruments)
    refs: dict[str, str] = {}

    def send(tick: Tick) -> None:
        instrument = tick.InstrumentID
        refs[instrument] = trader.order(instrument, EXCHANGE[instrument], tick.AskPrice1 + TICK_SIZE[instrument])

    used = once_per_instrument(trader, send)
    for ref in refs.values():
        trader.wait_for(lambda: trader.finished(ref), f"order {ref} filled")
    after_match = [("order", "a", "0", "报单已提交", 0), ("order", "a", "0", "报单已提交", 0),
                   ("order", "0", "0", "全部成交报单已提交", 1)]
    no_repeat = [("order", "a", "0", "报单已提交", 0), ("order", "3", "3", "未成交", 0), ("order", "0", "3", "全部成交", 1)]
    for instrument, expected in (("sc2701", after_match), ("IF2612", after_match), ("si2701", no_repeat)):
        tick = used[instrument]
        price = first_fill(tick.AskPrice1 + TICK_SIZE[instrument], tick.AskPrice1, tick.LastPrice)
        assert trader.story(refs[instrument]) == expected + [("trade", price, 1)], instrument


def test_after_midnight_on_friday_night_shfe_dates_the_trade_saturday_for_mondays_trading_day(program):
    trader = program("2026-11-20T23:59:58", ("au2612",))  # gold trades on to 02:30
    refs: list[tuple[str, Tick]] = []

    def hook(tick: Tick) -> None:
        if not refs and tick.ActionDay == "20261121":
            refs.append((trader.order("au2612", "SHFE", tick.AskPrice1 + 0.02 * 3), tick))

    trader.on_tick(hook)
    trader.wait_for(lambda: refs and trader.finished(refs[0][0]), "a fill after midnight")
    ref, tick = refs[0]
    (trade,) = trader.trades(ref)
    assert (tick.TradingDay, trade.TradingDay) == ("20261123", "20261123")
    assert trade.TradeDate == "20261121" and {r.InsertDate for r in trader.reports(ref)} == {"20261121"}
    assert (trade.Price, trade.TradeTime) == (first_fill(tick.AskPrice1 + 0.06, tick.AskPrice1, tick.LastPrice),
                                              tick.UpdateTime)

# -- resting orders: filled later, cancelled ---------------------------------------------------------


def test_resting_orders_are_filled_by_a_later_tick_at_their_price_or_cancelled(program):
    instruments = ("rb2701", "m2701")
    trader = program(FRIDAY_MORNING, instruments)
    filled: dict[str, str] = {}
    cancelled: dict[str, str] = {}

    def send(tick: Tick) -> None:
        instrument, exchange = tick.InstrumentID, EXCHANGE[tick.InstrumentID]
        filled[instrument] = trader.order(instrument, exchange, tick.BidPrice1)  # joins the best bid
        cancelled[instrument] = trader.order(instrument, exchange, tick.BidPrice1 - 30 * TICK_SIZE[instrument])

    used = once_per_instrument(trader, send)
    for instrument in instruments:
        trader.wait_for(lambda: trader.finished(filled[instrument]), f"the resting {instrument} order filled")
        ref = cancelled[instrument]
        trader.wait_for(lambda: len(trader.reports(ref)) == 2, f"{instrument} order {ref} resting")
        trader.cancel(instrument, EXCHANGE[instrument], ref)
        trader.wait_for(lambda: trader.finished(ref), f"{instrument} order {ref} cancelled")
    for instrument in instruments:
        limit = used[instrument].BidPrice1
        trade = trader.trades(filled[instrument])[0]
        # In lockstep the fill is told before the program is given the tick that made it.
        seen = trader.ticks[instrument]
        at = trader.trade_seen_at[trade.TradeID]
        trader.wait_for(lambda: len(seen) > at, "the tick that filled it")
        maker = seen[at]
        assert maker.index > used[instrument].index
        # A resting order fills at its own price, on a tick that reaches it: the ask came down to it
        # or a trade printed at (or through) it; any earlier tick whose ask crossed would have filled it.
        assert trade.Price == limit and trade.TradeTime == maker.UpdateTime
        previous = seen[maker.index - 1]
        assert maker.AskPrice1 <= limit or (maker.LastPrice <= limit and maker.Volume > previous.Volume)
        assert all(t.AskPrice1 > limit for t in seen[used[instrument].index + 1:maker.index])
    # SHFE: resting 未成交, then on the fill the state repeated, 全部成交, the trade.  DCE: no repeat.
    shfe_fill = ("trade", used["rb2701"].BidPrice1, 1)
    assert trader.story(filled["rb2701"]) == [
        ("order", "a", "0", "报单已提交", 0), ("order", "3", "3", "未成交", 0),
        ("order", "3", "3", "未成交", 0), ("order", "0", "3", "全部成交", 1), shfe_fill]
    assert trader.story(filled["m2701"]) == [
        ("order", "a", "0", "报单已提交", 0), ("order", "3", "3", "未成交", 0),
        ("order", "0", "3", "全部成交", 1), ("trade", used["m2701"].BidPrice1, 1)]
    # An accepted cancel: the state repeated with OrderSubmitStatus 1 (cancel submitted), then 已撤单.
    for instrument in instruments:
        assert trader.story(cancelled[instrument]) == [
            ("order", "a", "0", "报单已提交", 0), ("order", "3", "3", "未成交", 0),
            ("order", "3", "1", "未成交", 0), ("order", "5", "3", "已撤单", 0)]
    account = trader.account()
    assert account.FrozenMargin == 0 and account.FrozenCommission == 0


# -- FAK, FOK, market orders ------------------------------------------------------------------------------


def test_fak_takes_the_displayed_volume_and_cancels_the_rest_in_each_exchanges_order(program):
    instruments = ("rb2701", "m2701", "TA701")
    trader = program(FRIDAY_MORNING, instruments)
    fak: dict[str, str] = {}
    late: dict[str, str] = {}

    def send(tick: Tick) -> None:
        instrument, exchange = tick.InstrumentID, EXCHANGE[tick.InstrumentID]
        fak[instrument] = trader.order(instrument, exchange, tick.AskPrice1, int(tick.AskVolume1) + 3,
                                       time_condition="1")
        # A second FAK on the same tick finds the level's lots taken.
        late[instrument] = trader.order(instrument, exchange, tick.AskPrice1, 1, time_condition="1")

    used = once_per_instrument(trader, send)
    for instrument in instruments:
        for ref in (fak[instrument], late[instrument]):
            trader.wait_for(lambda: trader.finished(ref), f"FAK {ref} of {instrument} finished")
    told = {i: [entry[:2] + entry[3:] if entry[0] == "order" else entry for entry in trader.story(fak[i])]
            for i in instruments}
    shown = {i: int(used[i].AskVolume1) for i in instruments}
    take = {i: ("trade", used[i].AskPrice1, shown[i]) for i in instruments}
    # SFIT's FAK partials (SIM_TRADING.md 1.4), the submit status left aside:
    assert told["rb2701"] == [("order", "a", "报单已提交", 0), ("order", "5", "已撤单", shown["rb2701"]),
                              ("order", "5", "已撤单", shown["rb2701"]), take["rb2701"]]
    assert told["m2701"] == [("order", "a", "报单已提交", 0), ("order", "3", "未成交", 0),
                             ("order", "1", "部分成交", shown["m2701"]), take["m2701"],
                             ("order", "5", "已撤单", shown["m2701"])]
    assert told["TA701"] == [("order", "a", "报单已提交", 0), ("order", "3", "未成交", 0),
                             ("order", "3", "未成交", 0), ("order", "1", "部分成交", shown["TA701"]), take["TA701"],
                             ("order", "5", "已撤单", shown["TA701"])]
    for instrument in instruments:
        assert trader.trades(late[instrument]) == [] and trader.reports(late[instrument])[-1].OrderStatus == "5"
    account = trader.account()
    assert account.FrozenMargin == 0 and account.FrozenCommission == 0


def test_fok_fills_all_across_levels_or_nothing(program):
    trader = program(FRIDAY_MORNING, ("rb2701",))
    refs: dict[str, str] = {}

    def send(tick: Tick) -> None:
        shown = int(tick.AskVolume1) + int(tick.AskVolume2)
        refs["all"] = trader.order("rb2701", "SHFE", tick.AskPrice2, int(tick.AskVolume1) + 1, time_condition="1",
                                   volume_condition="3")
        # After the first took AskVolume1 + 1, fewer than AskVolume2 lots are left within this price.
        refs["none"] = trader.order("rb2701", "SHFE", tick.AskPrice2, shown - int(tick.AskVolume1),
                                    time_condition="1", volume_condition="3")

    tick = once_per_instrument(trader, send)["rb2701"]
    for ref in refs.values():
        trader.wait_for(lambda: trader.finished(ref), f"FOK {ref} finished")
    first = first_fill(tick.AskPrice2, tick.AskPrice1, tick.LastPrice)
    assert [(t.Price, t.Volume) for t in trader.trades(refs["all"])] == [(first, tick.AskVolume1),
                                                                         (tick.AskPrice2, 1)]
    assert trader.reports(refs["all"])[-1].OrderStatus == "0"
    assert trader.trades(refs["none"]) == []
    assert [(r.OrderStatus, r.StatusMsg, r.VolumeTraded) for r in trader.reports(refs["none"])][-1] == \
        ("5", "已撤单", 0)
    account = trader.account()
    assert account.FrozenMargin == 0 and account.FrozenCommission == 0


def test_a_market_order_walks_the_book_on_dce_and_is_refused_with_15_on_shfe(program):
    trader = program(FRIDAY_MORNING, ("m2701", "rb2701"))
    refs: dict[str, str] = {}

    def send(tick: Tick) -> None:
        market = dict(price_type="1", time_condition="1")  # AnyPrice + IOC: CTP's market order
        if tick.InstrumentID == "m2701":
            refs["dce"] = trader.order("m2701", "DCE", 0.0, int(tick.AskVolume1) + 1, **market)
        else:
            refs["shfe"] = trader.order("rb2701", "SHFE", 0.0, 1, **market)

    used = once_per_instrument(trader, send)
    trader.wait_for(lambda: trader.finished(refs["dce"]), "the DCE market order")
    tick = used["m2701"]
    first = first_fill(float("inf"), tick.AskPrice1, tick.LastPrice)
    assert [(t.Price, t.Volume) for t in trader.trades(refs["dce"])] == [(first, tick.AskVolume1),
                                                                        (tick.AskPrice2, 1)]
    reports = trader.reports(refs["dce"])
    assert [(r.OrderStatus, r.StatusMsg) for r in reports[:2]] == [("a", "报单已提交"), ("3", "未成交")]
    assert (reports[-1].OrderStatus, reports[-1].VolumeTraded) == ("0", int(tick.AskVolume1) + 1)
    # Frozen at the limit price, booked at the fills' prices: m's 14% margin of the turnover and
    # 0.2 yuan a lot to open (SIM_TRADING.md 3.3).
    account = trader.account()
    turnover = (first * tick.AskVolume1 + tick.AskPrice2) * 10
    assert account.FrozenMargin == 0 and account.FrozenCommission == 0
    assert account.CurrMargin == pytest.approx(turnover * 0.14)
    assert account.Commission == pytest.approx(0.2 * (tick.AskVolume1 + 1))
    # SHFE takes no market orders (SIM_TRADING.md 0.5): refused by the CTP layer, no OnRtnOrder.
    trader.wait_for(lambda: trader.story(refs["shfe"])[-1:] == [("err", 15)], "the SHFE refusal")
    assert trader.story(refs["shfe"]) == [("rsp", 15), ("err", 15)]
    rsp = [args for args in trader.all("OnRspOrderInsert") if args[0].OrderRef == refs["shfe"]][0]
    assert (rsp[1].ErrorMsg, rsp[3]) == ("CTP:报单字段有误", True)


# -- partial fills against the displayed book, no look-ahead -------------------------------------------


def test_a_gfd_order_takes_level_after_level_and_rests_with_the_rest(program):
    trader = program(FRIDAY_MORNING, ("rb2701",))
    refs: list[str] = []

    def send(tick: Tick) -> None:
        volume = int(tick.AskVolume1) + int(tick.AskVolume2) + 1
        refs.append(trader.order("rb2701", "SHFE", tick.AskPrice2, volume))

    rested: list[Any] = []

    def on_trade(trade: Any) -> None:
        # Cancel from the callback of the second trade: in lockstep it is handled before the next
        # tick, which could otherwise fill the resting lot first.
        if len(trader.trades(refs[0])) == 2 and not rested:
            rested.append(trader.reports(refs[0])[-1])
            trader.cancel("rb2701", "SHFE", refs[0])

    trader.trade_hook = on_trade
    tick = once_per_instrument(trader, send)["rb2701"]
    (ref,) = refs
    shown = int(tick.AskVolume1) + int(tick.AskVolume2)
    trader.wait_for(lambda: trader.finished(ref), "the rest cancelled")
    # The first level at the median of the limit (AskPrice2), the level and the last price (SIM_TRADING.md
    # 1.4), the second at its own price, each up to its displayed volume; never beyond the limit.
    first = first_fill(tick.AskPrice2, tick.AskPrice1, tick.LastPrice)
    assert [(t.Price, t.Volume) for t in trader.trades(ref)] == [(first, tick.AskVolume1),
                                                                (tick.AskPrice2, tick.AskVolume2)]
    last = rested[0]
    assert (last.OrderStatus, last.StatusMsg, last.VolumeTraded, last.VolumeTotal) == ("1", "部分成交", shown, 1)
    assert [(r.OrderStatus, r.OrderSubmitStatus, r.StatusMsg) for r in trader.reports(ref)[-2:]] == \
        [("1", "1", "部分成交"), ("5", "3", "已撤单")]
    account = trader.account()
    assert account.FrozenMargin == 0 and account.FrozenCommission == 0
    # Margin of what was bought: SimNow's rb rate 16% of the open price x 10 (SIM_TRADING.md 3.3).
    turnover = (first * tick.AskVolume1 + tick.AskPrice2 * tick.AskVolume2) * 10
    assert account.CurrMargin == pytest.approx(turnover * 0.16)


@pytest.mark.parametrize("lockstep", ["true", "false"])
def test_an_order_sent_from_a_tick_meets_that_ticks_book(program, lockstep):
    trader = program(FRIDAY_MORNING, ("rb2701",), f"trader.lockstep={lockstep}")
    sent: dict[str, Tick] = {}

    def hook(tick: Tick) -> None:  # a buy at ask + 5 on even ticks, a sell at bid - 5 on odd ones
        if 2 <= tick.index < 14 and tick.index % 2 == 0:
            sent[trader.order("rb2701", "SHFE", tick.AskPrice1 + 5)] = tick
        elif 2 <= tick.index < 14:
            sent[trader.order("rb2701", "SHFE", tick.BidPrice1 - 5, direction="1")] = tick

    trader.on_tick(hook)
    trader.wait_for(lambda: len(sent) == 12 and all(trader.finished(ref) for ref in sent), "12 orders filled")
    seen = trader.ticks["rb2701"]
    trader.wait_for(lambda: len(seen) > 14, "the tick after the last order's")

    def taken(tick: Tick) -> str:  # the level the order sent from this tick meets
        return "AskPrice1" if tick.index % 2 == 0 else "BidPrice1"

    # The test tells look-ahead apart only if that price moved between some tick and the next one.
    assert any(seen[t.index + 1].values[taken(t)] != t.values[taken(t)] for t in sent.values())
    for ref, tick in sent.items():
        (trade,) = trader.trades(ref)
        assert (trade.Price, trade.Volume, trade.TradeTime) == (tick.values[taken(tick)], 1, tick.UpdateTime), ref
        assert trader.reports(ref)[0].InsertTime == tick.UpdateTime




def test_orders_sent_from_on_rtn_trade_meet_the_same_tick_in_lockstep(program):
    trader = program(FRIDAY_MORNING, ("rb2701",), "trader.lockstep=true")
    chain = 10  # alternately buy at the ask and sell at the bid of one tick, each sent from the last fill
    chosen: list[Tick] = []

    def hook(tick: Tick) -> None:
        if not chosen and tick.index >= 3 and min(tick.AskVolume1, tick.BidVolume1) >= chain // 2:
            chosen.append(tick)
            trader.order("rb2701", "SHFE", tick.AskPrice1)

    def on_trade(trade: Any) -> None:
        if int(trade.OrderRef) < chain:
            tick = chosen[0]
            if trade.Direction == "0":
                trader.order("rb2701", "SHFE", tick.BidPrice1, direction="1", offset="3")
            else:
                trader.order("rb2701", "SHFE", tick.AskPrice1)

    trader.trade_hook = on_trade
    trader.on_tick(hook)
    trader.wait_for(lambda: trader.count("OnRtnTrade") == chain, f"{chain} trades")
    tick = chosen[0]
    trades = [args[0] for args in trader.all("OnRtnTrade")]
    # Lockstep: the whole chain is handled before the next tick reaches the program, on this tick's book.
    assert [trader.trade_seen_at[t.TradeID] for t in trades] == [tick.index + 1] * chain
    assert [(t.Price, t.TradeTime) for t in trades] == \
        [(tick.AskPrice1 if n % 2 == 0 else tick.BidPrice1, tick.UpdateTime) for n in range(chain)]

def test_an_order_placed_before_market_data_still_meets_the_programs_tick(program):
    trader = program(FRIDAY_MORNING, ("rb2701",))
    early = trader.order("rb2701", "SHFE", 3000.0)  # before any md API: the counter watches rb2701 itself
    trader.wait_for(lambda: len(trader.reports(early)) == 2, "the early order resting")
    sent: dict[str, Tick] = {}

    def hook(tick: Tick) -> None:
        if 2 <= tick.index < 22:
            sent[trader.order("rb2701", "SHFE", tick.AskPrice1 + 5)] = tick

    trader.on_tick(hook)
    trader.wait_for(lambda: len(sent) == 20 and all(trader.finished(ref) for ref in sent), "20 orders filled")
    fills = {ref: (trader.trades(ref)[0].Price, trader.trades(ref)[0].TradeTime) for ref in sent}
    assert fills == {ref: (tick.AskPrice1, tick.UpdateTime) for ref, tick in sent.items()}

# -- rejects --------------------------------------------------------------------------------------------


def refused(trader: Program, code: int, *args: Any, **kwargs: Any) -> tuple[str, Any, bool]:
    """Send ``trader.order(*args, **kwargs)``; its CTP-layer refusal must be exactly
    OnRspOrderInsert then OnErrRtnOrderInsert with ``code``, never an OnRtnOrder.  Returns
    (ErrorMsg, the echoed input, bIsLast)."""
    ref = kwargs.get("ref")
    before = len(trader.story(ref)) if ref else 0
    ref = trader.order(*args, **kwargs)
    trader.wait_for(lambda: trader.story(ref)[-1:] == [("err", code)], f"order {ref} refused with {code}")
    assert trader.story(ref)[before:] == [("rsp", code), ("err", code)]
    rsp = [args for args in trader.all("OnRspOrderInsert") if args[0].OrderRef == ref][-1]
    err = [args for args in trader.all("OnErrRtnOrderInsert") if args[0].OrderRef == ref][-1]
    assert err[1].ErrorMsg == rsp[1].ErrorMsg
    return rsp[1].ErrorMsg, rsp[0], rsp[3]


def test_ctp_layer_rejects_answer_the_requester_and_freeze_nothing(program):
    # 5000 yuan: one rb lot at 3000 (4800 margin) is the most it can pay for.
    trader = program(FRIDAY_MORNING, ("rb2701", "m2701"), "trader.balance=5000", confirm=False)
    assert refused(trader, 42, "rb2701", "SHFE", 3000.0)[0] == "CTP:结算结果未确认"
    trader.confirm()
    message, echo, last = refused(trader, 15, "rb2701", "SHFE", 3000.0, price_type="1", time_condition="1")
    assert message == "CTP:报单字段有误" and last is True and echo.InstrumentID == "rb2701"
    assert refused(trader, 16, "xx2701", "SHFE", 3000.0)[0] == "CTP:找不到合约"
    # Closing what is not held: 30 on DCE; on SHFE 51 for Close (yesterday's) and 50 for CloseToday.
    assert refused(trader, 30, "m2701", "DCE", 2800.0, direction="1", offset="1")[0] == "CTP:平仓量超过持仓量"
    assert refused(trader, 51, "rb2701", "SHFE", 3000.0, direction="1", offset="1")[0] == "CTP:平昨仓位不足"
    assert refused(trader, 50, "rb2701", "SHFE", 3000.0, direction="1", offset="3")[0] == "CTP:平今仓位不足"
    taken = trader.order("rb2701", "SHFE", 3000.0, ref="20")  # no tick yet: it rests, its margin frozen
    trader.wait_for(lambda: len(trader.reports(taken)) == 2, "order 20 resting")
    assert trader.reports(taken)[-1].OrderStatus == "3"
    for ref in ("20", "19"):
        assert refused(trader, 22, "rb2701", "SHFE", 3000.0, ref=ref)[0] == "CTP:报单错误：不允许重复报单"
    assert refused(trader, 31, "rb2701", "SHFE", 3000.0, ref="21")[0] == "CTP:资金不足"
    account = trader.account()
    # Only the resting order holds money: SimNow's rb rates (SIM_TRADING.md 3.3), 16% margin and
    # 1e-4 of the turnover 3000 x 10.
    assert account.FrozenMargin == pytest.approx(4800.0)
    assert account.FrozenCommission == pytest.approx(3.0, abs=0.01)
    assert account.Available == pytest.approx(5000 - 4800 - account.FrozenCommission)


def test_an_order_of_another_or_a_blank_investor_or_a_non_ascii_ref_is_refused_and_freezes_nothing(program):
    trader = program(FRIDAY_MORNING, ("rb2701",))
    before = trader.account()
    message = refused(trader, 146, "rb2701", "SHFE", 3000.0, investor="")[0]
    assert message == "CTP:缺少InvestorID字段，请填入InvestorID"
    assert refused(trader, 3, "rb2701", "SHFE", 3000.0, investor="someone_else")[0] == "CTP:不合法的登录"
    assert refused(trader, 3, "rb2701", "SHFE", 3000.0, broker="8888")[0] == "CTP:不合法的登录"
    # '²' and '１' pass str.isdigit(); CTP's OrderRef is ASCII digits: 22, not an exception
    for ref in ("²", "１"):
        assert refused(trader, 22, "rb2701", "SHFE", 3000.0, ref=ref)[0] == "CTP:报单错误：不允许重复报单"
    after = trader.account()
    assert (after.FrozenMargin, after.FrozenCommission, after.Available) == (0.0, 0.0, before.Available)
    taken = trader.order("rb2701", "SHFE", 3000.0)  # the login's own order still goes through
    trader.wait_for(lambda: len(trader.reports(taken)) >= 2, f"order {taken} answered")
    assert trader.reports(taken)[-1].InvestorID == before.AccountID


def test_the_sims_price_limits_are_the_ones_the_exchange_check_applies(program):
    # TL (CFFEX, 3.5 % band, tick 0.01) at pre-settlement 74.00: 74 x 1.035 = 76.59 and
    # 74 x 0.965 = 71.41 exactly; both edges are valid prices (SIM_TRADING.md 1.4).
    trader = program(FRIDAY_MORNING, ("TL2703",), "price=TL2703:74")
    refs: dict[str, str] = {}

    def send(tick: Tick) -> None:
        refs["up"] = trader.order("TL2703", "CFFEX", 76.59)
        refs["above"] = trader.order("TL2703", "CFFEX", 76.60)

    used = once_per_instrument(trader, send)["TL2703"]
    assert (used.UpperLimitPrice, used.LowerLimitPrice) == (76.59, 71.41)
    trader.wait_for(lambda: trader.finished(refs["above"]), "the order above the limit refused")
    assert trader.reports(refs["above"])[-1].StatusMsg.startswith("49:")
    trader.wait_for(lambda: len(trader.reports(refs["up"])) >= 2, "the order at the limit answered")
    assert not trader.reports(refs["up"])[-1].StatusMsg.startswith("49:")


def test_exchange_rejects_come_as_order_reports_with_the_code_in_the_status_message(program):
    trader = program(FRIDAY_MORNING, ("rb2701",))
    refs: dict[int, str] = {}

    def send(tick: Tick) -> None:
        refs[48] = trader.order("rb2701", "SHFE", tick.AskPrice1 + 0.5)
        refs[49] = trader.order("rb2701", "SHFE", tick.UpperLimitPrice + 1)
        refs[50] = trader.order("rb2701", "SHFE", tick.LowerLimitPrice - 1, direction="1")

    once_per_instrument(trader, send)
    for code, ref in refs.items():
        trader.wait_for(lambda: trader.finished(ref), f"the {code} reject")
        story = trader.story(ref)
        # Unknown, then cancelled with InsertRejected: no OnRspOrderInsert, no ErrorID anywhere (0.1).
        assert [entry[:3] for entry in story] == [("order", "a", "0"), ("order", "5", "4")]
        assert story[1][3].startswith(f"{code}:已撤单报单被拒绝SHFE:")
        assert trader.reports(ref)[-1].OrderSysID == ""
    assert trader.story(refs[49])[1][3] == "49:已撤单报单被拒绝SHFE:价格超出涨停板"
    assert trader.story(refs[50])[1][3] == "50:已撤单报单被拒绝SHFE:价格跌破跌停板"
    account = trader.account()
    assert account.FrozenMargin == 0 and account.FrozenCommission == 0 and account.Available == 10_000_000


def test_an_order_after_the_close_is_refused_by_the_exchange_with_26(program):
    trader = program(FRIDAY_CLOSE, ("rb2701",))
    refs: dict[str, str] = {}

    def hook(tick: Tick) -> None:
        if tick.UpdateTime in ("14:59:59", "15:00:00") and tick.TradingDay == "20261120":
            key = f"{tick.UpdateTime}.{tick.UpdateMillisec:03d}"
            if key not in refs:
                refs[key] = trader.order("rb2701", "SHFE", tick.AskPrice1 + 2)

    trader.on_tick(hook)
    trader.wait_for(lambda: "15:00:00.000" in refs and all(trader.finished(r) for r in refs.values()), "the orders")
    # In the session's last half second it trades; on the closing snapshot it is refused (SIM_TRADING.md 2.4).
    assert trader.reports(refs["14:59:59.500"])[-1].OrderStatus == "0"
    closing = trader.story(refs["15:00:00.000"])
    assert closing == [("order", "a", "0", "报单已提交", 0),
                       ("order", "5", "4", "26:已撤单报单被拒绝SHFE:当前状态禁止此项操作", 0)]


def test_on_a_level_one_recording_an_order_takes_only_the_recorded_best_level(tmp_path):
    # vnpy's RM705 day (CZCE, 2017-03-20: one level a side, tests/data/SOURCES.md), at its own dates.
    address = (f"replay://?bundled=RM705&speed=max&rebase=none&trader.db={tmp_path / 'trader.sqlite'}"
               "&trader.flow_control=false")
    with Program(tmp_path / "replay", address, ("RM705",)) as trader:
        refs: list[str] = []

        def send(tick: Tick) -> None:
            refs.append(trader.order("RM705", "CZCE", tick.AskPrice1 + 10, int(tick.AskVolume1) + 5,
                                     time_condition="1"))

        tick = once_per_instrument(trader, send)["RM705"]
        (ref,) = refs
        trader.wait_for(lambda: trader.finished(ref), "the FAK")
        shown = int(tick.AskVolume1)
        # Depth beyond the recorded level is unknown: nothing is invented behind it.
        price = first_fill(tick.AskPrice1 + 10, tick.AskPrice1, tick.LastPrice)
        assert [(t.Price, t.Volume) for t in trader.trades(ref)] == [(price, shown)]
        assert [(e[1], e[3], e[4]) if e[0] == "order" else e for e in trader.story(ref)] == [
            ("a", "报单已提交", 0), ("3", "未成交", 0), ("3", "未成交", 0), ("1", "部分成交", shown),
            ("trade", price, shown), ("5", "已撤单", shown)]
        trade = trader.trades(ref)[0]
        assert (trade.TradeDate, trade.TradingDay, trade.TradeTime) == ("20170320", "20170320", tick.UpdateTime)


def test_an_order_before_the_first_tick_carries_the_markets_date(program):
    trader = program(FRIDAY_MORNING, ("rb2701",))  # no md API: the counter has seen no tick yet
    ref = trader.order("rb2701", "SHFE", 3000.0)
    trader.wait_for(lambda: len(trader.reports(ref)) == 2, "the order resting")
    # The market's clock is at 2026-11-20 09:35, in SHFE's day session (calendar date = trading day).
    assert {(r.InsertDate, r.TradingDay) for r in trader.reports(ref)} == {("20261120", "20261120")}
    assert "09:34" <= trader.reports(ref)[-1].InsertTime <= "09:36"


def test_closing_todays_lots_shfe_wants_close_today_dce_takes_close_and_resting_closes_hold_their_lots(program):
    trader = program(FRIDAY_MORNING, ("rb2701", "m2701"))
    opened: dict[str, str] = {}

    def send(tick: Tick) -> None:
        instrument = tick.InstrumentID
        opened[instrument] = trader.order(instrument, EXCHANGE[instrument], tick.AskPrice1 + 2 * TICK_SIZE[instrument])

    used = once_per_instrument(trader, send)
    for ref in opened.values():
        trader.wait_for(lambda: trader.finished(ref), f"order {ref} filled")
    far = {i: used[i].AskPrice1 + 50 * TICK_SIZE[i] for i in opened}  # sells that rest
    # SHFE splits today's lots from yesterday's: Close means yesterday's (SIM_TRADING.md 1.4, 0.2).
    assert refused(trader, 51, "rb2701", "SHFE", far["rb2701"], direction="1", offset="1")[0] == "CTP:平昨仓位不足"
    resting = trader.order("rb2701", "SHFE", far["rb2701"], direction="1", offset="3")
    trader.wait_for(lambda: len(trader.reports(resting)) == 2, "the close-today order resting")
    assert trader.reports(resting)[-1].OrderStatus == "3"
    # The resting close holds the one lot: a second close finds none left.
    assert refused(trader, 50, "rb2701", "SHFE", far["rb2701"], direction="1", offset="3")[0] == "CTP:平今仓位不足"
    # DCE: Close closes today's lot; then nothing is left to close (30).
    dce = trader.order("m2701", "DCE", far["m2701"], direction="1", offset="1")
    trader.wait_for(lambda: len(trader.reports(dce)) == 2, "the DCE close resting")
    assert trader.reports(dce)[-1].OrderStatus == "3"
    assert refused(trader, 30, "m2701", "DCE", far["m2701"], direction="1", offset="1")[0] == "CTP:平仓量超过持仓量"
    # Cancelling the SHFE close gives its lot back.
    trader.cancel("rb2701", "SHFE", resting)
    trader.wait_for(lambda: trader.finished(resting), "the close cancelled")
    again = trader.order("rb2701", "SHFE", far["rb2701"], direction="1", offset="3")
    trader.wait_for(lambda: len(trader.reports(again)) == 2, "a new close-today resting")
    assert trader.reports(again)[-1].OrderStatus == "3"
