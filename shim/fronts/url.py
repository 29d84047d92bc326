"""Front addresses: the one place that parses ``RegisterFront`` URLs and their settings.

A front address is ``scheme://[host[:port]][/path][?key=value&...]``.  The scheme picks the
adapter; the query keys are the adapter's settings, each declared by the adapter as a
:class:`Setting` and validated here, so every adapter reports bad input the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

from ..errors import FrontAddressError

# Query keys with this prefix configure the simulated counter (ctpshim.broker.settings), not the
# adapter: every ctpshim front accepts them and adapters never see them.
TRADER_PREFIX = "trader."


@dataclass(frozen=True)
class FrontURL:
    """An immutable, parsed front address."""

    raw: str
    scheme: str
    host: str
    port: int | None
    path: str
    query: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __str__(self) -> str:
        return self.raw


def parse_front_url(raw: Any) -> FrontURL:
    """Parse ``raw`` into a :class:`FrontURL`; raise :class:`FrontAddressError` naming the bad part."""
    if not isinstance(raw, str):
        raise TypeError(f"a front address must be a str, got {type(raw).__name__} {raw!r}")
    text = raw.strip()
    if "://" not in text:
        raise FrontAddressError(
            f"front address {raw!r} has no scheme: write it as scheme://..., e.g. 'sim://' or 'tcp://host:port'"
        )
    scheme_part = text.split("://", 1)[0]
    if not scheme_part or not scheme_part.replace("+", "").replace("-", "").isalnum():
        raise FrontAddressError(f"front address {raw!r}: {scheme_part!r} is not a valid scheme name")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise FrontAddressError(f"front address {raw!r} is malformed: {exc}") from None
    if parts.fragment:
        raise FrontAddressError(f"front address {raw!r}: a '#' fragment is not allowed")
    query: dict[str, str] = {}
    if parts.query:
        for piece in parts.query.split("&"):
            if not piece:
                continue
            if "=" not in piece:
                raise FrontAddressError(f"front address {raw!r}: setting {piece!r} has no value (write key=value)")
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key in query:
                raise FrontAddressError(f"front address {raw!r}: setting {key!r} is given twice")
            query[key] = value
    return FrontURL(
        raw=text,
        scheme=parts.scheme.lower(),
        host=parts.hostname or "",
        port=port,
        path=unquote(parts.path),
        query=MappingProxyType(query),
    )


@dataclass(frozen=True)
class Setting:
    """One query setting an adapter accepts.

    ``parse`` turns the text into a value or raises ``ValueError`` with a message that says what
    is valid; ``help`` is a short description shown when a key is unknown.
    """

    name: str
    parse: Callable[[str], Any]
    default: Any
    help: str


def resolve_settings(url: FrontURL, settings: tuple[Setting, ...], prefix: str | None = None) -> dict[str, Any]:
    """Validate ``url.query`` against ``settings`` and return every setting's value.

    Without ``prefix`` (an adapter's settings) the ``trader.*`` keys are left out; with one, only
    the keys that start with it are read."""
    known = {s.name: s for s in settings}
    if prefix is None:
        keys = [k for k in url.query if not k.startswith(TRADER_PREFIX)]
    else:
        keys = [k for k in url.query if k.startswith(prefix)]
    unknown = [k for k in keys if k not in known]
    if unknown:
        listing = ", ".join(f"{s.name} ({s.help})" for s in settings) or "none"
        raise FrontAddressError(
            f"front {url.raw!r}: unknown setting {unknown[0]!r} for {url.scheme}://; valid settings: {listing}"
        )
    values = {}
    for setting in settings:
        if setting.name in url.query:
            text = url.query[setting.name]
            try:
                values[setting.name] = setting.parse(text)
            except ValueError as exc:
                raise FrontAddressError(f"front {url.raw!r}: setting {setting.name}={text!r} is not valid: {exc}") from None
        else:
            values[setting.name] = setting.default
    return values


# Parsers for common setting types, each raising ValueError that says what is valid.

def number(low: float, high: float, *, low_included: bool = False) -> Callable[[str], float]:
    """A finite number in a closed or half-open range: ``low < x <= high`` (``low <= x`` with
    ``low_included``).  Every numeric setting names its range, so no value can overflow or
    stall what uses it."""
    floor = f"from {low:g}" if low_included else f"greater than {low:g}"
    valid = f"expected a number {floor} and at most {high:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(valid) from None
        if not math.isfinite(value) or value > high or value < low or (value == low and not low_included):
            raise ValueError(valid)
        return value

    return parse


MAX_SPEED = 1_000_000.0
_speed_factor = number(0, MAX_SPEED)


def speed(text: str) -> float:
    """``max`` (as fast as possible, returned as ``math.inf``) or a factor in (0, 1,000,000]."""
    if text.strip().lower() == "max":
        return math.inf
    try:
        return _speed_factor(text)
    except ValueError:
        raise ValueError(f"expected 'max' or a number greater than 0 and at most {MAX_SPEED:g} (1 = real time)") from None


def integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        bounds = f"from {low}" if low is not None else ""
        bounds += f" to {high}" if high is not None else ""
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"expected a whole number {bounds}".rstrip()) from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError(f"expected a whole number {bounds}".rstrip())
        return value

    return parse


def boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false (also 1/0, yes/no, on/off)")


def choice(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        lowered = text.strip().lower()
        if lowered not in options:
            raise ValueError(f"expected one of: {', '.join(options)}")
        return lowered

    return parse


def id_list(text: str) -> tuple[str, ...]:
    """Comma-separated instrument IDs, kept in order, duplicates dropped, case kept."""
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise ValueError("expected instrument IDs separated by commas, e.g. rb2605,au2606")
    return tuple(dict.fromkeys(items))
