"""The ``ctpshim://`` endpoint over a real loopback socket on a real Server: handshake, login,
subscribe, ticks, unsubscribe, limits, errors, heartbeats, one bad client among good ones."""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

import pytest

from ctpshim import mdapi
from ctpshim.runtime import io_loop
from ctpshim.wire import calls, handshake
from ctpshim.wire.frames import FLAG_LAST, Frame, FrameType, decode_json, encode_frame
from ctpshim.wire.structs import LAYOUT_ID, TICK_SIZE, unpack_tick, unpack_ticks
from tests.conftest import wait_for
from tests.wire.client import TIMEOUT, WireClient

SIM = "sim://?hours=always&interval=0.02"


def callback_of(frame: Frame) -> tuple[str, tuple[Any, ...]]:
    assert frame.type == FrameType.CALLBACK, frame
    return calls.decode_callback(frame.payload, "mdapi", frame.request_id, frame.flags)


def ticks_of(frame: Frame) -> list[Any]:
    if frame.type == FrameType.TICK:
        return [unpack_tick(frame.payload)]
    assert frame.type == FrameType.TICK_BATCH, frame
    count = struct.unpack_from("<H", frame.payload)[0]
    assert len(frame.payload) == 2 + count * TICK_SIZE
    return unpack_ticks(frame.payload, count, 2)


def error_of(frame: Frame) -> handshake.ErrorInfo:
    assert frame.type == FrameType.ERROR, frame
    return handshake.ErrorInfo.decode(frame.payload)


@pytest.fixture
def client_factory(serve_factory: Any) -> Any:
    made: list[WireClient] = []

    def make(server: Any) -> WireClient:
        client = WireClient(server.binary_address)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def _ids(server: Any, count: int = 2) -> list[str]:
    feed = server.feed(None)
    listed = wait_for(feed.instruments, what="the source's instruments")
    return [i.instrument_id for i in listed[:count]]


def test_md_transcript_handshake_login_subscribe_ticks_unsubscribe(serve_factory: Any, client_factory: Any) -> None:
    server = serve_factory(SIM)
    client = client_factory(server)
    ack = client.hello()
    assert ack.type == FrameType.HELLO_ACK and ack.seq == 1
    values = decode_json(ack.payload, "HELLO_ACK")
    assert values["layout"] == LAYOUT_ID and values["version"] == 1 and values["source"] == "sim"
    assert len(values["trading_day"]) == 8 and values["heartbeat"] == server.settings.limits.heartbeat
    assert values["instruments"] and {"InstrumentID", "ExchangeID", "InstrumentName"} <= set(values["instruments"][0])
    assert values["session_id"] > 0 and values["front_id"] == 1

    login = mdapi.CThostFtdcReqUserLoginField()
    login.BrokerID, login.UserID = "9999", "alice"
    seq = client.call("ReqUserLogin", (login, 7))
    result = client.next()
    assert result.type == FrameType.RESULT and result.request_id == 7
    assert calls.decode_result(result.payload) == 0 and calls.result_seq(result) == seq
    name, args = callback_of(client.next())
    assert name == "OnRspUserLogin" and args[2:] == (7, True)
    assert args[0].TradingDay == values["trading_day"] and args[0].UserID == "alice"
    assert args[0].SessionID == values["session_id"] and args[1].ErrorID == 0

    ids = _ids(server)
    client.call("SubscribeMarketData", ([i.encode() for i in ids], len(ids)))
    result = client.next()
    assert result.type == FrameType.RESULT and calls.decode_result(result.payload) == 0
    replies = [callback_of(client.next()) for _ in ids]
    assert [(n, a[0].InstrumentID, a[1].ErrorID, a[2], a[3]) for n, a in replies] == [
        ("OnRspSubMarketData", ids[0], 0, 0, False), ("OnRspSubMarketData", ids[1], 0, 0, True)]
    seen: set[str] = set()
    frames = client.until(lambda f: f.type in (FrameType.TICK, FrameType.TICK_BATCH)
                          and seen.update(t.InstrumentID for t in ticks_of(f)) is None and seen == set(ids))
    assert all(f.type in (FrameType.TICK, FrameType.TICK_BATCH) for f in frames)
    tick = ticks_of(frames[-1])[-1]
    assert tick.InstrumentID in ids and tick.LastPrice > 0 and tick.TradingDay == values["trading_day"]
    seqs = [f.seq for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

    client.call("UnSubscribeMarketData", ([ids[0].encode()], 1))
    frames = client.until(lambda f: f.type == FrameType.CALLBACK)
    name, args = callback_of(frames[-1])
    assert name == "OnRspUnSubMarketData" and args[0].InstrumentID == ids[0] and args[3] is True
    later: list[str] = []
    for frame in client.until(lambda f: f.type in (FrameType.TICK, FrameType.TICK_BATCH)
                              and any(t.InstrumentID == ids[1] for t in ticks_of(f))):
        later.extend(t.InstrumentID for t in ticks_of(frame))
    assert ids[0] not in later
    assert server.clients and server.clients[0].protocol == "binary" and server.clients[0].subscriptions == 1


def test_late_subscriber_gets_the_snapshot_after_its_replies(serve_factory: Any, client_factory: Any) -> None:
    server = serve_factory(SIM)
    ids = _ids(server, 1)
    first, second = client_factory(server), client_factory(server)
    for client in (first, second):
        assert client.hello().type == FrameType.HELLO_ACK
    first.call("SubscribeMarketData", ([ids[0].encode()], 1))
    first.until(lambda f: f.type in (FrameType.TICK, FrameType.TICK_BATCH))
    second.call("SubscribeMarketData", ([ids[0].encode()], 1))
    kinds = [f.type for f in second.until(lambda f: f.type in (FrameType.TICK, FrameType.TICK_BATCH))]
    assert kinds[:2] == [FrameType.RESULT, FrameType.CALLBACK]


def test_empty_subscribe_is_a_round_trip(serve_factory: Any, client_factory: Any) -> None:
    server = serve_factory(SIM)
    client = client_factory(server)
    client.hello()
    seq = client.call("SubscribeMarketData", ([], 0))
    result = client.next()
    assert result.type == FrameType.RESULT and calls.result_seq(result) == seq
    assert calls.decode_result(result.payload) == 0


def test_subscription_cap_answers_6000_for_the_ids_over_it(serve_factory: Any, client_factory: Any) -> None:
    server = serve_factory(SIM, limits={"max_subscriptions": 2})
    client = client_factory(server)
    client.hello()
    ids = ["a1", "a2", "a3"]
    client.call("SubscribeMarketData", ([i.encode() for i in ids], 3))
    assert client.next().type == FrameType.RESULT
    replies = [callback_of(client.next())[1] for _ in ids]
    assert [(a[0].InstrumentID, a[1].ErrorID) for a in replies] == [("a1", 0), ("a2", 0), ("a3", 6000)]
    assert replies[2][1].ErrorMsg == "CTP:sub too many insts" and replies[2][3] is True
    assert server.clients[0].subscriptions == 2


def test_calls_over_the_rate_get_result_minus_3(serve_factory: Any, client_factory: Any) -> None:
    server = serve_factory(SIM, limits={"control_rate": 0.01, "control_burst": 2})
    client = client_factory(server)
    client.hello()
    for _ in range(3):
        client.call("SubscribeMarketData", ([], 0))
    codes = [calls.decode_result(client.next().payload) for _ in range(3)]
    assert codes == [0, 0, -3]


def test_bad_token_wrong_layout_unknown_source_and_version_are_refused(serve_factory: Any, client_factory: Any) -> None:
    server = serve_factory(SIM, tokens=["s3cret-alice:alice"])
    cases = [
        ({"token": "nope"}, handshake.E_BAD_TOKEN, "bad token"),
        ({"token": "s3cret-alice", "layout": "ctp6.3.15-0000"}, handshake.E_MISMATCH, "ctp6.3.15-0000"),
        ({"token": "s3cret-alice", "source": "nosuch"}, handshake.E_UNKNOWN_SOURCE, "this server has: sim"),
        ({"token": "s3cret-alice", "version": 2}, handshake.E_MISMATCH, "protocol version 2"),
        ({"token": "s3cret-alice", "api": "xx"}, handshake.E_BAD_FRAME, "expected 'md' or 'td'"),
    ]
    for keys, code, words in cases:
        client = client_factory(server)
        info = error_of(client.hello(**keys))
        assert info.ErrorID == code and words in info.ErrorMsg, (keys, info)
        assert client.wait_closed() == []
    good = client_factory(server)
    assert good.hello(token="s3cret-alice").type == FrameType.HELLO_ACK
    assert server.clients[0].name == "alice"


@pytest.mark.parametrize("garbage, words", [
    (encode_frame(77, b""), "unknown frame type 77"),
    (struct.pack("<IHBBII", 1 << 30, 10, 0, 0, 2, 0), "frame length 1073741824"),
    (encode_frame(FrameType.CALL, b"\x03Foo", seq=2), "CThostFtdcMdApi has no method 'Foo'"),
    (encode_frame(FrameType.CALL, b"\x0cReqUserLogin\x01\x00", seq=2), "ends inside pReqUserLoginField"),
    (encode_frame(FrameType.TICK, b"", seq=2), "may not send TICK"),
    (encode_frame(FrameType.CALL, calls.encode_call("Init", ()), seq=2), "CALL Init cannot be called on a server"),
    (encode_frame(FrameType.HELLO, b"{", seq=2), "may not send HELLO"),
])
def test_a_malformed_frame_closes_only_that_client(serve_factory: Any, client_factory: Any, garbage: bytes,
                                                   words: str) -> None:
    server = serve_factory(SIM)
    ids = _ids(server, 1)
    good, bad = client_factory(server), client_factory(server)
    for client in (good, bad):
        assert client.hello().type == FrameType.HELLO_ACK
    good.call("SubscribeMarketData", ([ids[0].encode()], 1))
    good.until(lambda f: f.type in (FrameType.TICK, FrameType.TICK_BATCH))
    bad.send_raw(garbage)
    frames = bad.wait_closed()
    assert frames and frames[-1].type == FrameType.ERROR, frames
    info = error_of(frames[-1])
    assert info.ErrorID == handshake.E_BAD_FRAME and words in info.ErrorMsg, info
    assert info.Reason == 0x2003
    # the good client keeps receiving
    good.until(lambda f: f.type in (FrameType.TICK, FrameType.TICK_BATCH))
    good.until(lambda f: f.type in (FrameType.TICK, FrameType.TICK_BATCH))
    assert len(server.clients) == 1


def test_a_tls_client_on_a_plain_server_is_told_so(serve_factory: Any, client_factory: Any) -> None:
    server = serve_factory(SIM)
    client = client_factory(server)
    client.send_raw(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40))  # a ClientHello's start
    frames = client.wait_closed()
    assert frames and frames[-1].type == FrameType.ERROR, frames
    info = error_of(frames[-1])
    assert info.ErrorID == handshake.E_BAD_FRAME and "looks like TLS" in info.ErrorMsg and "--tls-cert" in info.ErrorMsg


def test_bad_json_hello_and_a_first_frame_that_is_not_hello(serve_factory: Any, client_factory: Any) -> None:
    server = serve_factory(SIM)
    client = client_factory(server)
    client.send(FrameType.HELLO, b"{not json")
    info = error_of(client.next())
    assert info.ErrorID == handshake.E_BAD_FRAME and "HELLO payload is not JSON" in info.ErrorMsg
    other = client_factory(server)
    other.send(FrameType.HEARTBEAT)
    info = error_of(other.next())
    assert "the first frame must be HELLO, got HEARTBEAT" in info.ErrorMsg
    assert other.wait_closed() == []


def test_heartbeats_flow_when_idle_and_a_silent_client_is_closed(serve_factory: Any, client_factory: Any) -> None:
    server = serve_factory(SIM, limits={"heartbeat": 0.2})
    client = client_factory(server)
    client.hello()
    beat = client.next(timeout=5, skip_heartbeats=False)
    assert beat.type == FrameType.HEARTBEAT and beat.payload == b""
    frames = client.wait_closed(timeout=5)
    info = error_of(frames[-1])
    assert info.ErrorID == handshake.E_TIMEOUT and info.Reason == 0x2001


def test_a_client_that_heartbeats_stays(serve_factory: Any, client_factory: Any) -> None:
    server = serve_factory(SIM, limits={"heartbeat": 0.2})
    client = client_factory(server)
    client.hello()
    deadline = time.monotonic() + 1.5  # over 3 heartbeats of 0.2 s
    while time.monotonic() < deadline:
        client.send(FrameType.HEARTBEAT)
        assert client.next(timeout=1, skip_heartbeats=False).type == FrameType.HEARTBEAT
    assert len(server.clients) == 1


def test_bye_closes_and_server_stop_says_bye(serve_factory: Any, client_factory: Any) -> None:
    server = serve_factory(SIM)
    client = client_factory(server)
    client.hello()
    client.send(FrameType.BYE, handshake.encode_bye("done"))
    assert client.wait_closed() == []
    other = client_factory(server)
    other.hello()
    server.stop()
    frames = other.wait_closed()
    assert [f.type for f in frames] == [FrameType.BYE]
    assert "stopping" in handshake.decode_bye(frames[0].payload)


def test_logout_and_multicast_query(serve_factory: Any, client_factory: Any) -> None:
    server = serve_factory(SIM)
    client = client_factory(server)
    client.hello()
    logout = mdapi.CThostFtdcUserLogoutField()
    logout.UserID = "bob"
    client.call("ReqUserLogout", (logout, 3))
    assert client.next().type == FrameType.RESULT
    name, args = callback_of(client.next())
    assert name == "OnRspUserLogout" and args[0].UserID == "bob" and args[2:] == (3, True)
    client.call("ReqQryMulticastInstrument", (mdapi.CThostFtdcQryMulticastInstrumentField(), 4))
    assert client.next().type == FrameType.RESULT
    frame = client.next()
    assert frame.flags & FLAG_LAST
    assert callback_of(frame) == ("OnRspQryMulticastInstrument", (None, None, 4, True))


def test_the_source_going_down_sends_on_front_disconnected_then_closes(serve_factory: Any, client_factory: Any) -> None:
    server = serve_factory(SIM)
    client = client_factory(server)
    client.hello()
    feed = server.feed(None)
    io_loop.get_loop().call_soon_threadsafe(feed._on_down, 0x1001)  # what the hub calls when the link breaks
    frames = [f for f in client.wait_closed() if f.type not in (FrameType.TICK, FrameType.TICK_BATCH)]
    assert [callback_of(f) for f in frames] == [("OnFrontDisconnected", (0x1001,))]
    wait_for(lambda: not server.clients, what="the client to be unregistered")


def test_a_slow_consumer_is_conflated_then_cut_off_and_others_keep_receiving(serve_factory: Any,
                                                                           client_factory: Any) -> None:
    server = serve_factory("sim://?hours=always&interval=0.01&speed=max", limits={"write_deadline": 0.5})
    ids = _ids(server, 20)
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.settimeout(TIMEOUT)
    slow.connect(server.binary_address)
    try:
        slow.sendall(encode_frame(FrameType.HELLO, handshake.Hello("md", LAYOUT_ID).encode(), seq=1))
        slow.sendall(calls.call_frame("SubscribeMarketData", ([i.encode() for i in ids], len(ids)), seq=2))
        good = client_factory(server)
        good.hello()
        good.call("SubscribeMarketData", ([ids[0].encode()], 1))
        wait_for(lambda: server.metrics.cut_off >= 1, timeout=30, what="the slow client to be cut off")
        wait_for(lambda: len(server.clients) == 1, what="the slow client to be unregistered")
        assert server.metrics.conflated > 0
        good.until(lambda f: f.type in (FrameType.TICK, FrameType.TICK_BATCH))
        good.until(lambda f: f.type in (FrameType.TICK, FrameType.TICK_BATCH))
    finally:
        slow.close()


def test_a_null_login_struct_is_answered_as_an_empty_one(serve_factory: Any, client_factory: Any) -> None:
    server = serve_factory(SIM)
    client = client_factory(server)
    client.hello()
    client.call("ReqUserLogin", (None, 5))
    assert client.next().type == FrameType.RESULT
    name, args = callback_of(client.next())
    assert name == "OnRspUserLogin" and args[0].UserID == "" and args[2:] == (5, True)
    client.call("ReqUserLogout", (None, 6))
    assert client.next().type == FrameType.RESULT
    assert callback_of(client.next())[0] == "OnRspUserLogout"


def test_a_server_failure_on_one_frame_closes_that_client_with_error_500(serve_factory: Any, client_factory: Any,
                                                                         monkeypatch: Any) -> None:
    from ctpshim.server import binary

    def broken(self: Any, frame: Any, method: str, args: Any) -> None:
        raise RuntimeError("boom")

    server = serve_factory(SIM)
    client = client_factory(server)
    client.hello()
    monkeypatch.setattr(binary.BinaryClient, "_md_call", broken)
    client.call("SubscribeMarketData", ([], 0))
    info = error_of(client.wait_closed()[-1])
    assert info.ErrorID == handshake.E_INTERNAL and "RuntimeError: boom" in info.ErrorMsg
    wait_for(lambda: not server.clients, what="the client to be unregistered")


def _fake_tick(instrument: str, price: float) -> Any:
    tick = mdapi.CThostFtdcDepthMarketDataField()
    tick.InstrumentID, tick.LastPrice, tick.UpdateTime = instrument, price, "01:02:03"
    return tick


def _subscriber_of(server: Any, client: WireClient) -> Any:
    host, port = client.sock.getsockname()[:2]
    return next(info.subscriber for info in server.clients if info.peer == f"{host}:{port}")


def _priced(client: WireClient, price: float) -> list[Frame]:
    """Frames up to the first one carrying a tick at ``price``."""
    return client.until(lambda f: f.type in (FrameType.TICK, FrameType.TICK_BATCH)
                        and any(t.LastPrice == price for t in ticks_of(f)))


def test_clients_handed_the_same_ticks_share_one_encoding_and_an_unsubscribed_instrument_never_follows(
        serve_factory: Any, client_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from ctpshim.server import binary

    encoded: list[list[float]] = []
    payloads = binary._tick_payloads

    def counted(ticks: list[Any]) -> Any:
        encoded.append([t.tick.LastPrice for t in ticks])
        return payloads(ticks)

    monkeypatch.setattr(binary, "_tick_payloads", counted)
    server = serve_factory("sim://?hours=always&interval=30")  # the source's own ticks are rare here
    ids = _ids(server)
    a, b = client_factory(server), client_factory(server)
    for client in (a, b):
        client.hello()
        client.call("SubscribeMarketData", ([i.encode() for i in ids], len(ids)))
        client.until(lambda f: f.type == FrameType.CALLBACK and f.flags & FLAG_LAST)
    feed = server.feed(None)
    a_server = _subscriber_of(server, a)

    async def both_get(price: float) -> None:
        feed._dispatch([_fake_tick(ids[0], price), _fake_tick(ids[1], price)], None)

    io_loop.submit(both_get(101.5)).result(TIMEOUT)
    got = [_priced(client, 101.5)[-1] for client in (a, b)]
    assert [f.type for f in got] == [FrameType.TICK_BATCH] * 2
    assert got[0].payload == got[1].payload
    assert encoded.count([101.5, 101.5]) == 1  # one encoding of the batch for both clients

    async def unsubscribe_while_queued(price: float) -> None:
        # the ticks wait in a's channel (written at the end of this turn) when a unsubscribes ids[0]
        feed._dispatch([_fake_tick(ids[0], price), _fake_tick(ids[1], price)], None)
        a_server._subscription("UnSubscribeMarketData", [ids[0]])

    io_loop.submit(unsubscribe_while_queued(202.5)).result(TIMEOUT)
    io_loop.submit(both_get(303.5)).result(TIMEOUT)
    frames = _priced(a, 303.5)
    kinds = [f.type for f in frames]
    assert FrameType.CALLBACK in kinds
    after = frames[kinds.index(FrameType.CALLBACK):]
    assert callback_of(after[0])[0] == "OnRspUnSubMarketData"
    seen = [(t.InstrumentID, t.LastPrice) for f in after[1:] if f.type in (FrameType.TICK, FrameType.TICK_BATCH)
            for t in ticks_of(f)]
    assert (ids[1], 202.5) in seen and (ids[1], 303.5) in seen
    assert all(instrument != ids[0] for instrument, _ in seen)
    b_seen = [(t.InstrumentID, t.LastPrice) for f in _priced(b, 303.5) if f.type != FrameType.CALLBACK
              for t in ticks_of(f)]
    assert {(ids[0], 202.5), (ids[1], 202.5), (ids[0], 303.5)} <= set(b_seen)


def test_a_client_whose_socket_fills_gets_every_frame_whole_and_in_seq_order(serve_factory: Any) -> None:
    # Ticks go straight to the socket while the transport holds nothing; what the socket does not take,
    # and everything after it until the transport has drained, goes through the transport.
    from ctpshim.wire.frames import FrameReader

    server = serve_factory("sim://?hours=always&interval=0.01&speed=max")
    ids = _ids(server, 20)
    sock = socket.socket()
    sock.settimeout(TIMEOUT)
    sock.connect(server.binary_address)
    try:
        sock.sendall(encode_frame(FrameType.HELLO, handshake.Hello("md", LAYOUT_ID).encode(), seq=1))
        wait_for(lambda: server.clients, what="the client to be registered")
        served = server.clients[0].subscriber.transport.get_extra_info("socket")
        served.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)  # writes are partial once the client lags
        sock.sendall(calls.call_frame("SubscribeMarketData", ([i.encode() for i in ids], len(ids)), seq=2))
        wait_for(lambda: server.metrics.conflated > 0, timeout=30, what="the client's socket to fill up")
        reader = FrameReader()
        frames: list[Frame] = []
        deadline = time.monotonic() + 30
        while sum(f.type == FrameType.TICK_BATCH for f in frames) < 80 and time.monotonic() < deadline:
            data = sock.recv(1 << 16)
            assert data, "the server closed the connection"
            frames.extend(reader.feed(data))
    finally:
        sock.close()
    assert [f.seq for f in frames] == list(range(1, len(frames) + 1))
    assert [f.type for f in frames[:2]] == [FrameType.HELLO_ACK, FrameType.RESULT]
    ticks = [t for f in frames if f.type in (FrameType.TICK, FrameType.TICK_BATCH) for t in ticks_of(f)]
    assert len(ticks) >= 80 and {t.InstrumentID for t in ticks} <= set(ids)
