"""CTP 6.7.11 struct layouts: sizes and offsets (checked against openctp-ctp's C structs when it is
installed), the round trip of every field class in both flavours, LAYOUT_ID, the tick codec."""

from __future__ import annotations

import ctypes
import math
import struct
import sys
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from ctpshim import mdapi, tdapi
from ctpshim.ctp.fields import field_class, from_values, load_spec, member_names, values_of
from ctpshim.wire import structs
from ctpshim.wire.frames import WireError
from ctpshim.wire.structs import LAYOUT_ID, TICK_SIZE, layout, pack_tick, unpack_tick, unpack_ticks

from .openctp_memory import openctp_memory, sample_values
from .vectors import known_tick

SPEC = load_spec()["fields"]
CLASSES = sorted(SPEC)
DBL_MAX = sys.float_info.max
WIDTHS = {"char": 1, "short": 2, "int": 4, "double": 8}


def test_the_depth_market_data_struct_is_584_bytes_with_the_header_offsets() -> None:
    tick = layout("CThostFtdcDepthMarketDataField")
    assert TICK_SIZE == tick.size == 584 and tick.align == 8
    offsets = dict(zip(tick.members, tick.offsets))
    assert offsets["TradingDay"] == 0 and offsets["ExchangeID"] == 40 and offsets["LastPrice"] == 80
    assert offsets["Volume"] == 136 and offsets["Turnover"] == 144 and offsets["UpdateTime"] == 208
    assert offsets["UpdateMillisec"] == 220 and offsets["BidPrice1"] == 224 and offsets["BidVolume1"] == 232
    assert offsets["AveragePrice"] == 384 and offsets["ActionDay"] == 392 and offsets["InstrumentID"] == 401
    assert offsets["ExchangeInstID"] == 482 and offsets["BandingUpperPrice"] == 568
    assert offsets["BandingLowerPrice"] == 576


def test_other_sizes_follow_natural_alignment() -> None:
    assert layout("CThostFtdcRspInfoField").size == 4 + 81 + 3  # int, char[81], padded to 4
    assert layout("CThostFtdcSpecificInstrumentField").size == 31 + 81
    for name in CLASSES:
        shape = layout(name)
        assert shape.size % shape.align == 0 and shape.struct.size == shape.size
        for offset, ctype in zip(shape.offsets, shape.ctypes):
            alignment = {"short": 2, "int": 4, "double": 8}.get(ctype, 1)
            assert offset % alignment == 0, (name, offset, ctype)


def test_sizes_and_offsets_match_openctp_ctp_s_c_structs(openctp: Any) -> None:
    """Write a distinct value into every member of openctp's SWIG struct, read its memory and
    compare each member's bytes at our offset with what we pack (all 502 classes)."""
    from openctp_ctp import thostmduserapi as real

    checked = 0
    for name in CLASSES:
        shape = layout(name)
        values = sample_values(name, "mdapi")
        memory = openctp_memory(real, name, values, shape.size)
        ours = shape.pack(from_values(field_class("mdapi", name), values))
        for member, offset, ctype in zip(shape.members, shape.offsets, shape.ctypes):
            width = int(ctype[5:-1]) if ctype.startswith("char[") else WIDTHS[ctype]
            assert memory[offset:offset + width] == ours[offset:offset + width], (name, member, offset)
            checked += 1
    assert checked > 5000  # every member of every class (5,463)


def test_openctp_allocates_584_bytes_for_a_tick(openctp: Any) -> None:
    """sizeof: the members end at byte 584 (checked above) and glibc's usable size of the C++
    ``new`` block bounds sizeof from above; sizeof is a multiple of 8, so it is 584."""
    from openctp_ctp import thostmduserapi as real

    try:
        libc = ctypes.CDLL("libc.so.6")
        usable = libc.malloc_usable_size
    except (OSError, AttributeError):
        pytest.skip("not glibc: no malloc_usable_size")
    usable.restype, usable.argtypes = ctypes.c_size_t, [ctypes.c_void_p]
    ticks = [real.CThostFtdcDepthMarketDataField() for _ in range(8)]  # kept alive: 8 distinct blocks
    smallest = min(usable(int(tick.this)) for tick in ticks)
    assert 584 <= smallest < 584 + 8


@pytest.mark.parametrize("flavour", ["mdapi", "tdapi"])
def test_every_field_class_round_trips(flavour: str) -> None:
    for name in CLASSES:
        shape = layout(name)
        cls = field_class(flavour, name)
        original = from_values(cls, sample_values(name, flavour))
        data = shape.pack(original)
        assert len(data) == shape.size
        back = shape.unpack(data, flavour)
        assert type(back) is cls and values_of(back) == values_of(original), name
        assert shape.unpack(data, cls).__class__ is cls
        # defaults too: empty strings, the flavour's empty char, zeros
        empty = cls()
        assert values_of(shape.unpack(shape.pack(empty), flavour)) == values_of(empty), name


def test_packing_keeps_padding_zero_and_strings_nul_terminated() -> None:
    info = mdapi.CThostFtdcRspInfoField()
    info.ErrorID = -3
    info.ErrorMsg = "CTP:正确"
    data = layout("CThostFtdcRspInfoField").pack(info)
    assert data == struct.pack("<i", -3) + "CTP:正确".encode("gb18030").ljust(81, b"\0") + b"\0\0\0"
    assert layout("CThostFtdcRspInfoField").unpack(data).ErrorMsg == "CTP:正确"


def test_single_chars_are_one_byte_and_empty_is_zero() -> None:
    shape = layout("CThostFtdcInputOrderField")
    position = shape.members.index("Direction")
    order = tdapi.CThostFtdcInputOrderField()
    assert order.Direction == ""
    assert shape.pack(order)[shape.offsets[position]] == 0
    order.Direction = "1"
    data = shape.pack(order)
    assert data[shape.offsets[position]] == ord("1")
    assert shape.unpack(data, "tdapi").Direction == "1"
    assert shape.unpack(shape.pack(tdapi.CThostFtdcInputOrderField()), "mdapi").Direction == "\x00"
    assert shape.unpack(shape.pack(mdapi.CThostFtdcInputOrderField()), "tdapi").Direction == ""


def test_tdapi_settlement_content_stays_bytes() -> None:
    shape = layout("CThostFtdcSettlementInfoField")
    info = tdapi.CThostFtdcSettlementInfoField()
    info.Content = "结算单"
    assert info.Content == "结算单".encode("gb18030")
    back = shape.unpack(shape.pack(info), "tdapi")
    assert back.Content == info.Content
    assert shape.unpack(shape.pack(info), "mdapi").Content == "结算单"


def test_the_known_tick_round_trips_and_keeps_dbl_max() -> None:
    tick = known_tick()
    data = pack_tick(tick)
    assert len(data) == TICK_SIZE
    assert data[401:408] == b"rb2701\0" and struct.unpack_from("<d", data, 80)[0] == 3100.0
    assert struct.unpack_from("<i", data, 136)[0] == 1234
    back = unpack_tick(data)
    assert type(back) is mdapi.CThostFtdcDepthMarketDataField
    assert values_of(back) == values_of(tick) and back.ClosePrice == DBL_MAX
    assert [t.InstrumentID for t in unpack_ticks(b"xx" + data + data, 2, 2)] == ["rb2701", "rb2701"]


def test_layout_id_is_stable_and_names_the_version() -> None:
    assert LAYOUT_ID == "ctp6.7.11-041bb06c3a19c5e6"
    text = structs.layout_id_text()
    assert text.count("\n") == 502 and text.startswith("CThostFtdcAccountPropertyField BrokerID:char[11],")
    assert "CThostFtdcDepthMarketDataField TradingDay:char[9],reserve1:char[31]," in text


def test_bad_input_is_named() -> None:
    shape = layout("CThostFtdcRspInfoField")
    with pytest.raises(WireError, match="CThostFtdcRspInfoField needs 88 bytes, got 3"):
        shape.unpack(b"abc")
    with pytest.raises(WireError, match="cannot pack a CThostFtdcSpecificInstrumentField as CThostFtdcRspInfoField"):
        shape.pack(mdapi.CThostFtdcSpecificInstrumentField())
    broken = from_values(mdapi.CThostFtdcRspInfoField, ("x", "y"))
    with pytest.raises(WireError, match=r"CThostFtdcRspInfoField.ErrorID = 'x' as int"):
        shape.pack(broken)
    with pytest.raises(WireError, match="needs 584 bytes, got 583"):
        unpack_tick(bytes(583))
    with pytest.raises(KeyError, match="no CTP field class 'CThostFtdcNoSuchField'"):
        layout("CThostFtdcNoSuchField")
    with pytest.raises(ValueError, match="flavour 'xx'"):
        shape.unpack(bytes(88), "xx")


def test_unpacking_garbage_never_raises_beyond_length() -> None:
    for name in ("CThostFtdcDepthMarketDataField", "CThostFtdcInputOrderField", "CThostFtdcRspInfoField"):
        shape = layout(name)
        junk = bytes((index * 37 + 11) % 256 for index in range(shape.size))
        obj = shape.unpack(junk, "tdapi")
        assert len(values_of(obj)) == len(member_names(type(obj)))


ALPHABET = st.sampled_from("abcXYZ09 :.-_正确结算单合约螺纹€")


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_hypothesis_ticks_round_trip(data: Any) -> None:
    values = []
    for _member, _typedef, kind, size in SPEC["CThostFtdcDepthMarketDataField"]:
        if kind == "str":
            values.append(data.draw(st.text(ALPHABET, max_size=size // 3)))  # 2 bytes a CJK char: fits
        elif kind == "int":
            values.append(data.draw(st.integers(-(2**31), 2**31 - 1)))
        else:
            values.append(data.draw(st.floats(allow_nan=False)))
    tick = from_values(mdapi.CThostFtdcDepthMarketDataField, values)
    back = unpack_tick(pack_tick(tick))
    for got, want in zip(values_of(back), values):
        assert got == want
        if isinstance(want, float):
            assert math.copysign(1, got) == math.copysign(1, want)  # -0.0 stays -0.0
