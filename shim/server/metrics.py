"""The server's counters, its Prometheus text (``/metrics``) and its health (``/health``).

Counters are plain integers changed on the IO loop; readers on other threads see a recent value.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .server import Server

RATE_WINDOW = 5  # s: messages per second is the mean over the last RATE_WINDOW whole seconds


class Metrics:
    """Counts of what the server delivered, conflated, dropped and cut off, and the recent rate."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.started = clock()
        self.delivered = 0  # ticks handed to clients' transports
        self.conflated = 0  # ticks replaced by a newer one of the same instrument before being sent
        self.dropped = 0  # messages dropped (malformed, over a limit, for a client that was gone)
        self.cut_off = 0  # clients cut off by the slow-consumer policy
        self.messages = 0  # messages sent to clients (ticks and replies)
        self.rejected: Counter[str] = Counter()  # refused clients by reason (auth, max_clients, connection_rate)
        self._buckets: dict[int, int] = {}

    def count_messages(self, n: int) -> None:
        """``n`` messages were sent now (ticks or replies)."""
        self.messages += n
        second = int(self._clock())
        buckets = self._buckets
        buckets[second] = buckets.get(second, 0) + n
        if len(buckets) > RATE_WINDOW + 2:
            for old in [s for s in buckets if s < second - RATE_WINDOW]:
                del buckets[old]

    def count_delivered(self, n: int) -> None:
        self.delivered += n
        self.count_messages(n)

    def messages_per_second(self) -> float:
        """The mean rate over the last ``RATE_WINDOW`` whole seconds (fewer, just after the start)."""
        now = self._clock()
        second = int(now)
        window = max(1, min(RATE_WINDOW, int(now - self.started)))
        total = sum(n for s, n in list(self._buckets.items()) if second - window <= s < second)
        return total / window

    # -- views ----------------------------------------------------------------------------------

    def health(self, server: "Server") -> dict[str, Any]:
        """``/health``: ok while every source is up; per source, per protocol counts."""
        feeds = getattr(server, "feeds", {})
        sources = {name: {"url": feed.url, "up": bool(feed.up), "instruments": len(feed.counts)}
                   for name, feed in feeds.items()}
        clients = Counter(info.protocol for info in list(server.clients))
        return {
            "status": "ok" if sources and all(s["up"] for s in sources.values()) else "degraded",
            "uptime": round(self._clock() - self.started, 3),
            "sources": sources,
            "clients": dict(clients),
            "subscriptions": sum(info.subscriptions for info in list(server.clients)),
            "delivered": self.delivered,
            "conflated": self.conflated,
            "dropped": self.dropped,
            "cut_off": self.cut_off,
            "refused": dict(self.rejected),
            "messages_per_second": round(self.messages_per_second(), 1),
        }

    def render_prometheus(self, server: "Server") -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        clients = list(server.clients)
        by_protocol = Counter(info.protocol for info in clients)
        for protocol in ("binary", "webctp-md", "webctp-td", "diff"):
            by_protocol.setdefault(protocol, 0)
        lines = ["# HELP ctpshim_clients Connected clients by protocol.", "# TYPE ctpshim_clients gauge"]
        lines += [f'ctpshim_clients{{protocol="{_label(p)}"}} {n}' for p, n in sorted(by_protocol.items())]
        lines += ["# HELP ctpshim_subscriptions Instrument subscriptions summed over clients.",
                  "# TYPE ctpshim_subscriptions gauge",
                  f"ctpshim_subscriptions {sum(info.subscriptions for info in clients)}",
                  "# HELP ctpshim_upstreams Sources and whether their upstream link is up.",
                  "# TYPE ctpshim_upstreams gauge"]
        for name, feed in getattr(server, "feeds", {}).items():
            up = "1" if feed.up else "0"
            lines.append(f'ctpshim_upstreams{{source="{_label(name)}",up="{up}"}} 1')
        for name, help_text, value in (
            ("ctpshim_ticks_delivered_total", "Ticks handed to clients.", self.delivered),
            ("ctpshim_ticks_conflated_total", "Ticks replaced by a newer one for a client that fell behind.",
             self.conflated),
            ("ctpshim_messages_dropped_total", "Messages dropped (malformed, over a limit, client gone).",
             self.dropped),
            ("ctpshim_clients_cut_off_total", "Clients cut off by the slow-consumer policy.", self.cut_off),
        ):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name} {value}"]
        lines += ["# HELP ctpshim_connections_refused_total Connections refused, by reason (auth, max_clients, "
                  "connection_rate).", "# TYPE ctpshim_connections_refused_total counter"]
        for reason in sorted(set(self.rejected) | {"auth", "connection_rate", "max_clients"}):
            lines.append(f'ctpshim_connections_refused_total{{reason="{_label(reason)}"}} {self.rejected[reason]}')
        lines += ["# HELP ctpshim_ticks_per_second Messages sent to clients per second (recent mean).",
                  "# TYPE ctpshim_ticks_per_second gauge",
                  f"ctpshim_ticks_per_second {self.messages_per_second():.1f}"]
        return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
