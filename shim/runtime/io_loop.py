"""The one IO thread: a process-wide asyncio loop, started lazily, shared by every API object.

User threads never run adapter code; they hand coroutines and calls to this loop.  The thread is
a daemon so that programs which simply return from their main thread (as most CTP demos do)
exit as they would with the real library.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import threading
from typing import Any, Callable, Coroutine

_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_lock = threading.Lock()
SHUTDOWN_WAIT = 2.0  # seconds the interpreter waits at exit for the IO thread to stop
CLOSING_TASK = "ctpshim-closing"  # name prefix of tasks that close adapters: not cancelled at exit


def _run(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(ready.set)
    loop.run_forever()


def get_loop() -> asyncio.AbstractEventLoop:
    """The IO loop, starting its thread on first use."""
    global _loop, _thread
    if _loop is not None:
        return _loop
    with _lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            thread = threading.Thread(target=_run, args=(loop, ready), name="ctpshim-io", daemon=True)
            thread.start()
            ready.wait()
            _loop, _thread = loop, thread
            atexit.register(_shutdown)
    return _loop


def _shutdown() -> None:
    """At interpreter exit, stop the loop between callbacks and let the IO thread finish.

    Without this the daemon thread can still be inside a C++ library (pyarrow) when the
    process's static objects are destroyed, which aborts the process.
    """
    loop, thread = _loop, _thread
    if loop is None or thread is None or not thread.is_alive():
        return

    async def finish() -> None:
        # Cancel what runs, then let the tasks that cancelling starts (a market closing its
        # adapter) finish too, within the same wait.
        deadline = loop.time() + SHUTDOWN_WAIT
        cancelled: set[asyncio.Task[Any]] = set()
        while True:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            left = deadline - loop.time()
            if not tasks or left <= 0:
                break
            for task in tasks:
                if task not in cancelled and not _closing(task):
                    task.cancel()
                    cancelled.add(task)
            await asyncio.wait(tasks, timeout=left, return_when=asyncio.FIRST_COMPLETED)
        await loop.shutdown_asyncgens()

    try:
        asyncio.run_coroutine_threadsafe(finish(), loop).result(SHUTDOWN_WAIT)
    except Exception:  # noqa: BLE001 - exiting anyway; stop as cleanly as we can
        pass
    loop.call_soon_threadsafe(loop.stop)
    thread.join(SHUTDOWN_WAIT)


def _closing(task: asyncio.Task[Any]) -> bool:
    """Whether ``task`` is closing something (named so by its maker): left to finish at exit."""
    return task.get_name().startswith(CLOSING_TASK)


def submit(coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
    """Run ``coro`` on the IO loop; returns a thread-safe future."""
    return asyncio.run_coroutine_threadsafe(coro, get_loop())


def call_soon(callback: Callable[..., Any], *args: Any) -> None:
    """Call ``callback(*args)`` on the IO loop, from any thread."""
    get_loop().call_soon_threadsafe(callback, *args)


async def wait_at_most(event: asyncio.Event, seconds: float) -> None:
    """Wait until ``event`` is set, or ``seconds`` have passed (the timer then sets it).

    A timer rather than ``asyncio.wait_for``: on Python 3.11 wait_for can swallow a cancellation
    that arrives just as the event is set, and ``Release()`` cancels these waits.
    """
    timer = asyncio.get_running_loop().call_later(seconds, event.set)
    try:
        await event.wait()
    finally:
        timer.cancel()


def on_io_thread() -> bool:
    return _loop is not None and threading.current_thread().name == "ctpshim-io"
