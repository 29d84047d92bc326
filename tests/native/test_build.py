"""The build of the native libraries: outputs, the stamp, exported symbols, the marker, errors."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ctpshim import __version__
from ctpshim.native import build as native
from ctpshim.wire.structs import LAYOUT_ID

EXPORTS = {
    "md": {"CThostFtdcMdApi::CreateFtdcMdApi(char const*, bool, bool, bool)", "CThostFtdcMdApi::GetApiVersion()"},
    "td": {"CThostFtdcTraderApi::CreateFtdcTraderApi(char const*, bool)", "CThostFtdcTraderApi::GetApiVersion()"},
}


def _exported(library: Path) -> set[str]:
    if shutil.which("nm") is None:
        pytest.skip("nm (binutils) is not installed")
    done = subprocess.run(["nm", "-D", "--defined-only", "-C", str(library)], capture_output=True, text=True,
                          timeout=60, check=True)
    return {line.split(" ", 2)[2] for line in done.stdout.splitlines() if line.count(" ") >= 2}


def _soname(library: Path) -> str:
    if shutil.which("readelf") is None:
        pytest.skip("readelf (binutils) is not installed")
    done = subprocess.run(["readelf", "-d", str(library)], capture_output=True, text=True, timeout=60, check=True)
    found = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", done.stdout)
    assert found, done.stdout
    return found.group(1)


def test_the_build_gives_both_libraries_and_the_headers(native_build: native.Built) -> None:
    assert native_build.md.name == "libthostmduserapi_se.so"
    assert native_build.td.name == "libthosttraderapi_se.so"
    assert native_build.md.parent == native_build.td.parent == native_build.directory
    for header in ("ThostFtdcMdApi.h", "ThostFtdcTraderApi.h", "ThostFtdcUserApiStruct.h",
                   "ThostFtdcUserApiDataType.h"):
        assert (native_build.include / header).is_file()
    assert _soname(native_build.md) == "libthostmduserapi_se.so"
    assert _soname(native_build.td) == "libthosttraderapi_se.so"


def test_a_second_build_with_unchanged_inputs_is_a_no_op(native_build: native.Built) -> None:
    before = (native_build.md.stat().st_mtime_ns, native_build.td.stat().st_mtime_ns)
    started = time.monotonic()
    again = native.build(native_build.directory)
    assert time.monotonic() - started < 5.0
    assert again == native_build
    assert (native_build.md.stat().st_mtime_ns, native_build.td.stat().st_mtime_ns) == before


@pytest.mark.parametrize("kind", ["md", "td"])
def test_only_the_create_and_version_functions_are_exported(native_build: native.Built, kind: str) -> None:
    assert _exported(getattr(native_build, kind)) == EXPORTS[kind]


@pytest.mark.parametrize("kind", ["md", "td"])
def test_each_library_carries_the_build_marker(native_build: native.Built, kind: str) -> None:
    data = getattr(native_build, kind).read_bytes()
    assert f"CTPSHIM_NATIVE_BUILD {__version__} {LAYOUT_ID}\0".encode() in data


def test_libstdcxx_is_linked_statically(native_build: native.Built) -> None:
    if shutil.which("readelf") is None:
        pytest.skip("readelf (binutils) is not installed")
    for library in (native_build.md, native_build.td):
        dynamic = subprocess.run(["readelf", "-d", str(library)], capture_output=True, text=True, timeout=60).stdout
        assert "libstdc++" not in dynamic and "libpython" not in dynamic, dynamic


def test_the_soname_variant_links_into_its_own_directory(native_build: native.Built) -> None:
    md, td = "libthostmduserapi_se-0123abcd.so", "libthosttraderapi_se-4567ef01.so"
    variant = native.build(native_build.directory, md_soname=md, td_soname=td)
    assert variant.directory == native_build.directory / f"soname-{md}-{td}"
    assert (variant.md.name, variant.td.name) == (md, td)
    assert (_soname(variant.md), _soname(variant.td)) == (md, td)
    assert variant.include == native_build.include
    assert _exported(variant.md) == EXPORTS["md"]


def test_a_bad_soname_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(native.NativeBuildError, match=r"soname '\.\./evil\.so'"):
        native.build(tmp_path, md_soname="../evil.so")


def test_a_missing_compiler_names_build_essential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    with pytest.raises(native.NativeBuildError, match="build-essential"):
        native.find_compiler()
    with pytest.raises(native.NativeBuildError, match="build-essential"):
        native.build(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_no_compiler_on_path_names_build_essential(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(native.NativeBuildError, match="apt-get install build-essential"):
        native.find_compiler()


def test_a_compiler_error_shows_the_failing_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "fake-cxx"
    fake.write_text("#!/bin/sh\n[ \"$1\" = --version ] && { echo fake 1.0; exit 0; }\n"
                    "echo 'session.cpp:1: error: something broke' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CXX", str(fake))
    with pytest.raises(native.NativeBuildError) as caught:
        native.build(tmp_path / "out")
    message = str(caught.value)
    assert "failed (exit 1)" in message and str(fake) in message and "-std=c++17" in message
    assert "something broke" in message


def test_the_default_directory_names_version_and_layout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CTPSHIM_NATIVE_DIR", raising=False)
    assert native.default_build_dir().name == f"{__version__}-{LAYOUT_ID}"
    monkeypatch.setenv("CTPSHIM_NATIVE_DIR", str(tmp_path))
    assert native.default_build_dir() == tmp_path


def test_the_sources_are_the_repositorys_native_directory() -> None:
    sources = native.native_sources()
    assert (sources / "src" / "session.cpp").is_file()
    assert (sources / "exports" / "md.map").is_file()


def test_an_unwritable_build_directory_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(native.NativeBuildError, match="build directory"):
        native.build(blocker / "out")


def test_cxx_may_be_a_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    gxx = shutil.which("g++") or shutil.which("c++")
    if gxx is None:
        pytest.skip("no g++ here")
    monkeypatch.setenv("CXX", f"env {gxx}")
    found = native.find_compiler()
    assert found.endswith(f" {gxx}") and found.split()[0] == shutil.which("env")
