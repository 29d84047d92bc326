"""An unmodified openctp-ctp td program (the real SWIG ``tdapi`` module) over ctpshim's native
``libthosttraderapi_se.so``, trading on a ``ctpshim serve`` server's simulated trader.

The program (tests/native/programs/td_program.py) runs in a subprocess with the preload environment;
it prints every callback with all its fields, which are checked here against what the counter must
answer (CTP's ErrorIDs and GB18030 texts, order and trade reports, queries, flow control).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from ..server.conftest import serve_factory  # noqa: F401  (the fixture: a real Server on free ports)
from .programs.harness import Program, check_real_openctp, native_env, run_program  # noqa: F401

INSTRUMENT = "ru1901"  # the bundled replay day: SHFE ru1901, trading day 20181009
BALANCE = 1_000_000  # a new account's money: one lot fits, 100 do not (CTP 31, 资金不足)


def trader_source(tmp_path: Any, flow_control: bool = False) -> str:
    return (f"replay://?rebase=none&speed=50&gaps=skip&trader.db={tmp_path / 'accounts.sqlite'}"
            f"&trader.balance={BALANCE}&trader.flow_control={'true' if flow_control else 'false'}")


def binary_front(server: Any, source: str = "") -> str:
    host, port = server.binary_address
    return f"tcp://{host}:{port}" + (f"/{source}" if source else "")


def args_of(program: Program, name: str) -> list[list[Any]]:
    return [r["args"] for r in program.events(name)]


def orders(program: Program, ref: str) -> list[dict[str, Any]]:
    return [a[0] for a in args_of(program, "OnRtnOrder") if a[0]["OrderRef"].strip() == ref]


def answered(program: Program, request_id: int) -> list[list[Any]]:
    return [r["args"] for r in program.records if r["event"].startswith("OnRspQry") and r["args"][2] == request_id]


def long_lots(rows: list[list[Any]]) -> int:
    return sum(a[0]["Position"] for a in rows
               if a[0] is not None and a[0]["InstrumentID"] == INSTRUMENT and a[0]["PosiDirection"] == "2")


def test_a_session_authenticate_login_confirm_query_fill_cancel_and_refusals(
        serve_factory, run_program, tmp_path):  # noqa: F811
    server = serve_factory({"day": trader_source(tmp_path)}, http=None)
    program = run_program("td_program.py", binary_front(server), "--user", "h4-session")
    assert program.finish(60) == 0, program.describe()
    check_real_openctp(program)
    names = program.names()
    assert names.index("OnFrontConnected") < names.index("OnRspAuthenticate") < names.index("OnRspUserLogin") \
        < names.index("OnRspSettlementInfoConfirm") < names.index("OnRspQryInstrument")
    assert "OnFrontDisconnected" not in names and "OnRspError" not in names
    ok = {"ErrorID": 0, "ErrorMsg": "CTP:正确"}  # GB18030 on the wire, decoded by SWIG

    auth = args_of(program, "OnRspAuthenticate")[0]
    assert auth[0]["AppID"] == "simnow_client_test" and auth[0]["UserID"] == "h4-session" and auth[1] == ok
    login, info, request_id, last = args_of(program, "OnRspUserLogin")[0]
    assert info == ok and request_id == 2 and last is True
    assert login["TradingDay"] == "20181009" and login["UserID"] == "h4-session" and login["BrokerID"] == "9999"
    assert isinstance(login["FrontID"], int) and isinstance(login["SessionID"], int) and login["SessionID"] != 0
    assert program.events("GetTradingDay")[0]["value"] == "20181009"
    confirm = args_of(program, "OnRspSettlementInfoConfirm")[0]
    assert confirm[0]["ConfirmDate"] == "20181009" and confirm[1] == ok

    instrument = answered(program, 10)
    assert len(instrument) == 1 and instrument[0][3] is True
    assert (instrument[0][0]["InstrumentID"], instrument[0][0]["ExchangeID"]) == (INSTRUMENT, "SHFE")
    assert instrument[0][0]["PriceTick"] == 5.0 and instrument[0][0]["VolumeMultiple"] == 10
    account = answered(program, 11)[0][0]
    assert account["Balance"] == account["Available"] == BALANCE and account["CurrMargin"] == 0
    assert answered(program, 12) == [[None, None, 12, True]]  # no position yet: one NULL record
    quote = answered(program, 13)[0][0]
    assert quote["InstrumentID"] == INSTRUMENT and 0 < quote["LowerLimitPrice"] < quote["UpperLimitPrice"]

    refs = [c["OrderRef"] for c in program.events("call") if c["method"] == "ReqOrderInsert"]
    fill, rest, unknown, costly = refs
    assert all(c["rc"] == 0 for c in program.events("call")), program.events("call")

    # the order that crosses: OnRtnOrder up to AllTraded, one OnRtnTrade
    statuses = [o["OrderStatus"] for o in orders(program, fill)]
    assert statuses[0] == "a" and statuses[-1] == "0", statuses
    final = orders(program, fill)[-1]
    assert (final["FrontID"], final["SessionID"]) == (login["FrontID"], login["SessionID"])
    assert final["VolumeTraded"] == 1 and final["StatusMsg"] == "全部成交报单已提交"
    trades = [a[0] for a in args_of(program, "OnRtnTrade") if a[0]["OrderRef"].strip() == fill]
    assert len(trades) == 1 and trades[0]["Volume"] == 1 and trades[0]["OrderSysID"] == final["OrderSysID"]
    assert quote["LowerLimitPrice"] < trades[0]["Price"] <= quote["UpperLimitPrice"]

    # the order that rests, then is cancelled by ExchangeID + OrderSysID
    statuses = [o["OrderStatus"] for o in orders(program, rest)]
    assert "3" in statuses and statuses[-1] == "5", statuses
    assert orders(program, rest)[-1]["StatusMsg"] == "已撤单"
    assert "OnRspOrderAction" not in names and "OnErrRtnOrderAction" not in names

    # refusals: CTP's ErrorIDs and their Chinese texts, to the sender, no OnRtnOrder
    for ref, error in ((unknown, {"ErrorID": 16, "ErrorMsg": "CTP:找不到合约"}),
                       (costly, {"ErrorID": 31, "ErrorMsg": "CTP:资金不足"})):
        rsp = [a for a in args_of(program, "OnRspOrderInsert") if a[0]["OrderRef"].strip() == ref]
        err = [a for a in args_of(program, "OnErrRtnOrderInsert") if a[0]["OrderRef"].strip() == ref]
        assert [a[1] for a in rsp] == [error] and [a[1] for a in err] == [error], (ref, rsp, err)
        assert orders(program, ref) == []

    positions = answered(program, 30)
    assert long_lots(positions) == 1
    after = answered(program, 31)[0][0]
    assert after["Commission"] > 0 and after["CurrMargin"] > 0 and after["Available"] < BALANCE


def test_two_programs_on_one_account_see_each_others_position(serve_factory, run_program, tmp_path):  # noqa: F811
    server = serve_factory({"day": trader_source(tmp_path)}, http=None)
    front = binary_front(server)
    first = run_program("td_program.py", front, "--user", "h4-shared")
    assert first.finish(60) == 0, first.describe()
    second = run_program("td_program.py", front, "--user", "h4-shared", "--mode", "positions")
    assert second.finish(60) == 0, second.describe()
    check_real_openctp(second)
    mine = [a[0] for a in answered(first, 30) if a[0] is not None]
    theirs = [a[0] for a in answered(second, 40) if a[0] is not None]
    assert long_lots(answered(second, 40)) == long_lots(answered(first, 30)) == 1
    same = ("InstrumentID", "PosiDirection", "Position", "TodayPosition", "OpenVolume", "OpenCost", "Commission")
    assert [{k: p[k] for k in same} for p in theirs] == [{k: p[k] for k in same} for p in mine]
    assert answered(second, 41)[0][0]["Commission"] == answered(first, 31)[0][0]["Commission"]
    logins = [args_of(p, "OnRspUserLogin")[0][0]["SessionID"] for p in (first, second)]
    assert logins[0] != logins[1]  # two sessions, one account


def test_queries_too_fast_get_the_counters_flow_control_codes(serve_factory, run_program, tmp_path):  # noqa: F811
    server = serve_factory({"day": trader_source(tmp_path, flow_control=True)}, http=None)
    program = run_program("td_program.py", binary_front(server), "--user", "h4-burst", "--mode", "burst")
    assert program.finish(60) == 0, program.describe()
    check_real_openctp(program)
    burst = [c["rc"] for c in program.events("call") if c.get("burst")]
    assert len(burst) == 5 and burst[0] == 0, burst
    assert all(rc in (-2, -3) for rc in burst[1:]), burst  # one a second, one in flight (CTP's codes)
    assert len(answered(program, 50)) == 1 and answered(program, 51) == []
    assert answered(program, 60)[0][0]["Balance"] == BALANCE  # sent again a second later: answered
    assert answered(program, 61) == [[None, None, 61, True]]


def test_the_td_program_of_the_ctpshim_run_tests_runs_unmodified_on_the_native_library(
        serve_factory, native_env, tmp_path):  # noqa: F811
    """tests/programs/openctp_td_program.py (SimNow's address; it checks every answer itself) moved by
    CTPSHIM_NATIVE_FRONT: authenticate, login, confirm, queries, a fill, a cancel, orders, trades, account."""
    server = serve_factory({"day": trader_source(tmp_path)}, http=None)
    program = Path(__file__).parents[1] / "programs" / "openctp_td_program.py"
    environment = {**native_env, "CTPSHIM_NATIVE_FRONT": binary_front(server)}
    done = subprocess.run([sys.executable, str(program), INSTRUMENT], capture_output=True, text=True, timeout=90,
                          env=environment, cwd=str(tmp_path))
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "ok", done.stdout[-3000:] + done.stderr[-2000:]
    assert "connected" in done.stdout.splitlines()[0]


def test_the_readmes_md_and_td_demo_runs_unmodified_on_both_native_libraries_in_one_process(
        serve_factory, native_env, tmp_path):  # noqa: F811
    """examples/td_demo.py (SimNow's md and td addresses; orders sent from the md callback thread) on the
    server by CTPSHIM_NATIVE_FRONT: both libraries in one process, the trader fed by the server's market."""
    server = serve_factory({"day": trader_source(tmp_path)}, http=None)
    demo = Path(__file__).parents[2] / "examples" / "td_demo.py"
    environment = {**native_env, "CTPSHIM_NATIVE_FRONT": binary_front(server)}
    done = subprocess.run([sys.executable, str(demo), INSTRUMENT, "20"], capture_output=True, text=True, timeout=120,
                          env=environment, cwd=str(tmp_path))
    output = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert output[:2] == ["td login: 0 trading day 20181009", "settlement confirmed: 0"], output[:5]
    trades = [line for line in output if line.startswith("trade ")]
    assert trades and all(" ru1901 at " in line for line in trades), output
    assert output[-1].startswith("account: balance ") and any(line.startswith("position ru1901") for line in output)
