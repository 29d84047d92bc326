"""The server core: starting and stopping, sources, tokens, clients, /health and /metrics views."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ctpshim.runtime import io_loop
from ctpshim.server.limits import AuthError, LimitError
from ctpshim.server.server import ClientInfo
from tests.conftest import wait_for

from tests.conftest import eventually

SIM = "sim://?hours=always&interval=0.02"


def on_io(coro: Any, timeout: float = 10.0) -> Any:
    return io_loop.submit(coro).result(timeout)


class Collector:
    def __init__(self, name: str = "c") -> None:
        self.name = name
        self.ticks: list[Any] = []
        self.downs: list[int] = []

    def deliver(self, tick: Any) -> None:
        self.ticks.append(tick)

    def source_down(self, reason: int) -> None:
        self.downs.append(reason)


def test_server_starts_its_feeds_and_delivers(serve_factory: Any) -> None:
    server = serve_factory(SIM)
    client = Collector()

    async def run() -> list[str]:
        feed = server.feed(None)
        assert await feed.wait_up(10)
        ids = [i.instrument_id for i in feed.instruments()[:2]]
        feed.subscribe(client, ids)
        await eventually(lambda: {t.instrument for t in client.ticks} == set(ids), 5, "a tick of each instrument")
        feed.drop(client)
        return ids

    ids = on_io(run())
    assert {t.instrument for t in client.ticks} == set(ids)
    assert server.health()["sources"]["sim"]["up"] is True
    assert 'ctpshim_upstreams{source="sim",up="1"} 1' in server.render_prometheus()


def test_feed_names_the_valid_sources(serve_factory: Any) -> None:
    server = serve_factory(f"a={SIM}", f"b={SIM}&seed=2")
    assert server.feed(None).name == "a"
    assert server.feed("b").name == "b"
    with pytest.raises(KeyError, match="this server has: a, b"):
        server.feed("c")


def test_a_bad_source_is_refused_at_start(serve_factory: Any) -> None:
    with pytest.raises(ValueError, match="nosuchscheme"):
        serve_factory("nosuchscheme://x")


def test_authenticate(serve_factory: Any) -> None:
    server = serve_factory(SIM, tokens=["s3cret-alice:alice", "s3cret-bob:bob"])
    assert server.authenticate("s3cret-bob") == "bob"
    for bad in ("", None, "s3cret", "s3cret-alicex"):
        with pytest.raises(AuthError, match="bad token"):
            server.authenticate(bad)
    open_server = serve_factory(SIM)
    assert open_server.authenticate(None) == "anonymous"


def test_register_limits_clients(serve_factory: Any) -> None:
    server = serve_factory(SIM, limits={"max_clients": 2})
    infos = [ClientInfo(f"c{i}", "binary", "127.0.0.1:1") for i in range(3)]
    server.register(infos[0])
    server.register(infos[1])
    with pytest.raises(LimitError, match="max_clients"):
        server.register(infos[2])
    server.unregister(infos[0])
    server.register(infos[2])
    assert [c.name for c in server.clients] == ["c1", "c2"]
    assert 'ctpshim_clients{protocol="binary"} 2' in server.render_prometheus()


def test_stop_closes_every_registered_client(serve_factory: Any) -> None:
    server = serve_factory(SIM)
    closed: list[str] = []

    async def close_later() -> None:
        await asyncio.sleep(0)
        closed.append("async")

    server.register(ClientInfo("a", "binary", close=lambda: closed.append("sync")))
    server.register(ClientInfo("b", "webctp-md", close=close_later))
    server.register(ClientInfo("c", "diff", close=lambda: 1 / 0))  # one failing close stops nothing
    server.stop()
    assert sorted(closed) == ["async", "sync"]
    assert all(not feed.up for feed in server.feeds.values())
    with pytest.raises(LimitError):
        on_io(_register_while_stopping(server))


async def _register_while_stopping(server: Any) -> None:
    server._stopping = True
    server.register(ClientInfo("late", "binary"))


def test_an_http_address_in_use_fails_start_and_undoes_it(serve_factory: Any) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = serve_factory(SIM, http=("127.0.0.1", port), start=False)
        with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
            server.start()
    assert not server.started
    assert all(not feed.up and feed._market is None for feed in server.feeds.values())


def test_health_and_prometheus_follow_the_clients_and_counters(serve_factory: Any) -> None:
    server = serve_factory(f"up={SIM}", "down=sim://?refuse=true")
    client = Collector()

    async def run() -> None:
        feed = server.feed("up")
        assert await feed.wait_up(10)
        ids = [i.instrument_id for i in feed.instruments()[:3]]
        feed.subscribe(client, ids)
        info = ClientInfo("alice", "webctp-md", "127.0.0.1:5", "up", feed=feed, subscriber=client)
        server.register(info)
        server.metrics.conflated += 4
        server.metrics.count_delivered(10)

    on_io(run())
    health = server.health()
    assert health["status"] == "degraded"
    assert health["sources"]["up"]["up"] is True and health["sources"]["down"]["up"] is False
    assert health["clients"] == {"webctp-md": 1}
    assert health["subscriptions"] == 3 and health["conflated"] == 4 and health["delivered"] == 10
    text = server.render_prometheus()
    for line in ('ctpshim_clients{protocol="webctp-md"} 1', "ctpshim_subscriptions 3",
                 'ctpshim_upstreams{source="up",up="1"} 1', 'ctpshim_upstreams{source="down",up="0"} 1',
                 "ctpshim_ticks_delivered_total 10", "ctpshim_ticks_conflated_total 4",
                 "ctpshim_messages_dropped_total 0", "ctpshim_clients_cut_off_total 0"):
        assert line in text.splitlines(), line
    assert "# TYPE ctpshim_ticks_per_second gauge" in text
    on_io(_drop(server.feed("up"), client))


async def _drop(feed: Any, client: Any) -> None:
    feed.drop(client)


def test_messages_per_second_is_the_mean_of_the_last_whole_seconds() -> None:
    from ctpshim.server.metrics import RATE_WINDOW, Metrics

    now = [1000.0]
    metrics = Metrics(clock=lambda: now[0])
    for second in range(10):
        now[0] = 1000.0 + second + 0.5
        metrics.count_messages(100)
    now[0] = 1010.2
    assert metrics.messages_per_second() == 100.0
    now[0] = 1010.2 + RATE_WINDOW + 1
    assert metrics.messages_per_second() == 0.0
    assert metrics.messages == 1000


def test_the_status_line_in_log_mode(serve_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    import io
    import logging
    import threading

    from ctpshim.server.status import StatusLine

    server = serve_factory(SIM)
    server.register(ClientInfo("a", "binary"))
    status = StatusLine(server, "auto", interval=0.05, stream=io.StringIO())
    assert status.mode == "log"  # not a terminal
    text = status.text()
    assert text.startswith("1 client (binary 1) · upstreams ") and "msg/s" in text
    logged = threading.Event()

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("status: 1 client"):
                logged.set()

    handler = Seen()
    logger = logging.getLogger("ctpshim.server")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        status.start()
        assert logged.wait(10)
    finally:
        status.stop()
        logger.removeHandler(handler)
        logger.setLevel(previous)
    with pytest.raises(ValueError, match="valid modes are auto, live, log, off"):
        StatusLine(server, "fancy")


def test_the_live_status_line_draws_on_a_terminal(serve_factory: Any) -> None:
    pytest.importorskip("rich")
    import io

    from ctpshim.server.status import StatusLine

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    server = serve_factory(SIM)
    stream = Terminal()
    status = StatusLine(server, "auto", interval=0.05, stream=stream)
    assert status.mode == "live"
    status.start()
    try:
        wait_for(lambda: "msg/s" in stream.getvalue(), 10, "the live line to be drawn")
    finally:
        status.stop()
