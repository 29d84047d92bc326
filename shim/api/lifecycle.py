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

What happens behind a front is the session's business (:mod:`ctpshim.runtime.session`) and the
adapter's (:mod:`ctpshim.adapters`); what a market-data-only front answers to trader requests
is in :mod:`ctpshim.api.trader_emulation`.
"""

from __future__ import annotations

import copy
import inspect
import itertools
import logging
import os
import threading
from typing import TYPE_CHECKING, Any, Callable

from ..fronts import registry
from ..ctp.calendar import now_china
from ..runtime.dispatcher import Dispatcher
from ..ctp.fields import Field, c_text

if TYPE_CHECKING:
    from ..runtime.session import Session

log = logging.getLogger("ctpshim")

API_VERSION = "v6.7.11_20250617 16:22:00.10369"  # what openctp-ctp 6.7.11 reports
TRADING_DAY_BEFORE_LOGIN = "19800100"
FRONT_ENV = "CTPSHIM_FRONT"
SUCCESS_MESSAGE = "CTP:正确"
_INT32 = (-(2**31), 2**31 - 1)
_instance_numbers = itertools.count(1)


# -- argument checks, with openctp's exception types and the start of its messages -------------

def check_struct(value: Any, expected: str, method: str, position: int) -> None:
    """A field object of class ``expected`` from either facade module (as SWIG accepts)."""
    if isinstance(value, Field) and type(value).__name__ == expected:
        return
    raise TypeError(
        f"in method '{method}', argument {position} of type '{expected} *': "
        f"got {type(value).__name__} {_short(value)}; pass a {expected}() object"
    )


def check_int(value: Any, method: str, position: int, ctype: str = "int") -> int:
    if not isinstance(value, int):  # bool is accepted, as SWIG accepts it
        raise TypeError(
            f"in method '{method}', argument {position} of type '{ctype}': "
            f"got {type(value).__name__} {_short(value)}; expected an int"
        )
    if not _INT32[0] <= value <= _INT32[1]:
        raise OverflowError(
            f"in method '{method}', argument {position} of type '{ctype}': {value} is outside int32"
        )
    return int(value)


def check_text(value: Any, method: str, position: int) -> str:
    if not isinstance(value, str):
        raise TypeError(
            f"in method '{method}', argument {position} of type 'char *': "
            f"got {type(value).__name__} {_short(value)}; expected a str"
        )
    return value


def instrument_ids(ids: Any, count: Any, method: str) -> list[str]:
    """The IDs of a ``Subscribe...(ppInstrumentID, nCount)`` call, checked like openctp's typemap.

    openctp wants a list of bytes; a list of str is accepted too.  ``nCount`` limits how many
    are used, as in C.  An ID ends at a trailing NUL, as a C string does; text after a NUL, text
    GB18030 cannot encode and IDs over 80 bytes are refused with ``TypeError`` (openctp would send
    a cut or garbled ID and the front would never answer for it).
    """
    if not isinstance(ids, list):
        raise TypeError(
            f"not a list: {method} takes a list of instrument IDs, got {type(ids).__name__} {_short(ids)}"
        )
    count = check_int(count, method, 3)
    result = []
    for index, item in enumerate(ids[: max(count, 0)]):
        if isinstance(item, bytes):
            try:
                item = item.decode("gb18030")
            except UnicodeDecodeError:
                raise TypeError(f"{method}: instrument ID {item!r} at index {index} is not valid GB18030 text") from None
        elif not isinstance(item, str):
            raise TypeError(
                f"list must contain strings: {method} got {type(item).__name__} {_short(item)} at index {index}"
            )
        try:
            item = c_text(item)
            size = len(item.encode("gb18030"))
        except ValueError as exc:  # UnicodeEncodeError included
            problem = "cannot be encoded in GB18030" if isinstance(exc, UnicodeError) else "has text after a NUL byte"
            raise TypeError(
                f"{method}: instrument ID {_short(item)} at index {index} {problem}; "
                "an instrument ID is up to 80 bytes of GB18030 text without NUL bytes"
            ) from None
        if size > 80:
            raise TypeError(f"{method}: instrument ID {item[:40]!r}... at index {index} is longer than 80 bytes")
        result.append(item)
    return result


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


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _named(function: Callable[..., Any], name: str, owner: str, params: list[str]) -> Callable[..., Any]:
    """Give a generated method its CTP name and a signature with CTP's parameter names."""
    function.__name__ = name
    function.__qualname__ = f"{owner}.{name}"
    function.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)]
        + [inspect.Parameter(p, inspect.Parameter.POSITIONAL_ONLY) for p in params]
    )
    return function


class ApiBase:
    """What the md and trader APIs share: creation, lifecycle, fronts, Spi, trading day."""

    _class_name = ""
    _spi_class_name = ""
    _module: Any = None  # the facade module whose field classes this API hands to its Spi
    _flow_files: tuple[str, ...] = ("DialogRsp.con", "QueryRsp.con", "TradingDay.con")
    _pump_ticks = True

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
        for name in cls._flow_files:
            path = flow_path + name
            if not os.path.exists(path):
                with open(path, "wb"):
                    pass
        self = object.__new__(cls)
        number = next(_instance_numbers)
        kind = "md" if cls._pump_ticks else "td"
        self._name = f"ctpshim-{kind}{number}"
        self._flow_path = flow_path
        self._lock = threading.Lock()
        self._fronts: list[str] = []
        self._name_servers: list[str] = []
        self._dispatcher = Dispatcher(f"{self._name}-callbacks", cls._spi_class_name)
        self._session: Session | None = None
        # A real front (tcp://) is driven through openctp-ctp instead of a session; the bridge
        # needs the factory's flags and the calls made before Init, to repeat them.
        self._bridge: Any = None
        self._create_args = create_args
        self._setup: list[tuple[str, tuple[Any, ...]]] = []
        self._initialised = False
        self._released = threading.Event()
        self._trading_day = TRADING_DAY_BEFORE_LOGIN
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
        fronts = self._effective_fronts()  # a bad CTPSHIM_FRONT raises before anything starts
        with self._lock:
            if self._initialised:
                raise RuntimeError(f"{self._class_name}.Init was already called on this object")
            self._initialised = True
        self._dispatcher.start()
        if not fronts:
            log.warning("%s: Init() with no front registered: call RegisterFront first", self._name)
            return
        self._on_init()
        if registry.is_pass_through(fronts[0]):
            from ..adapters.tcp import Bridge

            overridden = fronts != self._fronts + self._name_servers
            self._bridge = Bridge(
                "mdapi" if self._pump_ticks else "tdapi", self._module, self._dispatcher, self._flow_path,
                self._create_args, fronts if overridden else self._fronts,
                [] if overridden else self._name_servers, self._setup,
            )
            return
        from ..runtime.session import Session  # with asyncio, loaded when the first API object starts

        self._session = Session(self._name, self._dispatcher, fronts, self._pump_ticks)
        self._session.start()

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
        if self._session is not None:
            self._session.close()
        self._dispatcher.stop()
        if self._bridge is not None:
            self._bridge.release()
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
        if isinstance(pSpi, type):
            raise TypeError(
                f"in method '{self._class_name}_RegisterSpi', argument 2 of type '{self._spi_class_name} *': "
                f"got the class {pSpi.__name__} itself; pass an instance: RegisterSpi({pSpi.__name__}())"
            )
        other = "CThostFtdcTraderSpi" if self._pump_ticks else "CThostFtdcMdSpi"
        if pSpi is not None and any(base.__name__ == other for base in type(pSpi).__mro__):
            raise TypeError(
                f"in method '{self._class_name}_RegisterSpi', argument 2 of type '{self._spi_class_name} *': "
                f"got {type(pSpi).__name__}, a {other}; a {self._class_name} takes a {self._spi_class_name}"
            )
        if pSpi is not None and not hasattr(pSpi, "OnFrontConnected"):
            raise TypeError(
                f"in method '{self._class_name}_RegisterSpi', argument 2 of type '{self._spi_class_name} *': "
                f"got {type(pSpi).__name__} {_short(pSpi)}; pass an instance of a {self._spi_class_name} subclass"
            )
        self._dispatcher.spi = pSpi

    def GetTradingDay(self, /) -> str:
        """The trading day (YYYYMMDD) after a successful login, '19800100' before."""
        self._alive("GetTradingDay")
        if self._bridge is not None:
            day: str = self._bridge.call("GetTradingDay")
            return day
        return self._trading_day

    def _effective_fronts(self) -> list[str]:
        override = front_override()
        if override is not None:
            if self._fronts and self._fronts != [override]:
                log.info("%s: %s=%s replaces the registered front(s) %s", self._name, FRONT_ENV, override, self._fronts)
            return [override]
        return self._fronts + self._name_servers

    # -- helpers for the request methods --------------------------------------------------------

    def _connected(self) -> bool:
        session = self._session
        return session is not None and session.connected and not self._released.is_set()

    def _post(self, callback: str, *args: Any) -> None:
        self._dispatcher.post(callback, *args)

    def _field(self, name: str, **values: Any) -> Any:
        obj = getattr(self._module, name)()
        for key, value in values.items():
            setattr(obj, key, value)
        return obj

    def _rsp_info(self, error_id: int = 0, message: str = SUCCESS_MESSAGE) -> Any:
        return self._field("CThostFtdcRspInfoField", ErrorID=error_id, ErrorMsg=message)

    def _login(self, request: Any, request_id: int) -> int:
        session = self._session
        if not self._connected() or session is None:
            return -1
        self._trading_day = session.trading_day()
        now = now_china().strftime("%H:%M:%S")
        response = self._field(
            "CThostFtdcRspUserLoginField",
            TradingDay=self._trading_day,
            LoginTime=now,
            BrokerID=request.BrokerID,
            UserID=request.UserID,
            SystemName="ctpshim",
            FrontID=session.front_id,
            SessionID=session.session_id,
            MaxOrderRef="1",
            SHFETime=now,
            DCETime=now,
            CZCETime=now,
            FFEXTime=now,
            INETime=now,
            GFEXTime=now,
        )
        self._post("OnRspUserLogin", response, self._rsp_info(), request_id, True)
        if self._pump_ticks:
            session.logged_in()
        return 0

    def _logout(self, request: Any, request_id: int) -> int:
        if not self._connected():
            return -1
        response = self._field("CThostFtdcUserLogoutField", BrokerID=request.BrokerID, UserID=request.UserID)
        self._post("OnRspUserLogout", response, self._rsp_info(), request_id, True)
        return 0


def request_method(owner: str, name: str, field_class: str, params: list[str],
                   handler: Callable[[Any, str, Any, int], int]) -> Callable[..., int]:
    """Build ``Req*(field, nRequestID)``: check the arguments, then ``handler(api, name, field, id)``."""
    c_name = f"{owner}_{name}"

    def method(self: Any, field: Any, request_id: Any, /) -> int:
        self._alive(name)
        check_struct(field, field_class, c_name, 2)
        request_id = check_int(request_id, c_name, 3)
        bridge = self._bridge
        if bridge is not None:
            result: int = bridge.call(name, field, request_id)
            return result
        return handler(self, name, field, request_id)

    return _named(method, name, owner, params)


class MdApiBase(ApiBase):
    """``CThostFtdcMdApi``'s behaviour; the class in :mod:`ctpshim.mdapi` adds the Req methods."""

    _class_name = "CThostFtdcMdApi"
    _spi_class_name = "CThostFtdcMdSpi"

    @classmethod
    def CreateFtdcMdApi(cls, *args: Any) -> Any:
        """``CreateFtdcMdApi(pszFlowPath='', bIsUsingUdp=False, bIsMulticast=False, bIsProductionMode=True)``"""
        if len(args) > 4:
            raise TypeError(f"CThostFtdcMdApi_CreateFtdcMdApi expected at most 4 arguments, got {len(args)}")
        flow_path = args[0] if args else ""
        for position, flag in enumerate(args[1:], start=2):
            if not isinstance(flag, (bool, int)):
                raise TypeError(
                    f"in method 'CThostFtdcMdApi_CreateFtdcMdApi', argument {position} of type 'bool': "
                    f"got {type(flag).__name__} {_short(flag)}"
                )
        return cls._create(flow_path, "CreateFtdcMdApi", tuple(args[1:]))

    def SubscribeMarketData(self, ppInstrumentID: Any, nCount: Any, /) -> int:
        """Subscribe to instruments: one ``OnRspSubMarketData`` each (``bIsLast`` on the last),
        then the current snapshot and every change through ``OnRtnDepthMarketData``."""
        return self._subscription(ppInstrumentID, nCount, "SubscribeMarketData", "OnRspSubMarketData", True)

    def UnSubscribeMarketData(self, ppInstrumentID: Any, nCount: Any, /) -> int:
        """Stop the ticks of instruments; one ``OnRspUnSubMarketData`` each."""
        return self._subscription(ppInstrumentID, nCount, "UnSubscribeMarketData", "OnRspUnSubMarketData", False)

    def SubscribeForQuoteRsp(self, ppInstrumentID: Any, nCount: Any, /) -> int:
        """Accepted (``OnRspSubForQuoteRsp`` each); these sources publish no quote requests."""
        return self._subscription(ppInstrumentID, nCount, "SubscribeForQuoteRsp", "OnRspSubForQuoteRsp", None)

    def UnSubscribeForQuoteRsp(self, ppInstrumentID: Any, nCount: Any, /) -> int:
        return self._subscription(ppInstrumentID, nCount, "UnSubscribeForQuoteRsp", "OnRspUnSubForQuoteRsp", None)

    def _subscription(self, ids: Any, count: Any, method: str, callback: str, add: bool | None) -> int:
        self._alive(method)
        names = instrument_ids(ids, count, f"CThostFtdcMdApi_{method}")
        if self._bridge is not None:
            return self._bridge.subscribe(method, names)
        session = self._session
        if not self._connected() or session is None:
            return -1
        if names and add is False:
            session.mute(names)
        for index, instrument in enumerate(names):
            specific = self._field("CThostFtdcSpecificInstrumentField", InstrumentID=instrument)
            self._post(callback, specific, self._rsp_info(0, "CTP:No Error"), 0, index == len(names) - 1)
        if names and add is not None:
            (session.subscribe if add else session.unsubscribe)(names)
        return 0


def md_request(api: Any, name: str, field: Any, request_id: int) -> int:
    """What an md front answers to ``ReqUserLogin``, ``ReqUserLogout`` and ``ReqQryMulticastInstrument``."""
    if name == "ReqUserLogin":
        return api._login(field, request_id)
    if name == "ReqUserLogout":
        return api._logout(field, request_id)
    if not api._connected():
        return -1
    api._post("OnRspQryMulticastInstrument", None, None, request_id, True)
    return 0


class TraderApiBase(ApiBase):
    """``CThostFtdcTraderApi``'s behaviour; :mod:`ctpshim.tdapi` adds the 118 Req methods."""

    _class_name = "CThostFtdcTraderApi"
    _spi_class_name = "CThostFtdcTraderSpi"
    _pump_ticks = False

    @classmethod
    def CreateFtdcTraderApi(cls, *args: Any) -> Any:
        """``CreateFtdcTraderApi(pszFlowPath='', bIsProductionMode=True)``"""
        if len(args) > 2:
            raise TypeError(f"CThostFtdcTraderApi_CreateFtdcTraderApi expected at most 2 arguments, got {len(args)}")
        if len(args) == 2 and not isinstance(args[1], (bool, int)):
            raise TypeError(
                "in method 'CThostFtdcTraderApi_CreateFtdcTraderApi', argument 2 of type 'bool': "
                f"got {type(args[1]).__name__} {_short(args[1])}"
            )
        self = cls._create(args[0] if args else "", "CreateFtdcTraderApi", tuple(args[1:]))
        self._settlement_confirmed: str | None = None
        return self

    def _on_init(self) -> None:
        for name in ("Private.con", "Public.con"):
            path = self._flow_path + name
            if not os.path.exists(path):
                with open(path, "wb"):
                    pass

    def SubscribePrivateTopic(self, nResumeType: Any, /) -> None:
        """Choose how the private topic resumes (``THOST_TERT_*``); call before ``Init``."""
        self._alive("SubscribePrivateTopic")
        # Checked like openctp; a market-data front has no private topic, a real one (tcp://) does.
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
        if self._bridge is not None:
            self._bridge.front_info(pFrontInfo)
            return
        session = self._session
        address = session.front_url if self._connected() and session is not None else ""
        limit = 100  # FrontAddr is char[101]; a longer front URL is shown cut short
        pFrontInfo.FrontAddr = address.encode("gb18030")[:limit].decode("gb18030", "ignore")
        pFrontInfo.QryFreq = 0
        pFrontInfo.FTDPkgFreq = 0

    def _system_info(self, name: str, field: Any) -> int:
        self._alive(name)
        check_struct(field, _SYSTEM_INFO_FIELDS[name], f"CThostFtdcTraderApi_{name}", 2)
        if self._bridge is not None:
            result: int = self._bridge.call(name, field)
            return result
        if name.startswith("Register") and not self._initialised:
            self._setup.append((name, (copy.copy(field),)))  # for a real front, registered at Init
        return 0

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
