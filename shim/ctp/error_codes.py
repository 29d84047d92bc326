"""CTP's error codes: the ``ErrorID`` and ``ErrorMsg`` a front writes in ``CThostFtdcRspInfoField``.

The table is CTP 6.7.8's (``spec/ctp_error_codes.json``: 270 codes, each a name such as
``SETTLEMENT_INFO_NOT_CONFIRMED``, its number and the text CTP sends; where it comes from is in the
file's ``source``).  It is the one place a ctpshim front takes an error's number and wording from:
answer with ``error("INSUFFICIENT_MONEY")``, never with a literal 31 and a text of its own.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

TABLE = Path(__file__).with_name("spec") / "ctp_error_codes.json"


@dataclass(frozen=True)
class CtpError:
    """One entry of the table: ``code`` is the ErrorID, ``message`` the ErrorMsg CTP sends."""

    name: str
    code: int
    message: str


@lru_cache(maxsize=1)
def _table() -> tuple[dict[str, CtpError], dict[int, CtpError]]:
    with open(TABLE, encoding="utf-8") as table:
        rows = json.load(table)["errors"]
    by_name = {row["id"]: CtpError(row["id"], row["value"], row["prompt"]) for row in rows}
    return by_name, {entry.code: entry for entry in by_name.values()}


def error(name: str) -> CtpError:
    """The error called ``name`` (``"UNSUPPORTED_FUNCTION"``); an unknown name raises ``ValueError``
    naming the closest ones."""
    by_name, _ = _table()
    try:
        return by_name[name]
    except KeyError:
        close = difflib.get_close_matches(name, by_name, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"{name!r} is not one of CTP's {len(by_name)} error names{hint}") from None


def by_code(code: int) -> CtpError | None:
    """The error whose ErrorID is ``code``, or ``None`` for a number CTP does not define."""
    return _table()[1].get(code)


def all_errors() -> list[CtpError]:
    """Every error of the table, by code."""
    return sorted(_table()[0].values(), key=lambda entry: entry.code)
