"""sim:// front settings: the URL query keys, their parsers and the check made at RegisterFront.

Everything here judges an address before anything runs: a setting's range and form
(:data:`SETTINGS`), and :func:`check_front` for what needs the settings together (a contract
listed on the start's trading day, a price its product can take).  Imports only the CTP domain
and the front-address parsers.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

from ...ctp import clock
from ...ctp.calendar import FIRST_DAY, LAST_DAY, supported, trading_day_of
from ...ctp.market_data import DATE_CONVENTIONS
from ...ctp.products import InstrumentInfo, default_sim_instruments, listed_contracts, parse_instrument
from ...fronts.url import Setting, boolean, choice, id_list, integer, number, speed
from ...messages import listing


def start_time(text: str) -> datetime:
    """China time; a time with a zone (``Z``, ``+00:00``) is converted to China time."""
    try:
        moment = datetime.fromisoformat(text.strip().replace(" ", "T"))
    except ValueError:
        raise ValueError("expected a China-time date and time like 2026-11-20T09:00 or 2026-11-20T21:00:30") from None
    try:
        moment = clock.china_time(moment)
    except OverflowError:
        moment = datetime.max
    if not supported(moment):
        raise ValueError(f"expected a moment from {FIRST_DAY}T00:00 to {LAST_DAY}T23:59:59 (the calendar's range)")
    return moment


def prices(text: str) -> dict[str, float]:
    """``3500`` (every instrument) or ``rb2605:3500,au2606:900``; the key ``*`` means every one."""
    result: dict[str, float] = {}
    for item in text.split(","):
        key, sep, value = item.strip().rpartition(":")
        key = key.strip() if sep else "*"
        try:
            price = float(value)
        except ValueError:
            raise ValueError("expected a price, or ID:price pairs separated by commas (rb2605:3500,au2606:900)") from None
        if not math.isfinite(price) or price <= 0:
            raise ValueError(f"price {value!r} must be a number greater than 0")
        result[key] = price
    return result


_interval_range = number(0.01, 60, low_included=True)


def interval(text: str) -> float:
    """Seconds between snapshots: whole hundredths that divide a minute, so every session (they
    start on whole minutes) starts on the snapshot grid."""
    value = _interval_range(text)
    hundredths = round(value * 100)
    if abs(value * 100 - hundredths) > 1e-6 or 6000 % hundredths:
        raise ValueError("expected seconds that divide a minute, from 0.01 to 60 (0.1, 0.25, 0.5, 1, 2, 5, 15 ...)")
    return hundredths / 100


def instrument_ids(text: str) -> tuple[str, ...]:
    ids = id_list(text)
    unknown = [i for i in ids if parse_instrument(i) is None]
    if unknown:
        raise ValueError(
            f"{', '.join(unknown)} not a futures contract the simulator knows; write IDs as CTP does: "
            "rb2605 (SHFE/INE/DCE/GFEX: lower case + YYMM), TA605 (CZCE: upper case + YMM), IF2606 (CFFEX)"
        )
    return ids


SETTINGS = (
    Setting("instruments", instrument_ids, None,
            "comma-separated contracts the market lists; default: a dozen liquid ones across the six exchanges"),
    Setting("seed", integer(0, 2**63 - 1), 1, "random seed; the same seed and start give the same ticks"),
    Setting("interval", interval, 0.5,
            "seconds of market time between snapshots of a contract (CTP: 0.5), dividing a minute, 0.01 to 60"),
    Setting("speed", speed, 1.0, "1 = real time, N = N times faster, max = as fast as possible"),
    Setting("start", start_time, None,
            "market time at connect, China time, e.g. 2026-11-20T09:00, from 2004-01-01 to 2099-12-31 "
            "(a time with a zone, 2026-11-20T01:00Z, is converted); default now"),
    Setting("price", prices, {},
            "starting pre-settlement price on the product's tick grid, from 5 ticks of daily band to 10x the "
            "product's typical level: one number, or ID:price pairs"),
    Setting("volatility", number(0, 10), 0.25, "annualised volatility of the random walk"),
    Setting("hours", choice("real", "always"), "real", "real: each product's sessions and holidays; always: 7x24"),
    Setting("dates", choice(*DATE_CONVENTIONS), "correct", "correct (SimNow-style) or exchange (DCE/CZCE quirks)"),
    Setting("depth", integer(1, 5), 5, "book levels filled, 1 to 5"),
    Setting("disconnect_after", integer(1, 10**12), None, "drop the connection after N ticks, to test reconnect handling"),
    Setting("refuse", boolean, False, "refuse to connect, like a front that is down (to test failover)"),
)


def listing_problem(info: InstrumentInfo | None, day: date) -> str | None:
    """Why ``info`` is not a contract the exchange lists on trading day ``day``, or None."""
    if info is None:
        return None
    if info.listed_on(day):
        return None
    when = "expired" if day > info.expire_date else "not yet listed"
    return (f"{info.instrument_id} is {when} on {day} (listed {info.open_date} to {info.expire_date}; "
            f"listed then: {listing(i.instrument_id for i in listed_contracts(info.product, day))})")


def check_front(url: Any, settings: dict[str, Any]) -> None:
    """Raise ``ValueError`` for what the settings together rule out (the adapter's ``check``)."""
    if url.host or url.port is not None or url.path not in ("", "/"):
        where = url.raw.split("://", 1)[1].split("?", 1)[0]
        raise ValueError(f"sim:// takes no host or path (got {where!r}); settings go after '?', e.g. sim://?seed=7")
    start = settings["start"] or clock.now()
    listed = settings["instruments"] or default_sim_instruments(start.date())
    day = trading_day_of(start)
    for instrument_id in settings["instruments"] or ():
        problem = listing_problem(parse_instrument(instrument_id, start.date()), day)
        if problem:
            raise ValueError(f"instruments: {problem}")
    for key, price in settings["price"].items():
        for instrument_id in listed if key == "*" else (key,):
            info = parse_instrument(instrument_id, start.date())
            if info is None:
                raise ValueError(f"price for {instrument_id!r}: not a futures contract the simulator knows")
            problem = info.product.price_problem(price)
            if problem is not None:
                raise ValueError(f"price for {instrument_id}: {problem}")


def starting_price(prices: dict[str, float], info: InstrumentInfo) -> tuple[float, str | None]:
    """The ``price`` setting for this contract, else its product's level; and a warning, if any.

    A bare ``price`` is checked against the listed contracts (``check_front``); a contract
    subscribed beyond them whose product cannot take it starts at its product's level.
    """
    price = prices.get(info.instrument_id)
    if price is not None:
        return price, None
    price = prices.get("*")
    if price is None:
        return info.product.price, None
    problem = info.product.price_problem(price)
    if problem is None:
        return price, None
    return info.product.price, (f"{info.instrument_id} starts at {info.product.code}'s typical price "
                                f"{info.product.price:g}: {problem}")
