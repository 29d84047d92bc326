"""Wording shared by every message that lists user-supplied values (warnings, errors)."""

from __future__ import annotations

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
