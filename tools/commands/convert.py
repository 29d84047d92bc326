"""``ctpshim convert IN -o OUT``: import public tick CSVs into recordings, export recordings to CSV.

IN is a CSV (layout detected, ``--format`` overrides) or a recording (``.parquet``/``.arrows``
file or folder).  OUT is a ``.parquet`` file (one trading day), a ``.csv`` file (the ``ctp``
layout), or a folder (one ``<TradingDay>.parquet`` per trading day).  Both directions run in
Arrow, a column at a time.

What is written is in time order: a CSV's rows by their exchange stamps (see
:func:`ctpshim.recording.in_exchange_time_order`), a recording's by receive time.  A value a
member cannot hold is an error naming the row and the column, or with ``skip_bad`` skips the
row (counted in ``skipped``); damage in a recording is collected in ``damage``, after the ticks
before it are written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from . import COMMANDS, require

if TYPE_CHECKING:
    import pyarrow as pa

HELP = COMMANDS["convert"]


def convert(source: str, target: str, forced: str | None = None, skip_bad: bool = False) -> dict[str, Any]:
    """Convert ``source`` into ``target``; returns the layout, tick count, trading days, time taken,
    rows skipped (``skip_bad``) and the damage met in a recording (empty when all was read)."""
    import pyarrow as pa

    from ...recording import RECORDING_SUFFIXES, RecordingError, check_file, in_exchange_time_order, os_error
    from ..layouts import read_csv

    started = time.perf_counter()
    damage: list[str] = []
    skipped = 0
    if Path(source).is_dir() or Path(source).suffix in RECORDING_SUFFIXES:
        tables: Iterator[pa.Table] = _recording_days(source, damage)
        layout = "recording"
    else:
        check_file(Path(source))
        found, table, skipped = read_csv(source, forced, skip_bad)
        tables, layout = iter([in_exchange_time_order(table)]), found.name
    try:
        if target.endswith(".csv"):
            count, days = _write_csv(tables, target)
        else:
            count, days = _write_archives(pa.concat_tables(list(tables)), target, damage)
    except OSError as exc:
        raise RecordingError(f"cannot write {os_error(exc.filename or target, exc)}") from None
    return {"layout": layout, "rows": count, "days": days, "seconds": time.perf_counter() - started,
            "skipped": skipped, "damage": damage}


def _recording_days(source: str, damage: list[str]) -> Iterator[pa.Table]:
    import pyarrow as pa
    import pyarrow.compute as pc

    from ...recording import RECEIVE_TIME, SCHEMA, read_batches, recording_days

    for day in recording_days(source):
        batches = [batch for path in day.paths for batch in read_batches(path, damage=damage)]
        table = pa.Table.from_batches(batches, schema=SCHEMA)
        yield table.take(pc.sort_indices(table.column(RECEIVE_TIME)))  # a stable sort: files of one day merge


def _write_csv(tables: Iterator[pa.Table], target: str) -> tuple[int, list[str]]:
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    from ...recording import SCHEMA

    count, days = 0, []
    with pacsv.CSVWriter(target, SCHEMA) as writer:
        for table in tables:
            writer.write_table(table)
            count += table.num_rows
            days += [d for d in pc.unique(table.column("TradingDay")).to_pylist() if d not in days]
    return count, days


def _write_archives(table: pa.Table, target: str, damage: list[str]) -> tuple[int, list[str]]:
    """One archive per trading day: a .parquet target takes a single day, a folder any number."""
    import pyarrow.compute as pc

    from ...recording import RecordingError, check_day, write_archive

    if table.num_rows == 0:
        if damage:
            raise RecordingError(f"{damage[0]}; no ticks could be read, nothing written")
        raise RecordingError("the input has no ticks; nothing written")
    days = sorted(check_day(day, "the input's TradingDay") for day in pc.unique(table.column("TradingDay")).to_pylist())
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


# -- the command line -----------------------------------------------------------------------------

def add_parser(commands: Any) -> argparse.ArgumentParser:
    command = commands.add_parser("convert", help=HELP)
    command.add_argument("input", help="a CSV file, or a recording (.parquet/.arrows file or folder)")
    command.add_argument("-o", "--output", required=True, help="a .parquet file, a .csv file, or a folder")
    command.add_argument("--format", choices=["ctp", "vnpy1", "tqsdk"], help="the CSV layout (default: detected)")
    command.add_argument("--skip-bad", action="store_true",
                         help="skip CSV rows holding a value their member cannot hold (default: stop at the first)")
    return command


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    require(parser, "pyarrow", "recordings", "convert")
    from ...recording import RecordingError
    from ..layouts import LayoutError

    if not os.path.exists(args.input):
        parser.exit(2, f"ctpshim convert: {args.input}: no such file or directory\n")
    try:
        report = convert(args.input, args.output, args.format, args.skip_bad)
    except (RecordingError, LayoutError) as exc:
        print(f"ctpshim convert: {exc}", file=sys.stderr)
        return 1
    rate = report["rows"] / report["seconds"] if report["seconds"] else 0
    skipped = f", {report['skipped']:,} bad rows skipped" if report["skipped"] else ""
    print(f"{args.input} ({report['layout']}) -> {args.output}: {report['rows']:,} ticks, "
          f"trading days {', '.join(report['days'])}, {rate:,.0f} rows/s{skipped}")
    for damage in report["damage"]:
        print(f"ctpshim convert: {damage}", file=sys.stderr)
    return 1 if report["damage"] else 0
