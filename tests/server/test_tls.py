"""TLS (``--tls-cert``/``--tls-key``, ``ctpshims://``, ``wss://``) and the per-IP new-connection limit,
against a real Server on loopback ports with the test-only certificates of tests/data/tls/."""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path
from typing import Any

import pytest

from ctpshim import mdapi
from ctpshim.adapters.ctpshim import CtpshimAdapter, CtpshimsAdapter, ServerRefused
from ctpshim.adapters.ctpshim.link import TlsFailed
from ctpshim.errors import FrontAddressError, UpstreamUnavailable
from ctpshim.fronts import registry
from ctpshim.server.limits import ConnectionLimiter
from ctpshim.server.settings import Limits, TlsSettings, load_settings, parse_tls
from tests.conftest import wait_for

from .conftest import serve_factory  # noqa: F401

TLS = Path(__file__).resolve().parents[1] / "data" / "tls"
CERT, KEY = str(TLS / "localhost.pem"), str(TLS / "localhost.key")
OTHER_CERT, OTHER_KEY = str(TLS / "otherhost.pem"), str(TLS / "otherhost.key")
SIM = "sim://?start=2026-11-20T09:35&instruments=rb2701,m2701&price=rb2701:3100&speed=5"
WAIT = 15.0


def tls(cert: str = CERT, key: str = KEY) -> TlsSettings:
    return TlsSettings(cert, key)


def secure(server: Any, path: str = "", **settings: str) -> str:
    host, port = server.binary_address
    query = "&".join(f"{k}={v}" for k, v in settings.items())
    return f"ctpshims://{host}:{port}{path}" + (f"?{query}" if query else "")


async def connect(front: str) -> CtpshimAdapter:
    adapter = registry.create_adapter(front)
    await adapter.connect()
    return adapter


def connect_error(front: str) -> BaseException:
    async def attempt() -> BaseException:
        adapter = registry.create_adapter(front)
        try:
            await adapter.connect()
        except BaseException as exc:  # noqa: BLE001 - the one under test
            return exc
        await adapter.close()
        raise AssertionError(f"{front} connected")

    return asyncio.run(attempt())


# -- settings -----------------------------------------------------------------------------------


def test_tls_settings_load_from_the_flags_and_from_the_toml_file(tmp_path):
    settings = load_settings(fronts=["sim://"], tls_cert=CERT, tls_key=KEY)
    assert settings.tls == TlsSettings(CERT, KEY)
    assert isinstance(settings.tls.context(), ssl.SSLContext)
    config = tmp_path / "serve.toml"
    config.write_text(f'tls_cert = "{CERT}"\ntls_key = "{KEY}"\n')
    assert load_settings(config).tls == TlsSettings(CERT, KEY)
    assert load_settings(fronts=["sim://"]).tls is None


@pytest.mark.parametrize("cert, key, words", [
    ("nosuch.pem", KEY, "--tls-cert = 'nosuch.pem': no such file"),
    (CERT, "nosuch.key", "--tls-key = 'nosuch.key': no such file"),
    (str(TLS), KEY, "not a file"),
    (str(TLS / "README.md"), KEY, "not a PEM certificate"),
    (CERT, CERT, "not a PEM private key"),
    (CERT, OTHER_KEY, "is not the key of --tls-cert"),
    (CERT, None, "without its key"),
    (None, KEY, "without a certificate"),
])
def test_bad_tls_settings_name_the_flag_the_file_and_what_is_wrong(cert, key, words):
    with pytest.raises(ValueError, match=words):
        load_settings(fronts=["sim://"], tls_cert=cert, tls_key=key)


def test_an_encrypted_key_is_refused_without_asking_for_a_passphrase(tmp_path):
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(Path(KEY).read_bytes(), None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.BestAvailableEncryption(b"passphrase")))
    with pytest.raises(ValueError, match="encrypted with a passphrase"):
        parse_tls(CERT, str(locked))


def test_a_bad_tls_key_in_the_toml_file_names_the_file_and_the_key(tmp_path):
    config = tmp_path / "serve.toml"
    config.write_text(f'tls_cert = "{CERT}"\ntls_key = "{OTHER_KEY}"\n')
    with pytest.raises(ValueError, match=r"serve\.toml: tls_key = .* is not the key of tls_cert"):
        load_settings(config)


def test_binding_beyond_loopback_with_tls_still_needs_a_token():
    with pytest.raises(ValueError, match="needs at least one token"):
        load_settings(fronts=["sim://"], listen="0.0.0.0:0", tls_cert=CERT, tls_key=KEY)


def test_the_connection_limit_settings_are_checked():
    assert Limits().connection_rate == 10 and Limits().connection_window == 1.0
    assert load_settings(fronts=["sim://"], limits={"connection_rate": 0}).limits.connection_rate == 0
    with pytest.raises(ValueError, match=r"--connection-rate = -1: expected an integer from 0 to 1000000"):
        load_settings(fronts=["sim://"], limits={"connection_rate": -1})
    with pytest.raises(ValueError, match="--connection-window"):
        load_settings(fronts=["sim://"], limits={"connection_window": 0})


# -- the client's address -----------------------------------------------------------------------


@pytest.mark.parametrize("front, words", [
    ("ctpshims://127.0.0.1", "ctpshims://127.0.0.1 has no port"),
    ("ctpshims://127.0.0.1:7780?ca=/nosuch.pem", "setting ca='/nosuch.pem' is not valid: no such file"),
    (f"ctpshims://127.0.0.1:7780?ca={TLS / 'README.md'}", "not a PEM file of certificates"),
    ("ctpshims://127.0.0.1:7780?verify=maybe", "setting verify='maybe' is not valid"),
    (f"ctpshims://127.0.0.1:7780?ca={CERT}&verify=0", "contradict"),
    ("ctpshim://127.0.0.1:7780?ca=x.pem", "unknown setting 'ca' for ctpshim://"),
])
def test_bad_ctpshims_addresses_are_refused_at_registerfront(front, words, flow_dir):
    api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(flow_dir)
    try:
        with pytest.raises(FrontAddressError, match=words.replace("(", r"\(").replace("?", r"\?")):
            api.RegisterFront(front)
    finally:
        api.Release()


def test_the_scheme_is_listed():
    assert "ctpshims" in registry.known_schemes()
    assert registry.adapter_class("ctpshims") is CtpshimsAdapter
    assert "TLS" in registry.description("ctpshims")


# -- TLS on the binary listener -------------------------------------------------------------------


def test_md_ticks_over_ctpshims_with_the_ca_file(serve_factory, make_md):  # noqa: F811
    server = serve_factory(SIM, http=None, tls=tls())
    assert server.addresses() == [f"ctpshims://127.0.0.1:{server.binary_address[1]}"]
    api, spi = make_md(secure(server, ca=CERT), subscribe=["rb2701"])
    wait_for(lambda: len(spi.ticks) >= 2, WAIT, "ticks over TLS")
    assert spi.ticks[0].InstrumentID == "rb2701" and spi.ticks[0].LastPrice > 0
    assert "OnFrontConnected" in spi.names() and "OnFrontDisconnected" not in spi.names()


def test_a_self_signed_server_is_not_trusted_without_its_certificate(serve_factory, make_md, caplog):  # noqa: F811
    server = serve_factory(SIM, http=None, tls=tls())
    error = connect_error(secure(server))
    assert isinstance(error, TlsFailed) and error.reason == 4097
    assert "certificate is not trusted" in str(error) and "?ca=FILE" in str(error)
    caplog.set_level(logging.WARNING, "ctpshim")
    api, spi = make_md(secure(server), subscribe=["rb2701"])
    wait_for(lambda: "certificate is not trusted" in caplog.text, WAIT, "the TLS failure in the log")
    # CTP's "accepts, then closes": OnFrontDisconnected(4097) with no OnFrontConnected before it
    wait_for(lambda: "OnFrontDisconnected" in spi.names(), WAIT, "OnFrontDisconnected")
    assert not spi.ticks and "OnFrontConnected" not in spi.names()
    assert 4097 in [args[0] for name, args, _ in spi.events if name == "OnFrontDisconnected"]


def test_verify_0_accepts_a_self_signed_certificate(serve_factory):  # noqa: F811
    server = serve_factory(SIM, http=None, tls=tls(OTHER_CERT, OTHER_KEY))

    async def run() -> str | None:
        adapter = await connect(secure(server, verify="0"))
        try:
            return (await adapter.probe()).get("tls")
        finally:
            await adapter.close()

    assert asyncio.run(run()) in ("TLSv1.2", "TLSv1.3")


def test_a_certificate_for_another_host_is_a_hostname_mismatch(serve_factory):  # noqa: F811
    server = serve_factory(SIM, http=None, tls=tls(OTHER_CERT, OTHER_KEY))
    error = connect_error(secure(server, ca=OTHER_CERT))
    assert isinstance(error, TlsFailed)
    assert "hostname mismatch" in str(error) and "'127.0.0.1'" in str(error)


def test_plain_and_tls_addresses_on_the_wrong_port_say_which_to_use(serve_factory):  # noqa: F811
    secured = serve_factory(SIM, http=None, tls=tls())
    plain = serve_factory(SIM, http=None)
    host, port = secured.binary_address
    error = connect_error(f"ctpshim://{host}:{port}?connect_timeout=3")
    assert isinstance(error, UpstreamUnavailable) and "ctpshims://" in str(error)
    error = connect_error(secure(plain, ca=CERT, connect_timeout="3"))
    assert isinstance(error, TlsFailed) and "--tls-cert" in str(error)


def test_ping_and_quote_reach_a_tls_server(serve_factory):  # noqa: F811
    from tests.tools.test_cli import ctpshim

    server = serve_factory(SIM, http=None, tls=tls())
    result = ctpshim("ping", "-c", "1", "-W", "5", secure(server, ca=CERT))
    assert result.returncode == 0, result.stderr
    assert "ctpshim server over TLSv1." in result.stdout
    result = ctpshim("ping", "-c", "1", "-W", "5", secure(server))
    assert result.returncode == 1 and "certificate is not trusted" in result.stdout
    result = ctpshim("quote", secure(server, ca=CERT), "rb2701", "--once", "--json", "-W", "20")
    assert result.returncode == 0, result.stderr
    assert '"InstrumentID": "rb2701"' in result.stdout


# -- TLS on the HTTP listener ---------------------------------------------------------------------


def test_webctp_over_wss_and_health_over_https(serve_factory):  # noqa: F811
    aiohttp = pytest.importorskip("aiohttp")
    server = serve_factory(SIM, tls=tls())
    host, port = server.http_address
    assert f"https://127.0.0.1:{port}/" in server.addresses()
    context = ssl.create_default_context(cafile=CERT)

    async def run() -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"https://{host}:{port}/health", ssl=context) as response:
                status = response.status
            async with session.ws_connect(f"wss://{host}:{port}/md/", ssl=context) as ws:
                await ws.send_json({"MsgType": "ReqUserLogin", "ReqUserLogin": {"UserID": "demo01", "Password": ""}})
                for _ in range(20):  # a Ping may come first
                    reply = await asyncio.wait_for(ws.receive_json(), WAIT)
                    if reply["MsgType"] == "RspUserLogin":
                        break
            return status, reply

    status, reply = asyncio.run(run())
    assert status == 200
    assert reply["MsgType"] == "RspUserLogin" and reply["RspInfo"]["ErrorID"] == 0


def test_wss_without_the_ca_is_refused_by_the_client(serve_factory):  # noqa: F811
    aiohttp = pytest.importorskip("aiohttp")
    server = serve_factory(SIM, tls=tls())
    host, port = server.http_address

    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"wss://{host}:{port}/md/"):
                pass

    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        asyncio.run(run())


# -- the per-IP new-connection limit -------------------------------------------------------------


def test_the_limiter_counts_admitted_connections_per_address_in_a_sliding_window():
    now = [0.0]
    limiter = ConnectionLimiter(3, 1.0, clock=lambda: now[0])
    assert [limiter.admit("10.0.0.1") for _ in range(3)] == [(True, 0)] * 3
    assert limiter.admit("10.0.0.1") == (False, 1)
    assert limiter.admit("10.0.0.1") == (False, 2)
    assert limiter.admit("10.0.0.2") == (True, 0)  # another address: its own count
    now[0] = 1.0
    assert limiter.admit("10.0.0.1") == (True, 2)  # the burst of 2 refusals ended
    assert ConnectionLimiter(0).admit("10.0.0.1") == (True, 0)  # 0 = no limit


def test_the_eleventh_binary_connection_within_the_window_is_refused_then_accepted_again(
        serve_factory, caplog):  # noqa: F811
    server = serve_factory(SIM, http=None, limits={"connection_rate": 10, "connection_window": 1.0})
    host, port = server.binary_address
    front = f"ctpshim://{host}:{port}"
    caplog.set_level(logging.INFO, "ctpshim.server")

    async def run() -> tuple[list[BaseException], int]:
        loop = asyncio.get_running_loop()
        opened = [await connect(front)]
        first = loop.time()
        opened += [await connect(front) for _ in range(9)]
        refusals: list[BaseException] = []
        for _ in range(3):
            try:
                opened.append(await connect(front))
            except ServerRefused as exc:
                refusals.append(exc)
        assert loop.time() - first < 1.0, "the connections took longer than the window"
        deadline = loop.time() + 5.0
        retries = 0
        while loop.time() < deadline:  # once the first connections are a window old: admitted
            try:
                opened.append(await connect(front))
                break
            except ServerRefused:
                retries += 1
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("never admitted again")
        for adapter in opened:
            await adapter.close()
        return refusals, retries

    refusals, retries = asyncio.run(run())
    assert len(refusals) == 3
    assert all(getattr(r, "error_id", None) == -429 for r in refusals)
    assert "too many new connections from 127.0.0.1: more than 10 in 1 s (limits.connection_rate)" in str(refusals[0])
    assert server.metrics.rejected["connection_rate"] == 3 + retries
    assert caplog.text.count("connection refused: too many new connections") == 1  # once per burst
    assert f"{3 + retries} refused in it" in caplog.text


def test_the_limit_counts_websocket_upgrades_and_refuses_with_http_429(serve_factory):  # noqa: F811
    aiohttp = pytest.importorskip("aiohttp")
    server = serve_factory(SIM, limits={"connection_rate": 3, "connection_window": 2.0})
    host, port = server.http_address

    async def run() -> tuple[int, str]:
        async with aiohttp.ClientSession() as session:
            for _ in range(3):
                async with session.ws_connect(f"ws://{host}:{port}/md/"):
                    pass
            async with session.get(f"http://{host}:{port}/health") as response:  # not a WebSocket: not counted
                assert response.status == 200
            try:
                async with session.ws_connect(f"ws://{host}:{port}/md/"):
                    pass
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status, exc.message
        raise AssertionError("the fourth WebSocket was accepted")

    status, _ = asyncio.run(run())
    assert status == 429
    assert server.metrics.rejected["connection_rate"] == 1


def test_a_td_program_trades_on_the_server_over_ctpshims(serve_factory, make_td, tmp_path):  # noqa: F811
    from tests.adapters.test_ctpshim import TdProgram, sim_front, td_names

    server = serve_factory(sim_front(tmp_path), http=None, tls=tls())
    program = TdProgram()
    make_td(program, secure(server, ca=CERT))
    account = program.trade()
    assert td_names(program)[:3] == ["OnFrontConnected", "OnRspUserLogin", "OnRspSettlementInfoConfirm"]
    assert {"OnRtnOrder", "OnRtnTrade"} <= set(td_names(program))
    assert account.CurrMargin > 0
