"""``ctpshim serve`` over WebSocket (webctp JSON on ``/md/``, or DIFF on ``/diff``): messages/s in total
to 100 clients.

    python bench/serve_websocket.py [--runs R] [--clients N] [--instruments N] [--source-rate max,700]
                                    [--seconds S] [--procs P] [--latency] [--profile DIR]
                                    [--endpoint md|diff] [--against REVISION]

One ``sim://`` source, every client subscribed to every one of its instruments, a real
``ctpshim.server.Server`` with its HTTP endpoint in a process of its own (bench/serve_common.py), the
clients in ``--procs`` other processes (default 2; the server needs a core of the two).  Each figure is
the median of R runs, and each run ends with the baseline on the same front address: one
in-process md API object (its ticks/s to a no-op OnRtnDepthMarketData).

Clients: aiohttp WebSocket clients speaking webctp as a webctp program does (ReqUserLogin, then one
SubscribeMarketData with every ID); every text message is received whole (aiohttp parses the
WebSocket frames, checks UTF-8 and hands over a str) and counted when it is an RtnDepthMarketData;
the JSON of a tick is decoded only with ``--latency``, where every tick's latency from its stamp to
the handler is measured (see bench/serve_common.py).  A client that falls behind gets the latest
tick per instrument: what was conflated away is not counted (the server's counters are printed).
The source runs at ``--source-rate max`` (default: as fast as the server takes its ticks, the hub
holding it back while the server's IO loop is busy, so this is the server's capacity) or is paced
at a number of ticks/s (700: 70,000 messages/s offered to 100 clients).

``--endpoint diff``: DIFF clients as tqsdk is one (subscribe_quote with every id, then a
peek_message after each rtn_data), each counting the quotes of every packet (the server's
delivered counter counts the same: one per quote a packet carries).  ``--against REVISION``:
the WebSocket protocols (``shim/server/web.py``, ``webctp.py``, ``diff.py``) as they were at that
git revision, in a second server, alternating run for run with the current ones; both sets of
figures and a ``compared`` line are printed.
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

import shutil  # noqa: E402
import statistics  # noqa: E402

from serve_common import (Child, ServerProcess, ServerWindow, StampClock, WindowCounter,  # noqa: E402
                          child_handshake, combine, counted, ids_path, listed_ids, machine, mdapi_child, measure,
                          load_modules, middle_run, modules_at, print_baseline, print_delivered, print_failures_and_hot_spots, server_main,
                          show_spread, sim_url, split, wait_closed)

HERE = Path(__file__).resolve()
SOURCE = "sim"
PROTOCOL_MODULES = ("web", "webctp", "diff")  # ctpshim.server's WebSocket modules, in import order


# -- the WebSocket protocols at an earlier revision, in the same run -----------------------------------

def bench_server_main(folder: str, settings_json: str) -> None:
    """serve_common's server process, with PROTOCOL_MODULES loaded from ``folder`` first (when not
    empty) and no per-IP connection rate (every client of the bench comes from 127.0.0.1)."""
    import dataclasses

    import ctpshim.server.settings as settings_module

    if folder:
        load_modules(folder, PROTOCOL_MODULES)
    serve_settings = settings_module.ServeSettings
    limits = settings_module.Limits()
    if any(field.name == "connection_rate" for field in dataclasses.fields(limits)):
        limits = dataclasses.replace(limits, connection_rate=0)

    def settings(**options: Any) -> Any:
        options.setdefault("limits", limits)
        return serve_settings(**options)

    settings_module.ServeSettings = settings  # type: ignore[misc,assignment]
    server_main(settings_json)


class BenchServer(ServerProcess):
    """A ServerProcess started by :func:`bench_server_main` (its WebSocket protocols from ``folder``
    when given, see serve_common.modules_at)."""

    def __init__(self, sources: dict[str, str], folder: str = "") -> None:
        settings = {"sources": sources, "http": True, "redis": None, "probe": False, "modules_from": None}
        self.child = Child([str(HERE), "server-at", folder, json.dumps(settings)], "server")
        started = json.loads(self.child.readline(60))
        self.binary = tuple(started["binary"] or ("", 0))  # type: ignore[assignment]
        self.http = tuple(started["http"]) if started["http"] else None  # type: ignore[assignment]
        self.pid = self.child.process.pid


# -- the clients --------------------------------------------------------------------------------------

def symbols_of(ids: list[str]) -> list[str]:
    """DIFF's ids (``SHFE.rb2705``) of the source's instrument IDs."""
    from ctpshim.broker.terms import parse_info

    out = []
    for instrument in ids:
        info = parse_info(instrument)
        out.append(f"{info.exchange_id if info is not None else 'X'}.{instrument}")
    return out


def run_clients(client: Any, counters: list[WindowCounter], firsts: list[asyncio.Event], window: list[float],
                kind: str, samples: list[int]) -> None:
    """Run one ``client(number, session)`` per counter until each has its first ``kind``, then the Child
    protocol of serve_common: the window handshake, the counts (and latency ``samples``) on stdout."""
    import aiohttp

    async def clients() -> None:
        async with aiohttp.ClientSession() as session:
            tasks = [asyncio.ensure_future(client(number, session)) for number in range(len(counters))]
            gathered = asyncio.ensure_future(asyncio.gather(*(first.wait() for first in firsts)))
            await asyncio.wait([*tasks, gathered], timeout=90, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                if task.done() and task.exception() is not None:
                    raise SystemExit(f"a client failed before the window: {task.exception()!r}")
            if not gathered.done():
                raise SystemExit(f"{sum(not f.is_set() for f in firsts)} clients saw no {kind} within 90 s")
            start, end = await asyncio.get_running_loop().run_in_executor(None, child_handshake)
            window[0], window[1] = start, end
            await wait_closed(counters, end)
            failed = [repr(task.exception()) for task in tasks if task.done() and task.exception() is not None]
            print(counted(counters, end - start, failed=failed, latencies_us=samples), flush=True)
            os._exit(0)

    asyncio.run(clients())


def diff_clients_main(url: str, count: str, ids_file: str) -> None:
    """A process of ``count`` DIFF clients (subscribe_quote, then peek after every rtn_data)."""
    import aiohttp

    symbols = symbols_of(json.loads(Path(ids_file).read_text()))
    window = [float("inf"), float("inf")]
    counters = [WindowCounter(window) for _ in range(int(count))]
    firsts = [asyncio.Event() for _ in counters]
    peek = json.dumps({"aid": "peek_message"})

    async def client(number: int, session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(url, max_msg_size=0, heartbeat=None) as ws:
            await ws.send_str(json.dumps({"aid": "subscribe_quote", "ins_list": ",".join(symbols)}))
            await ws.send_str(peek)
            first = firsts[number]
            add = counters[number].add
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        raise ConnectionError(f"closed: {message.data!r} {message.extra!r}")
                    continue
                await ws.send_str(peek)
                quotes = message.data.count('"datetime"')  # one per quote patch (no charts here)
                if quotes:
                    first.set()
                    add(quotes, time.time())
            raise ConnectionError("the server closed the WebSocket")

    run_clients(client, counters, firsts, window, "quote", [])


def clients_main(url: str, count: str, ids_file: str, latency: str) -> None:
    """A process of ``count`` WebSocket clients; the Child protocol of serve_common."""
    import aiohttp

    ids = json.loads(Path(ids_file).read_text())
    want_latency = latency == "1"
    window = [float("inf"), float("inf")]
    stamps = StampClock()
    counters = [WindowCounter(window) for _ in range(int(count))]
    samples: list[int] = []
    firsts = [asyncio.Event() for _ in counters]

    async def client(number: int, session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(url, max_msg_size=0, heartbeat=None) as ws:
            await ws.send_str(json.dumps({"MsgType": "ReqUserLogin", "ReqUserLogin": {"UserID": f"bench{number}",
                                                                                      "Password": ""}}))
            await ws.send_str(json.dumps({"MsgType": "SubscribeMarketData", "InstrumentID": ids}))
            first = firsts[number]
            add = counters[number].add
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        raise ConnectionError(f"closed: {message.data!r} {message.extra!r}")
                    continue
                text = message.data
                if "RtnDepthMarketData" not in text[:40]:
                    continue
                first.set()
                if add(1, time.time()):
                    if want_latency:
                        tick = json.loads(text)["DepthMarketData"]
                        samples.append(int((time.time() - stamps.epoch(tick["ActionDay"], tick["UpdateTime"],
                                                                       tick["UpdateMillisec"])) * 1_000_000))
            raise ConnectionError("the server closed the WebSocket")

    run_clients(client, counters, firsts, window, "tick", samples)


def run_once(front: str, args: argparse.Namespace, ids: list[str], ids_file: str, run: int,
             folder: str | None = None) -> dict[str, Any]:
    """One run: a fresh server (its WebSocket protocols from ``folder`` when given), fresh clients, the baseline."""
    server = BenchServer({SOURCE: front}, folder or "")
    label = "" if folder is None else "-against"
    profile_file = str(Path(args.profile) / f"serve_websocket{label}-{run}.txt") if args.profile else ""
    try:
        assert server.http is not None, "the server has no HTTP endpoint"
        host, port = server.http
        if args.endpoint == "diff":
            url = f"http://{host}:{port}/diff"
            argv = [str(HERE), "diff-clients", url]
        else:
            url = f"http://{host}:{port}/md/"
            argv = [str(HERE), "clients", url]
        children = [Child([*argv, str(n), ids_file, *([] if args.endpoint == "diff" else ["1" if args.latency else "0"])],
                          f"clients-{k}")
                    for k, n in enumerate(split(args.clients, args.procs))]
        window = ServerWindow(server, args.seconds, profile_file)
        results = measure(children, args.seconds, ready_timeout=120, during=window)
        figures = combine(results)
        figures["failed"] = [f for r in results for f in r.get("failed", ())]
        figures.update(window.figures())
    finally:
        server.stop()
    if not args.no_baseline:
        figures["baseline"] = combine(measure([mdapi_child(front, ids, args.latency, "baseline")], args.seconds))
    return figures


def print_runs(runs: list[dict[str, Any]], args: argparse.Namespace, ids: list[str], what: str) -> None:
    unit = "quotes (DIFF)" if args.endpoint == "diff" else "RtnDepthMarketData messages"
    print(f"{what}: {args.clients} clients x {len(ids)} instruments, {len(runs)} runs of {args.seconds:g} s")
    print_delivered(runs, unit, lambda run: run["rates"])
    print_baseline(runs)
    middle = middle_run(runs, lambda run: run["rate"])
    if args.latency and middle["latency"]:
        print(f"  latency (stamp to handler, median run): {show_spread(middle['latency'])}")
        if middle.get("baseline", {}).get("latency"):
            print(f"  baseline latency: {show_spread(middle['baseline']['latency'])}")
    print_failures_and_hot_spots(runs)


def measure_rate(source_rate: str, args: argparse.Namespace, ids: list[str], ids_file: str) -> None:
    """The runs at one source rate, and their figures."""
    if source_rate == "max":
        front, offered = sim_url(ids, interval=0.5, speed="max"), "speed=max (as fast as the server takes them)"
    elif args.latency:  # the stamps are wall-clock times only at speed=1
        rate = float(source_rate)
        interval = len(ids) / rate
        hundredths = round(interval * 100)
        if abs(hundredths - interval * 100) > 1e-6 or not hundredths or 6000 % hundredths:
            raise SystemExit(f"--latency: {len(ids)} instruments / {rate:g} ticks/s = an interval of {interval:g} s, which "
                             "sim:// does not take (whole hundredths dividing a minute); change --instruments or the rate")
        front = sim_url(ids, interval=interval, speed="1")
        offered = (f"every {interval:g} s at speed=1: {rate:,.0f} ticks/s, {rate * args.clients:,.0f} messages/s "
                   "offered")
    else:
        rate = float(source_rate)
        speed = rate * 0.5 / len(ids)
        front = sim_url(ids, interval=0.5, speed=f"{speed:.6g}")
        offered = f"paced at {rate:,.0f} ticks/s, {rate * args.clients:,.0f} messages/s offered"
    print(f"\nsource: {len(ids)} instruments, {offered}")
    started = time.monotonic()
    endpoint = "DIFF /diff" if args.endpoint == "diff" else "webctp /md/"
    folder = modules_at(args.against, PROTOCOL_MODULES) if args.against else None
    runs: list[dict[str, Any]] = []
    old: list[dict[str, Any]] = []
    try:
        for number in range(args.runs):
            if folder is not None and number % 2:  # alternate which goes first
                old.append(run_once(front, args, ids, ids_file, number, folder))
                runs.append(run_once(front, args, ids, ids_file, number))
            else:
                runs.append(run_once(front, args, ids, ids_file, number))
                if folder is not None:
                    old.append(run_once(front, args, ids, ids_file, number, folder))
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    print_runs(runs, args, ids, f"{endpoint}, current")
    if old:
        print_runs(old, args, ids, f"{endpoint}, {args.against}")

        def summary(group: list[dict[str, Any]]) -> str:
            cpu = statistics.median(run["server"]["cpu_us_per_tick"] for run in group)
            return f"{cpu:.2f} us CPU per delivered tick, {statistics.median(run['rate'] for run in group):,.0f} messages/s"

        print(f"  compared: current {summary(runs)}; {args.against}: {summary(old)}")
    print(f"  ({time.monotonic() - started:.0f} s; load average now {' '.join(f'{x:.1f}' for x in os.getloadavg())})")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--instruments", type=int, default=1000, help="cut to what sim:// lists (731 on 2026-12-03)")
    parser.add_argument("--source-rate", default="max",
                        help="comma-separated ticks/s from the source, one measurement each: max (the default) or a number")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--latency", action="store_true",
                        help="decode every tick and measure its latency (needs a numeric --source-rate: the source "
                             "then runs at speed=1, each instrument every instruments / rate seconds)")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the server during each window, files in DIR")
    parser.add_argument("--endpoint", choices=("md", "diff"), default="md",
                        help="webctp /md/ (the default) or DIFF /diff (tqsdk-style peeking clients)")
    parser.add_argument("--against", metavar="REVISION",
                        help="also run the WebSocket protocols (web.py, webctp.py, diff.py) of this git revision, "
                             "alternating run for run")
    parser.add_argument("--no-baseline", action="store_true", help="skip the in-process md API baseline of each run")
    args = parser.parse_args()
    if args.endpoint == "diff" and args.latency:
        parser.error("--latency is measured on /md/ only")
    if args.latency and "max" in args.source_rate.split(","):
        parser.error("--latency needs a numeric --source-rate (e.g. --source-rate 500 --instruments 100)")
    print(f"machine: {machine()}")
    print("reproduce: python bench/serve_websocket.py " + " ".join(sys.argv[1:]))
    ids = listed_ids(args.instruments)
    ids_file = ids_path()
    Path(ids_file).write_text(json.dumps(ids))
    try:
        for source_rate in args.source_rate.split(","):
            measure_rate(source_rate, args, ids, ids_file)
    finally:
        os.unlink(ids_file)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "clients":
        clients_main(*sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "diff-clients":
        diff_clients_main(*sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "server-at":
        bench_server_main(*sys.argv[2:])
    else:
        main()
