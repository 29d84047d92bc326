"""Progress display for long commands: a rich progress bar when rich is installed (the ``cli``
extra) and the output is a terminal; nothing otherwise."""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator


@contextlib.contextmanager
def progress(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(amount)``; ``total`` is in the same unit (0: unknown)."""
    try:
        from rich.progress import Progress
    except ImportError:
        Progress = None  # type: ignore[assignment,misc]
    if Progress is None or not sys.stderr.isatty():
        yield lambda amount: None
        return
    with Progress(transient=True) as bar:
        task = bar.add_task(description, total=total or None)
        yield lambda amount: bar.advance(task, amount)
