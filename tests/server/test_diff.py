"""TianQin's DIFF on /diff: every packet the server sends goes through tqsdk's own merge code
(tqsdk.diff._merge_diff with a prototype built as TqApi builds its own), and the merged quotes
must equal what the source sent."""

from __future__ import annotations

import asyncio
import copy
import json
import math
from typing import Any

import aiohttp
import pytest

from ctpshim.ctp.market_data import DBL_MAX, blank_values, depth_index, make_tick, present_price
from ctpshim.runtime import io_loop
from ctpshim.server import diff
from ctpshim.server.fanout import EncodedTick
from tests.conftest import eventually
from tests.tqsdk_code import tqsdk_module

try:
    from .test_webctp import closed, instruments, refused_status, run, strict, url
except ImportError:  # tests/server without __init__.py: pytest puts this directory on sys.path
    from test_webctp import closed, instruments, refused_status, run, strict, url  # type: ignore[no-redef]

tqsdk_diff = tqsdk_module("tqsdk.diff")
tqsdk_objs = tqsdk_module("tqsdk.objs")
Entity = tqsdk_module("tqsdk.entity").Entity

SIM = "sim://?hours=always&interval=0.02"
WAIT = 10.0
SECRET = "s3cret-token"
PRICES = {"last_price": "LastPrice", "highest": "HighestPrice", "lowest": "LowestPrice", "open": "OpenPrice",
          "close": "ClosePrice", "settlement": "SettlementPrice", "pre_close": "PreClosePrice",
          "pre_settlement": "PreSettlementPrice", "upper_limit": "UpperLimitPrice", "lower_limit": "LowerLimitPrice"}
PRICES.update({f"{side}_price{n}": f"{name}Price{n}" for n in range(1, 6) for side, name in (("ask", "Ask"),
                                                                                           ("bid", "Bid"))})
VOLUMES = {"volume": "Volume", "open_interest": "OpenInterest", "pre_open_interest": "PreOpenInterest"}
VOLUMES.update({f"{side}_volume{n}": f"{name}Volume{n}" for n in range(1, 6) for side, name in (("ask", "Ask"),
                                                                                              ("bid", "Bid"))})


class TqView:
    """A client snapshot merged exactly as TqApi merges what its md connection receives."""

    def __init__(self) -> None:
        self.prototype = {
            "quotes": {"#": tqsdk_objs.Quote(None)},
            "klines": {"*": {"*": {"data": {"@": tqsdk_objs.Kline(None)}}}},
            "ticks": {"*": {"data": {"@": tqsdk_objs.Tick(None)}}},
        }
        self.data = Entity()
        self.data._instance_entity([])

    def merge(self, packet: dict[str, Any]) -> None:
        assert packet["aid"] == "rtn_data"
        for patch in copy.deepcopy(packet["data"]):
            tqsdk_diff._merge_diff(self.data, patch, self.prototype, persist=False, reduce_diff=True)


def no_nulls(value: Any, path: str = "") -> None:
    if value is None:
        raise AssertionError(f"null at {path}: tqsdk would keep the stale value")
    if isinstance(value, dict):
        for key, item in value.items():
            no_nulls(item, f"{path}.{key}")
    elif isinstance(value, list):
        for n, item in enumerate(value):
            no_nulls(item, f"{path}[{n}]")


def same(merged: Any, source: float) -> bool:
    price = present_price(source)
    if price is None:
        return isinstance(merged, float) and math.isnan(merged)
    return merged == price


def check_quote(quote: Any, tick: Any, divisor: float) -> None:
    """The merged tqsdk quote against the CTP tick the server encoded."""
    for key, member in PRICES.items():
        assert same(quote[key], getattr(tick, member)), (key, quote[key], getattr(tick, member))
    for key, member in VOLUMES.items():
        assert quote[key] == int(getattr(tick, member)), (key, quote[key], getattr(tick, member))
    assert same(quote["average"], tick.AveragePrice) if present_price(tick.AveragePrice) is None else \
        abs(quote["average"] - tick.AveragePrice / divisor) < 1e-9
    assert quote["amount"] == tick.Turnover
    day = tick.ActionDay
    millis = f"{tick.UpdateMillisec * 1000:06d}"
    assert quote["datetime"] == f"{day[:4]}-{day[4:6]}-{day[6:]} {tick.UpdateTime}.{millis}"


class Recorder:
    """Which ticks each packet carried (the server's view), in send order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: list[dict[str, Any]] = []
        original = diff.DiffConnection._packet
        recorder = self

        def packet(connection: diff.DiffConnection) -> Any:
            ticks = {symbol: encoded.tick for symbol, encoded in connection.pending_quotes.items()}
            result = original(connection)
            if result is not None:
                recorder.sent.append(ticks)
            return result

        monkeypatch.setattr(diff.DiffConnection, "_packet", packet)


async def receive(ws: aiohttp.ClientWebSocketResponse, timeout: float = WAIT) -> dict[str, Any]:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
    packet = strict(msg.data)
    assert packet["aid"] == "rtn_data" and isinstance(packet["data"], list)
    no_nulls(packet)
    return packet


async def peek(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    await ws.send_json({"aid": "peek_message"})
    return await receive(ws)


def symbols_of(server: Any, count: int = 2) -> tuple[list[str], list[str]]:
    ids = instruments(server, count)
    return ids, [f"SHFE.{i}" if i[:2] in ("rb", "au", "cu") else f"X.{i}" for i in ids]


def test_every_packet_merges_in_tqsdk_to_what_the_source_sent(serve_factory: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder(monkeypatch)
    server = serve_factory(SIM)
    ids, symbols = symbols_of(server)

    async def scenario() -> None:
        view = TqView()
        async with aiohttp.ClientSession() as session, session.ws_connect(url(server, "/diff")) as ws:
            first = await peek(ws)
            view.merge(first)
            assert view.data["mdhis_more_data"] is False  # tqsdk's start-up barrier
            await ws.send_json({"aid": "subscribe_quote", "ins_list": ",".join(symbols)})
            packets = 0
            checked: set[str] = set()
            while packets < 25 or len(checked) < 2:
                packet = await peek(ws)
                view.merge(packet)
                packets += 1
                if packets > 500:
                    raise AssertionError("quotes never came for both instruments")
                assert view.data.get("ins_list") == ",".join(symbols)
                ticks = recorder.sent[len(recorder.sent) - 1] if recorder.sent else {}
                for symbol, tick in ticks.items():
                    quote = view.data["quotes"][symbol]
                    assert quote["instrument_id"] == symbol
                    assert quote["price_tick"] > 0 and quote["volume_multiple"] > 0 and quote["ins_class"] == "FUTURE"
                    check_quote(quote, tick, quote["volume_multiple"] if quote["exchange_id"] != "CZCE" else 1)
                    checked.add(symbol)
            assert checked == set(symbols)
            assert math.isnan(view.data["quotes"][symbols[0]]["settlement"])  # "-" became NaN

    run(scenario())


def test_absent_numbers_travel_as_dash_and_merge_to_nan() -> None:
    values = blank_values("rb2701", "SHFE")
    index = depth_index()
    values[index["ActionDay"]], values[index["UpdateTime"]], values[index["UpdateMillisec"]] = "20261203", "21:00:01", 500
    tick = make_tick(values)
    quote = diff.quote_of(tick)
    assert quote["last_price"] == "-" and quote["bid_price1"] == "-" and quote["average"] == "-"
    assert quote["volume"] == 0 and quote["datetime"] == "2026-12-03 21:00:01.500000"
    view = TqView()
    view.merge({"aid": "rtn_data", "data": [{"quotes": {"SHFE.rb2701": dict(quote)}}]})
    merged = view.data["quotes"]["SHFE.rb2701"]
    assert math.isnan(merged["last_price"]) and math.isnan(merged["ask_price5"]) and merged["ask_volume5"] == 0
    assert DBL_MAX not in quote.values()
    json.dumps(quote, allow_nan=False)
    assert EncodedTick(tick).get("diff", diff.quote_of) == quote


def _tick(last: float, volume: int) -> EncodedTick:
    values = blank_values("rb2701", "SHFE")
    index = depth_index()
    values[index["ActionDay"]], values[index["UpdateTime"]], values[index["UpdateMillisec"]] = "20261203", "21:00:01", 0
    values[index["LastPrice"]], values[index["Volume"]] = last, volume
    return EncodedTick(make_tick(values))


def test_quote_patches_are_made_once_for_every_client_in_the_same_state() -> None:
    first, second = _tick(3100.0, 5), _tick(3101.0, 5)
    opening = diff.quote_patch("SHFE.rb2701", None, first)
    symbol, _, body = opening.partition(":")
    assert json.loads(symbol) == "SHFE.rb2701"
    full = json.loads(body)
    assert full["instrument_id"] == "SHFE.rb2701" and full["price_tick"] == 1.0 and full["last_price"] == 3100.0
    assert diff.quote_patch("SHFE.rb2701", None, first) is opening  # the next client in that state: the same text
    change = diff.quote_patch("SHFE.rb2701", first, second)
    assert json.loads("{" + change + "}") == {"SHFE.rb2701": {"last_price": 3101.0}}
    assert diff.quote_patch("SHFE.rb2701", first, second) is change
    same = EncodedTick(second.tick)
    assert diff.quote_patch("SHFE.rb2701", second, same) == ""  # nothing changed: no member
    assert diff.quote_patch("DCE.x", first, second).startswith('"DCE.x":')  # the client's own symbol


def test_packet_text_is_the_merge_patch_of_quotes_then_the_rest() -> None:
    from types import SimpleNamespace

    connection = diff.DiffConnection.__new__(diff.DiffConnection)
    metrics = SimpleNamespace(delivered=0)
    connection.server = SimpleNamespace(metrics=metrics)
    connection.info = SimpleNamespace(delivered=0)
    connection.sent = {}
    connection.pending = {"mdhis_more_data": False, "ins_list": "SHFE.rb2701"}
    first, second = _tick(3100.0, 5), _tick(3100.0, 6)
    connection.pending_quotes = {"SHFE.rb2701": first}
    packet = strict(connection._packet())
    assert packet["aid"] == "rtn_data" and packet["data"][1] == {"mdhis_more_data": False, "ins_list": "SHFE.rb2701"}
    assert packet["data"][0]["quotes"]["SHFE.rb2701"]["volume"] == 5
    connection.pending_quotes = {"SHFE.rb2701": second}
    assert strict(connection._packet()) == {"aid": "rtn_data", "data": [{"quotes": {"SHFE.rb2701": {"volume": 6}}}]}
    connection.pending_quotes = {"SHFE.rb2701": EncodedTick(second.tick)}
    assert connection._packet() is None  # a tick that changed nothing, nothing else waiting
    assert metrics.delivered == 3


def test_subscribe_replaces_the_set_and_peek_long_polls(serve_factory: Any) -> None:
    server = serve_factory(SIM)
    ids, symbols = symbols_of(server)

    async def feed_ids() -> frozenset[str]:
        feed = server.feed(None)
        return frozenset(i for c in feed.clients() for i in feed.subscriptions(c))

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(url(server, "/diff")) as ws:
            await ws.send_json({"aid": "subscribe_quote", "ins_list": ",".join(symbols)})
            await peek(ws)
            assert io_loop.submit(feed_ids()).result(WAIT) == set(ids)
            await ws.send_json({"aid": "subscribe_quote", "ins_list": symbols[1]})
            for _ in range(100):
                packet = await peek(ws)
                roots = {k: v for patch in packet["data"] for k, v in patch.items()}
                if roots.get("ins_list") == symbols[1]:
                    break
            assert io_loop.submit(feed_ids()).result(WAIT) == {ids[1]}
            # no peek, no packet: the changes wait on the server, merged
            with pytest.raises(asyncio.TimeoutError):
                await ws.receive(timeout=0.3)
            info = server.clients[0]
            await eventually(lambda: info.conflated > 0, what="a conflated quote")
            packet = await peek(ws)
            quotes = [p["quotes"] for p in packet["data"] if "quotes" in p]
            assert quotes and set(quotes[0]) == {symbols[1]}

    run(scenario())


def test_errors_come_as_notify_and_malformed_closes(serve_factory: Any) -> None:
    server = serve_factory(SIM, limits={"max_subscriptions": 1})
    ids, symbols = symbols_of(server)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url(server, "/diff")) as ws:
                await ws.send_json({"aid": "subscribe_quote", "ins_list": f"{ids[0]},{symbols[0]},{symbols[1]}"})
                await ws.send_json({"aid": "no_such_command"})
                notices: dict[str, Any] = {}
                for _ in range(50):
                    packet = await peek(ws)
                    for patch in packet["data"]:
                        notices.update(patch.get("notify", {}))
                    if len(notices) >= 3:
                        break
                texts = " | ".join(n["content"] for n in notices.values())
                assert "no exchange prefix" in texts and "limits.max_subscriptions" in texts
                assert "'no_such_command' is not supported" in texts
                assert all(n["type"] == "MESSAGE" and n["level"] in ("WARNING", "ERROR") for n in notices.values())
            async with session.ws_connect(url(server, "/diff")) as ws:
                await ws.send_str("not json")
                packet = await receive(ws)
                assert "not JSON" in packet["data"][0]["notify"]["close"]["content"]
                close = await closed(ws)
                assert ws.close_code == 1008 and "malformed packet" in close.extra
            async with session.ws_connect(url(server, "/diff")) as ws:
                await ws.send_json({"no": "aid"})
                await closed(ws)
                assert ws.close_code == 1008
            async with session.ws_connect(url(server, "/diff")) as ws:
                await ws.send_bytes(b'{"aid": "peek_message"}')  # binary JSON is read as text
                assert (await receive(ws))["data"] == [{"mdhis_more_data": False}]
                await ws.send_bytes(b"\xff")
                packet = await receive(ws)
                assert "not UTF-8" in packet["data"][0]["notify"]["close"]["content"]
                close = await closed(ws)
                assert ws.close_code == 1008 and "malformed packet: not UTF-8" in close.extra

    run(scenario())


def test_rate_limit_notifies_then_closes(serve_factory: Any) -> None:
    server = serve_factory(SIM, limits={"control_rate": 0.01, "control_burst": 1})

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(url(server, "/diff")) as ws:
            await ws.send_json({"aid": "subscribe_quote", "ins_list": ""})
            await ws.send_json({"aid": "subscribe_quote", "ins_list": ""})
            packet = await peek(ws)
            notices = [n for p in packet["data"] for n in p.get("notify", {}).values()]
            assert notices and notices[0]["code"] == diff.RATE_LIMIT_CODE
            for _ in range(3):
                await ws.send_json({"aid": "subscribe_quote", "ins_list": ""})
            close = await closed(ws)
            assert ws.close_code == 1008 and "commands per second" in close.extra

    run(scenario())


def test_tokens_query_or_auth_packet_and_bearer_ignored(serve_factory: Any) -> None:
    server = serve_factory(SIM, tokens=[f"{SECRET}:tq"])

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            assert await refused_status(session, url(server, "/diff?token=wrong-token")) == 403
            shinny = {"Authorization": "Bearer a-shinny-jwt"}  # tqsdk's header: not our token
            async with session.ws_connect(url(server, f"/diff?token={SECRET}"), headers=shinny) as ws:
                assert (await peek(ws))["data"] == [{"mdhis_more_data": False}]
                assert [c.name for c in server.clients] == ["tq"]
            async with session.ws_connect(url(server, "/diff")) as ws:
                await ws.send_json({"aid": "auth", "token": SECRET})
                assert (await peek(ws))["data"] == [{"mdhis_more_data": False}]
            async with session.ws_connect(url(server, "/diff"), headers=shinny) as ws:
                await ws.send_json({"aid": "peek_message"})
                packet = await receive(ws)
                assert "token is required" in packet["data"][0]["notify"]["close"]["content"]
                await closed(ws)
                assert ws.close_code == 1008

    run(scenario())


def test_set_chart_ticks_and_minute_bars_merge_in_tqsdk(serve_factory: Any) -> None:
    server = serve_factory(SIM)
    ids, symbols = symbols_of(server, 1)
    symbol = symbols[0]

    async def scenario() -> None:
        view = TqView()
        async with aiohttp.ClientSession() as session, session.ws_connect(url(server, "/diff")) as ws:
            await ws.send_json({"aid": "set_chart", "chart_id": "k", "ins_list": symbol,
                                "duration": diff.MINUTE_NS, "view_width": 10})
            await ws.send_json({"aid": "set_chart", "chart_id": "t", "ins_list": symbol, "duration": 0,
                                "view_width": 10})
            await ws.send_json({"aid": "set_chart", "chart_id": "d", "ins_list": symbol, "duration": 86400 * 10**9})
            notices: list[str] = []
            for _ in range(500):
                packet = await peek(ws)
                view.merge(packet)
                notices += [n["content"] for p in packet["data"] for n in p.get("notify", {}).values()]
                ticks = view.data.get("ticks", {}).get(symbol, {})
                if ticks.get("last_id", -1) >= 3:
                    break
            assert any("is not served" in n for n in notices)
            bars = view.data["klines"][symbol][str(diff.MINUTE_NS)]
            bar = bars["data"][str(bars["last_id"])]
            assert bar["low"] <= bar["open"] <= bar["high"] and bar["low"] <= bar["close"] <= bar["high"]
            assert bar["datetime"] % diff.MINUTE_NS == 0 and bar["volume"] >= 0
            series = view.data["ticks"][symbol]
            row = series["data"][str(series["last_id"])]
            assert row["last_price"] > 0 and row["datetime"] > bar["datetime"] - 1
            assert view.data["charts"]["k"]["right_id"] == bars["last_id"]
            assert view.data["charts"]["t"]["ready"] is True

    run(scenario())


def test_what_waits_for_a_client_that_does_not_peek_stays_bounded(serve_factory: Any) -> None:
    server = serve_factory(SIM, limits={"control_rate": 10000.0, "control_burst": 1000})
    ids, symbols = symbols_of(server, 1)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(url(server, "/diff")) as ws:
            await ws.send_json({"aid": "set_chart", "chart_id": "t", "ins_list": symbols[0], "duration": 0,
                                "view_width": 3})
            for _ in range(120):
                await ws.send_json({"aid": "no_such_command"})
            def ten_ticks() -> bool:
                chart = server.clients[0].subscriber.charts.get("t") if server.clients else None
                return chart is not None and chart.last_id >= 10

            await eventually(ten_ticks, 20, "ten ticks on the chart")
            packet = await peek(ws)
            view = TqView()
            view.merge(packet)
            series = view.data["ticks"][symbols[0]]
            assert series["last_id"] >= 10 and len(series["data"]) == 3
            assert sorted(int(k) for k in series["data"]) == list(range(series["last_id"] - 2, series["last_id"] + 1))
            notices = [n for p in packet["data"] for n in p.get("notify", {}).values()]
            assert len(notices) == diff.MAX_PENDING_NOTICES

    run(scenario())


def test_a_websockets_client_as_tqsdk_connects(serve_factory: Any) -> None:
    """tqsdk's connect.py: websockets.connect(url, max_size=None) with its three headers and
    permessage-deflate offered (the websockets default)."""
    websockets = pytest.importorskip("websockets")
    server = serve_factory(SIM)
    ids, symbols = symbols_of(server, 1)
    headers = {"User-Agent": "tqsdk-python 3.10.4", "Accept": "application/json",
               "Authorization": "Bearer a-shinny-jwt"}

    async def scenario() -> None:
        view = TqView()
        address = url(server, "/diff").replace("http://", "ws://")
        async with websockets.connect(address, max_size=None, additional_headers=headers) as ws:
            assert "permessage-deflate" in (ws.response.headers.get("Sec-WebSocket-Extensions") or "")
            await ws.send(json.dumps({"aid": "subscribe_quote", "ins_list": symbols[0]}))
            for _ in range(200):
                await ws.send(json.dumps({"aid": "peek_message"}))
                view.merge(strict(await asyncio.wait_for(ws.recv(), WAIT)))
                if view.data.get("quotes", {}).get(symbols[0], {}).get("datetime"):
                    break
            quote = view.data["quotes"][symbols[0]]
            assert quote["last_price"] > 0 and quote["price_tick"] > 0

    run(scenario())


def test_ins_query_as_tqsdk_sends_it_is_answered_in_its_format(serve_factory: Any) -> None:
    tqsdk_utils = tqsdk_module("tqsdk.utils")
    tqsdk_symbols = tqsdk_module("tqsdk.utils_symbols")
    server = serve_factory(SIM)
    ids, symbols = symbols_of(server, 2)
    batch = tqsdk_utils._query_for_quote(symbols + ["SHFE.zz9999"], set())  # ids inside the GraphQL text
    single = tqsdk_utils._query_for_quote([symbols[0]], {symbols[0]})  # ids in variables
    queries = batch + single

    async def scenario() -> None:
        view = TqView()
        async with aiohttp.ClientSession() as session, session.ws_connect(url(server, "/diff")) as ws:
            for query in queries:
                await ws.send_json(query)
            for _ in range(50):
                view.merge(await peek(ws))
                if all(q["query_id"] in view.data.get("symbols", {}) for q in queries):
                    break
            for query in queries:
                answer = view.data["symbols"][query["query_id"]]
                assert "error" not in answer
                quotes = tqsdk_symbols._symbols_to_quotes(answer)
                wanted = symbols if query in batch else [symbols[0]]
                assert set(quotes) == set(wanted)  # the unknown SHFE.zz9999 is not there
                for symbol in wanted:
                    assert quotes[symbol]["price_tick"] > 0 and quotes[symbol]["ins_class"] == "FUTURE"
                    assert quotes[symbol]["volume_multiple"] > 0 and quotes[symbol]["trading_time"]["day"]
                    assert quotes[symbol]["expire_datetime"] > 1.7e9  # seconds after tqsdk's / 1e9
            await ws.send_json({"aid": "ins_query", "query_id": queries[0]["query_id"], "query": ""})  # tqsdk's done
            await ws.send_json({"aid": "ins_query", "query_id": "x", "query": "query { symbol_info { a } }"})
            packet = await peek(ws)
            assert "error" in packet["data"][0]["symbols"]["x"]

    run(scenario())
