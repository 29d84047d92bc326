"""Shared fixtures: a recording Spi, bounded waits, API objects that are always released, and the
real openctp-ctp for conformance tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from ctpshim import mdapi, tdapi
from ctpshim.ctp import clock
from ctpshim.runtime import reconnect

TESTS = Path(__file__).resolve().parent
# Real data and feed payloads the tests read, copied into the repository with their sources and licences.
DATA = TESTS / "data"  # see SOURCES.md there
FEED_SAMPLES = TESTS / "samples" / "feeds"  # see SOURCES.md there
REQUIRE_OPENCTP = os.environ.get("CTPSHIM_REQUIRE_OPENCTP") == "1"
# A fixed market time inside SHFE's Friday day session, so tests do not depend on the clock.
FRIDAY_MORNING = "2026-11-20T09:35"


@contextlib.contextmanager
def file_cannot_grow(path: Path) -> Iterator[None]:
    """While inside, the operating system refuses to let ``path`` (or any file) grow past its
    current size: the next write fails with EFBIG ("File too large"), as with ENOSPC on a full disk."""
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size, limits[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def eventually(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """:func:`wait_for` inside a running event loop: poll ``condition`` without blocking the loop."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class RecordingMdSpi(mdapi.CThostFtdcMdSpi):
    """Records every callback as (name, args, thread name); logs in on connect if asked."""

    def __init__(self, api: Any, login: bool = True, subscribe: list[str] | None = None) -> None:
        super().__init__()
        self.api = api
        self.login = login
        self.subscribe = subscribe or []
        self.events: list[tuple[str, tuple[Any, ...], str]] = []
        self.ticks: list[Any] = []
        self.lock = threading.Lock()

    def _record(self, name: str, *args: Any) -> None:
        with self.lock:
            self.events.append((name, args, threading.current_thread().name))

    def names(self) -> list[str]:
        with self.lock:
            return [e[0] for e in self.events]

    def OnFrontConnected(self) -> None:
        self._record("OnFrontConnected")
        if self.login:
            assert self.api.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 7) == 0

    def OnFrontDisconnected(self, nReason: int) -> None:
        self._record("OnFrontDisconnected", nReason)

    def OnRspUserLogin(self, pRspUserLogin: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
        self._record("OnRspUserLogin", pRspUserLogin, pRspInfo, nRequestID, bIsLast)
        if self.subscribe:
            ids = [i.encode() for i in self.subscribe]
            assert self.api.SubscribeMarketData(ids, len(ids)) == 0

    def OnRspUserLogout(self, *args: Any) -> None:
        self._record("OnRspUserLogout", *args)

    def OnRspSubMarketData(self, *args: Any) -> None:
        self._record("OnRspSubMarketData", *args)

    def OnRspUnSubMarketData(self, *args: Any) -> None:
        self._record("OnRspUnSubMarketData", *args)

    def OnRtnDepthMarketData(self, pDepthMarketData: Any) -> None:
        with self.lock:
            self.ticks.append(pDepthMarketData)
            self.events.append(("OnRtnDepthMarketData", (pDepthMarketData,), threading.current_thread().name))


@pytest.fixture
def flow_dir(tmp_path: Path) -> str:
    return str(tmp_path) + os.sep


@pytest.fixture
def make_md(flow_dir: str) -> Iterator[Callable[..., tuple[Any, RecordingMdSpi]]]:
    """``make_md(front, ..., subscribe=[...])`` -> (api, spi), initialised; released afterwards."""
    created: list[Any] = []

    def make(*fronts: str, init: bool = True, spi_class: type = RecordingMdSpi, **spi_args: Any) -> tuple[Any, Any]:
        api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(flow_dir + f"md{len(created)}_")
        created.append(api)
        spi = spi_class(api, **spi_args)
        api.RegisterSpi(spi)
        for front in fronts:
            api.RegisterFront(front)
        if init:
            api.Init()
        return api, spi

    yield make
    for api in created:
        api.Release()


@pytest.fixture
def make_td(flow_dir: str) -> Iterator[Callable[..., Any]]:
    created: list[Any] = []

    def make(spi: Any, *fronts: str, init: bool = True) -> Any:
        api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(flow_dir + f"td{len(created)}_")
        created.append(api)
        spi.api = api
        api.RegisterSpi(spi)
        api.SubscribePrivateTopic(tdapi.THOST_TERT_QUICK)
        api.SubscribePublicTopic(tdapi.THOST_TERT_QUICK)
        for front in fronts:
            api.RegisterFront(front)
        if init:
            api.Init()
        return api

    yield make
    for api in created:
        api.Release()


@pytest.fixture
def fast_reconnect(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shorten the CTP-like reconnect pauses (the policy lives in ctpshim.runtime.reconnect)."""
    monkeypatch.setattr(reconnect, "RETRY_AFTER_DROP", 0.05)
    monkeypatch.setattr(reconnect, "RETRY_UNREACHABLE", 0.2)


@pytest.fixture(autouse=True)
def _no_front_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CTPSHIM_FRONT", raising=False)


@pytest.fixture(autouse=True)
def _trader_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test's simulated counter keeps its default database in a folder of its own, never the
    user's ``~/.ctpshim`` (subprocesses inherit it), and no counter outlives the test."""
    monkeypatch.setenv("CTPSHIM_HOME", str(tmp_path_factory.mktemp("ctpshim_home")))
    yield
    counter = sys.modules.get("ctpshim.broker.counter")
    if counter is not None:
        counter.forget_counters()


@pytest.fixture(autouse=True)
def _clock_restored() -> Iterator[None]:
    """Every test leaves the clock it found: a test sets another one with ``clock.using(...)``."""
    before = clock.current()
    yield
    after = clock.current()
    if after is not before:
        clock.install(before)
        pytest.fail(f"the test left {after!r} as the clock; put one in place with `with clock.using(...)`")


_openctp_checked: dict[str, Any] = {}


@pytest.fixture(scope="session")
def openctp() -> Any:
    """The real openctp_ctp package (skipped when it cannot be imported, failing in CI)."""
    if "module" not in _openctp_checked:
        # Import it in a child first: without the zh_CN.GB18030 locale it aborts the interpreter.
        probe = subprocess.run([sys.executable, "-c", "import openctp_ctp"], capture_output=True, text=True, timeout=60)
        if probe.returncode != 0:
            reason = f"openctp-ctp cannot be imported here: {probe.stderr.strip().splitlines()[-1:] or probe.returncode}"
            if REQUIRE_OPENCTP:
                pytest.fail(reason + " (CTPSHIM_REQUIRE_OPENCTP=1)")
            _openctp_checked["module"] = None
            _openctp_checked["reason"] = reason
        else:
            import openctp_ctp

            _openctp_checked["module"] = openctp_ctp
    if _openctp_checked["module"] is None:
        pytest.skip(_openctp_checked["reason"])
    return _openctp_checked["module"]
