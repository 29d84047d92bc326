"""CALL / CALLBACK / RESULT payloads: every md and td method and callback round-trips from the
spec's signatures; malformed payloads are named."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from ctpshim import mdapi, tdapi
from ctpshim.ctp.fields import field_class, from_values, values_of
from ctpshim.wire import calls
from ctpshim.wire.frames import FLAG_LAST, FrameType, WireError, decode_frame

from .test_structs import sample_values


def arguments(flavour: str, sig: calls.Signature, salt: int) -> tuple[Any, ...]:
    args: list[Any] = []
    for position, encoding in enumerate(sig.encodings):
        if encoding == calls.STRUCT:
            name = sig.classes[position]
            values = sample_values(name, flavour, salt)
            args.append(None if salt % 3 == 2 else from_values(field_class(flavour, name), values))
        elif encoding == calls.IDS:
            args.append([f"rb27{n:02d}".encode() for n in range(salt % 4)] + ["螺纹".encode("gb18030")] * (salt % 2))
        elif encoding == calls.COUNT:
            args.append(len(args[-1]))
        elif encoding == calls.TEXT:
            args.append(f"tcp://127.0.0.1:{salt}")
        elif encoding in (calls.INT, calls.REQUEST_ID):
            args.append(-salt if salt % 2 else salt * 1000)
        elif encoding in (calls.BOOL, calls.IS_LAST):
            args.append(bool(salt % 2))
    return tuple(args)


def comparable(args: tuple[Any, ...]) -> list[Any]:
    return [values_of(a) if hasattr(a, "_v") else a for a in args]


@pytest.mark.parametrize("flavour", ["mdapi", "tdapi"])
@pytest.mark.parametrize("side", ["api", "spi"])
def test_every_method_and_callback_round_trips(flavour: str, side: str) -> None:
    sigs = calls.signatures(flavour, side)
    assert len(sigs) == {("mdapi", "api"): 15, ("mdapi", "spi"): 13, ("tdapi", "api"): 133, ("tdapi", "spi"): 164}[
        (flavour, side)]
    travelled = 0
    for name, sig in sigs.items():
        if sig.error:
            assert name == "RegisterSpi"
            continue
        for salt in range(3):
            args = arguments(flavour, sig, salt)
            if side == "api":
                frame = decode_frame(calls.call_frame(name, args, seq=9, flavour=flavour))
                assert frame.type == FrameType.CALL and frame.seq == 9
                assert frame.request_id == calls.call_header(name, args, flavour)
                got_name, got = calls.decode_call(frame.payload, flavour, frame.request_id)
            else:
                frame = decode_frame(calls.callback_frame(name, args, flavour=flavour))
                assert frame.type == FrameType.CALLBACK
                assert (frame.request_id, frame.flags) == calls.callback_header(name, args, flavour)
                got_name, got = calls.decode_callback(frame.payload, flavour, frame.request_id, frame.flags)
            assert got_name == name
            assert comparable(got) == comparable(args), (name, salt)
            for value in got:
                if hasattr(value, "_v"):
                    assert type(value).__module__ == f"ctpshim.{flavour}"
        travelled += 1
    assert travelled == len(sigs) - (side == "api")


def test_the_subscribe_payload_is_a_count_and_length_prefixed_ids() -> None:
    payload = calls.encode_call("SubscribeMarketData", ([b"rb2701", "au2706"], 2))
    assert payload == b"\x13SubscribeMarketData" + b"\x02\x00\x00\x00" + b"\x06rb2701" + b"\x06au2706"
    assert calls.decode_call(payload, "mdapi") == ("SubscribeMarketData", ([b"rb2701", b"au2706"], 2))
    assert calls.encode_call("SubscribeMarketData", ([b"a", b"b", b"c"], 1)).endswith(b"\x01\x00\x00\x00\x01a")
    with pytest.raises(WireError, match="nCount 4 must be an int from 0 to 3"):
        calls.encode_call("SubscribeMarketData", ([b"a", b"b", b"c"], 4))


def test_the_callback_payload_has_presence_bytes_and_the_header_the_rest() -> None:
    info = mdapi.CThostFtdcRspInfoField()
    info.ErrorMsg = "CTP:正确"
    payload, request_id, flags = calls.callback_parts("OnRspUserLogin", (None, info, 42, True))
    assert payload[:15] == b"\x0eOnRspUserLogin" and payload[15] == 0 and payload[16] == 1
    assert len(payload) == 15 + 1 + 1 + 88 and request_id == 42 and flags == FLAG_LAST
    name, args = calls.decode_callback(payload, "tdapi", 42, FLAG_LAST)
    assert name == "OnRspUserLogin" and args[0] is None and args[1].ErrorMsg == "CTP:正确" and args[2:] == (42, True)
    assert isinstance(args[1], tdapi.CThostFtdcRspInfoField)
    assert calls.callback_parts("OnFrontDisconnected", (0x1001,)) == (b"\x13OnFrontDisconnected\x01\x10\x00\x00", 0, 0)


def test_result_carries_the_code_and_the_call_seq() -> None:
    payload = calls.encode_result(-3, 17)
    assert payload == b"\xfd\xff\xff\xff\x11\x00\x00\x00" and calls.decode_result(payload) == -3
    with pytest.raises(WireError, match="RESULT payload must be 8 bytes"):
        calls.decode_result(b"\0\0\0\0")


def test_malformed_payloads_are_named() -> None:
    login = calls.encode_call("ReqUserLogin", (mdapi.CThostFtdcReqUserLoginField(), 1))
    cases = [
        (b"", "CALL payload ends inside the name's length"),
        (b"\x09Req", "CALL payload ends inside the name"),
        (b"\x03\xff\xfe\xfd", "CALL name b'\\\\xff\\\\xfe\\\\xfd' is not ASCII"),
        (b"\x07NoSuchX", "CThostFtdcMdApi has no method 'NoSuchX'"),
        (login[:-1], "ends inside pReqUserLoginField \\(CThostFtdcReqUserLoginField\\)"),
        (login + b"\0", "1 bytes after its last argument"),
        (login[:13] + b"\x02" + login[14:], "presence byte is 2, expected 0 or 1"),
        (b"\x13SubscribeMarketData\xff\xff\xff\xff", "count is -1, expected 0 or more"),
        (b"\x13SubscribeMarketData\x10\x00\x00\x00", "count 16 exceeds the payload"),
        (b"\x13SubscribeMarketData\x01\x00\x00\x00\x05ab", "ends inside ppInstrumentID\\[0\\]"),
    ]
    for payload, words in cases:
        with pytest.raises(WireError, match=words):
            calls.decode_call(payload, "mdapi")
    with pytest.raises(WireError, match="CThostFtdcTraderSpi has no method 'OnNothing'"):
        calls.decode_callback(b"\x09OnNothing", "tdapi")
    with pytest.raises(WireError, match="RegisterSpi cannot be sent"):
        calls.encode_call("RegisterSpi", (None,))
    with pytest.raises(WireError, match="takes 2 arguments \\(pReqUserLoginField, nRequestID\\), got 1"):
        calls.encode_call("ReqUserLogin", (None,))
    with pytest.raises(WireError, match="nRequestID 'x' is not an int32"):
        calls.call_frame("ReqUserLogin", (None, "x"))
    with pytest.raises(WireError, match="no CTP method 'Nothing'"):
        calls.encode_call("Nothing", ())
    with pytest.raises(WireError, match="cannot pack"):
        calls.encode_call("ReqUserLogin", (mdapi.CThostFtdcRspInfoField(), 1))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_random_payloads_give_wire_errors_or_values_never_other_exceptions(payload: bytes) -> None:
    for prefix in (b"", b"\x13SubscribeMarketData", b"\x0cReqUserLogin", b"\x13OnFrontDisconnected"):
        for decode in (lambda p: calls.decode_call(p, "mdapi"), lambda p: calls.decode_callback(p, "tdapi")):
            try:
                decode(prefix + payload)
            except WireError:
                pass
