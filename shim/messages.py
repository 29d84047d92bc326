"""Wording shared by messages for people: lists of user-supplied values, operating-system errors."""

from __future__ import annotations

import os
from os import PathLike
from typing import Iterable

MAX_LISTED = 10


def listing(values: Iterable[str], limit: int = MAX_LISTED) -> str:
    """``a, b, c`` or, past ``limit`` values, ``a, b, ... and 9,990 more (10,000 in all)``.

    A warning about ten thousand unknown IDs stays one readable line; each value is shown with
    ``repr`` when it has characters that would hide in a log line (control bytes, spaces).
    """
    items = list(values)
    shown = [v if v.isprintable() and v.strip() == v and v else repr(v) for v in items[:limit]]
    if len(items) <= limit:
        return ", ".join(shown)
    return f"{', '.join(shown)} ... and {len(items) - limit:,} more ({len(items):,} in all)"


def os_error_words(exc: OSError, path: "str | PathLike[str] | None" = None) -> str:
    """An operating-system error for people: ``path: permission denied``, not
    ``[Errno 13] Permission denied: 'path'`` (nor the C++ source line Arrow appends).

    The reason is the C library's words for the error number, lower-cased to sit inside a
    sentence; ``path`` defaults to the error's own ``filename``; without either, the reason alone.
    """
    if exc.errno:
        reason = os.strerror(exc.errno)
    elif exc.strerror:
        reason = exc.strerror
    else:
        lines = str(exc).strip().splitlines()
        reason = lines[0] if lines else type(exc).__name__
    if exc.errno or exc.strerror:
        reason = reason[:1].lower() + reason[1:]
    where = path if path is not None else exc.filename
    return f"{os.fspath(where)}: {reason}" if where is not None else reason
