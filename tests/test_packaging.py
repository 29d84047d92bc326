"""What a wheel built from pyproject.toml holds: every package folder of the tree, and the data files
the code opens (the spec, the bundled recordings).  An editable install finds a folder pyproject
does not list; a wheel silently leaves it out, so a user's ``pip install ctpshim`` would break."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def _package_folders() -> dict[str, Path]:
    """Every importable package of the tree, by its dotted name, as pyproject's package-dir maps them."""
    found: dict[str, Path] = {}
    for name, folder in SETUPTOOLS["package-dir"].items():
        top = ROOT / folder
        for init in top.rglob("__init__.py"):
            relative = init.parent.relative_to(top)
            dotted = ".".join([name, *relative.parts]) if relative.parts else name
            if not any(part.startswith((".", "__pycache__")) for part in relative.parts):
                found[dotted] = init.parent
    # A data-only package (no Python, no __init__.py): a folder mapped by package-dir that carries
    # package-data, such as the native libraries' C++ sources.
    for name, folder in SETUPTOOLS["package-dir"].items():
        if name not in found and name in SETUPTOOLS.get("package-data", {}) and (ROOT / folder).is_dir():
            found[name] = ROOT / folder
    return found


def test_every_package_folder_is_listed_so_a_wheel_holds_it() -> None:
    listed = set(SETUPTOOLS["packages"])
    folders = _package_folders()
    # The mapped folders nest (adapters/ is ctpshim.adapters, not ctpshim.shim.adapters): a
    # package under another mapped top is named by that top.
    missing = sorted(name for name in folders if name not in listed)
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"
    absent = sorted(name for name in listed if name not in folders)
    assert not absent, f"listed in pyproject.toml but not a package folder: {absent}"


def test_the_package_data_patterns_match_the_files_the_code_opens() -> None:
    folders = _package_folders()
    needed = {
        "ctpshim.ctp": ["spec/openctp_ctp.json", "spec/ctp_error_codes.json", "data/rates.csv"],
        "ctpshim": ["data/SHFE_ru1901_20181009.parquet", "data/CZCE_RM705_20170320.parquet"],
        "ctpshim.native.cxx": ["src/session.cpp", "src/wire.h", "exports/md.map", "exports/td.map"],
    }
    patterns = SETUPTOOLS["package-data"]
    for package, files in needed.items():
        for relative in files:
            assert (folders[package] / relative).is_file(), relative
            assert any(Path(relative).match(pattern) for pattern in patterns.get(package, [])), (
                f"{package}: {relative} is not matched by package-data {patterns.get(package)}"
            )
