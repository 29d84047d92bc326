"""What a trader API's requests become on a ctpshim front: the simulated counter.

:class:`CounterResponder` answers one ``CThostFtdcTraderApi`` object:

* ``ReqAuthenticate``, ``ReqUserLogout``: as on a market-data front
  (:class:`ctpshim.api.trader_emulation.TraderResponder`);
* ``ReqUserLogin`` (and its variants): logs in to the account BrokerID+UserID of the counter of
  the front's ``trader.db`` and ``trader.book`` (a new account gets ``trader.balance``), answers
  MaxOrderRef (the highest OrderRef the account's sessions used today) and, once the counter has
  seen a tick, LoginTime and the exchanges' times from the feed's clock, then replays the day's
  private flow per ``SubscribePrivateTopic`` (RESTART all of it, RESUME from what this flow path
  was last sent, QUICK none; NONE: no private flow at all);
* ``ReqSettlementInfoConfirm``; ``ReqOrderInsert``, ``ReqOrderAction``: the counter
  (:mod:`ctpshim.broker.counter`);
* ``ReqQry*``: CTP's flow control (:class:`ctpshim.broker.queries.QueryGate`: -2 / -3 returned at
  once), then the answers of :mod:`ctpshim.broker.queries`, posted after the callbacks already on
  their way;
* everything the counter does not do (quotes, exercise, bank transfers, password changes,
  combination actions...): refused with 27 as a market-data front refuses trading.

A request before the login is answered with 6 NOT_LOGIN_YET (orders, cancels, queries of the
account).  A database that cannot be used fails the login with 89 and the reason in the log.  Should
the counter itself fail on an order or a cancel, the traceback is logged and the program gets
``OnRspError`` (2) instead of an exception on its own thread.  Once the database fails (a commit
could not be made), every request returns -1 as with a lost front, and the sessions got
``OnFrontDisconnected``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..api.trader_emulation import LOGINS, TraderResponder
from ..ctp.error_codes import CtpError, error
from ..errors import FrontAddressError
from ..fronts import registry
from ..runtime.backends import NOT_SENT
from . import queries, settings
from .counter import FIRST_TICK_WAIT, TraderSession, counter_for, make_field, values_of_field

if TYPE_CHECKING:
    from ..runtime.backends import SessionBackend
    from .counter import Counter

log = logging.getLogger("ctpshim")

NOT_LOGGED_IN = error("NOT_LOGIN_YET")
STORE_FAILED = error("OPEN_FILE_FAILED")
INTERNAL = error("INCONSISTENT_INFORMATION")  # answered (OnRspError) if the counter itself fails
REFUSE_NOTE = "the simulated counter does not do this"
_LOGIN_TIMES = ("LoginTime", "SHFETime", "DCETime", "CZCETime", "FFEXTime", "INETime", "GFEXTime")
_ACCOUNT_QUERIES = queries.ANSWERED - {"ReqQryExchange", "ReqQryInstrument", "ReqQryProduct",
                                        "ReqQryDepthMarketData"}


class CounterResponder(TraderResponder):
    """Answers one trader API object on a ctpshim front (see the module docstring)."""

    refuse_note = REFUSE_NOTE

    def __init__(self, module: Any) -> None:
        super().__init__(module)
        self.counter: Counter | None = None
        self.session: TraderSession | None = None
        self.gate: queries.QueryGate | None = None

    # -- the counter of the front ----------------------------------------------------------------

    def _counter(self, front: "SessionBackend") -> "Counter":
        if self.counter is None:
            url, _, source = registry.resolve_front(front.front_url)
            chosen = settings.trader_settings(url, source)
            self.counter = counter_for(front.front_url, chosen)
            self.gate = queries.QueryGate(chosen.flow_control)
        return self.counter

    def _session(self, front: "SessionBackend") -> TraderSession:
        if self.session is None:
            resume = next((args[0] for name, args in reversed(front.setup) if name == "SubscribePrivateTopic"), 1)
            self.session = TraderSession(front, self.module, resume=resume)
        return self.session

    def closed(self, front: "SessionBackend") -> None:
        """The API was released: the counter forgets its session."""
        if self.counter is not None and self.session is not None:
            self.counter.leave(self.session, released=True)

    # -- requests ---------------------------------------------------------------------------------

    def request(self, front: "SessionBackend", name: str, field: Any, request_id: int) -> int:
        """Answer the trader request ``name`` (see the module docstring); returns CTP's send code."""
        if name in LOGINS:
            return self.login(front, field, request_id)
        if name == "ReqUserLogout":
            if self.counter is not None and self.session is not None:
                self.counter.leave(self.session)
            return self.logout(front, field, request_id)
        if name == "ReqAuthenticate":
            return super().request(front, name, field, request_id)
        if self.counter is not None and self.counter.failure is not None and name != "ReqUserLogout":
            return NOT_SENT  # the counter's database failed: as a lost front
        if name.startswith("ReqQry"):
            return self._query(front, name, field, request_id)
        if name not in ("ReqOrderInsert", "ReqOrderAction", "ReqSettlementInfoConfirm"):
            self._refuse(front, name, field, request_id)
            return 0
        session = self.session
        if session is None or session.account is None or self.counter is None:
            self._not_logged_in(front, name, field, request_id)
            return 0
        counter = self.counter
        if name == "ReqSettlementInfoConfirm":
            day, moment = counter.confirm(session.account)
            confirmation = self.field("CThostFtdcSettlementInfoConfirmField", BrokerID=field.BrokerID,
                                      InvestorID=field.InvestorID, ConfirmDate=day, ConfirmTime=moment)
            counter.after_commit(lambda: front.post("OnRspSettlementInfoConfirm", confirmation, self.rsp_info(),
                                                    request_id, True))
            return 0
        values = values_of_field(field)
        try:
            if name == "ReqOrderInsert":
                counter.insert(session, values, lambda: self._echo(field, "CThostFtdcInputOrderField"), request_id,
                               self._info, front.market)
            else:
                counter.action(session, values, lambda: self._echo(field, "CThostFtdcInputOrderActionField"),
                               lambda: self._echo(field, "CThostFtdcOrderActionField"), request_id, self._info)
        except Exception:  # noqa: BLE001 - the counter's fault must not reach the program's thread
            log.exception("%s: the simulated counter failed on %s %d", front.name, name, request_id)
            front.post("OnRspError", self.rsp_info(INTERNAL.code, INTERNAL.message), request_id, True)
        return 0

    def _info(self, failure: CtpError, message: str) -> Any:
        return self.rsp_info(failure.code, message)

    def _not_logged_in(self, front: "SessionBackend", name: str, field: Any, request_id: int) -> None:
        info = self.rsp_info(NOT_LOGGED_IN.code, NOT_LOGGED_IN.message)
        suffix = name[3:]
        echo_class = {"OrderInsert": "CThostFtdcInputOrderField", "OrderAction": "CThostFtdcInputOrderActionField",
                      "SettlementInfoConfirm": "CThostFtdcSettlementInfoConfirmField"}.get(suffix)
        echo = self._echo(field, echo_class) if echo_class else None
        front.post("OnRsp" + suffix, echo, info, request_id, True)

    # -- login ------------------------------------------------------------------------------------

    def login(self, front: "SessionBackend", request: Any, request_id: int) -> int:
        """Log in to the counter's account; the day's private flow follows per the resume mode."""
        from .store import StoreError

        try:
            counter = self._counter(front)
        except (StoreError, FrontAddressError, ValueError) as exc:  # the database went bad after RegisterFront
            log.error("%s: the trader's database cannot be used: %s", front.name, exc)
            response = self.field("CThostFtdcRspUserLoginField", BrokerID=request.BrokerID, UserID=request.UserID)
            front.post("OnRspUserLogin", response, self.rsp_info(STORE_FAILED.code, STORE_FAILED.message),
                       request_id, True)
            return 0
        session = self._session(front)
        day = front.source_trading_day()
        account, max_order_ref, trading_day = counter.login(session, request.BrokerID, request.UserID, day,
                                                            front.market)
        response = self.login_response(front, request, trading_day)
        response.MaxOrderRef = str(max_order_ref)
        if counter.latest is not None:
            # The exchanges' clocks are the feed's (a replay's or a sim's time, as its ticks say).
            moment = counter.now().strftime("%H:%M:%S")
            for member in _LOGIN_TIMES:
                setattr(response, member, moment)
        counter.after_commit(lambda: front.post("OnRspUserLogin", response, self.rsp_info(), request_id, True))
        counter.replay(session)
        front.logged_in(trading_day)
        return 0

    # -- queries ----------------------------------------------------------------------------------

    def _query(self, front: "SessionBackend", name: str, field: Any, request_id: int) -> int:
        if self.gate is None:
            from .store import StoreError

            try:
                self._counter(front)
            except (StoreError, FrontAddressError) as exc:
                log.error("%s: the trader's database cannot be used: %s", front.name, exc)
                self.gate = queries.QueryGate(True)
        gate = self.gate
        assert gate is not None
        admitted = gate.admit()
        if admitted:
            return admitted
        counter, session = self.counter, self.session
        callback = "OnRsp" + name[3:]
        query = values_of_field(field)
        asked = query.get("InstrumentID") or ""
        if (name == "ReqQryDepthMarketData" and asked and counter is not None
                and counter.terms_of(asked, front.market) is not None):
            # No tick of it yet (a td-only program): the counter's feed brings the first one.
            if counter.when_ticked(asked, front.market, lambda: self._answer(front, name, query, callback, request_id),
                                   FIRST_TICK_WAIT):
                return 0
        self._answer(front, name, query, callback, request_id)
        return 0

    def _answer(self, front: "SessionBackend", name: str, query: dict[str, Any], callback: str,
                request_id: int) -> None:
        counter, session, gate = self.counter, self.session, self.gate
        assert gate is not None
        if name == "ReqQryInstrument":
            listed = [info for info in front.instruments() if _instrument_matches(query, info)]
            asked = query.get("InstrumentID") or ""
            if not listed and asked and counter is not None:
                # Not in the source's list but tradable here (sim:// takes any contract it knows).
                terms = counter.terms_of(asked, front.market)
                if terms is not None and _instrument_matches(query, terms.info):
                    listed = [terms.info]
            answers = [self._instrument_with_terms(counter, info, front) for info in listed]
        elif name in queries.ANSWERED and counter is not None:
            account = session.account if session is not None else None
            if account is None and name in _ACCOUNT_QUERIES:
                gate.answered()
                front.post(callback, None, self.rsp_info(NOT_LOGGED_IN.code, NOT_LOGGED_IN.message), request_id,
                           True)
                return
            instruments = front.instruments()
            rows = counter.read(lambda: queries.records(counter, account, name, query, instruments, front.market))
            answers = [make_field(self.module, class_name, values) for class_name, values in rows]
        else:
            answers = []

        def post() -> None:
            # No longer in flight once the last answer is on its way: a program may send the next
            # query from inside that callback (after its one-second pause).
            gate.answered()
            if not answers:
                front.post(callback, None, None, request_id, True)
            for index, answer in enumerate(answers):
                front.post(callback, answer, None, request_id, index == len(answers) - 1)

        if counter is not None:
            counter.after_commit(post)
        else:
            post()

    def _instrument_with_terms(self, counter: "Counter | None", info: Any, front: "SessionBackend") -> Any:
        """The instrument with the counter's terms of it (its rate table), else the built-in ones."""
        terms = counter.terms_of(info.instrument_id, front.market) if counter is not None else None
        return self._instrument(info, terms)


def _instrument_matches(query: dict[str, Any], info: Any) -> bool:
    return (query.get("InstrumentID") in ("", info.instrument_id)
            and query.get("ExchangeID") in ("", info.exchange_id)
            and query.get("ProductID") in ("", info.product_id)
            and query.get("ExchangeInstID") in ("", info.instrument_id))

