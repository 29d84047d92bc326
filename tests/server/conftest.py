"""Server fixtures: ``serve_factory`` starts a real :class:`~ctpshim.server.server.Server` on free
loopback ports and stops it at teardown."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import pytest

from ctpshim.server.server import Server
from ctpshim.server.settings import Limits, ServeSettings, parse_limits, parse_redis, parse_sources, parse_token

STOP_TIMEOUT = 5.0


def make_settings(sources: tuple[Any, ...], home: Path, **overrides: Any) -> ServeSettings:
    """Settings for a test: ``sources`` are front addresses (``URL`` or ``NAME=URL``) or one
    name -> URL mapping (default ``sim://``); both ports 0; ``overrides`` are ServeSettings fields
    (``limits`` may be a dict, ``tokens`` strings ``SECRET[:NAME]``, ``redis`` a URL)."""
    if len(sources) == 1 and isinstance(sources[0], Mapping):
        chosen = parse_sources(sources[0])
    else:
        chosen = parse_sources(list(sources) or ["sim://"])
    values: dict[str, Any] = {"listen": ("127.0.0.1", 0), "http": ("127.0.0.1", 0), "home": str(home)}
    values.update(overrides)
    limits = values.get("limits")
    # Tests open many loopback connections at once: the per-IP limit is off unless a test sets it.
    if isinstance(limits, Mapping):
        values["limits"] = parse_limits({"connection_rate": 0, **limits})
    elif limits is None:
        values["limits"] = Limits(connection_rate=0)
    values["tokens"] = tuple(parse_token(t) for t in values.get("tokens", ()))
    if values.get("redis") is not None:
        values["redis"] = parse_redis(values["redis"])
    unknown = set(values) - {f.name for f in dataclasses.fields(ServeSettings)}
    if unknown:
        raise TypeError(f"serve_factory: unknown setting(s) {sorted(unknown)}")
    return ServeSettings(sources=chosen, **values)


@pytest.fixture
def serve_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``serve_factory(*sources, **settings)`` -> a started Server (see :func:`make_settings`);
    every server made is stopped at teardown (bounded by ``STOP_TIMEOUT``)."""
    made: list[Server] = []

    def make(*sources: Any, start: bool = True, **overrides: Any) -> Server:
        settings = make_settings(sources, tmp_path / f"serve{len(made)}", **overrides)
        server = Server(settings)
        made.append(server)
        if start:
            server.start()
        return server

    yield make
    for server in reversed(made):
        server.stop(STOP_TIMEOUT)
