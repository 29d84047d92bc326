"""The generated C++ (ctpshim.native.generate): deterministic, compiles warning-free, and its
forwarded methods and callback dispatch encode and decode exactly as ctpshim.wire.calls does.

Compiles use the system C++ compiler at -O0, each program once per session; without a compiler
the tests skip (fail when CTPSHIM_REQUIRE_NATIVE is set), as tests/native/conftest.py decides.
The generated code is checked against a stand-in wire.h with exactly DESIGN.md's signatures and
against H2's native/src/wire.h.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from ctpshim.ctp.fields import field_class, from_values, load_spec
from ctpshim.native import generate as gen
from ctpshim.wire import calls
from ctpshim.wire.structs import layout

from ..conftest import REQUIRE_OPENCTP
from ..wire.openctp_memory import sample_values
from .conftest import REQUIRE_ENV, require_compiler

REPOSITORY = Path(__file__).resolve().parents[2]
REAL_WIRE_H = REPOSITORY / "native" / "src" / "wire.h"
REQUIRE_NATIVE = bool(os.environ.get(REQUIRE_ENV))
STRICT = ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic"]
COMPILE_TIMEOUT = 240

# DESIGN.md's interface of native/src/wire.h, declarations only.
WIRE_DECLARATIONS = """\
#ifndef STAND_IN_WIRE_H
#define STAND_IN_WIRE_H
#include <cstddef>
namespace ctpshim {
class CallWriter {
 public:
  explicit CallWriter(const char *method);
  void field(const void *p, std::size_t size);
  void text(const char *s);
  void ids(char *ids[], int count);
  void i32(int v);
  void boolean(bool v);
};
class CallbackReader {
 public:
  CallbackReader(const unsigned char *data, std::size_t size);
  template <class T> T *field(T &storage);
  int i32();
  bool boolean();
  void finish();
  bool failed() const;
};
}  // namespace ctpshim
#endif
"""

# The same interface with a working body (PROTOCOL.md 5.1), for the behaviour probe; `bytes()`
# is the probe's own accessor.
WIRE_WORKING = """\
#ifndef STAND_IN_WIRE_H
#define STAND_IN_WIRE_H
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
namespace ctpshim {
class CallWriter {
 public:
  explicit CallWriter(const char *method) { put(std::strlen(method), 1); out_ += method; }
  void field(const void *p, std::size_t size) {
    put(p != nullptr, 1);
    if (p != nullptr) out_.append(static_cast<const char *>(p), size);
  }
  void text(const char *s) { put(std::strlen(s), 2); out_ += s; }
  void ids(char *ids[], int count) {
    put(static_cast<std::uint32_t>(count), 4);
    for (int i = 0; i < count; ++i) { put(std::strlen(ids[i]), 1); out_ += ids[i]; }
  }
  void i32(int v) { put(static_cast<std::uint32_t>(v), 4); }
  void boolean(bool v) { put(v, 1); }
  const std::string &bytes() const { return out_; }
 private:
  void put(std::uint64_t v, int width) { for (int i = 0; i < width; ++i) out_.push_back(char(v >> (8 * i))); }
  std::string out_;
};
class CallbackReader {
 public:
  CallbackReader(const unsigned char *data, std::size_t size) : p_(data), end_(data + size) {}
  template <class T> T *field(T &storage) {
    const unsigned char *presence = take(1);
    if (presence == nullptr || *presence > 1) { failed_ = true; return nullptr; }
    if (*presence == 0) return nullptr;
    const unsigned char *bytes = take(sizeof(T));
    if (bytes == nullptr) return nullptr;
    std::memcpy(&storage, bytes, sizeof(T));
    return &storage;
  }
  int i32() {
    const unsigned char *b = take(4);
    return b == nullptr ? 0 : int(std::uint32_t(b[0]) | std::uint32_t(b[1]) << 8 | std::uint32_t(b[2]) << 16 |
                                  std::uint32_t(b[3]) << 24);
  }
  bool boolean() {
    const unsigned char *b = take(1);
    if (b != nullptr && *b > 1) failed_ = true;
    return b != nullptr && *b == 1;
  }
  void finish() { if (p_ != end_) failed_ = true; }
  bool failed() const { return failed_; }
 private:
  const unsigned char *take(std::size_t n) {
    if (failed_ || std::size_t(end_ - p_) < n) { failed_ = true; return nullptr; }
    const unsigned char *at = p_;
    p_ += n;
    return at;
  }
  const unsigned char *p_;
  const unsigned char *end_;
  bool failed_ = false;
};
}  // namespace ctpshim
#endif
"""


# ---------------------------------------------------------------------------------------------
# shared helpers (test_layouts.py imports them)


def compiler() -> str:
    """The C++ compiler (ctpshim.native.build.find_compiler); skip without one (fail when required)."""
    return require_compiler()


def binutil(name: str) -> str:
    """``nm`` or ``readelf``; skip without it (fail when CTPSHIM_REQUIRE_NATIVE is set)."""
    found = shutil.which(name)
    if found is None:
        reason = f"no {name} (binutils): apt-get install build-essential"
        if REQUIRE_NATIVE:
            pytest.fail(f"{reason} ({REQUIRE_ENV} is set)")
        pytest.skip(reason)
    return found


def compile_cpp(args: list[str], what: str) -> None:
    """Run the compiler with ``args``; fail with its diagnostics."""
    done = subprocess.run([compiler(), *args], capture_output=True, text=True, timeout=COMPILE_TIMEOUT)
    assert done.returncode == 0, f"{what} does not compile:\n{done.stderr[-6000:]}"


def openctp_dir() -> Path:
    """The installed openctp_ctp package directory, found without importing it (its import needs
    the zh_CN.GB18030 locale); skip when absent (fail when CTPSHIM_REQUIRE_OPENCTP=1)."""
    found = importlib.util.find_spec("openctp_ctp")
    if found is None or not found.submodule_search_locations:
        reason = "openctp-ctp is not installed"
        if REQUIRE_OPENCTP:
            pytest.fail(reason + " (CTPSHIM_REQUIRE_OPENCTP=1)")
        pytest.skip(reason)
    return Path(list(found.submodule_search_locations)[0])


class Method(NamedTuple):
    """One member function as declared in a generated header."""

    name: str
    returns: str
    params: tuple[tuple[str, str], ...]  # (type, name), type as SWIG spells it
    static: bool


_DECLARATION = re.compile(r"^\s+(static |virtual )?(.+?)(\w+)\((.*)\)(?: = 0)?\s*(?:;|\{\})$")
_PARAM = re.compile(r"^(.*?)\s*(?:/\*(\w+)\*/|(\w+))(\[\])?(?:\s*=.*)?$")


def _swig_type(ctype: str) -> str:
    ctype = " ".join(ctype.replace("*", " * ").split()).replace("* ", "*")
    if ctype.startswith("const "):  # SWIG writes the const after the type
        ctype = ctype[len("const "):]
        ctype = ctype.replace(" *", " const *") if "*" in ctype else ctype + " const"
    if ctype.startswith("CThostFtdc") and ctype.endswith(" *"):
        return ctype[:-2]
    return ctype


def parse_classes(header: str) -> dict[str, list[Method]]:
    """Each class of a generated header and its member functions in declaration order."""
    classes: dict[str, list[Method]] = {}
    for match in re.finditer(r"^class (?:\w+ )?(CThostFtdc\w+) \{\n(.*?)^\};", header, re.M | re.S):
        methods: list[Method] = []
        for line in match.group(2).splitlines():
            found = _DECLARATION.match(line)
            if found is None or "~" in line:
                continue
            kind, returns, name, params = found.groups()
            parsed = []
            for param in filter(None, (part.strip() for part in params.split(","))):
                piece = _PARAM.match(param)
                assert piece is not None, param
                ctype, commented, named, array = piece.groups()
                parsed.append((_swig_type(ctype + (" []" if array else "")).replace("* []", "*[]"),
                               commented or named))
            methods.append(Method(name, _swig_type(returns), tuple(parsed), kind == "static "))
        classes[match.group(1)] = methods
    return classes


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated tree (include/, gen/) in a session tmp dir."""
    out = tmp_path_factory.mktemp("generated")
    gen.generate(out)
    return out


# ---------------------------------------------------------------------------------------------
# files and determinism


def test_generate_writes_exactly_the_design_files(generated: Path) -> None:
    written = sorted(str(path.relative_to(generated)) for path in generated.rglob("*") if path.is_file())
    assert written == sorted(gen.FILES) and len(written) == 11
    assert gen.generate(generated) == [generated / relative for relative in gen.FILES]


def test_generation_is_deterministic_and_leaves_unchanged_files_alone(tmp_path: Path, generated: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    gen.generate(first)
    gen.generate(second)
    for relative in gen.FILES:
        data = (first / relative).read_bytes()
        assert data == (second / relative).read_bytes() == (generated / relative).read_bytes(), relative
        assert data.isascii() and b"\r" not in data and data.endswith(b"\n"), relative
    target = first / "gen" / "layout_dump.cpp"
    os.utime(target, ns=(1_000_000_000, 1_000_000_000))
    gen.generate(first)
    assert target.stat().st_mtime_ns == 1_000_000_000
    target.write_text("stale")
    gen.generate(first)
    assert target.read_bytes() == (second / "gen" / "layout_dump.cpp").read_bytes()
    assert not list(first.rglob("*.tmp"))


def test_the_module_runs_as_a_program(tmp_path: Path) -> None:
    import sys

    environment = {**os.environ, "PYTHONHASHSEED": "4242"}  # another interpreter, another hash seed: same bytes
    done = subprocess.run([sys.executable, "-m", "ctpshim.native.generate", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=60, env=environment)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(tmp_path / "out" / relative) for relative in gen.FILES]
    assert {relative: (tmp_path / "out" / relative).read_bytes() for relative in gen.FILES} == gen.render()
    bad = tmp_path / "file"
    bad.write_text("")
    done = subprocess.run([sys.executable, "-m", "ctpshim.native.generate", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "ctpshim.native.generate:" in done.stderr


def test_no_sfit_text_and_a_banner(generated: Path) -> None:
    for relative in gen.FILES:
        text = (generated / relative).read_text()
        assert "Generated by ctpshim" in text.splitlines()[0], relative
        assert "@company" not in text and "上海期货" not in text


def test_the_data_types_and_constants(generated: Path) -> None:
    text = (generated / "include" / "ThostFtdcUserApiDataType.h").read_text()
    assert "typedef char TThostFtdcDateType[9];\n" in text
    assert "typedef char TThostFtdcDirectionType;\n" in text
    assert "typedef double TThostFtdcPriceType;\n" in text
    assert "typedef int TThostFtdcVolumeType;\n" in text
    assert re.search(r"^typedef short TThostFtdc\w+;$", text, re.M)
    assert "#define THOST_FTDC_D_Buy '0'\n" in text and "#define THOST_FTDC_D_Sell '1'\n" in text
    assert ("enum THOST_TE_RESUME_TYPE {\n  THOST_TERT_RESTART = 0,\n  THOST_TERT_RESUME,\n  THOST_TERT_QUICK,\n"
            "  THOST_TERT_NONE\n};") in text
    assert "#define THOST_TERT" not in text
    spec_typedefs = {typedef for members in load_spec()["fields"].values() for _m, typedef, _k, _s in members}
    declared = re.findall(r"^typedef \w+ (\w+)(?:\[\d+\])?;$", text, re.M)
    assert sorted(declared) == sorted(spec_typedefs) and len(declared) == len(set(declared))
    defined = re.findall(r"^#define (THOST_\w+) ", text, re.M)
    assert len(defined) == len(gen.constants()) - 4 == len(set(defined))
    layout_h = (generated / "gen" / "ctpshim_layout.h").read_text()
    assert '#define CTPSHIM_LAYOUT_ID "ctp6.7.11-041bb06c3a19c5e6"' in layout_h
    assert '#define CTPSHIM_API_VERSION "v6.7.11_20250617 16:22:00.10369"' in layout_h
    assert '#define CTPSHIM_CTP_VERSION "6.7.11"' in layout_h


def test_the_api_classes(generated: Path) -> None:
    md = parse_classes((generated / "include" / "ThostFtdcMdApi.h").read_text())
    td = parse_classes((generated / "include" / "ThostFtdcTraderApi.h").read_text())
    assert list(md) == ["CThostFtdcMdSpi", "CThostFtdcMdApi"]
    assert list(td) == ["CThostFtdcTraderSpi", "CThostFtdcTraderApi"]
    assert [len(md[name]) for name in md] == [13, 17] and [len(td[name]) for name in td] == [164, 135]
    api = md["CThostFtdcMdApi"]
    assert [method.static for method in api[:2]] == [True, True] and not any(method.static for method in api[2:])
    assert api[0].params == (("char const *", "pszFlowPath"), ("bool const", "bIsUsingUdp"),
                             ("bool const", "bIsMulticast"), ("bool", "bIsProductionMode"))
    subscribe = next(method for method in api if method.name == "SubscribeMarketData")
    assert subscribe.params == (("char *[]", "ppInstrumentID"), ("int", "nCount"))
    text = (generated / "include" / "ThostFtdcMdApi.h").read_text()
    assert "class CTPSHIM_CTP_EXPORT CThostFtdcMdApi {" in text
    assert "  virtual int SubscribeMarketData(char *ppInstrumentID[], int nCount) = 0;\n" in text
    assert " protected:\n  ~CThostFtdcMdApi() {}\n};" in text
    assert "  virtual void OnFrontDisconnected(int /*nReason*/) {}\n" in text
    trader = (generated / "include" / "ThostFtdcTraderApi.h").read_text()
    assert "  virtual void SubscribePrivateTopic(THOST_TE_RESUME_TYPE nResumeType) = 0;\n" in trader
    assert "  virtual void RegisterSpi(CThostFtdcTraderSpi *pSpi) = 0;\n" in trader
    assert ("  static CThostFtdcTraderApi *CreateFtdcTraderApi(const char *pszFlowPath = \"\", "
            "bool bIsProductionMode = true);\n") in trader
    assert "virtual ~" not in text + trader


def test_the_forwarded_methods(generated: Path) -> None:
    md = (generated / "gen" / "ctpshim_md_methods.inc").read_text()
    assert re.findall(r"^int (\w+)\(", md, re.M) == ["ReqUserLogin", "ReqUserLogout", "ReqQryMulticastInstrument"]
    assert ("int ReqUserLogin(CThostFtdcReqUserLoginField *pReqUserLoginField, int nRequestID) override {\n"
            '  ::ctpshim::CallWriter call("ReqUserLogin");\n'
            "  call.field(pReqUserLoginField, sizeof(CThostFtdcReqUserLoginField));\n"
            "  return forward(call, nRequestID);\n}\n") in md
    trader = re.findall(r"^int (\w+)\(", (generated / "gen" / "ctpshim_trader_methods.inc").read_text(), re.M)
    spec = [method["name"] for method in load_spec()["modules"]["tdapi"]["api"]["methods"]]
    expected = [name for name in spec if name.startswith("Req") or name in gen.TRADER_FORWARDED]
    assert trader == expected and len(expected) == 122


# ---------------------------------------------------------------------------------------------
# compiling


@pytest.fixture(scope="session")
def stand_in_wire(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding a declarations-only wire.h with DESIGN.md's signatures."""
    directory = tmp_path_factory.mktemp("stand_in_wire")
    (directory / "wire.h").write_text(WIRE_DECLARATIONS)
    return directory


def _api_user(generated: Path) -> Path:
    source = generated.parent / f"{generated.name}_api_user.cpp"
    source.write_text(
        '#include "ThostFtdcMdApi.h"\n#include "ThostFtdcTraderApi.h"\n#include "ThostFtdcMdApi.h"\n'
        '#include "ctpshim_layout.h"\n#include "ctpshim_dispatch.h"\n'
        "struct MySpi : CThostFtdcMdSpi { void OnFrontConnected() override {} };\n"
        "static_assert(sizeof(CThostFtdcDepthMarketDataField) == 584, \"tick\");\n"
        "static_assert(THOST_FTDC_D_Buy == '0' && THOST_TERT_QUICK == 2, \"constants\");\n"
        "int main() { MySpi spi; spi.OnFrontConnected(); CThostFtdcReqUserLoginField f = {}; (void)f;\n"
        "  return sizeof(CTPSHIM_LAYOUT_ID CTPSHIM_API_VERSION CTPSHIM_CTP_VERSION) > 0 ? 0 : 1; }\n"
    )
    return source


@pytest.mark.parametrize("standard", ["c++98", "c++11", "c++17"])
def test_the_headers_compile_warning_free_for_a_program(generated: Path, standard: str) -> None:
    """An existing CTP program includes the headers (any standard from C++98, twice is fine)."""
    source = generated.parent / f"{generated.name}_program.cpp"
    source.write_text('#include "ThostFtdcMdApi.h"\n#include "ThostFtdcTraderApi.h"\n#include "ThostFtdcMdApi.h"\n'
                      "struct MySpi : CThostFtdcTraderSpi { void OnFrontConnected() {} };\n"
                      "int main() { MySpi spi; spi.OnFrontConnected(); return THOST_TERT_QUICK - 2; }\n")
    compile_cpp([f"-std={standard}", "-Wall", "-Wextra", "-Werror", "-pedantic", "-fsyntax-only",
                 "-I", str(generated / "include"), str(source)], f"a {standard} program using the headers")


def _library_side(generated: Path) -> Path:
    source = generated.parent / f"{generated.name}_library_side.cpp"
    source.write_text(
        '#include "wire.h"\n#include "ctpshim_dispatch.h"\n'
        "class MdApi final : public CThostFtdcMdApi {\n public:\n"
        "  int forward(::ctpshim::CallWriter &call, int request_id);\n"
        '#include "ctpshim_md_methods.inc"\n};\n'
        "class TraderApi final : public CThostFtdcTraderApi {\n public:\n"
        "  int forward(::ctpshim::CallWriter &call, int request_id);\n"
        '#include "ctpshim_trader_methods.inc"\n};\n'
    )
    return source


WIRE_HEADERS = ["stand-in"] + (["native/src/wire.h"] if REAL_WIRE_H.exists() else [])


@pytest.mark.parametrize("wire", WIRE_HEADERS)
@pytest.mark.parametrize("unit", ["library_side", "gen/ctpshim_md_callbacks.cpp", "gen/ctpshim_trader_callbacks.cpp",
                                  "api_user"])
def test_the_generated_code_compiles_warning_free(generated: Path, stand_in_wire: Path, unit: str, wire: str) -> None:
    """-std=c++17 -Wall -Wextra -Werror -pedantic, against DESIGN.md's wire.h (and H2's when present)."""
    wire_dir = stand_in_wire if wire == "stand-in" else REAL_WIRE_H.parent
    source = {"library_side": _library_side(generated), "api_user": _api_user(generated)}.get(unit, generated / unit)
    compile_cpp([*STRICT, "-fsyntax-only", "-I", str(generated / "include"), "-I", str(generated / "gen"),
                 "-I", str(wire_dir), str(source)], f"{unit} with {wire}")


def test_the_exported_statics_are_the_symbols_openctp_imports(generated: Path) -> None:
    """A library defining the statics with -fvisibility=hidden exports exactly the four mangled
    names openctp-ctp's SWIG modules import from CTP (read from their ELF, nothing imported)."""
    package = openctp_dir()
    nm = binutil("nm")
    imported: set[str] = set()
    for module in ("_thostmduserapi.so", "_thosttraderapi.so"):
        listing = subprocess.run([nm, "-D", "--undefined-only", str(package / module)],
                                 capture_output=True, text=True, timeout=60, check=True).stdout
        imported |= {line.split()[-1] for line in listing.splitlines() if "CThostFtdc" in line}
    assert len(imported) == 4, imported
    source = generated.parent / f"{generated.name}_statics.cpp"
    source.write_text(
        '#include "ThostFtdcMdApi.h"\n#include "ThostFtdcTraderApi.h"\n'
        "CThostFtdcMdApi *CThostFtdcMdApi::CreateFtdcMdApi(const char *, const bool, const bool, bool) "
        "{ return nullptr; }\n"
        'const char *CThostFtdcMdApi::GetApiVersion() { return ""; }\n'
        "CThostFtdcTraderApi *CThostFtdcTraderApi::CreateFtdcTraderApi(const char *, bool) { return nullptr; }\n"
        'const char *CThostFtdcTraderApi::GetApiVersion() { return ""; }\n'
    )
    library = generated.parent / f"{generated.name}_statics.so"
    compile_cpp([*STRICT, "-O0", "-fPIC", "-shared", "-fvisibility=hidden", "-I", str(generated / "include"),
                 str(source), "-o", str(library)], "the statics")
    listing = subprocess.run([nm, "-D", "--defined-only", str(library)], capture_output=True, text=True,
                             timeout=60, check=True).stdout
    exported = {line.split()[-1] for line in listing.splitlines() if "CThostFtdc" in line}
    assert exported == imported


# ---------------------------------------------------------------------------------------------
# behaviour: the generated methods and dispatch against ctpshim.wire.calls


def _zero_return(returns: str) -> str:
    return f"return zero<{returns}>();"


def cpp_type(ctype: str) -> str:
    """SWIG spelling back to an unnamed C++ parameter or return type (the parser's inverse)."""
    if ctype == "char *[]":
        return "char **"
    if ctype == "char const *":
        return "const char *"
    if ctype.startswith("CThostFtdc"):
        return ctype + " *"
    return ctype


def _probe_source(generated: Path) -> str:
    """A program that calls every forwarded method and dispatches every callback from stdin,
    printing what went out and what the Spi received."""
    md = parse_classes((generated / "include" / "ThostFtdcMdApi.h").read_text())
    td = parse_classes((generated / "include" / "ThostFtdcTraderApi.h").read_text())
    forwarded = {flavour: {method["name"] for method in gen.forwarded(flavour)} for flavour in ("mdapi", "tdapi")}
    lines = [
        '#include "wire.h"', '#include "ctpshim_dispatch.h"', "#include <cstdio>", "#include <cstring>",
        "#include <iostream>", "#include <string>", "#include <vector>",
        "template <class T> T zero() { return T(); }",
        "static void hex(const void *p, std::size_t n) {",
        "  const unsigned char *b = static_cast<const unsigned char *>(p);",
        '  for (std::size_t i = 0; i < n; ++i) std::printf("%02x", b[i]); }',
        "template <class T> static void show(T *p) { if (p == nullptr) std::printf(\" null\");"
        ' else { std::printf(" "); hex(p, sizeof(T)); } }',
        'static void show(int v) { std::printf(" %d", v); }',
        'static void show(bool v) { std::printf(" b%d", v ? 1 : 0); }',
        "static std::vector<unsigned char> unhex(const std::string &s) {",
        "  std::vector<unsigned char> out;",
        "  for (std::size_t i = 0; i + 1 < s.size(); i += 2)",
        "    out.push_back((unsigned char)std::stoi(s.substr(i, 2), nullptr, 16));",
        "  return out; }",
    ]
    for api, spi, flavour in (("CThostFtdcMdApi", "CThostFtdcMdSpi", "mdapi"),
                              ("CThostFtdcTraderApi", "CThostFtdcTraderSpi", "tdapi")):
        classes = md if flavour == "mdapi" else td
        short = "md" if flavour == "mdapi" else "trader"
        lines += [f"class Probe{api} final : public {api} {{", " public:",
                  "  int forward(::ctpshim::CallWriter &call, int request_id) {",
                  '    std::printf("CALL %d ", request_id); hex(call.bytes().data(), call.bytes().size());'
                  ' std::printf("\\n"); return 0; }',
                  f'#include "ctpshim_{short}_methods.inc"']
        for method in classes[api]:
            if method.static or method.name in forwarded[flavour]:
                continue
            params = ", ".join(cpp_type(ctype) for ctype, _name in method.params)
            lines.append(f"  {cpp_type(method.returns)} {method.name}({params}) override "
                         f"{{ {_zero_return(cpp_type(method.returns))} }}")
        lines += ["};", f"class Probe{spi} final : public {spi} {{", " public:"]
        for method in classes[spi]:
            params = ", ".join(f"{cpp_type(ctype)} a{index}" for index, (ctype, _n) in enumerate(method.params))
            shows = " ".join(f"show(a{index});" for index in range(len(method.params)))
            lines.append(f'  void {method.name}({params}) override {{ std::printf("SPI {method.name}"); {shows}'
                         ' std::printf("\\n"); }')
        lines += ["};"]
    lines += [
        "int main() {",
        "  ProbeCThostFtdcMdApi md_api; ProbeCThostFtdcTraderApi td_api;",
        "  ProbeCThostFtdcMdSpi md_spi; ProbeCThostFtdcTraderSpi td_spi;",
        "  std::string kind, flavour, name, data; int request_id; int is_last;",
        "  while (std::cin >> kind >> flavour >> name >> data >> request_id >> is_last) {",
        "    std::vector<unsigned char> bytes = unhex(data == \"-\" ? std::string() : data);",
        "    if (kind == \"CB\") {",
        "      const std::size_t skip = bytes.empty() ? 0 : 1 + bytes[0];",
        "      ::ctpshim::CallbackReader in(bytes.data() + skip, bytes.size() - skip);",
        "      const bool last = is_last == 1, no_spi = is_last == 2;",
        "      bool ok = flavour == \"md\"",
        "          ? ::ctpshim::dispatch_md_callback(no_spi ? nullptr : &md_spi, name, in, request_id, last)",
        "          : ::ctpshim::dispatch_trader_callback(no_spi ? nullptr : &td_spi, name, in, request_id, last);",
        '      std::printf("DISPATCH %d\\n", ok ? 1 : 0);',
        "      continue;",
        "    }",
    ]
    for api, flavour in (("CThostFtdcMdApi", "mdapi"), ("CThostFtdcTraderApi", "tdapi")):
        target = "md_api" if flavour == "mdapi" else "td_api"
        for method in gen.forwarded(flavour):
            cls = method["params"][0][1]
            has_id = len(method["params"]) == 2
            assert [ctype for _name, ctype in method["params"][1:]] == (["int"] if has_id else []), method
            lines.append(
                f'    if (flavour == "{flavour[:2]}" && name == "{method["name"]}") {{'
                f" {cls} s; std::memset(&s, 0, sizeof s);"
                " if (!bytes.empty()) std::memcpy(&s, bytes.data(), sizeof s);"
                f" {target}.{method['name']}(bytes.empty() ? nullptr : &s{', request_id' if has_id else ''});"
                " continue; }"
            )
    lines += ['    std::printf("UNKNOWN %s\\n", name.c_str());', "  }", "  return 0;", "}", ""]
    return "\n".join(lines)


@pytest.fixture(scope="session")
def probe(generated: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The behaviour probe, compiled once (-O0) with the working stand-in wire.h."""
    directory = tmp_path_factory.mktemp("probe")
    (directory / "wire.h").write_text(WIRE_WORKING)
    source = directory / "probe.cpp"
    source.write_text(_probe_source(generated))
    program = directory / "probe"
    includes = ["-I", str(directory), "-I", str(generated / "include"), "-I", str(generated / "gen")]
    objects = []
    for unit in ("gen/ctpshim_md_callbacks.cpp", "gen/ctpshim_trader_callbacks.cpp"):
        obj = directory / (Path(unit).stem + ".o")
        compile_cpp(["-std=c++17", "-O0", "-c", *includes, str(generated / unit), "-o", str(obj)], unit)
        objects.append(str(obj))
    compile_cpp(["-std=c++17", "-O0", *includes, str(source), *objects, "-o", str(program)], "the probe")
    return program


def _run_probe(program: Path, lines: list[str]) -> list[str]:
    done = subprocess.run([str(program)], input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _sample_field(flavour: str, cls: str, salt: int) -> Any:
    return from_values(field_class(flavour, cls), sample_values(cls, flavour, salt))


def test_every_forwarded_method_sends_what_the_python_codec_sends(probe: Path) -> None:
    lines, expected = [], []
    for flavour in ("mdapi", "tdapi"):
        for index, method in enumerate(gen.forwarded(flavour)):
            cls = method["params"][0][1]
            has_id = len(method["params"]) == 2
            request_id = 100 + index if has_id else 0
            for field in (_sample_field(flavour, cls, index), None):
                args = (field, request_id) if has_id else (field,)
                data = layout(cls).pack(field).hex() if field is not None else "-"
                lines.append(f"CALL {flavour[:2]} {method['name']} {data} {request_id} 0")
                payload = calls.encode_call(method["name"], args, flavour)
                header_id = calls.call_header(method["name"], args, flavour)
                expected.append(f"CALL {header_id} {payload.hex()}")
    assert len(lines) == 2 * 125
    assert _run_probe(probe, lines) == expected


def _callback_args(flavour: str, method: dict[str, Any], salt: int) -> tuple[Any, ...]:
    sig = calls.signatures(flavour, "spi")[method["name"]]
    args: list[Any] = []
    for position, (encoding, cls) in enumerate(zip(sig.encodings, sig.classes)):
        if encoding == calls.STRUCT:
            args.append(None if (salt + position) % 3 == 2 else _sample_field(flavour, cls, salt + position))
        elif encoding == calls.INT:
            args.append(0x1001 + salt)
        elif encoding == calls.BOOL:
            args.append(salt % 2 == 0)
        elif encoding == calls.REQUEST_ID:
            args.append(salt + 1)
        elif encoding == calls.IS_LAST:
            args.append(salt % 2 == 1)
        else:
            raise AssertionError(f"{method['name']}: {encoding}")
    return tuple(args)


def _shown(flavour: str, method: dict[str, Any], args: tuple[Any, ...]) -> str:
    parts = [f"SPI {method['name']}"]
    for (_name, ctype), value in zip(method["params"], args):
        if ctype.startswith("CThostFtdc"):
            parts.append("null" if value is None else layout(ctype).pack(value).hex())
        elif ctype == "bool":
            parts.append(f"b{int(value)}")
        else:
            parts.append(str(value))
    return " ".join(parts)


def test_every_callback_reaches_the_spi_as_the_python_codec_encodes_it(probe: Path) -> None:
    lines, expected = [], []
    for flavour in ("mdapi", "tdapi"):
        for salt, method in enumerate(load_spec()["modules"][flavour]["spi"]["methods"]):
            args = _callback_args(flavour, method, salt)
            payload, request_id, flags = calls.callback_parts(method["name"], args, flavour)
            is_last = int(bool(flags & 2))
            lines.append(f"CB {flavour[:2]} {method['name']} {payload.hex() or '-'} {request_id} {is_last}")
            expected += [_shown(flavour, method, args), "DISPATCH 1"]
    assert len(lines) == 13 + 164
    assert _run_probe(probe, lines) == expected


def test_dispatch_refuses_unknown_names_and_bad_payloads(probe: Path) -> None:
    login = calls.encode_callback("OnRspUserLogin", (None, None, 1, True), "mdapi")
    disconnected = calls.encode_callback("OnFrontDisconnected", (4097,), "tdapi")
    lines = [
        f"CB md OnRspUserLogin {login.hex()} 1 1",
        f"CB md OnRspUserLogin {login.hex()}00 1 1",  # a byte left over
        f"CB md OnRspUserLogin {login[:-1].hex()} 1 1",  # truncated
        f"CB md OnRspUserLogin {login[:-2].hex()}0200 1 1",  # presence byte 2
        f"CB md OnRspUserLogin {login.hex()} 1 2",  # null spi: decoded, nobody called
        f"CB md OnRspUserLogim {login.hex()} 1 1",
        f"CB md OnFrontDisconnected {disconnected.hex()} 0 0",  # a trader callback name on md
        f"CB td OnFrontDisconnected {disconnected.hex()} 0 0",
        f"CB td OnFrontDisconnected {disconnected[:-1].hex()} 0 0",
        f"CB td OnRtnDepthMarketData {disconnected.hex()} 0 0",  # not a trader callback
        f"CB td A {disconnected.hex()} 0 0",
        f"CB td ZZZZ {disconnected.hex()} 0 0",
    ]
    assert _run_probe(probe, lines) == [
        "SPI OnRspUserLogin null null 1 b1", "DISPATCH 1", "DISPATCH 0", "DISPATCH 0", "DISPATCH 0", "DISPATCH 1",
        "DISPATCH 0", "SPI OnFrontDisconnected 4097", "DISPATCH 1", "SPI OnFrontDisconnected 4097", "DISPATCH 1",
        "DISPATCH 0", "DISPATCH 0", "DISPATCH 0", "DISPATCH 0",
    ]


# ---------------------------------------------------------------------------------------------
# bad specs fail loudly


def test_a_typedef_naming_two_c_types_is_refused() -> None:
    spec = copy.deepcopy(load_spec())
    spec["fields"]["CThostFtdcRspInfoField"][1] = ["ErrorMsg", "TThostFtdcDateType", "str", 81]
    with pytest.raises(gen.GenerateError, match=r"TThostFtdcDateType is char\[9\] for .* but char\[81\] for "
                                                r"CThostFtdcRspInfoField\.ErrorMsg"):
        gen.typedefs(spec)
    spec["fields"]["CThostFtdcRspInfoField"][1] = ["ErrorMsg", "TThostFtdcDateType", "long", 81]
    with pytest.raises(gen.GenerateError, match="kind 'long'"):
        gen.typedefs(spec)
    assert gen.typedefs()["TThostFtdcDateType"] == gen.Typedef("TThostFtdcDateType", "char", "[9]")


def test_bad_constants_and_types_are_refused() -> None:
    spec = copy.deepcopy(load_spec())
    spec["modules"]["tdapi"]["constants"]["THOST_FTDC_D_Buy"] = "9"
    with pytest.raises(gen.GenerateError, match="THOST_FTDC_D_Buy is '0' in one module and '9'"):
        gen.constants(spec)
    with pytest.raises(gen.GenerateError, match="not one printable ASCII"):
        gen._c_char("\n")
    with pytest.raises(gen.GenerateError, match="expected a char, a string or a number"):
        gen._constant_text("THOST_X", None)
    assert gen._constant_text("THOST_X", "ab\"c") == '"ab\\"c"' and gen._constant_text("THOST_X", 3) == "3"
    assert gen._c_char("'") == "'\\''"
    with pytest.raises(gen.GenerateError, match=r"CThostFtdcMdApi::X: parameter p has type 'long \*'"):
        gen._param("p", "long *", "CThostFtdcMdApi::X")
