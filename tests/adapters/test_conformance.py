"""The adapter conformance suite (:mod:`ctpshim.testing`) on every built-in adapter and the template.

``tcp://`` and ``ssl://`` are not here: they are no source but a pass-through to a real CTP front,
driven by openctp-ctp through the API's bridge backend (no connect/subscribe/ticks of their own);
tests/adapters/test_tcp.py runs them against a stand-in front.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator

import pytest

from ctpshim.adapters._template import TemplateAdapter
from ctpshim.adapters.base import Capabilities, verify_adapter_class
from ctpshim.ctp.market_data import blank_values, make_tick
from ctpshim.errors import AdapterContractError, UpstreamDisconnected
from ctpshim.testing import AdapterConformance, SilentAdapter


class TestSim(AdapterConformance):
    address = "sim://?instruments=rb2701,au2612&start=2026-11-20T09:00&seed=7&speed=max"
    instrument = "rb2701"
    other_instrument = "au2612"
    bad_fronts = ("sim://somewhere", "sim://?instruments=rb1901&start=2026-11-20T09:00")
    unreachable_front = "sim://?refuse=true"


class TestReplay(AdapterConformance):
    address = "replay://?speed=max&rebase=none"  # the bundled SHFE day
    instrument = "ru1901"
    bad_fronts = ("replay:///no/such/recording.parquet",)


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


_CLOSED_PORT = _closed_port()


class _FakeFeed(AdapterConformance):
    """A polled feed against a local fake upstream; advance() moves a quote one second on."""

    server: Any = None
    moves = 0

    def advance(self) -> None:
        type(self).moves += 1
        self.move(self.server, self.moves)

    def move(self, server: Any, n: int) -> None:
        raise NotImplementedError


class TestSina(_FakeFeed):
    instrument = "rb2701"
    unknown = "rb2799"  # a well-formed contract Sina answers an empty quote for
    bad_fronts = ("sina://?base_url=ftp://example.com",)
    unreachable_front = f"sina://?base_url=http://127.0.0.1:{_CLOSED_PORT}&timeout=2"

    @pytest.fixture
    def front(self) -> Iterator[str]:
        from ..fake_sina import FakeSina, sample

        server = type(self).server = FakeSina()
        quotes = sample("sina_nf_RB0_IF0_after_close_20260805.gbk.txt")
        server.quotes = {**quotes, "nf_RB2701": quotes["nf_RB0"]}  # the continuous series too, for probe()
        self.original = quotes["nf_RB0"]
        yield f"sina://?base_url={server.url}&interval=0.05"
        server.stop()

    def move(self, server: Any, n: int) -> None:
        server.quotes["nf_RB2701"] = self.original.replace(",150000,", f",1500{n % 60:02d},").replace(
            ",797857,", f",{797857 + n},")


class TestTencent(_FakeFeed):
    instrument = "600519"
    bad_fronts = ("tencent://?fallback_url=ftp://example.com",)
    unreachable_front = (f"tencent://?base_url=http://127.0.0.1:{_CLOSED_PORT}"
                         f"&fallback_url=http://127.0.0.1:{_CLOSED_PORT}&timeout=2")

    @pytest.fixture
    def front(self) -> Iterator[str]:
        from ..fake_sina import FakeSina, FakeTencent, tencent_sample

        server, fallback = FakeTencent(), FakeSina()
        type(self).server = server
        server.quotes = dict(tencent_sample("tencent_sh600519_intraday_20260806.gbk.txt"))
        self.original = server.quotes["sh600519"]
        yield f"tencent://?base_url={server.url}&fallback_url={fallback.url}&interval=0.05"
        server.stop()
        fallback.stop()

    def move(self, server: Any, n: int) -> None:
        server.quotes["sh600519"] = self.original.replace("~20260806104333~", f"~202608061043{34 + n % 26:02d}~")


class TestTemplate(AdapterConformance):
    address = "template://?instruments=rb2701,au2612&speed=max"
    adapter_class = TemplateAdapter
    instrument = "rb2701"
    other_instrument = "au2612"
    bad_fronts = ("template://somewhere", "template://?instruments=zz9999")
    unreachable_front = "template://?refuse=true"


# -- what the base class does once for every adapter ---------------------------------------------

class _Scripted(SilentAdapter):
    """ticks() yields what the test puts in its queue, and ends on None."""

    scheme = "scripted-base"

    def __init__(self, url: Any, settings: Any) -> None:
        super().__init__(url, settings)
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.started = False  # its own ticks() has begun (and waits, or spins, for the queue)
        self.closed = False

    async def ticks(self) -> AsyncIterator[Any]:
        try:
            self.started = True
            while (batch := await self.queue.get()) is not None:
                yield batch
        finally:
            self.closed = True


def _tick(instrument: str) -> Any:
    return make_tick(blank_values(instrument, "SHFE"))


async def _until(condition: Callable[[], bool], what: str, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0)


async def _next(iterator: Any, within: float = 5.0) -> list[str]:
    return [t.InstrumentID for t in await asyncio.wait_for(iterator.__anext__(), within)]


def test_an_owed_snapshot_goes_out_at_once_while_the_adapter_waits() -> None:
    async def scenario() -> None:
        adapter = TemplateAdapter.from_url("template://?instruments=rb2701&interval=60&speed=1")
        await adapter.connect()
        iterator = adapter.ticks()
        waiting = asyncio.ensure_future(iterator.__anext__())
        await asyncio.sleep(0)  # the adapter is now waiting for a subscription
        started = time.monotonic()
        await adapter.subscribe(["rb2701"])
        batch = await asyncio.wait_for(waiting, 5)
        assert [t.InstrumentID for t in batch] == ["rb2701"]
        assert time.monotonic() - started < 5  # not after the adapter's 60 s interval
        await iterator.aclose()

    asyncio.run(scenario())


def test_owed_snapshots_precede_the_next_batch_and_outlive_the_adapters_own_ticks() -> None:
    async def scenario() -> None:
        adapter = _Scripted.from_url("scripted-base://")
        iterator = adapter.ticks()
        adapter.queue.put_nowait([_tick("rb2701")])
        adapter.owe_snapshot([_tick("cu2612")])
        adapter.owe_snapshot([])  # nothing owed: nothing delivered
        assert await _next(iterator) == ["cu2612"]
        assert await _next(iterator) == ["rb2701"]
        adapter.queue.put_nowait(None)  # the adapter's own ticks end ...
        later = asyncio.ensure_future(iterator.__anext__())
        await _until(lambda: adapter.closed, "the adapter's own ticks() to end")
        for _ in range(10):  # turns for the wrapper to see that end
            await asyncio.sleep(0)
        assert not later.done()  # ... and the front stays connected and silent
        adapter.owe_snapshot([_tick("au2612")])
        assert [t.InstrumentID for t in await asyncio.wait_for(later, 5)] == ["au2612"]
        assert adapter.closed
        await iterator.aclose()

    asyncio.run(scenario())


def test_closing_the_ticks_iterator_closes_the_adapters_own_and_errors_pass_through() -> None:
    async def scenario() -> None:
        adapter = _Scripted.from_url("scripted-base://")
        iterator = adapter.ticks()
        waiting = asyncio.ensure_future(iterator.__anext__())
        await _until(lambda: adapter.started, "the adapter's ticks() to be waiting")
        waiting.cancel()  # the hub stops reading: the adapter's generator is finalised
        await asyncio.wait([waiting])
        assert adapter.closed

        class Dropping(_Scripted):
            async def ticks(self) -> AsyncIterator[Any]:
                yield [_tick("rb2701")]
                await asyncio.sleep(0.01)
                raise UpstreamDisconnected("dropped")

        dropping = Dropping.from_url("scripted-base://")
        iterator = dropping.ticks()
        assert await _next(iterator) == ["rb2701"]
        with pytest.raises(UpstreamDisconnected, match="dropped"):
            await _next(iterator)

    asyncio.run(scenario())


class _Spinning(_Scripted):
    """Gives the loop a turn (asyncio.sleep(0)) again and again, yielding nothing until told to."""

    async def ticks(self) -> AsyncIterator[Any]:
        try:
            self.started = True
            while self.queue.empty():
                await asyncio.sleep(0)
            yield self.queue.get_nowait()
        finally:
            self.closed = True


def test_an_adapter_that_only_gives_the_loop_turns_still_gets_owed_snapshots_out_and_can_be_cancelled() -> None:
    async def scenario() -> None:
        adapter = _Spinning.from_url("scripted-base://")
        iterator = adapter.ticks()
        waiting = asyncio.ensure_future(iterator.__anext__())
        await _until(lambda: adapter.started, "the adapter's ticks() to be waiting")
        adapter.owe_snapshot([_tick("cu2612")])
        assert [t.InstrumentID for t in await asyncio.wait_for(waiting, 5)] == ["cu2612"]
        adapter.queue.put_nowait([_tick("rb2701")])
        assert await _next(iterator) == ["rb2701"]

        spinning = _Spinning.from_url("scripted-base://")
        iterator = spinning.ticks()
        waiting = asyncio.ensure_future(iterator.__anext__())
        await _until(lambda: spinning.started, "the adapter's ticks() to be spinning")
        waiting.cancel()
        await asyncio.wait([waiting])
        assert waiting.cancelled() and spinning.closed

    asyncio.run(scenario())


def test_unknown_ids_are_warned_about_once_per_front_also_across_reconnects(caplog: pytest.LogCaptureFixture) -> None:
    first = _Scripted.from_url("scripted-base://")
    with caplog.at_level(logging.WARNING, logger="ctpshim.adapters"):
        assert first.warn_unknown(["zz1", "zz2", "zz1"], "not in the test's list") == ["zz1", "zz2"]
        assert first.warn_unknown(["zz2"]) == []
        second = _Scripted.from_url("scripted-base://")
        second.carry = first.carry  # the hub hands a reconnection the same carry
        assert second.warn_unknown(["zz1", "zz3"]) == ["zz3"]
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "scripted-base: zz1, zz2: not in the test's list; subscription accepted as CTP does, no ticks will come",
        "scripted-base: zz3: not an instrument this source knows; subscription accepted as CTP does, no ticks will come",
    ]


def test_a_pass_through_front_must_make_its_own_backend() -> None:
    with pytest.raises(AdapterContractError, match=r"does not implement open_backend \(capabilities.pass_through\)"):
        class Bridgeless(SilentAdapter):
            scheme = "bridgeless-test"
            capabilities = Capabilities(pass_through=True)

    class Bridged(SilentAdapter):
        scheme = "bridged-test"
        capabilities = Capabilities(pass_through=True)

        @classmethod
        def open_backend(cls, context: Any) -> Any:
            return None

    verify_adapter_class(Bridged)


def test_the_example_program_on_an_adapter_of_its_own_runs(tmp_path: Path) -> None:
    example = Path(__file__).parents[2] / "examples" / "own_adapter.py"
    result = subprocess.run([sys.executable, str(example), "4"], capture_output=True, text=True, timeout=60,
                            cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "trading day 20261120"
    assert [line.split()[:3] for line in lines[1:3]] == [["rb2701", "SHFE", "20261120"], ["au2612", "SHFE", "20261120"]]
