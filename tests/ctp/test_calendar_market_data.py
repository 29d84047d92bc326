"""Trading days and the CTP tick conventions, each decided in one place."""

from __future__ import annotations

import logging
from datetime import date, datetime

import pytest

from ctpshim.ctp import calendar, market_data
from ctpshim.ctp.market_data import DBL_MAX, Stamper
from ctpshim.ctp.products import PRODUCTS, main_contract, next_open, parse_instrument


def test_trading_days_follow_the_holiday_calendar():
    assert calendar.is_trading_day(date(2026, 11, 20))  # a Friday
    assert not calendar.is_trading_day(date(2026, 11, 21))  # Saturday
    assert not calendar.is_trading_day(date(2026, 10, 1))  # National Day
    assert not calendar.is_trading_day(date(2026, 2, 17))  # Spring Festival
    assert calendar.next_trading_day(date(2026, 11, 20)) == date(2026, 11, 23)


def test_trading_day_of_night_and_weekend_moments():
    assert calendar.trading_day_of(datetime(2026, 11, 19, 21, 30)) == date(2026, 11, 20)
    assert calendar.trading_day_of(datetime(2026, 11, 20, 21, 30)) == date(2026, 11, 23)  # Friday night
    assert calendar.trading_day_of(datetime(2026, 11, 21, 1, 0)) == date(2026, 11, 23)  # after midnight
    assert calendar.trading_day_of(datetime(2026, 11, 21, 12, 0)) == date(2026, 11, 23)  # Saturday noon
    assert calendar.trading_day_of(datetime(2026, 11, 20, 10, 0)) == date(2026, 11, 20)


def test_night_sessions_only_when_no_holiday_follows():
    assert calendar.has_night_session(date(2026, 11, 20))  # Friday -> Monday
    assert not calendar.has_night_session(date(2026, 9, 30))  # before National Day


def test_past_the_calendar_package_weekdays_count_with_one_warning(caplog, monkeypatch):
    monkeypatch.setattr(calendar, "_warned_years", set())
    calendar.is_trading_day.cache_clear()
    with caplog.at_level(logging.WARNING):
        assert calendar.is_trading_day(date(2031, 3, 3))
        assert calendar.is_trading_day(date(2031, 3, 4))
        assert not calendar.is_trading_day(date(2031, 3, 8))
    assert caplog.text.count("no holiday data for 2031") == 1


def test_sessions_of_products():
    rb, au, index = PRODUCTS["rb"], PRODUCTS["au"], PRODUCTS["IF"]
    assert next_open(rb, datetime(2026, 11, 20, 11, 45)) == datetime(2026, 11, 20, 13, 30)
    assert next_open(rb, datetime(2026, 11, 20, 23, 5)) == datetime(2026, 11, 23, 9, 0)
    assert next_open(au, datetime(2026, 11, 21, 2, 0)) == datetime(2026, 11, 21, 2, 0)  # still open
    assert next_open(index, datetime(2026, 11, 20, 9, 0)) == datetime(2026, 11, 20, 9, 30)


def test_instrument_ids_are_case_sensitive_like_ctp():
    assert parse_instrument("rb2605").exchange_id == "SHFE"
    assert parse_instrument("TA605").exchange_id == "CZCE"
    assert parse_instrument("IF2612").exchange_id == "CFFEX"
    for bad in ("RB2605", "TA2605", "rb265", "IC8888", "rb2613", "v1611x"):
        assert parse_instrument(bad) is None
    assert main_contract(PRODUCTS["rb"], date(2026, 11, 21)) == "rb2701"
    assert main_contract(PRODUCTS["TA"], date(2026, 11, 21)) == "TA701"


def test_blank_ticks_use_dbl_max_for_absent_prices_and_zero_volumes():
    values = market_data.blank_values("rb2605", "SHFE")
    tick = market_data.make_tick(values)
    assert tick.LastPrice == DBL_MAX == tick.BidPrice3 == tick.SettlementPrice
    assert tick.Volume == 0 and tick.BidVolume1 == 0
    assert (tick.InstrumentID, tick.ExchangeID, tick.reserve1) == ("rb2605", "SHFE", "rb2605")


@pytest.mark.parametrize("exchange, convention, trading, action", [
    ("SHFE", "correct", "20261120", "20261119"),
    ("DCE", "correct", "20261120", "20261119"),
    ("SHFE", "exchange", "20261120", "20261119"),
    ("DCE", "exchange", "20261120", "20261120"),
    ("GFEX", "exchange", "20261120", "20261120"),
    ("CZCE", "exchange", "20261119", "20261119"),
])
def test_night_session_date_conventions(exchange, convention, trading, action):
    stamps = Stamper(convention).stamps(datetime(2026, 11, 19, 21, 15, 3), exchange)
    assert stamps == (trading, action, "21:15:03", "20261120")


def test_average_price_per_exchange():
    assert market_data.average_price("SHFE", 3150.0 * 10 * 4, 4, 10, 1.0) == 31500.0
    assert market_data.average_price("CZCE", (4700 * 3 + 4702) * 5, 4, 5, 2.0) == 4700.0
    assert market_data.average_price("DCE", 0.0, 0, 10, 1.0) == 0.0
