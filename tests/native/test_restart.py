"""The server killed under unmodified openctp-ctp programs on ctpshim's native libraries, then
started again on the same port: OnFrontDisconnected with CTP's reason (4097, 0x1001: the connection
reset), the library reconnecting by itself, OnFrontConnected, the program's own login (and
subscription) again, and ticks / answers again. The server is ``ctpshim serve`` in a process of its
own, killed with SIGKILL (no BYE: the kernel resets the sockets)."""

from __future__ import annotations

import queue
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, Iterator

import pytest

from .programs.harness import WAIT, Program, check_real_openctp, clean_environment, native_env, run_program  # noqa: F401

INSTRUMENT = "ru1901"
REPO = Path(__file__).resolve().parents[2]
CONNECTION_RESET = 0x1001  # 4097: CTP's "network read failure"


class ServeProcess:
    """``python -m ctpshim serve SOURCE --listen 127.0.0.1:PORT`` on a fixed free port: killable, restartable."""

    def __init__(self, source: str, home: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.home = home
        self.args = [sys.executable, "-m", "ctpshim", "serve", f"main={source}", "--listen", f"127.0.0.1:{self.port}",
                     "--http", "off", "--status", "off", "--home", str(home)]
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.start()

    def start(self) -> None:
        """Start it and return once it says it is listening (bounded)."""
        self.starts += 1
        stderr = open(self.home.with_name(f"{self.home.name}-serve{self.starts}.stderr"), "wb")
        self.stderr_path = Path(stderr.name)
        environment = {**clean_environment(), "PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=stderr, env=environment)
        stderr.close()
        lines: queue.Queue[str | None] = queue.Queue()

        def read(stream: object) -> None:
            for raw in stream:  # type: ignore[attr-defined]
                lines.put(raw.decode("utf-8", "replace"))
            lines.put(None)

        threading.Thread(target=read, args=(self.process.stdout,), daemon=True).start()
        while True:
            try:
                line = lines.get(timeout=30)
            except queue.Empty:
                raise AssertionError(f"ctpshim serve did not listen within 30 s: {self.stderr()}") from None
            if line is None:
                raise AssertionError(f"ctpshim serve ended: {self.stderr()}")
            if f"listening on ctpshim://127.0.0.1:{self.port}" in line:
                return

    def stderr(self) -> str:
        return self.stderr_path.read_text("utf-8", "replace")[-3000:]

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # SIGKILL
            self.process.wait(10)

    @property
    def front(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[Callable[[str], ServeProcess]]:
    made: list[ServeProcess] = []

    def make(source: str) -> ServeProcess:
        made.append(ServeProcess(source, tmp_path / f"home{len(made)}"))
        return made[-1]

    yield make
    for served in made:
        served.kill()


def replay_source(tmp_path: Path) -> str:
    return f"replay://?rebase=none&speed=50&gaps=skip&trader.db={tmp_path / 'accounts.sqlite'}&trader.flow_control=false"


def count(name: str, at_least: int) -> Callable[[list[dict]], bool]:
    return lambda records: sum(r["event"] == name for r in records) >= at_least


def kill_and_restart(served: ServeProcess, program: Program) -> None:
    """SIGKILL the server under the program, start it again on its port, let the program finish: it
    ran on the real openctp-ctp and saw exactly one disconnect, a connection reset."""
    served.kill()
    program.wait_for(count("OnFrontDisconnected", 1), "OnFrontDisconnected")
    served.start()
    assert program.finish(60) == 0, program.describe()
    check_real_openctp(program)
    assert [r["args"] for r in program.events("OnFrontDisconnected")] == [[CONNECTION_RESET]]


def test_md_program_disconnected_by_a_kill_reconnects_logs_in_and_gets_ticks_again(
        serve_process, run_program, tmp_path):  # noqa: F811
    served = serve_process(replay_source(tmp_path))
    program = run_program("md_program.py", served.front, INSTRUMENT, "--logins", "2", "--ticks", "5",
                          "--timeout", "60")
    program.wait_for(count("OnRtnDepthMarketData", 3), "ticks before the kill")
    kill_and_restart(served, program)
    names = program.names()
    assert names.count("OnFrontConnected") == 2 and names.count("OnRspUserLogin") == 2, names
    cut = names.index("OnFrontDisconnected")
    again = names[cut:]
    assert again.index("OnFrontConnected") < again.index("OnRspUserLogin") < again.index("OnRspSubMarketData") \
        < again.index("OnRtnDepthMarketData")
    assert again.count("OnRtnDepthMarketData") >= 5
    assert all(r["args"][1]["ErrorMsg"] == "CTP:正确" for r in program.events("OnRspUserLogin"))
    assert all(c["rc"] == 0 for c in program.events("call"))


def test_td_program_disconnected_by_a_kill_reconnects_and_logs_in_again(serve_process, run_program, tmp_path):  # noqa: F811
    served = serve_process(replay_source(tmp_path))
    program = run_program("td_program.py", served.front, "--mode", "login", "--logins", "2", "--user", "h4-restart",
                          "--timeout", "60")
    program.wait_for(count("OnRspSettlementInfoConfirm", 1), "the first login and confirmation")
    kill_and_restart(served, program)
    names = program.names()
    for name in ("OnFrontConnected", "OnRspAuthenticate", "OnRspUserLogin", "OnRspSettlementInfoConfirm"):
        assert names.count(name) == 2, (name, names)
    logins = [r["args"][0] for r in program.events("OnRspUserLogin")]
    assert logins[0]["TradingDay"] == logins[1]["TradingDay"] == "20181009"
    account = [r["args"] for r in program.records if r["event"] == "OnRspQryTradingAccount"]
    assert len(account) == 1 and account[0][0]["AccountID"] == "h4-restart"
    assert names.index("OnFrontDisconnected") < len(names) - 1 - names[::-1].index("OnFrontConnected")
