"""The recording schema: its columns, the Arrow schema, the rules a recorded value obeys, and
the live file's batch checksum.

The columns are the ``CThostFtdcDepthMarketDataField`` members, with their names, in header
order and with their types (text -> string, double -> float64, int -> int32), taken from the
field spec, plus ``ReceiveTime``: when the tick was received, in nanoseconds since the epoch
(UTC).  Replay paces and orders ticks by it.
"""

from __future__ import annotations

import functools
import struct
import zlib
from typing import Any, Iterable, Iterator, Sequence

import pyarrow as pa

from ..ctp.fields import load_spec, values_of


RECEIVE_TIME = "ReceiveTime"
LIVE_SUFFIX = ".arrows"
ARCHIVE_SUFFIX = ".parquet"
RECORDING_SUFFIXES = (LIVE_SUFFIX, ARCHIVE_SUFFIX)


_ARROW_TYPES = {"str": pa.string(), "double": pa.float64(), "int": pa.int32(), "char": pa.string(), "short": pa.int16()}


class RecordingError(Exception):
    """A recording cannot be read or written; the message names the file and the problem."""


def _build_schema() -> pa.Schema:
    members = load_spec()["fields"]["CThostFtdcDepthMarketDataField"]
    fields = [pa.field(name, _ARROW_TYPES[kind], nullable=False) for name, _typedef, kind, _size in members]
    fields.append(pa.field(RECEIVE_TIME, pa.int64(), nullable=False))
    return pa.schema(fields)


SCHEMA = _build_schema()
TICK_COLUMNS = SCHEMA.names[:-1]


_TYPECODES = {pa.float64(): "d", pa.int32(): "i", pa.int16(): "h", pa.int64(): "q"}
# Per schema column (ReceiveTime last): its name, Arrow type and the struct code of a number column (None for text).
_COLUMN_TYPES = [(field.name, field.type, _TYPECODES.get(field.type)) for field in SCHEMA]


@functools.lru_cache(maxsize=64)
def _packer(code: str, rows: int) -> struct.Struct:
    # struct packs a column of Python numbers into Arrow's little-endian buffer about 2.5x
    # faster than array.array (whose constructor parses a format per item) or pa.array.
    return struct.Struct(f"<{rows}{code}")


class BadValueError(RecordingError):
    """A value to be recorded that its member cannot hold; the message names the row and the column."""


def bad_rows(columns: dict[str, pa.Array]) -> Iterator[tuple[str, pa.Array, str]]:
    """Per tick column given: its name, a mask of the rows whose value the member cannot hold, and
    what is valid.  The ranges are the feeds' (:func:`ctpshim.ctp.market_data.check_values`, from the
    field spec): finite prices from 0 (DBL_MAX when absent), whole numbers in an int member's
    range, text of at most its char array's length in GB18030.  Number columns are checked as
    float64, before they are cast to their Arrow type (which would wrap or truncate)."""
    import pyarrow.compute as pc

    from ..ctp.market_data import value_rules

    for _position, name, kind, low, high, valid in value_rules():
        column = columns.get(name)
        if column is None:
            continue
        if kind in ("double", "int"):
            values = pc.cast(column, pa.float64())
            inside = pc.and_kleene(pc.greater_equal(values, low), pc.less_equal(values, high))
            if kind == "int":
                inside = pc.and_kleene(inside, pc.equal(pc.floor(values), values))
            bad = pc.invert(pc.fill_null(inside, False))
        else:
            text = pc.cast(column, pa.string())
            bad = pc.fill_null(pc.greater(pc.binary_length(text), high), False)
            long_rows = pc.indices_nonzero(bad)
            if len(long_rows):  # too long in UTF-8; CTP counts GB18030 bytes (two per Chinese character)
                fitting = [row for row, value in zip(long_rows.to_pylist(), pc.take(text, long_rows).to_pylist())
                           if _gb18030_fits(value, high)]
                if fitting:
                    rows = pa.array(range(len(text)), pa.int64())
                    bad = pc.and_(bad, pc.invert(pc.is_in(rows, value_set=pa.array(fitting, pa.int64()))))
        if pc.any(bad).as_py():
            yield name, bad, valid


def _gb18030_fits(text: str, size: int) -> bool:
    try:
        return len(text.encode("gb18030")) <= size
    except UnicodeEncodeError:
        return False


def check_columns(columns: dict[str, pa.Array], source: str, skip: bool = False) -> tuple[pa.Array | None, int]:
    """Check imported columns before they become the schema's types (see :func:`bad_rows`).

    Without ``skip``, the first bad value raises :class:`BadValueError` naming the data row (from
    1), the column, the value and what is valid; with it, returns a mask of the good rows (None
    when all are) and how many rows are bad.
    """
    import pyarrow.compute as pc

    keep = None
    first: tuple[int, str, str] | None = None
    for name, bad, valid in bad_rows(columns):
        if skip:
            keep = pc.invert(bad) if keep is None else pc.and_(keep, pc.invert(bad))
            continue
        row = pc.index(bad, True).as_py()
        if first is None or row < first[0]:
            first = (row, name, valid)
    if first is not None:
        row, name, valid = first
        value = columns[name][row].as_py()
        shown = repr(int(value) if type(value) is float and value.is_integer() and abs(value) < 1e18 else value)
        if len(shown) > 40:
            shown = f"{shown[:37]}... ({len(value)} characters)" if isinstance(value, str) else shown[:37] + "..."
        raise BadValueError(f"{source}: data row {row + 1}, column {name}: {shown} is not valid: expected "
                            f"{valid} (--skip-bad skips such rows)")
    if keep is None:
        return None, 0
    return keep, len(keep) - pc.sum(keep).as_py()


def tick_values(tick: Any) -> Sequence[Any]:
    """A tick's values in member order: of a ``CThostFtdcDepthMarketDataField``, or the list (or
    tuple) of values itself."""
    return tick if type(tick) in (list, tuple) else values_of(tick)


def table_from_ticks(ticks: Iterable[Any], receive_times: list[int]) -> pa.Table:
    """A table of the schema from ticks (see :func:`tick_values`) and their receive times.

    Raises :class:`RecordingError` naming the column when a value does not fit its type.
    """
    flat: list[Any] = []
    for tick in ticks:
        flat.extend(tick_values(tick))
    return table_from_values(flat, receive_times)


def table_from_values(flat: list[Any], receive_times: list[int]) -> pa.Table:
    """:func:`table_from_ticks` from the ticks' values one after another, tick after tick."""
    width = len(TICK_COLUMNS)
    rows = len(receive_times)
    if len(flat) != width * rows:
        raise RecordingError("a tick with the wrong number of members cannot be recorded")
    # Strided slices of the row-major values: about 2.5x faster than zip(*ticks), which walks
    # every tick once per column.
    columns = [flat[position::width] for position in range(width)] + [receive_times]
    arrays = []
    for column, (name, kind, code) in zip(columns, _COLUMN_TYPES):
        try:
            if code is None:
                arrays.append(pa.array(column, type=kind))
            else:
                data = _packer(code, rows).pack(*column)
                arrays.append(pa.Array.from_buffers(kind, rows, [None, pa.py_buffer(data)]))
        except (struct.error, pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise RecordingError(f"a tick's {name} cannot be recorded as {kind}: {exc}") from None
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def check_day(day: str, what: str) -> str:
    """``day`` when it is a trading day as CTP writes it (YYYYMMDD); files are named after it."""
    if not (len(day) == 8 and day.isascii() and day.isdigit()):
        raise RecordingError(f"{what} {day!r} is not a date (YYYYMMDD)")
    return day


# A live batch's custom metadata: the CRC-32 of its buffers (a batch without one is read unchecked).
CHECKSUM_KEY = "ctpshim.crc32"


def batch_checksum(batch: pa.RecordBatch) -> int:
    """CRC-32 of a record batch's buffers, in column order (about 0.1 ms per thousand ticks)."""
    checksum = 0
    for column in batch.columns:
        for buffer in column.buffers():
            if buffer is not None:
                checksum = zlib.crc32(buffer, checksum)
    return checksum


IPC_CONTINUATION = b"\xff\xff\xff\xff"  # how every message of an Arrow IPC stream starts


EXCHANGE_TIME = ["TradingDay", "ActionDay", "UpdateTime", "UpdateMillisec"]


def in_exchange_time_order(table: pa.Table) -> pa.Table:
    """``table`` ordered by its exchange stamps (TradingDay, ActionDay, UpdateTime,
    UpdateMillisec; a stable sort), with receive times made never to go backwards in that order.

    For imported ticks (a CSV's rows may come in any order, with or without receive times):
    replay orders by receive time, so a file in reverse order would otherwise play backwards.
    """
    import pyarrow.compute as pc

    order = pc.sort_indices(table, sort_keys=[(name, "ascending") for name in EXCHANGE_TIME])
    table = table.take(order)
    receive = pc.cumulative_max(table.column(RECEIVE_TIME))
    return table.set_column(table.schema.get_field_index(RECEIVE_TIME), SCHEMA.field(RECEIVE_TIME), receive)
