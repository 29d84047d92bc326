"""A source that goes down and comes back, seen by webctp and DIFF clients (H2's churn:// test front)."""

from __future__ import annotations

from typing import Any

import aiohttp

from ctpshim.runtime import io_loop
from tests.conftest import eventually

try:
    from .test_fanout import ChurnAdapter, churn  # noqa: F401 - the fixture
    from .test_webctp import login, run, until, url
except ImportError:  # tests/server without __init__.py: pytest puts this directory on sys.path
    from test_fanout import ChurnAdapter, churn  # type: ignore[no-redef]  # noqa: F401
    from test_webctp import login, run, until, url  # type: ignore[no-redef]


def on_loop(function: Any) -> None:
    io_loop.get_loop().call_soon_threadsafe(function)


def test_source_down_and_back_webctp_and_diff(serve_factory: Any, churn: Any, fast_reconnect: None) -> None:
    server = serve_factory("churn://")

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            md = await session.ws_connect(url(server, "/md/"))
            dif = await session.ws_connect(url(server, "/diff"))
            await login(md)
            await md.send_json({"MsgType": "SubscribeMarketData", "InstrumentID": ["rb2701"]})
            first = await until(md, lambda m: m["MsgType"] == "RtnDepthMarketData")
            assert first["DepthMarketData"]["LastPrice"] == 1000.0
            await dif.send_json({"aid": "subscribe_quote", "ins_list": "SHFE.rb2701"})
            await dif.send_json({"aid": "peek_message"})
            await dif.receive(timeout=10)
            broken = ChurnAdapter.made[-1]
            on_loop(broken.fail)
            down = await until(md, lambda m: m["MsgType"] == "FrontDisconnected")
            assert isinstance(down["Reason"], int) and down["Reason"] > 0
            notices: list[dict[str, Any]] = []
            for _ in range(20):
                await dif.send_json({"aid": "peek_message"})
                packet = (await dif.receive(timeout=10)).json()
                notices += [n for p in packet["data"] for n in p.get("notify", {}).values()]
                if notices:
                    break
            assert "went down" in notices[0]["content"] and notices[0]["level"] == "WARNING"
            # the feed reconnects and restores the subscription: ticks flow again, nothing to redo
            await eventually(lambda: len(ChurnAdapter.made) > 1 and "rb2701" in ChurnAdapter.made[-1].subscribed,
                             what="the feed to reconnect and subscribe again")
            on_loop(ChurnAdapter.made[-1].emit)
            again = await until(md, lambda m: m["MsgType"] == "RtnDepthMarketData"
                                and m["DepthMarketData"]["LastPrice"] > 1000.0)
            assert again["DepthMarketData"]["InstrumentID"] == "rb2701"
            for ws in (md, dif):
                await ws.close()

    run(scenario())
