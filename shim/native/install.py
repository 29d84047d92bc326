"""Swapping ctpshim's native libraries into an installed openctp-ctp or vnpy_ctp, and back.

Two targets, each a pair of CTP libraries inside a site-packages directory:

``openctp``
    ``openctp_ctp.libs/libthostmduserapi_se-<hash>.so`` and ``libthosttraderapi_se-<hash>.so`` of the
    openctp-ctp wheel (the hash is auditwheel's, per wheel build: found by glob, never hard-coded).
``vnpy``
    ``vnpy_ctp/api/libthostmduserapi_se.so`` and ``libthosttraderapi_se.so`` of vnpy_ctp.

The site-packages directory is found without importing the SWIG modules (``importlib.util.find_spec``
of the top-level package, which runs none of its code), or given (``path``, for tests and other venvs).

:func:`install` keeps the official files in ``.ctpshim-originals/`` beside them with a JSON manifest
(the sha256 of each original and of what was installed), then puts ctpshim's builds in their place.  A
new file never overwrites a mapped ``.so`` in place (running programs would crash): it is copied beside
it and renamed over it, so the old inode lives on for whoever has it mapped.  Install refuses a current
file that is neither one of the official builds named in :data:`OFFICIAL` nor a ctpshim build (found by
the ``CTPSHIM_NATIVE_BUILD <version> <layout>`` string every ctpshim library embeds).  :func:`uninstall`
restores the originals and checks their sha256; :func:`status` says what each target holds.

The preload route changes no file: :func:`preload_environment` gives ``LD_PRELOAD`` for ctpshim's builds
(for openctp with openctp's hashed sonames, so the loader takes them for the wheel's own libraries and
never maps the official ones).  ``pip install --force-reinstall openctp-ctp`` (or vnpy_ctp) also puts the
official files back, and leaves a stale ``.ctpshim-originals/`` that the next uninstall cleans up.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import mmap
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

TARGETS = ("openctp", "vnpy")
"""The names ``--into`` / ``--from`` / ``--target`` accept."""

KINDS = ("md", "td")
ORIGINALS_DIR = ".ctpshim-originals"
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
MARKER = b"CTPSHIM_NATIVE_BUILD"
_MARKER_RE = re.compile(rb"CTPSHIM_NATIVE_BUILD ([\x21-\x7e]{1,64}) ([\x21-\x7e]{1,128})\x00")

OFFICIAL: dict[str, str] = {
    # openctp-ctp 6.7.11.0 (manylinux2014 wheel): SFIT's v6.7.11_20250617 after auditwheel renamed them
    "25e1041472cc511d877a5ced64cc4c80ace363eac0509ef3a98a40ab2df30d38":
        "official libthostmduserapi_se of openctp-ctp 6.7.11.0",
    "a8620f7639ca60f8e9d80000821727b4e6591c0ecc8f3563eaf5dff77d56caa6":
        "official libthosttraderapi_se of openctp-ctp 6.7.11.0",
    # vnpy_ctp 6.7.11.4 (its sdist's vnpy_ctp/api/*.so, installed unchanged by the build)
    "9c6d321f3d880e1c91ec225cc46950f8aa1502f43fc9f41d1d92f10ee04d190a":
        "official libthostmduserapi_se of vnpy_ctp 6.7.11.4",
    "ad4da95953ea5d0f4ed28ac746462ddba1f3434d0df1727919ae0d97591b4085":
        "official libthosttraderapi_se of vnpy_ctp 6.7.11.4",
}
"""sha256 -> what the file is, for every official CTP library install and uninstall accept."""


@dataclass(frozen=True)
class TargetInfo:
    """What a target is: its pip package, the module found in site-packages, where its libraries lie."""

    name: str
    package: str  # the pip distribution, for messages ("pip install openctp-ctp==6.7.11.0")
    module: str  # the top-level import name
    tested_version: str


TARGET_INFO = {
    "openctp": TargetInfo("openctp", "openctp-ctp", "openctp_ctp", "6.7.11.0"),
    "vnpy": TargetInfo("vnpy", "vnpy_ctp", "vnpy_ctp", "6.7.11.4"),
}


class NativeInstallError(Exception):
    """An install, uninstall or preload that cannot go ahead; the message names the file or package
    and what to do.  Nothing was changed when it is raised before any file was written."""


class TargetNotFound(NativeInstallError):
    """The target's package is not installed where it was looked for."""


@dataclass(frozen=True)
class Target:
    """An installed target: its two libraries (``md``, ``td``) in ``directory`` under ``site_packages``."""

    name: str
    site_packages: Path
    directory: Path
    md: Path
    td: Path

    @property
    def info(self) -> TargetInfo:
        return TARGET_INFO[self.name]

    @property
    def originals(self) -> Path:
        """``.ctpshim-originals/`` beside the libraries."""
        return self.directory / ORIGINALS_DIR

    @property
    def manifest_path(self) -> Path:
        return self.originals / MANIFEST_NAME

    def library(self, kind: str) -> Path:
        return self.md if kind == "md" else self.td

    def version(self) -> str | None:
        """The installed distribution's version, from its metadata in ``site_packages``."""
        import importlib.metadata

        for dist in importlib.metadata.distributions(path=[str(self.site_packages)]):
            name = (dist.metadata["Name"] or "").lower().replace("_", "-")
            if name == self.info.package.lower().replace("_", "-"):
                return dist.version
        return None


@dataclass(frozen=True)
class FileState:
    """What one library file is: ``official``, ``ctpshim`` (with its version and layout), ``unknown``
    or ``missing``."""

    path: Path
    kind: str
    sha256: str = ""
    description: str = ""
    version: str = ""
    layout: str = ""

    def describe(self) -> str:
        if self.kind == "official":
            return self.description
        if self.kind == "ctpshim":
            return f"ctpshim build {self.version} (layout {self.layout})"
        if self.kind == "missing":
            return "missing"
        return f"unknown (sha256 {self.sha256})"


@dataclass
class Change:
    """What install or uninstall did to one library file."""

    path: Path
    before: FileState
    after: FileState
    action: str  # "replaced", "unchanged", "restored", "already official"


@dataclass
class Outcome:
    """The result of :func:`install` / :func:`uninstall`: the target, a change per file, and notes."""

    target: Target
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class TargetStatus:
    """:func:`status` for one target: its files, the kept originals, the preload route."""

    name: str
    package: str
    target: Target | None
    problem: str = ""  # why the target was not found
    version: str | None = None
    files: list[FileState] = field(default_factory=list)
    originals: list[str] = field(default_factory=list)  # problems with, or a summary of, the backup
    preload: str = ""  # "available: ..." or "not available: ..."
    preload_available: bool = False


# -- locating -------------------------------------------------------------------------------------


def _check_target(name: str) -> TargetInfo:
    if name not in TARGET_INFO:
        raise ValueError(f"unknown target {name!r}: expected one of {', '.join(TARGETS)}")
    return TARGET_INFO[name]


def site_packages_of(name: str) -> Path:
    """The site-packages directory holding target ``name``'s package in this interpreter."""
    info = _check_target(name)
    try:
        spec = importlib.util.find_spec(info.module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise TargetNotFound(f"{info.package} is not installed in this Python ({sys.executable}): "
                             f"pip install {info.package}=={info.tested_version}, or give --path SITE_PACKAGES")
    return Path(list(spec.submodule_search_locations)[0]).resolve().parent


def locate(name: str, path: str | os.PathLike[str] | None = None) -> Target:
    """Target ``name`` in ``path`` (a site-packages directory) or, without it, in this interpreter's.

    Raises :class:`TargetNotFound` naming the pip package when it is not there, ``ValueError`` for an
    unknown target name, :class:`NativeInstallError` when ``path`` is not a directory."""
    info = _check_target(name)
    if path is None:
        site = site_packages_of(name)
    else:
        site = Path(path)
        if not site.is_dir():
            raise NativeInstallError(f"--path {str(path)!r} is not a directory (give a site-packages directory)")
    where = f"in {site}"
    if name == "openctp":
        directory = site / "openctp_ctp.libs"
        found = {kind: sorted(directory.glob(f"libthost{stem}api_se-*.so"))
                 for kind, stem in (("md", "mduser"), ("td", "trader"))}
    else:
        directory = site / "vnpy_ctp" / "api"
        found = {kind: [directory / f"libthost{stem}api_se.so"] for kind, stem in (("md", "mduser"), ("td", "trader"))}
        found = {kind: [p for p in paths if p.exists()] for kind, paths in found.items()}
    for kind, paths in found.items():
        if not paths:
            raise TargetNotFound(f"{info.package} is not installed {where} (no {kind} library in {directory}): "
                                 f"pip install {info.package}=={info.tested_version}")
        if len(paths) > 1:
            raise NativeInstallError(f"{directory} holds {len(paths)} {kind} libraries "
                                     f"({', '.join(p.name for p in paths)}): reinstall {info.package} "
                                     f"(pip install --force-reinstall {info.package}=={info.tested_version})")
    return Target(name, site, directory, found["md"][0], found["td"][0])


# -- identifying files ----------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_marker(path: Path) -> tuple[str, str] | None:
    """The ``(version, layout)`` of the ``CTPSHIM_NATIVE_BUILD`` string in the file, or ``None``."""
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size == 0:
            return None
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            start = data.find(MARKER)
            while start != -1:
                match = _MARKER_RE.match(data, start)
                if match:
                    return match.group(1).decode("ascii"), match.group(2).decode("ascii")
                start = data.find(MARKER, start + 1)
    return None


def identify(path: Path) -> FileState:
    """What the library file at ``path`` is (see :class:`FileState`)."""
    if not path.exists():
        return FileState(path, "missing")
    digest = sha256_of(path)
    if digest in OFFICIAL:
        return FileState(path, "official", digest, OFFICIAL[digest])
    marker = build_marker(path)
    if marker is not None:
        return FileState(path, "ctpshim", digest, "", marker[0], marker[1])
    return FileState(path, "unknown", digest)


# -- the manifest -----------------------------------------------------------------------------------


def read_manifest(target: Target) -> dict[str, Any] | None:
    """The manifest in ``.ctpshim-originals/``, or ``None`` when there is none."""
    if not target.manifest_path.exists():
        return None
    try:
        data = json.loads(target.manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NativeInstallError(f"{target.manifest_path} cannot be read ({exc}); the originals beside it are "
                                 f"not trusted: pip install --force-reinstall {target.info.package}=="
                                 f"{target.info.tested_version} restores the official files") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise NativeInstallError(f"{target.manifest_path} is not a ctpshim manifest (no 'files' object)")
    return data


def _write_manifest(target: Target, manifest: dict[str, Any]) -> None:
    manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    _atomic_write(target.manifest_path, json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8") + b"\n")


def _verified_original(target: Target, entry: dict[str, Any], name: str) -> Path:
    """The kept original ``name``, checked against the manifest and :data:`OFFICIAL`."""
    backup = target.originals / name
    expected = str(entry.get("original_sha256", ""))
    if not backup.exists():
        raise NativeInstallError(f"the kept original {backup} is missing; pip install --force-reinstall "
                                 f"{target.info.package}=={target.info.tested_version} restores the official files")
    found = sha256_of(backup)
    if found != expected or expected not in OFFICIAL:
        what = "the manifest's" if expected in OFFICIAL else "the manifest's (not an official build's)"
        raise NativeInstallError(f"refusing: the kept original {backup} was changed: sha256 {found}, "
                                 f"{what} {expected}; pip install --force-reinstall "
                                 f"{target.info.package}=={target.info.tested_version} restores the official files")
    return backup


# -- writing files ----------------------------------------------------------------------------------


def _atomic_write(path: Path, data: bytes) -> None:
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".ctpshim-tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        _unlink_quietly(Path(temporary))
        raise


def _place(source: Path, destination: Path, mode: int | None = None) -> None:
    """Copy ``source`` to ``destination`` through a new file renamed over it: the old file's inode,
    mapped by running programs, is never written."""
    fd, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".ctpshim-tmp", dir=destination.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, temporary)
        os.chmod(temporary, mode if mode is not None else (source.stat().st_mode & 0o777))
        os.replace(temporary, destination)
    except BaseException:
        _unlink_quietly(Path(temporary))
        raise


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _permission(target: Target, exc: OSError) -> NativeInstallError:
    """A failed write as a NativeInstallError naming the file (and, for no permission or a read-only file
    system, the preload route, which needs no write)."""
    import errno

    where = exc.filename or target.directory
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return NativeInstallError(f"cannot write {where}: {exc.strerror or exc}; run as the user who owns "
                                  f"{target.site_packages} (or a venv of your own), or use the preload route, "
                                  f"which changes no file: ctpshim native env --target {target.name}")
    return NativeInstallError(f"cannot write {where}: {exc.strerror or exc}; "
                              f"ctpshim native status --path {target.site_packages} shows what is in place")


# -- install / uninstall ----------------------------------------------------------------------------


def install(name: str, built: Any = None, path: str | os.PathLike[str] | None = None) -> Outcome:
    """Put ctpshim's libraries into target ``name`` (``openctp`` or ``vnpy``), keeping the originals.

    ``built`` is a :class:`ctpshim.native.build.Built` (default: :func:`ctpshim.native.build.build` with
    the default sonames); ``path`` a site-packages directory (default: this interpreter's).  A second
    install keeps the originals kept by the first and replaces only files that differ.  Refuses, before
    changing anything, a current file that is neither official nor a ctpshim build, a library to install
    that is not a ctpshim build, and a kept original whose sha256 changed.  Raises
    :class:`NativeInstallError` (:class:`TargetNotFound` when the package is not there)."""
    target = locate(name, path)
    if built is None:
        from .build import build

        built = build()
    sources = {"md": Path(built.md), "td": Path(built.td)}
    news = {}
    for kind, source in sources.items():
        state = identify(source)
        if state.kind != "ctpshim":
            raise NativeInstallError(f"refusing to install {source}: it is not a ctpshim build "
                                     f"({state.describe()}); build one with: ctpshim native build")
        news[kind] = state
    manifest = read_manifest(target)
    entries: dict[str, Any] = dict(manifest["files"]) if manifest else {}
    outcome = Outcome(target)
    plan = []
    for kind in KINDS:
        library = target.library(kind)
        current = identify(library)
        entry = entries.get(library.name)
        if current.kind == "unknown":
            raise NativeInstallError(
                f"refusing: {library} is neither an official CTP library of {target.info.package} "
                f"{target.info.tested_version} nor a ctpshim build (sha256 {current.sha256}); "
                f"pip install --force-reinstall {target.info.package}=={target.info.tested_version} "
                f"restores the official file")
        if current.kind == "official":
            plan.append((kind, library, current, True))
        else:  # a ctpshim build: the original must be kept and intact, or there is none to keep
            if entry is not None:
                _verified_original(target, entry, library.name)
            else:
                outcome.notes.append(
                    f"{library.name} is a ctpshim build with no kept original: uninstall cannot restore it; "
                    f"pip install --force-reinstall {target.info.package}=={target.info.tested_version} does")
            plan.append((kind, library, current, False))
    manifest_base = {"format": MANIFEST_FORMAT, "target": name, "package": target.info.package}
    try:
        # first the originals and a manifest naming them, so that a failure halfway leaves a state
        # uninstall can restore; then the libraries
        for kind, library, current, keep in plan:
            if keep:
                target.originals.mkdir(exist_ok=True)
                backup = target.originals / library.name
                if not backup.exists() or sha256_of(backup) != current.sha256:
                    _place(library, backup)
                entry = dict(entries.get(library.name) or {})
                entry.update(kind=kind, original_sha256=current.sha256, original=current.description,
                             mode=library.stat().st_mode & 0o777)
                entries[library.name] = entry
        if entries:
            _write_manifest(target, {**manifest_base, "files": entries})
        for kind, library, current, keep in plan:
            new = news[kind]
            if current.sha256 == new.sha256:
                action = "unchanged"
            else:
                _place(sources[kind], library, library.stat().st_mode & 0o777)
                action = "replaced"
            if library.name in entries:
                entries[library.name].update(installed_sha256=new.sha256, installed_from=str(sources[kind]),
                                             installed=f"ctpshim {new.version} {new.layout}")
            outcome.changes.append(Change(library, current, identify(library), action))
        if entries:
            _write_manifest(target, {**manifest_base, "files": entries})
    except OSError as exc:
        raise _permission(target, exc) from None
    return outcome


def uninstall(name: str, path: str | os.PathLike[str] | None = None) -> Outcome:
    """Put back the originals kept by :func:`install` in target ``name``, verified by sha256, and remove
    ``.ctpshim-originals/``.

    With nothing installed (official files and no originals kept) it changes nothing and says so in
    :attr:`Outcome.notes`.  Refuses, before changing anything, a kept original whose sha256 is not the
    manifest's (naming the file and both hashes), and a current file that is neither a ctpshim build nor
    official (something else replaced it since)."""
    target = locate(name, path)
    manifest = read_manifest(target)
    outcome = Outcome(target)
    currents = {kind: identify(target.library(kind)) for kind in KINDS}
    if manifest is None:
        ours = [state for state in currents.values() if state.kind == "ctpshim"]
        if ours:
            raise NativeInstallError(
                f"{', '.join(str(s.path) for s in ours)}: a ctpshim build, but no originals are kept in "
                f"{target.originals}; pip install --force-reinstall {target.info.package}=="
                f"{target.info.tested_version} restores the official files")
        outcome.notes.append(f"nothing to uninstall: no ctpshim install in {target.directory} "
                             f"({'; '.join(s.describe() for s in currents.values())})")
        for kind in KINDS:
            outcome.changes.append(Change(target.library(kind), currents[kind], currents[kind], "already official"))
        return outcome
    entries = manifest["files"]
    plan = []
    for kind in KINDS:
        library = target.library(kind)
        current = currents[kind]
        entry = entries.get(library.name)
        if entry is None:
            if current.kind == "ctpshim":
                raise NativeInstallError(f"{library} is a ctpshim build, but the manifest {target.manifest_path} "
                                         f"keeps no original of it; pip install --force-reinstall "
                                         f"{target.info.package}=={target.info.tested_version} restores it")
            plan.append((kind, library, current, None, None))
            continue
        backup = _verified_original(target, entry, library.name)
        if current.kind not in ("ctpshim", "official", "missing"):
            raise NativeInstallError(f"refusing: {library} changed since ctpshim installed it (sha256 "
                                     f"{current.sha256}, installed {entry.get('installed_sha256', '?')}); "
                                     f"it is neither a ctpshim build nor official, so it is left as it is")
        plan.append((kind, library, current, backup, entry))
    try:
        for kind, library, current, backup, entry in plan:
            if backup is None or current.sha256 == entry["original_sha256"]:
                outcome.changes.append(Change(library, current, current, "already official"))
                continue
            _place(backup, library, int(entry.get("mode", backup.stat().st_mode & 0o777)))
            restored = identify(library)
            if restored.sha256 != entry["original_sha256"]:
                raise NativeInstallError(f"restoring {library} failed: sha256 {restored.sha256} after the copy, "
                                         f"expected {entry['original_sha256']}; the original is still in {backup}")
            outcome.changes.append(Change(library, current, restored, "restored"))
        shutil.rmtree(target.originals)
    except OSError as exc:
        raise _permission(target, exc) from None
    return outcome


# -- status and the preload route -------------------------------------------------------------------


def status(path: str | os.PathLike[str] | None = None, targets: Iterable[str] = TARGETS) -> list[TargetStatus]:
    """What every target holds: each library's :class:`FileState`, the kept originals, and whether the
    preload route is available.  Never raises for a missing target (its ``problem`` says why)."""
    result = []
    for name in targets:
        info = _check_target(name)
        try:
            target = locate(name, path)
        except NativeInstallError as exc:
            result.append(TargetStatus(name, info.package, None, str(exc)))
            continue
        entry = TargetStatus(name, info.package, target, version=target.version())
        entry.files = [identify(target.library(kind)) for kind in KINDS]
        try:
            manifest = read_manifest(target)
        except NativeInstallError as exc:
            manifest = None
            entry.originals.append(str(exc))
        if manifest is not None:
            for file_name, file_entry in sorted(manifest["files"].items()):
                try:
                    _verified_original(target, file_entry, file_name)
                    entry.originals.append(f"{file_name}: kept, sha256 verified ({file_entry.get('original', '')})")
                except NativeInstallError as exc:
                    entry.originals.append(str(exc))
        entry.preload_available, entry.preload = _preload_route(target, path)
        result.append(entry)
    return result


def _preload_route(target: Target, path: str | os.PathLike[str] | None) -> tuple[bool, str]:
    try:
        from .build import find_compiler
    except ImportError as exc:
        return False, f"not available: ctpshim.native.build cannot be imported ({exc})"
    try:
        compiler = find_compiler()
    except Exception as exc:  # NativeBuildError: the message names the package to install
        return False, f"not available: {exc}"
    sonames = preload_sonames(target)
    where = f" --path {target.site_packages}" if path is not None else ""
    return True, (f"available: ctpshim native env --target {target.name}{where} (LD_PRELOAD of builds with sonames "
                  f"{sonames[0]}, {sonames[1]}; compiler {compiler})")


def preload_sonames(target: Target) -> tuple[str, str]:
    """The (md, td) sonames the preloaded builds need: the names the target's extensions link to."""
    return target.md.name, target.td.name


def preload_environment(name: str, path: str | os.PathLike[str] | None = None, *,
                        out_dir: str | os.PathLike[str] | None = None, force: bool = False) -> dict[str, str]:
    """The environment variables of the preload route for target ``name``: ``LD_PRELOAD`` naming
    ctpshim's md and td builds (built on first use, cached) whose sonames are the target's library
    names (openctp's hashed ones), followed by any ``LD_PRELOAD`` already set.  A program started with
    them loads ctpshim's libraries instead of the official ones, which stay untouched.  ``out_dir`` and
    ``force`` go to :func:`ctpshim.native.build.build` (default: its cache directory).

    Raises :class:`TargetNotFound` when the target is not installed, and
    :class:`ctpshim.native.build.NativeBuildError` when the libraries cannot be built."""
    target = locate(name, path)
    from .build import build

    md_soname, td_soname = preload_sonames(target)
    built = build(Path(out_dir) if out_dir is not None else None, md_soname=md_soname, td_soname=td_soname,
                  force=force)
    value = f"{Path(built.md).resolve()}:{Path(built.td).resolve()}"
    previous = os.environ.get("LD_PRELOAD", "").strip()
    if previous:
        value = f"{value}:{previous}"
    return {"LD_PRELOAD": value}
