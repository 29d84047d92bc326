"""``ctpshim run [--front URL | --own-fronts] [-m] PROGRAM [ARGS...]``: an unmodified openctp-ctp program
on another source (the work is :mod:`ctpshim.tools.runner`)."""

from __future__ import annotations

import argparse
import os
from typing import Any

DEFAULT_FRONT = "sim://?hours=always"
HELP = "run an unmodified openctp-ctp program on another source"


def add_parser(commands: Any) -> argparse.ArgumentParser:
    run = commands.add_parser(
        "run",
        help=HELP,
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
    return run


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ...api.lifecycle import FRONT_ENV, front_override
    from ...errors import FrontAddressError
    from ...fronts import registry

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
    from ..runner import program_problem, run_program

    problem = program_problem(args.program, args.module)
    if problem:
        parser.exit(2, f"ctpshim run: {problem}\n")
    try:
        run_program(args.program, list(args.args), as_module=args.module)
    except KeyboardInterrupt:
        return 130
    return 0
