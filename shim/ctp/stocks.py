"""Stocks and funds of the SSE, SZSE, BSE and HKEX: the one place that reads a stock code.

A CTP program names a stock by its bare code, as CTP's securities counters do: ``600519``
(SSE), ``000001`` (SZSE), ``920118`` (BSE), ``00700`` (HKEX, five digits).  The exchange comes
from the code's leading digits; where two exchanges use the same digits (``000001`` is both
Ping An Bank on the SZSE and the SSE Composite index) the stock wins.  A code may carry the
market prefix the quote sites use (``sh000001``, ``sz399001``, ``bj920118``, ``hk00700``) to
say which one is meant; that ID is then kept as the program wrote it.

Trading hours (China time, weekdays that are trading days): SSE/SZSE/BSE 09:30-11:30 and
13:00-15:00; HKEX 09:30-12:00 and 13:00-16:00 (HKEX holidays differ from the mainland's; the
mainland calendar is used for both).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, time
from typing import Any

from .calendar import is_trading_day
from .fields import char_limit
from .market_data import average_price, blank_values, depth_index, set_level

PREFIX_EXCHANGES = {"sh": "SSE", "sz": "SZSE", "bj": "BSE", "hk": "HKEX"}
EXCHANGE_PREFIXES = {exchange: prefix for prefix, exchange in PREFIX_EXCHANGES.items()}

# Leading digits of six-digit codes -> exchange.  Shares, funds (ETF/LOF/REIT) and convertible
# bonds; repo and option codes are not listed.
_LEADING = (
    ("60", "SSE"), ("68", "SSE"), ("90", "SSE"), ("50", "SSE"), ("51", "SSE"), ("52", "SSE"),
    ("56", "SSE"), ("58", "SSE"), ("11", "SSE"),
    ("00", "SZSE"), ("30", "SZSE"), ("20", "SZSE"), ("15", "SZSE"), ("16", "SZSE"), ("18", "SZSE"),
    ("12", "SZSE"), ("39", "SZSE"),
    ("43", "BSE"), ("83", "BSE"), ("87", "BSE"), ("88", "BSE"), ("92", "BSE"),
)
_FUND_LEADING = ("50", "51", "52", "56", "58", "15", "16", "18")
_BOND_LEADING = ("11", "12")
_ID = re.compile(r"^(?:(sh|sz|bj|hk))?(\d{5,6})$")

_SESSIONS = {
    "SSE": ((time(9, 30), time(11, 30)), (time(13, 0), time(15, 0))),
    "HKEX": ((time(9, 30), time(12, 0)), (time(13, 0), time(16, 0))),
}


@dataclass(frozen=True)
class StockInfo:
    """What a source knows of one stock or fund (enough to answer ReqQryInstrument)."""

    instrument_id: str  # as the program subscribed it: "600519", or "sh000001"
    exchange_id: str  # SSE, SZSE, BSE or HKEX
    code: str  # the bare code: "600519"
    name: str = ""  # learned from the feed

    @property
    def kind(self) -> str:
        """``fund`` (ETF, LOF, REIT), ``bond`` (convertible) or ``stock``."""
        if self.exchange_id == "HKEX":
            return "stock"
        if self.code.startswith(_FUND_LEADING):
            return "fund"
        return "bond" if self.code.startswith(_BOND_LEADING) else "stock"

    @property
    def product_id(self) -> str:
        return f"{self.exchange_id}_{self.kind}"

    @property
    def price_tick(self) -> float:
        # Funds and bonds quote to 0.001 yuan, shares to 0.01; HKEX's tick depends on the price
        # band, 0.001 is the finest.
        return 0.01 if self.kind == "stock" and self.exchange_id != "HKEX" else 0.001

    @property
    def symbol(self) -> str:
        """The quote sites' symbol: ``sh600519``, ``hk00700``."""
        return EXCHANGE_PREFIXES[self.exchange_id] + self.code

    def named(self, text: str) -> StockInfo:
        """This stock with the name a feed sent, made fit for ``InstrumentName``: trimmed, control
        characters dropped, cut to the member's ``char[N]`` (20 bytes in GB18030, as real fronts
        cut long fund names)."""
        name = "".join(c for c in text.strip() if c.isprintable())
        limit = _name_bytes()
        while len(name.encode("gb18030", "replace")) > limit:
            name = name[:-1]
        return replace(self, name=name.rstrip())

    @property
    def lot_shares(self) -> int:
        """Shares per lot in the quote sites' volumes for this market: 100 on the mainland."""
        return 1 if self.exchange_id == "HKEX" else 100


def _name_bytes() -> int:
    return char_limit("CThostFtdcInstrumentField", "InstrumentName")


def parse_stock(instrument_id: str) -> StockInfo | None:
    """The stock behind a CTP instrument ID, or ``None`` if it is not a stock code."""
    match = _ID.match(instrument_id)
    if not match:
        return None
    prefix, code = match.groups()
    if prefix is not None:
        exchange = PREFIX_EXCHANGES[prefix]
        if (exchange == "HKEX") != (len(code) == 5):
            return None
        return StockInfo(instrument_id, exchange, code)
    if len(code) == 5:
        return StockInfo(instrument_id, "HKEX", code)
    for leading, exchange in _LEADING:
        if code.startswith(leading):
            return StockInfo(instrument_id, exchange, code)
    return None


def is_open(exchange_id: str, moment: datetime) -> bool:
    """Whether ``exchange_id``'s continuous trading runs at ``moment`` (China time, naive)."""
    if not is_trading_day(moment.date()):
        return False
    sessions = _SESSIONS["HKEX" if exchange_id == "HKEX" else "SSE"]
    return any(start <= moment.time() < end for start, end in sessions)


def stock_values(info: StockInfo, prices: dict[str, float], volume: float, turnover: float,
                 bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> list[Any]:
    """The 48 tick values of a stock quote, not yet stamped (the feed stamps them with
    :class:`ctpshim.ctp.market_data.Stamper`, which gives stocks their calendar date).

    ``prices`` maps member names (``LastPrice``, ``OpenPrice``...) to prices, DBL_MAX where
    absent; ``volume`` is in shares, ``turnover`` in the quote currency; ``bids`` and ``asks``
    are up to five (price, shares) levels, best first.
    """
    index = depth_index()
    values = blank_values(info.instrument_id, info.exchange_id)
    for name, price in prices.items():
        values[index[name]] = price
    values[index["Volume"]] = volume  # made an int by market_data.check_values
    values[index["Turnover"]] = turnover
    if volume:
        values[index["AveragePrice"]] = average_price(info.exchange_id, turnover, volume, 1, info.price_tick)
    for side, levels in (("Bid", bids), ("Ask", asks)):
        for level, (price, shares) in enumerate(levels[:5], start=1):
            set_level(values, side, level, price, shares)
    return values


__all__ = ["StockInfo", "parse_stock", "is_open", "stock_values", "PREFIX_EXCHANGES", "EXCHANGE_PREFIXES"]
