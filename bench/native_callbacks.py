"""Callbacks/s into a no-op Python Spi: openctp-ctp's SWIG layer over ctpshim's native library, against
in-process ctpshim (``from ctpshim import mdapi``) on the same source, in the same run.

    python bench/native_callbacks.py [--runs R] [--ticks N] [--batch B] [--only drain|e2e]
                                     [--instruments K] [--seconds S]

Each figure is the median of R runs (default 5); within a run the variants take turns in an order that
rotates from run to run, each in a fresh process.  The programs:

* native: a plain openctp-ctp program (the real SWIG module) with ctpshim's libraries preloaded
  (``ctpshim.native.install.preload_environment("openctp")``: LD_PRELOAD, nothing installed changes;
  ``--preload MD:TD`` names other builds).  ``pinned``: the library's callback thread keeps one Python
  thread state (NATIVE_PROBE.md).  ``PIN=0``: ``CTPSHIM_NATIVE_PIN=0``, so SWIG's ``PyGILState_Ensure`` /
  ``Release`` make and destroy a thread state on every callback, as with the official library;
* ctpshim in-process: ``from ctpshim import mdapi``, the same program on ctpshim's own Python API.

drain  The callback ceiling, with the source out of the way.  The source is a scripted peer of the binary
       protocol in this process (tests/native/scripted_server.py), not ``ctpshim serve``: it answers HELLO
       and the subscription, then writes N copies of one 584-byte tick as TICK_BATCH frames of B ticks,
       each frame's payload built once (a ``sendmsg`` per frame, no Python per tick).  The program's first
       callback of the backlog blocks (reading its stdin, without the GIL) until the peer has written
       everything and the socket's send queue is empty (TIOCOUTQ = 0: every byte is in the library's
       queue or in the kernel's receive buffer), or until the send has stalled for 0.5 s because the
       library stopped reading (its queue is bounded at 64 MiB, about 110,000 ticks: the line then says
       how many were written before ``go``, and the rest is read while the drain is timed).  Then the
       program times the N callbacks: the library's queue drains into Python flat out, and nothing of the
       source, the server or the network is in the time.
       Handlers: ``pass`` is a true no-op OnRtnDepthMarketData; the backlog is framed by two OnRspError
       CALLBACKs, the first blocks and the second ends the time.  ctpshim's md API takes no CALLBACK from
       its server, so it cannot be framed that way: ``counting`` (``n = self.n = self.n + 1`` and two
       comparisons; the first tick blocks, the N-th ends the time) is the handler run on both, for the
       like-for-like ratio.  Reading fields would add the SWIG getters' cost (NATIVE_PROBE.md).
       The backlog is megabytes, so each tick is cold in the caches when its turn comes; with a no-op
       handler the library's own first look at it (the subscription check of its InstrumentID) pays
       that, where a real handler reading fields would.
       Each row also gives the process's CPU time over the drain per callback (every thread; the IO thread
       is idle once the backlog is in) and its inverse, callbacks per CPU-second: on a busy machine the
       wall-clock rate falls with the share of a core the drain gets, the CPU figure much less.
e2e    End to end from a source: a real ``ctpshim serve`` (bench/serve_common.ServerProcess) on
       ``sim://`` with K instruments at speed=max, one client at a time subscribed to every instrument,
       ticks/s counted in its handler over S seconds (serve_common.WindowCounter; the handler reads the
       clock, like bench/serve_binary.py's); the native variants register ``tcp://HOST:PORT/sim``, and
       the in-process rows are ctpshim's own client of the same server (``ctpshim://HOST:PORT/sim``) and
       ``mdapi`` directly on the same ``sim://`` address (no server).  Here the server and the simulator
       are in the figure: it says what a program gets, not what the library can take.

The machine is shared while developing: run small (``--runs 2 --ticks 30000 --seconds 2``); the published figures
come from a quiet machine with the defaults.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import fcntl  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import struct  # noqa: E402
import termios  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from typing import Any, Iterator  # noqa: E402

from serve_common import (Child, ServerProcess, WindowCounter, count_window, counted, ids_path,  # noqa: E402
                          listed_ids, machine, mdapi_child, measure, sim_url, start_md_api)

INSTRUMENT = "bench2701"
FIRST, LAST = 1, 2  # the request ids of the OnRspError marks around the ticks
# variant -> (program, handler)
VARIANTS = {"native pinned, pass": ("openctp", "noop"), "native PIN=0, pass": ("openctp", "noop"),
            "native pinned, counting": ("openctp", "count"), "ctpshim in-process, counting": ("ctpshim", "count")}
_DROPPED = ("CTPSHIM_FRONT", "CTPSHIM_NATIVE_FRONT", "CTPSHIM_NATIVE_TOKEN", "CTPSHIM_NATIVE_PIN", "LD_PRELOAD")


# -- the children ---------------------------------------------------------------------------------------------

def drain_main(kind: str, front: str, ticks: str, handler: str) -> None:
    """A drain child: subscribe INSTRUMENT, block in the first callback of the backlog until ``go`` on stdin,
    time the next ``ticks`` callbacks; prints ``subscribed``, ``first`` and one JSON line.

    ``handler`` ``noop``: OnRtnDepthMarketData is ``pass``; the backlog is framed by two OnRspError CALLBACKs
    from the peer (request ids FIRST and LAST), the first blocks, the second ends the time.  ``count``: the
    first tick blocks, and the handler counts up to the last (``n = self.n = self.n + 1`` and two
    comparisons); ctpshim's own md API takes no CALLBACK from the server, so this is the handler both take."""
    if kind == "openctp":
        from openctp_ctp import mdapi
    else:
        import logging

        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        from ctpshim import mdapi  # type: ignore[no-redef]

    wanted = int(ticks)
    last = wanted + 1
    done = threading.Event()
    marks: list[tuple[float, float]] = []

    class Spi(mdapi.CThostFtdcMdSpi):  # type: ignore[misc,name-defined]
        n = 0

        def OnFrontConnected(self) -> None:
            api.SubscribeMarketData([INSTRUMENT.encode()], 1)

        def OnRspSubMarketData(self, *args: Any) -> None:
            print("subscribed", flush=True)

        def OnRspError(self, info: Any, request_id: int, is_last: bool) -> None:
            if request_id == FIRST:
                print("first", flush=True)
                sys.stdin.readline()  # "go": the backlog is in place
                marks.append((time.process_time(), time.perf_counter()))
            elif request_id == LAST:
                marks.append((time.process_time(), time.perf_counter()))
                done.set()

        if handler == "noop":
            def OnRtnDepthMarketData(self, tick: Any) -> None:
                pass
        else:
            def OnRtnDepthMarketData(self, tick: Any) -> None:
                n = self.n = self.n + 1
                if n == last:
                    marks.append((time.process_time(), time.perf_counter()))
                    done.set()
                elif n == 1:
                    print("first", flush=True)
                    sys.stdin.readline()
                    marks.append((time.process_time(), time.perf_counter()))

    spi = Spi()
    api, flow = start_md_api(mdapi, spi, front, "ctpshim-bench-native-")
    if not done.wait(600):
        raise SystemExit(f"no end mark within 600 s ({spi.n} ticks counted)")
    seconds = marks[1][1] - marks[0][1]
    print(json.dumps({"count": wanted, "seconds": seconds, "rate": wanted / seconds,
                      "cpu": marks[1][0] - marks[0][0]}), flush=True)
    import shutil

    shutil.rmtree(flow, ignore_errors=True)
    os._exit(0)


def e2e_main(front: str, ids_file: str) -> None:
    """An openctp-ctp program on ``front`` counting its ticks in the window (as serve_common.mdapi_main)."""
    from openctp_ctp import mdapi

    ids = [i.encode() for i in json.loads(Path(ids_file).read_text())]
    window = [float("inf"), float("inf")]
    counter = WindowCounter(window)
    seen_first = threading.Event()
    clock = time.time

    class Spi(mdapi.CThostFtdcMdSpi):
        def OnFrontConnected(self) -> None:
            api.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 1)

        def OnRspUserLogin(self, *args: Any) -> None:
            api.SubscribeMarketData(ids, len(ids))

        def OnRtnDepthMarketData(self, tick: Any) -> None:
            seen_first.set()
            counter.add(1, clock())

    spi = Spi()
    api, flow = start_md_api(mdapi, spi, front, "ctpshim-bench-native-")
    if not seen_first.wait(60):
        raise SystemExit(f"no tick from {front} within 60 s")
    start, end = count_window(window, counter)
    print(counted([counter], end - start), flush=True)
    import shutil

    shutil.rmtree(flow, ignore_errors=True)
    os._exit(0)


# -- the driver ------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def environment(changes: dict[str, str]) -> Iterator[None]:
    """os.environ with ``changes`` (and without what would redirect a CTP program) while a child starts."""
    saved = dict(os.environ)
    for key in _DROPPED:
        os.environ.pop(key, None)
    os.environ.update(changes)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def variant_env(variant: str, preload: dict[str, str]) -> dict[str, str]:
    if variant.startswith("native PIN=0"):
        return {**preload, "CTPSHIM_NATIVE_PIN": "0"}
    if variant.startswith("native"):
        return dict(preload)
    return {}


def unsent(sock: Any) -> int:
    """Bytes in the socket's send queue (written by us, not yet in the peer's receive buffer)."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]


def packed_tick() -> bytes:
    from ctpshim import mdapi
    from ctpshim.wire.structs import pack_tick

    tick = mdapi.CThostFtdcDepthMarketDataField()
    tick.TradingDay = tick.ActionDay = "20261203"
    tick.InstrumentID, tick.ExchangeID = INSTRUMENT, "SHFE"
    tick.UpdateTime, tick.UpdateMillisec = "09:30:00", 500
    tick.LastPrice, tick.Volume, tick.BidPrice1, tick.AskPrice1 = 3100.0, 12, 3099.0, 3101.0
    return pack_tick(tick)


def drain_once(server: Any, variant: str, preload: dict[str, str], args: argparse.Namespace,
               tick: bytes) -> dict[str, Any]:
    from ctpshim import mdapi

    kind, handler = VARIANTS[variant]
    front = server.front if kind == "openctp" else server.front.replace("tcp://", "ctpshim://", 1)
    index = len(server.peers)
    with environment(variant_env(variant, preload)):
        child = Child([str(HERE), "drain", kind, front, str(args.ticks), handler], variant)
    try:
        line = child.readline(60)
        if line != "subscribed":
            raise RuntimeError(f"{variant}: expected 'subscribed', got {line[:300]!r}")
        peer = server.wait_peer("md", 10, index=index)
        info = mdapi.CThostFtdcRspInfoField()

        def send() -> None:
            if handler == "noop":
                peer.send_callback("OnRspError", (info, FIRST, True))
                peer.send_ticks(tick, args.ticks, args.batch)
                peer.send_callback("OnRspError", (info, LAST, True))
            else:
                peer.send_ticks(tick, args.ticks + 1, args.batch)

        sender = threading.Thread(target=send, daemon=True)
        started = time.perf_counter()
        sender.start()
        line = child.readline(60)
        if line != "first":
            raise RuntimeError(f"{variant}: expected 'first', got {line[:300]!r}")
        # Until everything is written and out of our send queue, or the send has stalled for 0.5 s.
        stalled_since = None
        previous = -1
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            queued = unsent(peer.sock)
            if not sender.is_alive() and queued == 0:
                break
            progress = (peer.ticks_sent, queued)
            if progress == previous:
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > 0.5:
                    break
            else:
                stalled_since, previous = None, progress
            time.sleep(0.01)
        written = peer.ticks_sent
        complete = not sender.is_alive()
        filled = time.perf_counter() - started
        child.send("go")
        result = child.result(600)
        sender.join(60)
        result.update(variant=variant, held=written, fill_seconds=filled, complete=complete)
        return result
    finally:
        child.kill()


def drain(args: argparse.Namespace, preload: dict[str, str] | None) -> None:
    sys.path.insert(0, str(REPO))
    from tests.native.scripted_server import ScriptedServer, md_replies

    variants = [v for v in VARIANTS if preload is not None or not v.startswith("native")]
    tick = packed_tick()
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    with ScriptedServer(on_call=md_replies(), heartbeat=30.0) as server:
        for run in range(args.runs):
            order = variants[run % len(variants):] + variants[:run % len(variants)]
            for variant in order:
                runs[variant].append(drain_once(server, variant, preload or {}, args, tick))
                print(f"  run {run + 1} {variant}: {runs[variant][-1]['rate']:,.0f} callbacks/s", file=sys.stderr)
    print(f"\ndrain: {args.ticks:,} ticks queued in the library, then timed into OnRtnDepthMarketData "
          f"(pass: a no-op; counting: `n = self.n = self.n + 1` and two comparisons), {args.runs} runs each, "
          f"median; TICK_BATCH of {args.batch}")
    for variant in variants:
        results = runs[variant]
        rates = [r["rate"] for r in results]
        median = statistics.median(rates)
        held = [r for r in results if not r["complete"]]
        note = (f"; the library stopped reading after {min(r['held'] for r in held):,} ticks in {len(held)} runs "
                "(a bounded queue: the rest came during the timing)") if held else ""
        cpu = statistics.median(r["cpu"] / r["count"] * 1e6 for r in results)
        print(f"  {variant:<30} {median:>12,.0f} callbacks/s  {1e6 / median:6.3f} us each  (runs "
              + ", ".join(f"{r:,.0f}" for r in rates) + f"; process CPU {cpu:.2f} us per callback, "
              f"{1e6 / cpu:,.0f} per CPU-second{note})")
    def median_rate(variant: str) -> float:
        return statistics.median(r["rate"] for r in runs[variant])

    if "native pinned, pass" in runs:
        per_cpu = statistics.median(r["count"] / r["cpu"] for r in runs["native pinned, pass"] if r["cpu"] > 0)
        print("  aim: 1,500,000/s into a no-op Python Spi: "
              + ("met" if median_rate("native pinned, pass") >= 1_500_000 else "NOT met")
              + f" wall-clock, {'met' if per_cpu >= 1_500_000 else 'NOT met'} per CPU-second ({per_cpu:,.0f})"
              + f"; pinned / PIN=0: {median_rate('native pinned, pass') / median_rate('native PIN=0, pass'):.1f}x")
    if "native pinned, counting" in runs:
        print(f"  same handler, native pinned / ctpshim in-process: "
              f"{median_rate('native pinned, counting') / median_rate('ctpshim in-process, counting'):.1f}x")


def e2e(args: argparse.Namespace, preload: dict[str, str] | None) -> None:
    ids = listed_ids(args.instruments)
    source = sim_url(ids, interval=0.5, speed="max")
    ids_file = ids_path()
    Path(ids_file).write_text(json.dumps(ids))
    rows = ["native pinned", "native PIN=0"] if preload is not None else []
    rows += ["ctpshim client of the server", "ctpshim in-process, no server"]
    runs: dict[str, list[float]] = {row: [] for row in rows}
    try:
        for run in range(args.runs):
            order = rows[run % len(rows):] + rows[:run % len(rows)]
            for row in order:
                if row == "ctpshim in-process, no server":
                    child = mdapi_child(source, ids, False, row)
                    result = measure([child], args.seconds)[0]
                    runs[row].append(sum(result["rates"]))
                    print(f"  run {run + 1} {row}: {runs[row][-1]:,.0f} ticks/s", file=sys.stderr)
                    continue
                server = ServerProcess({"sim": source})
                try:
                    host, port = server.binary
                    if row.startswith("native"):
                        with environment(variant_env(row, preload or {})):
                            child = Child([str(HERE), "e2e", f"tcp://{host}:{port}/sim", ids_file], row)
                    else:
                        child = mdapi_child(f"ctpshim://{host}:{port}/sim", ids, False, row)
                    result = measure([child], args.seconds)[0]
                    runs[row].append(sum(result["rates"]))
                finally:
                    server.stop()
                print(f"  run {run + 1} {row}: {runs[row][-1]:,.0f} ticks/s", file=sys.stderr)
    finally:
        os.unlink(ids_file)
    print(f"\ne2e: sim:// with {len(ids)} instruments at speed=max, one client subscribed to all, "
          f"{args.runs} runs of {args.seconds:g} s each, median")
    for row in rows:
        rates = runs[row]
        print(f"  {row:<31} {statistics.median(rates):>10,.0f} ticks/s  (runs "
              + ", ".join(f"{r:,.0f}" for r in rates) + ")")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ticks", type=int, default=100_000,
                        help="drain: callbacks timed per run (100,000 ticks fit the library's 64 MiB queue)")
    parser.add_argument("--batch", type=int, default=1000, help="drain: ticks per TICK_BATCH frame")
    parser.add_argument("--instruments", type=int, default=50, help="e2e: sim:// instruments")
    parser.add_argument("--seconds", type=float, default=5.0, help="e2e: the measuring window")
    parser.add_argument("--only", choices=("drain", "e2e"), action="append")
    parser.add_argument("--no-native", action="store_true", help="only the in-process rows (no compiler here)")
    parser.add_argument("--preload", metavar="LIBS", help="LD_PRELOAD these builds (md[:td], openctp's sonames) "
                        "instead of building with ctpshim.native.install.preload_environment('openctp')")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print("reproduce: python bench/native_callbacks.py " + " ".join(sys.argv[1:]))
    preload: dict[str, str] | None = None
    if args.preload:
        preload = {"LD_PRELOAD": args.preload}
        print(f"native libraries: {args.preload} (given)")
    elif not args.no_native:
        from ctpshim.native.install import preload_environment

        started = time.monotonic()
        preload = preload_environment("openctp")
        print(f"native libraries: {preload['LD_PRELOAD']} (ready in {time.monotonic() - started:.1f} s)")
    for part in args.only or ("drain", "e2e"):
        (drain if part == "drain" else e2e)(args, preload)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "drain":
        drain_main(*sys.argv[2:6])
    elif len(sys.argv) > 1 and sys.argv[1] == "e2e":
        e2e_main(*sys.argv[2:4])
    else:
        main()
