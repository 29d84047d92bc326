"""What a ctpshim front answers to an md API's requests: log in, log out, subscription replies.

The trader API's answers build on these (:mod:`ctpshim.api.trader_emulation`).  A responder runs on
the caller's thread, posts every answer through its front (a
:class:`ctpshim.runtime.backends.SessionBackend`) and reads only what the front caches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..ctp import clock
from ..ctp.error_codes import error

if TYPE_CHECKING:
    from ..runtime.backends import SessionBackend

SUCCESS_MESSAGE = error("NONE").message  # "CTP:正确"
SUBSCRIPTION_MESSAGE = "CTP:No Error"  # what a CTP md front writes in its subscription replies


class MdResponder:
    """Answers an md API's requests; ``module`` is the facade module whose field classes it posts."""

    def __init__(self, module: Any) -> None:
        self.module = module

    def field(self, name: str, **values: Any) -> Any:
        """A new field object of the module's class ``name`` with ``values`` set."""
        obj = getattr(self.module, name)()
        for key, value in values.items():
            setattr(obj, key, value)
        return obj

    def rsp_info(self, error_id: int = 0, message: str = SUCCESS_MESSAGE) -> Any:
        return self.field("CThostFtdcRspInfoField", ErrorID=error_id, ErrorMsg=message)

    def request(self, front: "SessionBackend", name: str, field: Any, request_id: int) -> int:
        """``ReqUserLogin``, ``ReqUserLogout`` and ``ReqQryMulticastInstrument`` (no records), on a
        connected front (the backend answers for the others)."""
        if name == "ReqUserLogin":
            return self.login(front, field, request_id)
        if name == "ReqUserLogout":
            return self.logout(front, field, request_id)
        front.post("OnRspQryMulticastInstrument", None, None, request_id, True)
        return 0

    def subscribed(self, front: "SessionBackend", callback: str, ids: list[str]) -> None:
        for index, instrument in enumerate(ids):
            specific = self.field("CThostFtdcSpecificInstrumentField", InstrumentID=instrument)
            front.post(callback, specific, self.rsp_info(0, SUBSCRIPTION_MESSAGE), 0, index == len(ids) - 1)

    def login(self, front: "SessionBackend", request: Any, request_id: int) -> int:
        """``OnRspUserLogin`` with the source's trading day, China time and the front's session."""
        day = front.source_trading_day()
        front.post("OnRspUserLogin", self.login_response(front, request, day), self.rsp_info(), request_id, True)
        front.logged_in(day)
        return 0

    def login_response(self, front: "SessionBackend", request: Any, trading_day: str) -> Any:
        """The ``CThostFtdcRspUserLoginField`` of a login to ``front`` on ``trading_day``."""
        now = clock.now().strftime("%H:%M:%S")
        return self.field(
            "CThostFtdcRspUserLoginField", TradingDay=trading_day, LoginTime=now, BrokerID=request.BrokerID,
            UserID=request.UserID, SystemName="ctpshim", FrontID=front.front_id, SessionID=front.session_id,
            MaxOrderRef="1", SHFETime=now, DCETime=now, CZCETime=now, FFEXTime=now, INETime=now, GFEXTime=now,
        )

    def logout(self, front: "SessionBackend", request: Any, request_id: int) -> int:
        response = self.field("CThostFtdcUserLogoutField", BrokerID=request.BrokerID, UserID=request.UserID)
        front.post("OnRspUserLogout", response, self.rsp_info(), request_id, True)
        return 0
