"""``ctpshim run [--front URL | --own-fronts] [-m] PROGRAM [ARGS...]``: an unmodified openctp-ctp
program on another source.  ``ctpshim run --native [--front URL] [--serve HOST:PORT] PROGRAM``: any
program (a Python script or module run by this interpreter, or an executable) on the real CTP API
through ctpshim's native libraries (:func:`ctpshim.tools.commands.native.run_native`).

:func:`install_aliases` makes ``openctp_ctp`` (and ``openctp_ctp.mdapi`` / ``.tdapi`` /
``.thostmduserapi`` / ``.thosttraderapi``) and the bare SWIG module names ``thostmduserapi`` /
``thosttraderapi`` resolve to ctpshim's modules, so ``from openctp_ctp import mdapi`` in the
program gets ctpshim's.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
import types
from typing import Any

import ctpshim
from . import COMMANDS

def install_aliases() -> None:
    """Point openctp-ctp's module names at ctpshim in ``sys.modules``."""
    from ... import mdapi, tdapi

    package = types.ModuleType("openctp_ctp", "ctpshim standing in for openctp-ctp")
    package.__version__ = ctpshim.OPENCTP_VERSION  # type: ignore[attr-defined]
    package.__path__ = []  # type: ignore[attr-defined]  # a package, so submodule imports work
    package.mdapi = package.thostmduserapi = mdapi  # type: ignore[attr-defined]
    package.tdapi = package.thosttraderapi = tdapi  # type: ignore[attr-defined]
    package.__ctpshim__ = True  # type: ignore[attr-defined]
    sys.modules["openctp_ctp"] = package
    for name in ("openctp_ctp.mdapi", "openctp_ctp.thostmduserapi", "thostmduserapi"):
        sys.modules[name] = mdapi
    for name in ("openctp_ctp.tdapi", "openctp_ctp.thosttraderapi", "thosttraderapi"):
        sys.modules[name] = tdapi


def program_problem(target: str, as_module: bool) -> str | None:
    """Why ``target`` cannot be run (it does not exist, is not a file, no such module), or ``None``."""
    if as_module:
        import importlib.util

        try:
            spec = importlib.util.find_spec(target)
            if spec is not None and spec.submodule_search_locations is not None:  # a package: its __main__ runs
                if importlib.util.find_spec(f"{target}.__main__") is None:
                    return f"{target!r} is a package without a __main__ module; name the module to run"
        except (ImportError, ValueError):  # a missing parent package, an empty or relative name
            spec = None
        return None if spec is not None else f"module {target!r} not found (check the name, and that its package is importable)"
    if not os.path.exists(target):
        return f"program {target!r} not found (give a .py file, or -m module.name)"
    if not os.path.isfile(target):
        return f"program {target!r} is not a regular file (give a .py file, or -m module.name)"
    return None


def run_program(target: str, args: list[str], as_module: bool = False) -> None:
    """Run ``target`` (a script path, or a module name with ``as_module``) as ``__main__``."""
    install_aliases()
    if as_module:
        sys.argv = [target, *args]
        runpy.run_module(target, run_name="__main__", alter_sys=True)
        return
    path = os.path.abspath(target)
    sys.argv = [target, *args]
    sys.path.insert(0, os.path.dirname(path))
    runpy.run_path(path, run_name="__main__")


# -- the command line -----------------------------------------------------------------------------

DEFAULT_FRONT = "sim://?hours=always"
DEFAULT_SERVE = "127.0.0.1:7780"
HELP = COMMANDS["run"]


def add_parser(commands: Any) -> argparse.ArgumentParser:
    command = commands.add_parser(
        "run",
        help=HELP,
        description=(
            "Run a program written for openctp-ctp with `openctp_ctp` (and the bare thostmduserapi / "
            "thosttraderapi modules) resolved to ctpshim, and every front it registers replaced by "
            f"--front. Without --front: $CTPSHIM_FRONT if set, else {DEFAULT_FRONT} (the simulated "
            "market, open around the clock). With --native the program instead runs as it is, in a child "
            "process, on the real openctp-ctp over ctpshim's native CTP libraries, which talk to a `ctpshim "
            f"serve` of --front (the one at --serve, default {DEFAULT_SERVE}, else one started for the run)."
        ),
    )
    fronts = command.add_mutually_exclusive_group()
    fronts.add_argument("--front", metavar="URL", help="the front every API object of the program uses")
    fronts.add_argument("--own-fronts", action="store_true",
                        help="keep the fronts the program registers itself (tcp:// ones go through openctp-ctp)")
    command.add_argument("--native", action="store_true",
                         help="run PROGRAM (a .py file, a module with -m, or any executable) as a child process "
                              "on the real openctp-ctp (or any CTP program) over ctpshim's native libraries "
                              "(LD_PRELOAD), talking to a `ctpshim serve` of --front: the one answering at "
                              "--serve, else one started for the run")
    command.add_argument("--serve", metavar="HOST:PORT",
                         help=f"with --native: the server's address (default {DEFAULT_SERVE}; port 0: always "
                              "start one on a free port)")
    command.add_argument("-m", dest="module", action="store_true", help="PROGRAM is a module name, as with python -m")
    command.add_argument("program", help="the program (a .py file, or a module name with -m; with --native "
                                         "also an executable)")
    command.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the program")
    return command


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ...api.lifecycle import FRONT_ENV, front_override
    from ...errors import FrontAddressError
    from ...fronts import registry

    if args.native:
        from .native import run_native

        return run_native(args, parser, DEFAULT_FRONT, DEFAULT_SERVE)
    if args.serve is not None:
        parser.exit(2, "ctpshim run: --serve goes with --native (the server the native libraries talk to)\n")
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
    problem = program_problem(args.program, args.module)
    if problem:
        parser.exit(2, f"ctpshim run: {problem}\n")
    try:
        run_program(args.program, list(args.args), as_module=args.module)
    except KeyboardInterrupt:
        return 130
    return 0
