"""Publishing every source's ticks to Redis Streams (``ctpshim serve --redis URL``).

For each source of the server, a subscriber of its :class:`~ctpshim.server.fanout.SourceFeed`
takes the instruments of ``[redis] instruments`` or, by default, every instrument the source
lists, plus those a ``redis://`` reader registers interest in (the ``interest`` hash), and each
tick goes to its own stream::

    XADD <namespace>:<source>:md:<InstrumentID> MAXLEN ~ <maxlen> * b <584-byte CTP struct> v <LAYOUT_ID>

The key names and the other keys (the ``instruments`` index set, the ``info`` hash, ``default``)
are those of :mod:`ctpshim.adapters.redis`, which reads them; its docstring is the layout's
description.  ``b`` is :func:`ctpshim.wire.structs.pack_tick`'s bytes (what the binary protocol
sends), ``v`` is :data:`ctpshim.wire.structs.LAYOUT_ID`.

Writes never hold up the IO loop or the server's other clients: ticks wait in a dict keyed by
(source, instrument), written by one task as pipelined ``XADD``s once per loop turn.  While a
write is in flight (a slow Redis) newer ticks replace the waiting tick of the same instrument
(counted in :attr:`RedisPublisher.conflated`).  When Redis cannot be reached, that is logged once;
the latest tick of each instrument is kept, the write is tried again after
:data:`ctpshim.runtime.reconnect.RETRY_AFTER_DROP` and then every ``RETRY_UNREACHABLE`` seconds,
and publishing goes on (index and info written again) once Redis answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from ..adapters.redis import (
    default_key, describe_failure, index_key, info_key, interest_key, redis_errors, stream_key,
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
INTEREST_GRACE_S = 60.0  # a lapsed interest field is deleted this long after it lapsed
WAIT_UP_S = 1.0  # one bounded wait for a source to come up (the watcher loops)


def redis_client(url: str) -> Any:
    """A ``redis.asyncio`` client for ``url`` (``redis://``, ``rediss://``, ``unix://``) that does
    not retry by itself (the publisher's backoff is :mod:`ctpshim.runtime.reconnect`'s)."""
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return aioredis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=COMMAND_TIMEOUT,
                             retry=Retry(NoBackoff(), 0), decode_responses=False, client_name="ctpshim-serve")


class _SourceTap:
    """The publisher's subscriber on one source's feed (the fan-out ``Subscriber`` protocol)."""

    def __init__(self, publisher: "RedisPublisher", source: str, feed: "SourceFeed") -> None:
        self.publisher = publisher
        self.source = source
        self.feed = feed
        self.name = f"redis:{source}"
        self.ids: set[str] = set()  # subscribed on the feed
        self.interest: set[str] = set()  # of those, the ones only readers asked for

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
        while True:
            if not await self.feed.wait_up(WAIT_UP_S):
                continue
            if not configured:
                self.add([info.instrument_id for info in self.feed.instruments()])
            await self._follow_interest()
            await asyncio.sleep(INTEREST_EVERY_S)

    async def _follow_interest(self) -> None:
        client = self.publisher._client
        key = interest_key(self.publisher.settings.namespace, self.source)
        try:
            fields = await client.hgetall(key)
        except Exception:  # noqa: BLE001 - Redis away: the flusher reports it
            return
        now = time.time()
        wanted, stale = [], []
        for raw, until in fields.items():
            instrument = raw.decode(errors="replace")
            try:
                expiry = float(until)
            except ValueError:
                expiry = 0.0
            if expiry > now:
                wanted.append(instrument)
            elif expiry < now - INTEREST_GRACE_S:
                stale.append(raw)
        self.add(sorted(wanted), interest=True)
        lapsed = [i for i in self.interest if i not in wanted]
        self.remove(lapsed)
        if stale:
            with contextlib.suppress(Exception):
                await client.hdel(key, *stale)


class RedisPublisher:
    """Publishes the ticks of every source of ``server`` to Redis Streams (module docstring).

    ``start`` and ``stop`` run on the IO loop.  Counters: ``published`` (entries written),
    ``conflated`` (ticks replaced by a newer one before they were written), ``failures`` (writes
    that failed), ``up`` (the last write succeeded)."""

    def __init__(self, server: "Server", settings: "RedisSettings") -> None:
        self.server = server
        self.settings = settings
        self.published = 0
        self.conflated = 0
        self.failures = 0
        self.up = False
        self._client: Any = None
        self._taps: list[_SourceTap] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: dict[tuple[str, str], "EncodedTick"] = {}
        self._dirty = asyncio.Event()
        self._meta_dirty = True
        self._index_reset = False  # the index sets were emptied once, at the first write
        self._info_written = 0.0
        self._down_logged = False
        self._skipped: set[tuple[str, str]] = set()

    @property
    def where(self) -> str:
        return f"redis {_shown(self.settings.url)}"

    async def start(self) -> None:
        """Connect (one bounded PING: an unreachable Redis is logged and tried again later, the
        server starts anyway) and subscribe every source."""
        self._client = redis_client(self.settings.url)
        try:
            await asyncio.wait_for(self._client.ping(), CONNECT_TIMEOUT + 1.0)
            self.up = True
            log.info("%s: publishing %s under namespace %r", self.where,
                     ", ".join(self.server.settings.sources), self.settings.namespace)
        except Exception as exc:  # noqa: BLE001 - a refused AUTH among them
            self._log_down(exc)
        for name in self.server.settings.sources:
            tap = _SourceTap(self, name, self.server.feed(name))
            self._taps.append(tap)
            self._tasks.append(asyncio.ensure_future(tap.watch()))
        self._tasks.append(asyncio.ensure_future(self._flush_loop()))
        self._dirty.set()  # the index and info keys, at once

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks.clear()
        for tap in self._taps:
            with contextlib.suppress(Exception):
                tap.feed.drop(tap)
        self._taps.clear()
        client, self._client = self._client, None
        if client is not None:
            if self._pending and self.up:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._write(), 1.0)
            with contextlib.suppress(Exception):
                await client.aclose()

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

    async def _flush_loop(self) -> None:
        failed_before = False
        while True:
            await self._dirty.wait()  # resumes at the next loop turn: this turn's deliveries are in
            self._dirty.clear()
            try:
                await self._write()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - redis-py's errors: the link is down
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

    async def _write(self) -> None:
        """Write what waits, in chunks of one pipeline each; on a lost link, what was not written
        goes back under the ticks that arrived meanwhile, and the error is raised."""
        from ..wire.structs import LAYOUT_ID, pack_tick

        items = list(self._pending.items())
        self._pending = {}
        namespace, maxlen = self.settings.namespace, self.settings.maxlen
        layout = LAYOUT_ID.encode()
        start = 0
        try:
            first = True
            while first or start < len(items):
                chunk = items[start:start + CHUNK]
                async with self._client.pipeline(transaction=False) as pipe:
                    if first:
                        self._queue_meta(pipe)
                    written = []
                    for (source, instrument), tick in chunk:
                        try:
                            blob = tick.get(TICK_FORMAT, pack_tick)
                        except Exception as exc:  # noqa: BLE001 - one bad tick, not the feed
                            self._skip(source, instrument, f"cannot be packed: {exc}")
                            continue
                        pipe.xadd(stream_key(namespace, source, instrument), {b"b": blob, b"v": layout},
                                  maxlen=maxlen, approximate=True)
                        written.append((source, instrument))
                    results = await pipe.execute(raise_on_error=False)
                failed = [r for r in results if isinstance(r, BaseException)]
                for result in failed:
                    if isinstance(result, redis_errors()):
                        raise result
                if failed:
                    for (source, instrument), result in zip(written, results[-len(written):] if written else []):
                        if isinstance(result, BaseException):
                            self._skip(source, instrument, f"Redis refused it: {result}")
                    log.debug("%s: %d commands refused", self.where, len(failed))
                self.published += len(written) - sum(isinstance(r, BaseException)
                                                     for r in (results[-len(written):] if written else []))
                start += len(chunk)
                first = False
                if start < len(items):
                    await asyncio.sleep(0)  # a big backlog: other clients get the loop between chunks
        except BaseException:
            unwritten = dict(items[start:])
            unwritten.update(self._pending)  # newer ticks win
            self._pending = unwritten
            raise

    def _queue_meta(self, pipe: Any) -> None:
        """The index sets, the info hashes and the default source: all of them after a (re)connect
        or a subscription change, else only the info hashes, at most every ``INFO_EVERY_S``."""
        from ..wire.structs import LAYOUT_ID

        namespace = self.settings.namespace
        now = time.time()
        full = self._meta_dirty
        if not full and now - self._info_written < INFO_EVERY_S:
            return
        if full and self._taps:
            pipe.set(default_key(namespace), self._taps[0].source)
        for tap in self._taps:
            if full:
                if not self._index_reset:
                    pipe.delete(index_key(namespace, tap.source))
                if tap.ids:
                    pipe.sadd(index_key(namespace, tap.source), *sorted(tap.ids))
            pipe.hset(info_key(namespace, tap.source), mapping={
                "layout": LAYOUT_ID, "trading_day": tap.feed.trading_day(), "updated": f"{now:.3f}",
                "maxlen": str(self.settings.maxlen)})
        if full:
            self._index_reset = True
            self._meta_dirty = False
        self._info_written = now

    def _skip(self, source: str, instrument: str, why: str) -> None:
        if (source, instrument) not in self._skipped:
            self._skipped.add((source, instrument))
            log.error("%s: a tick of %s (source %s) was not published: %s", self.where, instrument, source, why)

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


__all__ = ["RedisPublisher", "TICK_FORMAT", "redis_client"]
