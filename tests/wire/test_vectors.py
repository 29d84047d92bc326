"""The golden vectors: the codec produces exactly the committed bytes and decodes them back."""

from __future__ import annotations

import struct

import pytest

from ctpshim.ctp.fields import values_of
from ctpshim.wire import calls, handshake
from ctpshim.wire.frames import FLAG_LAST, FrameReader, FrameType, decode_frame
from ctpshim.wire.structs import LAYOUT_ID, TICK_SIZE, unpack_tick, unpack_ticks

from .vectors import DIRECTORY, build, from_hex, known_tick, readme

VECTORS = build()


@pytest.mark.parametrize("name", list(VECTORS))
def test_each_vector_file_holds_the_codec_s_bytes(name: str) -> None:
    path = DIRECTORY / f"{name}.hex"
    assert path.exists(), f"{path} is missing: run python -m tests.wire.vectors"
    assert from_hex(path.read_text()) == VECTORS[name][0], f"{name} changed: the wire format moved"


def test_the_readme_names_every_vector() -> None:
    assert (DIRECTORY / "README.md").read_text(encoding="utf-8") == readme(VECTORS)
    assert sorted(p.stem for p in DIRECTORY.glob("*.hex")) == sorted(VECTORS)


def test_the_session_decodes_back() -> None:
    session = {name: decode_frame(data) for name, (data, _what) in VECTORS.items() if name[:2] < "30"}
    hello = handshake.Hello.decode(session["01_hello_md"].payload)
    assert hello.api == "md" and hello.layout == LAYOUT_ID and hello.token == "s3cret-alice"
    ack = handshake.HelloAck.decode(session["02_hello_ack"].payload)
    assert ack.session_id == 7 and ack.heartbeat == 5.0 and ack.instruments[0]["InstrumentName"] == "螺纹钢2701"
    call = session["03_call_req_user_login"]
    assert call.seq == 2 and call.request_id == 1
    method, args = calls.decode_call(call.payload, "mdapi", call.request_id)
    assert method == "ReqUserLogin" and args[0].UserID == "000001" and args[1] == 1
    result = session["04_result_req_user_login"]
    assert calls.decode_result(result.payload) == 0 and calls.result_seq(result) == 2 and result.request_id == 1
    login = session["05_callback_on_rsp_user_login"]
    assert login.flags == FLAG_LAST
    name, args = calls.decode_callback(login.payload, "mdapi", login.request_id, login.flags)
    assert name == "OnRspUserLogin" and args[1].ErrorMsg == "CTP:正确" and args[2:] == (1, True)
    tick = session["09_tick"]
    assert tick.type == FrameType.TICK and len(tick.payload) == TICK_SIZE
    assert values_of(unpack_tick(tick.payload)) == values_of(known_tick())
    batch = session["10_tick_batch"]
    count = struct.unpack_from("<H", batch.payload)[0]
    assert count == 2 and [t.Volume for t in unpack_ticks(batch.payload, count, 2)] == [1240, 1250]
    assert calls.decode_result(session["20_result_too_many_per_second"].payload) == -3
    error = handshake.ErrorInfo.decode(session["23_error_bad_frame"].payload)
    assert error.ErrorID == -400 and error.Reason == 0x2003
    # the client's frames and the server's, each as one stream, read back in order
    for direction in ("client -> server", "server -> client"):
        stream = b"".join(data for name, (data, what) in VECTORS.items() if what.startswith(direction))
        frames = FrameReader().feed(stream)
        seqs = [f.seq for f in frames if f.type != FrameType.ERROR or f.seq != 1]
        assert seqs == sorted(seqs)


def test_the_bare_tick_struct_equals_the_tick_frame_payload() -> None:
    assert VECTORS["30_tick_struct"][0] == decode_frame(VECTORS["09_tick"][0]).payload
