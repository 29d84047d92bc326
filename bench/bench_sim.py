"""Ticks per second from sim:// through the facade, next to a same-run baseline.

    python bench/bench_sim.py [--ticks N] [--runs R]

Measures, each as the median of R runs:
  baseline  building a 48-member CThostFtdcDepthMarketDataField-sized object and calling a
            no-op method, in a plain loop (the floor for any Python tick path)
  no-op     ticks delivered from sim://?speed=max (default instruments: a dozen contracts on
            the six exchanges) to an OnRtnDepthMarketData that does nothing
  read-5    the same, to a handler that reads five fields
Times are from Init() to the N-th tick, so they include connecting, login and subscription.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import threading
import time

from ctpshim import mdapi

FRONT = "sim://?speed=max&start=2026-11-20T09:00&seed=1"


def baseline(ticks: int) -> float:
    names = list(mdapi.CThostFtdcDepthMarketDataField.__annotations__)

    class Obj:
        pass

    class Handler:
        def on_tick(self, tick: object) -> None:
            pass

    handler = Handler().on_tick
    template = {name: 0.0 for name in names}
    start = time.perf_counter()
    for _ in range(ticks):
        obj = Obj()
        obj.__dict__.update(template)
        handler(obj)
    return ticks / (time.perf_counter() - start)


class NoOp(mdapi.CThostFtdcMdSpi):
    def __init__(self, api: object, ticks: int) -> None:
        super().__init__()
        self.api, self.target, self.count, self.done = api, ticks, 0, threading.Event()

    def OnFrontConnected(self) -> None:
        self.api.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 0)

    def OnRspUserLogin(self, *args: object) -> None:
        ids = [i.instrument_id.encode() for i in self.api._session.adapter.instruments()]
        self.api.SubscribeMarketData(ids, len(ids))

    def OnRtnDepthMarketData(self, tick: object) -> None:
        self.count += 1
        if self.count == self.target:
            self.done.set()


class ReadFive(NoOp):
    def OnRtnDepthMarketData(self, tick: object) -> None:
        self.last = (tick.InstrumentID, tick.LastPrice, tick.Volume, tick.BidPrice1, tick.AskPrice1)
        self.count += 1
        if self.count == self.target:
            self.done.set()


def facade(spi_class: type, ticks: int) -> float:
    api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi("/tmp/ctpshim-bench-")
    spi = spi_class(api, ticks)
    api.RegisterSpi(spi)
    api.RegisterFront(FRONT)
    start = time.perf_counter()
    api.Init()
    if not spi.done.wait(120):
        raise SystemExit(f"only {spi.count} of {ticks} ticks arrived in 120 s")
    elapsed = time.perf_counter() - start
    api.Release()
    return ticks / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores; "
          f"{args.ticks:,} ticks per run, median of {args.runs} runs")
    for label, run in (
        ("baseline (build 48-member object + no-op call)", lambda: baseline(args.ticks)),
        ("sim:// -> no-op OnRtnDepthMarketData", lambda: facade(NoOp, args.ticks)),
        ("sim:// -> handler reading 5 fields", lambda: facade(ReadFive, args.ticks)),
    ):
        rates = [run() for _ in range(args.runs)]
        print(f"{label:<50} {statistics.median(rates):>12,.0f} ticks/s   (runs: "
              + ", ".join(f"{r:,.0f}" for r in rates) + ")")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
