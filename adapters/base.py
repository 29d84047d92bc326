"""The adapter contract: what a front scheme must (and may) implement.

An adapter turns one source (a simulated market, recorded days, an HTTP feed, a real front)
into CTP depth-market-data snapshots.  It is deliberately small and knows nothing of CTP's
callbacks, threads or retries: the session (:mod:`ctpshim.runtime.session`) owns the front list, login
state, subscriptions, reconnect and failover, and runs the adapter on the IO thread's asyncio
loop.

Must implement
    ``settings``       the query keys it accepts, as :class:`ctpshim.fronts.url.Setting` values
    ``capabilities``   what it can do (:class:`Capabilities`)
    ``__init__(url, settings)``  store the address and the validated settings (no I/O)
    ``async connect()``          reach the source; raise :class:`UpstreamUnavailable` if it cannot
    ``async subscribe(ids)``     start delivering these instruments; the current snapshot of each
                                 known one is delivered first, through ``ticks()``
    ``async unsubscribe(ids)``   stop delivering these instruments
    ``ticks()``                  async iterator of batches of ``CThostFtdcDepthMarketDataField``
                                 objects (from :func:`ctpshim.ctp.market_data.make_tick`), in time order.
                                 A batch is a list, or any object with ``len()`` whose iteration
                                 builds the ticks: it is iterated on the dispatcher thread, once,
                                 in order (sim's blocks of rounds, replay's
                                 :class:`ctpshim.recording.TickRows`), never on the IO thread.
                                 Its iterator may be a generator making each tick as it is asked
                                 for; an exception from it ends that batch, logged as the adapter's
May implement
    ``check(url, settings)``  classmethod: raise ``ValueError`` for an address the settings alone
                       cannot judge (a recording that does not exist), so ``RegisterFront`` fails at once;
                       an ``OSError`` it lets through (permission denied) is reported the same way,
                       as a ``FrontAddressError`` naming the front (``registry.check_front``)
    ``instruments()``  the instruments the source knows, as :class:`ctpshim.ctp.products.InstrumentInfo`
    ``trading_day()``  the current trading day (``YYYYMMDD``) when the source has its own clock
    ``async close()``  release resources; called once after ``connect`` whatever happened
    ``async probe()``  a health check for ``ctpshim ping``, after ``connect``: one round trip to
                       the source; return details to show (plain JSON values), raise an
                       ``UpstreamError`` whose message names the cause when it is not healthy.
                       The keys ``age_s`` and ``market_open`` let ping call the data stale.
    ``carry``          a dict (``self.carry``) the session keeps across the reconnects of one API
                       object to one front: state kept there (a replay's position) lets a new
                       connection go on where the last one stopped instead of starting again
    ``async damage()`` for ``ctpshim ping``, after a healthy ``probe()``: damage found in the data
                       the source keeps (a recording's files), one line each naming the file, the
                       part and its byte offset; an empty list when there is none.

Errors: raise only :class:`ctpshim.errors.UpstreamError` subclasses.  Raising
:class:`UpstreamDisconnected` (or ending with any ``UpstreamError``) from ``ticks()`` makes the
session report ``OnFrontDisconnected(reason)`` and reconnect; an iterator that simply ends
means the source has nothing more to send (the front stays connected and silent).

Unknown instrument IDs are accepted like CTP accepts them (no error, no ticks); an adapter
logs one warning naming them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncIterator, ClassVar, Iterable

if TYPE_CHECKING:
    from ..ctp.products import InstrumentInfo
    from ..fronts.url import FrontURL, Setting


def require_extra(module: str, extra: str, why: str) -> None:
    """For ``check``: raise ``ValueError`` naming the pip extra when an optional dependency is missing."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise ValueError(f"{why}: pip install 'ctpshim[{extra}]'") from None


@dataclass(frozen=True)
class Capabilities:
    """What an adapter can do; the session and the CLI read these, never the adapter type."""

    depth_levels: int = 1
    deterministic: bool = False
    has_instruments: bool = False
    can_trade: bool = False
    # A real CTP front (tcp://): the API drives openctp-ctp through a bridge instead of a session.
    pass_through: bool = False


class Adapter:
    """Base class for adapters (see the module docstring for the contract)."""

    scheme: ClassVar[str] = ""
    settings: ClassVar[tuple["Setting", ...]] = ()
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, url: "FrontURL", settings: dict[str, Any]) -> None:
        self.url = url
        self.config = settings
        self.carry: dict[str, Any] = {}  # replaced by the session's, kept across reconnects

    async def connect(self) -> None:
        raise NotImplementedError

    async def subscribe(self, ids: Iterable[str]) -> None:
        raise NotImplementedError

    async def unsubscribe(self, ids: Iterable[str]) -> None:
        raise NotImplementedError

    def ticks(self) -> AsyncIterator[Any]:
        raise NotImplementedError

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
