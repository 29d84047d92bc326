"""``ctpshim info PATH [--json]``: what a recording holds, per file (the survey is
:func:`ctpshim.recording.describe`), and any damage in it."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from . import COMMANDS, require

HELP = COMMANDS["info"]


def info(path: str, as_json: bool = False) -> int:
    """Print the survey of ``path``; returns the exit status: 1 when some of it cannot be read.

    Raises :class:`ctpshim.recording.RecordingError` when no file of it can be surveyed."""
    from ...recording import describe

    problems: list[str] = []  # the survey reads every tick of every file, as verify() does
    reports = describe(path, damage=problems)
    for report in reports:
        report["damage"] = [problem for problem in problems if problem.startswith(f"{report['file']}:")]
    if as_json:
        print(json.dumps(reports, indent=2))
    else:
        print_reports(reports)
    return 1 if problems else 0


def print_reports(reports: list[dict[str, Any]]) -> None:
    from ...recording import GAP_SECONDS

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
        for damage in report.get("damage", []):
            print(f"  DAMAGED       {damage}")


# -- the command line -----------------------------------------------------------------------------

def add_parser(commands: Any) -> argparse.ArgumentParser:
    parser = commands.add_parser("info", help=HELP)
    parser.add_argument("path", help="a recording file or folder")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    require(parser, "pyarrow", "recordings", "info")
    from ...recording import RecordingError

    if not os.path.exists(args.path):
        parser.exit(2, f"ctpshim info: {args.path}: no such file or directory\n")
    try:
        return info(args.path, args.json)
    except RecordingError as exc:
        print(f"ctpshim info: {exc}", file=sys.stderr)
        return 1
