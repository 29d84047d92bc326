"""`ctpshim ping ctpshim://...`: a real `ctpshim serve` Server on 127.0.0.1, pinged by the command."""

from __future__ import annotations

import json
import socket
from typing import Any

from ..server.conftest import serve_factory  # noqa: F401  (the fixture: a real Server on free ports)
from ..tools.test_cli import ctpshim

SIM = "sim://?instruments=rb2701,TA701&start=2026-11-20T09:35&speed=20"


def ping_json(*args: str) -> tuple[int, dict[str, Any]]:
    result = ctpshim("ping", "--json", "-i", "0", "-W", "5", *args)
    assert result.returncode in (0, 1, 3), result.stderr
    return result.returncode, json.loads(result.stdout)


def address(server: Any, path: str = "") -> str:
    host, port = server.binary_address
    return f"ctpshim://{host}:{port}{path}"


def test_a_running_server_is_ok_with_one_round_trip_per_sample(serve_factory):  # noqa: F811
    server = serve_factory({"sim": SIM}, http=None)
    code, answer = ping_json("-c", "3", address(server, "/sim"))
    assert code == 0 and answer["healthy"] is True
    front = answer["fronts"][0]
    assert front["scheme"] == "ctpshim" and front["status"] == "ok" and front["cause"] is None
    assert len(front["samples_ms"]) == 3 and all(s is not None and s >= 0 for s in front["samples_ms"])
    details = front["details"]
    assert details["protocol_version"] == 1 and details["source"] == "sim"
    assert details["trading_day"] == "20261120" and details["instruments"] == 2


def test_the_table_names_the_server_its_source_and_its_day(serve_factory):  # noqa: F811
    server = serve_factory({"sim": SIM}, http=None)
    result = ctpshim("ping", "-c", "1", address(server))  # no path: the server's default source
    assert result.returncode == 0, result.stderr
    row = result.stdout.splitlines()[1]
    assert address(server) in row and " ok " in row
    assert "ctpshim server, protocol v1, source sim, trading day 20261120, 2 instruments" in row


def test_nothing_listening_fails_and_says_so():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, answer = ping_json("-c", "2", f"ctpshim://127.0.0.1:{port}")
    front = answer["fronts"][0]
    assert code == 1 and front["status"] == "FAIL" and front["samples_ms"] == [None, None]
    assert f"127.0.0.1:{port}" in front["cause"] and "connect" in front["cause"]


def test_a_token_is_needed_where_the_server_has_tokens(serve_factory):  # noqa: F811
    server = serve_factory({"sim": SIM}, http=None, tokens=("s3cret-token:alice",))
    code, answer = ping_json("-c", "1", address(server), address(server, "?token=wrong"),
                             address(server, "?token=s3cret-token"))
    statuses = [front["status"] for front in answer["fronts"]]
    assert code == 1 and statuses == ["FAIL", "FAIL", "ok"]
    for refused in answer["fronts"][:2]:
        assert "refused" in refused["cause"] and "token" in refused["cause"].lower()


def test_an_unknown_source_fails_naming_the_servers_sources(serve_factory):  # noqa: F811
    server = serve_factory({"sim": SIM, "night": "sim://?start=2026-11-20T21:05&speed=20"}, http=None)
    code, answer = ping_json("-c", "1", address(server, "/nope"), address(server, "/night"))
    bad, good = answer["fronts"]
    assert code == 1 and bad["status"] == "FAIL" and good["status"] == "ok"
    assert "nope" in bad["cause"] and "sim" in bad["cause"] and "night" in bad["cause"]
    assert good["details"]["source"] == "night"


def test_a_bad_address_is_that_fronts_failure_naming_what_is_wrong():
    code, answer = ping_json("-c", "1", "ctpshim://127.0.0.1", "ctpshim://127.0.0.1:7780/no%20spaces")
    no_port, bad_source = answer["fronts"]
    assert code == 1 and no_port["status"] == bad_source["status"] == "FAIL"
    assert "no port" in no_port["cause"] and "ctpshim://127.0.0.1:PORT" in no_port["cause"]
    assert "source" in bad_source["cause"] and "letters, digits" in bad_source["cause"]
