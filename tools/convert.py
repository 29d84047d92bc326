"""``ctpshim convert IN -o OUT``: import public tick CSVs into recordings, export recordings to CSV.

IN is a CSV (layout detected, ``--format`` overrides) or a recording (``.parquet``/``.arrows``
file or folder).  OUT is a ``.parquet`` file (one trading day), a ``.csv`` file (the ``ctp``
layout), or a folder (one ``<TradingDay>.parquet`` per trading day).  Both directions run in
Arrow, a column at a time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ctpshim.recording import SCHEMA, RecordingError, read_batches, recording_days, write_archive

from .layouts import read_csv


def convert(source: str, target: str, forced: str | None = None) -> dict[str, Any]:
    """Convert ``source`` into ``target``; returns the layout, tick count, trading days and time taken."""
    started = time.perf_counter()
    if Path(source).is_dir() or Path(source).suffix in (".parquet", ".arrows"):
        tables: Iterator[pa.Table] = _recording_days(source)
        layout = "recording"
    elif Path(source).exists():
        found, table = read_csv(source, forced)
        tables, layout = iter([table]), found.name
    else:
        raise RecordingError(f"{source}: no such file or directory")
    if target.endswith(".csv"):
        count, days = _write_csv(tables, target)
    else:
        count, days = _write_archives(pa.concat_tables(list(tables)), target)
    return {"layout": layout, "rows": count, "days": days, "seconds": time.perf_counter() - started}


def _recording_days(source: str) -> Iterator[pa.Table]:
    for day in recording_days(source):
        batches = [batch for path in day.paths for batch in read_batches(path)]
        yield pa.Table.from_batches(batches, schema=SCHEMA)


def _write_csv(tables: Iterator[pa.Table], target: str) -> tuple[int, list[str]]:
    count, days = 0, []
    with pacsv.CSVWriter(target, SCHEMA) as writer:
        for table in tables:
            writer.write_table(table)
            count += table.num_rows
            days += [d for d in pc.unique(table.column("TradingDay")).to_pylist() if d not in days]
    return count, days


def _write_archives(table: pa.Table, target: str) -> tuple[int, list[str]]:
    """One archive per trading day: a .parquet target takes a single day, a folder any number."""
    if table.num_rows == 0:
        raise RecordingError("the input has no ticks; nothing written")
    days = sorted(pc.unique(table.column("TradingDay")).to_pylist())
    if target.endswith(".parquet"):
        if len(days) > 1:
            raise RecordingError(
                f"the input spans {len(days)} trading days ({', '.join(days)}); give a folder as -o "
                "to write one file per day")
        write_archive(table, target)
        return table.num_rows, days
    Path(target).mkdir(parents=True, exist_ok=True)
    for day in days:
        write_archive(table.filter(pc.equal(table.column("TradingDay"), day)), Path(target) / f"{day}.parquet")
    return table.num_rows, days
