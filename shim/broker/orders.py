"""Orders and trades of the simulated counter: their fields, ids, life cycle and callback sequences.

An :class:`Order` carries the ``CThostFtdcOrderField`` members the counter knows under CTP's
names; a :class:`Trade` the ``CThostFtdcTradeField`` ones.  :class:`Ids` hands out the counter's
sequences (``BrokerOrderSeq``; per exchange ``OrderSysID``, ``OrderLocalID``, ``TradeID``,
``SequenceNo``), the string ids right-aligned in 12 characters as SimNow sends them
(``'        3549'``, SIM_TRADING.md 0.6).

Everything that happens to an order comes back as a list of *events*, in the order the program
must see them:

* :class:`OrderReport` -> ``OnRtnOrder(values)``;
* :class:`TradeReport` -> the counter books the trade into the ledger (``ledger.fill``), then
  ``OnRtnTrade``;
* :class:`Release` -> ``ledger.release(order.key, volume)``: volume that leaves the order book
  without trading (cancel, FAK/FOK remainder, exchange reject, expiry).  The counter freezes the
  whole ``VolumeTotalOriginal`` when the CTP layer accepts an order; every lot is then either
  traded (``ledger.fill``) or released by exactly one :class:`Release`.

The sequences are SFIT's "报单回调规则" (SIM_TRADING.md 1.4), per exchange:

* SHFE, INE, CFFEX answer an insert with the state after matching: a resting order
  ``未成交``; an immediate full fill repeats Unknown, then ``全部成交报单已提交`` (OrderSubmitStatus
  still '0'), then the trades; a FAK that partly fills reports ``已撤单`` with VolumeTraded set,
  repeats it, then the trades.  An immediate partial fill of a GFD order (not in SFIT's table)
  is told like the full fill: Unknown repeated, ``部分成交``, the trades.
* DCE and GFEX always report ``未成交`` first; a fill is one ``部分成交``/``全部成交`` report (CTP
  synthesises the all-traded one) and its trade, without repeating the previous state.
* CZCE (and stock exchanges) report ``未成交`` first; a fill repeats the previous state, then the
  new state, then the trade.
* A later fill of a resting order: the previous state repeated (not on DCE/GFEX), the new state,
  the trade.  An accepted cancel: the current state repeated with OrderSubmitStatus '1', then
  ``已撤单``.

Pure: no clock reads (``now`` is passed in, naive China time), no threads, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Union

from .terms import Terms

# OrderStatus (THOST_FTDC_OST_*)
ALL_TRADED = "0"
PART_TRADED_QUEUEING = "1"
PART_TRADED_NOT_QUEUEING = "2"
NO_TRADE_QUEUEING = "3"
NO_TRADE_NOT_QUEUEING = "4"
CANCELED = "5"
UNKNOWN = "a"
# OrderSubmitStatus (THOST_FTDC_OSS_*)
INSERT_SUBMITTED = "0"
CANCEL_SUBMITTED = "1"
ACCEPTED = "3"
INSERT_REJECTED = "4"

ALIVE_STATUSES = frozenset({UNKNOWN, NO_TRADE_QUEUEING, PART_TRADED_QUEUEING})

# StatusMsg texts seen on SimNow (SIM_TRADING.md 1.4).
MSG_SUBMITTED = "报单已提交"
MSG_NO_TRADE = "未成交"
MSG_PART_TRADED = "部分成交"
MSG_ALL_TRADED = "全部成交"
MSG_ALL_TRADED_SUBMITTED = "全部成交报单已提交"
MSG_CANCELED = "已撤单"

ID_WIDTH = 12


def padded(number: int) -> str:
    """``number`` right-aligned in CTP's 12 characters (OrderSysID, OrderLocalID, TradeID, OrderRef)."""
    return f"{number:>{ID_WIDTH}}"


@dataclass(slots=True)
class Order:
    """One order as the counter keeps it; attribute names are ``CThostFtdcOrderField`` members."""

    BrokerID: str
    InvestorID: str
    UserID: str
    InstrumentID: str
    ExchangeID: str
    OrderRef: str
    FrontID: int
    SessionID: int
    RequestID: int
    OrderPriceType: str
    Direction: str
    CombOffsetFlag: str
    CombHedgeFlag: str
    LimitPrice: float
    VolumeTotalOriginal: int
    TimeCondition: str
    VolumeCondition: str
    MinVolume: int
    ContingentCondition: str
    StopPrice: float
    ForceCloseReason: str
    IsAutoSuspend: int
    UserForceClose: int
    OrderSysID: str = ""
    OrderLocalID: str = ""
    BrokerOrderSeq: int = 0
    SequenceNo: int = 0
    OrderStatus: str = UNKNOWN
    OrderSubmitStatus: str = INSERT_SUBMITTED
    VolumeTraded: int = 0
    VolumeTotal: int = 0
    StatusMsg: str = ""
    TradingDay: str = ""
    InsertDate: str = ""
    InsertTime: str = ""
    ActiveTime: str = ""
    UpdateTime: str = ""
    CancelTime: str = ""
    GTDDate: str = ""
    IsSwapOrder: int = 0
    InvestUnitID: str = ""
    AccountID: str = ""
    CurrencyID: str = ""
    ClientID: str = ""
    # engine state (not CTP members):
    queue_ahead: float = 0.0  # volume ahead of it at its price (the queue model, matching.py)

    @property
    def key(self) -> int:
        """The order's key inside a counter: its ``BrokerOrderSeq``."""
        return self.BrokerOrderSeq

    @property
    def offset(self) -> str:
        """The order's offset flag: the first character of ``CombOffsetFlag``."""
        return self.CombOffsetFlag[:1]

    @property
    def hedge(self) -> str:
        """The order's hedge flag: the first character of ``CombHedgeFlag``."""
        return self.CombHedgeFlag[:1]

    @property
    def alive(self) -> bool:
        """Whether the order is still in the book (Unknown, NoTradeQueueing, PartTradedQueueing)."""
        return self.OrderStatus in ALIVE_STATUSES and self.VolumeTotal > 0

    @property
    def is_market(self) -> bool:
        """Whether it is a market (any price) order, OrderPriceType '1'."""
        return self.OrderPriceType == "1"

    @property
    def immediate(self) -> bool:
        """Whether what does not fill at once is cancelled (IOC, and every market order)."""
        return self.TimeCondition == "1" or self.is_market

    def order_values(self) -> dict[str, Any]:
        """Every ``CThostFtdcOrderField`` member this order knows, by name (for OnRtnOrder/ReqQryOrder)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "queue_ahead"}
        values["ExchangeInstID"] = self.InstrumentID
        values["OrderType"] = "0"
        values["OrderSource"] = "0"
        values["InstallID"] = 1
        values["SettlementID"] = 1
        values["ClientID"] = self.ClientID or self.InvestorID
        return values

    def to_state(self) -> dict[str, Any]:
        """A JSON-able copy of everything (for the store)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Order:
        """The order :meth:`to_state` gave ``state``; unknown keys are an error (a newer store)."""
        return _from_state(cls, state, "an order")


@dataclass(slots=True)
class Trade:
    """One trade; attribute names are ``CThostFtdcTradeField`` members."""

    BrokerID: str
    InvestorID: str
    UserID: str
    InstrumentID: str
    ExchangeID: str
    OrderRef: str
    OrderSysID: str
    OrderLocalID: str
    TradeID: str
    Direction: str
    OffsetFlag: str
    HedgeFlag: str
    Price: float
    Volume: int
    TradeDate: str
    TradeTime: str
    TradingDay: str
    BrokerOrderSeq: int
    SequenceNo: int
    TradeType: str = "0"
    PriceSource: str = "0"
    TradeSource: str = "0"

    def trade_values(self) -> dict[str, Any]:
        """Every ``CThostFtdcTradeField`` member this trade knows, by name (for OnRtnTrade/ReqQryTrade)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(ExchangeInstID=self.InstrumentID, ClientID=self.InvestorID, SettlementID=1)
        return values

    def to_state(self) -> dict[str, Any]:
        """A JSON-able copy of everything (for the store)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Trade:
        """The trade :meth:`to_state` gave ``state``; unknown keys are an error (a newer store)."""
        return _from_state(cls, state, "a trade")


def _from_state(cls: type, state: dict[str, Any], what: str) -> Any:
    """``cls(**state)`` after checking that ``state`` names only ``cls``'s members."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(state) - names)
    if unknown:
        raise ValueError(f"{what}'s state has unknown members {unknown}; known: {sorted(names)}")
    return cls(**state)


# The keys of Trade.trade_values(), in its order (e.g. the columns of a trades CSV).
TRADE_MEMBERS: tuple[str, ...] = tuple(f.name for f in fields(Trade)) + ("ExchangeInstID", "ClientID", "SettlementID")


class Ids:
    """The counter's sequences: ``BrokerOrderSeq`` for the counter; ``OrderLocalID`` and
    ``SequenceNo`` per exchange; ``OrderSysID`` and ``TradeID`` one sequence across the exchanges
    (each number is still its exchange's, kept per exchange in the state): programs such as vn.py
    find a trade's order by ``OrderSysID`` alone and drop a ``TradeID`` they have seen, so two
    exchanges must not both hand out 1.  Each starts at 1."""

    _ACROSS = frozenset({"sys", "trade"})

    def __init__(self) -> None:
        self._order_seq = 0
        self._counters: dict[str, dict[str, int]] = {"sys": {}, "local": {}, "trade": {}, "seq": {}}

    def _next(self, kind: str, exchange_id: str) -> int:
        numbers = self._counters[kind]
        last = max(numbers.values(), default=0) if kind in self._ACROSS else numbers.get(exchange_id, 0)
        numbers[exchange_id] = last + 1
        return last + 1

    def next_order_seq(self) -> int:
        """The next ``BrokerOrderSeq`` of the counter (1, 2, ...)."""
        self._order_seq += 1
        return self._order_seq

    def next_sys_id(self, exchange_id: str) -> str:
        """The next ``OrderSysID`` (given to an order of ``exchange_id``), padded to 12."""
        return padded(self._next("sys", exchange_id))

    def next_local_id(self, exchange_id: str) -> str:
        """The next ``OrderLocalID`` of ``exchange_id`` (from 1 for each exchange), padded to 12."""
        return padded(self._next("local", exchange_id))

    def next_trade_id(self, exchange_id: str) -> str:
        """The next ``TradeID`` (given to a trade on ``exchange_id``), padded to 12."""
        return padded(self._next("trade", exchange_id))

    def next_sequence_no(self, exchange_id: str) -> int:
        """The next ``SequenceNo`` of ``exchange_id`` (from 1 for each exchange)."""
        return self._next("seq", exchange_id)

    def to_state(self) -> dict[str, Any]:
        """A JSON-able copy of every sequence (for the store)."""
        return {"order_seq": self._order_seq, **{kind: dict(numbers) for kind, numbers in self._counters.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Ids:
        """The sequences :meth:`to_state` gave ``state``: each goes on from where it was."""
        ids = cls()
        ids._order_seq = int(state.get("order_seq", 0))
        for kind in ids._counters:
            ids._counters[kind] = {str(k): int(v) for k, v in state.get(kind, {}).items()}
        return ids


@dataclass
class OrderReport:
    """``OnRtnOrder`` with these member values (a snapshot: later changes do not alter it)."""

    values: dict[str, Any]


@dataclass
class TradeReport:
    """A trade of ``order``: the counter books it (``ledger.fill``), then sends ``OnRtnTrade``."""

    order: Order
    trade: Trade


@dataclass
class Release:
    """``volume`` lots of ``order`` left the book untraded: ``ledger.release(order.key, volume)``."""

    order: Order
    volume: int


Event = Union[OrderReport, TradeReport, Release]


def _date_of(terms: Terms, now: datetime, trading_day: str) -> str:
    """InsertDate/TradeDate: the calendar date on SHFE/INE-like exchanges, else the trading day
    (SIM_TRADING.md 0.6)."""
    return now.strftime("%Y%m%d") if terms.calendar_dates else trading_day


def new_order(input_values: dict[str, Any], *, front_id: int, session_id: int, order_ref: str,
              trading_day: str, now: datetime, terms: Terms, ids: Ids) -> Order:
    """The order CTP makes of an accepted ``CThostFtdcInputOrderField`` (``input_values``), with
    its ``BrokerOrderSeq`` and ``OrderLocalID``, in state Unknown (nothing reported yet)."""
    get = input_values.get
    volume = int(get("VolumeTotalOriginal", 0))
    return Order(
        BrokerID=get("BrokerID", ""), InvestorID=get("InvestorID", ""), UserID=get("UserID", ""),
        InstrumentID=get("InstrumentID", ""), ExchangeID=terms.ExchangeID, OrderRef=order_ref,
        FrontID=front_id, SessionID=session_id, RequestID=int(get("RequestID", 0)),
        OrderPriceType=get("OrderPriceType", "2"), Direction=get("Direction", ""),
        CombOffsetFlag=get("CombOffsetFlag", ""), CombHedgeFlag=get("CombHedgeFlag", ""),
        LimitPrice=float(get("LimitPrice", 0.0)), VolumeTotalOriginal=volume,
        TimeCondition=get("TimeCondition", "3"), VolumeCondition=get("VolumeCondition", "1"),
        MinVolume=int(get("MinVolume", 0)), ContingentCondition=get("ContingentCondition", "1"),
        StopPrice=float(get("StopPrice", 0.0)), ForceCloseReason=get("ForceCloseReason", "0"),
        IsAutoSuspend=int(get("IsAutoSuspend", 0)), UserForceClose=int(get("UserForceClose", 0)),
        OrderLocalID=ids.next_local_id(terms.ExchangeID), BrokerOrderSeq=ids.next_order_seq(),
        OrderStatus=UNKNOWN, OrderSubmitStatus=INSERT_SUBMITTED, VolumeTotal=volume, StatusMsg=MSG_SUBMITTED,
        TradingDay=trading_day, InsertDate=_date_of(terms, now, trading_day), InsertTime=now.strftime("%H:%M:%S"),
        GTDDate=get("GTDDate", ""), IsSwapOrder=int(get("IsSwapOrder", 0)), InvestUnitID=get("InvestUnitID", ""),
        AccountID=get("AccountID", ""), CurrencyID=get("CurrencyID", ""), ClientID=get("ClientID", ""),
    )


def new_trade(order: Order, price: float, volume: int, now: datetime, terms: Terms, ids: Ids) -> Trade:
    """A trade of ``volume`` lots of ``order`` at ``price`` (does not change the order)."""
    return Trade(
        BrokerID=order.BrokerID, InvestorID=order.InvestorID, UserID=order.UserID,
        InstrumentID=order.InstrumentID, ExchangeID=order.ExchangeID, OrderRef=order.OrderRef,
        OrderSysID=order.OrderSysID, OrderLocalID=order.OrderLocalID,
        TradeID=ids.next_trade_id(order.ExchangeID), Direction=order.Direction,
        OffsetFlag=order.offset, HedgeFlag=order.hedge, Price=price, Volume=volume,
        TradeDate=_date_of(terms, now, order.TradingDay), TradeTime=now.strftime("%H:%M:%S"),
        TradingDay=order.TradingDay, BrokerOrderSeq=order.BrokerOrderSeq,
        SequenceNo=ids.next_sequence_no(order.ExchangeID),
    )


def report(order: Order) -> OrderReport:
    """``OnRtnOrder`` of the order as it is now."""
    return OrderReport(order.order_values())


def _set(order: Order, status: str, submit: str, message: str, now: datetime) -> None:
    order.OrderStatus = status
    order.OrderSubmitStatus = submit
    order.StatusMsg = message
    order.UpdateTime = now.strftime("%H:%M:%S")


def _exchange_report(order: Order, status: str, submit: str, message: str, now: datetime, ids: Ids) -> OrderReport:
    """A state the exchange reports: it gets the exchange's next SequenceNo."""
    _set(order, status, submit, message, now)
    order.SequenceNo = ids.next_sequence_no(order.ExchangeID)
    return report(order)


def _accept(order: Order, now: datetime, ids: Ids) -> None:
    order.OrderSysID = ids.next_sys_id(order.ExchangeID)
    order.ActiveTime = now.strftime("%H:%M:%S")


def _book_fill(order: Order, volume: int) -> None:
    order.VolumeTraded += volume
    order.VolumeTotal -= volume


def _traded_state(order: Order) -> tuple[str, str]:
    if order.VolumeTotal == 0:
        return ALL_TRADED, MSG_ALL_TRADED
    return PART_TRADED_QUEUEING, MSG_PART_TRADED


def _cancel_rest(order: Order, now: datetime, ids: Ids) -> list[Event]:
    """The exchange cancels the untraded rest of an immediate order."""
    rest = order.VolumeTotal
    events: list[Event] = [Release(order, rest)] if rest else []
    events.append(_exchange_report(order, CANCELED, ACCEPTED, MSG_CANCELED, now, ids))
    return events


def fill_events(order: Order, price: float, volume: int, now: datetime, terms: Terms, ids: Ids) -> list[Event]:
    """A later fill of a resting order (queue or a crossing book): the previous state repeated
    (except on DCE/GFEX), the new state, the trade."""
    events: list[Event] = []
    if terms.repeats_state_on_fill:
        events.append(report(order))
    _book_fill(order, volume)
    status, message = _traded_state(order)
    events.append(_exchange_report(order, status, ACCEPTED, message, now, ids))
    events.append(TradeReport(order, new_trade(order, price, volume, now, terms, ids)))
    return events


def insert_events(order: Order, fills: list[tuple[float, int]], *, rests: bool, now: datetime, terms: Terms,
                  ids: Ids) -> list[Event]:
    """The events of an order the exchange accepted: ``fills`` are the (price, volume) it traded at
    once; ``rests`` whether its untraded rest stays in the book (GFD) or is cancelled (FAK, FOK,
    market).  Starts with the Unknown report (see the module docstring for the sequences)."""
    unknown = report(order)
    events: list[Event] = [unknown]
    if not terms.answers_after_match:
        _accept(order, now, ids)
        events.append(_exchange_report(order, NO_TRADE_QUEUEING, ACCEPTED, MSG_NO_TRADE, now, ids))
        for price, volume in fills:
            events.extend(fill_events(order, price, volume, now, terms, ids))
        if order.VolumeTotal and not rests:
            events.extend(_cancel_rest(order, now, ids))
        return events
    _accept(order, now, ids)
    if not fills:
        if rests:
            events.append(_exchange_report(order, NO_TRADE_QUEUEING, ACCEPTED, MSG_NO_TRADE, now, ids))
        else:
            events.extend(_cancel_rest(order, now, ids))
        return events
    _book_fill(order, sum(volume for _, volume in fills))
    if order.VolumeTotal == 0:
        events.append(OrderReport(dict(unknown.values)))  # CTP repeats the previous state
        events.append(_exchange_report(order, ALL_TRADED, INSERT_SUBMITTED, MSG_ALL_TRADED_SUBMITTED, now, ids))
    elif rests:
        events.append(OrderReport(dict(unknown.values)))
        events.append(_exchange_report(order, PART_TRADED_QUEUEING, ACCEPTED, MSG_PART_TRADED, now, ids))
    else:
        events.extend(_cancel_rest(order, now, ids))
        events.append(report(order))
    events.extend(TradeReport(order, new_trade(order, price, volume, now, terms, ids)) for price, volume in fills)
    return events


def reject_events(order: Order, status_msg: str, now: datetime) -> list[Event]:
    """An exchange-layer reject: Unknown, then Canceled/InsertRejected with ``status_msg``
    ("NN:已撤单报单被拒绝EXCH:..."), no OrderSysID, ErrorID nowhere (SIM_TRADING.md 0.1)."""
    events: list[Event] = [report(order), Release(order, order.VolumeTotal)]
    _set(order, CANCELED, INSERT_REJECTED, status_msg, now)
    events.append(report(order))
    return events


def cancel(order: Order, now: datetime, ids: Ids) -> list[Event]:
    """An accepted cancel of a live order: its state repeated with OrderSubmitStatus '1', then
    ``已撤单`` (VolumeTotal keeps the untraded lots) and a :class:`Release` of them."""
    order.OrderSubmitStatus = CANCEL_SUBMITTED
    order.UpdateTime = now.strftime("%H:%M:%S")
    events: list[Event] = [report(order), Release(order, order.VolumeTotal)]
    order.CancelTime = now.strftime("%H:%M:%S")
    events.append(_exchange_report(order, CANCELED, ACCEPTED, MSG_CANCELED, now, ids))
    return events


def expire(order: Order, now: datetime, *, report_it: bool = False, ids: Ids | None = None) -> list[Event]:
    """A GFD order still alive at settlement: Canceled (``已撤单``), its lots released; no
    callback unless ``report_it`` (SIM_TRADING.md 4.3: whether CTP sends one is not documented)."""
    events: list[Event] = [Release(order, order.VolumeTotal)]
    order.CancelTime = now.strftime("%H:%M:%S")
    _set(order, CANCELED, ACCEPTED, MSG_CANCELED, now)
    if report_it:
        if ids is not None:
            order.SequenceNo = ids.next_sequence_no(order.ExchangeID)
        events.append(report(order))
    return events
