"""Bad upstream payloads on sina:// and tencent://, against the local fake servers with real sample
lines altered: one bad value skips that line (with a warning naming it) and nothing else."""

from __future__ import annotations

import logging

import pytest

from ctpshim.ctp.market_data import DBL_MAX, TickValueError, blank_values, check_values, depth_index

from ..conftest import wait_for
from ..fake_sina import FakeSina, FakeTencent, sample, tencent_sample
from ..tools.test_cli import ctpshim

RB = sample("sina_nf_RB0_IF0_after_close_20260805.gbk.txt")["nf_RB0"]  # served as rb2701
IF = sample("sina_nf_RB0_IF0_after_close_20260805.gbk.txt")["nf_IF0"]  # served as IF2612
MOUTAI = tencent_sample("tencent_sh600519_intraday_20260806.gbk.txt")["sh600519"]
TENCENT_HK = tencent_sample("tencent_hk00700_after_close_20260429.gbk.txt")["hk00700"]

# (field of Sina's commodity line, bad text, the member it becomes)
BAD_SINA_VALUES = [
    (14, "inf", "Volume"),
    (14, "5000000000", "Volume"),  # beyond int32
    (8, "nan", "LastPrice"),
    (8, "-1", "LastPrice"),
    (11, "5000000000", "BidVolume1"),
    (13, "inf", "OpenInterest"),
    (27, "1e308", "Turnover"),  # average price x volume x multiplier overflows
]


def altered(line: str, separator: str, field: int, text: str) -> str:
    fields = line.split(separator)
    fields[field] = text
    return separator.join(fields)


@pytest.fixture
def sina():
    server = FakeSina()
    server.quotes = {"nf_RB2701": RB, "nf_IF2612": IF}
    yield server
    server.stop()


@pytest.mark.parametrize("field, text, member", BAD_SINA_VALUES)
def test_one_bad_value_skips_its_line_and_the_others_keep_flowing(make_md, sina, caplog, field, text, member):
    sina.quotes["nf_RB2701"] = altered(RB, ",", field, text)
    with caplog.at_level(logging.WARNING):
        api, spi = make_md(f"sina://?base_url={sina.url}&interval=0.05", subscribe=["rb2701", "IF2612"])
        wait_for(lambda: spi.ticks, what="IF2612's tick")
        wait_for(lambda: f"skipped an unreadable quote for rb2701 ({member} " in caplog.text, what="the warning")
        polls = len(sina.requests)
        wait_for(lambda: len(sina.requests) > polls + 5, what="more polls")
    assert [t.InstrumentID for t in spi.ticks] == ["IF2612"]
    assert "OnFrontDisconnected" not in spi.names()
    assert caplog.text.count("skipped an unreadable quote for rb2701") == 1  # once a minute, not every poll
    sina.quotes["nf_RB2701"] = RB  # mended upstream: the line ticks again
    wait_for(lambda: [t.InstrumentID for t in spi.ticks] == ["IF2612", "rb2701"], what="rb2701 after the mend")
    assert spi.ticks[-1].Volume == 797857 and spi.ticks[-1].LastPrice == 2990.0


@pytest.mark.parametrize("field, text, member", [(6, "inf", "Volume"), (6, "50000000", "Volume"),
                                                   (3, "nan", "LastPrice"), (3, "-1", "LastPrice")])
def test_tencent_lines_are_checked_the_same_way(make_md, caplog, field, text, member):
    server = FakeTencent()
    server.quotes = {"sh600519": altered(MOUTAI, "~", field, text), "hk00700": TENCENT_HK}
    try:
        with caplog.at_level(logging.WARNING):
            api, spi = make_md(f"tencent://?base_url={server.url}&interval=0.05&fallback=none",
                               subscribe=["600519", "00700"])
            wait_for(lambda: f"skipped an unreadable quote for 600519 ({member} " in caplog.text, what="the warning")
            wait_for(lambda: spi.ticks, what="00700's tick")
        assert [t.InstrumentID for t in spi.ticks] == ["00700"] and "OnFrontDisconnected" not in spi.names()
    finally:
        server.stop()


def test_the_checker_knows_every_members_range_from_the_spec():
    index = depth_index()
    good = blank_values("rb2701", "SHFE")
    good[index["Volume"]], good[index["LastPrice"]] = 12.0, 3000.0
    assert check_values(good)[index["Volume"]] == 12 and type(good[index["Volume"]]) is int
    for member, value, valid in [("Volume", 2**31, "from 0 to 2,147,483,647"), ("BidVolume3", -1, "from 0"),
                                 ("Volume", 1.5, "whole number"), ("UpdateMillisec", 1000, "from 0 to 999"),
                                 ("AskPrice5", float("inf"), "finite price"), ("PreOpenInterest", float("nan"), "from 0"),
                                 ("Turnover", -5.0, "amount from 0"), ("CurrDelta", float("-inf"), "finite number"),
                                 ("InstrumentID", "x" * 81, "at most 80 bytes"), ("TradingDay", None, "text")]:
        values = list(good)
        values[index[member]] = value
        with pytest.raises(TickValueError, match=rf"^{member} .* is not valid: expected .*{valid}"):
            check_values(values)
    values = list(good)
    values[index["PreDelta"]] = -0.5  # a ratio may be negative
    values[index["AskPrice1"]] = DBL_MAX  # absent
    check_values(values)


def test_quote_once_shows_the_healthy_instrument_and_names_the_bad_one(sina):
    sina.quotes["nf_RB2701"] = altered(RB, ",", 14, "inf")
    result = ctpshim("quote", f"sina://?base_url={sina.url}&interval=0.05", "rb2701", "IF2612", "--once", "-W", "2")
    assert "Traceback" not in result.stderr and "OverflowError" not in result.stderr
    assert result.returncode == 1 and "no tick within 2 s for rb2701 " in result.stderr
    assert "Volume inf is not valid" in result.stderr and "disconnected" not in result.stderr
    assert "4,621" in result.stdout  # IF2612's row


def test_ping_reads_the_good_quotes_and_still_reports_the_other_fronts():
    server = FakeSina()
    server.quotes = {"nf_RB0": altered(RB, ",", 14, "5000000000"), "nf_AU0": altered(RB, ",", 8, "nan"), "nf_IF0": IF}
    try:
        result = ctpshim("ping", f"sina://?base_url={server.url}", "sim://", "-c", "1", "--stale", "31000000")
    finally:
        server.stop()
    assert "Traceback" not in result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert "1 quotes parse" in lines[f"sina://?base_url={server.url}"] and " ok " in lines["sim://"]


def test_record_keeps_recording_the_good_instrument(sina, tmp_path):
    pytest.importorskip("pyarrow")
    from ctpshim.recording import instruments_in

    sina.quotes["nf_RB2701"] = altered(RB, ",", 14, "5000000000")
    result = ctpshim("record", f"sina://?base_url={sina.url}&interval=0.05", "-i", "rb2701", "IF2612",
                     "-o", str(tmp_path), "--duration", "2", "--quiet")
    assert "Traceback" not in result.stderr and result.returncode == 0, result.stderr
    assert "skipped an unreadable quote for rb2701 (Volume 5000000000 is not valid" in result.stderr
    files = sorted(tmp_path.rglob("*.arrows")) + sorted(tmp_path.rglob("*.parquet"))
    assert files and set().union(*(instruments_in(f) for f in files)) == {"IF2612"}


@pytest.mark.parametrize("front, named, valid", [
    ("sina://?base_url=http://127.0.0.1:99999", "base_url='http://127.0.0.1:99999'", "port '99999' is not valid"),
    ("sina://?base_url=http://localhost:abc", "base_url='http://localhost:abc'", "port 'abc' is not valid"),
    ("sina://?base_url=http://:8080", "base_url='http://:8080'", "has no host"),
    ("sina://?base_url=http://bad host/", "base_url='http://bad host/'", "host 'bad host' is not a host name"),
    ("sina://?base_url=", "base_url=''", "is not an http(s) URL"),
    ("tencent://?fallback_url=https://hq.sinajs.cn:0", "fallback_url='https://hq.sinajs.cn:0'", "port '0'"),
    ("tencent://?base_url=http://-x-.com", "base_url='http://-x-.com'", "is not a host name"),
    ("sina://?interval=0.01", "interval='0.01'", "from 0.05 and at most 3600"),
    ("sina://?interval=inf", "interval='inf'", "from 0.05 and at most 3600"),
    ("tencent://?batch=801", "batch='801'", "from 1 to 800"),
    ("sina://?timeout=0", "timeout='0'", "greater than 0 and at most 120"),
    ("tencent://?timeout=1e9", "timeout='1e9'", "greater than 0 and at most 120"),
    ("sina://?base_url=ftp://x", "base_url='ftp://x'", "is not an http(s) URL"),
    ("sina://?batch=0", "batch='0'", "from 1 to 800"),
    ("tencent://?fallback=tdx", "fallback='tdx'", "one of: sina, none"),
    ("tencent://?fallback_url=ftp://x", "fallback_url='ftp://x'", "is not an http(s) URL"),
    ("tencent://?dates=night", "dates='night'", "one of: correct, exchange"),
])
def test_every_setting_is_checked_at_register_front(make_md, front, named, valid):
    from ctpshim.errors import FrontAddressError

    api, spi = make_md(init=False)
    with pytest.raises(FrontAddressError) as raised:
        api.RegisterFront(front)
    assert named in str(raised.value) and valid in str(raised.value)
    assert "port from 1 to 65535" in str(raised.value) or "_url" not in named


def test_good_base_urls_are_accepted(make_md):
    api, spi = make_md(init=False)
    for base in ("http://127.0.0.1:8080/sina", "https://hq.sinajs.cn", "http://[::1]:8080", "http://my_proxy:3128"):
        api.RegisterFront(f"sina://?base_url={base}")
        api.RegisterFront(f"tencent://?fallback_url={base}")


@pytest.mark.parametrize("mode, said", [
    ("html", f"answered HTTP 200 with an HTML page ({len(FakeSina.PORTAL.encode())} bytes, titled 'Wi-Fi login'), "
             "not Sina quote lines"),
    ("garbage", f"answered HTTP 200 with {len(FakeSina.GARBAGE.encode())} bytes that are not Sina quote lines, "
                "starting '\\x00\\x17 upstream_error"),
    ("empty", "answered HTTP 200 with an empty body"),
    ("huge", "sent more than 8 MB for 2 symbols"),
    ("redirect_loop", "a redirect loop (too many redirects): it is sent round http://127.0.0.1:"),
    ("redirect_chain", "too many redirects (10): http://127.0.0.1:"),
])
def test_a_broken_upstream_is_reported_for_what_it_sent(make_md, sina, fast_reconnect, caplog, mode, said):
    with caplog.at_level(logging.WARNING):
        api, spi = make_md(f"sina://?base_url={sina.url}&interval=0.05", subscribe=["rb2701", "IF2612"])
        wait_for(lambda: len(spi.ticks) == 2, what="the first ticks")
        sina.mode = mode
        wait_for(lambda: "OnFrontDisconnected" in spi.names(), what="the disconnect")
        wait_for(lambda: said in caplog.text, what=said)
    assert "answers an empty quote" not in caplog.text and "message=''" not in caplog.text
    expected = 4097 if mode.startswith("redirect") else 8195  # a link failure; an answer that is not the source's
    assert next(e[1] for e in spi.events if e[0] == "OnFrontDisconnected") == (expected,)
    sina.mode = "ok"
    wait_for(lambda: spi.names().count("OnFrontConnected") >= 2, what="the reconnect")


def test_tencent_serving_a_portal_page_hands_over_to_sina(make_md, caplog):
    qq, sn = FakeTencent(), FakeSina()
    qq.mode = "html"
    sn.quotes = sample("sina_sz300059_rt_hk00700_sh508000_capture_20260830.gbk.txt")
    try:
        with caplog.at_level(logging.WARNING):
            api, spi = make_md(f"tencent://?base_url={qq.url}&fallback_url={sn.url}&interval=0.05",
                               subscribe=["300059"])
            wait_for(lambda: spi.ticks, what="a tick from Sina")
        assert "tencent: http://127.0.0.1:" in caplog.text and "an HTML page" in caplog.text
        assert "quoting from Sina meanwhile" in caplog.text and "no quote for" not in caplog.text
    finally:
        qq.stop()
        sn.stop()


def test_ten_thousand_unknown_ids_make_short_warnings(make_md, sina, caplog):
    unknown = [f"rb{2700 + n % 100:04d}x{n}" for n in range(5000)] + [f"ZZ{n:04d}" for n in range(5000)]
    empty = [f"rb{27}{m:02d}" for m in range(2, 13)]  # Sina answers an empty quote for these
    with caplog.at_level(logging.WARNING):
        api, spi = make_md(f"sina://?base_url={sina.url}&interval=0.05", subscribe=["rb2701"])
        wait_for(lambda: spi.ticks, what="rb2701's tick")
        ids = [i.encode() for i in unknown + empty]
        assert api.SubscribeMarketData(ids, len(ids)) == 0
        wait_for(lambda: "answers an empty quote" in caplog.text, what="the empty-quote warning")
    lines = [r.getMessage() for r in caplog.records]
    assert max(len(line) for line in lines) < 1000
    assert any("... and 9,990 more (10,000 in all)" in line for line in lines)
    assert any(line.startswith("sina: rb2702, rb2703, ") and "... and 1 more (11 in all)" in line
               for line in lines)


def test_a_long_name_from_the_feed_still_fits_instrument_name():
    from ctpshim import tdapi
    from ctpshim.adapters.sina import SinaSource
    from ctpshim.adapters.tencent import TencentSource

    long_name = "易方达沪深300交易型开放式指数证券投资基金联接A\x07"  # 50 bytes in GB18030, and a control byte
    tencent_line = altered(MOUTAI, "~", 1, long_name)
    sina_line = altered(sample("sina_sz300059_rt_hk00700_sh508000_capture_20260830.gbk.txt")["sz300059"], ",", 0,
                        long_name)
    for info in (TencentSource("http://127.0.0.1").instrument(tencent_line, "600519"),
                 SinaSource("http://127.0.0.1").instrument(sina_line, "300059")):
        assert info.name == "易方达沪深300交易型"  # cut at 20 bytes, on a character boundary
        field = tdapi.CThostFtdcInstrumentField()
        field.InstrumentName = info.name  # what ReqQryInstrument builds: it would raise TypeError
