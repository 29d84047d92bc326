"""tencent://: the stock samples parse to the documented values, and the feed works end to end
against local stand-ins for Tencent and Sina (with Sina as the fallback)."""

from __future__ import annotations

import glob
import logging

import pytest

from ctpshim.adapters import polling, sina, tencent
from ctpshim.adapters.polling import FeedFormatError
from ctpshim.ctp.market_data import DBL_MAX, depth_index
from ctpshim.ctp.stocks import parse_stock

from ..conftest import wait_for
from ..fake_sina import STOCK_SAMPLES, FakeSina, FakeTencent, sample, tencent_sample

LEVELS = range(1, 6)


def parsed(values: list) -> dict:
    return {name: values[i] for name, i in depth_index().items()}


def from_tencent(file: str, symbol: str) -> dict:
    return parsed(tencent.parse_statement(tencent_sample(file)[symbol], symbol[2:]))


def test_mainland_share_field_by_field():
    tick = from_tencent("tencent_sh600519_intraday_20260806.gbk.txt", "sh600519")
    assert (tick["InstrumentID"], tick["ExchangeID"], tick["TradingDay"], tick["ActionDay"], tick["UpdateTime"]) == (
        "600519", "SSE", "20260806", "20260806", "10:43:33")
    assert (tick["LastPrice"], tick["PreClosePrice"], tick["OpenPrice"], tick["HighestPrice"], tick["LowestPrice"]) == (
        1301.5, 1306.45, 1310.0, 1314.4, 1300.01)
    assert tick["Volume"] == 1_113_100  # 11131 lots of 100 shares
    assert tick["Turnover"] == 1_451_334_748.0  # the exact yuan of field 35, not field 37's 10k yuan
    assert tick["AveragePrice"] == pytest.approx(1303.867, abs=1e-3)
    assert (tick["UpperLimitPrice"], tick["LowerLimitPrice"]) == (1437.1, 1175.81)
    assert [(tick[f"BidPrice{k}"], tick[f"BidVolume{k}"]) for k in LEVELS] == [
        (1301.52, 100), (1301.51, 300), (1301.5, 100), (1301.22, 100), (1301.2, 600)]
    assert [(tick[f"AskPrice{k}"], tick[f"AskVolume{k}"]) for k in LEVELS] == [
        (1301.95, 300), (1302.0, 100), (1302.01, 500), (1302.05, 100), (1302.09, 100)]
    assert tick["PreSettlementPrice"] == DBL_MAX and tick["OpenInterest"] == 0


def test_hong_kong_quote_has_shares_hkd_and_level_one_prices_only():
    tick = from_tencent("tencent_hk00700_after_close_20260429.gbk.txt", "hk00700")
    assert (tick["ExchangeID"], tick["TradingDay"], tick["UpdateTime"]) == ("HKEX", "20260429", "16:08:43")
    assert (tick["Volume"], tick["Turnover"]) == (19_321_018, 9_231_869_057.79)
    assert (tick["BidPrice1"], tick["BidVolume1"], tick["AskPrice1"], tick["AskVolume1"]) == (479.2, 0, 479.2, 0)
    assert tick["BidPrice2"] == DBL_MAX and tick["UpperLimitPrice"] == DBL_MAX  # fields 47/48 are not limits here


def test_limit_up_close_has_an_empty_ask_side_and_funds_keep_three_decimals():
    file = "tencent_sh600396_sh510050_limit_up_after_close_20260723.gbk.txt"
    share, etf = from_tencent(file, "sh600396"), from_tencent(file, "sh510050")
    assert share["LastPrice"] == share["UpperLimitPrice"] == 16.41 and share["LowerLimitPrice"] == 13.43
    assert all(share[f"AskPrice{k}"] == DBL_MAX and share[f"AskVolume{k}"] == 0 for k in LEVELS)
    assert share["BidVolume1"] == 6_409_200
    assert (etf["LastPrice"], etf["UpperLimitPrice"], etf["LowerLimitPrice"]) == (3.084, 3.395, 2.777)


def test_beijing_exchange_quote():
    tick = from_tencent("tencent_bj920118_sh600396_intraday_20260723_SHORT.gbk.txt", "bj920118")
    assert (tick["ExchangeID"], tick["LastPrice"], tick["Volume"], tick["Turnover"]) == ("BSE", 16.91, 324_000, 5_425_465.0)
    assert tick["UpperLimitPrice"] == DBL_MAX  # the shortened line ends before the limits


def _all_stock_ticks() -> list[dict]:
    ticks = []
    for path in sorted(glob.glob(str(STOCK_SAMPLES / "*.gbk.txt"))):
        text = open(path, "rb").read().decode("gbk")
        if "tencent_" in path:
            for symbol, payload in tencent.split_statements(text):
                ticks.append(parsed(tencent.parse_statement(payload, symbol[2:])))
        else:
            for symbol, csv in sina.split_statements(text):
                ticks.append(parsed(sina.parse_statement(csv, symbol.removeprefix("rt_")[2:])))
    return ticks


def test_every_stock_sample_parses_and_keeps_the_invariants():
    ticks = _all_stock_ticks()
    assert len(ticks) == 16
    for tick in ticks:
        assert tick["ExchangeID"] == parse_stock(tick["InstrumentID"]).exchange_id
        assert tick["TradingDay"] == tick["ActionDay"] and len(tick["UpdateTime"]) == 8
        if tick["Volume"]:  # units: the average lies within the day's range, so volume is in shares
            assert tick["LowestPrice"] - 0.01 <= tick["AveragePrice"] <= tick["HighestPrice"] + 0.01
            assert tick["LowestPrice"] <= tick["LastPrice"] <= tick["HighestPrice"]
        bids = [tick[f"BidPrice{k}"] for k in LEVELS if tick[f"BidPrice{k}"] != DBL_MAX]
        asks = [tick[f"AskPrice{k}"] for k in LEVELS if tick[f"AskPrice{k}"] != DBL_MAX]
        assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
        assert all(tick[f"{side}Volume{k}"] >= 0 for side in ("Bid", "Ask") for k in LEVELS)


def test_sina_stock_layouts_field_by_field():
    capture = sample("sina_sz300059_rt_hk00700_sh508000_capture_20260830.gbk.txt")
    share = parsed(sina.parse_statement(capture["sz300059"], "300059"))
    assert (share["ExchangeID"], share["UpdateTime"], share["Volume"], share["Turnover"]) == (
        "SZSE", "16:29:30", 180_308_294, 3_513_704_072.24)
    assert (share["BidPrice1"], share["BidVolume1"], share["AskPrice5"], share["AskVolume5"]) == (19.41, 991_400, 19.46, 444_405)
    hk = parsed(sina.parse_statement(capture["rt_hk00700"], "00700"))
    assert (hk["LastPrice"], hk["Volume"], hk["UpdateTime"], hk["BidPrice1"], hk["AskPrice1"]) == (
        455.2, 27_742_475, "16:08:36", 455.2, 455.4)
    old_hk = parsed(sina.parse_statement(sample("sina_sz163402_hk00700_20190514.gbk.txt")["hk00700"], "00700"))
    assert old_hk["UpdateTime"] == "10:04:00"  # the plain hk form has minutes only
    auction = parsed(sina.parse_statement(sample("sina_sh600000_call_auction_20260831.gbk.txt")["sh600000"], "600000"))
    assert auction["LastPrice"] == DBL_MAX and (auction["BidPrice1"], auction["BidVolume1"]) == (9.0, 145_200)


def test_broken_stock_lines_are_refused_with_the_reason():
    line = tencent_sample("tencent_sh600519_intraday_20260806.gbk.txt")["sh600519"]
    with pytest.raises(FeedFormatError, match="at least 38 fields, this one has 10"):
        tencent.parse_statement("~".join(line.split("~")[:10]), "600519")
    with pytest.raises(FeedFormatError, match="20260230104333"):
        tencent.parse_statement(line.replace("20260806104333", "20260230104333"), "600519")
    with pytest.raises(FeedFormatError, match="could not convert"):
        tencent.parse_statement(line.replace("~1301.50~1306.45~", "~abc~1306.45~"), "600519")
    fields = line.split("~")
    fields[47] = fields[48] = "-1"  # what an index line carries there
    assert parsed(tencent.parse_statement("~".join(fields), "600519"))["UpperLimitPrice"] == DBL_MAX


def test_symbols():
    assert [tencent.to_tencent(c) for c in ("600519", "000001", "920118", "00700", "rb2605")] == [
        "sh600519", "sz000001", "bj920118", "hk00700", None]
    assert [sina.to_sina(c) for c in ("600519", "00700", "rb2605")] == ["sh600519", "rt_hk00700", "nf_RB2605"]


# -- end to end ---------------------------------------------------------------------------------------

@pytest.fixture
def feeds():
    qq, sn = FakeTencent(), FakeSina()
    qq.quotes = {**tencent_sample("tencent_sh600519_intraday_20260806.gbk.txt"),
                 **tencent_sample("tencent_hk00700_after_close_20260429.gbk.txt"),
                 **tencent_sample("tencent_sh510300_sz161725_after_close_20260807.gbk.txt")}
    sn.quotes = dict(sample("sina_sz300059_rt_hk00700_sh508000_capture_20260830.gbk.txt"))
    yield qq, sn
    qq.stop()
    sn.stop()


def _front(qq: FakeTencent, sn: FakeSina, extra: str = "") -> str:
    return f"tencent://?base_url={qq.url}&fallback_url={sn.url}&interval=0.05{extra}"


def test_ticks_arrive_through_the_facade_and_stale_quotes_are_not_repeated(make_md, feeds):
    qq, sn = feeds
    api, spi = make_md(_front(qq, sn), subscribe=["600519", "00700", "510300"])
    wait_for(lambda: len(spi.ticks) == 3)
    by_id = {t.InstrumentID: t for t in spi.ticks}
    assert (by_id["600519"].ExchangeID, by_id["600519"].Volume, by_id["600519"].BidVolume5) == ("SSE", 1_113_100, 600)
    assert (by_id["00700"].ExchangeID, by_id["00700"].LastPrice) == ("HKEX", 479.2)
    polls = len(qq.requests)
    wait_for(lambda: len(qq.requests) > polls + 5)
    assert len(spi.ticks) == 3 and not sn.requests  # unchanged: nothing new; Sina never asked
    qq.quotes["sh600519"] = qq.quotes["sh600519"].replace("~1.10~16269.81~", "~1.10~16269.82~")  # not a tick member
    polls = len(qq.requests)
    wait_for(lambda: len(qq.requests) > polls + 5)
    assert len(spi.ticks) == 3
    qq.quotes["sh600519"] = qq.quotes["sh600519"].replace("~1301.52~1~", "~1301.52~7~")  # bid 1 volume changed
    wait_for(lambda: len(spi.ticks) == 4)
    assert spi.ticks[-1].BidVolume1 == 700


def test_an_older_quote_is_never_pushed_after_a_newer_one(make_md, feeds):
    qq, sn = feeds
    closed = tencent_sample("tencent_sh600396_sh510050_limit_up_after_close_20260723.gbk.txt")["sh600396"]
    morning = tencent_sample("tencent_bj920118_sh600396_intraday_20260723_SHORT.gbk.txt")["sh600396"]
    qq.quotes["sh600396"] = closed
    api, spi = make_md(_front(qq, sn, "&fallback=none"), subscribe=["600396"])
    wait_for(lambda: spi.ticks)
    qq.quotes["sh600396"] = morning  # a lagging cache node answers with the 09:49 quote
    polls = len(qq.requests)
    wait_for(lambda: len(qq.requests) > polls + 5)
    assert [t.UpdateTime for t in spi.ticks] == ["16:14:49"]


def test_while_tencent_fails_sina_serves_and_tencent_takes_over_again(make_md, feeds, monkeypatch, caplog):
    qq, sn = feeds
    monkeypatch.setattr(polling, "RETRY_PRIMARY_FEED", 0.2)
    qq.mode = "500"
    sn.quotes["sh600519"] = sample("sina_sz300059_rt_hk00700_sh508000_capture_20260830.gbk.txt")["sh508000"]
    with caplog.at_level(logging.WARNING):
        api, spi = make_md(_front(qq, sn), subscribe=["600519"])
        wait_for(lambda: spi.ticks)
        assert spi.ticks[0].UpdateTime == "10:02:52" and spi.ticks[0].TradingDay == "20260831"  # Sina's quote
        assert "tencent: HTTP 500" in caplog.text and "quoting from Sina meanwhile" in caplog.text
        qq.mode = "ok"
        wait_for(lambda: "answering again" in caplog.text)
    assert "OnFrontDisconnected" not in spi.names()
    # Tencent's 600519 quote (08-06) is older than the Sina one the program has (08-31): not pushed
    polls = len(qq.requests)
    wait_for(lambda: len(qq.requests) > polls + 5)
    assert len(spi.ticks) == 1


def test_when_both_sources_fail_the_front_disconnects_and_recovers(make_md, feeds, fast_reconnect, caplog):
    qq, sn = feeds
    with caplog.at_level(logging.WARNING):
        api, spi = make_md(_front(qq, sn, "&timeout=0.5"), subscribe=["600519"])
        wait_for(lambda: spi.ticks)
        qq.mode, sn.mode = "500", "403"
        wait_for(lambda: "OnFrontDisconnected" in spi.names())
        assert "tencent: HTTP 500" in caplog.text and "Referer" in caplog.text
    assert next(e[1] for e in spi.events if e[0] == "OnFrontDisconnected") == (4097,)
    qq.mode, sn.mode = "ok", "ok"
    wait_for(lambda: spi.names().count("OnFrontConnected") >= 2 and len(spi.ticks) >= 2)  # resubscribed, snapshot
    assert spi.ticks[-1].InstrumentID == "600519"


def test_tencent_403_without_fallback_disconnects_in_words(make_md, feeds, fast_reconnect, caplog):
    qq, sn = feeds
    with caplog.at_level(logging.WARNING):
        api, spi = make_md(_front(qq, sn, "&fallback=none"), subscribe=["600519"])
        wait_for(lambda: spi.ticks)
        qq.mode = "403"
        wait_for(lambda: "OnFrontDisconnected" in spi.names())
        assert "tencent: HTTP 403" in caplog.text
    assert not sn.requests


def test_codes_tencent_lacks_come_from_sina_and_unknown_ones_never_tick(make_md, feeds, caplog):
    qq, sn = feeds
    qq.quotes["sh510300"] = "1~garbage~510300~x"
    with caplog.at_level(logging.WARNING):
        api, spi = make_md(_front(qq, sn), subscribe=["600519", "300059", "600001", "510300", "IF2612"])
        wait_for(lambda: {t.InstrumentID for t in spi.ticks} == {"600519", "300059"})
        wait_for(lambda: "600001: Sina answers an empty quote" in caplog.text and "1~garbage~510300~x" in caplog.text)
        polls = len(qq.requests)
        wait_for(lambda: len(qq.requests) > polls + 5)
    assert {t.InstrumentID for t in spi.ticks} == {"600519", "300059"}
    # one line for the poll round, not one per code
    assert "tencent: no quote for 300059 (sz300059), 600001 (sh600001); asking Sina for them" in caplog.text
    assert "IF2612: not an instrument Tencent or Sina can quote" in caplog.text  # futures: use sina://
    assert caplog.text.count("600001: Sina answers an empty quote") == 1 and caplog.text.count("1~garbage~510300~x") == 1
    assert next(t for t in spi.ticks if t.InstrumentID == "300059").ExchangeID == "SZSE"


def test_stock_quotes_keep_their_date_under_either_convention_from_either_source(make_md, feeds):
    qq, sn = feeds
    api, spi = make_md(_front(qq, sn, "&dates=exchange"), subscribe=["600519", "00700", "300059"])
    wait_for(lambda: len(spi.ticks) == 3)
    by_id = {t.InstrumentID: t for t in spi.ticks}  # 300059 comes from Sina: Tencent lacks it here
    assert [(by_id[i].TradingDay, by_id[i].ActionDay) for i in ("600519", "00700", "300059")] == [
        ("20260806", "20260806"), ("20260429", "20260429"), ("20260828", "20260828")]  # a Friday quote
    assert sn.requests


def test_the_shared_tencent_samples_hold_nothing_tencent_can_quote_for_ctp():
    from ..fake_sina import SAMPLES

    none_match = (SAMPLES / "tencent_qt_nf_unsupported_pv_none_match.gbk.txt").read_bytes().decode("gbk")
    assert tencent.split_statements(none_match) == []  # Tencent's "no such code" is not a quote
    foreign = dict(tencent.split_statements((SAMPLES / "tencent_qt_hf_foreign_futures_20260929.gbk.txt").read_bytes().decode("gbk")))
    assert set(foreign) == {"hf_XAU", "hf_CL", "hf_W"}  # foreign futures, outside CTP's scope
    assert all(tencent.to_tencent(code) is None for code in ("CL", "XAU", "W", "hf_CL"))  # never asked for
    with pytest.raises(FeedFormatError, match="'hf_CL' is not a stock code"):
        tencent.parse_statement(foreign["hf_CL"], "hf_CL")
