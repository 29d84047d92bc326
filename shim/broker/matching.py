"""Matching an order against the book of the tick the program was given, and the queue model.

The book is the one of the latest tick the counter observed for the instrument before the order
arrived (never a later one: no look-ahead).  :meth:`Book.from_tick` reads up to five levels a side;
a level priced DBL_MAX (or not finite, or not positive) or showing no volume is absent, and so is
every level after it.

On arrival (:func:`on_insert`), after the exchange-layer checks (:func:`.checks.exchange_reject`):

* a marketable order takes the opposite side level by level at each level's price, never worse
  than its limit (a market order: no limit); with ``FillRules.partial`` each level gives at most
  its displayed volume, less what earlier fills on the same tick took (``consumed``); without it
  the whole order fills at the best opposite price once that price crosses (SimNow, LocalCTP);
* FOK (VolumeCondition CV) fills all or nothing, MinVolume (MV) at least MinVolume or nothing;
* the rest rests (GFD) or is cancelled (IOC, market); no opposite side (a locked market) means
  no fill;
* a GFD limit order taken in the opening auction's order-entry minutes (``hours`` on) does not
  match the pre-open book: it rests, its queue unknown, until the ticks of the open reach it.

A resting order (:func:`on_tick`) fills at ITS OWN price, never better:

* when a later book crosses it (best ask <= its buy price, best bid >= its sell price), up to the
  displayed volume at prices that cross it (``partial``), else entirely;
* by the queue model (``FillRules.queue``): the volume displayed at its price when it joined
  stands ahead of it (none if it improved the best price or partly filled on arrival; unknown if
  the price lies beyond the displayed depth, until the price is displayed).  The volume traded
  since the previous tick (the change in the cumulative ``Volume``) while ``LastPrice`` is at its
  price first consumes the queue, then fills the order; a ``LastPrice`` through its price fills it
  up to the traded volume whatever the queue.  When the displayed volume at its price drops below
  the queue ahead, the queue shrinks to it (cancellations ahead of it).  Without ``queue`` the
  order is at the front of its price.

Level-1 feeds (one level a side, no trade list): all the volume traded between two ticks is
taken to have traded at the later tick's ``LastPrice``; depth beyond level 1 is unknown, so an
order priced behind the best level waits until its price becomes the best.  Volume traded is
shared: two resting orders at one price never fill from the same traded lots, and two orders on
one tick never take the same displayed lots (``consumed``, which the counter starts empty for
each new tick of an instrument).

Pure: no clock reads, no threads, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import datetime
from typing import Any, Iterable

from ..ctp.fields import values_of
from ..ctp.market_data import depth_class, depth_index
from . import checks, orders
from .orders import Event, Order
from .terms import Terms

LEVELS = 5
ABSENT_PRICE = 1e300  # at or above: CTP's DBL_MAX, "no price"
PRICE_EPSILON = 1e-9
QUEUE_UNSEEN = -1.0  # queue_ahead when the order's price lies beyond the displayed depth

# consumed: (side "Bid"/"Ask", price) -> displayed lots taken; ("Traded", price) -> traded lots used.
Consumed = dict


def _number(value: Any) -> float:
    """A tick's volume as a float; anything not a finite number is 0."""
    try:
        number = float(value or 0)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


@lru_cache(maxsize=1)
def _positions() -> tuple[tuple[int, ...], tuple[tuple[tuple[int, int], ...], ...]]:
    index = depth_index()
    singles = tuple(index[name] for name in ("InstrumentID", "LastPrice", "Volume", "UpperLimitPrice",
                                             "LowerLimitPrice", "PreSettlementPrice"))
    sides = tuple(tuple((index[f"{side}Price{level}"], index[f"{side}Volume{level}"]) for level in range(1, LEVELS + 1))
                  for side in ("Bid", "Ask"))
    return singles, sides


def _present(price: float) -> float | None:
    return price if 0 < price < ABSENT_PRICE else None


def _price(value: Any) -> float | None:
    """A tick's price, or None where CTP means "absent" (DBL_MAX, not finite, not positive)."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return _present(number)


@dataclass
class Book:
    """The order book and trade summary of one tick (bids and asks best first)."""

    InstrumentID: str = ""
    bids: list[tuple[float, float]] = field(default_factory=list)
    asks: list[tuple[float, float]] = field(default_factory=list)
    last: float | None = None
    volume: float = 0.0  # cumulative traded volume of the day
    upper: float | None = None  # UpperLimitPrice
    lower: float | None = None  # LowerLimitPrice
    pre_settlement: float | None = None

    @classmethod
    def from_tick(cls, tick: Any) -> Book:
        """The book of a ``CThostFtdcDepthMarketDataField`` (or a dict of its members)."""
        if type(tick) is depth_class():
            return cls._from_values(values_of(tick))
        if isinstance(tick, dict):
            member = tick.get
        else:
            def member(name: str, default: Any = None) -> Any:
                return getattr(tick, name, default)
        sides: dict[str, list[tuple[float, float]]] = {"Bid": [], "Ask": []}
        for side, levels in sides.items():
            for level in range(1, LEVELS + 1):
                price = _price(member(f"{side}Price{level}"))
                volume = _number(member(f"{side}Volume{level}", 0))
                if price is None or volume <= 0:
                    break
                levels.append((price, volume))
        return cls(
            InstrumentID=str(member("InstrumentID", "") or ""),
            bids=sides["Bid"], asks=sides["Ask"],
            last=_price(member("LastPrice")),
            volume=_number(member("Volume", 0)),
            upper=_price(member("UpperLimitPrice")),
            lower=_price(member("LowerLimitPrice")),
            pre_settlement=_price(member("PreSettlementPrice")),
        )

    @classmethod
    def _from_values(cls, values: tuple[Any, ...]) -> Book:
        """The fast path for a tick object: its members are typed and checked already (prices
        floats, volumes ints), so a price is absent when not in (0, 1e300) (DBL_MAX, inf, nan)."""
        (instrument, last, volume, upper, lower, pre_settlement), sides = _positions()
        books: list[list[tuple[float, float]]] = []
        for side in sides:
            levels: list[tuple[float, float]] = []
            for price_at, volume_at in side:
                price, size = values[price_at], values[volume_at]
                if not 0 < price < ABSENT_PRICE or not size > 0:
                    break
                levels.append((price, size))
            books.append(levels)
        return cls(values[instrument], books[0], books[1], _present(values[last]), float(values[volume]),
                   _present(values[upper]), _present(values[lower]), _present(values[pre_settlement]))

    def opposite(self, direction: str) -> list[tuple[float, float]]:
        """The levels an order of ``direction`` ('0' buy, '1' sell) trades against."""
        return self.asks if direction == "0" else self.bids

    def own(self, direction: str) -> list[tuple[float, float]]:
        return self.bids if direction == "0" else self.asks

    def displayed_at(self, direction: str, price: float) -> float | None:
        """Volume displayed on ``direction``'s own side at ``price``: 0 where nobody shows
        (better than the best, or between levels), None beyond the displayed depth."""
        levels = self.own(direction)
        sign = 1 if direction == "0" else -1
        for level_price, volume in levels:
            if abs(level_price - price) <= PRICE_EPSILON:
                return volume
            if sign * (price - level_price) > 0:
                return 0.0
        return None


@dataclass
class FillRules:
    """The fill model: ``partial`` limits fills by displayed volume; ``queue`` puts a resting
    order behind the volume displayed at its price when it joined."""

    partial: bool = True
    queue: bool = True


def _crosses(direction: str, limit: float, level_price: float) -> bool:
    if direction == "0":
        return level_price <= limit + PRICE_EPSILON
    return level_price >= limit - PRICE_EPSILON


def _side_key(direction: str) -> str:
    return "Ask" if direction == "0" else "Bid"


def _available(order: Order, book: Book, rules: FillRules, consumed: Consumed,
               limit: float | None) -> list[tuple[float, int]]:
    """(level price, lots) the order could take now, best first, without taking them."""
    taken: list[tuple[float, int]] = []
    wanted = order.VolumeTotal
    side = _side_key(order.Direction)
    for price, volume in book.opposite(order.Direction):
        if wanted <= 0 or (limit is not None and not _crosses(order.Direction, limit, price)):
            break
        if not rules.partial:
            return [(price, wanted)]
        free = int(volume - consumed.get((side, price), 0))
        if free <= 0:
            continue
        lots = min(free, wanted)
        taken.append((price, lots))
        wanted -= lots
    return taken


def _take(order: Order, takes: list[tuple[float, int]], consumed: Consumed) -> None:
    side = _side_key(order.Direction)
    for price, lots in takes:
        consumed[(side, price)] = consumed.get((side, price), 0) + lots


def _meets_volume_condition(order: Order, lots: int) -> bool:
    if order.VolumeCondition == "3":  # CV: all or nothing
        return lots >= order.VolumeTotal
    if order.VolumeCondition == "2":  # MV: at least MinVolume
        return lots >= max(order.MinVolume, 1)
    return lots > 0


def aggressive_fills(order: Order, book: Book | None, rules: FillRules, consumed: Consumed) -> list[tuple[float, int]]:
    """What an arriving order trades at once: (price, lots) per level, taken from ``consumed``."""
    if book is None:
        return []
    limit = None if order.is_market else order.LimitPrice
    takes = _available(order, book, rules, consumed, limit)
    if not _meets_volume_condition(order, sum(lots for _, lots in takes)):
        return []
    if rules.partial:
        _take(order, takes, consumed)
    return takes


def on_insert(order: Order, book: Book | None, terms: Terms, rules: FillRules, ids: orders.Ids, now: datetime,
              consumed: Consumed, *, hours: bool = True) -> list[Event]:
    """The events of an order the CTP layer accepted (``orders.new_order``): the exchange-layer
    checks first (session only when ``hours``), then the fills against ``book`` and the
    per-exchange sequence (``orders.insert_events``)."""
    message = checks.exchange_reject(order, terms, book, now, hours=hours)
    if message is not None:
        return orders.reject_events(order, message, now)
    waits_for_open = hours and not terms.is_trading(now)  # taken in the opening auction
    fills = [] if waits_for_open else aggressive_fills(order, book, rules, consumed)
    events = orders.insert_events(order, fills, rests=not order.immediate, now=now, terms=terms, ids=ids)
    if order.alive:
        order.queue_ahead = (QUEUE_UNSEEN if waits_for_open and rules.queue
                             else _joining_queue(order, book, rules, traded_on_arrival=bool(fills)))
    return events


def _joining_queue(order: Order, book: Book | None, rules: FillRules, *, traded_on_arrival: bool) -> float:
    if not rules.queue or traded_on_arrival:
        return 0.0
    if book is None:
        return QUEUE_UNSEEN
    shown = book.displayed_at(order.Direction, order.LimitPrice)
    return QUEUE_UNSEEN if shown is None else shown


def _through(direction: str, limit: float, last: float) -> bool:
    """Whether a trade at ``last`` went through ``limit`` (strictly better for the resting order)."""
    if direction == "0":
        return last < limit - PRICE_EPSILON
    return last > limit + PRICE_EPSILON


def _traded_since(book: Book, previous: Book | None) -> float:
    if previous is None:
        return 0.0
    return max(book.volume - previous.volume, 0.0)


def _queue_fill(order: Order, book: Book, traded: float, rules: FillRules, consumed: Consumed) -> int:
    """Lots the traded volume gives the order (updating its queue); 0 if none reach it.  Lots
    already given to an earlier order at the same price on this tick are not given again."""
    if book.last is None or traded <= 0:
        return 0
    limit = order.LimitPrice
    key = ("Traded", limit)
    if _through(order.Direction, limit, book.last):
        order.queue_ahead = 0.0
        free = traded - consumed.get(key, 0)
    elif abs(book.last - limit) <= PRICE_EPSILON:
        if not rules.queue:
            ahead = 0.0
        elif order.queue_ahead == QUEUE_UNSEEN:
            return 0  # behind every displayed lot, position unknown: these trades do not reach it
        else:
            ahead = order.queue_ahead
        used = min(ahead, traded)
        order.queue_ahead = ahead - used
        free = traded - used - consumed.get(key, 0)
    else:
        return 0
    if free < 1:
        return 0
    lots = order.VolumeTotal if not rules.partial else min(order.VolumeTotal, int(free))
    consumed[key] = consumed.get(key, 0) + lots
    return lots


def _shrink_queue(order: Order, book: Book) -> None:
    shown = book.displayed_at(order.Direction, order.LimitPrice)
    if shown is None:
        return
    if order.queue_ahead == QUEUE_UNSEEN or shown < order.queue_ahead:
        order.queue_ahead = shown


def on_tick(resting: Iterable[Order], book: Book, previous: Book | None, terms: Terms, rules: FillRules,
            ids: orders.Ids, now: datetime, consumed: Consumed) -> list[Event]:
    """The fills a new tick gives the resting orders of its instrument (earliest first), at
    their own prices; updates their queues."""
    events: list[Event] = []
    traded = _traded_since(book, previous)
    for order in sorted(resting, key=lambda o: o.key):
        if not order.alive or order.is_market:
            continue
        takes = _available(order, book, rules, consumed, order.LimitPrice)
        lots = sum(volume for _, volume in takes)
        if lots > 0:
            if rules.partial:
                _take(order, takes, consumed)
            order.queue_ahead = 0.0
        else:
            lots = _queue_fill(order, book, traded, rules, consumed)
        if order.alive and rules.queue:
            _shrink_queue(order, book)
        if lots > 0:
            events.extend(orders.fill_events(order, order.LimitPrice, min(lots, order.VolumeTotal), now, terms, ids))
    return events
