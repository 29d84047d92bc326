"""Margin and commission rates per product: the table a simulated counter charges from.

The table (``data/rates.csv``, loaded once) has one row per product and level, with CTP's
member names as columns (``LongMarginRatioByMoney`` ... ``CloseTodayRatioByVolume``, as in
``CThostFtdcInstrumentMarginRateField`` and ``CThostFtdcInstrumentCommissionRateField``), plus
``ExchangeID``, ``ProductID``, ``level``, ``certain`` (``yes``/``no``) and ``source`` (a short
citation).  Lines starting with ``#`` are comments.

Levels:

* ``exchange``: the exchange's standard margin and fee.  Most values are estimates marked
  ``certain=no`` (the exchanges change them often and the reference has few dated notices).
* ``broker``: what a typical broker charges, the default: SimNow's margins (read from LocalCTP's
  MIT-licensed ``instrument.csv`` of SimNow's 2025 contracts) with SimNow's declared fees where
  ``SIM_TRADING.md`` 3.3 quotes them, else the exchange row's fees (marked ``certain=no``).

Every product of :data:`ctpshim.ctp.products.PRODUCTS` has a row at each level.  A user file with
the same columns overrides the table: each of its rows replaces its product's values at its
level.  Bad files raise :class:`RatesFileError` naming the file, line, column, value and what is
valid.

A product of the product table without a row (one added there before here) gets
:data:`DEFAULT_MARGIN_RATIO` (10 %, both sides) and :data:`DEFAULT_COMMISSION_PER_LOT` (1 yuan a
lot each way), LocalCTP's defaults when it has no fee rows, marked ``certain=False`` with the
source "default".  An ID that names no product of the product table raises
:class:`UnknownProduct`, as CTP answers an unknown instrument with an error rather than a rate.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from os import PathLike
from pathlib import Path
from typing import Iterable

from .products import _ID as _INSTRUMENT  # the one instrument-ID pattern; group 1 is the product
from .products import PRODUCTS

LEVELS = ("exchange", "broker")
DEFAULT_MARGIN_RATIO = 0.1
DEFAULT_COMMISSION_PER_LOT = 1.0

MARGIN_COLUMNS = ("LongMarginRatioByMoney", "LongMarginRatioByVolume",
                  "ShortMarginRatioByMoney", "ShortMarginRatioByVolume")
COMMISSION_COLUMNS = ("OpenRatioByMoney", "OpenRatioByVolume", "CloseRatioByMoney", "CloseRatioByVolume",
                      "CloseTodayRatioByMoney", "CloseTodayRatioByVolume")
RATE_COLUMNS = MARGIN_COLUMNS + COMMISSION_COLUMNS
COLUMNS = ("ExchangeID", "ProductID", "level") + RATE_COLUMNS + ("certain", "source")

# Valid ranges (inclusive): a ratio by money is a fraction of the turnover, by volume yuan a lot.
RANGES: dict[str, tuple[float, float]] = {
    **{name: (0.0, 1.0) for name in MARGIN_COLUMNS if name.endswith("Money")},
    **{name: (0.0, 10_000_000.0) for name in MARGIN_COLUMNS if name.endswith("Volume")},
    **{name: (0.0, 0.01) for name in COMMISSION_COLUMNS if name.endswith("Money")},
    **{name: (0.0, 10_000.0) for name in COMMISSION_COLUMNS if name.endswith("Volume")},
}

_LONG = {"long", "0", "2"}  # Direction Buy, PosiDirection Long
_SHORT = {"short", "1", "3"}  # Direction Sell, PosiDirection Short
_OPEN = {"open", "0"}
_CLOSE = {"close", "1", "2", "4", "5", "6"}  # Close, ForceClose, CloseYesterday, ForceOff, LocalForceClose
_CLOSE_TODAY = {"close_today", "3"}


class RatesFileError(ValueError):
    """A rates file that cannot be used: ``path``, ``line`` (1-based, 0 for the whole file),
    ``column``, ``value`` and ``valid`` (what would have been accepted) say where and why."""

    def __init__(self, path: str, line: int, column: str, value: str, valid: str) -> None:
        self.path, self.line, self.column, self.value, self.valid = path, line, column, value, valid
        where = f"{path}, line {line}" if line else path
        super().__init__(f"{where}, column {column}: {value!r} is not valid; expected {valid}")


class UnknownProduct(LookupError):
    """An instrument or product ID that names no product of the product table."""


@dataclass(frozen=True)
class Rates:
    """Margin and commission of one product at one level (CTP's member names).

    Ratios by money are fractions of the turnover (price x multiplier x lots); ratios by volume
    are yuan per lot.  ``multiplier`` is the product's VolumeMultiple.
    """

    ExchangeID: str
    ProductID: str
    level: str
    multiplier: int
    LongMarginRatioByMoney: float
    LongMarginRatioByVolume: float
    ShortMarginRatioByMoney: float
    ShortMarginRatioByVolume: float
    OpenRatioByMoney: float
    OpenRatioByVolume: float
    CloseRatioByMoney: float
    CloseRatioByVolume: float
    CloseTodayRatioByMoney: float
    CloseTodayRatioByVolume: float
    certain: bool
    source: str

    def margin(self, lots: int, price: float, side: str) -> float:
        """``lots x price x multiplier x RatioByMoney + lots x RatioByVolume`` of ``side``
        (``"long"``/``"short"``, or a CTP Direction '0'/'1' or PosiDirection '2'/'3').

        The caller picks the price (``SIM_TRADING.md`` 3.2): pre-settlement for yesterday's
        lots, the open price (SimNow) for today's, the order price for frozen margin.
        """
        if side in _LONG:
            money, volume = self.LongMarginRatioByMoney, self.LongMarginRatioByVolume
        elif side in _SHORT:
            money, volume = self.ShortMarginRatioByMoney, self.ShortMarginRatioByVolume
        else:
            raise ValueError(f"side {side!r}: expected 'long', 'short' or a CTP direction '0'-'3'")
        return lots * price * self.multiplier * money + lots * volume

    def commission(self, volume: int, price: float, offset: str) -> float:
        """``volume x price x multiplier x ByMoney + volume x ByVolume`` with the Open, Close or
        CloseToday pair of ``offset`` (``"open"``, ``"close"``, ``"close_today"``, or a CTP
        OffsetFlag: '3' is close-today, '1', '2', '4', '5', '6' close).  Not rounded (SimNow keeps
        at least 5 decimals); SimNow's hidden 0.005 a lot on SHFE is not added.
        """
        if offset in _OPEN:
            money, per_lot = self.OpenRatioByMoney, self.OpenRatioByVolume
        elif offset in _CLOSE_TODAY:
            money, per_lot = self.CloseTodayRatioByMoney, self.CloseTodayRatioByVolume
        elif offset in _CLOSE:
            money, per_lot = self.CloseRatioByMoney, self.CloseRatioByVolume
        else:
            raise ValueError(f"offset {offset!r}: expected 'open', 'close', 'close_today' or a CTP OffsetFlag '0'-'6'")
        return volume * price * self.multiplier * money + volume * per_lot


def _default(code: str, level: str) -> Rates:
    product = PRODUCTS[code]
    m, fee = DEFAULT_MARGIN_RATIO, DEFAULT_COMMISSION_PER_LOT
    return Rates(product.exchange, code, level, product.multiplier, m, 0.0, m, 0.0,
                 0.0, fee, 0.0, fee, 0.0, fee, False, "default (LocalCTP's when it has no rate rows)")


def _parse(path: str, lines: Iterable[str]) -> dict[tuple[str, str], Rates]:
    numbered = [(number, line) for number, line in enumerate(lines, 1)
                if line.strip() and not line.lstrip().startswith("#")]
    if not numbered:
        raise RatesFileError(path, 0, "header", "", "a header line with " + ", ".join(COLUMNS))
    reader = csv.reader([line for _, line in numbered])
    header = [name.strip() for name in next(reader)]
    missing = [name for name in COLUMNS if name not in header]
    unknown = [name for name in header if name not in COLUMNS]
    if missing or unknown:
        bad = (missing or unknown)[0]
        raise RatesFileError(path, numbered[0][0], bad, ",".join(header),
                             "the columns " + ", ".join(COLUMNS) + (" (missing)" if missing else " (unknown column)"))
    table: dict[tuple[str, str], Rates] = {}
    for (number, _), cells in zip(numbered[1:], reader):
        if len(cells) != len(header):
            raise RatesFileError(path, number, "(row)", ",".join(cells), f"{len(header)} cells as in the header")
        row = {name: cell.strip() for name, cell in zip(header, cells)}
        code = row["ProductID"]
        if code not in PRODUCTS:
            raise RatesFileError(path, number, "ProductID", code, "a product of ctpshim.ctp.products.PRODUCTS")
        product = PRODUCTS[code]
        if row["ExchangeID"] != product.exchange:
            raise RatesFileError(path, number, "ExchangeID", row["ExchangeID"],
                                 f"{product.exchange} (the exchange of {code})")
        if row["level"] not in LEVELS:
            raise RatesFileError(path, number, "level", row["level"], " or ".join(LEVELS))
        if row["certain"] not in ("yes", "no", ""):
            raise RatesFileError(path, number, "certain", row["certain"], "yes, no or empty")
        values: dict[str, float] = {}
        for name in RATE_COLUMNS:
            low, high = RANGES[name]
            try:
                value = float(row[name])
            except ValueError:
                value = math.nan
            if not low <= value <= high:  # also catches nan
                raise RatesFileError(path, number, name, row[name], f"a number from {low:g} to {high:g}")
            values[name] = value
        for side in ("Long", "Short"):
            if values[f"{side}MarginRatioByMoney"] == 0 and values[f"{side}MarginRatioByVolume"] == 0:
                raise RatesFileError(path, number, f"{side}MarginRatioByMoney", row[f"{side}MarginRatioByMoney"],
                                     f"a margin above 0 by money or by volume ({side}MarginRatioByVolume)")
        key = (code, row["level"])
        if key in table:
            raise RatesFileError(path, number, "ProductID", code,
                                 f"one row per product and level ({code}, {row['level']} repeats)")
        table[key] = Rates(product.exchange, code, row["level"], product.multiplier, **values,
                           certain=row["certain"] == "yes", source=row["source"])
    return table


class RateTable:
    """The rates of every product at each level; build with :func:`load_table`."""

    def __init__(self, rows: dict[tuple[str, str], Rates]) -> None:
        self._rows = dict(rows)

    def rates_for(self, instrument_or_product: str, level: str = "broker") -> Rates:
        """The rates of a product (``"rb"``) or of an instrument's product (``"rb2605"``) at
        ``level`` (``"broker"``, the default, or ``"exchange"``).  A product of the product table
        without a row gets the LocalCTP default (see the module); other IDs raise
        :class:`UnknownProduct`."""
        if level not in LEVELS:
            raise ValueError(f"level {level!r}: expected {' or '.join(LEVELS)}")
        code = instrument_or_product
        if code not in PRODUCTS:
            match = _INSTRUMENT.match(code)
            if not match or match.group(1) not in PRODUCTS:
                raise UnknownProduct(
                    f"{instrument_or_product!r} is neither a product nor an instrument of a known product")
            code = match.group(1)
        found = self._rows.get((code, level))
        return found if found is not None else _default(code, level)

    def rows(self) -> list[Rates]:
        """The rows of the file(s), without default ones."""
        return list(self._rows.values())

    def with_overrides(self, path: str | PathLike[str]) -> "RateTable":
        """A new table: this one with each row of the file at ``path`` replacing its product's
        values at its level.  Raises :class:`RatesFileError` for a bad file."""
        name = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise RatesFileError(name, 0, "(file)", str(error), "a readable UTF-8 CSV file") from error
        return RateTable({**self._rows, **_parse(name, text.splitlines())})


@lru_cache(maxsize=1)
def _builtin() -> RateTable:
    source = resources.files(__package__).joinpath("data", "rates.csv")
    return RateTable(_parse(str(source), source.read_text(encoding="utf-8").splitlines()))


def load_table(override: str | PathLike[str] | None = None) -> RateTable:
    """The built-in table (read once), with the rows of the ``override`` file replacing its own."""
    table = _builtin()
    return table if override is None else table.with_overrides(override)


def rates_for(instrument_or_product: str, level: str = "broker") -> Rates:
    """:meth:`RateTable.rates_for` on the built-in table."""
    return _builtin().rates_for(instrument_or_product, level)
