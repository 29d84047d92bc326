"""Polled HTTP quote feeds: the one place for batching, change detection, fallback and faults.

``sina://`` and ``tencent://`` differ only in how they ask and how they read the answer; that
difference is a :class:`QuoteSource`.  :class:`PollingAdapter` does the rest, once:

* polls every ``interval`` seconds, ``batch`` symbols per request, the batches concurrently;
* pushes a quote only when it changed since the last push (CTP pushes changes), the first answer
  after a subscription always (the current snapshot, even when the market is closed), and never
  a quote older than the last one pushed (a stale cache node, or the fallback lagging);
* a whole-batch failure reply caused by one bad symbol is split until the symbol is found; it is
  dropped with one warning and the others go on;
* an unknown symbol (empty answer) is accepted like CTP accepts it, warned once (one line per
  poll round for all of them, through :func:`ctpshim.messages.listing`), never ticks;
* a line that cannot be read, or holds a value its member cannot (``inf``, ``nan``, a volume
  beyond int32, a negative price: :func:`ctpshim.ctp.market_data.check_values`, called by every
  source's parser), is skipped with a warning that shows it (once a minute per symbol); the
  other symbols go on;
* HTTP 403, other non-200 answers, a 200 answer without a single statement (an HTML page,
  garbage, an empty body: described as such), an answer over ``MAX_BODY_BYTES``, redirect loops,
  timeouts and refused or dropped connections raise :class:`UpstreamDisconnected` with a CTP
  reason code and the cause in words, so the session reports ``OnFrontDisconnected``, backs off,
  reconnects and resubscribes;
* with a fallback source (``tencent://`` has Sina's stock quotes): a batch the primary cannot
  answer is asked of the fallback, and instruments the primary does not know are quoted from the
  fallback; only when both fail does the session disconnect.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import re
from datetime import datetime
from typing import Any, AsyncIterator, ClassVar, Iterable, NamedTuple
from urllib.parse import urlsplit

from ..ctp import clock
from ..errors import (
    REASON_BAD_MESSAGE,
    REASON_HEARTBEAT_TIMEOUT,
    REASON_READ_FAILED,
    UpstreamDisconnected,
    UpstreamProtocolError,
    UpstreamUnavailable,
)
from ..runtime.io_loop import wait_at_most
from ..ctp.market_data import DATE_CONVENTIONS, DBL_MAX, Stamper, make_tick
from ..messages import listing
from ..runtime.reconnect import RETRY_PRIMARY_FEED
from ..fronts.url import FrontURL, Setting, choice, integer, number
from .base import Adapter, Capabilities, require_extra

log = logging.getLogger("ctpshim.polling")

USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) ctpshim"
GARBAGE_WARNING_EVERY_S = 60.0
# Far above any real answer (800 symbols of about 500 bytes), so a proxy streaming something else
# cannot fill the memory or hold the IO thread decoding it.
MAX_BODY_BYTES = 8 * 2**20


class FeedFormatError(ValueError):
    """A statement that cannot be read as any layout the source knows."""


class Quote(NamedTuple):
    """One statement read: the 48 tick values, stamped, and the quote's own China time (what
    freshness is judged by: the stamped dates depend on the ``dates`` convention)."""

    values: list[Any]
    moment: datetime


class ProbeTarget(NamedTuple):
    symbol: str
    instrument_id: str  # what the symbol's quote is parsed as
    market_open: bool


class QuoteSource:
    """One HTTP quote service: how to ask for symbols and how to read the answer.

    Subclasses set ``name``, ``title``, ``headers`` and ``forbidden_hint`` and implement the
    methods below; none of them does I/O.  ``stamper`` stamps the ticks :meth:`parse` makes.
    """

    name: ClassVar[str] = ""  # as the log prefixes it: "sina"
    title: ClassVar[str] = ""  # as prose names it: "Sina"
    headers: ClassVar[dict[str, str]] = {}
    forbidden_hint: ClassVar[str] = ""  # why a 403 happens, in words

    def __init__(self, base_url: str, stamper: Stamper | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.stamper = stamper if stamper is not None else Stamper()

    def symbol_of(self, instrument_id: str) -> str | None:
        """The source's symbol for a CTP instrument ID; None when the source cannot quote it."""
        raise NotImplementedError

    def url(self, symbols: list[str]) -> str:
        raise NotImplementedError

    def statements(self, text: str) -> list[tuple[str, str]]:
        """(symbol, payload) for every statement of a decoded reply, in order."""
        raise NotImplementedError

    def rejects_batch(self, statements: list[tuple[str, str]]) -> bool:
        """Whether the reply is a whole-batch failure (one bad symbol spoils the request)."""
        return False

    def knows_none(self, text: str) -> bool:
        """Whether a reply without statements is the source's way of saying it knows none of the
        symbols (otherwise such a reply is not an answer from this source at all)."""
        return False

    def parse(self, payload: str, instrument_id: str) -> Quote:
        """The quote of one statement, stamped by :attr:`stamper`; raises :class:`FeedFormatError`."""
        raise NotImplementedError

    def instrument(self, payload: str, instrument_id: str) -> Any:
        """What ReqQryInstrument answers for an instrument this source quoted, or None."""
        raise NotImplementedError

    def probe_targets(self, now: datetime) -> list[ProbeTarget]:
        """A few liquid symbols for ``ctpshim ping``."""
        raise NotImplementedError


_HOST_LABEL = re.compile(r"^(?!-)[\w-]{1,63}(?<!-)$")
BASE_URL_VALID = "expected http:// or https://, a host name or IP address, an optional port from 1 to 65535 " \
                 "and an optional path, e.g. https://hq.sinajs.cn or http://127.0.0.1:8080/sina"


def http_base_url(value: str) -> str:
    """A ``base_url`` / ``fallback_url`` setting: ``http(s)://host[:port][/path]``, checked at
    ``RegisterFront`` so a bad one is never first met on the IO thread."""
    parts = urlsplit(value.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL: {BASE_URL_VALID}")
    host = parts.hostname or ""
    if not host:
        raise ValueError(f"{value!r} has no host: {BASE_URL_VALID}")
    if not _valid_host(host):
        raise ValueError(f"host {host!r} is not a host name or IP address: {BASE_URL_VALID}")
    port_text = parts.netloc.rpartition("@")[2].rpartition("]")[2].partition(":")[2]
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port_text and (port is None or not 1 <= port <= 65535):
        raise ValueError(f"port {port_text!r} is not valid: {BASE_URL_VALID}")
    if parts.query or parts.fragment:
        raise ValueError(f"{value!r} has a query or fragment (the symbols are appended to the path): "
                         f"{BASE_URL_VALID}")
    return value.strip()


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(_HOST_LABEL.match(label) for label in labels)


class PollingAdapter(Adapter):
    """Quotes polled from a :class:`QuoteSource` (see the module docstring).

    Subclasses set ``scheme``, ``source_class`` and, for a fallback, override :meth:`make_fallback`.
    """

    source_class: ClassVar[type[QuoteSource]] = QuoteSource
    settings: ClassVar[tuple[Setting, ...]] = ()
    capabilities = Capabilities(depth_levels=5, deterministic=False, has_instruments=True)

    @staticmethod
    def polling_settings(base_url: str, batch: int) -> tuple[Setting, ...]:
        """The settings every polled feed has (``interval``, ``batch``, ``timeout``, ``base_url``,
        ``dates``)."""
        return (
            Setting("interval", number(0.05, 3600, low_included=True), 0.5, "seconds between polls"),
            Setting("batch", integer(1, 800), batch, "symbols per request"),
            Setting("timeout", number(0, 120), 5.0, "seconds an HTTP request may take"),
            Setting("base_url", http_base_url, base_url, "where to poll: the source, a mirror or a proxy"),
            Setting("dates", choice(*DATE_CONVENTIONS), "correct",
                    "correct (SimNow-style) or exchange (DCE/CZCE night-session quirks)"),
        )

    @classmethod
    def check(cls, url: FrontURL, settings: dict[str, Any]) -> None:
        require_extra("aiohttp", "feeds", f"{cls.scheme}:// polls over HTTP with aiohttp")

    def __init__(self, url: FrontURL, settings: dict[str, Any]) -> None:
        super().__init__(url, settings)
        self.source = self.source_class(settings["base_url"], Stamper(settings["dates"]))
        self.fallback: QuoteSource | None = self.make_fallback(settings)
        self._session: Any = None
        self._wanted: dict[str, None] = {}  # subscribed instrument IDs, in order
        self._fresh: set[str] = set()  # subscribed since the last poll: push their snapshot anyway
        self._last: dict[str, tuple[tuple[Any, ...], datetime]] = {}  # instrument ID -> the last pushed quote
        self._route: dict[str, QuoteSource] = {}  # instrument ID -> the fallback, when the primary lacks it
        self._bad: set[tuple[str, str]] = set()  # (source, symbol) that spoil whole batches
        # Found during a poll round, reported after it in one line each: (source, instrument ID) that
        # the source has no data for, and (source, "ID (symbol)") sent to the fallback instead.
        self._new_unknown: list[tuple[QuoteSource, str]] = []
        self._new_routed: list[tuple[QuoteSource, str]] = []
        self._garbage_warned: dict[str, float] = {}
        self._seen: dict[str, Any] = {}
        self._primary_down: str | None = None  # why the primary failed, while the fallback serves
        self._retry_primary_at = 0.0  # loop time; until then the fallback serves without asking
        self._wake = asyncio.Event()

    def make_fallback(self, settings: dict[str, Any]) -> QuoteSource | None:
        return None

    # -- the contract -----------------------------------------------------------------------------

    async def connect(self) -> None:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=self.config["timeout"])
        self._session = aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": USER_AGENT})
        try:
            await self._reach(self.source)
        except UpstreamDisconnected as exc:
            if self.fallback is None:
                raise UpstreamUnavailable(str(exc)) from None
            try:
                await self._reach(self.fallback)
            except UpstreamDisconnected as second:
                raise UpstreamUnavailable(f"{exc}; {second}") from None
            log.warning("%s (quoting from %s meanwhile)", exc, self.fallback.title)
            self._primary_down = str(exc)
            self._retry_primary_at = asyncio.get_running_loop().time() + RETRY_PRIMARY_FEED

    async def _reach(self, source: QuoteSource) -> None:
        """One request for one liquid symbol: is the source reachable, and answering?"""
        await self._get(source, [source.probe_targets(clock.now())[0].symbol])

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def instruments(self) -> list[Any]:
        return list(self._seen.values())

    async def subscribe(self, ids: Iterable[str]) -> None:
        unknown = []
        for instrument_id in ids:
            if self._target(instrument_id) is None:
                unknown.append(instrument_id)
                continue
            self._wanted[instrument_id] = None
            self._fresh.add(instrument_id)
        self.warn_unknown(unknown, f"not an instrument {self._names()} can quote")
        self._wake.set()

    async def unsubscribe(self, ids: Iterable[str]) -> None:
        for instrument_id in ids:
            self._wanted.pop(instrument_id, None)
            self._last.pop(instrument_id, None)

    async def ticks(self) -> AsyncIterator[list[Any]]:
        interval = self.config["interval"]
        loop = asyncio.get_running_loop()
        while True:
            if not self._wanted:
                self._wake.clear()
                await self._wake.wait()
                continue
            started = loop.time()
            by_source: dict[int, tuple[QuoteSource, list[tuple[str, str]]]] = {}
            for instrument_id in self._wanted:
                target = self._target(instrument_id)
                if target is None or (target[0].name, target[1]) in self._bad:
                    continue
                source, symbol = target
                by_source.setdefault(id(source), (source, []))[1].append((symbol, instrument_id))
            size = self.config["batch"]
            # The batches are requested together: one after another, 20 of them at the source's
            # latency would take longer than the interval.
            jobs = [self._poll_batch(source, pairs[o:o + size])
                    for source, pairs in by_source.values() for o in range(0, len(pairs), size)]
            try:
                answers = await asyncio.gather(*jobs)
            finally:
                self._report_unknown()
            batch = [tick for answer in answers for tick in answer]
            if batch:
                yield batch
            self._wake.clear()
            await wait_at_most(self._wake, max(0.0, interval - (loop.time() - started)))

    async def probe(self) -> dict[str, Any]:
        """One request for a few liquid symbols: does it parse, how old is the newest quote."""
        now = clock.now()
        targets = self.source.probe_targets(now)
        statements = await self._get(self.source, [t.symbol for t in targets])
        if self.source.rejects_batch(statements):
            raise UpstreamProtocolError(f"{self.source.name}: {self.source.base_url} rejected the request")
        answers = dict(statements)
        moments, unreadable = [], []
        for target in targets:
            payload = answers.get(target.symbol, "")
            if not payload:
                continue
            try:
                quote = self.source.parse(payload, target.instrument_id)
            except FeedFormatError as exc:
                unreadable.append(f"{target.symbol}: {exc}")
                continue
            moments.append(quote.moment)
        if not moments:
            why = "; ".join(unreadable) if unreadable else "every quote was empty"
            raise UpstreamProtocolError(
                f"{self.source.name}: {self.source.base_url} answered, but no quote could be read ({why})")
        newest = max(moments)
        return {"quotes": len(moments), "unreadable": len(unreadable), "newest_quote": newest.isoformat(" "),
                "age_s": round((now - newest).total_seconds(), 1),
                "market_open": any(t.market_open for t in targets)}

    # -- polling ----------------------------------------------------------------------------------

    def _names(self) -> str:
        return self.source.title if self.fallback is None else f"{self.source.title} or {self.fallback.title}"

    def _target(self, instrument_id: str) -> tuple[QuoteSource, str] | None:
        """(source, symbol) to ask for an instrument: the primary unless it lacks it; None if no source can."""
        routed = self._route.get(instrument_id)
        for source in (routed,) if routed is not None else (self.source, self.fallback):
            symbol = source.symbol_of(instrument_id) if source is not None else None
            if symbol is not None:
                return source, symbol
        return None

    async def _poll_batch(self, source: QuoteSource, pairs: list[tuple[str, str]]) -> list[Any]:
        """Ticks for one batch; the primary's failures go to the fallback when there is one."""
        fallback = self.fallback
        if source is not self.source or fallback is None:
            return await self._poll(source, pairs)
        now = asyncio.get_running_loop().time()
        failure: UpstreamDisconnected | None = None
        if self._primary_down is None or now >= self._retry_primary_at:
            try:
                ticks = await self._poll(source, pairs)
            except UpstreamDisconnected as exc:
                failure = exc
            else:
                if self._primary_down is not None:
                    self._primary_down = None
                    log.warning("%s: answering again; quotes come from %s again", source.name, source.title)
                return ticks
        fallback_pairs = [(s, i) for s, i in ((fallback.symbol_of(i), i) for _, i in pairs) if s is not None]
        try:
            ticks = await self._poll(fallback, fallback_pairs)
        except UpstreamDisconnected as second:
            first = str(failure) if failure is not None else self._primary_down
            reason = failure.reason if failure is not None else second.reason
            raise UpstreamDisconnected(f"{first}; {second}", reason) from None
        if failure is not None:
            if self._primary_down is None:
                log.warning("%s (quoting from %s meanwhile)", failure, fallback.title)
            self._primary_down = str(failure)
            self._retry_primary_at = now + RETRY_PRIMARY_FEED
        return ticks

    async def _poll(self, source: QuoteSource, pairs: list[tuple[str, str]]) -> list[Any]:
        """Ticks for ``pairs`` of (symbol, instrument ID); a whole-batch failure is split until
        the bad symbol is found."""
        if not pairs:
            return []
        statements = await self._get(source, [symbol for symbol, _ in pairs])
        if source.rejects_batch(statements):
            if len(pairs) == 1:
                self._bad.add((source.name, pairs[0][0]))
                log.warning("%s: %s makes %s reject the whole request; dropped, the others go on",
                            source.name, pairs[0][1], source.title)
                return []
            half = len(pairs) // 2
            return await self._poll(source, pairs[:half]) + await self._poll(source, pairs[half:])
        answers = dict(statements)
        ticks = []
        for symbol, instrument_id in pairs:
            if instrument_id not in self._wanted:
                continue
            payload = answers.get(symbol, "")
            if not payload:
                self._unknown(source, symbol, instrument_id)
                continue
            try:
                quote = source.parse(payload, instrument_id)
            except FeedFormatError as exc:
                now = asyncio.get_running_loop().time()
                if now - self._garbage_warned.get(symbol, -math.inf) >= GARBAGE_WARNING_EVERY_S:
                    self._garbage_warned[symbol] = now
                    shown = payload if len(payload) <= 120 else payload[:117] + "..."
                    log.warning("%s: skipped an unreadable quote for %s (%s): %r", source.name, instrument_id, exc, shown)
                continue
            tick = self._changed(instrument_id, quote)
            if tick is not None:
                if instrument_id not in self._seen:
                    info = source.instrument(payload, instrument_id)
                    if info is not None:
                        self._seen[instrument_id] = info
                ticks.append(tick)
        return ticks

    def _unknown(self, source: QuoteSource, symbol: str, instrument_id: str) -> None:
        if source is self.source and self.fallback is not None and instrument_id not in self._route:
            if self.fallback.symbol_of(instrument_id) is not None:
                self._route[instrument_id] = self.fallback
                self._fresh.add(instrument_id)
                self._new_routed.append((source, f"{instrument_id} ({symbol})"))
                return
        self._new_unknown.append((source, instrument_id))

    def _report_unknown(self) -> None:
        """One warning per source for the instruments a poll round found unknown (not one per ID),
        each ID once per front (:meth:`warn_unknown`)."""
        for source in dict.fromkeys(source for source, _ in self._new_routed):
            shown = [text for s, text in self._new_routed if s is source]
            log.warning("%s: no quote for %s; asking %s for %s", source.name, listing(shown),
                        self.fallback.title if self.fallback is not None else "", "it" if len(shown) == 1 else "them")
        for source in dict.fromkeys(source for source, _ in self._new_unknown):
            self.warn_unknown([i for s, i in self._new_unknown if s is source],
                              f"{source.title} answers an empty quote")
        self._new_routed.clear()
        self._new_unknown.clear()

    def _changed(self, instrument_id: str, quote: Quote) -> Any:
        """The tick if the quote changed since the last push (or was just subscribed), else None."""
        identity = tuple(quote.values)
        fresh = instrument_id in self._fresh
        self._fresh.discard(instrument_id)
        last = self._last.get(instrument_id)
        if not fresh and last is not None:
            if last[0] == identity:
                return None  # a stale quote (closed market) is not pushed again as if new
            if quote.moment < last[1]:
                return None  # older than what the program has already seen
        self._last[instrument_id] = (identity, quote.moment)
        return make_tick(quote.values)

    async def _get(self, source: QuoteSource, symbols: list[str]) -> list[tuple[str, str]]:
        import aiohttp

        try:
            async with self._session.get(source.url(symbols), headers=source.headers) as response:
                status = response.status
                received = bytearray()
                async for chunk in response.content.iter_chunked(65536):
                    received += chunk
                    if len(received) > MAX_BODY_BYTES:
                        raise UpstreamDisconnected(
                            f"{source.name}: {source.base_url} sent more than {MAX_BODY_BYTES // 2**20} MB for "
                            f"{len(symbols)} symbols (a {source.title} answer is a few hundred bytes a symbol); "
                            "the answer was dropped", REASON_BAD_MESSAGE)
                body = bytes(received)
        except asyncio.TimeoutError:
            raise UpstreamDisconnected(
                f"{source.name}: {source.base_url} did not answer within {self.config['timeout']:g} s",
                REASON_HEARTBEAT_TIMEOUT) from None
        except aiohttp.ClientError as exc:
            raise UpstreamDisconnected(f"{source.name}: {source.base_url}: {client_error(exc)}",
                                       REASON_READ_FAILED) from None
        if status == 403:
            raise UpstreamDisconnected(f"{source.name}: HTTP 403 from {source.base_url}: {source.forbidden_hint}",
                                       REASON_READ_FAILED)
        if status != 200:
            raise UpstreamDisconnected(f"{source.name}: HTTP {status} from {source.base_url}", REASON_READ_FAILED)
        text = body.decode("gb18030", "replace")
        statements = source.statements(text)
        if not statements and not source.knows_none(text):
            # A captive portal, a proxy's error page, a wrong base_url: no symbol is "unknown" here.
            raise UpstreamDisconnected(
                f"{source.name}: {source.base_url} answered HTTP 200 with {what_body(body, text, source.title)} "
                "(a proxy's or captive portal's page, or a base_url that is not the source?)", REASON_BAD_MESSAGE)
        return statements


# -- helpers the sources share ----------------------------------------------------------------------

def what_body(body: bytes, text: str, title: str) -> str:
    """What a 200 answer without a single quote statement holds, in words."""
    stripped = text.strip()
    if not stripped:
        return "an empty body" if not body else f"a body of {len(body):,} blank bytes"
    head = stripped[:4096].lower()
    if head.startswith(("<!doctype html", "<html")) or "<html" in head or "<body" in head or "<head" in head:
        found = re.search(r"<title[^>]*>(.*?)</title>", stripped[:16384], re.IGNORECASE | re.DOTALL)
        page_title = " ".join(found.group(1).split())[:80] if found else ""
        return f"an HTML page ({len(body):,} bytes{f', titled {page_title!r}' if page_title else ''}), " \
               f"not {title} quote lines"
    start = stripped[:60] + ("..." if len(stripped) > 60 else "")
    return f"{len(body):,} bytes that are not {title} quote lines, starting {start!r}"


def client_error(exc: Exception) -> str:
    """An aiohttp failure in words (its own text says ``0, message=''`` for a redirect loop)."""
    import aiohttp

    if isinstance(exc, aiohttp.TooManyRedirects):
        hops = [str(response.url) for response in exc.history]
        last = exc.history[-1] if exc.history else None
        location = last.headers.get("Location", "") if last is not None else ""
        target = str(last.url.join(type(last.url)(location))) if last is not None and location else "?"
        if target in hops or len(set(hops)) < len(hops):
            cycle = list(dict.fromkeys(hops[1:] + [target]))[:5]
            return f"a redirect loop (too many redirects): it is sent round {' -> '.join(cycle)} -> {cycle[0]} ..."
        shown = hops[:2] + ["..."] + [target] if len(hops) > 2 else hops + [target]
        return f"too many redirects ({len(hops)}): {' -> '.join(shown)}"
    if isinstance(exc, aiohttp.ClientResponseError):
        where = f" at {exc.request_info.real_url}" if exc.request_info is not None else ""
        return f"HTTP {exc.status}{f' {exc.message}' if exc.message else ''}{where}"
    return str(exc) or type(exc).__name__


def price_at(fields: list[str], index: int) -> float:
    """A price; 0, empty, ``--`` or a missing field is absent (DBL_MAX).  ``inf``, ``nan`` and
    negative prices are kept for :func:`ctpshim.ctp.market_data.check_values` to refuse."""
    if index >= len(fields):
        return DBL_MAX
    text = fields[index].strip()
    if not text or text == "--":
        return DBL_MAX
    value = float(text)
    return DBL_MAX if value == 0 else value


def number_at(fields: list[str], index: int) -> float:
    """A volume or an amount; empty, ``--`` or a missing field is 0."""
    if index >= len(fields):
        return 0.0
    text = fields[index].strip()
    return float(text) if text and text != "--" else 0.0


__all__ = ["PollingAdapter", "QuoteSource", "Quote", "ProbeTarget", "FeedFormatError", "price_at", "number_at",
           "http_base_url"]
