"""``ctpshim info PATH [--json]``: what a recording holds (the work is :mod:`ctpshim.tools.info`)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from . import require

HELP = "instruments, trading days, ticks, span and gaps of a recording"


def add_parser(commands: Any) -> argparse.ArgumentParser:
    info = commands.add_parser("info", help=HELP)
    info.add_argument("path", help="a recording file or folder")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    return info


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    require(parser, "pyarrow", "recordings", "info")
    from ...recording import RecordingError

    if not os.path.exists(args.path):
        parser.exit(2, f"ctpshim info: {args.path}: no such file or directory\n")
    from ..info import info

    try:
        return info(args.path, args.json)
    except RecordingError as exc:
        print(f"ctpshim info: {exc}", file=sys.stderr)
        return 1
