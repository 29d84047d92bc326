"""Ticks per second through the market hub: one program, and ten programs on one front.

    python bench/bench_hub.py [--ticks N] [--runs R] [--only NAME] [--compare DIR] [--tree DIR]

Measures, each in a fresh process per run, as the median of R runs:
  sim-1       sim://?speed=max (a dozen default contracts) to one no-op OnRtnDepthMarketData
  replay-1    replay://?bundled=RM705&loop=true&speed=max&rebase=none (the bundled day, looped)
              to one no-op OnRtnDepthMarketData
  sim-10      ten md API objects on the one sim:// front, each to its own no-op handler:
              total ticks delivered per second (each program counts N ticks)
  replay-10   the same on the replay:// front
Times run from the first Init() to the N-th tick of the last program, so they include connecting,
login and subscribing.  ``--compare DIR`` runs every measurement on this checkout (or the ``--tree``
one) and on the one at DIR in alternating runs, and prints both medians and their ratio; ``--tree
DIR`` alone runs only on DIR (see bench/trees.py).  Before the hub, each API object had its own adapter:
ten programs meant ten upstreams doing the same work.

Figures (2 cores, Intel Xeon, Python 3.11.7, 300,000 ticks per program, --cpu, median of 7
alternating runs; the machine shared with other work, load average 2-5), this tree at fc75449
against the same tree with the runtime before the hub (session, dispatcher, queue_policy of
7bfbe03):
  sim-1        536,030 vs   444,142 ticks/s  (1.21: the dispatcher now lets go of each batch as soon
               as it is delivered instead of when its whole drained queue is; that loop alone,
               swapped back in the new dispatcher, gives 431,883 against 552,623)
  replay-1     706,060 vs   712,833 ticks/s  (0.99; at 7a95de1, 9 runs: 645,170 vs 661,070, 0.98)
  sim-10     2,459,291 vs   237,496 ticks/s  (10.4: one upstream, each tick made once)
  replay-10  2,974,947 vs   677,519 ticks/s  (4.4)
Wall time (5 runs) gave the same picture with more scatter.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trees import tree_option  # noqa: E402

tree_option()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

HERE = Path(__file__).resolve()
FRONTS = {
    "sim": "sim://?speed=max&start=2026-11-20T09:00&seed=1",
    "replay": "replay://?bundled=RM705&loop=true&speed=max&rebase=none",
}
MEASURES = {"sim-1": ("sim", 1), "replay-1": ("replay", 1), "sim-10": ("sim", 10), "replay-10": ("replay", 10)}


def instrument_ids(front: str) -> list[str]:
    try:
        from ctpshim.fronts.registry import create_adapter
    except ImportError:  # the flat layout before the packages
        from ctpshim.registry import create_adapter  # type: ignore[no-redef]
    return [info.instrument_id for info in create_adapter(front).instruments()]


def child(measure: str, ticks: int, cpu: bool = False) -> float:
    """One run in this process: total ticks delivered per second."""
    from ctpshim import mdapi

    source, programs = MEASURES[measure]
    front = FRONTS[source]
    ids = [i.encode() for i in (["RM705"] if source == "replay" else instrument_ids(front))]

    class NoOp(mdapi.CThostFtdcMdSpi):
        def __init__(self, api: Any) -> None:
            super().__init__()
            self.api, self.count, self.done = api, 0, threading.Event()

        def OnFrontConnected(self) -> None:
            self.api.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 0)

        def OnRspUserLogin(self, *args: object) -> None:
            self.api.SubscribeMarketData(ids, len(ids))

        def OnRtnDepthMarketData(self, tick: object) -> None:
            self.count += 1
            if self.count == ticks:
                self.done.set()

    flow = tempfile.mkdtemp(prefix="ctpshim-bench-hub-") + os.sep
    apis, spis = [], []
    for number in range(programs):
        api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(f"{flow}{number}_")
        spi = NoOp(api)
        api.RegisterSpi(spi)
        api.RegisterFront(front)
        apis.append(api)
        spis.append(spi)
    clock = time.process_time if cpu else time.perf_counter
    start = clock()
    for api in apis:
        api.Init()
    for spi in spis:
        if not spi.done.wait(120):
            raise SystemExit(f"{measure}: only {spi.count} of {ticks} ticks arrived in 120 s")
    elapsed = clock() - start
    for api in apis:
        api.Release()
    return programs * ticks / elapsed


def run_child(measure: str, ticks: int, tree: str | None, cpu: bool) -> float:
    command = [sys.executable, str(HERE), "--child", measure, "--ticks", str(ticks)] + (["--cpu"] if cpu else [])
    if tree:
        command += ["--tree", tree]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"{measure} on {tree or 'this tree'} failed:\n{done.stderr[-2000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--ticks", type=int, default=300_000, help="ticks each program counts (default 300,000)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", choices=sorted(MEASURES), action="append", help="only these (repeatable)")
    parser.add_argument("--compare", metavar="DIR", help="alternate runs with the checkout at DIR")
    parser.add_argument("--tree", help="run on the ctpshim checkout at DIR (see bench/trees.py)")
    parser.add_argument("--cpu", action="store_true",
                        help="ticks per CPU second of the process (all threads) instead of per wall second: "
                             "steadier on a machine that other work shares")
    parser.add_argument("--child", choices=sorted(MEASURES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.ticks, args.cpu)))
        return
    trees: list[str | None] = [args.tree]
    if args.compare:
        trees = [args.tree, args.compare]
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores; "
          f"{args.ticks:,} ticks per program per run, median of {args.runs} alternating runs"
          + (", CPU time" if args.cpu else ""))
    for measure in MEASURES:
        if args.only and measure not in args.only:
            continue
        rates: dict[str | None, list[float]] = {tree: [] for tree in trees}
        for _ in range(args.runs):
            for tree in trees:
                rates[tree].append(run_child(measure, args.ticks, tree, args.cpu))
        medians = {tree: statistics.median(values) for tree, values in rates.items()}
        line = f"{measure:<10}" + "".join(
            f"  {tree or 'this tree'}: {medians[tree]:>10,.0f} ticks/s" for tree in trees)
        if args.compare:
            line += f"  (ratio {medians[trees[0]] / medians[args.compare]:.2f})"
        print(line + "   runs: " + "; ".join(
            f"{tree or 'this'}: " + ", ".join(f"{r:,.0f}" for r in values) for tree, values in rates.items()))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
