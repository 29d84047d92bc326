"""What the ``ctpshim serve`` benchmarks share (bench/serve_binary.py, serve_websocket.py, serve_redis.py).

Every measurement runs in processes of its own, started by the bench's driver:

* the server: ``python bench/serve_common.py server SETTINGS_JSON``: a real ``ctpshim.server.Server`` with
  the given sources, on free loopback ports; prints its addresses as one JSON line, then answers
  ``metrics`` (one JSON line of Prometheus counters) and ``stop`` on its standard input;
* clients and the baseline: each prints ``ready`` once its clients are subscribed and have seen
  ticks, waits for ``go START END`` (epoch seconds of the shared measuring window) and prints one
  JSON line: ticks counted inside the window and, when asked, latencies in microseconds.

Latency is the time from the upstream tick to the client's handler: the client's ``time.time()``
when its handler sees the tick, less the moment the tick stands for.  That moment is the tick's own
``ActionDay UpdateTime.UpdateMillisec`` (China time) from ``sim://`` paced at ``speed=1`` without a
``start``: the simulator's market clock starts at the machine's clock and runs at the monotonic
clock's pace, and a tick of market time T is made when that clock reaches T, so the stamp is the
wall-clock time at which the upstream produced it.  Server and clients share the machine's clock.
What the latency then holds: the simulator's own lateness (the sleep until T, making the round),
the hub, the server's fan-out and writes, loopback TCP, the client's read and parse; the baseline,
one in-process API object on the same source, has the same stamp and the same simulator, so the
difference is what the server adds.
"""

from __future__ import annotations

import calendar
import json
import os
import platform
import select
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent
CHINA_OFFSET = 8 * 3600  # China time has no daylight saving


# -- the machine and the figures -------------------------------------------------------------------

def machine() -> str:
    """CPU model, cores, Python, the commit: the line every bench prints first."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        commit = "?"
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{model}, {os.cpu_count()} cores, Python {platform.python_version()} ({platform.python_implementation()}), "
            f"{platform.system()} {platform.release()}, commit {commit}, load average {load}")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by the nearest-rank method; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def spread(samples_us: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds of latencies given in microseconds."""
    ordered = sorted(samples_us)
    return {"n": len(ordered), **{f"p{q}": percentile(ordered, q) / 1000 for q in (50, 90, 99)},
            "max": (ordered[-1] / 1000) if ordered else float("nan")}


def show_spread(figures: dict[str, float]) -> str:
    return (f"p50 {figures['p50']:.2f} ms, p90 {figures['p90']:.2f} ms, p99 {figures['p99']:.2f} ms, "
            f"max {figures['max']:.2f} ms over {figures['n']:,} ticks")


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


# -- the source --------------------------------------------------------------------------------------

def listed_ids(limit: int) -> list[str]:
    """Up to ``limit`` contracts listed on the current trading day, spread over the products
    (round robin over each product's listed months, so a smaller count still covers every exchange)."""
    import logging

    logging.getLogger("ctpshim").setLevel(logging.ERROR)  # the calendar's far-year notice
    from ctpshim.ctp import clock, products
    from ctpshim.ctp.calendar import trading_day_of

    day = trading_day_of(clock.now())
    per_product = [[info.instrument_id for info in products.listed_contracts(product, day)]
                   for product in products.PRODUCTS.values()]
    ids: list[str] = []
    depth = 0
    while len(ids) < limit and any(depth < len(months) for months in per_product):
        ids += [months[depth] for months in per_product if depth < len(months)]
        depth += 1
    return ids[:limit]


def sim_url(ids: Iterable[str], *, interval: float = 0.5, speed: str = "1", seed: int = 1,
            start: str | None = None) -> str:
    """A ``sim://`` address for these contracts, open around the clock."""
    url = f"sim://?instruments={','.join(ids)}&interval={interval:g}&speed={speed}&seed={seed}&hours=always"
    return url + (f"&start={start}" if start else "")


# -- stamps --------------------------------------------------------------------------------------------

class StampClock:
    """Epoch seconds of a tick's ``ActionDay UpdateTime.UpdateMillisec`` (China time), cached per second."""

    def __init__(self) -> None:
        self._seconds: dict[tuple[Any, Any], float] = {}

    def epoch(self, day: Any, update_time: Any, millisec: int) -> float:
        key = (day, update_time)
        base = self._seconds.get(key)
        if base is None:
            d = day.decode() if isinstance(day, bytes) else day
            t = update_time.decode() if isinstance(update_time, bytes) else update_time
            base = calendar.timegm((int(d[:4]), int(d[4:6]), int(d[6:8]), int(t[:2]), int(t[3:5]), int(t[6:8]),
                                    0, 0, 0)) - CHINA_OFFSET
            if len(self._seconds) > 100_000:
                self._seconds.clear()
            self._seconds[key] = base
        return base + millisec / 1000


# -- counting --------------------------------------------------------------------------------------------

class WindowCounter:
    """One client's ticks in the measuring window, as a rate that whole rounds do not skew.

    The window opens at ``window[0]`` and closes at ``window[1]`` (a list shared by a process's
    clients, set when the driver says ``go``).  The count runs from the client's first tick at or
    after the opening to its first tick at or after the closing, and the rate is that count over
    that time: with a paced source whose ticks come in rounds (every contract at each interval
    mark), that is k whole rounds over k periods, however the window falls between rounds.
    """

    __slots__ = ("window", "first", "last", "count")

    def __init__(self, window: list[float]) -> None:
        self.window = window
        self.first: float | None = None
        self.last: float | None = None
        self.count = 0

    def add(self, n: int, now: float) -> bool:
        """Count ``n`` ticks that arrived at ``now``; True when they are inside the window."""
        window = self.window
        if now < window[0]:
            return False
        if now >= window[1]:
            if self.last is None:
                self.last = now
            return False
        if self.first is None:
            self.first = now
        self.count += n
        return True

    @property
    def closed(self) -> bool:
        return self.last is not None

    def rate(self) -> float:
        if self.first is None:
            return 0.0
        last = self.last if self.last is not None else self.window[1]
        return self.count / (last - self.first) if last > self.first else 0.0


async def wait_closed(counters: list[WindowCounter], end: float, grace: float = 3.0) -> None:
    """Sleep until the window has closed and every counter saw its closing tick (at most ``grace`` s more)."""
    import asyncio

    await asyncio.sleep(max(0.0, end - time.time()))
    deadline = time.monotonic() + grace
    while not all(counter.closed for counter in counters) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def counted(counters: list[WindowCounter], seconds: float, **more: Any) -> str:
    """A client process's result line."""
    return json.dumps({"count": sum(c.count for c in counters), "seconds": seconds,
                       "rates": [c.rate() for c in counters], **more})


# -- processes -----------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Child:
    """A measuring process of this bench: ``ready``, then ``go START END``, then one JSON line."""

    def __init__(self, argv: list[str], name: str, nice: int = 0, python: bool = True, cpus: str = "") -> None:
        """``argv``: a script and its arguments for this interpreter, or (``python=False``) a program's;
        ``cpus``: a CPU list for ``taskset -c`` (every thread of the process kept on those CPUs)."""
        self.name = name
        prefix = ["nice", "-n", str(nice)] if nice else []
        prefix += ["taskset", "-c", cpus] if cpus else []
        interpreter = [sys.executable] if python else []
        self.process = subprocess.Popen([*prefix, *interpreter, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, cwd=str(REPO))
        self._stderr: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line)
            del self._stderr[:-40]

    def readline(self, timeout: float) -> str:
        """The next line of output; RuntimeError (with its stderr) on timeout or exit."""
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            self.kill()
            raise RuntimeError(f"{self.name}: no answer within {timeout:g} s (exit {self.process.poll()}):\n"
                               + "".join(self._stderr[-25:]))
        return line.strip()

    def send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def wait_ready(self, timeout: float) -> None:
        line = self.readline(timeout)
        if line != "ready":
            raise RuntimeError(f"{self.name}: expected 'ready', got {line[:300]!r}")

    def result(self, timeout: float) -> dict[str, Any]:
        return json.loads(self.readline(timeout))

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


WARMUP = 3.0  # s from every client's first tick to the window: the subscriptions' snapshots drain first


def measure(children: list[Child], seconds: float, ready_timeout: float = 60.0,
            during: Callable[[float], None] | None = None, warmup: float = WARMUP) -> list[dict[str, Any]]:
    """Wait until every child is ready, give them one window starting in ``warmup`` s, collect their
    results; ``during(start)`` runs on a thread of its own from the moment the window is given."""
    try:
        for child in children:
            child.wait_ready(ready_timeout)
        start = time.time() + warmup
        for child in children:
            child.send(f"go {start:.6f} {start + seconds:.6f}")
        watcher = threading.Thread(target=during, args=(start,), daemon=True) if during else None
        if watcher:
            watcher.start()
        results = [child.result(warmup + seconds + 60) for child in children]
        if watcher:
            watcher.join(warmup + seconds + 30)
        return results
    finally:
        for child in children:
            child.kill()


def child_handshake() -> tuple[float, float]:
    """In a child: say ``ready``, read ``go START END``."""
    print("ready", flush=True)
    line = sys.stdin.readline().split()
    if len(line) != 3 or line[0] != "go":
        raise SystemExit(f"expected 'go START END', got {line!r}")
    return float(line[1]), float(line[2])


def ids_path() -> str:
    """A new temporary file's path for the instrument list the client processes read."""
    handle, path = tempfile.mkstemp(prefix="ctpshim-bench-ids-", suffix=".json")
    os.close(handle)
    return path


def split(total: int, parts: int) -> list[int]:
    """``total`` clients over ``parts`` processes, as evenly as can be."""
    parts = max(1, min(parts, total))
    return [total // parts + (1 if number < total % parts else 0) for number in range(parts)]


# -- the server process ------------------------------------------------------------------------------------

class ServerProcess:
    """A ``ctpshim.server.Server`` in a process of its own (see :func:`server_main`)."""

    def __init__(self, sources: dict[str, str], *, http: bool = False, redis: dict[str, Any] | None = None,
                 probe: bool = False, modules_from: str | None = None) -> None:
        settings = {"sources": sources, "http": http, "redis": redis, "probe": probe, "modules_from": modules_from}
        argv = [str(HERE), "server", json.dumps(settings)]
        self.child = Child(argv, "server")
        started = json.loads(self.child.readline(60))
        self.binary: tuple[str, int] = tuple(started["binary"] or ("", 0))  # type: ignore[assignment]
        self.http: tuple[str, int] | None = tuple(started["http"]) if started["http"] else None  # type: ignore[assignment]
        self.pid = self.child.process.pid

    def metrics(self) -> dict[str, float]:
        self.child.send("metrics")
        return json.loads(self.child.readline(30))

    def probe(self) -> dict[str, Any]:
        """The timing probe's spreads (a server started with ``probe=True``; see :func:`install_probe`)."""
        self.child.send("probe")
        return json.loads(self.child.readline(30))

    def stop(self) -> None:
        if self.child.process.poll() is None:
            try:
                self.child.send("stop")
                self.child.process.wait(20)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.child.kill()


# -- an earlier version of the tick path, in the same run ---------------------------------------------------

COMPARED_MODULES = ("fanout", "channel", "binary")  # ctpshim.server's modules on the tick path, in import order


def modules_at(revision: str, modules: tuple[str, ...] | None = None) -> str:
    """A new temporary directory holding ``shim/server/<module>.py`` of ``modules`` (default COMPARED_MODULES)
    at git ``revision`` (for ``ServerProcess(modules_from=...)``): the bench's way of measuring an earlier tick
    path in the same run as the current one."""
    folder = tempfile.mkdtemp(prefix=f"ctpshim-bench-{revision.replace('/', '_')}-")
    for name in modules or COMPARED_MODULES:
        shown = subprocess.run(["git", "-C", str(REPO), "show", f"{revision}:shim/server/{name}.py"],
                               capture_output=True, timeout=30)
        if shown.returncode:
            raise SystemExit(f"--against {revision}: git show failed: {shown.stderr.decode(errors='replace')[:300]}")
        Path(folder, f"{name}.py").write_bytes(shown.stdout)
    return folder


def load_modules(folder: str, modules: tuple[str, ...] | None = None) -> None:
    """In the server process, before the server is imported: ``modules`` (default COMPARED_MODULES) from
    ``folder`` stand in for ctpshim.server's own (see :func:`modules_at`)."""
    import importlib.util

    import ctpshim.server

    for name in modules or COMPARED_MODULES:
        spec = importlib.util.spec_from_file_location(f"ctpshim.server.{name}", Path(folder, f"{name}.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        setattr(ctpshim.server, name, module)


def prometheus_totals(text: str) -> dict[str, float]:
    """Sum each Prometheus metric over its labels."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_part, _, value = line.rpartition(" ")
        name = name_part.split("{", 1)[0]
        try:
            totals[name] = totals.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return totals


def install_probe() -> Callable[[], dict[str, Any]]:
    """Wrap the server's fan-out and the binary protocol's send to time, from the stamp of the first
    tick concerned (microseconds): when a batch reaches ``SourceFeed._dispatch``, when that batch has
    been handed to every client, and when each ``BinaryClient._send`` with ticks starts and returns
    (for a write that need not wait for the socket's drain: when the bytes are with the kernel).  One
    clock read and one stamp per batch or write (not per tick), so the probe costs little of its own.
    Returns a function giving the spreads so far, each without its first quarter (warming up)."""
    from ctpshim.server import binary, fanout

    stamps = StampClock()
    entered: list[int] = []
    handed: list[int] = []
    starting: list[int] = []
    written: list[int] = []
    dispatch = fanout.SourceFeed._dispatch
    send = binary.BinaryClient._send

    def timed_dispatch(self: Any, batch: Any, wanted: Any) -> None:
        ticks = list(batch)
        if not ticks:
            return dispatch(self, ticks, wanted)
        first = ticks[0]
        sent = stamps.epoch(first.ActionDay, first.UpdateTime, first.UpdateMillisec)
        entered.append(int((time.time() - sent) * 1_000_000))
        dispatch(self, ticks, wanted)
        handed.append(int((time.time() - sent) * 1_000_000))

    def timed_send(self: Any, replies: list[Any], ticks: list[Any]) -> Any:
        # _send returns None (written) or an awaitable (a coroutine in earlier versions), as the channel takes it
        if not ticks:
            return send(self, replies, ticks)
        tick = ticks[0].tick
        sent = stamps.epoch(tick.ActionDay, tick.UpdateTime, tick.UpdateMillisec)
        starting.append(int((time.time() - sent) * 1_000_000))
        pending = send(self, replies, ticks)
        if pending is None:
            written.append(int((time.time() - sent) * 1_000_000))
            return None

        async def finish() -> None:
            await pending
            written.append(int((time.time() - sent) * 1_000_000))

        return finish()

    fanout.SourceFeed._dispatch = timed_dispatch  # type: ignore[method-assign]
    binary.BinaryClient._send = timed_send  # type: ignore[method-assign]

    def spreads() -> dict[str, Any]:
        return {name: spread(values[len(values) // 4:]) for name, values in
                (("fan-out start", entered), ("fan-out end", handed), ("client write start", starting),
                 ("client write end", written))}

    return spreads


def server_main(settings_json: str) -> None:
    """The server process: start, print the addresses, then obey ``metrics`` / ``stop`` on stdin."""
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    given = json.loads(settings_json)
    if given.get("modules_from"):
        load_modules(given["modules_from"])  # before the server imports them
    from ctpshim.server.server import Server
    from ctpshim.server.settings import RedisSettings, ServeSettings

    probe = install_probe() if given.get("probe") else None
    options: dict[str, Any] = {"sources": given["sources"], "listen": ("127.0.0.1", 0),
                               "http": ("127.0.0.1", 0) if given["http"] else None}
    if given.get("redis"):
        redis = dict(given["redis"])
        redis["instruments"] = tuple(redis.get("instruments", ()))
        options["redis"] = RedisSettings(**redis)
    import dataclasses

    from ctpshim.server.settings import Limits

    if any(field.name == "connection_rate" for field in dataclasses.fields(Limits)):
        options["limits"] = Limits(connection_rate=0)  # a bench's 100 clients all connect from 127.0.0.1 at once
    server = Server(ServeSettings(**options))
    server.start()
    print(json.dumps({"binary": list(server.binary_address) if server.binary_address else None,
                      "http": list(server.http_address) if server.http_address else None}), flush=True)
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "metrics":
                totals = prometheus_totals(server.metrics.render_prometheus(server))
                totals["source_ticks_in"] = sum(getattr(server.feed(name), "ticks_in", 0) for name in given["sources"])
                totals["cpu_seconds"] = time.process_time()
                print(json.dumps(totals), flush=True)
            elif command == "probe":
                print(json.dumps(probe() if probe else {}), flush=True)
            elif command == "stop":
                break
    finally:
        server.stop()


# -- the baseline and real clients: an ordinary md API object ---------------------------------------------------

def mdapi_main(front: str, ids_json: str, want_latency: str) -> None:
    """One ordinary ``ctpshim.mdapi`` program on ``front``: its OnRtnDepthMarketData counts the ticks
    inside the window and, with ``want_latency`` = 1, each one's latency from its stamp."""
    import logging
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from ctpshim import mdapi

    ids = [i.encode() for i in json.loads(ids_json)]
    latency = want_latency == "1"
    stamps = StampClock()
    window = [float("inf"), float("inf")]
    seen_first = threading.Event()
    logged_in = threading.Event()
    samples: list[int] = []
    counter = WindowCounter(window)

    class Spi(mdapi.CThostFtdcMdSpi):
        def OnFrontConnected(self) -> None:
            api.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 1)

        def OnRspUserLogin(self, *args: object) -> None:
            logged_in.set()
            api.SubscribeMarketData(ids, len(ids))

        def OnRtnDepthMarketData(self, tick: Any) -> None:
            now = time.time()
            seen_first.set()
            if counter.add(1, now):
                if latency:
                    samples.append(int((now - stamps.epoch(tick.ActionDay, tick.UpdateTime, tick.UpdateMillisec))
                                       * 1_000_000))

    spi = Spi()
    api, flow = start_md_api(mdapi, spi, front, "ctpshim-bench-serve-")
    if not seen_first.wait(60):
        raise SystemExit(f"no tick from {front[:80]} within 60 s (logged in: {logged_in.is_set()})")
    start, end = count_window(window, counter)
    api.RegisterSpi(None)
    print(counted([counter], end - start, latencies_us=samples), flush=True)
    shutil.rmtree(flow, ignore_errors=True)
    os._exit(0)  # the API's threads need no orderly end here


def start_md_api(mdapi: Any, spi: Any, front: str, prefix: str) -> tuple[Any, str]:
    """An md API of ``mdapi`` (ctpshim's or openctp-ctp's module) on ``front`` with ``spi``, initialised,
    its flow files in a new temporary folder; (api, folder).  The caller keeps ``spi`` referenced
    (openctp's RegisterSpi holds a raw pointer)."""
    flow = tempfile.mkdtemp(prefix=prefix)
    api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(flow + os.sep)
    api.RegisterSpi(spi)
    api.RegisterFront(front)
    api.Init()
    return api, flow


def count_window(window: list[float], counter: "WindowCounter") -> tuple[float, float]:
    """Take the driver's window (child_handshake), let ``counter`` count through it (and up to 3 s for
    its first tick after the end), and give the window's (start, end)."""
    start, end = child_handshake()
    window[0], window[1] = start, end
    time.sleep(max(0.0, end - time.time()))
    deadline = time.monotonic() + 3.0
    while not counter.closed and time.monotonic() < deadline:
        time.sleep(0.05)
    return start, end


def mdapi_child(front: str, ids: list[str], latency: bool, name: str, nice: int = 0) -> Child:
    return Child([str(HERE), "mdapi", front, json.dumps(ids), "1" if latency else "0"], name, nice)


NATIVE_CLIENTS_SOURCE = HERE.with_name("native_md_clients.cpp")


def native_build_dir() -> Path:
    """Where the bench builds ctpshim's native libraries and its C++ clients:
    ``$CTPSHIM_BENCH_NATIVE_DIR``, else one directory per user under the system temp directory."""
    chosen = os.environ.get("CTPSHIM_BENCH_NATIVE_DIR", "").strip()
    return Path(chosen) if chosen else Path(tempfile.gettempdir()) / f"ctpshim-bench-native-{os.getuid()}"


def native_clients_program() -> Path:
    """bench/native_md_clients.cpp built against ctpshim's native md library (ctpshim.native.build,
    built or reused in :func:`native_build_dir`), with the flags of tests/native's C++ programs;
    rebuilt when the source or the library is newer than the program.  SystemExit with the
    compiler's message when it cannot be built."""
    from ctpshim.native.build import NativeBuildError, build, find_compiler

    try:
        built = build(native_build_dir())
        compiler = find_compiler()
    except NativeBuildError as exc:
        raise SystemExit(f"--clients-kind native needs ctpshim's native libraries: {exc}") from None
    program = built.directory / "bench" / "native_md_clients"
    newest = max(NATIVE_CLIENTS_SOURCE.stat().st_mtime, built.md.stat().st_mtime)
    if program.is_file() and program.stat().st_mtime >= newest:
        return program
    program.parent.mkdir(parents=True, exist_ok=True)
    partial = program.with_name(program.name + f".{os.getpid()}.tmp")
    command = [*shlex.split(compiler), "-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", "-I", str(built.include),
               str(NATIVE_CLIENTS_SOURCE), "-o", str(partial), "-L", str(built.directory), f"-l:{built.md.name}",
               f"-Wl,-rpath,{built.directory}", "-pthread"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise SystemExit(f"cannot build the native bench clients:\n{shlex.join(command)}\n{done.stderr}")
    os.replace(partial, program)
    return program


def native_clients_child(program: Path, front: str, count: int, ids_file: str, latency: bool, max_samples: int,
                         name: str, nice: int = 0, cpus: str = "") -> Child:
    """A process of ``count`` native CTP md clients (bench/native_md_clients.cpp) on ``front``."""
    return Child([str(program), front, str(count), ids_file, "1" if latency else "0", str(max_samples)], name, nice,
                 python=False, cpus=cpus)


def pin_process(pid: int, cpus: str) -> None:
    """Keep every thread of process ``pid`` (and the threads they start) on the CPUs of the list
    ``cpus`` ("0", "0-1", "0,2")."""
    wanted: set[int] = set()
    for part in cpus.split(","):
        low, _, high = part.partition("-")
        try:
            wanted.update(range(int(low), int(high or low) + 1))
        except ValueError:
            raise SystemExit(f"CPU list {cpus!r}: expected numbers and ranges like 0 or 0-1 or 0,2") from None
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), wanted)


def combine(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Results of several client processes over one window: total ticks/s and all latencies."""
    samples = [s for result in results for s in result.get("latencies_us", ())]
    rates = [rate for result in results for rate in result["rates"]]
    return {"rate": sum(rates), "latency": spread(samples) if samples else None, "rates": rates,
            "count": sum(result["count"] for result in results), "seconds": results[0]["seconds"]}


def py_spy(pid: int, seconds: float, out: str) -> subprocess.Popen[bytes] | None:
    """Sample the process ``pid`` (every thread) with py-spy for ``seconds``, into ``out`` (flame-graph
    text, collapsed stacks: one line per stack with its count); None when py-spy is not installed."""

    if shutil.which("py-spy") is None:
        print("py-spy is not installed (pip install py-spy): no profile", file=sys.stderr)
        return None
    return subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
                             "--format", "raw", "--output", out, "--nonblocking", "--rate", "200"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def hot_spots(collapsed: str, top: int = 20) -> str:
    """The functions with the most samples on top of the stack, from py-spy's raw output."""
    own: dict[str, int] = {}
    total = 0
    for line in Path(collapsed).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        leaf = stack.split(";")[-1]
        own[leaf] = own.get(leaf, 0) + n
    rows = sorted(own.items(), key=lambda item: -item[1])[:top]
    return "\n".join(f"{n / total:6.1%}  {leaf}" for leaf, n in rows) if total else "(no samples)"


# -- the server over the window, and the figures every serve bench prints ----------------------------------

SERVER_COUNTERS = ("source_ticks_in", "ctpshim_ticks_delivered_total", "ctpshim_ticks_conflated_total",
                   "ctpshim_clients_cut_off_total", "ctpshim_messages_dropped_total")


class ServerWindow:
    """The server process over the measuring window: its counters, its CPU time and (with
    ``profile_file``) py-spy's samples.  Pass it as ``measure(during=...)``; then :meth:`figures`."""

    def __init__(self, server: ServerProcess, seconds: float, profile_file: str = "") -> None:
        self.server, self.seconds, self.profile_file = server, seconds, profile_file
        self.before: dict[str, float] = {}
        self.after: dict[str, float] = {}
        self.sampler: subprocess.Popen[bytes] | None = None

    def __call__(self, start: float) -> None:
        time.sleep(max(0.0, start - time.time()))
        self.before.update(self.server.metrics())
        if self.profile_file:
            Path(self.profile_file).parent.mkdir(parents=True, exist_ok=True)
            self.sampler = py_spy(self.server.pid, self.seconds, self.profile_file)
        time.sleep(self.seconds)
        self.after.update(self.server.metrics())

    def figures(self) -> dict[str, Any]:
        """``server``: each counter's increase over the window, ``cpu_us_per_tick``: the server
        process's CPU time (user + system, every thread) per delivered tick; ``hot_spots`` if profiled."""
        after, before = self.after, self.before
        server = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in (*SERVER_COUNTERS, "cpu_seconds")}
        delivered = server["ctpshim_ticks_delivered_total"]
        server["cpu_us_per_tick"] = server["cpu_seconds"] / delivered * 1e6 if delivered else float("nan")
        figures: dict[str, Any] = {"server": server}
        if self.sampler is not None:
            self.sampler.wait(60)
            figures["hot_spots"] = hot_spots(self.profile_file)
        return figures


def runs_of(values: Sequence[float], fmt: str = ",.0f") -> str:
    return ", ".join(format(value, fmt) for value in values)


def middle_run(runs: list[dict[str, Any]], key: Callable[[dict[str, Any]], float]) -> dict[str, Any]:
    """The run with the median ``key`` (the upper one of an even count)."""
    return sorted(runs, key=key)[len(runs) // 2]


def print_delivered(runs: list[dict[str, Any]], unit: str, per_client: Callable[[dict[str, Any]], list[float]],
                    client: str = "client") -> None:
    """The total rate (median of the runs), the spread over the clients of the median run, the server's
    counters and CPU time per delivered tick over the window."""
    rates = [run["rate"] for run in runs]
    middle = middle_run(runs, lambda run: run["rate"])
    print(f"  delivered    {statistics.median(rates):>12,.0f} {unit}/s in total (median; runs {runs_of(rates)})")
    each = per_client(middle)
    if each:
        print(f"    per {client} (median run): min {min(each):,.0f}, median {statistics.median(each):,.0f}, "
              f"max {max(each):,.0f} {unit}/s")
    server = middle["server"]
    print("    server counters over the window (median run): "
          + ", ".join(f"{key.removeprefix('ctpshim_')} {server[key]:,.0f}" for key in SERVER_COUNTERS))
    cpu = [run["server"]["cpu_us_per_tick"] for run in runs]
    print(f"  server CPU   {statistics.median(cpu):>12.2f} us per delivered tick (median; runs {runs_of(cpu, '.2f')})")


def print_baseline(runs: list[dict[str, Any]], latency: bool = False) -> None:
    """The baseline's rate (and latency) over the runs that measured one."""
    measured = [run["baseline"] for run in runs if run.get("baseline")]
    if not measured:
        return
    base = [b["rate"] for b in measured]
    print(f"  baseline     {statistics.median(base):>12,.0f} ticks/s to one in-process md API object on the same "
          f"sim:// address (runs {runs_of(base)})")
    with_latency = [b for b in measured if b["latency"]]
    if latency and with_latency:
        p99s = [b["latency"]["p99"] for b in with_latency]
        middle = middle_run(with_latency, lambda b: b["latency"]["p99"])
        print(f"  baseline p99 {statistics.median(p99s):.2f} ms (runs {runs_of(p99s, '.2f')}); median run: "
              f"{show_spread(middle['latency'])}")


def print_failures_and_hot_spots(runs: list[dict[str, Any]]) -> None:
    failures = [failure for run in runs for failure in run.get("failed", ())]
    if failures:
        print(f"  client failures: {len(failures)}, e.g. {failures[0]}")
    if runs[-1].get("hot_spots"):
        print("  server hot spots (py-spy, own samples of the leaf function, last run):\n    "
              + runs[-1]["hot_spots"].replace("\n", "\n    "))


COMMANDS: dict[str, Callable[..., None]] = {"server": server_main, "mdapi": mdapi_main}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
