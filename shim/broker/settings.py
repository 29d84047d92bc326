"""The ``trader.*`` front settings: how the simulated counter behind ``tdapi`` behaves.

They are query keys of any ctpshim front address (``sim://?speed=max&trader.balance=1e6``),
accepted beside the adapter's own settings and ignored by the adapter
(:func:`ctpshim.fronts.url.resolve_settings`) and by the market hub's key, so md and td on
``replay://x?speed=max`` and ``replay://x?speed=max&trader.balance=1e6`` share one market.
A real CTP front (``tcp://``) has no simulated counter: a ``trader.*`` key there is an error.

:data:`SETTINGS` is the one list (``ctpshim schemes`` prints it); :func:`trader_settings` reads
an address's values, validated with the :mod:`ctpshim.fronts.url` parsers, into a
:class:`TraderSettings`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FrontAddressError
from ..fronts.url import TRADER_PREFIX, FrontURL, Setting, boolean, choice, number, parse_front_url, resolve_settings

HOME_ENV = "CTPSHIM_HOME"
DEFAULT_BALANCE = 10_000_000.0
MAX_BALANCE = 1e15
MEMORY = "memory"
_BOOK = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def home() -> Path:
    """ctpshim's own folder: ``$CTPSHIM_HOME``, else ``~/.ctpshim``."""
    configured = os.environ.get(HOME_ENV, "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".ctpshim"


def default_db() -> str:
    """The default ``trader.db``: ``trader.sqlite`` in :func:`home`."""
    return str(home() / "trader.sqlite")


def _database(text: str) -> str:
    value = text.strip()
    if not value:
        raise ValueError(f"expected a file path (a new file is created) or {MEMORY!r}")
    if value.lower() == MEMORY:
        return MEMORY
    path = Path(value).expanduser()
    if path.is_dir():
        raise ValueError(f"{value!r} is a folder; name a file inside it, e.g. {str(path / 'trader.sqlite')!r}")
    if path.exists():
        _check_database(path)
    return str(path)


PROBE_TIMEOUT = 1.0  # s: how long RegisterFront's look at an existing database waits for a lock


def _check_database(path: Path) -> None:
    """An existing database must be one the counter can use: the store's own checks, at once."""
    from .store import Store, StoreError  # sqlite3 only when a database is named

    try:
        Store.open(path, create=False, timeout=PROBE_TIMEOUT).close()
    except StoreError as exc:
        raise ValueError(str(exc)) from None


def _book(text: str) -> str:
    value = text.strip()
    if not _BOOK.match(value):
        raise ValueError("expected a name of 1 to 64 letters, digits, '_', '-' or '.'")
    return value


def _rates(text: str) -> str:
    from ..ctp import rates  # the table's own parser names the bad line and column

    value = text.strip()
    if not value:
        raise ValueError("expected the path of a CSV file of rates (the columns of ctpshim.ctp.rates)")
    path = Path(value).expanduser()
    if not path.is_file():
        raise ValueError(f"no file {str(path)!r}; expected a CSV file of rates (the columns of ctpshim.ctp.rates)")
    rates.load_table(path)
    return str(path)


def _auto_or_boolean(text: str) -> bool | None:
    """``auto`` -> ``None`` (decided from the source), else a boolean."""
    if text.strip().lower() == "auto":
        return None
    try:
        return boolean(text)
    except ValueError:
        raise ValueError("expected auto, true or false (also 1/0, yes/no, on/off)") from None


SETTINGS: tuple[Setting, ...] = (
    Setting("trader.balance", number(0, MAX_BALANCE, low_included=True), DEFAULT_BALANCE,
            "a new account's balance in yuan"),
    Setting("trader.db", _database, None,
            f"the SQLite file of the accounts, or {MEMORY} (nothing kept); default ${HOME_ENV}/trader.sqlite "
            f"(${HOME_ENV} defaults to ~/.ctpshim)"),
    Setting("trader.book", _book, None,
            "names a set of accounts inside the database; default the scheme (sim, replay, ...)"),
    Setting("trader.rates", _rates, None,
            "a CSV of margin and commission rates overriding the built-in ones (the columns of ctpshim.ctp.rates)"),
    Setting("trader.rate_level", choice("broker", "exchange"), "broker",
            "broker (SimNow's margins and fees) or exchange (the exchanges' minimum)"),
    Setting("trader.partial", boolean, True,
            "true: fills limited by the displayed volume; false: an order that crosses fills whole"),
    Setting("trader.queue", boolean, True,
            "true: a resting order waits behind the volume displayed at its price when it joined"),
    Setting("trader.hours", _auto_or_boolean, None,
            "reject orders outside trading hours (26): auto = yes unless the source runs 7x24 "
            "(replay with rebase=now or loop=true, sim with hours=always)"),
    Setting("trader.flow_control", boolean, True,
            "CTP's query flow control: one query a second and one in flight (-3 / -2)"),
    Setting("trader.lockstep", _auto_or_boolean, None,
            "md and td in lockstep (deterministic backtests): auto = when the front's speed is max"),
    Setting("trader.expire_report", boolean, False,
            "send OnRtnOrder 已撤单 for GFD orders expired at settlement"),
)


@dataclass(frozen=True)
class TraderSettings:
    """The values of the ``trader.*`` settings of one front address (``auto`` ones resolved)."""

    balance: float = DEFAULT_BALANCE
    db: str = MEMORY
    book: str = "sim"
    rates: str | None = None
    rate_level: str = "broker"
    partial: bool = True
    queue: bool = True
    hours: bool = True
    flow_control: bool = True
    lockstep: bool = False
    expire_report: bool = False
    # Not a setting: whether the source's dates are the market's own (a replay rebased to today
    # replays contracts long expired, so their last trading day is not checked then).
    real_dates: bool = True

    @property
    def counter_key(self) -> tuple[str, str]:
        """(database, book): one counter per key per process."""
        return (self.db if self.db == MEMORY else os.path.abspath(self.db), self.book)


def trader_query(url: FrontURL) -> dict[str, str]:
    """The ``trader.*`` keys of an address, with their text."""
    return {key: value for key, value in url.query.items() if key.startswith(TRADER_PREFIX)}


def check_front(url: FrontURL, pass_through: bool) -> None:
    """Raise ``FrontAddressError`` for a bad ``trader.*`` key or value of ``url``; on a real CTP
    front (``pass_through``) any ``trader.*`` key is one."""
    given = trader_query(url)
    if not given:
        return
    if pass_through:
        raise FrontAddressError(
            f"front {url.raw!r}: {next(iter(given))!r}: trader.* settings configure ctpshim's simulated "
            f"counter, and {url.scheme}:// is a real CTP front (its broker keeps the accounts); remove them"
        )
    _resolve(url)


def _resolve(url: FrontURL) -> dict[str, Any]:
    only_trader = FrontURL(url.raw, url.scheme, url.host, url.port, url.path, trader_query(url))
    return resolve_settings(only_trader, SETTINGS, prefix=TRADER_PREFIX)


def trader_settings(front: str | FrontURL, source: dict[str, Any] | None = None) -> TraderSettings:
    """The counter's settings for the front address ``front``; ``source`` is the adapter's
    resolved settings (for the ``auto`` values: ``speed``, ``rebase``, ``loop``, ``hours``)."""
    url = front if isinstance(front, FrontURL) else parse_front_url(front)
    values = _resolve(url)
    source = source or {}
    runs_always = (
        (url.scheme == "replay" and (source.get("rebase") == "now" or bool(source.get("loop"))))
        or (url.scheme == "sim" and source.get("hours") == "always")
    )
    speed = source.get("speed")
    hours = values["trader.hours"]
    lockstep = values["trader.lockstep"]
    return TraderSettings(
        balance=values["trader.balance"],
        db=values["trader.db"] or default_db(),
        book=values["trader.book"] or url.scheme,
        rates=values["trader.rates"],
        rate_level=values["trader.rate_level"],
        partial=values["trader.partial"],
        queue=values["trader.queue"],
        hours=(not runs_always) if hours is None else hours,
        flow_control=values["trader.flow_control"],
        lockstep=(speed == float("inf")) if lockstep is None else lockstep,
        expire_report=values["trader.expire_report"],
        real_dates=not (url.scheme == "replay" and source.get("rebase") == "now"),
    )
