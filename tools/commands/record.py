"""``ctpshim record FRONT -i ID [ID ...] -o DIR [--duration S] [--count N] [--quiet]``: record a front's
ticks (the work is :mod:`ctpshim.tools.record`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ...fronts.url import integer, number
from . import argument, require

HELP = "record a front's ticks (rotating at each trading day)"


def add_parser(commands: Any) -> argparse.ArgumentParser:
    record = commands.add_parser("record", help=HELP)
    record.add_argument("front", help="the front to record, e.g. sim:// or replay://day.parquet")
    record.add_argument("-i", "--instruments", nargs="+", required=True, metavar="ID", help="instruments to record")
    record.add_argument("-o", "--output", required=True, metavar="DIR",
                        help="folder for <TradingDay>.arrows (live) and <TradingDay>.parquet (finished days)")
    record.add_argument("--duration", type=argument(number(0, 366 * 86400)), metavar="S",
                        help="stop after S seconds (default: Ctrl-C)")
    record.add_argument("--count", type=argument(integer(1)), metavar="N", help="stop after N ticks")
    record.add_argument("--quiet", action="store_true", help="no running ticks/s line")
    return record


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    require(parser, "pyarrow", "recordings", "record")
    from ...errors import FrontAddressError
    from ...fronts import registry
    from ...recording import RecordingError

    try:
        registry.validate_front(args.front)
    except FrontAddressError as exc:
        parser.exit(2, f"ctpshim record: {exc}\n")
    from ..record import record

    try:
        return record(args.front, args.instruments, args.output, args.duration, args.count, args.quiet)
    except RecordingError as exc:
        print(f"ctpshim record: {exc}", file=sys.stderr)
        return 1
