"""``ctpshim info PATH``: what a recording holds, per file (the survey is
:func:`ctpshim.recording.describe`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ctpshim.recording import GAP_SECONDS, describe

__all__ = ["describe", "print_reports"]


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
