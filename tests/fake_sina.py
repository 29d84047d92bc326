"""Local stand-ins for hq.sinajs.cn and qt.gtimg.cn on 127.0.0.1, serving real sample payloads (GBK)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from aiohttp import web

from ctpshim.adapters import sina, tencent

from .conftest import FEED_SAMPLES

SAMPLES = FEED_SAMPLES
STOCK_SAMPLES = Path(__file__).parent / "samples" / "stocks"  # see SOURCES.md there


def sample(name: str) -> dict[str, str]:
    """The statements of a real Sina payload (futures samples, or stock samples)."""
    folder = STOCK_SAMPLES if (STOCK_SAMPLES / name).exists() else SAMPLES
    return dict(sina.split_statements((folder / name).read_bytes().decode("gbk")))


def tencent_sample(name: str) -> dict[str, str]:
    """The statements of a real Tencent payload in the stock samples: symbol -> payload."""
    return dict(tencent.split_statements((STOCK_SAMPLES / name).read_bytes().decode("gbk")))


class FakeSina:
    """Answers ``/list=a,b,...`` with one statement per requested symbol, like Sina.

    ``quotes`` maps a Sina symbol to its csv; ``mode`` is ``ok``, ``403``, ``500``, ``slow``, or a
    broken upstream answering 200: ``html`` (a captive portal's login page), ``garbage``, ``empty``,
    ``huge`` (9 MB);
    or ``redirect_loop`` (/a -> /b -> /a ...), ``redirect_chain`` (/hop/1 -> /hop/2 -> ... without end).
    A request that contains a symbol in ``poison`` gets the whole-batch failure reply.
    """

    PORTAL = ("<!DOCTYPE html>\n<html><head><title>Wi-Fi login</title></head>"
              "<body><form>Accept the terms to continue</form></body></html>\n")
    GARBAGE = "\x00\x17 upstream_error code=31 retry later \x7f"

    query = "list="

    def __init__(self) -> None:
        self.quotes: dict[str, str] = {}
        self.poison: set[str] = set()
        self.mode = "ok"
        self.requests: list[list[str]] = []
        self.referers: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._runner: Any = None
        self.port = 0
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        ready.set()
        self._loop.run_forever()

    async def _handle(self, request: web.Request) -> web.Response:
        tail = request.match_info["tail"]
        symbols = tail.split(self.query, 1)[1].split(",") if self.query in tail else []
        self.requests.append(symbols)
        self.referers.append(request.headers.get("Referer", ""))
        if self.mode == "403":
            return web.Response(status=403, text="Kinsoku jikou desu!")
        if self.mode == "500":
            return web.Response(status=500, text="oops")
        if self.mode == "slow":
            await asyncio.sleep(3)
        if self.mode == "html":
            return web.Response(text=self.PORTAL, content_type="text/html")
        if self.mode == "garbage":
            return web.Response(text=self.GARBAGE, content_type="application/javascript")
        if self.mode == "huge":  # a proxy streaming something else: 9 MB
            return web.Response(body=b"x" * (9 * 2**20), content_type="application/octet-stream")
        if self.mode == "empty":
            return web.Response(body=b"", content_type="application/javascript")
        if self.mode == "redirect_loop":
            raise web.HTTPFound("/b" if request.path.startswith("/a") else "/a")
        if self.mode == "redirect_chain":
            hop = int(tail.split("/")[1]) if tail.startswith("hop/") else 0
            raise web.HTTPFound(f"/hop/{hop + 1}")
        return web.Response(body=self.reply(symbols).encode("gbk"), content_type="application/javascript")

    def reply(self, symbols: list[str]) -> str:
        if self.poison & set(symbols):
            return 'var hq_str_sys_auth="FAILED";\n'
        return "".join(f'var hq_str_{s}="{self.quotes.get(s, "")}";\n' for s in symbols)

    def stop(self) -> None:
        async def shutdown() -> None:
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class FakeTencent(FakeSina):
    """Answers ``/q=a,b,...`` like qt.gtimg.cn: a statement per known symbol, then one
    ``v_pv_none_match="1";`` if any symbol is unknown."""

    query = "q="

    def reply(self, symbols: list[str]) -> str:
        known = [s for s in symbols if s in self.quotes]
        body = "".join(f'v_{s}="{self.quotes[s]}";\n' for s in known)
        return body + ('v_pv_none_match="1";\n' if len(known) < len(symbols) else "")
