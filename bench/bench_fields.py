"""Field objects: building, reading and delivering CThostFtdcDepthMarketDataField ticks.

    python bench/bench_fields.py [--runs R] [--ticks N] [--tree DIR]     # one tree
    python bench/bench_fields.py --against DIR [--rounds R]              # this tree and DIR, alternating
    python bench/bench_fields.py --against OLD --new NEW                 # two other checkouts

Measures (nanoseconds per object unless said otherwise; micro measures: the best of R runs,
delivery: the median):
  make        a tick from a list of its 48 values, as the adapters' tick paths make it (a list
              subclass: ``list.__new__`` + ``list.extend`` inline; otherwise ``fields.maker``)
  make-tuple  the same from a tuple of values (the recording reader's rows)
  from_values ``fields.from_values(cls, values)`` from a list
  new         ``CThostFtdcDepthMarketDataField()``
  read-5      reading InstrumentID, LastPrice, Volume, BidPrice1 and AskPrice1 of one tick
  set-5       a new CThostFtdcInputOrderField and five validated assignments (user code)
  bytes/tick  memory held per live tick, 10,000 ticks made from value lists (tracemalloc)
  deliver     ticks/s from sim://?speed=max through the facade to a no-op OnRtnDepthMarketData
              (from Init() to the N-th tick: connecting, login and subscription included)
  deliver-cpu the same ticks per second of the process's CPU time (all threads): steadier than
              wall time on a shared machine

``--against DIR`` measures both trees in alternation so that both see the same machine load: the
micro measures in this process (each tree's fields module loaded from its file, side by side; each
measure timed on one tree then the other, round after round), delivery in a child process per tree
and round (which tree goes first alternates); it prints each tree's medians and new/old.
``--tree DIR`` (see bench/trees.py) imports ctpshim from another checkout.

Figures for issue 14 (Python 3.11, 2 cores shared with other work; old = 0ed9b95, fields as lists;
new = 0ed9b95 with only the new fields module and the sim's tick path calling ``fields.maker``):
make 194 -> 237 ns, make-tuple 193 -> 119, from_values 222 -> 249, new 302 -> 102, read-5 183 -> 218,
set-5 1,114 -> 1,086, 473 -> 513 bytes per tick (best of 10 rounds); deliver-cpu 441k -> 438k ticks per
CPU second (median of 16 rounds; 0.94-0.99 in three series).  Making, reading once and freeing a batch
of 256 ticks: 252 -> 294 ns a tick, the same with the garbage collector off.  A variant with no
Python ``__init__`` (the slot empty until the first assignment, reads falling back to the defaults)
made ``make`` 18-31 ns cheaper but doubled set-5 (the first assignment raises and catches
AttributeError): not taken.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trees import tree_option  # noqa: E402

tree_option()

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import timeit  # noqa: E402
import tracemalloc  # noqa: E402
from typing import Any, Callable  # noqa: E402

FRONT = "sim://?speed=max&start=2026-11-20T09:00&seed=1"
MEASURES = ("make", "make-tuple", "from_values", "new", "read-5", "set-5", "bytes/tick", "deliver", "deliver-cpu")


def packaged() -> bool:
    """Whether the tree has the package layout (``ctp/``, ``fronts/`` ...) or the flat one."""
    import ctpshim

    return (Path(ctpshim.__file__).parent / "ctp").is_dir()


def fields_at(tree: str | None) -> Any:
    """The fields module of the checkout at ``tree`` (default: this one), loaded from its file
    under a name of its own, so that two trees' field classes can be timed side by side."""
    root = Path(tree).resolve() if tree else Path(__file__).resolve().parent.parent
    path = root / "shim" / "ctp" / "fields.py"
    if not path.is_file():
        path = root / "shim" / "fields.py"  # the flat layout before the packages
    spec = importlib.util.spec_from_file_location(f"bench_fields_{len(_loaded)}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _loaded.append(module)
    return module


_loaded: list[Any] = []


def per_call(stmt: str, namespace: dict[str, Any], number: int) -> float:
    """Nanoseconds per execution of ``stmt``, loop overhead subtracted (best of 3 repeats)."""
    timer = timeit.Timer(stmt, globals=namespace)
    empty = timeit.Timer("pass", globals=namespace)
    best = min(timer.repeat(3, number))
    overhead = min(empty.repeat(3, number))
    return (best - overhead) / number * 1e9


class Micro:
    """The micro measures on one tree's field classes."""

    def __init__(self, fields: Any) -> None:
        factory = fields.FieldFactory(fields.__name__, "mdapi")
        self.fields, self.cls = fields, factory.get("CThostFtdcDepthMarketDataField")
        tick = self.cls()
        tick.InstrumentID, tick.ExchangeID, tick.TradingDay, tick.UpdateTime = "rb2605", "SHFE", "20261120", "09:00:01"
        tick.LastPrice, tick.Volume, tick.BidPrice1, tick.AskPrice1 = 3120.0, 1520, 3119.0, 3121.0
        self.values = [getattr(tick, name) for name in self.cls.__annotations__]
        self.namespace: dict[str, Any] = {
            "cls": self.cls, "values": self.values, "row": tuple(self.values), "fields": fields,
            "order_cls": factory.get("CThostFtdcInputOrderField"), "o": fields.from_values(self.cls, self.values),
        }
        if issubclass(self.cls, list):
            self.namespace.update(new=list.__new__, extend=list.extend)
            make, make_tuple = "o = new(cls); extend(o, values)", "o = new(cls); extend(o, row)"
        else:
            self.namespace["make"] = fields.maker(self.cls)
            make, make_tuple = "o = make(values)", "o = make(row)"
        self.statements = {
            "make": make,
            "make-tuple": make_tuple,
            "from_values": "fields.from_values(cls, values)",
            "new": "cls()",
            "read-5": "o.InstrumentID; o.LastPrice; o.Volume; o.BidPrice1; o.AskPrice1",
            "set-5": "r = order_cls(); r.InstrumentID = 'rb2605'; r.Direction = '0'; r.LimitPrice = 3120.0; "
                     "r.VolumeTotalOriginal = 2; r.CombOffsetFlag = '0'",
        }

    def time(self, name: str, number: int) -> float:
        return per_call(self.statements[name], self.namespace, number // 4 if name == "set-5" else number)

    def bytes_per_tick(self) -> float:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        keep = [self.fields.from_values(self.cls, self.values) for _ in range(10_000)]
        held = (tracemalloc.get_traced_memory()[0] - before) / len(keep)
        tracemalloc.stop()
        return held


def deliver(ticks: int) -> tuple[float, float]:
    """(ticks per wall second, ticks per CPU second of the process)."""
    from ctpshim import mdapi

    if packaged():
        from ctpshim.fronts.registry import create_adapter
    else:
        from ctpshim.registry import create_adapter  # type: ignore[no-redef]
    ids = [info.instrument_id for info in create_adapter(FRONT).instruments()]

    class NoOp(mdapi.CThostFtdcMdSpi):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.count, self.done = 0, threading.Event()

        def OnFrontConnected(self) -> None:
            api.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 0)

        def OnRspUserLogin(self, *args: object) -> None:
            api.SubscribeMarketData([i.encode() for i in ids], len(ids))

        def OnRtnDepthMarketData(self, tick: object) -> None:
            self.count += 1
            if self.count == ticks:
                self.done.set()

    api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi("/tmp/ctpshim-bench-")
    spi = NoOp()
    api.RegisterSpi(spi)
    api.RegisterFront(FRONT)
    start, cpu_start = time.perf_counter(), time.process_time()
    api.Init()
    if not spi.done.wait(300):
        raise SystemExit(f"only {spi.count} of {ticks} ticks arrived in 300 s")
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    api.Release()
    return ticks / elapsed, ticks / cpu


def one_tree(tree: str | None, runs: int, number: int, ticks: int, only: str | None = None) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in MEASURES}
    micro = Micro(fields_at(tree)) if only != "deliver" else None
    for _ in range(runs):
        if micro is not None:
            for name in micro.statements:
                samples[name].append(micro.time(name, number))
            samples["bytes/tick"].append(micro.bytes_per_tick())
        if only != "micro":
            wall, cpu = deliver(ticks)
            samples["deliver"].append(wall)
            samples["deliver-cpu"].append(cpu)
    return {name: values for name, values in samples.items() if values}


def alternate(other: str, this: str | None, rounds: int, number: int, ticks: int, only: str | None) -> None:
    """Both trees, alternating: the micro measures in this process (both trees' field classes
    loaded side by side, each measure timed on one tree then the other), delivery in a child
    process per tree and round."""
    trees = {"new": this, "old": other}
    samples: dict[str, dict[str, list[float]]] = {tree: {name: [] for name in MEASURES} for tree in trees}
    if only != "deliver":
        micros = {tree: Micro(fields_at(path)) for tree, path in trees.items()}
        for round_number in range(rounds):
            order = list(trees) if round_number % 2 == 0 else list(trees)[::-1]
            for name in micros["new"].statements:
                for tree in order:
                    samples[tree][name].append(micros[tree].time(name, number))
        for tree in trees:
            samples[tree]["bytes/tick"].append(micros[tree].bytes_per_tick())
    if only != "micro":
        for round_number in range(rounds):
            order = list(trees) if round_number % 2 == 0 else list(trees)[::-1]
            for tree in order:
                command = [sys.executable, __file__, "--json", "--runs", "1", "--ticks", str(ticks), "--only", "deliver"]
                if trees[tree]:
                    command += ["--tree", trees[tree]]  # type: ignore[list-item]
                output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                for name, values in json.loads(output).items():
                    samples[tree][name] += values
    print(f"python {sys.version.split()[0]}; {rounds} alternating rounds; old = {other}; new = {this or 'this tree'}; "
          f"micro: {number:,} loops, best of 3, best round; deliver: {ticks:,} ticks, median of the rounds")
    print(f"{'':<12} {'old':>12} {'new':>12} {'new/old':>8}")
    for name in MEASURES:
        if not samples["old"][name]:
            continue
        # Micro measures: the best round (on a loaded machine the least disturbed one); delivery: the median.
        pick = statistics.median if name.startswith("deliver") else min
        old, new = pick(samples["old"][name]), pick(samples["new"][name])
        unit = "ticks/s" if name.startswith("deliver") else ("B" if name == "bytes/tick" else "ns")
        print(f"{name:<12} {old:>12,.1f} {new:>12,.1f} {new / old:>8.3f}  {unit}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per measure (one tree)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (--against)")
    parser.add_argument("--number", type=int, default=200_000, help="loops per micro measure")
    parser.add_argument("--ticks", type=int, default=300_000, help="ticks per delivery run")
    parser.add_argument("--against", metavar="DIR", help="alternate runs of this tree and the checkout at DIR")
    parser.add_argument("--new", metavar="DIR", help="with --against: the new tree (default: this one)")
    parser.add_argument("--tree", help="run on the ctpshim checkout at DIR (see bench/trees.py)")
    parser.add_argument("--only", choices=("micro", "deliver"), help="only the micro measures, or only delivery")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.against:
        alternate(args.against, args.new, args.rounds, args.number, args.ticks, args.only)
        return
    samples = one_tree(args.tree, args.runs, args.number, args.ticks, args.only)
    if args.json:
        print(json.dumps(samples))
        return
    for name in samples:
        print(f"{name:<12} {statistics.median(samples[name]):>12,.1f}   (runs: "
              + ", ".join(f"{v:,.1f}" for v in samples[name]) + ")")


if __name__ == "__main__":
    main()
