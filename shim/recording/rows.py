"""Recorded rows as ticks: :class:`TickRows` (lazy batches that become
``CThostFtdcDepthMarketDataField`` ticks when iterated) and the merge of time-ordered streams."""

from __future__ import annotations

import importlib.util
import itertools
from typing import Any, Callable, Iterator

import pyarrow as pa

from .schema import RECEIVE_TIME, TICK_COLUMNS


CONVERT_ROWS = 1_024  # rows turned into Python values at a time: their columns stay in the CPU caches
# while the ticks are made (whole 16k-row pieces cost about twice as much per row)
_HAVE_NUMPY = importlib.util.find_spec("numpy") is not None


VARIES = object()  # in TickRows.constants: this column's values differ from row to row
NOTHING_SHARED = (VARIES,) * len(TICK_COLUMNS)  # TickRows.constants when no column is known constant
_INSTRUMENT_ID = TICK_COLUMNS.index("InstrumentID")
# From this many rows on, TickRows.newest() costs a consumer less than reading each tick's
# InstrumentID as it is delivered (about 90 ns a tick).
LATEST_FROM_ROWS = 4_096


def constant_values(table: pa.Table) -> tuple[Any, ...]:
    """Per tick column of ``table``: its one value when every row holds it, else ``VARIES``.

    A recorded day repeats many values (absent prices, the trading day, limit prices on a
    one-instrument day): a constant column is turned into Python once, not once per tick.
    """
    import pyarrow.compute as pc

    if not table.num_rows:
        return NOTHING_SHARED
    values = []
    for column in table.columns[: len(TICK_COLUMNS)]:
        first = column[0]
        values.append(first.as_py() if pc.all(pc.equal(column, first)).as_py() else VARIES)
    return tuple(values)


def _python_values(column: pa.Array) -> list[Any]:
    """A column's values as Python objects (``float``, ``int``, ``str``)."""
    if column.null_count or pa.types.is_string(column.type) or not _HAVE_NUMPY:
        return column.to_pylist()
    # Through NumPy (a dependency of the recordings extra): its tolist() makes numbers half
    # again as fast as Arrow's to_pylist().
    return column.to_numpy().tolist()


class TickRows:
    """Recorded rows that become ``CThostFtdcDepthMarketDataField`` ticks when iterated.

    Replay hands these to the market hub as batches of ticks (a batch may be any sized iterable
    of ticks), so the ticks are built on the consumer's thread (an API object's dispatcher) just
    before their callbacks.  Each tick's 49 Python objects then live and die on one thread and one
    CPU core: built on the IO thread and freed on the dispatcher's, they cost twice as much, in
    cache traffic between the cores.  The IO thread meanwhile only slices and filters Arrow data.

    Immutable: :meth:`slice`, :meth:`filter` and the ``with_`` methods return new objects, and
    iterating keeps no state in the object, so several threads may iterate one at once (each gets
    ticks of its own; the hub shares one iteration among several sinks).

    ``batch`` holds the rows (schema columns, ``ReceiveTime`` last); ``constants`` (from
    :func:`constant_values`) gives, per tick column, a value every row shares, or ``VARIES``.
    """

    __slots__ = ("batch", "constants")

    def __init__(self, batch: pa.RecordBatch, constants: tuple[Any, ...]) -> None:
        self.batch = batch
        self.constants = constants

    def __len__(self) -> int:
        return self.batch.num_rows

    def __iter__(self) -> Iterator[Any]:
        # One tick at a time: a tick the callback does not keep is freed before the next is made,
        # so they all reuse the same memory (made as a list, 512 live ticks cost a third more).
        from ..ctp.fields import maker
        from ..ctp.market_data import depth_class

        make = maker(depth_class())
        for offset in range(0, self.batch.num_rows, CONVERT_ROWS):
            for values in zip(*self.columns(offset, CONVERT_ROWS)):
                yield make(values)

    def columns(self, offset: int, length: int) -> list[Any]:
        """Per tick column, the values of ``length`` rows from ``offset`` (a list, or a repeat of
        the shared value)."""
        batch = self.batch.slice(offset, length)
        rows = batch.num_rows
        return [
            _python_values(column) if constant is VARIES else itertools.repeat(constant, rows)
            for column, constant in zip(batch.columns, self.constants)
        ]

    def receive_times(self) -> list[int]:
        return self.batch.column(RECEIVE_TIME).to_pylist()

    def slice(self, offset: int, length: int | None = None) -> "TickRows":
        return TickRows(self.batch.slice(offset, length), self.constants)

    def filter(self, mask: Any) -> "TickRows":
        return TickRows(self.batch.filter(mask), self.constants)

    def with_values(self, values: dict[int, Any]) -> "TickRows":
        """The same rows with the tick columns at these positions set to these values."""
        constants = list(self.constants)
        for position, value in values.items():
            constants[position] = value
        return TickRows(self.batch, tuple(constants))

    def with_columns_by(self, key: int, keys: list[Any], values: dict[int, tuple[Any, ...]]) -> "TickRows":
        """The same rows with the tick columns at the positions of ``values`` set row by row: a row
        whose column ``key`` holds ``keys[i]`` gets ``values[position][i]`` (every row's key is in ``keys``)."""
        import pyarrow.compute as pc

        batch = self.batch
        rows = pc.index_in(batch.column(key), value_set=pa.array(keys, batch.schema.field(key).type))
        constants = list(self.constants)
        for position, column in values.items():
            field = batch.schema.field(position)
            batch = batch.set_column(position, field, pc.take(pa.array(list(column), field.type), rows))
            constants[position] = VARIES
        return TickRows(batch, tuple(constants))

    @property
    def latest(self) -> Callable[[], dict[str, Any]] | None:
        """What a consumer calls once it has delivered these rows for the newest tick of each of
        their instruments (see :meth:`newest`), or None when the rows are too few for that to
        cost less than noting each tick's instrument as it is delivered."""
        return self.newest if self.batch.num_rows >= LATEST_FROM_ROWS else None

    def newest(self) -> dict[str, Any]:
        """Per instrument of these rows, a tick of its last row: new objects, made when asked (a
        cost per batch, about 0.3 ms plus 30 ns a row, not per tick)."""
        import pyarrow.compute as pc

        rows = self.batch.num_rows
        if not rows:
            return {}
        if self.constants[_INSTRUMENT_ID] is not VARIES:
            last = self.slice(rows - 1, 1)
        else:
            ids = self.batch.column(_INSTRUMENT_ID)
            names = pc.unique(ids)
            # Each name's first place in the reversed column is its last row.
            from_end = pc.index_in(names, value_set=ids[::-1])
            # int32 positions: Arrow's take is several times faster with them than with int64 ones
            positions = pc.subtract(pa.scalar(rows - 1, pa.int32()), from_end)
            last = TickRows(self.batch.take(positions), self.constants)
        return {tick.InstrumentID: tick for tick in last}

    def last_of(self, instrument_id: str, copy: bool = False) -> "TickRows | None":
        """The last row of ``instrument_id``, or None; with ``copy``, in memory of its own rather
        than a view that keeps all of this batch's buffers alive."""
        import pyarrow.compute as pc

        rows = pc.indices_nonzero(pc.equal(self.batch.column("InstrumentID"), instrument_id))
        if not len(rows):
            return None
        if copy:
            return TickRows(self.batch.take(rows[-1:]), self.constants)
        return self.slice(rows[-1].as_py(), 1)

    @classmethod
    def in_time_order(cls, parts: list["TickRows"]) -> "TickRows":
        """All rows of ``parts`` as one, ordered by ``ReceiveTime`` (rows that tie keep the parts'
        order, then their own)."""
        import pyarrow.compute as pc

        table = pa.Table.from_batches([part.batch for part in parts])
        table = table.take(pc.sort_indices(table.column(RECEIVE_TIME)))  # a stable sort
        first = parts[0].constants
        shared = tuple(
            value if all(part.constants[i] == value for part in parts[1:]) else VARIES
            for i, value in enumerate(first)
        )
        return cls(table.combine_chunks().to_batches()[0], shared)


def merge_in_time(sources: list[Iterator[TickRows]]) -> Iterator[TickRows]:
    """Several time-ordered streams as one; rows that tie come in the order of ``sources``.

    Each round takes, from every stream, its rows up to the earliest of the streams' current last
    receive times, so the stream that set it moves on to its next chunk.
    """
    import pyarrow.compute as pc

    heads: list[TickRows | None] = [next(source, None) for source in sources]
    while True:
        live = [i for i, head in enumerate(heads) if head is not None]
        if len(live) <= 1:
            if live:
                yield heads[live[0]]  # type: ignore[misc]
                yield from sources[live[0]]
            return
        bound = min(heads[i].batch.column(RECEIVE_TIME)[-1].as_py() for i in live)  # type: ignore[union-attr]
        parts = []
        for i in live:
            head: TickRows = heads[i]  # type: ignore[assignment]
            taken = pc.sum(pc.less_equal(head.batch.column(RECEIVE_TIME), bound)).as_py() or 0
            if taken:
                parts.append(head.slice(0, taken))
            heads[i] = head.slice(taken) if taken < len(head) else next(sources[i], None)
        yield TickRows.in_time_order(parts)
