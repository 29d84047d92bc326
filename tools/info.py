"""``ctpshim info PATH``: what a recording holds, per file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ctpshim.recording import RECEIVE_TIME, read_batches, recording_days

GAP_SECONDS = 60


def describe(path: str) -> list[dict[str, Any]]:
    """Per file: instruments, trading days, ticks (in all and per instrument), time span, gaps."""
    import pyarrow as pa
    import pyarrow.compute as pc

    reports = []
    for day in recording_days(path):
        for file in day.paths:
            per_instrument: dict[str, int] = {}
            days: set[str] = set()
            first = last = None
            previous = None
            gaps: list[tuple[str, str, float]] = []
            count = 0
            for batch in read_batches(file, ["InstrumentID", "TradingDay", "ActionDay", "UpdateTime", RECEIVE_TIME]):
                if not batch.num_rows:
                    continue
                count += batch.num_rows
                for entry in pc.value_counts(batch.column("InstrumentID")).to_pylist():
                    per_instrument[entry["values"]] = per_instrument.get(entry["values"], 0) + entry["counts"]
                days.update(pc.unique(batch.column("TradingDay")).to_pylist())
                stamps = [f"{d} {t}" for d, t in zip(batch.column("ActionDay").to_pylist(), batch.column("UpdateTime").to_pylist())]
                receives = batch.column(RECEIVE_TIME)
                first = first or stamps[0]
                last = stamps[-1]
                times = receives.to_pylist()
                if previous is not None:
                    times = [previous[0]] + times
                    stamps = [previous[1]] + stamps
                differences = pc.subtract(pa.array(times[1:]), pa.array(times[:-1])).to_pylist()
                for position, difference in enumerate(differences):
                    if difference > GAP_SECONDS * 10**9:
                        gaps.append((stamps[position], stamps[position + 1], difference / 1e9))
                previous = (times[-1], stamps[-1])
            reports.append({
                "file": str(file), "trading_days": sorted(days), "ticks": count, "first": first, "last": last,
                "instruments": dict(sorted(per_instrument.items())), "gaps": gaps,
            })
    return reports


def print_reports(reports: list[dict[str, Any]]) -> None:
    for report in reports:
        print(Path(report["file"]).name)
        print(f"  trading days  {', '.join(report['trading_days']) or '-'}")
        print(f"  ticks         {report['ticks']:,}")
        print(f"  span          {report['first']} .. {report['last']}")
        instruments = ", ".join(f"{name} ({count:,})" for name, count in report["instruments"].items())
        print(f"  instruments   {len(report['instruments'])}: {instruments}")
        if report["gaps"]:
            print(f"  gaps > {GAP_SECONDS} s:")
            for start, end, seconds in report["gaps"]:
                print(f"    {start} -> {end}  ({seconds:,.0f} s)")
        else:
            print(f"  gaps > {GAP_SECONDS} s: none")
