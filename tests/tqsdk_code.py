"""tqsdk's own modules for the tests that check our DIFF and symbol output against them.

Importing tqsdk (its shinny_structlog) replaces, for the whole process, ``logging.getLogger``, the
logger class, and the ``root`` and ``manager`` every logger hangs from; ctpshim loggers made after
that no longer reach the handlers (pytest's caplog) that every other test reads.  :func:`tqsdk_module`
imports with all four kept as they were.
"""

from __future__ import annotations

import logging
from types import ModuleType

import pytest


def tqsdk_module(name: str) -> ModuleType:
    """The tqsdk module ``name`` (the test is skipped when tqsdk is not installed), imported with the
    process's logging left as it was found."""
    kept = (logging.getLogger, logging.getLoggerClass(), logging.Logger.root, logging.Logger.manager)
    try:
        return pytest.importorskip(name)
    finally:
        logging.getLogger, _, logging.Logger.root, logging.Logger.manager = kept  # type: ignore[misc]
        logging.setLoggerClass(kept[1])
