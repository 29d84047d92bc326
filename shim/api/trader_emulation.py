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

Queries are answered from the IO thread, in the order they were sent, from what the session caches
of the source; a replay's instruments are known before ``OnFrontConnected``, so a query sent as
soon as the login is answered lists them all.

Everything that would trade or move money (orders, cancels, quotes, exercise, transfers,
password changes) is refused through the normal CTP error path: ``OnRsp*`` with ErrorID 27
("CTP:不支持的功能", unsupported function) and a note that this front cannot trade, plus the
matching ``OnErrRtn*`` where CTP has one.  Queries have no flow control here.
"""

from __future__ import annotations

import copy
import logging
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..runtime import io_loop
from ..ctp import clock
from ..ctp.calendar import yyyymmdd
from ..ctp.error_codes import error
from ..ctp.exchanges import FUTURES_EXCHANGES
from ..ctp.fields import char_limit, default_values, from_values, load_spec, member_index, member_names, values_of
from ..ctp.market_data import DBL_MAX
from ..ctp.stocks import StockInfo
from .responders import MdResponder

if TYPE_CHECKING:
    from ..runtime.backends import SessionBackend

log = logging.getLogger("ctpshim")

UNSUPPORTED = error("UNSUPPORTED_FUNCTION")  # 27, "CTP:不支持的功能"

LOGINS = {"ReqUserLogin", "ReqUserLoginWithCaptcha", "ReqUserLoginWithText", "ReqUserLoginWithOTP"}


@lru_cache(maxsize=1)
def _spi_params() -> dict[str, list[str]]:
    spi = load_spec()["modules"]["tdapi"]["spi"]["methods"]
    return {m["name"]: [annotation for _, annotation in m["params"]] for m in spi}


class TraderResponder(MdResponder):
    """Answers a trader API's requests on a market-data-only front (see the module docstring);
    the simulated counter's responder (:class:`ctpshim.broker.responder.CounterResponder`) builds
    on it and refuses what it does not do the same way, with its own ``refuse_note``."""

    refuse_note = ""  # why requests are refused; empty: "<scheme>:// is market data only"

    def __init__(self, module: Any) -> None:
        super().__init__(module)
        # (BrokerID, InvestorID, ConfirmDate, ConfirmTime) of the last ReqSettlementInfoConfirm
        self.settlement_confirmed: tuple[str, str, str, str] | None = None

    def request(self, front: "SessionBackend", name: str, field: Any, request_id: int) -> int:
        """Answer the trader request ``name`` on a connected front; returns CTP's send code."""
        if name in LOGINS:
            return self.login(front, field, request_id)
        if name == "ReqUserLogout":
            return self.logout(front, field, request_id)
        if name == "ReqAuthenticate":
            response = self.field(
                "CThostFtdcRspAuthenticateField",
                BrokerID=field.BrokerID,
                UserID=field.UserID,
                UserProductInfo=field.UserProductInfo,
                AppID=field.AppID,
                AppType="1",  # THOST_FTDC_APP_TYPE_Investor
            )
            front.post("OnRspAuthenticate", response, self.rsp_info(), request_id, True)
            return 0
        if name == "ReqSettlementInfoConfirm":
            now = clock.now()
            self.settlement_confirmed = (
                field.BrokerID, field.InvestorID, yyyymmdd(now.date()), now.strftime("%H:%M:%S"))
            front.post("OnRspSettlementInfoConfirm", self._confirmation(), self.rsp_info(), request_id, True)
            return 0
        if name.startswith("ReqQry"):
            # A copy: the program may reuse its struct as soon as the call returns.
            io_loop.call_soon(self._answer_query, front, name, copy.copy(field), request_id)
            return 0
        self._refuse(front, name, field, request_id)
        return 0

    def _answer_query(self, front: "SessionBackend", name: str, field: Any, request_id: int) -> None:
        """On the IO thread: one ``OnRspQry*`` per record, ``bIsLast`` on the last (one with None for none)."""
        try:
            records = self._query(front, name, field)
        except Exception:  # noqa: BLE001 - a source's failure must not leave the program waiting for bIsLast
            log.exception("%s: the source failed to answer %s; answered with no records", front.name, name)
            records = []
        callback = "OnRsp" + name[3:]
        if not records:
            front.post(callback, None, None, request_id, True)
        for index, record in enumerate(records):
            front.post(callback, record, None, request_id, index == len(records) - 1)

    def _confirmation(self) -> Any:
        if self.settlement_confirmed is None:
            return None
        broker, investor, day, clock = self.settlement_confirmed
        return self.field(
            "CThostFtdcSettlementInfoConfirmField", BrokerID=broker, InvestorID=investor, ConfirmDate=day,
            ConfirmTime=clock,
        )

    def _query(self, front: "SessionBackend", name: str, field: Any) -> list[Any]:
        if name == "ReqQrySettlementInfoConfirm":
            record = self._confirmation()
            return [record] if record is not None else []
        if name == "ReqQryExchange":
            return [
                self.field("CThostFtdcExchangeField", ExchangeID=exchange, ExchangeName=title, ExchangeProperty="0")
                for exchange, title in FUTURES_EXCHANGES.items()
                if field.ExchangeID in ("", exchange)
            ]
        if name == "ReqQryInstrument":
            return [self._instrument(info) for info in front.instruments() if _matches(field, info)]
        return []

    def _instrument(self, info: Any) -> Any:
        """What ReqQryInstrument answers for a futures contract or a stock the source knows."""
        members: dict[str, Any] = dict(
            reserve1=info.instrument_id[:_old_id_limit()],
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
            return self.field("CThostFtdcInstrumentField", **members)
        product = info.product
        members.update(
            ExchangeInstID=info.instrument_id,
            InstrumentName=info.name,
            ProductClass="1",  # THOST_FTDC_PC_Futures
            DeliveryYear=info.delivery_year,
            DeliveryMonth=info.delivery_month,
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
        return self.field("CThostFtdcInstrumentField", **members)

    def _login_response(self, front: "SessionBackend", request: Any, trading_day: str) -> Any:
        """The ``CThostFtdcRspUserLoginField`` of a login to ``front`` on ``trading_day``."""
        now = clock.now().strftime("%H:%M:%S")
        return self.field(
            "CThostFtdcRspUserLoginField", TradingDay=trading_day, LoginTime=now, BrokerID=request.BrokerID,
            UserID=request.UserID, SystemName="ctpshim", FrontID=front.front_id, SessionID=front.session_id,
            MaxOrderRef="1", SHFETime=now, DCETime=now, CZCETime=now, FFEXTime=now, INETime=now, GFEXTime=now,
        )

    def _refuse(self, front: "SessionBackend", name: str, field: Any, request_id: int) -> None:
        """Refuse ``name`` with 27 (and its OnErrRtn* where CTP has one), saying why."""
        scheme = front.front_url.split("://", 1)[0] or "this"
        note = self.refuse_note or f"{scheme}:// is market data only; it cannot trade"
        message = UNSUPPORTED.message + f" ({note})"
        if len(message.encode("gb18030")) > _error_message_limit():
            message = UNSUPPORTED.message + " (this front cannot do this)"
        params = _spi_params()
        suffix = name[3:]
        for callback in ("OnRsp" + suffix, "OnErrRtn" + suffix):
            if callback not in params:
                continue
            echo = self._echo(field, params[callback][0])
            info = self.rsp_info(UNSUPPORTED.code, message)
            if callback.startswith("OnRsp"):
                front.post(callback, echo, info, request_id, True)
            else:
                front.post(callback, echo, info)

    def _echo(self, request: Any, class_name: str) -> Any:
        """The request echoed back as ``class_name``: members with the same name are copied."""
        cls = getattr(self.module, class_name)
        given, values = member_index(type(request)), values_of(request)
        echoed = [values[given[name]] if name in given else default
                  for name, default in zip(member_names(cls), default_values(cls))]
        return from_values(cls, echoed)


def _matches(query: Any, info: Any) -> bool:
    return (
        query.InstrumentID in ("", info.instrument_id)
        and query.ExchangeID in ("", info.exchange_id)
        and query.ProductID in ("", info.product_id)
        and query.ExchangeInstID in ("", info.instrument_id)
    )


@lru_cache(maxsize=1)
def _error_message_limit() -> int:
    return char_limit("CThostFtdcRspInfoField", "ErrorMsg")


@lru_cache(maxsize=1)
def _old_id_limit() -> int:
    return char_limit("CThostFtdcInstrumentField", "reserve1")
