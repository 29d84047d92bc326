"""The account report: summary figures worked by hand, and the HTML's curves and trade rows read back
with html.parser match the data they were drawn from."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from ctpshim.tools import report
from ctpshim.tools.report import EquityPoint

# Balances worked by hand: peak 10,050,000 on day 2, trough 9,950,000 on day 3, a new high on day 4.
POINTS = [
    EquityPoint("20261119", "15:00:00", 10_000_000.0),
    EquityPoint("20261120", "21:05:00", 10_020_000.0),
    EquityPoint("20261120", "15:00:00", 10_050_000.0),
    EquityPoint("20261123", "10:30:00", 9_950_000.0),
    EquityPoint("20261123", "15:00:00", 9_990_000.0),
    EquityPoint("20261124", "15:00:00", 10_080_000.0),
]

TRADES = [
    {"TradingDay": "20261120", "TradeDate": "20261119", "TradeTime": "21:05:01", "InstrumentID": "rb2701",
     "ExchangeID": "SHFE", "Direction": "0", "OffsetFlag": "0", "Price": 3500.0, "Volume": 2,
     "TradeID": "       12345", "OrderSysID": "      678901", "OrderRef": "           1"},
    {"TradingDay": "20261123", "TradeDate": "20261123", "TradeTime": "10:30:00", "InstrumentID": "rb2701",
     "ExchangeID": "SHFE", "Direction": "1", "OffsetFlag": "3", "Price": 3490.0, "Volume": 1,
     "TradeID": "       12346", "OrderSysID": "      678902", "OrderRef": "<b>2</b>"},
]


class Reader(HTMLParser):
    """The polylines (with their data attributes), the summary table and the trades table's cells."""

    def __init__(self) -> None:
        super().__init__()
        self.svg: str | None = None
        self.lines: dict[str, dict[str, str]] = {}
        self.section: str | None = None
        self.rows: dict[str, list[list[str]]] = {"summary": [], "trades": []}
        self.cell: list[str] | None = None
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        self.tags.append(tag)
        if tag == "svg":
            self.svg = values.get("class")
        elif tag == "polyline":
            self.lines[self.svg] = values
        elif tag == "table":
            self.section = values.get("class")
        elif tag == "tr" and self.section:
            self.rows[self.section].append([])
        elif tag in ("td", "th") and self.section:
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None and self.section:
            self.rows[self.section][-1].append("".join(self.cell))
            self.cell = None
        elif tag == "table":
            self.section = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def read(text: str) -> Reader:
    reader = Reader()
    reader.feed(text)
    reader.close()
    return reader


def values_of(line: dict[str, str], height: int) -> list[tuple[float, float]]:
    """The polyline's points turned back into (x, value) with the report's documented mapping."""
    low, high = float(line["data-low"]), float(line["data-high"])
    points = []
    for pair in line["points"].split():
        x, y = map(float, pair.split(","))
        points.append((x, high - (y - report.PLOT_TOP) / height * (high - low)))
    return points


def test_the_summary_figures_are_worked_from_the_points_and_trades():
    summary = report.summarize(POINTS, TRADES)
    assert summary.first_balance == 10_000_000.0 and summary.last_balance == 10_080_000.0
    assert summary.profit == pytest.approx(80_000.0)
    assert summary.return_percent == pytest.approx(0.8)
    assert summary.max_drawdown == pytest.approx(-100_000.0)  # 10,050,000 -> 9,950,000
    assert summary.max_drawdown_percent == pytest.approx(-100_000 / 10_050_000 * 100)
    assert summary.trading_days == 4 and summary.trades == 2 and summary.lots == 3


def test_the_equity_curve_and_the_drawdown_read_back_as_the_balances():
    page = read(report.render("Account 9999/1", POINTS, TRADES))
    equity = values_of(page.lines["equity"], report.PLOT_HEIGHT)
    # pixels carry 2 decimals: 100,000 yuan over 220 px is about 4.6 yuan per 0.01 px
    tolerance = (10_080_000 - 9_950_000) / report.PLOT_HEIGHT * 0.01
    assert [value for _, value in equity] == pytest.approx([p.balance for p in POINTS], abs=tolerance)
    xs = [x for x, _ in equity]
    assert xs == sorted(xs) and len(set(round(b - a, 1) for a, b in zip(xs, xs[1:]))) == 1  # evenly spaced
    drawdown = values_of(page.lines["drawdown"], report.DRAWDOWN_HEIGHT)
    assert [value for _, value in drawdown] == pytest.approx(
        [0.0, 0.0, 0.0, -100_000.0, -60_000.0, 0.0], abs=100_000 / report.DRAWDOWN_HEIGHT * 0.01)


def test_the_trades_table_holds_one_row_per_trade_with_the_values_escaped():
    page = read(report.render("Account 9999/1", POINTS, TRADES))
    heading, *rows = page.rows["trades"]
    assert heading == [title for _, title in report.TRADE_COLUMNS]
    assert len(rows) == 2
    first = dict(zip(heading, rows[0]))
    assert (first["Instrument"], first["Side"], first["Offset"], first["Price"], first["Lots"]) == \
        ("rb2701", "Buy", "Open", "3500", "2")
    second = dict(zip(heading, rows[1]))
    assert (second["Side"], second["Offset"], second["Price"]) == ("Sell", "CloseToday", "3490")
    assert second["OrderRef"] == "<b>2</b>"  # text, not markup
    summary = dict(page.rows["summary"])
    assert summary["Maximum drawdown"] == "-100,000.00 (-1.00 %)"
    assert summary["Profit"] == "80,000.00" and summary["Trades"] == "2"


def test_the_page_is_self_contained():
    text = report.render("Account 9999/1", POINTS, TRADES)
    page = read(text)
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in text


def test_one_point_and_no_points_still_make_a_page():
    page = read(report.render("one", POINTS[:1], []))
    (x, value), = values_of(page.lines["equity"], report.PLOT_HEIGHT)
    assert value == pytest.approx(10_000_000.0, abs=0.01)
    empty = report.render("none", [], [])
    assert "no equity points stored" in empty and read(empty).rows["trades"] == [[t for _, t in report.TRADE_COLUMNS]]


def test_progress_is_reported_for_every_trade_row():
    counted = []
    report.render("many", POINTS, TRADES * 1500, counted.append)
    assert sum(counted) == 3000 and len(counted) == 3


def test_a_long_curve_is_thinned_but_keeps_every_peak_and_trough():
    # a saw-tooth of 10,000 points with one deep trough and one high peak placed by hand
    balances = [10_000_000.0 + (i % 50) * 10 for i in range(10_000)]
    balances[3_333], balances[7_777] = 9_000_000.0, 11_000_000.0
    points = [EquityPoint("20261120", "10:00:00", b) for b in balances]
    line = read(report.render("long", points, [])).lines["equity"]
    drawn = values_of(line, report.PLOT_HEIGHT)
    assert len(drawn) <= report.MAX_POINTS
    step = (report.WIDTH - report.PLOT_LEFT - report.PLOT_RIGHT) / (len(balances) - 1)
    tolerance = 2_000_000 / report.PLOT_HEIGHT * 0.01
    for x, value in drawn:  # every drawn point is a data point at its own place
        index = round((x - report.PLOT_LEFT) / step)
        assert value == pytest.approx(balances[index], abs=tolerance)
    values = [value for _, value in drawn]
    assert min(values) == pytest.approx(9_000_000.0, abs=tolerance)
    assert max(values) == pytest.approx(11_000_000.0, abs=tolerance)


def test_deposits_and_withdrawals_are_not_profit_nor_drawdown():
    # 10,000,000; trading loses 20,000; 500,000 paid in (balance 10,480,000); trading makes 30,000;
    # 100,000 taken out (10,410,000).  Trading equity: 10,000,000, 9,980,000, 9,980,000, 10,010,000, 10,010,000.
    points = [
        EquityPoint("20261120", "09:00:00", 10_000_000.0),
        EquityPoint("20261120", "10:00:00", 9_980_000.0),
        EquityPoint("20261120", "10:05:00", 10_480_000.0, cash=500_000.0),
        EquityPoint("20261120", "14:00:00", 10_510_000.0),
        EquityPoint("20261120", "14:30:00", 10_410_000.0, cash=-100_000.0),
    ]
    summary = report.summarize(points, [])
    assert summary.net_deposits == pytest.approx(400_000.0)
    assert summary.profit == pytest.approx(10_000.0) and summary.return_percent == pytest.approx(0.1)
    assert summary.max_drawdown == pytest.approx(-20_000.0)  # the withdrawal is no fall
    page = read(report.render("cash", points, []))
    equity = [value for _, value in values_of(page.lines["equity"], report.PLOT_HEIGHT)]
    pixel = (10_510_000 - 9_980_000) / report.PLOT_HEIGHT * 0.01  # yuan per 0.01 px, the points' precision
    assert equity == pytest.approx([p.balance for p in points], abs=pixel)  # the curve is the balance as it was
    drawdown = [value for _, value in values_of(page.lines["drawdown"], report.DRAWDOWN_HEIGHT)]
    assert drawdown == pytest.approx([0.0, -20_000.0, -20_000.0, 0.0, 0.0], abs=20_000 / report.DRAWDOWN_HEIGHT * 0.01)
    assert dict(page.rows["summary"])["Deposits less withdrawals"] == "400,000.00"
