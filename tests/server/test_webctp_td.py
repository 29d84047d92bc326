"""webctp JSON on /td/: login (authenticate, login, settlement confirmation), orders, reports and
queries on the server's simulated counter."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import aiohttp

try:
    from .test_webctp import closed, recv, run, until, url
except ImportError:  # tests/server without __init__.py: pytest puts this directory on sys.path
    from test_webctp import closed, recv, run, until, url  # type: ignore[no-redef]

BROKER, USER = "9999", "000001"


def sim_front(tmp_path: Path) -> str:
    seed = zlib.crc32(str(tmp_path).encode())
    return ("sim://?start=2026-11-20T09:35&instruments=rb2701&price=rb2701:3100&speed=1"
            f"&seed={seed}&trader.db={tmp_path / 'accounts.sqlite'}&trader.flow_control=false")


def order(ref: str, price: float, **changes: Any) -> dict[str, Any]:
    body = {"BrokerID": BROKER, "InvestorID": USER, "UserID": USER, "ExchangeID": "SHFE", "InstrumentID": "rb2701",
            "OrderRef": ref, "LimitPrice": price, "OrderPriceType": "2", "Direction": "0", "CombOffsetFlag": "0",
            "CombHedgeFlag": "1", "VolumeTotalOriginal": 1, "TimeCondition": "3", "VolumeCondition": "1",
            "ContingentCondition": "1", "ForceCloseReason": "0", "IsAutoSuspend": 0, "IsSwapOrder": 0}
    body.update(changes)
    return body


async def td_login(ws: aiohttp.ClientWebSocketResponse, request_id: int = 1) -> list[dict[str, Any]]:
    """Log in; every message up to and including RspUserLogin."""
    await ws.send_json({"MsgType": "ReqUserLogin", "RequestID": request_id,
                        "ReqUserLogin": {"BrokerID": BROKER, "UserID": USER, "Password": ""}})
    seen = []
    for _ in range(100):
        message = await recv(ws)
        seen.append(message)
        if message["MsgType"] == "RspUserLogin":
            return seen
    raise AssertionError(f"no RspUserLogin in {seen}")


def test_td_login_order_reports_and_queries(serve_factory: Any, tmp_path: Path) -> None:
    server = serve_factory(sim_front(tmp_path))

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(url(server, "/td/")) as ws:
            await ws.send_json({"MsgType": "ReqQryTradingAccount", "RequestID": 5, "QryTradingAccount": {}})
            early = await recv(ws)
            assert early["MsgType"] == "RspQryTradingAccount" and early["RspInfo"]["ErrorID"] == -401
            seen = await td_login(ws)
            login = seen[-1]
            assert [m["MsgType"] for m in seen[:-1]] == []  # authenticate and confirm stay inside the server
            assert login["RspInfo"]["ErrorID"] == 0 and login["RequestID"] == 1 and login["IsLast"] is True
            assert login["RspUserLogin"]["UserID"] == USER and login["RspUserLogin"]["TradingDay"]

            await ws.send_json({"MsgType": "ReqOrderInsert", "RequestID": 2, "InputOrder": order("1", 3300.0)})
            rtn_order = await until(ws, lambda m: m["MsgType"] == "RtnOrder")
            assert set(rtn_order) == {"MsgType", "RspInfo", "Order"} and rtn_order["RspInfo"] is None
            assert rtn_order["Order"]["Direction"] == "0" and rtn_order["Order"]["OrderRef"] == "1"
            trade = await until(ws, lambda m: m["MsgType"] == "RtnTrade")
            assert trade["Trade"]["Volume"] == 1 and trade["Trade"]["InstrumentID"] == "rb2701"

            await ws.send_json({"MsgType": "ReqQryInvestorPosition", "RequestID": 3,
                                "QryInvestorPosition": {"BrokerID": BROKER, "InvestorID": USER, "InstrumentID": ""}})
            positions = []
            while True:
                message = await until(ws, lambda m: m["MsgType"] == "RspQryInvestorPosition")
                assert message["RequestID"] == 3
                positions.append(message)
                if message.get("IsLast"):
                    break
            assert all("IsLast" not in m for m in positions[:-1])
            held = [m["InvestorPosition"] for m in positions if m["InvestorPosition"]]
            assert sum(p["Position"] for p in held if p["PosiDirection"] == "2") == 1

            await ws.send_json({"MsgType": "ReqQryTradingAccount", "RequestID": 4,
                                "QryTradingAccount": {"BrokerID": BROKER, "InvestorID": USER}})
            account = await until(ws, lambda m: m["MsgType"] == "RspQryTradingAccount")
            assert account["RequestID"] == 4 and account["IsLast"] is True
            assert account["TradingAccount"]["AccountID"] == USER
            assert account["TradingAccount"]["BizType"] == "\u0000"  # NUL char as "\u0000"
            assert account["TradingAccount"]["CurrMargin"] > 0

            await ws.send_json({"MsgType": "ReqQryOrder", "RequestID": 6, "QryOrder": {"BrokerID": BROKER,
                                                                                      "InvestorID": USER}})
            orders = await until(ws, lambda m: m["MsgType"] == "RspQryOrder" and m.get("IsLast"))
            assert orders["Order"]["OrderStatus"] == "0"  # all traded

            await ws.send_json({"MsgType": "ReqOrderInsert", "RequestID": 7, "InputOrder": order("2", "cheap")})
            bad = await until(ws, lambda m: m.get("RequestID") == 7)
            assert bad["MsgType"] == "RspOrderInsert" and bad["RspInfo"]["ErrorID"] == -400
            assert "LimitPrice" in bad["Detail"]
            await ws.send_json({"MsgType": "ReqOrderInsert", "RequestID": 8, "InputOrder": order("3", 1.0, Prise=1)})
            bad = await until(ws, lambda m: m.get("RequestID") == 8)
            assert bad["RspInfo"]["ErrorID"] == -400 and "'Prise'" in bad["Detail"]
            await ws.send_json({"MsgType": "ReqAuthenticate", "RequestID": 9, "ReqAuthenticate": {}})
            assert (await until(ws, lambda m: m.get("RequestID") == 9))["RspInfo"]["ErrorID"] == -404

            # a resting order, then its cancel: RtnOrder with OrderStatus 5
            await ws.send_json({"MsgType": "ReqOrderInsert", "RequestID": 10, "InputOrder": order("4", 2900.0)})
            resting = await until(ws, lambda m: m["MsgType"] == "RtnOrder" and m["Order"]["OrderRef"] == "4"
                                  and m["Order"]["OrderSysID"].strip() != "")
            await ws.send_json({"MsgType": "ReqOrderAction", "RequestID": 11, "InputOrderAction": {
                "BrokerID": BROKER, "InvestorID": USER, "UserID": USER, "ExchangeID": "SHFE", "InstrumentID": "rb2701",
                "ActionFlag": "0", "OrderSysID": resting["Order"]["OrderSysID"]}})
            await until(ws, lambda m: m["MsgType"] == "RtnOrder" and m["Order"]["OrderRef"] == "4"
                        and m["Order"]["OrderStatus"] == "5")

    run(scenario())


def test_td_front_reject_comes_back_as_rsp(serve_factory: Any, tmp_path: Path) -> None:
    server = serve_factory(sim_front(tmp_path))

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(url(server, "/td/")) as ws:
            await td_login(ws)
            await ws.send_json({"MsgType": "ReqOrderInsert", "RequestID": 3,
                                "InputOrder": order("9", 3100.0, InstrumentID="zz9999")})
            reject = await until(ws, lambda m: m["MsgType"] in ("RspOrderInsert", "ErrRtnOrderInsert"))
            assert reject["RspInfo"]["ErrorID"] == 16  # 找不到合约
            assert reject["InputOrder"]["InstrumentID"] == "zz9999"

    run(scenario())


def test_td_malformed_message_closes_that_client(serve_factory: Any, tmp_path: Path) -> None:
    server = serve_factory(sim_front(tmp_path))

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(url(server, "/td/")) as ws:
            await ws.send_json(["not", "an", "object"])
            error = await recv(ws)
            assert error["RspInfo"]["ErrorID"] == -400 and "JSON object" in error["Detail"]
            await closed(ws)
            assert ws.close_code == 1008

    run(scenario())
