"""The golden vectors of ``tests/wire/vectors/`` (docs/PROTOCOL.md's worked session).

``python -m tests.wire.vectors`` rewrites the files and their README; ``test_vectors.py`` checks
that the codec still produces exactly these bytes and decodes them back.  Each ``.hex`` file is
the bytes in hexadecimal, 16 to a line (whitespace carries no meaning).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ctpshim import mdapi
from ctpshim.wire import calls, handshake
from ctpshim.wire.frames import FrameType, encode_frame
from ctpshim.wire.structs import LAYOUT_ID, pack_tick

DIRECTORY = Path(__file__).with_name("vectors")
DBL_MAX = sys.float_info.max


def known_tick(second: int = 1, last: float = 3100.0, volume: int = 1234) -> Any:
    """The example tick: rb2701 on SHFE, with DBL_MAX where real fronts leave a price unset."""
    tick = mdapi.CThostFtdcDepthMarketDataField()
    tick.TradingDay, tick.ActionDay, tick.UpdateTime = "20261120", "20261120", f"09:35:{second:02d}"
    tick.UpdateMillisec = 500 if second == 1 else 0
    tick.InstrumentID, tick.ExchangeID = "rb2701", "SHFE"
    tick.LastPrice, tick.PreSettlementPrice, tick.PreClosePrice, tick.OpenPrice = last, 3090.0, 3088.0, 3095.0
    tick.HighestPrice, tick.LowestPrice, tick.Volume, tick.Turnover = 3105.0, 3092.0, volume, 38254000.0
    tick.PreOpenInterest, tick.OpenInterest = 150000.0, 150321.0
    tick.ClosePrice, tick.SettlementPrice, tick.PreDelta, tick.CurrDelta = DBL_MAX, DBL_MAX, 0.0, DBL_MAX
    tick.UpperLimitPrice, tick.LowerLimitPrice = 3337.0, 2843.0
    tick.BidPrice1, tick.BidVolume1, tick.AskPrice1, tick.AskVolume1 = last - 1, 12, last, 7
    for level in range(2, 6):
        for side in ("Bid", "Ask"):
            setattr(tick, f"{side}Price{level}", DBL_MAX)
    tick.AveragePrice = 31000.0
    return tick


def _login() -> Any:
    request = mdapi.CThostFtdcReqUserLoginField()
    request.BrokerID, request.UserID = "9999", "000001"
    return request


def _login_reply() -> Any:
    reply = mdapi.CThostFtdcRspUserLoginField()
    reply.TradingDay, reply.LoginTime, reply.BrokerID, reply.UserID = "20261120", "09:35:00", "9999", "000001"
    reply.SystemName, reply.FrontID, reply.SessionID, reply.MaxOrderRef = "ctpshim", 1, 7, "1"
    reply.SHFETime = reply.DCETime = reply.CZCETime = reply.FFEXTime = reply.INETime = reply.GFEXTime = "09:35:00"
    return reply


def _info(error_id: int, message: str) -> Any:
    info = mdapi.CThostFtdcRspInfoField()
    info.ErrorID, info.ErrorMsg = error_id, message
    return info


def _specific(instrument: str) -> Any:
    specific = mdapi.CThostFtdcSpecificInstrumentField()
    specific.InstrumentID = instrument
    return specific


def _callback(name: str, args: tuple[Any, ...], seq: int) -> bytes:
    return calls.callback_frame(name, args, seq=seq, flavour="mdapi")


def build() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, what they are), in the order of the worked session."""
    hello = handshake.Hello("md", LAYOUT_ID, source="", token="s3cret-alice", client="example 1.0")
    ack = handshake.HelloAck(
        LAYOUT_ID, 5.0, "2026-11-20T09:35:00.000+08:00", "20261120", "sim", 1, 7,
        {"max_subscriptions": 4000, "control_rate": 20.0, "control_burst": 50, "max_frame": 1048576,
         "reply_budget": 8388608, "write_deadline": 10.0},
        [{"InstrumentID": "rb2701", "ExchangeID": "SHFE", "InstrumentName": "螺纹钢2701"}],
    )
    batch = [pack_tick(known_tick(2, 3101.0, 1240)), pack_tick(known_tick(3, 3102.0, 1250))]
    return {
        "01_hello_md": (encode_frame(FrameType.HELLO, hello.encode(), seq=1),
                        "client -> server: HELLO (JSON, codec 2), md API, token s3cret-alice, seq 1"),
        "02_hello_ack": (encode_frame(FrameType.HELLO_ACK, ack.encode(), seq=1),
                         "server -> client: HELLO_ACK (JSON), heartbeat 5 s, session 7, one instrument, seq 1"),
        "03_call_req_user_login": (calls.call_frame("ReqUserLogin", (_login(), 1), seq=2, flavour="mdapi"),
                                   "client -> server: CALL ReqUserLogin(BrokerID 9999, UserID 000001), "
                                   "nRequestID 1 in request_id, seq 2"),
        "04_result_req_user_login": (encode_frame(FrameType.RESULT, calls.encode_result(0, 2), seq=2, request_id=1),
                                     "server -> client: RESULT code 0 for the CALL of seq 2, request_id 1, seq 2"),
        "05_callback_on_rsp_user_login": (
            _callback("OnRspUserLogin", (_login_reply(), _info(0, "CTP:正确"), 1, True), 3),
            "server -> client: CALLBACK OnRspUserLogin(login, RspInfo 0 'CTP:正确' in GB18030), request_id 1, "
            "flags 0x02 (bIsLast), seq 3"),
        "06_call_subscribe": (calls.call_frame("SubscribeMarketData", ([b"rb2701"], 1), seq=3, flavour="mdapi"),
                              "client -> server: CALL SubscribeMarketData(['rb2701'], 1), seq 3"),
        "07_result_subscribe": (encode_frame(FrameType.RESULT, calls.encode_result(0, 3), seq=4),
                                "server -> client: RESULT code 0 for the CALL of seq 3, seq 4"),
        "08_callback_on_rsp_sub_market_data": (
            _callback("OnRspSubMarketData", (_specific("rb2701"), _info(0, "CTP:No Error"), 0, True), 5),
            "server -> client: CALLBACK OnRspSubMarketData(rb2701, RspInfo 0 'CTP:No Error'), bIsLast, seq 5"),
        "09_tick": (encode_frame(FrameType.TICK, pack_tick(known_tick()), seq=6),
                    "server -> client: TICK, one 584-byte CThostFtdcDepthMarketDataField (rb2701 3100 at "
                    "09:35:01.500, DBL_MAX for unset prices), seq 6"),
        "10_tick_batch": (encode_frame(FrameType.TICK_BATCH, (2).to_bytes(2, "little") + b"".join(batch), seq=7),
                          "server -> client: TICK_BATCH of 2 ticks (u16 count, then 2 x 584 bytes), seq 7"),
        "11_heartbeat": (encode_frame(FrameType.HEARTBEAT, seq=4), "client -> server: HEARTBEAT (empty), seq 4"),
        "12_call_unsubscribe": (calls.call_frame("UnSubscribeMarketData", ([b"rb2701"], 1), seq=5, flavour="mdapi"),
                                "client -> server: CALL UnSubscribeMarketData(['rb2701'], 1), seq 5"),
        "13_result_unsubscribe": (encode_frame(FrameType.RESULT, calls.encode_result(0, 5), seq=8),
                                  "server -> client: RESULT 0 for the CALL of seq 5, seq 8"),
        "14_callback_on_rsp_unsub_market_data": (
            _callback("OnRspUnSubMarketData", (_specific("rb2701"), _info(0, "CTP:No Error"), 0, True), 9),
            "server -> client: CALLBACK OnRspUnSubMarketData(rb2701), bIsLast, seq 9"),
        "15_bye": (encode_frame(FrameType.BYE, handshake.encode_bye("done"), seq=6),
                   "client -> server: BYE {\"reason\":\"done\"}, seq 6; the server closes"),
        "20_result_too_many_per_second": (encode_frame(FrameType.RESULT, calls.encode_result(-3, 9), seq=12),
                                          "server -> client: RESULT -3 (over the control rate) for the CALL of seq 9"),
        "21_callback_on_rsp_sub_over_limit": (
            _callback("OnRspSubMarketData", (_specific("ag2706"), _info(6000, "CTP:sub too many insts"), 0, True), 13),
            "server -> client: OnRspSubMarketData(ag2706) with RspInfo 6000 'CTP:sub too many insts' "
            "(past limits.max_subscriptions)"),
        "22_callback_on_front_disconnected": (_callback("OnFrontDisconnected", (0x1001,), 14),
                                              "server -> client: CALLBACK OnFrontDisconnected(4097): the source went "
                                              "down; the server closes next"),
        "23_error_bad_frame": (
            encode_frame(FrameType.ERROR, handshake.ErrorInfo(
                handshake.E_BAD_FRAME, "unknown frame type 77 (known: HELLO=1, HELLO_ACK=2, HEARTBEAT=3, BYE=4, "
                "CALL=10, RESULT=11, CALLBACK=12, TICK=30, TICK_BATCH=31, ERROR=90) (frame at byte 52)",
                0x2003).encode(), seq=15),
            "server -> client: ERROR -400 naming a malformed frame, Reason 8195 (0x2003); the server closes"),
        "24_error_bad_token": (
            encode_frame(FrameType.ERROR, handshake.ErrorInfo(handshake.E_BAD_TOKEN, "bad token").encode(), seq=1),
            "server -> client: ERROR -401 'bad token' in answer to a HELLO; the server closes"),
        "30_tick_struct": (pack_tick(known_tick()),
                           "no frame: the bare 584-byte CThostFtdcDepthMarketDataField of 09_tick, for a memcmp "
                           "against a struct filled by a C++ or Rust client"),
    }


def to_hex(data: bytes) -> str:
    return "".join(data[i:i + 16].hex(" ") + "\n" for i in range(0, len(data), 16))


def from_hex(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


def readme(vectors: dict[str, tuple[bytes, str]]) -> str:
    lines = [
        "# Golden vectors of the ctpshim:// protocol",
        "",
        "Each `.hex` file holds the exact bytes of one frame (or, for `30_tick_struct`, one struct) in",
        "hexadecimal, 16 bytes to a line; whitespace carries no meaning. `01`..`15` are one md session",
        "in order (docs/PROTOCOL.md, \"A worked session\"); `20`.. are single frames of other cases.",
        f"They use layout id `{LAYOUT_ID}`. `tests/wire/vectors.py` makes them",
        "(`python -m tests.wire.vectors` rewrites them); `tests/wire/test_vectors.py` checks them.",
        "",
        "| file | bytes | what |",
        "|---|---|---|",
    ]
    for name, (data, what) in vectors.items():
        lines.append(f"| `{name}.hex` | {len(data)} | {what} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    vectors = build()
    DIRECTORY.mkdir(exist_ok=True)
    for name, (data, _what) in vectors.items():
        (DIRECTORY / f"{name}.hex").write_text(to_hex(data))
    (DIRECTORY / "README.md").write_text(readme(vectors), encoding="utf-8")


if __name__ == "__main__":
    main()
