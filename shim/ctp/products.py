"""Futures products of the six exchanges: the one table of tick sizes, multipliers and hours.

Exchange membership, price ticks, multipliers and session templates follow the reference notes
(``FEEDS.md`` section 3, from wtpy's commodities table, akshare and exchange knowledge).  Ticks
and multipliers change over time: a real front's ``ReqQryInstrument`` is authoritative.
``limit`` (the daily price band as a fraction of the pre-settlement price) and ``price`` (a
plausible level used only as the simulated market's default starting price) are approximate.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Iterable

from . import calendar, clock

# Trading sessions as (start, end) in minutes after midnight of the night's calendar day; night
# sessions that run past midnight end after 24:00 (01:00 is 25 * 60).
_DAY = ((9 * 60, 10 * 60 + 15), (10 * 60 + 30, 11 * 60 + 30), (13 * 60 + 30, 15 * 60))
SESSIONS: dict[str, tuple[tuple[tuple[int, int], ...], tuple[int, int] | None]] = {
    "day": (_DAY, None),
    "night2300": (_DAY, (21 * 60, 23 * 60)),
    "night0100": (_DAY, (21 * 60, 25 * 60)),
    "night0230": (_DAY, (21 * 60, 26 * 60 + 30)),
    "index": (((9 * 60 + 30, 11 * 60 + 30), (13 * 60, 15 * 60)), None),
    "bond": (((9 * 60 + 30, 11 * 60 + 30), (13 * 60, 15 * 60 + 15)), None),
}

MIN_BAND_TICKS = 5
MAX_PRICE_FACTOR = 10
PRICE_LIMIT_TOLERANCE = 1e-6  # of a tick: a band edge that is a whole tick in exact arithmetic counts


@dataclass(frozen=True)
class Product:
    exchange: str
    code: str  # as CTP spells it: lower case except CZCE and CFFEX
    name: str  # Chinese short name, as InstrumentName uses it
    tick: float
    multiplier: int
    session: str
    limit: float
    price: float
    months: tuple[int, ...]  # the usually active (main) delivery months

    def __post_init__(self) -> None:
        object.__setattr__(self, "tick", float(self.tick))  # prices must come out as float

    @property
    def decimals(self) -> int:
        text = f"{self.tick:.10f}".rstrip("0")
        return len(text.split(".")[1]) if "." in text else 0

    @property
    def price_range(self) -> tuple[float, float]:
        """The pre-settlement prices a simulated contract may start from: low enough that the
        daily band holds at least ``MIN_BAND_TICKS`` ticks each side (room for five book levels),
        at most ``MAX_PRICE_FACTOR`` times the typical level."""
        low = math.ceil(MIN_BAND_TICKS / self.limit) * self.tick
        return round(low, self.decimals), round(self.price * MAX_PRICE_FACTOR, self.decimals)

    def price_problem(self, price: float) -> str | None:
        """Why ``price`` cannot be this product's starting price, or None if it can."""
        low, high = self.price_range
        steps = price / self.tick
        if not low <= price <= high:
            return f"{price:g} is outside {self.code}'s range {low:g} to {high:g}"
        if abs(steps - round(steps)) > 1e-6:
            return f"{price:g} is not a multiple of {self.code}'s price tick {self.tick:g}"
        return None


_ALL = tuple(range(1, 13))
_159 = (1, 5, 9)
_Q = (3, 6, 9, 12)

_TABLE: tuple[Product, ...] = (
    Product("CFFEX", "IF", "沪深300", 0.2, 300, "index", 0.10, 3900.0, _ALL),
    Product("CFFEX", "IH", "上证50", 0.2, 300, "index", 0.10, 2700.0, _ALL),
    Product("CFFEX", "IC", "中证500", 0.2, 200, "index", 0.10, 6000.0, _ALL),
    Product("CFFEX", "IM", "中证1000", 0.2, 200, "index", 0.10, 6300.0, _ALL),
    Product("CFFEX", "TS", "二债", 0.002, 20000, "bond", 0.005, 102.4, _Q),
    Product("CFFEX", "TF", "五债", 0.005, 10000, "bond", 0.012, 105.8, _Q),
    Product("CFFEX", "T", "十债", 0.005, 10000, "bond", 0.02, 108.5, _Q),
    Product("CFFEX", "TL", "三十债", 0.01, 10000, "bond", 0.035, 118.0, _Q),
    Product("SHFE", "cu", "沪铜", 10, 5, "night0100", 0.08, 80000.0, _ALL),
    Product("SHFE", "al", "沪铝", 5, 5, "night0100", 0.08, 20500.0, _ALL),
    Product("SHFE", "zn", "沪锌", 5, 5, "night0100", 0.08, 22500.0, _ALL),
    Product("SHFE", "pb", "沪铅", 5, 5, "night0100", 0.08, 17000.0, _ALL),
    Product("SHFE", "ni", "沪镍", 10, 1, "night0100", 0.10, 122000.0, _ALL),
    Product("SHFE", "sn", "沪锡", 10, 1, "night0100", 0.10, 270000.0, _ALL),
    Product("SHFE", "ss", "不锈钢", 5, 5, "night0100", 0.08, 12800.0, _ALL),
    Product("SHFE", "ao", "氧化铝", 1, 20, "night0100", 0.09, 2900.0, _ALL),
    Product("SHFE", "au", "沪金", 0.02, 1000, "night0230", 0.09, 920.0, (2, 4, 6, 8, 10, 12)),
    Product("SHFE", "ag", "沪银", 1, 15, "night0230", 0.10, 11000.0, (2, 4, 6, 8, 10, 12)),
    Product("SHFE", "rb", "螺纹钢", 1, 10, "night2300", 0.07, 3150.0, (1, 5, 10)),
    Product("SHFE", "hc", "热轧卷板", 1, 10, "night2300", 0.07, 3300.0, (1, 5, 10)),
    Product("SHFE", "wr", "线材", 1, 10, "day", 0.07, 3400.0, (1, 5, 10)),
    Product("SHFE", "fu", "燃料油", 1, 10, "night2300", 0.08, 2900.0, _ALL),
    Product("SHFE", "bu", "沥青", 1, 10, "night2300", 0.08, 3400.0, (3, 6, 9, 12)),
    Product("SHFE", "ru", "橡胶", 5, 10, "night2300", 0.08, 15000.0, _159),
    Product("SHFE", "sp", "纸浆", 2, 10, "night2300", 0.07, 5300.0, _159),
    Product("SHFE", "br", "丁二烯橡胶", 5, 5, "night2300", 0.08, 12000.0, _ALL),
    Product("INE", "sc", "原油", 0.1, 1000, "night0230", 0.08, 480.0, _ALL),
    Product("INE", "lu", "低硫燃料油", 1, 10, "night2300", 0.08, 3500.0, _ALL),
    Product("INE", "nr", "20号胶", 5, 10, "night2300", 0.08, 12500.0, _ALL),
    Product("INE", "bc", "国际铜", 10, 5, "night0100", 0.08, 72000.0, _ALL),
    Product("INE", "ec", "集运欧线", 0.1, 50, "day", 0.18, 1600.0, (2, 4, 6, 8, 10, 12)),
    Product("DCE", "a", "豆一", 1, 10, "night2300", 0.07, 4000.0, _159),
    Product("DCE", "b", "豆二", 1, 10, "night2300", 0.07, 3600.0, _159),
    Product("DCE", "m", "豆粕", 1, 10, "night2300", 0.07, 2900.0, _159),
    Product("DCE", "y", "豆油", 2, 10, "night2300", 0.07, 8000.0, _159),
    Product("DCE", "p", "棕榈油", 2, 10, "night2300", 0.08, 8800.0, _159),
    Product("DCE", "c", "玉米", 1, 10, "night2300", 0.06, 2200.0, _159),
    Product("DCE", "cs", "玉米淀粉", 1, 10, "night2300", 0.06, 2600.0, _159),
    Product("DCE", "rr", "粳米", 1, 10, "night2300", 0.06, 3500.0, _159),
    Product("DCE", "jd", "鸡蛋", 1, 10, "day", 0.07, 3300.0, _159),
    Product("DCE", "lh", "生猪", 5, 16, "day", 0.08, 13500.0, _159),
    Product("DCE", "l", "塑料", 1, 5, "night2300", 0.07, 7200.0, _159),
    Product("DCE", "v", "PVC", 1, 5, "night2300", 0.07, 4900.0, _159),
    Product("DCE", "pp", "聚丙烯", 1, 5, "night2300", 0.07, 7000.0, _159),
    Product("DCE", "eg", "乙二醇", 1, 10, "night2300", 0.07, 4300.0, _159),
    Product("DCE", "eb", "苯乙烯", 1, 5, "night2300", 0.08, 7200.0, _159),
    Product("DCE", "pg", "液化石油气", 1, 20, "night2300", 0.08, 4300.0, _ALL),
    Product("DCE", "j", "焦炭", 0.5, 100, "night2300", 0.09, 1700.0, _159),
    Product("DCE", "jm", "焦煤", 0.5, 60, "night2300", 0.09, 1100.0, _159),
    Product("DCE", "i", "铁矿石", 0.5, 100, "night2300", 0.09, 780.0, _159),
    Product("DCE", "fb", "纤维板", 0.5, 10, "day", 0.08, 1300.0, _159),
    Product("DCE", "bb", "胶合板", 0.05, 500, "day", 0.08, 150.0, _159),
    Product("CZCE", "SR", "白糖", 1, 10, "night2300", 0.07, 5600.0, _159),
    Product("CZCE", "CF", "棉花", 5, 5, "night2300", 0.07, 13500.0, _159),
    Product("CZCE", "CY", "棉纱", 5, 5, "night2300", 0.07, 19500.0, _159),
    Product("CZCE", "TA", "PTA", 2, 5, "night2300", 0.07, 4700.0, _159),
    Product("CZCE", "MA", "甲醇", 1, 10, "night2300", 0.07, 2400.0, _159),
    Product("CZCE", "FG", "玻璃", 1, 20, "night2300", 0.08, 1100.0, _159),
    Product("CZCE", "SA", "纯碱", 1, 20, "night2300", 0.08, 1300.0, _159),
    Product("CZCE", "OI", "菜油", 1, 10, "night2300", 0.07, 9300.0, _159),
    Product("CZCE", "RM", "菜粕", 1, 10, "night2300", 0.07, 2400.0, _159),
    Product("CZCE", "PF", "短纤", 2, 5, "night2300", 0.07, 6400.0, _159),
    Product("CZCE", "ZC", "动力煤", 0.2, 100, "night2300", 0.10, 800.0, _159),
    Product("CZCE", "PX", "对二甲苯", 2, 5, "night2300", 0.07, 6800.0, _159),
    Product("CZCE", "SH", "烧碱", 1, 30, "night2300", 0.08, 2500.0, _159),
    Product("CZCE", "UR", "尿素", 1, 20, "day", 0.07, 1700.0, _159),
    Product("CZCE", "AP", "苹果", 1, 10, "day", 0.08, 7800.0, (1, 3, 5, 10, 11, 12)),
    Product("CZCE", "CJ", "红枣", 5, 5, "day", 0.08, 10000.0, _159),
    Product("CZCE", "PK", "花生", 2, 5, "day", 0.07, 8400.0, (1, 4, 10, 11)),
    Product("CZCE", "SF", "硅铁", 2, 5, "day", 0.08, 5800.0, _159),
    Product("CZCE", "SM", "锰硅", 2, 5, "day", 0.08, 5900.0, _159),
    Product("GFEX", "si", "工业硅", 5, 5, "day", 0.09, 9000.0, _159),
    Product("GFEX", "lc", "碳酸锂", 20, 1, "day", 0.09, 75000.0, _159),
)

PRODUCTS: dict[str, Product] = {p.code: p for p in _TABLE}

# One liquid product per line of business on each of the six exchanges: the sim's default.
DEFAULT_SIM_PRODUCTS = ("rb", "au", "cu", "sc", "m", "i", "TA", "SR", "IF", "T", "si", "lc")

_ID = re.compile(r"^([A-Za-z]{1,2})(\d{3,4})$")


@dataclass(frozen=True)
class InstrumentInfo:
    """What a source knows of one futures contract (enough to answer ReqQryInstrument)."""

    instrument_id: str
    product: Product
    delivery_year: int
    delivery_month: int

    @property
    def exchange_id(self) -> str:
        return self.product.exchange

    @property
    def product_id(self) -> str:
        return self.product.code

    @property
    def name(self) -> str:
        return f"{self.product.name}{self.instrument_id[len(self.product.code):]}"

    @property
    def expire_date(self) -> date:
        """The last trading day, by the exchange's rule and the calendar (``LAST_TRADING_DAY``)."""
        return last_trading_day(self.product, self.delivery_year, self.delivery_month)

    @property
    def open_date(self) -> date:
        """The first trading day: the one after the last trading day of the contract ``span``
        months earlier (``LISTING``), as the exchanges list a new month when one expires."""
        span = listing_span(self.product, self.delivery_month)
        index = self.delivery_year * 12 + self.delivery_month - 1 - span
        return calendar.next_trading_day(last_trading_day(self.product, index // 12, index % 12 + 1))

    @property
    def create_date(self) -> date:
        """The trading day before the first one (the exchange creates the contract the day before)."""
        return calendar.previous_trading_day(self.open_date)

    @property
    def start_deliv_date(self) -> date:
        return calendar.next_trading_day(self.expire_date)

    @property
    def end_deliv_date(self) -> date:
        """Approximate: the fifth trading day of delivery (the exchanges' delivery periods vary)."""
        day = self.start_deliv_date
        for _ in range(4):
            day = calendar.next_trading_day(day)
        return day

    def listed_on(self, trading_day: date) -> bool:
        """Whether the exchange lists this contract on ``trading_day``."""
        return self.open_date <= trading_day <= self.expire_date


def parse_instrument(instrument_id: str, today: date | None = None) -> InstrumentInfo | None:
    """The contract behind a CTP instrument ID, or ``None`` if it is not a known futures contract.

    IDs are case-sensitive as in CTP: ``rb2605`` (SHFE, lower case, YYMM), ``TA605`` (CZCE, upper
    case, one-digit year), ``IF2606`` (CFFEX, upper case, YYMM).  ``RB2605`` or ``TA2605`` are
    not contracts.  CZCE's one-digit year is resolved against ``today`` (default: the clock's,
    :func:`ctpshim.ctp.clock.today`).
    """
    match = _ID.match(instrument_id)
    if not match:
        return None
    code, digits = match.groups()
    product = PRODUCTS.get(code)
    if product is None:
        return None
    if product.exchange == "CZCE":
        if len(digits) != 3:
            return None
        year_digit, month = int(digits[0]), int(digits[1:])
        year = None  # resolved against today's decade below
    else:
        if len(digits) != 4:
            return None
        year, month = 2000 + int(digits[:2]), int(digits[2:])
    if not 1 <= month <= 12:
        return None
    if year is None:
        # CZCE's one-digit year: the nearest year ending in that digit, not more than a year back.
        this_year = (today or clock.today()).year
        year = this_year - this_year % 10 + year_digit
        if year < this_year - 1:
            year += 10
    return InstrumentInfo(instrument_id, product, year, month)


def format_instrument(product: Product, year: int, month: int) -> str:
    if product.exchange == "CZCE":
        return f"{product.code}{year % 10}{month:02d}"
    return f"{product.code}{year % 100:02d}{month:02d}"


def main_contract(product: Product, today: date, months_ahead: int = 2) -> str:
    """The first main delivery month at least ``months_ahead`` months after ``today``."""
    ahead = 1 if product.exchange == "CFFEX" and product.session == "index" else months_ahead
    index = today.year * 12 + today.month - 1 + ahead
    for step in range(0, 36):
        year, month0 = divmod(index + step, 12)
        if month0 + 1 in product.months:
            return format_instrument(product, year, month0 + 1)
    raise AssertionError(f"{product.code} has no delivery months")


def default_sim_instruments(today: date) -> tuple[str, ...]:
    return tuple(main_contract(PRODUCTS[code], today) for code in DEFAULT_SIM_PRODUCTS)


def exchange_of(instrument_id: str) -> str:
    info = parse_instrument(instrument_id)
    return info.exchange_id if info else ""


def known(ids: Iterable[str]) -> tuple[list[InstrumentInfo], list[str]]:
    """Split ``ids`` into parsed contracts and unknown IDs, keeping order."""
    found, unknown = [], []
    for instrument_id in ids:
        info = parse_instrument(instrument_id)
        if info is None:
            unknown.append(instrument_id)
        else:
            found.append(info)
    return found, unknown


# -- listing and last trading days -----------------------------------------------------------------
#
# Which months each product lists and how long before delivery (the exchanges' contract specs,
# as published; simplified where noted).  ``span`` is how many months before its delivery month a
# contract is listed: the exchange lists month M the trading day after month M - span expires.
# A product not named here lists every month of the year, twelve months ahead.

_ODD = (1, 3, 5, 7, 9, 11)
LISTED_MONTHS: dict[str, tuple[int, ...]] = {
    "ru": (1, 3, 4, 5, 6, 7, 8, 9, 10, 11), "ec": (2, 4, 6, 8, 10, 12),
    "a": _ODD, "c": _ODD, "cs": _ODD, "lh": _ODD, "m": (1, 3, 5, 7, 8, 9, 11, 12), "y": (1, 3, 5, 7, 8, 9, 11, 12),
    "SR": _ODD, "CF": _ODD, "OI": _ODD, "RM": (1, 3, 5, 7, 8, 9, 11), "AP": (1, 3, 4, 5, 10, 11, 12),
    "CJ": (1, 3, 5, 7, 9, 12), "PK": (1, 3, 4, 10, 11, 12),
    "TS": _Q, "TF": _Q, "T": _Q, "TL": _Q,
}
# (span of the quarterly months 3/6/9/12, span of the others)
LISTING_SPANS: dict[str, tuple[int, int]] = {
    "IF": (8, 2), "IH": (8, 2), "IC": (8, 2), "IM": (8, 2),  # this month, next month, the two quarters after
    "TS": (9, 9), "TF": (9, 9), "T": (9, 9), "TL": (9, 9),  # the next three quarters
    "sc": (36, 12),  # twelve consecutive months, then quarters up to three years
    "bu": (24, 6),  # six consecutive months, then quarters up to two years
}
_AU_SPANS = (12, 3)  # au: even months a year ahead, the odd ones in the nearest three months

# The last trading day: rule per exchange, with the products that differ.
LAST_TRADING_DAY: dict[str, str] = {
    "SHFE": "the 15th (the next trading day if it is not one)",
    "INE": "the 15th (nr, bc); sc and lu: the last trading day of the month before; ec: the last Monday",
    "DCE": "the 10th trading day of the month (lh: the 4th-last trading day)",
    "CZCE": "the 10th trading day of the month",
    "GFEX": "the 5th trading day of the month",
    "CFFEX": "index futures: the third Friday; bond futures: the second Friday (the next trading day if a holiday)",
}


def listed_months(product: Product) -> tuple[int, ...]:
    return LISTED_MONTHS.get(product.code, _ALL)


def listing_span(product: Product, month: int) -> int:
    quarterly, other = _AU_SPANS if product.code == "au" else LISTING_SPANS.get(product.code, (12, 12))
    if product.code == "au":
        return quarterly if month % 2 == 0 else other
    return quarterly if month % 3 == 0 else other


def _nth_trading_day(year: int, month: int, n: int) -> date:
    day = date(year, month, 1)
    if not calendar.is_trading_day(day):
        day = calendar.next_trading_day(day)
    for _ in range(n - 1):
        day = calendar.next_trading_day(day)
    return day


def _on_or_after(day: date) -> date:
    return day if calendar.is_trading_day(day) else calendar.next_trading_day(day)


def _weekday_in_month(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def last_trading_day(product: Product, year: int, month: int) -> date:
    """The contract's last trading day (see ``LAST_TRADING_DAY``)."""
    code, exchange = product.code, product.exchange
    if code in ("sc", "lu"):
        return calendar.previous_trading_day(date(year, month, 1))
    if code == "ec":
        following = date(year + month // 12, month % 12 + 1, 1)
        return _on_or_after(following - timedelta(days=(following.weekday() - 0) % 7 or 7))
    if code == "lh":
        following = date(year + month // 12, month % 12 + 1, 1)
        day = following
        for _ in range(4):
            day = calendar.previous_trading_day(day)
        return day
    if exchange in ("SHFE", "INE"):
        return _on_or_after(date(year, month, 15))
    if exchange in ("DCE", "CZCE"):
        return _nth_trading_day(year, month, 10)
    if exchange == "GFEX":
        return _nth_trading_day(year, month, 5)
    nth = 3 if product.session == "index" else 2
    return _on_or_after(_weekday_in_month(year, month, 4, nth))


def listed_contracts(product: Product, trading_day: date) -> list[InstrumentInfo]:
    """The contracts of ``product`` the exchange lists on ``trading_day``, nearest first."""
    found = []
    start = trading_day.year * 12 + trading_day.month - 1
    for index in range(start, start + 37):
        year, month = index // 12, index % 12 + 1
        if month not in listed_months(product):
            continue
        info = InstrumentInfo(format_instrument(product, year, month), product, year, month)
        if info.listed_on(trading_day):
            found.append(info)
    return found


# -- trading hours ---------------------------------------------------------------------------------

def _session_windows(product: Product, day: date) -> list[tuple[datetime, datetime]]:
    """The sessions that start on calendar day ``day`` (day sessions, then that evening's night)."""
    day_sessions, night = SESSIONS[product.session]
    midnight = datetime(day.year, day.month, day.day)
    windows = []
    if calendar.is_trading_day(day):
        windows += [(midnight + timedelta(minutes=s), midnight + timedelta(minutes=e)) for s, e in day_sessions]
    if night is not None and calendar.has_night_session(day):
        windows.append((midnight + timedelta(minutes=night[0]), midnight + timedelta(minutes=night[1])))
    return windows


def session_window(product: Product, moment: datetime) -> tuple[datetime, datetime] | None:
    """The (start, end) of the session ``product`` is trading in at ``moment``, or None."""
    for day in (moment.date() - timedelta(days=1), moment.date()):
        for start, end in _session_windows(product, day):
            if start <= moment < end:
                return start, end
    return None


def is_open(product: Product, moment: datetime) -> bool:
    """Whether ``product`` trades at ``moment`` (China time, naive)."""
    return session_window(product, moment) is not None


def next_open(product: Product, moment: datetime) -> datetime | None:
    """``moment`` if the product trades then, else the start of its next session; None when no
    session starts within the 30 days after ``moment`` (past the calendar's years)."""
    if is_open(product, moment):
        return moment
    for offset in range(0, 30):
        for start, _ in _session_windows(product, moment.date() + timedelta(days=offset)):
            if start > moment:
                return start
    return None


def price_limits(product: Product, pre_settlement: float) -> tuple[float, float]:
    """(upper, lower) limit prices of a day: pre-settlement x (1 +- the product's limit ratio),
    rounded inwards to the tick (SIM_TRADING.md 1.4)."""
    steps = pre_settlement / product.tick
    upper = math.floor(steps * (1 + product.limit) + PRICE_LIMIT_TOLERANCE)
    lower = math.ceil(steps * (1 - product.limit) - PRICE_LIMIT_TOLERANCE)
    return round(upper * product.tick, product.decimals), round(lower * product.tick, product.decimals)


def trading_day_sessions(product: Product, day: date) -> list[tuple[datetime, datetime]]:
    """The sessions of trading day ``day``, in order: the night before (when there is one), then the day."""
    if not calendar.is_trading_day(day):
        return []
    previous = calendar.previous_trading_day(day)
    night = [window for window in _session_windows(product, previous)
             if calendar.day_part(window[0]) == calendar.EVENING]
    return night + [window for window in _session_windows(product, day)
                    if calendar.day_part(window[0]) != calendar.EVENING]


def settlement_price(product: Product, turnover: float, volume: int, pre_settlement: float) -> float:
    """The day's settlement: the volume-weighted price (of the whole day, or of the last hour for
    CFFEX, whose caller passes that hour's turnover and volume), truncated to the tick, as the
    recorded SHFE, CZCE and CFFEX days show; the previous settlement when nothing traded."""
    if volume <= 0:
        return pre_settlement
    steps = math.floor(turnover / volume / product.multiplier / product.tick + 1e-7)
    return round(steps * product.tick, product.decimals)
