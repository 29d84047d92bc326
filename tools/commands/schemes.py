"""``ctpshim schemes``: the front schemes and their settings, from the registry."""

from __future__ import annotations

import argparse
from typing import Any
from . import COMMANDS

HELP = COMMANDS["schemes"]


def add_parser(commands: Any) -> argparse.ArgumentParser:
    return commands.add_parser("schemes", help=HELP)


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ...fronts import registry

    for scheme in registry.known_schemes():
        cls = registry.adapter_class(scheme)
        print(f"{scheme}://  {registry.description(scheme)}")
        for setting in cls.settings:
            default = "" if setting.default in (None, {}, ()) else f" (default {setting.default})"
            print(f"    {setting.name:<18} {setting.help}{default}")
    for scheme, what in registry.PLANNED.items():
        print(f"{scheme}://  {what}: not in this version")
    return 0
