"""``ctpshim record FRONT -i IDS... -o DIR``: record any front's ticks through the CTP facade."""

from __future__ import annotations

import argparse
import functools
import gc
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from ...fronts.url import integer, number
from . import COMMANDS, argument, require

if TYPE_CHECKING:
    from ...recording import LiveWriter

HELP = COMMANDS["record"]

# A recording makes some 200,000 tick objects a second, and young ones are alive in numbers,
# though none is part of a reference cycle.  With CPython's default threshold (a young collection
# every 700 new objects) the collector walks many ticks before they die; with this one most die
# before any collection (bench/bench_replay.py measures recording).  Set only while recording,
# in the recorder's own process.
RECORDING_GC_THRESHOLD = 50_000


@contextmanager
def fewer_young_collections() -> Iterator[None]:
    saved = gc.get_threshold()
    gc.set_threshold(RECORDING_GC_THRESHOLD, *saved[1:])
    try:
        yield
    finally:
        gc.set_threshold(*saved)


@functools.cache
def _recorder_spi() -> type:
    """The ``RecorderSpi`` class, made on first use (it subclasses the facade's Spi, which building the
    command line's parser does not import)."""
    from ... import mdapi
    from ...recording import RecordingError

    class RecorderSpi(mdapi.CThostFtdcMdSpi):
        """Logs in, subscribes, and hands every tick to the writer (on the API's callback thread)."""

        def __init__(self, api: Any, ids: list[str], writer: LiveWriter, limit: int | None) -> None:
            super().__init__()
            self.api, self.ids, self.limit = api, ids, limit
            self.write = writer.write
            self.count = 0
            self.failure: Exception | None = None
            self.finished = False  # read on every tick: a plain attribute is cheaper than done.is_set()
            self.done = threading.Event()

        def finish(self) -> None:
            self.finished = True
            self.done.set()

        def OnFrontConnected(self) -> None:
            self.api.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 0)

        def OnFrontDisconnected(self, nReason: int) -> None:
            print(f"ctpshim record: front disconnected (reason {nReason}); reconnecting", file=sys.stderr)

        def OnRspUserLogin(self, pRspUserLogin: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
            ids = [i.encode() for i in self.ids]
            self.api.SubscribeMarketData(ids, len(ids))

        def OnRtnDepthMarketData(self, pDepthMarketData: Any) -> None:
            if self.finished:
                return
            try:
                self.write(pDepthMarketData)
            except RecordingError as exc:
                self.failure = exc
                self.finish()
                return
            self.count += 1
            if self.count == self.limit:
                self.finish()

    return RecorderSpi


def record(front: str, ids: list[str], directory: str, duration: float | None, limit: int | None,
           quiet: bool = False) -> int:
    """``ctpshim record``: returns the exit status (0, or 1 after a recording error)."""
    with fewer_young_collections():
        return _record(front, ids, directory, duration, limit, quiet)


def _record(front: str, ids: list[str], directory: str, duration: float | None, limit: int | None,
            quiet: bool) -> int:
    from ...recording import LiveWriter, RecordingError

    writer = LiveWriter(directory)
    from ... import mdapi

    api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi()
    spi = _recorder_spi()(api, ids, writer, limit)
    api.RegisterSpi(spi)
    api.RegisterFront(front)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    started = time.monotonic()
    api.Init()
    last_count, last_time = 0, started
    try:
        while not spi.done.is_set() and not stop.is_set():
            if duration is not None and time.monotonic() - started >= duration:
                break
            spi.done.wait(0.2)
            try:
                writer.flush_if_due()
            except RecordingError as exc:
                spi.failure = exc
                break
            now = time.monotonic()
            if not quiet and now - last_time >= 1.0:
                rate = (spi.count - last_count) / (now - last_time)
                print(f"\r{spi.count:,} ticks, {len(writer.instruments)} instruments, {rate:,.0f} ticks/s, "
                      f"day {writer.day or '-'}   ", end="", file=sys.stderr, flush=True)
                last_count, last_time = spi.count, now
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        api.Release()  # no callback runs after this: the writer is ours alone
        try:
            writer.close()
        except RecordingError as exc:
            spi.failure = spi.failure or exc
    elapsed = time.monotonic() - started
    if not quiet:
        print(file=sys.stderr)
    if spi.failure is not None:
        print(f"ctpshim record: {spi.failure}", file=sys.stderr)
        return 1
    print(f"recorded {writer.written:,} ticks of {len(writer.instruments)} instruments in {elapsed:.1f} s "
          f"into {directory} (trading days: {', '.join(writer.days) or 'none'})")
    return 0


# -- the command line -----------------------------------------------------------------------------

def add_parser(commands: Any) -> argparse.ArgumentParser:
    command = commands.add_parser("record", help=HELP)
    command.add_argument("front", help="the front to record, e.g. sim:// or replay://day.parquet")
    command.add_argument("-i", "--instruments", nargs="+", required=True, metavar="ID", help="instruments to record")
    command.add_argument("-o", "--output", required=True, metavar="DIR",
                         help="folder for <TradingDay>.arrows (live) and <TradingDay>.parquet (finished days)")
    command.add_argument("--duration", type=argument(number(0, 366 * 86400)), metavar="S",
                         help="stop after S seconds (default: Ctrl-C)")
    command.add_argument("--count", type=argument(integer(1)), metavar="N", help="stop after N ticks")
    command.add_argument("--quiet", action="store_true", help="no running ticks/s line")
    return command


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    require(parser, "pyarrow", "recordings", "record")
    from ...errors import FrontAddressError
    from ...fronts import registry
    from ...recording import RecordingError

    try:
        registry.validate_front(args.front)
    except FrontAddressError as exc:
        parser.exit(2, f"ctpshim record: {exc}\n")
    try:
        return record(args.front, args.instruments, args.output, args.duration, args.count, args.quiet)
    except RecordingError as exc:
        print(f"ctpshim record: {exc}", file=sys.stderr)
        return 1
