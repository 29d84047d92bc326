"""The ``ctpshim`` commands, one module each: what the command does, its argparse part
(``add_parser``) and its ``main``.  :mod:`ctpshim.tools.cli` assembles the parser from
:data:`COMMANDS`; :mod:`ctpshim.tools.layouts` (the CSV layouts ``convert`` reads) is a helper,
not a command.

A command module defines::

    HELP: str                                            # its line of COMMANDS
    def add_parser(commands) -> argparse.ArgumentParser  # its subparser and arguments
    def main(args, parser) -> int                        # the exit status

``ctpshim --help`` imports no command module (it needs only :data:`COMMANDS`), and ``ctpshim X``
only X's.  No command module imports an optional dependency (pyarrow, aiohttp, rich) at import
time: ``main`` checks for the extra it needs (:func:`require`).

May import: the facade, :mod:`ctpshim.fronts`, :mod:`ctpshim.errors`, :mod:`ctpshim.messages`,
:mod:`ctpshim.ctp`; :mod:`ctpshim.recording`, :mod:`ctpshim.broker` and the adapters inside functions only.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any, Callable

COMMANDS = {
    "run": "run an unmodified openctp-ctp program on another source",
    "record": "record a front's ticks (rotating at each trading day)",
    "convert": "import tick CSVs into recordings, or export recordings to CSV",
    "info": "instruments, trading days, ticks, span and gaps of a recording",
    "ping": "check fronts and feeds: round-trip times, loss, and why one does not answer",
    "quote": "a live table of quotes from any front, through the CTP API",
    "schemes": "list the front schemes and their settings, then the trader.* settings of every front",
    "account": "the simulated counter's accounts: list, show, deposit, withdraw, reset, export, report",
    "serve": "serve sources to many clients: binary ctpshim://, WebSocket (webctp, DIFF), a web page, Redis",
    "native": "ctpshim's native CTP libraries: build, install into openctp-ctp/vnpy_ctp, uninstall, status, env",
}
"""Every command and its one-line help, in the order ``ctpshim --help`` lists them."""


def argument(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type from one of ctpshim.fronts.url's parsers (one set of rules for URLs and flags)."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None

    return convert


def require(parser: argparse.ArgumentParser, module: str, extra: str, what: str) -> None:
    """Exit with a usage error naming the pip extra when an optional dependency is missing."""
    try:
        importlib.import_module(module)
    except ImportError:
        parser.exit(2, f"ctpshim {what}: needs {module}: pip install 'ctpshim[{extra}]'\n")
