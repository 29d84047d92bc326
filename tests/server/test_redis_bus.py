"""``serve --redis``: every source's ticks in Redis Streams (a real redis-server, tests/redis_server.py)."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from ctpshim.ctp.fields import values_of
from ctpshim.wire.structs import LAYOUT_ID, TICK_SIZE, unpack_tick
from tests.conftest import wait_for
from tests.redis_server import (  # noqa: F401
    PortHold, RedisServer, free_port, persistent_redis_server, redis_server,
)

SIM = "sim://?start=2026-11-20T09:35&hours=always&instruments=rb2701,TA701"
TIMEOUT = 20.0


def key(instrument: str, source: str = "sim", namespace: str = "ctpshim") -> str:
    return f"{namespace}:{source}:md:{instrument}"


def entries(client: Any, stream: str) -> list[tuple[bytes, Any]]:
    """(id, tick) of every entry of ``stream``, checking each entry's fields."""
    found = []
    for entry_id, fields in client.xrange(stream):
        assert set(fields) == {b"b", b"v"}
        assert fields[b"v"].decode() == LAYOUT_ID and len(fields[b"b"]) == TICK_SIZE
        found.append((entry_id, unpack_tick(fields[b"b"])))
    return found


def publisher(server: Any) -> Any:
    return server._redis


def test_every_listed_instrument_has_a_stream_and_the_index_info_and_default_keys(redis_server, serve_factory):
    server = serve_factory(f"{SIM}&speed=20", redis={"url": redis_server.url}, http=None)
    client = redis_server.client()
    wait_for(lambda: client.exists(key("rb2701"), key("TA701")) == 2, TIMEOUT, "both streams")
    assert client.smembers("ctpshim:sim:instruments") == {b"rb2701", b"TA701"}
    assert client.get("ctpshim:default") == b"sim"
    info = client.hgetall("ctpshim:sim:info")
    assert info[b"layout"].decode() == LAYOUT_ID and info[b"trading_day"] == b"20261120"
    assert abs(float(info[b"updated"]) - time.time()) < 10
    assert client.type(key("rb2701")) == b"stream"
    wait_for(lambda: publisher(server).published > 0, TIMEOUT, "the publisher's count (after the replies)")
    assert publisher(server).up


def test_each_entry_decodes_to_a_tick_the_source_gave_in_order(redis_server, serve_factory, make_md):
    server = serve_factory(f"{SIM}&speed=20", redis={"url": redis_server.url}, http=None)
    # An API object on the same front shares the server's market: it sees the source's ticks.
    api, spi = make_md(SIM + "&speed=20", subscribe=["rb2701", "TA701"])
    client = redis_server.client()
    wait_for(lambda: client.xlen(key("rb2701")) >= 10 and client.xlen(key("TA701")) >= 10, TIMEOUT, "10 entries each")
    with spi.lock:
        seen = {(t.InstrumentID, t.UpdateTime, t.UpdateMillisec): list(values_of(t)) for t in spi.ticks}
    for instrument in ("rb2701", "TA701"):
        published = entries(client, key(instrument))
        assert all(tick.InstrumentID == instrument for _, tick in published)
        stamps = [(t.TradingDay, t.UpdateTime, t.UpdateMillisec) for _, t in published]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps), "entries in time order, none twice"
        first = min(stamp for stamp in seen if stamp[0] == instrument)[1:]
        # From the program's first tick on (the server had ticks before it subscribed), up to the
        # last few (they may reach Redis before the program's dispatcher hands them on).
        compared = [t for _, t in published if (t.UpdateTime, t.UpdateMillisec) >= first][:-3]
        assert len(compared) >= 5
        for tick in compared:
            assert list(values_of(tick)) == seen.get((tick.InstrumentID, tick.UpdateTime, tick.UpdateMillisec))
    assert publisher(server).failures == 0


def test_streams_are_trimmed_to_about_maxlen(redis_server, serve_factory):
    serve_factory(f"{SIM}&speed=max", redis={"url": redis_server.url, "maxlen": 50}, http=None)
    client = redis_server.client()

    def added() -> int:
        if not client.exists(key("rb2701")):
            return 0
        return int(client.xinfo_stream(key("rb2701"))["entries-added"])

    wait_for(lambda: added() >= 1000, TIMEOUT, "1000 entries added")
    length = client.xlen(key("rb2701"))
    # MAXLEN ~ trims whole macro nodes (100 entries each by default): at least maxlen are kept.
    assert 50 <= length <= 50 + 100 + 50, length


def test_only_the_configured_instruments_are_published(redis_server, serve_factory):
    serve_factory(f"{SIM}&speed=20", redis={"url": redis_server.url, "instruments": ["TA701"],
                                            "namespace": "team1"}, http=None)
    client = redis_server.client()
    wait_for(lambda: client.xlen(key("TA701", namespace="team1")) >= 3, TIMEOUT, "TA701 entries")
    assert client.smembers("team1:sim:instruments") == {b"TA701"}
    assert not client.exists(key("rb2701", namespace="team1"))
    assert not client.keys("ctpshim:*")


def test_every_source_is_published_under_its_own_name(redis_server, serve_factory):
    serve_factory({"day": f"{SIM}&speed=20", "other": "sim://?start=2026-11-20T09:35&hours=always&speed=20"
                   "&instruments=cu2701&seed=5"}, redis={"url": redis_server.url}, http=None)
    client = redis_server.client()
    wait_for(lambda: client.exists(key("rb2701", "day"), key("cu2701", "other")) == 2, TIMEOUT, "both sources")
    assert client.get("ctpshim:default") == b"day"
    assert client.smembers("ctpshim:other:instruments") == {b"cu2701"}
    assert not client.exists(key("cu2701", "day"))


def test_an_instrument_a_reader_registers_interest_in_is_published_too(redis_server, serve_factory):
    server = serve_factory(f"{SIM}&speed=20", redis={"url": redis_server.url, "instruments": ["rb2701"]}, http=None)
    client = redis_server.client()
    wait_for(lambda: client.exists(key("rb2701")), TIMEOUT, "rb2701")
    assert not client.exists(key("TA701"))
    # What a reader in another language does: its id in the want set, a heartbeat with a TTL.
    client.set("ctpshim:reader:r1", "host 1", ex=30)
    client.sadd("ctpshim:sim:want:TA701", "r1")
    client.sadd("ctpshim:sim:wanted", "TA701")
    wait_for(lambda: client.xlen(key("TA701")) >= 2, TIMEOUT, "TA701 published for the reader's interest")
    assert b"TA701" in client.smembers("ctpshim:sim:instruments")
    assert publisher(server).readers("sim") == {"TA701": frozenset({"r1"})}


def test_a_slow_redis_is_conflated_and_holds_nothing_else_up(redis_server, serve_factory, make_md):
    server = serve_factory(f"{SIM}&speed=max", redis={"url": redis_server.url}, http=None)
    api, spi = make_md(SIM + "&speed=max", subscribe=["rb2701"])
    client = redis_server.client()
    wait_for(lambda: client.exists(key("rb2701")), TIMEOUT, "rb2701")
    before = publisher(server).conflated
    client.execute_command("CLIENT", "PAUSE", "1500", "WRITE")  # every XADD waits 1.5 s from now
    paused = time.monotonic()
    with spi.lock:
        ticks_then = len(spi.ticks)
    wait_for(lambda: len(spi.ticks) > ticks_then + 100, 1.0, "ticks to the in-process program while Redis waits")
    assert time.monotonic() - paused < 1.5
    wait_for(lambda: publisher(server).conflated > before + 100, TIMEOUT, "newer ticks replacing waiting ones")
    added = int(client.xinfo_stream(key("rb2701"))["entries-added"])
    wait_for(lambda: int(client.xinfo_stream(key("rb2701"))["entries-added"]) > added, TIMEOUT, "publishing again")
    assert publisher(server).failures == 0


def test_a_redis_restart_is_logged_once_and_publishing_resumes(redis_server, serve_factory, fast_reconnect,
                                                                caplog):
    server = serve_factory(f"{SIM}&speed=20", redis={"url": redis_server.url}, http=None)
    client = redis_server.client()
    wait_for(lambda: client.exists(key("rb2701")), TIMEOUT, "rb2701")
    with caplog.at_level(logging.WARNING, logger="ctpshim.server.redis"):
        redis_server.stop()
        wait_for(lambda: publisher(server).failures >= 3, TIMEOUT, "failed writes while Redis is down")
        redis_server.start(redis_server.port)  # empty: no persistence
        client = redis_server.client()
        wait_for(lambda: client.exists(key("rb2701"), key("TA701")) == 2, TIMEOUT, "streams again")
        wait_for(lambda: client.get("ctpshim:default") == b"sim", TIMEOUT, "the default key again")
    assert client.smembers("ctpshim:sim:instruments") == {b"rb2701", b"TA701"}
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "cannot publish" in m]) == 1, messages
    assert any("reachable again" in m for m in messages), messages
    assert publisher(server).up


def test_a_redis_down_at_start_does_not_stop_the_server(serve_factory, tmp_path_factory, fast_reconnect, caplog):
    from tests.redis_server import redis_executable, require_redis_server

    require_redis_server()
    later = RedisServer(redis_executable(), tmp_path_factory.mktemp("redis"))  # type: ignore[arg-type]
    hold = PortHold()  # refused, and no other process's Redis can take the port meanwhile
    port = hold.port
    with caplog.at_level(logging.WARNING, logger="ctpshim.server.redis"):
        server = serve_factory(f"{SIM}&speed=20", redis={"url": f"redis://127.0.0.1:{port}"}, http=None)
    assert any("cannot publish" in r.getMessage() and f"127.0.0.1:{port}" in r.getMessage() for r in caplog.records)
    try:
        hold.release()
        later.start(port)
        client = later.client()
        wait_for(lambda: client.exists(key("rb2701")), TIMEOUT, "published once Redis is up")
        assert publisher(server).up
    finally:
        later.stop()


def test_a_password_in_the_url_is_not_logged(redis_server, serve_factory, caplog):
    redis_server.client().config_set("requirepass", "s3cret")
    with caplog.at_level(logging.INFO, logger="ctpshim.server.redis"):
        serve_factory(f"{SIM}&speed=20", redis={"url": f"redis://:s3cret@127.0.0.1:{redis_server.port}"}, http=None)
    import redis

    client = redis.Redis(port=redis_server.port, password="s3cret")
    wait_for(lambda: client.exists(key("rb2701")), TIMEOUT, "published with AUTH")
    assert not [r for r in caplog.records if "s3cret" in r.getMessage()]
    assert any(":***@" in r.getMessage() for r in caplog.records)


def test_a_key_of_another_type_is_reported_once_and_the_others_go_on(redis_server, serve_factory, caplog):
    client = redis_server.client()
    client.set(key("rb2701"), "not a stream")
    with caplog.at_level(logging.ERROR, logger="ctpshim.server.redis"):
        server = serve_factory(f"{SIM}&speed=20", redis={"url": redis_server.url}, http=None)
        wait_for(lambda: client.xlen(key("TA701")) >= 5, TIMEOUT, "TA701 entries")
    errors = [r.getMessage() for r in caplog.records if "rb2701" in r.getMessage()]
    assert len(errors) == 1 and "WRONGTYPE" in errors[0], errors
    assert client.get(key("rb2701")) == b"not a stream"
    assert publisher(server).up and publisher(server).failures == 0


def test_the_url_selects_the_database(redis_server, serve_factory):
    serve_factory(f"{SIM}&speed=20", redis={"url": f"{redis_server.url}/3"}, http=None)
    import redis

    third = redis.Redis(port=redis_server.port, db=3)
    wait_for(lambda: third.exists(key("rb2701")), TIMEOUT, "rb2701 in db 3")
    assert not redis_server.client().exists(key("rb2701"))


def test_without_redis_server_the_tests_skip_saying_so_or_fail_in_ci(monkeypatch):
    import tests.redis_server as fixture

    monkeypatch.setattr(fixture, "redis_executable", lambda: None)
    monkeypatch.setattr(fixture, "REQUIRE_REDIS", False)
    with pytest.raises(pytest.skip.Exception, match="redis-server is not installed"):
        fixture.require_redis_server()
    monkeypatch.setattr(fixture, "REQUIRE_REDIS", True)
    with pytest.raises(pytest.fail.Exception, match="CTPSHIM_REQUIRE_REDIS=1"):
        fixture.require_redis_server()


def test_a_unix_socket_url_with_a_user_and_password(serve_factory, tmp_path_factory):
    from tests.redis_server import require_redis_server

    folder = tmp_path_factory.mktemp("redis")
    socket_path = folder / "redis.sock"
    server = RedisServer(require_redis_server(), folder, extra=("--unixsocket", str(socket_path)))
    server.start()
    try:
        server.client().acl_setuser("feeder", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all"])
        serve_factory(f"{SIM}&speed=20", redis={"url": f"unix://feeder:pw@{socket_path}?db=2"}, http=None)
        import redis

        second = redis.Redis(port=server.port, db=2)
        wait_for(lambda: second.exists(key("rb2701")), TIMEOUT, "rb2701 in db 2 over the unix socket")
    finally:
        server.stop()


def test_a_rediss_url_publishes_over_tls(serve_factory, tmp_path_factory):
    import shutil
    import subprocess

    from tests.redis_server import require_redis_server

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: no certificate for the TLS test")
    folder = tmp_path_factory.mktemp("redis")
    cert, private = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(private), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    tls_port = free_port()
    server = RedisServer(require_redis_server(), folder,
                         extra=("--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file",
                                str(private), "--tls-auth-clients", "no"))
    try:
        server.start()
    except RuntimeError as exc:
        pytest.skip(f"this redis-server does not start with TLS: {exc}")
    try:
        serve_factory(f"{SIM}&speed=20", redis={"url": f"rediss://127.0.0.1:{tls_port}?ssl_ca_certs={cert}"},
                      http=None)
        client = server.client()
        wait_for(lambda: client.exists(key("rb2701")), TIMEOUT, "rb2701 over TLS")
    finally:
        server.stop()


# -- compatibility publishers -----------------------------------------------------------------------

# ctpbee's TickData fields: the keys its jsond decoder must find to make a TickData (ctpbee/constant.py).
CTPBEE_TICKDATA = {
    "datetime", "symbol", "exchange", "name", "volume", "last_price", "last_volume", "limit_up", "limit_down",
    "open_interest", "average_price", "settlement_price", "pre_settlement_price", "pre_open_interest", "open_price",
    "high_price", "low_price", "pre_close", "turnover", "gateway_name", "local_symbol",
    *(f"{side}_{what}_{level}" for side in ("bid", "ask") for what in ("price", "volume") for level in range(1, 6)),
}
# qaopenmdgateway's quote keys, in its order (src/market_data_server.cpp build_quote_data).
QAOPENMD_KEYS = (
    ["instrument_id", "datetime"]
    + [k for level in range(10, 0, -1) for k in (f"ask_price{level}", f"ask_volume{level}")]
    + [k for level in range(1, 11) for k in (f"bid_price{level}", f"bid_volume{level}")]
    + ["last_price", "highest", "lowest", "open", "close", "average", "volume", "amount", "open_interest",
       "settlement", "upper_limit", "lower_limit", "pre_open_interest", "pre_settlement", "pre_close"]
)


def stream_ticks(client: Any, instrument: str) -> dict[tuple[str, str, int], Any]:
    return {(t.TradingDay, t.UpdateTime, t.UpdateMillisec): t for _, t in entries(client, key(instrument))}


def test_ctpbee_local_apps_get_every_tick_in_ctpbees_envelope(redis_server, serve_factory):
    import json
    import re
    from datetime import datetime

    from tests.redis_server import publisher_settings

    client = redis_server.client()
    listener = client.pubsub()
    listener.subscribe("ctpbee_tick_kernel")  # what ctpbee's local MdApi.run subscribes
    assert listener.get_message(timeout=5)["type"] == "subscribe"
    serve_factory(f"{SIM}&speed=20", redis=publisher_settings(redis_server.url, compat=["ctpbee"]), http=None)
    decoded: list[dict[str, Any]] = []
    deadline = time.monotonic() + TIMEOUT
    while len(decoded) < 20 and time.monotonic() < deadline:
        message = listener.get_message(timeout=1)
        if message is None or message["type"] != "message":
            continue
        # ctpbee: tick = loads(json.loads(item["data"])["data"]); loads parses the inner JSON text.
        outer = json.loads(message["data"].decode("utf8"))
        assert set(outer) == {"data", "index"} and outer["index"] is None
        assert isinstance(outer["data"], str)
        decoded.append(json.loads(outer["data"]))
    listener.close()
    assert len(decoded) >= 20
    published = {"rb2701": stream_ticks(client, "rb2701"), "TA701": stream_ticks(client, "TA701")}
    compared = 0
    for tick in decoded:
        # jsond makes a TickData only when the key set is exactly TickData's fields.
        assert set(tick) == CTPBEE_TICKDATA, set(tick) ^ CTPBEE_TICKDATA
        # Its datetime tag: this pattern, then strptime with %f.
        assert re.match(r"\d{4}-\d{1,2}-\d{1,2}\s\d{1,2}:\d{1,2}:\d{1,2}.\d+", tick["datetime"])
        moment = datetime.strptime(tick["datetime"], "%Y-%m-%d %H:%M:%S.%f")
        assert tick["local_symbol"] == f"{tick['symbol']}.{tick['exchange']}"
        assert tick["exchange"] == {"rb2701": "SHFE", "TA701": "CZCE"}[tick["symbol"]]
        stamp = (moment.strftime("%Y%m%d"), moment.strftime("%H:%M:%S"), moment.microsecond // 1000)
        source = published[tick["symbol"]].get(stamp)
        if source is None:
            continue  # the ActionDay differs from the trading day (night), or not in the stream yet
        compared += 1
        assert (tick["last_price"], tick["volume"], tick["turnover"], tick["open_interest"]) == \
            (source.LastPrice, source.Volume, source.Turnover, source.OpenInterest)
        assert (tick["bid_price_1"], tick["ask_volume_5"], tick["limit_up"]) == \
            (source.BidPrice1, source.AskVolume5, source.UpperLimitPrice)
    assert compared >= 10 and {t["symbol"] for t in decoded} == {"rb2701", "TA701"}


def test_qaopenmd_readers_get_the_latest_quote_and_the_history(redis_server, serve_factory):
    import json
    from datetime import datetime, timedelta, timezone

    from tests.redis_server import publisher_settings

    serve_factory(f"{SIM}&speed=20", redis=publisher_settings(redis_server.url, compat=["qaopenmd"]), http=None)
    client = redis_server.client()
    wait_for(lambda: client.zcard("history:rb2701") >= 10 and client.exists("TA701"), TIMEOUT, "quotes and history")
    latest = json.loads(client.get("rb2701"))
    assert list(latest) == QAOPENMD_KEYS
    assert latest["instrument_id"] == "SHFE.rb2701"
    assert json.loads(client.get("TA701"))["instrument_id"] == "CZCE.TA701"
    assert all(latest[f"ask_price{n}"] is None and latest[f"bid_volume{n}"] is None for n in range(6, 11))
    assert latest["average"] is None and isinstance(latest["volume"], int) and isinstance(latest["amount"], float)
    assert latest["close"] == "-" or isinstance(latest["close"], float)
    beijing = timezone(timedelta(hours=8))
    published = stream_ticks(client, "rb2701")
    history = client.zrange("history:rb2701", 0, -1, withscores=True)
    compared = 0
    for member, score in history:
        quote = json.loads(member)
        assert list(quote) == QAOPENMD_KEYS
        # "YYYY-MM-DD HH:MM:SS.xxxxx": the trading day, the update time, milliseconds x 100 in 5 digits.
        day_time, fraction = quote["datetime"].rsplit(".", 1)
        assert len(fraction) == 5 and int(fraction) % 100 == 0
        moment = datetime.strptime(day_time, "%Y-%m-%d %H:%M:%S").replace(tzinfo=beijing)
        assert int(score) == int(moment.timestamp()) * 1000 + int(fraction) // 100
        tick = published.get((moment.strftime("%Y%m%d"), moment.strftime("%H:%M:%S"), int(fraction) // 100))
        if tick is not None:
            compared += 1
            assert quote["last_price"] == round(tick.LastPrice, 2) and quote["volume"] == tick.Volume
            assert quote["bid_price1"] == round(tick.BidPrice1, 2) and quote["ask_volume1"] == tick.AskVolume1
            assert quote["open_interest"] == int(tick.OpenInterest)
    assert compared >= 5
    scores = [score for _, score in history]
    assert scores == sorted(scores)


def test_qaopenmd_history_drops_entries_older_than_two_days_once_it_is_big(redis_server, serve_factory,
                                                                           monkeypatch):
    from ctpshim.server import redis_bus
    from tests.redis_server import publisher_settings

    monkeypatch.setattr(redis_bus, "QAOPENMD_HISTORY_MAX", 30)
    client = redis_server.client()
    now_ms = int(time.time() * 1000)
    old = {f"old{n}": now_ms - redis_bus.QAOPENMD_KEEP_MS - 60_000 - n for n in range(5)}
    client.zadd("history:TA701", old)
    # The market's clock at the machine's time: its ticks are recent, not older than two days.
    serve_factory("sim://?hours=always&instruments=TA701&speed=20",
                  redis=publisher_settings(redis_server.url, compat=["qaopenmd"]), http=None)
    wait_for(lambda: client.exists("TA701"), TIMEOUT, "the latest quote")
    assert client.zscore("history:TA701", "old0") is not None  # below the size rule: kept
    wait_for(lambda: client.zscore("history:TA701", "old0") is None, TIMEOUT, "the old entries dropped")
    remaining = client.zrange("history:TA701", 0, -1, withscores=True)
    assert len(remaining) >= 25 and not any(m.startswith(b"old") for m, _ in remaining)
    assert all(score > now_ms - redis_bus.QAOPENMD_KEEP_MS for _, score in remaining)


def test_compatibility_publishers_write_the_default_source_only_and_refuse_unknown_names(redis_server,
                                                                                        serve_factory):
    from ctpshim.server.redis_bus import check_compat
    from tests.redis_server import publisher_settings

    with pytest.raises(ValueError, match="unknown compatibility publisher 'homalos'; valid: ctpbee, qaopenmd"):
        check_compat("ctpbee,homalos")
    assert check_compat("qaopenmd, ctpbee,qaopenmd") == ("qaopenmd", "ctpbee")
    serve_factory({"day": f"{SIM}&speed=20", "other": "sim://?start=2026-11-20T09:35&hours=always&speed=20"
                   "&instruments=cu2701&seed=5"}, redis=publisher_settings(redis_server.url, compat=("qaopenmd",)),
                  http=None)
    client = redis_server.client()
    wait_for(lambda: client.exists(key("cu2701", "other"), "rb2701") == 2, TIMEOUT, "both sources published")
    assert not client.exists("cu2701") and not client.exists("history:cu2701")


def test_an_interest_index_of_another_type_is_reported_once(redis_server, serve_factory, caplog):
    client = redis_server.client()
    client.set("ctpshim:sim:wanted", "not a set")
    with caplog.at_level(logging.ERROR, logger="ctpshim.server.redis"):
        server = serve_factory(f"{SIM}&speed=20", redis={"url": redis_server.url, "instruments": ["rb2701"]},
                               http=None)
        wait_for(lambda: any("readers' interest" in r.getMessage() for r in caplog.records), TIMEOUT, "the error")
        wait_for(lambda: client.xlen(key("rb2701")) >= 3, TIMEOUT, "rb2701 published all the same")
    errors = [r.getMessage() for r in caplog.records if "readers' interest" in r.getMessage()]
    assert len(errors) == 1 and "WRONGTYPE" in errors[0] and "ctpshim:sim:wanted" in errors[0], errors
    assert publisher(server).up
