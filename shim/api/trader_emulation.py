"""What every ctpshim front's trader API answers the same way, beside the simulated counter.

:class:`TraderResponder` is the base of the counter's responder
(:class:`ctpshim.broker.responder.CounterResponder`), which owns logins, confirmations, orders,
cancels and queries.  Here:

* ``ReqAuthenticate`` -> ``OnRspAuthenticate`` (authentication always succeeds);
* the login reply's fields and ``ReqUserLogout`` -> ``OnRspUserLogout``;
* what ``ReqQryInstrument`` says of an instrument the source lists (exchange, product, name,
  dates), with its trading terms (:mod:`ctpshim.broker.terms`: tick, multiplier, margin ratios,
  PositionDateType, MaxMarginSideAlgorithm, order volumes);
* the refusal of every request no ctpshim front does (quotes, exercise, transfers, password
  changes...) through the normal CTP error path: ``OnRsp*`` with ErrorID 27 ("CTP:不支持的功能",
  unsupported function) and a note saying why, plus the matching ``OnErrRtn*`` where CTP has one;
* a request echoed back as the reply's field class.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..ctp.calendar import yyyymmdd
from ..ctp.error_codes import error
from ..ctp.fields import char_limit, default_values, from_values, load_spec, member_index, member_names, values_of
from ..ctp.market_data import DBL_MAX
from ..ctp.stocks import StockInfo
from .responders import MdResponder

if TYPE_CHECKING:
    from ..runtime.backends import SessionBackend

UNSUPPORTED = error("UNSUPPORTED_FUNCTION")  # 27, "CTP:不支持的功能"

LOGINS = {"ReqUserLogin", "ReqUserLoginWithCaptcha", "ReqUserLoginWithText", "ReqUserLoginWithOTP"}


@lru_cache(maxsize=1)
def _spi_params() -> dict[str, list[str]]:
    spi = load_spec()["modules"]["tdapi"]["spi"]["methods"]
    return {m["name"]: [annotation for _, annotation in m["params"]] for m in spi}


class TraderResponder(MdResponder):
    """What every ctpshim front's trader API answers the same way (see the module docstring); the
    simulated counter's responder builds on it, with its own ``refuse_note``."""

    refuse_note = "this front does not do this"  # why requests are refused, in the RspInfo message

    def request(self, front: "SessionBackend", name: str, field: Any, request_id: int) -> int:
        """Logins, logouts and ``ReqAuthenticate``; every other request is refused (27)."""
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
        self._refuse(front, name, field, request_id)
        return 0

    def _instrument(self, info: Any, terms: Any = None) -> Any:
        """What ReqQryInstrument answers for a futures contract or a stock the source knows, with
        its trading ``terms`` (default: :func:`ctpshim.broker.terms.terms_for` of it)."""
        from ..broker.queries import instrument_members
        from ..broker.terms import terms_for

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
            StrikePrice=DBL_MAX,
            UnderlyingMultiple=1.0,
        )
        if isinstance(info, StockInfo):  # ProductClass Spot: CTP has no stock class; no expiry
            members.update(
                ExchangeInstID=info.code,
                InstrumentName=info.name or info.code,
                ProductClass="4",  # THOST_FTDC_PC_Spot
            )
            return self.field("CThostFtdcInstrumentField", **members, **instrument_members(terms or terms_for(info)))
        members.update(
            ExchangeInstID=info.instrument_id,
            InstrumentName=info.name,
            ProductClass="1",  # THOST_FTDC_PC_Futures
            DeliveryYear=info.delivery_year,
            DeliveryMonth=info.delivery_month,
            CreateDate=yyyymmdd(info.create_date),
            OpenDate=yyyymmdd(info.open_date),
            ExpireDate=yyyymmdd(info.expire_date),
            StartDelivDate=yyyymmdd(info.start_deliv_date),
            EndDelivDate=yyyymmdd(info.end_deliv_date),
            CombinationType="0",  # THOST_FTDC_COMBT_Future
        )
        return self.field("CThostFtdcInstrumentField", **members, **instrument_members(terms or terms_for(info)))

    def _refuse(self, front: "SessionBackend", name: str, field: Any, request_id: int) -> None:
        """Refuse ``name`` with 27 (and its OnErrRtn* where CTP has one), saying why."""
        message = UNSUPPORTED.message + f" ({self.refuse_note})"
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


@lru_cache(maxsize=1)
def _error_message_limit() -> int:
    return char_limit("CThostFtdcRspInfoField", "ErrorMsg")


@lru_cache(maxsize=1)
def _old_id_limit() -> int:
    return char_limit("CThostFtdcInstrumentField", "reserve1")
