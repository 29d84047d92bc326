"""``ctpshim quote FRONT [ID...] [--once [--json]] [-W S]``: live quotes from any front, through the CTP
API (the work is :mod:`ctpshim.tools.quote`)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ...fronts.url import number
from . import argument, require

HELP = "a live table of quotes from any front, through the CTP API"
MAX_LISTED_INSTRUMENTS = 50  # without IDs: the first this many the source lists


def add_parser(commands: Any) -> argparse.ArgumentParser:
    quote = commands.add_parser("quote", help=HELP)
    quote.add_argument("front", help="the front, e.g. sim:// replay:// sina:// tencent:// tcp://host:port")
    quote.add_argument("ids", nargs="*", metavar="ID",
                       help="instruments (default: those the source lists, e.g. a recording's)")
    quote.add_argument("--once", action="store_true", help="print one snapshot and exit (for scripts)")
    quote.add_argument("--json", action="store_true",
                       help="with --once: the snapshot as JSON, one object per instrument with CTP's member names, "
                            "absent values as null")
    quote.add_argument("-W", "--timeout", type=argument(number(0, 600)), default=10.0, metavar="S",
                       help="with --once: seconds to wait for every instrument's first tick (default 10)")
    return quote


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import asyncio

    from ...api.lifecycle import FRONT_ENV
    from ...errors import FrontAddressError, UpstreamError
    from ...fronts import registry

    os.environ.pop(FRONT_ENV, None)  # the command's own FRONT is the one meant
    if args.json and not args.once:
        parser.exit(2, "ctpshim quote: --json needs --once (a live table cannot be JSON)\n")
    require(parser, "rich", "cli", "quote")
    try:
        registry.validate_front(args.front)
    except FrontAddressError as exc:
        parser.exit(2, f"ctpshim quote: {exc}\n")
    from ..quote import known_instruments, run

    ids = args.ids
    if not ids:
        try:
            ids = known_instruments(args.front)[:MAX_LISTED_INSTRUMENTS]
            why = "does not list its instruments"
        except (UpstreamError, asyncio.TimeoutError) as exc:
            why = f"cannot list its instruments ({exc or 'timed out'})"
        if not ids:
            parser.exit(2, f"ctpshim quote: {args.front} {why}; name them, e.g. ctpshim quote {args.front} rb2605\n")
    return run(args.front, ids, args.once, args.timeout, as_document=args.json)
