"""``ctpshim schemes``: the front schemes and their settings, from the registry, then the
``trader.*`` settings of the simulated counter, which every ctpshim front accepts."""

from __future__ import annotations

import argparse
from typing import Any, Iterable

from . import COMMANDS

HELP = COMMANDS["schemes"]
TRADER_HEADING = "trader (every ctpshim front)"


def add_parser(commands: Any) -> argparse.ArgumentParser:
    return commands.add_parser("schemes", help=HELP)


def print_settings(settings: Iterable[Any], width: int = 18) -> None:
    """One indented line per setting (a :class:`ctpshim.fronts.url.Setting`): name, help, default."""
    for setting in settings:
        default = "" if setting.default in (None, {}, ()) else f" (default {setting.default})"
        print(f"    {setting.name:<{width}} {setting.help}{default}")


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ...broker.settings import SETTINGS
    from ...fronts import registry

    for scheme in registry.known_schemes():
        cls = registry.adapter_class(scheme)
        print(f"{scheme}://  {registry.description(scheme)}")
        print_settings(cls.settings)
    for scheme, what in registry.PLANNED.items():
        print(f"{scheme}://  {what}: not in this version")
    print(TRADER_HEADING)
    print_settings(SETTINGS, max(len(setting.name) for setting in SETTINGS))
    return 0
