"""``CThostFtdcMdApi`` and ``CThostFtdcTraderApi``: the facade user code calls.

Same methods, positional arguments, return codes and threading as openctp-ctp:

* instances come only from the static factories (``CreateFtdcMdApi`` / ``CreateFtdcTraderApi``);
  the flow path is a file-name prefix, and its directory must exist;
* ``Init()`` returns at once; every Spi callback of one API object runs on that object's own
  dispatcher thread, in order; ``Join()`` blocks until ``Release()``; ``Release()`` may be
  called from inside a callback; after it, ``Join()`` and ``Release()`` return at once and any
  other use of the object raises ``RuntimeError`` (where the CTP library would crash);
* requests return 0 when sent, -1 when no front is connected (also before ``Init``);
* ``RegisterFront`` may be called several times (a failover list); the ``CTPSHIM_FRONT``
  environment variable, when set, replaces every registered front.

Between ``Init`` and ``Release`` an API object drives one backend
(:mod:`ctpshim.runtime.backends`): a ctpshim session, whose requests the responders answer
(:mod:`ctpshim.api.responders`; a trader API's by the simulated counter,
:mod:`ctpshim.broker.responder`), or a real CTP front through
openctp-ctp.  The argument checks are in :mod:`ctpshim.api.arguments`.
"""

from __future__ import annotations

import copy
import itertools
import logging
import os
import threading
from typing import Any, Callable

from ..fronts import registry
from ..runtime.backends import NOT_STARTED, Backend, BackendContext, open_backend
from ..runtime.dispatcher import Dispatcher
from .arguments import check_bool, check_int, check_struct, check_text, instrument_ids, named, short
from .responders import MdResponder

__all__ = ["API_VERSION", "FRONT_ENV", "front_override", "ApiBase", "MdApiBase", "TraderApiBase", "request_method"]

log = logging.getLogger("ctpshim")

API_VERSION = "v6.7.11_20250617 16:22:00.10369"  # what openctp-ctp 6.7.11 reports
FRONT_ENV = "CTPSHIM_FRONT"
_instance_numbers = itertools.count(1)


def front_override() -> str | None:
    """The front ``CTPSHIM_FRONT`` names (it replaces every registered one), checked; ``None``
    when it is unset or blank.  A bad one raises ``FrontAddressError`` naming the variable."""
    override = os.environ.get(FRONT_ENV, "").strip()
    if not override:
        return None
    try:
        registry.validate_front(override)
    except registry.FrontAddressError as exc:
        raise registry.FrontAddressError(
            f"{FRONT_ENV}={override!r} (from the environment; it replaces every front the program registers): "
            f"{exc}; fix it, or unset {FRONT_ENV}"
        ) from None
    return override


class ApiBase:
    """What the md and trader APIs share: creation, lifecycle, fronts, Spi, trading day."""

    _class_name = ""
    _spi_class_name = ""
    _flavour = ""
    _module: Any = None  # the facade module whose field classes this API hands to its Spi
    _responder: Callable[[Any], Any] = MdResponder  # answers requests on a ctpshim front
    _flow_files: tuple[str, ...] = ("DialogRsp.con", "QueryRsp.con", "TradingDay.con")

    # Set by _create (instances come only from the factories).
    _name: str
    _flow_path: str
    _lock: threading.Lock
    _fronts: list[str]
    _name_servers: list[str]
    _dispatcher: Dispatcher
    _backend: Backend
    _create_args: tuple[Any, ...]
    _setup: list[tuple[str, tuple[Any, ...]]]
    _initialised: bool
    _released: threading.Event

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise AttributeError("No constructor defined - class is abstract")

    @classmethod
    def _create(cls, flow_path: Any, factory: str, create_args: tuple[Any, ...] = ()) -> Any:
        flow_path = check_text(flow_path, f"{cls._class_name}_{factory}", 1)
        directory = os.path.dirname(flow_path)
        if directory and not os.path.isdir(directory):
            raise FileNotFoundError(
                f"{factory}: the flow path {flow_path!r} is a file-name prefix and its directory "
                f"{directory!r} does not exist; create it first (e.g. os.makedirs({directory!r}, exist_ok=True))"
            )
        _touch_flow_files(flow_path, cls._flow_files)
        self = object.__new__(cls)
        kind = "md" if cls._flavour == "mdapi" else "td"
        self._name = f"ctpshim-{kind}{next(_instance_numbers)}"
        self._flow_path = flow_path
        self._lock = threading.Lock()
        self._fronts = []
        self._name_servers = []
        self._dispatcher = Dispatcher(f"{self._name}-callbacks", cls._spi_class_name)
        self._backend = NOT_STARTED
        # The factory's flags and the calls made before Init: a real front's API repeats them.
        self._create_args = create_args
        self._setup = []
        self._initialised = False
        self._released = threading.Event()
        return self

    def __repr__(self) -> str:
        state = "released" if self._released.is_set() else ("running" if self._initialised else "created")
        return f"<{type(self).__module__}.{type(self).__name__} {self._name} {state}>"

    # -- lifecycle ------------------------------------------------------------------------------

    def _alive(self, method: str) -> None:
        if self._released.is_set():
            raise RuntimeError(f"{self._class_name}.{method}: this API object was released; create a new one")

    @staticmethod
    def GetApiVersion() -> str:
        """The CTP API version string openctp-ctp 6.7.11 reports."""
        return API_VERSION

    def Init(self, /) -> None:
        """Start connecting to the registered front(s); returns at once."""
        self._alive("Init")
        override = front_override()  # a bad CTPSHIM_FRONT raises before anything starts
        with self._lock:
            if self._initialised:
                raise RuntimeError(f"{self._class_name}.Init was already called on this object")
            self._initialised = True
        self._dispatcher.start()
        if override is not None:
            if self._fronts and self._fronts != [override]:
                log.info("%s: %s=%s replaces the registered front(s) %s", self._name, FRONT_ENV, override, self._fronts)
            fronts, name_servers = [override], []
        else:
            fronts, name_servers = list(self._fronts), list(self._name_servers)
        if not fronts and not name_servers:
            log.warning("%s: Init() with no front registered: call RegisterFront first", self._name)
            return
        self._on_init()
        context = BackendContext(
            name=self._name, flavour=self._flavour, module=self._module, dispatcher=self._dispatcher,
            flow_path=self._flow_path, create_args=self._create_args, fronts=fronts, name_servers=name_servers,
            setup=list(self._setup), responder=self._responder(self._module),
        )
        backend = open_backend(context)
        with self._lock:
            if self._released.is_set():  # Release() on another thread came first: start nothing
                return
            self._backend = backend
        backend.start()

    def _on_init(self) -> None:
        pass

    def Join(self, /) -> int:
        """Block until ``Release()`` is called (from another thread or a callback); returns 1.

        Once released it returns at once: a callback may release the API before the program's
        main thread reaches ``Join()``, and that is the usual way a CTP program ends."""
        self._released.wait()
        return 1

    def Release(self, /) -> None:
        """Stop the API: no callback is delivered after this returns (or, from a callback, after
        that callback returns).  Later, ``Join()`` and ``Release()`` return at once; any other
        use of the object raises ``RuntimeError``."""
        with self._lock:
            if self._released.is_set():
                return
            self._released.set()
            backend = self._backend
        self._dispatcher.stop()
        backend.close()
        self._dispatcher.join(timeout=5.0)

    # -- configuration --------------------------------------------------------------------------

    def RegisterFront(self, pszFrontAddress: Any, /) -> None:
        """Add a front address (``scheme://...``) to the failover list.

        A malformed address, an unknown scheme or a bad setting raises ``ValueError`` at once,
        unless ``CTPSHIM_FRONT`` is set (it replaces every registered front).
        """
        self._alive("RegisterFront")
        address = check_text(pszFrontAddress, f"{self._class_name}_RegisterFront", 2)
        self._add_front(address, self._fronts)

    def RegisterNameServer(self, pszNsAddress: Any, /) -> None:
        """A name server finds fronts: a real one (``tcp://``) is handed to openctp-ctp; any other
        address is used as a front."""
        self._alive("RegisterNameServer")
        address = check_text(pszNsAddress, f"{self._class_name}_RegisterNameServer", 2)
        self._add_front(address, self._name_servers)

    def _add_front(self, address: str, target: list[str]) -> None:
        if front_override() is None:
            registry.validate_front(address)
            registered = self._fronts + self._name_servers
            if registered and registry.is_pass_through(address) != registry.is_pass_through(registered[0]):
                raise registry.FrontAddressError(
                    f"front {address!r} cannot join {registered[0]!r}: real CTP fronts (tcp://, ssl://) and "
                    "other sources cannot be mixed in one failover list; use one API object for each"
                )
        target.append(address)

    def RegisterFensUserInfo(self, pFensUserInfo: Any, /) -> None:
        self._alive("RegisterFensUserInfo")
        check_struct(pFensUserInfo, "CThostFtdcFensUserInfoField", f"{self._class_name}_RegisterFensUserInfo", 2)
        self._setup.append(("RegisterFensUserInfo", (copy.copy(pFensUserInfo),)))

    def RegisterSpi(self, pSpi: Any, /) -> None:
        """Register the callback object (``None`` unregisters it)."""
        self._alive("RegisterSpi")
        method = f"{self._class_name}_RegisterSpi"
        if isinstance(pSpi, type):
            raise TypeError(
                f"in method '{method}', argument 2 of type '{self._spi_class_name} *': "
                f"got the class {pSpi.__name__} itself; pass an instance: RegisterSpi({pSpi.__name__}())"
            )
        other = "CThostFtdcTraderSpi" if self._flavour == "mdapi" else "CThostFtdcMdSpi"
        if pSpi is not None and any(base.__name__ == other for base in type(pSpi).__mro__):
            raise TypeError(
                f"in method '{method}', argument 2 of type '{self._spi_class_name} *': "
                f"got {type(pSpi).__name__}, a {other}; a {self._class_name} takes a {self._spi_class_name}"
            )
        if pSpi is not None and not hasattr(pSpi, "OnFrontConnected"):
            raise TypeError(
                f"in method '{method}', argument 2 of type '{self._spi_class_name} *': "
                f"got {type(pSpi).__name__} {short(pSpi)}; pass an instance of a {self._spi_class_name} subclass"
            )
        self._dispatcher.spi = pSpi

    def GetTradingDay(self, /) -> str:
        """The trading day (YYYYMMDD) after a successful login, '19800100' before."""
        self._alive("GetTradingDay")
        return self._backend.trading_day()


def request_method(owner: str, name: str, field_class: str, params: list[str]) -> Callable[..., int]:
    """Build ``Req*(field, nRequestID)``: check the arguments, then ask the backend."""
    c_name = f"{owner}_{name}"

    def method(self: Any, field: Any, request_id: Any, /) -> int:
        self._alive(name)
        check_struct(field, field_class, c_name, 2)
        return self._backend.request(name, field, check_int(request_id, c_name, 3))

    return named(method, name, owner, params)


class MdApiBase(ApiBase):
    """``CThostFtdcMdApi``'s behaviour; the class in :mod:`ctpshim.mdapi` adds the Req methods."""

    _class_name = "CThostFtdcMdApi"
    _spi_class_name = "CThostFtdcMdSpi"
    _flavour = "mdapi"

    @classmethod
    def CreateFtdcMdApi(cls, *args: Any) -> Any:
        """``CreateFtdcMdApi(pszFlowPath='', bIsUsingUdp=False, bIsMulticast=False, bIsProductionMode=True)``"""
        if len(args) > 4:
            raise TypeError(f"CThostFtdcMdApi_CreateFtdcMdApi expected at most 4 arguments, got {len(args)}")
        for position, flag in enumerate(args[1:], start=2):
            check_bool(flag, "CThostFtdcMdApi_CreateFtdcMdApi", position)
        return cls._create(args[0] if args else "", "CreateFtdcMdApi", tuple(args[1:]))

    def SubscribeMarketData(self, ppInstrumentID: Any, nCount: Any, /) -> int:
        """Subscribe to instruments: one ``OnRspSubMarketData`` each (``bIsLast`` on the last),
        then the current snapshot and every change through ``OnRtnDepthMarketData``."""
        return self._subscription(ppInstrumentID, nCount, "SubscribeMarketData")

    def UnSubscribeMarketData(self, ppInstrumentID: Any, nCount: Any, /) -> int:
        """Stop the ticks of instruments; one ``OnRspUnSubMarketData`` each."""
        return self._subscription(ppInstrumentID, nCount, "UnSubscribeMarketData")

    def SubscribeForQuoteRsp(self, ppInstrumentID: Any, nCount: Any, /) -> int:
        """Accepted (``OnRspSubForQuoteRsp`` each); these sources publish no quote requests."""
        return self._subscription(ppInstrumentID, nCount, "SubscribeForQuoteRsp")

    def UnSubscribeForQuoteRsp(self, ppInstrumentID: Any, nCount: Any, /) -> int:
        return self._subscription(ppInstrumentID, nCount, "UnSubscribeForQuoteRsp")

    def _subscription(self, ids: Any, count: Any, method: str) -> int:
        self._alive(method)
        return self._backend.subscribe(method, instrument_ids(ids, count, f"CThostFtdcMdApi_{method}"))


class TraderApiBase(ApiBase):
    """``CThostFtdcTraderApi``'s behaviour; :mod:`ctpshim.tdapi` adds the 118 Req methods."""

    _class_name = "CThostFtdcTraderApi"
    _spi_class_name = "CThostFtdcTraderSpi"
    _flavour = "tdapi"

    @staticmethod
    def _responder(module: Any) -> Any:
        """The simulated counter answers a trader API on a ctpshim front (imported at Init:
        ``import ctpshim`` stays light)."""
        from ..broker.responder import CounterResponder

        return CounterResponder(module)

    @classmethod
    def CreateFtdcTraderApi(cls, *args: Any) -> Any:
        """``CreateFtdcTraderApi(pszFlowPath='', bIsProductionMode=True)``"""
        if len(args) > 2:
            raise TypeError(f"CThostFtdcTraderApi_CreateFtdcTraderApi expected at most 2 arguments, got {len(args)}")
        if len(args) == 2:
            check_bool(args[1], "CThostFtdcTraderApi_CreateFtdcTraderApi", 2)
        return cls._create(args[0] if args else "", "CreateFtdcTraderApi", tuple(args[1:]))

    def _on_init(self) -> None:
        _touch_flow_files(self._flow_path, ("Private.con", "Public.con"))

    def SubscribePrivateTopic(self, nResumeType: Any, /) -> None:
        """Choose how the private topic resumes (``THOST_TERT_*``); call before ``Init``."""
        self._alive("SubscribePrivateTopic")
        # A market-data front has no private topic; a real one (tcp://) gets it at Init.
        resume = check_int(nResumeType, "CThostFtdcTraderApi_SubscribePrivateTopic", 2, "THOST_TE_RESUME_TYPE")
        self._setup.append(("SubscribePrivateTopic", (resume,)))

    def SubscribePublicTopic(self, nResumeType: Any, /) -> None:
        """Choose how the public topic resumes (``THOST_TERT_*``); call before ``Init``."""
        self._alive("SubscribePublicTopic")
        resume = check_int(nResumeType, "CThostFtdcTraderApi_SubscribePublicTopic", 2, "THOST_TE_RESUME_TYPE")
        self._setup.append(("SubscribePublicTopic", (resume,)))

    def GetFrontInfo(self, pFrontInfo: Any, /) -> None:
        """Fill ``pFrontInfo`` (``FrontAddr``, ``QryFreq``, ``FTDPkgFreq``) for the connected front."""
        self._alive("GetFrontInfo")
        check_struct(pFrontInfo, "CThostFtdcFrontInfoField", "CThostFtdcTraderApi_GetFrontInfo", 2)
        self._backend.front_info(pFrontInfo)

    def _system_info(self, name: str, field: Any) -> int:
        self._alive(name)
        check_struct(field, _SYSTEM_INFO_FIELDS[name], f"CThostFtdcTraderApi_{name}", 2)
        if name.startswith("Register") and not self._initialised:
            self._setup.append((name, (copy.copy(field),)))  # a real front's API registers it at Init
        return self._backend.system_info(name, field)

    def RegisterUserSystemInfo(self, pUserSystemInfo: Any, /) -> int:
        return self._system_info("RegisterUserSystemInfo", pUserSystemInfo)

    def SubmitUserSystemInfo(self, pUserSystemInfo: Any, /) -> int:
        return self._system_info("SubmitUserSystemInfo", pUserSystemInfo)

    def RegisterWechatUserSystemInfo(self, pUserSystemInfo: Any, /) -> int:
        return self._system_info("RegisterWechatUserSystemInfo", pUserSystemInfo)

    def SubmitWechatUserSystemInfo(self, pUserSystemInfo: Any, /) -> int:
        return self._system_info("SubmitWechatUserSystemInfo", pUserSystemInfo)


_SYSTEM_INFO_FIELDS = {
    "RegisterUserSystemInfo": "CThostFtdcUserSystemInfoField",
    "SubmitUserSystemInfo": "CThostFtdcUserSystemInfoField",
    "RegisterWechatUserSystemInfo": "CThostFtdcWechatUserSystemInfoField",
    "SubmitWechatUserSystemInfo": "CThostFtdcWechatUserSystemInfoField",
}


def _touch_flow_files(flow_path: str, names: tuple[str, ...]) -> None:
    """Create the flow files CTP keeps under the flow-path prefix, empty, where they are missing."""
    for name in names:
        path = flow_path + name
        if not os.path.exists(path):
            with open(path, "wb"):
                pass
