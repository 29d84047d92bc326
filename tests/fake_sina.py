"""A local stand-in for hq.sinajs.cn on 127.0.0.1, serving the real sample payloads (GBK)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from aiohttp import web

from ctpshim.adapters.sina import split_statements

from .conftest import SHARED

SAMPLES = SHARED / "feeds" / "samples"


def sample(name: str) -> dict[str, str]:
    """The statements of a real Sina payload in the shared samples: symbol -> csv."""
    text = (SAMPLES / name).read_bytes().decode("gbk")
    return dict(split_statements(text))


class FakeSina:
    """Answers ``/list=a,b,...`` with one statement per requested symbol, like Sina.

    ``quotes`` maps a Sina symbol to its csv; ``mode`` is ``ok``, ``403``, ``500`` or ``slow``;
    a request that contains a symbol in ``poison`` gets the whole-batch failure reply.
    """

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
        symbols = tail.split("list=", 1)[1].split(",") if "list=" in tail else []
        self.requests.append(symbols)
        self.referers.append(request.headers.get("Referer", ""))
        if self.mode == "403":
            return web.Response(status=403, text="Kinsoku jikou desu!")
        if self.mode == "500":
            return web.Response(status=500, text="oops")
        if self.mode == "slow":
            await asyncio.sleep(3)
        if self.poison & set(symbols):
            body = 'var hq_str_sys_auth="FAILED";\n'
        else:
            body = "".join(f'var hq_str_{s}="{self.quotes.get(s, "")}";\n' for s in symbols)
        return web.Response(body=body.encode("gbk"), content_type="application/javascript")

    def stop(self) -> None:
        async def shutdown() -> None:
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
