"""``ctpshim serve`` over the binary protocol (ctpshim://): delivered ticks/s to 100 clients, and latency.

    python bench/serve_binary.py [--runs R] [--clients N] [--instruments N] [--source-rate max,2500]
                                 [--latency-instruments 600,20,2] [--rate 20000] [--seconds S]
                                 [--only throughput|latency] [--procs P] [--real N] [--profile DIR]
                                 [--probe] [--against REVISION] [--client-nice N] [--clients-kind light|native]
                                 [--server-cpus LIST] [--client-cpus LIST]

One ``sim://`` source with every client subscribed to every one of its instruments, a real
``ctpshim.server.Server`` in a process of its own (bench/serve_common.py), the clients in ``--procs``
other processes (default 2: the server needs a core of the two), and in the same run the baseline:
one in-process md API object on the same front address.  Each figure is the median of R runs
(default 3), each run a fresh server, fresh clients and a fresh baseline process.

Clients: ``N - real`` light asyncio clients that speak the protocol with ctpshim.wire (HELLO,
ReqUserLogin and SubscribeMarketData CALLs, heartbeats), parse every frame with FrameReader and count
the ticks of each TICK / TICK_BATCH without unpacking each into an object; and ``real`` (default 1)
ordinary md API programs on ``ctpshim://127.0.0.1:PORT/sim`` (the ctpshim:// adapter: every tick an
object and an OnRtnDepthMarketData).  ``--clients-kind native`` puts C++ CTP programs in the light
clients' place: in each of the ``--procs`` processes, its share of the clients as CThostFtdcMdApi objects
of ctpshim's native md library (bench/native_md_clients.cpp, built with the library on first use into
``$CTPSHIM_BENCH_NATIVE_DIR``, else a per-user directory under the temp directory), each with the library's
own IO and callback threads, its OnRtnDepthMarketData counting the tick and taking its latency (the same
stamp and window rules); such a client costs the machine little of its own, so the figure is the server's.
Counting (serve_common.WindowCounter): each client counts from
its first tick after the window opens to its first tick after it closes, over that time; the total is
the sum over the clients.  A client that falls behind gets the latest tick per instrument: what was
conflated away is not counted (the server's counters over the window are printed).

throughput  ``--source-rate max`` (default): ``sim://?instruments=<N>&speed=max``, the simulator as fast
            as the server takes its ticks (the hub holds the source back while the server's IO loop is
            busy, so this is the server's capacity); a number paces the source at that many ticks/s
            (speed = rate x interval / instruments), offering rate x clients.
            Baseline: one md API object on the same ``sim://`` address, ticks/s to its no-op callback.
latency     at a paced ``--rate`` delivered ticks/s in total (default 20,000: with 100 clients, 200
            ticks/s from the source): each of ``--latency-instruments`` (default 600, 20 and 2) ticks every
            instruments x clients / rate seconds (3 s, 0.1 s and 0.01 s) at speed=1.  Latency = the client's
            clock when its handler has the tick, less the tick's own stamp (see bench/serve_common.py for
            why that stamp is the upstream's time): every tick of the light clients (stamp read from the
            struct's bytes), every callback of the real one.  Baseline: one md API object on the same
            ``sim://`` address, its stamp-to-callback latency.  The simulator's shape: every contract
            ticks at each interval mark, so each mark is a burst of instruments x clients deliveries
            (60,000, 2,000 and 200: the same rate, ever less bursty).
            ``--client-nice N`` runs the client processes at nice N, so that on a machine whose cores the
            server shares with its clients, the clients do not preempt the server's writes.
Every figure comes with the server process's CPU time per delivered tick over the window (user + system,
less noisy than latency on a shared machine).  ``--against REVISION`` measures the server's tick path
(shim/server/fanout.py, channel.py, binary.py) at that git revision too, alternating run for run with the
current one, and prints both and their medians side by side.
``--profile DIR`` samples the server process with py-spy during each window and prints its hot spots;
``--probe`` (latency) times the ticks inside the server too: from the stamp to the fan-out, to the end of
the fan-out, and to the start and the end of each client's write (one sample per batch or write).
sim:// lists at most the contracts its calendar lists on a trading day (731 on 2026-12-03 over every
product's months): ``--instruments`` above that is cut to it, and the figures say how many were used.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from serve_common import (Child, ServerProcess, ServerWindow, StampClock, WindowCounter, child_handshake,  # noqa: E402
                          combine, counted, ids_path, listed_ids, machine, mdapi_child, measure, middle_run,
                          modules_at, native_clients_child, native_clients_program, pin_process, print_baseline,
                          print_delivered, print_failures_and_hot_spots, runs_of,
                          show_spread, sim_url, split, wait_closed)

HERE = Path(__file__).resolve()
SOURCE = "sim"
HEARTBEAT = 2.0  # s between the light clients' heartbeats
KIND_NAMES = {"light": "light asyncio clients", "native": "native C++ CTP clients"}
CLIENT_NAMES = {"light": "light client", "native": "native client"}


def tick_offsets() -> tuple[int, int, int, int]:
    """(struct size, offset of ActionDay, of UpdateTime, of UpdateMillisec) in a packed tick, found by
    packing a tick with recognisable values (so this needs nothing of the layout but pack_tick)."""
    import struct

    from ctpshim import mdapi
    from ctpshim.wire.structs import pack_tick

    tick = mdapi.CThostFtdcDepthMarketDataField()
    tick.ActionDay, tick.UpdateTime, tick.UpdateMillisec = "20991231", "12:34:56", 4321
    data = pack_tick(tick)
    offsets = (data.find(b"20991231"), data.find(b"12:34:56"), data.find(struct.pack("<i", 4321)))
    if min(offsets) < 0:
        raise SystemExit(f"cannot find the stamp members in a packed tick (offsets {offsets})")
    return (len(data), *offsets)


class LightClient:
    """One protocol client that parses frames and counts ticks (and, if asked, their latency)."""

    def __init__(self, host: str, port: int, source: str, ids: list[str], latency: bool, offsets: tuple[int, ...],
                 window: list[float]) -> None:
        self.host, self.port, self.source, self.ids = host, port, source, ids
        self.latency = latency
        self.size, self.o_day, self.o_time, self.o_ms = offsets
        self.counter = WindowCounter(window)
        self.samples: list[int] = []
        self.first = asyncio.Event()
        self.stamps = StampClock()
        self.error: str | None = None

    async def run(self) -> None:
        from ctpshim import mdapi
        from ctpshim.wire.calls import call_frame
        from ctpshim.wire.frames import CODEC_JSON, MAGIC, PROTOCOL_VERSION, FrameReader, FrameType, encode_frame
        from ctpshim.wire.structs import LAYOUT_ID

        reader, writer = await asyncio.open_connection(self.host, self.port)
        hello = {"magic": MAGIC, "version": PROTOCOL_VERSION, "api": "md", "source": self.source, "token": "",
                 "layout": LAYOUT_ID, "client": "bench/serve_binary.py"}
        writer.write(encode_frame(FrameType.HELLO, json.dumps(hello).encode(), codec=CODEC_JSON, seq=1))
        frames = FrameReader()
        acked = False
        while not acked:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("the server closed the connection during the handshake")
            for frame in frames.feed(data):
                if frame.type == FrameType.ERROR:
                    raise ConnectionError(f"refused: {frame.payload[:300]!r}")
                acked = acked or frame.type == FrameType.HELLO_ACK
        ids = [i.encode() for i in self.ids]
        writer.write(call_frame("ReqUserLogin", (mdapi.CThostFtdcReqUserLoginField(), 1), seq=2))
        writer.write(call_frame("SubscribeMarketData", (ids, len(ids)), seq=3))
        heartbeat = asyncio.ensure_future(self._heartbeats(writer, lambda seq: encode_frame(FrameType.HEARTBEAT, seq=seq)))
        tick, batch = int(FrameType.TICK), int(FrameType.TICK_BATCH)
        add = self.counter.add
        try:
            while True:
                data = await reader.read(1 << 20)
                if not data:
                    raise ConnectionError("the server closed the connection")
                for frame in frames.feed(data):
                    kind = frame.type
                    if kind != batch and kind != tick:
                        continue
                    payload = frame.payload
                    n = int.from_bytes(payload[:2], "little") if kind == batch else 1
                    if add(n, time.time()) and self.latency:
                        self._stamp(payload, 2 if kind == batch else 0, n)
                    self.first.set()
        finally:
            heartbeat.cancel()
            writer.close()

    def _stamp(self, payload: bytes, base: int, n: int) -> None:
        epoch, size, o_day, o_time, o_ms = self.stamps.epoch, self.size, self.o_day, self.o_time, self.o_ms
        append = self.samples.append
        for k in range(n):
            at = base + k * size
            now = time.time()
            sent = epoch(payload[at + o_day:at + o_day + 8], payload[at + o_time:at + o_time + 8],
                         int.from_bytes(payload[at + o_ms:at + o_ms + 4], "little", signed=True))
            append(int((now - sent) * 1_000_000))

    @staticmethod
    async def _heartbeats(writer: asyncio.StreamWriter, frame: Any) -> None:
        seq = 3
        while True:
            await asyncio.sleep(HEARTBEAT)
            seq += 1
            writer.write(frame(seq))


def clients_main(host: str, port: str, source: str, count: str, ids_file: str, latency: str) -> None:
    """A process of ``count`` light clients (see LightClient); the Child protocol of serve_common."""
    ids = json.loads(Path(ids_file).read_text())
    offsets = tick_offsets()
    window = [float("inf"), float("inf")]

    async def clients() -> None:
        light = [LightClient(host, int(port), source, ids, latency == "1", offsets, window) for _ in range(int(count))]
        tasks = [asyncio.ensure_future(client.run()) for client in light]
        firsts = asyncio.ensure_future(asyncio.gather(*(client.first.wait() for client in light)))
        await asyncio.wait([*tasks, firsts], timeout=90, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done() and task.exception() is not None:
                raise SystemExit(f"a client failed before the window: {task.exception()!r}")
        if not all(client.first.is_set() for client in light):
            raise SystemExit(f"{sum(not c.first.is_set() for c in light)} clients saw no tick within 90 s")
        start, end = await asyncio.get_running_loop().run_in_executor(None, child_handshake)
        window[0], window[1] = start, end
        await wait_closed([c.counter for c in light], end)
        failed = [repr(task.exception()) for task in tasks if task.done() and task.exception() is not None]
        print(counted([c.counter for c in light], end - start, failed=failed,
                      latencies_us=[s for c in light for s in c.samples]), flush=True)
        os._exit(0)

    asyncio.run(clients())


def source_for(kind: str, args: argparse.Namespace, ids: list[str], source_rate: str = "max") -> tuple[str, str]:
    """The sim:// address of a run and a line saying what it offers."""
    if kind == "throughput":
        if source_rate == "max":
            return (sim_url(ids, interval=0.5, speed="max"),
                    f"{len(ids)} instruments at speed=max: the simulator as fast as the server takes its ticks")
        rate = float(source_rate)
        speed = rate * 0.5 / len(ids)
        return (sim_url(ids, interval=0.5, speed=f"{speed:.6g}"),
                f"{len(ids)} instruments every 0.5 s of market time at speed={speed:.4g}: {rate:,.0f} ticks/s from "
                f"the source, {rate * args.clients:,.0f} ticks/s offered to {args.clients} clients")
    interval = latency_interval(len(ids), args)
    return (sim_url(ids, interval=interval, speed="1"),
            f"{len(ids)} instruments every {interval:g} s at speed=1: {len(ids) / interval:,.0f} ticks/s from the source, "
            f"x {args.clients} clients = {args.rate:,.0f} delivered ticks/s, in bursts of {len(ids) * args.clients:,} "
            f"deliveries every {interval:g} s")


def latency_interval(instruments: int, args: argparse.Namespace) -> float:
    interval = instruments * args.clients / args.rate
    hundredths = round(interval * 100)
    if abs(hundredths - interval * 100) > 1e-6 or not hundredths or 6000 % hundredths:
        raise SystemExit(f"{instruments} instruments x {args.clients} clients / {args.rate:g} ticks/s = an interval of "
                         f"{interval:g} s, which sim:// does not take (whole hundredths dividing a minute)")
    return interval


def run_once(kind: str, front: str, args: argparse.Namespace, ids: list[str], ids_file: str, run: int,
             modules_from: str | None = None, baseline: bool = True) -> dict[str, Any]:
    """One run: the server with its clients, then (``baseline``) the baseline on the same front address.
    ``modules_from``: the server's tick path from there (``--against``; serve_common.modules_at)."""
    latency = kind == "latency"
    server = ServerProcess({SOURCE: front}, probe=args.probe and latency, modules_from=modules_from)
    if args.server_cpus:
        pin_process(server.pid, args.server_cpus)
    variant = "against" if modules_from else "current"
    profile_file = str(Path(args.profile) / f"serve_binary-{kind}-{len(ids)}-{variant}-{run}.txt") if args.profile else ""
    try:
        host, port = server.binary
        light = args.clients - args.real
        if args.clients_kind == "native":
            per_client = args.rate / args.clients if latency else 0.0  # ticks/s each client gets
            children = [native_clients_child(args.native_program, f"ctpshim://{host}:{port}/{SOURCE}", n, ids_file,
                                             latency, int(n * per_client * args.seconds * 2) + 10_000,
                                             f"clients-{number}", args.client_nice, args.client_cpus)
                        for number, n in enumerate(split(light, args.procs)) if n]
        else:
            children = [Child([str(HERE), "clients", host, str(port), SOURCE, str(n), ids_file,
                               "1" if latency else "0"], f"clients-{number}", args.client_nice, cpus=args.client_cpus)
                        for number, n in enumerate(split(light, args.procs)) if n]
        children += [mdapi_child(f"ctpshim://{host}:{port}/{SOURCE}", ids, latency, f"real-{number}", args.client_nice)
                     for number in range(args.real)]
        window = ServerWindow(server, args.seconds, profile_file)
        results = measure(children, args.seconds, ready_timeout=120, during=window)
        light_results = [r for r, c in zip(results, children) if c.name.startswith("clients")]
        real_results = [r for r, c in zip(results, children) if c.name.startswith("real")]
        figures = combine(results)
        figures["light"] = combine(light_results) if light_results else None
        figures["real"] = combine(real_results) if real_results else None
        figures["failed"] = [f for r in light_results for f in r.get("failed", ())]
        figures["samples_dropped"] = sum(r.get("samples_dropped", 0) for r in light_results)
        figures["bad_stamps"] = sum(r.get("bad_stamps", 0) for r in light_results)
        figures.update(window.figures())
        if args.probe and latency:
            figures["probe"] = server.probe()
    finally:
        server.stop()
    if baseline:
        figures["baseline"] = combine(measure([mdapi_child(front, ids, latency, "baseline")], args.seconds))
    return figures


def report(kind: str, runs: list[dict[str, Any]], args: argparse.Namespace, instruments: int, title: str = "") -> None:
    import statistics

    many = KIND_NAMES[args.clients_kind]
    print(f"{kind}{title}: {args.clients} clients ({args.clients - args.real} {many} in {args.procs} processes, "
          f"{args.real} real md API) x {instruments} instruments, {len(runs)} runs of {args.seconds:g} s")
    print_delivered(runs, "ticks", lambda run: run["light"]["rates"] if run["light"] else [],
                    CLIENT_NAMES[args.clients_kind])
    middle = middle_run(runs, lambda run: run["rate"])
    if middle["light"] and middle["real"]:
        real = middle["real"]["rate"]
        print(f"    median run: {many} {middle['light']['rate']:,.0f}/s in all; real md API clients "
              f"{real:,.0f}/s in all, {real / max(1, args.real):,.0f}/s each")
    lost = [(run["samples_dropped"], run["bad_stamps"]) for run in runs
            if run.get("samples_dropped") or run.get("bad_stamps")]
    if lost:
        print(f"  latency samples lost (no room, bad stamp) per run: {lost}")
    if kind == "latency":
        p99s = [r["latency"]["p99"] for r in runs if r["latency"]]
        middle = middle_run(runs, lambda r: r["latency"]["p99"] if r["latency"] else 0)
        print(f"  latency p99  {statistics.median(p99s):.2f} ms, stamp to handler (median of runs: {runs_of(p99s, '.2f')})")
        print(f"    every client, median run: {show_spread(middle['latency'])}")
        if middle["light"] and middle["light"]["latency"]:
            print(f"    {many}: {show_spread(middle['light']['latency'])}")
        if middle["real"] and middle["real"]["latency"]:
            print(f"    real md API clients (OnRtnDepthMarketData): {show_spread(middle['real']['latency'])}")
        for name, figures in (middle.get("probe") or {}).items():
            if figures["n"]:
                print(f"    server probe, stamp to {name}: {show_spread(figures).replace(' ticks', ' batches or writes')}")
    print_baseline(runs, latency=kind == "latency")
    print_failures_and_hot_spots(runs)
    sys.stdout.flush()


def compare(kind: str, current: list[dict[str, Any]], against: list[dict[str, Any]], revision: str) -> None:
    """The current tick path against ``revision``'s, run for run in the same run of the bench."""
    import statistics

    def line(runs: list[dict[str, Any]]) -> str:
        cpu = statistics.median(run["server"]["cpu_us_per_tick"] for run in runs)
        text = f"{cpu:.2f} us CPU per delivered tick"
        if kind == "latency":
            p99 = statistics.median(r["latency"]["p99"] for r in runs if r["latency"])
            p50 = statistics.median(r["latency"]["p50"] for r in runs if r["latency"])
            text += f", p50 {p50:.2f} ms, p99 {p99:.2f} ms"
        return text + f", {statistics.median(run['rate'] for run in runs):,.0f} ticks/s"

    print(f"  compared (medians of {len(current)} alternating runs): current {line(current)}; "
          f"{revision}: {line(against)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--instruments", type=int, default=1000, help="throughput (cut to what sim:// lists)")
    parser.add_argument("--source-rate", default="max",
                        help="throughput: comma-separated ticks/s from the source, one measurement each: max (as fast "
                             "as the server takes them; the default) or a number (2500: 250,000 offered to 100 clients)")
    parser.add_argument("--latency-instruments", default="600,20,2",
                        help="latency: comma-separated instrument counts, one measurement each (default 600,20,2)")
    parser.add_argument("--rate", type=float, default=20_000, help="latency: delivered ticks/s in total (default 20,000)")
    parser.add_argument("--seconds", type=float, default=6.0,
                        help="measuring window per run (default 6: two of the 600-instrument latency bursts)")
    parser.add_argument("--clients-kind", choices=tuple(KIND_NAMES), default="light",
                        help="light (default): asyncio clients in Python that count frames; native: C++ CTP programs, "
                             "CThostFtdcMdApi objects of ctpshim's native md library whose OnRtnDepthMarketData counts "
                             "(bench/native_md_clients.cpp, built on first use)")
    parser.add_argument("--procs", type=int, default=2, help="processes for the light or native clients (default 2)")
    parser.add_argument("--real", type=int, default=1,
                        help="ordinary md API programs over ctpshim:// among the clients (default 1)")
    parser.add_argument("--only", choices=("throughput", "latency"), action="append")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the server during each window, files in DIR")
    parser.add_argument("--probe", action="store_true",
                        help="latency: also time each tick inside the server (stamp to fan-out, to each client's "
                             "write; serve_common.install_probe, which costs the server time of its own)")
    parser.add_argument("--client-nice", type=int, default=0, metavar="N",
                        help="run the client processes at nice N (10: the server is not preempted by its own clients "
                             "on a machine whose cores they share; the baseline is not niced)")
    parser.add_argument("--server-cpus", default="", metavar="LIST",
                        help="keep the server process on these CPUs (taskset syntax: 0, 0-1); with --client-cpus, "
                             "whether the clients' wake-ups preempting the server matter")
    parser.add_argument("--client-cpus", default="", metavar="LIST",
                        help="keep the client processes (light or native; not the real md API one) on these CPUs")
    parser.add_argument("--against", metavar="REVISION",
                        help="also measure the server's tick path (shim/server/fanout.py, channel.py, binary.py) at "
                             "this git revision, alternating run for run with the current one (its baseline shared)")
    args = parser.parse_args()
    args.native_program = native_clients_program() if args.clients_kind == "native" else None
    print(f"machine: {machine()}")
    print("reproduce: python bench/serve_binary.py " + " ".join(sys.argv[1:]))

    plans = []
    if not args.only or "throughput" in args.only:
        plans += [("throughput", listed_ids(args.instruments), rate) for rate in args.source_rate.split(",")]
    if not args.only or "latency" in args.only:
        plans += [("latency", listed_ids(int(n)), "") for n in args.latency_instruments.split(",")]
    for kind, ids, source_rate in plans:
        front, offered = source_for(kind, args, ids, source_rate)
        print(f"\n{kind} source: {offered}")
        ids_file = ids_path()
        Path(ids_file).write_text(json.dumps(ids))
        started = time.monotonic()
        if args.against:
            folder = modules_at(args.against)
            runs: list[dict[str, Any]] = []
            against: list[dict[str, Any]] = []
            for number in range(args.runs):  # alternating which goes first
                first, second = (runs, None), (against, folder)
                for into, modules in ((first, second) if number % 2 == 0 else (second, first)):
                    into.append(run_once(kind, front, args, ids, ids_file, number, modules, baseline=False))
                runs[-1]["baseline"] = combine(measure([mdapi_child(front, ids, kind == "latency", "baseline")],
                                                       args.seconds))
            report(kind, runs, args, len(ids), " (current)")
            report(kind, against, args, len(ids), f" ({args.against})")
            compare(kind, runs, against, args.against)
        else:
            runs = [run_once(kind, front, args, ids, ids_file, number) for number in range(args.runs)]
            report(kind, runs, args, len(ids))
        print(f"  ({time.monotonic() - started:.0f} s)")
        os.unlink(ids_file)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "clients":
        clients_main(*sys.argv[2:])
    else:
        main()
