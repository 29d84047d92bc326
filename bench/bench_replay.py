"""Replay, recording and CSV import throughput, with the same-run baselines.

    python bench/bench_replay.py [--ticks N] [--runs R] [--tree DIR] [--compare DIR]

``--tree DIR`` runs everything on the checkout at DIR (see trees.py); ``--compare DIR`` alternates
each replay run between this checkout and DIR and prints both (old against new on one machine).

1. A synthetic multi-instrument day of N ticks (default 5,000,000; sim://, 48 contracts, one
   trading day) is made once and cached in the system temp folder.
2. Replay: in a fresh process per run, replay://DAY?speed=max&rebase=none (and rebase=now, the
   default, which stamps every tick as it is delivered) into a no-op OnRtnDepthMarketData through
   the facade: ticks/s, time from Init() to the first tick, and peak memory (max RSS) above the
   process's own size before RegisterFront() opened the file (the "empty process", with the
   modules replay loads already imported); ticks per second of wall time and of CPU time (every
   thread of the process: the steadier figure on a busy machine).
   The same with every batch made into ticks on the IO thread (eager) instead of on the
   dispatcher's, in alternating runs: what making them on the delivering thread is worth.
3. Recording: `record` from sim://?speed=max (12 contracts) for 1,000,000 ticks: ticks/s while
   recording, and including the final archiving at stop; next to sim:// delivered to a no-op
   handler in the same run (the source's own rate, the ceiling for any recorder).
4. CSV import: the CTP-field CSV of 500,000 ticks exported from the day, imported again: rows/s.
Each figure is the median of R runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import trees  # noqa: E402

trees.tree_option()  # before anything imports ctpshim
FRONT = "sim://?speed=max&start=2026-11-20T09:00&seed=5"
# Contracts listed on 2026-11-20, the trading day the sim plays (it refuses expired ones).
IDS = ["rb2701", "au2701", "cu2701", "sc2701", "m2701", "i2701", "TA701", "SR703", "IF2612", "T2703", "si2701", "lc2701"]
# The synthetic day: 48 contracts, a snapshot every 50 ms of market time, around the clock from
# 09:00, so 5 million ticks fit in one trading day (about 1.5 hours of market time).
DAY_IDS = IDS + ["ag2701", "al2701", "zn2701", "ni2701", "sn2701", "ss2701", "hc2701", "fu2701", "bu2701", "ru2703",
                 "sp2701", "lu2701", "nr2701", "bc2701", "a2703", "b2701", "y2701", "p2701", "c2703", "cs2703",
                 "jd2701", "l2701", "v2701", "pp2701", "eg2701", "j2701", "jm2701", "CF703", "MA701", "FG701",
                 "SA701", "OI703", "RM703", "IH2612", "IC2612", "IM2612"]
DAY_FRONT = "sim://?speed=max&start=2026-11-20T09:00&seed=5&hours=always&interval=0.05"

CHILD = r"""
import json, sys, threading, time
sys.path.insert(0, sys.argv[4])
import trees
if sys.argv[3]:
    trees.use_tree(sys.argv[3])
def high_water_mb():
    # VmHWM: this process's own peak (ru_maxrss would carry the parent's peak across exec on Linux)
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) / 1024
from ctpshim import mdapi
target, path, rebase, eager = int(sys.argv[1]), sys.argv[2], sys.argv[5], sys.argv[6] == "eager"
class Spi(mdapi.CThostFtdcMdSpi):
    def __init__(self, api):
        super().__init__(); self.api = api; self.count = 0; self.first = None; self.done = threading.Event()
    def OnFrontConnected(self):
        self.api.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 0)
    def OnRspUserLogin(self, *a):
        ids = [i.encode() for i in %r]
        self.api.SubscribeMarketData(ids, len(ids))
    def OnRtnDepthMarketData(self, tick):
        if self.first is None:
            self.first = time.perf_counter()
        self.count += 1
        if self.count == target:
            self.done.set()
import ctpshim.recording, ctpshim.adapters.replay, pyarrow.parquet  # what replay loads, counted in the empty size
if eager:  # every due batch made into ticks on the IO thread, as a list, instead of on the dispatcher's
    restamped = ctpshim.adapters.replay.ReplayAdapter._restamped
    ctpshim.adapters.replay.ReplayAdapter._restamped = lambda self, rows: list(restamped(self, rows))
empty = high_water_mb()  # before the file is opened: its parsed footer counts as replay's memory
api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi('/tmp/ctpshim-bench-replay-')
spi = Spi(api); api.RegisterSpi(spi); api.RegisterFront('replay://' + path + '?speed=max&rebase=' + rebase)
start = time.perf_counter(); cpu = time.process_time(); api.Init()
if not spi.done.wait(600): raise SystemExit('only %%d ticks' %% spi.count)
end = time.perf_counter(); cpu = time.process_time() - cpu; api.Release()
peak = high_water_mb()
print(json.dumps({"rate": target / (end - start), "cpu_rate": target / cpu, "first": spi.first - start,
                  "empty_mb": empty, "extra_mb": peak - empty}))
""" % (DAY_IDS,)


def _tool(name: str):
    """``record`` or ``convert`` from the tree being measured (one module per command, or the older tools/NAME.py)."""
    import importlib

    try:
        module = importlib.import_module(f"ctpshim.tools.commands.{name}")
    except ImportError:
        module = importlib.import_module(f"ctpshim.tools.{name}")
    return getattr(module, name)


def synthetic_day(ticks: int) -> Path:
    from ctpshim.recording import ARCHIVE_ROW_GROUP

    folder = Path(tempfile.gettempdir()) / f"ctpshim-bench-day-{ticks}-g{ARCHIVE_ROW_GROUP}-listed"
    done = folder / "20261120.parquet"
    if done.exists():
        return done
    folder.mkdir(exist_ok=True)
    print(f"making a synthetic day of {ticks:,} ticks in {folder} (once) ...", flush=True)
    record = _tool("record")

    record(DAY_FRONT, DAY_IDS, str(folder), None, ticks, quiet=True)
    files = sorted(folder.glob("*.parquet"))
    if len(files) != 1:
        raise SystemExit(f"expected one trading day, got {[f.name for f in files]}")
    files[0].rename(done)
    return done


def replay_run(day: Path, ticks: int, tree: str = "", rebase: str = "none", eager: bool = False) -> dict:
    result = subprocess.run([sys.executable, "-c", CHILD, str(ticks), str(day), tree, str(HERE), rebase,
                             "eager" if eager else "lazy"],
                            capture_output=True, text=True, timeout=900)
    if result.returncode:
        raise SystemExit(result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


def record_rate(ticks: int) -> tuple[float, float]:
    """(ticks/s while recording, ticks/s including the archiving when it stops)."""
    import ctpshim.recording as recording
    record = _tool("record")

    archiving = []
    original = recording.LiveWriter.close

    def timed_close(self):
        started = time.perf_counter()
        original(self)
        archiving.append(time.perf_counter() - started)

    recording.LiveWriter.close = timed_close
    try:
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            record(FRONT, IDS, folder, None, ticks, quiet=True)
            total = time.perf_counter() - start
    finally:
        recording.LiveWriter.close = original
    return ticks / (total - archiving[0]), ticks / total


def source_rate(ticks: int) -> float:
    argv, sys.argv = sys.argv, sys.argv[:1]  # bench_sim applies --tree at import: it is applied already
    try:
        import bench_sim
    finally:
        sys.argv = argv

    return bench_sim.facade(bench_sim.NoOp, ticks, FRONT)


def import_rate(day: Path, rows: int) -> float:
    import pyarrow.parquet as pq

    from ctpshim.recording import write_archive
    convert = _tool("convert")

    with tempfile.TemporaryDirectory() as folder:
        part = Path(folder) / "part.parquet"
        write_archive(pq.read_table(day).slice(0, rows), part)
        csv_path = Path(folder) / "part.csv"
        convert(str(part), str(csv_path))
        start = time.perf_counter()
        convert(str(csv_path), str(Path(folder) / "back.parquet"))
        return rows / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=5_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tree", help="run on the checkout at DIR (see trees.py)")
    parser.add_argument("--compare", metavar="DIR", help="alternate each replay run with the checkout at DIR")
    parser.add_argument("--replay-only", action="store_true", help="skip recording and CSV import")
    args = parser.parse_args()
    day = synthetic_day(args.ticks)
    size_mb = day.stat().st_size / 2**20
    print(f"day: {args.ticks:,} ticks of {len(DAY_IDS)} contracts, {size_mb:.0f} MB on disk; median of {args.runs} runs")
    trees_run = {"": args.tree or ""}
    if args.compare:
        trees_run = {"this checkout: ": args.tree or "", f"{args.compare}: ": args.compare}
    for rebase in ("none", "now"):
        runs: dict[str, list[dict]] = {label: [] for label in trees_run}
        for _ in range(args.runs):  # alternating: each round runs every tree once
            for label, tree in trees_run.items():
                runs[label].append(replay_run(day, args.ticks, tree, rebase))
        for label, replays in runs.items():
            each = ", ".join(f"{r['rate']:,.0f}" for r in replays)
            print(f"{label}replay speed=max rebase={rebase} -> no-op handler "
                  f"{statistics.median(r['rate'] for r in replays):>12,.0f} ticks/s (runs: {each})")
            # Ticks per second of CPU time (all the process's threads): steadier on a busy machine.
            each = ", ".join(f"{r['cpu_rate']:,.0f}" for r in replays)
            print(f"  per CPU second                    {statistics.median(r['cpu_rate'] for r in replays):>12,.0f} "
                  f"ticks/s (runs: {each})")
            print(f"  time to first tick                {statistics.median(r['first'] for r in replays) * 1000:>12,.0f} ms")
            print(f"  peak memory above the empty process {statistics.median(r['extra_mb'] for r in replays):>10,.0f} MB "
                  f"(empty process: {statistics.median(r['empty_mb'] for r in replays):,.0f} MB)")
    # What making the ticks on the delivering thread is worth: the same runs with each batch made on the IO thread.
    runs = {"lazy": [], "eager": []}
    for _ in range(args.runs):
        for kind in runs:
            runs[kind].append(replay_run(day, args.ticks, args.tree or "", "none", eager=kind == "eager"))
    for kind, replays in runs.items():
        each = ", ".join(f"{r['cpu_rate']:,.0f}" for r in replays)
        where = "on the dispatcher thread (lazy)" if kind == "lazy" else "on the IO thread (eager)"
        print(f"ticks made {where:<32} {statistics.median(r['cpu_rate'] for r in replays):>12,.0f} ticks per CPU "
              f"second (runs: {each})")
    if args.replay_only:
        return
    sources = [source_rate(1_000_000) for _ in range(args.runs)]
    records = [record_rate(1_000_000) for _ in range(args.runs)]
    print(f"sim:// -> no-op handler (baseline)  {statistics.median(sources):>12,.0f} ticks/s")
    print(f"record sim:// to disk, while recording {statistics.median(r[0] for r in records):>9,.0f} ticks/s")
    print(f"  including the archiving at stop   {statistics.median(r[1] for r in records):>12,.0f} ticks/s")
    imports = [import_rate(day, 500_000) for _ in range(args.runs)]
    print(f"CSV import (ctp layout)             {statistics.median(imports):>12,.0f} rows/s")


if __name__ == "__main__":
    main()
