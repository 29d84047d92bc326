"""What a market-data-only front answers to ``CThostFtdcTraderApi`` requests.

Programs written for a real front start the trader API too (authenticate, log in, confirm the
settlement, query instruments), so these succeed:

* ``ReqAuthenticate`` -> ``OnRspAuthenticate``; ``ReqUserLogin`` (and its captcha / text / OTP
  variants) -> ``OnRspUserLogin``; ``ReqUserLogout`` -> ``OnRspUserLogout``;
* ``ReqSettlementInfoConfirm`` -> ``OnRspSettlementInfoConfirm`` (and
  ``ReqQrySettlementInfoConfirm`` reports it afterwards);
* ``ReqQryInstrument`` -> one ``OnRspQryInstrument`` per instrument the source knows (exchange,
  product, tick size, multiplier...), filtered like CTP (an empty filter field matches all);
  ``ReqQryExchange`` -> the six exchanges;
* every other query -> one ``OnRspQry*(None, None, nRequestID, True)``: no records.

Queries are answered from the IO thread, in the order they were sent, with what the source knows
there (the caller's thread never runs adapter code); a replay's instruments are known before
``OnFrontConnected``, so a query sent as soon as the login is answered lists them all.

Everything that would trade or move money (orders, cancels, quotes, exercise, transfers,
password changes) is refused through the normal CTP error path: ``OnRsp*`` with ErrorID 27
("CTP:不支持的功能", unsupported function) and a note that this front cannot trade, plus the
matching ``OnErrRtn*`` where CTP has one.  Queries have no flow control here.
"""

from __future__ import annotations

import copy
import logging
from functools import lru_cache
from typing import Any

from ..runtime import io_loop
from ..ctp.calendar import now_china, yyyymmdd
from ..ctp.fields import load_spec
from ..ctp.market_data import DBL_MAX
from ..ctp.stocks import StockInfo

log = logging.getLogger("ctpshim")

UNSUPPORTED_FUNCTION = 27
UNSUPPORTED_MESSAGE = "CTP:不支持的功能"

EXCHANGE_NAMES = {
    "SHFE": "上海期货交易所",
    "INE": "上海国际能源交易中心",
    "DCE": "大连商品交易所",
    "CZCE": "郑州商品交易所",
    "CFFEX": "中国金融期货交易所",
    "GFEX": "广州期货交易所",
}

_LOGINS = {"ReqUserLogin", "ReqUserLoginWithCaptcha", "ReqUserLoginWithText", "ReqUserLoginWithOTP"}


@lru_cache(maxsize=1)
def _spi_params() -> dict[str, list[str]]:
    spi = load_spec()["modules"]["tdapi"]["spi"]["methods"]
    return {m["name"]: [annotation for _, annotation in m["params"]] for m in spi}


def td_request(api: Any, name: str, field: Any, request_id: int) -> int:
    """Answer the trader request ``name``; returns CTP's send code."""
    if not api._connected():
        return -1
    if name in _LOGINS:
        return api._login(field, request_id)
    if name == "ReqUserLogout":
        return api._logout(field, request_id)
    if name == "ReqAuthenticate":
        response = api._field(
            "CThostFtdcRspAuthenticateField",
            BrokerID=field.BrokerID,
            UserID=field.UserID,
            UserProductInfo=field.UserProductInfo,
            AppID=field.AppID,
            AppType="1",  # THOST_FTDC_APP_TYPE_Investor
        )
        api._post("OnRspAuthenticate", response, api._rsp_info(), request_id, True)
        return 0
    if name == "ReqSettlementInfoConfirm":
        now = now_china()
        api._settlement_confirmed = (field.BrokerID, field.InvestorID, yyyymmdd(now.date()), now.strftime("%H:%M:%S"))
        api._post("OnRspSettlementInfoConfirm", _confirmation(api), api._rsp_info(), request_id, True)
        return 0
    if name.startswith("ReqQry"):
        # A copy: the program may reuse its struct as soon as the call returns.
        io_loop.call_soon(_answer_query, api, name, copy.copy(field), request_id)
        return 0
    _refuse(api, name, field, request_id)
    return 0


def _answer_query(api: Any, name: str, field: Any, request_id: int) -> None:
    """On the IO thread: one ``OnRspQry*`` per record, ``bIsLast`` on the last (one with None for none)."""
    try:
        records = _query(api, name, field)
    except Exception:  # noqa: BLE001 - a source's failure must not leave the program waiting for bIsLast
        log.exception("%s: the source failed to answer %s; answered with no records", api._name, name)
        records = []
    callback = "OnRsp" + name[3:]
    if not records:
        api._post(callback, None, None, request_id, True)
    for index, record in enumerate(records):
        api._post(callback, record, None, request_id, index == len(records) - 1)


def _confirmation(api: Any) -> Any:
    if api._settlement_confirmed is None:
        return None
    broker, investor, day, clock = api._settlement_confirmed
    return api._field(
        "CThostFtdcSettlementInfoConfirmField", BrokerID=broker, InvestorID=investor, ConfirmDate=day, ConfirmTime=clock
    )


def _query(api: Any, name: str, field: Any) -> list[Any]:
    if name == "ReqQrySettlementInfoConfirm":
        record = _confirmation(api)
        return [record] if record is not None else []
    if name == "ReqQryExchange":
        return [
            api._field("CThostFtdcExchangeField", ExchangeID=exchange, ExchangeName=title, ExchangeProperty="0")
            for exchange, title in EXCHANGE_NAMES.items()
            if field.ExchangeID in ("", exchange)
        ]
    if name == "ReqQryInstrument":
        session = api._session
        adapter = session.adapter if session is not None else None
        known = adapter.instruments() if adapter is not None else []
        return [_instrument(api, info) for info in known if _matches(field, info)]
    return []


def _matches(query: Any, info: Any) -> bool:
    return (
        query.InstrumentID in ("", info.instrument_id)
        and query.ExchangeID in ("", info.exchange_id)
        and query.ProductID in ("", info.product_id)
        and query.ExchangeInstID in ("", info.instrument_id)
    )


def _instrument(api: Any, info: Any) -> Any:
    """What ReqQryInstrument answers for a futures contract or a stock the source knows."""
    members: dict[str, Any] = dict(
        reserve1=info.instrument_id[:30],
        InstrumentID=info.instrument_id,
        ExchangeID=info.exchange_id,
        ProductID=info.product_id,
        MinMarketOrderVolume=1,
        MinLimitOrderVolume=1,
        InstLifePhase="1",  # THOST_FTDC_IP_Started
        IsTrading=1,
        PositionType="2",  # THOST_FTDC_PT_Gross
        MaxMarginSideAlgorithm="0",
        StrikePrice=DBL_MAX,
        UnderlyingMultiple=1.0,
    )
    if isinstance(info, StockInfo):  # ProductClass Spot: CTP has no stock class; no expiry
        members.update(
            ExchangeInstID=info.code,
            InstrumentName=info.name or info.code,
            ProductClass="4",  # THOST_FTDC_PC_Spot
            MaxMarketOrderVolume=1_000_000,
            MaxLimitOrderVolume=1_000_000,
            VolumeMultiple=1,
            PriceTick=info.price_tick,
            PositionDateType="2",
        )
        return api._field("CThostFtdcInstrumentField", **members)
    product = info.product
    year, month = info.delivery_year, info.delivery_month
    members.update(
        ExchangeInstID=info.instrument_id,
        InstrumentName=info.name,
        ProductClass="1",  # THOST_FTDC_PC_Futures
        DeliveryYear=year,
        DeliveryMonth=month,
        MaxMarketOrderVolume=1000,
        MaxLimitOrderVolume=1000,
        VolumeMultiple=product.multiplier,
        PriceTick=product.tick,
        CreateDate=yyyymmdd(info.create_date),
        OpenDate=yyyymmdd(info.open_date),
        ExpireDate=yyyymmdd(info.expire_date),
        StartDelivDate=yyyymmdd(info.start_deliv_date),
        EndDelivDate=yyyymmdd(info.end_deliv_date),
        PositionDateType="1" if product.exchange in ("SHFE", "INE") else "2",
        LongMarginRatio=0.1,
        ShortMarginRatio=0.1,
        CombinationType="0",  # THOST_FTDC_COMBT_Future
    )
    return api._field("CThostFtdcInstrumentField", **members)


def _refuse(api: Any, name: str, field: Any, request_id: int) -> None:
    session = api._session
    scheme = session.front_url.split("://", 1)[0] if session is not None else "this"
    note = f" ({scheme}:// is market data only; it cannot trade)"
    message = UNSUPPORTED_MESSAGE + note
    if len(message.encode("gb18030")) > 80:
        message = UNSUPPORTED_MESSAGE + " (this front cannot trade)"
    params = _spi_params()
    suffix = name[3:]
    for callback in ("OnRsp" + suffix, "OnErrRtn" + suffix):
        if callback not in params:
            continue
        echo = _echo(api, field, params[callback][0])
        info = api._rsp_info(UNSUPPORTED_FUNCTION, message)
        if callback.startswith("OnRsp"):
            api._post(callback, echo, info, request_id, True)
        else:
            api._post(callback, echo, info)


def _echo(api: Any, request: Any, class_name: str) -> Any:
    """The request echoed back as ``class_name``: members with the same name are copied."""
    echo = getattr(api._module, class_name)()
    source = type(request)._index
    for name, position in type(echo)._index.items():
        if name in source:
            echo[position] = request[source[name]]
    return echo
