"""The per-client send policy (SERVER_PROTOCOLS.md 6.4): replies FIFO and never dropped, every
tick while the client keeps up, the latest per instrument while it is behind, cut off past the
reply budget or the write deadline.  The slow consumer is a real loopback socket that stops reading."""

from __future__ import annotations

import asyncio
import logging
import socket
from types import SimpleNamespace
from typing import Any

import pytest

from ctpshim.server.channel import ClientChannel
from ctpshim.server.fanout import EncodedTick
from ctpshim.server.metrics import Metrics
from ctpshim.server.settings import Limits

WAIT = 10.0
HIGH_WATER = 16 * 1024
INSTRUMENTS = [f"i{n}" for n in range(10)]
PAD = b"x" * 1000  # a tick's bytes: big enough to fill socket buffers quickly


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def tick(instrument: str, price: int) -> EncodedTick:
    return EncodedTick(SimpleNamespace(InstrumentID=instrument, LastPrice=price), instrument)


def encode(t: Any) -> bytes:
    return b"T%s:%d:%s\n" % (t.InstrumentID.encode(), t.LastPrice, PAD)


class Served:
    """One connection of a line protocol on a real loopback socket, sent through a ClientChannel."""

    def __init__(self, limits: Limits, *, sync: bool = False) -> None:
        self.limits = limits
        self.sync = sync  # send returns None when it need not wait (as the binary protocol's does)
        self.metrics = Metrics()
        self.blocked = asyncio.Event()  # set when a send waits for the transport to drain
        self.cut = asyncio.Event()
        self.cut_reason: str | None = None
        self.channel: ClientChannel | None = None
        self.ready = asyncio.Event()
        self.writer_task: asyncio.Task[None] | None = None

    async def start(self) -> tuple[asyncio.AbstractServer, socket.socket]:
        server = await asyncio.start_server(self._connected, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.setblocking(False)
        await asyncio.get_running_loop().sock_connect(client, ("127.0.0.1", port))
        await asyncio.wait_for(self.ready.wait(), WAIT)
        return server, client

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        writer.transport.set_write_buffer_limits(high=HIGH_WATER)

        async def send(replies: list[Any], ticks: list[EncodedTick]) -> None:
            data = [b"R%s\n" % r for r in replies] + [t.get("line", encode) for t in ticks]
            writer.write(b"".join(data))
            if writer.transport.get_write_buffer_size() > HIGH_WATER:
                self.blocked.set()
                await writer.drain()

        def send_sync(replies: list[Any], ticks: list[EncodedTick]) -> Any:
            data = [b"R%s\n" % r for r in replies] + [t.get("line", encode) for t in ticks]
            writer.write(b"".join(data))
            if writer.transport.get_write_buffer_size() > HIGH_WATER:
                self.blocked.set()
                return writer.drain()
            return None

        def on_cut_off(reason: str) -> None:
            self.cut_reason = reason
            writer.close()
            self.cut.set()

        self.channel = ClientChannel("slow", send_sync if self.sync else send, self.limits, self.metrics, on_cut_off)
        self.writer_task = asyncio.ensure_future(self.channel.run())
        self.ready.set()

    async def fill_until_blocked(self) -> int:
        """Ticks of every instrument until a send waits for the socket; returns the last price."""
        assert self.channel is not None
        price = 0
        for price in range(1, 100_000):
            for instrument in INSTRUMENTS:
                self.channel.tick(tick(instrument, price))
            await asyncio.sleep(0)  # the writer runs between batches, as it does between hub batches
            if self.blocked.is_set():
                return price
        raise AssertionError("the socket never filled up")


async def read_lines(client: socket.socket, done: Any) -> list[bytes]:
    """Read until ``done(lines)``, bounded by WAIT."""
    loop = asyncio.get_running_loop()
    buffer, lines = b"", []
    deadline = loop.time() + WAIT
    while not done(lines):
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError(f"timed out reading; {len(lines)} lines so far")
        data = await asyncio.wait_for(loop.sock_recv(client, 1 << 16), left)
        if not data:
            break
        buffer += data
        *complete, buffer = buffer.split(b"\n")
        lines.extend(complete)
    return lines


def parse(lines: list[bytes]) -> tuple[list[bytes], list[tuple[str, int]]]:
    replies = [line[1:] for line in lines if line.startswith(b"R")]
    ticks = [(part[0].decode(), int(part[1])) for part in (line[1:].split(b":") for line in lines if line.startswith(b"T"))]
    return replies, ticks


async def finish(served: Served, server: asyncio.AbstractServer, client: socket.socket) -> None:
    client.close()
    if served.channel is not None:
        served.channel.close()
    if served.writer_task is not None:
        await asyncio.wait([served.writer_task], timeout=WAIT)
    server.close()
    await server.wait_closed()


def test_a_client_that_keeps_up_gets_every_tick() -> None:
    async def main() -> None:
        served = Served(Limits())
        server, client = await served.start()
        channel = served.channel
        assert channel is not None
        sent: list[tuple[str, int]] = []
        received: list[bytes] = []
        try:
            for price in range(1, 51):
                batch = [(i, price) for i in INSTRUMENTS[:3]] * 2  # each instrument twice in one batch
                for instrument, p in batch:
                    channel.tick(tick(instrument, p))
                sent.extend(batch)
                received += await read_lines(client, lambda lines: len(lines) >= len(batch))
            _, ticks = parse(received)
            assert ticks == sent
            assert channel.delivered == len(sent) and channel.conflated == 0
            assert served.metrics.delivered == len(sent)
        finally:
            await finish(served, server, client)

    run(main())


def test_a_slow_client_gets_the_latest_tick_per_instrument_and_every_reply_in_order() -> None:
    async def main() -> None:
        served = Served(Limits())
        server, client = await served.start()
        channel = served.channel
        assert channel is not None
        try:
            first = await served.fill_until_blocked()
            assert channel.behind
            produced = first * len(INSTRUMENTS)
            for price in range(first + 1, first + 201):
                for instrument in INSTRUMENTS:
                    channel.tick(tick(instrument, price))
                    produced += 1
                channel.reply(b"r%d" % price, 3)
            last = first + 200
            assert channel.conflated > 0
            lines = await read_lines(client, lambda lines: sum(line.startswith(b"T") and b":%d:" % last in line
                                                               for line in lines) == len(INSTRUMENTS))
            replies, ticks = parse(lines)
            assert replies == [b"r%d" % p for p in range(first + 1, last + 1)]  # all of them, in order
            for instrument in INSTRUMENTS:
                prices = [p for i, p in ticks if i == instrument]
                assert prices == sorted(prices) and prices[-1] == last  # in order, ending with the latest
            assert len(ticks) < produced
            assert channel.delivered + channel.conflated == produced
            assert served.metrics.conflated == channel.conflated
        finally:
            await finish(served, server, client)

    run(main())


def test_ticks_given_as_lists_to_a_send_that_returns_none_when_written_keep_the_policy() -> None:
    async def main() -> None:
        served = Served(Limits(), sync=True)
        server, client = await served.start()
        channel = served.channel
        assert channel is not None
        try:
            price = 0
            for price in range(1, 100_000):
                channel.ticks([tick(i, price) for i in INSTRUMENTS])
                await asyncio.sleep(0)
                if served.blocked.is_set():
                    break
            assert channel.behind
            first = price
            for price in range(first + 1, first + 101):
                channel.ticks([tick(i, price) for i in INSTRUMENTS])
                channel.reply(b"r%d" % price, 3)
            last = first + 100
            assert channel.conflated > 0
            lines = await read_lines(client, lambda lines: sum(line.startswith(b"T") and b":%d:" % last in line
                                                               for line in lines) == len(INSTRUMENTS))
            replies, ticks = parse(lines)
            assert replies == [b"r%d" % p for p in range(first + 1, last + 1)]
            for instrument in INSTRUMENTS:
                prices = [p for i, p in ticks if i == instrument]
                assert prices[:first] == list(range(1, first + 1))  # every tick while it kept up
                assert prices == sorted(prices) and prices[-1] == last
            assert channel.delivered + channel.conflated == last * len(INSTRUMENTS)
        finally:
            await finish(served, server, client)

    run(main())


def test_a_client_past_the_reply_budget_is_cut_off_with_a_logged_reason(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        served = Served(Limits(reply_budget=4096))
        server, client = await served.start()
        channel = served.channel
        assert channel is not None
        try:
            await served.fill_until_blocked()
            for n in range(100):
                channel.reply(b"%d" % n, 100)
            await asyncio.wait_for(served.cut.wait(), WAIT)
            assert served.cut_reason is not None and "reply budget of 4096" in served.cut_reason
            assert channel.cut_off_reason == served.cut_reason
            assert served.metrics.cut_off == 1
            channel.reply(b"late", 4)  # ignored once cut off
            channel.tick(tick("i1", 1))
            assert channel.pending_ticks == 0 and channel.reply_bytes == 0
            await asyncio.wait([served.writer_task], timeout=WAIT)
            assert served.writer_task.done()
        finally:
            await finish(served, server, client)

    with caplog.at_level(logging.WARNING, logger="ctpshim.server"):
        run(main())
    assert any("client slow cut off" in r.getMessage() and "reply budget" in r.getMessage() for r in caplog.records)


def test_a_client_that_makes_no_write_progress_is_cut_off(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        served = Served(Limits(write_deadline=0.2))
        server, client = await served.start()
        try:
            await served.fill_until_blocked()
            await asyncio.wait_for(served.cut.wait(), WAIT)
            assert served.cut_reason == "no write progress for 0.2 s (limits.write_deadline)"
            # The connection is closed: the client reads what was buffered, then the end.
            loop = asyncio.get_running_loop()
            while await asyncio.wait_for(loop.sock_recv(client, 1 << 16), WAIT):
                pass
        finally:
            await finish(served, server, client)

    with caplog.at_level(logging.WARNING, logger="ctpshim.server"):
        run(main())
    assert any("no write progress" in r.getMessage() for r in caplog.records)


def test_replies_go_first_then_ticks_in_first_dirty_order() -> None:
    async def main() -> None:
        sends: list[tuple[list[Any], list[tuple[str, int]]]] = []
        gate = asyncio.Event()
        entered = asyncio.Event()

        async def send(replies: list[Any], ticks: list[EncodedTick]) -> None:
            sends.append((replies, [(t.instrument, t.tick.LastPrice) for t in ticks]))
            entered.set()
            await gate.wait()

        channel = ClientChannel("c", send, Limits(), Metrics(), lambda reason: None)
        writer = asyncio.ensure_future(channel.run())
        channel.tick(tick("a", 1))
        await asyncio.wait_for(entered.wait(), WAIT)  # the first send is in progress: now behind
        for name, price in [("b", 1), ("a", 2), ("c", 1), ("b", 2), ("a", 3)]:
            channel.tick(tick(name, price))
        channel.reply("r1", 10)
        channel.reply("r2", 10)
        assert channel.conflated == 2
        entered.clear()
        gate.set()
        await asyncio.wait_for(entered.wait(), WAIT)
        channel.close()
        await asyncio.wait([writer], timeout=WAIT)
        assert sends == [([], [("a", 1)]), (["r1", "r2"], [("b", 2), ("a", 3), ("c", 1)])]
        assert channel.delivered == 4 and channel.replies_sent == 2

    run(main())


def test_a_send_that_raises_cuts_that_client_off_only() -> None:
    async def main() -> None:
        reasons: list[str] = []
        told = asyncio.Event()

        async def send(replies: list[Any], ticks: list[EncodedTick]) -> None:
            raise ValueError("cannot encode")

        def on_cut_off(reason: str) -> None:
            reasons.append(reason)
            told.set()

        metrics = Metrics()
        channel = ClientChannel("bad", send, Limits(), metrics, on_cut_off)
        writer = asyncio.ensure_future(channel.run())
        channel.reply("r", 1)
        await asyncio.wait_for(told.wait(), WAIT)
        await asyncio.wait([writer], timeout=WAIT)
        assert writer.done() and writer.exception() is None
        assert reasons == ["sending failed: ValueError: cannot encode"] and metrics.cut_off == 1

    run(main())


def test_a_client_that_keeps_up_is_written_without_waking_its_writer_task() -> None:
    async def main() -> None:
        in_writer: list[bool] = []
        channel: ClientChannel

        async def send(replies: list[Any], ticks: list[EncodedTick]) -> None:
            in_writer.append(asyncio.current_task() is channel._task)

        channel = ClientChannel("fast", send, Limits(), Metrics(), lambda reason: None)
        writer = asyncio.ensure_future(channel.run())
        await asyncio.sleep(0)  # the writer is waiting
        for price in range(1, 51):
            channel.tick(tick("a", price))
            channel.tick(tick("b", price))
            channel.reply(b"r", 1)
            await asyncio.sleep(0)
        assert in_writer == [False] * 50  # one send per loop turn, from the loop's flush
        assert channel.delivered == 100 and channel.replies_sent == 50 and channel.conflated == 0
        channel.close()
        await asyncio.wait([writer], timeout=WAIT)

    run(main())


def test_a_send_that_waits_without_a_writer_task_is_still_cut_off_at_the_deadline() -> None:
    async def main() -> None:
        told = asyncio.Event()
        never = asyncio.get_running_loop().create_future()

        async def send(replies: list[Any], ticks: list[EncodedTick]) -> None:
            await never

        channel = ClientChannel("stuck", send, Limits(write_deadline=0.1), Metrics(), lambda reason: told.set())
        channel.tick(tick("a", 1))
        await asyncio.wait_for(told.wait(), WAIT)
        assert channel.cut_off_reason == "no write progress for 0.1 s (limits.write_deadline)"
        assert channel._inflight is None

    run(main())
