"""What a recording holds and whether it is sound: its days and their files, a description of
each file (instruments, days, ticks, span, gaps), and the problems found reading all of it."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from .readers import check_file, os_error, read_batches, read_tables
from .schema import RECEIVE_TIME, RECORDING_SUFFIXES, RecordingError, check_day


GAP_SECONDS = 60  # a pause between two ticks longer than this is reported as a gap


def describe(path: str | os.PathLike[str], damage: list[str] | None = None) -> list[dict[str, Any]]:
    """Per file of a recording: instruments (with tick counts), trading days, ticks, the first
    and last tick (``ActionDay UpdateTime``) and the gaps longer than ``GAP_SECONDS``; of a
    damaged file, what is before the damage (see :func:`read_tables` for ``damage``): every
    column is read, so ``ticks`` is what replay can play."""
    import pyarrow.compute as pc

    columns = ["InstrumentID", "TradingDay", "ActionDay", "UpdateTime", RECEIVE_TIME]
    reports = []
    for day in recording_days(path):
        for file in day.paths:
            per_instrument: dict[str, int] = {}
            days: set[str] = set()
            first = last = None
            gaps: list[tuple[str, str, float]] = []
            count = 0
            previous: tuple[int, str] | None = None  # the last tick of the batch before: (receive, stamp)
            # Every column is read (and checked), so the count is what replay can play.
            for whole in read_batches(file, damage=damage):
                if not whole.num_rows:
                    continue
                batch = whole.select(columns)
                count += batch.num_rows
                for entry in pc.value_counts(batch.column("InstrumentID")).to_pylist():
                    per_instrument[entry["values"]] = per_instrument.get(entry["values"], 0) + entry["counts"]
                days.update(pc.unique(batch.column("TradingDay")).to_pylist())
                stamp = _stamper(batch)
                first = first or stamp(0)
                last = stamp(batch.num_rows - 1)
                receives = batch.column(RECEIVE_TIME)
                if previous is not None:
                    pause = receives[0].as_py() - previous[0]
                    if pause > GAP_SECONDS * 10**9:
                        gaps.append((previous[1], stamp(0), pause / 1e9))
                # Only the rows that start a gap become Python values.
                pauses = pc.subtract(receives.slice(1), receives.slice(0, batch.num_rows - 1))
                for row in pc.indices_nonzero(pc.greater(pauses, GAP_SECONDS * 10**9)).to_pylist():
                    gaps.append((stamp(row), stamp(row + 1), pauses[row].as_py() / 1e9))
                previous = (receives[batch.num_rows - 1].as_py(), last)
            reports.append({
                "file": str(file), "trading_days": sorted(days), "ticks": count, "first": first, "last": last,
                "instruments": dict(sorted(per_instrument.items())), "gaps": gaps,
            })
    return reports


def _stamper(batch: pa.RecordBatch) -> Any:
    action_days, clocks = batch.column("ActionDay"), batch.column("UpdateTime")
    return lambda row: f"{action_days[row].as_py()} {clocks[row].as_py()}"


@dataclass(frozen=True)
class DayFiles:
    """The files holding one trading day (several when a live file was left beside its archive)."""

    day: str
    paths: tuple[Path, ...]


def recording_days(path: str | os.PathLike[str]) -> list[DayFiles]:
    """The trading days of a recording file or folder, in order.

    Every file is checked (:func:`check_file`) before anything reads it."""
    path = Path(path)
    try:
        is_folder = stat.S_ISDIR(os.stat(path).st_mode)
        if is_folder:
            with os.scandir(path) as entries:
                files = sorted(Path(entry.path) for entry in entries if Path(entry.name).suffix in RECORDING_SUFFIXES)
        else:
            files = [path]
    except OSError as exc:
        raise os_error(path, exc) from None
    if not files:
        raise RecordingError(f"{path}: no recordings (.parquet or .arrows files) in this folder")
    by_day: dict[str, list[Path]] = {}
    for file in files:
        if file.suffix not in RECORDING_SUFFIXES:
            raise RecordingError(f"{file}: not a recording (expected .parquet or .arrows)")
        check_file(file)
        by_day.setdefault(_file_day(file), []).append(file)
    return [DayFiles(day, tuple(paths)) for day, paths in sorted(by_day.items())]


def _file_day(path: Path) -> str:
    """The file's trading day: from its name when it is YYYYMMDD, else from its first row."""
    if path.stem.isdigit() and len(path.stem) == 8:
        return path.stem
    damage: list[str] = []  # reported by whatever reads the file; here only if it leaves no tick to date
    for batch in read_batches(path, ["TradingDay"], damage):
        if batch.num_rows:
            return check_day(str(batch.column(0)[0].as_py()), f"{path}: its first tick's TradingDay")
    raise RecordingError(damage[0] if damage else
                         f"{path}: no ticks, and its name is not a trading day (YYYYMMDD) to file it under")


def verify(path: str | os.PathLike[str]) -> list[str]:
    """Read every tick of a recording file or folder: the problems found, or an empty list when
    it is healthy.

    Each problem is one line naming the file and, for damage, the IPC batch (live file) or row
    group (archive), its byte offset and what is wrong; a file that cannot be read at all (not a
    recording, permission denied, a named pipe ...) is one problem.  Never raises
    :class:`RecordingError`.
    """
    path = Path(path)
    try:
        files = [file for day in recording_days(path) for file in day.paths]
    except RecordingError as exc:
        return [str(exc)]
    problems: list[str] = []
    for file in files:
        try:
            for _ in read_tables(file, damage=problems):
                pass
        except RecordingError as exc:
            problems.append(str(exc))
    return problems
