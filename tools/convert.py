"""``ctpshim convert IN -o OUT``: import public tick CSVs into recordings, export recordings to CSV.

IN is a CSV (layout detected, ``--format`` overrides) or a recording (``.parquet``/``.arrows``
file or folder).  OUT is a ``.parquet`` file, a ``.csv`` file, or a folder (one
``<TradingDay>.parquet`` per trading day).
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path
from typing import Any, Iterator

from ctpshim.recording import RECEIVE_TIME, SCHEMA, TICK_COLUMNS, RecordingError, read_batches, recording_days, table_from_ticks, write_archive

from .layouts import read_csv
from .progress import progress

CHUNK = 65_536


def convert(source: str, target: str, forced: str | None = None) -> dict[str, Any]:
    """Convert ``source`` into ``target``; returns counts for the report."""
    started = time.perf_counter()
    if Path(source).is_dir() or Path(source).suffix in (".parquet", ".arrows"):
        rows = _recording_rows(source)
        layout = "recording"
    elif Path(source).exists():
        found, rows = read_csv(source, forced)
        layout = found.name
    else:
        raise RecordingError(f"{source}: no such file or directory")
    size = os.path.getsize(source) if Path(source).is_file() else 0
    if target.endswith(".csv"):
        count, days = _write_csv(rows, target, size)
    else:
        count, days = _write_archives(rows, target, size)
    return {"layout": layout, "rows": count, "days": days, "seconds": time.perf_counter() - started}


def _recording_rows(source: str) -> Iterator[tuple[list[Any], int]]:
    for day in recording_days(source):
        for path in day.paths:
            for batch in read_batches(path):
                columns = [column.to_pylist() for column in batch.columns]
                receives = columns[-1]
                for values, receive in zip(zip(*columns[:-1]), receives):
                    yield list(values), receive


def _write_csv(rows: Iterator[tuple[list[Any], int]], target: str, size: int) -> tuple[int, list[str]]:
    count, days = 0, []
    with open(target, "w", newline="", encoding="utf-8") as handle, progress("converting", size) as advance:
        writer = csv.writer(handle)
        writer.writerow([*TICK_COLUMNS, RECEIVE_TIME])
        for values, receive in rows:
            writer.writerow([*(repr(v) if isinstance(v, float) else v for v in values), receive])
            count += 1
            if values[0] not in days:
                days.append(values[0])
            if count % 4096 == 0:
                advance(4096 * 120)
    return count, days


def _write_archives(rows: Iterator[tuple[list[Any], int]], target: str, size: int) -> tuple[int, list[str]]:
    """Group rows by trading day; a .parquet target takes a single day, a folder any number."""
    by_day: dict[str, tuple[list[Any], list[int]]] = {}
    count = 0
    with progress("converting", size) as advance:
        for values, receive in rows:
            ticks, receives = by_day.setdefault(values[0], ([], []))
            ticks.append(values)
            receives.append(receive)
            count += 1
            if count % 4096 == 0:
                advance(4096 * 120)
    if not count:
        raise RecordingError("the input has no ticks; nothing written")
    if target.endswith(".parquet"):
        if len(by_day) > 1:
            raise RecordingError(
                f"the input spans {len(by_day)} trading days ({', '.join(sorted(by_day))}); give a folder as -o "
                "to write one file per day")
        destinations = {day: Path(target) for day in by_day}
    else:
        Path(target).mkdir(parents=True, exist_ok=True)
        destinations = {day: Path(target) / f"{day}.parquet" for day in by_day}
    for day, (ticks, receives) in sorted(by_day.items()):
        write_archive(table_from_ticks(ticks, receives), destinations[day])
    return count, sorted(by_day)


__all__ = ["convert", "SCHEMA"]
