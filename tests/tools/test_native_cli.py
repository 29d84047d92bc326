"""``ctpshim native build|install|uninstall|status|env`` and ``ctpshim run --native``: their output and
exit status, as subprocesses, against copies of openctp-ctp in tmp_path (never the installed one).

The libraries come from the session build (tests/native/conftest.py: ``native_build``); the commands
find it through ``CTPSHIM_NATIVE_DIR``, so they rebuild nothing."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from ..native.conftest import native_build  # noqa: F401  (the session build of the libraries)
from ..native.test_install import MD_NAME, TD_NAME, copy_openctp, copy_vnpy, fake_build
from ..server.conftest import serve_factory  # noqa: F401  (the fixture: a real Server on free ports)

WAIT = 120.0
MD_PROGRAM = Path(__file__).resolve().parents[1] / "native" / "programs" / "md_program.py"
SIM = "sim://?instruments=rb2701,TA701&start=2026-11-20T09:35&speed=20&hours=always"

def ctpshim(*args: str, env: dict[str, str] | None = None, timeout: float = WAIT,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ctpshim", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=cwd)


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    return copy_openctp(tmp_path / "site")


@pytest.fixture()
def build_env(native_build: Any) -> dict[str, str]:
    """The commands' environment: the session build as the cache directory (nothing rebuilt)."""
    return {"CTPSHIM_NATIVE_DIR": str(Path(native_build.directory))}


# -- usage errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["native", "install", "--into", "ctpbee"], "'ctpbee' is not a target: expected one of openctp, vnpy"),
    (["native", "uninstall", "--from", "nope"], "'nope' is not a target: expected one of openctp, vnpy"),
    (["native", "status", "--path", "/no/such/dir"], "'/no/such/dir' is not a directory"),
    (["native", "env", "--target", "x"], "'x' is not a target"),
    (["native", "install"], "--into"),
    (["native"], "give an action: build, install, uninstall, status or env"),
])
def test_bad_usage_exits_2_naming_the_value_and_what_is_valid(args: list[str], message: str) -> None:
    result = ctpshim(*args)
    assert result.returncode == 2, result
    assert message in result.stderr


def test_a_target_not_installed_exits_1_naming_the_pip_package(tmp_path: Path) -> None:
    result = ctpshim("native", "uninstall", "--from", "vnpy", "--path", str(tmp_path))
    assert result.returncode == 1
    assert "vnpy_ctp is not installed" in result.stderr and "pip install vnpy_ctp==6.7.11.4" in result.stderr


# -- status, uninstall (no build needed) ----------------------------------------------------------


def test_status_reports_each_target(site: Path) -> None:
    result = ctpshim("native", "status", "--path", str(site))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"openctp (openctp-ctp 6.7.11.0) in {site / 'openctp_ctp.libs'}:" in out
    assert f"  {MD_NAME}: official libthostmduserapi_se of openctp-ctp 6.7.11.0" in out
    assert f"  {TD_NAME}: official libthosttraderapi_se of openctp-ctp 6.7.11.0" in out
    assert "preload route:" in out
    assert "vnpy (vnpy_ctp): not installed:" in out


def test_uninstall_with_nothing_installed_says_so_and_exits_0(site: Path) -> None:
    result = ctpshim("native", "uninstall", "--from", "openctp", "--path", str(site))
    assert result.returncode == 0, result.stderr
    assert "nothing to uninstall" in result.stdout


def test_a_changed_original_makes_uninstall_exit_1_naming_it(site: Path, tmp_path: Path) -> None:
    from ctpshim.native import install

    install.install("openctp", fake_build(tmp_path / "fake"), site)
    backup = site / "openctp_ctp.libs" / ".ctpshim-originals" / TD_NAME
    backup.write_bytes(b"changed")
    result = ctpshim("native", "uninstall", "--from", "openctp", "--path", str(site))
    assert result.returncode == 1
    assert "refusing" in result.stderr and str(backup) in result.stderr
    status = ctpshim("native", "status", "--path", str(site))
    assert "ctpshim build 0.1.0" in status.stdout and str(backup) in status.stdout


def test_no_compiler_exits_1_naming_the_package_to_install(tmp_path: Path) -> None:
    env = {"CXX": "/no/such/g++", "CTPSHIM_NATIVE_DIR": str(tmp_path / "empty")}
    result = ctpshim("native", "build", "--out", str(tmp_path / "out"), env=env)
    assert result.returncode == 1
    assert "cannot build the libraries" in result.stderr and "build-essential" in result.stderr
    program = tmp_path / "p.py"
    program.write_text("raise SystemExit(0)\n")
    run = ctpshim("run", "--native", "--serve", "127.0.0.1:0", str(program), env=env, cwd=tmp_path)
    assert run.returncode == 1 and "build-essential" in run.stderr
    assert "started" not in run.stderr  # no server is started for a program that cannot run


# -- with the build -------------------------------------------------------------------------------


def test_build_prints_where_the_libraries_are(build_env: dict[str, str], native_build: Any) -> None:
    result = ctpshim("native", "build", env=build_env)
    assert result.returncode == 0, result.stderr
    assert f"md library:     {native_build.md}" in result.stdout
    assert f"trader library: {native_build.td}" in result.stdout


def test_install_status_uninstall(site: Path, build_env: dict[str, str]) -> None:
    libs = site / "openctp_ctp.libs"
    originals = {name: (libs / name).read_bytes() for name in (MD_NAME, TD_NAME)}
    result = ctpshim("native", "install", "--into", "openctp", "--path", str(site), env=build_env)
    assert result.returncode == 0, result.stderr
    assert re.search(rf"{re.escape(str(libs / MD_NAME))}: official libthostmduserapi_se of openctp-ctp 6\.7\.11\.0 "
                     r"-> ctpshim build \S+ \(layout ctp6\.7\.11-\w+\)", result.stdout), result.stdout
    assert f"originals kept in {libs / '.ctpshim-originals'}" in result.stdout
    assert "undo: ctpshim native uninstall --from openctp --path" in result.stdout
    again = ctpshim("native", "install", "--into", "openctp", "--path", str(site), env=build_env)
    assert again.returncode == 0 and f"{libs / MD_NAME}: already ctpshim build" in again.stdout
    status = ctpshim("native", "status", "--path", str(site), env=build_env)
    assert re.search(rf"  {re.escape(MD_NAME)}: ctpshim build \S+ \(layout ", status.stdout), status.stdout
    assert "sha256 verified" in status.stdout and "preload route: available" in status.stdout
    result = ctpshim("native", "uninstall", "--from", "openctp", "--path", str(site), env=build_env)
    assert result.returncode == 0, result.stderr
    assert "-> official libthostmduserapi_se of openctp-ctp 6.7.11.0 (sha256 verified)" in result.stdout
    assert {name: (libs / name).read_bytes() for name in originals} == originals


def test_install_refuses_an_unknown_file_with_exit_1(site: Path, build_env: dict[str, str]) -> None:
    (site / "openctp_ctp.libs" / MD_NAME).write_bytes(b"not a CTP library")
    result = ctpshim("native", "install", "--into", "openctp", "--path", str(site), env=build_env)
    assert result.returncode == 1
    assert "refusing" in result.stderr and MD_NAME in result.stderr


def test_env_prints_the_preload_and_runs_a_program_with_it(tmp_path: Path, build_env: dict[str, str]) -> None:
    site = copy_openctp(tmp_path / "site", whole=True)
    result = ctpshim("native", "env", "--path", str(site), env=build_env)
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(r"export LD_PRELOAD=(\S+)\n", result.stdout)
    assert match, result.stdout
    md, td = match.group(1).strip("'").split(":")[:2]
    assert Path(md).name == MD_NAME and Path(td).name == TD_NAME
    code = ("from openctp_ctp import mdapi\n"
            "print(sorted({l.split()[-1] for l in open('/proc/self/maps') if 'libthost' in l}))\n"
            "raise SystemExit(7)\n")
    run = ctpshim("native", "env", "--path", str(site), "--", sys.executable, "-c", code,
                  env={**build_env, "PYTHONPATH": str(site)})
    assert run.returncode == 7, run.stderr  # the program's own exit status
    mapped = eval(run.stdout.strip())  # a printed list of paths
    assert sorted(mapped) == sorted([md, td])  # ctpshim's builds only, never the copy's official files


def test_env_for_vnpy_preloads_the_default_sonames(tmp_path: Path, build_env: dict[str, str],
                                                  native_build: Any) -> None:
    site = copy_vnpy(tmp_path / "vnpy-site")
    result = ctpshim("native", "env", "--target", "vnpy", "--path", str(site), env={**build_env, "LD_PRELOAD": ""})
    assert result.returncode == 0, result.stderr
    md, td = Path(native_build.md).resolve(), Path(native_build.td).resolve()
    assert result.stdout == f"export LD_PRELOAD={md}:{td}\n"


# -- run --native ---------------------------------------------------------------------------------


def md_program_args(tmp_path: Path, ticks: int = 1) -> list[str]:
    return [str(MD_PROGRAM), "tcp://180.168.146.187:10131", "rb2701", "--ticks", str(ticks), "--timeout", "60",
            "--out", str(tmp_path / "events.jsonl")]


def events(tmp_path: Path) -> list[str]:
    return (tmp_path / "events.jsonl").read_text(encoding="utf-8").splitlines()


def test_run_native_starts_a_server_for_the_front_and_the_program_gets_a_tick(
        tmp_path: Path, build_env: dict[str, str]) -> None:
    result = ctpshim("run", "--native", "--front", SIM, "--serve", "127.0.0.1:0",
                     *md_program_args(tmp_path, ticks=3), env=build_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(r"started `ctpshim serve sim://\S+` on 127\.0\.0\.1:\d+ \(pid \d+\)", result.stderr)
    lines = events(tmp_path)
    ticks = [line for line in lines if '"OnRtnDepthMarketData"' in line]
    assert len(ticks) >= 3 and '"rb2701"' in ticks[0]
    [loaded] = [json.loads(line)["paths"] for line in lines if '"event": "libraries"' in line]
    assert loaded and all(Path(path).is_relative_to(build_env["CTPSHIM_NATIVE_DIR"]) for path in loaded), loaded
    pid = int(re.search(r"\(pid (\d+)\)", result.stderr).group(1))  # type: ignore[union-attr]
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def test_run_native_uses_a_server_already_answering(tmp_path: Path, build_env: dict[str, str],
                                                    serve_factory: Any) -> None:  # noqa: F811
    server = serve_factory(SIM)
    host, port = server.binary_address
    result = ctpshim("run", "--native", "--serve", f"{host}:{port}", *md_program_args(tmp_path),
                     env=build_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"using the ctpshim server at {host}:{port}" in result.stderr
    assert "started" not in result.stderr
    assert any('"OnRtnDepthMarketData"' in line for line in events(tmp_path))


@pytest.mark.parametrize("kind", ["script", "executable"])
def test_run_native_gives_the_programs_exit_status(tmp_path: Path, build_env: dict[str, str], kind: str,
                                                   serve_factory: Any) -> None:  # noqa: F811
    server = serve_factory(SIM)
    host, port = server.binary_address
    if kind == "script":
        program = tmp_path / "fails.py"
        program.write_text("import os, sys\nprint(os.environ['CTPSHIM_NATIVE_FRONT'])\nsys.exit(5)\n")
        command = [str(program)]
    else:  # any executable runs as it is (a C++ program, a shell script)
        command = ["sh", "-c", 'echo "$CTPSHIM_NATIVE_FRONT"; exit 5']
    result = ctpshim("run", "--native", "--serve", f"{host}:{port}", *command, env=build_env, cwd=tmp_path)
    assert result.returncode == 5, result.stderr
    assert result.stdout.strip() == f"tcp://{host}:{port}"


@pytest.fixture()
def not_a_server() -> Iterator[tuple[str, int]]:
    """A loopback listener that answers every connection with bytes that are no ctpshim frame."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def answer() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            with connection:
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    yield listener.getsockname()[:2]
    stop.set()
    thread.join(5)
    listener.close()


def test_run_native_refuses_an_address_where_something_else_listens(tmp_path: Path,
                                                                    not_a_server: tuple[str, int]) -> None:
    host, port = not_a_server
    program = tmp_path / "p.py"
    program.write_text("raise SystemExit(0)\n")
    result = ctpshim("run", "--native", "--serve", f"{host}:{port}", str(program), cwd=tmp_path)
    assert result.returncode == 1
    assert f"something listens at {host}:{port} but is not a ctpshim server" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--serve", "nowhere"], "--serve = 'nowhere': expected HOST:PORT"),
    (["--own-fronts"], "--native and --own-fronts do not go together"),
    (["--front", "nosuch://x"], "--front"),
])
def test_run_native_bad_usage_exits_2(tmp_path: Path, args: list[str], message: str) -> None:
    program = tmp_path / "p.py"
    program.write_text("raise SystemExit(0)\n")
    result = ctpshim("run", "--native", *args, str(program), cwd=tmp_path)
    assert result.returncode == 2, result
    assert message in result.stderr


def test_run_native_names_a_missing_program(tmp_path: Path) -> None:
    result = ctpshim("run", "--native", "--serve", "127.0.0.1:0", str(tmp_path / "absent.py"), cwd=tmp_path)
    assert result.returncode == 2
    assert "absent.py' not found" in result.stderr


def test_native_is_listed_by_ctpshim_help() -> None:
    result = ctpshim("--help")
    assert result.returncode == 0 and "native" in result.stdout


def test_serve_without_native_is_a_usage_error(tmp_path: Path) -> None:
    program = tmp_path / "p.py"
    program.write_text("raise SystemExit(0)\n")
    result = ctpshim("run", "--serve", "127.0.0.1:7780", str(program), cwd=tmp_path)
    assert result.returncode == 2 and "--serve goes with --native" in result.stderr
