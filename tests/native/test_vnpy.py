"""vnpy_ctp's CtpGateway, from its PyPI package, over ctpshim's native CTP libraries.

A plain vnpy program (EventEngine + CtpGateway with its connect setting dict) runs in the vnpy test
environment (tools/ci/vnpy_env.sh; tests/native/vnpy_env.py) as a subprocess against a real ``ctpshim serve``
on a simulated market: md and td log in, the contract query completes, TickData events arrive, a resting
limit order is placed and cancelled (OrderData CANCELLED) and a marketable one fills (TradeData, then the
position). Two routes put ctpshim's libraries under vnpy_ctp's unmodified extensions:

* preload: ``LD_PRELOAD`` of the default-soname builds; vnpy_ctp's extensions need ``libthostmduserapi_se.so``
  and ``libthosttraderapi_se.so`` by exactly those names, so the loader takes the preloaded ones and never maps
  the official files (the program reports ``/proc/self/maps``);
* install: ``ctpshim.native.install.install("vnpy", built, path=DIR)`` (what ``ctpshim native install
  --into vnpy --path DIR`` does) on a copy of the venv's vnpy_ctp package in tmp_path, first on
  ``PYTHONPATH`` (the venv itself is never changed), then uninstall restores the official files.

Also: the server stopped and started again on the same port (the gateway logs in again by itself and
trades), and 300 TickData of the bundled replayed day compared field by field with the server's source.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import zlib
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import pytest

from ctpshim.native import install as native_install

from ..conftest import wait_for
from ..server.conftest import serve_factory  # noqa: F401  (the fixture: a real Server on free ports)
from .conftest import preload_env
from .vnpy_env import VnpyEnv, require_vnpy_env

SYMBOL, EXCHANGE = "rb2701", "SHFE"
WAIT = 30.0  # the program's bound on each milestone
RUN_TIMEOUT = 150.0  # the whole subprocess
OFFICIAL_LIBS = ("libthostmduserapi_se.so", "libthosttraderapi_se.so")
# OnFrontDisconnected reasons of a lost connection: read/write failure, heartbeat timeout, bad packet.
CTP_NETWORK_REASONS = {0x1001, 0x1002, 0x2001, 0x2002, 0x2003}
DBL_MAX = 1.7976931348623157e308
REPLAY_SYMBOL = "ru1901"  # the bundled recording: SHFE ru1901, trading day 20181009 (shim/data/SOURCES.md)
REPLAY_TICKS = 300

# The vnpy program. Only vnpy, vnpy_ctp and the standard library: it runs in the vnpy venv.
PROGRAM = r'''
"""CtpGateway on the front in argv[1]: log in, subscribe, place and cancel a limit order, fill one."""
import json
import os
import sys
import threading
import time
import traceback

from vnpy.event import Event, EventEngine
from vnpy.trader.constant import Direction, Exchange, Offset, OrderType, Status
from vnpy.trader.event import (
    EVENT_ACCOUNT, EVENT_CONTRACT, EVENT_LOG, EVENT_ORDER, EVENT_POSITION, EVENT_TICK, EVENT_TRADE,
)
from vnpy.trader.object import OrderRequest, SubscribeRequest
from vnpy_ctp import CtpGateway

front, symbol, exchange = sys.argv[1], sys.argv[2], Exchange(sys.argv[3])
wait_s, mode = float(sys.argv[4]), sys.argv[5]  # mode: cancel, fill (cancel, then fill), restart, ticksN


printing = threading.Lock()


def say(kind, **data):
    line = json.dumps({"event": kind, **data}, ensure_ascii=False, default=str) + "\n"
    with printing:  # one write per line: the engine's thread and the main thread both report
        sys.stdout.write(line)
        sys.stdout.flush()


class Seen:
    """What the engine's thread delivered, awaited by the main thread with a deadline."""

    def __init__(self):
        self.cond = threading.Condition()
        self.items = []

    def put(self, kind, data):
        with self.cond:
            self.items.append((kind, data))
            self.cond.notify_all()

    def mark(self):
        with self.cond:
            return len(self.items)

    def wait(self, what, kind, test=lambda data: True, count=1, start=0):
        """The ``count``-th item of ``kind`` passing ``test`` (from item ``start`` on), within the bound."""
        deadline = time.monotonic() + wait_s
        with self.cond:
            while True:
                found = [data for k, data in self.items[start:] if k == kind and test(data)]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    say("timeout", waiting_for=what, seen=sorted({k for k, _ in self.items}))
                    os._exit(3)
                self.cond.wait(left)


seen = Seen()


def on_event(event: Event):
    data = event.data
    kind = event.type
    if kind == EVENT_LOG:
        say("log", msg=data.msg)
        seen.put("log", data.msg)
    elif kind == EVENT_CONTRACT:
        seen.put("contract", data)
    elif kind == EVENT_TICK:
        seen.put("tick", data)
    elif kind == EVENT_ORDER:
        say("order", orderid=data.orderid, status=data.status.name, traded=data.traded, price=data.price)
        seen.put("order", data)
    elif kind == EVENT_TRADE:
        say("trade", orderid=data.orderid, tradeid=data.tradeid, price=data.price, volume=data.volume,
            direction=data.direction.name, offset=data.offset.name)
        seen.put("trade", data)
    elif kind == EVENT_POSITION:
        seen.put("position", data)
    elif kind == EVENT_ACCOUNT:
        seen.put("account", data)


TICK_FIELDS = ("datetime", "volume", "turnover", "open_interest", "last_price", "limit_up", "limit_down",
               "open_price", "high_price", "low_price", "pre_close", "bid_price_1", "ask_price_1",
               "bid_volume_1", "ask_volume_1")


def report_tick(tick):
    say("tick", symbol=tick.symbol, exchange=tick.exchange.value, datetime=tick.datetime.isoformat(),
        last_price=tick.last_price, bid_price_1=tick.bid_price_1, ask_price_1=tick.ask_price_1,
        bid_volume_1=tick.bid_volume_1, ask_volume_1=tick.ask_volume_1, volume=tick.volume,
        open_interest=tick.open_interest, limit_up=tick.limit_up, limit_down=tick.limit_down,
        name=tick.name, ticks=len([1 for k, t in seen.items if k == "tick"]))


def ctp_libraries():
    with open("/proc/self/maps") as maps:
        return sorted({line.split()[-1] for line in maps if "libthost" in line})


def main():
    engine = EventEngine()
    for kind in (EVENT_LOG, EVENT_CONTRACT, EVENT_TICK, EVENT_ORDER, EVENT_TRADE, EVENT_POSITION, EVENT_ACCOUNT):
        engine.register(kind, on_event)
    engine.start()
    gateway = CtpGateway(engine, "CTP")
    setting = {
        "用户名": "000001",
        "密码": "123456",
        "经纪商代码": "9999",
        "交易服务器": front,
        "行情服务器": front,
        "产品名称": "",
        "授权编码": "",
        "柜台环境": "实盘",
    }
    gateway.connect(setting)
    say("libraries", maps=ctp_libraries())

    seen.wait("md login", "log", lambda msg: msg == "行情服务器登录成功")
    seen.wait("td login", "log", lambda msg: msg == "交易服务器登录成功")
    say("trading_day", md=gateway.md_api.getTradingDay(), td=gateway.td_api.getTradingDay())
    seen.wait("contract query", "log", lambda msg: msg == "合约信息查询成功")
    contract = seen.wait("the contract " + symbol, "contract", lambda c: c.symbol == symbol)
    say("contract", symbol=contract.symbol, exchange=contract.exchange.value, name=contract.name,
        product=contract.product.name, size=contract.size, pricetick=contract.pricetick,
        contracts=len([1 for k, _ in seen.items if k == "contract"]))

    gateway.subscribe(SubscribeRequest(symbol, exchange))
    tick = seen.wait("3 ticks of " + symbol, "tick", lambda t: t.symbol == symbol, count=3)
    report_tick(tick)

    if mode.startswith("ticks"):  # "ticksN": report N ticks, field by field, and end
        wanted = int(mode[5:])
        seen.wait(f"{wanted} ticks of {symbol}", "tick", lambda t: t.symbol == symbol, count=wanted)
        with seen.cond:
            ticks = [t for k, t in seen.items if k == "tick" and t.symbol == symbol][:wanted]
        say("ticks", ticks=[{name: getattr(t, name) for name in TICK_FIELDS} for t in ticks])
        close(engine, gateway)
        return

    if mode == "restart":  # the test stops the server and starts another on the same port
        say("restart_me")
        for api in ("行情", "交易"):
            seen.wait(api + " disconnect", "log", lambda msg: msg.startswith(api + "服务器连接断开"))
            seen.wait(api + " login again", "log", lambda msg: msg == api + "服务器登录成功", count=2)
        mark = seen.mark()
        seen.wait("the contract query again", "log", lambda msg: msg == "合约信息查询成功", count=2)
        tick = seen.wait("3 ticks after the restart", "tick", lambda t: t.symbol == symbol, count=3, start=mark)
        report_tick(tick)

    step = contract.pricetick
    low = max(tick.limit_down, tick.bid_price_1 - 20 * step)
    resting = gateway.send_order(OrderRequest(symbol, exchange, Direction.LONG, OrderType.LIMIT, 1,
                                              round(low / step) * step, Offset.OPEN))
    orderid = resting.split(".", 1)[1]
    order = seen.wait("order " + orderid + " NOTTRADED", "order",
                      lambda o: o.orderid == orderid and o.status == Status.NOTTRADED)
    gateway.cancel_order(order.create_cancel_request())
    seen.wait("order " + orderid + " CANCELLED", "order",
              lambda o: o.orderid == orderid and o.status == Status.CANCELLED)
    say("cancelled", orderid=orderid)

    if mode == "fill":
        high = min(tick.limit_up, tick.ask_price_1 + 20 * step)
        filling = gateway.send_order(OrderRequest(symbol, exchange, Direction.LONG, OrderType.LIMIT, 1,
                                                  round(high / step) * step, Offset.OPEN))
        fillid = filling.split(".", 1)[1]
        seen.wait("a trade of " + fillid, "trade", lambda t: t.orderid == fillid)
        seen.wait("order " + fillid + " ALLTRADED", "order",
                  lambda o: o.orderid == fillid and o.status == Status.ALLTRADED)
        position = seen.wait("a long position in " + symbol, "position",
                             lambda p: p.symbol == symbol and p.direction == Direction.LONG and p.volume >= 1)
        say("position", symbol=position.symbol, direction=position.direction.name, volume=position.volume,
            price=position.price)
        account = seen.wait("an account", "account")
        say("account", accountid=account.accountid, balance=account.balance, available=account.available)

    close(engine, gateway)


def drained(what, request, api, answer):
    """Send ``request`` and wait for its answer ``answer`` on ``api``: the callbacks queued before it
    (in order on the library's callback thread and in vnpy_ctp's task queue) have been handled by then."""
    done = threading.Event()
    setattr(api, answer, lambda data, error, reqid, last: last and done.set())
    deadline = time.monotonic() + wait_s
    while request() != 0:  # -2/-3: CTP's flow control; retried within the bound
        if time.monotonic() > deadline:
            say("timeout", waiting_for=what + " to be accepted")
            os._exit(3)
        time.sleep(0.2)
    if not done.wait(max(0.0, deadline - time.monotonic())):
        say("timeout", waiting_for=what)
        os._exit(3)


def close(engine, gateway):
    # MainEngine.close()'s order: the engine first (its timer calls the gateway's queries, which would
    # use the API objects that close() releases), then the gateway. vnpy_ctp's exit() joins its task
    # thread while holding the GIL, so a callback still queued then deadlocks it: first stop the ticks
    # (unsubscribe, answered after every tick sent before) and let the td side's answers drain.
    engine.stop()
    drained("OnRspUnSubMarketData", lambda: gateway.md_api.unSubscribeMarketData(symbol), gateway.md_api,
            "onRspUnSubMarketData")
    drained("OnRspQryExchange", lambda: gateway.td_api.reqQryExchange({}, 9999), gateway.td_api,
            "onRspQryExchange")
    closer = threading.Thread(target=gateway.close, daemon=True)
    closer.start()
    closer.join(wait_s)
    say("closed", ok=not closer.is_alive())
    if closer.is_alive():
        os._exit(4)
    say("done")


try:
    main()
except BaseException:
    traceback.print_exc()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(2)  # the engine's and the gateway's threads would keep the process alive
'''


def sim_front(tmp_path: Path) -> str:
    """A simulated SHFE market inside Friday's day session, with its own accounts database."""
    seed = zlib.crc32(str(tmp_path).encode())
    return (f"sim://?start=2026-11-20T09:35&instruments={SYMBOL},TA701&price={SYMBOL}:3100&speed=2"
            f"&seed={seed}&trader.db={tmp_path / 'accounts.sqlite'}")


def vnpy_environ(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The subprocess's environment: its own HOME and working directory (vnpy writes ~/.vntrader)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTHONHOME", "LD_PRELOAD", "LD_LIBRARY_PATH", "VIRTUAL_ENV")
           and not key.startswith("CTPSHIM_NATIVE_")}
    env.update(HOME=str(home), PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1", PYTHONIOENCODING="utf-8",
               **extra)
    return env


def run_program(venv: VnpyEnv, front: str, tmp_path: Path, env: dict[str, str], mode: str = "fill",
                launcher: tuple[str, ...] = (), when: dict[str, Callable[[], None]] | None = None,
                symbol: str = SYMBOL, exchange: str = EXCHANGE) -> list[dict[str, Any]]:
    """Run PROGRAM in the vnpy venv (after ``launcher``) and return its JSON lines; ``when`` maps an event
    kind to what the test does as that line arrives. Fails with the whole output on a bad end or timeout."""
    program = tmp_path / "vnpy_ctp_program.py"
    program.write_text(PROGRAM, encoding="utf-8")
    command = [*launcher, str(venv.python), str(program), front, symbol, exchange, str(WAIT), mode]
    stderr_path = tmp_path / "vnpy_ctp_program.stderr"
    with open(stderr_path, "w", encoding="utf-8") as stderr:
        # Its own session, so a timeout kills the launcher and the program together.
        process = subprocess.Popen(command, cwd=tmp_path / "home", env=env, stdout=subprocess.PIPE, stderr=stderr,
                                   text=True, encoding="utf-8", start_new_session=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + RUN_TIMEOUT
    output: list[str] = []
    events: list[dict[str, Any]] = []
    try:
        while (line := lines.get(timeout=max(0.0, deadline - time.monotonic()))) is not None:
            output.append(line)
            if line.startswith("{"):
                events.append(json.loads(line))
                if when and events[-1]["event"] in when:
                    when[events[-1]["event"]]()
        process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except (queue.Empty, subprocess.TimeoutExpired):
        pytest.fail(f"the vnpy program did not end within {RUN_TIMEOUT} s; stdout:\n{''.join(output)}\n"
                    f"stderr:\n{stderr_path.read_text(encoding='utf-8')[-4000:]}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    assert process.returncode == 0 and events and events[-1]["event"] == "done", (
        f"rc={process.returncode}\nstdout:\n{''.join(output)}\n"
        f"stderr:\n{stderr_path.read_text(encoding='utf-8')[-4000:]}")
    return events


def one(events: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [e for e in events if e["event"] == kind]
    assert found, f"no {kind!r} event in {events}"
    return found[-1]


def check_session(events: list[dict[str, Any]], fill: bool) -> None:
    """What every route must show: logins, the contract, ticks, the cancel and (with fill) the trade."""
    logs = [e["msg"] for e in events if e["event"] == "log"]
    milestones = ("行情服务器连接成功", "行情服务器登录成功", "交易服务器连接成功", "交易服务器登录成功",
                  "结算信息确认成功", "合约信息查询成功")
    for milestone in milestones:
        assert milestone in logs, logs
    assert not [msg for msg in logs if "失败" in msg or "断开" in msg], logs

    contract = one(events, "contract")
    assert (contract["symbol"], contract["exchange"], contract["product"]) == (SYMBOL, EXCHANGE, "FUTURES")
    assert contract["size"] == 10 and contract["pricetick"] == 1.0 and contract["name"] == "螺纹钢2701"
    assert contract["contracts"] >= 2

    assert one(events, "trading_day") == {"event": "trading_day", "md": "20261120", "td": "20261120"}

    tick = one(events, "tick")
    assert tick["symbol"] == SYMBOL and tick["exchange"] == EXCHANGE and tick["name"] == "螺纹钢2701"
    assert tick["datetime"].startswith("2026-11-20T09:") and tick["datetime"].endswith("+08:00")
    assert tick["limit_down"] < tick["bid_price_1"] < tick["ask_price_1"] < tick["limit_up"]
    assert 2500 < tick["last_price"] < 3700 and tick["bid_volume_1"] > 0 and tick["ask_volume_1"] > 0

    cancelled = one(events, "cancelled")["orderid"]
    statuses = [e["status"] for e in events if e["event"] == "order" and e["orderid"] == cancelled]
    assert statuses[-1] == "CANCELLED" and "NOTTRADED" in statuses, statuses
    assert not [e for e in events if e["event"] == "trade" and e["orderid"] == cancelled]

    if fill:
        trade = one(events, "trade")
        assert trade["volume"] == 1 and trade["direction"] == "LONG" and trade["offset"] == "OPEN"
        assert trade["orderid"] != cancelled and trade["price"] <= tick["ask_price_1"] + 20
        position = one(events, "position")
        assert position["direction"] == "LONG" and position["volume"] >= 1
        account = one(events, "account")
        assert account["accountid"] == "000001" and account["balance"] > 0
    assert one(events, "closed")["ok"] is True


@pytest.fixture(scope="module")
def vnpy_venv() -> VnpyEnv:
    return require_vnpy_env()


def test_ctp_gateway_over_preloaded_libraries_logs_in_ticks_cancels_and_fills(
        vnpy_venv: VnpyEnv, native_build: Any, serve_factory: Any, tmp_path: Path) -> None:  # noqa: F811
    server = serve_factory(sim_front(tmp_path), http=None)
    host, port = server.binary_address
    # The user's command: `ctpshim native env --target vnpy -- PROGRAM` (LD_PRELOAD of builds named as
    # vnpy_ctp's libraries); CTPSHIM_NATIVE_DIR points it at this session's build, so it compiles nothing.
    env = vnpy_environ(tmp_path, CTPSHIM_NATIVE_DIR=str(native_build.directory))
    launcher = (sys.executable, "-m", "ctpshim", "native", "env", "--target", "vnpy",
                "--path", str(vnpy_venv.site_packages), "--")
    events = run_program(vnpy_venv, f"tcp://{host}:{port}", tmp_path, env, launcher=launcher)

    libraries = one(events, "libraries")
    ours = {str(Path(native_build.md).resolve()), str(Path(native_build.td).resolve())}
    assert set(libraries["maps"]) == ours, libraries
    assert not [path for path in libraries["maps"] if path.startswith(str(vnpy_venv.api_dir))]
    check_session(events, fill=True)


def copy_vnpy_ctp(venv: VnpyEnv, site: Path) -> Path:
    """vnpy_ctp's package and its dist-info, copied from the venv into ``site``."""
    site.mkdir()
    shutil.copytree(venv.site_packages / "vnpy_ctp", site / "vnpy_ctp",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for info in venv.site_packages.glob("vnpy_ctp-*.dist-info"):
        shutil.copytree(info, site / info.name)
    return site


def test_ctp_gateway_over_installed_libraries_in_a_copy_of_vnpy_ctp(
        vnpy_venv: VnpyEnv, native_build: Any, serve_factory: Any, tmp_path: Path) -> None:  # noqa: F811
    site = copy_vnpy_ctp(vnpy_venv, tmp_path / "site")
    api = site / "vnpy_ctp" / "api"
    official = {name: (api / name).read_bytes() for name in OFFICIAL_LIBS}
    outcome = native_install.install("vnpy", native_build, path=site)
    assert [change.action for change in outcome.changes] == ["replaced", "replaced"], outcome
    [found] = native_install.status(path=site, targets=["vnpy"])
    assert found.version == vnpy_venv.vnpy_ctp_version and [f.kind for f in found.files] == ["ctpshim", "ctpshim"]

    server = serve_factory(sim_front(tmp_path), http=None)
    host, port = server.binary_address
    env = vnpy_environ(tmp_path, PYTHONPATH=str(site))
    events = run_program(vnpy_venv, f"tcp://{host}:{port}", tmp_path, env, mode="cancel")
    libraries = one(events, "libraries")
    assert sorted(libraries["maps"]) == sorted(str(api / name) for name in OFFICIAL_LIBS), libraries
    check_session(events, fill=False)

    native_install.uninstall("vnpy", path=site)
    for name in OFFICIAL_LIBS:
        assert (api / name).read_bytes() == official[name], f"{name} was not restored"


def test_ctp_gateway_logs_in_again_and_trades_after_the_server_restarts(
        vnpy_venv: VnpyEnv, native_build: Any, serve_factory: Any, tmp_path: Path) -> None:  # noqa: F811
    front = sim_front(tmp_path)
    first = serve_factory(front, http=None)
    host, port = first.binary_address

    def restart() -> None:  # the program has ticks: stop the server, start another on the same port
        first.stop(5)
        serve_factory(front, http=None, listen=(host, port))

    env = vnpy_environ(tmp_path, **preload_env(native_build))
    events = run_program(vnpy_venv, f"tcp://{host}:{port}", tmp_path, env, mode="restart",
                         when={"restart_me": restart})
    logs = [e["msg"] for e in events if e["event"] == "log"]
    for api in ("行情", "交易"):
        drops = [msg for msg in logs if msg.startswith(api + "服务器连接断开")]
        assert drops and all(int(msg.rsplit("原因", 1)[1]) in CTP_NETWORK_REASONS for msg in drops), logs
        assert logs.count(api + "服务器连接成功") >= 2 and logs.count(api + "服务器登录成功") == 2, logs
    assert logs.count("合约信息查询成功") == 2, logs
    before, after = [e for e in events if e["event"] == "tick"]
    assert before["symbol"] == after["symbol"] == SYMBOL and after["ticks"] >= before["ticks"] + 3
    cancelled = one(events, "cancelled")["orderid"]
    statuses = [e["status"] for e in events if e["event"] == "order" and e["orderid"] == cancelled]
    assert statuses[-1] == "CANCELLED", statuses


def expected_tick(source: Any) -> dict[str, Any]:
    """What vnpy_ctp's CtpMdApi.onRtnDepthMarketData makes of a source tick (DBL_MAX prices become 0)."""
    def price(value: float) -> float:
        return 0 if value == DBL_MAX else value

    stamp = datetime.strptime(f"{source.ActionDay} {source.UpdateTime}.{source.UpdateMillisec}", "%Y%m%d %H:%M:%S.%f")
    return {
        "datetime": str(stamp) + "+08:00",
        "volume": source.Volume, "turnover": source.Turnover, "open_interest": source.OpenInterest,
        "last_price": price(source.LastPrice), "limit_up": source.UpperLimitPrice,
        "limit_down": source.LowerLimitPrice, "open_price": price(source.OpenPrice),
        "high_price": price(source.HighestPrice), "low_price": price(source.LowestPrice),
        "pre_close": price(source.PreClosePrice), "bid_price_1": price(source.BidPrice1),
        "ask_price_1": price(source.AskPrice1), "bid_volume_1": source.BidVolume1,
        "ask_volume_1": source.AskVolume1,
    }


def test_ctp_gateway_ticks_equal_the_replayed_recording_field_by_field(
        vnpy_venv: VnpyEnv, native_build: Any, serve_factory: Any, make_md: Any,  # noqa: F811
        tmp_path: Path) -> None:
    source = f"replay://?rebase=none&speed=200&gaps=skip&trader.db={tmp_path / 'accounts.sqlite'}"
    server = serve_factory(source, http=None)
    # ctpshim's own md API on the server's market (one market per address in a process): what the source gave
    _, reference = make_md(source, subscribe=[REPLAY_SYMBOL])
    wait_for(lambda: reference.ticks, WAIT, "the source's first tick in this process")
    host, port = server.binary_address
    env = vnpy_environ(tmp_path, **preload_env(native_build))
    events = run_program(vnpy_venv, f"tcp://{host}:{port}", tmp_path, env, mode=f"ticks{REPLAY_TICKS}",
                         symbol=REPLAY_SYMBOL, exchange="SHFE")
    received = one(events, "ticks")["ticks"]
    assert len(received) == REPLAY_TICKS

    def key(tick: dict[str, Any]) -> tuple[str, int, int]:
        stamp = datetime.fromisoformat(tick["datetime"])
        return stamp.strftime("%H:%M:%S"), stamp.microsecond // 1000, tick["volume"]

    last = key(received[-1])
    wait_for(lambda: any((t.UpdateTime, t.UpdateMillisec, t.Volume) == last for t in reference.ticks[-5000:]),
             WAIT, "the source to reach the program's last tick")
    with reference.lock:
        source_ticks = list(reference.ticks)
    index: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for tick in source_ticks:
        index.setdefault((tick.UpdateTime, tick.UpdateMillisec, tick.Volume), []).append(expected_tick(tick))
    mismatches = []
    for number, tick in enumerate(received):
        candidates = index.get(key(tick))
        if not candidates:
            mismatches.append(f"tick {number} {key(tick)}: not among the source's ticks")
        elif tick not in candidates:
            wrong = {k: (tick[k], candidates[0][k]) for k in tick if tick[k] != candidates[0][k]}
            mismatches.append(f"tick {number} {key(tick)}: (vnpy, source) differ in {wrong}")
    assert mismatches == [], f"{len(mismatches)} of {len(received)} ticks differ; first: {mismatches[:5]}"
    assert len({key(t) for t in received}) == len(received)  # none twice
    assert len({t["last_price"] for t in received}) >= 2 and len({t["volume"] for t in received}) > REPLAY_TICKS // 2
    assert received[0]["datetime"].startswith("2018-10-08 21:")  # the night session of trading day 20181009
    print(f"{len(received)} vnpy TickData x {len(received[0])} fields: 0 mismatches")
