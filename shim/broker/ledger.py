"""One account of the simulated counter: money, positions, position details.

A :class:`Ledger` is the books of one BrokerID + InvestorID: the day's cash movements, the
positions (one record per InstrumentID x PosiDirection x HedgeFlag, and x PositionDate on
exchanges that keep today's lots apart), a position detail per opening trade, and what the
pending orders freeze.  It is pure domain code: no threads, no clock, no I/O.  The counter calls
it under its lock and persists :meth:`Ledger.to_state`.

The rules, from ``SIM_TRADING.md``:

* Balance = PreBalance + Deposit - Withdraw + CloseProfit + PositionProfit - Commission (2.1).
* Available = Balance - CurrMargin - FrozenMargin - FrozenCommission, with the floating profit
  treated by ``Algorithm`` and the close profit by ``AvailIncludeCloseProfit`` on the account's
  sums (2.1, 6.12).  The defaults are SimNow's: floating profit not available, floating loss
  deducted, close profit available.
* Margin (3.2): yesterday's lots at the pre-settlement price, today's by ``MarginPriceType``
  (default '4', the open price); a product whose terms say ``single_side_margin`` charges only
  its larger side (CurrMargin = max(long, short) per product) and a pending order of it freezes
  only what it adds to that maximum.  Position records and details show their own, un-netted
  margin, as SimNow's statement does.
* Commission at the trade price by what a fill consumed: the open tier, the close tier for
  yesterday's lots, the close-today tier for today's lots (3.2, 6.15, 6.17).  Never rounded
  intraday; at settlement each trade's fee is taken to the cent, as SimNow's statement sums the
  rounded fees (4.4: 2.96 + 2.97 + 1.48 + 4.00 = 11.41 where the exact fees sum to 11.3995).
* Closing (2.2, 6.14): within the record the order addresses (SHFE/INE: the today record for
  close-today, the history record for close and close-yesterday; elsewhere the one record),
  first opened first closed.  CloseProfitByDate (= CloseProfit) against the pre-settlement
  price for yesterday's lots and the open price for today's; CloseProfitByTrade against the open
  price.
* Settlement (4.2): see :meth:`Ledger.settle`.

Prices of an instrument reach the ledger by :meth:`Ledger.mark` (the latest price and the
pre-settlement price of the tick); positions are marked at the latest price, and
``SettlementPrice`` holds it intraday (2.2).
"""

from __future__ import annotations

import json
import logging
import math
import operator
from dataclasses import dataclass, field, fields
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Callable

from ..ctp import calendar
from ..ctp.market_data import present_price
from ..ctp.rates import MARGIN_COLUMNS, Rates
from .terms import Terms

# CTP's codes (ThostFtdcUserApiDataType.h names in the comments).
BUY, SELL = "0", "1"  # THOST_FTDC_D_Buy / _Sell
LONG, SHORT = "2", "3"  # THOST_FTDC_PD_Long / _Short
TODAY, HISTORY = "1", "2"  # THOST_FTDC_PSD_Today / _History
OPEN, CLOSE, CLOSE_TODAY = "0", "1", "3"  # THOST_FTDC_OF_Open / _Close / _CloseToday
CLOSE_OFFSETS = frozenset("123456")  # Close, ForceClose, CloseToday, CloseYesterday, ForceOff, LocalForceClose
SETTLEMENT_ID = 1
CURRENCY_ID = "CNY"

MARGIN_PRICE_TYPES = {"1": "pre-settlement price", "2": "latest price", "3": "average open price",
                      "4": "open price"}
ALGORITHMS = {"1": "floating profit and loss", "2": "floating loss only", "3": "floating profit only",
              "4": "neither"}
AVAIL_INCLUDE_CLOSE_PROFIT = {"0": "include", "2": "exclude"}
FROZEN_MARGIN_PRICES = ("order", "pre_settlement")

log = logging.getLogger("ctpshim.broker.ledger")


class LedgerError(ValueError):
    """A request the account cannot carry out (bad amount, unknown order, more than it holds);
    the message names the value and what is valid."""


def cents(amount: float) -> float:
    """``amount`` rounded half-up to the cent, as a statement prints money (2.9562 -> 2.96)."""
    return float(Decimal(repr(amount)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


@dataclass
class LedgerParams:
    """The broker trading parameters the ledger applies (``CThostFtdcBrokerTradingParamsField``
    names, answered by ``ReqQryBrokerTradingParams``), plus the ledger's own choices.

    * ``MarginPriceType``: the price of today's lots' margin: '1' pre-settlement, '2' latest,
      '3' average open price (the same sum as '4' per lot), '4' open price (SimNow).
    * ``Algorithm``: which floating P/L counts as available: '1' both, '2' loss only (SimNow),
      '3' profit only, '4' neither.
    * ``AvailIncludeCloseProfit``: '0' close profit is available (SimNow), '2' it is not.
    * ``frozen_margin_price``: 'order' (the order price, as SimNow freezes) or 'pre_settlement'.
    * ``withdraw_quota_ratio``: WithdrawQuota = Available x ratio (0.8 in a SimNow capture,
      SIM_TRADING.md 2.1 [S-HOMALOS]: 15,256,451.112 = 0.8 x 19,070,563.89).
    * ``fee_cents_at_settlement``: settle each trade's fee to the cent (SimNow's statement).
    """

    MarginPriceType: str = "4"
    Algorithm: str = "2"
    AvailIncludeCloseProfit: str = "0"
    frozen_margin_price: str = "order"
    withdraw_quota_ratio: float = 0.8
    fee_cents_at_settlement: bool = True

    def __post_init__(self) -> None:
        for name, valid in (("MarginPriceType", MARGIN_PRICE_TYPES), ("Algorithm", ALGORITHMS),
                            ("AvailIncludeCloseProfit", AVAIL_INCLUDE_CLOSE_PROFIT)):
            value = getattr(self, name)
            if value not in valid:
                choices = ", ".join(f"'{code}' ({meaning})" for code, meaning in valid.items())
                raise ValueError(f"{name} {value!r}: expected one of {choices}")
        if self.frozen_margin_price not in FROZEN_MARGIN_PRICES:
            raise ValueError(f"frozen_margin_price {self.frozen_margin_price!r}: expected "
                             + " or ".join(repr(p) for p in FROZEN_MARGIN_PRICES))
        ratio = self.withdraw_quota_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio <= 1:
            raise ValueError(f"withdraw_quota_ratio {ratio!r}: expected a number from 0 to 1")


@dataclass
class InstrumentFacts:
    """The part of an instrument's :class:`~ctpshim.broker.terms.Terms` the ledger stores with
    its state: enough to value and margin the positions of a reloaded ledger before the counter
    hands it the terms again (exchange, product, multiplier, position rules and the rates)."""

    ExchangeID: str
    ProductID: str
    multiplier: int
    split: bool
    single_side: bool
    rates: Rates

    @classmethod
    def of(cls, terms: Terms) -> InstrumentFacts:
        """The facts of ``terms``."""
        return cls(terms.ExchangeID, terms.ProductID, terms.VolumeMultiple, terms.split_positions,
                   terms.single_side_margin, terms.rates)

    def ratios(self, long: bool) -> tuple[float, float]:
        """(MarginRateByMoney, MarginRateByVolume) of the long or the short side."""
        r = self.rates
        if long:
            return r.LongMarginRatioByMoney, r.LongMarginRatioByVolume
        return r.ShortMarginRatioByMoney, r.ShortMarginRatioByVolume

    def margin(self, lots: int, price: float, long: bool) -> float:
        """The margin of ``lots`` at ``price`` (:meth:`ctpshim.ctp.rates.Rates.margin`)."""
        return self.rates.margin(lots, price, "long" if long else "short")

    def to_state(self) -> dict[str, Any]:
        """JSON-able values (:meth:`from_state` reads them back)."""
        return {"ExchangeID": self.ExchangeID, "ProductID": self.ProductID, "multiplier": self.multiplier,
                "split": self.split, "single_side": self.single_side, "rates": _flat(self.rates)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> InstrumentFacts:
        """The facts :meth:`to_state` wrote; a state of version 1 or 2 kept only the four margin
        ratios, so its rates carry no commission (the ledger charges commission from the terms
        the counter hands in, never from stored facts)."""
        state = dict(state)
        rates = state.pop("rates", None)
        if rates is None:
            margins = {name: float(state.pop(name)) for name in MARGIN_COLUMNS}
            rates = Rates(state["ExchangeID"], state["ProductID"], "stored", int(state["multiplier"]),
                          *(margins[name] for name in MARGIN_COLUMNS), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                          False, "margin ratios stored by an earlier ledger state")
        else:
            rates = Rates(**rates)
        return cls(**state, rates=rates)


@dataclass
class _Detail:
    """One opening trade's lots (``CThostFtdcInvestorPositionDetailField`` names)."""

    InstrumentID: str
    ExchangeID: str
    HedgeFlag: str
    Direction: str
    OpenDate: str
    TradeID: str
    TradeType: str
    OpenPrice: float
    Volume: int
    LastSettlementPrice: float
    today: bool
    CloseVolume: int = 0
    CloseAmount: float = 0.0
    CloseProfitByDate: float = 0.0
    CloseProfitByTrade: float = 0.0

    @property
    def long(self) -> bool:
        return self.Direction == BUY

    @property
    def basis(self) -> float:
        """The price the lots are marked against: the open price today, else last settlement."""
        return self.OpenPrice if self.today else self.LastSettlementPrice


@dataclass
class _Record:
    """One position record's day counters; its volumes and costs come from its details."""

    InstrumentID: str
    PosiDirection: str
    HedgeFlag: str
    PositionDate: str
    YdPosition: int = 0
    OpenVolume: int = 0
    CloseVolume: int = 0
    OpenAmount: float = 0.0
    CloseAmount: float = 0.0
    CloseProfitByDate: float = 0.0
    CloseProfitByTrade: float = 0.0
    Commission: float = 0.0
    PreMargin: float = 0.0
    details: list[_Detail] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return self.InstrumentID, self.PosiDirection, self.HedgeFlag, self.PositionDate

    @property
    def long(self) -> bool:
        return self.PosiDirection == LONG

    @property
    def position(self) -> int:
        return sum(d.Volume for d in self.details)

    @property
    def today_position(self) -> int:
        return sum(d.Volume for d in self.details if d.today)


@dataclass
class _Pending:
    """What one pending order freezes (its untraded lots)."""

    InstrumentID: str
    Direction: str
    offset: str
    HedgeFlag: str
    volume: int
    margin_per_lot: float  # open orders: raw (un-netted) margin of one lot
    commission: float  # frozen commission of the untraded lots
    record: tuple[str, str, str, str]  # the record it opens into or closes from

    @property
    def opens(self) -> bool:
        return self.offset == OPEN


def _posi_of_open(direction: str) -> str:
    return LONG if direction == BUY else SHORT


def _posi_closed_by(direction: str) -> str:
    """The PosiDirection a closing order of ``direction`` closes (a sell closes a long)."""
    return LONG if direction == SELL else SHORT


def _check_direction(direction: str) -> None:
    if direction not in (BUY, SELL):
        raise LedgerError(f"Direction {direction!r}: expected '0' (buy) or '1' (sell)")


def _check_offset(offset: str) -> None:
    if offset != OPEN and offset not in CLOSE_OFFSETS:
        raise LedgerError(f"OffsetFlag {offset!r}: expected '0' (open) or a close flag '1'-'6'")


def _check_volume(volume: Any, what: str = "volume") -> None:
    if isinstance(volume, bool) or not isinstance(volume, int) or volume <= 0:
        raise LedgerError(f"{what} {volume!r}: expected a whole number of lots above 0")


STATE_VERSION = 3
_RECORD_FIELDS = tuple(f.name for f in fields(_Record) if f.name != "details")
_DETAIL_FIELDS = tuple(f.name for f in fields(_Detail))
_record_values = operator.attrgetter(*_RECORD_FIELDS)
_detail_values = operator.attrgetter(*_DETAIL_FIELDS)


def _pack_rows(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Rows of dicts as ``{"keys": [names...], "rows": [[which keys, value...]]}`` (names once)."""
    schemas: dict[tuple[str, ...], int] = {}
    packed = []
    for row in rows:
        names = tuple(row)
        packed.append([schemas.setdefault(names, len(schemas)), *row.values()])
    return {"keys": [list(names) for names in schemas], "rows": packed}


_getters: dict[type, tuple[tuple[str, ...], Callable[[Any], Any]]] = {}


def _flat(obj: Any) -> dict[str, Any]:
    """``asdict`` of a dataclass whose fields are all scalars (without its deep copy)."""
    known = _getters.get(type(obj))
    if known is None:
        names = tuple(f.name for f in fields(obj))
        known = _getters[type(obj)] = (names, operator.attrgetter(*names))
    return dict(zip(known[0], known[1](obj)))


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class _PackedText:
    """The JSON text of :func:`_pack_rows` of an append-only list of rows, extended row by row:
    the rows already written are not serialised again (a new list starts over)."""

    __slots__ = ("rows", "count", "schemas", "text")

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] | None = None
        self.count = 0
        self.schemas: dict[tuple[str, ...], int] = {}
        self.text: list[str] = []

    def of(self, rows: list[dict[str, Any]]) -> str:
        if rows is not self.rows or len(rows) < self.count:
            self.rows, self.count, self.schemas, self.text = rows, 0, {}, []
        schemas = self.schemas
        for row in rows[self.count:]:
            names = tuple(row)
            self.text.append(_dumps([schemas.setdefault(names, len(schemas)), *row.values()]))
        self.count = len(rows)
        return '{"keys":' + _dumps([list(names) for names in schemas]) + ',"rows":[' + ",".join(self.text) + "]}"


def _unpack_rows(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, list):  # version 1: the dicts themselves
        return [dict(row) for row in data]
    keys = data["keys"]
    return [dict(zip(keys[row[0]], row[1:], strict=True)) for row in data["rows"]]



def _check_amount(amount: Any, what: str) -> float:
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not math.isfinite(amount) or amount <= 0:
        raise LedgerError(f"{what} {amount!r}: expected a finite amount of yuan above 0")
    return float(amount)


class Ledger:
    """The books of one account (BrokerID + InvestorID); see the module for the rules.

    ``balance`` is the opening balance (a new account's PreBalance), ``trading_day`` the trading
    day it books into (YYYYMMDD).
    """

    def __init__(self, BrokerID: str, InvestorID: str, *, balance: float, trading_day: str,
                 params: LedgerParams | None = None) -> None:
        if isinstance(balance, bool) or not isinstance(balance, (int, float)) or not math.isfinite(balance) \
                or balance < 0:
            raise LedgerError(f"balance {balance!r}: expected a finite amount of yuan from 0")
        if calendar.day_or_none(trading_day) is None:
            raise LedgerError(f"trading_day {trading_day!r}: expected YYYYMMDD")
        self.BrokerID = BrokerID
        self.InvestorID = InvestorID
        self.params = params or LedgerParams()
        self.TradingDay = trading_day
        self.PreBalance = float(balance)
        self.PreMargin = 0.0
        self.Deposit = 0.0
        self.Withdraw = 0.0
        self._facts: dict[str, InstrumentFacts] = {}
        self._terms: dict[str, Terms] = {}  # the last terms seen per instrument (not persisted)
        self._last: dict[str, float] = {}  # latest price per instrument
        self._pre: dict[str, float] = {}  # pre-settlement price per instrument
        self._settled: set[str] = set()  # instruments whose pre-settlement is this ledger's settlement
        self._estimated: set[str] = set()  # of those, settled at the ledger's own fallback (no price given)
        self._told: set[tuple[str, float]] = set()  # settlement differences already logged (not persisted)
        self._records: dict[tuple[str, str, str, str], _Record] = {}
        self._pending: dict[int, _Pending] = {}
        self._trades: list[dict[str, Any]] = []  # today's trades, for the statement
        self._closed: list[dict[str, Any]] = []  # today's closed lots, for the statement
        self._packed = (_PackedText(), _PackedText())  # the JSON of _trades and _closed so far
        # id(record) -> (record, its details' values, their JSON): what _records_json wrote last
        self._detail_text: dict[int, tuple[_Record, list[tuple[Any, ...]], list[str]]] = {}

    # ---------------------------------------------------------------- prices and facts

    def _learn(self, terms: Terms) -> InstrumentFacts:
        """The facts of ``terms``, refreshed when the counter hands in other terms (rates)."""
        if self._terms.get(terms.InstrumentID) is terms:
            return self._facts[terms.InstrumentID]
        facts = self._facts[terms.InstrumentID] = InstrumentFacts.of(terms)
        self._terms[terms.InstrumentID] = terms
        return facts

    def _facts_of(self, instrument_id: str) -> InstrumentFacts:
        try:
            return self._facts[instrument_id]
        except KeyError:
            raise LedgerError(f"instrument {instrument_id!r}: this account has never seen its terms") from None

    def mark(self, terms: Terms, price: float, pre_settlement: float | None = None, *,
             trading_day: str | None = None) -> None:
        """The instrument's latest price (positions' PositionProfit and SettlementPrice) and,
        when given, its pre-settlement price (new lots' LastSettlementPrice).  Absent prices
        (0, DBL_MAX, not finite) are ignored.

        ``trading_day`` is the tick's TradingDay: a tick of a day before the ledger's (the old
        day's last tick, handed in after the settlement) is ignored, so positions stay marked at
        the settlement price until a tick of the new day.  Lots opened before the pre-settlement
        was known take it then.  An instrument this ledger settled keeps its settlement price as
        the day's pre-settlement (SIM_TRADING.md 4.2 step 7): the figures rolled from it, and
        the balance, rest on that price.  When a tick of that day carries another
        PreSettlementPrice (the exchange's, where the ledger had to settle without it), the
        ledger re-bases on the exchange's price (:meth:`_rebase`)."""
        self._learn(terms)
        if trading_day is not None and not isinstance(trading_day, str):
            raise LedgerError(f"trading_day {trading_day!r}: expected the tick's TradingDay, YYYYMMDD")
        if trading_day and trading_day < self.TradingDay:
            return
        last, pre = present_price(price), present_price(pre_settlement)
        if last is not None:
            self._last[terms.InstrumentID] = last
        if pre is None or pre == self._pre.get(terms.InstrumentID):
            return
        if terms.InstrumentID in self._settled:
            if trading_day == self.TradingDay:  # only a tick known to be of the new day
                self._rebase(terms.InstrumentID, pre)
        else:
            self._pre[terms.InstrumentID] = pre
            for record in self._records.values():
                if record.InstrumentID == terms.InstrumentID:
                    for detail in record.details:
                        if not detail.LastSettlementPrice:  # opened before the price was known
                            detail.LastSettlementPrice = pre

    def _rebase(self, instrument_id: str, exchange: float) -> None:
        """The exchange's settlement price ``exchange`` of yesterday differs from the price the
        ledger settled ``instrument_id`` at.  When that price was the ledger's own fallback (no
        settlement price was handed to :meth:`settle`: a restart across the day end settles at
        the last price seen), settling at the exchange's price would have given each lot held
        dir x (exchange - own) x lots x multiplier more: PreBalance takes it, the lots' last
        settlement and PreMargin move to that price.  That only while nothing of the product
        traded or is pending today (the day's figures then still rest on the old price alone).
        Otherwise (a price the caller settled at, from the feed or its VWAP rule, or a product
        already traded) the ledger keeps its price and logs the difference once.  Yesterday's
        statement keeps the old price."""
        own = self._pre.get(instrument_id, 0.0)
        facts = self._facts_of(instrument_id)
        product = (facts.ExchangeID, facts.ProductID)

        def of_product(other: str) -> bool:
            other_facts = self._facts.get(other)
            return other_facts is not None and (other_facts.ExchangeID, other_facts.ProductID) == product

        if instrument_id not in self._estimated:
            why = "it settled at the price it was given"
        elif any(of_product(t["InstrumentID"]) for t in self._trades) \
                or any(of_product(p.InstrumentID) for p in self._pending.values()):
            why = "the account already traded the product today"
        else:
            why = ""
        if why:
            if (instrument_id, exchange) not in self._told:
                self._told.add((instrument_id, exchange))
                log.warning("%s %s: the ledger settled %s at %s but the tick's PreSettlementPrice is %s; %s, "
                            "so it stays on %s", self.BrokerID, self.InvestorID, instrument_id, own, exchange,
                            why, own)
            return
        self._estimated.discard(instrument_id)
        held = [(r, d) for r in self._records.values() if r.InstrumentID == instrument_id for d in r.details]
        before = self._pre_margin()
        change = sum((1.0 if d.long else -1.0) * (exchange - own) * d.Volume * facts.multiplier for _, d in held)
        for _, detail in held:
            detail.LastSettlementPrice = exchange
        for record in {id(r): r for r, _ in held}.values():
            record.PreMargin = sum(self._detail_margin(d) for d in record.details if d.Volume)
        self._pre[instrument_id] = exchange
        self.PreBalance += change
        self.PreMargin += self._pre_margin() - before
        log.warning("%s %s: the ledger settled %s at %s but the exchange's settlement (the tick's "
                    "PreSettlementPrice) is %s: re-based on it, PreBalance %+.2f (the statement of the "
                    "previous day still shows %s)", self.BrokerID, self.InvestorID, instrument_id, own, exchange,
                    change, own)

    def _pre_margin(self) -> float:
        """The margin of yesterday's lots at their last settlement, single-side products netted."""
        sides: dict[tuple[str, str] | str, list[float]] = {}
        single: set[tuple[str, str] | str] = set()
        for record in self._records.values():
            facts = self._facts_of(record.InstrumentID)
            key: tuple[str, str] | str = (facts.ExchangeID, facts.ProductID) if facts.single_side \
                else record.InstrumentID
            if facts.single_side:
                single.add(key)
            margin = sum(facts.margin(d.Volume, d.LastSettlementPrice, d.long) for d in record.details
                         if d.Volume and not d.today)
            sides.setdefault(key, [0.0, 0.0])[0 if record.long else 1] += margin
        return sum(max(v) if k in single else sum(v) for k, v in sides.items())

    def instruments(self) -> list[str]:
        """The instruments this account holds or has pending orders in (to mark and settle)."""
        held = {r.InstrumentID for r in self._records.values() if r.position}
        held.update(p.InstrumentID for p in self._pending.values())
        return sorted(held)

    def _margin_price(self, detail: _Detail) -> float:
        """The price a detail's margin is charged at (SIM_TRADING.md 3.2)."""
        if not detail.today:
            return detail.LastSettlementPrice
        kind = self.params.MarginPriceType
        if kind == "1":
            return self._pre.get(detail.InstrumentID) or detail.LastSettlementPrice or detail.OpenPrice
        if kind == "2":
            return self._last.get(detail.InstrumentID, detail.OpenPrice)
        return detail.OpenPrice

    def _detail_margin(self, detail: _Detail, price: float | None = None) -> float:
        facts = self._facts_of(detail.InstrumentID)
        return facts.margin(detail.Volume, self._margin_price(detail) if price is None else price, detail.long)

    # ---------------------------------------------------------------- records

    def _record_key(self, terms_or_facts: Terms | InstrumentFacts, instrument_id: str, posi: str, hedge: str,
                    today: bool) -> tuple[str, str, str, str]:
        split = terms_or_facts.split_positions if isinstance(terms_or_facts, Terms) else terms_or_facts.split
        return instrument_id, posi, hedge, (TODAY if today or not split else HISTORY)

    def _close_key(self, terms: Terms, direction: str, offset: str, hedge: str) -> tuple[str, str, str, str]:
        """The record a closing order addresses: SHFE/INE close-today the today record, any other
        close the history record (OF_Close means close-yesterday there); elsewhere the one record."""
        return self._record_key(terms, terms.InstrumentID, _posi_closed_by(direction), hedge, offset == CLOSE_TODAY)

    def _frozen_close(self, key: tuple[str, str, str, str]) -> int:
        return sum(p.volume for p in self._pending.values() if not p.opens and p.record == key)

    # ---------------------------------------------------------------- LedgerView

    def closable(self, terms: Terms, direction: str, offset: str, hedge: str) -> int:
        """The lots a closing order (``direction``, ``offset``) may still close: the addressed
        record's position less what pending close orders already froze in it."""
        _check_direction(direction)
        if offset not in CLOSE_OFFSETS:
            raise LedgerError(f"OffsetFlag {offset!r}: closable is for a close flag '1'-'6'")
        key = self._close_key(terms, direction, offset, hedge)
        record = self._records.get(key)
        held = record.position if record else 0
        return max(0, held - self._frozen_close(key))

    def _close_split(self, terms: Terms, key: tuple[str, str, str, str], volume: int) -> tuple[int, int]:
        """(yesterday lots, today lots) a close of ``volume`` from record ``key`` would consume,
        after what pending closes take first (first opened first closed)."""
        record = self._records.get(key)
        if record is None:
            return volume, 0
        history = record.position - record.today_position
        free_history = max(0, history - self._frozen_close(key))
        old = min(volume, free_history)
        return old, volume - old

    @staticmethod
    def _order_price(price: float) -> float:
        """The price an order is costed at, as the caller reckoned it (``checks.cost_price``, the
        one rule for a market order's price); a price that is not present costs 0."""
        return present_price(price) or 0.0

    def _close_commission(self, terms: Terms, key: tuple[str, str, str, str], price: float, volume: int) -> float:
        price = self._order_price(price)
        old, new = self._close_split(terms, key, volume)
        fee = terms.rates.commission(old, price, CLOSE) if old else 0.0
        return fee + (terms.rates.commission(new, price, CLOSE_TODAY) if new else 0.0)

    def _frozen_price(self, terms: Terms, price: float) -> float:
        if self.params.frozen_margin_price == "pre_settlement":
            pre = self._pre.get(terms.InstrumentID)
            if pre:
                return pre
        return self._order_price(price)

    def order_cost(self, terms: Terms, direction: str, offset: str, price: float, volume: int,
                   hedge: str = "1") -> tuple[float, float]:
        """(margin, commission) an order would freeze now, what :meth:`freeze` then freezes: for
        an open order the margin it adds to the account (only the excess over the larger side for
        a single-side product) and the open commission at ``price``; for a close order no margin
        and the close commission of the lots it would consume from the record of its ``hedge``
        flag (yesterday's at the close rate, today's at the close-today rate).  ``price`` is the
        caller's costing price (a market order's: ``checks.cost_price``); absent, it costs 0."""
        _check_direction(direction)
        _check_offset(offset)
        _check_volume(volume)
        if offset != OPEN:
            key = self._close_key(terms, direction, offset, hedge)
            return 0.0, self._close_commission(terms, key, price, volume)
        facts = self._learn(terms)
        frozen_price = self._frozen_price(terms, price)
        raw = facts.margin(volume, frozen_price, direction == BUY)
        before = self._margins()
        extra = {terms.InstrumentID: (raw if direction == BUY else 0.0, raw if direction == SELL else 0.0)}
        after = self._margins(extra)
        margin = (after[0] + after[1]) - (before[0] + before[1])
        return margin, terms.rates.commission(volume, frozen_price, OPEN)

    def available(self) -> float:
        """Available (see the module)."""
        return self._account()["Available"]

    # ---------------------------------------------------------------- order life

    def freeze(self, order_key: int, terms: Terms, direction: str, offset: str, hedge: str, price: float,
               volume: int) -> None:
        """An accepted order's untraded lots: an open order freezes margin and commission, a
        close order its volume in the record it closes from and its commission."""
        _check_direction(direction)
        _check_offset(offset)
        _check_volume(volume)
        if order_key in self._pending:
            raise LedgerError(f"order {order_key}: already frozen")
        facts = self._learn(terms)
        if offset == OPEN:
            frozen_price = self._frozen_price(terms, price)
            key = self._record_key(terms, terms.InstrumentID, _posi_of_open(direction), hedge, True)
            self._pending[order_key] = _Pending(
                terms.InstrumentID, direction, offset, hedge, volume,
                facts.margin(1, frozen_price, direction == BUY),
                terms.rates.commission(volume, frozen_price, OPEN), key)
            return
        key = self._close_key(terms, direction, offset, hedge)
        free = self.closable(terms, direction, offset, hedge)
        if volume > free:
            raise LedgerError(f"order {order_key}: closes {volume} lots of {terms.InstrumentID} but "
                              f"{free} are closable in the record {key}")
        self._pending[order_key] = _Pending(terms.InstrumentID, direction, offset, hedge, volume, 0.0,
                                            self._close_commission(terms, key, price, volume), key)

    def release(self, order_key: int, volume: int) -> None:
        """``volume`` untraded lots of an order left the book (cancel, expiry, exchange reject):
        their frozen margin, commission or close volume is released.  An order the ledger never
        froze (rejected before freezing) releases nothing."""
        if volume == 0:
            return
        _check_volume(volume)
        pending = self._pending.get(order_key)
        if pending is None:
            return
        self._unfreeze(order_key, pending, volume)

    def _unfreeze(self, order_key: int, pending: _Pending, volume: int) -> None:
        volume = min(volume, pending.volume)
        pending.commission -= pending.commission * volume / pending.volume
        pending.volume -= volume
        if pending.volume <= 0:
            del self._pending[order_key]

    def fill(self, order_key: int, terms: Terms, trade: Any) -> float:
        """Book a trade of order ``order_key`` (a ``Trade`` or anything with its CTP members:
        Direction, OffsetFlag, HedgeFlag, Price, Volume, TradeID, TradeDate, TradingDay,
        TradeTime): release what the filled lots froze, open or close lots, charge the
        commission; returns the commission charged (not rounded)."""
        direction, offset, hedge = trade.Direction, trade.OffsetFlag, trade.HedgeFlag
        price, volume = float(trade.Price), trade.Volume
        _check_direction(direction)
        _check_offset(offset)
        _check_volume(volume, "trade Volume")
        if not present_price(price):
            raise LedgerError(f"trade {trade.TradeID!r} Price {trade.Price!r}: expected a finite price above 0")
        facts = self._learn(terms)
        m = facts.multiplier
        pending = self._pending.get(order_key)
        if pending is not None:
            self._unfreeze(order_key, pending, volume)
        base_row = {
            "TradeDate": trade.TradeDate, "TradeTime": getattr(trade, "TradeTime", ""),
            "TradingDay": getattr(trade, "TradingDay", "") or self.TradingDay,
            "ExchangeID": terms.ExchangeID, "ProductID": terms.ProductID, "InstrumentID": terms.InstrumentID,
            "Direction": direction, "HedgeFlag": hedge, "OffsetFlag": offset, "Price": price, "Volume": volume,
            "Turnover": price * volume * m, "TradeID": trade.TradeID,
        }
        if offset == OPEN:
            key = self._record_key(terms, terms.InstrumentID, _posi_of_open(direction), hedge, True)
            record = self._record(key)
            fee = terms.rates.commission(volume, price, OPEN)
            pre = self._pre.get(terms.InstrumentID, 0.0)
            record.details.append(_Detail(
                terms.InstrumentID, terms.ExchangeID, hedge, direction, self.TradingDay, trade.TradeID,
                getattr(trade, "TradeType", "0") or "0", price, volume, pre, True))
            record.OpenVolume += volume
            record.OpenAmount += price * volume * m
            record.Commission += fee
            self._trades.append({**base_row, "Commission": fee, "CloseProfit": 0.0})
            return fee
        key = self._close_key(terms, direction, offset, hedge)
        record = self._records.get(key)
        held = record.position if record else 0
        if volume > held:
            raise LedgerError(f"trade {trade.TradeID!r} closes {volume} lots of {terms.InstrumentID} but the "
                              f"record {key} holds {held}")
        assert record is not None
        sign = 1.0 if record.long else -1.0
        fee = by_date = by_trade = 0.0
        left = volume
        for detail in record.details:
            if left == 0:
                break
            if detail.Volume == 0:
                continue
            lots = min(left, detail.Volume)
            left -= lots
            part_by_date = sign * (price - detail.basis) * lots * m
            part_by_trade = sign * (price - detail.OpenPrice) * lots * m
            fee += terms.rates.commission(lots, price, CLOSE_TODAY if detail.today else CLOSE)
            detail.Volume -= lots
            detail.CloseVolume += lots
            detail.CloseAmount += price * lots * m
            detail.CloseProfitByDate += part_by_date
            detail.CloseProfitByTrade += part_by_trade
            by_date += part_by_date
            by_trade += part_by_trade
            self._closed.append({
                "CloseDate": trade.TradeDate, "ExchangeID": terms.ExchangeID, "ProductID": terms.ProductID,
                "InstrumentID": terms.InstrumentID, "OpenDate": detail.OpenDate, "HedgeFlag": hedge,
                "Direction": direction, "Volume": lots, "OpenPrice": detail.OpenPrice,
                "LastSettlementPrice": detail.LastSettlementPrice, "Price": price,
                "CloseProfitByDate": part_by_date, "CloseProfitByTrade": part_by_trade,
                "TradeID": trade.TradeID, "OpenTradeID": detail.TradeID,
            })
        record.CloseVolume += volume
        record.CloseAmount += price * volume * m
        record.CloseProfitByDate += by_date
        record.CloseProfitByTrade += by_trade
        record.Commission += fee
        self._trades.append({**base_row, "Commission": fee, "CloseProfit": by_date})
        return fee

    def _record(self, key: tuple[str, str, str, str]) -> _Record:
        record = self._records.get(key)
        if record is None:
            record = self._records[key] = _Record(*key)
        return record

    # ---------------------------------------------------------------- cash

    def deposit(self, amount: float) -> None:
        """Pay ``amount`` yuan in (today's Deposit)."""
        self.Deposit += _check_amount(amount, "deposit")

    def withdraw(self, amount: float) -> None:
        """Take ``amount`` yuan out (today's Withdraw); at most WithdrawQuota."""
        amount = _check_amount(amount, "withdraw")
        quota = self._account()["WithdrawQuota"]
        if amount > quota + 1e-9:
            raise LedgerError(f"withdraw {amount!r}: more than the withdraw quota {quota:.2f}")
        self.Withdraw += amount

    # ---------------------------------------------------------------- valuation

    def _position_profit(self, record: _Record) -> float:
        mark = self._last.get(record.InstrumentID)
        if mark is None:
            return 0.0
        sign = 1.0 if record.long else -1.0
        m = self._facts_of(record.InstrumentID).multiplier
        return sum(sign * (mark - d.basis) * d.Volume * m for d in record.details if d.Volume)

    def _margins(self, extra: dict[str, tuple[float, float]] | None = None,
                 prices: dict[str, float] | None = None) -> tuple[float, float]:
        """(CurrMargin, FrozenMargin) of the account: single-side products net per product.
        ``extra`` adds raw frozen margin (long, short) per instrument (an order being priced);
        ``prices`` values every lot at that price instead (settlement)."""
        used: dict[tuple[str, str] | str, list[float]] = {}  # key -> [long, short, frozen long, frozen short]
        single: set[tuple[str, str] | str] = set()

        def slot(instrument_id: str) -> list[float]:
            facts = self._facts_of(instrument_id)
            key: tuple[str, str] | str = (facts.ExchangeID, facts.ProductID) if facts.single_side else instrument_id
            if facts.single_side:
                single.add(key)
            return used.setdefault(key, [0.0, 0.0, 0.0, 0.0])

        for record in self._records.values():
            if not record.position:
                continue
            values = slot(record.InstrumentID)
            price = None if prices is None else prices[record.InstrumentID]
            values[0 if record.long else 1] += sum(self._detail_margin(d, price) for d in record.details if d.Volume)
        if prices is None:
            for pending in self._pending.values():
                if pending.opens:
                    values = slot(pending.InstrumentID)
                    values[2 if pending.Direction == BUY else 3] += pending.margin_per_lot * pending.volume
        for instrument_id, (long, short) in (extra or {}).items():
            values = slot(instrument_id)
            values[2] += long
            values[3] += short
        current = frozen = 0.0
        for key, (long, short, frozen_long, frozen_short) in used.items():
            if key in single:
                held = max(long, short)
                current += held
                frozen += max(long + frozen_long, short + frozen_short) - held
            else:
                current += long + short
                frozen += frozen_long + frozen_short
        return current, frozen

    def _account(self) -> dict[str, Any]:
        position_profit = sum(self._position_profit(r) for r in self._records.values())
        close_profit = sum(r.CloseProfitByDate for r in self._records.values())
        commission = sum(r.Commission for r in self._records.values())
        current, frozen = self._margins()
        frozen_commission = sum(p.commission for p in self._pending.values())
        balance = self.PreBalance + self.Deposit - self.Withdraw + close_profit + position_profit - commission
        available = balance - current - frozen - frozen_commission
        algorithm = self.params.Algorithm
        if algorithm == "2":
            available -= max(position_profit, 0.0)
        elif algorithm == "3":
            available -= min(position_profit, 0.0)
        elif algorithm == "4":
            available -= position_profit
        if self.params.AvailIncludeCloseProfit == "2":
            available -= max(close_profit, 0.0)
        return {
            "PositionProfit": position_profit, "CloseProfit": close_profit, "Commission": commission,
            "CurrMargin": current, "FrozenMargin": frozen, "FrozenCommission": frozen_commission,
            "Balance": balance, "Available": available,
            "WithdrawQuota": max(0.0, available) * self.params.withdraw_quota_ratio,
        }

    # ---------------------------------------------------------------- CTP views

    def account_values(self) -> dict[str, Any]:
        """Every ``CThostFtdcTradingAccountField`` member, by name."""
        a = self._account()
        return {
            "BrokerID": self.BrokerID, "AccountID": self.InvestorID,
            "PreMortgage": 0.0, "PreCredit": 0.0, "PreDeposit": self.PreBalance, "PreBalance": self.PreBalance,
            "PreMargin": self.PreMargin, "InterestBase": 0.0, "Interest": 0.0,
            "Deposit": self.Deposit, "Withdraw": self.Withdraw,
            "FrozenMargin": a["FrozenMargin"], "FrozenCash": 0.0, "FrozenCommission": a["FrozenCommission"],
            "CurrMargin": a["CurrMargin"], "CashIn": 0.0, "Commission": a["Commission"],
            "CloseProfit": a["CloseProfit"], "PositionProfit": a["PositionProfit"], "Balance": a["Balance"],
            "Available": a["Available"], "WithdrawQuota": a["WithdrawQuota"], "Reserve": 0.0,
            "TradingDay": self.TradingDay, "SettlementID": SETTLEMENT_ID, "Credit": 0.0, "Mortgage": 0.0,
            "ExchangeMargin": a["CurrMargin"], "DeliveryMargin": 0.0, "ExchangeDeliveryMargin": 0.0,
            "ReserveBalance": 0.0, "CurrencyID": CURRENCY_ID,
            "PreFundMortgageIn": 0.0, "PreFundMortgageOut": 0.0, "FundMortgageIn": 0.0, "FundMortgageOut": 0.0,
            "FundMortgageAvailable": 0.0, "MortgageableFund": a["Available"],
            "SpecProductMargin": 0.0, "SpecProductFrozenMargin": 0.0, "SpecProductCommission": 0.0,
            "SpecProductFrozenCommission": 0.0, "SpecProductPositionProfit": 0.0,
            "SpecProductCloseProfit": 0.0, "SpecProductPositionProfitByAlg": 0.0,
            "SpecProductExchangeMargin": 0.0, "BizType": "", "FrozenSwap": 0.0, "RemainSwap": 0.0,
            "OptionValue": 0.0,
        }

    def position_values(self) -> list[dict[str, Any]]:
        """One ``CThostFtdcInvestorPositionField`` member dict per position record (records of
        the day stay, with Position 0, until settlement), by instrument, direction, date."""
        rows = []
        for key in sorted(self._records):
            record = self._records[key]
            facts = self._facts_of(record.InstrumentID)
            m = facts.multiplier
            live = [d for d in record.details if d.Volume]
            position = record.position
            frozen_close = self._frozen_close(key)
            frozen_margin = frozen_commission = 0.0
            for pending in self._pending.values():
                if pending.record == key:
                    frozen_margin += pending.margin_per_lot * pending.volume
                    frozen_commission += pending.commission
            mark = self._last.get(record.InstrumentID)
            pre = self._pre.get(record.InstrumentID) or next(
                (d.LastSettlementPrice for d in record.details if d.LastSettlementPrice), 0.0)
            use_margin = sum(self._detail_margin(d) for d in live)
            money, volume = facts.ratios(record.long)
            rows.append({
                "BrokerID": self.BrokerID, "InvestorID": self.InvestorID, "PosiDirection": record.PosiDirection,
                "HedgeFlag": record.HedgeFlag, "PositionDate": record.PositionDate,
                "YdPosition": record.YdPosition, "Position": position,
                "LongFrozen": 0 if record.long else frozen_close, "ShortFrozen": frozen_close if record.long else 0,
                "LongFrozenAmount": 0.0, "ShortFrozenAmount": 0.0,
                "OpenVolume": record.OpenVolume, "CloseVolume": record.CloseVolume,
                "OpenAmount": record.OpenAmount, "CloseAmount": record.CloseAmount,
                "PositionCost": sum(d.basis * d.Volume * m for d in live), "PreMargin": record.PreMargin,
                "UseMargin": use_margin, "FrozenMargin": frozen_margin, "FrozenCash": 0.0,
                "FrozenCommission": frozen_commission, "CashIn": 0.0, "Commission": record.Commission,
                "CloseProfit": record.CloseProfitByDate, "PositionProfit": self._position_profit(record),
                "PreSettlementPrice": pre, "SettlementPrice": mark if mark is not None else pre,
                "TradingDay": self.TradingDay, "SettlementID": SETTLEMENT_ID,
                "OpenCost": sum(d.OpenPrice * d.Volume * m for d in live), "ExchangeMargin": use_margin,
                "CombPosition": 0, "CombLongFrozen": 0, "CombShortFrozen": 0,
                "CloseProfitByDate": record.CloseProfitByDate, "CloseProfitByTrade": record.CloseProfitByTrade,
                "TodayPosition": record.today_position, "MarginRateByMoney": money, "MarginRateByVolume": volume,
                "StrikeFrozen": 0, "StrikeFrozenAmount": 0.0, "AbandonFrozen": 0, "ExchangeID": facts.ExchangeID,
                "YdStrikeFrozen": 0, "InvestUnitID": "", "PositionCostOffset": 0.0, "TasPosition": 0,
                "TasPositionCost": 0.0, "InstrumentID": record.InstrumentID, "OptionValue": 0.0,
            })
        return rows

    def detail_values(self) -> list[dict[str, Any]]:
        """One ``CThostFtdcInvestorPositionDetailField`` member dict per opening trade (closed
        ones stay, with Volume 0, until settlement), oldest first per record."""
        rows = []
        for key in sorted(self._records):
            record = self._records[key]
            facts = self._facts_of(record.InstrumentID)
            m = facts.multiplier
            mark = self._last.get(record.InstrumentID)
            money, volume = facts.ratios(record.long)
            for d in record.details:
                sign = 1.0 if d.long else -1.0
                price = mark if mark is not None else d.basis
                margin = self._detail_margin(d)
                rows.append({
                    "BrokerID": self.BrokerID, "InvestorID": self.InvestorID, "HedgeFlag": d.HedgeFlag,
                    "Direction": d.Direction, "OpenDate": d.OpenDate, "TradeID": d.TradeID, "Volume": d.Volume,
                    "OpenPrice": d.OpenPrice, "TradingDay": self.TradingDay, "SettlementID": SETTLEMENT_ID,
                    "TradeType": d.TradeType, "ExchangeID": d.ExchangeID,
                    "CloseProfitByDate": d.CloseProfitByDate, "CloseProfitByTrade": d.CloseProfitByTrade,
                    "PositionProfitByDate": sign * (price - d.basis) * d.Volume * m,
                    "PositionProfitByTrade": sign * (price - d.OpenPrice) * d.Volume * m,
                    "Margin": margin, "ExchMargin": margin, "MarginRateByMoney": money,
                    "MarginRateByVolume": volume, "LastSettlementPrice": d.LastSettlementPrice,
                    "SettlementPrice": price, "CloseVolume": d.CloseVolume, "CloseAmount": d.CloseAmount,
                    "TimeFirstVolume": d.Volume, "InvestUnitID": "", "SpecPosiType": "",
                    "InstrumentID": d.InstrumentID, "CombInstrumentID": "",
                })
        return rows

    # ---------------------------------------------------------------- settlement

    def settle(self, prices: dict[str, float], next_trading_day: str,
               terms_of: Callable[[str], Terms | None] | None = None) -> dict[str, Any]:
        """End of the trading day (SIM_TRADING.md 4.2), after the counter expired the day's
        orders: release whatever is still frozen; value every lot at its instrument's settlement
        price (``prices``; missing: the latest price, else the last settlement); take each fee to
        the cent (``params.fee_cents_at_settlement``); Balance becomes PreBalance; lots of
        contracts that expired (``terms_of(id).info.expire_date`` not after the trading day)
        are closed at settlement without fee; today's and yesterday's records merge (SHFE/INE);
        YdPosition <- Position; the day's counters go to 0, empty records and details go;
        TradingDay <- ``next_trading_day``.

        Returns the day's summary (plain values, JSON-able) that the statement is made of:
        ``account`` (statement figures), ``trades``, ``closed``, ``details``, ``positions``.
        """
        if not (calendar.day_or_none(next_trading_day) is not None and next_trading_day > self.TradingDay):
            raise LedgerError(f"next_trading_day {next_trading_day!r}: expected YYYYMMDD after {self.TradingDay}")
        if terms_of is not None:
            for instrument_id in {r.InstrumentID for r in self._records.values()}:
                terms = terms_of(instrument_id)
                if terms is not None:
                    self._learn(terms)
        self._pending.clear()
        settle_at: dict[str, float] = {}
        estimated: set[str] = set()
        for record in self._records.values():
            instrument_id = record.InstrumentID
            given = present_price(prices.get(instrument_id))
            if given is not None:
                settle_at[instrument_id] = given
            else:
                estimated.add(instrument_id)
                settle_at[instrument_id] = self._last.get(instrument_id) or self._pre.get(instrument_id) or next(
                    (d.LastSettlementPrice or d.OpenPrice for d in record.details), 0.0)
        self._close_expired(settle_at, terms_of)

        details = []
        for key in sorted(self._records):
            record = self._records[key]
            facts = self._facts_of(record.InstrumentID)
            p = settle_at[record.InstrumentID]
            for d in record.details:
                if not d.Volume:
                    continue
                sign = 1.0 if d.long else -1.0
                details.append({
                    "ExchangeID": d.ExchangeID, "ProductID": facts.ProductID, "InstrumentID": d.InstrumentID,
                    "OpenDate": d.OpenDate, "HedgeFlag": d.HedgeFlag, "Direction": d.Direction,
                    "Volume": d.Volume, "OpenPrice": d.OpenPrice, "LastSettlementPrice": d.LastSettlementPrice,
                    "SettlementPrice": p, "TradeID": d.TradeID,
                    "PositionProfitByTrade": sign * (p - d.OpenPrice) * d.Volume * facts.multiplier,
                    "PositionProfitByDate": sign * (p - d.basis) * d.Volume * facts.multiplier,
                    "Margin": facts.margin(d.Volume, p, d.long),
                })
        positions = self._position_summary(details, settle_at)
        close_profit = sum(r.CloseProfitByDate for r in self._records.values())
        position_profit = sum(row["PositionProfitByDate"] for row in details)
        if self.params.fee_cents_at_settlement:
            commission = sum(cents(t["Commission"]) for t in self._trades)
        else:
            commission = sum(r.Commission for r in self._records.values())
        margin = self._margins(prices=settle_at)[0]
        balance = self.PreBalance + self.Deposit - self.Withdraw + close_profit + position_profit - commission
        account = {
            "TradingDay": self.TradingDay, "BrokerID": self.BrokerID, "InvestorID": self.InvestorID,
            "PreBalance": self.PreBalance, "Deposit": self.Deposit, "Withdraw": self.Withdraw,
            "CloseProfit": close_profit, "PositionProfit": position_profit, "Commission": commission,
            "Balance": balance, "CurrMargin": margin, "Available": balance - margin,
            "RiskDegree": margin / balance * 100 if balance > 0 else 0.0,
            "MarginCall": max(0.0, margin - balance),
        }
        summary = {"account": account, "trades": [dict(t) for t in self._trades],
                   "closed": [dict(c) for c in self._closed], "details": details, "positions": positions}
        self._roll(settle_at, balance, margin, next_trading_day)
        self._estimated = estimated
        return summary

    def _close_expired(self, settle_at: dict[str, float], terms_of: Callable[[str], Terms | None] | None) -> None:
        if terms_of is None:
            return
        day = self.TradingDay
        for record in self._records.values():
            terms = terms_of(record.InstrumentID)
            expire = getattr(getattr(terms, "info", None), "expire_date", None)
            if expire is None or expire.strftime("%Y%m%d") > day:
                continue
            p = settle_at[record.InstrumentID]
            m = self._facts_of(record.InstrumentID).multiplier
            sign = 1.0 if record.long else -1.0
            for d in record.details:
                if not d.Volume:
                    continue
                by_date = sign * (p - d.basis) * d.Volume * m
                by_trade = sign * (p - d.OpenPrice) * d.Volume * m
                self._closed.append({
                    "CloseDate": day, "ExchangeID": d.ExchangeID, "ProductID": terms.ProductID,
                    "InstrumentID": d.InstrumentID, "OpenDate": d.OpenDate, "HedgeFlag": d.HedgeFlag,
                    "Direction": SELL if d.long else BUY, "Volume": d.Volume, "OpenPrice": d.OpenPrice,
                    "LastSettlementPrice": d.LastSettlementPrice, "Price": p, "CloseProfitByDate": by_date,
                    "CloseProfitByTrade": by_trade, "TradeID": "", "OpenTradeID": d.TradeID, "expired": True,
                })
                record.CloseProfitByDate += by_date
                record.CloseProfitByTrade += by_trade
                record.CloseVolume += d.Volume
                record.CloseAmount += p * d.Volume * m
                d.CloseVolume += d.Volume
                d.Volume = 0

    def _position_summary(self, details: list[dict[str, Any]], settle_at: dict[str, float]) -> list[dict[str, Any]]:
        """Per instrument and hedge flag: long and short lots, their average open prices, MTM P/L
        and the margin occupied (the larger side for a single-side product)."""
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        for row in details:
            group = groups.setdefault((row["InstrumentID"], row["HedgeFlag"]), {
                "ExchangeID": row["ExchangeID"], "ProductID": row["ProductID"], "InstrumentID": row["InstrumentID"],
                "HedgeFlag": row["HedgeFlag"], "LongPosition": 0, "long_amount": 0.0, "ShortPosition": 0,
                "short_amount": 0.0, "LastSettlementPrice": row["LastSettlementPrice"],
                "SettlementPrice": settle_at[row["InstrumentID"]], "PositionProfit": 0.0,
                "long_margin": 0.0, "short_margin": 0.0})
            side = "long" if row["Direction"] == BUY else "short"
            group[f"{side.capitalize()}Position"] += row["Volume"]
            group[f"{side}_amount"] += row["OpenPrice"] * row["Volume"]
            group[f"{side}_margin"] += row["Margin"]
            group["PositionProfit"] += row["PositionProfitByDate"]
            if not group["LastSettlementPrice"]:
                group["LastSettlementPrice"] = row["LastSettlementPrice"]
        rows = []
        for key in sorted(groups):
            g = groups[key]
            single = self._facts_of(g["InstrumentID"]).single_side
            rows.append({
                "ExchangeID": g["ExchangeID"], "ProductID": g["ProductID"], "InstrumentID": g["InstrumentID"],
                "HedgeFlag": g["HedgeFlag"], "LongPosition": g["LongPosition"],
                "LongAveragePrice": g["long_amount"] / g["LongPosition"] if g["LongPosition"] else 0.0,
                "ShortPosition": g["ShortPosition"],
                "ShortAveragePrice": g["short_amount"] / g["ShortPosition"] if g["ShortPosition"] else 0.0,
                "LastSettlementPrice": g["LastSettlementPrice"], "SettlementPrice": g["SettlementPrice"],
                "PositionProfit": g["PositionProfit"],
                "Margin": max(g["long_margin"], g["short_margin"]) if single else g["long_margin"] + g["short_margin"],
            })
        return rows

    def _roll(self, settle_at: dict[str, float], balance: float, margin: float, next_trading_day: str) -> None:
        records: dict[tuple[str, str, str, str], _Record] = {}
        for record in self._records.values():
            live = [d for d in record.details if d.Volume]
            if not live:
                continue
            p = settle_at[record.InstrumentID]
            for d in live:
                d.today = False
                d.LastSettlementPrice = p
                d.CloseVolume, d.CloseAmount, d.CloseProfitByDate, d.CloseProfitByTrade = 0, 0.0, 0.0, 0.0
            key = (record.InstrumentID, record.PosiDirection, record.HedgeFlag,
                   HISTORY if self._facts_of(record.InstrumentID).split else TODAY)
            rolled = records.get(key)
            if rolled is None:
                rolled = records[key] = _Record(*key)
            rolled.details.extend(live)
        for rolled in records.values():
            rolled.details.sort(key=lambda d: d.OpenDate)  # stable: each day keeps its fill order
            rolled.YdPosition = rolled.position
            rolled.PreMargin = sum(self._detail_margin(d) for d in rolled.details)
        self._records = records
        for instrument_id, p in settle_at.items():
            self._pre[instrument_id] = p
            self._last[instrument_id] = p
        self._settled = set(settle_at)
        self.PreBalance = balance
        self.PreMargin = margin
        self.Deposit = self.Withdraw = 0.0
        self._pending.clear()
        self._trades = []
        self._closed = []
        self.TradingDay = next_trading_day

    # ---------------------------------------------------------------- state

    def to_state(self, rows: bool = True) -> dict[str, Any]:
        """Everything the ledger holds, as JSON-able values (:meth:`from_state` rebuilds it);
        without the records, the day's trades and closed lots when ``rows`` is false.

        Compact, because the counter writes it at every order event: the day's details, trades
        and closed lots are lists of values under their column names, given once."""
        state = {
            "version": STATE_VERSION, "BrokerID": self.BrokerID, "InvestorID": self.InvestorID,
            "params": _flat(self.params), "TradingDay": self.TradingDay, "PreBalance": self.PreBalance,
            "PreMargin": self.PreMargin, "Deposit": self.Deposit, "Withdraw": self.Withdraw,
            "facts": {k: v.to_state() for k, v in self._facts.items()},
            "last": dict(self._last), "pre": dict(self._pre), "settled": sorted(self._settled),
            "estimated": sorted(self._estimated),
            "record_fields": list(_RECORD_FIELDS), "detail_fields": list(_DETAIL_FIELDS),
            "pending": [{"key": k, **_flat(p), "record": list(p.record)} for k, p in self._pending.items()],
        }
        if rows:
            state["records"] = [[*_record_values(r), [list(_detail_values(d)) for d in r.details]]
                                for r in self._records.values()]
            state["trades"], state["closed"] = _pack_rows(self._trades), _pack_rows(self._closed)
        return state

    def _records_json(self) -> str:
        """The JSON of ``to_state()["records"]``, each detail serialised again only when it changed."""
        known, seen = self._detail_text, {}
        parts = []
        for record in self._records.values():
            values = list(map(_detail_values, record.details))
            cached = known.get(id(record))
            if cached is None or cached[0] is not record:
                texts = [_dumps(v) for v in values]
            else:
                old_values, old_texts = cached[1], cached[2]
                texts = [old_texts[i] if i < len(old_values) and old_values[i] == v else _dumps(v)
                         for i, v in enumerate(values)]
            seen[id(record)] = (record, values, texts)
            head = _dumps(_record_values(record))
            parts.append(head[:-1] + ",[" + ",".join(texts) + "]]")
        self._detail_text = seen
        return "[" + ",".join(parts) + "]"

    def to_json(self) -> str:
        """:meth:`to_state` as JSON text; the day's trades and closed lots already serialised by
        an earlier call are not serialised again."""
        state = self.to_state(rows=False)
        trades, closed = self._packed
        return (_dumps(state)[:-1] + ',"records":' + self._records_json() + ',"trades":' + trades.of(self._trades)
                + ',"closed":' + closed.of(self._closed) + "}")

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Ledger:
        """The ledger :meth:`to_state` described (or an earlier version of it).  A state that is
        not one raises :class:`LedgerError` naming what is wrong."""
        try:
            version = state.get("version")
            if version not in (1, 2, STATE_VERSION):
                raise LedgerError(f"ledger state version {version!r}: expected 1 to {STATE_VERSION}")
            ledger = cls(state["BrokerID"], state["InvestorID"], balance=float(state["PreBalance"]),
                         trading_day=state["TradingDay"], params=LedgerParams(**state["params"]))
            ledger.PreMargin = float(state["PreMargin"])
            ledger.Deposit = float(state["Deposit"])
            ledger.Withdraw = float(state["Withdraw"])
            ledger._facts = {k: InstrumentFacts.from_state(v) for k, v in state["facts"].items()}
            ledger._last = {k: float(v) for k, v in state["last"].items()}
            ledger._pre = {k: float(v) for k, v in state["pre"].items()}
            ledger._settled = {str(i) for i in state.get("settled", ())}  # absent in states before it
            ledger._estimated = {str(i) for i in state.get("estimated", ())}
            if version == 1:  # each record and detail a dict of its names
                for row in state["records"]:
                    row = dict(row)
                    details = [_Detail(**d) for d in row.pop("details")]
                    record = _Record(**row, details=details)
                    ledger._records[record.key] = record
            else:
                record_fields, detail_fields = state["record_fields"], state["detail_fields"]
                for *values, details in state["records"]:
                    record = _Record(**dict(zip(record_fields, values, strict=True)),
                                     details=[_Detail(**dict(zip(detail_fields, d, strict=True))) for d in details])
                    ledger._records[record.key] = record
            for row in state["pending"]:
                row = dict(row)
                key = row.pop("key")
                row["record"] = tuple(row["record"])
                ledger._pending[int(key)] = _Pending(**row)
            ledger._trades = _unpack_rows(state["trades"])
            ledger._closed = _unpack_rows(state["closed"])
        except LedgerError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise LedgerError(f"not a ledger state: {type(error).__name__}: {error}") from error
        return ledger

