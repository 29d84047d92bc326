"""The ``ctpshim`` commands, one module each: what the command does, its argparse part
(``add_parser``) and its ``main``.  :mod:`ctpshim.tools.cli` assembles the parser from
:data:`COMMANDS`; :mod:`ctpshim.tools.layouts` (the CSV layouts ``convert`` reads) is a helper,
not a command.

A command module defines::

    HELP: str                                            # the one-line help in `ctpshim --help`
    def add_parser(commands) -> argparse.ArgumentParser  # its subparser and arguments
    def main(args, parser) -> int                        # the exit status

Building the parser imports every command module, so none imports an optional dependency
(pyarrow, aiohttp, rich) or an adapter at import time: ``ctpshim ping`` works without the
recordings extra, and ``main`` checks for the extra it needs (:func:`require`).

May import: the facade, :mod:`ctpshim.fronts`, :mod:`ctpshim.errors`, :mod:`ctpshim.messages`,
:mod:`ctpshim.ctp`; :mod:`ctpshim.recording` and the adapters inside functions only.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any, Callable

COMMANDS = ("run", "record", "convert", "info", "ping", "quote", "schemes")


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
