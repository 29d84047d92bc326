"""Field objects behave like openctp-ctp's: members, order, defaults and assignment rules."""

from __future__ import annotations

import copy
import math
import pickle

import pytest

from ctpshim import mdapi, tdapi
from ctpshim.tools.gen_spec import char_array_size

MODULES = {"mdapi": mdapi, "tdapi": tdapi}


def outcome(cls, member, value):
    """('ok', value read back) or ('error', exception class name), on a fresh object."""
    obj = cls()
    try:
        setattr(obj, member, value)
    except (TypeError, OverflowError, ValueError) as exc:
        return ("error", type(exc).__name__)
    read = getattr(obj, member)
    if isinstance(read, float) and math.isnan(read):
        read = "nan"
    return ("ok", read)


def probe_values(kind_default, size):
    if isinstance(kind_default, bytes):
        return [b"", b"A", "A", None, 5]
    if isinstance(kind_default, float):
        return [5, 1.5, True, "1", None, float("inf"), float("nan"), 1.7976931348623157e308, 2**1030]
    if isinstance(kind_default, int):
        return [5, -1, True, 5.0, "5", None, 2**15, 2**31 - 1, 2**31, -(2**31) - 1]
    values = ["", "A", "AB", "\x00", None, b"A", 65, 1.5]
    if size:
        values += ["x" * (size - 1), "x" * size, "x" * (size + 1)]
    return values


@pytest.mark.parametrize("name", ["mdapi", "tdapi"])
def test_every_member_has_openctps_name_order_default_and_assignment_rules(openctp, name):
    theirs, ours = getattr(openctp, name), MODULES[name]
    classes = sorted(n for n in dir(theirs) if n.startswith("CThostFtdc") and n.endswith("Field"))
    assert len(classes) == 502
    checked = 0
    for class_name in classes:
        their_cls, our_cls = getattr(theirs, class_name), getattr(ours, class_name)
        members = list(their_cls.__annotations__)
        assert list(our_cls.__annotations__) == members, class_name
        assert dict(our_cls.__annotations__) == dict(their_cls.__annotations__), class_name
        fresh_theirs, fresh_ours = their_cls(), our_cls()
        for member in members:
            default = getattr(fresh_theirs, member)
            assert getattr(fresh_ours, member) == default and type(getattr(fresh_ours, member)) is type(default), (
                class_name, member)
            size = char_array_size(their_cls, member) if isinstance(default, str) and _is_array(their_cls, member) else None
            for value in probe_values(default, size):
                expected, got = outcome(their_cls, member, value), outcome(our_cls, member, value)
                assert got == expected, (class_name, member, value, expected, got)
                checked += 1
    assert checked > 40_000


def _is_array(cls, member):
    try:
        setattr(cls(), member, "AB")
        return True
    except TypeError:
        return False


def test_text_members_are_measured_in_gb18030_bytes_and_never_truncated():
    field = mdapi.CThostFtdcInstrumentField()
    field.InstrumentName = "螺纹钢2605"  # 6 + 4 bytes in GB18030, char[21]
    assert field.InstrumentName == "螺纹钢2605"
    field.InstrumentName = "中" * 10  # 20 bytes: fits in char[21]
    with pytest.raises(TypeError, match=r"char \[21\].*21 bytes"):
        field.InstrumentName = "中" * 10 + "x"
    assert field.InstrumentName == "中" * 10


def test_error_messages_name_the_bad_value_and_what_is_valid():
    field = mdapi.CThostFtdcDepthMarketDataField()
    with pytest.raises(TypeError) as info:
        field.Volume = 5.0
    message = str(info.value)
    assert "CThostFtdcDepthMarketDataField_Volume_set" in message and "5.0" in message and "int" in message
    with pytest.raises(OverflowError, match="2147483648"):
        field.Volume = 2**31


def test_char_members_keep_each_modules_empty_value():
    assert mdapi.CThostFtdcInputOrderField().Direction == "\x00"
    assert tdapi.CThostFtdcInputOrderField().Direction == ""
    order = tdapi.CThostFtdcInputOrderField()
    order.Direction = tdapi.THOST_FTDC_D_Sell
    assert order.Direction == "1"
    order.Direction = 66
    assert order.Direction == "B"


def test_settlement_content_is_bytes_in_tdapi_and_text_in_mdapi():
    assert tdapi.CThostFtdcSettlementInfoField().Content == b""
    assert mdapi.CThostFtdcSettlementInfoField().Content == ""
    info = tdapi.CThostFtdcSettlementInfoField()
    info.Content = "结算单"
    assert info.Content.decode("gbk") == "结算单"
    with pytest.raises(TypeError):
        info.Content = b"raw"


def test_objects_are_compared_by_identity_copy_independently_and_pickle():
    a = mdapi.CThostFtdcRspInfoField()
    a.ErrorID, a.ErrorMsg = 3, "CTP:不合法的登录"
    b = copy.copy(a)
    assert a == a and a != b and b.ErrorMsg == a.ErrorMsg
    b.ErrorID = 4
    assert a.ErrorID == 3
    c = pickle.loads(pickle.dumps(a))
    assert (c.ErrorID, c.ErrorMsg, type(c)) == (3, "CTP:不合法的登录", mdapi.CThostFtdcRspInfoField)
    assert "ErrorMsg='CTP:不合法的登录'" in repr(a)


def test_constructor_takes_no_arguments_and_unknown_attributes_are_allowed():
    with pytest.raises(TypeError):
        mdapi.CThostFtdcRspInfoField(ErrorID=1)
    field = mdapi.CThostFtdcRspInfoField()
    field.note = "mine"
    assert field.note == "mine"


def test_members_are_listed_for_getmembers_style_dumps():
    import inspect

    tick = mdapi.CThostFtdcDepthMarketDataField()
    names = [n for n, _ in inspect.getmembers(tick) if n[0].isupper()]
    assert set(names) == {n for n in mdapi.CThostFtdcDepthMarketDataField.__annotations__ if n[0].isupper()}
