"""The settlement statement: SimNow's layout and figures for the 2023-02-15 day (SIM_TRADING.md
4.4; the quoted lines are the facts of openctp/openctp ``tools/Settle/getsettle/sample.out``), and
its transport in 500-byte ``Content`` pieces."""

from __future__ import annotations

import json

import pytest

import ctpshim.tdapi as tdapi
from ctpshim.broker import statement
from ctpshim.broker.ledger import Ledger

from .test_ledger import simnow_day

SETTLE = {"ag2306": 4928, "au2308": 413.8}


@pytest.fixture(scope="module")
def summary():
    return simnow_day().settle(SETTLE, "20230216")


@pytest.fixture(scope="module")
def text(summary):
    return statement.render(summary, broker_name="SimNow社区系统", client_name="client name")


def test_title_and_account_summary_are_simnows_lines(text):
    lines = text.splitlines()
    assert lines[0] == " " * 43 + "SimNow社区系统" + " " * 43
    assert lines[1].endswith("制表时间 Creation Date：20230215") and statement.width(lines[1]) == 100
    assert lines[3].strip() == "交易结算单(盯市) Settlement Statement(MTM)"
    for line in (
        "期初结存 Balance b/f：                 10000000.00  基础保证金 Initial Margin：                 0.00",
        "出 入 金 Deposit/Withdrawal：                 0.00  期末结存 Balance c/f：                9998858.59",
        "平仓盈亏 Realized P/L：                     240.00  质 押 金 Pledge Amount：                    0.00",
        "持仓盯市盈亏 MTM P/L：                    -1370.00  客户权益 Client Equity：              9998858.59",
        "手 续 费 Commission：                        11.41  保证金占用 Margin Occupied：           172043.20",
        "质押变化金额 Chg in Pledge Amt：              0.00  可用资金 Fund Avail.：                9826815.39",
        "权利金收入 Premium received：                 0.00  风 险 度 Risk Degree：                     1.72%",
        "交割盈亏 Delivery P/L：                       0.00  货币质押变化金额 Chg in FX Pledge:          0.00",
    ):
        assert line in lines


def row_of(text: str, *needles: str) -> list[str]:
    """The cells of the one table row containing every needle."""
    (line,) = [line for line in text.splitlines() if line.startswith("|") and all(n in line for n in needles)]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_sections_carry_the_statements_rows(text):
    for title in ("成交记录 Transaction Record", "平仓明细 Position Closed", "持仓明细 Positions Detail",
                  "持仓汇总 Positions"):
        assert title in text
    close = row_of(text, "76886")
    assert close[6:14] == ["卖", "投机", "4946.000", "4", "296760.00", "平今", "0.00", "240.00"]
    assert row_of(text, "168930")[8:13] == ["4927.000", "4", "295620.00", "开", "2.96"]
    assert row_of(text, "168738")[12] == "4.00"
    totals = row_of(text, "共   5条")
    assert [c for c in totals if c] == ["共   5条", "16", "1862910.00", "11.41", "240.00", "0.00"]
    assert row_of(text, "共     1条")[13] == "240.00"
    closed = row_of(text, "20230215  ", "4942.000")
    assert closed[9:14] == ["4", "4942.000", "4941.000", "4946.000", "240.00"]
    gold = row_of(text, "au2308", "115864.00", "-1400.00", "20230215")
    assert gold[8:15] == ["2", "413.100", "412.980", "413.800", "-1400.00", "-1400.00", "115864.00"]
    detail_total = row_of(text, "共     3条")
    assert [c for c in detail_total if c][1:5] == ["8", "-1370.00", "-1370.00", "200132.80"]
    silver = row_of(text, "ag2306", "56179.20", "4927.000", "30.00")
    assert silver[4:12] == ["4", "4927.000", "2", "4927.000", "4941.000", "4928.000", "30.00", "56179.20"]
    assert [c for c in row_of(text, "共     2条") if c][1:5] == ["4", "4", "-1370.00", "172043.20"]


def test_table_rows_line_up_in_gb18030_columns(text):
    for block in text.split("\n\n"):
        rows = [line for line in block.splitlines() if line.startswith(("|", "---"))]
        assert len({statement.width(line) for line in rows}) <= 1, block[:200]


def test_a_day_without_trades_or_positions_has_only_the_account_summary():
    ledger = Ledger("9999", "1", balance=500_000, trading_day="20230215")
    ledger.deposit(1000)
    text = statement.render(ledger.settle({}, "20230216"))
    assert "成交记录" not in text and "持仓汇总" not in text
    assert "出 入 金 Deposit/Withdrawal：              1000.00" in text
    assert "期末结存 Balance c/f：                 501000.00" in text


def test_structured_copy_is_json_with_printed_money(summary):
    values = json.loads(json.dumps(statement.structured(summary)))
    assert values["account"]["Balance"] == 9_998_858.59
    assert values["account"]["Available"] == 9_826_815.39
    assert [t["Commission"] for t in values["trades"]] == [2.97, 0.0, 1.48, 4.0, 2.96]
    assert values["details"][0]["SettlementPrice"] == 4928


def test_pieces_fit_content_and_rebuild_the_text(text):
    parts = statement.pieces(text)
    assert len(parts) > 1
    assert "".join(parts) == text
    assert b"".join(p.encode("gb18030") for p in parts).decode("gbk") == text
    for part in parts:
        field = tdapi.CThostFtdcSettlementInfoField()
        field.Content = part  # raises beyond char[501]
        assert field.Content == part.encode("gb18030")


def test_pieces_never_split_a_character():
    text = "a" + "中" * 300  # 601 bytes: 1 + 249 x 2 = 499 fit, the 250th character would make 501
    parts = statement.pieces(text)
    assert [len(p.encode("gb18030")) for p in parts] == [499, 102]
    assert statement.pieces("") == [""]
    assert statement.pieces("ab中c😀", limit=4) == ["ab中", "c", "😀"]  # 😀 is 4 bytes in GB18030
    with pytest.raises(ValueError, match="limit 3"):
        statement.pieces("abc", limit=3)
