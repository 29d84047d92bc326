"""The web page at ``/`` in a real headless Chromium against a real Server on ``sim://``: the quote
board, the chart, the account panel (login, order, cancel), reconnecting, and missing prices."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from aiohttp import web

from ctpshim.ctp import clock
from ctpshim.ctp.products import default_sim_instruments
from tests.browser import Browser, Page, find_browser
from tests.conftest import wait_for

PAGE_DIR = Path(__file__).resolve().parents[2] / "shim" / "server" / "page"
WAIT = 30.0  # s for anything that needs ticks to arrive; every wait below is bounded


def sim_front(ids: list[str]) -> str:
    # 7x24 and 20x real time: prices move and one-minute bars close within seconds.
    return f"sim://?instruments={','.join(ids)}&hours=always&speed=20&seed=7"


def two_instruments() -> list[str]:
    return list(default_sim_instruments(clock.today())[:2])


def url_of(server: Any) -> str:
    host, port = server.http_address
    return f"http://{host}:{port}/"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    instance = Browser(find_browser(), tmp_path / "profile")
    try:
        yield instance
    finally:
        instance.close()


@contextlib.contextmanager
def failure_screenshot(page: Page, path: Path) -> Iterator[None]:
    """On a failure inside, save a screenshot to ``path`` and name it in the error."""
    try:
        yield
    except BaseException as exc:
        try:
            page.screenshot(path)
            note = f"screenshot: {path}"
        except Exception as shot_error:  # noqa: BLE001 - the original failure matters more
            note = f"no screenshot: {shot_error}"
        raise AssertionError(f"{exc}\n{note}\nconsole: {page.console[-30:]}") from exc


def row(instrument: str) -> str:
    return f'#quote-rows tr[data-instrument="{instrument}"]'


def js(value: Any) -> str:
    return json.dumps(value)


def subscribe(page: Page, ids: list[str]) -> None:
    page.wait_for("ctpshimPage.state().md.online", WAIT, "the md socket to log in")
    page.type("#subscribe-input", ", ".join(ids))
    page.press_enter()
    page.wait_for(f"document.querySelectorAll('#quote-rows tr[data-instrument]').length === {len(ids)}", 5,
                  "a row per instrument")


def log_in(page: Page, what: str = "the td login") -> None:
    """The account panel's login with the form's defaults, once the td socket is open."""
    page.wait_for("document.querySelector('#td-status').dataset.state === 'open'", WAIT, "the td socket")
    page.click("#login-button")
    page.wait_for("ctpshimPage.state().td.loggedIn", WAIT, what)


def wait_prices_change(page: Page, instrument: str) -> None:
    """The row shows a price, then a changed value with its highlight class."""
    last = f"{row(instrument)} td[data-field=\"LastPrice\"]"
    first = page.wait_for(f"(() => {{ const t = document.querySelector({js(last)}).textContent;"
                          " return t !== '-' && t; })()", WAIT, f"{instrument}'s first price")
    page.wait_for(f"document.querySelector({js(row(instrument) + ' .flash-up, ' + row(instrument) + ' .flash-down')})",
                  WAIT, f"a highlighted change in {instrument}'s row")
    page.wait_for(f"document.querySelector({js(last)}).textContent !== {js(first)}", WAIT,
                  f"{instrument}'s last price to change from {first}")


def canvas_ink(page: Page) -> int:
    """How many of the chart canvas's pixels are drawn (its background is CSS, not drawn)."""
    return page.evaluate(
        "(() => { const c = document.getElementById('chart'); if (!c.width || !c.height) return 0;"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;"
        " for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n += 1; return n; })()")


def test_page_quotes_chart_and_orders(serve_factory: Callable[..., Any], browser: Browser, tmp_path: Path) -> None:
    ids = two_instruments()
    server = serve_factory(sim_front(ids))
    page = browser.new_page()
    with failure_screenshot(page, tmp_path / "failure.png"):
        page.goto(url_of(server))
        assert page.evaluate("document.title") == "ctpshim serve"
        # the server's source, and what it lists (from /health and /symbols.json)
        page.wait_for("document.getElementById('source-select').value === 'sim'", WAIT, "the source name")
        page.wait_for(f"[...document.querySelectorAll('#listed-ids button')].map(b => b.dataset.listed).sort().join()"
                      f" === {js(','.join(sorted(ids)))}", WAIT, "the source's instruments listed")

        # the quote board: two IDs typed, both rows fill and change, highlighted
        subscribe(page, ids)
        for instrument in ids:
            wait_prices_change(page, instrument)
        assert page.evaluate(f"Number(document.querySelector({js(row(ids[1]))}).dataset.ticks)") > 1
        assert page.evaluate("document.querySelector('#md-status').dataset.state") == "online"

        # the chart: select the second row; ticks drawn, then one-minute bars
        page.click(f'{row(ids[1])} td[data-field="Volume"]')
        page.wait_for(f"ctpshimPage.state().chart.instrument === {js(ids[1])}", 5, "the selection")
        assert page.evaluate(f"document.querySelector({js(row(ids[1]))}).classList.contains('selected')")
        page.wait_for("ctpshimPage.state().chart.ticks > 2 && ctpshimPage.state().chart.draws > 0", WAIT,
                      "the tick chart to draw")
        page.wait_for("document.getElementById('chart').dataset.instrument === " + js(ids[1]), 5)
        assert canvas_ink(page) > 200, "the tick chart is blank"
        draws = page.evaluate("ctpshimPage.state().chart.draws")
        page.click("#chart-bars")
        page.wait_for(f"ctpshimPage.state().chart.mode === 'bars' && ctpshimPage.state().chart.draws > {draws}", 10,
                      "the bar chart to draw")
        page.wait_for("ctpshimPage.state().chart.bars >= 2", WAIT, "a second one-minute bar")
        bars = page.evaluate("ctpshimPage.bars()")
        assert all(b["low"] <= min(b["open"], b["close"]) <= max(b["open"], b["close"]) <= b["high"] for b in bars)
        assert [b["key"] for b in bars] == sorted({b["key"] for b in bars}), "bars not one per minute, in order"
        assert canvas_ink(page) > 200, "the bar chart is blank"

        # the account panel: log in with the form's defaults
        log_in(page)
        page.wait_for("document.querySelector('#account-summary [data-field=\"Balance\"]').textContent !== '-'", WAIT,
                      "the account's balance")
        assert page.evaluate("document.querySelector('#account-summary [data-field=\"Available\"]').textContent") \
            == "10,000,000.00"
        assert page.evaluate("document.querySelector('#td-status').dataset.state") == "online"

        # a buy resting at the lower limit (it cannot fill), in the orders table, then cancelled
        target = ids[0]
        low = page.evaluate(f"ctpshimPage.quote({js(target)}).LowerLimitPrice")
        assert low > 0
        page.type("#order-instrument", target)
        page.evaluate("document.getElementById('order-direction').value = '0';"
                      "document.getElementById('order-offset').value = '0'")
        page.type("#order-price", repr(low))
        page.type("#order-volume", "2")
        page.click("#order-submit")
        resting = (f"#order-rows tr[data-instrument={js(target)}][data-status=\"3\"]")
        page.wait_for(f"document.querySelector({js(resting + ' button[data-action=cancel]')})", WAIT,
                      "the order resting in the orders table")
        key = page.evaluate(f"document.querySelector({js(resting)}).dataset.orderKey")
        cells = page.evaluate(f"[...document.querySelector({js(resting)}).cells].map(c => c.textContent)")
        assert target in cells and "0 / 2" in cells and "buy" in cells and "open" in cells, cells
        page.wait_for("document.querySelector('#account-summary [data-field=\"FrozenMargin\"]').textContent "
                      "!== '0.00'", WAIT, "the order's frozen margin in the account")
        page.click(f'#order-rows tr[data-order-key="{key}"] button[data-action="cancel"]')
        page.wait_for(f"document.querySelector('#order-rows tr[data-order-key=\"{key}\"]').dataset.status === '5'",
                      WAIT, "the order's status to become cancelled")
        assert not page.evaluate(f"document.querySelector('#order-rows tr[data-order-key=\"{key}\"] button')")
        assert "cancelled" in page.evaluate(
            f"document.querySelector('#order-rows tr[data-order-key=\"{key}\"] [data-field=OrderStatus]').textContent")

        # remove a row: unsubscribed, no more ticks for it
        page.click(f'{row(ids[0])} button[data-action="remove"]')
        page.wait_for(f"!document.querySelector({js(row(ids[0]))})", 5, "the row to go")
        page.wait_for(f"ctpshimPage.state().instruments.join() === {js(ids[1])}", 5)
        page.wait_for("ctpshimPage.state().chart.instrument === " + js(ids[1]), 5)
        page.screenshot(tmp_path / "page.png")
        page.check_errors()


def test_page_reconnects_and_subscribes_again(serve_factory: Callable[..., Any], browser: Browser,
                                              tmp_path: Path) -> None:
    ids = two_instruments()[:1]
    first = serve_factory(sim_front(ids))
    page = browser.new_page()
    with failure_screenshot(page, tmp_path / "failure.png"):
        page.goto(url_of(first))
        page.wait_for("ctpshimPage.state().md.online", WAIT, "the md socket to log in")
        page.wait_for(f"document.querySelector('#listed-ids button[data-listed={js(ids[0])}]')", WAIT, "the chip")
        page.click(f"#listed-ids button[data-listed={js(ids[0])}]")
        page.wait_for(f"document.querySelector({js(row(ids[0]))})", 5, "the row the chip added")
        page.wait_for(f"Number(document.querySelector({js(row(ids[0]))}).dataset.ticks) > 0", WAIT, "a tick")
        log_in(page)

        host, port = first.http_address
        first.stop()
        page.wait_for("['closed', 'connecting'].includes(document.querySelector('#md-status').dataset.state) &&"
                      "['closed', 'connecting'].includes(document.querySelector('#td-status').dataset.state)", WAIT,
                      "both status indicators to show the drop")
        assert not page.evaluate("ctpshimPage.state().td.loggedIn")

        second = serve_factory(sim_front(ids), http=(host, port))
        page.wait_for("ctpshimPage.state().md.online", WAIT, "md to reconnect")
        before = page.evaluate(f"Number(document.querySelector({js(row(ids[0]))}).dataset.ticks)")
        page.wait_for(f"Number(document.querySelector({js(row(ids[0]))}).dataset.ticks) > {before}", WAIT,
                      "ticks again after the reconnect (subscribed again)")
        page.wait_for("ctpshimPage.state().td.loggedIn", WAIT, "td to log in again by itself")
        assert second.http_address == (host, port)
        page.check_errors()


def test_page_order_fills_into_a_position(serve_factory: Callable[..., Any], browser: Browser,
                                          tmp_path: Path) -> None:
    ids = two_instruments()[:1]
    server = serve_factory(sim_front(ids))
    page = browser.new_page()
    with failure_screenshot(page, tmp_path / "failure.png"):
        page.goto(url_of(server))
        subscribe(page, ids)
        page.wait_for(f"ctpshimPage.quote({js(ids[0])})", WAIT, "a tick")
        log_in(page)
        # a buy at the upper limit crosses the book at once
        page.type("#order-instrument", ids[0])
        page.type("#order-price", repr(page.evaluate(f"ctpshimPage.quote({js(ids[0])}).UpperLimitPrice")))
        page.type("#order-volume", "1")
        page.click("#order-submit")
        page.wait_for(f"document.querySelector('#order-rows tr[data-instrument={js(ids[0])}][data-status=\"0\"]')",
                      10, "the order filled")
        position = f"#position-rows tr[data-instrument={js(ids[0])}]"
        page.wait_for(f"document.querySelector({js(position + ' [data-field=Position]')})?.textContent === '1'", WAIT,
                      "the long position")
        # its close button fills the form (sell, close today on SHFE/INE); a sell at the lower limit closes it
        page.click(position + " button[data-action=close-position]")
        assert page.evaluate("document.getElementById('order-direction').value") == "1"
        page.type("#order-price", repr(page.evaluate(f"ctpshimPage.quote({js(ids[0])}).LowerLimitPrice")))
        page.click("#order-submit")
        page.wait_for("!document.getElementById('positions-empty').hidden", WAIT, "the position closed")
        page.check_errors()


# ---- missing prices: a stand-in /md/ that sends exactly what webctp sends for them --------------

DBL_MAX = sys.float_info.max


def _missing_prices_tick(instrument: str) -> dict[str, Any]:
    body: dict[str, Any] = {name: 0 for name in (
        "LastPrice", "PreSettlementPrice", "PreClosePrice", "OpenPrice", "HighestPrice", "LowestPrice",
        "ClosePrice", "SettlementPrice", "UpperLimitPrice", "LowerLimitPrice", "AveragePrice",
        "BandingUpperPrice", "BandingLowerPrice",
        *(f"{side}Price{n}" for side in ("Bid", "Ask") for n in range(1, 6)),
        *(f"{side}Volume{n}" for side in ("Bid", "Ask") for n in range(1, 6)))}
    body.update(InstrumentID=instrument, ExchangeID="SHFE", ExchangeInstID=instrument, reserve1=instrument,
                reserve2="", TradingDay="20261120", ActionDay="20261120", UpdateTime="09:35:00",
                UpdateMillisec=0, Volume=0, Turnover=0.0, OpenInterest=DBL_MAX, PreOpenInterest=DBL_MAX,
                CurrDelta=DBL_MAX, PreDelta=DBL_MAX)
    return body


class StandIn:
    """The page's files and a scripted /md/ (no /td/: the account panel says trading is not
    available), on a loop in a thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="stand-in", daemon=True)
        self.thread.start()
        self.runner: web.AppRunner | None = None
        self.sockets: list[web.WebSocketResponse] = []
        self.port = 0

    def start(self) -> None:
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> None:
        app = web.Application()
        async def index(request: web.Request) -> web.FileResponse:
            return web.FileResponse(PAGE_DIR / "index.html")

        app.router.add_get("/", index)
        app.router.add_static("/static/", PAGE_DIR)
        app.router.add_get("/md/", self._md)
        self.runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def _md(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        async for message in ws:
            data = json.loads(message.data)
            if data["MsgType"] == "ReqUserLogin":
                await ws.send_json({"MsgType": "RspUserLogin", "RspInfo": {"ErrorID": 0, "ErrorMsg": "CTP:正确"},
                                    "IsLast": True, "RspUserLogin": {"TradingDay": "20261120"}})
            elif data["MsgType"] == "SubscribeMarketData":
                for n, instrument in enumerate(data["InstrumentID"]):
                    reply = {"MsgType": "RspSubMarketData", "RspInfo": {"ErrorID": 0, "ErrorMsg": "CTP:正确"},
                             "SpecificInstrument": {"InstrumentID": instrument}}
                    if n == len(data["InstrumentID"]) - 1:
                        reply["IsLast"] = True
                    await ws.send_json(reply)
                for instrument in data["InstrumentID"]:
                    await ws.send_str(json.dumps({"MsgType": "RtnDepthMarketData",
                                                  "DepthMarketData": _missing_prices_tick(instrument)}))
        return ws

    def stop(self) -> None:
        async def shut() -> None:
            for ws in self.sockets:
                await ws.close()
            if self.runner is not None:
                await self.runner.cleanup()

        asyncio.run_coroutine_threadsafe(shut(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_page_shows_missing_prices_as_dashes(browser: Browser, tmp_path: Path) -> None:
    stand_in = StandIn()
    stand_in.start()
    page = browser.new_page()
    try:
        with failure_screenshot(page, tmp_path / "failure.png"):
            page.goto(f"http://127.0.0.1:{stand_in.port}/")
            subscribe(page, ["rb2705"])
            page.wait_for(f"document.querySelector({js(row('rb2705'))}).dataset.ticks === '1'", WAIT, "the tick")
            cells = page.evaluate(
                f"Object.fromEntries([...document.querySelectorAll({js(row('rb2705') + ' td[data-field]')})]"
                ".map(c => [c.dataset.field, c.textContent]))")
            for field in ("LastPrice", "Change", "BidPrice1", "AskPrice1", "OpenInterest"):
                assert cells[field] == "-", (field, cells)
            assert cells["Volume"] == "0" and cells["UpdateTime"] == "09:35:00.000", cells
            page.click(row("rb2705"))
            page.wait_for("ctpshimPage.state().chart.instrument === 'rb2705'", 5)
            assert page.evaluate("ctpshimPage.state().chart.ticks") == 0
            assert not page.evaluate("document.getElementById('chart-empty').hidden")
            page.wait_for("!document.getElementById('account-unavailable').hidden", WAIT,
                          "the account panel to say there is no trading")
            page.check_errors()
    finally:
        stand_in.stop()


def test_page_passes_the_token_through(serve_factory: Callable[..., Any], browser: Browser, tmp_path: Path) -> None:
    ids = two_instruments()[:1]
    server = serve_factory(sim_front(ids), tokens=("page-s3cret:dashboard",))
    page = browser.new_page()
    with failure_screenshot(page, tmp_path / "failure.png"):
        page.goto(url_of(server))  # no token: refused, and the page says how to give one
        page.wait_for("document.getElementById('md-status').dataset.state === 'closed' &&"
                      " /token/.test(document.getElementById('board-message').textContent)", WAIT,
                      "the refusal and the hint")
        assert "?token=" in page.evaluate("document.getElementById('board-message').textContent")

        page.goto(url_of(server) + "?token=page-s3cret")
        subscribe(page, ids)
        page.wait_for(f"Number(document.querySelector({js(row(ids[0]))}).dataset.ticks) > 0", WAIT, "a tick")
        log_in(page, "the td login with the token")
        # the token's name on every client (the first page's sockets are gone once the server sees them close)
        wait_for(lambda: {info.name for info in server.clients} == {"dashboard"}, WAIT,
                 f"only the token's name on the clients: {[(i.name, i.protocol) for i in server.clients]}")
        page.check_errors()

        # leaving the page releases its sessions even when the browser keeps it (back-forward cache);
        # coming back connects, subscribes and logs in again
        page.call("Page.navigate", {"url": url_of(server) + "health"})
        wait_for(lambda: not server.clients, WAIT, "the left page's sessions to be released")
        page.wait_for("location.pathname === '/health'", WAIT)
        page.evaluate("history.back()")
        page.wait_for("location.pathname === '/' && typeof ctpshimPage === 'object' && ctpshimPage.state().md.online",
                      WAIT, "the page back, online")
        before = page.evaluate(f"Number(document.querySelector({js(row(ids[0]))}).dataset.ticks)")
        page.wait_for(f"Number(document.querySelector({js(row(ids[0]))}).dataset.ticks) > {before}", WAIT,
                      "ticks again")
        page.wait_for("ctpshimPage.state().td.loggedIn", WAIT, "the td login again")
        page.check_errors()
