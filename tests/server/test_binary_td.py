"""The ``ctpshim://`` td side over a real loopback socket: HELLO api=td opens a ServerTrader on the
source's simulated counter; CALLs go to it, its callbacks come back as CALLBACK frames."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

from ctpshim import tdapi
from ctpshim.wire import calls, handshake
from ctpshim.wire.frames import FrameType, decode_json

from tests.wire.client import WireClient

BROKER, USER = "9999", "000001"


def sim_front(tmp_path: Path) -> str:
    seed = zlib.crc32(str(tmp_path).encode())
    return ("sim://?start=2026-11-20T09:35&instruments=rb2701&price=rb2701:3100&speed=1"
            f"&seed={seed}&trader.db={tmp_path / 'accounts.sqlite'}&trader.flow_control=false")


def td_callback(frame: Any) -> tuple[str, tuple[Any, ...]]:
    assert frame.type == FrameType.CALLBACK, frame
    return calls.decode_callback(frame.payload, "tdapi", frame.request_id, frame.flags)


def test_td_transcript_login_confirm_order_fill(serve_factory: Any, tmp_path: Path) -> None:
    server = serve_factory(f"main={sim_front(tmp_path)}", http=None)
    client = WireClient(server.binary_address)
    try:
        ack = client.hello("td", private_resume=2, public_resume=2)
        assert ack.type == FrameType.HELLO_ACK, ack
        assert decode_json(ack.payload, "HELLO_ACK")["source"] == "main"

        login = tdapi.CThostFtdcReqUserLoginField()
        login.BrokerID, login.UserID = BROKER, USER
        seq = client.call("ReqUserLogin", (login, 1))
        frames = client.until(lambda f: f.type == FrameType.CALLBACK and td_callback(f)[0] == "OnRspUserLogin")
        results = [f for f in frames if f.type == FrameType.RESULT]
        assert [calls.result_seq(f) for f in results] == [seq] and calls.decode_result(results[0].payload) == 0
        name, args = td_callback(frames[-1])
        assert args[0].UserID == USER and args[2:] == (1, True)
        assert isinstance(args[0], tdapi.CThostFtdcRspUserLoginField)

        confirm = tdapi.CThostFtdcSettlementInfoConfirmField()
        confirm.BrokerID, confirm.InvestorID = BROKER, USER
        client.call("ReqSettlementInfoConfirm", (confirm, 2))
        client.until(lambda f: f.type == FrameType.CALLBACK and td_callback(f)[0] == "OnRspSettlementInfoConfirm")

        order = tdapi.CThostFtdcInputOrderField()
        order.BrokerID, order.InvestorID, order.UserID = BROKER, USER, USER
        order.InstrumentID, order.ExchangeID, order.OrderRef = "rb2701", "SHFE", "1"
        order.OrderPriceType, order.Direction, order.CombOffsetFlag, order.CombHedgeFlag = "2", "0", "0", "1"
        order.LimitPrice, order.VolumeTotalOriginal = 3300.0, 1
        order.TimeCondition, order.VolumeCondition, order.ContingentCondition = "3", "1", "1"
        order.ForceCloseReason = "0"
        client.call("ReqOrderInsert", (order, 3))
        frames = client.until(lambda f: f.type == FrameType.CALLBACK and td_callback(f)[0] == "OnRtnTrade")
        names = [td_callback(f)[0] for f in frames if f.type == FrameType.CALLBACK]
        assert "OnRtnOrder" in names
        trade = td_callback(frames[-1])[1][0]
        assert trade.InstrumentID == "rb2701" and trade.Volume == 1 and trade.Price < 3300.0
        assert server.clients and server.clients[0].protocol == "binary"
    finally:
        client.close()


def test_td_call_of_a_lifecycle_method_is_an_error(serve_factory: Any, tmp_path: Path) -> None:
    server = serve_factory(f"main={sim_front(tmp_path)}", http=None)
    client = WireClient(server.binary_address)
    try:
        assert client.hello("td").type == FrameType.HELLO_ACK
        client.call("Init", ())
        frames = client.wait_closed()
        info = handshake.ErrorInfo.decode(frames[-1].payload)
        assert info.ErrorID == handshake.E_BAD_FRAME and "'Init' is not a trader API request" in info.ErrorMsg
    finally:
        client.close()


def test_td_hello_with_a_bad_resume_mode_is_refused(serve_factory: Any, tmp_path: Path) -> None:
    server = serve_factory(f"main={sim_front(tmp_path)}", http=None)
    client = WireClient(server.binary_address)
    try:
        info = handshake.ErrorInfo.decode(client.hello("td", private_resume=9).payload)
        assert info.ErrorID == handshake.E_BAD_FRAME and "private_resume 9" in info.ErrorMsg
    finally:
        client.close()


def test_a_failed_tls_handshake_is_a_disconnect_without_a_connect(tmp_path: Path) -> None:
    # A port that answers the ClientHello with something other than TLS: CTP reports a front that
    # accepts and then closes as OnFrontDisconnected(0x1001) with no OnFrontConnected before it.
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    stop = threading.Event()

    def answer_garbage() -> None:
        while not stop.is_set():
            try:
                peer, _ = listener.accept()
            except OSError:
                return
            with peer:
                peer.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")

    thread = threading.Thread(target=answer_garbage, daemon=True)
    thread.start()
    seen: list[tuple[str, tuple[Any, ...]]] = []
    done = threading.Event()

    class Spi(tdapi.CThostFtdcTraderSpi):
        def OnFrontConnected(self) -> None:
            seen.append(("OnFrontConnected", ()))
            done.set()

        def OnFrontDisconnected(self, reason: int) -> None:
            seen.append(("OnFrontDisconnected", (reason,)))
            done.set()

    api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(f"{tmp_path}/")
    spi = Spi()
    api.RegisterSpi(spi)
    api.RegisterFront(f"ctpshims://127.0.0.1:{listener.getsockname()[1]}/main?verify=0")
    api.Init()
    try:
        assert done.wait(15), "no callback after a failed TLS handshake"
        assert seen[0] == ("OnFrontDisconnected", (0x1001,)), seen
    finally:
        api.Release()
        stop.set()
        listener.close()
        thread.join(5)
