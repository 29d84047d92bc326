"""Publishing every source's ticks to Redis Streams (``ctpshim serve --redis URL``).

For each source of the server, a subscriber of its :class:`~ctpshim.server.fanout.SourceFeed`
takes the instruments of ``[redis] instruments`` or, by default, every instrument the source
lists, plus those live ``redis://`` readers want (reference-counted, below), and each tick goes to
its own stream::

    XADD <namespace>:<source>:md:<InstrumentID> MAXLEN ~ <maxlen> * b <584-byte CTP struct> v <LAYOUT_ID>

The key names and the other keys (the ``instruments`` index set, the ``info`` hash, ``default``)
are those of :mod:`ctpshim.adapters.redis`, which reads them; its docstring is the layout's
description.  ``b`` is :func:`ctpshim.wire.structs.pack_tick`'s bytes (what the binary protocol
sends), ``v`` is :data:`ctpshim.wire.structs.LAYOUT_ID`.

Writes never hold up the IO loop or the server's other clients: ticks wait in a dict keyed by
(source, instrument), written by one task once per loop turn: the ``XADD``s of the batch in one
``MULTI``/``EXEC``, sent in one write over a small RESP link (:class:`ctpshim.adapters.redis.RespLink`), so readers blocked
in ``XREAD`` wake once per batch.  Each entry is its own: a publisher restarted, or a Redis
restarted with its data, continues the streams with larger ids.  While a
write is in flight (a slow Redis) newer ticks replace the waiting tick of the same instrument
(counted in :attr:`RedisPublisher.conflated`).  When Redis cannot be reached, that is logged once;
the latest tick of each instrument is kept, the write is tried again after
:data:`ctpshim.runtime.reconnect.RETRY_AFTER_DROP` and then every ``RETRY_UNREACHABLE`` seconds,
and publishing goes on (index and info written again) once Redis answers.

Interest across machines: each reader adds its own id to ``<ns>:<source>:want:<InstrumentID>``
(and the instrument to ``<ns>:<source>:wanted``) and keeps a heartbeat key ``<ns>:reader:<id>``
with a TTL.  Every ``INTEREST_EVERY_S`` the publisher counts, per instrument, the readers whose
heartbeat exists: on 0 -> 1 it subscribes the instrument on the source's feed (the upstream, when
no other client of the server has it), on 1 -> 0 it lets go after the ``grace`` setting.  The ids of
readers whose heartbeat expired (a killed reader) are removed from the want sets, and emptied sets
from the ``wanted`` index.  One reader's unsubscribe removes its own id only: the others keep the
instrument.

Compatibility publishers (the ``compat`` setting), for programs of other projects, written in the
same transaction as the stream entries, for the ticks of the server's default (first) source only
(their keys carry no source, so two sources would overwrite each other):

``ctpbee``
    ``PUBLISH ctpbee_tick_kernel <message>``: what ctpbee's Redis ``Dispatcher`` publishes and its
    ``local`` interface reads.  The message is JSON ``{"data": <text>, "index": null}`` where
    ``<text>`` is JSON of exactly the fields of ctpbee's ``TickData`` (:data:`CTPBEE_FIELDS`):
    ctpbee's decoder picks the class whose field set equals the object's keys.
``qaopenmd``
    ``SET <InstrumentID> <quote>`` and ``ZADD history:<InstrumentID> <ms> <quote>``, as
    qaopenmdgateway writes them: ``<quote>`` is its DIFF-style quote JSON (:func:`qaopenmd_quote`),
    ``<ms>`` the tick's time (trading day, update time, milliseconds, Beijing time) in Unix
    milliseconds.  When a history set holds :data:`QAOPENMD_HISTORY_MAX` entries or more, those older
    than :data:`QAOPENMD_KEEP_MS` (two days) are removed (``ZREMRANGEBYSCORE``), as it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from ..adapters.redis import (
    LinkLost, RespError, RespLink, default_key, describe_failure, heartbeat_key, index_key, info_key, pack,
    stream_key, want_key, wanted_key,
)
from ..runtime import reconnect

if TYPE_CHECKING:
    from .fanout import EncodedTick, SourceFeed
    from .server import Server
    from .settings import RedisSettings

log = logging.getLogger("ctpshim.server.redis")

TICK_FORMAT = "ctp-struct"  # EncodedTick format name of pack_tick's bytes (shared with the binary protocol)
CHUNK = 2000  # commands per pipeline round trip
CONNECT_TIMEOUT = 2.0  # s to connect to Redis
COMMAND_TIMEOUT = 5.0  # s one round trip may take before the link counts as lost
INFO_EVERY_S = 1.0  # the info hash's `updated` is written at most this often
INTEREST_EVERY_S = 1.0  # readers' interest and the source's instrument list are read this often
GRACE_S = 30.0  # default of the `grace` setting: s an instrument stays subscribed after its last reader left
WAIT_UP_S = 1.0  # one bounded wait for a source to come up (the watcher loops)
STOP_WAIT_S = 2.0  # stop() waits this long for its tasks to end


_MULTI = pack("MULTI")
_EXEC = pack("EXEC")

COMPAT_PUBLISHERS = ("ctpbee", "qaopenmd")
CTPBEE_CHANNEL = "ctpbee_tick_kernel"  # ctpbee's TICK_KERNEL default
CTPBEE_GATEWAY = "ctpshim"
# ctpbee's TickData fields (ctpbee/constant.py, with the gateway_name and local_symbol every Entity gets).
CTPBEE_FIELDS = (
    "ask_price_1", "ask_price_2", "ask_price_3", "ask_price_4", "ask_price_5",
    "ask_volume_1", "ask_volume_2", "ask_volume_3", "ask_volume_4", "ask_volume_5", "average_price",
    "bid_price_1", "bid_price_2", "bid_price_3", "bid_price_4", "bid_price_5",
    "bid_volume_1", "bid_volume_2", "bid_volume_3", "bid_volume_4", "bid_volume_5", "datetime", "exchange",
    "gateway_name", "high_price", "last_price", "last_volume", "limit_down", "limit_up", "local_symbol",
    "low_price", "name", "open_interest", "open_price", "pre_close", "pre_open_interest", "pre_settlement_price",
    "settlement_price", "symbol", "turnover", "volume",
)
CTPBEE_EXCHANGES = frozenset({"CFFEX", "SHFE", "CZCE", "DCE", "INE", "GFEX"})  # others: ctpbee's "ctp"
QAOPENMD_HISTORY_MAX = 100_000  # ZCARD from which old history entries are removed
QAOPENMD_KEEP_MS = 2 * 24 * 3600 * 1000  # what is removed: entries older than this
_BEIJING = 8 * 3600  # CTP's times are Beijing time (UTC+8, no daylight saving)


def check_compat(names: "list[str] | tuple[str, ...] | str") -> tuple[str, ...]:
    """The compatibility publishers named (a list or a comma string), checked; raises ValueError
    naming a bad one and the valid ones."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    chosen = []
    for name in names:
        if name not in COMPAT_PUBLISHERS:
            raise ValueError(f"unknown compatibility publisher {name!r}; valid: {', '.join(COMPAT_PUBLISHERS)}")
        if name not in chosen:
            chosen.append(name)
    return tuple(chosen)


def ctpbee_message(tick: Any) -> bytes:
    """The message ctpbee's ``Dispatcher.on_tick`` publishes for ``tick`` (module docstring)."""
    day = tick.ActionDay or tick.TradingDay
    stamp = f"{day[:4]}-{day[4:6]}-{day[6:8]} {tick.UpdateTime}.{int(tick.UpdateMillisec) * 1000:06d}"
    exchange = tick.ExchangeID if tick.ExchangeID in CTPBEE_EXCHANGES else "ctp"
    fields: dict[str, Any] = {
        "datetime": stamp, "symbol": tick.InstrumentID, "exchange": exchange, "name": "",
        "local_symbol": f"{tick.InstrumentID}.{exchange}", "gateway_name": CTPBEE_GATEWAY,
        "volume": tick.Volume, "last_price": tick.LastPrice, "last_volume": 0,
        "limit_up": tick.UpperLimitPrice, "limit_down": tick.LowerLimitPrice, "open_interest": tick.OpenInterest,
        "average_price": tick.AveragePrice, "settlement_price": tick.SettlementPrice,
        "pre_settlement_price": tick.PreSettlementPrice, "pre_open_interest": tick.PreOpenInterest,
        "open_price": tick.OpenPrice, "high_price": tick.HighestPrice, "low_price": tick.LowestPrice,
        "pre_close": tick.PreClosePrice, "turnover": tick.Turnover,
    }
    for level in range(1, 6):
        for side, name in (("bid", "Bid"), ("ask", "Ask")):
            fields[f"{side}_price_{level}"] = getattr(tick, f"{name}Price{level}")
            fields[f"{side}_volume_{level}"] = getattr(tick, f"{name}Volume{level}")
    data = json.dumps({k: fields[k] for k in CTPBEE_FIELDS}, ensure_ascii=False)
    return json.dumps({"data": data, "index": None}, ensure_ascii=False).encode()


def _price(value: float) -> float | None:
    """qaopenmdgateway's rule: a price above 1e-6 and below 1e300, rounded to 2 decimals; else None."""
    if not 1e-6 < value < 1e300:
        return None
    return math.floor(value * 100.0 + 0.5) / 100.0


def qaopenmd_quote(tick: Any) -> tuple[bytes, int]:
    """qaopenmdgateway's quote JSON for ``tick`` (its keys, order and null rules) and the tick's
    time in Unix milliseconds (its history score)."""
    day, clock, millisecond = tick.TradingDay, tick.UpdateTime or "00:00:00", int(tick.UpdateMillisec)
    date = f"{day[:4]}-{day[4:6]}-{day[6:8]}" if len(day) >= 8 else day
    try:
        moment = time.strptime(f"{day[:8]} {clock[:8]}", "%Y%m%d %H:%M:%S")
        score = (_utc_seconds(moment) - _BEIJING) * 1000 + millisecond
    except ValueError:
        score = int(time.time() * 1000)
    quote: dict[str, Any] = {
        "instrument_id": f"{tick.ExchangeID}.{tick.InstrumentID}" if tick.ExchangeID else tick.InstrumentID,
        "datetime": f"{date} {clock}.{millisecond * 100:05d}",
    }
    for level in range(10, 0, -1):
        price = _price(getattr(tick, f"AskPrice{level}")) if level <= 5 else None
        quote[f"ask_price{level}"] = price
        quote[f"ask_volume{level}"] = getattr(tick, f"AskVolume{level}") if price is not None else None
    for level in range(1, 11):
        price = _price(getattr(tick, f"BidPrice{level}")) if level <= 5 else None
        quote[f"bid_price{level}"] = price
        quote[f"bid_volume{level}"] = getattr(tick, f"BidVolume{level}") if price is not None else None
    close, settlement = _price(tick.ClosePrice), _price(tick.SettlementPrice)
    quote.update({
        "last_price": _price(tick.LastPrice), "highest": _price(tick.HighestPrice),
        "lowest": _price(tick.LowestPrice), "open": _price(tick.OpenPrice),
        "close": "-" if close is None else close, "average": None, "volume": int(tick.Volume),
        "amount": float(tick.Turnover), "open_interest": int(tick.OpenInterest),
        "settlement": "-" if settlement is None else settlement,
        "upper_limit": _price(tick.UpperLimitPrice), "lower_limit": _price(tick.LowerLimitPrice),
        "pre_open_interest": int(tick.PreOpenInterest), "pre_settlement": _price(tick.PreSettlementPrice),
        "pre_close": _price(tick.PreClosePrice),
    })
    return json.dumps(quote, separators=(",", ":"), ensure_ascii=False).encode(), score


def _utc_seconds(moment: time.struct_time) -> int:
    import calendar

    return calendar.timegm(moment)


class _SourceTap:
    """The publisher's subscriber on one source's feed (the fan-out ``Subscriber`` protocol)."""

    def __init__(self, publisher: "RedisPublisher", source: str, feed: "SourceFeed") -> None:
        self.publisher = publisher
        self.source = source
        self.feed = feed
        self.name = f"redis:{source}"
        self.ids: set[str] = set()  # subscribed on the feed
        self.interest: set[str] = set()  # of those, the ones only readers asked for
        self.readers: dict[str, frozenset[str]] = {}  # instrument -> ids of the live readers that want it
        self._released: dict[str, float] = {}  # instrument of `interest` -> monotonic time its last reader left

    def deliver(self, tick: "EncodedTick") -> None:
        self.publisher._queue(self.source, tick)

    def source_down(self, reason: int) -> None:
        log.debug("redis: source %s went down (reason %d); publishing again when it is back", self.source, reason)

    def add(self, ids: list[str], interest: bool = False) -> None:
        fresh = [i for i in ids if i not in self.ids]
        if not fresh:
            return
        self.ids.update(fresh)
        if interest:
            self.interest.update(fresh)
        self.publisher._subscriptions_changed()
        for snapshot in self.feed.subscribe(self, fresh):  # ticks other clients already had
            self.deliver(snapshot)

    def remove(self, ids: list[str]) -> None:
        gone = [i for i in ids if i in self.ids]
        if gone:
            self.ids.difference_update(gone)
            self.interest.difference_update(gone)
            self.feed.unsubscribe(self, gone)
            self.publisher._subscriptions_changed()

    async def watch(self) -> None:
        """Subscribe the source's instruments once it is up; follow its listing and the readers' interest."""
        configured = list(self.publisher.settings.instruments)
        if configured:
            self.add(configured)
        while not self.publisher._stopping:
            if not await self.feed.wait_up(WAIT_UP_S):
                continue
            if not configured:
                listed = [info.instrument_id for info in self.feed.instruments()]
                self.interest.difference_update(listed)  # listed now: published whoever wants it
                self.add(listed)
            await self._follow_interest()
            await asyncio.sleep(INTEREST_EVERY_S)

    async def _follow_interest(self) -> None:
        """Count each wanted instrument's live readers; subscribe on 0 -> 1, let go ``grace`` after 1 -> 0."""
        publisher = self.publisher
        namespace = publisher.settings.namespace
        try:
            instruments = await self._read_interest(namespace)
        except LinkLost:
            return  # Redis away: the flusher reports it; nothing changes until it answers
        live = {instrument: ids for instrument, ids in instruments.items() if ids}
        self.readers = {instrument: frozenset(ids) for instrument, ids in live.items()}
        self.add(sorted(live), interest=True)
        now = time.monotonic()
        grace = float(getattr(publisher.settings, "grace", GRACE_S))
        for instrument in live:
            self._released.pop(instrument, None)
        lapsed = []
        for instrument in self.interest:
            if instrument in live:
                continue
            left_at = self._released.setdefault(instrument, now)
            if now - left_at >= grace:
                lapsed.append(instrument)
        for instrument in lapsed:
            self._released.pop(instrument, None)
        if lapsed:
            log.info("%s: %s: no reader wants %s any more; not published", publisher.where, self.source,
                     ", ".join(sorted(lapsed)))
            self.remove(lapsed)

    async def _read_interest(self, namespace: str) -> dict[str, set[str]]:
        """instrument -> ids of its live readers; the ids of dead readers (heartbeat expired) are
        removed from the want sets, and emptied sets from the index.  Raises :class:`LinkLost`."""
        publisher = self.publisher
        index = wanted_key(namespace, self.source)
        reply = (await publisher._call(pack("SMEMBERS", index), 1))[0]
        if isinstance(reply, RespError) and ("interest", index) not in publisher._skipped:
            publisher._skipped.add(("interest", index))
            log.error("%s: cannot read the readers' interest (%s): %s; publishing only what is configured or listed",
                      publisher.where, index, reply)
        if not isinstance(reply, list) or not reply:
            return {}
        names = [raw.decode(errors="replace") for raw in reply]
        members = await publisher._call(b"".join(pack("SMEMBERS", want_key(namespace, self.source, i))
                                                 for i in names), len(names))
        wants = {name: {m.decode(errors="replace") for m in got} if isinstance(got, list) else set()
                 for name, got in zip(names, members)}
        readers = sorted(set().union(*wants.values()))
        alive: set[str] = set()
        if readers:
            found = await publisher._call(b"".join(pack("EXISTS", heartbeat_key(namespace, r)) for r in readers),
                                          len(readers))
            alive = {r for r, exists in zip(readers, found) if exists == 1}
        cleanup = []
        for name, ids in wants.items():
            dead = ids - alive
            if dead:
                log.debug("%s: %s: readers %s of %s vanished (heartbeat expired)", publisher.where, self.source,
                          ", ".join(sorted(dead)), name)
                cleanup.append(pack("SREM", want_key(namespace, self.source, name), *sorted(dead)))
                ids -= dead
            if not ids:
                # A reader adding itself meanwhile re-adds the instrument at its next heartbeat.
                cleanup.append(pack("SREM", index, name))
        if cleanup:
            await publisher._call(b"".join(cleanup), len(cleanup))
        return wants


class RedisPublisher:
    """Publishes the ticks of every source of ``server`` to Redis Streams (module docstring).

    ``start`` and ``stop`` run on the IO loop.  Counters: ``published`` (entries written),
    ``conflated`` (ticks replaced by a newer one before they were written), ``failures`` (writes
    that failed), ``up`` (the last write succeeded); :meth:`stats` has them all."""

    def __init__(self, server: "Server", settings: "RedisSettings") -> None:
        self.server = server
        self.settings = settings
        self.published = 0
        self.conflated = 0
        self.failures = 0
        self.up = False
        self._link: RespLink | None = None
        self._lock = asyncio.Lock()  # one command batch on the link at a time
        self._taps: list[_SourceTap] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: dict[tuple[str, str], "EncodedTick"] = {}
        self._dirty = asyncio.Event()
        self._meta_dirty = True
        self._index_reset = False  # the index sets were emptied once, at the first write
        self._info_written = 0.0
        self._down_logged = False
        self._skipped: set[tuple[str, str]] = set()
        self._heads: dict[tuple[str, str], bytes] = {}
        self._tail = b""
        self._stopping = False
        self.compat = check_compat(tuple(getattr(settings, "compat", None) or ()))
        self._trim: set[str] = set()  # qaopenmd history keys that reached QAOPENMD_HISTORY_MAX

    @property
    def where(self) -> str:
        return f"redis {_shown(self.settings.url)}"

    def stats(self) -> dict[str, Any]:
        """For ``/health`` and the status line: plain JSON values."""
        return {"url": _shown(self.settings.url), "namespace": self.settings.namespace, "up": self.up,
                "published": self.published, "conflated": self.conflated, "failures": self.failures,
                "waiting": len(self._pending),
                "wanted": {tap.source: len(tap.readers) for tap in self._taps}}

    def readers(self, source: str) -> dict[str, frozenset[str]]:
        """instrument -> the ids of the live ``redis://`` readers that want it (as last counted)."""
        for tap in self._taps:
            if tap.source == source:
                return dict(tap.readers)
        return {}

    async def start(self) -> None:
        """Connect (bounded: an unreachable Redis is logged and tried again later, the server
        starts anyway) and subscribe every source."""
        from ..wire.structs import LAYOUT_ID

        self._tail = b"\r\n$1\r\nv\r\n$%d\r\n%s\r\n" % (len(LAYOUT_ID), LAYOUT_ID.encode())
        try:
            reply = (await self._call(pack("PING"), 1))[0]
            if isinstance(reply, RespError):
                raise LinkLost(str(reply))
            self.up = True
            log.info("%s: publishing %s under namespace %r", self.where,
                     ", ".join(self.server.settings.sources), self.settings.namespace)
            if self.compat:
                log.info("%s: also for other projects' programs (source %s): %s", self.where,
                         next(iter(self.server.settings.sources)), ", ".join(self.compat))
        except LinkLost as exc:
            self._log_down(exc)
        for name in self.server.settings.sources:
            tap = _SourceTap(self, name, self.server.feed(name))
            self._taps.append(tap)
            self._tasks.append(asyncio.ensure_future(tap.watch()))
        self._tasks.append(asyncio.ensure_future(self._flush_loop()))
        self._dirty.set()  # the index and info keys, at once

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=STOP_WAIT_S)
        self._tasks.clear()
        for tap in self._taps:
            with contextlib.suppress(Exception):
                tap.feed.drop(tap)
        if self._pending and self.up and self._link is not None and not self._link.closed:
            with contextlib.suppress(Exception):
                await self._write()  # bounded by the link's COMMAND_TIMEOUT
        self._taps.clear()
        link, self._link = self._link, None
        if link is not None:
            link.close()

    # -- ticks in ---------------------------------------------------------------------------------

    def _queue(self, source: str, tick: "EncodedTick") -> None:
        key = (source, tick.instrument)
        if self._pending.pop(key, None) is not None:
            self.conflated += 1
        self._pending[key] = tick  # at the end: the entries go out in the order the ticks came
        if not self._dirty.is_set():
            self._dirty.set()

    def _subscriptions_changed(self) -> None:
        self._meta_dirty = True  # the index sets, at the next write
        self._dirty.set()

    # -- writing ----------------------------------------------------------------------------------

    async def _call(self, packed: bytes, count: int) -> list[Any]:
        """Commands on the link, (re)connected if need be; raises :class:`LinkLost`."""
        async with self._lock:
            if self._link is None or self._link.closed:
                self._link = await RespLink.open(self.settings.url, CONNECT_TIMEOUT, "ctpshim-serve")
            return await self._link.call(packed, count, COMMAND_TIMEOUT)

    async def _flush_loop(self) -> None:
        failed_before = False
        while not self._stopping:
            await self._dirty.wait()  # resumes at the next loop turn: this turn's deliveries are in
            self._dirty.clear()
            try:
                await self._write()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - LinkLost, or a fault of ours: never the server's end
                if not isinstance(exc, LinkLost):
                    log.exception("%s: writing failed", self.where)
                self.failures += 1
                self.up = False
                self._meta_dirty = True
                self._log_down(exc)
                await asyncio.sleep(reconnect.RETRY_UNREACHABLE if failed_before else reconnect.RETRY_AFTER_DROP)
                failed_before = True
                self._dirty.set()
                continue
            failed_before = False
            if not self.up:
                self.up = True
                if self._down_logged:
                    log.warning("%s: reachable again; publishing", self.where)
                self._down_logged = False

    async def _transaction(self, parts: list[bytes], count: int) -> list[Any]:
        """``count`` packed commands (``parts`` joined) as one ``MULTI`` ... ``EXEC``: Redis wakes the
        readers blocked in ``XREAD`` once, after the whole batch, so a reader gets the batch in one
        reply instead of one entry at a time.  Returns each command's reply."""
        replies = await self._call(_MULTI + b"".join(parts) + _EXEC, count + 2)
        result = replies[-1]
        if isinstance(result, RespError):
            queued = [r for r in replies[1:-1] if isinstance(r, RespError)]
            raise LinkLost(f"the transaction failed: {queued[0] if queued else result}")
        if not isinstance(result, list) or len(result) != count:
            raise LinkLost(f"EXEC answered {result!r:.80}, not {count} replies")
        return result

    def _head(self, source: str, instrument: str) -> bytes:
        """``XADD <key> MAXLEN ~ <maxlen> * b`` and the blob's length prefix, packed once per stream."""
        from ..wire.structs import TICK_SIZE

        head = self._heads.get((source, instrument))
        if head is None:
            key = stream_key(self.settings.namespace, source, instrument).encode()
            maxlen = str(self.settings.maxlen).encode()
            head = self._heads[(source, instrument)] = (
                b"*10\r\n$4\r\nXADD\r\n$%d\r\n%s\r\n$6\r\nMAXLEN\r\n$1\r\n~\r\n$%d\r\n%s\r\n"
                b"$1\r\n*\r\n$1\r\nb\r\n$%d\r\n" % (len(key), key, len(maxlen), maxlen, TICK_SIZE))
        return head

    async def _write(self) -> None:
        """Write what waits, in chunks of one round trip each; on a lost link, what was not written
        goes back under the ticks that arrived meanwhile, and the error is raised."""
        from ..wire.structs import TICK_SIZE, pack_tick

        items = list(self._pending.items())
        self._pending = {}
        start = 0
        tail = self._tail
        try:
            first = True
            while first or start < len(items):
                chunk = items[start:start + CHUNK]
                parts = self._meta_commands() if first else []
                meta = len(parts)
                written = []
                compat_source = self._taps[0].source if self.compat and self._taps else None
                extra = 0
                if first and self._trim:
                    floor = int(time.time() * 1000) - QAOPENMD_KEEP_MS
                    for history in sorted(self._trim):
                        parts.append(pack("ZREMRANGEBYSCORE", history, 0, floor))
                    meta += len(self._trim)
                    self._trim.clear()
                for (source, instrument), tick in chunk:
                    try:
                        blob = tick.get(TICK_FORMAT, pack_tick)
                    except Exception as exc:  # noqa: BLE001 - one bad tick, not the feed
                        self._skip(source, instrument, f"cannot be packed: {exc}")
                        continue
                    if len(blob) != TICK_SIZE:
                        self._skip(source, instrument, f"packed to {len(blob)} bytes, not {TICK_SIZE}")
                        continue
                    parts += (self._head(source, instrument), blob, tail)
                    compat: list[tuple[str, str]] = []
                    if source == compat_source:
                        compat = self._compat_commands(parts, instrument, tick.tick)
                        extra += len(compat)
                    written.append((source, instrument, compat))
                if parts:
                    replies = await self._transaction(parts, meta + len(written) + extra)
                    for reply in replies[:meta]:
                        if isinstance(reply, RespError):
                            self._skip("", "the index or info keys", f"Redis refused it: {reply}")
                    at = meta
                    for source, instrument, compat in written:
                        reply = replies[at]
                        at += 1
                        if isinstance(reply, RespError):
                            self._skip(source, instrument, f"Redis refused it: {reply}")
                        else:
                            self.published += 1
                        for publisher_name, history in compat:
                            reply = replies[at]
                            at += 1
                            if isinstance(reply, RespError):
                                self._skip(publisher_name, instrument,
                                           f"Redis refused the {publisher_name} write: {reply}")
                            elif history and isinstance(reply, int) and reply >= QAOPENMD_HISTORY_MAX:
                                self._trim.add(history)
                start += len(chunk)
                first = False
                if start < len(items):
                    await asyncio.sleep(0)  # a big backlog: other clients get the loop between chunks
        except BaseException:
            unwritten = dict(items[start:])
            unwritten.update(self._pending)  # newer ticks win
            self._pending = unwritten
            raise

    def _compat_commands(self, parts: list[bytes], instrument: str, tick: Any) -> list[tuple[str, str]]:
        """Append the compatibility publishers' commands for one tick to ``parts``; one
        (publisher, history key or "") per command appended, for reading the replies."""
        appended: list[tuple[str, str]] = []
        for name in self.compat:
            try:
                if name == "ctpbee":
                    parts.append(pack("PUBLISH", CTPBEE_CHANNEL, ctpbee_message(tick)))
                    appended.append((name, ""))
                else:
                    quote, score = qaopenmd_quote(tick)
                    history = f"history:{instrument}"
                    parts += (pack("SET", instrument, quote), pack("ZADD", history, score, quote),
                              pack("ZCARD", history))
                    appended += ((name, ""), (name, ""), (name, history))
            except Exception as exc:  # noqa: BLE001 - one odd tick, not the feed
                self._skip(name, instrument, f"cannot be encoded for {name}: {exc}")
        return appended

    def _meta_commands(self) -> list[bytes]:
        """The index sets, the info hashes and the default source: all of them after a (re)connect
        or a subscription change, else only the info hashes, at most every ``INFO_EVERY_S``."""
        from ..wire.structs import LAYOUT_ID

        namespace = self.settings.namespace
        now = time.time()
        full = self._meta_dirty
        if not full and now - self._info_written < INFO_EVERY_S:
            return []
        commands = []
        if full and self._taps:
            commands.append(pack("SET", default_key(namespace), self._taps[0].source))
        for tap in self._taps:
            if full:
                if not self._index_reset:
                    commands.append(pack("DEL", index_key(namespace, tap.source)))
                if tap.ids:
                    commands.append(pack("SADD", index_key(namespace, tap.source), *sorted(tap.ids)))
            commands.append(pack("HSET", info_key(namespace, tap.source), "layout", LAYOUT_ID,
                                 "trading_day", tap.feed.trading_day(), "updated", f"{now:.3f}",
                                 "maxlen", self.settings.maxlen))
        if full:
            self._index_reset = True
            self._meta_dirty = False
        self._info_written = now
        return commands

    def _skip(self, source: str, instrument: str, why: str) -> None:
        if (source, instrument) not in self._skipped:
            self._skipped.add((source, instrument))
            what = f"a tick of {instrument} (source {source})" if source else instrument
            log.error("%s: %s was not written: %s", self.where, what, why)

    def _log_down(self, exc: BaseException) -> None:
        if self._down_logged:
            return
        self._down_logged = True
        log.warning("%s: cannot publish (%s); keeping the latest tick of each instrument and trying again "
                    "every %g s", self.where, describe_failure(exc), reconnect.RETRY_UNREACHABLE)


def _shown(url: str) -> str:
    """``url`` without a password, for logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


__all__ = ["RedisPublisher", "TICK_FORMAT", "COMPAT_PUBLISHERS", "check_compat", "ctpbee_message", "qaopenmd_quote",
           "CTPBEE_CHANNEL", "CTPBEE_FIELDS"]
