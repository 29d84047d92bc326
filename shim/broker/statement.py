"""The settlement statement of one account's trading day, in SimNow's layout.

:func:`render` turns the summary :meth:`ctpshim.broker.ledger.Ledger.settle` returns into the
text ``ReqQrySettlementInfo`` serves, laid out as SimNow's statement (SIM_TRADING.md 4.4): the
title, the account summary in two bilingual columns, then the transaction record, the positions
closed, the positions detail and the positions (sections without rows are left out).  Columns
are aligned in GB18030 bytes, which is what a terminal shows for GBK text (a Chinese character
is two columns wide).  Money is printed to the cent, prices to three decimals.

:func:`pieces` cuts the text into ``CThostFtdcSettlementInfoField.Content`` pieces of at most
500 GB18030 bytes (``char[501]``) without splitting a character; :func:`structured` is the same
statement as plain values for programs (tqsdk-python#109: statements are hard to parse).
"""

from __future__ import annotations

from typing import Any, Callable

from ..ctp import products
from ..ctp.fields import char_limit
from .ledger import cents

ENCODING = "gb18030"
WIDTH = 100  # the title and account summary width (bytes)
LEFT, RIGHT = 50, 48  # the account summary's two columns

EXCHANGE_NAMES = {"INE": "能源中心", "SHFE": "上期所", "CFFEX": "中金所", "DCE": "大商所", "CZCE": "郑商所",
                  "GFEX": "广期所", "SSE": "上交所", "SZSE": "深交所"}
DIRECTIONS = {"0": "买", "1": "卖"}
HEDGE_FLAGS = {"1": "投机", "2": "套利", "3": "套保", "5": "做市商"}
OFFSET_FLAGS = {"0": "开", "1": "平", "2": "强平", "3": "平今", "4": "平昨", "5": "强减", "6": "本地强平"}
LEGEND = (
    "能源中心---INE  上期所---SHFE   中金所---CFFEX  大商所---DCE   郑商所---CZCE   广期所---GFEX",
    "买---Buy   卖---Sell",
    "投机---Speculation  套保---Hedge  套利---Arbitrage  一般---General  交易---Trade  做市商---Market Maker",
)
OFFSET_LEGEND = ("开---Open 平---Close 平今---Close Today 强平---Forced Liquidation 平昨---Close Prev. "
                 "强减---Forced Reduction 本地强平---Local Forced Liquidation")


def width(text: str) -> int:
    """The columns ``text`` takes: its GB18030 bytes."""
    return len(text.encode(ENCODING))


def _pad(text: str, size: int, align: str = "<") -> str:
    gap = max(0, size - width(text))
    if align == ">":
        return " " * gap + text
    if align == "^":
        return " " * (gap // 2) + text + " " * (gap - gap // 2)
    return text + " " * gap


def _money(value: float) -> str:
    return f"{cents(value):.2f}"


def _price(value: float) -> str:
    return f"{value:.3f}"


def _product_name(product_id: str) -> str:
    product = products.PRODUCTS.get(product_id)
    return product.name if product else product_id


def _side(direction: str) -> str:
    """SimNow puts 买 at the left of its cell and 卖 at the right."""
    return _pad(DIRECTIONS.get(direction, direction), 5, "<" if direction == "0" else ">")


# ------------------------------------------------------------------------------ tables

Column = tuple[str, str, int, str, Callable[[dict[str, Any]], str]]  # Chinese, English, bytes, align, cell


def _table(title: str, columns: list[Column], rows: list[dict[str, Any]], total: dict[str, str],
           legend: tuple[str, ...]) -> list[str]:
    inner = sum(size for _, _, size, _, _ in columns) + len(columns) + 1
    rule = "-" * inner
    lines = [_pad(title, inner, "^").rstrip(), rule,
             "|" + "|".join(_pad(cn, size, "^") for cn, _, size, _, _ in columns) + "|",
             "|" + "|".join(_pad(en, size, "^") for _, en, size, _, _ in columns) + "|", rule]
    for row in rows:
        lines.append("|" + "|".join(_pad(cell(row), size, align) for _, _, size, align, cell in columns) + "|")
    lines.append(rule)
    first = f"共{len(rows):>{columns[0][2] - width('共条')}}条"
    cells = [first] + [total.get(en, "") for _, en, _, _, _ in columns[1:]]
    lines.append("|" + "|".join(_pad(text, size, ">" if text and i else "<")
                                for i, (text, (_, _, size, _, _)) in enumerate(zip(cells, columns))) + "|")
    lines.append(rule)
    lines.extend(legend)
    lines.append("")
    return lines


def _common(summary: dict[str, Any]) -> tuple[str, str]:
    account = summary["account"]
    investor = account["InvestorID"]
    return investor, summary.get("ClientID") or f"{account['BrokerID']}{investor}"


def _transactions(summary: dict[str, Any]) -> list[str]:
    investor, code = _common(summary)
    rows = summary["trades"]
    columns: list[Column] = [
        ("成交日期", "Date", 8, "<", lambda r: r["TradeDate"]),
        ("投资单元", "InvestUnit", 10, "<", lambda r: investor),
        ("交易所", "Exchange", 8, "<", lambda r: EXCHANGE_NAMES.get(r["ExchangeID"], r["ExchangeID"])),
        ("交易编码", "tradingcode", 11, "<", lambda r: code),
        ("品种", "Product", 18, "<", lambda r: _product_name(r["ProductID"])),
        ("合约", "Instrument", 16, "^", lambda r: r["InstrumentID"]),
        ("买/卖", "B/S", 5, "<", lambda r: _side(r["Direction"])),
        ("投/保", "S/H", 12, "<", lambda r: HEDGE_FLAGS.get(r["HedgeFlag"], r["HedgeFlag"])),
        ("成交价", "Price", 10, ">", lambda r: _price(r["Price"])),
        ("手数", "Lots", 6, ">", lambda r: str(r["Volume"])),
        ("成交额", "Turnover", 12, ">", lambda r: _money(r["Turnover"])),
        ("开平", "O/C", 18, "<", lambda r: OFFSET_FLAGS.get(r["OffsetFlag"], r["OffsetFlag"])),
        ("手续费", "Fee", 10, ">", lambda r: _money(r["Commission"])),
        ("平仓盈亏", "Realized P/L", 12, ">", lambda r: _money(r["CloseProfit"])),
        ("权利金收支", "Premium Received/Paid", 21, ">", lambda r: "0.00"),
        ("成交序号", "Trans.No.", 18, "<", lambda r: r["TradeID"].strip()),
        ("资金账号", "AccountID", 14, "<", lambda r: investor),
    ]
    total = {"Lots": str(sum(r["Volume"] for r in rows)), "Turnover": _money(sum(r["Turnover"] for r in rows)),
             "Fee": _money(sum(cents(r["Commission"]) for r in rows)),
             "Realized P/L": _money(sum(r["CloseProfit"] for r in rows)), "Premium Received/Paid": "0.00"}
    return _table("成交记录 Transaction Record", columns, rows, total, LEGEND + (OFFSET_LEGEND,))


def _closed(summary: dict[str, Any]) -> list[str]:
    investor, code = _common(summary)
    rows = summary["closed"]
    columns: list[Column] = [
        ("平仓日期", "Close Date", 10, "<", lambda r: r["CloseDate"]),
        ("投资单元", "InvestUnit", 10, "<", lambda r: investor),
        ("交易所", "Exchange", 8, "<", lambda r: EXCHANGE_NAMES.get(r["ExchangeID"], r["ExchangeID"])),
        ("交易编码", "tradingcode", 11, "<", lambda r: code),
        ("品种", "Product", 18, "<", lambda r: _product_name(r["ProductID"])),
        ("合约", "Instrument", 16, "<", lambda r: r["InstrumentID"]),
        ("开仓日期", "Open Date", 9, "<", lambda r: r["OpenDate"]),
        ("投/保", "S/H", 5, "<", lambda r: HEDGE_FLAGS.get(r["HedgeFlag"], r["HedgeFlag"])),
        ("买/卖", "B/S", 5, "<", lambda r: _side(r["Direction"])),
        ("手数", "Lots", 10, ">", lambda r: str(r["Volume"])),
        ("开仓价", "Pos. Open Price", 15, ">", lambda r: _price(r["OpenPrice"])),
        ("昨结算", "Prev. Sttl", 16, ">", lambda r: _price(r["LastSettlementPrice"])),
        ("成交价", "Trans. Price", 12, ">", lambda r: _price(r["Price"])),
        ("平仓盈亏", "Realized P/L", 12, ">", lambda r: _money(r["CloseProfitByDate"])),
        ("权利金收支", "Premium Received/Paid", 21, ">", lambda r: "0.000"),
        ("资金账号", "AccountID", 14, "<", lambda r: investor),
    ]
    total = {"Lots": str(sum(r["Volume"] for r in rows)),
             "Realized P/L": _money(sum(r["CloseProfitByDate"] for r in rows)), "Premium Received/Paid": "0.00"}
    return _table("平仓明细 Position Closed", columns, rows, total, LEGEND)


def _details(summary: dict[str, Any]) -> list[str]:
    investor, code = _common(summary)
    rows = summary["details"]
    columns: list[Column] = [
        ("投资单元", "InvestUnit", 10, "<", lambda r: investor),
        ("交易所", "Exchange", 8, "<", lambda r: EXCHANGE_NAMES.get(r["ExchangeID"], r["ExchangeID"])),
        ("交易编码", "tradingcode", 11, "<", lambda r: code),
        ("品种", "Product", 18, "^", lambda r: _product_name(r["ProductID"])),
        ("合约", "Instrument", 16, "^", lambda r: r["InstrumentID"]),
        ("开仓日期", "Open Date", 9, ">", lambda r: r["OpenDate"]),
        ("投/保", "S/H", 12, "<", lambda r: HEDGE_FLAGS.get(r["HedgeFlag"], r["HedgeFlag"])),
        ("买/卖", "B/S", 5, "<", lambda r: _side(r["Direction"])),
        ("持仓量", "Positon", 7, ">", lambda r: str(r["Volume"])),
        ("开仓价", "Pos. Open Price", 15, ">", lambda r: _price(r["OpenPrice"])),
        ("昨结算", "Prev. Sttl", 16, ">", lambda r: _price(r["LastSettlementPrice"])),
        ("结算价", "Settlement Price", 16, ">", lambda r: _price(r["SettlementPrice"])),
        ("浮动盈亏", "Accum. P/L", 12, ">", lambda r: _money(r["PositionProfitByTrade"])),
        ("盯市盈亏", "MTM P/L", 11, ">", lambda r: _money(r["PositionProfitByDate"])),
        ("保证金", "Margin", 11, ">", lambda r: _money(r["Margin"])),
        ("期权市值", "Market Value(Options)", 22, ">", lambda r: "0.00"),
        ("资金账号", "AccountID", 14, "<", lambda r: investor),
    ]
    total = {"Positon": str(sum(r["Volume"] for r in rows)),
             "Accum. P/L": _money(sum(r["PositionProfitByTrade"] for r in rows)),
             "MTM P/L": _money(sum(r["PositionProfitByDate"] for r in rows)),
             "Margin": _money(sum(r["Margin"] for r in rows)), "Market Value(Options)": "0.00"}
    return _table("持仓明细 Positions Detail", columns, rows, total, LEGEND)


def _positions(summary: dict[str, Any]) -> list[str]:
    investor, code = _common(summary)
    rows = summary["positions"]
    columns: list[Column] = [
        ("投资单元", "InvestUnit", 10, "<", lambda r: investor),
        ("交易编码", "tradingcode", 11, "<", lambda r: code),
        ("品种", "Product", 18, "^", lambda r: _product_name(r["ProductID"])),
        ("合约", "Instrument", 16, "^", lambda r: r["InstrumentID"]),
        ("买持", "Long Pos.", 13, ">", lambda r: str(r["LongPosition"])),
        ("买均价", "Avg Buy Price", 13, ">", lambda r: _price(r["LongAveragePrice"])),
        ("卖持", "Short Pos.", 14, ">", lambda r: str(r["ShortPosition"])),
        ("卖均价", "Avg Sell Price", 14, ">", lambda r: _price(r["ShortAveragePrice"])),
        ("昨结算", "Prev. Sttl", 10, ">", lambda r: _price(r["LastSettlementPrice"])),
        ("今结算", "Sttl Today", 10, ">", lambda r: _price(r["SettlementPrice"])),
        ("持仓盯市盈亏", "MTM P/L", 12, ">", lambda r: _money(r["PositionProfit"])),
        ("保证金占用", "Margin Occupied", 15, ">", lambda r: _money(r["Margin"])),
        ("投/保", "S/H", 12, "<", lambda r: HEDGE_FLAGS.get(r["HedgeFlag"], r["HedgeFlag"])),
        ("多头期权市值", "Market Value(Long)", 18, ">", lambda r: "0.00"),
        ("空头期权市值", "Market Value(Short)", 19, ">", lambda r: "0.00"),
        ("资金账号", "AccountID", 14, "<", lambda r: investor),
    ]
    total = {"Long Pos.": str(sum(r["LongPosition"] for r in rows)),
             "Short Pos.": str(sum(r["ShortPosition"] for r in rows)),
             "MTM P/L": _money(sum(r["PositionProfit"] for r in rows)),
             "Margin Occupied": _money(summary["account"]["CurrMargin"]),
             "Market Value(Long)": "0.00", "Market Value(Short)": "0.00"}
    return _table("持仓汇总 Positions", columns, rows, total, ())


# ------------------------------------------------------------------------------ the statement

def _summary_lines(summary: dict[str, Any]) -> list[str]:
    a = summary["account"]
    investor = a["InvestorID"]
    left = [("期初结存 Balance b/f：", _money(a["PreBalance"])),
            ("出 入 金 Deposit/Withdrawal：", _money(a["Deposit"] - a["Withdraw"])),
            ("平仓盈亏 Realized P/L：", _money(a["CloseProfit"])),
            ("持仓盯市盈亏 MTM P/L：", _money(a["PositionProfit"])),
            ("期权执行盈亏 Exercise P/L：", "0.00"),
            ("手 续 费 Commission：", _money(a["Commission"])),
            ("行权手续费 Exercise Fee：", "0.00"), ("交割手续费 Delivery Fee：", "0.00"),
            ("货币质入 New FX Pledge：", "0.00"), ("货币质出 FX Redemption：", "0.00"),
            ("质押变化金额 Chg in Pledge Amt：", "0.00"), ("权利金收入 Premium received：", "0.00"),
            ("权利金支出 Premium paid：", "0.00"), ("交割盈亏 Delivery P/L：", "0.00")]
    right = [("基础保证金 Initial Margin：", "0.00"),
             ("期末结存 Balance c/f：", _money(a["Balance"])),
             ("质 押 金 Pledge Amount：", "0.00"),
             ("客户权益 Client Equity：", _money(a["Balance"])),
             ("货币质押保证金占用 FX Pledge Occ.：", "0.00"),
             ("保证金占用 Margin Occupied：", _money(a["CurrMargin"])),
             ("交割保证金 Delivery Margin：", "0.00"), ("多头期权市值 Market value(long)：", "0.00"),
             ("空头期权市值 Market value(short)：", "0.00"),
             ("市值权益 Market value(equity)：", _money(a["Balance"])),
             ("可用资金 Fund Avail.：", _money(a["Available"])),
             ("风 险 度 Risk Degree：", f"{a['RiskDegree']:.2f}%"),
             ("应追加资金 Margin Call：", _money(a["MarginCall"])),
             ("货币质押变化金额 Chg in FX Pledge:", "0.00")]
    lines = [_pad(f"资金状况   资金账号：{investor}  币种：人民币  Account Summary AccountID：{investor} Currency：CNY",
                  WIDTH, "^"), "-" * WIDTH]
    for (l_label, l_value), (r_label, r_value) in zip(left, right):
        lines.append(_pad(l_label, LEFT - width(l_value)) + l_value + "  "
                     + _pad(r_label, RIGHT - width(r_value)) + r_value)
    lines.append("")
    return lines


def render(summary: dict[str, Any], *, broker_name: str = "ctpshim模拟柜台", client_name: str = "") -> str:
    """The statement text of a :meth:`Ledger.settle` summary.  ``client_name`` defaults to the
    InvestorID; the creation date is the trading day settled (the ledger reads no clock)."""
    a = summary["account"]
    day = a["TradingDay"]
    investor = a["InvestorID"]
    lines = [_pad(broker_name, WIDTH, "^"), _pad(f"制表时间 Creation Date：{day}", WIDTH, ">"), "-" * WIDTH,
             _pad("交易结算单(盯市) Settlement Statement(MTM)", WIDTH, "^"),
             f"客户号 Client ID：  {_pad(investor, 16)}客户名称 Client Name：{client_name or investor}",
             f"日期 Date：{day}", ""]
    lines += _summary_lines(summary)
    for section, key in ((_transactions, "trades"), (_closed, "closed"), (_details, "details"),
                         (_positions, "positions")):
        if summary[key]:
            lines += section(summary)
    return "\n".join(lines) + "\n"


def structured(summary: dict[str, Any]) -> dict[str, Any]:
    """The statement as plain values: the summary with money taken to the cent as printed."""
    def rounded(row: dict[str, Any]) -> dict[str, Any]:
        return {k: cents(v) if isinstance(v, float) and not k.endswith("Price") else v for k, v in row.items()}
    return {"account": rounded(summary["account"]),
            **{key: [rounded(row) for row in summary[key]] for key in ("trades", "closed", "details", "positions")}}


def pieces(text: str, limit: int | None = None) -> list[str]:
    """``text`` cut into ``Content`` pieces of at most ``limit`` GB18030 bytes (default: what
    ``CThostFtdcSettlementInfoField.Content`` holds, 500), never splitting a character; joined
    (or their bytes concatenated) they give ``text`` back.  An empty text is one empty piece."""
    limit = char_limit("CThostFtdcSettlementInfoField", "Content") if limit is None else limit
    if limit < 4:
        raise ValueError(f"limit {limit!r}: expected at least 4 bytes (one GB18030 character)")
    out: list[str] = []
    start = used = 0
    for index, char in enumerate(text):
        size = len(char.encode(ENCODING))
        if used + size > limit:
            out.append(text[start:index])
            start, used = index, 0
        used += size
    out.append(text[start:])
    return out
