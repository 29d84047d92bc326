"""The adapter contract: what a front scheme must (and may) implement.

An adapter turns one source (a simulated market, recorded days, an HTTP feed) into CTP
depth-market-data snapshots.  It is deliberately small and knows nothing of CTP's callbacks,
threads or retries: the market hub (:mod:`ctpshim.runtime.hub`) runs the adapter, one per source
per process, counts subscriptions, reconnects and fans the ticks out; the sessions
(:mod:`ctpshim.runtime.session`) own the front lists, login state and failover.  The adapter runs
on the IO thread's asyncio loop.

:class:`Adapter` is an abstract base class.  A class that names its ``scheme`` and lacks a hook
fails when it is defined; any other (an intermediate base, a stub) fails when it is registered
(:func:`ctpshim.fronts.registry.register_adapter`, an entry point, a built-in when first loaded),
with :class:`ctpshim.errors.AdapterContractError` naming the class and the missing hooks.
``ctpshim.testing.AdapterConformance`` checks the behaviour below; ``adapters/_template.py`` is
a working adapter to copy.

Must implement
    ``scheme``         the URL scheme (``"sim"``); class attribute
    ``async connect()``          reach the source; raise :class:`UpstreamUnavailable` if it cannot
    ``async subscribe(ids)``     start delivering these instruments.  For each known one whose
                                 source has a current snapshot, call :meth:`Adapter.owe_snapshot`;
                                 for each it will never tick, :meth:`Adapter.warn_unknown`
    ``async unsubscribe(ids)``   stop delivering these instruments (no more of their ticks in
                                 batches made after it returns)
    ``ticks()``                  async iterator of batches of ``CThostFtdcDepthMarketDataField``
                                 objects (from :func:`ctpshim.ctp.market_data.make_tick`), in time order.
                                 A batch is a list, or any object with ``len()`` whose iteration
                                 builds the ticks: it is iterated on a consuming thread (a
                                 dispatcher's), never the IO thread, in order (sim's blocks of
                                 rounds, replay's :class:`ctpshim.recording.TickRows`); with several
                                 consumers the hub shares one iteration (each tick made once).
                                 An exception from that iteration ends that batch, logged.
May implement (the base class has a default for each)
    ``settings``       the query keys it accepts, as :class:`ctpshim.fronts.url.Setting` values
                       (default: none)
    ``capabilities``   what it can do (:class:`Capabilities`)
    ``__init__(url, settings)``  store the address and the validated settings; no I/O.  Call
                       ``super().__init__(url, settings)``.
    ``check(url, settings)``  classmethod: raise ``ValueError`` for an address the settings alone
                       cannot judge (a recording that does not exist), so ``RegisterFront`` fails at once;
                       an ``OSError`` it lets through (permission denied) is reported the same way,
                       as a ``FrontAddressError`` naming the front (``registry.check_front``).
                       Default: accept.
    ``instruments()``  the instruments the source knows, as :class:`ctpshim.ctp.products.InstrumentInfo`
    ``trading_day()``  the current trading day (``YYYYMMDD``) when the source has its own clock
    ``async close()``  release resources; called once after ``connect`` whatever happened,
                       also when ``connect`` failed
    ``async probe()``  a health check for ``ctpshim ping``, after ``connect``: one round trip to
                       the source; return details to show (plain JSON values), raise an
                       ``UpstreamError`` whose message names the cause when it is not healthy.
                       The keys ``age_s`` and ``market_open`` let ping call the data stale.
    ``async damage()`` for ``ctpshim ping``, after a healthy ``probe()``: damage found in the data
                       the source keeps (a recording's files), one line each naming the file, the
                       part and its byte offset; an empty list when there is none.
    ``carry``          a dict (``self.carry``) the market (:mod:`ctpshim.runtime.hub`) keeps across
                       the reconnects of one source for as long as any API object uses it: state
                       kept there (a replay's position) lets a new connection go on where the last
                       one stopped instead of starting again.

``instruments()`` and ``trading_day()`` are called on the IO thread only; the market caches what
they answer for the sessions and the API objects.

Done here, once, for every adapter
    Snapshots on subscribe: CTP sends an instrument's current snapshot before its ticks.  An
    adapter passes it to :meth:`owe_snapshot` from ``subscribe``; the base delivers owed batches
    through ``ticks()`` before the next batch the adapter yields, and at once while the adapter's
    ``ticks()`` waits (sleeping through a closed market, or ended).  The adapter is asked to
    subscribe only for an instrument's first consumer; the hub itself gives every later consumer
    the latest tick it has passed on of that instrument.
    Unknown IDs: accepted like CTP accepts them (no error, no ticks); :meth:`warn_unknown` logs
    one warning per front naming them, each ID once.

Errors: raise only :class:`ctpshim.errors.UpstreamError` subclasses.  Raising
:class:`UpstreamDisconnected` (or ending with any ``UpstreamError``) from ``ticks()`` makes the
sessions report ``OnFrontDisconnected(reason)`` and reconnect; an iterator that simply ends
means the source has nothing more to send (the front stays connected and silent).
"""

from __future__ import annotations

import abc
import asyncio
import collections
import contextlib
import functools
import importlib
import logging
import types
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, ClassVar, Generator, Iterable

from ..errors import AdapterContractError
from ..messages import listing

if TYPE_CHECKING:
    from ..ctp.products import InstrumentInfo
    from ..fronts.url import FrontURL, Setting

log = logging.getLogger("ctpshim.adapters")

HOOKS = ("connect", "subscribe", "unsubscribe", "ticks")
"""The hooks every adapter must implement."""

_WARNED_KEY = "ctpshim.warned_unknown"  # in Adapter.carry: the IDs warned about on this front


def require_extra(module: str, extra: str, why: str) -> None:
    """For ``check``: raise ``ValueError`` naming the pip extra when an optional dependency is missing."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise ValueError(f"{why}: pip install 'ctpshim[{extra}]'") from None


@dataclass(frozen=True)
class Capabilities:
    """What an adapter can do; the hub, the sessions and the CLI read these, never the adapter type.

    ``deterministic``: the same address and settings give the same ticks, in the same order, every
    time (sim's seed, a recording); the conformance suite checks it.  ``pass_through``: not a
    source but a real CTP front (``tcp://``): the scheme's class makes the API object's own
    backend with a classmethod ``open_backend(context: ctpshim.runtime.backends.BackendContext)
    -> ctpshim.runtime.backends.Backend`` (the openctp bridge), which
    :func:`ctpshim.runtime.backends.open_backend` calls instead of attaching a session; its hooks
    are never driven (they raise ``UpstreamUnavailable``).  ``remote_trader``: a source whose own
    server keeps the accounts (``ctpshim://``): its md side is an ordinary adapter, and the scheme's
    class makes the backend of each tdapi object with a classmethod ``open_trader_backend(context)``,
    so orders go to the server's simulated trader instead of a counter in this process.
    """

    depth_levels: int = 1
    deterministic: bool = False
    has_instruments: bool = False
    can_trade: bool = False
    pass_through: bool = False
    remote_trader: bool = False


def missing_hooks(cls: type) -> list[str]:
    """The hooks of :data:`HOOKS` that ``cls`` leaves abstract."""
    return [name for name in HOOKS if getattr(getattr(cls, name, None), "__isabstractmethod__", False)]


def verify_adapter_class(cls: Any, scheme: str = "") -> None:
    """Raise :class:`AdapterContractError` unless ``cls`` is a complete :class:`Adapter` class."""
    name = f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', repr(cls))}"
    where = f" (scheme {scheme}://)" if scheme else ""
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise AdapterContractError(f"{name}{where} is not an adapter: subclass ctpshim.adapters.base.Adapter")
    missing = missing_hooks(cls)
    if cls.capabilities.pass_through and not callable(getattr(cls, "open_backend", None)):
        missing.append("open_backend (capabilities.pass_through)")
    if cls.capabilities.remote_trader and not callable(getattr(cls, "open_trader_backend", None)):
        missing.append("open_trader_backend (capabilities.remote_trader)")
    if missing:
        raise AdapterContractError(
            f"adapter {name}{where} does not implement {', '.join(missing)} "
            "(see ctpshim.adapters.base.Adapter; adapters/_template.py is one to copy)")


class Adapter(abc.ABC):
    """Base class of every adapter (see the module docstring for the contract)."""

    scheme: ClassVar[str] = ""
    settings: ClassVar[tuple["Setting", ...]] = ()
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own_ticks = cls.__dict__.get("ticks")
        if own_ticks is not None and not getattr(own_ticks, "__isabstractmethod__", False):
            cls.ticks = _delivering_owed(own_ticks)  # type: ignore[method-assign]
        if "scheme" in cls.__dict__:
            verify_adapter_class(cls, cls.scheme)

    def __init__(self, url: "FrontURL", settings: dict[str, Any]) -> None:
        self.url = url
        self.config = settings
        self.carry: dict[str, Any] = {}  # replaced by the hub's, kept across reconnects
        self._owed: collections.deque[Any] = collections.deque()
        self._owed_wake: asyncio.Future[None] | None = None
        self._owed_pump = False

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def check(cls, url: "FrontURL", settings: dict[str, Any]) -> None:
        """Refuse (``ValueError``) an address whose settings are valid but which cannot work.

        Runs at ``RegisterFront``, on the caller's thread, before any I/O of the adapter; may read
        files.  The default accepts every address.
        """

    @classmethod
    def from_url(cls, raw: "str | FrontURL") -> "Adapter":
        """A new adapter of this class for ``raw``: settings validated, :meth:`check` run
        (``FrontAddressError`` naming the bad part), constructed; no I/O happens here."""
        from ..fronts.registry import check_front
        from ..fronts.url import parse_front_url, resolve_settings

        url = parse_front_url(raw.raw if not isinstance(raw, str) else raw)
        settings = resolve_settings(url, cls.settings)
        check_front(url, cls, settings)
        return cls(url, settings)

    # -- the hooks --------------------------------------------------------------------------------

    @abc.abstractmethod
    async def connect(self) -> None:
        """Reach the source; raise :class:`ctpshim.errors.UpstreamUnavailable` if it cannot."""

    @abc.abstractmethod
    async def subscribe(self, ids: Iterable[str]) -> None:
        """Start delivering ``ids``; owe their snapshots, warn about the unknown ones."""

    @abc.abstractmethod
    async def unsubscribe(self, ids: Iterable[str]) -> None:
        """Stop delivering ``ids``."""

    @abc.abstractmethod
    def ticks(self) -> AsyncIterator[Any]:
        """Batches of ticks in time order (see the module docstring)."""

    def instruments(self) -> list["InstrumentInfo"]:
        return []

    def trading_day(self) -> str | None:
        return None

    async def close(self) -> None:
        return None

    async def probe(self) -> dict[str, Any]:
        return {}

    async def damage(self) -> list[str]:
        return []

    # -- done once for every adapter --------------------------------------------------------------

    def warn_unknown(self, ids: Iterable[str], why: str = "not an instrument this source knows") -> list[str]:
        """Log one warning naming those of ``ids`` not warned about before on this front.

        ``why`` says what makes them unknown ("not in data/day.parquet").  Returns the newly
        warned IDs.  The memory lives in :attr:`carry`, so a reconnect does not warn again.
        """
        warned: set[str] = self.carry.setdefault(_WARNED_KEY, set())
        fresh = [i for i in dict.fromkeys(ids) if i not in warned]
        if fresh:
            warned.update(fresh)
            log.warning("%s: %s: %s; subscription accepted as CTP does, no ticks will come",
                        self.scheme or type(self).__name__, listing(fresh), why)
        return fresh

    def owe_snapshot(self, batch: Any) -> None:
        """Queue a batch of current snapshots (a list of ticks, or a lazy batch) for ``ticks()``
        to deliver before the next batch of the adapter's own.  Call it on the IO loop."""
        if not len(batch):
            return
        self.__dict__.setdefault("_owed", collections.deque()).append(batch)
        wake = self.__dict__.get("_owed_wake")
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _owed_first(self, inner: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """``inner``'s batches, with the owed snapshots delivered first and while it waits.

        ``inner`` runs in this generator's task while its next batch is ready at once or after
        bare yields (``asyncio.sleep(0)``): the speed path, a call per batch; only when it waits on
        something does the rest of that step move to a task of its own, so that an owed snapshot
        can go out meanwhile.
        """
        self._owed_pump = True
        owed = self.__dict__.setdefault("_owed", collections.deque())
        loop = asyncio.get_running_loop()
        pending: asyncio.Future[Any] | None = None
        ended = False
        try:
            while True:
                while owed:
                    yield owed.popleft()
                batch: Any = _NOTHING
                if pending is None and not ended:
                    step = inner.__anext__().__await__()
                    try:
                        waiting_on = step.send(None)
                        while waiting_on is None and not owed:  # a bare yield (sleep(0)): one loop turn
                            await _one_turn(step)
                            waiting_on = step.send(None)
                    except StopIteration as ready:
                        batch = ready.value
                    except StopAsyncIteration:
                        ended = True
                    else:
                        pending = loop.create_task(_finish(step, waiting_on))
                if batch is _NOTHING:
                    if owed:  # owed while the adapter had its turns
                        continue
                    wake = self._owed_wake = loop.create_future()
                    if pending is not None:
                        pending.add_done_callback(functools.partial(_set_if_pending, wake))
                    await wake
                    if pending is None or not pending.done():
                        continue
                    done, pending = pending, None
                    try:
                        batch = done.result()
                    except StopAsyncIteration:
                        ended = True
                        continue
                while owed:
                    yield owed.popleft()
                yield batch
        finally:
            self._owed_wake = None
            self._owed_pump = False
            if pending is not None:
                pending.cancel()
                await asyncio.wait([pending])
            close = getattr(inner, "aclose", None)
            if close is not None:
                await close()


_NOTHING = object()


async def _one_turn(step: Any) -> None:
    """Let the loop run once for ``step``, which yielded bare; a cancellation meanwhile goes into it."""
    try:
        await asyncio.sleep(0)
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            step.throw(exc)
        raise


def _set_if_pending(wake: "asyncio.Future[None]", _: Any) -> None:
    if not wake.done():
        wake.set_result(None)


@types.coroutine
def _finish(step: Any, waiting_on: Any) -> Generator[Any, Any, Any]:
    """Drive ``step`` (an ``__anext__`` awaitable that has yielded ``waiting_on``) to its end, in a
    task: what ``yield from step`` would do had it not been started already."""
    while True:
        try:
            sent = yield waiting_on
        except GeneratorExit:
            step.close()
            raise
        except BaseException as exc:  # a cancellation: into the adapter's generator
            try:
                waiting_on = step.throw(exc)
            except StopIteration as done:
                return done.value
        else:
            try:
                waiting_on = step.send(sent)
            except StopIteration as done:
                return done.value


def _delivering_owed(ticks: Callable[[Adapter], AsyncIterator[Any]]) -> Callable[[Adapter], AsyncIterator[Any]]:
    """Wrap an adapter class's own ``ticks`` so the owed snapshots are delivered through it."""

    @functools.wraps(ticks)
    def delivering(self: Adapter) -> AsyncIterator[Any]:
        if self.__dict__.get("_owed_pump"):  # an override's super().ticks(): the outer one delivers
            return ticks(self)
        return self._owed_first(ticks(self))

    return delivering
