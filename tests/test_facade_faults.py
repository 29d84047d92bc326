"""The facade under misuse and bad input: releasing from a callback, a Spi class instead of an
instance, unrepresentable instrument IDs, a bad CTPSHIM_FRONT, an adapter check that fails with
an OSError."""

from __future__ import annotations

import threading
from typing import Any, Callable

import pytest

from ctpshim import mdapi, tdapi

from .conftest import FRIDAY_MORNING, wait_for

FRONT = f"sim://?start={FRIDAY_MORNING}&instruments=rb2605"


def _joined_within(api: Any, timeout: float) -> list[Any]:
    """Call ``api.Join()`` on a helper thread; what it returned or raised, if it ended in time."""
    outcome: list[Any] = []

    def join() -> None:
        try:
            outcome.append(api.Join())
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            outcome.append(exc)

    joiner = threading.Thread(target=join, daemon=True)
    joiner.start()
    joiner.join(timeout)
    return outcome


def _md_api(flow_dir: str, on_connected: Callable[[Any], None]) -> Any:
    class Spi(mdapi.CThostFtdcMdSpi):
        def OnFrontConnected(self) -> None:
            on_connected(api)

    api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(flow_dir + "md_")
    api.RegisterSpi(Spi())
    return api


def _td_api(flow_dir: str, on_connected: Callable[[Any], None]) -> Any:
    class Spi(tdapi.CThostFtdcTraderSpi):
        def OnFrontConnected(self) -> None:
            on_connected(api)

    api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(flow_dir + "td_")
    api.RegisterSpi(Spi())
    return api


# -- item 8: Release() from a callback, then Join() --------------------------------------------

@pytest.mark.parametrize("make", [_md_api, _td_api], ids=["md", "td"])
def test_release_from_a_callback_returns_and_a_later_join_returns(flow_dir: str, make: Any) -> None:
    released = threading.Event()

    def release(api: Any) -> None:
        api.Release()  # from the dispatcher thread: must neither deadlock nor raise
        released.set()

    api = make(flow_dir, release)
    api.RegisterFront(FRONT)
    api.Init()
    assert released.wait(10), "Release() called from OnFrontConnected did not return"
    # The usual CTP program: main thread reaches Join() after a callback has already released.
    assert _joined_within(api, 5) == [1]
    api.Release()  # a second Release is harmless
    with pytest.raises(RuntimeError, match="released"):
        api.Init()


@pytest.mark.parametrize("make", [_md_api, _td_api], ids=["md", "td"])
def test_join_waiting_while_a_callback_releases_returns(flow_dir: str, make: Any) -> None:
    go = threading.Event()
    released = threading.Event()

    def release_when_told(api: Any) -> None:
        go.wait(10)
        api.Release()
        released.set()

    api = make(flow_dir, release_when_told)
    api.RegisterFront(FRONT)
    api.Init()
    outcome: list[Any] = []
    joiner = threading.Thread(target=lambda: outcome.append(api.Join()), daemon=True)
    joiner.start()
    wait_for(lambda: joiner.is_alive(), what="Join() to start")
    go.set()
    joiner.join(10)
    assert released.wait(5) and outcome == [1]
