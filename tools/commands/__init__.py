"""The ``ctpshim`` commands, one module each: its argparse part (``add_parser``) and its ``main``.

Each module here is small and imports only argparse helpers at import time, so building the
parser (``ctpshim --help``) loads no facade, adapter, pyarrow or aiohttp; ``main`` imports what the
command needs.  The work itself lives in the modules of :mod:`ctpshim.tools` (``record``,
``convert``, ``info``, ``ping``, ``quote``, ``runner``).  :mod:`ctpshim.tools.cli` assembles the
parser from :data:`COMMANDS`.

A command module defines::

    HELP: str                                          # the one-line help in `ctpshim --help`
    def add_parser(commands) -> argparse.ArgumentParser  # its subparser and arguments
    def main(args, parser) -> int                      # the exit status

May import: :mod:`ctpshim.fronts.url` (argument parsers) at import time; anything in ``main``.
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
