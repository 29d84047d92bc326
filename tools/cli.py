"""``ctpshim``: run CTP programs on other sources, and inspect what ctpshim offers.

    ctpshim run [--front URL | --own-fronts] program.py [args...]
    ctpshim run [--front URL] -m package.module [args...]
    ctpshim schemes

Exit status: the program's own for ``run``; 2 for usage errors (a bad front address included).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

DEFAULT_FRONT = "sim://?hours=always"


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
                        help="keep the fronts the program registers itself (they must be ctpshim schemes)")
    run.add_argument("-m", dest="module", action="store_true", help="PROGRAM is a module name, as with python -m")
    run.add_argument("program", help="the program (a .py file, or a module name with -m)")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the program")
    commands.add_parser("schemes", help="list the front schemes and their settings")
    return parser


def _schemes() -> int:
    from ctpshim import registry

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
    if args.command != "run":
        parser.print_help()
        return 2
    from ctpshim import registry
    from ctpshim.api import FRONT_ENV
    from ctpshim.errors import FrontAddressError

    if args.own_fronts:
        os.environ.pop(FRONT_ENV, None)
    else:
        front = args.front or os.environ.get(FRONT_ENV) or DEFAULT_FRONT
        try:
            registry.validate_front(front)
        except FrontAddressError as exc:
            parser.exit(2, f"ctpshim run: --front: {exc}\n")
        os.environ[FRONT_ENV] = front
    if not args.module and not os.path.isfile(args.program):
        parser.exit(2, f"ctpshim run: program {args.program!r} not found (give a .py file, or -m module.name)\n")
    from ctpshim.tools.runner import run_program

    try:
        run_program(args.program, list(args.args), as_module=args.module)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
