"""An openctp-ctp program that serialises what it receives as many public ones do (used, unedited,
by the facade's tests): a generic encoder that treats sequences as lists and walks ``dir()`` of
everything else, skipping only SWIG's own ``this``/``thisown``.  Prints one JSON line per
callback: the login reply, then ticks, then the trader's instrument query."""

import json
import sys
import threading
import typing

from openctp_ctp import mdapi, tdapi

done = threading.Event()
queried = threading.Event()
printing = threading.Lock()  # md and td callbacks run on two threads


def jsonable(obj):
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, bytes):
        return obj.decode("gbk", "replace")
    if isinstance(obj, typing.Sequence):
        return [jsonable(item) for item in obj]
    return {name: jsonable(getattr(obj, name)) for name in dir(obj)
            if not name.startswith("_") and name not in ("this", "thisown")}


def emit(kind, obj):
    line = json.dumps({"kind": kind, "type": type(obj).__name__, "value": jsonable(obj)}, ensure_ascii=False)
    with printing:
        print(line, flush=True)


class MdSpi(mdapi.CThostFtdcMdSpi):
    def __init__(self, api):
        super().__init__()
        self.api = api
        self.count = 0

    def OnFrontConnected(self):
        request = mdapi.CThostFtdcReqUserLoginField()
        assert not isinstance(request, typing.Sequence)
        self.api.ReqUserLogin(request, 0)

    def OnRspUserLogin(self, pRspUserLogin, pRspInfo, nRequestID, bIsLast):
        emit("login", pRspUserLogin)
        self.api.SubscribeMarketData([b"rb2701"], 1)

    def OnRtnDepthMarketData(self, pDepthMarketData):
        self.count += 1
        emit("tick", pDepthMarketData)
        if self.count >= int(sys.argv[1]):
            done.set()


class TdSpi(tdapi.CThostFtdcTraderSpi):
    def __init__(self, api):
        super().__init__()
        self.api = api

    def OnFrontConnected(self):
        self.api.ReqUserLogin(tdapi.CThostFtdcReqUserLoginField(), 1)

    def OnRspUserLogin(self, pRspUserLogin, pRspInfo, nRequestID, bIsLast):
        query = tdapi.CThostFtdcQryInstrumentField()
        query.InstrumentID = "rb2701"
        self.api.ReqQryInstrument(query, 2)

    def OnRspQryInstrument(self, pInstrument, pRspInfo, nRequestID, bIsLast):
        if pInstrument is not None:
            emit("instrument", pInstrument)
        if bIsLast:
            queried.set()


md = mdapi.CThostFtdcMdApi.CreateFtdcMdApi()
md_spi = MdSpi(md)
md.RegisterSpi(md_spi)
md.RegisterFront("tcp://180.168.146.187:10131")
td = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi()
td_spi = TdSpi(td)
td.RegisterSpi(td_spi)
td.RegisterFront("tcp://180.168.146.187:10130")
md.Init()
td.Init()
if not (done.wait(30) and queried.wait(30)):
    print("timed out")
    sys.exit(3)
md.Release()
td.Release()
