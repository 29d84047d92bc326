"""API objects: creation, flow files, argument checks and return codes before a connection,
compared with what openctp-ctp does offline."""

from __future__ import annotations

import os

import pytest

from ctpshim import mdapi, tdapi


@pytest.fixture
def md(flow_dir):
    api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(flow_dir + "md_")
    yield api
    api.Release()


@pytest.fixture
def td(flow_dir):
    api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(flow_dir + "td_")
    yield api
    api.Release()


def test_flow_path_is_a_prefix_and_its_files_are_created(flow_dir, md, td):
    files = sorted(os.listdir(flow_dir))
    assert files == ["md_DialogRsp.con", "md_QueryRsp.con", "md_TradingDay.con",
                     "td_DialogRsp.con", "td_QueryRsp.con", "td_TradingDay.con"]


def test_trader_adds_private_and_public_flow_files_at_init(flow_dir, td):
    td.RegisterFront("sim://")
    td.Init()
    assert {"td_Private.con", "td_Public.con"} <= set(os.listdir(flow_dir))


def test_a_missing_flow_directory_is_a_clear_error(tmp_path):
    missing = str(tmp_path / "nope") + os.sep
    with pytest.raises(FileNotFoundError, match="does not exist.*create it first"):
        mdapi.CThostFtdcMdApi.CreateFtdcMdApi(missing)


def test_create_arguments(flow_dir):
    api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(flow_dir, False, False, True)
    api.Release()
    with pytest.raises(TypeError):
        mdapi.CThostFtdcMdApi.CreateFtdcMdApi(b"x")
    with pytest.raises(TypeError):
        mdapi.CThostFtdcMdApi.CreateFtdcMdApi(flow_dir, "yes")
    with pytest.raises(TypeError):
        tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(flow_dir, True, 1)


def test_before_a_connection_requests_return_minus_one_and_trading_day_is_19800100(md, td):
    login = mdapi.CThostFtdcReqUserLoginField()
    assert md.ReqUserLogin(login, 1) == -1
    assert md.SubscribeMarketData([b"rb2605"], 1) == -1
    assert md.SubscribeMarketData([], 0) == -1
    assert md.GetTradingDay() == "19800100"
    assert td.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 1) == -1  # a struct of the other module is fine
    assert td.ReqQryInstrument(tdapi.CThostFtdcQryInstrumentField(), 1) == -1
    assert td.ReqOrderInsert(tdapi.CThostFtdcInputOrderField(), 1) == -1
    assert td.GetTradingDay() == "19800100"
    info = tdapi.CThostFtdcFrontInfoField()
    td.GetFrontInfo(info)
    assert (info.FrontAddr, info.QryFreq, info.FTDPkgFreq) == ("", 0, 0)


@pytest.mark.parametrize("call, error", [
    (lambda api: api.SubscribeMarketData((b"rb2605",), 1), "not a list"),
    (lambda api: api.SubscribeMarketData([5], 1), "list must contain strings"),
    (lambda api: api.SubscribeMarketData([b"rb2605"]), None),
    (lambda api: api.SubscribeMarketData([b"rb2605"], "1"), "argument 3 of type 'int'"),
    (lambda api: api.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField()), None),
    (lambda api: api.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), nRequestID=1), None),
    (lambda api: api.ReqUserLogin(mdapi.CThostFtdcUserLogoutField(), 1), "CThostFtdcReqUserLoginField \\*"),
    (lambda api: api.ReqUserLogin(None, 1), "CThostFtdcReqUserLoginField \\*"),
    (lambda api: api.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 1.0), "argument 3 of type 'int'"),
    (lambda api: api.RegisterFront(b"sim://"), "argument 2 of type 'char \\*'"),
    (lambda api: api.RegisterSpi(object()), "CThostFtdcMdSpi"),
])
def test_wrong_argument_types_raise_type_error(md, call, error):
    with pytest.raises(TypeError, match=error):
        call(md)


def test_wrong_types_raise_type_error_in_openctp_too(openctp, flow_dir):
    """The cases above where openctp-ctp raises TypeError, checked against the real thing."""
    theirs = openctp.mdapi.CThostFtdcMdApi.CreateFtdcMdApi(flow_dir + "real_")
    login = openctp.mdapi.CThostFtdcReqUserLoginField()
    for call in (
        lambda: theirs.SubscribeMarketData((b"rb2605",), 1),
        lambda: theirs.SubscribeMarketData([b"rb2605"]),
        lambda: theirs.SubscribeMarketData([b"rb2605"], "1"),
        lambda: theirs.ReqUserLogin(login),
        lambda: theirs.ReqUserLogin(login, nRequestID=1),
        lambda: theirs.ReqUserLogin(openctp.mdapi.CThostFtdcUserLogoutField(), 1),
        lambda: theirs.RegisterFront(b"tcp://127.0.0.1:1"),
    ):
        with pytest.raises(TypeError):
            call()
    assert theirs.ReqUserLogin(login, 1) == -1
    assert theirs.GetTradingDay() == "19800100"


def test_subscribe_private_topic_takes_an_int(td):
    td.SubscribePrivateTopic(tdapi.THOST_TERT_RESTART)
    with pytest.raises(TypeError, match="THOST_TE_RESUME_TYPE"):
        td.SubscribePrivateTopic("2")


def test_get_api_version_is_static_and_on_instances(md):
    assert md.GetApiVersion() == mdapi.CThostFtdcMdApi.GetApiVersion() == "v6.7.11_20250617 16:22:00.10369"


def test_using_a_released_object_raises_instead_of_crashing(flow_dir):
    api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(flow_dir)
    api.Release()
    api.Release()  # a second Release is harmless
    with pytest.raises(RuntimeError, match="released"):
        api.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 1)
    with pytest.raises(RuntimeError, match="released"):
        api.Init()


def test_init_twice_is_an_error(md):
    md.RegisterFront("sim://")
    md.Init()
    with pytest.raises(RuntimeError, match="already"):
        md.Init()
