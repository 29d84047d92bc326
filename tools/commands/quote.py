"""``ctpshim quote FRONT [IDS...]``: live quotes from any front, through the CTP API itself.

The command is an ordinary CTP program: it logs in, subscribes and reads
``OnRtnDepthMarketData``, so what it shows is what a program on that front would get.
``--once --json`` prints the newest tick of each instrument as JSON for scripts (see :func:`as_json`).
A front that never connects is asked once why, as ``ctpshim ping`` asks it (the server's refusal
and its reason, nothing listening, no answer), and the reason is the state shown.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from typing import Any, TextIO

from ...ctp.fields import member_names, values_of
from ...ctp.market_data import DBL_MAX
from ...fronts import registry
from ...fronts.url import number
from ...messages import listing
from . import COMMANDS, argument, require

COLUMNS = ["Instrument", "Last", "Change", "Change %", "Bid", "Bid vol", "Ask", "Ask vol", "Volume",
           "Open interest", "Updated", "Ticks"]


@functools.cache
def _quote_spi() -> type:
    """The ``QuoteSpi`` class, made on first use (it subclasses the facade's Spi, which building the
    command line's parser does not import)."""
    from ... import mdapi

    class QuoteSpi(mdapi.CThostFtdcMdSpi):
        """Logs in, subscribes, and keeps the newest tick and a count per instrument."""

        def __init__(self, api: Any, ids: list[str]) -> None:
            super().__init__()
            self.api = api
            self.ids = ids
            self.latest: dict[str, Any] = {}
            self.counts: dict[str, int] = dict.fromkeys(ids, 0)
            self.lock = threading.Lock()
            self.state = "connecting"
            self.ever_connected = False
            self.changed = threading.Event()

        def OnFrontConnected(self) -> None:
            self.ever_connected = True
            self.state = "connected, logging in"
            self.api.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 1)

        def OnFrontDisconnected(self, nReason: int) -> None:
            from ...errors import describe_reason

            self.state = f"disconnected: {describe_reason(nReason)}; reconnecting"

        def OnRspUserLogin(self, pRspUserLogin: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
            if pRspInfo is not None and pRspInfo.ErrorID != 0:
                self.state = f"login refused: {pRspInfo.ErrorID} {pRspInfo.ErrorMsg}"
                return
            self.state = f"logged in, trading day {pRspUserLogin.TradingDay if pRspUserLogin else '?'}"
            encoded = [i.encode() for i in self.ids]
            self.api.SubscribeMarketData(encoded, len(encoded))

        def OnRtnDepthMarketData(self, pDepthMarketData: Any) -> None:
            with self.lock:
                instrument = pDepthMarketData.InstrumentID
                self.latest[instrument] = pDepthMarketData
                self.counts[instrument] = self.counts.get(instrument, 0) + 1
            self.changed.set()

        def snapshot(self) -> list[tuple[str, Any, int]]:
            with self.lock:
                return [(i, self.latest.get(i), self.counts.get(i, 0)) for i in self.ids]

    return QuoteSpi


def _price(value: float) -> str:
    if value >= DBL_MAX or value != value:
        return "-"
    return f"{value:,.4f}".rstrip("0").rstrip(".")


def row(instrument: str, tick: Any, count: int) -> list[str]:
    if tick is None:
        return [instrument, *["-"] * (len(COLUMNS) - 2), str(count)]
    reference = tick.PreSettlementPrice
    if not 0 < reference < DBL_MAX:
        reference = tick.PreClosePrice
    last = tick.LastPrice
    if 0 < reference < DBL_MAX and last < DBL_MAX:
        change, percent = _price(last - reference), f"{(last - reference) / reference:+.2%}"
        if last == reference:
            change, percent = "0", "0.00%"
        elif not change.startswith("-"):
            change = "+" + change
    else:
        change = percent = "-"
    return [instrument, _price(last), change, percent, _price(tick.BidPrice1), f"{tick.BidVolume1:,}",
            _price(tick.AskPrice1), f"{tick.AskVolume1:,}", f"{tick.Volume:,}", f"{tick.OpenInterest:,.0f}",
            f"{tick.ActionDay} {tick.UpdateTime}.{tick.UpdateMillisec:03d}", f"{count:,}"]


def table(spi: Any, front: str) -> Any:
    from rich.table import Table

    view = Table(title=f"{front}: {spi.state}", title_justify="left")
    for name in COLUMNS:
        view.add_column(name, justify="left" if name in ("Instrument", "Updated") else "right")
    for instrument, tick, count in spi.snapshot():
        cells = row(instrument, tick, count)
        style = None
        if tick is not None and cells[2] not in ("-",):
            style = "green" if cells[2].startswith("+") else "red" if cells[2].startswith("-") else None
        view.add_row(*cells, style=style)
    return view


def as_json(tick: Any) -> dict[str, Any]:
    """A tick as a JSON object: CTP member names as keys, in the struct's order; numbers as
    numbers, text as text, absent values (DBL_MAX) as null."""
    names = member_names(type(tick))
    return {name: None if type(value) is float and (value >= DBL_MAX or not math.isfinite(value)) else value
            for name, value in zip(names, values_of(tick))}


def document(spi: Any, front: str) -> str:
    """``quote --once --json``'s output: the front, its state, one object per instrument that
    ticked (in the order asked) and the instruments that did not."""
    snapshot = spi.snapshot()
    return json.dumps({"front": front, "state": spi.state,
                       "quotes": [as_json(tick) for _, tick, _ in snapshot if tick is not None],
                       "missing": [instrument for instrument, tick, _ in snapshot if tick is None]},
                      indent=2, ensure_ascii=False, allow_nan=False)


def known_instruments(front: str, wait: float = 2.0) -> list[str]:
    """The instruments a front's source knows (for ``quote`` without IDs); may be empty.
    Raises ``UpstreamError`` naming why when the source cannot be reached."""
    from ...errors import UpstreamError
    from .ping import connect_adapter

    async def ask() -> list[str]:
        adapter, cause = await connect_adapter(front, wait)
        if adapter is None:
            raise UpstreamError(cause or "cannot connect")
        try:
            deadline = time.monotonic() + wait
            while True:  # replay:// learns its instruments in the background
                found = [info.instrument_id for info in adapter.instruments()]
                if found or time.monotonic() >= deadline:
                    return found
                await asyncio.sleep(0.05)
        finally:
            await adapter.close()

    return asyncio.run(ask())


def unreachable_cause(front: str, timeout: float) -> str | None:
    """Why ``front`` cannot be connected to, by one connect of its adapter as ``ctpshim ping`` makes
    it; ``None`` when it connects, or for a pass-through front (a real CTP front)."""
    if registry.is_pass_through(front):
        return None
    from .ping import connect_adapter

    async def ask() -> str | None:
        adapter, cause = await connect_adapter(front, timeout)
        if adapter is not None:
            await adapter.close()
        return cause

    return asyncio.run(ask())


def explain(spi: Any, front: str, timeout: float) -> None:
    """While the front has never connected: put the reason it cannot be (see
    :func:`unreachable_cause`) into ``spi.state``."""
    if spi.ever_connected:
        return
    cause = unreachable_cause(front, timeout)
    if cause is not None and not spi.ever_connected:
        spi.state = f"not connected: {cause}; retrying"
        spi.changed.set()


def run(front: str, ids: list[str], once: bool, timeout: float, out: TextIO = sys.stdout,
        as_document: bool = False) -> int:
    """The ``quote`` command.  With ``once``: wait until every instrument has ticked (or
    ``timeout`` passed), print one table (``as_document``: the JSON :func:`document`) and return
    0 if every instrument ticked, else 1."""
    from rich.console import Console

    console = Console(file=out, width=max(shutil.get_terminal_size().columns, 140) if once else None)
    flow = tempfile.mkdtemp(prefix="ctpshim-quote-")
    from ... import mdapi

    api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(flow + "/")
    spi = _quote_spi()(api, ids)
    api.RegisterSpi(spi)
    api.RegisterFront(front)
    api.Init()
    try:
        if once:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not all(tick is not None for _, tick, _ in spi.snapshot()):
                spi.changed.wait(0.1)
                spi.changed.clear()
            if any(tick is None for _, tick, _ in spi.snapshot()):
                explain(spi, front, min(timeout, EXPLAIN_TIMEOUT))
            if as_document:
                print(document(spi, front), file=out)
            else:
                console.print(table(spi, front))
            missing = [i for i, tick, _ in spi.snapshot() if tick is None]
            if missing:
                print(f"ctpshim quote: no tick within {timeout:g} s for {listing(missing)} ({spi.state})",
                      file=sys.stderr)
                return 1
            return 0
        from rich.live import Live

        # the reason a front never connects, in the title, once the first try has had its time
        explainer = threading.Timer(EXPLAIN_AFTER, explain, (spi, front, EXPLAIN_TIMEOUT))
        explainer.daemon = True
        explainer.start()
        try:
            with Live(table(spi, front), console=console, refresh_per_second=4) as live:
                while True:
                    spi.changed.wait(0.25)
                    spi.changed.clear()
                    live.update(table(spi, front))
        except KeyboardInterrupt:
            return 0
        finally:
            explainer.cancel()
    finally:
        api.RegisterSpi(None)
        api.Release()
        shutil.rmtree(flow, ignore_errors=True)


# -- the command line -----------------------------------------------------------------------------

HELP = COMMANDS["quote"]
MAX_LISTED_INSTRUMENTS = 50  # without IDs: the first this many the source lists
EXPLAIN_AFTER = 3.0  # s: a live table whose front has not connected by then is told why
EXPLAIN_TIMEOUT = 5.0  # s the front's adapter may take to connect when asked why


def add_parser(commands: Any) -> argparse.ArgumentParser:
    command = commands.add_parser("quote", help=HELP)
    command.add_argument("front", help="the front, e.g. sim:// replay:// sina:// tencent:// tcp://host:port ctpshim://host:port/source ctpshims://host:port/source")
    command.add_argument("ids", nargs="*", metavar="ID",
                         help="instruments (default: those the source lists, e.g. a recording's)")
    command.add_argument("--once", action="store_true", help="print one snapshot and exit (for scripts)")
    command.add_argument("--json", action="store_true",
                         help="with --once: the snapshot as JSON, one object per instrument with CTP's member names, "
                              "absent values as null")
    command.add_argument("-W", "--timeout", type=argument(number(0, 600)), default=10.0, metavar="S",
                         help="with --once: seconds to wait for every instrument's first tick (default 10)")
    return command


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ...api.lifecycle import FRONT_ENV
    from ...errors import FrontAddressError, UpstreamError

    os.environ.pop(FRONT_ENV, None)  # the command's own FRONT is the one meant
    if args.json and not args.once:
        parser.exit(2, "ctpshim quote: --json needs --once (a live table cannot be JSON)\n")
    require(parser, "rich", "cli", "quote")
    try:
        registry.validate_front(args.front)
    except FrontAddressError as exc:
        parser.exit(2, f"ctpshim quote: {exc}\n")
    ids = args.ids
    if not ids:
        try:
            ids = known_instruments(args.front)[:MAX_LISTED_INSTRUMENTS]
            why = "does not list its instruments"
        except (UpstreamError, asyncio.TimeoutError) as exc:
            why = f"cannot list its instruments ({exc or 'timed out'})"
        if not ids:
            parser.exit(2, f"ctpshim quote: {args.front} {why}; name them, e.g. ctpshim quote {args.front} rb2605\n")
    return run(args.front, ids, args.once, args.timeout, as_document=args.json)
