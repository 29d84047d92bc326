"""An unmodified openctp-ctp md program (the real SWIG ``mdapi`` module) over ctpshim's native
``libthostmduserapi_se.so``, on a ``ctpshim serve`` server replaying a committed recording.

The program (tests/native/programs/md_program.py) runs in a subprocess with the preload environment
(LD_PRELOAD of ctpshim's build under openctp-ctp's hashed soname: no installed file changes). What the
server's source gave is read in this process through ctpshim's own md API on the same front address,
which is the server's market (one market per address in a process): the same tick objects the server
encodes. Each tick the program received is matched by (InstrumentID, UpdateTime, UpdateMillisec,
Volume) and compared on all 48 members.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ctpshim import mdapi

from ..conftest import wait_for
from ..server.conftest import serve_factory  # noqa: F401  (the fixture: a real Server on free ports)
from .programs.harness import (WAIT, Program, check_real_openctp, clean_environment, native_env,  # noqa: F401
                               run_program)

DBL_MAX = 1.7976931348623157e308
TICKS = 2000
INSTRUMENT = "ru1901"  # the bundled day: SHFE ru1901, trading day 20181009, 40,448 ticks (shim/data/SOURCES.md)
SIMNOW_MD = "tcp://180.168.146.187:10131"  # never reached: CTPSHIM_NATIVE_FRONT replaces it
FIELDS = [name for name in dir(mdapi.CThostFtdcDepthMarketDataField())
          if not name.startswith("_") and name != "thisown"]
KEY = ("InstrumentID", "UpdateTime", "UpdateMillisec", "Volume")


def replay_source(tmp_path: Any, speed: str = "1000") -> str:
    # the accounts in the test's own folder; the market (one per address, trader.* keys aside) closes with the
    # test's server and API objects, so each test's replay starts at the recording's first tick
    return f"replay://?rebase=none&speed={speed}&gaps=skip&trader.db={tmp_path / 'accounts.sqlite'}"


def sim_source(tmp_path: Any) -> str:
    return ("sim://?start=2026-11-20T09:35&instruments=rb2701,m2701&speed=20"
            f"&trader.db={tmp_path / 'accounts.sqlite'}")


def binary_front(server: Any, source: str = "") -> str:
    host, port = server.binary_address
    return f"tcp://{host}:{port}" + (f"/{source}" if source else "")


def as_dict(tick: Any) -> dict[str, Any]:
    return {name: getattr(tick, name) for name in FIELDS}


def ticks_of(program: Program) -> list[dict[str, Any]]:
    return [r["args"][0] for r in program.events("OnRtnDepthMarketData")]


def test_field_list_is_the_48_members_of_the_depth_struct():
    assert len(FIELDS) == 48 and "reserve1" in FIELDS and "BandingUpperPrice" in FIELDS


def installed_libraries(openctp: Any) -> dict[str, str]:
    """sha256 of each CTP library inside the installed openctp-ctp (the preload route must change none)."""
    libs = Path(openctp.__file__).resolve().parents[1] / "openctp_ctp.libs"
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(libs.glob("libthost*.so"))}


def compare_with_source(received: list[dict[str, Any]], reference: Any) -> None:
    """Every received tick is one of the source's (``reference``: ctpshim's md API on the server's market),
    equal on all 48 members; none twice, none missing, in the source's order."""
    last = tuple(received[-1][k] for k in KEY)
    wait_for(lambda: any(tuple(getattr(t, k) for k in KEY) == last for t in reference.ticks[-5000:]),
             WAIT, "the source to reach the program's last tick")
    with reference.lock:
        source_ticks = list(reference.ticks)
    index: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for tick in source_ticks:
        index.setdefault(tuple(getattr(tick, k) for k in KEY), []).append(as_dict(tick))

    mismatches: list[str] = []
    for number, tick in enumerate(received):
        assert sorted(tick) == sorted(FIELDS), f"tick {number} has members {sorted(tick)}"
        candidates = index.get(tuple(tick[k] for k in KEY))
        if not candidates:
            mismatches.append(f"tick {number} {[tick[k] for k in KEY]}: not among the source's ticks")
        elif tick not in candidates:
            wrong = {k: (tick[k], candidates[0][k]) for k in FIELDS if tick[k] != candidates[0][k]}
            mismatches.append(f"tick {number} {[tick[k] for k in KEY]}: (received, source) differ in {wrong}")
    assert mismatches == [], f"{len(mismatches)} of {len(received)} ticks differ; first: {mismatches[:5]}"
    # in the source's order, none twice, none missing
    keys = [tuple(t[k] for k in KEY) for t in received]
    assert len(set(keys)) == len(keys)
    where = {tuple(getattr(t, k) for k in KEY): n for n, t in enumerate(source_ticks)}
    order = [where[k] for k in keys]
    assert order == list(range(order[0], order[0] + len(order))), \
        f"ticks missing or reordered: {[(n, p) for n, p in enumerate(order[1:]) if p != order[n] + 1][:5]}"


def test_2000_replayed_ticks_arrive_with_all_48_fields_equal_to_the_servers_source(
        serve_factory, run_program, make_md, openctp, tmp_path):  # noqa: F811
    installed = installed_libraries(openctp)
    source = replay_source(tmp_path)
    server = serve_factory({"day": source}, http=None)
    # ctpshim's own md API on the server's market: every tick the source gave, before the program subscribes
    _, reference = make_md(source, subscribe=[INSTRUMENT])
    wait_for(lambda: reference.ticks, WAIT, "the source's first tick in this process")

    program = run_program("md_program.py", binary_front(server), INSTRUMENT, "--ticks", str(TICKS), "--timeout", "60")
    assert program.finish(90) == 0, program.describe()
    check_real_openctp(program)
    received = ticks_of(program)
    assert len(received) >= TICKS

    compare_with_source(received, reference)

    # values a front has not got: DBL_MAX, as real fronts send them (level-1 data: levels 2-5 are empty)
    assert all(t["AskPrice5"] == DBL_MAX and t["BidPrice2"] == DBL_MAX for t in received)
    assert all(t["InstrumentID"] == INSTRUMENT and t["TradingDay"] == "20181009" for t in received)
    assert {t["ExchangeID"] for t in received} == {"SHFE"} and len({t["LastPrice"] for t in received}) > 5

    login = program.events("OnRspUserLogin")[0]["args"]
    assert login[1] == {"ErrorID": 0, "ErrorMsg": "CTP:正确"}  # GB18030 on the wire, decoded by SWIG
    assert login[0]["TradingDay"] == "20181009" and login[0]["SystemName"] == "ctpshim"
    assert program.events("GetTradingDay")[0]["value"] == "20181009"
    sub = program.events("OnRspSubMarketData")
    assert [s["args"] for s in sub] == [[{"InstrumentID": INSTRUMENT, "reserve1": ""},
                                         {"ErrorID": 0, "ErrorMsg": "CTP:No Error"}, 0, True]]
    names = program.names()
    assert names.index("OnFrontConnected") < names.index("OnRspUserLogin") < names.index("OnRspSubMarketData") \
        < names.index("OnRtnDepthMarketData")
    assert all(c["rc"] == 0 for c in program.events("call"))
    assert installed_libraries(openctp) == installed and len(installed) == 2
    print(f"{len(received)} ticks x {len(FIELDS)} fields: 0 mismatches ({len(received) * len(FIELDS)} field checks)")


def test_unsubscribe_stops_that_instruments_ticks(serve_factory, run_program, tmp_path):  # noqa: F811
    server = serve_factory({"sim": sim_source(tmp_path)}, http=None)
    program = run_program("md_program.py", binary_front(server), "rb2701,m2701", "--unsubscribe", "m2701",
                          "--after", "6", "--ticks", "30", "--timeout", "60")
    assert program.finish(90) == 0, program.describe()
    check_real_openctp(program)
    records = program.records
    answered = next(n for n, r in enumerate(records) if r["event"] == "OnRspUnSubMarketData")
    assert records[answered]["args"][:2] == [{"InstrumentID": "m2701", "reserve1": ""},
                                             {"ErrorID": 0, "ErrorMsg": "CTP:No Error"}]
    before = [r["args"][0]["InstrumentID"] for r in records[:answered] if r["event"] == "OnRtnDepthMarketData"]
    after = [r["args"][0]["InstrumentID"] for r in records[answered:] if r["event"] == "OnRtnDepthMarketData"]
    assert set(before) == {"rb2701", "m2701"}
    assert len(after) >= 20 and set(after) == {"rb2701"}, after
    assert [c["rc"] for c in program.events("call")] == [0, 0, 0]  # login, subscribe, unsubscribe


def test_the_front_from_ctpshim_native_front_replaces_the_simnow_address_the_program_registers(
        serve_factory, run_program, tmp_path):  # noqa: F811
    server = serve_factory({"day": replay_source(tmp_path, speed="50")}, http=None)
    program = run_program("md_program.py", SIMNOW_MD, INSTRUMENT, "--ticks", "5",
                          env={"CTPSHIM_NATIVE_FRONT": binary_front(server, "day")})
    assert program.finish(60) == 0, program.describe()
    check_real_openctp(program)
    assert len(ticks_of(program)) >= 5
    assert program.events("GetTradingDay")[0]["value"] == "20181009"
    assert {t["InstrumentID"] for t in ticks_of(program)} == {INSTRUMENT}


def test_the_md_program_of_the_ctpshim_run_tests_runs_unmodified_on_the_native_library(
        serve_factory, native_env, tmp_path):  # noqa: F811
    """tests/programs/openctp_md_program.py (SimNow's address, rb2701 and TA701) moved by CTPSHIM_NATIVE_FRONT."""
    server = serve_factory({"sim": "sim://?start=2026-11-20T09:35&instruments=rb2701,TA701&speed=20"}, http=None)
    program = Path(__file__).parents[1] / "programs" / "openctp_md_program.py"
    environment = {**native_env, "CTPSHIM_NATIVE_FRONT": binary_front(server)}
    done = subprocess.run([sys.executable, str(program), "6"], capture_output=True, text=True, timeout=60,
                          env=environment, cwd=str(tmp_path))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "trading day 20261120" and lines[-1].startswith("done ")
    ticks = [line.split() for line in lines if line.startswith("tick ")]
    assert len(ticks) >= 6 and {t[1] for t in ticks} <= {"rb2701", "TA701"} and {t[2] for t in ticks} <= {"SHFE", "CZCE"}


def test_the_install_route_in_a_copied_openctp_tree_gets_the_same_ticks(
        serve_factory, make_md, openctp, native_build, tmp_path):  # noqa: F811
    """``ctpshim native install --into openctp`` on a copy of the installed openctp-ctp (never the installed
    one): the program imports the copy (PYTHONPATH), no LD_PRELOAD, and its wheel's own library names load
    ctpshim's build."""
    from ctpshim.native import install

    site = tmp_path / "site-packages"
    installed = Path(openctp.__file__).resolve().parents[1]
    for name in ("openctp_ctp", "openctp_ctp.libs"):
        shutil.copytree(installed / name, site / name)
    install.install("openctp", native_build, site)
    source = replay_source(tmp_path)
    server = serve_factory({"day": source}, http=None)
    _, reference = make_md(source, subscribe=[INSTRUMENT])
    wait_for(lambda: reference.ticks, WAIT, "the source's first tick in this process")
    environment = {**clean_environment(), "PYTHONPATH": str(site)}
    program = Program("md_program.py", [binary_front(server), INSTRUMENT, "--ticks", "500", "--timeout", "60"],
                      environment, tmp_path)
    try:
        assert program.finish(90) == 0, program.describe()
    finally:
        program.kill()
    assert program.events("start")[0]["module"].startswith(str(site / "openctp_ctp"))
    mapped = program.events("libraries")[0]["paths"]
    assert sorted(Path(p).parent for p in mapped) == [site / "openctp_ctp.libs"] * 2
    assert all(b"CTPSHIM_NATIVE_BUILD " in Path(p).read_bytes() for p in mapped)
    received = ticks_of(program)
    assert len(received) >= 500
    compare_with_source(received, reference)


def test_the_readmes_md_demo_runs_unmodified_on_the_native_library(serve_factory, native_env, tmp_path):  # noqa: F811
    """examples/md_demo.py (the README's first program; SimNow's address) for 2 seconds of the replayed day."""
    server = serve_factory({"day": replay_source(tmp_path, speed="50")}, http=None)
    demo = Path(__file__).parents[2] / "examples" / "md_demo.py"
    environment = {**native_env, "CTPSHIM_NATIVE_FRONT": binary_front(server)}
    done = subprocess.run([sys.executable, str(demo), "2", INSTRUMENT], capture_output=True, text=True, timeout=60,
                          env=environment, cwd=str(tmp_path))
    output = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert output[:5] == ["OnFrontConnected", "ReqUserLogin: 0", "OnRspUserLogin: TradingDay 20181009",
                          "SubscribeMarketData: 0", "OnRspSubMarketData: ru1901 CTP:No Error last"], output[:6]
    ticks = [line for line in output if line.startswith("ru1901   SHFE   20181008 21:")]
    assert len(ticks) >= 20, output[:10]
    assert output[-1].startswith("ru1901: last ") and "open interest" in output[-1]
