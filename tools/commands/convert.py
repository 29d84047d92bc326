"""``ctpshim convert IN -o OUT [--format ctp|vnpy1|tqsdk] [--skip-bad]``: tick CSVs into recordings and
recordings into CSV (the work is :mod:`ctpshim.tools.convert`)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from . import require

HELP = "import tick CSVs into recordings, or export recordings to CSV"


def add_parser(commands: Any) -> argparse.ArgumentParser:
    convert = commands.add_parser("convert", help=HELP)
    convert.add_argument("input", help="a CSV file, or a recording (.parquet/.arrows file or folder)")
    convert.add_argument("-o", "--output", required=True, help="a .parquet file, a .csv file, or a folder")
    convert.add_argument("--format", choices=["ctp", "vnpy1", "tqsdk"], help="the CSV layout (default: detected)")
    convert.add_argument("--skip-bad", action="store_true",
                         help="skip CSV rows holding a value their member cannot hold (default: stop at the first)")
    return convert


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    require(parser, "pyarrow", "recordings", "convert")
    from ...recording import RecordingError
    from ..layouts import LayoutError

    if not os.path.exists(args.input):
        parser.exit(2, f"ctpshim convert: {args.input}: no such file or directory\n")
    from ..convert import convert

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
