"""`ctpshim quote ctpshim://...`: quotes read through a real `ctpshim serve` Server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from typing import Any

from ..server.conftest import serve_factory  # noqa: F401  (the fixture: a real Server on free ports)
from ..tools.test_cli import ctpshim
from .test_quote import table_rows

SIM = "sim://?instruments=rb2701,TA701,IF2612&start=2026-11-20T09:35&speed=20"


def address(server: Any, path: str = "") -> str:
    host, port = server.binary_address
    return f"ctpshim://{host}:{port}{path}"


def test_once_json_gives_each_instrument_as_the_server_sends_it(serve_factory):  # noqa: F811
    server = serve_factory({"sim": SIM}, http=None)
    result = ctpshim("quote", address(server, "/sim"), "rb2701", "TA701", "--once", "--json", "-W", "20")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["front"] == address(server, "/sim") and document["missing"] == []
    assert "logged in, trading day 20261120" in document["state"]
    quotes = {quote["InstrumentID"]: quote for quote in document["quotes"]}
    assert set(quotes) == {"rb2701", "TA701"}
    assert quotes["rb2701"]["ExchangeID"] == "SHFE" and quotes["TA701"]["ExchangeID"] == "CZCE"
    for quote in quotes.values():
        assert quote["TradingDay"] == "20261120" and quote["LastPrice"] > 0
        assert quote["UpdateTime"].startswith("09:3")


def test_without_ids_the_servers_instruments_are_quoted(serve_factory):  # noqa: F811
    server = serve_factory({"sim": SIM}, http=None)
    result = ctpshim("quote", address(server), "--once", "-W", "20")
    assert result.returncode == 0, result.stderr
    assert set(table_rows(result.stdout)) == {"rb2701", "TA701", "IF2612"}
    result = ctpshim("quote", address(server), "--once", "--json", "-W", "20")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert [quote["InstrumentID"] for quote in document["quotes"]] == ["rb2701", "TA701", "IF2612"]
    assert all(quote["ActionDay"] == "20261120" for quote in document["quotes"])


def test_an_instrument_the_source_does_not_have_is_named_as_missing(serve_factory):  # noqa: F811
    server = serve_factory({"sim": SIM}, http=None)
    result = ctpshim("quote", address(server), "rb2701", "XX9999", "--once", "-W", "3")
    assert result.returncode == 1
    missing = next(line for line in result.stderr.splitlines() if line.startswith("ctpshim quote: no tick within"))
    assert "XX9999" in missing and "rb2701" not in missing


def test_a_server_that_is_not_there():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    front = f"ctpshim://127.0.0.1:{port}"
    result = ctpshim("quote", front, "--once", "-W", "2")
    assert result.returncode == 2 and "cannot list its instruments" in result.stderr
    assert f"127.0.0.1:{port}" in result.stderr
    result = ctpshim("quote", front, "rb2701", "--once", "-W", "2")
    assert result.returncode == 1 and "no tick within 2 s for rb2701" in result.stderr
    assert f"not connected: ctpshim://127.0.0.1:{port}: cannot connect" in quote_line(result.stderr)


def quote_line(stderr: str) -> str:
    """quote's own verdict (the facade's retry warnings are on stderr too)."""
    return next(line for line in stderr.splitlines() if line.startswith("ctpshim quote: "))


def test_a_wrong_token_gives_the_servers_reason_as_ping_does(serve_factory):  # noqa: F811
    server = serve_factory({"sim": SIM}, http=None, tokens=("s3cret-token:alice",))
    refused = address(server, "?token=wrong-token")
    result = ctpshim("quote", refused, "rb2701", "--once", "-W", "2")
    line = quote_line(result.stderr)
    assert result.returncode == 1, result.stderr  # as for a front that is not there
    assert line.startswith("ctpshim quote: no tick within 2 s for rb2701 (not connected: ")
    assert "the server refused the connection: bad token (ErrorID -401)" in line
    document = json.loads(ctpshim("quote", refused, "rb2701", "--once", "--json", "-W", "1").stdout)
    assert "bad token (ErrorID -401)" in document["state"] and document["missing"] == ["rb2701"]
    result = ctpshim("quote", refused, "--once", "-W", "2")  # no IDs: the listing says why
    assert result.returncode == 2 and "bad token (ErrorID -401)" in quote_line(result.stderr)
    ping = ctpshim("ping", "-c", "1", "-W", "2", refused)
    assert ping.returncode == 1 and "the server refused the connection: bad token (ErrorID -401)" in ping.stdout
    result = ctpshim("quote", address(server, "?token=s3cret-token"), "rb2701", "--once", "-W", "20")
    assert result.returncode == 0, result.stderr


def test_an_unknown_source_is_named_with_the_servers_sources(serve_factory):  # noqa: F811
    server = serve_factory({"sim": SIM}, http=None)
    result = ctpshim("quote", address(server, "/nope"), "rb2701", "--once", "-W", "2")
    line = quote_line(result.stderr)
    assert result.returncode == 1 and "no source 'nope'" in line and "sim" in line and "-404" in line
