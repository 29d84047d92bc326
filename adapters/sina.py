"""``sina://``: live domestic futures quotes from Sina Finance (``hq.sinajs.cn``), polled.

Symbols: a CTP instrument ID maps to Sina's ``nf_`` + upper-case product + 4-digit YYMM
(``rb2605`` -> ``nf_RB2605``; CZCE's ``TA605`` -> ``nf_TA2605``; CFFEX ``IF2612`` -> ``nf_IF2612``).
Two payload layouts share the prefix: commodity futures (a name first, 28/29/42/44 fields) and
CFFEX (50 fields, numeric first; 49 in the pre-2018 form); both are parsed by index with bounds
checks, as the field counts drift.  Mapping to ``CThostFtdcDepthMarketDataField`` follows the
reference notes (FEEDS.md 1.4-1.9): a 0 price is absent (DBL_MAX), TradingDay comes from the
calendar (a night tick belongs to the next trading day), ActionDay is the payload's calendar
date, Turnover and AveragePrice are derived where the feed lacks them.

A tick is pushed only when the quote changed; the first answer after a subscription is pushed
as the current snapshot even when the market is closed.  Settings: ``interval`` (seconds between
polls, default 0.5), ``batch`` (symbols per request, default 50), ``timeout`` (seconds, default 5),
``base_url`` (default ``https://hq.sinajs.cn``; mirrors, proxies, tests).

Faults: HTTP 403 (Sina refuses requests without a sina.com.cn Referer), 5xx, timeouts and dropped
connections end the session with a CTP reason code; the session reconnects.  The whole-batch
failure reply (``sys_auth="FAILED"``) caused by one bad symbol is isolated by splitting the
batch; the bad symbol is dropped with one warning.  Garbage lines are skipped with a warning that
shows them.

Example: ``sina://?interval=1&batch=40``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from datetime import datetime
from typing import Any, AsyncIterator, Iterable

from ..calendar import now_china, trading_day_of, yyyymmdd
from ..errors import (
    REASON_HEARTBEAT_TIMEOUT,
    REASON_READ_FAILED,
    UpstreamDisconnected,
    UpstreamProtocolError,
    UpstreamUnavailable,
)
from ..market_data import DBL_MAX, average_price, blank_values, depth_index, make_tick
from ..products import PRODUCTS, InstrumentInfo, Product, is_open, main_contract, parse_instrument
from ..url import FrontURL, Setting, integer, positive_float
from .base import Adapter, Capabilities, require_extra

log = logging.getLogger("ctpshim.sina")

DEFAULT_BASE_URL = "https://hq.sinajs.cn"
REFERER = "https://finance.sina.com.cn/"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) ctpshim"
_STATEMENT = re.compile(r'hq_str_([^=\s]+)="([^"]*)"')
_PRODUCTS_FOLDED = {code.upper(): product for code, product in PRODUCTS.items()}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PROBE_SYMBOLS = ("nf_RB0", "nf_AU0", "nf_IF0")  # continuous main contracts: ping's health check


# -- symbols --------------------------------------------------------------------------------------

def to_sina(instrument_id: str) -> str | None:
    """Sina's symbol for a CTP instrument ID, or None when it is not a known futures contract."""
    info = parse_instrument(instrument_id)
    if info is None:
        return None
    return f"nf_{info.product.code.upper()}{info.delivery_year % 100:02d}{info.delivery_month:02d}"


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

class SinaFormatError(ValueError):
    """A statement that cannot be read as either layout."""


def split_statements(text: str) -> list[tuple[str, str]]:
    """(symbol, csv) for every ``hq_str_<symbol>="<csv>"`` statement in a reply, in order."""
    return _STATEMENT.findall(text)


def _price(fields: list[str], index: int) -> float:
    """A price; 0, empty, ``--`` or a missing field is absent (DBL_MAX)."""
    if index >= len(fields):
        return DBL_MAX
    text = fields[index].strip()
    if not text or text == "--":
        return DBL_MAX
    value = float(text)
    return DBL_MAX if value == 0 or not math.isfinite(value) else value


def _number(fields: list[str], index: int) -> float:
    if index >= len(fields):
        return 0.0
    text = fields[index].strip()
    return float(text) if text and text != "--" else 0.0


def parse_statement(csv: str, instrument_id: str) -> list[Any]:
    """The 48 tick values for one statement's csv; raises SinaFormatError when it cannot be read."""
    fields = csv.split(",")
    info = parse_instrument(instrument_id)
    if info is None:
        raise SinaFormatError(f"{instrument_id!r} is not a known futures contract")
    try:
        first_is_number = bool(fields[0]) and fields[0].replace(".", "", 1).isdigit()
        if first_is_number:
            return _cffex(fields, info)
        return _commodity(fields, info)
    except (ValueError, IndexError) as exc:
        raise SinaFormatError(str(exc)) from None


def _moment(day: str, clock: str) -> datetime:
    return datetime(int(day[0:4]), int(day[4:6]), int(day[6:8]), int(clock[0:2]), int(clock[3:5]), int(clock[6:8]))


def _finish(values: list[Any], info: InstrumentInfo, day: str, clock: str, index: dict[str, int]) -> list[Any]:
    values[index["ActionDay"]] = day
    values[index["TradingDay"]] = yyyymmdd(trading_day_of(_moment(day, clock)))
    values[index["UpdateTime"]] = clock
    values[index["UpdateMillisec"]] = 0
    return values


def _commodity(fields: list[str], info: InstrumentInfo) -> list[Any]:
    """Layout A (SHFE, INE, DCE, CZCE, GFEX): 44 fields now, 28/29/42 in variants; 18 at least."""
    if len(fields) < 18:
        raise SinaFormatError(f"a commodity quote needs at least 18 fields, this one has {len(fields)}")
    clock = fields[1].strip()
    if len(clock) != 6 or not clock.isdigit():
        raise SinaFormatError(f"time {clock!r} is not HHMMSS")
    if not _DATE.match(fields[17].strip()):
        raise SinaFormatError(f"date {fields[17]!r} is not YYYY-MM-DD")
    product, index = info.product, depth_index()
    values = blank_values(info.instrument_id, product.exchange)
    legacy = len(fields) == 28 and any(f.strip() for f in fields[19:27])  # the 2017-19 form
    values[index["OpenPrice"]] = _price(fields, 2)
    values[index["HighestPrice"]] = _price(fields, 3)
    values[index["LowestPrice"]] = _price(fields, 4)
    values[index["LastPrice"]] = _price(fields, 8)
    values[index["PreSettlementPrice"]] = _price(fields, 10)
    if legacy:  # field 5 was the previous close and field 9 a running average
        values[index["PreClosePrice"]] = _price(fields, 5)
    else:
        values[index["ClosePrice"]] = _price(fields, 5)
        values[index["SettlementPrice"]] = _price(fields, 9)
    for price_at, volume_at, price_name, volume_name in ((6, 11, "BidPrice1", "BidVolume1"), (7, 12, "AskPrice1", "AskVolume1")):
        price = _price(fields, price_at)
        values[index[price_name]] = price
        values[index[volume_name]] = 0 if price == DBL_MAX else int(_number(fields, volume_at))
    values[index["OpenInterest"]] = _number(fields, 13)
    volume = int(_number(fields, 14))
    values[index["Volume"]] = volume
    vwap = _number(fields, 9) if legacy else _number(fields, 27)
    if volume and vwap:
        turnover = vwap * volume * product.multiplier
        values[index["Turnover"]] = turnover
        values[index["AveragePrice"]] = average_price(product.exchange, turnover, volume, product.multiplier, product.tick)
    clock = f"{clock[0:2]}:{clock[2:4]}:{clock[4:6]}"
    return _finish(values, info, fields[17].strip().replace("-", ""), clock, index)


def _cffex(fields: list[str], info: InstrumentInfo) -> list[Any]:
    """Layout B (CFFEX): 50 fields (49 before about 2018), the order of the CTP struct."""
    if len(fields) < 38:
        raise SinaFormatError(f"a CFFEX quote needs at least 38 fields, this one has {len(fields)}")
    day, clock = fields[36].strip(), fields[37].strip()
    if not _DATE.match(day) or not re.match(r"^\d{2}:\d{2}:\d{2}$", clock):
        raise SinaFormatError(f"date/time {day!r} {clock!r} are not YYYY-MM-DD HH:MM:SS")
    product, index = info.product, depth_index()
    values = blank_values(info.instrument_id, product.exchange)
    modern = len(fields) >= 50 and not fields[-1].replace(".", "", 1).isdigit()
    for name, at in (("OpenPrice", 0), ("HighestPrice", 1), ("LowestPrice", 2), ("LastPrice", 3), ("ClosePrice", 7),
                     ("SettlementPrice", 8), ("UpperLimitPrice", 9), ("LowerLimitPrice", 10), ("PreClosePrice", 13),
                     ("PreSettlementPrice", 14)):
        values[index[name]] = _price(fields, at)
    volume = int(_number(fields, 4))
    values[index["Volume"]] = volume
    # Turnover: price x lots in the modern form, money already in the pre-2018 form.
    turnover = _number(fields, 5) * (product.multiplier if modern else 1)
    values[index["Turnover"]] = turnover
    values[index["OpenInterest"]] = _number(fields, 6)
    values[index["PreOpenInterest"]] = _number(fields, 15)
    for level in range(5):
        for side, base in (("Bid", 16), ("Ask", 26)):
            price = _price(fields, base + 2 * level)
            values[index[f"{side}Price{level + 1}"]] = price
            values[index[f"{side}Volume{level + 1}"]] = 0 if price == DBL_MAX else int(_number(fields, base + 2 * level + 1))
    if volume:
        values[index["AveragePrice"]] = average_price(product.exchange, turnover, volume, product.multiplier, product.tick)
    return _finish(values, info, day.replace("-", ""), clock, index)


# -- the adapter ----------------------------------------------------------------------------------

class SinaAdapter(Adapter):
    """Sina Finance futures quotes (see the module docstring)."""

    scheme = "sina"
    settings = (
        Setting("interval", positive_float, 0.5, "seconds between polls"),
        Setting("batch", integer(1, 800), 50, "symbols per request"),
        Setting("timeout", positive_float, 5.0, "seconds an HTTP request may take"),
        Setting("base_url", str, DEFAULT_BASE_URL, "where to poll: Sina, a mirror or a proxy"),
    )
    capabilities = Capabilities(depth_levels=1, deterministic=False, has_instruments=True)

    @classmethod
    def check(cls, url: FrontURL, settings: dict[str, Any]) -> None:
        require_extra("aiohttp", "feeds", "sina:// polls over HTTP with aiohttp")
        if not re.match(r"^https?://[^/\s]+", settings["base_url"]):
            raise ValueError(f"base_url={settings['base_url']!r} is not an http(s) URL")

    def __init__(self, url: FrontURL, settings: dict[str, Any]) -> None:
        super().__init__(url, settings)
        self.base_url = settings["base_url"].rstrip("/")
        self._session: Any = None
        self._symbols: dict[str, str] = {}  # Sina symbol -> CTP instrument ID (subscribed)
        self._last: dict[str, tuple[Any, ...]] = {}  # symbol -> the last pushed quote's identity
        self._fresh: set[str] = set()  # subscribed since the last poll: push their snapshot anyway
        self._bad: set[str] = set()
        self._warned: set[str] = set()
        self._garbage_warned: dict[str, float] = {}
        self._seen: dict[str, InstrumentInfo] = {}
        self._wake = asyncio.Event()

    async def connect(self) -> None:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=self.config["timeout"])
        self._session = aiohttp.ClientSession(timeout=timeout, headers={"Referer": REFERER, "User-Agent": USER_AGENT})
        try:
            await self._get(["nf_RB0"])  # reachable, and answering?
        except UpstreamDisconnected as exc:
            raise UpstreamUnavailable(str(exc)) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def instruments(self) -> list[InstrumentInfo]:
        return list(self._seen.values())

    async def subscribe(self, ids: Iterable[str]) -> None:
        unknown = []
        for instrument_id in ids:
            symbol = to_sina(instrument_id)
            if symbol is None:
                if instrument_id not in self._warned:
                    self._warned.add(instrument_id)
                    unknown.append(instrument_id)
                continue
            self._symbols[symbol] = instrument_id
            self._fresh.add(symbol)
        if unknown:
            log.warning("sina: %s not a futures contract Sina can quote (accepted as CTP does; no ticks will come)",
                        ", ".join(unknown))
        self._wake.set()

    async def unsubscribe(self, ids: Iterable[str]) -> None:
        for instrument_id in ids:
            symbol = to_sina(instrument_id)
            if symbol is not None:
                self._symbols.pop(symbol, None)
                self._last.pop(symbol, None)

    async def ticks(self) -> AsyncIterator[list[Any]]:
        interval = self.config["interval"]
        loop = asyncio.get_running_loop()
        while True:
            if not self._symbols:
                self._wake.clear()
                await self._wake.wait()
                continue
            started = loop.time()
            symbols = [s for s in self._symbols if s not in self._bad]
            size = self.config["batch"]
            # The batches are requested together: one after another, 20 of them at Sina's
            # latency would take longer than the interval.
            answers = await asyncio.gather(*(self._poll(symbols[o:o + size]) for o in range(0, len(symbols), size)))
            batch = [tick for answer in answers for tick in answer]
            if batch:
                yield batch
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), max(0.0, interval - (loop.time() - started)))
            except asyncio.TimeoutError:
                pass

    async def _poll(self, symbols: list[str]) -> list[Any]:
        """Ticks for ``symbols``; a whole-batch failure is split until the bad symbol is found."""
        if not symbols:
            return []
        statements = await self._get(symbols)
        if any(name == "sys_auth" for name, _ in statements):
            if len(symbols) == 1:
                self._bad.add(symbols[0])
                log.warning("sina: %s makes Sina reject the whole request (sys_auth=FAILED); dropped, the others go on",
                            self._symbols.get(symbols[0], symbols[0]))
                return []
            half = len(symbols) // 2
            return await self._poll(symbols[:half]) + await self._poll(symbols[half:])
        ticks = []
        for name, csv in statements:
            instrument_id = self._symbols.get(name)
            if instrument_id is None:
                continue
            if not csv:
                if name not in self._warned:
                    self._warned.add(name)
                    log.warning("sina: no data for %s (%s): Sina answers an empty quote; no ticks will come",
                                instrument_id, name)
                continue
            try:
                values = parse_statement(csv, instrument_id)
            except SinaFormatError as exc:
                now = asyncio.get_running_loop().time()
                if now - self._garbage_warned.get(name, -math.inf) >= 60.0:  # once a minute per symbol
                    self._garbage_warned[name] = now
                    shown = csv if len(csv) <= 120 else csv[:117] + "..."
                    log.warning("sina: skipped an unreadable quote for %s (%s): %r", instrument_id, exc, shown)
                continue
            tick = self._changed(name, values)
            if tick is not None:
                ticks.append(tick)
        return ticks

    def _changed(self, symbol: str, values: list[Any]) -> Any:
        """The tick if the quote changed since the last push (or was just subscribed), else None."""
        index = depth_index()
        identity = tuple(values[index[n]] for n in ("ActionDay", "UpdateTime", "Volume", "LastPrice", "BidPrice1",
                                                     "AskPrice1", "BidVolume1", "AskVolume1", "OpenInterest"))
        fresh = symbol in self._fresh
        self._fresh.discard(symbol)
        if not fresh and self._last.get(symbol) == identity:
            return None  # a stale quote (closed market) is not pushed again as if new
        self._last[symbol] = identity
        info = parse_instrument(values[index["InstrumentID"]])
        if info is not None:
            self._seen[info.instrument_id] = info
        return make_tick(values)

    async def probe(self) -> dict[str, Any]:
        """One request for a few continuous contracts: does it parse, how old is the newest quote."""
        statements = await self._get(list(PROBE_SYMBOLS))
        if any(name == "sys_auth" for name, _ in statements):
            raise UpstreamProtocolError(f"sina: {self.base_url} rejected the request (sys_auth=FAILED)")
        now = now_china()
        index = depth_index()
        moments, unreadable, market_open = [], [], False
        for name, csv in statements:
            product, _ = _split_symbol(name)
            if product is None or not csv:
                continue
            market_open = market_open or is_open(product, now)
            try:
                values = parse_statement(csv, main_contract(product, now.date()))
            except SinaFormatError as exc:
                unreadable.append(f"{name}: {exc}")
                continue
            moments.append(_moment(values[index["ActionDay"]], values[index["UpdateTime"]]))
        if not moments:
            why = "; ".join(unreadable) if unreadable else "every quote was empty"
            raise UpstreamProtocolError(f"sina: {self.base_url} answered, but no quote could be read ({why})")
        newest = max(moments)
        return {"quotes": len(moments), "unreadable": len(unreadable), "newest_quote": newest.isoformat(" "),
                "age_s": round((now - newest).total_seconds(), 1), "market_open": market_open}

    async def _get(self, symbols: list[str]) -> list[tuple[str, str]]:
        import aiohttp

        url = f"{self.base_url}/list={','.join(symbols)}"
        try:
            async with self._session.get(url) as response:
                body = await response.read()
                status = response.status
        except asyncio.TimeoutError:
            raise UpstreamDisconnected(
                f"sina: {self.base_url} did not answer within {self.config['timeout']:g} s", REASON_HEARTBEAT_TIMEOUT) from None
        except aiohttp.ClientError as exc:
            raise UpstreamDisconnected(f"sina: {self.base_url}: {exc}", REASON_READ_FAILED) from None
        if status == 403:
            raise UpstreamDisconnected(
                f"sina: HTTP 403 from {self.base_url}: Sina refuses requests without a Referer from sina.com.cn "
                f"(ctpshim sends {REFERER}); a proxy or mirror at base_url may be dropping it", REASON_READ_FAILED)
        if status != 200:
            raise UpstreamDisconnected(f"sina: HTTP {status} from {self.base_url}", REASON_READ_FAILED)
        return split_statements(body.decode("gb18030", "replace"))


__all__ = ["SinaAdapter", "to_sina", "from_sina", "parse_statement", "split_statements"]
