"""The facade's request path: what one API call costs, from the program's call to its return.

    python bench/bench_api.py [--runs R] [--compare DIR] [--tree DIR]

Per call, in CPU time of the whole process (every thread: the IO thread and the dispatcher work a
call causes count too), each measurement in a fresh process per run, median of R runs:
  login-idle      md ReqUserLogin on an API object with no front (argument checks, -1)
  query-idle      td ReqQryInstrument on an API object with no front
  subscribe-idle  md SubscribeMarketData of two IDs with no front (the ID checks)
  trading-day     td GetTradingDay
  login-live      md ReqUserLogin on a connected sim:// API: the reply built and posted
  unsub-live      md UnSubscribeMarketData of two IDs on it: two replies posted
``--compare DIR`` runs every measurement on this checkout (or the ``--tree`` one) and on the one at
DIR in alternating runs and prints both medians and their ratio; ``--tree DIR`` alone runs only on
DIR (see bench/trees.py).

Figures (2 cores, Intel Xeon, Python 3.11.7, median of 5 alternating runs, the machine shared with
other work, load average 3-4), this tree at 3636130 against 0ed9b95 (before the backends):
  login-idle         341 vs    391 ns  (0.87)
  query-idle         347 vs    355 ns  (0.98)
  subscribe-idle   2,189 vs  2,227 ns  (0.98)
  trading-day         98 vs     86 ns  (1.14: one method call more, to the backend)
  login-live      14,420 vs 16,788 ns  (0.86)
  unsub-live      39,555 vs 45,083 ns  (0.88)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trees import tree_option  # noqa: E402

tree_option()

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable  # noqa: E402

HERE = Path(__file__).resolve()
FRONT = "sim://?start=2026-11-20T09:35&instruments=rb2701,TA701"
IDLE_CALLS = 200_000
LIVE_CALLS = 20_000


def per_call(call: Callable[[], Any], count: int) -> float:
    """Nanoseconds of process CPU time per call."""
    started = time.process_time()
    for _ in range(count):
        call()
    return (time.process_time() - started) / count * 1e9


def measure() -> dict[str, float]:
    from ctpshim import mdapi, tdapi

    flow = tempfile.mkdtemp(prefix="ctpshim-bench-api-") + "/"
    md = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(flow + "md_")
    td = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(flow + "td_")
    login = mdapi.CThostFtdcReqUserLoginField()
    query = tdapi.CThostFtdcQryInstrumentField()
    ids = [b"rb2701", b"TA701"]
    figures = {
        "login-idle": per_call(lambda: md.ReqUserLogin(login, 1), IDLE_CALLS),
        "query-idle": per_call(lambda: td.ReqQryInstrument(query, 1), IDLE_CALLS),
        "subscribe-idle": per_call(lambda: md.SubscribeMarketData(ids, 2), IDLE_CALLS),
        "trading-day": per_call(td.GetTradingDay, IDLE_CALLS),
    }
    connected = threading.Event()

    class Spi(mdapi.CThostFtdcMdSpi):  # type: ignore[name-defined,misc]
        def OnFrontConnected(self) -> None:
            connected.set()

    live = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(flow + "live_")
    live.RegisterSpi(Spi())
    live.RegisterFront(FRONT)
    live.Init()
    if not connected.wait(30):
        raise SystemExit(f"{FRONT} did not connect within 30 s")
    figures["login-live"] = per_call(lambda: live.ReqUserLogin(login, 1), LIVE_CALLS)
    figures["unsub-live"] = per_call(lambda: live.UnSubscribeMarketData(ids, 2), LIVE_CALLS)
    for api in (md, td, live):
        api.Release()
    return figures


def run_child(tree: str | None) -> dict[str, float]:
    command = [sys.executable, str(HERE), "--child"] + (["--tree", tree] if tree else [])
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--compare", metavar="DIR")
    parser.add_argument("--tree", metavar="DIR")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure()))
        return
    trees = [args.tree] + ([args.compare] if args.compare else [])
    results: dict[str | None, list[dict[str, float]]] = {tree: [] for tree in trees}
    for _ in range(args.runs):
        for tree in trees:
            results[tree].append(run_child(tree))
    names = list(results[trees[0]][0])
    for name in names:
        medians = [statistics.median(run[name] for run in results[tree]) for tree in trees]
        line = f"{name:15s} {medians[0]:10,.0f} ns"
        if args.compare:
            line += f"   {args.compare}: {medians[1]:10,.0f} ns   ratio {medians[0] / medians[1]:.2f}"
        print(line)


if __name__ == "__main__":
    main()
