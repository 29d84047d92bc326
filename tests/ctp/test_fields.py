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


# -- a field is not a sequence: the members and methods of openctp's proxy objects, and no more --

def field_classes(module):
    return sorted(n for n in dir(module) if n.startswith("CThostFtdc") and n.endswith("Field"))


@pytest.mark.parametrize("name", ["mdapi", "tdapi"])
def test_every_class_lists_exactly_openctps_attributes(openctp, name):
    theirs, ours = getattr(openctp, name), MODULES[name]
    classes = field_classes(theirs)
    assert len(classes) == 502
    for class_name in classes:
        their_cls, our_cls = getattr(theirs, class_name), getattr(ours, class_name)
        assert dir(our_cls) == dir(their_cls), class_name
        # The one exception: `this`, openctp's pointer to the C struct, which ctpshim has not.
        assert dir(our_cls()) == [n for n in dir(their_cls()) if n != "this"], class_name
        # A serialiser that walks the class's own namespace finds each member as a property.
        members = list(their_cls.__annotations__)
        assert all(isinstance(vars(our_cls)[m], property) for m in members), class_name
        assert {n for n in vars(our_cls) if not n.startswith("__")} == set(members) | {"thisown"}, class_name


def test_a_field_is_not_a_sequence_and_has_no_list_methods():
    import collections.abc
    import typing

    tick = mdapi.CThostFtdcDepthMarketDataField()
    for abc in (typing.Sequence, typing.Iterable, typing.Sized, typing.Container, collections.abc.MutableSequence):
        assert not isinstance(tick, abc), abc
    assert not isinstance(tick, (list, tuple))
    for method in ("append", "extend", "sort", "clear", "index", "count", "insert", "pop", "remove", "reverse",
                   "copy", "__len__", "__iter__", "__getitem__", "__setitem__", "__contains__", "_defaults", "_index"):
        assert not hasattr(tick, method), method
        assert method not in dir(type(tick)) and method not in dir(tick), method


def test_sequence_operations_fail_as_in_openctp(openctp):
    theirs = openctp.mdapi.CThostFtdcDepthMarketDataField()
    ours = mdapi.CThostFtdcDepthMarketDataField()
    other = mdapi.CThostFtdcDepthMarketDataField()
    operations = {
        "len": lambda f, g: len(f),
        "iter": lambda f, g: iter(f),
        "index": lambda f, g: f[0],
        "less": lambda f, g: f < g,
        "greater-equal": lambda f, g: f >= g,
        "in": lambda f, g: 1 in f,
        "add": lambda f, g: f + g,
        "int": lambda f, g: int(f),
    }
    for name, operation in operations.items():
        with pytest.raises(TypeError) as their_error:
            operation(theirs, openctp.mdapi.CThostFtdcDepthMarketDataField())
        with pytest.raises(TypeError) as our_error:
            operation(ours, other)
        assert str(our_error.value) == str(their_error.value), name
    assert ours == ours and ours != other and not (ours == 1)
    assert hash(ours) == hash(ours) and hash(ours) != hash(other) and bool(ours)
    import weakref

    assert weakref.ref(ours)() is ours and weakref.ref(theirs)() is theirs


def test_swig_internals_thisown_and_destroy_behave_and_this_is_absent(openctp):
    theirs, ours = openctp.mdapi.CThostFtdcRspInfoField(), mdapi.CThostFtdcRspInfoField()
    assert ours.thisown is theirs.thisown is True
    for value in (0, "x", None, 2, False, True):
        theirs.thisown = ours.thisown = value
        assert ours.thisown == theirs.thisown, value
    assert mdapi.CThostFtdcRspInfoField.__swig_destroy__(ours) is None
    with pytest.raises(AttributeError):
        ours.this  # noqa: B018
    with pytest.raises(AttributeError):
        del ours.ErrorID
    with pytest.raises(AttributeError):
        del theirs.ErrorID


def test_class_metadata_is_reachable_on_the_class_only():
    from ctpshim.ctp import fields

    cls = mdapi.CThostFtdcDepthMarketDataField
    assert cls._index == fields.member_index(cls) and cls._index["TradingDay"] == 0
    assert tuple(cls._defaults) == fields.default_values(cls)
    assert fields.member_names(cls) == tuple(cls.__annotations__)
    tick = cls()
    with pytest.raises(AttributeError):
        tick._index  # noqa: B018
    with pytest.raises(AttributeError):
        tick._defaults  # noqa: B018
    assert isinstance(tick, fields.Field) and not isinstance(1, fields.Field)


def test_from_values_maker_and_values_of_round_trip_without_aliasing():
    from ctpshim.ctp import fields

    cls = mdapi.CThostFtdcDepthMarketDataField
    values = list(fields.default_values(cls))
    index = fields.member_index(cls)
    values[index["InstrumentID"]], values[index["LastPrice"]], values[index["Volume"]] = "rb2605", 3120.0, 7
    tick = fields.from_values(cls, values)
    made = fields.maker(cls)(tuple(values))
    values[index["LastPrice"]] = 1.0  # the caller goes on using its list
    for obj in (tick, made):
        assert type(obj) is cls
        assert (obj.InstrumentID, obj.LastPrice, obj.Volume) == ("rb2605", 3120.0, 7)
        assert fields.values_of(obj)[index["LastPrice"]] == 3120.0 and len(fields.values_of(obj)) == 48
    tick.LastPrice = 2.5
    assert fields.values_of(tick)[index["LastPrice"]] == 2.5 and made.LastPrice == 3120.0
    with pytest.raises(TypeError):
        fields.maker(int)
    fresh = cls()
    assert fields.values_of(fresh) == fields.default_values(cls)
    fresh.Volume = 3
    assert fields.values_of(fresh) == tuple(3 if i == index["Volume"] else v for i, v in enumerate(fields.default_values(cls)))
    assert fields.values_of(cls()) == fields.default_values(cls)  # the defaults were not changed


def test_copies_are_independent_of_ticks_and_of_assigned_objects():
    from ctpshim.ctp import fields

    cls = mdapi.CThostFtdcDepthMarketDataField
    tick = fields.from_values(cls, fields.default_values(cls))
    tick.note = {"seen": 1}
    for copied in (copy.copy(tick), copy.deepcopy(tick), pickle.loads(pickle.dumps(tick))):
        copied.LastPrice = 9.0
        assert tick.LastPrice == 0.0 and copied.note == {"seen": 1}
    tick.LastPrice = 5.0
    copied = copy.copy(tick)
    tick.LastPrice = 6.0
    assert copied.LastPrice == 5.0
    deep = copy.deepcopy(tick)
    assert deep.note is not tick.note and deep.note == tick.note


def test_a_program_can_subclass_a_field_class():
    class Tick(mdapi.CThostFtdcDepthMarketDataField):
        def mid(self):
            return (self.BidPrice1 + self.AskPrice1) / 2

    tick = Tick()
    tick.BidPrice1, tick.AskPrice1 = 10.0, 12.0
    assert tick.mid() == 11.0 and isinstance(tick, mdapi.CThostFtdcDepthMarketDataField)
    with pytest.raises(TypeError):
        tick.Volume = "5"
    assert "BidPrice1=10.0" in repr(tick) and copy.copy(tick).AskPrice1 == 12.0 and type(copy.copy(tick)) is Tick


# -- char[N] limits, from the spec --

def test_char_limit_is_the_usable_bytes_of_each_char_array(openctp):
    from ctpshim.ctp import fields

    assert fields.char_limit("CThostFtdcFrontInfoField", "FrontAddr") == 100
    assert fields.char_limit("CThostFtdcRspInfoField", "ErrorMsg") == 80
    for class_name, member in [("CThostFtdcDepthMarketDataField", "InstrumentID"), ("CThostFtdcInstrumentField", "InstrumentName"),
                               ("CThostFtdcReqUserLoginField", "UserProductInfo"), ("CThostFtdcSettlementInfoField", "Content")]:
        their_cls = getattr(openctp.mdapi, class_name)
        assert fields.char_limit(class_name, member) == char_array_size(their_cls, member) - 1, (class_name, member)
    with pytest.raises(KeyError):
        fields.char_limit("CThostFtdcNoSuchField", "X")
    with pytest.raises(KeyError):
        fields.char_limit("CThostFtdcRspInfoField", "NoSuchMember")
    with pytest.raises(ValueError):
        fields.char_limit("CThostFtdcRspInfoField", "ErrorID")  # an int
    with pytest.raises(ValueError):
        fields.char_limit("CThostFtdcInputOrderField", "Direction")  # a single char


def test_field_class_gives_the_facade_modules_very_classes():
    from ctpshim.ctp import fields

    for name, module in MODULES.items():
        for class_name in ("CThostFtdcDepthMarketDataField", "CThostFtdcInputOrderField", "CThostFtdcSettlementInfoField"):
            assert fields.field_class(name, class_name) is getattr(module, class_name)
    assert fields.field_class("mdapi", "CThostFtdcRspInfoField") is not fields.field_class("tdapi", "CThostFtdcRspInfoField")
    with pytest.raises(ValueError):
        fields.field_class("md", "CThostFtdcRspInfoField")
