"""The counter's checks of an order or a cancel, with CTP's codes and texts.

Two layers, as on a real front (SIM_TRADING.md 0.1, 2.4, 6.1):

* the CTP layer (:func:`check_insert`, :func:`check_action`) answers ``OnRspOrderInsert`` +
  ``OnErrRtnOrderInsert`` (``OnRspOrderAction`` + ``OnErrRtnOrderAction``) with an ErrorID from
  ``ctpshim.ctp.error_codes`` and no ``OnRtnOrder``;
* the exchange layer (:func:`exchange_reject`) cancels an accepted order: ``OnRtnOrder`` Canceled /
  InsertRejected with ``StatusMsg`` ``"NN:已撤单报单被拒绝EXCH:<reason>"`` and ErrorID nowhere.  NN is
  the exchange's code, not a CTP ErrorID (exchange 50 = below the lower limit).

The CTP layer checks in this order (SIM_TRADING.md 6.1, following SimNow; the first failure
answers):

0. 146 INVESTOR_ID_IS_MISSING (blank InvestorID), 3 INVALID_LOGIN "CTP:不合法的登录" (a BrokerID or
   InvestorID other than the login's: a session trades only its own account);
1. 15 BAD_FIELD: Direction, offset, hedge, price type, time and volume conditions, volume > 0,
   a finite price, MinVolume for MV, an immediate ContingentCondition;
2. 147 EXCHANGE_ID_IS_MISSING (empty ExchangeID), 148 EXCHANGE_ID_IS_INVALID (not an exchange);
3. 16 INSTRUMENT_NOT_FOUND; 150 EXCHANGE_ID_IS_WRONG (not the instrument's exchange); 17
   INSTRUMENT_NOT_TRADING after the contract's last trading day (when the trading day is given);
4. 15 BAD_FIELD for what the instrument refuses: a market order where the exchange takes none
   (SHFE, INE: SIM_TRADING.md 0.5), more lots than MaxLimitOrderVolume / MaxMarketOrderVolume;
5. 42 SETTLEMENT_INFO_NOT_CONFIRMED;
6. 22 DUPLICATE_ORDER_REF: an OrderRef not above the session's highest;
7. closing more than can be closed: 50 OVER_CLOSETODAY_POSITION (close today) or 51
   OVER_CLOSEYESTERDAY_POSITION (close, close yesterday) where positions are split today/history
   (SHFE, INE), else 30 OVER_CLOSE_POSITION (SIM_TRADING.md 0.2);
8. 31 INSUFFICIENT_MONEY: margin and commission of an open order (the commission of a close
   order) above what is available.

The exchange layer, in SimNow's order (SIM_TRADING.md 2.4): 26 outside a trading session (a GFD
limit order is taken in the order-entry minutes of the opening auction and waits for the open), 79 an
order type the exchange does not take (GFS, GTD, GTC, GFA; GFD with CV), 48 a price off the
tick, 49 above the upper limit, 50 below the lower limit.

Cancels: 146 / 3 as for an order, 15 BAD_FIELD for an ActionFlag other than delete ('0'), 25
ORDER_NOT_FOUND, 26 INSUITABLE_ORDER_STATUS (traded or cancelled already).  An accepted cancel is
carried out at once (``orders.cancel``), so a second cancel finds the order finished (26); 24 is
never sent.

Pure: no clock reads, no threads, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from ..ctp import calendar, products
from ..ctp.error_codes import CtpError, error
from .orders import Order, padded
from .terms import Terms

if TYPE_CHECKING:
    from .matching import Book

DIRECTIONS = {"0": "buy", "1": "sell"}
OFFSETS = {"0": "open", "1": "close", "3": "close today", "4": "close yesterday"}
HEDGES = {"1": "speculation", "2": "arbitrage", "3": "hedge"}
PRICE_TYPES = {"1": "any price (market)", "2": "limit price"}
TIME_CONDITIONS = {"1": "IOC", "2": "GFS", "3": "GFD", "4": "GTD", "5": "GTC", "6": "GFA"}
VOLUME_CONDITIONS = {"1": "any volume", "2": "minimum volume", "3": "complete volume"}
EXCHANGE_TIME_CONDITIONS = frozenset({"1", "3"})  # IOC and GFD; the others are exchange 79
IMMEDIATELY = "1"  # ContingentCondition: conditional orders are not simulated
FORCE_CLOSE_REASONS = frozenset({"", "0"})
TICK_TOLERANCE = 1e-6  # of a tick
# The opening call auction of a trading day's first session (20:55 before a 21:00 night open, 08:55
# before a 09:00 day open, 09:25 before CFFEX's 09:30): orders are entered from 5 minutes before the
# open until 1 minute before it, when the exchange matches them (SIM_TRADING.md 1.4, 6.5).
AUCTION_ENTRY = timedelta(minutes=5)
AUCTION_MATCH = timedelta(minutes=1)


@dataclass
class Reject:
    """A CTP-layer reject: ``error`` gives ErrorID and ErrorMsg; ``message`` is what the front
    sends as ErrorMsg (CTP's text); ``detail`` says in English what was wrong (for the log)."""

    error: CtpError
    message: str = ""
    detail: str = ""

    def __post_init__(self) -> None:
        if not self.message:
            self.message = self.error.message


def _reject(name: str, detail: str) -> Reject:
    return Reject(error(name), detail=detail)


class LedgerView(Protocol):
    """What the checks read of an account (``ledger.Ledger`` provides it)."""

    def closable(self, terms: Terms, direction: str, offset: str, hedge: str) -> int: ...

    def order_cost(self, terms: Terms, direction: str, offset: str, price: float, volume: int,
                   hedge: str = "1") -> tuple[float, float]: ...

    def available(self) -> float: ...


@dataclass
class OrderRefs:
    """A session's OrderRefs: each must be numeric and above every earlier one; a blank one is
    assigned (the highest + 1, right-aligned in 12 characters, CTP_SEMANTICS.md 7.3).

    :meth:`resolve` only says which OrderRef an order would get; :meth:`use` records it (the
    counter calls it for every order the CTP layer accepts)."""

    highest: int = 0

    def resolve(self, order_ref: str) -> str | None:
        """The OrderRef an order sent with ``order_ref`` gets, or None if it is not allowed."""
        text = (order_ref or "").strip()
        if not text:
            return padded(self.highest + 1)
        # isascii: str.isdigit also takes '²' and full-width digits, which int() refuses or reads.
        if not (text.isascii() and text.isdigit()) or int(text) <= self.highest:
            return None
        return order_ref

    def use(self, order_ref: str) -> None:
        """Record ``order_ref`` (one :meth:`resolve` allowed) as used: later ones must be above it."""
        number = int(order_ref.strip())
        self.highest = max(self.highest, number)

    def to_state(self) -> dict[str, Any]:
        """A JSON-able copy (for the store)."""
        return {"highest": self.highest}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> OrderRefs:
        """The OrderRefs :meth:`to_state` gave ``state``."""
        return cls(highest=int(state.get("highest", 0)))


def _int(values: dict[str, Any], name: str) -> int | None:
    value = values.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _char(values: dict[str, Any], name: str) -> str:
    value = values.get(name, "")
    return value[:1] if isinstance(value, str) else ""


def _field_problem(values: dict[str, Any]) -> str | None:
    """Why the order's fields are wrong (15), or None."""
    choices = (("Direction", _char(values, "Direction"), DIRECTIONS),
               ("CombOffsetFlag", _char(values, "CombOffsetFlag"), OFFSETS),
               ("CombHedgeFlag", _char(values, "CombHedgeFlag"), HEDGES),
               ("OrderPriceType", _char(values, "OrderPriceType"), PRICE_TYPES),
               ("TimeCondition", _char(values, "TimeCondition"), TIME_CONDITIONS),
               ("VolumeCondition", _char(values, "VolumeCondition"), VOLUME_CONDITIONS))
    for name, value, valid in choices:
        if value not in valid:
            shown = ", ".join(f"{k!r} {v}" for k, v in valid.items())
            return f"{name} {values.get(name, '')!r} is not one of {shown}"
    volume = _int(values, "VolumeTotalOriginal")
    if volume is None or volume <= 0:
        return f"VolumeTotalOriginal {values.get('VolumeTotalOriginal')!r} must be a whole number of lots above 0"
    price = values.get("LimitPrice", 0.0)
    if isinstance(price, bool) or not isinstance(price, (int, float)) or not math.isfinite(price):
        return f"LimitPrice {price!r} must be a finite number"
    if _char(values, "OrderPriceType") == "2" and price <= 0:
        return f"LimitPrice {price!r} of a limit order must be above 0"
    if _char(values, "VolumeCondition") == "2":
        minimum = _int(values, "MinVolume")
        if minimum is None or not 1 <= minimum <= volume:
            return f"MinVolume {values.get('MinVolume')!r} must be from 1 to the order's {volume} lots"
    if values.get("ContingentCondition", IMMEDIATELY) != IMMEDIATELY:
        return (f"ContingentCondition {values.get('ContingentCondition')!r}: only '1' (immediately) is taken; "
                "conditional orders are not simulated")
    if values.get("ForceCloseReason", "0") not in FORCE_CLOSE_REASONS:
        return f"ForceCloseReason {values.get('ForceCloseReason')!r}: only '0' (not a forced close) is taken"
    return None


def close_volume_error(terms: Terms, offset: str) -> str:
    """The error name for closing more than held (SIM_TRADING.md 0.2): split positions answer
    50 for close today and 51 for close / close yesterday; the others 30."""
    if not terms.split_positions:
        return "OVER_CLOSE_POSITION"
    return "OVER_CLOSETODAY_POSITION" if offset == "3" else "OVER_CLOSEYESTERDAY_POSITION"


def cost_price(values: dict[str, Any], book: Book | None, terms: Terms | None = None) -> float:
    """The price an order's margin and commission are reckoned at (the check and the freeze
    both use it): a limit order's LimitPrice; a market order's the limit price of its side from
    ``book`` (a buy the upper, a sell the lower; the tick's, else the band around pre-settlement
    when ``terms`` are given), else the last price, else pre-settlement, else 0 (nothing known)."""
    if _char(values, "OrderPriceType") != "1":
        return float(values.get("LimitPrice", 0.0))
    if book is None:
        return 0.0
    if terms is not None:
        upper, lower = price_limits(terms, book)
    else:
        upper, lower = book.upper, book.lower
    side_limit = upper if _char(values, "Direction") == "0" else lower
    return side_limit or book.last or book.pre_settlement or 0.0


def account_problem(values: dict[str, Any], account: tuple[str, str] | None) -> Reject | None:
    """146 INVESTOR_ID_IS_MISSING for a blank InvestorID; 3 INVALID_LOGIN for a BrokerID or
    InvestorID that is not the logged-in session's ``account`` (BrokerID, InvestorID); None
    when ``account`` is None (not checked) or the request names it."""
    if account is None:
        return None
    broker_id = values.get("BrokerID", "") or ""
    investor_id = values.get("InvestorID", "") or ""
    if not isinstance(investor_id, str) or not investor_id.strip():
        return _reject("INVESTOR_ID_IS_MISSING", f"InvestorID is empty; fill in the login's {account[1]!r}")
    if (broker_id, investor_id) != tuple(account):
        return _reject("INVALID_LOGIN", f"BrokerID {broker_id!r} InvestorID {investor_id!r} is not the logged-in "
                                        f"account (BrokerID {account[0]!r} InvestorID {account[1]!r})")
    return None


def check_insert(input_values: dict[str, Any], *, confirmed: bool, session_refs: OrderRefs, terms: Terms | None,
                 ledger: LedgerView, exchange_ids: set[str] | frozenset[str], account: tuple[str, str] | None = None,
                 book: Book | None = None, trading_day: date | None = None) -> Reject | None:
    """The CTP-layer checks of a ``CThostFtdcInputOrderField`` (``input_values``), in the order
    of the module docstring: the first failure, or None when CTP accepts the order.
    ``account`` is the session's (BrokerID, InvestorID) (:func:`account_problem`, first of all);
    a market order is costed at :func:`cost_price` of ``book``; ``trading_day``, when given,
    refuses a contract past its last trading day (17)."""
    refused = account_problem(input_values, account)
    if refused is not None:
        return refused
    problem = _field_problem(input_values)
    if problem:
        return _reject("BAD_FIELD", problem)
    exchange_id = input_values.get("ExchangeID", "") or ""
    if not exchange_id:
        return _reject("EXCHANGE_ID_IS_MISSING", "ExchangeID is empty; fill in the instrument's exchange")
    if exchange_id not in exchange_ids:
        return _reject("EXCHANGE_ID_IS_INVALID",
                       f"ExchangeID {exchange_id!r} is not one of {', '.join(sorted(exchange_ids))}")
    instrument_id = input_values.get("InstrumentID", "")
    if terms is None:
        return _reject("INSTRUMENT_NOT_FOUND", f"InstrumentID {instrument_id!r} is not an instrument of this front")
    if exchange_id != terms.ExchangeID:
        return _reject("EXCHANGE_ID_IS_WRONG",
                       f"ExchangeID {exchange_id!r} is wrong for {instrument_id}, which trades on {terms.ExchangeID}")
    expires = getattr(terms.info, "expire_date", None)
    if trading_day is not None and expires is not None and trading_day > expires:
        return _reject("INSTRUMENT_NOT_TRADING",
                       f"{instrument_id} stopped trading after its last trading day {expires:%Y%m%d}")
    volume = input_values["VolumeTotalOriginal"]
    market = _char(input_values, "OrderPriceType") == "1"
    if market and not terms.accepts_market_orders:
        return _reject("BAD_FIELD", f"{terms.ExchangeID} takes no market (any price) orders; send a limit order")
    most = terms.MaxMarketOrderVolume if market else terms.MaxLimitOrderVolume
    if volume > most:
        kind = "MaxMarketOrderVolume" if market else "MaxLimitOrderVolume"
        return _reject("BAD_FIELD", f"VolumeTotalOriginal {volume} is above {instrument_id}'s {kind} {most}")
    if not confirmed:
        return _reject("SETTLEMENT_INFO_NOT_CONFIRMED",
                       "the settlement of the previous trading day is not confirmed: send ReqSettlementInfoConfirm")
    order_ref = input_values.get("OrderRef", "") or ""
    if session_refs.resolve(order_ref) is None:
        return _reject("DUPLICATE_ORDER_REF",
                       f"OrderRef {order_ref!r} is not a number above the session's highest {session_refs.highest}")
    direction = _char(input_values, "Direction")
    offset = _char(input_values, "CombOffsetFlag")
    hedge = _char(input_values, "CombHedgeFlag")
    if offset != "0":
        held = ledger.closable(terms, direction, offset, hedge)
        if volume > held:
            return _reject(close_volume_error(terms, offset),
                           f"closing {volume} lots of {instrument_id} ({OFFSETS[offset]}) but {held} can be closed")
    price = cost_price(input_values, book, terms)
    margin, commission = ledger.order_cost(terms, direction, offset, price, volume, hedge=hedge)
    needed = commission + (margin if offset == "0" else 0.0)
    available = ledger.available()
    if needed > available + 1e-9:
        return _reject("INSUFFICIENT_MONEY",
                       f"the order needs {needed:.2f} (margin {margin:.2f}, commission {commission:.6f}) "
                       f"but {available:.2f} is available")
    return None


def action_lookup(action_values: dict[str, Any], *, front_id: int, session_id: int) -> tuple:
    """The key of the order a ``CThostFtdcInputOrderActionField`` names: ``("sys", ExchangeID,
    OrderSysID)`` when OrderSysID is given, else ``("ref", FrontID, SessionID, OrderRef)`` (FrontID
    and SessionID 0 mean the requesting session's).  Ids compare without their padding."""
    sys_id = (action_values.get("OrderSysID", "") or "").strip()
    if sys_id:
        return ("sys", action_values.get("ExchangeID", "") or "", sys_id)
    return ("ref", action_values.get("FrontID", 0) or front_id, action_values.get("SessionID", 0) or session_id,
            (action_values.get("OrderRef", "") or "").strip())


def order_keys(order: Order) -> list[tuple]:
    """The keys :func:`action_lookup` finds ``order`` by (the counter indexes its orders by them)."""
    keys: list[tuple] = [("ref", order.FrontID, order.SessionID, order.OrderRef.strip())]
    if order.OrderSysID:
        keys.append(("sys", order.ExchangeID, order.OrderSysID.strip()))
    return keys


def check_action(action_values: dict[str, Any], *, order: Order | None,
                 account: tuple[str, str] | None = None) -> Reject | None:
    """The CTP-layer checks of a cancel of ``order`` (None when none was found): None when the
    cancel is accepted (then ``orders.cancel``).  ``account`` as in :func:`check_insert`."""
    refused = account_problem(action_values, account)
    if refused is not None:
        return refused
    flag = action_values.get("ActionFlag", "0")
    if flag != "0":
        return _reject("BAD_FIELD", f"ActionFlag {flag!r}: only '0' (delete) is taken; orders cannot be modified")
    if order is None:
        return _reject("ORDER_NOT_FOUND", "no order has the FrontID+SessionID+OrderRef or ExchangeID+OrderSysID given")
    if not order.alive:
        return _reject("INSUITABLE_ORDER_STATUS",
                       f"order {order.OrderRef.strip()} is finished (OrderStatus {order.OrderStatus!r})")
    return None


def _exchange_text(code: int, exchange_id: str, reason: str) -> str:
    return f"{code}:已撤单报单被拒绝{exchange_id}:{reason}"


def price_limits(terms: Terms, book: Book | None) -> tuple[float | None, float | None]:
    """(upper, lower) limit prices: the tick's, else pre-settlement x (1 +- the product's band)
    rounded inwards to the tick (SIM_TRADING.md 1.4, 6.24); None where unknown."""
    if book is None:
        return None, None
    upper, lower = book.upper, book.lower
    product = getattr(terms.info, "product", None)
    if book.pre_settlement and product is not None and (upper is None or lower is None):
        band_upper, band_lower = products.price_limits(product, book.pre_settlement)
        upper = band_upper if upper is None else upper
        lower = band_lower if lower is None else lower
    return upper, lower


def in_opening_auction(terms: Terms, moment: datetime) -> bool:
    """Whether ``moment`` lies in the order-entry minutes of a futures contract's opening call
    auction (before the first session of a trading day; stocks: never)."""
    product = getattr(terms.info, "product", None)
    if terms.is_stock or product is None or terms.is_trading(moment):
        return False
    start = products.next_open(product, moment)
    if start is None:
        return False
    if not start - AUCTION_ENTRY <= moment < start - AUCTION_MATCH:
        return False
    sessions = products.trading_day_sessions(product, calendar.trading_day_of(start))
    return bool(sessions) and sessions[0][0] == start


def exchange_reject(order: Order, terms: Terms, book: Book | None, moment: datetime, *, hours: bool) -> str | None:
    """The exchange's StatusMsg rejecting ``order`` at ``moment`` (feed time), or None: 26 outside
    a session (only when ``hours``), 79 an order type it does not take, 48 off the tick, 49/50
    outside the price limits (SIM_TRADING.md 2.4; the 48 wording is not confirmed)."""
    exchange_id = order.ExchangeID
    if hours and not terms.is_trading(moment):
        # In the opening auction only GFD limit orders are taken (they wait for the open).
        auction = in_opening_auction(terms, moment) and order.TimeCondition == "3" and not order.is_market
        if not auction:
            return _exchange_text(26, exchange_id, "当前状态禁止此项操作")
    if order.TimeCondition not in EXCHANGE_TIME_CONDITIONS or (order.TimeCondition == "3" and order.VolumeCondition == "3"):
        return _exchange_text(79, exchange_id, "不被支持的报单类型")
    if order.is_market:
        return None
    steps = order.LimitPrice / terms.PriceTick
    if abs(steps - round(steps)) > TICK_TOLERANCE:
        return _exchange_text(48, exchange_id, "报单价格不是最小变动价位的整数倍")
    upper, lower = price_limits(terms, book)
    if upper is not None and order.LimitPrice > upper + TICK_TOLERANCE * terms.PriceTick:
        return _exchange_text(49, exchange_id, "价格超出涨停板")
    if lower is not None and order.LimitPrice < lower - TICK_TOLERANCE * terms.PriceTick:
        return _exchange_text(50, exchange_id, "价格跌破跌停板")
    return None
