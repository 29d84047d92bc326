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
``<ns>:<source>:want:<InstrumentID>``
    a set: the ids of the readers subscribed to that instrument (each reader adds and removes its own
    id only, so one reader's unsubscribe never takes an instrument from another).
``<ns>:<source>:wanted``
    a set: the instruments that have a ``want`` set (the server's index of them).
``<ns>:reader:<reader id>``
    a reader's heartbeat: a string (``host pid``) with a TTL of the reader's ``heartbeat`` setting,
    renewed every third of it.  The server counts a reader only while its heartbeat exists: a reader
    killed without cleanup is released when its heartbeat expires.  The server publishes an
    instrument while at least one live reader wants it (also one its source does not list, e.g. on
    ``sina://``), and stops a grace period after the last one let go.
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
REFRESH_S = 2.0  # instruments and trading day are read this often (the heartbeat: every third of its TTL, if sooner)
HEARTBEAT_S = 15.0  # default TTL of a reader's heartbeat key
CLOSE_WAIT_S = 0.5  # close() waits this long to take its interest and heartbeat away
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


def want_key(namespace: str, source: str, instrument_id: str) -> str:
    return f"{namespace}:{source}:want:{instrument_id}"


def wanted_key(namespace: str, source: str) -> str:
    return f"{namespace}:{source}:wanted"


def heartbeat_key(namespace: str, reader: str) -> str:
    return f"{namespace}:reader:{reader}"


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


class RespError(Exception):
    """An error reply of Redis (``-ERR ...``, ``-WRONGTYPE ...``): that command failed, the link is fine."""


class LinkLost(ConnectionError):
    """The connection to Redis failed (refused, reset, timed out, an unreadable reply)."""


class LinkTimedOut(LinkLost):
    """Redis did not answer in time (the connection is closed)."""


def pack(*args: bytes | str | int) -> bytes:
    """One command in RESP (an array of bulk strings)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class RespLink:
    """One connection to Redis speaking RESP2, for the publisher's pipelined writes.

    The hot paths: the server's one ``XADD`` per tick (packed from cached pieces, sent as one
    write) and a reader's ``XREAD`` of many entries, the replies parsed by a small scanner.
    redis-py costs about ten times as much CPU per command or entry (its reply parser without
    hiredis: 40 us per stream entry), CPU the IO loop owes the program's other work.
    The address is read by redis-py's ``parse_url`` (``redis://``, ``rediss://``, ``unix://``,
    user, password, db and the ``ssl_*`` options), so it means what it means to redis-py.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._buffer = bytearray()
        self._pos = 0
        self._partial: list[Any] | None = None  # a top-level array being parsed: [size, items, offset]
        self.closed = False

    @classmethod
    async def open(cls, url: str, connect_timeout: float, client_name: str) -> "RespLink":
        """Connect to ``url`` (redis-py's URL rules), AUTH and SELECT as it says; raises :class:`LinkLost`."""
        from redis.asyncio.connection import parse_url

        options = parse_url(url)
        try:
            if "path" in options:
                opening = asyncio.open_unix_connection(options["path"])
            else:
                context = None
                if url.lower().startswith("rediss://"):
                    import ssl

                    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
                    if str(options.get("ssl_cert_reqs", "required")).lower() in ("none", "cert_none"):
                        context.check_hostname = False
                        context.verify_mode = ssl.CERT_NONE
                opening = asyncio.open_connection(options.get("host", "localhost"), options.get("port", 6379),
                                                  ssl=context)
            reader, writer = await asyncio.wait_for(opening, connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise LinkLost(f"cannot connect: {describe_failure(exc)}") from None
        link = cls(reader, writer)
        hello = []
        if options.get("password"):
            user = options.get("username")
            hello.append(pack("AUTH", user, options["password"]) if user else pack("AUTH", options["password"]))
        if options.get("db"):
            hello.append(pack("SELECT", int(options["db"])))
        hello.append(pack("CLIENT", "SETNAME", client_name))
        try:
            for reply in await link.call(b"".join(hello), len(hello), connect_timeout):
                if isinstance(reply, RespError):
                    raise LinkLost(str(reply))
        except BaseException:
            link.close()
            raise
        return link

    async def call(self, packed: bytes, count: int, timeout: float) -> list[Any]:
        """Send ``count`` packed commands at once; their replies, an error reply as a :class:`RespError`.

        Bounded by ``timeout`` seconds: a watchdog closes the connection (no inner task to cancel)."""
        if self.closed:
            raise LinkLost("the connection is closed")
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            self.close()

        watchdog = asyncio.get_running_loop().call_later(timeout, expire)
        try:
            self._writer.write(packed)
            return await self._replies(count)
        except (OSError, ValueError, IndexError) as exc:
            self.close()
            if expired:
                raise LinkTimedOut(f"no answer within {timeout:g} s") from None
            raise LinkLost(describe_failure(exc)) from None
        except BaseException:
            self.close()  # cancelled mid-reply: the replies still coming would be read as the next call's
            raise
        finally:
            watchdog.cancel()

    async def _replies(self, count: int) -> list[Any]:
        await self._writer.drain()
        replies: list[Any] = []
        while len(replies) < count:
            reply = self._parse()
            if reply is _INCOMPLETE:
                data = await self._reader.read(1 << 16)
                if not data:
                    raise ConnectionResetError("the connection was closed by the server")
                if self._pos:
                    del self._buffer[:self._pos]
                    self._pos = 0
                self._buffer += data
                continue
            replies.append(reply)
        return replies

    def _parse(self) -> Any:
        """The next reply in the buffer, or ``_INCOMPLETE`` (nothing consumed).

        A top-level array is parsed element by element, and the elements already parsed are kept
        while the rest is still coming: a big reply (an ``XREAD`` of many streams, 64 KB and more,
        arriving in several reads) is parsed once, not again from its start after every read."""
        buffer, start = self._buffer, self._pos
        partial = self._partial
        if partial is None:
            if buffer[start:start + 1] != b"*":
                reply, end = self._parse_at(buffer, start)
                if reply is not _INCOMPLETE:
                    self._pos = end
                return reply
            line_end = buffer.find(b"\r\n", start)
            if line_end < 0:
                return _INCOMPLETE
            size = int(buffer[start + 1:line_end])
            if size <= 0:
                self._pos = line_end + 2
                return [] if size == 0 else None
            partial = self._partial = [size, [], line_end + 2 - start]
        size, items, offset = partial
        pos = start + offset
        while len(items) < size:
            item, end = self._parse_at(buffer, pos)
            if item is _INCOMPLETE:
                partial[2] = pos - start  # offsets from the reply's start: the buffer may be compacted
                return _INCOMPLETE
            items.append(item)
            pos = end
        self._partial = None
        self._pos = pos
        return items

    def _parse_at(self, buffer: bytearray, pos: int) -> tuple[Any, int]:
        line_end = buffer.find(b"\r\n", pos)
        if line_end < 0:
            return _INCOMPLETE, pos
        kind, line = buffer[pos], bytes(buffer[pos + 1:line_end])
        after = line_end + 2
        if kind == 36:  # $ bulk string
            size = int(line)
            if size < 0:
                return None, after
            if len(buffer) < after + size + 2:
                return _INCOMPLETE, pos
            return bytes(buffer[after:after + size]), after + size + 2
        if kind == 43:  # + simple string
            return line, after
        if kind == 58:  # : integer
            return int(line), after
        if kind == 45:  # - error
            return RespError(line.decode(errors="replace")), after
        if kind == 42:  # * array
            size = int(line)
            items = []
            for _ in range(max(size, 0)):
                item, after = self._parse_at(buffer, after)
                if item is _INCOMPLETE:
                    return _INCOMPLETE, pos
                items.append(item)
            return (items if size >= 0 else None), after
        raise ValueError(f"an unreadable reply from Redis (type byte {kind!r})")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):
                self._writer.close()


_INCOMPLETE = object()
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
        Setting("heartbeat", number(0, 3600), HEARTBEAT_S,
                "seconds the server keeps this reader's subscriptions after it vanished (its heartbeat's TTL)"),
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
        self._link: RespLink | None = None  # the XREAD connection
        self._reader = uuid.uuid4().hex[:16]
        self._control = control_key(self.namespace, self._reader)
        self._heartbeat = heartbeat_key(self.namespace, self._reader)
        self._wants: set[str] = set()  # instruments whose want set holds this reader's id (as last written)
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
            await self._beat()
            self._link = await RespLink.open(self._link_url(), timeout, f"ctpshim-reader-{self._reader}")
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
        link, self._link = self._link, None
        if link is not None:
            link.close()
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._let_go(client), CLOSE_WAIT_S)
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
        asked: set[str] = self.carry.setdefault("redis.asked", set())
        fresh_unknown = [i for i in unknown if i not in asked]
        if fresh_unknown:
            asked.update(fresh_unknown)
            log.warning("%s: %s: not published by source %r under namespace %r yet; subscription accepted as CTP "
                        "does; the server publishes it within seconds if its source has it", self.where,
                        ", ".join(fresh_unknown), self.source, self.namespace)
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
        control = self._control.encode()
        while True:
            if not self._positions:
                self._wake.clear()
                await self._wake.wait()
                continue
            keys = [stream_key(self.namespace, self.source, i) for i in self._positions] + [self._control]
            ids = list(self._positions.values()) + [self._control_id]
            command = pack("XREAD", "COUNT", READ_COUNT, "BLOCK", BLOCK_MS, "STREAMS", *keys, *ids)
            try:
                if self._link is None or self._link.closed:
                    raise LinkLost("the connection is closed")
                reply = (await self._link.call(command, 1, self.config["timeout"] + BLOCK_MS / 1000))[0]
            except LinkLost as exc:
                raise self._lost(exc) from None
            if isinstance(reply, RespError):  # a key of another type, an ACL
                raise UpstreamProtocolError(f"{self.where}: XREAD failed: {reply}")
            found: list[tuple[tuple[int, int], bytes]] = []
            for key, entries in reply or ():
                if key == control:
                    if entries:
                        self._control_id = entries[-1][0]
                    continue
                instrument = self._keys.get(key)
                if instrument is None:
                    continue  # unsubscribed while the read waited
                position = entry_order(self._positions[instrument])
                for entry_id, pairs in entries:
                    order = entry_order(entry_id)
                    if order <= position:
                        continue  # read before a re-subscription moved the position on
                    position = order
                    self._positions[instrument] = carried[instrument] = entry_id
                    blob = self._blob(instrument, dict(zip(pairs[0::2], pairs[1::2])))
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

    def _link_url(self) -> str:
        from urllib.parse import quote

        credentials = ""
        if self._password:
            credentials = f"{quote(self._username, safe='')}:{quote(self._password, safe='')}@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"redis://{credentials}{host}:{self.port}/{self.config['db']}"

    def _lost(self, exc: BaseException) -> UpstreamDisconnected:
        import redis.exceptions as rx

        self._link_lost = True
        timed_out = isinstance(exc, (rx.TimeoutError, asyncio.TimeoutError, LinkTimedOut))
        reason = REASON_HEARTBEAT_TIMEOUT if timed_out else REASON_READ_FAILED
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

    async def _beat(self) -> None:
        """The heartbeat key, with its TTL (a read-only user cannot write it: then the server never
        counts this reader, and publishes only what it publishes anyway)."""
        import os
        import socket

        with contextlib.suppress(Exception):
            await self._client.set(self._heartbeat, f"{socket.gethostname()} {os.getpid()}",
                                   px=max(1, int(self.config["heartbeat"] * 1000)))

    async def _renew_interest(self) -> None:
        """This reader's id in the want set of each subscribed instrument, out of the others'."""
        if self._client is None:
            return
        namespace, source, me = self.namespace, self.source, self._reader
        wanted, dropped = list(self._positions), [i for i in self._wants if i not in self._positions]
        if not wanted and not dropped:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for instrument in dropped:
                    pipe.srem(want_key(namespace, source, instrument), me)
                for instrument in wanted:
                    pipe.sadd(want_key(namespace, source, instrument), me)
                if wanted:
                    pipe.sadd(wanted_key(namespace, source), *wanted)
                await pipe.execute()
        except Exception as exc:  # noqa: BLE001 - a read-only ACL; a lost link is the XREAD's to report
            log.debug("%s: could not write this reader's interest: %s", self.where, exc)
            return
        self._wants = set(wanted)

    async def _let_go(self, client: Any) -> None:
        """At close: this reader's id out of every want set, its heartbeat and control stream deleted."""
        async with client.pipeline(transaction=False) as pipe:
            for instrument in self._wants | set(self._positions):
                pipe.srem(want_key(self.namespace, self.source, instrument), self._reader)
            pipe.delete(self._heartbeat, self._control)
            await pipe.execute()
        self._wants = set()

    async def _keep_fresh(self) -> None:
        beat_every = max(0.05, self.config["heartbeat"] / 3)
        last_refresh = time.monotonic()
        while True:
            await asyncio.sleep(min(REFRESH_S, beat_every))
            try:
                await self._beat()
                await self._renew_interest()  # heals a want set the server emptied in a race
                if time.monotonic() - last_refresh >= REFRESH_S:
                    last_refresh = time.monotonic()
                    await self._refresh()
                    await self._client.expire(self._control, CONTROL_TTL_S)
            except Exception:  # noqa: BLE001 - a lost link is the XREAD's to report
                continue


__all__ = ["RedisAdapter", "RespLink", "RespError", "LinkLost", "LinkTimedOut", "pack", "stream_key", "index_key",
           "info_key", "want_key", "wanted_key", "heartbeat_key", "default_key", "control_key", "entry_order",
           "connect_client", "redis_errors", "describe_failure", "DEFAULT_NAMESPACE"]
