"""Compiling ctpshim's native CTP libraries with the system C++ compiler.

:func:`build` generates the declarations (:mod:`ctpshim.native.generate`) into the output
directory, compiles the hand-written C++ of the repository's ``native/`` (:func:`native_sources`)
with them, and links ``libthostmduserapi_se.so`` and ``libthosttraderapi_se.so``.  A stamp of
every input (the C++ sources and version scripts, the generator and the spec it reads, the
compiler, the flags, the sonames) makes a repeated build a no-op that returns at once.  Objects
are shared between the default build and the soname variants (:func:`build` with other sonames,
for the preload route), so a variant only links.  Two compiles run at once at most.

The output directory layout::

    OUT/include/ThostFtdc*.h        the generated CTP headers (for C++ programs)
    OUT/gen/...                     the generated library code
    OUT/obj-<inputs>/*.o            objects
    OUT/libthostmduserapi_se.so     the default build (SONAME = the file name)
    OUT/libthosttraderapi_se.so
    OUT/soname-<md>-<td>/<md>, <td> a variant with other sonames

Outputs are written beside their final name and renamed over it, so a program that has the old
library mapped keeps running.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from .. import __version__
from ..wire.structs import LAYOUT_ID

MD_SONAME = "libthostmduserapi_se.so"
TD_SONAME = "libthosttraderapi_se.so"
CXXFLAGS = ("-std=c++17", "-O2", "-fPIC", "-pthread", "-Wall", "-Wextra")
# libstdc++ is linked in (no GLIBCXX floor); libgcc is NOT (no -static-libgcc): pthread_exit unwinds
# with the system's libgcc_s, and against a static copy the unwind aborts the process.  CPython ends a
# foreign thread that wants the GIL during finalization with pthread_exit (a Spi call at exit).
LDFLAGS = ("-shared", "-pthread", "-static-libstdc++", "-Wl,-z,defs")
LIBS = ("-ldl",)
COMMON_SOURCES = ("session.cpp", "wire.cpp", "json.cpp", "pin.cpp")
MD_SOURCES = ("md_api.cpp", "gen/ctpshim_md_callbacks.cpp")
TD_SOURCES = ("trader_api.cpp", "gen/ctpshim_trader_callbacks.cpp")
COMPILERS = ("g++", "c++", "clang++")
PARALLEL = 2
COMPILE_TIMEOUT = 600.0
INSTALL_HINT = "install build-essential: apt-get install build-essential"
_SONAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]*\.so(\.[0-9]+)*")
# What the generated code is made from (the generator's own inputs), for the stamp.
_GENERATOR_INPUTS = ("native/generate.py", "ctp/spec/openctp_ctp.json", "ctp/fields.py", "wire/structs.py",
                     "wire/calls.py")


class NativeBuildError(Exception):
    """The libraries cannot be built: no compiler (the message names the package to install), a
    compiler error (the message shows the failing command and its output), missing sources."""


@dataclass(frozen=True)
class Built:
    """A finished build: the two libraries, the generated headers' directory (``-I`` for C++
    programs) and the directory holding the libraries."""

    md: Path
    td: Path
    include: Path
    directory: Path


def native_sources() -> Path:
    """The ``native/`` directory holding the C++ sources (``src/``) and version scripts
    (``exports/``): the repository's, next to the package in a checkout or editable install, else
    the copy a wheel ships as ``ctpshim/native/cxx``."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent.parent / "native", here / "cxx"):
        if (candidate / "src" / "session.cpp").is_file() and (candidate / "exports" / "md.map").is_file():
            return candidate
    raise NativeBuildError(f"the C++ sources of ctpshim's native libraries are not here (looked for native/src "
                           f"and native/exports next to {here.parent.parent}); build from a ctpshim checkout")


def find_compiler() -> str:
    """The C++ compiler to use: ``$CXX`` when set, else the first of g++, c++, clang++ on PATH.
    :class:`NativeBuildError` naming build-essential when there is none (or ``$CXX`` names
    nothing runnable)."""
    wanted = os.environ.get("CXX", "").strip()
    if wanted:
        words = shlex.split(wanted)
        found = shutil.which(words[0]) if words else None
        if found is None:
            raise NativeBuildError(f"CXX={wanted!r} names no runnable C++ compiler; set CXX to one "
                                   f"(g++, clang++) or unset it, or {INSTALL_HINT}")
        return found if len(words) == 1 else shlex.join([found, *words[1:]])  # "ccache g++" stays a command
    for name in COMPILERS:
        found = shutil.which(name)
        if found is not None:
            return found
    raise NativeBuildError(f"no C++ compiler found (looked for $CXX, {', '.join(COMPILERS)} on PATH); {INSTALL_HINT}")


def default_build_dir() -> Path:
    """``$CTPSHIM_NATIVE_DIR``, else ``~/.cache/ctpshim/native/<ctpshim version>-<layout id>``."""
    chosen = os.environ.get("CTPSHIM_NATIVE_DIR", "").strip()
    if chosen:
        return Path(chosen).expanduser()
    return Path.home() / ".cache" / "ctpshim" / "native" / f"{__version__}-{LAYOUT_ID}"


def build(out_dir: Path | None = None, *, md_soname: str = MD_SONAME, td_soname: str = TD_SONAME,
          force: bool = False) -> Built:
    """Build both libraries into ``out_dir`` (default :func:`default_build_dir`) and return them.

    With the default sonames the libraries are ``out_dir/libthostmduserapi_se.so`` and
    ``out_dir/libthosttraderapi_se.so``; other sonames (openctp-ctp's hashed names, for the
    preload route) build into ``out_dir/"soname-<md>-<td>"``, each library named by its soname.
    Nothing is compiled when the stamp of the inputs is unchanged (``force`` rebuilds).
    :class:`NativeBuildError` when there is no compiler, a compile or link fails, or a soname is
    not a plain ``*.so`` file name.
    """
    for soname in (md_soname, td_soname):
        if not _SONAME.fullmatch(soname):
            raise NativeBuildError(f"soname {soname!r}: expected a plain library file name like {MD_SONAME!r}")
    base = Path(out_dir) if out_dir is not None else default_build_dir()
    directory = base if (md_soname, td_soname) == (MD_SONAME, TD_SONAME) else base / f"soname-{md_soname}-{td_soname}"
    built = Built(md=directory / md_soname, td=directory / td_soname, include=base / "include", directory=directory)
    compiler = find_compiler()
    sources = native_sources()
    inputs = _inputs_digest(compiler, sources)
    stamp = hashlib.sha256(f"{inputs}\n{md_soname}\n{td_soname}\n".encode()).hexdigest()
    stamp_path = directory / "build.stamp"
    if not force and _current(stamp_path, stamp, built):
        return built
    try:
        base.mkdir(parents=True, exist_ok=True)
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NativeBuildError(f"cannot create the build directory {directory}: {exc}") from None
    try:
        with _locked(base / ".build.lock"):
            if not force and _current(stamp_path, stamp, built):  # another process built it meanwhile
                return built
            from .generate import generate

            generate(base)
            objects = _compile_all(compiler, sources, base, inputs, force)
            _link(compiler, objects["md"], sources / "exports" / "md.map", md_soname, built.md)
            _link(compiler, objects["td"], sources / "exports" / "td.map", td_soname, built.td)
            _write_atomically(stamp_path, stamp.encode())
            _remove_stale_objects(base, inputs)
    except OSError as exc:
        raise NativeBuildError(f"cannot write the build directory {base}: {exc}") from None
    return built


# -- inside --------------------------------------------------------------------------------------


def _current(stamp_path: Path, stamp: str, built: Built) -> bool:
    try:
        return stamp_path.read_text().strip() == stamp and built.md.is_file() and built.td.is_file()
    except OSError:
        return False


def _inputs_digest(compiler: str, sources: Path) -> str:
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent.parent
    files = sorted(p for p in (sources / "src").rglob("*") if p.is_file())
    files += sorted(p for p in (sources / "exports").rglob("*") if p.is_file())
    for path in files:
        digest.update(str(path.relative_to(sources)).encode() + b"\0" + path.read_bytes() + b"\0")
    for relative in _GENERATOR_INPUTS:
        path = package / relative
        digest.update(relative.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"") + b"\0")
    digest.update("\0".join((compiler, _compiler_identity(compiler), *CXXFLAGS, *LDFLAGS, *LIBS,
                             __version__, LAYOUT_ID)).encode())
    return digest.hexdigest()


def _words(compiler: str) -> list[str]:
    """find_compiler()'s answer as a command: a path, or a command line such as ``ccache g++``."""
    return [compiler] if os.path.isfile(compiler) else shlex.split(compiler)


def _compiler_identity(compiler: str) -> str:
    try:
        done = subprocess.run([*_words(compiler), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NativeBuildError(f"the C++ compiler {compiler} does not run ({exc}); {INSTALL_HINT}") from None
    return done.stdout.splitlines()[0] if done.stdout else ""


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One build at a time per output directory (test sessions and programs may race)."""
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _compile_all(compiler: str, sources: Path, base: Path, inputs: str, force: bool) -> dict[str, list[Path]]:
    objects_dir = base / f"obj-{inputs[:16]}"
    objects_dir.mkdir(parents=True, exist_ok=True)
    include = ["-I", str(base / "include"), "-I", str(base / "gen"), "-I", str(sources / "src")]
    defines = [f'-DCTPSHIM_VERSION="{__version__}"']

    def source_path(name: str) -> Path:
        return base / name if name.startswith("gen/") else sources / "src" / name

    def object_path(name: str) -> Path:
        return objects_dir / (Path(name).stem + ".o")

    units = list(dict.fromkeys(TD_SOURCES + MD_SOURCES + COMMON_SOURCES))  # the slowest first
    todo = [name for name in units if force or not object_path(name).is_file()]

    def compile_one(name: str) -> None:
        target = object_path(name)
        temporary = target.with_name(target.name + f".{os.getpid()}.tmp")
        command = [*_words(compiler), *CXXFLAGS, *defines, *include, "-c", str(source_path(name)), "-o", str(temporary)]
        _run(command, f"compiling {name}")
        os.replace(temporary, target)

    if todo:
        with ThreadPoolExecutor(max_workers=min(PARALLEL, len(todo))) as pool:
            failures = []
            for future in [pool.submit(compile_one, name) for name in todo]:
                exc = future.exception()
                if exc is not None:
                    failures.append(exc)
            if failures:
                raise failures[0]
    common = [object_path(name) for name in COMMON_SOURCES]
    return {"md": [object_path(name) for name in MD_SOURCES] + common,
            "td": [object_path(name) for name in TD_SOURCES] + common}


def _link(compiler: str, objects: Sequence[Path], version_script: Path, soname: str, target: Path) -> None:
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    command = [*_words(compiler), *LDFLAGS, f"-Wl,--version-script={version_script}", f"-Wl,-soname,{soname}",
               "-o", str(temporary), *map(str, objects), *LIBS]
    _run(command, f"linking {target.name}")
    os.replace(temporary, target)  # never overwrite a mapped library in place


def _run(command: list[str], what: str) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=COMPILE_TIMEOUT)
    except FileNotFoundError:
        raise NativeBuildError(f"{what}: the compiler {command[0]} is missing; {INSTALL_HINT}") from None
    except subprocess.TimeoutExpired:
        raise NativeBuildError(f"{what}: no result within {COMPILE_TIMEOUT:g} s:\n  {shlex.join(command)}") from None
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()
        raise NativeBuildError(f"{what} failed (exit {done.returncode}):\n  {shlex.join(command)}\n{output}")


def _remove_stale_objects(base: Path, inputs: str) -> None:
    keep = f"obj-{inputs[:16]}"
    for old in base.glob("obj-*"):
        if old.name != keep and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


def _write_atomically(path: Path, data: bytes) -> None:
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.replace(name, path)
