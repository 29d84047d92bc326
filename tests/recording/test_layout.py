"""The recording package's modules import only those its docstring lists before them, and its names
stay importable from the package."""

from __future__ import annotations

import ast
from pathlib import Path

import ctpshim.recording as recording

ORDER = ["schema", "rows", "readers", "archive", "writer", "survey"]  # as the package docstring lists them


def imported_siblings(module: str) -> set[str]:
    tree = ast.parse((Path(recording.__file__).parent / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found.add((node.module or "").split(".")[0])
    return found


def test_each_module_imports_only_those_before_it():
    for position, module in enumerate(ORDER):
        assert imported_siblings(module) <= set(ORDER[:position]), module
    assert all(f":mod:`.{module}`" in (recording.__doc__ or "") for module in ORDER)


def test_every_public_name_is_importable_from_the_package():
    assert recording.__all__ and all(hasattr(recording, name) for name in recording.__all__)
    for module in ORDER:
        assert getattr(recording, module).__name__ == f"ctpshim.recording.{module}"
