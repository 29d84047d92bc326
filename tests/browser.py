"""A real headless Chromium driven over the Chrome DevTools Protocol with aiohttp's WebSocket client.

Synchronous for the tests: the CDP connection runs on an asyncio loop in a thread of its own, and
every call waits for its answer with a timeout.  Page JavaScript errors (uncaught exceptions,
``console.error``) are collected; :meth:`Page.check_errors` fails the test on them.

    with launch(tmp_path) as browser:
        page = browser.new_page()
        page.goto("http://127.0.0.1:7781/")
        page.wait_for("document.querySelectorAll('tr[data-instrument]').length > 0")

:func:`find_browser` returns the binary or skips the test (fails it when ``CTPSHIM_REQUIRE_BROWSER=1``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import aiohttp
import pytest

BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
REQUIRE = os.environ.get("CTPSHIM_REQUIRE_BROWSER") == "1"
START_TIMEOUT = 30.0
CALL_TIMEOUT = 15.0


class BrowserError(AssertionError):
    """A CDP call failed, timed out, or the page raised."""


def find_browser() -> str:
    """The Chromium binary (``CTPSHIM_BROWSER`` or the first of :data:`BINARIES` on PATH); skips
    the test when there is none, or fails it when ``CTPSHIM_REQUIRE_BROWSER=1``."""
    candidates = [os.environ["CTPSHIM_BROWSER"]] if os.environ.get("CTPSHIM_BROWSER") else list(BINARIES)
    for name in candidates:
        path = shutil.which(name)
        if path:
            return path
    message = (f"no browser found (looked for {', '.join(candidates)} on PATH): install Debian's chromium "
               "package (apt-get install chromium) or Google Chrome, or set CTPSHIM_BROWSER to its path")
    if REQUIRE:
        pytest.fail(message + " [CTPSHIM_REQUIRE_BROWSER=1]")
    pytest.skip(message)


class _Connection:
    """One CDP WebSocket: numbered calls with futures, events kept per session."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="cdp", daemon=True)
        self.thread.start()
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.listeners: dict[str, list[Any]] = {}
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task[None] | None = None
        self._run(self._open(), START_TIMEOUT)

    def _run(self, coro: Any, timeout: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise BrowserError(f"CDP: no answer within {timeout} s") from None

    async def _open(self) -> None:
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(self.url, max_msg_size=256 << 20)
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if "id" in data:
                future = self.pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            else:
                for listener in self.listeners.get(data.get("sessionId", ""), []):
                    listener(data["method"], data.get("params", {}))
        for future in self.pending.values():
            if not future.done():
                future.set_exception(BrowserError("CDP: the browser closed the connection"))

    async def _call(self, method: str, params: dict[str, Any], session_id: str | None) -> Any:
        assert self.ws is not None
        number = next(self.ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session_id:
            message["sessionId"] = session_id
        future = self.loop.create_future()
        self.pending[number] = future
        await self.ws.send_str(json.dumps(message))
        return await future

    def call(self, method: str, params: dict[str, Any] | None = None, session_id: str | None = None,
             timeout: float = CALL_TIMEOUT) -> dict[str, Any]:
        answer = self._run(self._call(method, params or {}, session_id), timeout)
        if "error" in answer:
            raise BrowserError(f"CDP {method}: {answer['error']}")
        return answer.get("result", {})

    def listen(self, session_id: str, listener: Any) -> None:
        self.loop.call_soon_threadsafe(lambda: self.listeners.setdefault(session_id, []).append(listener))

    def close(self) -> None:
        async def shut() -> None:
            if self.ws is not None:
                await self.ws.close()
            if self.reader is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(self.reader, 2)
            if self.session is not None:
                await self.session.close()

        with contextlib.suppress(BaseException):
            self._run(shut(), 5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


class Page:
    """One tab: navigate, evaluate, wait for conditions, input, screenshots, collected errors."""

    def __init__(self, connection: _Connection, target_id: str, session_id: str) -> None:
        self.connection = connection
        self.target_id = target_id
        self.session_id = session_id
        self.errors: list[str] = []     # uncaught exceptions and console.error: the test fails on them
        self.console: list[str] = []    # every console message and browser log entry, for failure reports
        self._lock = threading.Lock()
        connection.listen(session_id, self._event)
        for domain in ("Runtime", "Page", "Log"):
            self.call(f"{domain}.enable")

    def _event(self, method: str, params: dict[str, Any]) -> None:
        with self._lock:
            if method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                text = details.get("exception", {}).get("description") or details.get("text", "")
                self.errors.append(f"uncaught: {text} at {details.get('url', '')}:{details.get('lineNumber', '')}")
            elif method == "Runtime.consoleAPICalled":
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
                self.console.append(f"console.{params.get('type')}: {text}")
                if params.get("type") in ("error", "assert"):
                    self.errors.append(f"console.{params.get('type')}: {text}")
            elif method == "Log.entryAdded":
                entry = params.get("entry", {})
                self.console.append(f"log {entry.get('level')} {entry.get('source')}: {entry.get('text')} "
                                    f"{entry.get('url', '')}")

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = CALL_TIMEOUT) -> dict[str, Any]:
        return self.connection.call(method, params, self.session_id, timeout)

    def goto(self, url: str, timeout: float = 20.0) -> None:
        """Navigate and wait until the document has loaded."""
        answer = self.call("Page.navigate", {"url": url}, timeout)
        if answer.get("errorText"):
            raise BrowserError(f"navigating to {url}: {answer['errorText']}")
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'", timeout,
                      f"{url} to load")

    def evaluate(self, expression: str, timeout: float = CALL_TIMEOUT) -> Any:
        """The value of a JavaScript expression (promises awaited), as JSON; a thrown error fails."""
        answer = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                "returnByValue": True, "timeout": int(timeout * 1000)},
                           timeout + 1)
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"evaluating {expression!r}: {text}")
        return answer.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 10.0, what: str | None = None) -> Any:
        """Poll a JavaScript expression until it is truthy (its value is returned); fail after
        ``timeout`` seconds naming what was awaited and the page's errors."""
        deadline = time.monotonic() + timeout
        value: Any = None
        # a DOM node would come back as {} (falsy in Python)
        probe = f"((v) => (v instanceof Node ? true : v))({expression})"
        while True:
            value = self.evaluate(probe)
            if value:
                return value
            self.check_errors()
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        raise BrowserError(f"timed out after {timeout} s waiting for {what or expression} (last value {value!r}); "
                           f"console: {self.console[-20:]}")

    def _center(self, selector: str) -> tuple[float, float]:
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2, r.width, r.height]; })()")
        if not box or box[2] <= 0 or box[3] <= 0:
            raise BrowserError(f"no visible element {selector!r} to click")
        return box[0], box[1]

    def click(self, selector: str) -> None:
        """A real mouse click at the element's centre."""
        x, y = self._center(selector)
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})

    def type(self, selector: str, text: str, clear: bool = True) -> None:
        """Focus the element and type ``text`` into it as keyboard input."""
        self.click(selector)
        if clear:
            self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.select(); }})()")
        self.call("Input.insertText", {"text": text})

    def press_enter(self) -> None:
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", {"type": kind, "key": "Enter", "code": "Enter",
                                                 "windowsVirtualKeyCode": 13, "text": "\r" if kind == "keyDown" else ""})

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def check_errors(self) -> None:
        """Fail if the page raised an uncaught exception or logged with console.error."""
        with self._lock:
            errors = list(self.errors)
        if errors:
            raise BrowserError(f"page JavaScript errors: {errors}")


class Browser:
    """A headless Chromium process with its own profile and one CDP connection."""

    def __init__(self, binary: str, profile: Path, width: int = 1280, height: int = 1000) -> None:
        self.profile = profile
        profile.mkdir(parents=True, exist_ok=True)
        port_file = profile / "DevToolsActivePort"
        port_file.unlink(missing_ok=True)
        self.log = (profile.parent / f"{profile.name}.log").open("wb")
        self.process = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-extensions", "--disable-dev-shm-usage", f"--window-size={width},{height}",
             f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.connection: _Connection | None = None
        self.width, self.height = width, height
        try:
            self.connection = _Connection(self._endpoint(port_file))
        except BaseException:
            self.close()
            raise

    def _endpoint(self, port_file: Path) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrowserError(f"the browser exited with {self.process.returncode} at start; "
                                   f"see {self.log.name}")
            with contextlib.suppress(OSError):
                lines = port_file.read_text().split()
                if len(lines) >= 2:
                    return f"ws://127.0.0.1:{int(lines[0])}{lines[1]}"
            time.sleep(0.05)
        raise BrowserError(f"the browser wrote no {port_file} within {START_TIMEOUT} s; see {self.log.name}")

    def new_page(self) -> Page:
        assert self.connection is not None
        target = self.connection.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.connection.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self.connection, target, session)
        page.call("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                         "deviceScaleFactor": 1, "mobile": False})
        return page

    def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(BaseException):
                self.connection.call("Browser.close", timeout=5)
            self.connection.close()
            self.connection = None
        if self.process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        else:
            # Helper processes of the browser's group may outlive its main process.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()


@contextlib.contextmanager
def launch(tmp_path: Path) -> Iterator[Browser]:
    """A headless browser for the duration of the block (skips when none is installed)."""
    browser = Browser(find_browser(), tmp_path / "chromium-profile")
    try:
        yield browser
    finally:
        browser.close()
