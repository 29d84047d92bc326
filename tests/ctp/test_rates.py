"""The margin and commission table: coverage, ranges, formulas and the override file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ctpshim.ctp import rates
from ctpshim.ctp.products import PRODUCTS
from ctpshim.ctp.rates import RatesFileError, UnknownProduct, load_table, rates_for

HEADER = ",".join(rates.COLUMNS)
GOOD_RB = "SHFE,rb,broker,0.2,0,0.25,0,0.0002,0,0.0002,0,0.0003,0,yes,my broker 2026-12-01"


def write(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "my_rates.csv"
    path.write_text("\n".join(["# my broker's levels", header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("level", rates.LEVELS)
def test_every_product_has_rates_in_range_with_a_source(level: str) -> None:
    for code, product in PRODUCTS.items():
        found = rates_for(code, level)
        assert (found.ProductID, found.ExchangeID, found.level) == (code, product.exchange, level)
        assert found.multiplier == product.multiplier
        assert "default" not in found.source, f"{code} has no {level} row"
        assert found.source
        for name in rates.RATE_COLUMNS:
            low, high = rates.RANGES[name]
            assert low <= getattr(found, name) <= high, (code, name)
        assert 0.005 <= found.LongMarginRatioByMoney < 0.6, code
        assert found.margin(1, product.price, "long") > 0
        assert found.commission(1, product.price, "open") > 0, code


def test_every_row_is_in_the_file_and_broker_margins_are_not_below_the_exchange() -> None:
    in_file = [(row.ProductID, row.level) for row in load_table().rows()]
    assert sorted(in_file) == sorted((code, level) for code in PRODUCTS for level in rates.LEVELS)
    for code in PRODUCTS:
        assert rates_for(code, "broker").LongMarginRatioByMoney >= rates_for(code, "exchange").LongMarginRatioByMoney


def test_broker_level_is_simnow_with_the_exchange_fees_where_simnow_fees_are_unknown() -> None:
    rb = rates_for("rb")
    assert (rb.LongMarginRatioByMoney, rb.OpenRatioByMoney, rb.certain) == (0.16, 1e-4, True)
    assert "SimNow declared" in rb.source
    m = rates_for("m")
    assert (m.OpenRatioByVolume, m.CloseTodayRatioByVolume) == (0.2, 0.1)  # SimNow's, not the exchange's 1.5
    hc, hc_exchange = rates_for("hc"), rates_for("hc", "exchange")
    assert hc.LongMarginRatioByMoney == 0.16
    assert [getattr(hc, name) for name in rates.COMMISSION_COLUMNS] == [
        getattr(hc_exchange, name) for name in rates.COMMISSION_COLUMNS]
    assert "SimNow" in hc.source and not hc.certain


def test_instrument_ids_resolve_to_their_product_and_unknown_ones_are_an_error() -> None:
    assert rates_for("rb2605") == rates_for("rb")
    assert rates_for("TA605") == rates_for("TA")
    assert rates_for("IF2606", "exchange") == rates_for("IF", "exchange")
    for bad in ("xx2601", "RB2605", "rb26050", "", "600000"):
        with pytest.raises(UnknownProduct):
            rates_for(bad)
    with pytest.raises(ValueError, match="level"):
        rates_for("rb", "retail")


def test_a_product_without_rows_gets_the_localctp_default() -> None:
    table = rates.RateTable({})
    found = table.rates_for("rb2605")
    assert (found.LongMarginRatioByMoney, found.ShortMarginRatioByMoney) == (0.1, 0.1)
    assert (found.OpenRatioByVolume, found.CloseRatioByVolume, found.CloseTodayRatioByVolume) == (1.0, 1.0, 1.0)
    assert found.margin(2, 3000, "short") == pytest.approx(2 * 3000 * 10 * 0.1)
    assert found.commission(3, 3000, "close") == pytest.approx(3.0)
    assert "default" in found.source and not found.certain


def test_margin_matches_the_simnow_observations() -> None:
    rb = rates_for("rb2701")
    assert rb.margin(1, 3147, "long") == pytest.approx(5035.20)  # yesterday's lot at pre-settlement
    assert rb.margin(1, 3005, "0") == pytest.approx(4808.00)  # frozen at the order price, Direction Buy
    ag, au = rates_for("ag2304"), rates_for("au2304")
    # SimNow statement 2023-02-15: ag long 56,179.20, short 28,089.60; au 115,864.00
    assert ag.margin(4, 4928, "long") == pytest.approx(56_179.20)
    assert ag.margin(2, 4928, "3") == pytest.approx(28_089.60)  # PosiDirection Short
    assert au.margin(2, 413.80, "short") == pytest.approx(115_864.00)


def test_commission_matches_the_simnow_statement_and_picks_the_offset_pair() -> None:
    ag, au = rates_for("ag2304"), rates_for("au2304")
    assert round(ag.commission(4, 4927, "open"), 2) == 2.96  # 4 x 4927 x 15 x 1e-5
    assert au.commission(2, 413.80, "0") == pytest.approx(4.00)  # 2 lots x 2 yuan
    assert ag.commission(4, 4946, "close_today") == 0.0
    assert au.commission(2, 413.80, "3") == 0.0  # OffsetFlag CloseToday
    ma = rates_for("MA609")
    assert [ma.commission(1, 2400, offset) for offset in ("open", "1", "4", "3")] == [2.0, 2.0, 2.0, 6.0]
    rb = rates_for("rb2605")
    assert rb.commission(1, 3150, "close") == pytest.approx(3.15)  # not rounded to cents
    with pytest.raises(ValueError, match="offset"):
        rb.commission(1, 3150, "7")
    with pytest.raises(ValueError, match="side"):
        rb.margin(1, 3150, "buy")


def test_rates_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        rates_for("rb").LongMarginRatioByMoney = 0.5  # type: ignore[misc]


def test_an_override_row_replaces_its_products_values(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_RB, "SHFE,hc,exchange,0.08,0,0.08,0,0,1,0,1,0,2,no,")
    builtin_hc = rates_for("hc")
    table = load_table(path)
    rb = table.rates_for("rb2605")
    assert (rb.LongMarginRatioByMoney, rb.ShortMarginRatioByMoney, rb.CloseTodayRatioByMoney) == (0.2, 0.25, 0.0003)
    assert rb.source == "my broker 2026-12-01" and rb.certain
    assert rb.margin(1, 3147, "short") == pytest.approx(3147 * 10 * 0.25)
    # a row replaces only its own level
    assert table.rates_for("hc", "exchange").CloseTodayRatioByVolume == 2
    assert table.rates_for("hc") == builtin_hc
    # untouched products and the built-in table are unchanged
    assert table.rates_for("cu") == rates_for("cu")
    assert rates_for("rb").LongMarginRatioByMoney == 0.16


def _bad(rb_cells: dict[int, str]) -> str:
    cells = GOOD_RB.split(",")
    for index, value in rb_cells.items():
        cells[index] = value
    return ",".join(cells)


COL = {name: index for index, name in enumerate(rates.COLUMNS)}


@pytest.mark.parametrize(("row", "column", "value", "valid"), [
    (_bad({COL["ProductID"]: "zz"}), "ProductID", "zz", "PRODUCTS"),
    (_bad({COL["ExchangeID"]: "DCE"}), "ExchangeID", "DCE", "SHFE"),
    (_bad({COL["level"]: "retail"}), "level", "retail", "exchange or broker"),
    (_bad({COL["certain"]: "maybe"}), "certain", "maybe", "yes, no or empty"),
    (_bad({COL["LongMarginRatioByMoney"]: "abc"}), "LongMarginRatioByMoney", "abc", "from 0 to 1"),
    (_bad({COL["LongMarginRatioByMoney"]: "1.6"}), "LongMarginRatioByMoney", "1.6", "from 0 to 1"),
    (_bad({COL["ShortMarginRatioByMoney"]: "nan"}), "ShortMarginRatioByMoney", "nan", "from 0 to 1"),
    (_bad({COL["OpenRatioByMoney"]: "-0.0001"}), "OpenRatioByMoney", "-0.0001", "from 0 to 0.01"),
    (_bad({COL["OpenRatioByMoney"]: "0.5"}), "OpenRatioByMoney", "0.5", "from 0 to 0.01"),
    (_bad({COL["CloseTodayRatioByVolume"]: "inf"}), "CloseTodayRatioByVolume", "inf", "from 0 to 10000"),
    (_bad({COL["CloseRatioByVolume"]: ""}), "CloseRatioByVolume", "", "a number"),
    (_bad({COL["LongMarginRatioByMoney"]: "0"}), "LongMarginRatioByMoney", "0", "above 0"),
    (GOOD_RB + ",extra", "(row)", GOOD_RB + ",extra", "15 cells"),
])
def test_each_kind_of_bad_row_names_file_line_column_value_and_what_is_valid(
        tmp_path: Path, row: str, column: str, value: str, valid: str) -> None:
    path = write(tmp_path, "SHFE,cu,broker,0.1,0,0.1,0,0.0001,0,0.0001,0,0,0,no,ok", row)
    with pytest.raises(RatesFileError) as caught:
        load_table(path)
    error = caught.value
    assert isinstance(error, ValueError)
    assert (error.path, error.line, error.column, error.value) == (str(path), 4, column, value)
    assert valid in error.valid
    assert str(path) in str(error) and "line 4" in str(error) and column in str(error)


def test_a_repeated_row_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RatesFileError, match="repeats") as caught:
        load_table(write(tmp_path, GOOD_RB, GOOD_RB))
    assert caught.value.line == 4


@pytest.mark.parametrize(("header", "column"), [
    (HEADER.replace(",source", ""), "source"),
    (HEADER + ",Margin", "Margin"),
])
def test_a_bad_header_is_an_error(tmp_path: Path, header: str, column: str) -> None:
    with pytest.raises(RatesFileError) as caught:
        load_table(write(tmp_path, GOOD_RB, header=header))
    assert (caught.value.line, caught.value.column) == (2, column)


def test_a_missing_or_empty_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RatesFileError, match="readable") as caught:
        load_table(tmp_path / "absent.csv")
    assert caught.value.path == str(tmp_path / "absent.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(RatesFileError, match="header"):
        load_table(empty)


def test_the_built_in_table_is_read_once() -> None:
    assert load_table() is load_table()
