"""TickRows: the newest tick per instrument a consumer asks for once it has delivered a batch, and
per-row values chosen by a key column."""

from __future__ import annotations

import threading

import pytest

from ctpshim.ctp.fields import values_of
from ctpshim.fronts.registry import create_adapter


@pytest.fixture(scope="module")
def day():
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ctpshim.recording import SCHEMA

    table = pq.read_table(create_adapter("replay://?bundled=RM705").path).slice(0, 9000)
    position = SCHEMA.get_field_index("InstrumentID")
    names = [("X", "Y", "Z")[(i // 7) % 3] if i < 8000 else "X" for i in range(9000)]  # Z's last row is early
    return table.set_column(position, SCHEMA.field(position), pa.array(names, pa.string()))


def rows_of(table, offset=0, length=None):
    from ctpshim.recording import TickRows, constant_values

    part = table.slice(offset, length)
    return TickRows(part.combine_chunks().to_batches()[0], constant_values(part))


def newest_by_iterating(rows) -> dict:
    return {tick.InstrumentID: values_of(tick) for tick in rows}


@pytest.mark.parametrize("offset, length", [(0, 9000), (0, 5000), (8100, 900), (10, 1)])
def test_newest_is_the_last_row_of_each_instrument(day, offset, length):
    rows = rows_of(day, offset, length)
    newest = rows.newest()
    assert {name: values_of(tick) for name, tick in newest.items()} == newest_by_iterating(rows)
    assert all(type(tick).__name__ == "CThostFtdcDepthMarketDataField" for tick in newest.values())


def test_newest_of_no_rows_is_empty(day):
    assert rows_of(day, 0, 1).slice(0, 0).newest() == {}


def test_latest_is_offered_only_to_batches_large_enough_for_it_to_pay(day):
    from ctpshim.recording.rows import LATEST_FROM_ROWS

    assert rows_of(day, 0, LATEST_FROM_ROWS - 1).latest is None
    offered = rows_of(day, 0, LATEST_FROM_ROWS).latest
    assert offered is not None and offered().keys() == {"X", "Y", "Z"}


def test_several_threads_iterate_one_batch_and_each_gets_every_tick(day):
    rows = rows_of(day)
    expected = [values_of(tick) for tick in rows]
    seen: list[list] = [[] for _ in range(4)]

    def read(into: list) -> None:
        into.extend(values_of(tick) for tick in rows)

    readers = [threading.Thread(target=read, args=(into,)) for into in seen]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(60)
    assert all(got == expected for got in seen)


def test_with_columns_by_sets_each_row_from_its_key_and_keeps_the_rest(day):
    from ctpshim.ctp.market_data import depth_index
    from ctpshim.recording import VARIES

    index = depth_index()
    rows = rows_of(day, 0, 100)
    stamped = rows.with_columns_by(index["InstrumentID"], ["X", "Y", "Z"],
                                   {index["UpdateTime"]: ("01:00:00", "02:00:00", "03:00:00")})
    hours = {"X": "01:00:00", "Y": "02:00:00", "Z": "03:00:00"}
    before, after = list(rows), list(stamped)
    assert [t.UpdateTime for t in after] == [hours[t.InstrumentID] for t in before]
    assert [t.LastPrice for t in after] == [t.LastPrice for t in before]
    assert stamped.constants[index["UpdateTime"]] is VARIES
