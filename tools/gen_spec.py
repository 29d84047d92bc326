"""Derive ctpshim's API spec from the installed openctp-ctp.

The spec (``shim/ctp/spec/openctp_ctp.json``) holds what the facade needs to mirror openctp-ctp:
every field class with its members in order (C typedef, kind, char[N] size), the methods of the
API and Spi classes with their parameter names and annotations, and every constant's value.
Nothing is copied from SFIT's headers: no comments or documentation text, only names, types,
sizes and values, read from the installed package by introspection and by probing assignments.

Run ``python -m ctpshim.tools.gen_spec [--check]`` with openctp-ctp importable (it needs the
``zh_CN.GB18030`` locale).  ``--check`` compares instead of writing and exits 1 on drift.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import sys
from pathlib import Path
from typing import Any

SPEC_PATH = Path(__file__).resolve().parent.parent / "shim" / "ctp" / "spec" / "openctp_ctp.json"
MODULES = {"mdapi": "thostmduserapi", "tdapi": "thosttraderapi"}
API_CLASSES = {
    "mdapi": ("CThostFtdcMdApi", "CThostFtdcMdSpi"),
    "tdapi": ("CThostFtdcTraderApi", "CThostFtdcTraderSpi"),
}
_MAX_CHAR_ARRAY = 1 << 16


def _probe_member(cls: type, name: str) -> tuple[str, int]:
    """Return (kind, size) of one member by assigning probe values to fresh instances."""
    default = getattr(cls(), name)
    if isinstance(default, bytes):
        return "bytes", char_array_size(cls, name)
    if isinstance(default, float):
        return "double", 0
    if isinstance(default, int):
        try:
            setattr(cls(), name, 2**15)
        except OverflowError:
            return "short", 0
        return "int", 0
    try:
        setattr(cls(), name, 65)
    except TypeError:
        return "str", char_array_size(cls, name)
    return "char", 1


def char_array_size(cls: type, name: str) -> int:
    """N of a char[N] member: the shortest ASCII text that assignment refuses has N characters."""
    low, high = 0, _MAX_CHAR_ARRAY  # low always fits, high never does
    while high - low > 1:
        mid = (low + high) // 2
        try:
            setattr(cls(), name, "x" * mid)
            low = mid
        except TypeError:
            high = mid
    return high  # N - 1 characters fit, so the declared size is N


def _methods_from_source(path: Path, class_name: str) -> list[dict[str, Any]]:
    """Methods of one SWIG proxy class: names, positional parameters, annotations, static-ness."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            break
    else:
        raise LookupError(f"{class_name} not found in {path}")
    methods = []
    for item in node.body:
        if not isinstance(item, ast.FunctionDef) or item.name.startswith("_"):
            continue
        static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in item.decorator_list)
        args = item.args.args if static else item.args.args[1:]
        params = [[a.arg, ast.literal_eval(a.annotation) if a.annotation else None] for a in args]
        returns = ast.literal_eval(item.returns) if item.returns else None
        methods.append({"name": item.name, "static": static, "params": params, "returns": returns})
    return methods


def _field_classes(module: Any) -> dict[str, list[list[Any]]]:
    fields = {}
    for name in sorted(vars(module)):
        cls = getattr(module, name)
        if not (name.startswith("CThostFtdc") and name.endswith("Field") and isinstance(cls, type)):
            continue
        members = []
        for member, typedef in cls.__annotations__.items():
            kind, size = _probe_member(cls, member)
            members.append([member, typedef, kind, size])
        fields[name] = members
    return fields


def build_spec() -> dict[str, Any]:
    import openctp_ctp

    spec: dict[str, Any] = {
        "source": f"openctp-ctp {openctp_ctp.__version__}, read by ctpshim.tools.gen_spec",
        "package_version": openctp_ctp.__version__,
        "modules": {},
    }
    per_module_fields = {}
    for short, long in MODULES.items():
        module = importlib.import_module(f"openctp_ctp.{long}")
        api_name, spi_name = API_CLASSES[short]
        path = Path(module.__file__)
        fields = _field_classes(module)
        per_module_fields[short] = fields
        some_char = next(
            (cls, m[0]) for cls, members in fields.items() for m in members if m[2] == "char"
        )
        spec["modules"][short] = {
            "module": long,
            "api_version": getattr(module, api_name).GetApiVersion(),
            "api": {"name": api_name, "methods": _methods_from_source(path, api_name)},
            "spi": {"name": spi_name, "methods": _methods_from_source(path, spi_name)},
            "constants": {
                name: getattr(module, name)
                for name in sorted(vars(module))
                if name.startswith(("THOST_FTDC_", "THOST_TERT_"))
            },
            "char_empty": getattr(getattr(module, some_char[0])(), some_char[1]),
            "bytes_members": sorted(
                f"{cls}.{m[0]}" for cls, members in fields.items() for m in members if m[2] == "bytes"
            ),
        }
    # Both modules define the same structs; record them once, with the few 'bytes' members
    # (raw GBK text) kept as 'str' in the shared table and listed per module above.
    md, td = per_module_fields["mdapi"], per_module_fields["tdapi"]
    shared = {}
    for name in md:
        md_members = md[name]
        td_members = [[m[0], m[1], "str" if m[2] == "bytes" else m[2], m[3]] for m in td[name]]
        if md_members != td_members:
            raise AssertionError(f"{name} differs between the md and td modules")
        shared[name] = md_members
    if set(md) != set(td):
        raise AssertionError("the md and td modules define different field classes")
    spec["fields"] = shared
    return spec


def dumps(spec: dict[str, Any]) -> str:
    # One field class per line keeps the committed file reviewable in diffs.
    lines = ["{"]
    top = [k for k in spec if k != "fields"]
    for key in top:
        lines.append(f"{json.dumps(key)}: {json.dumps(spec[key], ensure_ascii=False, sort_keys=True)},")
    lines.append('"fields": {')
    items = list(spec["fields"].items())
    for i, (name, members) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        lines.append(f"{json.dumps(name)}: {json.dumps(members, ensure_ascii=False)}{comma}")
    lines.append("}}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed spec")
    parser.add_argument("-o", "--output", type=Path, default=SPEC_PATH)
    args = parser.parse_args(argv)
    text = dumps(build_spec())
    if args.check:
        committed = args.output.read_text(encoding="utf-8")
        if json.loads(committed) != json.loads(text):
            print(f"{args.output} differs from the installed openctp-ctp", file=sys.stderr)
            return 1
        print(f"{args.output} matches the installed openctp-ctp")
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
