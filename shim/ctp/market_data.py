"""The one place for CTP's depth-market-data conventions.

Every adapter builds its ticks here, so the rules are written once:

* an absent price is ``DBL_MAX`` (1.7976931348623157e+308), an absent volume 0;
* ``TradingDay`` / ``ActionDay`` / ``UpdateTime`` / ``UpdateMillisec`` from the tick's China
  time, by :class:`Stamper`, the one stamper of every source that stamps its ticks (``sim://``,
  ``sina://``, ``tencent://``: their ``dates`` setting picks one of two conventions):

  ``correct`` (default; what SimNow and test environments show): TradingDay is the trading day
  the tick belongs to (a night-session tick belongs to the next trading day), ActionDay the
  calendar date of UpdateTime.

  ``exchange``: what real fronts send per exchange: DCE and GFEX put the trading day in
  ActionDay during the night session, CZCE puts the calendar date in TradingDay during the night
  session and sends UpdateMillisec 0.

  Stock quotes (SSE, SZSE, BSE, HKEX: no night session) carry their calendar date in both;
* ``ExchangeID`` from the product table; ``reserve1`` carries the instrument ID as real md
  fronts do;
* ``AveragePrice`` per exchange: Turnover / Volume (so still multiplied by the contract
  multiplier) on SHFE, INE, DCE, CFFEX and GFEX and for stocks; the real average price rounded
  to the tick on CZCE.  One rule in three forms: :func:`average_price`, :func:`average_price_rule`
  (specialised per contract, for tick paths), :func:`average_price_terms` (for column code);
* what each member may hold (:func:`check_values`, ranges by CTP typedef from the field spec),
  checked by every parser of upstream data before :func:`make_tick`, which trusts its values.
"""

from __future__ import annotations

import math
import sys
from datetime import datetime
from functools import lru_cache
from typing import Any, Callable

from . import calendar
from .exchanges import STOCK_EXCHANGES
from .fields import INT32_MAX, INT32_MIN, char_limit, default_values, field_class, from_values, load_spec, member_index

DBL_MAX = sys.float_info.max
# A price at or above this is CTP's DBL_MAX ("no price"), whatever rounding it went through.
ABSENT_PRICE_FROM = 1e300
DATE_CONVENTIONS = ("correct", "exchange")

_tick_class: type | None = None


def present_price(value: Any) -> float | None:
    """``value`` as a price, or None where CTP means "no price": DBL_MAX (or anything from
    1e300), not finite, not above 0, or not a number at all (None, a string, a bool)."""
    if value is None or isinstance(value, (bool, str, bytes)):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if 0.0 < number < ABSENT_PRICE_FROM else None


def depth_class() -> type:
    """``mdapi.CThostFtdcDepthMarketDataField``, the class of every tick (made on first use, by
    the field factory the facade's ``mdapi`` module is filled from)."""
    global _tick_class
    if _tick_class is None:
        _tick_class = field_class("mdapi", "CThostFtdcDepthMarketDataField")
    return _tick_class


def depth_index() -> dict[str, int]:
    """Position of each ``CThostFtdcDepthMarketDataField`` member in a tick's value list."""
    return member_index(depth_class())


_blank: list[Any] | None = None
_reserve1_bytes = 0


def blank_values(instrument_id: str, exchange_id: str) -> list[Any]:
    """All 48 members, in order, with CTP's values for absent data: prices DBL_MAX, numbers 0."""
    global _blank, _reserve1_bytes
    index = depth_index()
    if _blank is None:
        template = list(default_values(depth_class()))
        for name, typedef, _kind, _size in load_spec()["fields"]["CThostFtdcDepthMarketDataField"]:
            if typedef == "TThostFtdcPriceType":
                template[index[name]] = DBL_MAX
        template[index["CurrDelta"]] = DBL_MAX
        _reserve1_bytes = char_limit("CThostFtdcDepthMarketDataField", "reserve1")
        _blank = template
    values = list(_blank)
    values[index["InstrumentID"]] = instrument_id
    values[index["reserve1"]] = instrument_id[:_reserve1_bytes]  # IDs are ASCII: bytes are characters
    values[index["ExchangeID"]] = exchange_id
    values[index["ExchangeInstID"]] = instrument_id
    return values


def set_level(values: list[Any], side: str, level: int, price: float, volume: float) -> None:
    """Set order-book level ``level`` (1-5) of ``side`` (``"Bid"`` or ``"Ask"``) in ``values``:
    as CTP, a level with no price (DBL_MAX) shows no volume."""
    index = depth_index()
    values[index[f"{side}Price{level}"]] = price
    # Not converted to int here: a feed's volume may be inf or nan; check_values says so.
    values[index[f"{side}Volume{level}"]] = 0 if price == DBL_MAX else volume


# Exchanges whose AveragePrice is the real average price rounded to the tick; the others report
# Turnover / Volume, which still includes the contract multiplier (and is the plain average for
# stocks, whose multiplier is 1).
AVERAGE_PRICE_ON_TICK_GRID = frozenset({"CZCE"})


def average_price_terms(exchange_id: str, multiplier: float, tick: float) -> tuple[float, float]:
    """The AveragePrice rule of one contract as two numbers, for code that applies it to columns:
    ``(scale, grid)``.  AveragePrice is Turnover / Volume / scale, moved to the nearest multiple
    of ``grid`` (and rounded to 10 decimals) when grid is above 0; 0 when Volume is 0."""
    if exchange_id in AVERAGE_PRICE_ON_TICK_GRID and multiplier > 0 and tick > 0:
        return float(multiplier), float(tick)
    return 1.0, 0.0


@lru_cache(maxsize=1024)  # average_price asks for it per quote; a rule depends only on these three
def average_price_rule(exchange_id: str, multiplier: float, tick: float) -> Callable[[float, float], float]:
    """The AveragePrice rule specialised for one contract: ``rule(turnover, volume) -> float``.

    For tick paths: build it once per contract; a call costs one division (three and two
    roundings on a tick-grid exchange).  A non-finite average (an absurd feed value, refused later by
    :func:`check_values`) is returned as it is rather than rounded.
    """
    scale, grid = average_price_terms(exchange_id, multiplier, tick)
    if not grid:
        def per_volume(turnover: float, volume: float) -> float:
            return turnover / volume if volume > 0 else 0.0

        return per_volume

    def on_grid(turnover: float, volume: float) -> float:
        if not volume > 0:
            return 0.0
        steps = turnover / volume / scale / grid  # not / (scale * grid): that rounds ties differently
        if steps - steps != 0:  # inf or nan: nothing to round
            return steps
        return round(round(steps) * grid, 10)

    return on_grid


def average_price(exchange_id: str, turnover: float, volume: float, multiplier: float, tick: float) -> float:
    """``AveragePrice`` as CTP reports it on ``exchange_id``: the rule (see
    :func:`average_price_rule` for the form to use once per contract on a tick path)."""
    return average_price_rule(exchange_id, multiplier, tick)(turnover, volume)


# calendar.day_part, inlined in Stamper.stamps (called for every tick of a polled feed).
_CUTOFF_HOUR, _EARLY_END_HOUR = calendar.NIGHT_CUTOFF.hour, calendar.EARLY_MORNING_END.hour
_EARLY, _DAY, _EVENING = calendar.EARLY_MORNING, calendar.DAY_HOURS, calendar.EVENING


class Stamper:
    """Fills the date and time members of ticks (see the module docstring for the conventions),
    caching the strings it has made.  The one stamper: every source that stamps ticks uses it.

    Quotes of the stock exchanges (:data:`ctpshim.ctp.exchanges.STOCK_EXCHANGES`) have no night
    session: their TradingDay and ActionDay are the quote's calendar date under either convention.
    Its cache is not locked: give each adapter (each thread that stamps) its own stamper.
    """

    __slots__ = ("convention", "_clock", "_time", "_days")

    def __init__(self, convention: str = "correct") -> None:
        if convention not in DATE_CONVENTIONS:
            raise ValueError(f"dates={convention!r}: expected one of {', '.join(DATE_CONVENTIONS)}")
        self.convention = convention
        self._clock: tuple[int, int, int] | None = None
        self._time = ""
        self._days: dict[tuple[Any, int, str], tuple[str, str, str]] = {}

    def stamps(self, moment: datetime, exchange_id: str) -> tuple[str, str, str, str]:
        """(TradingDay, ActionDay, UpdateTime, true trading day) for a tick at ``moment``.

        The first two follow the convention; the last is always the trading day the tick
        belongs to (for rolling the day over).
        """
        clock = (moment.hour, moment.minute, moment.second)
        if clock != self._clock:
            self._clock = clock
            self._time = "%02d:%02d:%02d" % clock
        hour = clock[0]
        part = _EVENING if hour >= _CUTOFF_HOUR else (_EARLY if hour < _EARLY_END_HOUR else _DAY)
        key = (moment.date(), part, exchange_id)
        days = self._days.get(key)
        if days is None:
            days = self._dates(moment, exchange_id)
            if len(self._days) > 4096:
                self._days.clear()
            self._days[key] = days
        return days[0], days[1], self._time, days[2]

    def _dates(self, moment: datetime, exchange_id: str) -> tuple[str, str, str]:
        if exchange_id in STOCK_EXCHANGES:  # no night session: a quote belongs to its date
            day = calendar.yyyymmdd(moment.date())
            return day, day, day
        trading = calendar.yyyymmdd(calendar.trading_day_of(moment))
        true_day, action = trading, calendar.yyyymmdd(moment.date())
        if self.convention == "exchange" and calendar.night_of(moment) is not None:
            if exchange_id in ("DCE", "GFEX"):
                action = trading
            elif exchange_id == "CZCE":
                trading = action
        return trading, action, true_day

    def millisec(self, moment: datetime, exchange_id: str) -> int:
        """UpdateMillisec: the moment's milliseconds (0 on CZCE under the ``exchange`` convention)."""
        if self.convention == "exchange" and exchange_id == "CZCE":
            return 0
        return moment.microsecond // 1000

    def apply(self, values: list[Any], moment: datetime, exchange_id: str) -> None:
        """Set the date and time members of a tick's value list."""
        index = depth_index()
        stamps = self.stamps(moment, exchange_id)
        values[index["TradingDay"]] = stamps[0]
        values[index["ActionDay"]] = stamps[1]
        values[index["UpdateTime"]] = stamps[2]
        values[index["UpdateMillisec"]] = self.millisec(moment, exchange_id)


def make_tick(values: list[Any]) -> Any:
    """A ``CThostFtdcDepthMarketDataField`` holding ``values`` (all 48 members, in order, valid)."""
    return from_values(depth_class(), values)


class TickValueError(ValueError):
    """A value that no depth-market-data member can hold (the message names the member)."""


# Valid ranges of the CThostFtdcDepthMarketDataField members, by CTP typedef.  Prices, volumes,
# amounts and open interest are never negative; DBL_MAX (absent) is the largest finite double.
_DOUBLE_RANGES = {"TThostFtdcPriceType": (0.0, "a finite price from 0 (DBL_MAX when absent)"),
                  "TThostFtdcLargeVolumeType": (0.0, "a finite number from 0"),
                  "TThostFtdcMoneyType": (0.0, "a finite amount from 0")}
_INT_RANGES = {"TThostFtdcVolumeType": (0, INT32_MAX), "TThostFtdcMillisecType": (0, 999)}
_rules: list[tuple[int, str, str, Any, Any, str]] | None = None


def value_rules() -> list[tuple[int, str, str, Any, Any, str]]:
    """The valid range of every depth-market-data member, from the field spec: (position, member,
    kind, low, high, what is valid).  The one rule for tick values: the feeds check each tick
    with it (:func:`check_values`), ``convert`` checks each imported column."""
    global _rules
    if _rules is None:
        rules = []
        members = load_spec()["fields"]["CThostFtdcDepthMarketDataField"]
        for position, (name, typedef, kind, size) in enumerate(members):
            if kind == "double":
                low, valid = _DOUBLE_RANGES.get(typedef, (-DBL_MAX, "a finite number"))
                rules.append((position, name, kind, low, DBL_MAX, valid))
            elif kind == "int":
                low, high = _INT_RANGES.get(typedef, (INT32_MIN, INT32_MAX))
                rules.append((position, name, kind, low, high, f"a whole number from {low:,} to {high:,}"))
            else:
                rules.append((position, name, kind, 0, size - 1, f"text of at most {size - 1} bytes in GB18030"))
        _rules = rules
    return _rules


def check_values(values: list[Any]) -> list[Any]:
    """Check a tick's 48 values against their members' types and ranges, before they become a
    tick (:func:`make_tick` trusts them); whole-number floats of int members become ints.

    Returns ``values``; raises :class:`TickValueError` naming the first bad member, its value and
    what is valid.  Every feed parser calls it: a value that fails here would overflow or lie
    downstream (an int32 column, a CTP struct, a program's arithmetic).
    """
    for position, name, kind, low, high, valid in value_rules():
        value = values[position]
        if kind == "double":
            if type(value) is float or type(value) is int:
                if low <= value <= high:  # false for nan and both infinities
                    continue
        elif kind == "int":
            if type(value) is int:
                if low <= value <= high:
                    continue
            elif type(value) is float and value.is_integer() and low <= value <= high:
                values[position] = int(value)
                continue
        elif type(value) is str:
            if len(value) <= high if value.isascii() else _gb18030_length(value) <= high:
                continue
        raise TickValueError(f"{name} {_shown(value)} is not valid: expected {valid}")
    return values


def _gb18030_length(text: str) -> float:
    try:
        return len(text.encode("gb18030"))
    except UnicodeEncodeError:
        return math.inf


def _shown(value: Any) -> str:
    if type(value) is float and value.is_integer() and abs(value) < 1e18:
        return str(int(value))
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."
