"""The HTTP endpoint: /health, /metrics, /symbols.json (read by tqsdk's own parser), the page."""

from __future__ import annotations

import asyncio
import json
import math
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from ctpshim.server import web
from tests.tqsdk_code import tqsdk_module

try:
    from .test_webctp import instruments, login, run, url
except ImportError:  # tests/server without __init__.py: pytest puts this directory on sys.path
    from test_webctp import instruments, login, run, url  # type: ignore[no-redef]

SIM = "sim://?hours=always&interval=0.02"


async def get(session: aiohttp.ClientSession, address: str) -> tuple[int, str, str]:
    async with session.get(address, timeout=aiohttp.ClientTimeout(total=10)) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


def test_health_and_metrics_count_the_clients(serve_factory: Any) -> None:
    server = serve_factory(SIM)
    a, = instruments(server, 1)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url(server, "/md/")) as ws:
                await login(ws)
                await ws.send_json({"MsgType": "SubscribeMarketData", "InstrumentID": [a]})
                for _ in range(200):
                    status, kind, text = await get(session, url(server, "/health"))
                    health = json.loads(text)
                    if health["delivered"] > 0:
                        break
                    await asyncio.sleep(0.02)
                assert status == 200 and kind.startswith("application/json")
                assert health["status"] == "ok" and health["sources"]["sim"]["up"] is True
                assert health["clients"] == {"webctp-md": 1} and health["subscriptions"] == 1
                status, kind, text = await get(session, url(server, "/metrics"))
                assert status == 200 and kind.startswith("text/plain")
                assert 'ctpshim_clients{protocol="webctp-md"} 1' in text
                assert "ctpshim_subscriptions 1" in text
                assert 'ctpshim_upstreams{source="sim",up="1"} 1' in text
                assert "ctpshim_ticks_delivered_total" in text

    run(scenario())


def test_symbols_json_is_what_tqsdk_reads(serve_factory: Any) -> None:
    server = serve_factory(SIM)
    ids = instruments(server, 20)

    async def scenario() -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            status, kind, text = await get(session, url(server, "/symbols.json"))
            assert status == 200 and kind.startswith("application/json")
            missing, _, _ = await get(session, url(server, "/symbols.json?source=nope"))
            assert missing == 404
            return json.loads(text)

    symbols = run(scenario())
    assert len(symbols) == len(ids)
    rb = next(v for k, v in symbols.items() if k.startswith("SHFE.rb"))
    assert rb["price_tick"] == 1.0 and rb["price_decs"] == 0 and rb["volume_multiple"] == 10
    assert rb["class"] == "FUTURE" and rb["exchange_id"] == "SHFE" and rb["expired"] is False
    assert rb["trading_time"] == {"day": [["09:00:00", "10:15:00"], ["10:30:00", "11:30:00"], ["13:30:00", "15:00:00"]],
                                  "night": [["21:00:00", "23:00:00"]]}
    au = next(v for k, v in symbols.items() if k.startswith("SHFE.au"))
    assert au["price_tick"] == 0.02 and au["price_decs"] == 2 and au["trading_time"]["night"] == [["21:00:00",
                                                                                                  "26:30:00"]]
    for key, value in symbols.items():
        assert key == value["instrument_id"] == f"{value['exchange_id']}.{value['ins_id']}"
        assert math.isfinite(value["expire_datetime"]) and value["margin"] > 0

    # tqsdk's own reader of an _ins_url (TqApi._fetch_symbol_info), on this very text
    tqsdk_api = tqsdk_module("tqsdk.api")
    address = url(server, "/symbols.json")
    quotes = tqsdk_api.TqApi._fetch_symbol_info(SimpleNamespace(_base_headers={}), address)
    key = f"SHFE.{rb['ins_id']}"
    assert quotes[key]["price_tick"] == 1.0 and quotes[key]["ins_class"] == "FUTURE"
    assert quotes[key]["trading_time"]["night"] == [["21:00:00", "23:00:00"]]


def test_page_and_static_files(serve_factory: Any) -> None:
    server = serve_factory(SIM)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            status, kind, text = await get(session, url(server, "/"))
            if (web.PAGE / "index.html").is_file():
                assert status == 200 and kind.startswith("text/html")
            else:
                assert status == 404 and "not installed" in text
            for name in ("app.js", "style.css"):
                status, _, _ = await get(session, url(server, f"/static/{name}"))
                assert status == (200 if (web.PAGE / name).is_file() else 404)
            status, _, _ = await get(session, url(server, "/static/../web.py"))
            assert status in (403, 404)

    run(scenario())


def test_http_endpoint_refuses_a_port_in_use(serve_factory: Any) -> None:
    first = serve_factory(SIM)
    with pytest.raises(OSError, match="cannot listen"):
        serve_factory(SIM, http=first.http_address)
