"""``ctpshim ping FRONT... [-c N] [-i S] [-W S] [--stale S] [--json | --watch]``: is each front answering,
how fast, and if not, why (the work is :mod:`ctpshim.tools.ping`)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ...fronts.url import integer, number
from . import argument, require

MAX_PING_COUNT = 10_000  # samples per front: ping keeps every one
HELP = "check fronts and feeds: round-trip times, loss, and why one does not answer"


def add_parser(commands: Any) -> argparse.ArgumentParser:
    ping = commands.add_parser(
        "ping", help=HELP,
        description="Ping fronts concurrently. tcp:// and ssl://: TCP connect times, then (with openctp-ctp) "
                    "a CTP login round trip and the API version; sina:// and tencent://: HTTP round trips, whether quotes "
                    "parse and how old the newest is; replay://: the files; sim://: trivially healthy. "
                    "Status per front: ok, FAIL, damaged (a recording with damage) or tcp-only (a real front whose "
                    "CTP login could not be checked here). Exit status 0 when every front is ok, 1 when any "
                    "failed or is damaged, 2 for usage errors, 3 when the others are ok but some are tcp-only.")
    ping.add_argument("fronts", nargs="+", metavar="FRONT", help="front addresses, e.g. tcp://host:port sina:// tencent://")
    ping.add_argument("-c", "--count", type=argument(integer(1, MAX_PING_COUNT)), default=3, metavar="N",
                      help=f"samples per front, 1 to {MAX_PING_COUNT:,} (default 3)")
    ping.add_argument("-i", "--interval", type=argument(number(0, 3600, low_included=True)), default=1.0, metavar="S",
                      help="seconds between samples (default 1)")
    ping.add_argument("-W", "--timeout", type=argument(number(0, 600)), default=3.0, metavar="S",
                      help="seconds to wait for each answer (default 3)")
    ping.add_argument("--stale", type=argument(number(0, 366 * 86400)), default=60.0, metavar="S",
                      help="a quote older than S seconds while its market is open is stale (default 60)")
    shown = ping.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="machine-readable output")
    shown.add_argument("--watch", action="store_true", help="a live table, pinging again until Ctrl-C")
    return ping


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ...api.lifecycle import FRONT_ENV
    from ...errors import FrontAddressError
    from ..ping import check_fronts, run

    os.environ.pop(FRONT_ENV, None)  # the command's own FRONT is the one meant
    try:
        urls = check_fronts(args.fronts)
    except FrontAddressError as exc:
        parser.exit(2, f"ctpshim ping: {exc}\n")
    if args.watch:
        require(parser, "rich", "cli", "ping --watch")
    return run(urls, args.count, args.interval, args.timeout, args.stale, args.json, args.watch)
