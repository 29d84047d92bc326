"""What the plain openctp-ctp programs here share: their JSON-lines output, the SWIG structs as
dicts, and the CTP libraries the loader mapped (imported from the programs' own directory)."""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any


def as_json(value: Any) -> Any:
    """A SWIG struct as a dict of its members (``dir`` minus SWIG's own), other values as they are."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return {name: getattr(value, name) for name in dir(value)
            if not name.startswith("_") and name not in ("this", "thisown")}


def ctp_libraries() -> list[str]:
    """The CTP libraries mapped into this process (what the dynamic loader actually chose)."""
    found: list[str] = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if "libthost" in os.path.basename(path) and path not in found:
                found.append(path)
    return found


class Output:
    """JSON lines to a file or stdout, one writer at a time, nothing after close."""

    def __init__(self, path: str | None) -> None:
        self.stream = open(path, "w", encoding="utf-8") if path else sys.stdout
        self.lock = threading.Lock()
        self.closed = False

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False)
        with self.lock:
            if not self.closed:
                self.stream.write(line + "\n")
                self.stream.flush()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            if self.stream is not sys.stdout:
                self.stream.close()
