"""A remote client's trader API, run in the server on the source's simulated counter.

:class:`ServerTrader` is one real ctpshim trader API object (:mod:`ctpshim.tdapi`) on a source's
front address, in the server process, for one remote client (a ``ctpshim://`` td connection, a
webctp ``/td/`` socket).  Accounts live in the process-wide counter of that front and its
settings, so every client on one account (and every local tdapi object on the same front) shares
it: one balance, one order book, every private report to every session of the account.

Threads: the API's callbacks run on its own dispatcher thread and are handed to ``forward`` there;
every API call runs on this trader's own worker thread, in the order the calls were made, so the
IO loop never waits on the facade.  ``close`` releases the API off the IO loop.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import re
import threading
from typing import TYPE_CHECKING, Any, Callable

from .. import tdapi
from ..ctp.fields import load_spec

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger("ctpshim.server")

Forward = Callable[[str, tuple[Any, ...]], None]

_SYSTEM_INFO = ("RegisterUserSystemInfo", "SubmitUserSystemInfo", "RegisterWechatUserSystemInfo",
                "SubmitWechatUserSystemInfo")


def _callable_methods() -> frozenset[str]:
    """The trader API methods a remote client may call: every ``Req*`` and the system-info four
    (each returns a CTP code); never the lifecycle (``Init``, ``Join``, ``Release``, ...)."""
    names = [m["name"] for m in load_spec()["modules"]["tdapi"]["api"]["methods"]]
    return frozenset(n for n in names if n.startswith("Req") or n in _SYSTEM_INFO)


CALLABLE = _callable_methods()
"""What :meth:`ServerTrader.call` accepts."""

SPI_CALLBACKS = tuple(m["name"] for m in load_spec()["modules"]["tdapi"]["spi"]["methods"])
"""Every ``On*`` callback of ``CThostFtdcTraderSpi``, all of them forwarded."""


def _forwarding_spi(forward: Forward) -> Any:
    """A ``CThostFtdcTraderSpi`` whose every callback calls ``forward(name, args)``."""

    def method(name: str) -> Callable[..., None]:
        def callback(self: Any, *args: Any) -> None:
            try:
                forward(name, args)
            except Exception:  # noqa: BLE001 - a broken client link must not stop the API's dispatcher
                log.exception("ServerTrader: forwarding %s failed", name)

        callback.__name__ = name
        return callback

    body = {name: method(name) for name in SPI_CALLBACKS}
    return type("ForwardingTraderSpi", (tdapi.CThostFtdcTraderSpi,), body)()


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def flow_directory(home: Any, client_name: str) -> str:
    """``home/flow/<client>/``: a client name made safe for a directory name (``..`` and separators
    replaced), created."""
    safe = _UNSAFE.sub("_", client_name).strip(".") or "anonymous"
    directory = os.path.join(str(home), "flow", safe)
    os.makedirs(directory, exist_ok=True)
    return directory + os.sep


class ServerTrader:
    """One real ctpshim tdapi object on the source's front, for one remote client.

    ``server``: the :class:`ctpshim.server.server.Server` (its ``feed(source).url`` is the front
    address, its ``home`` holds the flow files); ``source``: the source's name (``None``/``""``:
    the default one; an unknown name raises ``KeyError`` naming the valid ones); ``client_name``:
    the client's name (from its token), which names its flow directory
    ``server.home/flow/<client>/``; ``forward(callback, args)``: called for every ``On*`` callback
    of the API, with CTP's name and arguments (field objects of :mod:`ctpshim.tdapi`), on the API's
    dispatcher thread, in order; it must not block.

    Nothing is created until :meth:`start`.
    """

    def __init__(self, server: "Server", source: str | None, client_name: str, forward: Forward) -> None:
        feed = server.feed(source)
        self.front: str = feed.url
        self.source: str = feed.name
        self.client_name = client_name
        self.flow_path = flow_directory(server.home, client_name)
        self._forward = forward
        self._spi = _forwarding_spi(forward)
        self._api: Any = None
        self._lock = threading.Lock()
        self._closed = False
        self._started = False
        self._worker = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"ctpshim-serve-td-{client_name}")

    def __repr__(self) -> str:
        return f"<ServerTrader {self.client_name} on {self.source} ({self.front})>"

    def start(self, private_resume: int = tdapi.THOST_TERT_RESUME, public_resume: int = tdapi.THOST_TERT_RESUME) -> None:
        """Create the API, register the forwarding Spi, choose the topic resume modes
        (``THOST_TERT_*``), register the source's front and ``Init``: on the worker thread;
        returns at once.  ``OnFrontConnected`` then comes through ``forward``.  ``ValueError``
        for a resume mode that is not one of CTP's."""
        valid = (tdapi.THOST_TERT_RESTART, tdapi.THOST_TERT_RESUME, tdapi.THOST_TERT_QUICK, tdapi.THOST_TERT_NONE)
        for name, mode in (("private_resume", private_resume), ("public_resume", public_resume)):
            if type(mode) is not int or mode not in valid:
                raise ValueError(f"{name}={mode!r} is not a THOST_TERT_* resume mode; valid: "
                                 "0 (RESTART), 1 (RESUME), 2 (QUICK), 3 (NONE)")
        with self._lock:
            if self._closed or self._started:
                raise RuntimeError(f"{self!r}: start() may be called once, before close()")
            self._started = True
        self._worker.submit(self._start, private_resume, public_resume)

    def _start(self, private_resume: int, public_resume: int) -> None:
        if self._closed:
            return
        try:
            api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(self.flow_path)
            api.RegisterSpi(self._spi)
            api.SubscribePrivateTopic(private_resume)
            api.SubscribePublicTopic(public_resume)
            api.RegisterFront(self.front)
            with self._lock:
                if self._closed:
                    api.Release()
                    return
                self._api = api
            api.Init()
        except Exception:  # noqa: BLE001 - logged; the client hears no OnFrontConnected and its calls return -1
            log.exception("%r: the trader API could not start", self)

    def call(self, method: str, *args: Any) -> "concurrent.futures.Future[int]":
        """``api.<method>(*args)`` on the worker thread, after every call made before; a future of
        the CTP return code (0 sent, -1 not connected, -2/-3 flow control).

        ``method`` must be a ``Req*`` method or one of the four system-info calls: any other name
        raises ``ValueError`` naming it.  The future answers ``-1`` for a call after :meth:`close`
        or when the API could not start, and raises what the API raises for bad arguments
        (``TypeError``).  Never blocks the caller.
        """
        if method not in CALLABLE:
            raise ValueError(f"{method!r} is not a trader API request a client may call; valid: the Req* methods "
                             f"and {', '.join(_SYSTEM_INFO)}")
        try:
            return self._worker.submit(self._call, method, args)
        except RuntimeError:  # the worker was shut down by close()
            done: concurrent.futures.Future[int] = concurrent.futures.Future()
            done.set_result(-1)
            return done

    def _call(self, method: str, args: tuple[Any, ...]) -> int:
        with self._lock:
            api = None if self._closed else self._api
        if api is None:
            return -1  # CTP's "not connected"
        result: int = getattr(api, method)(*args)
        return result

    def close(self) -> None:
        """Release the API (no ``forward`` after that finishes) and stop the worker; returns at
        once, from any thread, the IO loop included.  Calls still queued answer ``-1``."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            api = self._api
        self._worker.shutdown(wait=False)  # calls still queued run and answer -1
        if api is None:
            return
        # Release joins the API's dispatcher: never on the IO loop nor on that dispatcher's thread.
        threading.Thread(target=self._release, args=(api,), name=f"ctpshim-serve-release-{self.client_name}",
                         daemon=True).start()

    def _release(self, api: Any) -> None:
        try:
            api.RegisterSpi(None)
            api.Release()
        except Exception:  # noqa: BLE001 - logged; nothing else to do for a closing client
            log.exception("%r: Release failed", self)

    @property
    def closed(self) -> bool:
        return self._closed
