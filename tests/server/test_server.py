"""The server core: starting and stopping, sources, tokens, clients, /health and /metrics views."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ctpshim.runtime import io_loop
from ctpshim.server.limits import AuthError, LimitError
from ctpshim.server.server import ClientInfo

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
        for _ in range(500):
            if {t.instrument for t in client.ticks} == set(ids):
                break
            await asyncio.sleep(0.01)
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
