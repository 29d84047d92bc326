"""The simulated counter's speed, with the same-run baselines.

    python bench/bench_trader.py [--orders N] [--runs R] [--tree DIR]

1. Orders: crossing limit orders on sim:// (rb2701, open around the clock, a real SQLite file in a
   temporary folder, ``trader.partial=false`` so each order fills whole on the book it meets),
   from ``ReqOrderInsert`` to the program's ``OnRtnTrade``:
   one at a time (each waits for its trade: the round trip, in orders/s and the median latency),
   and N sent back to back then waited for (throughput); then five batches of 200 on one account
   (whether an order costs more as the day's orders grow).  Every order is on disk before its
   callbacks come (the store commits first), so this is the figure a program sees.
2. Backtest: the bundled real day (SHFE ru1901, 40,448 ticks) on
   ``replay://?speed=max&rebase=none``, in a fresh process per run, from the first tick to the
   last: md alone (a no-op handler), against md + td with a strategy that sends a crossing order
   every 100 ticks (md and td in lockstep, as speed=max makes them).  The two alternate, run by run;
   the ratio of the medians is the counter's cost (the aim: at least 0.7x).
Each figure is the median of R runs.  The machine is printed first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import trees  # noqa: E402

trees.tree_option()  # before anything imports ctpshim
BROKER, USER = "9999", "bench"
ORDER_FRONT = "sim://?hours=always&speed=1&seed=5&instruments=rb2701&trader.partial=false&trader.flow_control=false"
DAY_TICKS = 40_448  # the bundled ru1901 day (shim/data/SHFE_ru1901_20181009.parquet)

BACKTEST = r"""
import json, sys, threading, time
sys.path.insert(0, sys.argv[4])
import trees
if sys.argv[3]:
    trees.use_tree(sys.argv[3])
from ctpshim import mdapi, tdapi
mode, folder, total = sys.argv[1], sys.argv[2], int(sys.argv[5])
front = "replay://?speed=max&rebase=none&trader.flow_control=false&trader.db=" + folder + "/trader.sqlite"
BROKER, USER = "9999", "bench"
state = {"count": 0, "first": None, "last": None, "ref": 0, "long": 0, "trades": 0, "refused": 0}
done, ready = threading.Event(), threading.Event()
td = None
class Td(tdapi.CThostFtdcTraderSpi):
    def OnFrontConnected(self):
        r = tdapi.CThostFtdcReqUserLoginField(); r.BrokerID, r.UserID = BROKER, USER
        td.ReqUserLogin(r, 1)
    def OnRspUserLogin(self, *a):
        r = tdapi.CThostFtdcSettlementInfoConfirmField(); r.BrokerID, r.InvestorID = BROKER, USER
        td.ReqSettlementInfoConfirm(r, 2)
    def OnRspSettlementInfoConfirm(self, *a):
        ready.set()
    def OnRtnTrade(self, t):
        state["trades"] += 1
        state["long"] += t.Volume if t.Direction == "0" else -t.Volume
    def OnRspOrderInsert(self, *a):
        state["refused"] += 1
class Md(mdapi.CThostFtdcMdSpi):
    def OnFrontConnected(self):
        md.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 1)
    def OnRspUserLogin(self, *a):
        md.SubscribeMarketData([b"ru1901"], 1)
    def OnRtnDepthMarketData(self, k):
        state["count"] += 1
        if state["first"] is None:
            state["first"] = time.perf_counter()
        if td is not None and state["count"] % 100 == 0:
            state["ref"] += 1
            buy = state["long"] <= 0
            r = tdapi.CThostFtdcInputOrderField()
            r.BrokerID, r.InvestorID, r.UserID, r.InstrumentID, r.ExchangeID = BROKER, USER, USER, "ru1901", "SHFE"
            r.OrderRef = str(state["ref"]); r.Direction = "0" if buy else "1"
            r.CombOffsetFlag = "0" if buy else "3"; r.CombHedgeFlag = "1"; r.OrderPriceType = "2"
            r.LimitPrice = k.AskPrice1 if buy else k.BidPrice1
            r.VolumeTotalOriginal = 1; r.MinVolume = 1; r.TimeCondition = "3"; r.VolumeCondition = "1"
            r.ContingentCondition = "1"; r.ForceCloseReason = "0"
            td.ReqOrderInsert(r, state["ref"])
        if state["count"] == total:
            state["last"] = time.perf_counter()
            done.set()
if mode == "trader":
    td = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(folder + "/td_")
    tspi = Td(); td.RegisterSpi(tspi); td.SubscribePrivateTopic(tdapi.THOST_TERT_QUICK); td.RegisterFront(front)
    td.Init()
    if not ready.wait(60): raise SystemExit("td login timed out")
md = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(folder + "/md_")
mspi = Md(); md.RegisterSpi(mspi); md.RegisterFront(front)
cpu = time.process_time()
md.Init()
if not done.wait(600): raise SystemExit("only %d ticks" % state["count"])
cpu = time.process_time() - cpu
md.Release()
if td is not None: td.Release()
print(json.dumps({"rate": (total - 1) / (state["last"] - state["first"]), "cpu_rate": total / cpu,
                  "orders": state["ref"], "trades": state["trades"], "refused": state["refused"]}))
"""


def backtest_run(mode: str, tree: str) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run([sys.executable, "-c", BACKTEST, mode, folder, tree, str(HERE), str(DAY_TICKS)],
                              capture_output=True, text=True, timeout=900)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


class OrderBench:
    """A td and an md API on one sim:// front; orders that cross the latest tick's book."""

    def __init__(self, folder: str) -> None:
        from ctpshim import mdapi, tdapi

        self.tdapi = tdapi
        self.cond = threading.Condition()
        self.trades = 0
        self.refused: list[str] = []
        self.tick = None
        self.long = 0
        self.ref = 0
        self.ready = threading.Event()
        self.ticked = threading.Event()
        front = f"{ORDER_FRONT}&trader.db={folder}/trader.sqlite"
        bench = self

        class Td(tdapi.CThostFtdcTraderSpi):
            def OnFrontConnected(self) -> None:
                r = tdapi.CThostFtdcReqUserLoginField()
                r.BrokerID, r.UserID = BROKER, USER
                bench.td.ReqUserLogin(r, 1)

            def OnRspUserLogin(self, *a: object) -> None:
                r = tdapi.CThostFtdcSettlementInfoConfirmField()
                r.BrokerID, r.InvestorID = BROKER, USER
                bench.td.ReqSettlementInfoConfirm(r, 2)

            def OnRspSettlementInfoConfirm(self, *a: object) -> None:
                bench.ready.set()

            def OnRtnTrade(self, t: object) -> None:
                with bench.cond:
                    bench.trades += 1
                    bench.long += t.Volume if t.Direction == "0" else -t.Volume  # type: ignore[attr-defined]
                    bench.cond.notify_all()

            def OnRspOrderInsert(self, f: object, info: object, *a: object) -> None:
                with bench.cond:
                    bench.refused.append(f"{info.ErrorID} {info.ErrorMsg}")  # type: ignore[attr-defined]
                    bench.cond.notify_all()

        class Md(mdapi.CThostFtdcMdSpi):
            def OnFrontConnected(self) -> None:
                bench.md.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 1)

            def OnRspUserLogin(self, *a: object) -> None:
                bench.md.SubscribeMarketData([b"rb2701"], 1)

            def OnRtnDepthMarketData(self, k: object) -> None:
                bench.tick = k
                bench.ticked.set()

        self.td = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(folder + "/td_")
        self.md = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(folder + "/md_")
        self.td_spi, self.md_spi = Td(), Md()
        self.td.RegisterSpi(self.td_spi)
        self.td.SubscribePrivateTopic(tdapi.THOST_TERT_QUICK)
        self.td.RegisterFront(front)
        self.md.RegisterSpi(self.md_spi)
        self.md.RegisterFront(front)
        self.td.Init()
        if not self.ready.wait(30):
            raise SystemExit("the sim:// front did not log in")
        self.md.Init()  # after the login: the counter sees every tick the program sees
        if not self.ticked.wait(30):
            raise SystemExit("the sim:// front did not tick")

    def send(self, buy: bool) -> None:
        tdapi, tick = self.tdapi, self.tick
        self.ref += 1
        r = tdapi.CThostFtdcInputOrderField()
        r.BrokerID, r.InvestorID, r.UserID, r.InstrumentID, r.ExchangeID = BROKER, USER, USER, "rb2701", "SHFE"
        r.OrderRef, r.Direction = str(self.ref), "0" if buy else "1"
        r.CombOffsetFlag, r.CombHedgeFlag, r.OrderPriceType = "0" if buy else "3", "1", "2"
        r.LimitPrice = tick.UpperLimitPrice if buy else tick.LowerLimitPrice  # type: ignore[attr-defined]
        r.VolumeTotalOriginal, r.MinVolume, r.TimeCondition, r.VolumeCondition = 1, 1, "3", "1"
        r.ContingentCondition, r.ForceCloseReason = "1", "0"
        if self.td.ReqOrderInsert(r, self.ref) != 0:
            raise SystemExit("ReqOrderInsert refused the call")

    def wait_trades(self, count: int) -> None:
        deadline = time.monotonic() + 120
        with self.cond:
            while self.trades < count:
                if self.refused:
                    raise SystemExit(f"orders refused: {self.refused[:3]}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SystemExit(f"only {self.trades} of {count} trades in 120 s")
                self.cond.wait(left)

    def one_at_a_time(self, orders: int) -> tuple[float, float]:
        """(orders/s, median latency in ms), each order waiting for its trade."""
        latencies = []
        start = time.perf_counter()
        for i in range(orders):
            sent = time.perf_counter()
            self.send(buy=i % 2 == 0)
            self.wait_trades(self.trades + 1)
            latencies.append(time.perf_counter() - sent)
        return orders / (time.perf_counter() - start), statistics.median(latencies) * 1000

    def back_to_back(self, orders: int) -> float:
        target = self.trades + orders
        start = time.perf_counter()
        for i in range(orders):
            self.send(buy=i % 2 == 0)
        self.wait_trades(target)
        return orders / (time.perf_counter() - start)

    def close(self) -> None:
        self.md.Release()
        self.td.Release()


def machine() -> str:
    cpus = os.cpu_count()
    model = ""
    try:
        with open("/proc/cpuinfo") as info:
            model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "")
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {cpus} CPUs {model}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tree", help="run on the checkout at DIR (see trees.py)")
    args = parser.parse_args()
    print(f"machine: {machine()}; median of {args.runs} runs")
    single, latency, piped = [], [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as folder:
            bench = OrderBench(folder)
            try:
                rate, ms = bench.one_at_a_time(args.orders // 5)
                single.append(rate)
                latency.append(ms)
                piped.append(bench.back_to_back(args.orders))
            finally:
                bench.close()
    print(f"sim:// crossing limit orders, ReqOrderInsert -> OnRtnTrade, one at a time "
          f"{statistics.median(single):>9,.0f} orders/s (median latency {statistics.median(latency):.2f} ms)")
    print(f"  {args.orders} sent back to back, then waited for         {statistics.median(piped):>9,.0f} orders/s "
          f"(runs: {', '.join(f'{r:,.0f}' for r in piped)})")
    with tempfile.TemporaryDirectory() as folder:  # does an order cost more as the day's orders grow?
        bench = OrderBench(folder)
        try:
            batches = [bench.back_to_back(200) for _ in range(5)]
        finally:
            bench.close()
    print(f"  five batches of 200 back to back on one account: {', '.join(f'{r:,.0f}' for r in batches)} orders/s")
    runs: dict[str, list[dict]] = {"md": [], "trader": []}
    for _ in range(args.runs):  # alternating: each round runs both once
        for mode in runs:
            runs[mode].append(backtest_run(mode, args.tree or ""))
    md = statistics.median(r["rate"] for r in runs["md"])
    trader = statistics.median(r["rate"] for r in runs["trader"])
    each = {mode: ", ".join(f"{r['rate']:,.0f}" for r in results) for mode, results in runs.items()}
    last = runs["trader"][-1]
    print(f"replay ru1901 day ({DAY_TICKS:,} ticks), speed=max, md alone           {md:>10,.0f} ticks/s "
          f"(runs: {each['md']})")
    print(f"  md + td, an order every 100 ticks (lockstep)            {trader:>10,.0f} ticks/s "
          f"(runs: {each['trader']}); {last['orders']} orders, {last['trades']} trades, {last['refused']} refused")
    cpu = {mode: statistics.median(r["cpu_rate"] for r in results) for mode, results in runs.items()}
    print(f"  ratio {trader / md:.2f}x (aim: at least 0.7x); per CPU second: md {cpu['md']:,.0f}, "
          f"md + td {cpu['trader']:,.0f} ticks/s")

if __name__ == "__main__":
    main()
