"""What the counter knows of one instrument: exchange rules, size, tick and rates.

One :class:`Terms` per instrument, made by :func:`terms_for` from what the source lists
(``InstrumentInfo`` for futures, ``StockInfo`` for stocks) and the rate table.  Every rule that
depends on the exchange or the instrument's flags is read from here, never from a literal
exchange name elsewhere in the counter (``SIM_TRADING.md`` 6.28).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..ctp import products, rates, stocks

# Exchanges that keep today's and yesterday's positions apart (PositionDateType '1') and take
# OF_Close as close-yesterday; the others keep one record per direction.
SPLIT_POSITION_EXCHANGES = frozenset({"SHFE", "INE"})
# Exchanges that refuse AnyPrice (market) orders: SimNow answers ErrorID 15.
NO_MARKET_ORDER_EXCHANGES = frozenset({"SHFE", "INE"})
# InsertDate / TradeDate: the calendar date on these, the trading day elsewhere.
CALENDAR_DATE_EXCHANGES = frozenset({"SHFE", "INE", "CFFEX", "GFEX"})
# MaxMarginSideAlgorithm '1' (the larger side's margin per product), as SimNow's instrument data
# flags it (SIM_TRADING.md 3.3): every SHFE and INE product, and CFFEX's index futures.
SINGLE_SIDE_MARGIN_EXCHANGES = frozenset({"SHFE", "INE"})
CFFEX_INDEX_PRODUCTS = frozenset({"IF", "IH", "IC", "IM"})
# SFIT's order callback rules (SIM_TRADING.md 1.4): these exchanges answer an order after
# matching it (an immediate fill is told in one report) ...
ANSWER_AFTER_MATCH_EXCHANGES = frozenset({"SHFE", "INE", "CFFEX"})
# ... and these report every fill without repeating the order's previous state.
NO_REPEAT_ON_FILL_EXCHANGES = frozenset({"DCE", "GFEX"})
# Settlement on the VWAP of the day's last traded hour instead of the whole day (SIM_TRADING.md 4.1).
LAST_HOUR_SETTLEMENT_EXCHANGES = frozenset({"CFFEX"})
# Order-volume limits (MaxLimitOrderVolume, MaxMarketOrderVolume) from SimNow's instrument data
# (SIM_TRADING.md 3.3).  SimNow lists 0 market lots on CZCE and CFFEX, yet both exchanges take
# market orders (SIM_TRADING.md 6.9): they get their limit-order volume and CFFEX's ten lots.
VOLUME_LIMITS = {"SHFE": (500, 30), "INE": (500, 30), "DCE": (1000, 1000), "GFEX": (1000, 1000),
                 "CZCE": (1000, 1000), "CFFEX": (20, 10)}
CFFEX_BOND_VOLUME_LIMITS = (50, 10)  # T, TF, TS, TL: 50 limit lots (index futures: 20)
STOCK_VOLUME_LIMITS = (1_000_000, 1_000_000)

# A stock is bought with its full price (no margin) and pays 0.03 % each way, a typical
# mainland retail commission; stocks have no row in the futures rate table.
STOCK_COMMISSION_BY_MONEY = 0.0003


@dataclass(frozen=True)
class Terms:
    """One instrument's trading terms (CTP member names where CTP has one)."""

    InstrumentID: str
    ExchangeID: str
    ProductID: str
    VolumeMultiple: int
    PriceTick: float
    split_positions: bool  # PositionDateType '1': today and history records (SHFE, INE)
    single_side_margin: bool  # MaxMarginSideAlgorithm '1': the larger side's margin per product
    MaxLimitOrderVolume: int
    MaxMarketOrderVolume: int  # 0: the exchange takes no market orders
    rates: rates.Rates
    info: Any  # the source's InstrumentInfo or StockInfo
    is_stock: bool = False

    @property
    def PositionDateType(self) -> str:
        return "1" if self.split_positions else "2"

    @property
    def MaxMarginSideAlgorithm(self) -> str:
        return "1" if self.single_side_margin else "0"

    @property
    def answers_after_match(self) -> bool:
        """Whether the exchange answers an order once matched: an immediate full fill is told as
        Unknown, Unknown, 全部成交报单已提交 and a FAK's cancel comes before its trade."""
        return self.ExchangeID in ANSWER_AFTER_MATCH_EXCHANGES

    @property
    def repeats_state_on_fill(self) -> bool:
        """Whether each fill's report is preceded by the order's previous state repeated (not on
        DCE and GFEX, whose all-traded report CTP synthesises)."""
        return self.ExchangeID not in NO_REPEAT_ON_FILL_EXCHANGES

    @property
    def settles_on_last_hour(self) -> bool:
        """Whether the settlement price is the VWAP of the last traded hour (CFFEX), not the day's."""
        return self.ExchangeID in LAST_HOUR_SETTLEMENT_EXCHANGES

    @property
    def accepts_market_orders(self) -> bool:
        return self.MaxMarketOrderVolume > 0 and self.ExchangeID not in NO_MARKET_ORDER_EXCHANGES

    @property
    def calendar_dates(self) -> bool:
        """Whether InsertDate and TradeDate carry the calendar date (else the trading day)."""
        return self.ExchangeID in CALENDAR_DATE_EXCHANGES

    def is_trading(self, moment: datetime) -> bool:
        """Whether the instrument's continuous trading runs at ``moment`` (China time, naive)."""
        if self.is_stock:
            return stocks.is_open(self.ExchangeID, moment)
        return products.is_open(self.info.product, moment)


def terms_for(info: Any, table: rates.RateTable | None = None, level: str = "broker") -> Terms:
    """The terms of the instrument the source describes as ``info`` (an ``InstrumentInfo`` or a
    ``StockInfo``), with its rates from ``table`` (default: the built-in table) at ``level``."""
    if isinstance(info, stocks.StockInfo):
        stock_rates = rates.Rates(
            info.exchange_id, info.product_id, level, 1,
            1.0, 0.0, 1.0, 0.0,
            STOCK_COMMISSION_BY_MONEY, 0.0, STOCK_COMMISSION_BY_MONEY, 0.0, STOCK_COMMISSION_BY_MONEY, 0.0,
            False, "full price, no margin; 0.03 % commission each way (a typical retail rate)",
        )
        limit, market = STOCK_VOLUME_LIMITS
        return Terms(info.instrument_id, info.exchange_id, info.product_id, 1, info.price_tick,
                     False, False, limit, market, stock_rates, info, is_stock=True)
    product = info.product
    exchange = product.exchange
    limit, market = VOLUME_LIMITS.get(exchange, (1000, 1000))
    if exchange == "CFFEX" and product.code not in CFFEX_INDEX_PRODUCTS:
        limit, market = CFFEX_BOND_VOLUME_LIMITS
    single_side = exchange in SINGLE_SIDE_MARGIN_EXCHANGES or product.code in CFFEX_INDEX_PRODUCTS
    found = (table or rates.load_table()).rates_for(product.code, level)
    return Terms(info.instrument_id, exchange, product.code, product.multiplier, product.tick,
                 exchange in SPLIT_POSITION_EXCHANGES, single_side, limit, market, found, info)


def parse_info(instrument_id: str) -> Any:
    """The source-independent description of an instrument ID: an ``InstrumentInfo`` for a
    futures contract, a ``StockInfo`` for a stock code, ``None`` for neither."""
    return products.parse_instrument(instrument_id) or stocks.parse_stock(instrument_id)
