"""TianQin's DIFF protocol (shinnytech) for quotes, on ``/diff`` (SERVER_PROTOCOLS.md section 2).

What a DIFF client (tqsdk's TqApi, the TianQin terminal) sees:

* every server packet is ``{"aid": "rtn_data", "data": [patch, ...]}``: JSON Merge Patches
  against the snapshot the client keeps; the first one of a connection carries
  ``"mdhis_more_data": false`` (tqsdk's start-up barrier);
* ``{"aid": "peek_message"}`` is answered at once when something changed since the last packet,
  else held until something does: one packet per peek.  Between peeks the changes are merged per
  client (a quote changed five times goes out once, with its latest values): client-paced
  conflation, so a slow client gets fewer, larger packets and never holds others back.  Each
  quote's patch is made (and JSON-encoded) once for every client that last got the same tick;
* ``{"aid": "subscribe_quote", "ins_list": "SHFE.rb2510,DCE.m2601"}`` replaces the subscribed
  set (not additive) and is reflected as the root field ``ins_list``.  Ids carry the exchange
  prefix (``SHFE.``, ``DCE.``, ``CZCE.``, ``CFFEX.``, ``INE.``, ``GFEX.``, ``SSE.``, ``SZSE.``);
  the part after the first dot is the source's InstrumentID.  An id in ``ins_list`` that never
  shows under ``quotes`` does not exist on the source;
* quotes: tqsdk's field names (``last_price``, ``bid_price1``, ``volume``, ``datetime``
  ``YYYY-MM-DD HH:MM:SS.ffffff`` from ActionDay, UpdateTime and UpdateMillisec ...); a number
  without a value (CTP's DBL_MAX) is the string ``"-"``, which tqsdk's merge turns into NaN; never
  ``null`` (tqsdk would keep the stale value), never NaN or Infinity.  The first patch of each
  quote also carries the static fields of ``/symbols.json`` (``price_tick``, ``volume_multiple``,
  ``trading_time`` ...);
* errors travel as ``{"notify": {"<n>": {"type": "MESSAGE", "level": "WARNING"|"ERROR", "code": n,
  "content": "..."}}}``: an unknown command, ids past ``limits.max_subscriptions`` (code 6000), too
  many commands per second (code -3; a client that keeps on is closed with 1008), the source down
  (WARNING with CTP's reason code; the server reconnects it).  A packet that
  is not a JSON object with an ``aid`` closes the client (1008, with the reason after a notify);
* ``{"aid": "set_chart", "chart_id": ..., "ins_list": "SHFE.rb2510", "duration": ns,
  "view_width": n}``: ``duration`` 0 sends the ticks the server sees from then on under
  ``ticks.<symbol>.data.<id>``, 60000000000 one-minute bars built from them under
  ``klines.<symbol>.60000000000.data.<id>``; both with ``last_id``, and ``charts.<chart_id>``
  carries ``left_id``/``right_id``/``state`` (``ready``).  There is no history: the chart
  starts with the first tick after the request.  Other durations are answered with a notify.
* ``{"aid": "ins_query", "query_id": ..., "query": "<GraphQL>", "variables": {...}}``: tqsdk's
  instrument query (its default ``_stock=True`` mode).  The ids come from
  ``variables.instrument_id`` or from the text's ``multi_symbol_info(instrument_id: [...])``; the
  answer is ``symbols.<query_id>`` with ``result.multi_symbol_info``: one row per id the source lists
  (the fields of ``/symbols.json``, ``expire_datetime`` in nanoseconds).  Any other query is answered
  with an ``error`` member;
* token: ``?token=`` in the URL, or a first packet ``{"aid": "auth", "token": "..."}``.  tqsdk's
  ``Authorization`` header carries Shinny's token, so it is ignored here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..ctp import error_codes
from ..ctp.fields import values_of
from ..ctp.market_data import AVERAGE_PRICE_ON_TICK_GRID, depth_index, present_price
from .limits import AuthError
from .web import WebSocketClient, dumps, serve_socket

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger("ctpshim.server")

NO_VALUE = "-"
MINUTE_NS = 60_000_000_000
CHART_DURATIONS = (0, MINUTE_NS)
MAX_CHART_ITEMS = 10_000  # the largest view_width served
MAX_PENDING_NOTICES = 100  # notices waiting for a client that does not peek: the oldest go first
SUBSCRIPTION_LIMIT_CODE = error_codes.error("OVER_SUB_INST_LIMIT").code  # as webctp and ctpshim:// answer
UNSUPPORTED_CODE = error_codes.error("UNSUPPORTED_FUNCTION").code
NOT_FOUND_CODE = error_codes.error("INSTRUMENT_NOT_FOUND").code
RATE_LIMIT_CODE = -3

_PRICES = (("last_price", "LastPrice"), ("highest", "HighestPrice"), ("lowest", "LowestPrice"),
           ("open", "OpenPrice"), ("close", "ClosePrice"), ("settlement", "SettlementPrice"),
           ("pre_close", "PreClosePrice"), ("pre_settlement", "PreSettlementPrice"),
           ("upper_limit", "UpperLimitPrice"), ("lower_limit", "LowerLimitPrice"))
_TICK_KEYS = ("last_price", "average", "highest", "lowest", "volume", "amount", "open_interest") + tuple(
    f"{side}_{kind}{level}" for level in range(1, 6) for side in ("ask", "bid") for kind in ("price", "volume"))
_STATIC_NAMES = {"class": "ins_class", "ins_name": "instrument_name"}
_STATIC_SKIP = frozenset({"instrument_id", "ins_id"})


def split_symbol(symbol: str) -> str:
    """``SHFE.rb2510`` -> ``rb2510``; ``ValueError`` for an id without an exchange prefix."""
    exchange, dot, instrument = symbol.partition(".")
    if not dot or not exchange or not instrument:
        raise ValueError(f"{symbol!r} has no exchange prefix (write it as SHFE.rb2510, DCE.m2601, CZCE.SR601 ...)")
    return instrument


@lru_cache(maxsize=4096)
def _static(instrument: str) -> tuple[dict[str, Any], float]:
    """The static quote fields of an instrument and the divisor that makes its AveragePrice a price."""
    from ..broker.terms import parse_info
    from .web import symbol_entry
    from ..ctp import clock

    info = parse_info(instrument)
    if info is None:
        return {}, 1.0
    entry = symbol_entry(info, clock.today())
    if entry is None:
        return {}, 1.0
    fields = {_STATIC_NAMES.get(k, k): v for k, v in entry[1].items() if k not in _STATIC_SKIP}
    multiplier = fields.get("volume_multiple") or 1
    divisor = 1.0 if fields.get("exchange_id") in AVERAGE_PRICE_ON_TICK_GRID else float(multiplier)
    return fields, divisor


_QUERY_IDS = re.compile(r"multi_symbol_info\s*\(\s*instrument_id\s*:\s*\[([^\]]*)\]")
_QUOTED = re.compile(r'"([^"\\]*)"')


def symbol_row(info: Any, instrument: str) -> dict[str, Any] | None:
    """One ``multi_symbol_info`` row of tqsdk's instrument service for ``instrument`` (the
    source's ``info``, or what the ID says when ``info`` is None)."""
    from ..broker.terms import parse_info
    from ..ctp import clock
    from .web import symbol_entry

    info = info if info is not None else parse_info(instrument)
    entry = symbol_entry(info, clock.today()) if info is not None else None
    if entry is None:
        return None
    row = {_STATIC_NAMES.get(k, k): v for k, v in entry[1].items() if k != "ins_id"}
    row["class"] = row.pop("ins_class")
    if "expire_datetime" in row:
        row["expire_datetime"] = int(row["expire_datetime"]) * 1_000_000_000  # the service's nanoseconds
    return row


def _number(value: Any) -> Any:
    return value if isinstance(value, (int, float)) and value - value == 0 else NO_VALUE


def _volume(value: Any) -> Any:
    if isinstance(value, float):
        return int(value) if value - value == 0 else 0
    return value


@lru_cache(maxsize=1)
def _positions() -> dict[str, int]:
    return dict(depth_index())


def datetime_of(action_day: str, update_time: str, millisec: int) -> str:
    """DIFF's ``datetime``: ``2025-09-18 21:15:02.500000`` (exchange time, calendar date)."""
    day = action_day if len(action_day) == 8 else ""
    if not day or not update_time:
        return ""
    return f"{day[:4]}-{day[4:6]}-{day[6:]} {update_time}.{int(millisec) * 1000:06d}"


def quote_of(tick: Any) -> dict[str, Any]:
    """A tick as a DIFF quote's dynamic fields (the "diff" format of an EncodedTick; shared,
    never modified)."""
    v = values_of(tick)
    at = _positions()
    _fields, divisor = _static(v[at["InstrumentID"]])
    action_day = v[at["ActionDay"]] or v[at["TradingDay"]]
    quote: dict[str, Any] = {"datetime": datetime_of(action_day, v[at["UpdateTime"]], v[at["UpdateMillisec"]])}
    for level in range(1, 6):
        for side, name in (("ask", "Ask"), ("bid", "Bid")):
            price = present_price(v[at[f"{name}Price{level}"]])
            quote[f"{side}_price{level}"] = NO_VALUE if price is None else price
            quote[f"{side}_volume{level}"] = _volume(v[at[f"{name}Volume{level}"]])
    for key, member in _PRICES:
        price = present_price(v[at[member]])
        quote[key] = NO_VALUE if price is None else price
    average = present_price(v[at["AveragePrice"]])
    quote["average"] = NO_VALUE if average is None else average / divisor
    quote["volume"] = _volume(v[at["Volume"]])
    quote["amount"] = _number(v[at["Turnover"]])
    quote["open_interest"] = _volume(v[at["OpenInterest"]])
    quote["pre_open_interest"] = _volume(v[at["PreOpenInterest"]])
    return quote


PATCH_CACHE_SIZE = 4096  # quote patches kept for other clients (all cleared when full)
_patches: dict[tuple[int, int, str], tuple[Any, Any, str]] = {}


def quote_patch(symbol: str, last: Any, tick: Any) -> str:
    """The JSON member ``"<symbol>":{patch}`` that brings a client which last got ``last`` (an
    EncodedTick, None for its first) to ``tick``: the changed fields, or for the first every field
    with the static ones; ``""`` when nothing changed.  Made once per (last, tick, symbol) for every
    client in the same state (IO loop only): the cache holds both ticks, so their ids stay theirs."""
    key = (id(last), id(tick), symbol)
    made = _patches.get(key)
    if made is not None:
        return made[2]
    full = tick.get("diff", quote_of)
    if last is None:
        patch = dict(_static(tick.instrument)[0])
        patch.update(full)
        patch["instrument_id"] = symbol
    else:
        before = last.get("diff", quote_of)
        patch = {name: value for name, value in full.items() if before.get(name) != value}
    text = f"{dumps(symbol)}:{dumps(patch)}" if patch else ""
    if len(_patches) >= PATCH_CACHE_SIZE:
        _patches.clear()
    _patches[key] = (last, tick, text)
    return text


def _trim(items: dict[str, Any] | None, keep: int) -> None:
    """Drop the oldest entries of ``items`` (insertion order) past ``keep``: what waits for a client
    that does not peek stays bounded."""
    if items is not None and len(items) > keep:
        for key in list(items)[:len(items) - keep]:
            del items[key]


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """RFC 7386 merge of ``patch`` into ``target`` (our own pending diff; no nulls are sent)."""
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


class _Chart:
    """One ``set_chart``: ticks (duration 0) or one-minute bars of one symbol, built from the feed."""

    def __init__(self, chart_id: str, symbol: str, instrument: str, duration: int, width: int) -> None:
        self.chart_id, self.symbol, self.instrument = chart_id, symbol, instrument
        self.duration, self.width = duration, width
        self.last_id = -1
        self.bar: dict[str, Any] | None = None
        self.bar_minute = ""
        self.bar_volume0 = 0
        self.bar_oi0 = 0

    def path(self) -> dict[str, Any]:
        return {"charts": {self.chart_id: {"left_id": max(0, self.last_id - self.width + 1) if self.last_id >= 0 else -1,
                                           "right_id": self.last_id, "more_data": False, "ready": True,
                                           "state": {"ins_list": self.symbol, "duration": self.duration}}}}

    def series(self, pending: dict[str, Any]) -> dict[str, Any] | None:
        """This chart's rows waiting in a pending diff."""
        if self.duration == 0:
            return pending.get("ticks", {}).get(self.symbol, {}).get("data")
        return pending.get("klines", {}).get(self.symbol, {}).get(str(self.duration), {}).get("data")

    def on_tick(self, quote: dict[str, Any]) -> dict[str, Any] | None:
        """The patch this tick makes to the chart's series (``None`` when it makes none)."""
        moment = quote["datetime"]
        if not moment:
            return None
        if self.duration == 0:
            self.last_id += 1
            row = {"datetime": _epoch_ns(moment)}
            for key in _TICK_KEYS:
                row[key] = quote[key]
            return {"ticks": {self.symbol: {"last_id": self.last_id, "data": {str(self.last_id): row}}}}
        price = quote["last_price"]
        if price == NO_VALUE:
            return None
        minute = moment[:16]
        volume, interest = quote["volume"], quote["open_interest"]
        if minute != self.bar_minute or self.bar is None:
            if self.bar is not None:
                self.bar_volume0 = self.bar_volume0 + self.bar["volume"]
            else:
                self.bar_volume0 = volume
            self.bar_minute = minute
            self.last_id += 1
            self.bar_oi0 = self.bar["close_oi"] if self.bar is not None else interest
            self.bar = {"datetime": _epoch_ns(minute + ":00.000000"), "open": price, "high": price, "low": price,
                        "close": price, "volume": 0, "open_oi": self.bar_oi0, "close_oi": interest}
        bar = self.bar
        bar["high"] = max(bar["high"], price)
        bar["low"] = min(bar["low"], price)
        bar["close"] = price
        bar["volume"] = max(0, volume - self.bar_volume0)
        bar["close_oi"] = interest
        return {"klines": {self.symbol: {str(self.duration): {"last_id": self.last_id,
                                                                "data": {str(self.last_id): dict(bar)}}}}}


def _epoch_ns(moment: str) -> int:
    """``2025-09-18 21:15:02.500000`` (China time) as epoch nanoseconds, as tqsdk's series carry."""
    from datetime import datetime

    from ..ctp import clock

    parsed = datetime.strptime(moment, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=clock.CHINA)
    seconds = int(parsed.timestamp())
    return seconds * 1_000_000_000 + parsed.microsecond * 1000


class DiffConnection(WebSocketClient):
    """One DIFF client: its subscriptions, its pending merged diff, its charts."""

    protocol = "diff"

    def __init__(self, server: "Server", request: web.Request, ws: web.WebSocketResponse,
                 name: str | None, source: str | None) -> None:
        super().__init__(server, request, ws, name, source)
        self.symbols: dict[str, str] = {}  # InstrumentID -> the client's symbol (quotes and charts)
        self.quoted: dict[str, str] = {}  # what subscribe_quote asked
        self.pending_quotes: dict[str, Any] = {}  # symbol -> the latest EncodedTick not yet sent
        self.pending: dict[str, Any] = {"mdhis_more_data": False}  # other patches, merged
        self.sent: dict[str, Any] = {}  # symbol -> the EncodedTick last sent
        self.charts: dict[str, _Chart] = {}
        self.peeking = False
        self.notices = 0
        self._wake = asyncio.Event()

    # -- the feed's side (Subscriber)
    def deliver_many(self, ticks: list[Any]) -> None:
        if self.charts:
            for tick in ticks:
                self.deliver(tick)
            return
        symbols = self.symbols
        pending = self.pending_quotes
        conflated = 0
        for tick in ticks:
            symbol = symbols.get(tick.instrument)
            if symbol is None:
                continue
            if symbol in pending:
                conflated += 1
            pending[symbol] = tick
        if conflated:
            self.info.conflated += conflated
            self.server.metrics.conflated += conflated
        if self.peeking:
            self._wake.set()

    def deliver(self, tick: Any, charts: bool = True) -> None:
        symbol = self.symbols.get(tick.instrument)
        if symbol is None:
            return
        if symbol in self.pending_quotes:
            self.info.conflated += 1
            self.server.metrics.conflated += 1
        self.pending_quotes[symbol] = tick
        if charts and self.charts:
            quote = tick.get("diff", quote_of)
            for chart in self.charts.values():
                if chart.instrument == tick.instrument:
                    patch = chart.on_tick(quote)
                    if patch is not None:
                        _merge(self.pending, patch)
                        _merge(self.pending, chart.path())
                        _trim(chart.series(self.pending), chart.width)
        if self.peeking:
            self._wake.set()

    def source_down(self, reason: int) -> None:
        self.notify("WARNING", reason, f"source {self.feed.name} went down (reason {reason:#x}); reconnecting")

    # -- queueing
    def notify(self, level: str, code: int, content: str) -> None:
        self.notices += 1
        _merge(self.pending, {"notify": {str(self.notices): {"type": "MESSAGE", "level": level, "code": code,
                                                              "content": content}}})
        _trim(self.pending["notify"], MAX_PENDING_NOTICES)
        if self.peeking:
            self._wake.set()

    def _packet(self) -> str | None:
        """The next ``rtn_data`` as JSON text (None when there is nothing to send): the quotes' patches
        (each shared with the clients in the same state, :func:`quote_patch`), then the other patches."""
        data: list[str] = []
        quotes: list[str] = []
        sent = self.sent
        for symbol, tick in self.pending_quotes.items():
            member = quote_patch(symbol, sent.get(symbol), tick)
            sent[symbol] = tick
            if member:
                quotes.append(member)
        delivered = len(self.pending_quotes)
        self.pending_quotes = {}
        if quotes:
            data.append('{"quotes":{' + ",".join(quotes) + "}}")
        if self.pending:
            data.append(dumps(self.pending))
            self.pending = {}
        if delivered:
            self.info.delivered += delivered
            self.server.metrics.delivered += delivered
        return '{"aid":"rtn_data","data":[' + ",".join(data) + "]}" if data else None

    async def _writer(self) -> None:
        while not self.ws.closed and self.closing is None:
            if not (self.peeking and (self.pending_quotes or self.pending)):
                self._wake.clear()
                await self._wake.wait()
                continue
            packet = self._packet()
            if packet is None:
                continue
            self.peeking = False
            try:
                await asyncio.wait_for(self.ws.send_str(packet), self.limits.write_deadline)
            except asyncio.TimeoutError:
                reason = f"no write progress for {self.limits.write_deadline:g} s (limits.write_deadline)"
                log.warning("diff client %s (%s) cut off: %s", self.name, self.info.peer, reason)
                self.server.metrics.cut_off += 1
                self.close(1008, reason)
                return
            except (ConnectionError, OSError):
                return
            self.server.metrics.count_messages(1)

    # -- closing
    def close(self, code: int, reason: str, notice: str | None = None) -> None:
        """Close with ``code`` and ``reason``, telling ``notice`` first as an ERROR notify."""
        final = None if notice is None else dumps({"aid": "rtn_data", "data": [{"notify": {"close": {
            "type": "MESSAGE", "level": "ERROR", "code": code, "content": notice}}}]})
        super().close(code, reason, final)

    def _stop_writer(self) -> None:
        self._wake.set()  # the writer sees ``closing`` and ends

    # -- reading
    async def run(self) -> None:
        self.feed.subscribe(self, [])  # told when the source goes down, subscribed or not
        writer = asyncio.ensure_future(self._writer())
        try:
            await self.read()
        finally:
            writer.cancel()
            self.feed.drop(self)
            await self._closed_by_us()

    def _malformed(self, reason: str) -> None:
        self.server.metrics.dropped += 1
        log.info("diff client %s (%s) closed: %s", self.name, self.info.peer, reason)
        self.close(1008, f"malformed packet: {reason}", reason)

    def _undecodable(self, detail: str) -> None:
        self._malformed(f"not UTF-8 ({detail})")

    async def _on_text(self, text: str) -> None:
        try:
            packet = json.loads(text)
        except ValueError as exc:
            self._malformed(f"not JSON ({exc})")
            return
        if not isinstance(packet, dict) or not isinstance(packet.get("aid"), str):
            self._malformed("a packet must be a JSON object with a string aid")
            return
        aid = packet["aid"]
        if self._first:
            self._first = False
            if not self.authenticated:
                token = packet.get("token") if aid == "auth" else None
                try:
                    self.accept_token(token if isinstance(token, str) else None)
                except AuthError as exc:
                    reason = (f"{exc}" if token is not None
                              else "a token is required: ?token= in the URL or a first packet {\"aid\":\"auth\",\"token\":...}")
                    self.close(1008, reason, reason)
                    return
                if aid == "auth":
                    return
        if aid == "peek_message":
            self.peeking = True
            self._wake.set()
            return
        verdict = self.check_rate()
        if verdict == "close":
            reason = f"more than {self.limits.control_rate:g} commands per second (limits.control_rate)"
            self.close(1008, reason, reason)
            return
        if verdict == "refuse":
            self.notify("ERROR", RATE_LIMIT_CODE, f"{aid}: too many commands per second; ignored")
            return
        try:
            if aid == "subscribe_quote":
                self._subscribe_quote(packet)
            elif aid == "set_chart":
                self._set_chart(packet)
            elif aid == "ins_query":
                self._ins_query(packet)
            elif aid == "auth":
                pass
            else:
                self.notify("WARNING", UNSUPPORTED_CODE, f"aid {aid!r} is not supported by this server (it answers "
                                                         "subscribe_quote, set_chart, ins_query, peek_message)")
        except _BadPacket as exc:
            self._malformed(str(exc))

    def _ids(self, packet: dict[str, Any]) -> tuple[str, list[str]]:
        text = packet.get("ins_list", "")
        if text is None:
            text = ""
        if isinstance(text, list) and all(isinstance(s, str) for s in text):
            text = ",".join(text)
        if not isinstance(text, str):
            raise _BadPacket(f"ins_list={text!r}: must be a comma-separated string of ids")
        return text, [s.strip() for s in text.split(",") if s.strip()]

    def _subscribe_quote(self, packet: dict[str, Any]) -> None:
        text, wanted = self._ids(packet)
        chosen: dict[str, str] = {}
        bad: list[str] = []
        for symbol in dict.fromkeys(wanted):
            try:
                instrument = split_symbol(symbol)
            except ValueError as exc:
                bad.append(str(exc))
                continue
            chosen.setdefault(instrument, symbol)
        if bad:
            more = f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
            self.notify("WARNING", NOT_FOUND_CODE, "; ".join(bad[:5]) + more)
        cap = self.limits.max_subscriptions
        if len(chosen) > cap:
            over = list(chosen)[cap:]
            self.notify("ERROR", SUBSCRIPTION_LIMIT_CODE,
                        f"{len(chosen)} instruments asked, more than {cap} per client (limits.max_subscriptions): "
                        f"{', '.join(chosen[i] for i in over[:5])}{' ...' if len(over) > 5 else ''} not subscribed")
            chosen = dict(list(chosen.items())[:cap])
        self.quoted = chosen
        self._resync()
        _merge(self.pending, {"ins_list": text, "mdhis_more_data": False})
        if self.peeking:
            self._wake.set()

    def _resync(self) -> None:
        """Subscribe the feed to what the quotes and the charts need, no more."""
        wanted = {chart.instrument: chart.symbol for chart in self.charts.values()}
        wanted.update(self.quoted)
        old = self.symbols
        for instrument, symbol in old.items():
            if wanted.get(instrument) != symbol:
                self.pending_quotes.pop(symbol, None)
                self.sent.pop(symbol, None)
        self.symbols = wanted
        gone = [i for i in old if i not in wanted]
        if gone:
            self.feed.unsubscribe(self, gone)
        new = [i for i in wanted if i not in old]
        if new:
            self.feed.subscribe(self, new)
        for instrument in wanted:  # a late subscriber gets the snapshot at once
            if instrument in old and old[instrument] == wanted[instrument]:
                continue
            latest = self.feed.latest(instrument)
            if latest is not None:
                self.deliver(latest, charts=False)

    def _ins_query(self, packet: dict[str, Any]) -> None:
        """tqsdk's instrument query (``_stock=True``): the ids of ``variables.instrument_id`` or of the
        GraphQL text's ``multi_symbol_info(instrument_id: [...])``, answered under
        ``symbols.<query_id>.result.multi_symbol_info`` with the rows of ``/symbols.json``."""
        query_id = packet.get("query_id")
        if not isinstance(query_id, str) or not query_id:
            raise _BadPacket(f"query_id={query_id!r}: must be a non-empty string")
        query = packet.get("query") or ""
        if not isinstance(query, str):
            raise _BadPacket(f"query={query!r}: must be a string")
        if not query:
            return  # tqsdk's "done with this query"
        variables = packet.get("variables")
        ids = variables.get("instrument_id") if isinstance(variables, dict) else None
        if ids is None:
            found = _QUERY_IDS.search(query)
            ids = _QUOTED.findall(found.group(1)) if found else None
        answer: dict[str, Any] = {"query": query, "variables": variables if isinstance(variables, dict) else {}}
        cap = self.limits.max_subscriptions
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            answer["error"] = ("this server answers only multi_symbol_info(instrument_id: [...]) queries; "
                               "or use _stock=False with its /symbols.json")
        elif len(ids) > cap:
            answer["error"] = (f"{len(ids)} instruments in one query, more than {cap} (limits.max_subscriptions); "
                               "ask in smaller queries")
        else:
            listed = {info.instrument_id: info for info in self.feed.instruments()}
            rows = []
            for symbol in ids:
                instrument = symbol.partition(".")[2]
                row = symbol_row(listed.get(instrument), instrument) if listed else symbol_row(None, instrument)
                if row is not None and row["instrument_id"] == symbol:
                    rows.append(row)
            answer["result"] = {"multi_symbol_info": rows}
        _merge(self.pending, {"symbols": {query_id: answer}})
        if self.peeking:
            self._wake.set()

    def _set_chart(self, packet: dict[str, Any]) -> None:
        chart_id = packet.get("chart_id")
        if not isinstance(chart_id, str) or not chart_id:
            raise _BadPacket(f"chart_id={chart_id!r}: must be a non-empty string")
        _text, symbols = self._ids(packet)
        old = self.charts.pop(chart_id, None)
        if old is not None:
            _merge(self.pending, {"charts": {chart_id: {"ready": False}}})
        if not symbols:
            self._resync()
            return
        duration = packet.get("duration", 0)
        width = packet.get("view_width", 500)
        if type(width) is not int or width < 1:
            raise _BadPacket(f"view_width={width!r}: must be a positive integer")
        if type(duration) is not int or duration not in CHART_DURATIONS:
            self.notify("ERROR", UNSUPPORTED_CODE, f"set_chart {chart_id}: duration={duration!r} is not served; this server "
                                     f"builds ticks (0) and one-minute bars ({MINUTE_NS}) from the live feed")
            self._resync()
            return
        symbol = symbols[0]
        if len(symbols) > 1:
            self.notify("WARNING", UNSUPPORTED_CODE, f"set_chart {chart_id}: one instrument per chart here; charting {symbol} only")
        try:
            instrument = split_symbol(symbol)
        except ValueError as exc:
            self.notify("ERROR", NOT_FOUND_CODE, f"set_chart {chart_id}: {exc}")
            self._resync()
            return
        chart = _Chart(chart_id, symbol, instrument, duration, min(width, MAX_CHART_ITEMS))
        self.charts[chart_id] = chart
        self._resync()
        _merge(self.pending, chart.path())
        if self.peeking:
            self._wake.set()


class _BadPacket(Exception):
    pass


async def serve(server: "Server", request: web.Request) -> web.StreamResponse:
    """The handler of ``/diff``."""
    return await serve_socket(server, request, DiffConnection, bearer=False, compress=True)
