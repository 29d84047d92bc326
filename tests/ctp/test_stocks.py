"""Stock codes: which exchange, which symbol, which hours; stocks in ReqQryInstrument."""

from __future__ import annotations

from datetime import datetime
from typing import Any, AsyncIterator

import pytest

from ctpshim.fronts import registry
from ctpshim import tdapi
from ctpshim.adapters.base import Adapter, Capabilities
from ctpshim.ctp.stocks import StockInfo, is_open, parse_stock

from ..conftest import wait_for
from ..api.test_td_emulation import RecordingTraderSpi


@pytest.mark.parametrize("code, exchange, symbol, kind, tick", [
    ("600519", "SSE", "sh600519", "stock", 0.01),
    ("688981", "SSE", "sh688981", "stock", 0.01),
    ("510300", "SSE", "sh510300", "fund", 0.001),
    ("508000", "SSE", "sh508000", "fund", 0.001),
    ("000001", "SZSE", "sz000001", "stock", 0.01),
    ("300059", "SZSE", "sz300059", "stock", 0.01),
    ("159915", "SZSE", "sz159915", "fund", 0.001),
    ("161725", "SZSE", "sz161725", "fund", 0.001),
    ("920118", "BSE", "bj920118", "stock", 0.01),
    ("430047", "BSE", "bj430047", "stock", 0.01),
    ("00700", "HKEX", "hk00700", "stock", 0.001),
    ("sh000001", "SSE", "sh000001", "stock", 0.01),  # the prefix picks the SSE index over Ping An Bank
    ("sz399001", "SZSE", "sz399001", "stock", 0.01),
])
def test_codes_map_to_exchanges_and_symbols(code, exchange, symbol, kind, tick):
    info = parse_stock(code)
    assert info is not None and info.instrument_id == code
    assert (info.exchange_id, info.symbol, info.kind, info.price_tick) == (exchange, symbol, kind, tick)


@pytest.mark.parametrize("code", ["rb2605", "TA605", "700000", "1234", "1234567", "hk600519", "sh00700", "60051x", ""])
def test_other_ids_are_not_stocks(code):
    assert parse_stock(code) is None


def test_trading_hours_per_market():
    thursday = datetime(2026, 8, 6)
    assert is_open("SSE", thursday.replace(hour=10)) and is_open("HKEX", thursday.replace(hour=10))
    assert not is_open("SSE", thursday.replace(hour=11, minute=45)) and is_open("HKEX", thursday.replace(hour=11, minute=45))
    assert not is_open("BSE", thursday.replace(hour=15, minute=30)) and is_open("HKEX", thursday.replace(hour=15, minute=30))
    assert not is_open("HKEX", datetime(2026, 8, 8, 10, 0))  # a Saturday
    assert not is_open("SSE", datetime(2026, 10, 1, 10, 0))  # National Day


class _StockSource(Adapter):
    """A source that knows two stocks, to see what ReqQryInstrument makes of them."""

    scheme = "stockstub"
    capabilities = Capabilities(has_instruments=True)

    async def connect(self) -> None:
        return None

    async def subscribe(self, ids: Any) -> None:
        return None

    async def unsubscribe(self, ids: Any) -> None:
        return None

    async def ticks(self) -> AsyncIterator[list[Any]]:
        if False:
            yield []

    def instruments(self) -> list[Any]:
        return [StockInfo("600519", "SSE", "600519", "贵州茅台"), StockInfo("510300", "SSE", "510300", "沪深300ETF")]


@pytest.fixture
def stock_front():
    registry.register_adapter("stockstub", _StockSource)
    yield "stockstub://"
    registry.unregister_adapter("stockstub")


def test_stocks_answer_req_qry_instrument_as_spot_instruments(make_td, stock_front):
    spi = RecordingTraderSpi()
    api = make_td(spi, stock_front + "?trader.flow_control=false")  # two queries back to back
    wait_for(lambda: spi.get("OnFrontConnected"))
    query = tdapi.CThostFtdcQryInstrumentField()
    query.ProductID = "SSE_fund"
    assert api.ReqQryInstrument(tdapi.CThostFtdcQryInstrumentField(), 1) == 0
    assert api.ReqQryInstrument(query, 2) == 0
    wait_for(lambda: len(spi.get("OnRspQryInstrument")) == 3)
    every, funds = spi.get("OnRspQryInstrument")[:2], spi.get("OnRspQryInstrument")[2:]
    moutai = every[0][0]
    assert (moutai.InstrumentID, moutai.ExchangeID, moutai.InstrumentName) == ("600519", "SSE", "贵州茅台")
    assert moutai.ProductClass == tdapi.THOST_FTDC_PC_Spot and (moutai.VolumeMultiple, moutai.PriceTick) == (1, 0.01)
    assert [f[0].InstrumentID for f in funds] == ["510300"] and funds[0][0].PriceTick == 0.001 and funds[0][3] is True
