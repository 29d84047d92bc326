"""Settlement prices from observed ticks: the feed's when valid, else the exchange's VWAP rule
(SIM_TRADING.md 4.1), worked by hand on real tick objects."""

from __future__ import annotations

import json
import re
from datetime import date, datetime

import pytest

from ctpshim.broker.settlement import SettlementPrices, next_trading_day
from ctpshim.ctp import calendar
from ctpshim.ctp.market_data import DBL_MAX, blank_values, depth_index, make_tick


def tick(instrument_id: str, exchange_id: str, time: str, volume: int, turnover: float, *, last: float = 0.0,
         settlement: float = DBL_MAX, pre: float = DBL_MAX, trading_day: str = "20230215",
         action_day: str = "20230215"):
    values = blank_values(instrument_id, exchange_id)
    index = depth_index()
    for name, value in (("TradingDay", trading_day), ("ActionDay", action_day), ("UpdateTime", time),
                        ("Volume", volume), ("Turnover", turnover), ("SettlementPrice", settlement),
                        ("PreSettlementPrice", pre), ("LastPrice", last or DBL_MAX)):
        values[index[name]] = value
    return make_tick(values)


def test_commodity_settles_on_the_whole_days_vwap_truncated_to_the_tick():
    prices = SettlementPrices()
    # night and day ticks of one trading day: 10 lots at 4930, then 20 at 4925 (ag: 15 a lot)
    assert prices.observe(tick("ag2306", "SHFE", "21:05:00", 10, 10 * 4930 * 15, action_day="20230214", pre=4941))
    assert prices.observe(tick("ag2306", "SHFE", "14:59:00", 30, 10 * 4930 * 15 + 20 * 4925 * 15))
    # (10 x 4930 + 20 x 4925) / 30 = 4926.67 -> 4926 on a 1-yuan tick
    assert prices.price("ag2306", 4941) == 4926
    assert prices.prices(["ag2306"]) == {"ag2306": 4926}


def test_the_feeds_settlement_price_wins_once_published():
    prices = SettlementPrices("20230215")
    prices.observe(tick("ag2306", "SHFE", "14:59:00", 30, 30 * 4926 * 15))
    prices.observe(tick("ag2306", "SHFE", "16:30:00", 30, 30 * 4926 * 15, settlement=4928))
    assert prices.price("ag2306", 4941) == 4928


def test_nothing_traded_or_nothing_seen_keeps_the_previous_settlement():
    prices = SettlementPrices("20230215")
    prices.observe(tick("au2308", "SHFE", "09:00:00", 0, 0.0, pre=412.98))
    assert prices.price("au2308", 412.98) == 412.98
    assert prices.price("cu2306", 68_000.0) == 68_000.0
    assert prices.prices(["au2308"]) == {"au2308": 412.98}  # the tick's PreSettlementPrice


def test_cffex_settles_on_the_last_hours_vwap():
    prices = SettlementPrices("20230215")
    prices.observe(tick("IF2303", "CFFEX", "13:30:00", 100, 100 * 4000 * 300))
    prices.observe(tick("IF2303", "CFFEX", "14:30:00", 150, 100 * 4000 * 300 + 50 * 4010 * 300))
    prices.observe(tick("IF2303", "CFFEX", "14:59:58", 170, 100 * 4000 * 300 + 50 * 4010 * 300 + 20 * 4020 * 300))
    # the last hour (14:00-15:00): (50 x 4010 + 20 x 4020) / 70 = 4012.857 -> 4012.8 on a 0.2 tick;
    # the whole day's would be 4006.47
    assert prices.price("IF2303", 3990.0) == pytest.approx(4012.8)


def test_cffex_without_a_trade_in_the_last_hour_takes_the_hour_before():
    prices = SettlementPrices("20230215")
    prices.observe(tick("IF2303", "CFFEX", "10:10:00", 100, 100 * 4000 * 300))
    prices.observe(tick("IF2303", "CFFEX", "13:30:00", 140, 100 * 4000 * 300 + 40 * 4015 * 300))
    prices.observe(tick("IF2303", "CFFEX", "14:30:00", 140, 100 * 4000 * 300 + 40 * 4015 * 300))
    assert prices.price("IF2303", 3990.0) == pytest.approx(4015.0)


def test_ticks_of_another_trading_day_are_ignored_and_reset_starts_afresh():
    prices = SettlementPrices("20230215")
    assert not prices.observe(tick("ag2306", "SHFE", "21:00:00", 5, 5 * 5000 * 15, trading_day="20230216"))
    assert prices.price("ag2306", 4941) == 4941
    prices.reset("20230216")
    assert prices.observe(tick("ag2306", "SHFE", "21:00:00", 5, 5 * 5000 * 15, trading_day="20230216"))
    assert prices.price("ag2306", 4941) == 5000
    with pytest.raises(ValueError, match="trading_day '2023-02-16'"):
        prices.reset("2023-02-16")


def test_a_stock_settles_at_its_last_price():
    prices = SettlementPrices("20230215")
    prices.observe(tick("600000", "SSE", "14:59:00", 1000, 7300.0, last=7.31))
    assert prices.price("600000", 7.2) == 7.31


def test_state_round_trips_through_json():
    prices = SettlementPrices("20230215")
    prices.observe(tick("IF2303", "CFFEX", "13:30:00", 100, 100 * 4000 * 300))
    prices.observe(tick("IF2303", "CFFEX", "14:30:00", 150, 100 * 4000 * 300 + 50 * 4010 * 300))
    copy = SettlementPrices.from_state(json.loads(json.dumps(prices.to_state())))
    assert copy.price("IF2303", 3990.0) == prices.price("IF2303", 3990.0) == pytest.approx(4010.0)


def test_next_trading_day_skips_weekends_and_holidays():
    assert next_trading_day("20230217") == "20230220"  # Friday -> Monday
    assert next_trading_day("20230120") == "20230130"  # before the 2023 Spring Festival
    with pytest.raises(ValueError, match="'20231'"):
        next_trading_day("20231")


def test_the_next_days_pre_settlement_is_the_days_settlement_when_the_close_was_not_seen():
    # The SimNow day (SIM_TRADING.md 4.4): ag2306 settled at 4928; the ticks seen stop at 14:59
    # with a VWAP of 4926, and the next day's first tick carries PreSettlementPrice 4928.
    prices = SettlementPrices("20230215")
    prices.observe(tick("ag2306", "SHFE", "14:59:00", 30, 30 * 4926 * 15, pre=4941))
    assert not prices.observe(tick("ag2306", "SHFE", "21:00:00", 5, 5 * 4930 * 15, pre=4928,
                                   trading_day="20230216"))
    assert prices.price("ag2306", 4941) == 4928
    # An instrument seen only on the next day: its PreSettlementPrice too.
    prices.observe(tick("au2308", "SHFE", "21:00:00", 2, 2 * 414 * 1000, pre=413.8, trading_day="20230216"))
    assert prices.prices(["au2308"]) == {"au2308": 413.8}
    copy = SettlementPrices.from_state(json.loads(json.dumps(prices.to_state())))
    assert copy.prices({"ag2306": 4941, "au2308": 412.98}) == {"ag2306": 4928, "au2308": 413.8}
    # The day's own published SettlementPrice still comes first; an earlier day's ticks give nothing.
    prices.observe(tick("ag2306", "SHFE", "15:30:00", 30, 30 * 4926 * 15, settlement=4929))
    assert prices.price("ag2306", 4941) == 4929
    prices.observe(tick("cu2306", "SHFE", "14:00:00", 1, 68_000 * 5, pre=67_000, trading_day="20230214"))
    assert prices.price("cu2306", 68_100) == 68_100
    prices.reset("20230216")
    assert prices.price("au2308", 412.98) == 412.98  # forgotten with the day


def test_cffex_observed_from_inside_the_last_hour_settles_on_what_was_seen_of_it(caplog):
    # A program started at 14:30: the first tick already carries the day's 150 lots.  The last
    # hour's VWAP is what traded after it: 20 lots at 4020 (the whole day's would be 4006.4).
    prices = SettlementPrices("20230215")
    morning = 100 * 4000 * 300 + 50 * 4010 * 300
    prices.observe(tick("IF2303", "CFFEX", "14:30:00", 150, morning))
    prices.observe(tick("IF2303", "CFFEX", "14:59:58", 170, morning + 20 * 4020 * 300))
    with caplog.at_level("INFO", logger="ctpshim.broker.settlement"):
        assert prices.price("IF2303", 3990.0) == pytest.approx(4020.0)
    assert "IF2303" in caplog.text and "observed only from the first tick" in caplog.text
    copy = SettlementPrices.from_state(json.loads(json.dumps(prices.to_state())))
    assert copy.price("IF2303", 3990.0) == pytest.approx(4020.0)


def test_cffex_observed_from_the_open_counts_the_first_hour_from_zero(caplog):
    # Ticks from 09:31 (the first hour, 09:30-10:00 counted back from 15:00): nothing traded
    # after 10:00, so the first hour settles, with the 10 lots the first tick carried:
    # (10 x 3995 + 20 x 4005) / 30 = 4001.67 -> 4001.6 on a 0.2 tick.
    prices = SettlementPrices("20230215")
    prices.observe(tick("IF2303", "CFFEX", "09:31:00", 10, 10 * 3995 * 300))
    prices.observe(tick("IF2303", "CFFEX", "09:50:00", 30, 10 * 3995 * 300 + 20 * 4005 * 300))
    prices.observe(tick("IF2303", "CFFEX", "14:30:00", 30, 10 * 3995 * 300 + 20 * 4005 * 300))
    with caplog.at_level("INFO", logger="ctpshim.broker.settlement"):
        assert prices.price("IF2303", 3990.0) == pytest.approx(4001.6)
    assert "observed only" not in caplog.text


def test_dates_and_tick_times_parse_in_one_place_with_errors_that_name_the_value():
    assert calendar.parse_day("20261120") == date(2026, 11, 20)
    for bad in ("2026112", "20261320", "2026-11-20", "２０２６１１２０", None):
        with pytest.raises(ValueError, match=re.escape(repr(bad)) + ".*YYYYMMDD"):
            calendar.parse_day(bad)
    night = tick("rb2701", "SHFE", "21:00:01", 0, 0.0, trading_day="20261123", action_day="20261120")
    night.UpdateMillisec = 500
    assert calendar.tick_moment(night) == datetime(2026, 11, 20, 21, 0, 1, 500_000)
    night.UpdateTime = "25:00:00"
    with pytest.raises(ValueError, match="UpdateTime '25:00:00'.*HH:MM:SS"):
        calendar.tick_moment(night)
    night.UpdateTime, night.ActionDay = "21:00:01", ""
    with pytest.raises(ValueError, match="ActionDay ''.*YYYYMMDD"):
        calendar.tick_moment(night)
