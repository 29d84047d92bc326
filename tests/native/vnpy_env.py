"""Locating the vnpy_ctp test environment that ``tools/ci/vnpy_env.sh`` builds.

The environment is a separate virtual environment (vnpy 4.5.0 and vnpy_ctp 6.7.11.4 built from its sdist);
tests run vnpy programs in it as subprocesses and never import vnpy into the test interpreter.
``CTPSHIM_VNPY_ENV`` names it; otherwise the script's default, ``/opt/ctpshim-vnpy``. When it is absent
the tests skip with the command that builds it, unless ``CTPSHIM_REQUIRE_VNPY=1`` (CI), where they fail.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

DEFAULT_DIR = Path("/opt/ctpshim-vnpy")
REQUIRE_VNPY = os.environ.get("CTPSHIM_REQUIRE_VNPY") == "1"
SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "ci" / "vnpy_env.sh"
PROBE_TIMEOUT = 60.0
_PROBE = (
    "import sysconfig, vnpy, vnpy_ctp; from vnpy_ctp import CtpGateway; from vnpy.event import EventEngine; "
    "print(sysconfig.get_paths()['purelib']); print(vnpy.__version__); print(vnpy_ctp.__version__)"
)


@dataclass(frozen=True)
class VnpyEnv:
    """A usable vnpy environment: its directory, interpreter, site-packages and the versions found."""

    directory: Path
    python: Path
    site_packages: Path
    vnpy_version: str
    vnpy_ctp_version: str

    @property
    def api_dir(self) -> Path:
        """``vnpy_ctp/api``: where its extensions and the two CTP libraries live."""
        return self.site_packages / "vnpy_ctp" / "api"


def env_dir() -> Path:
    """The environment's directory: ``$CTPSHIM_VNPY_ENV`` or :data:`DEFAULT_DIR`."""
    value = os.environ.get("CTPSHIM_VNPY_ENV")
    return Path(value) if value else DEFAULT_DIR


def probe(directory: Path) -> VnpyEnv | str:
    """The environment in ``directory``, or a sentence saying why it is not usable."""
    python = directory / "bin" / "python"
    if not python.exists():
        return f"no vnpy environment at {directory} (no {python})"
    try:
        done = subprocess.run(
            [str(python), "-c", _PROBE], capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return f"{python} did not import vnpy_ctp within {PROBE_TIMEOUT:.0f} s"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return f"{python} cannot import vnpy_ctp's CtpGateway: {last}"
    site, vnpy_version, vnpy_ctp_version = done.stdout.split()[-3:]
    return VnpyEnv(directory, python, Path(site), vnpy_version, vnpy_ctp_version)


def require_vnpy_env() -> VnpyEnv:
    """The environment, or skip the test (fail it when ``CTPSHIM_REQUIRE_VNPY=1``) naming the fix."""
    directory = env_dir()
    found = probe(directory)
    if isinstance(found, VnpyEnv):
        return found
    reason = f"{found}; build it with: bash {SCRIPT} {directory}"
    if REQUIRE_VNPY:
        pytest.fail(reason + " (CTPSHIM_REQUIRE_VNPY=1)")
    pytest.skip(reason)
