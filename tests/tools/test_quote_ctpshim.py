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
