"""``ctpshim serve`` as a real process: it prints where it listens, serves a client, and stops
cleanly on SIGTERM and SIGINT (exit 0, the client sees the disconnect); bad settings exit 2 with
the bad value named, an address in use exits 1."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for

WAIT = 30.0
TLS = Path(__file__).resolve().parents[1] / "data" / "tls"


class ServeProcess:
    """``python -m ctpshim serve ...`` with its output read on threads (nothing blocks unbounded)."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ctpshim", "serve", "--status", "log", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        for stream, into in ((self.process.stdout, self.stdout), (self.process.stderr, self.stderr)):
            threading.Thread(target=self._read, args=(stream, into), daemon=True).start()

    def _read(self, stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line)
            self.lines.put(line)

    def wait_for_line(self, pattern: str) -> re.Match[str]:
        deadline = time.monotonic() + WAIT
        for line in list(self.stdout) + list(self.stderr):
            found = re.search(pattern, line)
            if found:
                return found
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.process.poll() is not None and self.lines.empty():
                raise AssertionError(f"no line matching {pattern!r}; stdout: {''.join(self.stdout)!r} "
                                     f"stderr: {''.join(self.stderr)!r}")
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            found = re.search(pattern, line)
            if found:
                return found

    def addresses(self) -> dict[str, tuple[str, int]]:
        self.wait_for_line(r"^sources: ")
        found = {}
        for line in self.stdout:
            match = re.match(r"listening on (ctpshims|ctpshim|https|http)://([\d.]+):(\d+)", line)
            if match:
                found[match.group(1)] = (match.group(2), int(match.group(3)))
        return found

    def finish(self, sig: int | None = None) -> int:
        if sig is not None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(WAIT)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(WAIT)

    def output(self) -> str:
        return "".join(self.stdout) + "".join(self.stderr)


@pytest.fixture
def serve_process() -> Any:
    made: list[ServeProcess] = []

    def start(*args: str) -> ServeProcess:
        process = ServeProcess(*args)
        made.append(process)
        return process

    yield start
    for process in made:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait(WAIT)


def get_json(address: tuple[str, int], path: str) -> Any:
    with urllib.request.urlopen(f"http://{address[0]}:{address[1]}{path}", timeout=WAIT) as response:
        return json.loads(response.read())


async def websocket_sees_the_disconnect(address: tuple[str, int], process: ServeProcess, sig: int) -> Any:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"http://{address[0]}:{address[1]}/md/") as ws:
            await asyncio.to_thread(wait_for, lambda: get_json(address, "/health")["clients"].get("webctp-md"),
                                    WAIT, "the server to list the WebSocket client")
            process.process.send_signal(sig)
            for _ in range(1000):  # pings may come first
                message = await asyncio.wait_for(ws.receive(), WAIT)
                if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING,
                                    aiohttp.WSMsgType.ERROR):
                    return message.type
    raise AssertionError("the WebSocket client never saw the server close")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_cleanly_on_a_signal_and_its_clients_see_the_disconnect(serve_process: Any, sig: int) -> None:
    process = serve_process("sim://?hours=always", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
    addresses = process.addresses()
    assert "http" in addresses, process.output()
    health = get_json(addresses["http"], "/health")
    assert list(health["sources"]) == ["sim"]
    raw = None
    if "ctpshim" in addresses:  # the binary endpoint: a plain TCP client sees the end of the stream
        raw = socket.create_connection(addresses["ctpshim"], timeout=WAIT)
    closed = asyncio.run(websocket_sees_the_disconnect(addresses["http"], process, sig))
    assert closed is not None
    assert process.finish() == 0, process.output()
    if raw is not None:
        with raw:
            while raw.recv(65536):
                pass
    name = signal.Signals(sig).name
    stopping = re.search(rf"stopping \({name}\): disconnecting (\d+) client", process.output())
    assert stopping is not None and int(stopping.group(1)) >= 1, process.output()
    assert "stopped" in "".join(process.stderr)


def test_serve_reads_a_config_file_and_the_flags_override_it(serve_process: Any, tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text('listen = "127.0.0.1:0"\nhttp = "off"\n[sources]\nfast = "sim://?hours=always"\n'
                      'slow = "sim://?hours=always&interval=2"\n[limits]\nmax_subscriptions = 5\n', encoding="utf-8")
    process = serve_process("--config", str(config), "--http", "127.0.0.1:0", "--max-clients", "3")
    addresses = process.addresses()
    assert "sources: fast = sim://?hours=always, slow = sim://?hours=always&interval=2 (default: fast)" \
        in process.output()
    assert list(get_json(addresses["http"], "/health")["sources"]) == ["fast", "slow"]
    assert process.finish(signal.SIGTERM) == 0, process.output()


def test_serve_with_tls_prints_the_tls_addresses_and_serves_https(serve_process: Any) -> None:
    import ssl
    import urllib.request

    process = serve_process("sim://?hours=always", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
                            "--tls-cert", str(TLS / "localhost.pem"), "--tls-key", str(TLS / "localhost.key"))
    addresses = process.addresses()
    assert set(addresses) == {"ctpshims", "https"}, process.output()
    host, port = addresses["https"]
    context = ssl.create_default_context(cafile=str(TLS / "localhost.pem"))
    with urllib.request.urlopen(f"https://{host}:{port}/health", context=context, timeout=WAIT) as response:
        assert json.loads(response.read())["sources"]["sim"]["url"] == "sim://?hours=always"
    assert process.finish(signal.SIGTERM) == 0, process.output()


def run_serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ctpshim", "serve", "--status", "off", *args],
                          capture_output=True, text=True, timeout=WAIT)


@pytest.mark.parametrize("args, message", [
    (["--listen", "7780"], "--listen = '7780': expected HOST:PORT"),
    (["--listen", "0.0.0.0:0", "--http", "off"], "binding beyond loopback needs at least one token"),
    (["--max-subscriptions", "0"], "--max-subscriptions = '0': expected an integer from 1 to 1000000"),
    (["--write-deadline", "soon"], "--write-deadline = 'soon': expected a number from 0.05 to 3600"),
    (["--token", "short"], "at least 8 characters"),
    (["--config", "/nonexistent/serve.toml"], "no such file"),
    (["nosuchscheme://x", "--listen", "127.0.0.1:0", "--http", "off"], "nosuchscheme"),
    (["--status-interval", "0"], "--status-interval"),
    (["--tls-cert", "/nonexistent/server.pem", "--tls-key", "/nonexistent/server.key"],
     "--tls-cert = '/nonexistent/server.pem': no such file"),
    (["--tls-cert", str(TLS / "localhost.pem"), "--tls-key", str(TLS / "otherhost.key")],
     "is not the key of --tls-cert"),
    (["--tls-cert", str(TLS / "localhost.pem")], "without its key"),
    (["--connection-rate", "-1"], "--connection-rate = '-1': expected an integer from 0 to 1000000"),
    (["--redis-compat", "ctpbee"], "--redis-compat needs --redis URL"),
])
def test_bad_settings_exit_2_naming_the_value(args: list[str], message: str) -> None:
    result = run_serve(*args)
    assert result.returncode == 2, result
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_an_address_in_use_exits_1_with_the_reason() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_serve("--listen", "127.0.0.1:0", "--http", f"127.0.0.1:{port}")
    assert result.returncode == 1, result
    assert f"127.0.0.1:{port}" in result.stderr and "cannot listen" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_is_listed_by_ctpshim_help() -> None:
    result = subprocess.run([sys.executable, "-m", "ctpshim", "--help"], capture_output=True, text=True, timeout=WAIT,
                            env={**os.environ, "COLUMNS": "200"})
    assert "serve" in result.stdout
