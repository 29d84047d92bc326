"""The generated ABI equals openctp-ctp 6.7.11's: struct layouts, class method order, Spi vtables.

* Layouts: gen/layout_dump.cpp, compiled once (-O0) from the generated headers, prints sizeof,
  alignof and every member offset of the 502 structs; they are compared with ctpshim.wire.structs
  and with openctp-ctp's compiled structs (values written through its SWIG objects, C memory read
  back, as tests/wire/test_structs.py probes it).
* Method order: the generated classes against the class bodies in the installed openctp-ctp's SWIG
  modules (their source text, not our spec, so a spec that drifts from the package fails).
* Spi vtables: the vtable compiled from the generated Spi classes against the one inside
  openctp-ctp's own extension modules (slot by slot, mangled names, read from the ELF files).
* Api vtables: the official libraries bundled with openctp-ctp (their symbol tables only): the
  abstract Api's slot count, and their implementation class's slots against a class of the same
  name derived from the generated Api (mangled names and parameter types, slot by slot).

Tests needing openctp-ctp skip without it (fail when CTPSHIM_REQUIRE_OPENCTP=1); importing it
needs the zh_CN.GB18030 locale, so only the memory probe imports it (through the ``openctp``
fixture, which checks that in a child first); the text and ELF checks only read its files.
"""

from __future__ import annotations

import ctypes
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ctpshim.ctp.fields import load_spec
from ctpshim.wire.structs import layout

from ..wire.openctp_memory import openctp_memory, sample_values
from . import test_generate
from .test_generate import Method, binutil, compile_cpp, cpp_type, openctp_dir, parse_classes

CLASSES = list(load_spec()["fields"])
SCALARS = {"char": None, "short": "<h", "int": "<i", "double": "<d"}
HEADERS = {"thostmduserapi": "ThostFtdcMdApi.h", "thosttraderapi": "ThostFtdcTraderApi.h"}
EXTENSIONS = {"thostmduserapi": "_thostmduserapi.so", "thosttraderapi": "_thosttraderapi.so"}
SPIS = {"thostmduserapi": "CThostFtdcMdSpi", "thosttraderapi": "CThostFtdcTraderSpi"}
generated = test_generate.generated  # the session fixture: the generated tree


@pytest.fixture(scope="session")
def dumped(generated: Path) -> dict[str, Any]:
    """The output of the compiled gen/layout_dump.cpp."""
    program = generated.parent / f"{generated.name}_layout_dump"
    compile_cpp(["-std=c++17", "-O0", "-Wall", "-Wextra", "-Werror", "-I", str(generated / "include"),
                 str(generated / "gen" / "layout_dump.cpp"), "-o", str(program)], "gen/layout_dump.cpp")
    done = subprocess.run([str(program)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _misses(found: list[str], limit: int = 25) -> str:
    return f"{len(found)} differences:\n" + "\n".join(found[:limit])


# ---------------------------------------------------------------------------------------------
# struct layouts


def test_the_compiled_layouts_are_ctpshim_wire_structs_layouts(dumped: dict[str, Any]) -> None:
    assert list(dumped) == CLASSES and len(CLASSES) == 502
    differences = []
    members = 0
    for name in CLASSES:
        ours, theirs = dumped[name], layout(name)
        if (ours["sizeof"], ours["alignof"]) != (theirs.size, theirs.align):
            differences.append(f"{name}: compiled sizeof/alignof {ours['sizeof']}/{ours['alignof']}, "
                               f"ctpshim.wire.structs {theirs.size}/{theirs.align}")
        if list(ours["offsets"]) != list(theirs.members):
            differences.append(f"{name}: compiled members {list(ours['offsets'])} != {list(theirs.members)}")
        for member, offset in zip(theirs.members, theirs.offsets):
            members += 1
            if ours["offsets"].get(member) != offset:
                differences.append(f"{name}.{member}: compiled offset {ours['offsets'].get(member)}, "
                                   f"ctpshim.wire.structs {offset}")
    assert not differences, _misses(differences)
    assert members == 5463
    assert dumped["CThostFtdcDepthMarketDataField"]["sizeof"] == 584


def _member_bytes(kind: str, size: int, value: Any) -> bytes:
    """What a member holds after openctp's setter stored ``value`` into a zeroed struct."""
    if kind == "str":
        raw = value if isinstance(value, bytes) else value.encode("gb18030")
        return raw.ljust(size, b"\x00")
    if kind == "char":
        return value.encode("latin-1")
    return struct.pack(SCALARS[kind], value)


def _usable_size() -> Any:
    try:
        usable = ctypes.CDLL("libc.so.6").malloc_usable_size
    except (OSError, AttributeError):
        pytest.skip("not glibc: no malloc_usable_size")
    usable.restype, usable.argtypes = ctypes.c_size_t, [ctypes.c_void_p]
    return usable


def test_the_compiled_layouts_are_openctp_ctp_s_c_structs(dumped: dict[str, Any], openctp: Any) -> None:
    """Every member of all 502 structs: a distinct value written through openctp's SWIG object is
    found in its C memory at the compiled offset; sizeof agrees with the block its C++ ``new`` gets
    (glibc's usable size, 16-byte granularity), and alignof with the widest member found."""
    from openctp_ctp import thostmduserapi as real

    usable = _usable_size()
    spec = load_spec()["fields"]
    differences = []
    checked = 0
    for name in CLASSES:
        compiled = dumped[name]
        values = sample_values(name, "mdapi")
        memory = openctp_memory(real, name, values, compiled["sizeof"])
        widest = 1
        for (member, _typedef, kind, size), value in zip(spec[name], values):
            expected = _member_bytes(kind, size, value)
            offset = compiled["offsets"][member]
            if memory[offset:offset + len(expected)] != expected:
                differences.append(f"{name}.{member}: openctp's memory at compiled offset {offset} is "
                                   f"{memory[offset:offset + len(expected)].hex()}, expected {expected.hex()}")
            widest = max(widest, 1 if kind in ("str", "char") else len(expected))
            checked += 1
        expected_block = max(32, (compiled["sizeof"] + 8 + 15) & ~15) - 8
        block = _smallest_block(real, name, usable, expected_block)
        if block != expected_block:
            differences.append(f"{name}: compiled sizeof {compiled['sizeof']} but openctp's new gets a {block}-byte "
                               "block")
        if compiled["alignof"] != widest:
            differences.append(f"{name}: compiled alignof {compiled['alignof']}, widest member {widest}")
    assert not differences, _misses(differences)
    assert checked == 5463



def _smallest_block(real: Any, name: str, usable: Any, expected: int, most: int = 200) -> int:
    """The smallest usable size glibc gives openctp's ``new`` of ``name`` over up to ``most`` live
    objects: malloc may hand a bigger free chunk to one request (a small-bin chunk too small to
    split), never a smaller one, so the smallest is the struct's size class."""
    kept = []
    smallest = None
    for _ in range(most):
        kept.append(getattr(real, name)())
        size = usable(int(kept[-1].this))
        smallest = size if smallest is None else min(smallest, size)
        if smallest <= expected:
            break
    assert smallest is not None
    return smallest

# ---------------------------------------------------------------------------------------------
# method order: the SWIG modules' source text


def swig_classes(source: str) -> dict[str, list[Method]]:
    """The API and Spi classes of a SWIG module's source (statics' parameters are ``*args``)."""
    classes: dict[str, list[Method]] = {}
    for match in re.finditer(r"^class (CThostFtdc(?:Md|Trader)(?:Api|Spi))\(object\):\n(.*?)(?=^\S)", source,
                             re.M | re.S):
        methods = []
        static = False
        for line in match.group(2).splitlines():
            if line == "    @staticmethod":
                static = True
                continue
            found = re.match(r'^    def (\w+)\((.*)\)(?: -> "(.*)")?:$', line)
            if found is None:
                continue
            name, params, returns = found.groups()
            if not name.startswith("__"):
                parsed = tuple((ctype, param) for param, ctype in re.findall(r'(\w+): "([^"]*)"', params))
                methods.append(Method(name, returns or "", parsed, static))
            static = False
        classes[match.group(1)] = methods
    return classes


def method_differences(ours: dict[str, list[Method]], theirs: dict[str, list[Method]]) -> list[str]:
    """Every difference in class names, method order, parameters and returns (statics: name only)."""
    found = []
    if list(ours) != list(theirs) and sorted(ours) != sorted(theirs):
        found.append(f"classes {sorted(ours)} != openctp's {sorted(theirs)}")
    for cls in theirs:
        mine, real = ours.get(cls, []), theirs[cls]
        if [method.name for method in mine] != [method.name for method in real]:
            for slot, (a, b) in enumerate(zip(mine, real)):
                if a.name != b.name:
                    found.append(f"{cls} position {slot}: generated {a.name}, openctp {b.name}")
            if len(mine) != len(real):
                found.append(f"{cls}: generated {len(mine)} methods, openctp {len(real)}")
            continue
        for a, b in zip(mine, real):
            if a.static != b.static:
                found.append(f"{cls}::{a.name}: static {a.static} here, {b.static} in openctp")
            elif not a.static and (a.params, a.returns) != (b.params, b.returns):
                found.append(f"{cls}::{a.name}: generated ({a.params}) -> {a.returns}, "
                             f"openctp ({b.params}) -> {b.returns}")
    return found


@pytest.fixture(scope="module")
def swig_sources() -> dict[str, str]:
    package = openctp_dir()
    return {module: (package / f"{module}.py").read_text(encoding="utf-8") for module in HEADERS}


@pytest.mark.parametrize("module", list(HEADERS))
def test_the_classes_declare_openctp_ctp_s_methods_in_its_order(generated: Path, swig_sources: dict[str, str],
                                                                module: str) -> None:
    ours = parse_classes((generated / "include" / HEADERS[module]).read_text())
    theirs = swig_classes(swig_sources[module])
    assert sorted(theirs) == sorted(ours) and len(theirs) == 2
    counts = {cls: len(methods) for cls, methods in theirs.items()}
    assert counts in ({"CThostFtdcMdSpi": 13, "CThostFtdcMdApi": 17},
                      {"CThostFtdcTraderSpi": 164, "CThostFtdcTraderApi": 135})
    differences = method_differences(ours, theirs)
    assert not differences, _misses(differences)


def _swap_lines(text: str, first: str, second: str) -> str:
    lines = text.split("\n")
    a = next(i for i, line in enumerate(lines) if f" {first}(" in line)
    b = next(i for i, line in enumerate(lines) if f" {second}(" in line)
    lines[a], lines[b] = lines[b], lines[a]
    return "\n".join(lines)


@pytest.mark.parametrize("module, first, second", [
    ("thostmduserapi", "SubscribeMarketData", "UnSubscribeMarketData"),
    ("thosttraderapi", "OnRspOrderInsert", "OnRspParkedOrderInsert"),
    ("thosttraderapi", "ReqQryInstrument", "ReqQryDepthMarketData"),
])
def test_a_swapped_pair_of_methods_is_detected(generated: Path, swig_sources: dict[str, str], module: str,
                                               first: str, second: str) -> None:
    """The check can fail: swapping two declarations (the silent wrong-vtable case) is reported."""
    header = (generated / "include" / HEADERS[module]).read_text()
    differences = method_differences(parse_classes(_swap_lines(header, first, second)),
                                     swig_classes(swig_sources[module]))
    assert len(differences) == 2, differences
    assert all(first in line and second in line for line in differences)


def test_a_changed_parameter_is_detected(generated: Path, swig_sources: dict[str, str]) -> None:
    header = (generated / "include" / "ThostFtdcMdApi.h").read_text()
    changed = header.replace("OnRtnDepthMarketData(CThostFtdcDepthMarketDataField *", "OnRtnDepthMarketData("
                             "CThostFtdcMarketDataField *")
    assert changed != header
    differences = method_differences(parse_classes(changed), swig_classes(swig_sources["thostmduserapi"]))
    assert len(differences) == 1 and "OnRtnDepthMarketData" in differences[0]


def _swig_struct_members(source: str) -> dict[str, list[tuple[str, str]]]:
    found = {}
    for match in re.finditer(r"^class (CThostFtdc\w+Field)\(object\):\n(.*?)(?=^\S)", source, re.M | re.S):
        found[match.group(1)] = re.findall(r'^    (\w+): "(\w+)" = property\(', match.group(2), re.M)
    return found


@pytest.mark.parametrize("module", list(HEADERS))
def test_the_structs_declare_openctp_ctp_s_members_and_typedefs(generated: Path,
                                                                swig_sources: dict[str, str], module: str) -> None:
    header = (generated / "include" / "ThostFtdcUserApiStruct.h").read_text()
    ours = {match.group(1): re.findall(r"^  (\w+) (\w+);$", match.group(2), re.M)
            for match in re.finditer(r"^struct (\w+) \{\n(.*?)^\};", header, re.M | re.S)}
    theirs = _swig_struct_members(swig_sources[module])
    assert sorted(ours) == sorted(theirs) and len(ours) == 502
    differences = [f"{name}: generated {[(m, t) for t, m in ours[name]]}, openctp {theirs[name]}"
                   for name in theirs if [(m, t) for t, m in ours[name]] != theirs[name]]
    assert not differences, _misses(differences, 5)


# ---------------------------------------------------------------------------------------------
# Spi vtables: compiled slots against openctp-ctp's extension modules


def _elf_tools() -> tuple[str, str]:
    return binutil("nm"), binutil("readelf")


def vtable_slots(library: Path, cls: str, count: int | None = None) -> list[str]:
    """The mangled function names in the virtual-function slots of ``cls``'s vtable in
    ``library`` (a shared object exporting it), in slot order: all of them, or the first ``count``
    (the primary base's part of a derived class's vtable)."""
    nm, readelf = _elf_tools()
    symbol = f"_ZTV{len(cls)}{cls}"
    listing = subprocess.run([nm, "-D", "-S", "--defined-only", str(library)], capture_output=True, text=True,
                             timeout=60, check=True).stdout
    entry = next((line.split() for line in listing.splitlines() if line.endswith(f" {symbol}")), None)
    if entry is None:
        raise LookupError(f"{library.name} exports no {symbol}")
    start, size = int(entry[0], 16), int(entry[1], 16)
    wanted = (size - 16) // 8 if count is None else count
    functions = {int(parts[0], 16): parts[-1] for parts in map(str.split, listing.splitlines())
                 if len(parts) == 4 and parts[2] in ("T", "W", "t", "w")}
    relocations = subprocess.run([readelf, "-rW", str(library)], capture_output=True, text=True, timeout=60,
                                 check=True).stdout
    slots: dict[int, str] = {}
    for line in relocations.splitlines():
        parts = line.split()
        if len(parts) < 4 or not re.fullmatch(r"[0-9a-f]+", parts[0]):
            continue
        offset = int(parts[0], 16)
        if not start + 16 <= offset < start + 16 + 8 * wanted:  # after offset-to-top and the typeinfo pointer
            continue
        if parts[2] == "R_X86_64_64" and len(parts) >= 5:
            slots[offset] = parts[4].split("@")[0]
        elif parts[2] == "R_X86_64_RELATIVE":  # a symbolically bound library: the addend is the function
            slots[offset] = functions.get(int(parts[3], 16), f"<unnamed {parts[3]}>")
    assert len(slots) == wanted, f"{symbol} in {library.name}: {len(slots)} named slots of {wanted}"
    return [slots[offset] for offset in sorted(slots)]


@pytest.fixture(scope="session")
def spi_library(generated: Path) -> Path:
    """A shared object holding the vtables of the generated Spi classes (-O0)."""
    source = generated.parent / f"{generated.name}_spis.cpp"
    source.write_text('#include "ThostFtdcMdApi.h"\n#include "ThostFtdcTraderApi.h"\n'
                      "CThostFtdcMdSpi *ctpshim_md_spi() { return new CThostFtdcMdSpi(); }\n"
                      "CThostFtdcTraderSpi *ctpshim_trader_spi() { return new CThostFtdcTraderSpi(); }\n")
    library = generated.parent / f"{generated.name}_spis.so"
    compile_cpp(["-std=c++17", "-O0", "-fPIC", "-shared", "-I", str(generated / "include"), str(source),
                 "-o", str(library)], "the Spi classes")
    return library


@pytest.mark.parametrize("module", list(HEADERS))
def test_the_spi_vtables_are_openctp_ctp_s_slot_for_slot(spi_library: Path, module: str) -> None:
    """openctp's SWIG directors override CThostFtdc*Spi's slots as its headers laid them out; our
    library calls those slots by our header: each slot must hold the same function."""
    _elf_tools()
    try:
        theirs = vtable_slots(openctp_dir() / EXTENSIONS[module], SPIS[module])
    except LookupError as exc:
        pytest.fail(f"openctp-ctp's extension module does not hold the Spi vtable: {exc}")
    ours = vtable_slots(spi_library, SPIS[module])
    assert len(theirs) in (13, 164)
    differences = [f"{SPIS[module]} slot {slot}: generated {a}, openctp {b}"
                   for slot, (a, b) in enumerate(zip(ours, theirs)) if a != b]
    if len(ours) != len(theirs):
        differences.append(f"{SPIS[module]}: generated {len(ours)} slots, openctp {len(theirs)}")
    assert not differences, _misses(differences)


def test_a_swapped_pair_of_spi_slots_is_detected(generated: Path, spi_library: Path, tmp_path: Path) -> None:
    """The vtable check can fail: a header with two callbacks swapped compiles, and its slots differ
    from the generated ones at exactly those two places."""
    _elf_tools()
    include = tmp_path / "include"
    shutil.copytree(generated / "include", include)
    header = include / "ThostFtdcMdApi.h"
    header.write_text(_swap_lines(header.read_text(), "OnRspSubMarketData", "OnRspUnSubMarketData"))
    source = tmp_path / "spi.cpp"
    source.write_text('#include "ThostFtdcMdApi.h"\nCThostFtdcMdSpi *make() { return new CThostFtdcMdSpi(); }\n')
    library = tmp_path / "spi.so"
    compile_cpp(["-std=c++17", "-O0", "-fPIC", "-shared", "-I", str(include), str(source), "-o", str(library)],
                "the swapped Spi")
    swapped, ours = vtable_slots(library, "CThostFtdcMdSpi"), vtable_slots(spi_library, "CThostFtdcMdSpi")
    assert [slot for slot, (a, b) in enumerate(zip(swapped, ours)) if a != b] == [7, 8]


# The official libraries' implementation classes (their vtables start with the Api's slots) and
# openctp-ctp's file names for the libraries.
IMPLEMENTATIONS = {"thostmduserapi": ("CThostFtdcMdApi", "CFtdcMdApiImpl", "libthostmduserapi_se-*.so"),
                   "thosttraderapi": ("CThostFtdcTraderApi", "CFtdcTraderApiImpl", "libthosttraderapi_se-*.so")}


def _implementation_source(include: Path, header: str, api: str, implementation: str) -> str:
    """A class of that name overriding every virtual of ``api`` (the header's declarations)."""
    lines = [f'#include "{header}"', "template <class T> T zero() { return T(); }",
             f"class {implementation} final : public {api} {{", " public:"]
    for method in parse_classes((include / header).read_text())[api]:
        if method.static:
            continue
        params = ", ".join(cpp_type(ctype) for ctype, _name in method.params)
        returns = cpp_type(method.returns)
        lines.append(f"  {returns} {method.name}({params}) override {{ return zero<{returns}>(); }}")
    lines += ["};", f"{api} *make_{implementation}() {{ return new {implementation}(); }}", ""]
    return "\n".join(lines)


@pytest.mark.parametrize("module", list(HEADERS))
def test_the_api_vtables_are_the_official_libraries_slot_for_slot(generated: Path, tmp_path: Path,
                                                                  module: str) -> None:
    """The official library bundled with openctp-ctp: its abstract Api vtable has as many slots as
    ours, and its implementation class's first slots are, mangled, the functions a class of the
    same name derived from our header puts there (names and parameter types, slot by slot)."""
    _elf_tools()
    api, implementation, pattern = IMPLEMENTATIONS[module]
    libraries = sorted((openctp_dir().parent / "openctp_ctp.libs").glob(pattern))
    if not libraries:
        pytest.fail(f"openctp-ctp has no {pattern} in openctp_ctp.libs")
    try:
        abstract = vtable_slots(libraries[0], api)
        theirs = vtable_slots(libraries[0], implementation, len(abstract))
    except LookupError as exc:  # e.g. ctpshim's own build installed into this openctp-ctp
        pytest.skip(f"{libraries[0].name} is not the official CTP library: {exc}")
    assert set(abstract) == {"__cxa_pure_virtual"}
    source = tmp_path / "implementation.cpp"
    source.write_text(_implementation_source(generated / "include", HEADERS[module], api, implementation))
    library = tmp_path / "implementation.so"
    compile_cpp(["-std=c++17", "-O0", "-fPIC", "-shared", "-I", str(generated / "include"), str(source),
                 "-o", str(library)], f"a {implementation} on the generated {api}")
    ours = vtable_slots(library, implementation)
    assert len(ours) == len(abstract) in (15, 133)
    differences = [f"{api} slot {slot}: generated {a}, official {b}"
                   for slot, (a, b) in enumerate(zip(ours, theirs)) if a != b]
    assert not differences, _misses(differences)
