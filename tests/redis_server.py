"""A real ``redis-server`` for the tests: on 127.0.0.1, a free port, a temporary directory.

Use the ``redis_server`` fixture (import it into the test module)::

    from tests.redis_server import redis_server  # noqa: F401  (the fixture)

    def test_something(redis_server):
        ...  redis_server.url  (redis://127.0.0.1:PORT), redis_server.restart()

No persistence unless a test asks (``RedisServer(..., persist=True)`` or the ``persistent_redis_server``
fixture turn the append-only file on).  ``DEBUG`` is enabled for local clients (``DEBUG SLEEP`` makes
a slow Redis).  Where ``redis-server`` is not installed the tests skip and say so; with
``CTPSHIM_REQUIRE_REDIS=1`` (set in CI) they fail instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

REQUIRE_REDIS = os.environ.get("CTPSHIM_REQUIRE_REDIS") == "1"
START_TIMEOUT = 10.0  # s until the server answers PING
STOP_TIMEOUT = 5.0  # s after SIGTERM before SIGKILL


def redis_executable() -> str | None:
    """The ``redis-server`` to run: ``/usr/bin/redis-server`` (Debian's package) or one on PATH."""
    found = shutil.which("redis-server")
    if found:
        return found
    return "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None


def require_redis_server() -> str:
    """The executable; skip the test (fail it with ``CTPSHIM_REQUIRE_REDIS=1``) when there is none."""
    executable = redis_executable()
    if executable is None:
        reason = "redis-server is not installed (Debian: apt-get install redis-server); the Redis tests need a real one"
        if REQUIRE_REDIS:
            pytest.fail(reason + " (CTPSHIM_REQUIRE_REDIS=1)")
        pytest.skip(reason)
    return executable


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ping(port: int, timeout: float = 0.5) -> bool:
    """Whether a Redis on 127.0.0.1:``port`` answers PING (raw RESP, no client library)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as link:
            link.sendall(b"PING\r\n")
            return link.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def server_pid(port: int, timeout: float = 2.0) -> int | None:
    """The process id of the Redis answering on 127.0.0.1:``port`` (``INFO server``)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as link:
            link.sendall(b"INFO server\r\n")
            reply = b""
            while b"process_id:" not in reply or not reply.split(b"process_id:", 1)[1].count(b"\r\n"):
                data = link.recv(65536)
                if not data:
                    return None
                reply += data
    except OSError:
        return None
    return int(reply.split(b"process_id:", 1)[1].split(b"\r\n", 1)[0])


class PortHold:
    """A port kept bound (not listening: connections are refused) until :meth:`release`, so that
    no other process takes it while a test wants it free but unanswered."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.port = int(self._socket.getsockname()[1])

    def release(self) -> None:
        self._socket.close()


class RedisServer:
    """One ``redis-server`` process; :meth:`restart` brings it back on the same port."""

    def __init__(self, executable: str, directory: Path, persist: bool = False, extra: tuple[str, ...] = ()) -> None:
        self.executable = executable
        self.directory = directory
        self.persist = persist
        self.extra = extra  # more redis-server options, e.g. ("--unixsocket", PATH)
        self.host = "127.0.0.1"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}"

    def _command(self) -> list[str]:
        return [self.executable, "--port", str(self.port), "--bind", self.host, "--dir", str(self.directory),
                "--save", "", "--appendonly", "yes" if self.persist else "no", "--daemonize", "no",
                "--logfile", str(self.log), "--databases", "16", "--enable-debug-command", "local", *self.extra]

    def start(self, port: int | None = None) -> None:
        """Start on ``port`` (a free one when None; tried again on another if it was taken meanwhile)."""
        tries = 1 if port is not None else 5
        for _ in range(tries):
            self.port = port if port is not None else free_port()
            self.process = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE)
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                if ping(self.port):
                    owner = server_pid(self.port)
                    if owner == self.process.pid:
                        return
                    if self.process.poll() is not None or owner is not None:
                        break  # another process's Redis holds this port
                    continue
                time.sleep(0.01)
            self.stop()
        raise RuntimeError(f"redis-server did not answer PING on 127.0.0.1:{self.port} within {START_TIMEOUT:g} s "
                           f"(or another process's Redis holds that port); its log: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-5:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after ``STOP_TIMEOUT``)."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)
        if process.stderr is not None:
            process.stderr.close()

    def restart(self, down_for: float = 0.0) -> None:
        """Stop, wait ``down_for`` seconds, start again on the same port (same directory)."""
        port = self.port
        self.stop()
        if down_for:
            time.sleep(down_for)
        self.start(port)

    def client(self) -> Any:
        """A synchronous redis-py client of this server (bytes replies)."""
        import redis

        return redis.Redis(host=self.host, port=self.port, socket_timeout=10)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A running ``redis-server`` for this test, stopped afterwards."""
    server = RedisServer(require_redis_server(), tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def persistent_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """Like ``redis_server``, with the append-only file on: a restart keeps the streams."""
    server = RedisServer(require_redis_server(), tmp_path_factory.mktemp("redis"), persist=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def publisher_settings(url: str, **extra: Any) -> Any:
    """``[redis]`` settings for ``serve_factory(redis=...)``: ``url`` and table keys such as ``grace``,
    ``compat``, ``instruments``.  Keys this version's ``RedisSettings`` lacks are carried by a
    subclass (the publisher reads them with ``getattr``), so the tests run before the settings do."""
    import dataclasses

    from ctpshim.server.settings import RedisSettings, parse_redis

    known = {f.name for f in dataclasses.fields(RedisSettings)}
    settings = parse_redis({"url": url, **{k: v for k, v in extra.items() if k in known}})
    missing = {k: v for k, v in extra.items() if k not in known}
    if not missing:
        return settings
    extended = dataclasses.make_dataclass("TestRedisSettings", [(k, Any, dataclasses.field(default=None))
                                                                for k in missing],
                                          bases=(RedisSettings,), frozen=True)
    return extended(**dataclasses.asdict(settings), **missing)
