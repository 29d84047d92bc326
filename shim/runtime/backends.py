"""What an API object drives between ``Init`` and ``Release``: one backend, behind one small interface.

:class:`Backend` is the whole contract between the facade (:mod:`ctpshim.api`) and what serves it:

* :class:`SessionBackend`: a ctpshim session (``sim://``, ``replay://``, ``sina://`` ...), whose
  requests are answered by the API's :class:`Responder` (:mod:`ctpshim.api.responders`);
* a real CTP front (``tcp://``, ``ssl://``) through openctp-ctp: the front's registry class says
  ``capabilities.pass_through`` and makes its own backend with ``open_backend(context)``
  (:class:`ctpshim.adapters.tcp.Bridge`).

:func:`open_backend` is the one place that chooses.  Before ``Init`` an API object holds
:data:`NOT_STARTED`, which answers as openctp-ctp does before ``Init``.  Every method is called on a
user thread (or the dispatcher thread, from a callback) and returns at once; none runs adapter code
there.

May import :mod:`ctpshim.ctp`, :mod:`ctpshim.fronts` and the rest of the runtime; imported by
:mod:`ctpshim.api` and by adapters that drive their own backend.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, Protocol

from ..ctp.fields import char_limit
from ..fronts import registry
from ..fronts.url import parse_front_url

if TYPE_CHECKING:
    from .dispatcher import Dispatcher

TRADING_DAY_BEFORE_LOGIN = "19800100"  # what GetTradingDay answers before a login, as CTP does
NOT_SENT = -1  # CTP's send code when no front is connected


class Backend(abc.ABC):
    """The calls an API object makes on what serves it; the return codes are CTP's."""

    @property
    @abc.abstractmethod
    def connected(self) -> bool:
        """Whether a front is connected now."""

    @abc.abstractmethod
    def start(self) -> None:
        """Begin connecting (``Init``); returns at once."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop (``Release``): nothing is posted to the dispatcher after this returns."""

    @abc.abstractmethod
    def trading_day(self) -> str:
        """``GetTradingDay``: YYYYMMDD after a login, ``'19800100'`` before."""

    @abc.abstractmethod
    def front_info(self, target: Any) -> None:
        """``GetFrontInfo``: fill ``target``'s ``FrontAddr``, ``QryFreq`` and ``FTDPkgFreq``."""

    @abc.abstractmethod
    def subscribe(self, method: str, ids: list[str]) -> int:
        """``SubscribeMarketData`` and its three siblings (``method`` names which), with checked IDs."""

    @abc.abstractmethod
    def request(self, name: str, field: Any, request_id: int) -> int:
        """Every ``Req*`` method (``name``), with a checked field object and request ID."""

    @abc.abstractmethod
    def system_info(self, name: str, field: Any) -> int:
        """``RegisterUserSystemInfo`` and its three siblings (``name`` says which)."""


class BackendContext:
    """What a backend is made from: the API object's settings at ``Init`` (read-only)."""

    __slots__ = ("name", "flavour", "module", "dispatcher", "flow_path", "create_args", "fronts",
                 "name_servers", "setup", "responder")

    def __init__(self, *, name: str, flavour: str, module: Any, dispatcher: "Dispatcher", flow_path: str,
                 create_args: tuple[Any, ...], fronts: list[str], name_servers: list[str],
                 setup: list[tuple[str, tuple[Any, ...]]], responder: "Responder | None" = None) -> None:
        self.name = name  # the API object's name, for logs
        self.flavour = flavour  # "mdapi" or "tdapi"
        self.module = module  # the facade module whose field classes the callbacks carry
        self.dispatcher = dispatcher
        self.flow_path = flow_path
        self.create_args = create_args  # the factory's flags after the flow path
        self.fronts = fronts  # the registered fronts, or the one CTPSHIM_FRONT names
        self.name_servers = name_servers
        self.setup = setup  # calls made before Init that a real API must repeat, in order
        self.responder = responder  # answers requests on a ctpshim session


class Responder(Protocol):
    """What answers a ctpshim front's requests for one API object (see :mod:`ctpshim.api.responders`).

    Called on the caller's thread; it posts its answers through ``front.post`` and may read only
    what the front caches.
    """

    def request(self, front: "SessionBackend", name: str, field: Any, request_id: int) -> int:
        """Answer ``Req<name>``; returns the send code."""

    def subscribed(self, front: "SessionBackend", callback: str, ids: list[str]) -> None:
        """Post one ``callback`` (``OnRspSubMarketData`` ...) per ID, ``bIsLast`` on the last."""


class NotStarted(Backend):
    """Before ``Init`` (and with no front registered): nothing is connected, as in openctp-ctp."""

    @property
    def connected(self) -> bool:
        return False

    def start(self) -> None:
        return None

    def close(self) -> None:
        return None

    def trading_day(self) -> str:
        return TRADING_DAY_BEFORE_LOGIN

    def front_info(self, target: Any) -> None:
        _fill_front_info(target, "")

    def subscribe(self, method: str, ids: list[str]) -> int:
        return NOT_SENT

    def request(self, name: str, field: Any, request_id: int) -> int:
        return NOT_SENT

    def system_info(self, name: str, field: Any) -> int:
        return 0


NOT_STARTED = NotStarted()

# method -> (the reply callback, True to subscribe / False to unsubscribe / None: nothing to deliver)
SUBSCRIPTIONS: dict[str, tuple[str, bool | None]] = {
    "SubscribeMarketData": ("OnRspSubMarketData", True),
    "UnSubscribeMarketData": ("OnRspUnSubMarketData", False),
    "SubscribeForQuoteRsp": ("OnRspSubForQuoteRsp", None),
    "UnSubscribeForQuoteRsp": ("OnRspUnSubForQuoteRsp", None),
}


class SessionBackend(Backend):
    """A ctpshim session behind an API object; requests go to the context's responder.

    The only code in the facade that calls the session: what the responders may read (the
    source's trading day, its instruments, the front's identity) is cached on the IO thread.
    """

    def __init__(self, context: BackendContext) -> None:
        from .session import Session  # with asyncio: loaded when the first API object starts

        if context.responder is None:
            raise ValueError("a session backend needs a responder")
        self.name = context.name
        self.dispatcher = context.dispatcher
        self.responder = context.responder
        self.flow_path = context.flow_path
        self.setup = context.setup
        self.pump_ticks = context.flavour == "mdapi"
        self.session = Session(
            context.name, context.dispatcher, context.fronts + context.name_servers, self.pump_ticks
        )
        self._login_day = TRADING_DAY_BEFORE_LOGIN
        self._closed = False

    # -- the Backend interface ---------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return not self._closed and self.session.connected

    def start(self) -> None:
        self.session.start()

    def close(self) -> None:
        self._closed = True
        self.session.close()
        closed = getattr(self.responder, "closed", None)
        if closed is not None:
            closed(self)  # the simulated counter forgets this API's session

    def trading_day(self) -> str:
        return self._login_day

    def front_info(self, target: Any) -> None:
        _fill_front_info(target, self.session.front_url if self.connected else "")

    def subscribe(self, method: str, ids: list[str]) -> int:
        if not self.connected:
            return NOT_SENT
        callback, add = SUBSCRIPTIONS[method]
        if ids and add is False:
            self.session.mute(ids)  # no tick of theirs after OnRspUnSubMarketData
        self.responder.subscribed(self, callback, ids)
        if ids and add is not None:
            (self.session.subscribe if add else self.session.unsubscribe)(ids)
        return 0

    def request(self, name: str, field: Any, request_id: int) -> int:
        if not self.connected:
            return NOT_SENT
        return self.responder.request(self, name, field, request_id)

    def system_info(self, name: str, field: Any) -> int:
        return 0

    # -- what the responders use ---------------------------------------------------------------

    def post(self, callback: str, *args: Any) -> None:
        """Queue a callback for the program, after those already queued."""
        self.dispatcher.post(callback, *args)

    @property
    def front_url(self) -> str:
        """The connected front's address ('' when none is)."""
        return self.session.front_url

    @property
    def market(self) -> Any:
        """The market of the connected front (``None`` while none is): the simulated counter
        observes its ticks and reads its trading day and instruments."""
        return self.session.market

    @property
    def front_id(self) -> int:
        return self.session.front_id

    @property
    def session_id(self) -> int:
        return self.session.session_id

    def source_trading_day(self) -> str:
        """The source's current trading day (YYYYMMDD), as the session cached it."""
        return self.session.trading_day()

    def instruments(self) -> list[Any]:
        """What the source lists (``InstrumentInfo``/``StockInfo``), as the session cached it."""
        return list(self.session.instruments())

    def logged_in(self, trading_day: str) -> None:
        """Call after the ``OnRspUserLogin`` reply was posted: ``GetTradingDay`` answers
        ``trading_day`` from now on, and an md session restores what the program subscribed."""
        self._login_day = trading_day
        if self.pump_ticks:
            self.session.logged_in()


def open_backend(context: BackendContext) -> Backend:
    """The backend for ``context.fronts`` (not started): the scheme's own when it is a pass-through
    (a real CTP front) or, for a tdapi object, when the source keeps its own accounts (a ctpshim
    server); else a ctpshim session."""
    url = parse_front_url(context.fronts[0])
    cls: Any = registry.adapter_class(url.scheme, url.raw)
    if cls.capabilities.pass_through:
        backend: Backend = cls.open_backend(context)
        return backend
    if context.flavour == "tdapi" and cls.capabilities.remote_trader:
        remote: Backend = cls.open_trader_backend(context)
        return remote
    return SessionBackend(context)


def _fill_front_info(target: Any, address: str) -> None:
    limit = char_limit("CThostFtdcFrontInfoField", "FrontAddr")
    target.FrontAddr = address.encode("gb18030")[:limit].decode("gb18030", "ignore")
    target.QryFreq = 0
    target.FTDPkgFreq = 0

