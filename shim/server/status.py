"""The server's live status: clients, upstreams, subscriptions and messages per second.

On a terminal with ``rich`` installed, one line redrawn every second below the log; otherwise a
plain log line every ``interval`` seconds.  It runs on a thread of its own and only reads the
server's counters (never touching the IO loop).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger("ctpshim.server")

LIVE_INTERVAL = 1.0  # s between redraws of the live line
LOG_INTERVAL = 30.0  # s between plain status lines


def _retrying(read: Any, default: Any) -> Any:
    """``read()``, again when a dict changed on the IO thread while it was copied."""
    for _ in range(5):
        try:
            return read()
        except RuntimeError:
            continue
    return default


class StatusLine:
    """The status of ``server`` (see the module docstring); :meth:`start` and :meth:`stop` it.

    ``mode``: ``"live"`` (a rich live line; needs rich and a terminal), ``"log"`` (a log line every
    ``interval`` s), ``"auto"`` (live when possible, else log), ``"off"``."""

    def __init__(self, server: "Server", mode: str = "auto", interval: float | None = None,
                 stream: TextIO | None = None) -> None:
        if mode not in ("auto", "live", "log", "off"):
            raise ValueError(f"status mode {mode!r}: valid modes are auto, live, log, off")
        self.server = server
        self.stream = stream if stream is not None else sys.stderr
        if mode == "auto":
            mode = "live" if _live_possible(self.stream) else "log"
        self.mode = mode
        self.interval = interval if interval is not None else (LIVE_INTERVAL if mode == "live" else LOG_INTERVAL)
        self.console: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last = (time.monotonic(), self._ticks_in())
        if mode == "live":
            from rich.console import Console

            self.console = Console(file=self.stream)

    # -- what it shows --------------------------------------------------------------------------

    def _ticks_in(self) -> int:
        return sum(feed.ticks_in for feed in list(getattr(self.server, "feeds", {}).values()))

    def values(self) -> dict[str, Any]:
        """The numbers on the line."""
        server = self.server
        clients = list(server.clients)
        feeds = list(getattr(server, "feeds", {}).values())
        now, ticks_in = time.monotonic(), self._ticks_in()
        then, before = self._last
        self._last = (now, ticks_in)
        return {
            "clients": len(clients),
            "by_protocol": dict(Counter(info.protocol for info in clients)),
            "upstreams": len(feeds),
            "up": sum(bool(feed.up) for feed in feeds),
            "subscriptions": _retrying(lambda: sum(info.subscriptions for info in clients), 0),
            "instruments": sum(_retrying(lambda f=feed: len(f.counts), 0) for feed in feeds),
            "ticks_in_per_second": (ticks_in - before) / (now - then) if now > then else 0.0,
            "messages_per_second": server.metrics.messages_per_second(),
            "conflated": server.metrics.conflated,
            "cut_off": server.metrics.cut_off,
        }

    def text(self, compact: bool = False) -> str:
        v = self.values()
        if compact:  # for an 80-column terminal
            return (f"{v['clients']} clients · {v['up']}/{v['upstreams']} up · {v['subscriptions']:,} subs · "
                    f"in {v['ticks_in_per_second']:,.0f}/s · out {v['messages_per_second']:,.0f} msg/s · "
                    f"conflated {v['conflated']:,} · cut {v['cut_off']:,}")
        protocols = ", ".join(f"{name} {n}" for name, n in sorted(v["by_protocol"].items()))
        clients = f"{v['clients']} client{'s' if v['clients'] != 1 else ''}" + (f" ({protocols})" if protocols else "")
        return (f"{clients} · upstreams {v['up']}/{v['upstreams']} up · {v['subscriptions']:,} subscriptions "
                f"({v['instruments']:,} instruments) · in {v['ticks_in_per_second']:,.0f} ticks/s · "
                f"out {v['messages_per_second']:,.0f} msg/s · conflated {v['conflated']:,} · cut off {v['cut_off']:,}")

    # -- running --------------------------------------------------------------------------------

    def log_handler(self) -> logging.Handler:
        """A handler that prints log records above the live line (a plain one in log mode)."""
        if self.console is not None:
            from rich.logging import RichHandler

            return RichHandler(console=self.console, show_path=False, rich_tracebacks=False)
        handler = logging.StreamHandler(self.stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        return handler

    def start(self) -> None:
        if self.mode == "off" or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="ctpshim-status", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(5.0)

    def _run(self) -> None:
        if self.mode == "live":
            self._run_live()
            return
        while not self._stop.wait(self.interval):
            try:
                log.info("status: %s", self.text())
            except Exception:  # noqa: BLE001 - the status line must never stop the server
                log.debug("status line failed", exc_info=True)

    def _run_live(self) -> None:
        from rich.live import Live
        from rich.text import Text

        def line() -> Text:  # one line, cut to the terminal's width
            return Text(self.text(compact=True), style="bold", no_wrap=True, overflow="ellipsis")

        with Live(line(), console=self.console, refresh_per_second=4, transient=True,
                  redirect_stdout=False, redirect_stderr=False) as live:
            while not self._stop.wait(self.interval):
                try:
                    live.update(line())
                except Exception:  # noqa: BLE001 - the status line must never stop the server
                    log.debug("status line failed", exc_info=True)


def _live_possible(stream: TextIO) -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
