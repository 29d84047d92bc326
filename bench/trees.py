"""Run a benchmark against another checkout of ctpshim in the same interpreter session.

    python bench/bench_sim.py --tree /tmp/before     # the code at another commit
    python bench/bench_sim.py                        # the installed (editable) code

Comparing old and new code means alternating runs of the two on the same machine; a second
checkout (``git worktree add /tmp/before <commit>``) has the same ``shim/``, ``adapters/`` and
``tools/`` folders, but pip's editable install always points at this one.  ``use_tree`` puts a
finder first on ``sys.meta_path`` that maps ``ctpshim`` to the other checkout's folders, as
pyproject's ``package-dir`` does; call it before anything imports ``ctpshim``.
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from typing import Sequence

_TOPS = {"ctpshim.adapters": "adapters", "ctpshim.tools": "tools", "ctpshim": "shim"}


class _TreeFinder(importlib.abc.MetaPathFinder):
    def __init__(self, root: Path) -> None:
        self.root = root

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        for top, folder in _TOPS.items():
            if fullname == top or fullname.startswith(top + "."):
                rest = fullname[len(top):].lstrip(".")
                base = self.root / folder
                break
        else:
            return None
        place = base.joinpath(*rest.split(".")) if rest else base
        if (place / "__init__.py").is_file():
            return importlib.util.spec_from_file_location(fullname, place / "__init__.py",
                                                          submodule_search_locations=[str(place)])
        if place.with_suffix(".py").is_file():
            return importlib.util.spec_from_file_location(fullname, place.with_suffix(".py"))
        # Not in that checkout: never fall through to the installed code and mix the two trees.
        raise ModuleNotFoundError(f"No module named {fullname!r} in {self.root}", name=fullname)


def use_tree(root: str | Path) -> None:
    """Import ``ctpshim`` from the checkout at ``root`` from now on."""
    root = Path(root).resolve()
    if not (root / "shim" / "__init__.py").is_file():
        raise SystemExit(f"--tree {root}: not a ctpshim checkout (no shim/__init__.py there)")
    if any(name == "ctpshim" or name.startswith("ctpshim.") for name in sys.modules):
        raise RuntimeError("use_tree must run before ctpshim is imported")
    sys.meta_path.insert(0, _TreeFinder(root))


def tree_option(argv: list[str] | None = None) -> None:
    """Handle a ``--tree DIR`` option before the benchmark parses (and imports) anything else."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--tree")
    known, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if known.tree:
        use_tree(known.tree)
