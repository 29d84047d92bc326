"""A trader Spi for the counter's tests: records every callback and waits for them with a condition
and a timeout (never a fixed sleep)."""

from __future__ import annotations

import threading
from typing import Any, Callable

from ctpshim import tdapi

WAIT = 10.0  # s: the longest a test waits for an answer


class WaitingTraderSpi(tdapi.CThostFtdcTraderSpi):
    """Records every ``OnRsp*``/``OnErrRtn*``/``OnRtn*``/``OnFront*`` callback as (name, args)."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        self.cond = threading.Condition()

    def __getattribute__(self, name: str) -> Any:
        if name.startswith(("OnRsp", "OnErrRtn", "OnRtn", "OnFront")):
            def record(*args: Any) -> None:
                cond = object.__getattribute__(self, "cond")
                with cond:
                    object.__getattribute__(self, "events").append((name, args))
                    cond.notify_all()
            return record
        return object.__getattribute__(self, name)

    def all(self, name: str) -> list[tuple[Any, ...]]:
        """The arguments of every ``name`` callback so far."""
        with self.cond:
            return [args for event, args in self.events if event == name]

    def names(self) -> list[str]:
        """Every callback's name so far, in order."""
        with self.cond:
            return [event for event, _ in self.events]

    def wait_for(self, found: Callable[[], Any], what: str) -> Any:
        """``found()``'s first truthy value (checked at each callback); fails after WAIT seconds."""
        with self.cond:
            result = self.cond.wait_for(found, WAIT)
            if not result:
                raise AssertionError(f"timed out waiting for {what}; got {[e for e, _ in self.events]}")
            return result

    def wait(self, name: str, count: int = 1) -> list[tuple[Any, ...]]:
        """Wait for ``count`` ``name`` callbacks; their arguments."""
        self.wait_for(lambda: sum(event == name for event, _ in self.events) >= count, f"{count} {name}")
        return self.all(name)
