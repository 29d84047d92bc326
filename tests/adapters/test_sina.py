"""sina:// parses the real Sina payloads and survives Sina's faults (against a local fake server)."""

from __future__ import annotations

import glob
import logging
import re
import socket

import pytest

from ctpshim import mdapi
from ctpshim.adapters.sina import from_sina, parse_statement, split_statements, to_sina
from ctpshim.ctp.market_data import DBL_MAX, Stamper

from ..conftest import wait_for
from ..fake_sina import SAMPLES, sample

NAMES = list(mdapi.CThostFtdcDepthMarketDataField.__annotations__)
# Continuous series (RB0...) have no CTP ID: the tests serve their payloads for real contracts.
STAND_IN = {"RB": "rb2701", "IF": "IF2612", "AU": "au2612", "SC": "sc2611", "LC": "lc2611", "TA": "TA609",
            "IH": "IH2205", "M": "m2701"}


def parsed(csv: str, instrument: str, dates: str = "correct") -> dict:
    return dict(zip(NAMES, parse_statement(csv, instrument, Stamper(dates))))


def czce_night() -> str:
    """A real CZCE quote at the end of a Friday night session (23:00 on 2026-07-10)."""
    return sample("partial/sina_nf_TA2609_czce_night_close_20260710_TRUNCATED.gbk.txt")["nf_TA2609"]


def dce_at(day: str, hhmmss: str) -> str:
    """A real DCE quote (soybean meal, 2026-09-30 15:04:48) moved to another date and time."""
    fields = sample("partial/sina_nf_M0_RB0_after_close_20260930_TRUNCATED.gbk.txt")["nf_M0"].split(",")
    fields[1], fields[17] = hhmmss, day
    return ",".join(fields)


def test_symbols_map_both_ways():
    assert [to_sina(i) for i in ("rb2605", "TA605", "IF2612", "sc2601", "lc2611", "RB2605")] == [
        "nf_RB2605", "nf_TA2605", "nf_IF2612", "nf_SC2601", "nf_LC2611", None]
    assert [from_sina(s) for s in ("nf_RB2605", "nf_TA2605", "CFF_RE_IF2612", "nf_RB0", "nf_XX2605")] == [
        "rb2605", "TA605", "IF2612", None, None]


def test_commodity_quote_field_by_field():
    rb = parsed(sample("sina_nf_RB0_IF0_after_close_20260805.gbk.txt")["nf_RB0"], "rb2701")
    assert (rb["ExchangeID"], rb["InstrumentID"], rb["ActionDay"], rb["TradingDay"], rb["UpdateTime"]) == (
        "SHFE", "rb2701", "20260805", "20260805", "15:00:00")
    assert (rb["OpenPrice"], rb["HighestPrice"], rb["LowestPrice"], rb["LastPrice"]) == (2990.0, 2999.0, 2968.0, 2990.0)
    assert (rb["ClosePrice"], rb["SettlementPrice"], rb["PreSettlementPrice"]) == (2990.0, 2985.0, 2983.0)
    assert (rb["BidPrice1"], rb["BidVolume1"], rb["AskPrice1"], rb["AskVolume1"]) == (2989.0, 115, 2990.0, 90)
    assert (rb["OpenInterest"], rb["Volume"]) == (2375618.0, 797857)
    assert rb["AveragePrice"] == pytest.approx(2985.221 * 10)  # CTP: Turnover/Volume, multiplier included
    assert rb["Turnover"] == pytest.approx(2985.221 * 797857 * 10)
    assert rb["UpperLimitPrice"] == DBL_MAX and rb["BidPrice2"] == DBL_MAX and rb["UpdateMillisec"] == 0


def test_cffex_quote_field_by_field():
    index = parsed(sample("sina_nf_RB0_IF0_after_close_20260805.gbk.txt")["nf_IF0"], "IF2612")
    assert (index["ExchangeID"], index["OpenPrice"], index["LastPrice"], index["Volume"]) == ("CFFEX", 4520.6, 4621.0, 76442)
    assert index["Turnover"] == pytest.approx(351262341.4 * 300)
    assert (index["UpperLimitPrice"], index["LowerLimitPrice"]) == (5018.8, 4106.4)
    assert (index["PreClosePrice"], index["PreSettlementPrice"], index["PreOpenInterest"]) == (4552.8, 4562.6, 151539.0)
    assert (index["BidPrice1"], index["BidVolume1"], index["AskPrice1"], index["AskVolume1"]) == (4619.4, 4, 4621.0, 2)
    assert index["AveragePrice"] == pytest.approx(4595.148 * 300, rel=1e-6)
    assert (index["TradingDay"], index["UpdateTime"], index["SettlementPrice"]) == ("20260805", "15:00:00", DBL_MAX)


def test_night_ticks_belong_to_the_next_trading_day_and_czce_averages_stay_prices():
    au = parsed(sample("sina_nf_IF0_RB0_AU0_weekend_stale_20260830.gbk.txt")["nf_AU0"], "au2612")
    assert (au["ActionDay"], au["UpdateTime"], au["TradingDay"]) == ("20260829", "02:30:00", "20260831")  # Saturday
    ta = parsed(sample("sina_nf_TA2609_czce_after_close_20260527.gbk.txt")["nf_TA2609"], "TA609")
    assert (ta["ExchangeID"], ta["AveragePrice"], ta["Volume"]) == ("CZCE", 6022.0, 788666)  # 29-field variant


def test_every_sample_parses_and_keeps_the_invariants():
    count = 0
    for path in sorted(glob.glob(str(SAMPLES / "**" / "*.gbk.txt"), recursive=True)):
        for symbol, csv in split_statements(open(path, "rb").read().decode("gbk")):
            if not csv or symbol == "sys_auth":
                continue
            letters = re.match(r"(?:nf_|CFF_RE_)?([A-Za-z]+)", symbol).group(1).upper()
            instrument = from_sina(symbol) or STAND_IN.get(letters)
            if instrument is None:
                continue
            tick = parsed(csv, instrument)
            count += 1
            assert tick["LastPrice"] != DBL_MAX and tick["Volume"] > 0
            for name in ("OpenPrice", "HighestPrice", "LowestPrice", "BidPrice1", "AskPrice1"):
                assert tick[name] == DBL_MAX or tick[name] > 0
            if tick["HighestPrice"] != DBL_MAX:
                assert tick["LowestPrice"] <= tick["LastPrice"] <= tick["HighestPrice"]
            assert re.match(r"^\d{2}:\d{2}:\d{2}$", tick["UpdateTime"]) and tick["TradingDay"] >= tick["ActionDay"]
    assert count >= 20


@pytest.fixture
def sina():
    from ..fake_sina import FakeSina

    server = FakeSina()
    quotes = sample("sina_nf_RB0_IF0_after_close_20260805.gbk.txt")
    server.quotes = {"nf_RB2701": quotes["nf_RB0"], "nf_IF2612": quotes["nf_IF0"],
                     "nf_TA2609": sample("sina_nf_TA2609_czce_after_close_20260527.gbk.txt")["nf_TA2609"]}
    yield server
    server.stop()


def test_ticks_arrive_through_the_facade_and_stale_quotes_are_not_repeated(make_md, sina):
    api, spi = make_md(f"sina://?base_url={sina.url}&interval=0.05", subscribe=["rb2701", "IF2612"])
    wait_for(lambda: len(spi.ticks) >= 2)
    first = {t.InstrumentID: t for t in spi.ticks}
    assert first["rb2701"].LastPrice == 2990.0 and first["IF2612"].UpperLimitPrice == 5018.8
    polls = len(sina.requests)
    wait_for(lambda: len(sina.requests) > polls + 5)
    assert len(spi.ticks) == 2  # unchanged quotes are not pushed again
    sina.quotes["nf_RB2701"] = sina.quotes["nf_RB2701"].replace(",150000,", ",150001,").replace(",797857,", ",797900,")
    wait_for(lambda: len(spi.ticks) == 3)
    assert spi.ticks[-1].Volume == 797900 and spi.ticks[-1].UpdateTime == "15:00:01"
    assert all(r.startswith("https://finance.sina.com.cn") for r in sina.referers)


def test_http_403_disconnects_with_a_referer_hint_then_recovers(make_md, sina, fast_reconnect, caplog):
    with caplog.at_level(logging.WARNING):
        api, spi = make_md(f"sina://?base_url={sina.url}&interval=0.05", subscribe=["rb2701"])
        wait_for(lambda: spi.ticks)
        sina.mode = "403"
        wait_for(lambda: "OnFrontDisconnected" in spi.names())
        assert "Referer" in caplog.text
    assert next(e[1] for e in spi.events if e[0] == "OnFrontDisconnected") == (4097,)
    sina.mode = "ok"
    wait_for(lambda: spi.names().count("OnFrontConnected") >= 2)
    wait_for(lambda: spi.names().count("OnRspSubMarketData") >= 2 and len(spi.ticks) >= 2)  # resubscribed, snapshot again
    polls = len(sina.requests)
    wait_for(lambda: len(sina.requests) > polls + 5)
    # the session restored the subscription at the login and the program subscribed again:
    # one snapshot, not two
    assert len(spi.ticks) == 2


def test_server_errors_and_timeouts_disconnect_with_reason_codes(make_md, sina, fast_reconnect):
    api, spi = make_md(f"sina://?base_url={sina.url}&interval=0.05&timeout=0.5", subscribe=["rb2701"])
    wait_for(lambda: spi.ticks)
    sina.mode = "500"
    wait_for(lambda: "OnFrontDisconnected" in spi.names())
    sina.mode = "slow"
    wait_for(lambda: spi.names().count("OnFrontDisconnected") >= 1)
    reasons = [e[1][0] for e in spi.events if e[0] == "OnFrontDisconnected"]
    assert reasons[0] == 4097
    sina.mode = "ok"


def test_a_poisonous_symbol_is_isolated_and_the_others_keep_flowing(make_md, sina, caplog):
    sina.poison = {"nf_CF2701"}
    with caplog.at_level(logging.WARNING):
        api, spi = make_md(f"sina://?base_url={sina.url}&interval=0.05",
                           subscribe=["rb2701", "CF701", "IF2612", "TA609"])
        wait_for(lambda: {t.InstrumentID for t in spi.ticks} == {"rb2701", "IF2612", "TA609"})
        wait_for(lambda: "CF701 makes Sina reject the whole request" in caplog.text)
    assert caplog.text.count("makes Sina reject") == 1


def test_unknown_and_garbage_quotes_are_skipped_with_warnings(make_md, sina, caplog):
    sina.quotes["nf_M2701"] = "garbage,with,too,few,fields"
    with caplog.at_level(logging.WARNING):
        api, spi = make_md(f"sina://?base_url={sina.url}&interval=0.05", subscribe=["rb2701", "SR701", "m2701"])
        wait_for(lambda: spi.ticks)
        wait_for(lambda: "SR701: Sina answers an empty quote" in caplog.text and "garbage,with,too,few,fields" in caplog.text)
        polls = len(sina.requests)
        wait_for(lambda: len(sina.requests) > polls + 5)
    assert {t.InstrumentID for t in spi.ticks} == {"rb2701"}
    assert caplog.text.count("garbage,with,too,few,fields") == 1 and caplog.text.count("SR701: Sina answers an empty quote") == 1


def test_an_unreachable_feed_means_no_callback_and_silent_retries(make_md, fast_reconnect, caplog):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    with caplog.at_level(logging.WARNING):
        api, spi = make_md(f"sina://?base_url=http://127.0.0.1:{port}&timeout=1")
        wait_for(lambda: caplog.text.count("cannot be reached") >= 2)
    assert spi.names() == []


def test_stocks_come_through_sina_as_well(make_md, sina):
    capture = sample("sina_sz300059_rt_hk00700_sh508000_capture_20260830.gbk.txt")
    sina.quotes.update({"sz300059": capture["sz300059"], "rt_hk00700": capture["rt_hk00700"]})
    api, spi = make_md(f"sina://?base_url={sina.url}&interval=0.05", subscribe=["rb2701", "300059", "00700"])
    wait_for(lambda: {t.InstrumentID for t in spi.ticks} == {"rb2701", "300059", "00700"})
    by_id = {t.InstrumentID: t for t in spi.ticks}
    assert (by_id["300059"].ExchangeID, by_id["300059"].BidVolume2, by_id["00700"].ExchangeID) == ("SZSE", 1_364_200, "HKEX")
    assert any({"nf_RB2701", "sz300059", "rt_hk00700"} <= set(r) for r in sina.requests)  # one batch for all


def test_night_quotes_follow_the_dates_convention():
    # correct (the default): TradingDay is the next trading day (Monday), ActionDay the calendar date
    ta = parsed(czce_night(), "TA609")
    assert (ta["TradingDay"], ta["ActionDay"], ta["UpdateTime"], ta["UpdateMillisec"]) == (
        "20260713", "20260710", "23:00:00", 0)
    # exchange: CZCE puts the calendar date in TradingDay at night
    ta = parsed(czce_night(), "TA609", "exchange")
    assert (ta["TradingDay"], ta["ActionDay"]) == ("20260710", "20260710")
    # exchange: DCE puts the trading day in ActionDay at night; day hours are the same in both
    m = dce_at("2026-07-10", "225959")
    assert (parsed(m, "m2701")["TradingDay"], parsed(m, "m2701")["ActionDay"]) == ("20260713", "20260710")
    assert (parsed(m, "m2701", "exchange")["TradingDay"], parsed(m, "m2701", "exchange")["ActionDay"]) == (
        "20260713", "20260713")
    day = dce_at("2026-07-13", "090001")
    assert parsed(day, "m2701", "exchange")["ActionDay"] == parsed(day, "m2701")["ActionDay"] == "20260713"
    # SHFE keeps the correct form under both
    rb = sample("sina_nf_AU0_SC0_night_close_20260725.gbk.txt")["nf_AU0"]
    assert parsed(rb, "au2612", "exchange") == parsed(rb, "au2612")


def test_dates_exchange_through_the_facade_and_the_morning_after_a_night_still_ticks(make_md, sina):
    sina.quotes["nf_M2701"] = dce_at("2026-07-10", "225959")
    api, spi = make_md(f"sina://?base_url={sina.url}&interval=0.05&dates=exchange", subscribe=["m2701"])
    wait_for(lambda: spi.ticks)
    night = spi.ticks[0]
    assert (night.TradingDay, night.ActionDay, night.UpdateTime) == ("20260713", "20260713", "22:59:59")
    # Monday morning: ActionDay and UpdateTime sort before the night's under this convention; the
    # quote is newer all the same (freshness is the quote's own time), so it is pushed
    sina.quotes["nf_M2701"] = dce_at("2026-07-13", "090001").replace(",845761", ",845800")
    wait_for(lambda: len(spi.ticks) == 2)
    assert (spi.ticks[1].ActionDay, spi.ticks[1].UpdateTime, spi.ticks[1].Volume) == ("20260713", "09:00:01", 845800)
    # an older quote (the night again, from a lagging mirror) is not pushed after the newer one
    sina.quotes["nf_M2701"] = dce_at("2026-07-10", "225959").replace(",845761", ",845700")
    polls = len(sina.requests)
    wait_for(lambda: len(sina.requests) > polls + 5)
    assert len(spi.ticks) == 2


def test_a_bad_dates_setting_is_refused_at_register_front(make_md):
    api, spi = make_md(init=False)
    from ctpshim.errors import FrontAddressError

    with pytest.raises(FrontAddressError, match="dates='exchanges'.*correct, exchange"):
        api.RegisterFront("sina://?dates=exchanges")
