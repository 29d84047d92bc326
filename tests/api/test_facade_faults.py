"""The facade under misuse and bad input: releasing from a callback, a Spi class instead of an
instance, unrepresentable instrument IDs, a bad CTPSHIM_FRONT, an adapter check that fails with
an OSError."""

from __future__ import annotations

import threading
from typing import Any, Callable

import pytest

from ctpshim import mdapi, tdapi
from ctpshim.fronts import registry
from ctpshim.errors import FrontAddressError
from ctpshim.testing import SilentAdapter

from ..conftest import FRIDAY_MORNING, wait_for

FRONT = f"sim://?start={FRIDAY_MORNING}&instruments=rb2701"


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


_KINDS = {
    "md": (mdapi.CThostFtdcMdApi.CreateFtdcMdApi, mdapi.CThostFtdcMdSpi),
    "td": (tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi, tdapi.CThostFtdcTraderSpi),
}


def _api(kind: str, flow_dir: str, on_connected: Callable[[Any], None]) -> Any:
    """An md or trader API whose Spi calls ``on_connected(api)`` from OnFrontConnected."""
    create, spi_base = _KINDS[kind]

    class Spi(spi_base):  # type: ignore[misc,valid-type]
        def OnFrontConnected(self) -> None:
            on_connected(api)

    api = create(flow_dir + kind + "_")
    api.RegisterSpi(Spi())
    return api


# -- Release() from a callback, then Join() --------------------------------------------------------

@pytest.mark.parametrize("kind", _KINDS)
def test_release_from_a_callback_returns_and_a_later_join_returns(flow_dir: str, kind: str) -> None:
    released = threading.Event()

    def release(api: Any) -> None:
        api.Release()  # from the dispatcher thread: must neither deadlock nor raise
        released.set()

    api = _api(kind, flow_dir, release)
    api.RegisterFront(FRONT)
    api.Init()
    assert released.wait(10), "Release() called from OnFrontConnected did not return"
    # The usual CTP program: main thread reaches Join() after a callback has already released.
    assert _joined_within(api, 5) == [1]
    api.Release()  # a second Release is harmless
    with pytest.raises(RuntimeError, match="released"):
        api.Init()


@pytest.mark.parametrize("kind", _KINDS)
def test_join_waiting_while_a_callback_releases_returns(flow_dir: str, kind: str) -> None:
    go = threading.Event()
    released = threading.Event()

    def release_when_told(api: Any) -> None:
        go.wait(10)
        api.Release()
        released.set()

    api = _api(kind, flow_dir, release_when_told)
    api.RegisterFront(FRONT)
    api.Init()
    outcome: list[Any] = []
    joiner = threading.Thread(target=lambda: outcome.append(api.Join()), daemon=True)
    joiner.start()
    wait_for(lambda: joiner.is_alive(), what="Join() to start")
    go.set()
    joiner.join(10)
    assert released.wait(5) and outcome == [1]


# -- a Spi class instead of an instance; IDs a C string cannot hold --------------------------------

@pytest.mark.parametrize("kind", _KINDS)
def test_register_spi_given_the_class_names_it_and_asks_for_an_instance(flow_dir: str, kind: str) -> None:
    create, base = _KINDS[kind]
    api = create(flow_dir)

    class MySpi(base):  # type: ignore[misc,valid-type]
        pass

    try:
        with pytest.raises(TypeError) as info:
            api.RegisterSpi(MySpi)
        assert "MySpi" in str(info.value) and "RegisterSpi(MySpi())" in str(info.value)
        api.RegisterSpi(MySpi())  # the instance is fine
    finally:
        api.Release()


def test_register_spi_refuses_the_other_apis_spi(flow_dir: str) -> None:
    api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(flow_dir)
    try:
        with pytest.raises(TypeError, match="CThostFtdcTraderSpi.*takes a CThostFtdcMdSpi"):
            api.RegisterSpi(tdapi.CThostFtdcTraderSpi())
    finally:
        api.Release()


def test_openctp_refuses_a_spi_class_too(flow_dir: str, openctp: Any) -> None:
    api = openctp.mdapi.CThostFtdcMdApi.CreateFtdcMdApi(flow_dir + "real_")
    with pytest.raises(TypeError, match="RegisterSpi"):
        api.RegisterSpi(openctp.mdapi.CThostFtdcMdSpi)


@pytest.mark.parametrize("bad, words", [
    (b"rb\x00605", "text after a NUL byte"),
    ("rb\x00605", "text after a NUL byte"),
    ("rb\udc80", "cannot be encoded in GB18030"),
])
def test_an_instrument_id_a_c_string_cannot_hold_is_refused_before_anything_is_sent(make_md, bad: Any,
                                                                                   words: str) -> None:
    api, spi = make_md(FRONT)
    wait_for(lambda: "OnRspUserLogin" in spi.names(), what="login")
    for method in (api.SubscribeMarketData, api.UnSubscribeMarketData, api.SubscribeForQuoteRsp):
        with pytest.raises(TypeError) as info:
            method([b"rb2701", bad], 2)
        assert words in str(info.value) and "index 1" in str(info.value)
    assert "OnRspSubMarketData" not in spi.names()  # refused whole: not even rb2701 was answered


def test_trailing_nuls_end_an_instrument_id_as_in_c(make_md) -> None:
    api, spi = make_md(FRONT)
    wait_for(lambda: "OnRspUserLogin" in spi.names(), what="login")
    assert api.SubscribeMarketData([b"rb2701\x00\x00\x00"], 1) == 0  # a fixed-width C buffer
    wait_for(lambda: spi.ticks, what="a tick of rb2701")
    reply = next(e[1] for e in spi.events if e[0] == "OnRspSubMarketData")
    assert reply[0].InstrumentID == "rb2701" and spi.ticks[0].InstrumentID == "rb2701"


def test_a_field_member_refuses_text_after_a_nul_and_keeps_trailing_nuls_out() -> None:
    field = mdapi.CThostFtdcQryInstrumentField()
    field.InstrumentID = "rb2701\x00\x00"
    assert field.InstrumentID == "rb2701"
    with pytest.raises(TypeError, match="after a NUL"):
        field.InstrumentID = "rb\x00605"
    assert field.InstrumentID == "rb2701"
    settlement = tdapi.CThostFtdcSettlementInfoField()
    with pytest.raises(TypeError, match="after a NUL"):
        settlement.Content = "a\x00b"


# -- a bad CTPSHIM_FRONT; an adapter check failing with an OSError ---------------------------------

@pytest.mark.parametrize("value, words", [
    ("sim://?sped=2", "unknown setting 'sped'"),
    ("nonsense", "has no scheme"),
    ("foo://x", "available schemes"),
])
def test_a_bad_ctpshim_front_names_the_variable_at_register_front_and_init(flow_dir: str, monkeypatch: Any,
                                                                          value: str, words: str) -> None:
    monkeypatch.setenv("CTPSHIM_FRONT", value)
    api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(flow_dir)
    try:
        with pytest.raises(FrontAddressError) as info:
            api.RegisterFront("sim://")
        assert f"CTPSHIM_FRONT={value!r}" in str(info.value) and words in str(info.value)
        with pytest.raises(FrontAddressError, match="CTPSHIM_FRONT="):
            api.Init()  # no front registered: the variable alone is checked
        monkeypatch.delenv("CTPSHIM_FRONT")
        api.RegisterFront("sim://")
        api.Init()  # the failed Init started nothing
    finally:
        api.Release()


class _GuardedAdapter(SilentAdapter):
    """An adapter whose check meets a file it may not read (so it never connects)."""

    @classmethod
    def check(cls, url: Any, settings: Any) -> None:
        raise PermissionError(13, "Permission denied", "/data/locked/20261120.parquet")


@pytest.fixture
def guarded() -> Any:
    registry.register_adapter("guarded", _GuardedAdapter)
    yield "guarded://data"
    registry.unregister_adapter("guarded")


def test_an_oserror_from_an_adapters_check_is_a_front_address_error_naming_front_and_reason(
        flow_dir: str, guarded: str, monkeypatch: Any) -> None:
    api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(flow_dir)
    try:
        with pytest.raises(FrontAddressError) as info:
            api.RegisterFront(guarded)
        # the one wording of an OSError for people (registry.describe_os_error), naming the file
        words = registry.describe_os_error(PermissionError(13, "Permission denied", "/data/locked/20261120.parquet"))
        assert words.startswith("/data/locked/20261120.parquet: ") and "ermission denied" in words
        assert str(info.value) == f"front {guarded!r}: {words}"
        monkeypatch.setenv("CTPSHIM_FRONT", guarded)
        with pytest.raises(FrontAddressError, match="CTPSHIM_FRONT=.*[Pp]ermission denied"):
            api.Init()
    finally:
        api.Release()
