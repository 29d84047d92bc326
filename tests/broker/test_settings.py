"""The trader.* front settings: accepted on every ctpshim front, refused on a real one, validated
like the adapters' settings, left out of the market's key."""

from __future__ import annotations

import math

import pytest

from ctpshim import tdapi
from ctpshim.broker import settings
from ctpshim.errors import FrontAddressError
from ctpshim.fronts import registry
from ctpshim.runtime import hub


def test_trader_keys_are_accepted_and_the_adapter_never_sees_them():
    url, adapter_settings = registry.validate_front("sim://?speed=max&trader.balance=1e6&trader.partial=false")
    assert "trader.balance" not in adapter_settings and adapter_settings["speed"] == math.inf
    adapter = registry.create_adapter(url)  # the adapter's own parser would refuse an unknown key
    assert adapter is not None


def test_md_and_td_that_differ_only_in_trader_keys_share_one_market():
    assert hub.market_key("replay://x?speed=max") == hub.market_key("replay://x?trader.balance=1e6&speed=max")
    assert hub.market_key("replay://x?speed=max") != hub.market_key("replay://x?speed=2")


def test_a_real_front_refuses_trader_keys_naming_the_key():
    with pytest.raises(FrontAddressError, match=r"trader\.balance.*real CTP front"):
        registry.validate_front("tcp://127.0.0.1:1?trader.balance=1000")


@pytest.mark.parametrize("query, named, valid", [
    ("trader.balance=-5", "trader.balance='-5'", "a number from 0"),
    ("trader.balance=lots", "trader.balance='lots'", "a number from 0"),
    ("trader.rate_level=retail", "trader.rate_level='retail'", "broker, exchange"),
    ("trader.partial=maybe", "trader.partial='maybe'", "true or false"),
    ("trader.hours=sometimes", "trader.hours='sometimes'", "auto, true or false"),
    ("trader.lockstep=2", "trader.lockstep='2'", "auto, true or false"),
    ("trader.book=a%20b", "trader.book='a b'", "letters, digits"),
    ("trader.rates=/no/such/rates.csv", "trader.rates='/no/such/rates.csv'", "no file"),
    ("trader.speed=max", "'trader.speed'", "valid settings: trader.balance"),
])
def test_a_bad_value_is_refused_at_registerfront_naming_it_and_what_is_valid(flow_dir, query, named, valid):
    api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(flow_dir)
    try:
        with pytest.raises(ValueError) as raised:
            api.RegisterFront(f"sim://?{query}")
        assert named in str(raised.value) and valid in str(raised.value)
    finally:
        api.Release()


def test_a_folder_as_database_is_refused(tmp_path):
    with pytest.raises(FrontAddressError, match="is a folder"):
        registry.validate_front(f"sim://?trader.db={tmp_path}")


def test_a_bad_rates_file_is_refused_naming_its_line(tmp_path):
    bad = tmp_path / "rates.csv"
    bad.write_text("this is not,a rate table\n1,2\n", encoding="utf-8")
    with pytest.raises(FrontAddressError, match=r"rates.csv, line 1, column ExchangeID"):
        registry.validate_front(f"sim://?trader.rates={bad}")


def test_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv(settings.HOME_ENV, str(tmp_path / "home"))
    values = settings.trader_settings("replay://day?speed=2", {"rebase": "none", "speed": 2.0})
    assert values.db == str(tmp_path / "home" / "trader.sqlite")
    assert values.book == "replay" and values.balance == 10_000_000
    assert values.rate_level == "broker" and values.partial and values.queue and values.flow_control
    assert values.hours is True and values.lockstep is False and values.expire_report is False


@pytest.mark.parametrize("front, source, hours, lockstep", [
    ("replay://d", {"rebase": "now", "speed": 1.0}, False, False),       # rebased to now: 7x24
    ("replay://d", {"rebase": "none", "loop": True, "speed": 1.0}, False, False),
    ("replay://d", {"rebase": "none", "speed": math.inf}, True, True),
    ("sim://", {"hours": "always", "speed": math.inf}, False, True),
    ("sim://", {"hours": "real", "speed": 10.0}, True, False),
    ("sim://?trader.hours=false&trader.lockstep=true", {"hours": "real", "speed": 1.0}, False, True),
    ("sim://?trader.hours=yes&trader.lockstep=off", {"hours": "always", "speed": math.inf}, True, False),
])
def test_auto_values_follow_the_source(front, source, hours, lockstep):
    values = settings.trader_settings(front, source)
    assert (values.hours, values.lockstep) == (hours, lockstep)


def test_memory_and_book_and_counter_key(tmp_path):
    values = settings.trader_settings(f"sim://?trader.db=memory&trader.book=night-test")
    assert values.db == settings.MEMORY and values.counter_key == (settings.MEMORY, "night-test")
    path = tmp_path / "t.sqlite"
    assert settings.trader_settings(f"sim://?trader.db={path}").counter_key == (str(path), "sim")


def test_every_setting_is_documented_with_a_trader_name():
    names = [s.name for s in settings.SETTINGS]
    assert len(names) == len(set(names)) and all(n.startswith("trader.") and s.help for n, s in
                                                  zip(names, settings.SETTINGS))
    assert set(names) == {"trader.balance", "trader.db", "trader.book", "trader.rates", "trader.rate_level",
                          "trader.partial", "trader.queue", "trader.hours", "trader.flow_control",
                          "trader.lockstep", "trader.expire_report"}


def test_a_replay_rebased_to_today_keeps_its_contracts_tradable():
    # rebase=now stamps an old recording with today's date: its contracts' last trading days lie
    # in the past, and the counter must not refuse them with 17 for that.
    assert settings.trader_settings("replay://d", {"rebase": "now"}).real_dates is False
    assert settings.trader_settings("replay://d", {"rebase": "none"}).real_dates is True
    assert settings.trader_settings("sim://", {"hours": "real"}).real_dates is True
