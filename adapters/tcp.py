"""``tcp://host:port`` and ``ssl://host:port``: a real CTP front, through openctp-ctp.

A real front speaks CTP's own protocol, logs in, trades and reconnects by itself, so it is not
an adapter of the tick-source kind: its registry class says ``capabilities.pass_through`` and
gives the API object its own backend (:class:`Bridge`, a :class:`ctpshim.runtime.backends.Backend`),
a real openctp-ctp API underneath instead of a session.  Requests are converted to openctp's field
objects and forwarded, with openctp's return codes; every callback is converted to ctpshim's field
objects on openctp's thread and delivered on the API's own dispatcher thread, in order.  CTP's
reconnects and reason codes pass through untouched.

openctp-ctp is an optional extra (``pip install 'ctpshim[openctp]'``).  Its native modules need
the ``zh_CN.GB18030`` locale when they are imported and end the interpreter without it, so that
is checked first and reported as an error instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import importlib.machinery
import logging
import sys
import threading
from functools import lru_cache
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterable

from ..errors import UpstreamUnavailable
from ..ctp.fields import Field, default_values, from_values, load_spec, member_names, values_of
from ..fronts.url import FrontURL
from ..runtime.backends import NOT_SENT, TRADING_DAY_BEFORE_LOGIN, Backend, BackendContext
from .base import Adapter, Capabilities

if TYPE_CHECKING:
    from ..runtime.dispatcher import Dispatcher

log = logging.getLogger("ctpshim")

LOCALE = "zh_CN.GB18030"
INSTALL_LOCALE = "sudo localedef -c -i zh_CN -f GB18030 zh_CN.GB18030 (Debian/Ubuntu: apt-get install locales first)"


def parse_address(url: FrontURL) -> tuple[str, int]:
    """``(host, port)`` of a ``tcp://``/``ssl://`` front; ``ValueError`` naming what is missing."""
    if not url.host:
        raise ValueError(f"{url.scheme}:// needs a host and a port, e.g. {url.scheme}://180.168.146.187:10131")
    if url.port is None:
        raise ValueError(f"{url.scheme}://{url.host} has no port; write {url.scheme}://{url.host}:PORT")
    if url.path not in ("", "/") or url.query:
        raise ValueError(f"{url.scheme}:// takes only host:port (CTP front addresses have no path or settings)")
    return url.host, url.port


@lru_cache(maxsize=1)
def _locale_installed() -> bool:
    # newlocale/freelocale test the locale without touching the process's own (setlocale would).
    if not sys.platform.startswith("linux"):
        return True
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.newlocale.restype = ctypes.c_void_p
    libc.newlocale.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p]
    libc.freelocale.argtypes = [ctypes.c_void_p]
    all_categories = 0x1FBF  # glibc's LC_ALL_MASK
    handle = libc.newlocale(all_categories, LOCALE.encode(), None)
    if not handle:
        return False
    libc.freelocale(handle)
    return True


def openctp_problem() -> str | None:
    """Why openctp-ctp cannot be used here, or ``None`` when it can (it is not imported)."""
    # PathFinder, not importlib.util.find_spec: under `ctpshim run` the name is an alias of ctpshim.
    if importlib.machinery.PathFinder.find_spec("openctp_ctp") is None:
        return "tcp:// and ssl:// fronts need openctp-ctp: pip install 'ctpshim[openctp]'"
    if not _locale_installed():
        return (f"openctp-ctp needs the {LOCALE} locale, which is not installed (importing it would end the "
                f"process); install it with: {INSTALL_LOCALE}")
    return None


_real_modules: dict[str, Any] = {}
_import_lock = threading.Lock()


def load_openctp(flavour: str) -> Any:
    """openctp-ctp's ``mdapi`` or ``tdapi`` module (tests replace this with a stand-in).

    Under ``ctpshim run`` the ``openctp_ctp`` names are aliases of ctpshim; the real package is
    imported past them and the aliases are put back.
    """
    with _import_lock:
        if flavour in _real_modules:
            return _real_modules[flavour]
        problem = openctp_problem()
        if problem:
            raise UpstreamUnavailable(problem)
        aliases = {}
        if getattr(sys.modules.get("openctp_ctp"), "__ctpshim__", False):
            aliases = {name: sys.modules.pop(name) for name in list(sys.modules)
                       if name == "openctp_ctp" or name.startswith("openctp_ctp.")}
        try:
            package = importlib.import_module("openctp_ctp")
            _real_modules.update(mdapi=package.mdapi, tdapi=package.tdapi)
        finally:
            sys.modules.update(aliases)
        return _real_modules[flavour]


class TcpFront(Adapter):
    """Registry entry for ``tcp://``: checks the address and makes the API object's :class:`Bridge`.

    A session never drives it: its adapter hooks only say so.
    """

    scheme = "tcp"
    capabilities = Capabilities(depth_levels=5, has_instruments=True, can_trade=True, pass_through=True)

    @classmethod
    def check(cls, url: FrontURL, settings: dict[str, Any]) -> None:
        parse_address(url)
        problem = openctp_problem()
        if problem:
            raise ValueError(problem)

    @classmethod
    def open_backend(cls, context: BackendContext) -> "Bridge":
        """The backend an API object drives on these fronts (not started)."""
        return Bridge(context)

    async def connect(self) -> None:
        raise self._not_a_session()

    async def subscribe(self, ids: Iterable[str]) -> None:
        raise self._not_a_session()

    async def unsubscribe(self, ids: Iterable[str]) -> None:
        raise self._not_a_session()

    def ticks(self) -> AsyncIterator[Any]:
        raise self._not_a_session()

    def _not_a_session(self) -> UpstreamUnavailable:
        return UpstreamUnavailable(f"{self.url.raw}: a real CTP front is driven by the pass-through bridge, not a session")


class SslFront(TcpFront):
    scheme = "ssl"


# -- the bridge -----------------------------------------------------------------------------------

def to_openctp(field: Any, module: Any) -> Any:
    """A new openctp field object of the same class holding ``field``'s values."""
    cls = type(field)
    target = getattr(module, cls.__name__)()
    for member, value, default in zip(member_names(cls), values_of(field), default_values(cls)):
        if value != default:
            if isinstance(value, bytes):  # tdapi's raw-GBK members: openctp takes them as str
                value = value.decode("gb18030", "replace")
            setattr(target, member, value)
    return target


def from_openctp(obj: Any, module: Any) -> Any:
    """A ctpshim field object (of ``module``) holding the values of openctp field ``obj``."""
    cls = getattr(module, type(obj).__name__)
    return from_values(cls, [getattr(obj, member) for member in member_names(cls)])


def _converter(param_type: str, module: Any) -> Callable[[Any], Any] | None:
    if not (param_type.startswith("CThostFtdc") and param_type.rstrip(" *").endswith("Field")):
        return None
    return lambda value: None if value is None else from_openctp(value, module)


class Bridge(Backend):
    """One real openctp-ctp API under one ctpshim API object.

    ``start`` creates it with the factory's flags, registers the fronts, name servers and the calls
    the program made before ``Init`` that the real API needs before its own ``Init``
    (``SubscribePrivateTopic``, ``RegisterFensUserInfo`` ...), in order, then starts it.
    """

    def __init__(self, context: BackendContext) -> None:
        self.context = context
        self.real = load_openctp(context.flavour)
        self.api: Any = None
        self.spi: Any = None
        self._connected = False
        self._closed = False
        self._lock = threading.Lock()

    # -- the Backend interface ---------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected and not self._closed

    def start(self) -> None:
        context = self.context
        spec = load_spec()["modules"][context.flavour]
        api_class = getattr(self.real, spec["api"]["name"])
        factory = "CreateFtdcMdApi" if context.flavour == "mdapi" else "CreateFtdcTraderApi"
        with self._lock:
            if self._closed:
                return
            self.api = getattr(api_class, factory)(context.flow_path, *context.create_args)
            self.spi = self._proxy_spi(spec)  # held here: the real API keeps no reference to it
            self.api.RegisterSpi(self.spi)
            for front in context.fronts:
                self.api.RegisterFront(front)
            for server in context.name_servers:
                self.api.RegisterNameServer(server)
            for method, args in context.setup:
                getattr(self.api, method)(*self._outgoing(args))
            self.api.Init()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            api = self.api
        if api is not None:
            api.RegisterSpi(None)
            api.Release()

    def trading_day(self) -> str:
        day: str = self._call("GetTradingDay", default=TRADING_DAY_BEFORE_LOGIN)
        return day

    def front_info(self, target: Any) -> None:
        info = self.real.CThostFtdcFrontInfoField()
        self._call("GetFrontInfo", info, default=None)
        for member in member_names(type(target)):
            setattr(target, member, getattr(info, member))

    def subscribe(self, method: str, ids: list[str]) -> int:
        encoded = [i.encode("gb18030") for i in ids]
        result: int = self._call(method, encoded, len(encoded))
        return result

    def request(self, name: str, field: Any, request_id: int) -> int:
        result: int = self._call(name, field, request_id)
        return result

    def system_info(self, name: str, field: Any) -> int:
        result: int = self._call(name, field)
        return result

    # -- inside --------------------------------------------------------------------------------

    def _call(self, method: str, *args: Any, default: Any = NOT_SENT) -> Any:
        """Forward ``method(*args)`` to the real API (field arguments converted); ``default`` when
        it is not running (before ``start``, after ``close``: the CTP library would crash)."""
        outgoing = self._outgoing(args)
        with self._lock:  # Release waits for a call in flight
            if self.api is None or self._closed:
                return default
            return getattr(self.api, method)(*outgoing)

    def _outgoing(self, args: tuple[Any, ...]) -> list[Any]:
        return [to_openctp(arg, self.real) if isinstance(arg, Field) else arg for arg in args]

    def _proxy_spi(self, spec: dict[str, Any]) -> Any:
        own, dispatcher = self.context.module, self.context.dispatcher
        body: dict[str, Any] = {}
        for method in spec["spi"]["methods"]:
            converters = [_converter(ptype, own) for _, ptype in method["params"]]
            body[method["name"]] = _forwarder(method["name"], converters, dispatcher, self._link)
        base = getattr(self.real, spec["spi"]["name"])
        body["__init__"] = lambda proxy: base.__init__(proxy)
        return type(f"Bridge{spec['spi']['name']}", (base,), body)()

    def _link(self, up: bool) -> None:
        self._connected = up


def _forwarder(name: str, converters: list[Callable[[Any], Any] | None], dispatcher: "Dispatcher",
               link: Callable[[bool], None]) -> Callable[..., None]:
    post = dispatcher.post
    if name == "OnRtnDepthMarketData":
        convert = converters[0]
        assert convert is not None

        def forward_tick(proxy: Any, data: Any) -> None:
            try:
                tick = convert(data)
            except Exception:  # noqa: BLE001 - a conversion bug must not go silent on openctp's thread
                log.exception("ctpshim: could not convert a tick from openctp-ctp")
                return
            # Held here while the program's callbacks are far behind, as the CTP library holds
            # its network thread while a callback runs (see ctpshim.runtime.queue_policy).
            dispatcher.post_ticks_blocking([tick])

        return forward_tick

    up = {"OnFrontConnected": True, "OnFrontDisconnected": False}.get(name)

    def forward(proxy: Any, *args: Any) -> None:
        if up is not None:
            link(up)
        try:
            converted = [arg if convert is None else convert(arg) for arg, convert in zip(args, converters)]
        except Exception:  # noqa: BLE001 - a conversion bug must not go silent on openctp's thread
            log.exception("ctpshim: could not convert the arguments of %s from openctp-ctp", name)
            return
        post(name, *converted)

    return forward


# -- the health check `ctpshim ping` runs ---------------------------------------------------------

def ctp_login_probe(address: str, timeout: float) -> dict[str, Any]:
    """Measure a front as openctp's ``ctpping`` does: connect, send an empty ``ReqUserLogin``,
    time any ``OnRspUserLogin``.  Blocking (run it in a thread); raises ``UpstreamError`` with the
    cause in words.  Needs openctp-ctp."""
    import queue
    import shutil
    import tempfile
    import time

    from ..errors import UpstreamDisconnected, UpstreamProtocolError, describe_reason

    md = load_openctp("mdapi")
    events: queue.Queue[tuple[Any, ...]] = queue.Queue()

    class ProbeSpi(md.CThostFtdcMdSpi):  # type: ignore[name-defined,misc]
        def __init__(self) -> None:
            super().__init__()

        def OnFrontConnected(self) -> None:
            events.put(("connected", time.perf_counter()))

        def OnFrontDisconnected(self, reason: int) -> None:
            events.put(("disconnected", reason))

        def OnRspUserLogin(self, response: Any, info: Any, request_id: int, last: bool) -> None:
            error = (info.ErrorID, info.ErrorMsg) if info is not None else (0, "")
            events.put(("login", time.perf_counter(), *error))

    def wait(kind: str, until: float, silence: str) -> tuple[Any, ...]:
        while True:
            remaining = until - time.perf_counter()
            if remaining <= 0:
                raise UpstreamUnavailable(silence)
            try:
                event = events.get(timeout=remaining)
            except queue.Empty:
                continue
            if event[0] == "disconnected":
                raise UpstreamDisconnected(describe_reason(event[1]), event[1])
            if event[0] == kind:
                return event

    flow = tempfile.mkdtemp(prefix="ctpshim-ping-")
    api = md.CThostFtdcMdApi.CreateFtdcMdApi(flow + "/")
    spi = ProbeSpi()
    api.RegisterSpi(spi)
    api.RegisterFront(address)
    started = time.perf_counter()
    api.Init()
    try:
        connected = wait("connected", started + timeout,
                         f"no CTP handshake within {timeout:g} s: the port takes connections but does not answer "
                         "as a CTP front (a wrong port, a proxy, or an overloaded front)")[1]
        sent = time.perf_counter()
        code = api.ReqUserLogin(md.CThostFtdcReqUserLoginField(), 1)
        if code != 0:
            raise UpstreamProtocolError(f"ReqUserLogin returned {code} right after OnFrontConnected")
        login = wait("login", sent + timeout, f"connected, but no answer to ReqUserLogin within {timeout:g} s")
    finally:
        api.RegisterSpi(None)
        api.Release()
        shutil.rmtree(flow, ignore_errors=True)
    return {
        "api_version": md.CThostFtdcMdApi.GetApiVersion(),
        "handshake_ms": round((connected - started) * 1000, 2),
        "login_ms": round((login[1] - sent) * 1000, 2),
        "login_error": f"{login[2]} {login[3]}" if login[2] else "",
    }
