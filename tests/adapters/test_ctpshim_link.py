"""The ctpshim:// client's link against a scripted fake server: the faults a real server does not
make on purpose (silence, garbage, an ERROR at HELLO, a port that never answers)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Awaitable, Callable

import pytest

from ctpshim import errors
from ctpshim.adapters.ctpshim import CtpshimAdapter, ServerRefused
from ctpshim.wire import frames, handshake, structs

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def hello_of(reader: asyncio.StreamReader) -> frames.Frame:
    frame_reader = frames.FrameReader()
    while True:
        got = frame_reader.feed(await reader.read(65536))
        if got:
            return got[0]


def ack(heartbeat: float = 5.0) -> bytes:
    return frames.encode_frame(frames.FrameType.HELLO_ACK, handshake.HelloAck(
        layout=structs.LAYOUT_ID, heartbeat=heartbeat, server_time="2026-11-20T09:35:00", trading_day="20261120",
        source="sim", front_id=1, session_id=7).encode(), seq=1)


async def run(script: Script, client: Callable[[str], Awaitable[Any]]) -> Any:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await script(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await asyncio.wait_for(client(f"ctpshim://127.0.0.1:{port}"), 10)
    finally:
        server.close()


async def connected(front: str) -> CtpshimAdapter:
    adapter = CtpshimAdapter.from_url(front)
    await adapter.connect()
    return adapter


async def lost_reason(front: str) -> int:
    adapter = await connected(front)
    try:
        with pytest.raises(errors.UpstreamDisconnected) as caught:
            async for _ in adapter.ticks():
                pass
        return caught.value.reason
    finally:
        await adapter.close()


def test_an_error_at_hello_is_refused_with_the_servers_words():
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hello = handshake.Hello.decode((await hello_of(reader)).payload)
        assert hello.api == "md" and hello.token == "nope" and hello.layout == structs.LAYOUT_ID
        writer.write(frames.encode_frame(frames.FrameType.ERROR, handshake.ErrorInfo(
            handshake.E_BAD_TOKEN, "bad token").encode(), seq=1))
        await writer.drain()

    with pytest.raises(ServerRefused, match=r"refused the connection: bad token \(ErrorID -401\)"):
        asyncio.run(run(refuse, lambda front: connected(front + "?token=nope")))


def test_silence_after_the_handshake_is_a_heartbeat_timeout_8193():
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await hello_of(reader)
        writer.write(ack(heartbeat=0.1))
        await writer.drain()
        await asyncio.sleep(5)

    assert asyncio.run(run(silent, lambda front: lost_reason(front + "?timeout=0.3&heartbeat=0.1"))) == 0x2001


def test_the_client_heartbeats_at_the_servers_interval_and_waits_three_of_them():
    got: list[int] = []

    async def listening(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await hello_of(reader)
        writer.write(ack(heartbeat=0.2))
        await writer.drain()
        frame_reader = frames.FrameReader()
        while not got:
            got.extend(f.type for f in frame_reader.feed(await reader.read(65536)))
        await asyncio.sleep(5)

    async def client(front: str) -> Any:
        adapter = await connected(front + "?timeout=0.1")  # the server's 3 x 0.2 s wins over 0.1 s
        try:
            await asyncio.sleep(0.45)
            assert adapter.link is not None and not adapter.link.lost.done()
            for _ in range(100):  # bounded: 5 s
                if got:
                    return got
                await asyncio.sleep(0.05)
        finally:
            await adapter.close()

    assert asyncio.run(run(listening, client)) == [frames.FrameType.HEARTBEAT]


def test_garbage_after_the_handshake_is_8195_and_a_close_is_4097():
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await hello_of(reader)
        writer.write(ack())
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(b"\xff" * 40)
        await writer.drain()
        await asyncio.sleep(2)

    async def closes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await hello_of(reader)
        writer.write(ack())
        await writer.drain()

    assert asyncio.run(run(garbage, lost_reason)) == 0x2003
    assert asyncio.run(run(closes, lost_reason)) == 0x1001


def test_a_port_that_never_answers_hello_is_unreachable_with_a_hint():
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3)

    with pytest.raises(errors.UpstreamUnavailable, match="no answer to HELLO within 0.3 s"):
        asyncio.run(run(mute, lambda front: connected(front + "?connect_timeout=0.3")))


def test_nothing_listening_is_unreachable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(errors.UpstreamUnavailable, match="cannot connect"):
        asyncio.run(connected(f"ctpshim://127.0.0.1:{port}"))
