"""Every vtable slot of ctpshim's native libraries lines up with the real openctp-ctp SWIG modules.

A wrong slot fails silently (NATIVE_PROBE.md pitfall 1: Subscribe landing in Unsubscribe builds, runs and
delivers nothing), so each slot is proven by running: a plain openctp-ctp program (the real SWIG modules,
ctpshim's libraries preloaded) against :mod:`tests.native.scripted_server`, a peer that records every CALL
and sends any CALLBACK.

* API side: the program calls every md and td method that reaches the wire, each with its own nRequestID
  and a struct whose first and last members hold values naming the call; the peer must receive exactly
  that method, request id and those values, and the program must get back the RESULT code the peer chose
  for that call (distinct codes, so a crossed return path shows too).
* Spi side: the program's Spi overrides every method (13 md, 164 td) and must see each one under its own
  name with its own data: the peer sends a CALLBACK for each (own request id, bIsLast, sentinel members),
  except OnFrontConnected (the library's, on HELLO_ACK) and OnFrontDisconnected (the library reports it
  when the connection ends, with the reason the server's CALLBACK gave).
* Local methods: GetApiVersion, GetTradingDay, RegisterFront (the connection arrives), the td topics'
  resume types (in HELLO), GetFrontInfo, RegisterNameServer/RegisterFensUserInfo (no CALL), Join/Release.
* What the library does with a CALLBACK it cannot dispatch, NULL structs both ways, and the peer itself.

A wrong slot shows as the test naming it: "SubscribeMarketData (#0): arrived as UnSubscribeMarketData",
"#73 OnRtnOrder: got OnRtnTrade ..." (checked against builds from headers with two slots swapped).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from ctpshim.ctp.fields import field_class, load_spec
from ctpshim.wire.calls import BOOL, COUNT, IDS, INT, IS_LAST, REQUEST_ID, STRUCT, TEXT, callback_parts, signatures
from ctpshim.wire.structs import LAYOUT_ID

from .programs.harness import Program, clean_environment
from .scripted_server import Call, Peer, ScriptedServer

WAIT = 30.0
FLAVOUR_OF = {"md": "mdapi", "td": "tdapi"}
# The methods of each API that belong to the library itself (no CALL).
LOCAL = {
    "md": {"Release", "Init", "Join", "GetTradingDay", "RegisterFront", "RegisterNameServer",
           "RegisterFensUserInfo", "RegisterSpi"},
    "td": {"Release", "Init", "Join", "GetTradingDay", "GetFrontInfo", "RegisterFront", "RegisterNameServer",
           "RegisterFensUserInfo", "RegisterSpi", "SubscribePrivateTopic", "SubscribePublicTopic"},
}
MD_FORWARDED = ["ReqUserLogin", "ReqUserLogout", "ReqQryMulticastInstrument", "SubscribeMarketData",
                "UnSubscribeMarketData", "SubscribeForQuoteRsp", "UnSubscribeForQuoteRsp"]


# -- sentinels: values that name the call or callback they travel in ------------------------------------------

def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    return digits[number // 36 % 36] + digits[number % 36]


def sentinel(kind: str, size: int, index: int, param: int, last: bool) -> Any:
    """The value of a struct's first (or last) member in call/callback ``index``, parameter ``param``."""
    if kind == "str":
        return (_base36(index) + ("xyzw" if last else "abcd")[param])[: size - 1]
    if kind == "char":
        return chr((0x61 if last else 0x41) + index % 26)
    if kind in ("int", "short"):
        return (5000 if last else 1000) + 100 * param + index % 100 + (index // 100) * 10
    return (-1.0 if last else 1.0) * (index + param / 10 + 0.5)


def struct_sets(cls: str, index: int, param: int) -> dict[str, Any]:
    """Member -> sentinel for the first and last members of field class ``cls``."""
    members = load_spec()["fields"][cls]
    first, last = members[0], members[-1]
    values = {first[0]: sentinel(first[2], first[3], index, param, False)}
    if len(members) > 1:
        values[last[0]] = sentinel(last[2], last[3], index, param, True)
    return values


def filled(flavour: str, cls: str, index: int, param: int) -> Any:
    """A ctpshim field object of ``cls`` with the sentinels of :func:`struct_sets`."""
    obj = field_class(flavour, cls)()
    for member, value in struct_sets(cls, index, param).items():
        setattr(obj, member, value)
    return obj


def struct_members(cls: str) -> list[str]:
    members = load_spec()["fields"][cls]
    return [members[0][0]] + ([members[-1][0]] if len(members) > 1 else [])


# -- the program ------------------------------------------------------------------------------------------------

PROGRAM = r'''
"""A plain openctp-ctp program driven by a JSON plan (tests/native/test_vtable.py)."""
import json, os, sys, threading

plan = json.load(open(sys.argv[1]))
if os.environ.get("CTPSHIM_VTABLE_MODULE") == "ctpshim":  # the test's own check: ctpshim's Python API
    from ctpshim import mdapi, tdapi
else:
    from openctp_ctp import mdapi, tdapi

module = mdapi if plan["api"] == "md" else tdapi
lock = threading.Lock()


def out(**record):
    line = json.dumps(record, ensure_ascii=False, default=lambda v: v.decode("latin-1")
                      if isinstance(v, bytes) else repr(v))
    with lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def libraries():
    paths = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if "libthost" in path:
                paths.add(path)
    return sorted(paths)


out(event="start", module=module.__file__, python=sys.version.split()[0])
connected = threading.Event()


def handler(name, params):
    def on(self, *args):
        values = []
        for (kind, members), arg in zip(params, args):
            if kind == "struct":
                values.append(None if arg is None else [getattr(arg, m) for m in members])
            else:
                values.append(arg)
        out(event="callback", name=name, args=values)
        if name == "OnFrontConnected":
            connected.set()
    on.__name__ = name
    return on


base = module.CThostFtdcMdSpi if plan["api"] == "md" else module.CThostFtdcTraderSpi
Spi = type("Spi", (base,), {name: handler(name, params) for name, params in plan["spi"].items()})

if plan["api"] == "md":
    Api = module.CThostFtdcMdApi
    api = Api.CreateFtdcMdApi(plan["flow"])
else:
    Api = module.CThostFtdcTraderApi
    api = Api.CreateFtdcTraderApi(plan["flow"])
out(event="version", static=Api.GetApiVersion(), instance=api.GetApiVersion())
out(event="trading_day", when="before Init", value=api.GetTradingDay())
spi = Spi()
api.RegisterSpi(spi)
if plan["api"] == "td":
    api.SubscribePrivateTopic(plan["private_resume"])
    api.SubscribePublicTopic(plan["public_resume"])
api.RegisterFront(plan["front"])
api.Init()
out(event="connected", ok=connected.wait(30))
out(event="libraries", paths=libraries())
out(event="trading_day", when="connected", value=api.GetTradingDay())


def build(spec):
    kind, value = spec
    if kind == "struct":
        obj = getattr(module, value["class"])()
        for member, member_value in value["set"].items():
            setattr(obj, member, member_value)
        return obj
    if kind == "ids":
        return [item.encode() for item in value]
    if kind == "null":
        return None
    return value


for call in plan["calls"]:
    args = [build(spec) for spec in call["args"]]
    try:
        returned = getattr(api, call["method"])(*args)
    except Exception as exc:
        returned = f"raised {exc!r}"
    out(event="call", method=call["method"], index=call["index"], returned=returned)

if plan["api"] == "td":
    info = tdapi.CThostFtdcFrontInfoField()
    api.GetFrontInfo(info)
    out(event="front_info", FrontAddr=info.FrontAddr, QryFreq=info.QryFreq, FTDPkgFreq=info.FTDPkgFreq)
fens = module.CThostFtdcFensUserInfoField()
fens.BrokerID, fens.UserID = "9999", "fens"
for name, arg in (("RegisterNameServer", plan["front"]), ("RegisterFensUserInfo", fens)):
    try:
        out(event="local", method=name, returned=getattr(api, name)(arg))
    except Exception as exc:
        out(event="local", method=name, returned=f"raised {exc!r}")
out(event="trading_day", when="after calls", value=api.GetTradingDay())
out(event="calls_done")

for line in open(plan["control"]):  # a FIFO: the test's commands, one a line; its end = quit
    if line.strip() == "quit":
        break
    if line.strip() == "trading_day":
        out(event="trading_day", when="asked", value=api.GetTradingDay())

joined = {}


def join():
    joined["value"] = api.Join()


joiner = threading.Thread(target=join, daemon=True)
joiner.start()
joiner.join(0.3)  # Join blocks while the API runs
still_joining = joiner.is_alive()
api.Release()
joiner.join(15)
out(event="released", join_blocked=still_joining, join_returned=not joiner.is_alive(), join_value=joined.get("value"))
'''


def spi_plan(api: str) -> dict[str, list[list[Any]]]:
    """Each Spi method -> [kind, struct members to read] per parameter (what the program records)."""
    plan: dict[str, list[list[Any]]] = {}
    for name, sig in signatures(FLAVOUR_OF[api], "spi").items():
        plan[name] = [["struct", struct_members(cls)] if encoding == STRUCT else ["value", []]
                      for encoding, cls in zip(sig.encodings, sig.classes)]
    return plan


def forwarded(api: str) -> list[str]:
    """The methods of ``api`` that must reach the wire, in the spec's (vtable) order."""
    return [name for name in signatures(FLAVOUR_OF[api], "api") if name not in LOCAL[api]
            and name != "GetApiVersion"]


def call_plan(api: str) -> list[dict[str, Any]]:
    """Every forwarded method once: request id 700 + index, struct sentinels, distinct IDs per method."""
    calls = []
    for index, name in enumerate(forwarded(api)):
        sig = signatures(FLAVOUR_OF[api], "api")[name]
        args: list[Any] = []
        for position, (encoding, cls) in enumerate(zip(sig.encodings, sig.classes)):
            if encoding == STRUCT:
                args.append(["struct", {"class": cls, "set": struct_sets(cls, index, position)}])
            elif encoding == IDS:
                args.append(["ids", [f"{name[:8]}{index}-{n}" for n in range(index % 3 + 1)]])
            elif encoding == COUNT:
                args.append(["value", len(args[-1][1])])
            elif encoding == REQUEST_ID:
                args.append(["value", 700 + index])
            elif encoding == INT:
                args.append(["value", 31 + index])
            elif encoding == BOOL:
                args.append(["value", True])
            elif encoding == TEXT:
                args.append(["value", f"text{index}"])
            elif encoding == IS_LAST:
                args.append(["value", True])
        calls.append({"method": name, "index": index, "args": args})
    return calls


def result_code(call: Call) -> int:
    """The peer's RESULT code for a call: cycles through CTP's 0, -1, -2, -3 by request id."""
    return -((call.request_id + len(call.method)) % 4)


class Run:
    """One program and its scripted peer; :meth:`send` writes a command line to the program's FIFO."""

    def __init__(self, program: Program, server: ScriptedServer, api: str, control: Path, preload: list[str]) -> None:
        self.program = program
        self.server = server
        self.api = api
        self.control = control
        self.preload = preload
        self.peer: Peer | None = None
        self.front = server.front
        self._fd: int | None = None

    def connect(self) -> Peer:
        self.peer = self.server.wait_peer(self.api, WAIT)
        self.program.wait_for(lambda rs: [r for r in rs if r["event"] == "connected"], "OnFrontConnected", WAIT)
        return self.peer

    def send(self, line: str) -> None:
        if self._fd is None:
            deadline = time.monotonic() + WAIT
            while True:  # the program opens its end once its calls are done
                try:
                    self._fd = os.open(self.control, os.O_WRONLY | os.O_NONBLOCK)
                    break
                except OSError:
                    if time.monotonic() > deadline or self.program.process.poll() is not None:
                        raise AssertionError(f"the program never read its commands: {self.program.describe()}")
                    time.sleep(0.02)
            os.set_blocking(self._fd, True)
        os.write(self._fd, (line + "\n").encode())

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def callbacks(self) -> list[dict[str, Any]]:
        return [r for r in self.program.events("callback") if r["name"] != "OnFrontConnected"]

    def check_libraries(self) -> None:
        """The program ran openctp-ctp's SWIG module, and only the preloaded ctpshim libraries are mapped."""
        start = self.program.events("start")[0]
        assert "openctp_ctp" in start["module"], start
        mapped = {os.path.realpath(p) for p in self.program.events("libraries")[0]["paths"]}
        preloaded = {os.path.realpath(p) for p in self.preload}
        assert mapped and mapped <= preloaded, f"mapped {sorted(mapped)}, preloaded {sorted(preloaded)}"


@pytest.fixture
def vtable_run(native_preload: Any, openctp: Any, tmp_path: Path) -> Iterator[Any]:
    """``start(api, calls=[]) -> Run``: a scripted peer and the program on it (both ended at teardown)."""
    from .conftest import preload_env

    environment = clean_environment()
    environment.update(preload_env(native_preload))
    start, stop = runner(environment, tmp_path)
    yield start
    stop()


def runner(environment: dict[str, str], directory: Path, scheme: str = "tcp") -> tuple[Any, Any]:
    """``(start, stop)``: ``start(api, calls)`` runs the program in ``environment`` on a new scripted peer
    (front ``scheme://127.0.0.1:PORT``); ``stop()`` ends every program and peer."""
    source = directory / "vtable_program.py"
    source.write_text(PROGRAM)
    preload = environment.get("LD_PRELOAD", "").replace(":", " ").split()
    servers: list[ScriptedServer] = []
    runs: list[Run] = []

    def start(api: str, calls: list[dict[str, Any]] | None = None) -> Run:
        server = ScriptedServer(result_code=result_code, trading_day="20261203")
        server.start()
        servers.append(server)
        number = len(servers)
        flow = directory / f"flow-{api}-{number}"
        flow.mkdir()
        control = directory / f"control-{api}-{number}"
        os.mkfifo(control)
        plan = {"api": api, "front": server.front.replace("tcp", scheme, 1), "flow": str(flow) + os.sep,
                "spi": spi_plan(api), "calls": calls or [], "private_resume": 2, "public_resume": 0,
                "control": str(control)}
        plan_path = directory / f"plan-{api}-{number}.json"
        plan_path.write_text(json.dumps(plan))
        program = Program(str(source), [str(plan_path)], environment, directory)
        run = Run(program, server, api, control, preload)
        run.front = plan["front"]
        runs.append(run)
        return run

    def stop() -> None:
        for run in runs:
            run.close()
            run.program.kill()
        for server in servers:
            server.stop()

    return start, stop


# -- the API side ---------------------------------------------------------------------------------------------

def test_forwarded_method_lists() -> None:
    """The methods this file sends are exactly the issue's: md's 3 + 4 (un)subscriptions, td's Req* and
    the 4 *UserSystemInfo; nothing else of either API is missing from the checks below."""
    assert sorted(forwarded("md")) == sorted(MD_FORWARDED)
    td = forwarded("td")
    assert len(td) == 122
    assert {n for n in td if not n.startswith("Req")} == {"RegisterUserSystemInfo", "SubmitUserSystemInfo",
                                                           "RegisterWechatUserSystemInfo",
                                                           "SubmitWechatUserSystemInfo"}
    for api in ("md", "td"):
        every = set(signatures(FLAVOUR_OF[api], "api"))
        assert every == set(forwarded(api)) | LOCAL[api], api


@pytest.mark.parametrize("api", ["md", "td"])
def test_every_method_reaches_its_own_call(vtable_run: Any, api: str) -> None:
    calls = call_plan(api)
    run = vtable_run(api, calls)
    peer = run.connect()
    done = run.program.wait_for(lambda rs: [r for r in rs if r["event"] == "calls_done"], "the calls", 120)
    assert done
    received = peer.wait_calls(len(calls), WAIT)
    assert len(peer.calls) == len(calls), [c.method for c in peer.calls[len(calls):]]
    returned = {r["index"]: r["returned"] for r in run.program.events("call")}
    wrong: list[str] = []
    for plan, call in zip(calls, received):
        index, name = plan["index"], plan["method"]
        where = f"{name} (#{index})"
        if call.error:
            wrong.append(f"{where}: the peer could not decode it: {call.error}")
            continue
        if call.method != name:
            wrong.append(f"{where}: arrived as {call.method}")
            continue
        sig = signatures(FLAVOUR_OF[api], "api")[name]
        expected_id = 700 + index if REQUEST_ID in sig.encodings else 0
        if call.request_id != expected_id:
            wrong.append(f"{where}: request_id {call.request_id}, expected {expected_id}")
        for position, ((kind, value), got) in enumerate(zip(plan["args"], call.args)):
            if kind == "struct":
                if got is None:
                    wrong.append(f"{where}: parameter {position} arrived NULL")
                    continue
                for member, expected in value["set"].items():
                    if getattr(got, member) != expected:
                        wrong.append(f"{where}: {value['class']}.{member} = {getattr(got, member)!r}, "
                                     f"expected {expected!r}")
            elif kind == "ids":
                if [raw.decode() for raw in got] != value:
                    wrong.append(f"{where}: IDs {got!r}, expected {value!r}")
        if returned.get(index) != call.code:
            wrong.append(f"{where}: returned {returned.get(index)!r} to the program, the RESULT said {call.code}")
    assert not wrong, f"{len(wrong)} of {len(calls)} calls wrong:\n" + "\n".join(wrong[:40])
    # The local methods sent nothing.
    assert len(peer.calls) == len(calls), [c.method for c in peer.calls[len(calls):]]


@pytest.mark.parametrize("api", ["md", "td"])
def test_local_methods(vtable_run: Any, api: str) -> None:
    """GetApiVersion (static and on the object), GetTradingDay (before Init, connected, after a login reply),
    RegisterFront (the connection came),
    the td resume types (HELLO), GetFrontInfo, RegisterNameServer/RegisterFensUserInfo (no CALL, no crash),
    Join (blocks until Release, then returns) and Release (BYE, then the connection closes)."""
    run = vtable_run(api)
    peer = run.connect()
    assert peer.hello is not None and peer.hello.layout == LAYOUT_ID
    run.program.wait_for(lambda rs: [r for r in rs if r["event"] == "calls_done"], "the local calls", WAIT)
    version = run.program.events("version")[0]
    api_version = load_spec()["modules"][FLAVOUR_OF[api]]["api_version"]
    assert version["static"] == version["instance"] == api_version, version
    days = {r["when"]: r["value"] for r in run.program.events("trading_day")}
    assert days["before Init"] == "19800100", days
    assert days["connected"] in ("19800100", "20261203"), days
    if api == "td":
        assert (peer.hello.private_resume, peer.hello.public_resume) == (2, 0), peer.hello
        info = run.program.events("front_info")[0]
        assert info["FrontAddr"] in ("", run.front), info
    # After a login reply, GetTradingDay is its TradingDay.
    flavour = FLAVOUR_OF[api]
    login = field_class(flavour, "CThostFtdcRspUserLoginField")()
    login.TradingDay, login.FrontID, login.SessionID = "20261204", 3, 77
    info = field_class(flavour, "CThostFtdcRspInfoField")()
    peer.send_callback("OnRspUserLogin", (login, info, 1, True))
    run.program.wait_for(lambda rs: [r for r in rs if r["event"] == "callback" and r["name"] == "OnRspUserLogin"],
                         "OnRspUserLogin", WAIT)
    run.send("trading_day")
    asked = run.program.wait_for(lambda rs: [r for r in rs if r.get("when") == "asked"], "GetTradingDay", WAIT)
    assert asked[0]["value"] == "20261204", asked
    local = {r["method"]: r["returned"] for r in run.program.events("local")}
    assert local == {"RegisterNameServer": None, "RegisterFensUserInfo": None}, local
    assert peer.calls == [], [c.method for c in peer.calls]
    run.check_libraries()
    run.send("quit")
    released = run.program.wait_for(lambda rs: [r for r in rs if r["event"] == "released"], "Release", WAIT)[0]
    assert released["join_blocked"] and released["join_returned"], released
    assert peer.wait_closed(WAIT), "the connection stayed open after Release"
    assert peer.bye is not None, f"no BYE before the close ({peer.close_reason})"
    assert run.program.finish(WAIT) == 0, run.program.describe()


@pytest.mark.parametrize("api", ["md", "td"])
def test_null_structs_and_empty_lists(vtable_run: Any, api: str) -> None:
    """A NULL struct pointer travels as presence 0 both ways (a request with None, a query reply with no
    record), and an empty ID list is a CALL with no IDs."""
    request = "ReqUserLogin" if api == "md" else "ReqQryInstrument"
    calls = [{"method": request, "index": 0, "args": [["null", None], ["value", 41]]}]
    if api == "md":
        calls.append({"method": "SubscribeMarketData", "index": 1, "args": [["ids", []], ["value", 0]]})
    run = vtable_run(api, calls)
    peer = run.connect()
    run.program.wait_for(lambda rs: [r for r in rs if r["event"] == "calls_done"], "the calls", WAIT)
    received = peer.wait_calls(len(calls), WAIT)
    first = received[0]
    assert (first.method, first.request_id, first.args[0], first.error) == (request, 41, None, "")
    if api == "md":
        assert (received[1].method, received[1].args, received[1].error) == ("SubscribeMarketData", ([], 0), "")
    reply = "OnRspQryMulticastInstrument" if api == "md" else "OnRspQryInstrument"
    peer.send_callback(reply, (None, None, 42, True))
    got = run.program.wait_for(lambda rs: [r for r in rs if r["event"] == "callback" and r["name"] == reply],
                               reply, WAIT)
    assert got[0]["args"] == [None, None, 42, True], got


# -- the Spi side -----------------------------------------------------------------------------------------------

def callback_plan(api: str) -> list[tuple[str, tuple[Any, ...], list[Any], int]]:
    """Every Spi callback but the two the library makes itself (OnFrontConnected on HELLO_ACK; OnFrontDisconnected
    when the connection ends, with the reason the server gave): (name, Python args to send, what the program
    must record, request id)."""
    flavour = FLAVOUR_OF[api]
    plan = []
    for index, (name, sig) in enumerate(signatures(flavour, "spi").items()):
        if name in ("OnFrontConnected", "OnFrontDisconnected"):
            continue
        args: list[Any] = []
        expected: list[Any] = []
        request_id = 0
        for position, (encoding, cls) in enumerate(zip(sig.encodings, sig.classes)):
            if encoding == STRUCT:
                args.append(filled(flavour, cls, index, position))
                expected.append(list(struct_sets(cls, index, position).values()))
            elif encoding == REQUEST_ID:
                request_id = 9000 + index
                args.append(request_id)
                expected.append(request_id)
            elif encoding == IS_LAST:
                args.append(index % 2 == 0)
                expected.append(index % 2 == 0)
            elif encoding == INT:
                args.append(40 + index)
                expected.append(40 + index)
            else:  # no Spi callback has other parameters
                raise AssertionError(f"{name}: parameter encoding {encoding}")
        plan.append((name, tuple(args), expected, request_id))
    return plan


@pytest.mark.parametrize("api", ["md", "td"])
def test_every_callback_arrives_under_its_own_name(vtable_run: Any, api: str) -> None:
    run = vtable_run(api)
    peer = run.connect()
    plan = callback_plan(api)
    assert len(plan) + 2 == (13 if api == "md" else 164)
    for name, args, _expected, _rid in plan:
        peer.send_callback(name, args)
    records = run.program.wait_for(lambda rs: (got := [r for r in rs if r["event"] == "callback"])
                                   and len(got) >= len(plan) + 1 and got, f"{len(plan)} callbacks", WAIT)
    got = [r for r in records if r["event"] == "callback"]
    # The first is the library's own OnFrontConnected (HELLO_ACK); then ours, in order.
    assert got[0]["name"] == "OnFrontConnected" and got[0]["args"] == [], got[0]
    ours = got[1:]
    wrong = [f"#{n} {name}: got {record['name']} {record['args']}, expected {expected}"
             for n, ((name, _args, expected, _rid), record) in enumerate(zip(plan, ours))
             if record["name"] != name or record["args"] != expected]
    assert not wrong, f"{len(wrong)} of {len(plan)} callbacks wrong:\n" + "\n".join(wrong[:40])
    assert len(ours) == len(plan), ours[len(plan):]

    # The server's OnFrontDisconnected(reason), then the close (PROTOCOL.md 7.3): the program gets that reason.
    reason = 0x1001 + 0x100
    peer.send_callback("OnFrontDisconnected", (reason,))
    peer.close("the test: the source went down")
    run.program.wait_for(lambda rs: [r for r in rs if r["event"] == "callback" and r["name"] == "OnFrontDisconnected"],
                         "OnFrontDisconnected", WAIT)
    first = [r for r in run.program.events("callback") if r["name"] == "OnFrontDisconnected"][0]
    assert first["args"] == [reason], first


@pytest.mark.parametrize("api", ["md", "td"])
def test_undispatchable_callback_is_reported_and_dropped(vtable_run: Any, api: str) -> None:
    """A CALLBACK the library cannot dispatch (a name the Spi does not have; a known name whose struct is cut
    short) reaches no Spi method, is named on stderr, and costs nothing else: the connection stays up (no
    OnFrontDisconnected, no reconnection) and the next callback arrives as usual."""
    from ctpshim import mdapi

    run = vtable_run(api)
    peer = run.connect()
    info = mdapi.CThostFtdcRspInfoField()
    info.ErrorID, info.ErrorMsg = 77, "after the bad ones"
    payload, _rid, _flags = callback_parts("OnRspError", (info, 6, True), FLAVOUR_OF[api])
    peer.send_raw_callback(b"\x10OnRspNoSuchThing" + b"\x00", request_id=5)
    peer.send_raw_callback(payload[:-10], request_id=6, flags=0x02)  # its RspInfo 10 bytes short
    peer.send_callback("OnRspError", (info, 8, True))
    run.program.wait_for(lambda rs: [r for r in rs if r["event"] == "callback" and r["name"] == "OnRspError"],
                         "OnRspError #8", WAIT)
    assert [(r["name"], r["args"]) for r in run.callbacks()] == [("OnRspError", [[77, "after the bad ones"], 8, True])]
    stderr = run.program.stderr()  # written on the callback thread before #8 was delivered
    assert "OnRspNoSuchThing" in stderr and "dropped" in stderr, stderr
    assert not peer.closed.is_set(), peer.close_reason
    assert len(run.server.peers) == 1
    assert run.program.process.poll() is None, run.program.describe()


def test_the_scripted_peer_itself(tmp_path: Path) -> None:
    """The peer this file relies on, checked without the native libraries: ctpshim's own td API on
    ``ctpshim://`` gets HELLO_ACK (OnFrontConnected), its CALL is recorded with its request id and struct and
    answered with the chosen RESULT code, and a CALLBACK reaches its Spi."""
    import threading

    from ctpshim import tdapi

    events: list[tuple[Any, ...]] = []
    arrived = threading.Event()
    connected = threading.Event()

    class Spi(tdapi.CThostFtdcTraderSpi):
        def OnFrontConnected(self) -> None:
            connected.set()

        def OnRspQryInstrument(self, instrument: Any, info: Any, request_id: int, is_last: bool) -> None:
            events.append((instrument.InstrumentID if instrument else None, request_id, is_last))
            arrived.set()

    with ScriptedServer(result_code=result_code) as server:
        api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(str(tmp_path) + os.sep)
        spi = Spi()
        api.RegisterSpi(spi)
        api.RegisterFront(server.front.replace("tcp://", "ctpshim://", 1))
        api.Init()
        try:
            assert connected.wait(WAIT)
            peer = server.wait_peer("td", WAIT)
            query = tdapi.CThostFtdcQryInstrumentField()
            query.InstrumentID = "rb2701"
            returned = api.ReqQryInstrument(query, 17)
            call = peer.wait_calls(1, WAIT)[0]
            assert (call.method, call.request_id, call.args[0].InstrumentID, call.error) == ("ReqQryInstrument", 17,
                                                                                              "rb2701", "")
            assert returned == call.code == result_code(call)
            record = tdapi.CThostFtdcInstrumentField()
            record.InstrumentID = "rb2701"
            peer.send_callback("OnRspQryInstrument", (record, None, 17, True))
            assert arrived.wait(WAIT)
            assert events == [("rb2701", 17, True)]
        finally:
            api.Release()


# -- the tests' teeth: a library built with two slots swapped fails them, naming the slots ---------------------

SWAPS = (("virtual int SubscribeMarketData(", "virtual int UnSubscribeMarketData("),
         ("virtual void OnRspSubMarketData(", "virtual void OnRspUnSubMarketData("))


@pytest.fixture(scope="session")
def swapped_md_library(native_preload: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ctpshim's md library (openctp's hashed soname) built from generated headers in which SubscribeMarketData/
    UnSubscribeMarketData and OnRspSubMarketData/OnRspUnSubMarketData trade places: it compiles, links and
    runs, as NATIVE_PROBE.md's wrong-header copy did.  Only the md units are compiled (2 at a time)."""
    import shlex
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    from ctpshim import __version__
    from ctpshim.native import build
    from ctpshim.native.generate import generate

    base = tmp_path_factory.mktemp("swapped-md")
    generate(base)
    header = base / "include" / "ThostFtdcMdApi.h"
    lines = header.read_text().split("\n")
    for first, second in SWAPS:
        (a,) = [n for n, line in enumerate(lines) if line.lstrip().startswith(first)]
        (b,) = [n for n, line in enumerate(lines) if line.lstrip().startswith(second)]
        lines[a], lines[b] = lines[b], lines[a]
    header.write_text("\n".join(lines))
    compiler = build.find_compiler()
    sources = build.native_sources()
    include = ["-I", str(base / "include"), "-I", str(base / "gen"), "-I", str(sources / "src")]
    units = [base / name if name.startswith("gen/") else sources / "src" / name
             for name in build.MD_SOURCES + build.COMMON_SOURCES]

    def run(command: list[str]) -> None:
        done = subprocess.run(command, capture_output=True, text=True, timeout=build.COMPILE_TIMEOUT)
        assert done.returncode == 0, f"{shlex.join(command)}\n{done.stderr[-3000:]}"

    def compile_one(source: Path) -> Path:
        target = base / (source.stem + ".o")
        run([compiler, *build.CXXFLAGS, f'-DCTPSHIM_VERSION="{__version__}"', *include, "-c", str(source),
             "-o", str(target)])
        return target

    with ThreadPoolExecutor(max_workers=build.PARALLEL) as pool:
        objects = list(pool.map(compile_one, units))
    target = base / Path(native_preload.md).name
    run([compiler, *build.LDFLAGS, f"-Wl,--version-script={sources / 'exports' / 'md.map'}",
         f"-Wl,-soname,{target.name}", "-o", str(target), *map(str, objects), *build.LIBS])
    return target


def test_a_swapped_slot_fails_naming_it(swapped_md_library: Path, native_preload: Any, openctp: Any,
                                        tmp_path: Path) -> None:
    environment = clean_environment()
    environment["LD_PRELOAD"] = f"{swapped_md_library}:{native_preload.td}"
    start, stop = runner(environment, tmp_path)
    try:
        with pytest.raises(AssertionError) as calls:
            test_every_method_reaches_its_own_call(start, "md")
        with pytest.raises(AssertionError) as callbacks:
            test_every_callback_arrives_under_its_own_name(start, "md")
    finally:
        stop()
    assert "2 of 7 calls wrong" in str(calls.value), calls.value
    assert "SubscribeMarketData (#0): arrived as UnSubscribeMarketData" in str(calls.value), calls.value
    assert "UnSubscribeMarketData (#1): arrived as SubscribeMarketData" in str(calls.value), calls.value
    assert "2 of 11 callbacks wrong" in str(callbacks.value), callbacks.value
    assert "OnRspSubMarketData: got OnRspUnSubMarketData" in str(callbacks.value), callbacks.value
    assert "OnRspUnSubMarketData: got OnRspSubMarketData" in str(callbacks.value), callbacks.value
