"""``ctpshim``: run CTP programs on other sources, and inspect what ctpshim offers.

    ctpshim run [--front URL | --own-fronts] program.py [args...]
    ctpshim run [--front URL] -m package.module [args...]
    ctpshim record FRONT -i ID [ID ...] -o DIR [--duration S] [--count N]
    ctpshim convert IN -o OUT [--format ctp|vnpy1|tqsdk] [--skip-bad]
    ctpshim info PATH [--json]
    ctpshim ping FRONT... [-c N] [-i S] [-W S] [--stale S] [--json | --watch]
    ctpshim quote FRONT [ID...] [--once [--json]] [-W S]
    ctpshim schemes

Exit status: the program's own for ``run``; 1 when a recording cannot be read or written, when a
pinged front failed or is damaged, or when ``quote --once`` got no tick for an instrument; 2 for
usage errors (a bad front address or a missing path included); 3 from ``ping`` when only the TCP
connect of a real front could be checked.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any, Callable, Sequence

from ..fronts.url import integer, number

DEFAULT_FRONT = "sim://?hours=always"
MAX_PING_COUNT = 10_000  # samples per front: ping keeps every one


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ctpshim",
        description="CTP (openctp-ctp) programs on other market-data sources.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="run an unmodified openctp-ctp program on another source",
        description=(
            "Run a program written for openctp-ctp with `openctp_ctp` (and the bare thostmduserapi / "
            "thosttraderapi modules) resolved to ctpshim, and every front it registers replaced by "
            f"--front. Without --front: $CTPSHIM_FRONT if set, else {DEFAULT_FRONT} (the simulated "
            "market, open around the clock)."
        ),
    )
    fronts = run.add_mutually_exclusive_group()
    fronts.add_argument("--front", metavar="URL", help="the front every API object of the program uses")
    fronts.add_argument("--own-fronts", action="store_true",
                        help="keep the fronts the program registers itself (tcp:// ones go through openctp-ctp)")
    run.add_argument("-m", dest="module", action="store_true", help="PROGRAM is a module name, as with python -m")
    run.add_argument("program", help="the program (a .py file, or a module name with -m)")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the program")
    record = commands.add_parser("record", help="record a front's ticks (rotating at each trading day)")
    record.add_argument("front", help="the front to record, e.g. sim:// or replay://day.parquet")
    record.add_argument("-i", "--instruments", nargs="+", required=True, metavar="ID", help="instruments to record")
    record.add_argument("-o", "--output", required=True, metavar="DIR",
                        help="folder for <TradingDay>.arrows (live) and <TradingDay>.parquet (finished days)")
    record.add_argument("--duration", type=_argument(number(0, 366 * 86400)), metavar="S",
                        help="stop after S seconds (default: Ctrl-C)")
    record.add_argument("--count", type=_argument(integer(1)), metavar="N", help="stop after N ticks")
    record.add_argument("--quiet", action="store_true", help="no running ticks/s line")
    convert = commands.add_parser("convert", help="import tick CSVs into recordings, or export recordings to CSV")
    convert.add_argument("input", help="a CSV file, or a recording (.parquet/.arrows file or folder)")
    convert.add_argument("-o", "--output", required=True, help="a .parquet file, a .csv file, or a folder")
    convert.add_argument("--format", choices=["ctp", "vnpy1", "tqsdk"], help="the CSV layout (default: detected)")
    convert.add_argument("--skip-bad", action="store_true",
                         help="skip CSV rows holding a value their member cannot hold (default: stop at the first)")
    info = commands.add_parser("info", help="instruments, trading days, ticks, span and gaps of a recording")
    info.add_argument("path", help="a recording file or folder")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    ping = commands.add_parser(
        "ping", help="check fronts and feeds: round-trip times, loss, and why one does not answer",
        description="Ping fronts concurrently. tcp:// and ssl://: TCP connect times, then (with openctp-ctp) "
                    "a CTP login round trip and the API version; sina:// and tencent://: HTTP round trips, whether quotes "
                    "parse and how old the newest is; replay://: the files; sim://: trivially healthy. "
                    "Status per front: ok, FAIL, damaged (a recording with damage) or tcp-only (a real front whose "
                    "CTP login could not be checked here). Exit status 0 when every front is ok, 1 when any "
                    "failed or is damaged, 2 for usage errors, 3 when the others are ok but some are tcp-only.")
    ping.add_argument("fronts", nargs="+", metavar="FRONT", help="front addresses, e.g. tcp://host:port sina:// tencent://")
    ping.add_argument("-c", "--count", type=_argument(integer(1, MAX_PING_COUNT)), default=3, metavar="N",
                      help=f"samples per front, 1 to {MAX_PING_COUNT:,} (default 3)")
    ping.add_argument("-i", "--interval", type=_argument(number(0, 3600, low_included=True)), default=1.0, metavar="S",
                      help="seconds between samples (default 1)")
    ping.add_argument("-W", "--timeout", type=_argument(number(0, 600)), default=3.0, metavar="S",
                      help="seconds to wait for each answer (default 3)")
    ping.add_argument("--stale", type=_argument(number(0, 366 * 86400)), default=60.0, metavar="S",
                      help="a quote older than S seconds while its market is open is stale (default 60)")
    shown = ping.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="machine-readable output")
    shown.add_argument("--watch", action="store_true", help="a live table, pinging again until Ctrl-C")
    quote = commands.add_parser("quote", help="a live table of quotes from any front, through the CTP API")
    quote.add_argument("front", help="the front, e.g. sim:// replay:// sina:// tencent:// tcp://host:port")
    quote.add_argument("ids", nargs="*", metavar="ID",
                       help="instruments (default: those the source lists, e.g. a recording's)")
    quote.add_argument("--once", action="store_true", help="print one snapshot and exit (for scripts)")
    quote.add_argument("--json", action="store_true",
                       help="with --once: the snapshot as JSON, one object per instrument with CTP's member names, "
                            "absent values as null")
    quote.add_argument("-W", "--timeout", type=_argument(number(0, 600)), default=10.0, metavar="S",
                       help="with --once: seconds to wait for every instrument's first tick (default 10)")
    commands.add_parser("schemes", help="list the front schemes and their settings")
    return parser


def _argument(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type from one of ctpshim.fronts.url's parsers (one set of rules for URLs and flags)."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None

    return convert


def _data_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """record / convert / info: they need the recordings extra (pyarrow)."""
    _require(parser, "pyarrow", "recordings", args.command)
    from ..fronts import registry
    from ctpshim.errors import FrontAddressError
    from ctpshim.recording import RecordingError

    from .layouts import LayoutError

    try:
        if args.command == "record":
            try:
                registry.validate_front(args.front)
            except FrontAddressError as exc:
                parser.exit(2, f"ctpshim record: {exc}\n")
            from .record import record

            return record(args.front, args.instruments, args.output, args.duration, args.count, args.quiet)
        if args.command == "convert":
            if not os.path.exists(args.input):
                parser.exit(2, f"ctpshim convert: {args.input}: no such file or directory\n")
            from .convert import convert

            report = convert(args.input, args.output, args.format, args.skip_bad)
            rate = report["rows"] / report["seconds"] if report["seconds"] else 0
            skipped = f", {report['skipped']:,} bad rows skipped" if report["skipped"] else ""
            print(f"{args.input} ({report['layout']}) -> {args.output}: {report['rows']:,} ticks, "
                  f"trading days {', '.join(report['days'])}, {rate:,.0f} rows/s{skipped}")
            for damage in report["damage"]:
                print(f"ctpshim convert: {damage}", file=sys.stderr)
            return 1 if report["damage"] else 0
        if not os.path.exists(args.path):
            parser.exit(2, f"ctpshim info: {args.path}: no such file or directory\n")
        from .info import info

        return info(args.path, args.json)
    except (RecordingError, LayoutError) as exc:
        print(f"ctpshim {args.command}: {exc}", file=sys.stderr)
        return 1


def _live_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """ping / quote: the front addresses are checked first (a bad one is a usage error)."""
    import asyncio

    from ..fronts import registry
    from ..api.lifecycle import FRONT_ENV
    from ctpshim.errors import FrontAddressError, UpstreamError

    os.environ.pop(FRONT_ENV, None)  # the command's own FRONT is the one meant
    if args.command == "ping":
        from .ping import check_fronts, run as ping

        try:
            urls = check_fronts(args.fronts)
        except FrontAddressError as exc:
            parser.exit(2, f"ctpshim ping: {exc}\n")
        if args.watch:
            _require(parser, "rich", "cli", "ping --watch")
        return ping(urls, args.count, args.interval, args.timeout, args.stale, args.json, args.watch)
    if args.json and not args.once:
        parser.exit(2, "ctpshim quote: --json needs --once (a live table cannot be JSON)\n")
    _require(parser, "rich", "cli", "quote")
    try:
        registry.validate_front(args.front)
    except FrontAddressError as exc:
        parser.exit(2, f"ctpshim quote: {exc}\n")
    from .quote import known_instruments, run as quote

    ids = args.ids
    if not ids:
        try:
            ids = known_instruments(args.front)[:50]
            why = "does not list its instruments"
        except (UpstreamError, asyncio.TimeoutError) as exc:
            why = f"cannot list its instruments ({exc or 'timed out'})"
        if not ids:
            parser.exit(2, f"ctpshim quote: {args.front} {why}; name them, e.g. ctpshim quote {args.front} rb2605\n")
    return quote(args.front, ids, args.once, args.timeout, as_document=args.json)


def _require(parser: argparse.ArgumentParser, module: str, extra: str, what: str) -> None:
    """Exit with a usage error naming the pip extra when an optional dependency is missing."""
    try:
        importlib.import_module(module)
    except ImportError:
        parser.exit(2, f"ctpshim {what}: needs {module}: pip install 'ctpshim[{extra}]'\n")


def _schemes() -> int:
    from ..fronts import registry

    for scheme in registry.known_schemes():
        cls = registry.adapter_class(scheme)
        doc = sys.modules[cls.__module__].__doc__ or cls.__doc__ or ""
        first = doc.strip().splitlines()[0] if doc.strip() else ""
        print(f"{scheme}://  {first}")
        for setting in cls.settings:
            default = "" if setting.default in (None, {}, ()) else f" (default {setting.default})"
            print(f"    {setting.name:<18} {setting.help}{default}")
    for scheme, what in registry.PLANNED.items():
        print(f"{scheme}://  {what}: not in this version")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "schemes":
        return _schemes()
    if args.command in ("record", "convert", "info"):
        return _data_command(parser, args)
    if args.command in ("ping", "quote"):
        return _live_command(parser, args)
    if args.command != "run":
        parser.print_help()
        return 2
    from ..fronts import registry
    from ..api.lifecycle import FRONT_ENV, front_override
    from ctpshim.errors import FrontAddressError

    if args.own_fronts:
        os.environ.pop(FRONT_ENV, None)
    elif args.front:
        try:
            registry.validate_front(args.front)
        except FrontAddressError as exc:
            parser.exit(2, f"ctpshim run: --front: {exc}\n")
        os.environ[FRONT_ENV] = args.front
    else:
        try:
            os.environ[FRONT_ENV] = front_override() or DEFAULT_FRONT
        except FrontAddressError as exc:
            parser.exit(2, f"ctpshim run: {exc}\n")
    from ctpshim.tools.runner import program_problem, run_program

    problem = program_problem(args.program, args.module)
    if problem:
        parser.exit(2, f"ctpshim run: {problem}\n")

    try:
        run_program(args.program, list(args.args), as_module=args.module)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
