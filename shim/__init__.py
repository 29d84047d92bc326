"""ctpshim: the openctp-ctp API, with market data from pluggable sources.

    from ctpshim import mdapi, tdapi     # instead of: from openctp_ctp import mdapi, tdapi

``mdapi`` / ``tdapi`` (also importable as ``ctpshim.thostmduserapi`` /
``ctpshim.thosttraderapi``) mirror openctp-ctp 6.7.11; the front address given to
``RegisterFront`` (``sim://``, ...) chooses where the data comes from.  Importing ``ctpshim``
itself loads nothing else: the facade modules and adapters load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
OPENCTP_VERSION = "6.7.11.0"  # the openctp-ctp release whose surface ctpshim reproduces

__all__ = ["mdapi", "tdapi", "thostmduserapi", "thosttraderapi", "__version__", "OPENCTP_VERSION"]


def __getattr__(name: str) -> Any:
    if name in ("mdapi", "tdapi", "thostmduserapi", "thosttraderapi"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
