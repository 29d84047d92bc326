"""Recorded days made for a test from the bundled RM705 day: its rows with some columns replaced."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ctpshim.fronts.registry import create_adapter


def alternating_day(target: Path, rows: int, pairs: dict[str, tuple[Any, Any]]) -> Path:
    """Write ``rows`` rows of the bundled day to ``target``, 10 ms apart, Volume numbering them, and
    each column of ``pairs`` taking its two values in turn (``{"InstrumentID": ("X", "Y")}``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ctpshim.recording import SCHEMA

    part = pq.read_table(create_adapter("replay://?bundled=RM705").path).slice(0, rows)
    columns: dict[str, Sequence[Any]] = {name: [pair[i % 2] for i in range(rows)] for name, pair in pairs.items()}
    columns["Volume"] = list(range(rows))
    columns["ReceiveTime"] = [10**18 + i * 10**7 for i in range(rows)]
    for name, values in columns.items():
        position = SCHEMA.get_field_index(name)
        part = part.set_column(position, SCHEMA.field(position), pa.array(values, SCHEMA.field(position).type))
    pq.write_table(part, target)
    return target
