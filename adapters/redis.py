"""``redis://``: market data that a ``ctpshim serve --redis`` server publishes to Redis Streams.

Address: ``redis://host[:port][/source][?namespace=ctpshim&password=...&username=...&db=0&timeout=5]``
(``redis://:password@host`` works too).  ``source`` is one of the server's source names; without
it, the server's default source (its first) is read.  A program on another machine moves to the
server's feed by this front address alone.

The layout (written by :mod:`ctpshim.server.redis_bus`, read here; the key names are made by the
functions below, nowhere else):

``<ns>:<source>:md:<InstrumentID>``
    one stream per instrument; each entry has ``b`` = the tick as the bytes of the CTP 6.7.11
    ``CThostFtdcDepthMarketDataField`` C struct (x86-64 layout, :func:`ctpshim.wire.structs.pack_tick`)
    and ``v`` = :data:`ctpshim.wire.structs.LAYOUT_ID`; trimmed with ``XADD MAXLEN ~ N``.
``<ns>:<source>:instruments``
    a set: the instruments the server publishes for that source.
``<ns>:<source>:info``
    a hash: ``trading_day``, ``layout``, ``updated`` (Unix time of the last write, at most a second
    old while ticks flow).
``<ns>:default``
    a string: the default source's name.
``<ns>:<source>:interest``
    a hash instrument -> Unix time until which a reader wants it; readers renew it while subscribed,
    and the server publishes such instruments too (for a source that lists none, e.g. ``sina://``).
``<ns>:gw:<reader id>``
    a reader's private control stream (one entry, expiring): written to wake its own blocked
    ``XREAD`` when its subscriptions change.

Reading: ``subscribe`` takes each stream's last entry (``XREVRANGE key + - COUNT 1``) as the owed
snapshot, then one connection reads every subscribed stream with ``XREAD BLOCK`` from the id seen
last.  The last id of each stream is kept in :attr:`carry` (and, after a lost link, for
``RESUME_WINDOW_S`` in this process), so after a lost connection (a Redis restart) the next
connection resumes every stream after it: no entry published meanwhile is missed (unless trimmed
away), none is delivered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from typing import Any, AsyncIterator, Iterable, Iterator
from urllib.parse import unquote, urlsplit

from ..errors import (
    REASON_HEARTBEAT_TIMEOUT,
    REASON_READ_FAILED,
    UpstreamDisconnected,
    UpstreamProtocolError,
    UpstreamUnavailable,
)
from ..fronts.url import FrontURL, Setting, integer, number
from .base import Adapter, Capabilities, require_extra

log = logging.getLogger("ctpshim.redis")

DEFAULT_PORT = 6379
DEFAULT_NAMESPACE = "ctpshim"
BLOCK_MS = 1000  # one XREAD waits at most this long (the control stream wakes it sooner)
READ_COUNT = 512  # entries per stream per XREAD
REFRESH_S = 2.0  # instruments, trading day and interest are read / renewed this often
INTEREST_TTL_S = 30.0  # a reader's interest lapses this long after its last renewal
CONTROL_TTL_S = 60
_CARRY_KEY = "redis.last_ids"  # in carry: instrument -> the id of the last entry delivered
# The market's carry ends when its last API object lets go, which a failed reconnect attempt does
# (the front was unreachable: Redis still down).  A link lost leaves its last ids here for that long,
# for the next connection to the same streams in this process.
RESUME_WINDOW_S = 300.0
_resume: dict[str, tuple[float, dict[str, bytes]]] = {}
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_NAMESPACE = re.compile(r"^[A-Za-z0-9_.:{}-]+$")
NAME_VALID = "letters, digits, '_' and '-'"


# -- the layout: every key name, written once ---------------------------------------------------

def stream_key(namespace: str, source: str, instrument_id: str) -> str:
    return f"{namespace}:{source}:md:{instrument_id}"


def index_key(namespace: str, source: str) -> str:
    return f"{namespace}:{source}:instruments"


def info_key(namespace: str, source: str) -> str:
    return f"{namespace}:{source}:info"


def interest_key(namespace: str, source: str) -> str:
    return f"{namespace}:{source}:interest"


def default_key(namespace: str) -> str:
    return f"{namespace}:default"


def control_key(namespace: str, reader: str) -> str:
    return f"{namespace}:gw:{reader}"


def namespace_setting(text: str) -> str:
    if not _NAMESPACE.match(text):
        raise ValueError("expected a key prefix of letters, digits and _ . : { } -, e.g. ctpshim")
    return text


def entry_order(entry_id: bytes | str) -> tuple[int, int]:
    """A stream entry id (``ms-seq``) as a pair that sorts as Redis orders them."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def redis_errors() -> tuple[type[BaseException], ...]:
    """What redis-py raises when the link fails."""
    import redis.exceptions as rx

    return (rx.ConnectionError, rx.TimeoutError, OSError, asyncio.TimeoutError)


def connect_client(host: str, port: int, db: int, username: str | None, password: str | None,
                   timeout: float, read_timeout: float | None = None) -> Any:
    """A ``redis.asyncio.Redis`` that does not retry by itself: a failure reaches the caller, which
    reports it (the reader: a disconnect; the server: a log line and its own backoff)."""
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return aioredis.Redis(host=host, port=port, db=db, username=username or None, password=password or None,
                          socket_connect_timeout=timeout, socket_timeout=read_timeout or timeout,
                          retry=Retry(NoBackoff(), 0), decode_responses=False, client_name="ctpshim")


def describe_failure(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Entries:
    """A lazy batch: packed ticks, unpacked when iterated (on the consuming thread)."""

    __slots__ = ("blobs",)

    def __init__(self, blobs: list[bytes]) -> None:
        self.blobs = blobs

    def __len__(self) -> int:
        return len(self.blobs)

    def __iter__(self) -> Iterator[Any]:
        from ..wire.structs import unpack_tick

        for blob in self.blobs:
            yield unpack_tick(blob)


class RedisAdapter(Adapter):
    """Ticks read from the Redis Streams a ``ctpshim serve --redis`` server writes (module docstring)."""

    scheme = "redis"
    settings = (
        Setting("namespace", namespace_setting, DEFAULT_NAMESPACE, "the key prefix the server publishes under"),
        Setting("password", str, "", "the Redis password (AUTH)"),
        Setting("username", str, "", "the Redis ACL user (with password)"),
        Setting("db", integer(0, 65535), 0, "the Redis database number"),
        Setting("timeout", number(0, 120), 5.0, "seconds to connect and for each command"),
    )
    capabilities = Capabilities(depth_levels=5, has_instruments=True)

    @classmethod
    def check(cls, url: FrontURL, settings: dict[str, Any]) -> None:
        require_extra("redis", "serve", "redis:// reads Redis Streams with redis-py")
        if not url.host:
            raise ValueError("redis:// needs a host: redis://HOST[:PORT][/SOURCE], e.g. redis://127.0.0.1:6379/sim")
        source = url.path.strip("/")
        if "/" in source:
            raise ValueError(f"path {url.path!r}: give one source name after the host, e.g. redis://host:6379/sim")
        if source and not _NAME.match(source):
            raise ValueError(f"source {source!r} is not a source name ({NAME_VALID})")
        parts = urlsplit(url.raw)
        if parts.password and settings["password"]:
            raise ValueError("the password is given twice (before the host and as password=); give it once")
        if parts.username and settings["username"]:
            raise ValueError("the user is given twice (before the host and as username=); give it once")

    def __init__(self, url: FrontURL, settings: dict[str, Any]) -> None:
        super().__init__(url, settings)
        parts = urlsplit(url.raw)
        self.host = url.host
        self.port = url.port or DEFAULT_PORT
        self.namespace: str = settings["namespace"]
        self.source = url.path.strip("/")
        self._username = settings["username"] or unquote(parts.username or "")
        self._password = settings["password"] or unquote(parts.password or "")
        self._client: Any = None
        self._reader = uuid.uuid4().hex[:16]
        self._control = control_key(self.namespace, self._reader)
        self._control_id = b"0-0"
        self._positions: dict[str, bytes] = {}  # subscribed instrument -> last id delivered
        self._keys: dict[bytes, str] = {}  # stream key -> instrument
        self._wake = asyncio.Event()
        self._known: frozenset[str] = frozenset()
        self._info: dict[str, str] = {}
        self._instruments: list[Any] = []
        self._refresher: asyncio.Task[None] | None = None
        self._layout_warned: set[str] = set()
        self._size_warned: set[str] = set()
        self._link_lost = False
        self._connected = False

    @property
    def where(self) -> str:
        return f"redis {self.host}:{self.port}"

    # -- the contract -----------------------------------------------------------------------------

    async def connect(self) -> None:
        timeout = self.config["timeout"]
        self._client = connect_client(self.host, self.port, self.config["db"], self._username, self._password,
                                      timeout, timeout + BLOCK_MS / 1000)
        try:
            await self._client.ping()
            if not self.source:
                name = await self._client.get(default_key(self.namespace))
                if not name:
                    raise UpstreamUnavailable(
                        f"{self.where}: no ctpshim server publishes under namespace {self.namespace!r} "
                        f"(key {default_key(self.namespace)!r} is missing); start `ctpshim serve --redis` "
                        "or name the source: redis://host:port/<source>")
                self.source = name.decode()
            await self._refresh()
        except UpstreamUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - redis-py's errors, a refused AUTH among them
            raise UpstreamUnavailable(f"{self.where}: {describe_failure(exc)}") from None
        self._connected = True
        self._refresher = asyncio.ensure_future(self._keep_fresh())

    @property
    def streams_key(self) -> str:
        """Which streams this adapter reads (the memory of :data:`_resume`)."""
        return f"{self.host}:{self.port}/{self.config['db']}/{self.namespace}/{self.source}"

    async def close(self) -> None:
        if self._connected:  # a failed connect leaves what an earlier connection left
            carried = dict(self.carry.get(_CARRY_KEY, {}))
            if self._link_lost and carried:
                _resume[self.streams_key] = (time.monotonic(), carried)
            else:
                _resume.pop(self.streams_key, None)
        refresher, self._refresher = self._refresher, None
        if refresher is not None:
            refresher.cancel()
            with contextlib.suppress(BaseException):
                await refresher
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.delete(self._control), 0.5)
        with contextlib.suppress(Exception):
            await client.aclose()

    async def subscribe(self, ids: Iterable[str]) -> None:
        fresh = [i for i in dict.fromkeys(ids) if i not in self._positions]
        if not fresh:
            return
        carried: dict[str, bytes] = self.carry.setdefault(_CARRY_KEY, {})
        lost_at, left = _resume.get(self.streams_key, (0.0, {}))
        if left and time.monotonic() - lost_at < RESUME_WINDOW_S:
            for instrument in fresh:
                if instrument not in carried and instrument in left:
                    carried[instrument] = left.pop(instrument)
        keys = [stream_key(self.namespace, self.source, i) for i in fresh]
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.xrevrange(key, "+", "-", count=1)
                latest = await pipe.execute()
        except redis_errors() as exc:
            raise self._lost(exc) from None
        except Exception as exc:  # noqa: BLE001 - an error reply: a key of another type, an ACL
            raise UpstreamProtocolError(f"{self.where}: XREVRANGE failed: {describe_failure(exc)}") from None
        snapshot, unknown = [], []
        for instrument, key, entries in zip(fresh, keys, latest):
            last = entries[0] if entries else None
            resume = carried.get(instrument)
            if resume is not None and (last is None or entry_order(last[0]) >= entry_order(resume)):
                position = resume  # a reconnect: go on after the last entry delivered
            elif last is not None:
                if resume is not None:
                    log.warning("%s: stream %s starts again below the last id read (%s): a new stream; "
                                "reading it from its start", self.where, key, resume.decode())
                    position = b"0-0"
                else:
                    blob = self._blob(instrument, last[1])
                    position = last[0]
                    if blob is not None:
                        snapshot.append(blob)
            else:
                position = b"0-0"  # nothing yet: its first entry is the snapshot
                if instrument not in self._known:
                    unknown.append(instrument)
            self._positions[instrument] = position
            carried[instrument] = position
            self._keys[key.encode()] = instrument
        if snapshot:
            self.owe_snapshot(_Entries(snapshot))
        self.warn_unknown(unknown, f"not published by source {self.source!r} under namespace {self.namespace!r}")
        await self._changed()

    async def unsubscribe(self, ids: Iterable[str]) -> None:
        carried: dict[str, bytes] = self.carry.setdefault(_CARRY_KEY, {})
        for instrument in ids:
            if self._positions.pop(instrument, None) is not None:
                self._keys.pop(stream_key(self.namespace, self.source, instrument).encode(), None)
            carried.pop(instrument, None)  # a later subscription is a new one: it gets a snapshot
        await self._changed()

    async def ticks(self) -> AsyncIterator[Any]:
        carried: dict[str, bytes] = self.carry.setdefault(_CARRY_KEY, {})
        while True:
            if not self._positions:
                self._wake.clear()
                await self._wake.wait()
                continue
            streams: dict[Any, bytes] = {stream_key(self.namespace, self.source, i): p
                                         for i, p in self._positions.items()}
            streams[self._control] = self._control_id
            try:
                reply = await self._client.xread(streams, count=READ_COUNT, block=BLOCK_MS)
            except redis_errors() as exc:
                raise self._lost(exc) from None
            except Exception as exc:  # noqa: BLE001 - an error reply (a key of another type, ACL)
                raise UpstreamProtocolError(f"{self.where}: XREAD failed: {describe_failure(exc)}") from None
            found: list[tuple[tuple[int, int], bytes]] = []
            for key, entries in reply or ():
                key = key if isinstance(key, bytes) else key.encode()
                if key == self._control.encode():
                    if entries:
                        self._control_id = entries[-1][0]
                    continue
                instrument = self._keys.get(key)
                if instrument is None:
                    continue  # unsubscribed while the read waited
                position = entry_order(self._positions[instrument])
                for entry_id, fields in entries:
                    order = entry_order(entry_id)
                    if order <= position:
                        continue  # read before a re-subscription moved the position on
                    position = order
                    self._positions[instrument] = carried[instrument] = entry_id
                    blob = self._blob(instrument, fields)
                    if blob is not None:
                        found.append((order, blob))
            if found:
                found.sort(key=lambda pair: pair[0])  # the order the server published them in
                yield _Entries([blob for _, blob in found])

    def instruments(self) -> list[Any]:
        return list(self._instruments)

    def trading_day(self) -> str | None:
        day = self._info.get("trading_day", "")
        return day if re.fullmatch(r"\d{8}", day) else None

    async def probe(self) -> dict[str, Any]:
        from ..wire.structs import LAYOUT_ID

        started = time.perf_counter()
        try:
            await self._client.ping()
            rtt = time.perf_counter() - started
            await self._refresh()
        except redis_errors() as exc:
            raise self._lost(exc) from None
        info = self._info
        if not info and not self._known:
            raise UpstreamProtocolError(
                f"{self.where}: nothing is published for source {self.source!r} under namespace {self.namespace!r} "
                f"(no {info_key(self.namespace, self.source)!r}); is `ctpshim serve --redis` running?")
        layout = info.get("layout", "")
        if layout and layout != LAYOUT_ID:
            raise UpstreamProtocolError(
                f"{self.where}: the server publishes ticks in layout {layout}, this ctpshim reads {LAYOUT_ID}: "
                "run the same ctpshim version on both sides")
        details: dict[str, Any] = {"redis": f"{self.host}:{self.port}", "source": self.source,
                                   "namespace": self.namespace, "instruments": len(self._known),
                                   "rtt_ms": round(rtt * 1000, 2), "trading_day": self.trading_day()}
        with contextlib.suppress(ValueError):
            # Not ``age_s``: the server writes while its source ticks, a quiet market is not stale data.
            details["last_write_s"] = round(max(0.0, time.time() - float(info.get("updated", ""))), 1)
        return details

    # -- helpers ----------------------------------------------------------------------------------

    def _lost(self, exc: BaseException) -> UpstreamDisconnected:
        import redis.exceptions as rx

        self._link_lost = True
        reason = REASON_HEARTBEAT_TIMEOUT if isinstance(exc, (rx.TimeoutError, asyncio.TimeoutError)) \
            else REASON_READ_FAILED
        return UpstreamDisconnected(f"{self.where}: connection lost ({describe_failure(exc)})", reason)

    def _blob(self, instrument: str, fields: dict[bytes, bytes]) -> bytes | None:
        """The packed tick of an entry, or None (logged once per instrument) when it cannot be read."""
        from ..wire.structs import LAYOUT_ID, TICK_SIZE

        version = fields.get(b"v", b"").decode(errors="replace")
        if version != LAYOUT_ID:
            if instrument not in self._layout_warned:
                self._layout_warned.add(instrument)
                log.error("%s: %s: entries in layout %r, this ctpshim reads %r; skipped (run the same ctpshim "
                          "version on the server and here)", self.where, instrument, version, LAYOUT_ID)
            return None
        blob = fields.get(b"b", b"")
        if len(blob) != TICK_SIZE:
            if instrument not in self._size_warned:
                self._size_warned.add(instrument)
                log.error("%s: %s: an entry of %d bytes, a tick is %d; skipped", self.where, instrument,
                          len(blob), TICK_SIZE)
            return None
        return blob

    async def _changed(self) -> None:
        """Subscriptions changed: wake the blocked XREAD (through the control stream)."""
        self._wake.set()
        if self._client is None:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.xadd(self._control, {b"w": b"1"}, maxlen=1, approximate=False)
                pipe.expire(self._control, CONTROL_TTL_S)
                await pipe.execute()
        except redis_errors() as exc:
            raise self._lost(exc) from None
        except Exception as exc:  # noqa: BLE001 - a read-only ACL: the read wakes within BLOCK_MS anyway
            log.debug("%s: could not write the control stream: %s", self.where, exc)
        await self._renew_interest()

    async def _refresh(self) -> None:
        from ..ctp.products import parse_instrument

        async with self._client.pipeline(transaction=False) as pipe:
            pipe.smembers(index_key(self.namespace, self.source))
            pipe.hgetall(info_key(self.namespace, self.source))
            members, info = await pipe.execute()
        known = frozenset(m.decode(errors="replace") for m in members)
        if known != self._known:
            self._known = known
            self._instruments = [x for x in (parse_instrument(i) for i in sorted(known)) if x is not None]
        self._info = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in info.items()}

    async def _renew_interest(self) -> None:
        if not self._positions or self._client is None:
            return
        until = str(time.time() + INTEREST_TTL_S).encode()
        with contextlib.suppress(Exception):
            await self._client.hset(interest_key(self.namespace, self.source),
                                    mapping={i.encode(): until for i in self._positions})

    async def _keep_fresh(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await self._refresh()
                await self._renew_interest()
                await self._client.expire(self._control, CONTROL_TTL_S)
            except Exception:  # noqa: BLE001 - a lost link is the XREAD's to report
                continue


__all__ = ["RedisAdapter", "stream_key", "index_key", "info_key", "interest_key", "default_key", "control_key",
           "entry_order", "connect_client", "redis_errors", "describe_failure", "DEFAULT_NAMESPACE"]
