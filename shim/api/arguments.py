"""The SWIG argument checks of the facade: openctp's exception types and the start of its messages.

A program that passes a wrong type gets the ``TypeError`` (or ``OverflowError``) openctp-ctp raises,
with a message that says what was expected; the checks never accept what openctp refuses, except
where the docstring says so.
"""

from __future__ import annotations

import inspect
from functools import lru_cache
from typing import Any, Callable

from ..ctp.fields import Field, c_text, char_limit

INT32 = (-(2**31), 2**31 - 1)


def check_struct(value: Any, expected: str, method: str, position: int) -> None:
    """A field object of class ``expected`` from either facade module (as SWIG accepts)."""
    if isinstance(value, Field) and type(value).__name__ == expected:
        return
    raise TypeError(
        f"in method '{method}', argument {position} of type '{expected} *': "
        f"got {type(value).__name__} {short(value)}; pass a {expected}() object"
    )


def check_int(value: Any, method: str, position: int, ctype: str = "int") -> int:
    """An ``int`` (``bool`` included, as SWIG accepts it) within int32."""
    if not isinstance(value, int):
        raise TypeError(
            f"in method '{method}', argument {position} of type '{ctype}': "
            f"got {type(value).__name__} {short(value)}; expected an int"
        )
    if not INT32[0] <= value <= INT32[1]:
        raise OverflowError(
            f"in method '{method}', argument {position} of type '{ctype}': {value} is outside int32"
        )
    return int(value)


def check_bool(value: Any, method: str, position: int) -> None:
    """A factory flag: ``bool`` or ``int``."""
    if not isinstance(value, (bool, int)):
        raise TypeError(
            f"in method '{method}', argument {position} of type 'bool': got {type(value).__name__} {short(value)}"
        )


def check_text(value: Any, method: str, position: int) -> str:
    """A ``char *`` argument: a ``str``."""
    if not isinstance(value, str):
        raise TypeError(
            f"in method '{method}', argument {position} of type 'char *': "
            f"got {type(value).__name__} {short(value)}; expected a str"
        )
    return value


def instrument_ids(ids: Any, count: Any, method: str) -> list[str]:
    """The IDs of a ``Subscribe...(ppInstrumentID, nCount)`` call, checked like openctp's typemap.

    openctp wants a list of bytes; a list of str is accepted too.  ``nCount`` limits how many
    are used, as in C.  An ID ends at a trailing NUL, as a C string does; text after a NUL, text
    GB18030 cannot encode and IDs longer than ``InstrumentID`` holds are refused with
    ``TypeError`` (openctp would send a cut or garbled ID and the front would never answer for it).
    """
    if not isinstance(ids, list):
        raise TypeError(
            f"not a list: {method} takes a list of instrument IDs, got {type(ids).__name__} {short(ids)}"
        )
    count = check_int(count, method, 3)
    limit = instrument_id_limit()
    result = []
    for index, item in enumerate(ids[: max(count, 0)]):
        if isinstance(item, bytes):
            try:
                item = item.decode("gb18030")
            except UnicodeDecodeError:
                raise TypeError(
                    f"{method}: instrument ID {item!r} at index {index} is not valid GB18030 text") from None
        elif not isinstance(item, str):
            raise TypeError(
                f"list must contain strings: {method} got {type(item).__name__} {short(item)} at index {index}"
            )
        try:
            item = c_text(item)
            size = len(item.encode("gb18030"))
        except ValueError as exc:  # UnicodeEncodeError included
            problem = "cannot be encoded in GB18030" if isinstance(exc, UnicodeError) else "has text after a NUL byte"
            raise TypeError(
                f"{method}: instrument ID {short(item)} at index {index} {problem}; "
                f"an instrument ID is up to {limit} bytes of GB18030 text without NUL bytes"
            ) from None
        if size > limit:
            raise TypeError(f"{method}: instrument ID {item[:40]!r}... at index {index} is longer than {limit} bytes")
        result.append(item)
    return result


@lru_cache(maxsize=1)
def instrument_id_limit() -> int:
    """How many bytes an instrument ID may have: ``CThostFtdcSpecificInstrumentField.InstrumentID``."""
    return char_limit("CThostFtdcSpecificInstrumentField", "InstrumentID")


def short(value: Any) -> str:
    """``repr(value)``, cut to 60 characters for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def named(function: Callable[..., Any], name: str, owner: str, params: list[str]) -> Callable[..., Any]:
    """Give a generated method its CTP name and a signature with CTP's parameter names."""
    function.__name__ = name
    function.__qualname__ = f"{owner}.{name}"
    function.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)]
        + [inspect.Parameter(p, inspect.Parameter.POSITIONAL_ONLY) for p in params]
    )
    return function
