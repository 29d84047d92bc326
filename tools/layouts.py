"""Public tick CSV layouts, imported into (and exported from) the recording schema.

Known layouts, detected from the header (``--format`` overrides):

``ctp``    columns named like ``CThostFtdcDepthMarketDataField`` members (any subset, any order),
           as many recorders write them; also what ``convert`` exports.  Tolerates a UTF-8 byte
           order mark, CR-only line ends, unpadded hours (``9:00:00``), a fractional second in
           UpdateTime, and a TradingDay column that really holds the calendar date (it is
           recomputed from the calendar: a night tick belongs to the next trading day).
``vnpy1``  the vn.py 1.x tick CSV: ``symbol,date,time,lastPrice,lastVolume,bidPrice1,askPrice1,
           bidVolume1,askVolume1`` (``lastVolume`` is not a cumulative volume and is ignored).
``tqsdk``  TianQin's tick CSV: ``symbol`` (``SHFE.cu1909``), ``datetime_cst`` or
           ``datetime_nano``, ``last_price``, ``average``, ``highest``, ``lowest``, five levels of
           ``bid_price``/``bid_volume``/``ask_price``/``ask_volume``, ``volume``, ``amount``,
           ``open_interest``.

Columns a layout lacks get CTP's values for absent data (prices DBL_MAX, volumes 0), through
:mod:`ctpshim.market_data`; ExchangeID comes from the product table when the file has none.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator, TextIO

from ctpshim.calendar import CHINA, trading_day_of, yyyymmdd
from ctpshim.market_data import DBL_MAX, average_price, blank_values, depth_index
from ctpshim.products import exchange_of, parse_instrument

Row = tuple[list[Any], int]  # (the 48 tick values, receive time in ns)


class LayoutError(ValueError):
    """A CSV file is not in a known layout, or a row cannot be read."""


def _number(text: str) -> float:
    if text is None or text.strip() == "" or text.strip().lower() == "nan":
        return DBL_MAX
    value = float(text)
    return DBL_MAX if math.isnan(value) else value


def _volume(text: str) -> int:
    if text is None or text.strip() == "" or text.strip().lower() == "nan":
        return 0
    return int(float(text))


def _clock(text: str) -> tuple[str, int]:
    """``9:00:00`` / ``09:00:00.5`` / ``09:00:00.500`` -> ('09:00:00', milliseconds)."""
    whole, _, fraction = text.strip().partition(".")
    parts = whole.split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise LayoutError(f"time {text!r} is not HH:MM:SS[.fff]")
    hour, minute, second = (int(p) for p in parts)
    millis = int((fraction + "000")[:3]) if fraction else 0
    return f"{hour:02d}:{minute:02d}:{second:02d}", millis


def _moment(day: str, clock: str, millis: int) -> datetime:
    return datetime.strptime(day + clock, "%Y%m%d%H:%M:%S") + timedelta(milliseconds=millis)


def epoch_ns(moment: datetime) -> int:
    """A China-time moment as nanoseconds since the epoch."""
    aware = moment.replace(tzinfo=CHINA)
    return int(aware.timestamp()) * 10**9 + aware.microsecond * 1000


def _stamp(values: list[Any], moment: datetime, index: dict[str, int]) -> None:
    values[index["ActionDay"]] = yyyymmdd(moment.date())
    values[index["TradingDay"]] = yyyymmdd(trading_day_of(moment))
    values[index["UpdateTime"]] = f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    values[index["UpdateMillisec"]] = moment.microsecond // 1000


@dataclass(frozen=True)
class Layout:
    name: str
    description: str
    detect: Callable[[list[str]], bool]
    rows: Callable[[csv.DictReader], Iterator[Row]]


# -- ctp ------------------------------------------------------------------------------------------

def _ctp_detect(columns: list[str]) -> bool:
    return {"InstrumentID", "UpdateTime", "LastPrice"} <= set(columns) and bool(
        {"TradingDay", "ActionDay"} & set(columns))


def _ctp_rows(reader: csv.DictReader) -> Iterator[Row]:
    index = depth_index()
    kinds = _member_kinds()
    columns = [c for c in (reader.fieldnames or []) if c in index or c == "ReceiveTime"]
    for record in reader:
        instrument = record["InstrumentID"].strip()
        values = blank_values(instrument, (record.get("ExchangeID") or "").strip() or exchange_of(instrument))
        for column in columns:
            text = record.get(column)
            if column == "ReceiveTime" or text is None or text.strip() == "" or column in (
                    "TradingDay", "ActionDay", "UpdateTime", "UpdateMillisec", "InstrumentID", "ExchangeID"):
                continue
            kind = kinds[column]
            if kind == "double":
                values[index[column]] = _number(text)
            elif kind == "int":
                values[index[column]] = _volume(text)
            else:
                values[index[column]] = text.strip()
        clock, millis = _clock(record["UpdateTime"])
        if (record.get("UpdateMillisec") or "").strip():
            millis = int(float(record["UpdateMillisec"]))
        calendar_day = (record.get("ActionDay") or "").strip() or record["TradingDay"].strip()
        moment = _moment(calendar_day, clock, millis)
        _stamp(values, moment, index)
        receive = (record.get("ReceiveTime") or "").strip()
        yield values, int(receive) if receive else epoch_ns(moment)


def _member_kinds() -> dict[str, str]:
    from ctpshim.fields import load_spec

    return {name: kind for name, _typedef, kind, _size in load_spec()["fields"]["CThostFtdcDepthMarketDataField"]}


# -- vnpy1 ----------------------------------------------------------------------------------------

_VNPY1 = {"symbol", "date", "time", "lastPrice", "bidPrice1", "askPrice1", "bidVolume1", "askVolume1"}


def _vnpy1_rows(reader: csv.DictReader) -> Iterator[Row]:
    index = depth_index()
    for record in reader:
        instrument = record["symbol"].strip()
        values = blank_values(instrument, exchange_of(instrument))
        clock, millis = _clock(record["time"])
        moment = _moment(record["date"].strip(), clock, millis)
        _stamp(values, moment, index)
        values[index["LastPrice"]] = _number(record["lastPrice"])
        values[index["BidPrice1"]] = _number(record["bidPrice1"])
        values[index["AskPrice1"]] = _number(record["askPrice1"])
        values[index["BidVolume1"]] = _volume(record["bidVolume1"])
        values[index["AskVolume1"]] = _volume(record["askVolume1"])
        yield values, epoch_ns(moment)


# -- tqsdk ----------------------------------------------------------------------------------------

def _tqsdk_detect(columns: list[str]) -> bool:
    return {"symbol", "last_price", "bid_price1", "ask_price1", "volume"} <= set(columns) and bool(
        {"datetime_cst", "datetime_nano"} & set(columns))


def _tqsdk_rows(reader: csv.DictReader) -> Iterator[Row]:
    index = depth_index()
    for record in reader:
        exchange, _, instrument = record["symbol"].strip().partition(".")
        values = blank_values(instrument, exchange)
        if (record.get("datetime_nano") or "").strip():
            nanos = int(record["datetime_nano"])
            moment = datetime.fromtimestamp(nanos // 10**9, timezone.utc).astimezone(CHINA).replace(tzinfo=None)
            moment += timedelta(microseconds=(nanos % 10**9) // 1000)
        else:
            day, _, clock = record["datetime_cst"].strip().partition(" ")
            hms, millis = _clock(clock)
            moment = _moment(day.replace("-", ""), hms, millis)
            nanos = epoch_ns(moment)
        _stamp(values, moment, index)
        values[index["LastPrice"]] = _number(record["last_price"])
        values[index["HighestPrice"]] = _number(record.get("highest", ""))
        values[index["LowestPrice"]] = _number(record.get("lowest", ""))
        volume = _volume(record["volume"])
        turnover = _number(record.get("amount", ""))
        values[index["Volume"]] = volume
        values[index["Turnover"]] = 0.0 if turnover == DBL_MAX else turnover
        interest = _number(record.get("open_interest", ""))
        values[index["OpenInterest"]] = 0.0 if interest == DBL_MAX else interest
        info = parse_instrument(instrument)
        if info is not None and volume and turnover != DBL_MAX:
            values[index["AveragePrice"]] = average_price(
                exchange, turnover, volume, info.product.multiplier, info.product.tick)
        for level in range(1, 6):
            for side in ("bid", "ask"):
                price = _number(record.get(f"{side}_price{level}", ""))
                member = "Bid" if side == "bid" else "Ask"
                values[index[f"{member}Price{level}"]] = price
                values[index[f"{member}Volume{level}"]] = 0 if price == DBL_MAX else _volume(
                    record.get(f"{side}_volume{level}", ""))
        yield values, nanos


LAYOUTS: dict[str, Layout] = {
    "ctp": Layout("ctp", "columns named like CThostFtdcDepthMarketDataField members", _ctp_detect, _ctp_rows),
    "vnpy1": Layout("vnpy1", "vn.py 1.x tick CSV: symbol,date,time,lastPrice,...", lambda c: _VNPY1 <= set(c),
                    _vnpy1_rows),
    "tqsdk": Layout("tqsdk", "TianQin tick CSV: symbol (SHFE.cu1909), datetime_cst, last_price, ...",
                    _tqsdk_detect, _tqsdk_rows),
}


def open_csv(path: str) -> TextIO:
    """Open a CSV for reading: a UTF-8 BOM is dropped and any line ending (CR included) works."""
    raw = open(path, "rb").read()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return io.StringIO(raw.decode(encoding), newline="")
        except UnicodeDecodeError:
            continue
    raise LayoutError(f"{path}: neither UTF-8 nor GB18030 text")


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


def read_csv(path: str, forced: str | None = None) -> tuple[Layout, Iterator[Row]]:
    """The layout of ``path`` and an iterator of its rows as (tick values, receive time)."""
    handle = open_csv(path)
    reader = csv.DictReader(handle)
    columns = [c.strip() for c in (reader.fieldnames or [])]
    reader.fieldnames = columns
    layout = detect(path, columns, forced)

    def rows() -> Iterator[Row]:
        line = 1
        try:
            for line, row in enumerate(layout.rows(reader), start=2):
                yield row
        except (KeyError, ValueError) as exc:
            raise LayoutError(f"{path}: line {line + 1} cannot be read as {layout.name}: {exc}") from None

    return layout, rows()
