"""The one place for CTP's depth-market-data conventions.

Every adapter builds its ticks here, so the rules are written once:

* an absent price is ``DBL_MAX`` (1.7976931348623157e+308), an absent volume 0;
* ``TradingDay`` / ``ActionDay`` / ``UpdateTime`` / ``UpdateMillisec`` from the tick's China
  time, by one of two conventions (``dates`` setting of the adapters that make their own
  stamps):

  ``correct`` (default; what SimNow and test environments show): TradingDay is the trading day
  the tick belongs to (a night-session tick belongs to the next trading day), ActionDay the
  calendar date of UpdateTime.

  ``exchange``: what real fronts send per exchange: DCE and GFEX put the trading day in
  ActionDay during the night session, CZCE puts the calendar date in TradingDay during the night
  session and sends UpdateMillisec 0;
* ``ExchangeID`` from the product table; ``reserve1`` carries the instrument ID as real md
  fronts do;
* ``AveragePrice`` per exchange: Turnover / Volume (so still multiplied by the contract
  multiplier) on SHFE, INE, DCE, CFFEX and GFEX; the real average price rounded to the tick on
  CZCE.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

from . import calendar
from .fields import from_values

DBL_MAX = sys.float_info.max
DATE_CONVENTIONS = ("correct", "exchange")

_tick_class: type | None = None


def depth_class() -> type:
    """``mdapi.CThostFtdcDepthMarketDataField`` (imported on first use)."""
    global _tick_class
    if _tick_class is None:
        from . import mdapi

        _tick_class = mdapi.CThostFtdcDepthMarketDataField
    return _tick_class


def depth_index() -> dict[str, int]:
    """Position of each ``CThostFtdcDepthMarketDataField`` member in a tick's value list."""
    index: dict[str, int] = depth_class()._index  # type: ignore[attr-defined]
    return index


_blank: list[Any] | None = None


def blank_values(instrument_id: str, exchange_id: str) -> list[Any]:
    """All 48 members, in order, with CTP's values for absent data: prices DBL_MAX, numbers 0."""
    global _blank
    index = depth_index()
    if _blank is None:
        cls = depth_class()
        template: list[Any] = list(cls._defaults)  # type: ignore[attr-defined]
        for name, typedef in cls.__annotations__.items():
            if typedef == "TThostFtdcPriceType":
                template[index[name]] = DBL_MAX
        template[index["CurrDelta"]] = DBL_MAX
        _blank = template
    values = list(_blank)
    values[index["InstrumentID"]] = instrument_id
    values[index["reserve1"]] = instrument_id[:30]
    values[index["ExchangeID"]] = exchange_id
    values[index["ExchangeInstID"]] = instrument_id
    return values


def set_level(values: list[Any], side: str, level: int, price: float, volume: float) -> None:
    """Set order-book level ``level`` (1-5) of ``side`` (``"Bid"`` or ``"Ask"``) in ``values``:
    as CTP, a level with no price (DBL_MAX) shows no volume."""
    index = depth_index()
    values[index[f"{side}Price{level}"]] = price
    values[index[f"{side}Volume{level}"]] = 0 if price == DBL_MAX else int(volume)


# Exchanges whose AveragePrice is the real average price rounded to the tick; the others report
# Turnover / Volume, which still includes the contract multiplier.
AVERAGE_PRICE_ON_TICK_GRID = frozenset({"CZCE"})


def average_price(exchange_id: str, turnover: float, volume: int, multiplier: float, tick: float) -> float:
    """``AveragePrice`` as CTP reports it on ``exchange_id``."""
    if volume <= 0:
        return 0.0
    if exchange_id in AVERAGE_PRICE_ON_TICK_GRID:
        steps = round(turnover / volume / multiplier / tick)
        return round(steps * tick, 10)
    return turnover / volume


class Stamper:
    """Fills the date and time members of ticks, caching the strings it has made."""

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
        key = (moment.date(), 2 if hour >= 17 else (0 if hour < 3 else 1), exchange_id)
        days = self._days.get(key)
        if days is None:
            days = self._dates(moment, exchange_id)
            if len(self._days) > 4096:
                self._days.clear()
            self._days[key] = days
        return days[0], days[1], self._time, days[2]

    def _dates(self, moment: datetime, exchange_id: str) -> tuple[str, str, str]:
        trading = calendar.yyyymmdd(calendar.trading_day_of(moment))
        true_day, action = trading, calendar.yyyymmdd(moment.date())
        if self.convention == "exchange" and calendar.night_of(moment) is not None:
            if exchange_id in ("DCE", "GFEX"):
                action = trading
            elif exchange_id == "CZCE":
                trading = action
        return trading, action, true_day

    def millisec(self, moment: datetime, exchange_id: str) -> int:
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
