"""`ctpshim quote`: a table of quotes from any front, read through the CTP API."""

from __future__ import annotations

import re

from ctpshim import mdapi
from ctpshim.ctp.market_data import DBL_MAX
from ctpshim.tools.commands.quote import COLUMNS, row

from ..tools.test_cli import ctpshim

SIM = "sim://?start=2026-11-20T09:35&speed=20"


def table_rows(stdout: str) -> dict[str, list[str]]:
    """Instrument -> cells, from rich's box-drawn table."""
    found = {}
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.strip("│┃ ").split("│")]
        if len(cells) == len(COLUMNS) and cells[0] not in ("Instrument", ""):
            found[cells[0]] = cells
    return found


def test_once_on_sim_prints_every_instrument_and_exits_0():
    result = ctpshim("quote", SIM, "rb2701", "TA701", "--once")
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    assert set(rows) == {"rb2701", "TA701"}
    rb = rows["rb2701"]
    assert float(rb[1].replace(",", "")) > 0 and re.match(r"^([+-][\d,.]+|0)$", rb[2]) and rb[3].endswith("%")
    assert rb[10].startswith("20261120 09:3") and int(rb[11]) >= 1
    assert "logged in, trading day 20261120" in result.stdout


def test_once_on_replay_lists_the_recordings_instruments_by_itself():
    result = ctpshim("quote", "replay://?bundled=RM705&speed=max&rebase=none", "--once")
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    assert list(rows) == ["RM705"]
    assert rows["RM705"][10].startswith("20170320")


def test_an_instrument_that_never_ticks_fails_once_and_says_which():
    result = ctpshim("quote", SIM, "rb2701", "XX9999", "--once", "-W", "2")
    assert result.returncode == 1
    missing = next(line for line in result.stderr.splitlines() if line.startswith("ctpshim quote: no tick within"))
    assert "XX9999" in missing and "rb2701" not in missing
    assert table_rows(result.stdout)["XX9999"][1:11] == ["-"] * 10


def test_a_source_that_cannot_list_instruments_asks_for_them(tmp_path):
    result = ctpshim("quote", "sina://?base_url=http://127.0.0.1:1", "--once")
    assert result.returncode == 2 and "name them" in result.stderr


def test_bad_fronts_are_usage_errors():
    assert ctpshim("quote", "bogus://", "rb2605").returncode == 2
    result = ctpshim("quote", SIM, "rb2605", "-W", "-1")
    assert result.returncode == 2 and "'-1'" in result.stderr


def test_a_row_shows_absent_prices_as_dashes_and_change_against_pre_settlement():
    tick = mdapi.CThostFtdcDepthMarketDataField()
    tick.LastPrice, tick.PreSettlementPrice, tick.PreClosePrice = 3050.0, 3000.0, 2990.0
    tick.BidPrice1, tick.AskPrice1, tick.BidVolume1, tick.Volume = 3049.0, DBL_MAX, 3, 12345
    tick.ActionDay, tick.UpdateTime, tick.UpdateMillisec = "20261120", "09:35:01", 500
    cells = row("rb2605", tick, 7)
    assert cells == ["rb2605", "3,050", "+50", "+1.67%", "3,049", "3", "-", "0", "12,345", "0",
                     "20261120 09:35:01.500", "7"]
    tick.LastPrice = 3000.0
    assert row("rb2605", tick, 7)[2:4] == ["0", "0.00%"]
    tick.LastPrice = 2950.5
    assert row("rb2605", tick, 7)[2:4] == ["-49.5", "-1.65%"]


def test_once_on_tencent_quotes_stocks():
    from ..fake_sina import FakeTencent, tencent_sample

    server = FakeTencent()
    server.quotes = {**tencent_sample("tencent_sh600519_intraday_20260806.gbk.txt"),
                     **tencent_sample("tencent_hk00700_after_close_20260429.gbk.txt")}
    try:
        result = ctpshim("quote", f"tencent://?base_url={server.url}&fallback=none", "600519", "00700", "--once")
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    assert rows["600519"][1:4] == ["1,301.5", "-4.95", "-0.38%"]  # against the previous close: stocks settle nothing
    assert rows["00700"][1] == "479.2" and rows["00700"][10].startswith("20260429")


def test_once_json_is_one_object_per_instrument_with_ctp_names_and_null_for_absent():
    import json

    from ..fake_sina import FakeSina, sample

    server = FakeSina()
    quotes = sample("sina_nf_RB0_IF0_after_close_20260805.gbk.txt")
    server.quotes = {"nf_RB2701": quotes["nf_RB0"], "nf_IF2612": quotes["nf_IF0"]}
    try:
        result = ctpshim("quote", f"sina://?base_url={server.url}", "rb2701", "IF2612", "SR701", "--once", "--json",
                         "-W", "2")
    finally:
        server.stop()
    document = json.loads(result.stdout)  # nothing but the document on stdout
    assert result.returncode == 1 and "SR701" in result.stderr  # Sina answers an empty quote for it
    assert document["missing"] == ["SR701"] and document["front"].startswith("sina://")
    rb, index = document["quotes"]
    assert list(rb) == list(mdapi.CThostFtdcDepthMarketDataField.__annotations__)
    assert (rb["InstrumentID"], rb["ExchangeID"], rb["UpdateTime"]) == ("rb2701", "SHFE", "15:00:00")
    assert rb["LastPrice"] == 2990.0 and rb["Volume"] == 797857 and type(rb["Volume"]) is int
    assert rb["UpperLimitPrice"] is None and rb["BidPrice2"] is None and rb["BidVolume2"] == 0  # absent: null
    assert index["InstrumentID"] == "IF2612" and index["UpperLimitPrice"] == 5018.8


def test_json_without_once_is_a_usage_error():
    result = ctpshim("quote", SIM, "rb2605", "--json")
    assert result.returncode == 2 and "--json needs --once" in result.stderr


def test_only_a_front_that_never_connected_is_asked_why():
    from types import SimpleNamespace

    from ctpshim.tools.commands.quote import explain, unreachable_cause

    assert unreachable_cause("sim://", 5) is None  # it connects
    assert unreachable_cause("tcp://127.0.0.1:1", 1) is None  # a real CTP front: not the adapter's to answer
    assert "no port" in unreachable_cause("ctpshim://127.0.0.1", 1)
    connected = SimpleNamespace(ever_connected=True, state="disconnected: 0x1001; reconnecting")
    explain(connected, "ctpshim://127.0.0.1", 1)
    assert connected.state == "disconnected: 0x1001; reconnecting"
