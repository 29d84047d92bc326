"""``ctpshim``: run CTP programs on other sources, and inspect what ctpshim offers.

    ctpshim run [--front URL | --own-fronts] program.py [args...]
    ctpshim run [--front URL] -m package.module [args...]
    ctpshim run --native [--front URL] [--serve HOST:PORT] PROGRAM [args...]
    ctpshim record FRONT -i ID [ID ...] -o DIR [--duration S] [--count N]
    ctpshim convert IN -o OUT [--format ctp|vnpy1|tqsdk] [--skip-bad]
    ctpshim info PATH [--json]
    ctpshim ping FRONT... [-c N] [-i S] [-W S] [--stale S] [--json | --watch]
    ctpshim quote FRONT [ID...] [--once [--json]] [-W S]
    ctpshim schemes
    ctpshim account list|show|deposit|withdraw|reset|export|report [ACCOUNT ...] [--db FILE] [--book B]
    ctpshim serve [FRONT|NAME=FRONT ...] [--listen HOST:PORT] [--http HOST:PORT|off] [--config FILE]
                  [--token SECRET[:NAME]]... [--redis URL]
    ctpshim native build [--out DIR] [--force]
    ctpshim native install --into openctp|vnpy [--path DIR] | uninstall --from openctp|vnpy [--path DIR]
    ctpshim native status [--path DIR] | env [--target openctp|vnpy] [-- PROGRAM ARGS...]

Exit status: the program's own for ``run``; 1 when a recording cannot be read or written, when a
pinged front failed or is damaged, when ``quote --once`` got no tick for an instrument, or when
``account`` refused a change (a withdrawal above the quota, a reset not confirmed, the database in
use by a running program), or when ``serve`` cannot listen; 0 from ``serve`` after a clean stop
(Ctrl-C, SIGTERM); 2 for
usage errors (a bad front address or a missing path included); 3 from ``ping`` when only the TCP
connect of a real front could be checked.

This module only assembles the parser: each command is one module of :mod:`ctpshim.tools.commands`
(what it does, its arguments and its ``main``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from .commands import COMMANDS


def _parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser, with the arguments of the command ``argv`` names (the others by name and help
    only, which is all ``ctpshim --help`` shows): only that command's module is imported."""
    parser = argparse.ArgumentParser(
        prog="ctpshim",
        description="CTP (openctp-ctp) programs on other market-data sources.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((word for word in argv if not word.startswith("-")), None)
    for name, help_line in COMMANDS.items():
        if name == chosen:
            module = importlib.import_module(f"{__package__}.commands.{name}")
            module.add_parser(commands).set_defaults(command_main=module.main)
        else:
            commands.add_parser(name, help=help_line)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: Sequence[str] | None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = _parser(words)
    args = parser.parse_args(words)
    if args.command is None:
        parser.print_help()
        return 2
    status: int = args.command_main(args, parser)
    return status


if __name__ == "__main__":
    sys.exit(main())
