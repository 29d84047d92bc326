"""Running the plain openctp-ctp programs of this folder over ctpshim's native libraries.

The programs are run as they are, in a subprocess, with the real ``openctp_ctp`` SWIG modules and the
preload environment (``LD_PRELOAD`` of ctpshim's libraries built under openctp-ctp's hashed sonames:
no installed file changes). Their JSON lines are read as they come; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

PROGRAMS = Path(__file__).resolve().parent
WAIT = 20.0  # seconds any one expected event may take
# Variables that would move the program elsewhere than the test says.
_DROPPED = ("CTPSHIM_FRONT", "CTPSHIM_NATIVE_FRONT", "CTPSHIM_NATIVE_TOKEN", "LD_PRELOAD", "PYTHONPATH")


def clean_environment() -> dict[str, str]:
    """This process's environment without anything that would redirect a CTP program."""
    return {k: v for k, v in os.environ.items() if k not in _DROPPED}


@pytest.fixture(scope="session")
def native_env(native_preload: Any, openctp: Any) -> dict[str, str]:
    """The environment of a program on ctpshim's libraries: LD_PRELOAD of the hashed-soname build."""
    from tests.native.conftest import preload_env

    environment = clean_environment()
    environment.update(preload_env(native_preload))
    return environment


class Program:
    """One program in a subprocess; its JSON lines collected by a reader thread."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self.env = env
        self.args = [sys.executable, str(PROGRAMS / name), *args]
        self.stderr_path = cwd / f"{Path(name).stem}-{time.monotonic_ns()}.stderr"
        self._stderr = open(self.stderr_path, "wb")
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self._stderr, env=env,
                                        cwd=str(cwd))
        self.records: list[dict[str, Any]] = []
        self.bad_lines: list[str] = []
        self._cond = threading.Condition()
        self._ended = False
        self._reader = threading.Thread(target=self._read, name=f"read-{name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                try:
                    self.records.append(json.loads(line))
                except ValueError:
                    self.bad_lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text("utf-8", "replace")[-4000:]

    def describe(self) -> str:
        with self._cond:
            tail = [json.dumps(r, ensure_ascii=False)[:300] for r in self.records[-8:]]
        return (f"{self.name} (rc {self.process.poll()}); last lines:\n" + "\n".join(tail)
                + (f"\nnon-JSON output: {self.bad_lines[-5:]}" if self.bad_lines else "")
                + f"\nstderr:\n{self.stderr()}")

    def wait_for(self, condition: Callable[[list[dict[str, Any]]], Any], what: str,
                 timeout: float = WAIT) -> Any:
        """``condition(records)``'s first truthy value; fails after ``timeout`` s or when the program ended."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = condition(self.records)
                if value:
                    return value
                if self._ended:
                    raise AssertionError(f"{self.name} ended before {what}: {self.describe()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}: {self.describe()}")
                self._cond.wait(left)

    def finish(self, timeout: float = WAIT) -> int:
        """Wait for the program's end (killed past ``timeout``), then for its last line; its return code."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not end within {timeout:g} s: {self.describe()}") from None
        self._reader.join(timeout)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._reader.join(10)
        self._stderr.close()

    def events(self, name: str) -> list[dict[str, Any]]:
        with self._cond:
            return [r for r in self.records if r["event"] == name]

    def names(self) -> list[str]:
        with self._cond:
            return [r["event"] for r in self.records]


@pytest.fixture
def run_program(native_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Program]]:
    """``run_program(name, *args, env=None)``: a started :class:`Program` (killed at teardown if still running).

    ``env``: variables added to the native environment."""
    started: list[Program] = []

    def start(name: str, *args: str, env: dict[str, str] | None = None) -> Program:
        program = Program(name, list(args), {**native_env, **(env or {})}, tmp_path)
        started.append(program)
        return program

    yield start
    for program in started:
        program.kill()


def check_real_openctp(program: Program) -> None:
    """The program ran the real openctp-ctp SWIG module, and the CTP libraries mapped into it are the
    preloaded ctpshim builds (the official ones never were)."""
    start = program.events("start")[0]
    assert "site-packages" in start["module"] and "openctp_ctp" in start["module"], start
    preloaded = {os.path.realpath(p) for p in program.env.get("LD_PRELOAD", "").replace(":", " ").split()}
    mapped = {os.path.realpath(p) for p in program.events("libraries")[0]["paths"]}
    assert mapped and mapped <= preloaded, f"mapped CTP libraries {sorted(mapped)}, preloaded {sorted(preloaded)}"
