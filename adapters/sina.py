"""``sina://``: live domestic futures and stock quotes from Sina Finance (``hq.sinajs.cn``), polled.

Futures: a CTP instrument ID maps to Sina's ``nf_`` + upper-case product + 4-digit YYMM
(``rb2605`` -> ``nf_RB2605``; CZCE's ``TA605`` -> ``nf_TA2605``; CFFEX ``IF2612`` -> ``nf_IF2612``).
Two payload layouts share the prefix: commodity futures (a name first, 28/29/42/44 fields) and
CFFEX (50 fields, numeric first; 49 in the pre-2018 form); both are parsed by index with bounds
checks, as the field counts drift.  Mapping to ``CThostFtdcDepthMarketDataField`` follows the
reference notes (FEEDS.md 1.4-1.9): a 0 price is absent (DBL_MAX); the dates and times are
stamped from the payload's China time by the one stamper (:class:`ctpshim.ctp.market_data.Stamper`,
``dates=`` setting); Turnover and AveragePrice are derived where the feed lacks them.

Stocks and funds (see :mod:`ctpshim.ctp.stocks` for the codes): ``600519`` -> ``sh600519``,
``000001`` -> ``sz000001``, ``920118`` -> ``bj920118``, ``00700`` -> ``rt_hk00700`` (the
real-time HK form, with seconds).  The mainland layout carries five levels in shares and the
amount in yuan; the HK layout has level 1 only, volume in shares and the amount in HKD.  During
the call auction (09:15-09:25) the price fields are 0 (absent) and the indicative price is bid 1
and ask 1, as the payload has it.  This is also ``tencent://``'s fallback source.

A tick is pushed only when the quote changed; the first answer after a subscription is pushed
as the current snapshot even when the market is closed.  Settings: ``interval`` (seconds between
polls, 0.05 to 3600, default 0.5), ``batch`` (symbols per request, 1 to 800, default 50), ``timeout``
(seconds, more than 0 and at most 120, default 5), ``base_url`` (``http(s)://host[:port][/path]``,
default ``https://hq.sinajs.cn``; mirrors, proxies, tests), ``dates`` (``correct``, the default,
or ``exchange``: the date conventions of :mod:`ctpshim.ctp.market_data`).

Faults (handled in :mod:`ctpshim.adapters.polling`): HTTP 403 (Sina refuses requests without a
sina.com.cn Referer), 5xx, timeouts and dropped connections end the session with a CTP reason
code; the session reconnects.  The whole-batch failure reply (``sys_auth="FAILED"``) caused by
one bad symbol is isolated by splitting the batch; the bad symbol is dropped with one warning.
Garbage lines, and lines with a value no member can hold (checked by
:func:`ctpshim.ctp.market_data.check_values` at the end of :func:`parse_statement`), are skipped with
a warning that shows them; a 200 answer with no statement at all is a failed request.

Example: ``sina://?interval=1&batch=40``, ``sina://?dates=exchange``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from ..ctp.market_data import Stamper, average_price, blank_values, check_values, depth_index, set_level
from ..ctp.products import PRODUCTS, InstrumentInfo, Product, is_open, main_contract, parse_instrument
from ..ctp.stocks import StockInfo, parse_stock, stock_values
from .polling import FeedFormatError, PollingAdapter, ProbeTarget, Quote, QuoteSource, number_at, price_at

DEFAULT_BASE_URL = "https://hq.sinajs.cn"
REFERER = "https://finance.sina.com.cn/"
_STATEMENT = re.compile(r'hq_str_([^=\s]+)="([^"]*)"')
_PRODUCTS_FOLDED = {code.upper(): product for code, product in PRODUCTS.items()}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CORRECT = Stamper()
_CLOCK = re.compile(r"^\d{2}:\d{2}(:\d{2})?$")
PROBE_SYMBOLS = ("nf_RB0", "nf_AU0", "nf_IF0")  # continuous main contracts: ping's health check


# -- symbols --------------------------------------------------------------------------------------

def to_sina(instrument_id: str) -> str | None:
    """Sina's symbol for a CTP instrument ID (a futures contract or a stock), else None."""
    info = parse_instrument(instrument_id)
    if info is not None:
        return f"nf_{info.product.code.upper()}{info.delivery_year % 100:02d}{info.delivery_month:02d}"
    stock = parse_stock(instrument_id)
    if stock is None:
        return None
    return f"rt_{stock.symbol}" if stock.exchange_id == "HKEX" else stock.symbol


def _split_symbol(symbol: str) -> tuple[Product | None, str]:
    """(product, digits) of a Sina futures symbol (``nf_RB2605``, ``CFF_RE_IF0``); (None, "") if unknown."""
    bare = symbol.split("_", 2)[-1] if symbol.startswith(("nf_", "CFF_RE_")) else symbol
    match = re.match(r"^([A-Za-z]{1,2})(\d+)$", bare)
    if not match:
        return None, ""
    return _PRODUCTS_FOLDED.get(match.group(1).upper()), match.group(2)


def from_sina(symbol: str) -> str | None:
    """The CTP instrument ID of a Sina symbol; None for continuous series (``RB0``) and unknowns."""
    product, digits = _split_symbol(symbol)
    if product is None or len(digits) != 4:
        return None
    if product.exchange == "CZCE":
        return f"{product.code}{digits[1:]}"
    return f"{product.code}{digits}"


# -- parsing --------------------------------------------------------------------------------------

def split_statements(text: str) -> list[tuple[str, str]]:
    """(symbol, csv) for every ``hq_str_<symbol>="<csv>"`` statement in a reply, in order."""
    return _STATEMENT.findall(text)


def parse_statement(csv: str, instrument_id: str, stamper: Stamper = _CORRECT) -> list[Any]:
    """The 48 tick values for one statement's csv, stamped by ``stamper``; raises
    FeedFormatError when it cannot be read."""
    return read_statement(csv, instrument_id, stamper).values


def read_statement(csv: str, instrument_id: str, stamper: Stamper = _CORRECT) -> Quote:
    """The quote of one statement's csv: its 48 tick values (stamped by ``stamper``) and its
    China time; raises FeedFormatError when it cannot be read."""
    fields = csv.split(",")
    info = parse_instrument(instrument_id)
    stock = parse_stock(instrument_id) if info is None else None
    if info is None and stock is None:
        raise FeedFormatError(f"{instrument_id!r} is neither a futures contract nor a stock code")
    try:
        if stock is not None:
            values, moment = _hong_kong(fields, stock) if stock.exchange_id == "HKEX" else _mainland(fields, stock)
            exchange_id = stock.exchange_id
        else:
            assert info is not None
            first_is_number = bool(fields[0]) and fields[0].replace(".", "", 1).isdigit()
            values, moment = _cffex(fields, info) if first_is_number else _commodity(fields, info)
            exchange_id = info.exchange_id
        stamper.apply(values, moment, exchange_id)
        return Quote(check_values(values), moment)
    except (ValueError, IndexError, ArithmeticError) as exc:
        raise FeedFormatError(str(exc)) from None


def _moment(day: str, clock: str) -> datetime:
    """The China time of ``YYYY-MM-DD`` (or ``YYYY/MM/DD``) and ``HHMMSS`` / ``HH:MM[:SS]``, as
    the layouts' patterns checked them; ValueError when it is not a real moment."""
    digits = clock.replace(":", "")
    return datetime(int(day[0:4]), int(day[5:7]), int(day[8:10]), int(digits[0:2]), int(digits[2:4]),
                    int(digits[4:6] or 0))


def _commodity(fields: list[str], info: InstrumentInfo) -> tuple[list[Any], datetime]:
    """Layout A (SHFE, INE, DCE, CZCE, GFEX): 44 fields now, 28/29/42 in variants; 18 at least."""
    if len(fields) < 18:
        raise FeedFormatError(f"a commodity quote needs at least 18 fields, this one has {len(fields)}")
    clock = fields[1].strip()
    if len(clock) != 6 or not clock.isdigit():
        raise FeedFormatError(f"time {clock!r} is not HHMMSS")
    if not _DATE.match(fields[17].strip()):
        raise FeedFormatError(f"date {fields[17]!r} is not YYYY-MM-DD")
    product, index = info.product, depth_index()
    values = blank_values(info.instrument_id, product.exchange)
    legacy = len(fields) == 28 and any(f.strip() for f in fields[19:27])  # the 2017-19 form
    values[index["OpenPrice"]] = price_at(fields, 2)
    values[index["HighestPrice"]] = price_at(fields, 3)
    values[index["LowestPrice"]] = price_at(fields, 4)
    values[index["LastPrice"]] = price_at(fields, 8)
    values[index["PreSettlementPrice"]] = price_at(fields, 10)
    if legacy:  # field 5 was the previous close and field 9 a running average
        values[index["PreClosePrice"]] = price_at(fields, 5)
    else:
        values[index["ClosePrice"]] = price_at(fields, 5)
        values[index["SettlementPrice"]] = price_at(fields, 9)
    set_level(values, "Bid", 1, price_at(fields, 6), number_at(fields, 11))
    set_level(values, "Ask", 1, price_at(fields, 7), number_at(fields, 12))
    values[index["OpenInterest"]] = number_at(fields, 13)
    volume = number_at(fields, 14)
    values[index["Volume"]] = volume
    vwap = number_at(fields, 9) if legacy else number_at(fields, 27)
    if volume and vwap:
        turnover = vwap * volume * product.multiplier
        values[index["Turnover"]] = turnover
        values[index["AveragePrice"]] = average_price(product.exchange, turnover, volume, product.multiplier, product.tick)
    return values, _moment(fields[17].strip(), clock)


def _cffex(fields: list[str], info: InstrumentInfo) -> tuple[list[Any], datetime]:
    """Layout B (CFFEX): 50 fields (49 before about 2018), the order of the CTP struct."""
    if len(fields) < 38:
        raise FeedFormatError(f"a CFFEX quote needs at least 38 fields, this one has {len(fields)}")
    day, clock = fields[36].strip(), fields[37].strip()
    if not _DATE.match(day) or not re.match(r"^\d{2}:\d{2}:\d{2}$", clock):
        raise FeedFormatError(f"date/time {day!r} {clock!r} are not YYYY-MM-DD HH:MM:SS")
    product, index = info.product, depth_index()
    values = blank_values(info.instrument_id, product.exchange)
    modern = len(fields) >= 50 and not fields[-1].replace(".", "", 1).isdigit()
    for name, at in (("OpenPrice", 0), ("HighestPrice", 1), ("LowestPrice", 2), ("LastPrice", 3), ("ClosePrice", 7),
                     ("SettlementPrice", 8), ("UpperLimitPrice", 9), ("LowerLimitPrice", 10), ("PreClosePrice", 13),
                     ("PreSettlementPrice", 14)):
        values[index[name]] = price_at(fields, at)
    volume = number_at(fields, 4)
    values[index["Volume"]] = volume
    # Turnover: price x lots in the modern form, money already in the pre-2018 form.
    turnover = number_at(fields, 5) * (product.multiplier if modern else 1)
    values[index["Turnover"]] = turnover
    values[index["OpenInterest"]] = number_at(fields, 6)
    values[index["PreOpenInterest"]] = number_at(fields, 15)
    for level in range(5):
        for side, base in (("Bid", 16), ("Ask", 26)):
            set_level(values, side, level + 1, price_at(fields, base + 2 * level), number_at(fields, base + 2 * level + 1))
    if volume:
        values[index["AveragePrice"]] = average_price(product.exchange, turnover, volume, product.multiplier, product.tick)
    return values, _moment(day, clock)


def _mainland(fields: list[str], stock: StockInfo) -> tuple[list[Any], datetime]:
    """SSE/SZSE/BSE: name, open, previous close, last, high, low, bid, ask, volume (shares), amount
    (yuan), five bid levels and five ask levels as (shares, price), date, time, status[, extras]."""
    if len(fields) < 32:
        raise FeedFormatError(f"a stock quote needs at least 32 fields, this one has {len(fields)}")
    day, clock = fields[30].strip(), fields[31].strip()
    if not _DATE.match(day) or not _CLOCK.match(clock) or len(clock) != 8:
        raise FeedFormatError(f"date/time {day!r} {clock!r} are not YYYY-MM-DD HH:MM:SS")
    prices = {name: price_at(fields, at) for name, at in (("OpenPrice", 1), ("PreClosePrice", 2), ("LastPrice", 3),
                                                         ("HighestPrice", 4), ("LowestPrice", 5))}
    bids = [(price_at(fields, 11 + 2 * k), number_at(fields, 10 + 2 * k)) for k in range(5)]
    asks = [(price_at(fields, 21 + 2 * k), number_at(fields, 20 + 2 * k)) for k in range(5)]
    return stock_values(stock, prices, number_at(fields, 8), number_at(fields, 9), bids, asks), _moment(day, clock)


def _hong_kong(fields: list[str], stock: StockInfo) -> tuple[list[Any], datetime]:
    """HKEX (``hk``/``rt_hk``): English name, name, open, previous close, high, low, last, change,
    change %, bid, ask, amount (HKD), volume (shares), ..., date YYYY/MM/DD, time HH:MM[:SS]."""
    if len(fields) < 19:
        raise FeedFormatError(f"an HK quote needs at least 19 fields, this one has {len(fields)}")
    day, clock = fields[17].strip(), fields[18].strip()
    if not re.match(r"^\d{4}/\d{2}/\d{2}$", day) or not _CLOCK.match(clock):
        raise FeedFormatError(f"date/time {day!r} {clock!r} are not YYYY/MM/DD HH:MM[:SS]")
    prices = {name: price_at(fields, at) for name, at in (("OpenPrice", 2), ("PreClosePrice", 3), ("HighestPrice", 4),
                                                         ("LowestPrice", 5), ("LastPrice", 6))}
    values = stock_values(stock, prices, number_at(fields, 12), number_at(fields, 11),
                          [(price_at(fields, 9), 0)], [(price_at(fields, 10), 0)])
    return values, _moment(day, clock)


# -- the source and the adapter -----------------------------------------------------------------------

class SinaSource(QuoteSource):
    """``hq.sinajs.cn``: ``/list=a,b,c`` answers ``var hq_str_<symbol>="<csv>";`` per symbol."""

    name = "sina"
    title = "Sina"
    headers = {"Referer": REFERER}
    forbidden_hint = (f"Sina refuses requests without a Referer from sina.com.cn (ctpshim sends {REFERER}); "
                      "a proxy or mirror at base_url may be dropping it")

    def symbol_of(self, instrument_id: str) -> str | None:
        return to_sina(instrument_id)

    def url(self, symbols: list[str]) -> str:
        return f"{self.base_url}/list={','.join(symbols)}"

    def statements(self, text: str) -> list[tuple[str, str]]:
        return split_statements(text)

    def rejects_batch(self, statements: list[tuple[str, str]]) -> bool:
        return any(name == "sys_auth" for name, _ in statements)  # sys_auth="FAILED"

    def parse(self, payload: str, instrument_id: str) -> Quote:
        return read_statement(payload, instrument_id, self.stamper)

    def instrument(self, payload: str, instrument_id: str) -> Any:
        info = parse_instrument(instrument_id)
        if info is not None:
            return info
        stock = parse_stock(instrument_id)
        if stock is None:
            return None
        fields = payload.split(",")
        name = fields[1] if stock.exchange_id == "HKEX" and len(fields) > 1 else fields[0]
        return stock.named(name)

    def probe_targets(self, now: datetime) -> list[ProbeTarget]:
        targets = []
        for symbol in PROBE_SYMBOLS:
            product, _ = _split_symbol(symbol)
            assert product is not None
            targets.append(ProbeTarget(symbol, main_contract(product, now.date()), is_open(product, now)))
        return targets


class SinaAdapter(PollingAdapter):
    """Sina Finance futures and stock quotes (see the module docstring)."""

    scheme = "sina"
    source_class = SinaSource
    settings = PollingAdapter.polling_settings(DEFAULT_BASE_URL, 50)


__all__ = ["SinaAdapter", "SinaSource", "to_sina", "from_sina", "parse_statement", "read_statement", "split_statements"]
