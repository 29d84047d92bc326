"""Public tick CSV layouts, imported into the recording schema with Arrow (column at a time).

Known layouts, detected from the header (``--format`` overrides):

``ctp``    columns named like ``CThostFtdcDepthMarketDataField`` members (any subset, any order),
           as many recorders write them; also what ``convert`` exports.  Tolerates a UTF-8 byte
           order mark, CR-only line ends, unpadded hours (``9:00:00``), a fractional second in
           UpdateTime, and a TradingDay column that really holds the calendar date (TradingDay is
           recomputed from the calendar: a night tick belongs to the next trading day).
``vnpy1``  the vn.py 1.x tick CSV: ``symbol,date,time,lastPrice,lastVolume,bidPrice1,askPrice1,
           bidVolume1,askVolume1`` (``lastVolume`` is not a cumulative volume and is ignored).
``tqsdk``  TianQin's tick CSV: ``symbol`` (``SHFE.cu1909``), ``datetime_cst`` or
           ``datetime_nano``, ``last_price``, ``average``, ``highest``, ``lowest``, five levels of
           ``bid_price``/``bid_volume``/``ask_price``/``ask_volume``, ``volume``, ``amount``,
           ``open_interest``.

Columns a layout lacks get CTP's values for absent data (prices DBL_MAX, volumes 0), from
:func:`ctpshim.ctp.market_data.blank_values`; ExchangeID comes from the product table when the file
has none; AveragePrice follows :func:`ctpshim.ctp.market_data.average_price_terms`.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ..ctp.calendar import (
    DAY_HOURS, EARLY_MORNING, EARLY_MORNING_END, EVENING, FIRST_DAY, LAST_DAY, NIGHT_CUTOFF, trading_day_of, yyyymmdd,
)
from ..ctp.fields import char_limit
from ..ctp.market_data import DBL_MAX, average_price_terms, blank_values
from ..ctp.products import exchange_of, parse_instrument
from ..recording import RECEIVE_TIME, SCHEMA, TICK_COLUMNS, RecordingError, check_columns

CHINA_OFFSET_MS = 8 * 3600 * 1000
_TEXT_COLUMNS = {
    "TradingDay", "ActionDay", "UpdateTime", "InstrumentID", "ExchangeID", "ExchangeInstID", "reserve1", "reserve2",
    "symbol", "date", "time", "datetime_cst",
}


class LayoutError(RecordingError, ValueError):
    """A CSV file is not in a known layout, or its values cannot be read."""


@dataclass(frozen=True)
class Layout:
    name: str
    description: str
    detect: Callable[[list[str]], bool]
    convert: Callable[[pa.Table, str], dict[str, pa.Array]]  # raw CSV columns -> schema columns


# -- vectorised rules, each written once --------------------------------------------------------

def _clock(column: pa.Array, path: str) -> tuple[pa.Array, pa.Array]:
    """``9:00:00`` / ``09:00:00.5`` / ``09:00:00.500`` -> (``HH:MM:SS``, milliseconds)."""
    text = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
    parts = pc.extract_regex(text, r"^(?P<hms>[0-2]?\d:[0-5]\d:[0-5]\d)(?P<fraction>(?:\.\d*)?)$")
    if parts.null_count:
        row = pc.index(pc.is_null(parts), True).as_py()
        raise LayoutError(f"{path}: data row {row + 1}: time {text[row].as_py()!r} is not HH:MM:SS[.fff]")
    whole = pc.utf8_lpad(pc.struct_field(parts, "hms"), 8, "0")
    fraction = pc.utf8_ltrim(pc.struct_field(parts, "fraction"), ".")
    millis = pc.cast(pc.utf8_slice_codeunits(pc.utf8_rpad(fraction, 3, "0"), 0, 3), pa.int32())
    return whole, millis


def _moments(days: pa.Array, clocks: pa.Array, millis: pa.Array, path: str) -> pa.Array:
    """China-time timestamps (ms) from YYYYMMDD days, HH:MM:SS clocks and milliseconds."""
    stamps = pc.binary_join_element_wise(days, clocks, " ")
    base = _in_calendar(pc.strptime(stamps, format="%Y%m%d %H:%M:%S", unit="ms", error_is_null=True), stamps,
                        "a date and time (YYYYMMDD HH:MM:SS)", path)
    # Unchecked: a millisecond value out of range is refused by read_csv's check before any moment is used.
    return pc.add(base, pc.cast(pc.cast(millis, pa.int64(), safe=False), pa.duration("ms")))


def _in_calendar(moments: pa.Array, given: pa.Array, what: str, path: str) -> pa.Array:
    """``moments`` (timestamps, null where ``given`` could not be read), refused with the first
    data row that is unreadable or outside the calendar's range."""
    earliest = pa.scalar(datetime.combine(FIRST_DAY, datetime.min.time()), pa.timestamp("ms"))
    latest = pa.scalar(datetime.combine(LAST_DAY, datetime.max.time()), pa.timestamp("ms"))
    inside = pc.and_(pc.greater_equal(moments, earliest), pc.less_equal(moments, latest))
    outside = pc.invert(pc.fill_null(inside, False))
    if pc.any(outside).as_py():
        row = pc.index(outside, True).as_py()
        raise LayoutError(f"{path}: data row {row + 1}: {given[row].as_py()!r} is not {what} from {FIRST_DAY} to "
                          f"{LAST_DAY}, the calendar's range")
    return moments


def _receive_times(moments: pa.Array) -> pa.Array:
    """Nanoseconds since the epoch (UTC) of China-time moments."""
    ms = pc.subtract(pc.cast(pc.cast(moments, pa.timestamp("ms")), pa.int64()), CHINA_OFFSET_MS)
    return pc.multiply(ms, 1_000_000)


def _dates(moments: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(ActionDay, TradingDay) strings: the calendar date, and the trading day from the calendar."""
    action = pc.strftime(pc.cast(moments, pa.timestamp("s"), safe=False), format="%Y%m%d")
    hours = pc.hour(moments)
    part = pc.if_else(pc.greater_equal(hours, NIGHT_CUTOFF.hour), EVENING,
                      pc.if_else(pc.less(hours, EARLY_MORNING_END.hour), EARLY_MORNING, DAY_HOURS))
    keys = pc.binary_join_element_wise(action, pc.cast(part, pa.string()), "|")
    unique = pc.unique(keys).to_pylist()
    probe = {EARLY_MORNING: 1, DAY_HOURS: 12, EVENING: 20}  # an hour in each part of the day
    days = [
        yyyymmdd(trading_day_of(datetime.combine(date(int(k[:4]), int(k[4:6]), int(k[6:8])),
                                                 datetime.min.time()).replace(hour=probe[int(k[-1])])))
        for k in unique
    ]
    trading = pc.take(pa.array(days), pc.index_in(keys, value_set=pa.array(unique)))
    return action, trading


def _lookup(instruments: pa.Array, function: Callable[[str], Any], kind: pa.DataType) -> pa.Array:
    """``function`` of each instrument, computed once per distinct instrument."""
    unique = pc.unique(instruments).to_pylist()
    values = pa.array([function(i) for i in unique], type=kind)
    return pc.take(values, pc.index_in(instruments, value_set=pa.array(unique, type=pa.string())))


def _numbers(column: pa.Array, absent: Any, name: str, path: str) -> pa.Array:
    """Numbers as float64, whatever the member's type (``read_csv`` checks them against it before
    the cast); empty cells and NaN become ``absent``."""
    if column.type == pa.string():
        column = pc.if_else(pc.equal(pc.utf8_trim_whitespace(column), ""), None, column)
    try:
        as_float = pc.cast(column, pa.float64())
    except pa.ArrowInvalid:
        row, value = next((row, value) for row, value in enumerate(column.to_pylist()) if not _is_number(value))
        raise LayoutError(f"{path}: data row {row + 1}, column {name}: {value!r} is not a number") from None
    as_float = pc.if_else(pc.is_nan(as_float), None, as_float)
    return pc.fill_null(as_float, float(absent))


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return value is None
    return True


def _average_price(instruments: pa.Array, exchanges: pa.Array, turnover: pa.Array, volume: pa.Array) -> pa.Array:
    """AveragePrice as CTP reports it: ctpshim.ctp.market_data's rule, in its column form, per
    distinct instrument and exchange."""
    def terms(key: str) -> tuple[float, float]:
        instrument, _, exchange = key.partition("|")
        info = parse_instrument(instrument)
        if info is None:
            return 1.0, 0.0
        return average_price_terms(exchange, info.product.multiplier, info.product.tick)

    keys = pc.binary_join_element_wise(instruments, exchanges, "|")
    scale = _lookup(keys, lambda k: terms(k)[0], pa.float64())
    grid = _lookup(keys, lambda k: terms(k)[1], pa.float64())
    per_volume = pc.divide(pc.divide(turnover, pc.cast(pc.if_else(pc.equal(volume, 0), 1, volume), pa.float64())), scale)
    safe_grid = pc.if_else(pc.equal(grid, 0.0), 1.0, grid)
    on_grid = pc.round(pc.multiply(pc.round(pc.divide(per_volume, safe_grid)), safe_grid), 10)
    average = pc.if_else(pc.greater(grid, 0.0), on_grid, per_volume)
    return pc.if_else(pc.equal(volume, 0), 0.0, average)


def _stamp(columns: dict[str, pa.Array], moments: pa.Array, clocks: pa.Array, millis: pa.Array) -> None:
    columns["ActionDay"], columns["TradingDay"] = _dates(moments)
    columns["UpdateTime"] = clocks
    columns["UpdateMillisec"] = millis


def _instrument_columns(columns: dict[str, pa.Array], instruments: pa.Array, exchanges: pa.Array | None) -> None:
    columns["InstrumentID"] = instruments
    columns["ExchangeInstID"] = instruments
    columns["reserve1"] = pc.utf8_slice_codeunits(instruments, 0, char_limit("CThostFtdcDepthMarketDataField", "reserve1"))
    columns["ExchangeID"] = exchanges if exchanges is not None else _lookup(instruments, exchange_of, pa.string())


# -- ctp ------------------------------------------------------------------------------------------

def _ctp_detect(columns: list[str]) -> bool:
    return {"InstrumentID", "UpdateTime", "LastPrice"} <= set(columns) and bool({"TradingDay", "ActionDay"} & set(columns))


def _ctp_convert(raw: pa.Table, path: str) -> dict[str, pa.Array]:
    names = set(raw.column_names)
    template = dict(zip(TICK_COLUMNS, blank_values("", "")))
    columns: dict[str, pa.Array] = {}
    special = {"TradingDay", "ActionDay", "UpdateTime", "UpdateMillisec", "InstrumentID", "ExchangeID",
               "ExchangeInstID", "reserve1"}
    for field in SCHEMA:
        if field.name in names and field.name not in special and field.name != RECEIVE_TIME:
            column = raw.column(field.name).combine_chunks()
            if pa.types.is_string(field.type):
                columns[field.name] = pc.fill_null(pc.cast(column, pa.string()), "")
            else:
                columns[field.name] = _numbers(column, template[field.name], field.name, path)
    instruments = pc.utf8_trim_whitespace(pc.cast(raw.column("InstrumentID").combine_chunks(), pa.string()))
    exchanges = None
    if "ExchangeID" in names:
        given = pc.fill_null(pc.cast(raw.column("ExchangeID").combine_chunks(), pa.string()), "")
        exchanges = pc.if_else(pc.equal(given, ""), _lookup(instruments, exchange_of, pa.string()), given)
    _instrument_columns(columns, instruments, exchanges)
    clocks, millis = _clock(raw.column("UpdateTime").combine_chunks(), path)
    if "UpdateMillisec" in names:
        given_millis = _numbers(raw.column("UpdateMillisec").combine_chunks(), math.nan, "UpdateMillisec", path)
        millis = pc.if_else(pc.is_nan(given_millis), pc.cast(millis, pa.float64()), given_millis)
    # The calendar date: ActionDay when the file has it, else the TradingDay column (which many
    # recorders fill with the calendar date anyway); the trading day is then recomputed.
    days = None
    for name in ("ActionDay", "TradingDay"):
        if name in names:
            column = pc.cast(raw.column(name).combine_chunks(), pa.string())
            days = column if days is None else pc.if_else(pc.equal(pc.fill_null(days, ""), ""), column, days)
    moments = _moments(pc.utf8_trim_whitespace(days), clocks, millis, path)
    _stamp(columns, moments, clocks, millis)
    if RECEIVE_TIME in names:
        given = pc.cast(raw.column(RECEIVE_TIME).combine_chunks(), pa.int64())
        columns[RECEIVE_TIME] = pc.fill_null(given, _receive_times(moments))
    else:
        columns[RECEIVE_TIME] = _receive_times(moments)
    return columns


# -- vnpy1 ----------------------------------------------------------------------------------------

_VNPY1 = {"symbol", "date", "time", "lastPrice", "bidPrice1", "askPrice1", "bidVolume1", "askVolume1"}


def _vnpy1_convert(raw: pa.Table, path: str) -> dict[str, pa.Array]:
    columns: dict[str, pa.Array] = {}
    instruments = pc.utf8_trim_whitespace(pc.cast(raw.column("symbol").combine_chunks(), pa.string()))
    _instrument_columns(columns, instruments, None)
    clocks, millis = _clock(raw.column("time").combine_chunks(), path)
    moments = _moments(pc.cast(raw.column("date").combine_chunks(), pa.string()), clocks, millis, path)
    _stamp(columns, moments, clocks, millis)
    columns[RECEIVE_TIME] = _receive_times(moments)
    for ours, theirs in (("LastPrice", "lastPrice"), ("BidPrice1", "bidPrice1"), ("AskPrice1", "askPrice1")):
        columns[ours] = _numbers(raw.column(theirs).combine_chunks(), DBL_MAX, theirs, path)
    for ours, theirs in (("BidVolume1", "bidVolume1"), ("AskVolume1", "askVolume1")):
        columns[ours] = _numbers(raw.column(theirs).combine_chunks(), 0, theirs, path)
    return columns


# -- tqsdk ----------------------------------------------------------------------------------------

def _tqsdk_detect(columns: list[str]) -> bool:
    return {"symbol", "last_price", "bid_price1", "ask_price1", "volume"} <= set(columns) and bool(
        {"datetime_cst", "datetime_nano"} & set(columns))


def _tqsdk_convert(raw: pa.Table, path: str) -> dict[str, pa.Array]:
    names = set(raw.column_names)
    columns: dict[str, pa.Array] = {}
    symbols = pc.split_pattern(pc.cast(raw.column("symbol").combine_chunks(), pa.string()), ".", max_splits=1)
    exchanges, instruments = pc.list_element(symbols, 0), pc.list_element(symbols, 1)
    _instrument_columns(columns, instruments, exchanges)
    if "datetime_nano" in names:
        nanos = pc.cast(raw.column("datetime_nano").combine_chunks(), pa.int64())
        moments = pc.cast(pc.add(pc.divide(nanos, 1_000_000), CHINA_OFFSET_MS), pa.timestamp("ms"))
        moments = _in_calendar(moments, nanos, "a time in nanoseconds since 1970", path)
        clocks = pc.strftime(pc.cast(moments, pa.timestamp("s"), safe=False), format="%H:%M:%S")
        millis = pc.cast(pc.millisecond(moments), pa.int32())
        receive = nanos
    else:
        text = pc.cast(raw.column("datetime_cst").combine_chunks(), pa.string())
        parts = pc.split_pattern(text, " ", max_splits=1)
        days = pc.replace_substring(pc.list_element(parts, 0), "-", "")
        clocks, millis = _clock(pc.list_element(parts, 1), path)
        moments = _moments(days, clocks, millis, path)
        receive = _receive_times(moments)
    _stamp(columns, moments, clocks, millis)
    columns[RECEIVE_TIME] = receive
    def number(name: str, absent: Any = DBL_MAX) -> pa.Array:
        if name not in names:
            return pa.repeat(pa.scalar(float(absent), pa.float64()), raw.num_rows)
        return _numbers(raw.column(name).combine_chunks(), absent, name, path)

    columns["LastPrice"] = number("last_price")
    columns["HighestPrice"] = number("highest")
    columns["LowestPrice"] = number("lowest")
    volume = number("volume", 0)
    turnover = number("amount", 0.0)
    columns["Volume"], columns["Turnover"] = volume, turnover
    columns["OpenInterest"] = number("open_interest", 0.0)
    columns["AveragePrice"] = _average_price(instruments, exchanges, turnover, volume)
    for level in range(1, 6):
        for side, member in (("bid", "Bid"), ("ask", "Ask")):
            price = number(f"{side}_price{level}")
            columns[f"{member}Price{level}"] = price
            columns[f"{member}Volume{level}"] = pc.if_else(
                pc.equal(price, DBL_MAX), 0.0, number(f"{side}_volume{level}", 0))
    return columns


LAYOUTS: dict[str, Layout] = {
    "ctp": Layout("ctp", "columns named like CThostFtdcDepthMarketDataField members", _ctp_detect, _ctp_convert),
    "vnpy1": Layout("vnpy1", "vn.py 1.x tick CSV: symbol,date,time,lastPrice,...", lambda c: _VNPY1 <= set(c),
                    _vnpy1_convert),
    "tqsdk": Layout("tqsdk", "TianQin tick CSV: symbol (SHFE.cu1909), datetime_cst, last_price, ...",
                    _tqsdk_detect, _tqsdk_convert),
}


def detect(path: str, columns: list[str], forced: str | None = None) -> Layout:
    if forced:
        if forced not in LAYOUTS:
            raise LayoutError(f"--format {forced!r} is not a known layout; known: {', '.join(LAYOUTS)}")
        return LAYOUTS[forced]
    for layout in LAYOUTS.values():
        if layout.detect(columns):
            return layout
    known = "; ".join(f"{layout.name} ({layout.description})" for layout in LAYOUTS.values())
    raise LayoutError(f"{path}: unknown CSV layout. Columns seen: {', '.join(columns) or '(none)'}. Known layouts: {known}")


def _encoding(head: bytes, path: str) -> str:
    """UTF-8, or else GB18030 (what Chinese tools write), guessed from the file's first bytes."""
    try:
        head.decode("utf-8")
        return "utf8"
    except UnicodeDecodeError as exc:
        if exc.start > len(head) - 4:  # a character cut at the end of the sample
            return "utf8"
        first = exc.start
    try:
        head.decode("gb18030")
    except UnicodeDecodeError as exc:
        if exc.start <= len(head) - 4:
            byte = head[exc.start]
            raise LayoutError(f"{path}: not text in UTF-8 or GB18030 (byte {exc.start}: {byte:#04x})") from None
    return "gb18030"


def read_csv(path: str, forced: str | None = None, skip_bad: bool = False) -> tuple[Layout, pa.Table, int]:
    """The layout of ``path``, its ticks as a table of the recording schema, and how many rows were
    skipped.  A value that its member cannot hold (:func:`ctpshim.recording.check_columns`) is an
    error naming the row and the column, or with ``skip_bad`` skips its row."""
    try:
        with pa.input_stream(path) as handle:  # decompressed, as pacsv reads it (.gz, .bz2, .zst ...)
            head = handle.read(1 << 16)
    except (pa.ArrowInvalid, OSError) as exc:
        raise LayoutError(f"{path}: cannot be read: {str(exc).splitlines()[0]}") from None
    encoding = _encoding(head, path)
    text = head.decode("utf-8" if encoding == "utf8" else encoding, "replace").lstrip("\ufeff")
    first_line = text.replace("\r\n", "\n").replace("\r", "\n").split("\n", 1)[0]
    header = [c.strip() for c in next(csv.reader([first_line]), [])]
    layout = detect(path, header, forced)
    types = {name: pa.string() for name in _TEXT_COLUMNS} | {"datetime_nano": pa.int64(), RECEIVE_TIME: pa.int64()}
    try:
        raw = pacsv.read_csv(path, read_options=pacsv.ReadOptions(encoding=encoding),
                             convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False))
    except (pa.ArrowInvalid, OSError) as exc:
        shown = str(exc).replace("\r", "\\r").replace("\n", "\\n")  # Arrow quotes the rows, line ends included
        raise LayoutError(f"{path}: cannot be read as a {layout.name} CSV: {shown}") from None
    except UnicodeDecodeError as exc:  # past the first bytes, which said GB18030
        raise LayoutError(f"{path}: not text in GB18030 ({exc.reason}), nor in UTF-8") from None
    raw = raw.rename_columns([c.strip() for c in raw.column_names])
    if raw.num_rows == 0:
        return layout, pa.Table.from_batches([], schema=SCHEMA), 0
    try:
        columns = layout.convert(raw, path)
    except (pa.ArrowInvalid, KeyError) as exc:
        raise LayoutError(f"{path}: cannot be read as a {layout.name} CSV: {exc}") from None
    keep, skipped = check_columns(columns, path, skip_bad)
    template = dict(zip(TICK_COLUMNS, blank_values("", "")))
    arrays = []
    for field in SCHEMA:
        column = columns.get(field.name)
        if column is None:
            column = pa.repeat(pa.scalar(template[field.name], field.type), raw.num_rows)
        if keep is not None:
            column = pc.filter(column, keep)
        arrays.append(pc.cast(column, field.type))  # a safe cast: the values were checked
    return layout, pa.Table.from_arrays(arrays, schema=SCHEMA), skipped
