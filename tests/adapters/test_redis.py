"""The ``redis://`` front: what ``serve --redis`` publishes, read by ordinary ctpshim programs (real redis-server)."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ctpshim.adapters.redis import RedisAdapter
from ctpshim.ctp.fields import values_of
from ctpshim.errors import FrontAddressError, UpstreamProtocolError, UpstreamUnavailable
from ctpshim.testing import AdapterConformance
from ctpshim.wire.structs import unpack_tick
from tests.conftest import wait_for
from tests.redis_server import PortHold, persistent_redis_server, publisher_settings, redis_server  # noqa: F401
from tests.server.conftest import serve_factory  # noqa: F401

SIM = "sim://?start=2026-11-20T09:35&hours=always&instruments=rb2701,TA701"
PROGRAMS = Path(__file__).parents[1] / "programs"
TIMEOUT = 20.0


def stamp(tick: Any) -> tuple[str, str, int]:
    return tick.InstrumentID, tick.UpdateTime, tick.UpdateMillisec


class TestRedisConformance(AdapterConformance):
    instrument = "rb2701"
    other_instrument = "TA701"
    bad_fronts = ("redis://", "redis://127.0.0.1:6379/a/b", "redis://127.0.0.1:6379/bad.name",
                  "redis://:pw@127.0.0.1:6379/sim?password=pw")

    @pytest.fixture
    def front(self, redis_server, serve_factory) -> str:  # noqa: F811
        serve_factory(f"{SIM}&speed=20", redis={"url": redis_server.url}, http=None)
        client = redis_server.client()
        wait_for(lambda: client.exists("ctpshim:sim:md:rb2701", "ctpshim:sim:md:TA701") == 2, TIMEOUT, "streams")
        return f"redis://127.0.0.1:{redis_server.port}/sim"

    @property
    def unreachable_front(self) -> str:  # type: ignore[override]
        return f"redis://127.0.0.1:{_refusing().port}/sim?timeout=2"


_hold: list[PortHold] = []


def _refusing() -> PortHold:
    """A port that refuses connections for the whole session (bound, never listening)."""
    if not _hold:
        _hold.append(PortHold())
    return _hold[0]


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT * 2))


# -- addresses -----------------------------------------------------------------------------------

@pytest.mark.parametrize("bad, says", [
    ("redis://", "needs a host"),
    ("redis://127.0.0.1:6379/a/b", "one source name"),
    ("redis://127.0.0.1:6379/sim%20x", "is not a source name"),
    ("redis://127.0.0.1:6379/sim?db=-1", "db='-1' is not valid: expected a whole number from 0 to 65535"),
    ("redis://127.0.0.1:6379/sim?namespace=a%20b", "setting namespace='a b' is not valid"),
    ("redis://127.0.0.1:6379/sim?timeout=0", "timeout='0' is not valid"),
    ("redis://127.0.0.1:6379/sim?stream=x", "unknown setting 'stream' for redis://; valid settings: namespace"),
    ("redis://:pw@127.0.0.1:6379/sim?password=pw", "password is given twice"),
    ("redis://127.0.0.1:99999/sim", "malformed"),
])
def test_a_bad_address_is_refused_naming_what_is_wrong(bad: str, says: str) -> None:
    with pytest.raises(FrontAddressError, match=says.replace("?", r"\?").replace("(", r"\(")):
        RedisAdapter.from_url(bad)


def test_register_front_refuses_a_bad_address_at_once(make_md) -> None:
    api, _ = make_md(init=False)
    with pytest.raises(FrontAddressError, match="redis:// needs a host"):
        api.RegisterFront("redis://")


def test_the_address_gives_host_port_source_and_credentials() -> None:
    adapter = RedisAdapter.from_url("redis://user:p%40ss@10.0.0.5/day?namespace=team1&db=3")
    assert (adapter.host, adapter.port, adapter.source, adapter.namespace) == ("10.0.0.5", 6379, "day", "team1")
    assert (adapter._username, adapter._password, adapter.config["db"]) == ("user", "p@ss", 3)


# -- connecting ----------------------------------------------------------------------------------

def test_without_a_source_the_servers_default_source_is_read(redis_server, serve_factory) -> None:  # noqa: F811
    async def nothing_published() -> None:
        adapter = RedisAdapter.from_url(redis_server.url)
        with pytest.raises(UpstreamUnavailable, match="no ctpshim server publishes under namespace 'ctpshim'"):
            await adapter.connect()
        await adapter.close()

    run(nothing_published())
    serve_factory({"day": f"{SIM}&speed=20"}, redis={"url": redis_server.url}, http=None)
    wait_for(lambda: redis_server.client().get("ctpshim:default") == b"day", TIMEOUT, "the default key")

    async def published() -> tuple[str, list[str], str | None, dict[str, Any]]:
        adapter = RedisAdapter.from_url(redis_server.url)
        await adapter.connect()
        try:
            return adapter.source, [i.instrument_id for i in adapter.instruments()], adapter.trading_day(), \
                await adapter.probe()
        finally:
            await adapter.close()

    source, instruments, day, probe = run(published())
    assert source == "day" and sorted(instruments) == ["TA701", "rb2701"] and day == "20261120"
    assert probe["source"] == "day" and probe["instruments"] == 2 and probe["last_write_s"] < 10


def test_a_wrong_password_is_unavailable_with_redis_own_words(redis_server) -> None:  # noqa: F811
    redis_server.client().config_set("requirepass", "right")

    async def scenario() -> None:
        adapter = RedisAdapter.from_url(f"redis://127.0.0.1:{redis_server.port}/sim?password=wrong")
        with pytest.raises(UpstreamUnavailable, match="redis 127.0.0.1:.*(WRONGPASS|invalid)"):
            await adapter.connect()
        await adapter.close()

    run(scenario())


def test_probe_refuses_a_source_nobody_publishes_and_another_layout(redis_server) -> None:  # noqa: F811
    async def scenario() -> None:
        adapter = RedisAdapter.from_url(f"{redis_server.url}/nosuch")
        await adapter.connect()
        try:
            with pytest.raises(UpstreamProtocolError, match="nothing is published for source 'nosuch'"):
                await adapter.probe()
            redis_server.client().hset("ctpshim:nosuch:info", mapping={"layout": "ctp6.3.15-0000", "updated": "0"})
            with pytest.raises(UpstreamProtocolError, match="layout ctp6.3.15-0000"):
                await adapter.probe()
        finally:
            await adapter.close()

    run(scenario())


def test_entries_of_another_layout_are_skipped_with_one_error(redis_server, caplog) -> None:  # noqa: F811
    client = redis_server.client()
    client.xadd("ctpshim:x:md:rb2701", {"b": b"\0" * 584, "v": "ctp6.3.15-0000"})

    async def scenario() -> list[Any]:
        adapter = RedisAdapter.from_url(f"{redis_server.url}/x")
        await adapter.connect()
        got: list[Any] = []
        try:
            await adapter.subscribe(["rb2701"])
            client.xadd("ctpshim:x:md:rb2701", {"b": b"\0" * 584, "v": "ctp6.3.15-0000"})
            iterator = adapter.ticks().__aiter__()
            with pytest.raises(asyncio.TimeoutError):
                got.extend(await asyncio.wait_for(iterator.__anext__(), 1.5))
            await iterator.aclose()
        finally:
            await adapter.close()
        return got

    with caplog.at_level(logging.ERROR, logger="ctpshim.redis"):
        assert run(scenario()) == []
    errors = [r.getMessage() for r in caplog.records if "layout" in r.getMessage()]
    assert len(errors) == 1 and "ctp6.3.15-0000" in errors[0], errors


# -- programs on redis:// ------------------------------------------------------------------------

def test_an_md_program_gets_the_snapshot_then_live_ticks(redis_server, serve_factory, make_md) -> None:  # noqa: F811
    serve_factory(f"{SIM}&speed=20", redis={"url": redis_server.url}, http=None)
    client = redis_server.client()
    wait_for(lambda: client.xlen("ctpshim:sim:md:rb2701") >= 3, TIMEOUT, "entries")
    api, spi = make_md(f"{redis_server.url}/sim", subscribe=["rb2701"])
    wait_for(lambda: len(spi.ticks) >= 6, TIMEOUT, "6 ticks on redis://")
    names = spi.names()
    assert names[:3] == ["OnFrontConnected", "OnRspUserLogin", "OnRspSubMarketData"]
    login = spi.events[1][1][0]
    assert login.TradingDay == "20261120"
    with spi.lock:
        ticks = list(spi.ticks)
    # The first tick is the stream's last entry when the program subscribed: an entry, not made up.
    published = {stamp(unpack_tick(f[b"b"])): list(values_of(unpack_tick(f[b"b"])))
                 for _, f in client.xrange("ctpshim:sim:md:rb2701")}
    assert all(published[stamp(t)] == list(values_of(t)) for t in ticks)
    stamps = [stamp(t) for t in ticks]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert {t.InstrumentID for t in ticks} == {"rb2701"}


def test_an_unedited_openctp_program_runs_on_redis(redis_server, serve_factory, tmp_path) -> None:  # noqa: F811
    serve_factory("sim://?start=2026-11-20T09:35&speed=20", redis={"url": redis_server.url}, http=None)
    wait_for(lambda: redis_server.client().exists("ctpshim:sim:md:rb2701", "ctpshim:sim:md:TA701") == 2, TIMEOUT,
             "streams")
    result = subprocess.run(
        [sys.executable, "-m", "ctpshim", "run", "--front", f"{redis_server.url}/sim",
         str(PROGRAMS / "openctp_md_program.py"), "6"], capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "trading day 20261120"
    ticks = [line.split() for line in lines if line.startswith("tick ")]
    assert len(ticks) >= 6 and {(t[1], t[2]) for t in ticks} == {("rb2701", "SHFE"), ("TA701", "CZCE")}


def test_ctpshim_ping_answers_for_a_redis_front(redis_server, serve_factory) -> None:  # noqa: F811
    serve_factory(f"{SIM}&speed=20", redis={"url": redis_server.url}, http=None)
    wait_for(lambda: redis_server.client().exists("ctpshim:sim:info"), TIMEOUT, "the info hash")
    result = subprocess.run([sys.executable, "-m", "ctpshim", "ping", f"{redis_server.url}/sim"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "source sim" in result.stdout and "instruments 2" in result.stdout, result.stdout


def _restart_scenario(redis_server, serve_factory, make_md, caplog) -> tuple[Any, list[Any], Any]:  # noqa: F811
    """A program on redis:// while Redis stops, stays down until a reconnect attempt has failed,
    and starts again on the same port."""
    serve_factory(f"{SIM}&speed=20", redis={"url": redis_server.url}, http=None)
    client = redis_server.client()
    wait_for(lambda: client.exists("ctpshim:sim:md:rb2701", "ctpshim:sim:md:TA701") == 2, TIMEOUT, "streams")
    api, spi = make_md(f"{redis_server.url}/sim", subscribe=["rb2701", "TA701"])
    wait_for(lambda: len(spi.ticks) >= 6, TIMEOUT, "ticks before the restart")
    caplog.set_level(logging.WARNING, logger="ctpshim")
    redis_server.stop()
    wait_for(lambda: "OnFrontDisconnected" in spi.names(), TIMEOUT, "OnFrontDisconnected")
    wait_for(lambda: any("cannot be reached" in r.getMessage() for r in caplog.records), TIMEOUT,
             "a reconnect attempt that failed")
    redis_server.start(redis_server.port)
    with spi.lock:
        before = len(spi.ticks)
    wait_for(lambda: spi.names().count("OnRspUserLogin") >= 2, TIMEOUT, "the login after reconnecting")
    wait_for(lambda: len(spi.ticks) >= before + 10, TIMEOUT, "ticks after the restart")
    with spi.lock:
        ticks = list(spi.ticks)
    return spi, ticks, redis_server.client()


def test_a_redis_restart_is_survived_with_no_gap_and_no_duplicate(redis_server, serve_factory, make_md,  # noqa: F811
                                                                  fast_reconnect, caplog) -> None:
    spi, ticks, client = _restart_scenario(redis_server, serve_factory, make_md, caplog)
    names = spi.names()
    down = names.index("OnFrontDisconnected")
    assert names[down + 1:down + 3] == ["OnFrontConnected", "OnRspUserLogin"]
    assert names.count("OnFrontDisconnected") == 1
    stamps = [stamp(t) for t in ticks]
    assert len(set(stamps)) == len(stamps), "a tick delivered twice"
    for instrument in ("rb2701", "TA701"):
        mine = [stamp(t) for t in ticks if t.InstrumentID == instrument]
        assert mine == sorted(mine)
        # Redis came back empty: every entry written since must have reached the program, in order.
        after = [stamp(unpack_tick(f[b"b"])) for _, f in client.xrange(f"ctpshim:sim:md:{instrument}")]
        assert after, instrument
        tail = [s for s in mine if s >= after[0]]
        assert tail == after[:len(tail)] and len(after) - len(tail) <= 3, (tail, after)


def test_a_persistent_redis_restart_resumes_each_stream_after_the_last_id(persistent_redis_server,  # noqa: F811
                                                                         serve_factory, make_md,
                                                                         fast_reconnect, caplog) -> None:
    spi, ticks, client = _restart_scenario(persistent_redis_server, serve_factory, make_md, caplog)
    for instrument in ("rb2701", "TA701"):
        mine = [stamp(t) for t in ticks if t.InstrumentID == instrument]
        stream = [stamp(unpack_tick(f[b"b"])) for _, f in client.xrange(f"ctpshim:sim:md:{instrument}")]
        start = stream.index(mine[0])  # the snapshot
        # From the snapshot on, the program got exactly the stream's entries: the ones written while
        # it was away too (the stream survived), none twice.
        assert mine == stream[start:start + len(mine)], instrument


def test_unsubscribe_then_subscribe_again_gives_a_fresh_snapshot(redis_server, serve_factory) -> None:  # noqa: F811
    serve_factory(f"{SIM}&speed=20", redis={"url": redis_server.url}, http=None)
    client = redis_server.client()
    wait_for(lambda: client.xlen("ctpshim:sim:md:rb2701") >= 2, TIMEOUT, "entries")

    def latest() -> tuple[str, str, int]:
        return stamp(unpack_tick(client.xrevrange("ctpshim:sim:md:rb2701", count=1)[0][1][b"b"]))

    async def scenario() -> tuple[Any, Any]:
        adapter = RedisAdapter.from_url(f"{redis_server.url}/sim")
        await adapter.connect()
        iterator = adapter.ticks().__aiter__()
        try:
            await adapter.subscribe(["rb2701"])
            first = list(await asyncio.wait_for(iterator.__anext__(), TIMEOUT))
            await adapter.unsubscribe(["rb2701"])
            assert adapter.carry["redis.last_ids"] == {}
            deadline = time.monotonic() + TIMEOUT
            while latest() == stamp(first[-1]) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)  # until the server has published a newer tick
            await adapter.subscribe(["rb2701"])
            again = list(await asyncio.wait_for(iterator.__anext__(), TIMEOUT))
            return first, again
        finally:
            await iterator.aclose()
            await adapter.close()

    first, again = run(scenario())
    assert stamp(again[0]) > stamp(first[-1])


def test_a_reader_on_another_database_and_namespace(redis_server, serve_factory, make_md) -> None:  # noqa: F811
    serve_factory(f"{SIM}&speed=20", redis={"url": f"{redis_server.url}/5", "namespace": "team1"}, http=None)
    api, spi = make_md(f"{redis_server.url}/sim?db=5&namespace=team1", subscribe=["TA701"])
    wait_for(lambda: len(spi.ticks) >= 3, TIMEOUT, "ticks from db 5, namespace team1")
    assert {t.InstrumentID for t in spi.ticks} == {"TA701"}


def test_a_server_restarted_behind_redis_is_no_disconnect_for_the_reader(redis_server, serve_factory,  # noqa: F811
                                                                        make_md) -> None:
    first = serve_factory(f"{SIM}&speed=20", redis={"url": redis_server.url}, http=None)
    client = redis_server.client()
    wait_for(lambda: client.exists("ctpshim:sim:md:rb2701"), TIMEOUT, "entries")
    api, spi = make_md(f"{redis_server.url}/sim", subscribe=["rb2701"])
    wait_for(lambda: len(spi.ticks) >= 3, TIMEOUT, "ticks from the first server")
    first.stop()
    with spi.lock:
        before = len(spi.ticks)
    serve_factory(f"{SIM}&speed=20&seed=7", redis={"url": redis_server.url}, http=None)
    wait_for(lambda: len(spi.ticks) >= before + 3, TIMEOUT, "ticks from the second server")
    assert "OnFrontDisconnected" not in spi.names()


def test_a_key_of_another_type_is_a_protocol_error_naming_it(redis_server) -> None:  # noqa: F811
    redis_server.client().set("ctpshim:sim:md:rb2701", "not a stream")

    async def scenario() -> None:
        adapter = RedisAdapter.from_url(f"{redis_server.url}/sim")
        await adapter.connect()
        try:
            with pytest.raises(UpstreamProtocolError, match="WRONGTYPE"):
                await adapter.subscribe(["rb2701"])
        finally:
            await adapter.close()

    run(scenario())


def test_a_read_only_redis_user_can_read(redis_server, serve_factory, make_md) -> None:  # noqa: F811
    client = redis_server.client()
    client.acl_setuser("reader", enabled=True, passwords=["+ro"], keys=["*"], commands=["+@read", "+@connection"])
    serve_factory(f"{SIM}&speed=20", redis={"url": redis_server.url}, http=None)
    wait_for(lambda: client.exists("ctpshim:sim:md:TA701"), TIMEOUT, "entries")
    api, spi = make_md(f"redis://reader:ro@127.0.0.1:{redis_server.port}/sim", subscribe=["TA701"])
    wait_for(lambda: len(spi.ticks) >= 3, TIMEOUT, "ticks for a read-only user")
    assert "OnFrontDisconnected" not in spi.names()


# -- interest across machines: reference counts by reader id, heartbeats ----------------------------

def _readers(server: Any) -> dict[str, frozenset[str]]:
    return server._redis.readers("sim")


def _tap(server: Any) -> Any:
    return server._redis._taps[0]


def _count(spi: Any, instrument: str) -> int:
    with spi.lock:
        return sum(1 for t in spi.ticks if t.InstrumentID == instrument)


def test_two_readers_of_one_instrument_one_unsubscribes_the_other_keeps_its_ticks(  # noqa: F811
        redis_server, serve_factory, make_md) -> None:
    # TA701 is published only for readers: the server does not publish it on its own.
    server = serve_factory(f"{SIM}&speed=20", http=None,
                           redis=publisher_settings(redis_server.url, instruments=["rb2701"], grace=0.2))
    client = redis_server.client()
    wait_for(lambda: client.exists("ctpshim:sim:md:rb2701"), TIMEOUT, "rb2701 published")
    assert not client.exists("ctpshim:sim:md:TA701")
    # Two markets (the fronts differ), so two readers with their own ids, as on two machines.
    first, first_spi = make_md(f"{redis_server.url}/sim?heartbeat=5", subscribe=["TA701"])
    second, second_spi = make_md(f"{redis_server.url}/sim?heartbeat=6", subscribe=["TA701"])
    wait_for(lambda: len(_readers(server).get("TA701", ())) == 2, TIMEOUT, "the server counting two readers")
    assert client.smembers("ctpshim:sim:want:TA701") == {r.encode() for r in _readers(server)["TA701"]} and \
        client.smembers("ctpshim:sim:wanted") == {b"TA701"}
    wait_for(lambda: _count(first_spi, "TA701") >= 3 and _count(second_spi, "TA701") >= 3, TIMEOUT, "ticks to both")
    assert first.UnSubscribeMarketData([b"TA701"], 1) == 0
    wait_for(lambda: len(_readers(server).get("TA701", ())) == 1, TIMEOUT, "the server counting one reader")
    assert client.scard("ctpshim:sim:want:TA701") == 1
    counted = time.monotonic()
    before = _count(second_spi, "TA701")
    # Ticks go on for the other reader well past the grace period and two more counts.
    wait_for(lambda: _count(second_spi, "TA701") >= before + 20 and time.monotonic() - counted > 2.5, TIMEOUT,
             "ticks to the reader that stayed")
    assert "TA701" in _tap(server).ids and len(_readers(server)["TA701"]) == 1
    second.Release()  # a clean close: its id leaves the want set at once, then the instrument goes
    wait_for(lambda: "TA701" not in _tap(server).ids, TIMEOUT, "TA701 let go after the last reader")
    assert not client.exists("ctpshim:sim:want:TA701") and not client.sismember("ctpshim:sim:wanted", "TA701")


def test_a_killed_reader_is_released_when_its_heartbeat_expires(redis_server, serve_factory,  # noqa: F811
                                                              tmp_path) -> None:
    server = serve_factory(f"{SIM}&speed=20", http=None,
                           redis=publisher_settings(redis_server.url, instruments=["rb2701"], grace=0.2))
    client = redis_server.client()
    wait_for(lambda: client.exists("ctpshim:sim:md:rb2701"), TIMEOUT, "rb2701 published")
    # The program subscribes rb2701 and TA701 and would run for 30 s; it is killed (no cleanup at all).
    program = subprocess.Popen(
        [sys.executable, "-m", "ctpshim", "run", "--front", f"{redis_server.url}/sim?heartbeat=1",
         str(PROGRAMS / "openctp_md_program.py"), "1000000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(tmp_path))
    try:
        wait_for(lambda: "TA701" in _readers(server), TIMEOUT * 2, "the killed-to-be reader counted")
        (reader,) = _readers(server)["TA701"]
        assert client.exists(f"ctpshim:reader:{reader}")
        wait_for(lambda: client.xlen("ctpshim:sim:md:TA701") >= 3, TIMEOUT, "TA701 published for it")
        program.send_signal(signal.SIGKILL)
        program.wait(TIMEOUT)
    finally:
        if program.poll() is None:
            program.kill()
            program.wait(TIMEOUT)
    assert client.sismember("ctpshim:sim:want:TA701", reader), "killed: nothing cleaned up"
    wait_for(lambda: not client.exists(f"ctpshim:reader:{reader}"), TIMEOUT, "the heartbeat expiring (1 s)")
    wait_for(lambda: "TA701" not in _tap(server).ids, TIMEOUT, "the server letting TA701 go")
    assert "TA701" not in _readers(server) and "rb2701" in _tap(server).ids  # listed: published regardless
    wait_for(lambda: not client.exists("ctpshim:sim:want:TA701"), TIMEOUT, "the dead id removed")
    assert not client.sismember("ctpshim:sim:wanted", "TA701")
    def rb_added() -> int:
        return int(client.xinfo_stream("ctpshim:sim:md:rb2701")["entries-added"])

    rb = rb_added()
    wait_for(lambda: rb_added() >= rb + 3, TIMEOUT, "writes after the let-go (a TA701 tick queued before it is out)")
    added = int(client.xinfo_stream("ctpshim:sim:md:TA701")["entries-added"])
    rb = rb_added()
    wait_for(lambda: rb_added() >= rb + 10, TIMEOUT, "rb2701 going on")
    assert int(client.xinfo_stream("ctpshim:sim:md:TA701")["entries-added"]) == added, "TA701 no longer written"


def test_a_late_reader_gets_the_streams_last_entry_as_its_snapshot(redis_server, serve_factory,  # noqa: F811
                                                                  make_md) -> None:
    server = serve_factory(f"{SIM}&speed=20", http=None,
                           redis=publisher_settings(redis_server.url, instruments=["rb2701"], grace=0.2))
    client = redis_server.client()
    early, early_spi = make_md(f"{redis_server.url}/sim?heartbeat=5", subscribe=["TA701"])
    wait_for(lambda: client.xlen("ctpshim:sim:md:TA701") >= 5, TIMEOUT, "TA701 published for the first reader")

    def last() -> tuple[str, str, int]:
        return stamp(unpack_tick(client.xrevrange("ctpshim:sim:md:TA701", count=1)[0][1][b"b"]))

    at_subscribe = last()
    late, late_spi = make_md(f"{redis_server.url}/sim?heartbeat=6", subscribe=["TA701"])
    wait_for(lambda: _count(late_spi, "TA701") >= 1, TIMEOUT, "the late reader's snapshot")
    with late_spi.lock:
        snapshot = late_spi.ticks[0]
    published = {stamp(unpack_tick(f[b"b"])): list(values_of(unpack_tick(f[b"b"])))
                 for _, f in client.xrange("ctpshim:sim:md:TA701")}
    # An entry of the stream (not made up), the last one when the late reader subscribed, or newer.
    assert published[stamp(snapshot)] == list(values_of(snapshot)) and stamp(snapshot) >= at_subscribe
    assert late_spi.names().index("OnRspSubMarketData") < late_spi.names().index("OnRtnDepthMarketData")
    wait_for(lambda: len(_readers(server).get("TA701", ())) == 2, TIMEOUT, "two readers counted")


def test_a_big_reply_arriving_in_pieces_is_parsed_once_and_right() -> None:
    from ctpshim.adapters.redis import RespError, RespLink

    def bulk(data: bytes) -> bytes:
        return b"$%d\r\n%s\r\n" % (len(data), data)

    entry = b"*2\r\n" + bulk(b"1-1") + b"*4\r\n" + bulk(b"b") + bulk(b"\0" * 584) + bulk(b"v") + bulk(b"x")
    reply = b"*3\r\n" + b"".join(b"*2\r\n" + bulk(b"k%d" % n) + b"*1\r\n" + entry for n in range(3))
    stream = reply + b"*-1\r\n" + b"*0\r\n" + b"-ERR no\r\n" + b":7\r\n"
    link = RespLink.__new__(RespLink)
    link._buffer, link._pos, link._partial = bytearray(), 0, None
    parsed: list[Any] = []
    for at in range(0, len(stream), 97):  # pieces cutting through lines, lengths and blobs
        if link._pos:
            del link._buffer[:link._pos]
            link._pos = 0
        link._buffer += stream[at:at + 97]
        while (item := link._parse()) is not _incomplete():
            parsed.append(item)
    expected = [[[b"k%d" % n, [[b"1-1", [b"b", b"\0" * 584, b"v", b"x"]]]] for n in range(3)], None, []]
    assert parsed[:3] == expected and isinstance(parsed[3], RespError) and parsed[4] == 7 and len(parsed) == 5


def _incomplete() -> Any:
    from ctpshim.adapters import redis as module

    return module._INCOMPLETE
