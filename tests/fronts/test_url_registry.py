"""Front addresses are parsed in one place; the registry maps schemes to adapters."""

from __future__ import annotations

import pytest

from ctpshim.fronts import registry
from ctpshim.adapters.base import Adapter, Capabilities
from ctpshim.errors import AdapterContractError, FrontAddressError
from ctpshim.fronts.url import Setting, integer, number, parse_front_url, resolve_settings, speed
from ctpshim.testing import SilentAdapter


def test_parsed_url_parts():
    url = parse_front_url("Tcp://180.168.146.187:10131")
    assert (url.scheme, url.host, url.port, url.path, dict(url.query)) == ("tcp", "180.168.146.187", 10131, "", {})
    url = parse_front_url("replay:///data/day%201.parquet?speed=2&loop=1")
    assert url.path == "/data/day 1.parquet" and dict(url.query) == {"speed": "2", "loop": "1"}


@pytest.mark.parametrize("raw, words", [
    ("", "no scheme"),
    ("://x", "not a valid scheme"),
    ("tcp://host:99999", "malformed"),
    ("sim://?speed", "has no value"),
    ("sim://#frag", "fragment"),
])
def test_malformed_addresses(raw, words):
    with pytest.raises(FrontAddressError, match=words):
        parse_front_url(raw)


def test_settings_are_validated_with_messages_that_say_what_is_valid():
    settings = (Setting("speed", speed, 1.0, "replay speed"), Setting("count", integer(1, 5), 3, "how many"))
    assert resolve_settings(parse_front_url("x://?speed=max"), settings) == {"speed": float("inf"), "count": 3}
    with pytest.raises(FrontAddressError, match=r"count='9'.*from 1 to 5"):
        resolve_settings(parse_front_url("x://?count=9"), settings)
    with pytest.raises(FrontAddressError, match=r"unknown setting 'cnt'.*count \(how many\)"):
        resolve_settings(parse_front_url("x://?cnt=1"), settings)
    interval = number(0, 60)
    for bad in ("0", "-1", "nan", "inf", "abc", "61", "1e300"):
        with pytest.raises(ValueError, match=r"greater than 0 and at most 60"):
            interval(bad)
    assert interval("60") == 60.0 and number(0, 1, low_included=True)("0") == 0.0
    for bad in ("0", "1e15", "nan", "-2"):
        with pytest.raises(ValueError, match="'max' or a number greater than 0 and at most 1e\\+06"):
            speed(bad)


class EchoAdapter(SilentAdapter):
    scheme = "echo"
    settings = (Setting("rate", number(0, 1000), 1.0, "ticks per second"),)
    capabilities = Capabilities(depth_levels=1)


def test_third_party_adapters_register_but_built_ins_cannot_be_replaced():
    registry.register_adapter("echo", EchoAdapter)
    try:
        adapter = registry.create_adapter("echo://?rate=2")
        assert isinstance(adapter, EchoAdapter) and adapter.config == {"rate": 2.0}
        assert "echo" in registry.known_schemes()
    finally:
        registry.unregister_adapter("echo")
    with pytest.raises(ValueError, match="built into ctpshim"):
        registry.register_adapter("sim", EchoAdapter)


def test_entry_points_are_read_only_for_unknown_schemes(monkeypatch):
    calls = []

    class EntryPoint:
        name, value = "plug", "tests.fronts.test_url_registry:EchoAdapter"

    def fake_entry_points(group):
        calls.append(group)
        return [EntryPoint()]

    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    registry.create_adapter("sim://")
    assert calls == []  # built-in: no entry point scan
    try:
        assert registry.adapter_class("plug") is EchoAdapter
        assert calls == ["ctpshim.adapters"]
    finally:
        registry.unregister_adapter("plug")


class _HalfDone(Adapter):
    """No scheme of its own, so not checked when defined: only when registered."""

    async def connect(self) -> None:
        return None


def test_a_class_missing_hooks_fails_when_defined_or_registered_naming_class_and_hooks(monkeypatch):
    with pytest.raises(AdapterContractError, match=r"Partial \(scheme partial://\) does not implement "
                                                   r"subscribe, unsubscribe, ticks"):
        class Partial(Adapter):
            scheme = "partial"

            async def connect(self) -> None:
                return None

    with pytest.raises(AdapterContractError, match="_HalfDone .*does not implement subscribe, unsubscribe, ticks"):
        registry.register_adapter("half", _HalfDone)
    assert "half" not in registry.known_schemes()
    with pytest.raises(AdapterContractError, match="is not an adapter"):
        registry.register_adapter("half", dict)

    class EntryPoint:
        name, value = "halfplug", "tests.fronts.test_url_registry:_HalfDone"

    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [EntryPoint()])
    with pytest.raises(AdapterContractError, match="_HalfDone \\(scheme halfplug://\\) does not implement"):
        registry.adapter_class("halfplug")


def test_from_url_validates_settings_and_runs_check():
    adapter = EchoAdapter.from_url("echo://?rate=3")
    assert type(adapter) is EchoAdapter and adapter.config == {"rate": 3.0} and adapter.url.raw == "echo://?rate=3"
    with pytest.raises(FrontAddressError, match="unknown setting 'speed'"):
        EchoAdapter.from_url("echo://?speed=3")

    class Picky(SilentAdapter):
        @classmethod
        def check(cls, url, settings):
            raise PermissionError(13, "Permission denied", "/data/locked")

    with pytest.raises(FrontAddressError, match="^front 'picky://x': /data/locked: permission denied$"):
        Picky.from_url("picky://x")


def test_one_wording_for_operating_system_errors():
    from ctpshim.messages import os_error_words

    assert os_error_words(PermissionError(13, "Permission denied", "/x/y")) == "/x/y: permission denied"
    assert os_error_words(FileNotFoundError(2, "No such file or directory"), "day.parquet") == (
        "day.parquet: no such file or directory")
    assert os_error_words(OSError("Arrow says no\n/arrow/io.cc:88")) == "Arrow says no"
    assert registry.describe_os_error is os_error_words


def test_a_listing_of_many_values_stays_one_short_line_and_shows_hidden_characters():
    from ctpshim.messages import listing

    assert listing(["rb2605", "au2606"]) == "rb2605, au2606"
    line = listing([f"zz{i}" for i in range(10_000)])
    assert len(line) < 200 and line.endswith("... and 9,990 more (10,000 in all)")
    assert listing(["ab\x00c", " rb"]) == "'ab\\x00c', ' rb'"
