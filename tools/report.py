"""The report of a simulated account over time: one self-contained HTML file a person opens.

What it shows: summary figures (first and last balance, deposits less withdrawals, profit, return,
maximum drawdown, trading days, trades, lots), the equity curve and its drawdown drawn as inline
SVG, and the trades table.  No script, no style sheet or font from the network: the file opens offline in any browser.

The curves plot the account's equity points (what the counter stored: trading day, time, Balance)
one after the other, evenly spaced: nights, week-ends and holidays take no room.  Beyond
:data:`MAX_POINTS` points a curve draws the lowest and highest point of each short run (:func:`drawn`).
The equity curve is the Balance as it was, deposits and withdrawals included; profit, return and
drawdown leave them out (:func:`trading_equity`): drawdown at a point is its trading equity minus
the highest trading equity before it (never positive).

Each curve's ``<polyline>`` carries ``data-low`` and ``data-high``, the Balance (or drawdown) at
the bottom and the top of its plot, so a reader (or a test) can turn the points back into money:
``value = high - (y - PLOT_TOP) / PLOT_HEIGHT * (high - low)``.

:func:`render` builds the text from plain data; ``ctpshim account report`` (in
:mod:`ctpshim.tools.commands.account`) reads the data from the store and writes the file.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

WIDTH = 960
PLOT_LEFT, PLOT_RIGHT = 100, 20  # room for the money labels on the left
PLOT_TOP, PLOT_BOTTOM = 16, 28  # room for the trading-day labels below
PLOT_HEIGHT = 220
DRAWDOWN_HEIGHT = 120
MAX_DAY_LABELS = 10
MAX_POINTS = 2000  # points drawn per curve at most: a screen has fewer pixels than that

TRADE_COLUMNS = (
    ("TradingDay", "Trading day"), ("TradeDate", "Date"), ("TradeTime", "Time"),
    ("InstrumentID", "Instrument"), ("ExchangeID", "Exchange"), ("Direction", "Side"),
    ("OffsetFlag", "Offset"), ("Price", "Price"), ("Volume", "Lots"), ("TradeID", "TradeID"),
    ("OrderSysID", "OrderSysID"), ("OrderRef", "OrderRef"),
)
"""The trades table: (CThostFtdcTradeField member, heading), in the table's order."""

DIRECTIONS = {"0": "Buy", "1": "Sell"}  # THOST_FTDC_D_*
OFFSETS = {"0": "Open", "1": "Close", "2": "ForceClose", "3": "CloseToday", "4": "CloseYesterday",
           "5": "ForceOff", "6": "LocalForceClose"}  # THOST_FTDC_OF_*


@dataclass(frozen=True)
class EquityPoint:
    """One stored point of the account's equity: the Balance at a moment of a trading day."""

    trading_day: str
    time: str
    balance: float
    cash: float = 0.0  # money moved in at this point (a deposit; negative: a withdrawal), in the balance


@dataclass(frozen=True)
class Summary:
    """The summary figures of a report, worked from the equity points and the trades."""

    first_balance: float
    last_balance: float
    net_deposits: float  # deposits minus withdrawals after the first point
    profit: float  # last - first - net_deposits
    return_percent: float
    max_drawdown: float  # money, <= 0
    max_drawdown_percent: float  # of the peak it fell from, <= 0
    trading_days: int
    trades: int
    lots: int


def drawdowns(balances: Sequence[float]) -> list[float]:
    """Each balance minus the highest balance up to it (0 at a new high, negative below one)."""
    peak = -math.inf
    result = []
    for balance in balances:
        peak = max(peak, balance)
        result.append(balance - peak)
    return result


def trading_equity(points: Sequence[EquityPoint]) -> list[float]:
    """Each point's Balance less the money moved in since the first point (whose balance is the
    start): the equity that trading alone made."""
    moved = 0.0
    result = []
    for index, point in enumerate(points):
        if index:
            moved += point.cash
        result.append(point.balance - moved)
    return result


def summarize(points: Sequence[EquityPoint], trades: Sequence[dict[str, Any]]) -> Summary:
    """The summary figures; with no equity point every money figure is 0."""
    lots = sum(int(trade["Volume"]) for trade in trades)
    if not points:
        return Summary(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, len(trades), lots)
    equity = trading_equity(points)
    falls = drawdowns(equity)
    worst = min(range(len(falls)), key=falls.__getitem__)
    peak = equity[worst] - falls[worst]
    first, last = points[0].balance, points[-1].balance
    profit = equity[-1] - first
    return Summary(
        first_balance=first,
        last_balance=last,
        net_deposits=last - equity[-1],
        profit=profit,
        return_percent=profit / first * 100 if first else 0.0,
        max_drawdown=falls[worst],
        max_drawdown_percent=falls[worst] / peak * 100 if peak else 0.0,
        trading_days=len({point.trading_day for point in points}),
        trades=len(trades),
        lots=lots,
    )


def _range(values: Sequence[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    if high == low:  # a flat line is drawn across the middle
        return low - 1.0, high + 1.0
    return low, high


def _x(index: int, count: int) -> float:
    width = WIDTH - PLOT_LEFT - PLOT_RIGHT
    return PLOT_LEFT + (width / 2 if count == 1 else index * width / (count - 1))


def _y(value: float, low: float, high: float, height: int) -> float:
    return PLOT_TOP + (high - value) / (high - low) * height


def drawn(values: Sequence[float]) -> list[int]:
    """The indices of ``values`` a curve draws: all of them up to :data:`MAX_POINTS`, else the lowest
    and the highest of each of ``MAX_POINTS / 2`` equal runs (in order), so every peak and trough
    stays on the curve."""
    count = len(values)
    if count <= MAX_POINTS:
        return list(range(count))
    runs = MAX_POINTS // 2
    chosen: list[int] = []
    for run in range(runs):
        start, end = run * count // runs, (run + 1) * count // runs
        low = min(range(start, end), key=values.__getitem__)
        high = max(range(start, end), key=values.__getitem__)
        chosen += sorted({low, high})
    return chosen


def _chart(name: str, values: Sequence[float], days: Sequence[str], height: int, *, area: bool) -> str:
    """One SVG chart of ``values`` (evenly spaced), money labels left, trading days below."""
    total = PLOT_TOP + height + PLOT_BOTTOM
    if not values:
        return (f'<svg class="{name}" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{total}">'
                f'<text x="{WIDTH / 2}" y="{total / 2}" text-anchor="middle">no equity points stored</text></svg>')
    low, high = _range(values)
    count = len(values)
    points = " ".join(f"{_x(i, count):.2f},{_y(values[i], low, high, height):.2f}" for i in drawn(values))
    parts = [f'<svg class="{name}" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{total}" '
             f'viewBox="0 0 {WIDTH} {total}" role="img">']
    right = WIDTH - PLOT_RIGHT
    for step in range(5):  # five money gridlines, bottom to top
        value = low + (high - low) * step / 4
        y = _y(value, low, high, height)
        parts.append(f'<line class="grid" x1="{PLOT_LEFT}" y1="{y:.2f}" x2="{right}" y2="{y:.2f}"/>'
                     f'<text class="money" x="{PLOT_LEFT - 6}" y="{y + 4:.2f}" text-anchor="end">{value:,.2f}</text>')
    starts = [i for i, day in enumerate(days) if i == 0 or days[i - 1] != day]
    every = max(1, math.ceil(len(starts) / MAX_DAY_LABELS))
    for i in starts[::every]:
        parts.append(f'<text class="day" x="{_x(i, count):.2f}" y="{PLOT_TOP + height + 18}" '
                     f'text-anchor="middle">{html.escape(days[i])}</text>')
    if area:
        base = _y(min(max(0.0, low), high), low, high, height)
        parts.append(f'<polygon class="area" points="{_x(0, count):.2f},{base:.2f} {points} '
                     f'{_x(count - 1, count):.2f},{base:.2f}"/>')
    parts.append(f'<polyline class="line" data-low="{low!r}" data-high="{high!r}" points="{points}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _cell(member: str, value: Any) -> str:
    if member == "Direction":
        return DIRECTIONS.get(value, str(value))
    if member == "OffsetFlag":
        return OFFSETS.get(value, str(value))
    if member == "Price":
        return f"{value:.4f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
    return str(value)


STYLE = """
body { font-family: sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
table { border-collapse: collapse; font-size: 13px; }
td, th { padding: 3px 10px; border-bottom: 1px solid #ddd; text-align: right; }
th { background: #f4f4f4; } td.text, th.text { text-align: left; }
svg .grid { stroke: #e4e4e4; } svg text { font-size: 11px; fill: #555; }
svg.equity .line { fill: none; stroke: #1f5fbf; stroke-width: 1.5; }
svg.drawdown .line { fill: none; stroke: #b03030; stroke-width: 1; }
svg.drawdown .area { fill: #f3c9c9; stroke: none; }
"""

_TEXT_MEMBERS = {"TradingDay", "TradeDate", "TradeTime", "InstrumentID", "ExchangeID", "Direction", "OffsetFlag",
                 "TradeID", "OrderSysID", "OrderRef"}


def render(title: str, points: Sequence[EquityPoint], trades: Iterable[dict[str, Any]],
           progress: Callable[[int], None] | None = None) -> str:
    """The report's HTML text.

    ``points`` are the equity points in the order they were stored; ``trades`` are trades as
    CThostFtdcTradeField member values (``Trade.trade_values()``), in the order they happened.
    ``progress(n)`` is called after every batch of ``n`` trade rows rendered."""
    trades = list(trades)
    summary = summarize(points, trades)
    balances = [point.balance for point in points]
    days = [point.trading_day for point in points]
    figures = [
        ("First balance", _money(summary.first_balance)),
        ("Last balance", _money(summary.last_balance)),
        ("Deposits less withdrawals", _money(summary.net_deposits)),
        ("Profit", _money(summary.profit)),
        ("Return", f"{summary.return_percent:.2f} %"),
        ("Maximum drawdown", f"{_money(summary.max_drawdown)} ({summary.max_drawdown_percent:.2f} %)"),
        ("Trading days", f"{summary.trading_days:,}"),
        ("Trades", f"{summary.trades:,}"),
        ("Lots traded", f"{summary.lots:,}"),
    ]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        '<table class="summary">',
        *(f'<tr><th class="text">{name}</th><td>{html.escape(value)}</td></tr>' for name, value in figures),
        "</table>",
        "<h2>Equity (Balance)</h2>",
        _chart("equity", balances, days, PLOT_HEIGHT, area=False),
        "<h2>Drawdown (deposits and withdrawals left out)</h2>",
        _chart("drawdown", drawdowns(trading_equity(points)), days, DRAWDOWN_HEIGHT, area=True),
        f"<h2>Trades ({len(trades):,})</h2>",
        '<table class="trades"><thead><tr>',
        *(f'<th class="{"text" if m in _TEXT_MEMBERS else "number"}">{heading}</th>' for m, heading in TRADE_COLUMNS),
        "</tr></thead><tbody>",
    ]
    batch = 1000
    for start in range(0, len(trades), batch):
        for trade in trades[start:start + batch]:
            cells = "".join(
                f'<td class="{"text" if m in _TEXT_MEMBERS else "number"}">{html.escape(_cell(m, trade.get(m, "")))}</td>'
                for m, _ in TRADE_COLUMNS)
            out.append(f"<tr>{cells}</tr>")
        if progress is not None:
            progress(min(batch, len(trades) - start))
    out += ["</tbody></table>", "</body></html>", ""]
    return "\n".join(out)
