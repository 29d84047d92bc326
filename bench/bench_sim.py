"""Ticks per second from sim://, through the facade and from the adapter alone.

    python bench/bench_sim.py [--ticks N] [--runs R] [--only NAME] [--cpu] [--tree DIR]

Measures, each as the median of R runs:
  baseline  building a 48-member CThostFtdcDepthMarketDataField-sized object and calling a
            no-op method, in a plain loop (the floor for any Python tick path)
  adapter   the adapter's ticks() batches iterated on one thread with no facade (planning and
            making the ticks: the sim's own cost)
  no-op     ticks delivered from sim://?speed=max (default instruments: a dozen contracts on
            the six exchanges) to an OnRtnDepthMarketData that does nothing
  read-5    the same, to a handler that reads five fields
  eager     no-op, but each batch's ticks made on the IO thread before it is handed on (what
            making them on the delivering thread is measured against)
Facade times are from Init() to the N-th tick, so they include connecting, login and
subscription.  ``--cpu`` divides by the process's CPU time (every thread) instead of wall time:
steadier on a machine that other work shares.  ``--tree DIR`` runs the same benchmark on another
checkout (see bench/trees.py): compare old and new code in alternating runs on the same machine.

Issue 14 (2 cores, Python 3.11.7, 300,000 ticks, --cpu, three rounds alternating the trees, each
the median of 3; the machine was shared with other work, so compare within a round):

    tree                                     adapter      no-op        read-5
    66414bd (before the day-path sim)        681-745k     594-630k     488-532k
    0ed9b95 (before issue 14)                530-556k     432-490k     369-427k
    8c9fad4 (issue 14: sim package)          609-678k     494-533k     441-456k

and two later rounds with 5a751b6 (adapter / no-op / read-5): 66414bd 693k, 714k / 536k, 584k /
502k, 529k; 0ed9b95 593k, 559k / 468k, 417k / 447k, 379k; 5a751b6 660k, 639k / 505k, 531k / 490k,
421k.

Making a block's ticks lazily, on the dispatcher thread, against making them on the IO thread
before handing the batch on (``eager``, same tree, alternating, --cpu): 532-585k against
409-457k ticks per CPU second (wall time on the loaded machine did not separate them).

Against 0ed9b95 the sim is 11-24% faster alone and 8-27% through the facade.  Against 66414bd it
is 5-11% behind alone, about what the shared pieces it now uses cost, measured apart: AveragePrice
through market_data.average_price_rule (~3.5% of the adapter alone), field objects that are no
longer lists (fields.maker, see bench_fields.py) and the per-tick work of the market hub.  The
cost had been building each five-minute segment of the day path (~500 ns per round, now ~240:
random bytes sliced as table indices, a bridge accumulated in C, Volume and OpenInterest made in
the tick path) and the per-block overhead (stamps per second instead of per round, a contract
resuming at its next index, blocks interleaved with slice assignments, the planner keeping the
trading contracts from block to block until the next session boundary).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trees import tree_option  # noqa: E402

tree_option()

import argparse  # noqa: E402
import asyncio  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable  # noqa: E402

from ctpshim import mdapi  # noqa: E402

FRONT = "sim://?speed=max&start=2026-11-20T09:00&seed=1"
clock: Callable[[], float] = time.perf_counter  # --cpu: time.process_time (all threads' CPU time)


def create_adapter(front: str) -> Any:
    try:
        from ctpshim.fronts.registry import create_adapter as create
    except ImportError:  # the flat layout before the packages
        from ctpshim.registry import create_adapter as create  # type: ignore[no-redef]
    return create(front)


def instrument_ids(front: str) -> list[str]:
    return [info.instrument_id for info in create_adapter(front).instruments()]


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


def adapter_alone(ticks: int) -> float:
    """The adapter's batches, planned and iterated on one thread, as the dispatcher would."""

    async def run() -> float:
        adapter = create_adapter(FRONT)
        await adapter.connect()
        await adapter.subscribe([info.instrument_id for info in adapter.instruments()])
        count = 0
        start = clock()
        stream = adapter.ticks()
        async for batch in stream:
            for _ in batch:
                count += 1
            if count >= ticks:
                break
        elapsed = clock() - start
        await stream.aclose()
        await adapter.close()
        return count / elapsed

    return asyncio.run(run())


class NoOp(mdapi.CThostFtdcMdSpi):
    def __init__(self, api: object, ticks: int, ids: list[str]) -> None:
        super().__init__()
        self.api, self.target, self.ids, self.count, self.done = api, ticks, ids, 0, threading.Event()

    def OnFrontConnected(self) -> None:
        self.api.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 0)

    def OnRspUserLogin(self, *args: object) -> None:
        ids = [i.encode() for i in self.ids]
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


def eager_front() -> str:
    """``FRONT`` on a sim whose ticks are made on the IO thread, before each batch is handed on
    (what making them lazily, on the thread that delivers them, is measured against)."""
    from ctpshim.adapters.sim import SimAdapter
    try:
        from ctpshim.fronts.registry import known_schemes, register_adapter
    except ImportError:  # the flat layout before the packages
        from ctpshim.registry import known_schemes, register_adapter  # type: ignore[no-redef]

    class EagerSim(SimAdapter):
        scheme = "sim-eager"

        async def ticks(self) -> Any:
            async for batch in super().ticks():
                yield list(batch)

    if "sim-eager" not in known_schemes():
        register_adapter("sim-eager", EagerSim)
    return FRONT.replace("sim://", "sim-eager://")


def facade(spi_class: type, ticks: int, front: str = FRONT) -> float:
    ids = instrument_ids(FRONT)
    api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi("/tmp/ctpshim-bench-")
    spi = spi_class(api, ticks, ids)
    api.RegisterSpi(spi)
    api.RegisterFront(front)
    start = clock()
    api.Init()
    if not spi.done.wait(120):
        raise SystemExit(f"only {spi.count} of {ticks} ticks arrived in 120 s")
    elapsed = clock() - start
    api.Release()
    return ticks / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", choices=("baseline", "adapter", "no-op", "read-5", "eager"), action="append",
                        help="run only these measurements (repeatable)")
    parser.add_argument("--tree", help="run on the ctpshim checkout at DIR (see bench/trees.py)")
    parser.add_argument("--cpu", action="store_true",
                        help="ticks per CPU second of the process (all threads) instead of per wall second: "
                             "steadier on a machine that other work shares")
    args = parser.parse_args()
    global clock
    if args.cpu:
        clock = time.process_time
    import ctpshim

    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores; "
          f"ctpshim from {Path(ctpshim.__file__).parent.parent}; "
          f"{args.ticks:,} ticks per run, median of {args.runs} runs" + (", CPU time" if args.cpu else ""))
    measures: list[tuple[str, str, Callable[[], float]]] = [
        ("baseline", "baseline (build 48-member object + no-op call)", lambda: baseline(args.ticks)),
        ("adapter", "sim:// adapter alone (plan + make ticks)", lambda: adapter_alone(args.ticks)),
        ("no-op", "sim:// -> no-op OnRtnDepthMarketData", lambda: facade(NoOp, args.ticks)),
        ("read-5", "sim:// -> handler reading 5 fields", lambda: facade(ReadFive, args.ticks)),
        ("eager", "sim:// made on the IO thread -> no-op handler", lambda: facade(NoOp, args.ticks, eager_front())),
    ]
    for name, label, run in measures:
        if args.only and name not in args.only:
            continue
        rates = [run() for _ in range(args.runs)]
        print(f"{label:<50} {statistics.median(rates):>12,.0f} ticks/s   (runs: "
              + ", ".join(f"{r:,.0f}" for r in rates) + ")")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
