"""``ctpshim serve --redis``: ticks/s published to Redis Streams, and latency end to end through ``redis://``.

    python bench/serve_redis.py [--runs R] [--instruments N] [--source-rate max,5000] [--seconds S]
                                [--latency-instruments N] [--latency-interval S] [--readers N]
                                [--only publish|latency] [--profile DIR]

A local ``redis-server`` (Debian's package) on a free loopback port, no persistence, started and
stopped by the bench; a real ``ctpshim.server.Server`` with ``redis`` settings in a process of its
own (bench/serve_common.py), publishing every instrument of one ``sim://`` source.  Each figure is
the median of R runs; each run ends with the baseline on the same front address: one in-process md
API object.

publish   ticks/s the server wrote to Redis: the sum over every instrument's stream of ``XINFO STREAM``'s
          ``entries-added`` (entries ever added, whatever MAXLEN trimmed) at the end of the window less
          at its start, over the window.  The source runs at ``--source-rate`` (default: max, as fast as the
          server takes its ticks, and paced at 5,000 ticks/s); what the publisher conflated while a write
          was in flight is not counted (the ticks/s from the source into the server are printed).
latency   ``--readers`` ordinary md API programs (default 1) on ``redis://127.0.0.1:PORT/sim`` (the
          redis:// front: XREAD BLOCK), each subscribed to every instrument of ``sim://`` at speed=1
          (``--latency-instruments`` contracts every ``--latency-interval`` s, default 100 every 0.5 s = 200
          ticks/s); latency = the reader's clock at OnRtnDepthMarketData less the tick's stamp (see
          bench/serve_common.py): upstream -> server -> XADD -> Redis -> XREAD -> the reader's callback.
          Baseline: one md API object on the same sim:// address, its stamp-to-callback latency.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import argparse  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from serve_common import (ServerProcess, combine, free_port, hot_spots, listed_ids, machine, mdapi_child,  # noqa: E402
                          measure, py_spy, show_spread, sim_url)

SOURCE = "sim"
NAMESPACE = "ctpshim"


class RedisProcess:
    """``redis-server`` on 127.0.0.1, a free port, a temporary directory, no persistence."""

    def __init__(self) -> None:
        executable = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.directory = tempfile.mkdtemp(prefix="ctpshim-bench-redis-")
        self.port = free_port()
        self.process = subprocess.Popen([executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                         "--appendonly", "no", "--dir", self.directory, "--logfile", "redis.log"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self._ping():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise SystemExit(f"redis-server did not answer on 127.0.0.1:{self.port} within 10 s")
            time.sleep(0.05)
        self.url = f"redis://127.0.0.1:{self.port}"

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as link:
                link.sendall(b"PING\r\n")
                return link.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def entries_added(self, ids: list[str]) -> int:
        """Entries ever added to the instruments' streams (XINFO STREAM entries-added, Redis 7)."""
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port)
        try:
            pipe = client.pipeline(transaction=False)
            for instrument in ids:
                pipe.execute_command("XINFO", "STREAM", f"{NAMESPACE}:{SOURCE}:md:{instrument}")
            total = 0
            for reply in pipe.execute(raise_on_error=False):
                if isinstance(reply, Exception):
                    continue  # no stream yet
                if isinstance(reply, dict):
                    fields = {k.decode() if isinstance(k, bytes) else k: v for k, v in reply.items()}
                else:
                    fields = {(reply[i].decode() if isinstance(reply[i], bytes) else reply[i]): reply[i + 1]
                              for i in range(0, len(reply) - 1, 2)}
                total += int(fields.get("entries-added", fields.get("length", 0)))
            return total
        finally:
            client.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


def publish_run(args: argparse.Namespace, ids: list[str], run: int, source_rate: str) -> dict[str, Any]:
    if source_rate == "max":
        front = sim_url(ids, interval=0.5, speed="max")
    else:
        front = sim_url(ids, interval=0.5, speed=f"{float(source_rate) * 0.5 / len(ids):.6g}")
    redis = RedisProcess()
    try:
        server = ServerProcess({SOURCE: front}, redis={"url": redis.url, "namespace": NAMESPACE})
        try:
            deadline = time.monotonic() + 60
            while redis.entries_added(ids) < len(ids) and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(2.0)  # warm-up
            sampler = None
            profile_file = str(Path(args.profile) / f"serve_redis-{run}.txt") if args.profile else ""
            if profile_file:
                Path(args.profile).mkdir(parents=True, exist_ok=True)
                sampler = py_spy(server.pid, args.seconds, profile_file)
            first, t0, m0 = redis.entries_added(ids), time.monotonic(), server.metrics()
            time.sleep(args.seconds)
            last, t1, m1 = redis.entries_added(ids), time.monotonic(), server.metrics()
            figures: dict[str, Any] = {"rate": (last - first) / (t1 - t0),
                                       "source": (m1["source_ticks_in"] - m0["source_ticks_in"]) / (t1 - t0)}
            if sampler is not None:
                sampler.wait(60)
                figures["hot_spots"] = hot_spots(profile_file)
        finally:
            server.stop()
    finally:
        redis.stop()
    figures["baseline"] = combine(measure([mdapi_child(front, ids, False, "baseline")], args.seconds))
    return figures


def latency_run(args: argparse.Namespace, ids: list[str]) -> dict[str, Any]:
    front = sim_url(ids, interval=args.latency_interval, speed="1")
    redis = RedisProcess()
    try:
        server = ServerProcess({SOURCE: front}, redis={"url": redis.url, "namespace": NAMESPACE})
        try:
            readers = [mdapi_child(f"redis://127.0.0.1:{redis.port}/{SOURCE}", ids, True, f"reader-{n}")
                       for n in range(args.readers)]
            figures = combine(measure(readers, args.seconds, ready_timeout=90))
        finally:
            server.stop()
    finally:
        redis.stop()
    figures["baseline"] = combine(measure([mdapi_child(front, ids, True, "baseline")], args.seconds))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--instruments", type=int, default=1000, help="publish: cut to what sim:// lists (about 730)")
    parser.add_argument("--source-rate", default="max,5000",
                        help="publish: comma-separated ticks/s from the source, one measurement each (default max,5000)")
    parser.add_argument("--latency-instruments", type=int, default=100)
    parser.add_argument("--latency-interval", type=float, default=0.5)
    parser.add_argument("--readers", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--only", choices=("publish", "latency"), action="append")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the server during each publish window")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.strip())
    print("reproduce: python bench/serve_redis.py " + " ".join(sys.argv[1:]))
    if not args.only or "publish" in args.only:
        for source_rate in args.source_rate.split(","):
            started = time.monotonic()
            ids = listed_ids(args.instruments)
            runs = [publish_run(args, ids, n, source_rate) for n in range(args.runs)]
            rates = [r["rate"] for r in runs]
            paced = "as fast as the server takes them" if source_rate == "max" else f"paced at {source_rate} ticks/s"
            print(f"\npublish: {len(ids)} instruments, the source {paced}, {len(runs)} runs of {args.seconds:g} s")
            print(f"  published    {statistics.median(rates):>10,.0f} ticks/s to Redis Streams (median; runs "
                  + ", ".join(f"{r:,.0f}" for r in rates) + ")")
            print("    ticks/s from the source into the server (the rest conflated while a write was in flight): "
                  + ", ".join(f"{r['source']:,.0f}" for r in runs))
            base = [r["baseline"]["rate"] for r in runs]
            print(f"  baseline     {statistics.median(base):>10,.0f} ticks/s to one in-process md API object on the same "
                  "sim:// address (runs " + ", ".join(f"{r:,.0f}" for r in base) + ")")
            if runs[-1].get("hot_spots"):
                print("  server hot spots (py-spy, last run):\n    " + runs[-1]["hot_spots"].replace("\n", "\n    "))
            print(f"  ({time.monotonic() - started:.0f} s)")
            sys.stdout.flush()
    if not args.only or "latency" in args.only:
        started = time.monotonic()
        ids = listed_ids(args.latency_instruments)
        runs = [latency_run(args, ids) for _ in range(args.runs)]
        p99s = [r["latency"]["p99"] for r in runs if r["latency"]]
        middle = sorted(runs, key=lambda r: r["latency"]["p99"] if r["latency"] else 0)[len(runs) // 2]
        print(f"\nlatency through redis://: {args.readers} reader(s) x {len(ids)} instruments every "
              f"{args.latency_interval:g} s ({len(ids) / args.latency_interval:,.0f} ticks/s), {len(runs)} runs of "
              f"{args.seconds:g} s")
        print(f"  received     {statistics.median(r['rate'] for r in runs):,.0f} ticks/s by the reader(s)")
        print(f"  latency p99  {statistics.median(p99s):.2f} ms, stamp to OnRtnDepthMarketData (runs "
              + ", ".join(f"{p:.2f}" for p in p99s) + f"); median run: {show_spread(middle['latency'])}")
        base = [r["baseline"]["latency"]["p99"] for r in runs if r["baseline"]["latency"]]
        print(f"  baseline p99 {statistics.median(base):.2f} ms (runs " + ", ".join(f"{p:.2f}" for p in base)
              + f"); median run: {show_spread(middle['baseline']['latency'])}")
        print(f"  ({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
