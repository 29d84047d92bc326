"""``ctpshim.native.install``: swapping ctpshim's libraries into a copy of openctp-ctp (and a vnpy_ctp
``api`` tree) in tmp_path, keeping the originals, refusing what it does not know, restoring them
byte for byte; and a real openctp-ctp program from the copy loading ctpshim's library.

Most tests use stand-in "ctpshim builds" (an official library with the build marker appended), which is
all the install logic looks at; the program tests use the real build (``native_build``)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import mmap
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from ctpshim.native import install
from ctpshim.native.install import NativeInstallError, TargetNotFound
from ctpshim.wire.structs import LAYOUT_ID

WAIT = 60.0
OPENCTP_SITE = install.site_packages_of("openctp")
OPENCTP_LIBS = OPENCTP_SITE / "openctp_ctp.libs"
MD_NAME = next(OPENCTP_LIBS.glob("libthostmduserapi_se-*.so")).name
TD_NAME = next(OPENCTP_LIBS.glob("libthosttraderapi_se-*.so")).name


@dataclass(frozen=True)
class FakeBuilt:
    """What install needs of ctpshim.native.build.Built."""

    md: Path
    td: Path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fake_build(directory: Path, version: str = "0.1.0") -> FakeBuilt:
    """Official libraries with ``CTPSHIM_NATIVE_BUILD <version> <layout>`` appended: a ctpshim build to install."""
    directory.mkdir(parents=True, exist_ok=True)
    marker = f"\0CTPSHIM_NATIVE_BUILD {version} {LAYOUT_ID}\0".encode()
    md, td = directory / "libthostmduserapi_se.so", directory / "libthosttraderapi_se.so"
    md.write_bytes((OPENCTP_LIBS / MD_NAME).read_bytes() + marker)
    td.write_bytes((OPENCTP_LIBS / TD_NAME).read_bytes() + marker)
    return FakeBuilt(md, td)


def copy_openctp(site: Path, whole: bool = False) -> Path:
    """openctp_ctp.libs and the dist-info (and with ``whole`` the package) copied into ``site``."""
    site.mkdir(parents=True, exist_ok=True)
    shutil.copytree(OPENCTP_LIBS, site / "openctp_ctp.libs")
    dist = importlib.metadata.distribution("openctp-ctp")
    metadata = next(f for f in dist.files or () if f.name == "METADATA")
    info = Path(str(metadata.locate())).parent
    shutil.copytree(info, site / info.name)
    if whole:
        shutil.copytree(OPENCTP_SITE / "openctp_ctp", site / "openctp_ctp",
                        ignore=shutil.ignore_patterns("__pycache__"))
    return site


def vnpy_official_files() -> dict[str, Path]:
    """vnpy_ctp 6.7.11.4's own libraries when its test environment exists, else openctp-ctp's official
    ones under vnpy's names (both are SFIT's official builds, recognised by their sha256)."""
    from .vnpy_env import env_dir

    for api in sorted(env_dir().glob("lib/python3*/site-packages/vnpy_ctp/api")):
        files = {name: api / name for name in ("libthostmduserapi_se.so", "libthosttraderapi_se.so")}
        if all(path.exists() for path in files.values()):
            return files
    return {"libthostmduserapi_se.so": OPENCTP_LIBS / MD_NAME, "libthosttraderapi_se.so": OPENCTP_LIBS / TD_NAME}


def copy_vnpy(site: Path) -> Path:
    api = site / "vnpy_ctp" / "api"
    api.mkdir(parents=True)
    (site / "vnpy_ctp" / "__init__.py").write_text("")
    for name, source in vnpy_official_files().items():
        shutil.copy2(source, api / name)
    return site


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    return copy_openctp(tmp_path / "site")


@pytest.fixture()
def built(tmp_path: Path) -> FakeBuilt:
    return fake_build(tmp_path / "build")


# -- locating and identifying ---------------------------------------------------------------------


def test_the_target_is_found_without_importing_its_swig_modules() -> None:
    code = ("import sys; from ctpshim.native.install import locate; t = locate('openctp'); "
            "print(t.md.name, t.td.name); print(sorted(m for m in sys.modules if m.startswith('openctp')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT, check=True)
    names, modules = done.stdout.splitlines()
    assert names == f"{MD_NAME} {TD_NAME}"
    assert modules == "[]"


def test_files_are_identified_as_official_ctpshim_or_unknown(site: Path, built: FakeBuilt, tmp_path: Path) -> None:
    official = install.identify(site / "openctp_ctp.libs" / MD_NAME)
    assert official.kind == "official" and "openctp-ctp 6.7.11.0" in official.description
    ours = install.identify(built.md)
    assert (ours.kind, ours.version, ours.layout) == ("ctpshim", "0.1.0", LAYOUT_ID)
    assert "ctpshim build 0.1.0" in ours.describe()
    other = tmp_path / "other.so"
    other.write_bytes(b"\x7fELF" + b"CTPSHIM_NATIVE_BUILD" + b"\0" * 64)  # the marker's word alone is not a build
    assert install.identify(other).kind == "unknown"
    assert install.identify(tmp_path / "absent.so").kind == "missing"


@pytest.mark.parametrize("name, package", [("openctp", "pip install openctp-ctp==6.7.11.0"),
                                           ("vnpy", "pip install vnpy_ctp==6.7.11.4")])
def test_a_target_not_installed_names_its_pip_package(tmp_path: Path, name: str, package: str) -> None:
    with pytest.raises(TargetNotFound, match=package.replace(".", r"\.")):
        install.install(name, fake_build(tmp_path / "b"), tmp_path)
    with pytest.raises(TargetNotFound, match=package.replace(".", r"\.")):
        install.uninstall(name, tmp_path)


def test_an_unknown_target_name_is_refused_naming_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="'ctpbee'.*openctp, vnpy"):
        install.locate("ctpbee")


# -- install and uninstall ------------------------------------------------------------------------


def test_install_keeps_the_originals_and_uninstall_restores_them_byte_for_byte(site: Path, built: FakeBuilt) -> None:
    libs = site / "openctp_ctp.libs"
    originals = {name: (libs / name).read_bytes() for name in (MD_NAME, TD_NAME)}
    outcome = install.install("openctp", built, site)
    assert [c.action for c in outcome.changes] == ["replaced", "replaced"]
    assert (libs / MD_NAME).read_bytes() == built.md.read_bytes()
    assert (libs / TD_NAME).read_bytes() == built.td.read_bytes()
    kept = libs / ".ctpshim-originals"
    for name, data in originals.items():
        assert (kept / name).read_bytes() == data
    manifest = json.loads((kept / "manifest.json").read_text())
    assert manifest["target"] == "openctp"
    assert manifest["files"][MD_NAME]["original_sha256"] == hashlib.sha256(originals[MD_NAME]).hexdigest()
    assert manifest["files"][TD_NAME]["installed_sha256"] == sha(built.td)

    [entry] = install.status(site, ["openctp"])
    assert entry.version == "6.7.11.0"
    assert [f.kind for f in entry.files] == ["ctpshim", "ctpshim"]
    assert all("sha256 verified" in line for line in entry.originals) and len(entry.originals) == 2

    outcome = install.uninstall("openctp", site)
    assert [c.action for c in outcome.changes] == ["restored", "restored"]
    for name, data in originals.items():
        assert (libs / name).read_bytes() == data
    assert not kept.exists()
    assert sorted(p.name for p in libs.iterdir()) == sorted(originals)  # no temporary file left
    assert [f.kind for f in install.status(site, ["openctp"])[0].files] == ["official", "official"]


def test_install_never_writes_into_the_mapped_file(site: Path, built: FakeBuilt) -> None:
    library = site / "openctp_ctp.libs" / MD_NAME
    before = library.read_bytes()
    inode = library.stat().st_ino
    with open(library, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        install.install("openctp", built, site)
        assert mapped[:] == before  # a running program's mapping still sees the old file
    assert library.stat().st_ino != inode
    assert library.read_bytes() == built.md.read_bytes()


def test_the_file_mode_is_kept(site: Path, built: FakeBuilt) -> None:
    library = site / "openctp_ctp.libs" / MD_NAME
    library.chmod(0o755)
    install.install("openctp", built, site)
    assert library.stat().st_mode & 0o777 == 0o755
    install.uninstall("openctp", site)
    assert library.stat().st_mode & 0o777 == 0o755


def test_a_second_install_keeps_the_originals_once_and_replaces_only_what_differs(site: Path, built: FakeBuilt,
                                                                                   tmp_path: Path) -> None:
    libs = site / "openctp_ctp.libs"
    official = sha(libs / MD_NAME)
    install.install("openctp", built, site)
    again = install.install("openctp", built, site)
    assert [c.action for c in again.changes] == ["unchanged", "unchanged"]
    newer = fake_build(tmp_path / "newer", version="0.2.0")
    outcome = install.install("openctp", newer, site)
    assert [c.action for c in outcome.changes] == ["replaced", "replaced"]
    assert outcome.changes[0].before.version == "0.1.0" and outcome.changes[0].after.version == "0.2.0"
    kept = libs / ".ctpshim-originals"
    assert sorted(p.name for p in kept.iterdir()) == sorted([MD_NAME, TD_NAME, "manifest.json"])
    assert sha(kept / MD_NAME) == official
    manifest = json.loads((kept / "manifest.json").read_text())
    assert manifest["files"][MD_NAME]["installed_sha256"] == sha(newer.md)
    install.uninstall("openctp", site)
    assert sha(libs / MD_NAME) == official


def test_install_refuses_an_unknown_current_file_and_changes_nothing(site: Path, built: FakeBuilt) -> None:
    libs = site / "openctp_ctp.libs"
    (libs / TD_NAME).write_bytes(b"someone else's library")
    digest = sha(libs / TD_NAME)
    official_md = (libs / MD_NAME).read_bytes()
    with pytest.raises(NativeInstallError) as caught:
        install.install("openctp", built, site)
    message = str(caught.value)
    assert str(libs / TD_NAME) in message and digest in message
    assert "neither an official" in message and "pip install --force-reinstall openctp-ctp==6.7.11.0" in message
    assert (libs / MD_NAME).read_bytes() == official_md
    assert not (libs / ".ctpshim-originals").exists()


def test_install_refuses_a_library_that_is_not_a_ctpshim_build(site: Path) -> None:
    official = FakeBuilt(OPENCTP_LIBS / MD_NAME, OPENCTP_LIBS / TD_NAME)
    with pytest.raises(NativeInstallError, match="not a ctpshim build.*ctpshim native build"):
        install.install("openctp", official, site)
    assert not (site / "openctp_ctp.libs" / ".ctpshim-originals").exists()


def test_uninstall_refuses_a_changed_original_naming_it_and_both_hashes(site: Path, built: FakeBuilt) -> None:
    libs = site / "openctp_ctp.libs"
    expected = sha(libs / MD_NAME)
    install.install("openctp", built, site)
    backup = libs / ".ctpshim-originals" / MD_NAME
    backup.write_bytes(backup.read_bytes()[:-1] + b"X")
    found = sha(backup)
    installed = {name: (libs / name).read_bytes() for name in (MD_NAME, TD_NAME)}
    with pytest.raises(NativeInstallError) as caught:
        install.uninstall("openctp", site)
    message = str(caught.value)
    assert "refusing" in message and str(backup) in message and found in message and expected in message
    assert {name: (libs / name).read_bytes() for name in (MD_NAME, TD_NAME)} == installed  # nothing restored
    with pytest.raises(NativeInstallError, match="was changed"):  # and a reinstall will not trust it either
        install.install("openctp", built, site)
    [entry] = install.status(site, ["openctp"])
    assert any(str(backup) in line and found in line for line in entry.originals)


def test_uninstall_with_nothing_installed_changes_nothing(site: Path) -> None:
    libs = site / "openctp_ctp.libs"
    before = {p.name: p.read_bytes() for p in libs.iterdir()}
    outcome = install.uninstall("openctp", site)
    assert outcome.notes and "nothing to uninstall" in outcome.notes[0]
    assert {p.name: p.read_bytes() for p in libs.iterdir()} == before


def test_uninstall_after_pip_restored_the_official_files_cleans_up(site: Path, built: FakeBuilt) -> None:
    libs = site / "openctp_ctp.libs"
    install.install("openctp", built, site)
    for name in (MD_NAME, TD_NAME):  # what pip install --force-reinstall openctp-ctp does
        (libs / name).unlink()
        shutil.copy2(OPENCTP_LIBS / name, libs / name)
    outcome = install.uninstall("openctp", site)
    assert [c.action for c in outcome.changes] == ["already official", "already official"]
    assert not (libs / ".ctpshim-originals").exists()


def test_a_ctpshim_build_without_kept_originals_cannot_be_uninstalled(site: Path, built: FakeBuilt) -> None:
    libs = site / "openctp_ctp.libs"
    install.install("openctp", built, site)
    shutil.rmtree(libs / ".ctpshim-originals")
    with pytest.raises(NativeInstallError, match="no originals are kept.*force-reinstall openctp-ctp"):
        install.uninstall("openctp", site)
    outcome = install.install("openctp", built, site)  # reinstalling over our own build is allowed, with a note
    assert outcome.notes and "no kept original" in outcome.notes[0]


def test_permission_denied_names_the_directory_and_the_preload_route(site: Path, built: FakeBuilt,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    libs = site / "openctp_ctp.libs"
    before = {p.name: p.read_bytes() for p in libs.iterdir()}
    if os.geteuid() == 0:  # root writes anywhere: make the write fail as it does for another user
        def refuse(source: Path, destination: Path, mode: int | None = None) -> None:
            raise PermissionError(13, "Permission denied", str(destination.parent))

        monkeypatch.setattr(install, "_place", refuse)
    else:
        libs.chmod(0o555)
    try:
        with pytest.raises(NativeInstallError) as caught:
            install.install("openctp", built, site)
    finally:
        libs.chmod(0o755)
    message = str(caught.value)
    assert "cannot write" in message and str(libs) in message and "ctpshim native env --target openctp" in message
    assert {p.name: p.read_bytes() for p in libs.iterdir() if p.is_file()} == before


def test_a_failure_halfway_leaves_a_state_uninstall_restores(site: Path, built: FakeBuilt,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    libs = site / "openctp_ctp.libs"
    originals = {name: (libs / name).read_bytes() for name in (MD_NAME, TD_NAME)}
    place = install._place

    def fail_on_td(source: Path, destination: Path, mode: int | None = None) -> None:
        if destination == libs / TD_NAME:
            raise PermissionError(13, "Permission denied", str(destination))
        place(source, destination, mode)

    monkeypatch.setattr(install, "_place", fail_on_td)
    with pytest.raises(NativeInstallError, match="cannot write"):
        install.install("openctp", built, site)
    monkeypatch.setattr(install, "_place", place)
    assert install.identify(libs / MD_NAME).kind == "ctpshim"  # md was swapped before td failed
    install.uninstall("openctp", site)
    assert {name: (libs / name).read_bytes() for name in originals} == originals


def test_the_vnpy_target(tmp_path: Path, built: FakeBuilt) -> None:
    site = copy_vnpy(tmp_path / "venv-site")
    api = site / "vnpy_ctp" / "api"
    originals = {name: (api / name).read_bytes() for name in ("libthostmduserapi_se.so", "libthosttraderapi_se.so")}
    assert [f.kind for f in install.status(site, ["vnpy"])[0].files] == ["official", "official"]
    install.install("vnpy", built, site)
    assert (api / "libthostmduserapi_se.so").read_bytes() == built.md.read_bytes()
    assert (api / "libthosttraderapi_se.so").read_bytes() == built.td.read_bytes()
    statuses = {entry.name: entry for entry in install.status(site)}
    assert [f.kind for f in statuses["vnpy"].files] == ["ctpshim", "ctpshim"]
    assert statuses["openctp"].target is None and "openctp-ctp" in statuses["openctp"].problem
    install.uninstall("vnpy", site)
    assert {name: (api / name).read_bytes() for name in originals} == originals
    assert not (api / ".ctpshim-originals").exists()


# -- with the real build --------------------------------------------------------------------------

PROGRAM = r"""
import sys
from openctp_ctp import mdapi, tdapi

print("version", mdapi.CThostFtdcMdApi.GetApiVersion(), "|", tdapi.CThostFtdcTraderApi.GetApiVersion())
api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(sys.argv[1])
mapped = sorted({line.split()[-1] for line in open("/proc/self/maps") if "libthost" in line})
for path in mapped:
    print("mapped", path, b"CTPSHIM_NATIVE_BUILD " in open(path, "rb").read())
api.Release()
"""


def run_program(site: Path, tmp_path: Path, extra_env: dict[str, str] | None = None) -> list[str]:
    program = tmp_path / "which_library.py"
    program.write_text(PROGRAM)
    flow = tmp_path / "flow"
    flow.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(site), **(extra_env or {})}
    done = subprocess.run([sys.executable, str(program), f"{flow}/"], capture_output=True, text=True,
                          timeout=WAIT, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_an_openctp_program_from_the_copy_loads_the_installed_library(tmp_path: Path, native_build: object) -> None:
    site = copy_openctp(tmp_path / "site", whole=True)
    libs = site / "openctp_ctp.libs"
    before = run_program(site, tmp_path)
    assert f"mapped {libs / MD_NAME} False" in before  # the official library, from the copy
    install.install("openctp", native_build, site)
    after = run_program(site, tmp_path)
    assert f"mapped {libs / MD_NAME} True" in after
    assert not any(line.startswith("mapped") and line.endswith("False") for line in after), after
    install.uninstall("openctp", site)
    assert run_program(site, tmp_path) == before


def test_the_preload_environment_loads_ctpshims_library_and_never_the_official_one(
        tmp_path: Path, native_build: object) -> None:
    site = copy_openctp(tmp_path / "site", whole=True)
    directory = Path(getattr(native_build, "directory"))
    env = install.preload_environment("openctp", site, out_dir=directory)
    preloaded = env["LD_PRELOAD"].split(":")
    assert [Path(p).name for p in preloaded[:2]] == [MD_NAME, TD_NAME] or all(Path(p).exists() for p in preloaded[:2])
    lines = run_program(site, tmp_path, env)
    mapped = [line for line in lines if line.startswith("mapped")]
    assert mapped and all(line.endswith("True") for line in mapped), lines
    assert not any(str(site / "openctp_ctp.libs") in line for line in mapped)  # the official files stay unmapped
    assert [f.kind for f in install.status(site, ["openctp"])[0].files] == ["official", "official"]
