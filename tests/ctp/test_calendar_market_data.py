"""Trading days and the CTP tick conventions, each decided in one place."""

from __future__ import annotations

import logging
import math
from datetime import date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctpshim.ctp import calendar, clock, exchanges, market_data, products, stocks
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


def test_the_night_boundaries_split_the_day_in_three_parts():
    assert calendar.day_part(datetime(2026, 11, 19, 2, 59)) == calendar.EARLY_MORNING
    assert calendar.day_part(datetime(2026, 11, 19, calendar.EARLY_MORNING_END.hour)) == calendar.DAY_HOURS
    assert calendar.day_part(datetime(2026, 11, 19, 16, 59, 59)) == calendar.DAY_HOURS
    assert calendar.day_part(datetime(2026, 11, 19, calendar.NIGHT_CUTOFF.hour)) == calendar.EVENING
    # one trading day per (date, part): the stamper caches by it
    for hour in range(24):
        moment = datetime(2026, 11, 20, hour, 30)
        same_part = [datetime(2026, 11, 20, h, 0) for h in range(24)
                     if calendar.day_part(datetime(2026, 11, 20, h)) == calendar.day_part(moment)]
        assert {calendar.trading_day_of(m) for m in same_part} == {calendar.trading_day_of(moment)}
        assert (calendar.night_of(moment) is None) == (calendar.day_part(moment) == calendar.DAY_HOURS)


def test_sessions_of_a_trading_day_start_with_the_night_before():
    sessions = products.trading_day_sessions(PRODUCTS["rb"], date(2026, 11, 23))  # a Monday
    assert sessions[0] == (datetime(2026, 11, 20, 21, 0), datetime(2026, 11, 20, 23, 0))  # Friday night
    assert [s[0].date() for s in sessions[1:]] == [date(2026, 11, 23)] * 3


def test_the_exchange_lists_are_the_ones_the_tables_use():
    assert {p.exchange for p in PRODUCTS.values()} == set(exchanges.FUTURES_EXCHANGES)
    assert set(stocks.PREFIX_EXCHANGES.values()) == set(exchanges.STOCK_EXCHANGES)
    assert not set(exchanges.FUTURES_EXCHANGES) & set(exchanges.STOCK_EXCHANGES)
    assert all(exchanges.FUTURES_EXCHANGES.values()) and all(exchanges.STOCK_EXCHANGES.values())


@pytest.mark.parametrize("convention", market_data.DATE_CONVENTIONS)
def test_stock_quotes_carry_their_calendar_date(convention):
    stamper = Stamper(convention)
    # 2 October: a mainland holiday on which HKEX trades; 17:05: past the futures' night cutoff
    for moment in (datetime(2026, 10, 2, 10, 0, 5), datetime(2026, 11, 19, 17, 5)):
        for exchange in exchanges.STOCK_EXCHANGES:
            day = moment.strftime("%Y%m%d")
            assert stamper.stamps(moment, exchange) == (day, day, moment.strftime("%H:%M:%S"), day)


def test_the_stamper_fills_the_four_members():
    values = market_data.blank_values("TA701", "CZCE")
    moment = datetime(2026, 11, 19, 21, 15, 3, 500_000)
    Stamper("correct").apply(values, moment, "CZCE")
    tick = market_data.make_tick(values)
    assert (tick.TradingDay, tick.ActionDay, tick.UpdateTime, tick.UpdateMillisec) == (
        "20261120", "20261119", "21:15:03", 500)
    Stamper("exchange").apply(values, moment, "CZCE")
    tick = market_data.make_tick(values)
    assert (tick.TradingDay, tick.ActionDay, tick.UpdateMillisec) == ("20261119", "20261119", 0)
    with pytest.raises(ValueError, match="dates='exchanges'"):
        Stamper("exchanges")


# (exchange, product, turnover, volume, AveragePrice as that exchange's fronts report it)
_AVERAGES = [
    ("SHFE", "rb", 3150.0 * 10 * 4, 4, 31500.0),  # Turnover / Volume: the multiplier stays in
    ("INE", "sc", 480.5 * 1000 * 2, 2, 480500.0),
    ("DCE", "m", 2900.0 * 10 * 3 + 10, 3, (2900.0 * 30 + 10) / 3),
    ("GFEX", "lc", 75020.0 * 1 * 5, 5, 75020.0),
    ("CFFEX", "IF", 3900.2 * 300 * 2, 2, 3900.2 * 300),
    ("CZCE", "TA", (4700 * 3 + 4702) * 5, 4, 4700.0),  # the real average, to the tick (4700.5 -> 4700)
    ("CZCE", "SR", 5601.6 * 10 * 7, 7, 5602.0),
    ("CZCE", "ZC", 800.35 * 100, 1, 800.4),  # a 0.2 tick: 800.35 is nearest 800.4
]


@pytest.mark.parametrize("exchange, code, turnover, volume, expected", _AVERAGES)
def test_one_average_price_rule_in_three_forms(exchange, code, turnover, volume, expected):
    product = PRODUCTS[code]
    assert product.exchange == exchange
    args = (exchange, product.multiplier, product.tick)
    rule = market_data.average_price_rule(*args)
    assert market_data.average_price(exchange, turnover, volume, product.multiplier, product.tick) == \
        pytest.approx(expected, rel=1e-12)
    assert rule(turnover, volume) == market_data.average_price(exchange, turnover, volume, *args[1:])
    scale, grid = market_data.average_price_terms(*args)
    by_terms = turnover / volume / scale
    if grid:
        by_terms = round(round(by_terms / grid) * grid, 10)
    assert by_terms == pytest.approx(rule(turnover, volume), rel=1e-12)
    assert rule(turnover, 0) == 0.0 == rule(0.0, 0)


def test_average_price_of_stocks_and_of_absurd_values():
    assert market_data.average_price("SSE", 1_000_000.0, 80_000, 1, 0.01) == 12.5
    grid = market_data.average_price_rule("CZCE", 5, 2.0)
    assert grid(math.inf, 3) == math.inf  # left for check_values to refuse, not an OverflowError
    assert math.isnan(grid(math.nan, 3))


def test_czce_years_are_read_against_the_clock():
    with clock.using(datetime(2029, 3, 1, 10, 0)):
        assert parse_instrument("TA905").delivery_year == 2029
        assert parse_instrument("TA001").delivery_year == 2030
    with clock.using(datetime(2026, 11, 20, 10, 0)):
        assert parse_instrument("TA905").delivery_year == 2029
        assert parse_instrument("TA512").delivery_year == 2025  # not more than a year back


def test_every_session_template_lies_within_the_night_boundaries():
    cutoff = calendar.NIGHT_CUTOFF.hour * 60 + calendar.NIGHT_CUTOFF.minute
    early_end = 24 * 60 + calendar.EARLY_MORNING_END.hour * 60 + calendar.EARLY_MORNING_END.minute
    for name, (day_sessions, night) in products.SESSIONS.items():
        assert all(early_end - 24 * 60 <= start < end <= cutoff for start, end in day_sessions), name
        if night is not None:
            assert cutoff <= night[0] < night[1] <= early_end, name


_EXCHANGES = sorted(exchanges.FUTURES_EXCHANGES) + sorted(exchanges.STOCK_EXCHANGES)


@settings(max_examples=200, deadline=None)
@given(moments=st.lists(st.datetimes(min_value=datetime(2025, 12, 20), max_value=datetime(2027, 1, 10)),
                        min_size=1, max_size=40),
       picks=st.lists(st.integers(0, len(_EXCHANGES) - 1), min_size=40, max_size=40),
       convention=st.sampled_from(market_data.DATE_CONVENTIONS))
def test_a_long_lived_stamper_stamps_as_a_fresh_one(moments, picks, convention):
    kept = Stamper(convention)
    for moment, pick in zip(moments, picks):
        exchange = _EXCHANGES[pick]
        assert kept.stamps(moment, exchange) == Stamper(convention).stamps(moment, exchange)
        true_day = kept.stamps(moment, exchange)[3]
        if exchange in exchanges.FUTURES_EXCHANGES:
            assert true_day == calendar.yyyymmdd(calendar.trading_day_of(moment))
        else:
            assert true_day == calendar.yyyymmdd(moment.date())
