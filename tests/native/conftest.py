"""Fixtures of the native library tests: the libraries, built once per test session.

``native_build``: :class:`ctpshim.native.build.Built` with the default sonames.
``native_preload``: the variant with openctp-ctp's hashed sonames (the preload route), in
``native_build.directory / "soname-<md>-<td>"``, linked from the same objects.
``preload_env(built)``: the variables to add to a program's environment so the loader takes
``built``'s libraries (``LD_PRELOAD``); a plain function, importable as
``from .conftest import preload_env``.

The build directory is ``$CTPSHIM_NATIVE_TEST_DIR``, else one directory per user under the
system temp directory, kept between sessions: the build's stamp makes every session after the
first one a no-op, and its lock keeps concurrent sessions from building twice.  Without a C++
compiler the tests skip, naming the package to install, unless ``CTPSHIM_REQUIRE_NATIVE`` is set
(CI), when they fail.
"""

from __future__ import annotations

import os
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

import pytest

from ctpshim.native import build as native_build_module

REQUIRE_ENV = "CTPSHIM_REQUIRE_NATIVE"


def native_test_dir() -> Path:
    chosen = os.environ.get("CTPSHIM_NATIVE_TEST_DIR", "").strip()
    if chosen:
        return Path(chosen)
    return Path(tempfile.gettempdir()) / f"ctpshim-native-tests-{os.getuid()}"


def require_compiler() -> str:
    """The compiler, or a skip (a failure when CTPSHIM_REQUIRE_NATIVE is set)."""
    try:
        return native_build_module.find_compiler()
    except native_build_module.NativeBuildError as exc:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{REQUIRE_ENV} is set but the native libraries cannot be built: {exc}")
        pytest.skip(f"the native libraries cannot be built here: {exc}")
        raise  # pragma: no cover - skip raised


def openctp_sonames() -> tuple[str, str] | None:
    """openctp-ctp's hashed library names (``libthostmduserapi_se-<hash>.so``, trader), found by
    glob in the installed wheel's ``openctp_ctp.libs``; None when openctp-ctp is not installed."""
    for site in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        libs = Path(site) / "openctp_ctp.libs"
        md = sorted(libs.glob("libthostmduserapi_se-*.so"))
        td = sorted(libs.glob("libthosttraderapi_se-*.so"))
        if md and td:
            return md[0].name, td[0].name
    return None


def preload_env(built: Any) -> dict[str, str]:
    """The variables to add so that a program loads ``built``'s two libraries: ``LD_PRELOAD``
    (md then td).  LOCPATH and everything else are left alone."""
    return {"LD_PRELOAD": f"{built.md}:{built.td}"}


@pytest.fixture(scope="session")
def native_build() -> native_build_module.Built:
    require_compiler()
    try:
        return native_build_module.build(native_test_dir())
    except native_build_module.NativeBuildError as exc:
        pytest.fail(f"the native libraries do not build: {exc}")
        raise  # pragma: no cover


@pytest.fixture(scope="session")
def native_preload(native_build: native_build_module.Built) -> native_build_module.Built:
    names = openctp_sonames()
    if names is None:
        pytest.skip("openctp-ctp is not installed (pip install openctp-ctp==6.7.11.0): no hashed sonames to build for")
    try:
        return native_build_module.build(native_build.directory, md_soname=names[0], td_soname=names[1])
    except native_build_module.NativeBuildError as exc:
        pytest.fail(f"the preload variant does not build: {exc}")
        raise  # pragma: no cover
