"""``ctpshim ping FRONT...``: is each front answering, how fast, and if not, why.

Every front is pinged at the same time, so many fronts take about as long as one.  Per front:

* ``tcp://`` / ``ssl://``: ``count`` TCP connects (their times are the samples); then, with
  openctp-ctp installed, one CTP login round trip as openctp's ``ctpping`` measures it
  (connected -> empty ``ReqUserLogin`` -> any ``OnRspUserLogin``) and the API version;
* every other scheme: the adapter connects once, then ``count`` calls of its ``probe()`` are the
  samples (one HTTP request for ``sina://`` and ``tencent://``, reading the files for ``replay://``, one CALL
  and its RESULT for ``ctpshim://``, after the handshake that checks the server's protocol version, layout,
  token and source; nothing for ``sim://``).  A quote older than ``stale`` seconds while its market is open is stale data.

Each front ends with one status: ``ok`` (at least one sample answered and nothing failed
outright, as ping(8) counts a host that answers some of its packets as up); ``FAIL``; ``damaged``
(a recording whose files hold damage, named with its byte offset; the ticks before it play);
``tcp-only`` (a real front whose TCP connect answered but whose CTP login could not be checked
here: openctp-ctp or its locale is missing).  A front whose check raises something unexpected is
that front's ``FAIL``, with the error in one line; the others are still reported.

Exit status (:func:`exit_status`): 0 every front ok, 1 any FAIL or damaged, 3 none failed but
some were checked by TCP connect only, 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import itertools
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, TextIO

from ...errors import FrontAddressError, UpstreamError
from ...fronts import registry
from ...fronts.url import FrontURL, integer, number
from . import COMMANDS, argument, require

OK, FAIL, DAMAGED, TCP_ONLY = "ok", "FAIL", "damaged", "tcp-only"
EXIT_OK, EXIT_FAILED, EXIT_TCP_ONLY = 0, 1, 3  # 2 is argparse's, for usage errors


def exit_status(results: list["PingResult"]) -> int:
    """0 when every front is ok, 1 when any failed or is damaged, 3 when the rest are ok but
    some real fronts were checked by TCP connect only."""
    statuses = {result.status for result in results}
    if not results or statuses & {FAIL, DAMAGED}:
        return EXIT_FAILED
    return EXIT_TCP_ONLY if TCP_ONLY in statuses else EXIT_OK


@dataclass
class PingResult:
    """What ping found out about one front."""

    front: str
    scheme: str
    samples: list[float | None] = field(default_factory=list)  # milliseconds; None = no answer
    cause: str | None = None  # why the front is not healthy, in words
    details: dict[str, Any] = field(default_factory=dict)
    damage: list[str] = field(default_factory=list)  # damage found in a recording's files
    tcp_only: str | None = None  # why only the TCP connect of a real front was checked

    @property
    def answered(self) -> list[float]:
        return [s for s in self.samples if s is not None]

    @property
    def status(self) -> str:
        """``ok``, ``FAIL``, ``damaged`` or ``tcp-only`` (see the module docstring)."""
        if self.cause is not None or not self.answered:
            return FAIL
        if self.damage:
            return DAMAGED
        if self.tcp_only is not None:
            return TCP_ONLY
        return OK

    @property
    def healthy(self) -> bool:
        return self.status == OK

    @property
    def loss(self) -> float:
        return 1.0 - len(self.answered) / len(self.samples) if self.samples else 1.0

    def spread(self) -> tuple[float | None, float | None, float | None]:
        """(min, median, max) of the answered samples, in ms; ``None`` each when none answered."""
        answered = self.answered
        if not answered:
            return None, None, None
        return min(answered), statistics.median(answered), max(answered)

    def as_json(self) -> dict[str, Any]:
        low, middle, high = self.spread()
        return {
            "front": self.front,
            "scheme": self.scheme,
            "status": self.status,
            "healthy": self.healthy,
            "cause": self.cause,
            "damage": self.damage,
            "tcp_only": self.tcp_only,
            "samples_ms": self.samples,
            "min_ms": low,
            "median_ms": middle,
            "max_ms": high,
            "loss": round(self.loss, 3),
            "details": self.details,
        }


def check_fronts(fronts: list[str]) -> list[FrontURL]:
    """Parse every address, its scheme and its settings; ``FrontAddressError`` for the first bad one.

    Whether a recording exists or a feed answers is not a usage question: ping reports it.
    """
    urls = []
    for raw in fronts:
        url, cls, _ = registry.resolve_front(raw)
        if cls.capabilities.pass_through:
            from ...adapters.tcp import parse_address

            try:
                parse_address(url)
            except ValueError as exc:
                raise FrontAddressError(f"front {url.raw!r}: {exc}") from None
        urls.append(url)
    return urls


async def ping_all(urls: list[FrontURL], count: int, interval: float, timeout: float,
                   stale: float) -> list[PingResult]:
    """Ping every front concurrently; results in the order given."""
    pass_through = sum(registry.is_pass_through(url.raw) for url in urls)
    # One thread per real front for the CTP probes, so a hundred fronts wait in parallel.
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(pass_through, 128))) as pool:
        return list(await asyncio.gather(*(ping_front(url, count, interval, timeout, stale, pool) for url in urls)))


async def ping_front(url: FrontURL, count: int, interval: float, timeout: float, stale: float,
                     pool: concurrent.futures.Executor | None = None) -> PingResult:
    """One front's result; whatever its check raises is that front's failure, never the run's."""
    result = PingResult(url.raw, url.scheme)
    try:
        if registry.is_pass_through(url.raw):
            await _ping_real_front(url, result, count, interval, timeout, pool)
        else:
            await _ping_adapter(url, result, count, interval, timeout, stale)
    except Exception as exc:  # noqa: BLE001 - isolated: the other fronts are still reported
        result.samples += [None] * (count - len(result.samples))
        result.cause = f"the check failed unexpectedly: {_one_line(exc)}"
    return result


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _ping_real_front(url: FrontURL, result: PingResult, count: int, interval: float, timeout: float,
                           pool: concurrent.futures.Executor | None) -> None:
    from ...adapters import tcp

    host, port = tcp.parse_address(url)
    causes = []
    for number in range(count):
        if number:
            await asyncio.sleep(interval)
        started = time.perf_counter()
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (asyncio.TimeoutError, OSError) as exc:
            result.samples.append(None)
            causes.append(_connect_failure(exc, host, port, timeout))
            continue
        result.samples.append(round((time.perf_counter() - started) * 1000, 2))
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    if not result.answered:
        result.cause = causes[-1]
        return
    problem = tcp.openctp_problem()
    if problem:
        result.tcp_only = problem
        return
    loop = asyncio.get_running_loop()
    try:
        result.details.update(await loop.run_in_executor(pool, tcp.ctp_login_probe, url.raw, timeout))
    except UpstreamError as exc:
        result.cause = str(exc)


def _connect_failure(exc: BaseException, host: str, port: int, timeout: float) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return (f"connection refused: nothing listens on {host}:{port} (a wrong address or port, or the front "
                "is down; SimNow's fronts are closed outside their hours)")
    if isinstance(exc, asyncio.TimeoutError):
        return (f"timed out after {timeout:g} s: no answer to the TCP connect (a wrong host, a firewall, or the "
                "front is down)")
    if isinstance(exc, ConnectionResetError):
        return f"reset by {host}:{port} during the TCP connect"
    return f"cannot connect to {host}:{port}: {exc}"


async def connect_adapter(front: str, timeout: float) -> tuple[Any, str | None]:
    """A front's adapter (not a pass-through front), connected: ``(adapter, None)``; the caller
    closes it.  Or ``(None, cause)``: why it cannot connect, in words (a setting the scheme
    refuses, the server's refusal and its reason, unreachable, no answer within ``timeout``)."""
    url, cls, settings = registry.resolve_front(front)
    try:
        registry.check_front(url, cls, settings)
    except FrontAddressError as exc:
        return None, str(exc).removeprefix(f"front {url.raw!r}: ")
    adapter = cls(url, settings)
    try:
        await asyncio.wait_for(adapter.connect(), timeout)
    except (asyncio.TimeoutError, UpstreamError) as exc:
        with contextlib.suppress(Exception):
            await adapter.close()
        return None, _adapter_failure(exc, timeout)
    except BaseException:
        with contextlib.suppress(Exception):
            await adapter.close()
        raise
    return adapter, None


async def _ping_adapter(url: FrontURL, result: PingResult, count: int, interval: float, timeout: float,
                        stale: float) -> None:
    adapter, cause = await connect_adapter(url.raw, timeout)
    if adapter is None:
        result.samples = [None] * count
        result.cause = cause
        return
    try:
        for number in range(count):
            if number:
                await asyncio.sleep(interval)
            started = time.perf_counter()
            try:
                result.details = await asyncio.wait_for(adapter.probe(), timeout)
            except (asyncio.TimeoutError, UpstreamError) as exc:
                result.samples.append(None)
                result.cause = _adapter_failure(exc, timeout)
                continue
            result.samples.append(round((time.perf_counter() - started) * 1000, 2))
            result.cause = None  # a later answer heals an earlier miss, as in ping(8)
        if result.cause is None:
            result.damage = await adapter.damage()
    finally:
        with contextlib.suppress(Exception):
            await adapter.close()
    age = result.details.get("age_s")
    if result.cause is None and result.details.get("market_open") and age is not None and age > stale:
        result.cause = (f"stale data: the newest quote is {_duration(age)} old while the market is open "
                        f"(over {stale:g} s counts as stale)")


def _adapter_failure(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"timed out after {timeout:g} s: no answer"
    return str(exc)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


# -- output ---------------------------------------------------------------------------------------

def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _detail(result: PingResult) -> str:
    if result.cause:
        return result.cause
    if result.damage:
        more = f" (and {len(result.damage) - 1} more)" if len(result.damage) > 1 else ""
        return f"{result.damage[0]}{more}"
    if result.tcp_only is not None:
        return f"TCP connect only, the CTP login was not checked: {result.tcp_only}"
    details = result.details
    if result.scheme in ("ctpshim", "ctpshims"):
        return _server_detail(details)
    if "login_ms" in details:
        error = f", login error {details['login_error']}" if details.get("login_error") else ""
        return f"CTP login {details['login_ms']:.1f} ms, API {details['api_version']}{error}"
    if "age_s" in details:
        state = "market open" if details.get("market_open") else "market closed"
        return f"{details['quotes']} quotes parse, newest {details['newest_quote']} ({_duration(details['age_s'])} old, {state})"
    if "ticks" in details:
        return (f"{details['files']} file(s), {details['ticks']:,} ticks, {details['instruments']} instruments, "
                f"{details['first']} .. {details['last']}")
    return "; ".join(f"{k} {v}" for k, v in details.items()) or "answering"


def _server_detail(details: dict[str, Any]) -> str:
    """A ``ctpshim://`` server's answer: its protocol, the source, its trading day and instruments."""
    over = f" over {details['tls']}" if details.get("tls") else ""
    parts = [f"ctpshim server{over}, protocol v{details.get('protocol_version', '?')}",
             f"source {details.get('source') or 'default'}"]
    if details.get("trading_day"):
        parts.append(f"trading day {details['trading_day']}")
    if details.get("instruments") is not None:
        parts.append(f"{details['instruments']} instruments")
    if details.get("age_s") is not None:
        parts.append(f"newest tick {_duration(details['age_s'])} old")
    return ", ".join(parts)


def rows(results: list[PingResult]) -> list[list[str]]:
    return [[result.front, result.status, *map(_ms, result.spread()), f"{result.loss:.0%}",
             _printable(_detail(result))] for result in results]


def _printable(text: str) -> str:
    """One table line: control characters in a cause (from a file or a feed) shown escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


HEADER = ["FRONT", "STATUS", "MIN", "MEDIAN", "MAX", "LOSS", "DETAIL"]


def print_table(results: list[PingResult], out: TextIO) -> None:
    table = [HEADER, *rows(results)]
    widths = [max(len(row[column]) for row in table) for column in range(len(HEADER) - 1)]
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        out.write("  ".join([*cells, row[-1]]).rstrip() + "\n")


def rich_table(results: list[PingResult], round_number: int) -> Any:
    from rich.table import Table

    table = Table(title=f"ctpshim ping: round {round_number}, {time.strftime('%H:%M:%S')}")
    for name in HEADER:
        table.add_column(name, justify="right" if name in ("MIN", "MEDIAN", "MAX", "LOSS") else "left")
    for row, result in zip(rows(results), results):
        style = {OK: None, TCP_ONLY: "yellow"}.get(result.status, "red")
        table.add_row(*row, style=style)
    return table


@contextlib.contextmanager
def native_prints_to_stderr() -> Iterator[TextIO]:
    """The CTP library prints to the process's stdout (fd 1) on every disconnect; while pinging,
    send that to stderr so stdout carries only ping's own output.  Yields ping's stdout."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no usable fd 1 (embedded use): leave things as they are
        yield sys.stdout
        return
    os.dup2(2, 1)
    out = os.fdopen(os.dup(saved), "w", encoding=sys.stdout.encoding or "utf-8", errors="replace")
    try:
        yield out
    finally:
        out.flush()
        out.close()
        os.dup2(saved, 1)
        os.close(saved)


def run(urls: list[FrontURL], count: int, interval: float, timeout: float, stale: float,
        as_json: bool, watch: bool) -> int:
    """The ``ping`` command, for the fronts :func:`check_fronts` returned."""
    with native_prints_to_stderr() as out:
        if watch:
            return _watch(urls, count, interval, timeout, stale, out)
        results = asyncio.run(ping_all(urls, count, interval, timeout, stale))
        if as_json:
            import json

            out.write(json.dumps({"healthy": all(r.healthy for r in results), "exit_status": exit_status(results),
                                  "fronts": [r.as_json() for r in results]}, ensure_ascii=False, indent=2) + "\n")
        else:
            print_table(results, out)
    return exit_status(results)


def _watch(urls: list[FrontURL], count: int, interval: float, timeout: float, stale: float, out: TextIO) -> int:
    from rich.console import Console
    from rich.live import Live

    def append_plain(results: list[PingResult], round_number: int) -> None:
        out.write(f"round {round_number}, {time.strftime('%H:%M:%S')}\n")
        print_table(results, out)
        out.flush()

    # On a terminal the table refreshes in place; into a log or a pipe one plain table per round.
    live = Live(console=Console(file=out), auto_refresh=False) if out.isatty() else None
    results: list[PingResult] = []
    try:
        with live if live is not None else contextlib.nullcontext():
            for round_number in itertools.count(1):
                results = asyncio.run(ping_all(urls, count, interval, timeout, stale))
                if live is not None:
                    live.update(rich_table(results, round_number), refresh=True)
                else:
                    append_plain(results, round_number)
                time.sleep(max(interval, 1.0))
    except KeyboardInterrupt:
        pass
    return exit_status(results)


# -- the command line -----------------------------------------------------------------------------

MAX_PING_COUNT = 10_000  # samples per front: ping keeps every one
HELP = COMMANDS["ping"]


def add_parser(commands: Any) -> argparse.ArgumentParser:
    command = commands.add_parser(
        "ping", help=HELP,
        description="Ping fronts concurrently. tcp:// and ssl://: TCP connect times, then (with openctp-ctp) "
                    "a CTP login round trip and the API version; sina:// and tencent://: HTTP round trips, whether quotes "
                    "parse and how old the newest is; replay://: the files; ctpshim://: the server's handshake, then "
                    "call round trips; sim://: trivially healthy. "
                    "Status per front: ok, FAIL, damaged (a recording with damage) or tcp-only (a real front whose "
                    "CTP login could not be checked here). Exit status 0 when every front is ok, 1 when any "
                    "failed or is damaged, 2 for usage errors, 3 when the others are ok but some are tcp-only.")
    command.add_argument("fronts", nargs="+", metavar="FRONT", help="front addresses, e.g. tcp://host:port sina:// tencent:// ctpshim://host:port/source")
    command.add_argument("-c", "--count", type=argument(integer(1, MAX_PING_COUNT)), default=3, metavar="N",
                         help=f"samples per front, 1 to {MAX_PING_COUNT:,} (default 3)")
    command.add_argument("-i", "--interval", type=argument(number(0, 3600, low_included=True)), default=1.0, metavar="S",
                         help="seconds between samples (default 1)")
    command.add_argument("-W", "--timeout", type=argument(number(0, 600)), default=3.0, metavar="S",
                         help="seconds to wait for each answer (default 3)")
    command.add_argument("--stale", type=argument(number(0, 366 * 86400)), default=60.0, metavar="S",
                         help="a quote older than S seconds while its market is open is stale (default 60)")
    shown = command.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="machine-readable output")
    shown.add_argument("--watch", action="store_true", help="a live table, pinging again until Ctrl-C")
    return command


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ...api.lifecycle import FRONT_ENV

    os.environ.pop(FRONT_ENV, None)  # the command's own FRONT is the one meant
    try:
        urls = check_fronts(args.fronts)
    except FrontAddressError as exc:
        parser.exit(2, f"ctpshim ping: {exc}\n")
    if args.watch:
        require(parser, "rich", "cli", "ping --watch")
    return run(urls, args.count, args.interval, args.timeout, args.stale, args.json, args.watch)
