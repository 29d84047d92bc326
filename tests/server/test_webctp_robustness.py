"""Robustness of the WebSocket endpoints (SERVER_PROTOCOLS.md 6.3, 6.4): liveness, invalid UTF-8, huge
requests, floods, clients that never read."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from ctpshim.server import web, webctp
from tests.conftest import eventually

try:
    from .test_webctp import closed, instruments, login, recv, run, url
except ImportError:  # tests/server without __init__.py: pytest puts this directory on sys.path
    from test_webctp import closed, instruments, login, recv, run, url  # type: ignore[no-redef]

SIM = "sim://?hours=always&interval=0.02"
WAIT = 10.0


@pytest.mark.parametrize("path", ["/md/", "/diff"])
def test_a_peer_that_never_answers_pings_is_closed(serve_factory: Any, monkeypatch: pytest.MonkeyPatch,
                                                   path: str) -> None:
    monkeypatch.setattr(web, "WS_PING_INTERVAL", 0.3)  # a pong missing for half of it closes the socket
    server = serve_factory(SIM)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(url(server, path), autoping=False)  # pings come back as messages, unanswered
            started = time.monotonic()
            pings = 0
            for _ in range(1000):
                msg = await ws.receive(timeout=WAIT)
                if msg.type == aiohttp.WSMsgType.PING:
                    pings += 1
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                    break
            assert pings >= 1 and time.monotonic() - started < 5.0
            await eventually(lambda: not server.clients, what="the server to forget the silent peer")
            await ws.close()

    run(scenario())


@pytest.mark.parametrize("path", ["/md/", "/diff"])
def test_invalid_utf8_in_a_text_frame_closes_with_1007(serve_factory: Any, path: str) -> None:
    server = serve_factory(SIM)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url(server, path)) as ws:
                await ws.send_frame(b'{"MsgType": "\xff"}', aiohttp.WSMsgType.TEXT)
                await closed(ws)
                assert ws.close_code == 1007
            async with session.ws_connect(url(server, "/md/")) as other:  # the server goes on
                assert (await login(other))["RspInfo"]["ErrorID"] == 0

    run(scenario())


def test_a_huge_subscribe_request_is_answered_once_and_the_client_stays(serve_factory: Any) -> None:
    server = serve_factory(SIM, limits={"max_subscriptions": 50})
    a, = instruments(server, 1)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(url(server, "/md/")) as ws:
            await login(ws)
            ids = [f"x{n}" for n in range(90_000)]  # about 12 MB of replies if each were answered
            await ws.send_str(json.dumps({"MsgType": "SubscribeMarketData", "InstrumentID": ids, "RequestID": 5}))
            answer = await recv(ws)
            assert answer["MsgType"] == "RspSubMarketData" and answer["IsLast"] is True and answer["RequestID"] == 5
            assert answer["RspInfo"]["ErrorID"] == webctp.SUBSCRIPTION_LIMIT_ERROR.code
            assert "90000 instruments" in answer["RspInfo"]["ErrorMsg"]
            assert "limits.reply_budget" in answer["RspInfo"]["ErrorMsg"]
            await ws.send_str(json.dumps({"MsgType": "UnSubscribeMarketData", "InstrumentID": ids}))
            assert (await recv(ws))["RspInfo"]["ErrorID"] == webctp.SUBSCRIPTION_LIMIT_ERROR.code
            await ws.send_json({"MsgType": "SubscribeMarketData", "InstrumentID": [a]})
            assert (await recv(ws))["RspInfo"]["ErrorID"] == 0
            assert server.metrics.cut_off == 0

    run(scenario())


def test_a_huge_diff_ins_list_gets_a_bounded_notice(serve_factory: Any) -> None:
    server = serve_factory(SIM, limits={"max_subscriptions": 50})

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(url(server, "/diff")) as ws:
            bad = ",".join(f"x{n}" for n in range(100_000))  # no exchange prefix, every one
            good = ",".join(f"SHFE.rb{n}" for n in range(60_000))
            for ins_list in (bad, good):
                await ws.send_str(json.dumps({"aid": "subscribe_quote", "ins_list": ins_list}))
                await ws.send_json({"aid": "peek_message"})
                msg = await ws.receive(timeout=WAIT)
                assert msg.type == aiohttp.WSMsgType.TEXT and len(msg.data) < 20_000 + len(ins_list)
                packet = json.loads(msg.data)
                notices = [n for p in packet["data"] for n in p.get("notify", {}).values()]
                assert notices and all(len(n["content"]) < 2000 for n in notices)
            query = {"aid": "ins_query", "query_id": "q1", "query": "multi_symbol_info",
                     "variables": {"instrument_id": [f"SHFE.rb{n}" for n in range(60_000)]}}
            started = time.monotonic()
            await ws.send_str(json.dumps(query))
            await ws.send_json({"aid": "peek_message"})
            packet = json.loads((await ws.receive(timeout=WAIT)).data)
            answer = next(p["symbols"]["q1"] for p in packet["data"] if "symbols" in p)
            assert "error" in answer and "50" in answer["error"]
            assert time.monotonic() - started < 5.0

    run(scenario())


def test_a_flood_of_pongs_or_bad_json_is_rate_limited(serve_factory: Any) -> None:
    server = serve_factory(SIM, limits={"control_rate": 0.01, "control_burst": 3})

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            for flood in ('{"MsgType": "Pong"}', "{not json"):
                async with session.ws_connect(url(server, "/md/")) as ws:
                    for _ in range(20):
                        await ws.send_str(flood)
                    close = await closed(ws)
                    assert ws.close_code == 1008 and "control messages per second" in (close.extra or "")

    run(scenario())


@pytest.mark.parametrize("path", ["/md/", "/diff"])
def test_a_client_that_never_reads_is_cut_off_and_let_go_within_the_bound(serve_factory: Any, path: str) -> None:
    deadline = 0.5
    source = "sim://?hours=always&interval=0.01"
    if path == "/diff":  # one packet per peek: many instruments, so that they are big
        from ctpshim.ctp import clock, products
        from ctpshim.ctp.calendar import trading_day_of

        day = trading_day_of(clock.now())
        listed = [info.instrument_id for product in products.PRODUCTS.values()
                  for info in products.listed_contracts(product, day)][:400]
        source += "&instruments=" + ",".join(listed)
    server = serve_factory(source, limits={"write_deadline": deadline})
    ids = instruments(server, 400)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(url(server, path), max_msg_size=0, compress=0)
            if path == "/md/":
                await login(ws)
                await ws.send_json({"MsgType": "SubscribeMarketData", "InstrumentID": ids})
            else:
                await ws.send_json({"aid": "subscribe_quote", "ins_list": ",".join(f"X.{i}" for i in ids)})
                for _ in range(30_000):  # peeks over time (peeks while one waits count once), never reading
                    await ws.send_json({"aid": "peek_message"})
                    if server.metrics.cut_off:
                        break
                    await asyncio.sleep(0.001)
            await eventually(lambda: server.metrics.cut_off, 30, "the cut-off")
            cut = time.monotonic()
            # the server lets the socket go within the bound, though the client still reads nothing
            await eventually(lambda: not server.clients, deadline * 2 + 5, "the server to let the client go")
            assert time.monotonic() - cut < deadline * 2 + 5
            for _ in range(1_000_000):
                msg = await ws.receive(timeout=WAIT)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
            await ws.close()

    run(scenario(), timeout=120)
