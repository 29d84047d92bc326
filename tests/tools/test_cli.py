"""`ctpshim run` runs unmodified openctp-ctp programs; bad usage exits 2 with a clear message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROGRAMS = Path(__file__).parents[1] / "programs"
FRONT = "sim://?start=2026-11-20T09:35&speed=20"


def ctpshim(*args: str, cwd: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "CTPSHIM_FRONT"}
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "ctpshim", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env=environment)


def test_an_unedited_openctp_program_runs_on_the_simulated_market(tmp_path):
    result = ctpshim("run", "--front", FRONT, str(PROGRAMS / "openctp_md_program.py"), "6", cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "trading day 20261120"
    ticks = [line.split() for line in lines if line.startswith("tick ")]
    assert len(ticks) >= 6
    assert {(t[1], t[2]) for t in ticks} == {("rb2701", "SHFE"), ("TA701", "CZCE")}
    assert lines[-1].startswith("done")
    assert (tmp_path / "DialogRsp.con").exists()  # CreateFtdcMdApi() with the empty flow path


def test_the_default_front_is_the_simulated_market_and_the_environment_can_choose(tmp_path):
    result = ctpshim("run", str(PROGRAMS / "openctp_md_program.py"), "2", cwd=str(tmp_path),
                     env={"CTPSHIM_FRONT": "sim://?start=2026-11-20T09:35&speed=50&seed=3"})
    assert result.returncode == 0 and "trading day 20261120" in result.stdout
    result = ctpshim("run", str(PROGRAMS / "openctp_md_program.py"), "2", cwd=str(tmp_path))
    assert result.returncode == 0 and "done" in result.stdout


def test_bare_swig_module_names_and_module_mode(tmp_path):
    result = ctpshim("run", str(PROGRAMS / "bare_swig_names.py"), cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "modules ctpshim.mdapi ctpshim.tdapi" in result.stdout
    result = ctpshim("run", "-m", "tests.programs.bare_swig_names", cwd=str(Path(__file__).parents[2]))
    assert result.returncode == 0, result.stderr


def test_a_program_that_exits_in_a_callback_ends_the_process_with_its_code(tmp_path):
    program = tmp_path / "exits.py"
    program.write_text(
        "import threading\n"
        "from openctp_ctp import mdapi\n"
        "class Spi(mdapi.CThostFtdcMdSpi):\n"
        "    def OnFrontConnected(self):\n"
        "        exit(-1)\n"
        "api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi()\n"
        "spi = Spi(); api.RegisterSpi(spi); api.RegisterFront('tcp://1.2.3.4:5'); api.Init()\n"
        "threading.Event().wait(30)\n"
    )
    result = ctpshim("run", "--front", FRONT, str(program), cwd=str(tmp_path))
    assert result.returncode == 255
    assert "SystemExit(-1)" in result.stderr


def test_usage_errors_exit_2_and_name_the_problem(tmp_path):
    result = ctpshim("run", "--front", "sim://?speed=0", str(PROGRAMS / "openctp_md_program.py"))
    assert result.returncode == 2 and "speed='0'" in result.stderr
    result = ctpshim("run", "--front", "bogus://", str(PROGRAMS / "openctp_md_program.py"))
    assert result.returncode == 2 and "unknown scheme 'bogus'" in result.stderr and "sim://" in result.stderr
    result = ctpshim("run", str(tmp_path / "missing.py"))
    assert result.returncode == 2 and "not found" in result.stderr
    result = ctpshim("nonsense")
    assert result.returncode == 2


def test_schemes_lists_every_setting():
    result = ctpshim("schemes")
    assert result.returncode == 0
    for name in ("sim://", "instruments", "seed", "speed", "hours", "dates", "disconnect_after", "refuse"):
        assert name in result.stdout
    # each scheme is described by what its address gives, not by the module that defines its class
    described = [line for line in result.stdout.splitlines() if "://  " in line]
    assert any(line.startswith("sim://  ``sim://``: a simulated futures market") for line in described)
    assert all(line.split("://", 1)[0] in line.split("://  ", 1)[1] for line in described if "not in this version" not in line)


def test_a_bad_ctpshim_front_is_a_usage_error_naming_the_variable(tmp_path):
    result = ctpshim("run", str(PROGRAMS / "openctp_md_program.py"), "2", cwd=str(tmp_path),
                     env={"CTPSHIM_FRONT": "sim://?speed=fast"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("ctpshim run: CTPSHIM_FRONT='sim://?speed=fast'")
    assert "--front" not in result.stderr  # the front came from the environment, not the option


def test_a_program_that_cannot_be_run_is_a_one_line_usage_error(tmp_path):
    os.mkfifo(tmp_path / "pipe.py")  # opening it to read would wait for a writer forever
    cases = [
        (["-m", "no_such_package.module"], "module 'no_such_package.module' not found"),
        (["-m", "json"], "'json' is a package without a __main__ module"),
        ([str(tmp_path)], "is not a regular file"),
        ([str(tmp_path / "pipe.py")], "is not a regular file"),
    ]
    for args, words in cases:
        result = ctpshim("run", *args, cwd=str(tmp_path))
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr and words in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
