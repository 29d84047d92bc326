"""webctp JSON on /md/: transcripts with aiohttp's WebSocket client against a real server."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any, Callable

import aiohttp
import pytest

from ctpshim.ctp.fields import load_spec
from ctpshim.runtime import io_loop
from ctpshim.server import web, webctp
from tests.conftest import eventually

SIM = "sim://?hours=always&interval=0.02"
WAIT = 10.0
SECRET = "s3cret-token"
DEPTH_MEMBERS = [m[0] for m in load_spec()["fields"]["CThostFtdcDepthMarketDataField"]]


def run(coro: Any, timeout: float = 60.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def refused_status(session: aiohttp.ClientSession, address: str, **options: Any) -> int:
    """The HTTP status of a WebSocket handshake the server refuses."""
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await session.ws_connect(address, **options)
    return refused.value.status


def url(server: Any, path: str) -> str:
    host, port = server.http_address
    return f"http://{host}:{port}{path}"


def _no_constants(name: str) -> Any:
    raise AssertionError(f"the server sent the non-JSON token {name}")


def strict(text: str) -> Any:
    return json.loads(text, parse_constant=_no_constants)


async def recv(ws: aiohttp.ClientWebSocketResponse, pings: bool = False) -> dict[str, Any]:
    """The next message (Pings skipped unless ``pings``)."""
    for _ in range(1000):
        msg = await ws.receive(timeout=WAIT)
        assert msg.type == aiohttp.WSMsgType.TEXT, f"expected a text frame, got {msg.type} {msg.data!r} {msg.extra!r}"
        message = strict(msg.data)
        if pings or message.get("MsgType") != "Ping":
            return message
    raise AssertionError("only Pings")


async def until(ws: aiohttp.ClientWebSocketResponse, found: Callable[[dict[str, Any]], bool],
                limit: int = 2000) -> dict[str, Any]:
    for _ in range(limit):
        message = await recv(ws)
        if found(message):
            return message
    raise AssertionError("the message never came")


async def closed(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    """Read until the server closes; the close message."""
    for _ in range(1000):
        msg = await ws.receive(timeout=WAIT)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return msg
    raise AssertionError("the server did not close")


def instruments(server: Any, count: int = 2) -> list[str]:
    async def ids() -> list[str]:
        feed = server.feed(None)
        assert await feed.wait_up(WAIT)
        return [i.instrument_id for i in feed.instruments()[:count]]

    return io_loop.submit(ids()).result(WAIT)


async def login(ws: aiohttp.ClientWebSocketResponse, **extra: Any) -> dict[str, Any]:
    await ws.send_json({"MsgType": "ReqUserLogin", "ReqUserLogin": {"UserID": "demo01", "Password": ""}, **extra})
    return await until(ws, lambda m: m["MsgType"] == "RspUserLogin")


def test_md_transcript_login_subscribe_ticks_unsubscribe(serve_factory: Any) -> None:
    server = serve_factory(SIM)
    a, b = instruments(server)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(url(server, "/md/")) as ws:
            first = await recv(ws, pings=True)
            assert first["MsgType"] == "Ping" and isinstance(first["Timestamp"], int)
            reply = await login(ws)
            assert reply["RspInfo"] == {"ErrorID": 0, "ErrorMsg": "CTP:正确"}
            assert reply["IsLast"] is True and "RequestID" not in reply  # login without RequestID
            assert reply["RspUserLogin"]["TradingDay"] == io_loop.submit(_day(server)).result(WAIT)
            await ws.send_json({"MsgType": "SubscribeMarketData", "InstrumentID": [a, b], "RequestID": 3})
            first_rsp = await recv(ws)
            second_rsp = await recv(ws)
            assert first_rsp == {"MsgType": "RspSubMarketData", "RspInfo": {"ErrorID": 0, "ErrorMsg": "CTP:正确"},
                                 "RequestID": 3, "SpecificInstrument": {"InstrumentID": a}}
            assert second_rsp["IsLast"] is True and second_rsp["SpecificInstrument"] == {"InstrumentID": b}
            seen: dict[str, dict[str, Any]] = {}
            while len(seen) < 2:
                message = await until(ws, lambda m: m["MsgType"] == "RtnDepthMarketData")
                body = message["DepthMarketData"]
                assert list(body) == sorted(DEPTH_MEMBERS)  # all 48, alphabetical
                assert set(message) == {"MsgType", "DepthMarketData"}
                seen[body["InstrumentID"]] = body
            assert set(seen) == {a, b}
            for body in seen.values():
                assert body["LastPrice"] > 0 and isinstance(body["Volume"], int)
                assert body["CurrDelta"] == 1.7976931348623157e308  # other doubles raw
                assert body["SettlementPrice"] == 0  # an absent price is 0
            await ws.send_json({"MsgType": "UnSubscribeMarketData", "InstrumentID": [a]})
            unsub = await until(ws, lambda m: m["MsgType"] == "RspUnSubMarketData")
            assert unsub == {"MsgType": "RspUnSubMarketData", "RspInfo": {"ErrorID": 0, "ErrorMsg": "CTP:正确"},
                             "IsLast": True, "SpecificInstrument": {"InstrumentID": a}}
            later = [(await until(ws, lambda m: m["MsgType"] == "RtnDepthMarketData"))["DepthMarketData"]["InstrumentID"]
                     for _ in range(12)]
            assert later[-8:] == [b] * 8  # at most a tick already queued before the unsubscribe
        await eventually(lambda: not server.clients, what="the server to forget the client")

    run(scenario())


async def _day(server: Any) -> str:
    return server.feed(None).trading_day()


def test_md_errors_400_401_404(serve_factory: Any) -> None:
    server = serve_factory(SIM)
    a, = instruments(server, 1)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(url(server, "/md/")) as ws:
            await ws.send_json({"MsgType": "SubscribeMarketData", "InstrumentID": [a]})
            before = await recv(ws)
            assert before["MsgType"] == "RspSubMarketData" and before["RspInfo"]["ErrorID"] == -401
            await ws.send_str("{not json")
            bad = await recv(ws)
            assert bad["MsgType"] == "" and bad["RspInfo"]["ErrorID"] == -400 and bad["RspInfo"]["ErrorMsg"]
            assert "Expecting" in bad["Detail"]
            await ws.send_bytes(b"\xff{}")  # a binary frame must be UTF-8 JSON too
            bad = await recv(ws)
            assert bad["RspInfo"]["ErrorID"] == -400 and "utf-8" in bad["Detail"]
            await ws.send_json({"MsgType": "ReqNoSuchThing", "RequestID": 4})
            unknown = await recv(ws)
            assert unknown["RspInfo"]["ErrorID"] == -404 and unknown["RequestID"] == 4
            await ws.send_bytes(json.dumps({"MsgType": "ReqUserLogin"}).encode())  # binary JSON is read as text
            assert (await recv(ws))["RspInfo"]["ErrorID"] == 0  # the connection survived all four errors
            await ws.send_json({"MsgType": "Pong"})  # accepted, never required
            await ws.send_json({"MsgType": "SubscribeMarketData", "InstrumentID": [a]})
            assert (await recv(ws))["RspInfo"]["ErrorID"] == 0

    run(scenario())


def test_md_ping_repeats_each_heartbeat(serve_factory: Any) -> None:
    server = serve_factory(SIM, limits={"heartbeat": 0.1})

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(url(server, "/md/")) as ws:
            stamps = [(await recv(ws, pings=True))["Timestamp"] for _ in range(3)]
            assert stamps == sorted(stamps)

    run(scenario())


def test_malformed_message_closes_only_that_client(serve_factory: Any) -> None:
    server = serve_factory(SIM)
    a, = instruments(server, 1)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            good = await session.ws_connect(url(server, "/md/"))
            bad = await session.ws_connect(url(server, "/md/"))
            for ws in (good, bad):
                await login(ws)
            await good.send_json({"MsgType": "SubscribeMarketData", "InstrumentID": [a]})
            await until(good, lambda m: m["MsgType"] == "RtnDepthMarketData")
            await bad.send_json({"MsgType": "SubscribeMarketData", "InstrumentID": "rb"[0:0] or 5})
            error = await recv(bad)
            assert error["RspInfo"]["ErrorID"] == -400 and "InstrumentID=5" in error["Detail"]
            close = await closed(bad)
            assert bad.close_code == 1008 and "malformed message" in (close.extra or "")
            for _ in range(3):  # the other client goes on
                await until(good, lambda m: m["MsgType"] == "RtnDepthMarketData")
            await good.close()

    run(scenario())


def test_tokens_in_url_header_and_first_message(serve_factory: Any) -> None:
    server = serve_factory(SIM, tokens=[f"{SECRET}:alice"])

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            assert await refused_status(session, url(server, "/md/?token=wrong-token")) == 403
            bearer = {"Authorization": "Bearer wrong-token"}
            assert await refused_status(session, url(server, "/md/"), headers=bearer) == 403
            async with session.ws_connect(url(server, f"/md/?token={SECRET}")) as ws:
                assert (await login(ws))["RspInfo"]["ErrorID"] == 0
                assert [c.name for c in server.clients] == ["alice"]
            async with session.ws_connect(url(server, "/md/"), headers={"Authorization": f"Bearer {SECRET}"}) as ws:
                assert (await login(ws))["RspInfo"]["ErrorID"] == 0
            async with session.ws_connect(url(server, "/md/")) as ws:
                assert (await login(ws, Token=SECRET))["RspInfo"]["ErrorID"] == 0
            async with session.ws_connect(url(server, "/md/")) as ws:  # md: the login's Password
                await ws.send_json({"MsgType": "ReqUserLogin", "ReqUserLogin": {"UserID": "u", "Password": SECRET}})
                assert (await recv(ws))["RspInfo"]["ErrorID"] == 0
            async with session.ws_connect(url(server, "/md/")) as ws:
                await ws.send_json({"MsgType": "ReqUserLogin", "ReqUserLogin": {"UserID": "u", "Password": "nope"}})
                refusal = await recv(ws)
                assert refusal["RspInfo"]["ErrorID"] == -401
                close = await closed(ws)
                assert ws.close_code == 1008 and close.extra == "bad token"
            async with session.ws_connect(url(server, "/md/")) as ws:
                await ws.send_json({"MsgType": "SubscribeMarketData", "InstrumentID": ["rb2701"]})
                assert (await recv(ws))["RspInfo"]["ErrorID"] == -401
                close = await closed(ws)
                assert ws.close_code == 1008 and "token is required" in close.extra

    run(scenario())


def test_rate_limit_answers_minus_3_then_closes(serve_factory: Any) -> None:
    server = serve_factory(SIM, limits={"control_rate": 0.01, "control_burst": 2})

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(url(server, "/md/")) as ws:
            await login(ws)  # one of the burst of two
            await ws.send_json({"MsgType": "SubscribeMarketData", "InstrumentID": []})
            assert (await recv(ws))["RspInfo"]["ErrorID"] == 0
            await ws.send_json({"MsgType": "SubscribeMarketData", "InstrumentID": [], "RequestID": 9})
            refused = await recv(ws)
            assert refused == {"MsgType": "RspSubMarketData", "RspInfo": {"ErrorID": -3, "ErrorMsg": webctp.ERRORS[-3]},
                               "RequestID": 9}
            for _ in range(3):
                await ws.send_json({"MsgType": "SubscribeMarketData", "InstrumentID": []})
            close = await closed(ws)
            assert ws.close_code == 1008 and "control messages per second" in close.extra

    run(scenario())


def test_subscription_cap_answers_an_error_per_extra_instrument(serve_factory: Any) -> None:
    server = serve_factory(SIM, limits={"max_subscriptions": 1})
    a, b = instruments(server)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(url(server, "/md/")) as ws:
            await login(ws)
            await ws.send_json({"MsgType": "SubscribeMarketData", "InstrumentID": [a, b]})
            first, second = await recv(ws), await recv(ws)
            assert first["RspInfo"]["ErrorID"] == 0
            assert second["RspInfo"]["ErrorID"] == webctp.SUBSCRIPTION_LIMIT_ERROR.code
            assert "more than 1 instruments" in second["RspInfo"]["ErrorMsg"]
            ticks = {(await until(ws, lambda m: m["MsgType"] == "RtnDepthMarketData"))["DepthMarketData"]["InstrumentID"]
                     for _ in range(6)}
            assert ticks == {a}

    run(scenario())


def test_late_subscriber_gets_the_snapshot_first(serve_factory: Any) -> None:
    server = serve_factory("sim://?hours=always&interval=5")  # a slow source: the snapshot comes from the feed
    a, = instruments(server, 1)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            early = await session.ws_connect(url(server, "/md/"))
            await login(early)
            await early.send_json({"MsgType": "SubscribeMarketData", "InstrumentID": [a]})
            tick = await until(early, lambda m: m["MsgType"] == "RtnDepthMarketData")
            async with session.ws_connect(url(server, "/md/")) as late:
                await login(late)
                await late.send_json({"MsgType": "SubscribeMarketData", "InstrumentID": [a]})
                assert (await recv(late))["MsgType"] == "RspSubMarketData"
                snapshot = await recv(late)
                assert snapshot["MsgType"] == "RtnDepthMarketData"
                assert snapshot["DepthMarketData"]["UpdateTime"] >= tick["DepthMarketData"]["UpdateTime"]
            await early.close()

    run(scenario())


def test_encoding_rules() -> None:
    from ctpshim.ctp.market_data import DBL_MAX, blank_values, make_tick

    values = blank_values("rb2701", "SHFE")
    tick = make_tick(values)
    body = webctp.depth_body(tick)
    assert body["LastPrice"] == 0 and body["BidPrice1"] == 0 and body["AveragePrice"] == 0
    assert body["CurrDelta"] == DBL_MAX
    strict(webctp.encode_tick(tick).decode("utf-8"))
    message = webctp.response("RspQryOrder", None, 0, False, Order=None)
    assert message == {"MsgType": "RspQryOrder", "RspInfo": None, "Order": None}
    assert not math.isnan(webctp._finite(float("nan")))
    assert web.close_reason("é" * 100).decode("utf-8") == "é" * 61


def test_slow_consumer_is_conflated_then_cut_off_with_the_reason(serve_factory: Any) -> None:
    server = serve_factory("sim://?hours=always&interval=0.01", limits={"write_deadline": 0.5})
    ids = instruments(server, 100)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(url(server, "/md/")) as ws:
            await login(ws)
            await ws.send_json({"MsgType": "SubscribeMarketData", "InstrumentID": ids})
            # not reading: the socket fills, ticks are conflated, then the cut-off
            await eventually(lambda: server.metrics.cut_off, 30, "the cut-off")
            assert server.metrics.cut_off == 1 and server.metrics.conflated > 0
            for _ in range(100_000):
                msg = await ws.receive(timeout=WAIT)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
            assert ws.close_code == 1008 and "limits.write_deadline" in msg.extra

    run(scenario(), timeout=90)


def test_server_stop_closes_the_clients(serve_factory: Any) -> None:
    server = serve_factory(SIM)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            md = await session.ws_connect(url(server, "/md/"))
            dif = await session.ws_connect(url(server, "/diff"))
            await login(md)
            await dif.send_json({"aid": "peek_message"})
            await dif.receive(timeout=WAIT)
            stopping = asyncio.ensure_future(asyncio.to_thread(server.stop))
            for ws in (md, dif):
                await closed(ws)
                assert ws.close_code == 1001
            await stopping

    run(scenario())


def test_a_message_past_max_frame_closes_that_connection(serve_factory: Any) -> None:
    server = serve_factory(SIM, limits={"max_frame": 4096})

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            for path in ("/md/", "/diff"):
                async with session.ws_connect(url(server, path)) as ws:
                    await ws.send_str(json.dumps({"MsgType": "SubscribeMarketData", "InstrumentID": ["x" * 5000]}))
                    await closed(ws)
                    assert ws.close_code == 1009

    run(scenario())


# ---- the tick path: one encoding per tick, frames written a chunk at a time ---------------------------------

def _frames(data: bytes) -> list[bytes]:
    """The payloads of unmasked final text frames back to back in ``data`` (all of it)."""
    out, at = [], 0
    while at < len(data):
        assert data[at] == 0x81 and not data[at + 1] & 0x80, "an unmasked, final text frame"
        size, at = data[at + 1] & 0x7F, at + 2
        if size == 126:
            size, at = int.from_bytes(data[at:at + 2], "big"), at + 2
        elif size == 127:
            size, at = int.from_bytes(data[at:at + 8], "big"), at + 8
        out.append(data[at:at + size])
        at += size
    assert at == len(data)
    return out


def test_text_frame_headers() -> None:
    for size in (0, 1, 125, 126, 127, 65535, 65536, 70000):
        payload = b"x" * size
        frame = webctp.text_frame(payload)
        assert _frames(frame) == [payload]
        assert len(frame) - size == (2 if size < 126 else 4 if size < 65536 else 10)


class _Transport:
    """A transport that keeps what is written (its buffer never drains by itself)."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.buffered = 0

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))
        self.buffered += len(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return 16 * 1024, 64 * 1024

    def is_closing(self) -> bool:
        return False


def _md_connection(transport: _Transport) -> Any:
    from types import SimpleNamespace

    from ctpshim.server.fanout import SharedBatches

    drains: list[int] = []

    async def drain() -> None:
        drains.append(transport.buffered)
        transport.buffered = 0

    connection = webctp.MdConnection.__new__(webctp.MdConnection)
    connection.ws = SimpleNamespace(closed=False)
    connection.transport = transport
    connection.stream = SimpleNamespace(drain=drain)
    connection.feed = SimpleNamespace(batches=SharedBatches())
    connection.drains = drains
    return connection


def _ticks(count: int) -> list[Any]:
    from ctpshim.ctp.market_data import blank_values, depth_index, make_tick
    from ctpshim.server.fanout import EncodedTick

    at = dict(depth_index())
    ticks = []
    for n in range(count):
        values = blank_values(f"rb27{n % 100:02d}", "SHFE")
        values[at["Volume"]] = n
        ticks.append(EncodedTick(make_tick(values)))
    return ticks


def test_send_writes_each_tick_as_its_own_frame_a_chunk_at_a_time() -> None:
    ticks = _ticks(600)  # about 1.2 KB each: three chunks
    transport = _Transport()
    connection = _md_connection(transport)
    reply = b'{"MsgType":"Ping","Timestamp":1}'
    pending = connection._send([reply, reply], ticks)
    assert pending is not None  # the buffer passed its high-water mark: the rest follows the drain
    assert len(transport.written) == 2  # the replies' chunk, then the first chunk of ticks
    asyncio.run(pending)
    assert connection.drains and all(size > 64 * 1024 for size in connection.drains)
    assert len(transport.written) == 1 + len(connection.feed.batches.get(webctp.FRAMES_FORMAT, ticks,
                                                                         webctp.tick_frames))
    payloads = _frames(b"".join(transport.written))
    assert payloads[:2] == [reply, reply]
    messages = [strict(p.decode("utf-8")) for p in payloads[2:]]
    assert [m["DepthMarketData"]["Volume"] for m in messages] == list(range(600))  # every tick, in order
    assert all(set(m) == {"MsgType", "DepthMarketData"} for m in messages)
    assert all(len(chunk) < webctp.CHUNK_BYTES + 2000 for chunk in transport.written)

    # a second client handed the same ticks writes the very same chunks (made once)
    other = _Transport()
    second = _md_connection(other)
    second.feed = connection.feed
    pending = second._send([], ticks)
    if pending is not None:
        asyncio.run(pending)
    assert other.written == transport.written[1:]


def test_send_stops_when_the_socket_closed_while_draining() -> None:
    transport = _Transport()
    connection = _md_connection(transport)
    pending = connection._send([], _ticks(600))
    assert pending is not None and len(transport.written) == 1
    connection.ws.closed = True  # closed (its close frame written) while the drain was awaited
    asyncio.run(pending)
    assert len(transport.written) == 1  # no data frame after the close frame


def test_each_tick_is_encoded_once_for_every_client(serve_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    encoded: list[Any] = []
    original = webctp.encode_tick

    def counting(tick: Any) -> bytes:
        encoded.append(tick)
        return original(tick)

    monkeypatch.setattr(webctp, "encode_tick", counting)
    server = serve_factory("sim://?hours=always&interval=0.02")
    ids = instruments(server, 20)

    async def scenario() -> list[list[tuple[Any, ...]]]:
        async with aiohttp.ClientSession() as session:
            sockets = [await session.ws_connect(url(server, "/md/")) for _ in range(3)]
            for ws in sockets:
                await login(ws)
                await ws.send_json({"MsgType": "SubscribeMarketData", "InstrumentID": ids})
            seen: list[list[tuple[Any, ...]]] = []
            for ws in sockets:
                mine = []
                while len(mine) < 200:
                    body = (await until(ws, lambda m: m["MsgType"] == "RtnDepthMarketData"))["DepthMarketData"]
                    mine.append((body["InstrumentID"], body["UpdateTime"], body["UpdateMillisec"], body["Volume"]))
                seen.append(mine)
            for ws in sockets:
                await ws.close()
            return seen

    seen = run(scenario())
    assert len(encoded) == len({id(tick) for tick in encoded})  # no tick encoded twice
    received = sum(len(s) for s in seen)
    assert len(encoded) < received  # shared: three clients, (about) one encoding per tick
    for mine in seen:  # per instrument, the ticks come in the source's order
        for instrument in ids:
            volumes = [v for i, _t, _m, v in mine if i == instrument]
            assert volumes == sorted(volumes)
