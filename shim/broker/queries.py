"""The counter's answers to ``ReqQry*``, and CTP's query flow control.

:class:`QueryGate` is the flow control of one trader API (CTP_SEMANTICS.md 7.2): at most one
query a second and one in flight (see below); a query over
either limit returns ``-3`` / ``-2`` at once and nothing is sent.  ``trader.flow_control=false``
turns it off.

:func:`records` answers one query from the counter's state: a list of ``(class name, member
values)``, one per record (the responder posts one ``OnRspQry*`` each, ``bIsLast`` on the last,
or one with ``None`` when there is none).  Filters follow CTP: an empty filter member matches
everything.  What is answered:

* TradingAccount, InvestorPosition, InvestorPositionDetail: the ledger's views;
* Order, Trade: the trading day's, filtered by instrument, exchange, OrderSysID / TradeID and
  the time range;
* InstrumentMarginRate (no InstrumentID: the instruments held, one record each, as CTP answers),
  InstrumentCommissionRate (a product-level rate: ``InstrumentID`` is the product's ID, as CTP answers), InstrumentOrderCommRate (no per-order fees: zeros), the rates the
  ledger uses;
* Instrument (margin ratios, PositionDateType, MaxMarginSideAlgorithm and order volumes from the
  terms), Product, Exchange, DepthMarketData (the latest tick the counter observed);
* SettlementInfo (the statement in ``Content`` pieces of at most 500 bytes that never split a
  character, :func:`ctpshim.broker.statement.pieces`, with ``SequenceNo``),
  SettlementInfoConfirm, MaxOrderVolume, BrokerTradingParams (the ledger's parameters);
* every other query (InvestorPositionCombineDetail among them): no records.

A query is in flight from the moment it is admitted until its last answer is queued for the
program (so a program may send the next one from inside that callback).
"""

from __future__ import annotations

import math
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from ..ctp.exchanges import FUTURES_EXCHANGES
from . import statement

if TYPE_CHECKING:
    from .counter import Account, Counter

QUERY_INTERVAL = 1.0  # s between two queries (CTP's default QryFreq)
TOO_MANY_IN_FLIGHT = -2
TOO_FREQUENT = -3

Record = tuple[str, dict[str, Any]]


class QueryGate:
    """Flow control of one API object's queries (see the module docstring)."""

    def __init__(self, enabled: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = enabled
        self._clock = clock
        self._lock = threading.Lock()
        self._in_flight = False
        self._last = -math.inf

    def admit(self) -> int:
        """0 if a query may be sent now (it is then in flight), else -2 or -3."""
        if not self.enabled:
            return 0
        with self._lock:
            if self._in_flight:
                return TOO_MANY_IN_FLIGHT
            now = self._clock()
            if now - self._last < QUERY_INTERVAL:
                return TOO_FREQUENT
            self._in_flight, self._last = True, now
            return 0

    def answered(self) -> None:
        """The query's last answer is queued for the program: the next one may be sent."""
        with self._lock:
            self._in_flight = False


def _matches(query: dict[str, Any], record: dict[str, Any], names: tuple[str, ...]) -> bool:
    for name in names:
        wanted = query.get(name)
        if wanted not in (None, "") and name in record and str(record[name]).strip() != str(wanted).strip():
            return False
    return True


def _in_time(query: dict[str, Any], value: str, start: str, end: str) -> bool:
    low, high = query.get(start) or "", query.get(end) or ""
    return (not low or value >= low) and (not high or value <= high)


def _account_members(account: "Account") -> dict[str, Any]:
    return {"BrokerID": account.BrokerID, "InvestorID": account.InvestorID}


def records(counter: "Counter", account: "Account", name: str, query: dict[str, Any],
            instruments: list[Any], market: Any) -> list[Record]:
    """The records answering ``Req<name>`` with the query's member ``values`` (see the module
    docstring); ``instruments`` is what the source lists."""
    answer = _ANSWERS.get(name)
    if answer is None:
        return []
    if account is not None:
        counter.mark(account)  # positions are marked to the latest ticks when they are read
    return answer(counter, account, query, instruments, market)


def _trading_account(counter: "Counter", account: "Account", query: dict[str, Any], *_: Any) -> list[Record]:
    values = dict(account.ledger.account_values())
    values.setdefault("BrokerID", account.BrokerID)
    values.setdefault("AccountID", account.InvestorID)
    values.setdefault("TradingDay", account.trading_day)
    values.setdefault("CurrencyID", "CNY")
    return [("CThostFtdcTradingAccountField", values)]


def _positions(counter: "Counter", account: "Account", query: dict[str, Any], *_: Any) -> list[Record]:
    return [("CThostFtdcInvestorPositionField", dict(values, **_account_members(account)))
            for values in account.ledger.position_values()
            if _matches(query, values, ("InstrumentID", "ExchangeID"))]


def _details(counter: "Counter", account: "Account", query: dict[str, Any], *_: Any) -> list[Record]:
    return [("CThostFtdcInvestorPositionDetailField", dict(values, **_account_members(account)))
            for values in account.ledger.detail_values()
            if _matches(query, values, ("InstrumentID", "ExchangeID"))]


def _orders(counter: "Counter", account: "Account", query: dict[str, Any], *_: Any) -> list[Record]:
    found = []
    for order in sorted(account.orders.values(), key=lambda o: o.key):
        values = order.order_values()
        if (_matches(query, values, ("InstrumentID", "ExchangeID", "OrderSysID"))
                and _in_time(query, order.InsertTime, "InsertTimeStart", "InsertTimeEnd")):
            found.append(("CThostFtdcOrderField", values))
    return found


def _trades(counter: "Counter", account: "Account", query: dict[str, Any], *_: Any) -> list[Record]:
    found = []
    for trade in account.trades:
        values = trade.trade_values()
        if (_matches(query, values, ("InstrumentID", "ExchangeID", "TradeID"))
                and _in_time(query, trade.TradeTime, "TradeTimeStart", "TradeTimeEnd")):
            found.append(("CThostFtdcTradeField", values))
    return found


def _asked_terms(counter: "Counter", query: dict[str, Any], market: Any) -> Any:
    instrument = query.get("InstrumentID") or ""
    return counter.terms_of(instrument, market) if instrument else None


def _margin_rate(counter: "Counter", account: "Account", query: dict[str, Any], _: Any, market: Any) -> list[Record]:
    if query.get("InstrumentID"):
        asked = [_asked_terms(counter, query, market)]
    else:
        # No InstrumentID: CTP answers the instruments the investor holds, one record each.
        held = {p["InstrumentID"] for p in account.ledger.position_values() if p["Position"]}
        asked = [counter.terms_of(instrument, market) for instrument in sorted(held)]
    found = []
    for terms in asked:
        if terms is None or not _matches(query, {"ExchangeID": terms.ExchangeID}, ("ExchangeID",)):
            continue
        r = terms.rates
        found.append(("CThostFtdcInstrumentMarginRateField", dict(
            _account_members(account), InstrumentID=terms.InstrumentID, ExchangeID=terms.ExchangeID,
            InvestorRange="1", HedgeFlag=query.get("HedgeFlag") or "1", IsRelative=0,
            LongMarginRatioByMoney=r.LongMarginRatioByMoney, LongMarginRatioByVolume=r.LongMarginRatioByVolume,
            ShortMarginRatioByMoney=r.ShortMarginRatioByMoney, ShortMarginRatioByVolume=r.ShortMarginRatioByVolume)))
    return found


def _commission_rate(counter: "Counter", account: "Account", query: dict[str, Any], _: Any,
                     market: Any) -> list[Record]:
    terms = _asked_terms(counter, query, market)
    if terms is None:
        return []
    r = terms.rates
    # The table is per product: CTP then answers the product's ID (SIM_TRADING.md 3.1, FAQ #35).
    return [("CThostFtdcInstrumentCommissionRateField", dict(
        _account_members(account), InstrumentID=terms.ProductID, ExchangeID=terms.ExchangeID, InvestorRange="1",
        OpenRatioByMoney=r.OpenRatioByMoney, OpenRatioByVolume=r.OpenRatioByVolume,
        CloseRatioByMoney=r.CloseRatioByMoney, CloseRatioByVolume=r.CloseRatioByVolume,
        CloseTodayRatioByMoney=r.CloseTodayRatioByMoney, CloseTodayRatioByVolume=r.CloseTodayRatioByVolume,
        BizType="1"))]


def _order_comm_rate(counter: "Counter", account: "Account", query: dict[str, Any], _: Any,
                     market: Any) -> list[Record]:
    terms = _asked_terms(counter, query, market)
    if terms is None:
        return []
    return [("CThostFtdcInstrumentOrderCommRateField", dict(
        _account_members(account), InstrumentID=terms.ProductID, ExchangeID=terms.ExchangeID, InvestorRange="1",
        HedgeFlag="1", OrderCommByVolume=0.0, OrderActionCommByVolume=0.0, OrderCommByTrade=0.0,
        OrderActionCommByTrade=0.0))]


def instrument_members(terms: Any) -> dict[str, Any]:
    """What the terms add to a ReqQryInstrument answer (the rest is the source's description)."""
    r = terms.rates
    return dict(LongMarginRatio=r.LongMarginRatioByMoney, ShortMarginRatio=r.ShortMarginRatioByMoney,
                PositionDateType=terms.PositionDateType, MaxMarginSideAlgorithm=terms.MaxMarginSideAlgorithm,
                MaxLimitOrderVolume=terms.MaxLimitOrderVolume, MaxMarketOrderVolume=terms.MaxMarketOrderVolume,
                VolumeMultiple=terms.VolumeMultiple, PriceTick=terms.PriceTick)


def _products(counter: "Counter", account: "Account", query: dict[str, Any], instruments: list[Any],
              market: Any) -> list[Record]:
    seen: dict[str, Record] = {}
    for info in instruments:
        terms = counter.terms_of(info.instrument_id, market)
        if terms is None or terms.ProductID in seen:
            continue
        values = dict(ProductID=terms.ProductID, ExchangeID=terms.ExchangeID,
                      ProductName=getattr(getattr(info, "product", None), "name", "") or terms.ProductID,
                      ProductClass="4" if terms.is_stock else "1", VolumeMultiple=terms.VolumeMultiple,
                      PriceTick=terms.PriceTick, MaxMarketOrderVolume=terms.MaxMarketOrderVolume,
                      MinMarketOrderVolume=1, MaxLimitOrderVolume=terms.MaxLimitOrderVolume,
                      MinLimitOrderVolume=1, PositionType="2", PositionDateType=terms.PositionDateType,
                      CloseDealType="0", TradeCurrencyID="CNY", MortgageFundUseRange="0", UnderlyingMultiple=1.0,
                      ExchangeProductID=terms.ProductID)
        if _matches(query, values, ("ProductID", "ExchangeID")) and query.get("ProductClass") in (None, "", values["ProductClass"]):
            seen[terms.ProductID] = ("CThostFtdcProductField", values)
    return list(seen.values())


def _depth(counter: "Counter", account: "Account", query: dict[str, Any], *_: Any) -> list[Record]:
    from ..ctp.fields import member_names, values_of

    found = []
    for instrument, tick in counter.ticks.items():
        values = dict(zip(member_names(type(tick)), values_of(tick)))
        if _matches(query, values, ("InstrumentID", "ExchangeID")):
            found.append(("CThostFtdcDepthMarketDataField", values))
    return found


def _settlement_info(counter: "Counter", account: "Account", query: dict[str, Any], *_: Any) -> list[Record]:
    found = counter.statement_of(account, query.get("TradingDay") or "")
    if not found or not found[1]:
        return []
    day, text = found
    return [("CThostFtdcSettlementInfoField", dict(
        _account_members(account), TradingDay=day, SettlementID=1, SequenceNo=number, Content=piece,
        AccountID=account.InvestorID, CurrencyID="CNY"))
        for number, piece in enumerate(statement.pieces(text), start=1)]


def _confirmation(counter: "Counter", account: "Account", *_: Any) -> list[Record]:
    if not account.confirmed:
        return []
    return [("CThostFtdcSettlementInfoConfirmField", dict(
        _account_members(account), ConfirmDate=account.confirmed, ConfirmTime=account.confirm_time,
        SettlementID=1, AccountID=account.InvestorID, CurrencyID="CNY"))]


def _max_volume(counter: "Counter", account: "Account", query: dict[str, Any], _: Any, market: Any) -> list[Record]:
    terms = _asked_terms(counter, query, market)
    direction, offset = query.get("Direction") or "0", query.get("OffsetFlag") or "0"
    hedge = query.get("HedgeFlag") or "1"
    volume = 0
    if terms is not None:
        if offset != "0":
            volume = account.ledger.closable(terms, direction, offset, hedge)
        else:
            book, _ = counter.book_of(terms.InstrumentID)
            price = (book.last if book is not None else None) or 0.0
            margin, commission = (account.ledger.order_cost(terms, direction, offset, price, 1, hedge=hedge)
                                  if price else (0.0, 0.0))
            per_lot = margin + commission
            if per_lot > 0:
                volume = int(max(account.ledger.available(), 0.0) // per_lot)
            volume = min(volume, terms.MaxLimitOrderVolume)
    return [("CThostFtdcQryMaxOrderVolumeField", dict(
        query, **_account_members(account), Direction=direction, OffsetFlag=offset, HedgeFlag=hedge,
        MaxVolume=volume))]


def _exchanges(counter: "Counter", account: "Account", query: dict[str, Any], *_: Any) -> list[Record]:
    return [("CThostFtdcExchangeField", dict(ExchangeID=exchange, ExchangeName=title, ExchangeProperty="0"))
            for exchange, title in FUTURES_EXCHANGES.items() if query.get("ExchangeID") in (None, "", exchange)]


def _trading_params(counter: "Counter", account: "Account", *_: Any) -> list[Record]:
    params = account.ledger.params
    return [("CThostFtdcBrokerTradingParamsField", dict(
        _account_members(account), MarginPriceType=params.MarginPriceType, Algorithm=params.Algorithm,
        AvailIncludeCloseProfit=params.AvailIncludeCloseProfit, CurrencyID="CNY", OptionRoyaltyPriceType="1",
        AccountID=account.InvestorID))]


_ANSWERS: dict[str, Callable[..., list[Record]]] = {
    "ReqQryTradingAccount": _trading_account,
    "ReqQryInvestorPosition": _positions,
    "ReqQryInvestorPositionDetail": _details,
    "ReqQryOrder": _orders,
    "ReqQryTrade": _trades,
    "ReqQryInstrumentMarginRate": _margin_rate,
    "ReqQryInstrumentCommissionRate": _commission_rate,
    "ReqQryInstrumentOrderCommRate": _order_comm_rate,
    "ReqQryProduct": _products,
    "ReqQryDepthMarketData": _depth,
    "ReqQrySettlementInfo": _settlement_info,
    "ReqQrySettlementInfoConfirm": _confirmation,
    "ReqQryMaxOrderVolume": _max_volume,
    "ReqQryExchange": _exchanges,
    "ReqQryBrokerTradingParams": _trading_params,
}
# Answered by the responder from the source's list (with the terms): ReqQryInstrument.
ANSWERED = frozenset(_ANSWERS) | {"ReqQryInstrument"}

