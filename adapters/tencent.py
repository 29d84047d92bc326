"""``tencent://``: live stock and fund quotes from Tencent (``qt.gtimg.cn``), polled; Sina as fallback.

Tencent has no domestic futures endpoint (``FEEDS.md`` 2.2), so this front quotes SSE, SZSE and
BSE shares and funds and HKEX shares (codes as :mod:`ctpshim.ctp.stocks` reads them: ``600519``,
``000001``, ``920118``, ``00700``; ``sh000300`` for an index).  ExchangeID is ``SSE``,
``SZSE``, ``BSE`` or ``HKEX``.

The reply has one ``v_<symbol>="a~b~c";`` statement per known code; ``v_pv_none_match="1";``
stands for codes Tencent does not know.  Fields used (0-based): 1 name, 3 last, 4 previous
close, 5 open, 6 volume (lots of 100 shares on the mainland, shares in Hong Kong), 9-18 five bid
levels and 19-28 five ask levels as (price, volume), 30 time (``YYYYMMDDHHMMSS`` on the
mainland, ``YYYY/MM/DD HH:MM:SS`` in Hong Kong), 33 high, 34 low, 35 ``price/volume/amount``
(amount in yuan, mainland), 37 amount (10k yuan on the mainland, HKD in Hong Kong), 47 and 48
the limit prices (mainland).  Volumes reach the program in shares, Turnover in yuan (HKD),
AveragePrice = Turnover / Volume.  Hong Kong's free quote has prices but no volumes at bid 1
and ask 1, and no deeper levels.

Settings: those of every polled feed (``interval`` 0.5 s, ``batch`` 60, ``timeout`` 5 s,
``base_url`` ``https://qt.gtimg.cn``, ``dates``), plus ``fallback`` (``sina`` or ``none``) and
``fallback_url`` (Sina's address).  With the fallback, a batch Tencent cannot answer (5xx,
timeout, refused) is asked of Sina, and codes Tencent does not know are quoted from Sina; the
session stays up while either source answers.

Example: ``tencent://?interval=1``, ``tencent://?fallback=none``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from ..ctp.market_data import DBL_MAX, Stamper, check_values
from ..ctp.stocks import is_open, parse_stock, stock_values
from ..fronts.url import Setting, choice
from .polling import FeedFormatError, PollingAdapter, ProbeTarget, Quote, QuoteSource, http_base_url, number_at, price_at
from .sina import DEFAULT_BASE_URL as SINA_BASE_URL
from .sina import SinaSource

DEFAULT_BASE_URL = "https://qt.gtimg.cn"
_STATEMENT = re.compile(r'v_([A-Za-z0-9_]+)="([^"]*)"')
NONE_MATCH = "pv_none_match"
PROBE_CODES = (("600519", "SSE"), ("000001", "SZSE"), ("00700", "HKEX"))
_CORRECT = Stamper()


def to_tencent(instrument_id: str) -> str | None:
    """Tencent's symbol for a stock code (``600519`` -> ``sh600519``), or None."""
    stock = parse_stock(instrument_id)
    return stock.symbol if stock is not None else None


def split_statements(text: str) -> list[tuple[str, str]]:
    """(symbol, payload) for every ``v_<symbol>="..."`` statement of a reply, in order."""
    return [(symbol, payload) for symbol, payload in _STATEMENT.findall(text) if symbol != NONE_MATCH]


def _moment(text: str) -> datetime:
    """The China time of Tencent's time field, in either of its forms."""
    digits = re.sub(r"[/\-: ]", "", text.strip())
    if len(digits) != 14 or not digits.isdigit():
        raise FeedFormatError(f"time {text!r} is neither YYYYMMDDHHMMSS nor YYYY/MM/DD HH:MM:SS")
    try:
        return datetime(int(digits[0:4]), int(digits[4:6]), int(digits[6:8]), int(digits[8:10]), int(digits[10:12]),
                        int(digits[12:14]))
    except ValueError as exc:
        raise FeedFormatError(f"time {text!r} is not a real date and time ({exc})") from None


def parse_statement(payload: str, instrument_id: str, stamper: Stamper = _CORRECT) -> list[Any]:
    """The 48 tick values of one statement's payload, stamped by ``stamper``; raises
    FeedFormatError when it cannot be read."""
    return read_statement(payload, instrument_id, stamper).values


def read_statement(payload: str, instrument_id: str, stamper: Stamper = _CORRECT) -> Quote:
    """The quote of one statement's payload: its 48 tick values (stamped by ``stamper``) and its
    China time; raises FeedFormatError when it cannot be read."""
    stock = parse_stock(instrument_id)
    if stock is None:
        raise FeedFormatError(f"{instrument_id!r} is not a stock code")
    fields = payload.split("~")
    if len(fields) < 38:
        raise FeedFormatError(f"a Tencent quote needs at least 38 fields, this one has {len(fields)}")
    moment = _moment(fields[30])
    try:
        lot = stock.lot_shares
        prices = {name: price_at(fields, at) for name, at in (("LastPrice", 3), ("PreClosePrice", 4), ("OpenPrice", 5),
                                                              ("HighestPrice", 33), ("LowestPrice", 34))}
        if stock.exchange_id != "HKEX":
            for name, at in (("UpperLimitPrice", 47), ("LowerLimitPrice", 48)):
                limit = price_at(fields, at)
                prices[name] = DBL_MAX if limit == -1 else limit  # indexes have no limits: -1
        volume = number_at(fields, 6) * lot
        if stock.exchange_id == "HKEX":
            turnover = number_at(fields, 37)
        else:
            composite = fields[35].split("/")
            exact = composite[2].strip() if len(composite) == 3 else ""
            turnover = float(exact) if exact else number_at(fields, 37) * 10_000
        bids = [(price_at(fields, 9 + 2 * k), number_at(fields, 10 + 2 * k) * lot) for k in range(5)]
        asks = [(price_at(fields, 19 + 2 * k), number_at(fields, 20 + 2 * k) * lot) for k in range(5)]
        values = stock_values(stock, prices, volume, turnover, bids, asks)
        stamper.apply(values, moment, stock.exchange_id)
        return Quote(check_values(values), moment)
    except (ValueError, IndexError, ArithmeticError) as exc:
        raise FeedFormatError(str(exc)) from None


class TencentSource(QuoteSource):
    """``qt.gtimg.cn``: ``/q=a,b,c`` answers ``v_<symbol>="<a~b~c>";`` per known symbol."""

    name = "tencent"
    title = "Tencent"
    headers: dict[str, str] = {}  # Tencent needs no Referer
    forbidden_hint = "Tencent refused the request; a proxy or mirror at base_url may be filtering it"

    def symbol_of(self, instrument_id: str) -> str | None:
        return to_tencent(instrument_id)

    def url(self, symbols: list[str]) -> str:
        return f"{self.base_url}/q={','.join(symbols)}"

    def statements(self, text: str) -> list[tuple[str, str]]:
        return split_statements(text)

    def knows_none(self, text: str) -> bool:
        return f'v_{NONE_MATCH}="' in text

    def parse(self, payload: str, instrument_id: str) -> Quote:
        return read_statement(payload, instrument_id, self.stamper)

    def instrument(self, payload: str, instrument_id: str) -> Any:
        stock = parse_stock(instrument_id)
        if stock is None:
            return None
        fields = payload.split("~")
        return stock.named(fields[1] if len(fields) > 1 else "")

    def probe_targets(self, now: datetime) -> list[ProbeTarget]:
        return [ProbeTarget(to_tencent(code) or code, code, is_open(exchange, now)) for code, exchange in PROBE_CODES]


class TencentAdapter(PollingAdapter):
    """Tencent stock quotes with Sina as the fallback (see the module docstring)."""

    scheme = "tencent"
    source_class = TencentSource
    settings = PollingAdapter.polling_settings(DEFAULT_BASE_URL, 60) + (
        Setting("fallback", choice("sina", "none"), "sina", "where to quote from when Tencent cannot answer"),
        Setting("fallback_url", http_base_url, SINA_BASE_URL, "the fallback's address: Sina, a mirror or a proxy"),
    )

    def make_fallback(self, settings: dict[str, Any]) -> QuoteSource | None:
        if settings["fallback"] == "none":
            return None
        return _SinaStocks(settings["fallback_url"], self.source.stamper)


class _SinaStocks(SinaSource):
    """Sina as a stock source: the same service, asked only for stocks."""

    def symbol_of(self, instrument_id: str) -> str | None:
        return super().symbol_of(instrument_id) if parse_stock(instrument_id) is not None else None


__all__ = ["TencentAdapter", "TencentSource", "to_tencent", "parse_statement", "read_statement", "split_statements"]
