"""A plain C++ CTP program (tests/native/cpp/md_client.cpp), compiled against the generated headers
and linked to ctpshim's libthostmduserapi_se.so, on a real server: login, subscription, ticks from
the library's own thread, the front override, a bad front, and the server going away and coming
back on the same port (OnFrontDisconnected, OnFrontConnected, login and ticks again)."""

from __future__ import annotations

import os
import sys
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from ctpshim.native.build import Built, find_compiler

from ..server.conftest import serve_factory  # noqa: F401  (the fixture: a real Server on free ports)

SOURCE = "sim://?start=2026-11-20T09:35&instruments=rb2701,m2701&speed=20"
PROGRAM = Path(__file__).with_name("cpp") / "md_client.cpp"
WAIT = 30.0


def _compile_program(built: Built, source: Path, library: Path, out: Path) -> Path:
    command = [find_compiler(), "-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", "-I", str(built.include),
               str(source), "-o", str(out), "-L", str(built.directory), f"-l:{library.name}",
               f"-Wl,-rpath,{built.directory}", "-pthread"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stderr}"
    return out


@pytest.fixture(scope="module")
def md_client(native_build: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _compile_program(native_build, PROGRAM, native_build.md, tmp_path_factory.mktemp("cpp") / "md_client")


@pytest.fixture(scope="module")
def td_client(native_build: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _compile_program(native_build, PROGRAM.with_name("td_client.cpp"), native_build.td,
                            tmp_path_factory.mktemp("cpp") / "td_client")


class Running:
    """The program as a subprocess; its stdout lines arrive in a queue."""

    def __init__(self, program: Path, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("CTPSHIM_NATIVE_")}
        environment.update(env or {})
        self.process = subprocess.Popen([str(program), *args], cwd=cwd, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=environment, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, prefix: str, timeout: float = WAIT) -> str:
        """The next line starting with ``prefix`` (earlier lines are kept in ``seen``)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line {prefix!r} within {timeout} s; got {self.seen[-20:]}") from None
            if line is None:
                raise AssertionError(f"the program ended before {prefix!r}: {self.seen[-20:]} {self.stderr()}")
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def finish(self, timeout: float = WAIT) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(5)

    def stderr(self) -> str:
        if self.process.poll() is None:
            return ""
        assert self.process.stderr is not None
        return self.process.stderr.read()

    def rest(self) -> list[str]:
        """Every line up to the end (after finish())."""
        while True:
            line = self.lines.get(timeout=WAIT)
            if line is None:
                return self.seen
            self.seen.append(line)


@pytest.fixture
def running() -> Iterator[list[Running]]:
    made: list[Running] = []
    yield made
    for program in made:
        if program.process.poll() is None:
            program.process.kill()
            program.process.wait(5)


def _front(server: Any) -> str:
    host, port = server.binary_address[:2]
    return f"tcp://{host}:{port}"


def test_a_cpp_program_logs_in_subscribes_and_gets_ticks_on_the_librarys_thread(
        md_client: Path, serve_factory: Any, running: list[Running], tmp_path: Path) -> None:  # noqa: F811
    server = serve_factory(SOURCE, http=None)
    program = Running(md_client, [_front(server), "6", "30", "rb2701"], tmp_path)
    running.append(program)
    assert program.expect("version ") == "version v6.7.11_20250617 16:22:00.10369 [main thread]"
    assert program.expect("trading-day-before-login") == "trading-day-before-login 19800100 [main thread]"
    assert program.expect("connected") == "connected 1"
    assert program.expect("login-rc") == "login-rc 0"
    login = program.expect("login ").split()
    assert login[1] == "0" and login[2] == login[3] and len(login[2]) == 8, login  # ErrorID 0; GetTradingDay
    assert login[5:] == ["1", "1"], login  # nRequestID 1, bIsLast
    assert program.expect("subscribe-rc") == "subscribe-rc 0"
    assert program.expect("sub ") == "sub rb2701 0 1"
    program.expect("done")
    program.expect("released")
    assert program.finish() == 0
    ticks = [line.split() for line in program.seen if line.startswith("tick ")]
    assert len(ticks) >= 6
    for tick in ticks:
        assert tick[1] == "rb2701" and tick[2] == login[2], tick  # only the subscribed instrument; its trading day
        assert tick[-1] == "1", tick  # an aligned struct
    assert float(ticks[0][3]) > 0
    callbacks = [line for line in program.seen if line.split()[0] in {"connected", "login", "sub", "tick"}]
    assert callbacks and not [line for line in callbacks if "[main thread]" in line]


def test_a_cpp_trader_program_logs_in_queries_places_and_cancels_an_order(
        td_client: Path, serve_factory: Any, running: list[Running], tmp_path: Path) -> None:  # noqa: F811
    server = serve_factory(f"{SOURCE}&trader.db={tmp_path / 'accounts.sqlite'}", http=None)
    program = Running(td_client, [_front(server), "rb2701", "60"], tmp_path)
    running.append(program)
    assert program.expect("front-info") == f"front-info {_front(server)} [main thread]"
    for step in ("connected", "authenticate-rc 0", "authenticated 0", "login-rc 0"):
        assert program.expect(step.split()[0]) == step
    login = program.expect("login ").split()
    assert login[1] == "0" and login[2] == login[3] == "20261120" and login[4] != "0", login  # GetTradingDay
    assert program.expect("confirmed") == "confirmed 0"
    assert program.expect("instrument ").split()[1:3] == ["rb2701", "SHFE"]
    quote = program.expect("quote ").split()
    assert 0 < float(quote[2]) < float(quote[3]), quote
    assert program.expect("order-rc") == "order-rc 0"
    resting = program.expect("order 1 3").split()
    assert resting[3], resting  # an OrderSysID
    assert program.expect("cancel-rc") == "cancel-rc 0"
    program.expect("order 1 5")
    program.expect("done")
    assert program.finish() == 0
    callbacks = [line for line in program.seen if line.split()[0] in {"connected", "authenticated", "login", "order"}]
    assert not [line for line in callbacks if "[main thread]" in line]


def test_an_exception_thrown_by_a_spi_method_is_logged_and_ticks_go_on(
        md_client: Path, serve_factory: Any, running: list[Running], tmp_path: Path) -> None:  # noqa: F811
    server = serve_factory(SOURCE, http=None)
    program = Running(md_client, [_front(server), "3", "30", "rb2701"], tmp_path, env={"MD_CLIENT_THROW": "1"})
    running.append(program)
    program.expect("sub rb2701")
    program.expect("done")
    assert program.finish() == 0
    assert "a Spi method threw (thrown by OnRspSubMarketData)" in program.stderr()


def test_ctpshim_native_front_replaces_the_registered_front(
        md_client: Path, serve_factory: Any, running: list[Running], tmp_path: Path) -> None:  # noqa: F811
    server = serve_factory(SOURCE, http=None)
    simnow = "tcp://180.168.146.187:10131"  # never dialled: the variable replaces it
    program = Running(md_client, [simnow, "2", "30", "m2701"], tmp_path,
                      env={"CTPSHIM_NATIVE_FRONT": _front(server) + "/sim"})
    running.append(program)
    program.expect("connected 1")
    program.expect("sub m2701 0 1")
    program.expect("done")
    assert program.finish() == 0
    assert "180.168.146.187" not in program.stderr()


def test_the_token_comes_from_the_address_or_ctpshim_native_token(
        md_client: Path, serve_factory: Any, running: list[Running], tmp_path: Path) -> None:  # noqa: F811
    server = serve_factory(SOURCE, http=None, tokens=["s3cret-alice:alice"])
    refused = Running(md_client, [_front(server), "1", "3", "rb2701"], tmp_path)
    with_address = Running(md_client, [_front(server) + "?token=s3cret-alice", "1", "30", "rb2701"], tmp_path)
    with_variable = Running(md_client, [_front(server), "1", "30", "rb2701"], tmp_path,
                            env={"CTPSHIM_NATIVE_TOKEN": "s3cret-alice"})
    running.extend([refused, with_address, with_variable])
    for program in (with_address, with_variable):
        program.expect("connected 1")
        program.expect("done")
        assert program.finish() == 0
    refused.expect("timeout", timeout=15)
    assert refused.finish() == 2
    stderr = refused.stderr()
    assert "refused the connection" in stderr and "-401" in stderr, stderr


def test_a_bad_front_is_named_on_stderr_and_never_connects(
        md_client: Path, running: list[Running], tmp_path: Path) -> None:
    program = Running(md_client, ["udp://127.0.0.1:1", "1", "2", "rb2701"], tmp_path)
    running.append(program)
    program.expect("timeout", timeout=15)
    assert program.finish() == 2
    stderr = program.stderr()
    assert 'front address "udp://127.0.0.1:1"' in stderr and "tcp://HOST:PORT" in stderr, stderr
    assert not [line for line in program.rest() if line.startswith("connected")]


def test_an_unknown_source_is_refused_with_the_servers_message(
        md_client: Path, serve_factory: Any, running: list[Running], tmp_path: Path) -> None:  # noqa: F811
    server = serve_factory(SOURCE, http=None)
    program = Running(md_client, [_front(server) + "/nosuch", "1", "3", "rb2701"], tmp_path)
    running.append(program)
    program.expect("timeout", timeout=15)
    assert program.finish() == 2
    stderr = program.stderr()
    assert "refused the connection" in stderr and "nosuch" in stderr and "-404" in stderr, stderr


def test_the_server_going_away_and_coming_back_on_the_same_port(
        md_client: Path, serve_factory: Any, running: list[Running], tmp_path: Path) -> None:  # noqa: F811
    server = serve_factory(SOURCE, http=None)
    host, port = server.binary_address[:2]
    program = Running(md_client, [f"tcp://{host}:{port}", "3", "60", "--reconnect", "rb2701"], tmp_path)
    running.append(program)
    program.expect("connected 1")
    program.expect("tick rb2701")
    server.stop(5.0)
    assert program.expect("disconnected") == "disconnected 4097"
    serve_factory(SOURCE, http=None, listen=(host, port))
    assert program.expect("connected") == "connected 2"
    assert program.expect("login-rc") == "login-rc 0"
    assert program.expect("login ").split()[1] == "0"
    program.expect("sub rb2701 0 1")
    program.expect("tick rb2701")
    program.expect("done")
    assert program.finish() == 0


def test_a_cpp_program_may_return_from_main_without_release(
        md_client: Path, serve_factory: Any, running: list[Running], tmp_path: Path) -> None:  # noqa: F811
    server = serve_factory("sim://?start=2026-11-20T09:35&instruments=rb2701,m2701&speed=200", http=None)
    for _ in range(3):
        program = Running(md_client, [_front(server), "20", "30", "rb2701", "m2701"], tmp_path,
                          env={"MD_CLIENT_NO_RELEASE": "1"})
        running.append(program)
        program.expect("exit-without-release")
        assert program.finish() == 0, program.stderr()


def test_the_codec_reads_and_writes_the_golden_vectors(native_build: Built, tmp_path: Path) -> None:
    """native/src's frames, CALL/CALLBACK encodings, JSON, front parsing and HELLO against
    tests/wire/vectors (tests/native/cpp/wire_test.cpp; malformed frames too)."""
    sources = Path(__file__).resolve().parents[2] / "native" / "src"
    gen = native_build.include.parent / "gen"
    objects = sorted(native_build.directory.glob("obj-*"))  # the build's own objects: only the test compiles
    assert len(objects) == 1, objects
    out = tmp_path / "wire_test"
    command = [find_compiler(), "-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror", "-I", str(native_build.include),
               "-I", str(gen), "-I", str(sources), str(PROGRAM.with_name("wire_test.cpp")),
               *(str(objects[0] / name) for name in ("wire.o", "json.o", "session.o", "pin.o", "ctpshim_md_callbacks.o")),
               "-o", str(out), "-pthread", "-ldl"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stderr}"
    vectors = Path(__file__).resolve().parents[1] / "wire" / "vectors"
    ran = subprocess.run([str(out), str(vectors)], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0 and "failed 0" in ran.stdout, ran.stdout + ran.stderr


# -- the lifecycle under an unmodified openctp-ctp program (the preload route) -------------------

LIFECYCLE = r'''
import sys, threading, time
from openctp_ctp import mdapi
front, mode = sys.argv[1], sys.argv[2]
got = threading.Event()
count = [0]
class Spi(mdapi.CThostFtdcMdSpi):
    def OnFrontConnected(self):
        api.SubscribeMarketData([b"rb2701", b"m2701"], 2)
    def OnRtnDepthMarketData(self, tick):
        count[0] += 1
        if mode == "release-in-callback" and count[0] == 3:
            api.Release()
            print("released-inside", threading.current_thread() is not threading.main_thread(), flush=True)
        if count[0] >= 3:
            got.set()
api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi("")
spi = Spi()
api.RegisterSpi(spi)
api.RegisterFront(front)
api.Init()
print("ticks", got.wait(30), flush=True)
if mode == "release-in-callback":
    seen = count[0]
    # the released object's callback thread ending: after it no callback can come
    import glob
    def spi_thread_alive():
        for comm in glob.glob("/proc/self/task/*/comm"):
            try:
                if open(comm).read().strip() == "ctpshim-md-spi":
                    return True
            except OSError:
                pass
        return False
    deadline = time.monotonic() + 5
    while spi_thread_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    print("spi-thread-ended", not spi_thread_alive(), flush=True)
    print("after-release", count[0] - seen, flush=True)
elif mode == "null-spi":
    api.RegisterSpi(None)
    started = time.monotonic()
    api.Release()
    print("release-seconds", round(time.monotonic() - started, 3), flush=True)
elif mode == "join":
    threading.Timer(0.2, api.Release).start()
    started = time.monotonic()
    print("join", api.Join(), round(time.monotonic() - started, 3), flush=True)
print("end", flush=True)
'''
FAST_SOURCE = "sim://?start=2026-11-20T09:35&instruments=rb2701,m2701&speed=200"


def _lifecycle(native_preload: Built, front: str, mode: str, tmp_path: Path, pin: str = "1") -> tuple[int, str, str]:
    from .conftest import preload_env

    environment = {k: v for k, v in os.environ.items() if not k.startswith("CTPSHIM_NATIVE_")}
    environment.update(preload_env(native_preload))
    environment["CTPSHIM_NATIVE_PIN"] = pin
    done = subprocess.run([sys.executable, "-c", LIFECYCLE, front, mode], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, env=environment)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("pin", ["1", "0"])
def test_interpreter_exit_without_release_while_ticks_flow(
        native_preload: Built, serve_factory: Any, tmp_path: Path, pin: str) -> None:  # noqa: F811
    server = serve_factory(FAST_SOURCE, http=None)
    for _ in range(3):
        rc, out, err = _lifecycle(native_preload, _front(server), "exit", tmp_path, pin)
        assert rc == 0 and "ticks True" in out and out.rstrip().endswith("end"), (rc, out, err)


def test_release_from_inside_a_callback(native_preload: Built, serve_factory: Any, tmp_path: Path) -> None:  # noqa: F811
    server = serve_factory(FAST_SOURCE, http=None)
    rc, out, err = _lifecycle(native_preload, _front(server), "release-in-callback", tmp_path)
    assert rc == 0, (out, err)
    assert "released-inside True" in out and "spi-thread-ended True" in out and "after-release 0" in out, out


def test_release_after_a_null_spi_is_quick(native_preload: Built, serve_factory: Any, tmp_path: Path) -> None:  # noqa: F811
    server = serve_factory(FAST_SOURCE, http=None)
    rc, out, err = _lifecycle(native_preload, _front(server), "null-spi", tmp_path)
    assert rc == 0, (out, err)
    seconds = float(out.split("release-seconds ")[1].split()[0])
    assert seconds < 2.0, out


def test_join_returns_when_another_thread_releases(native_preload: Built, serve_factory: Any,
                                                   tmp_path: Path) -> None:  # noqa: F811
    server = serve_factory(FAST_SOURCE, http=None)
    rc, out, err = _lifecycle(native_preload, _front(server), "join", tmp_path)
    assert rc == 0, (out, err)
    join = out.split("join ")[1].split()
    assert join[0] == "0" and 0.15 <= float(join[1]) < 5.0, out


# -- the connection's rules against a hand-driven peer ---------------------------------------------

class Peer:
    """A minimal binary-protocol server on a free port.  ``script(index)`` says what connection
    ``index`` (0, 1, ...) gets after its HELLO: ``"silent"`` (HELLO_ACK, then nothing at all),
    ``"error"`` (HELLO_ACK, then ERROR with Reason 8195), ``"bad-frame"`` (HELLO_ACK, then a frame of
    type 77), ``"refuse-503"`` (ERROR -503 instead of HELLO_ACK), ``"serve"`` (HELLO_ACK, a RESULT 0
    for every CALL, OnRspUserLogin(NULL, NULL) after ReqUserLogin's, HEARTBEATs every 0.1 s), ``"flood"`` (as serve, and after the first
    SubscribeMarketData ``flood`` ticks of rb2701 in TICK_BATCH frames of 100, from a thread of their
    own).  The heartbeat interval in HELLO_ACK is ``heartbeat``."""

    def __init__(self, scripts: list[str], heartbeat: float = 0.3, flood: int = 0) -> None:
        import socket

        self.scripts = scripts
        self.flood = flood
        self.flood_done = threading.Event()
        self.heartbeat = heartbeat
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.received: list[list[int]] = []  # frame types received, per connection
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    @property
    def front(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join(5)
        self.listener.close()

    def _accept(self) -> None:
        import socket

        index = 0
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            script = self.scripts[min(index, len(self.scripts) - 1)]
            self.received.append([])
            thread = threading.Thread(target=self._serve, args=(conn, script, self.received[-1]), daemon=True)
            self.threads.append(thread)
            thread.start()
            index += 1

    def _serve(self, conn: Any, script: str, received: list[int]) -> None:
        import select

        from ctpshim.wire import calls, frames, handshake

        seq = [0]
        lock = threading.Lock()

        def send(kind: int, payload: bytes = b"", request_id: int = 0) -> None:
            flags = frames.FLAG_LAST if kind == frames.FrameType.CALLBACK else 0
            with lock:
                seq[0] += 1
                conn.sendall(frames.encode_frame(kind, payload, seq=seq[0], request_id=request_id, flags=flags))

        def flood() -> None:
            tick = bytes.fromhex((Path(__file__).resolve().parents[1] / "wire" / "vectors" /
                                  "30_tick_struct.hex").read_text())
            batch = (100).to_bytes(2, "little") + tick * 100
            try:
                for _ in range(self.flood // 100):
                    send(frames.FrameType.TICK_BATCH, batch)
            except OSError:
                return
            self.flood_done.set()

        reader = frames.FrameReader()
        conn.setblocking(True)  # sends may wait for the library to read; receives are polled
        acked = False
        last_beat = time.monotonic()
        try:
            while not self.stopped.is_set():
                readable, _, _ = select.select([conn], [], [], 0.1)
                data = conn.recv(65536) if readable else None
                if data == b"":
                    return
                for frame in reader.feed(data or b""):
                    received.append(frame.type)
                    if frame.type == frames.FrameType.HELLO and not acked:
                        if script == "refuse-503":
                            send(frames.FrameType.ERROR, handshake.ErrorInfo(-503, "source not connected", 4097).encode())
                            return
                        ack = handshake.HelloAck(layout=handshake.Hello.decode(frame.payload).layout,
                                                 heartbeat=self.heartbeat, server_time="", trading_day="20261204",
                                                 source="peer", front_id=1, session_id=2)
                        send(frames.FrameType.HELLO_ACK, ack.encode())
                        acked = True
                        if script == "error":
                            send(frames.FrameType.ERROR, handshake.ErrorInfo(-400, "a test error", 8195).encode())
                            return
                        if script == "bad-frame":
                            seq[0] += 1
                            conn.sendall(frames.HEADER.pack(12, 77, 0, 0, seq[0], 0))
                    elif frame.type == frames.FrameType.CALL and script in ("serve", "flood"):
                        send(frames.FrameType.RESULT, calls.encode_result(0, frame.seq), frame.request_id)
                        if frame.payload[1:13] == b"ReqUserLogin":  # OnRspUserLogin(NULL, NULL, id, true)
                            send(frames.FrameType.CALLBACK, b"\x0eOnRspUserLogin\x00\x00", frame.request_id)
                        if script == "flood" and frame.payload[1:20] == b"SubscribeMarketData":
                            script = "serve"
                            sender = threading.Thread(target=flood, daemon=True)
                            self.threads.append(sender)
                            sender.start()
                if script in ("serve", "flood") and acked and time.monotonic() - last_beat > 0.1:
                    send(frames.FrameType.HEARTBEAT)
                    last_beat = time.monotonic()
        except OSError:
            return
        finally:
            conn.close()


@pytest.fixture
def peers() -> Iterator[list[Peer]]:
    made: list[Peer] = []
    yield made
    for peer in made:
        peer.stop()


def test_a_silent_server_is_warned_of_after_two_heartbeats_left_after_three_with_0x2001_then_reconnected(
        md_client: Path, running: list[Running], peers: list[Peer], tmp_path: Path) -> None:
    peer = Peer(["silent", "serve"], heartbeat=0.3)
    peers.append(peer)
    program = Running(md_client, [peer.front, "0", "30", "--reconnect", "rb2701"], tmp_path)
    running.append(program)
    program.expect("connected 1")
    started = time.monotonic()
    assert program.expect("heartbeat-warning") == "heartbeat-warning 1"  # 0.6-0.9 s of silence, in whole seconds
    assert program.expect("disconnected") == "disconnected 8193"
    assert 0.8 <= time.monotonic() - started < 10
    assert program.expect("connected") == "connected 2"
    program.expect("done")
    assert program.finish() == 0
    assert frames_of(peer, 0).count(3) >= 2, peer.received  # the library's HEARTBEATs while the server was silent


def frames_of(peer: Peer, index: int) -> list[int]:
    return list(peer.received[index]) if index < len(peer.received) else []


def reconnected_after(script: list[str], disconnect: str, md_client: Path, running: list[Running],
                      peers: list[Peer], tmp_path: Path) -> Running:
    """The C++ md program on a scripted peer whose first connection ends as ``script`` says: it reports
    ``disconnect``, connects again and finishes on the second connection."""
    peer = Peer(script)
    peers.append(peer)
    program = Running(md_client, [peer.front, "0", "30", "--reconnect", "rb2701"], tmp_path)
    running.append(program)
    program.expect("connected 1")
    assert program.expect("disconnected") == disconnect
    assert program.expect("connected") == "connected 2"
    program.expect("done")
    assert program.finish() == 0
    return program


def test_an_error_frame_reports_its_reason(md_client: Path, running: list[Running], peers: list[Peer],
                                           tmp_path: Path) -> None:
    program = reconnected_after(["error", "serve"], "disconnected 8195", md_client, running, peers, tmp_path)
    assert "a test error" in program.stderr()


def test_a_malformed_frame_gives_0x2003(md_client: Path, running: list[Running], peers: list[Peer],
                                        tmp_path: Path) -> None:
    program = reconnected_after(["bad-frame", "serve"], "disconnected 8195", md_client, running, peers, tmp_path)
    assert "unknown frame type 77" in program.stderr()


def test_a_full_queue_stops_reading_but_a_call_from_a_callback_still_gets_its_result(
        md_client: Path, running: list[Running], peers: list[Peer], tmp_path: Path) -> None:
    """With the queue bounded at 1 MiB and the first tick's callback blocked, the library stops
    reading (the peer's sends stall); a ReqUserLogout from inside that callback still gets its RESULT,
    and every tick arrives, none lost."""
    count = 20_000  # 11.7 MB of ticks
    peer = Peer(["flood"], heartbeat=5.0, flood=count)
    peers.append(peer)
    program = Running(md_client, [peer.front, str(count), "60", "rb2701"], tmp_path,
                      env={"CTPSHIM_NATIVE_QUEUE_BYTES": str(1 << 20), "MD_CLIENT_BLOCK_MS": "1500",
                           "MD_CLIENT_QUIET": "1"})
    running.append(program)
    program.expect("connected 1")
    program.expect("subscribe-rc 0")
    assert not peer.flood_done.wait(1.0), "the library read everything while its callback was blocked"
    assert program.expect("logout-rc") == "logout-rc 0"
    assert peer.flood_done.wait(WAIT)
    program.expect("done")
    assert program.expect("ticks") == f"ticks {count} [main thread]"
    assert program.finish() == 0


def test_a_hello_refused_with_503_is_retried_quietly(md_client: Path, running: list[Running], peers: list[Peer],
                                                     tmp_path: Path) -> None:
    peer = Peer(["refuse-503", "refuse-503", "serve"])
    peers.append(peer)
    program = Running(md_client, [peer.front, "0", "30", "rb2701"], tmp_path)
    running.append(program)
    assert program.expect("connected") == "connected 1"
    program.expect("done")
    assert program.finish() == 0
    assert len(peer.received) >= 3
    assert not [line for line in program.seen if line.startswith("disconnected")]
    assert "source not connected" not in program.stderr()
