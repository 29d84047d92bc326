"""Matching an order against the book of the tick the program was given, and the queue model.

The book is the one of the latest tick the counter observed for the instrument before the order
arrived (never a later one: no look-ahead).  :meth:`Book.from_tick` reads up to five levels a side;
a level priced DBL_MAX (or not finite, or not positive) or showing no volume is absent, and so is
every level after it.

On arrival (:func:`on_insert`), after the exchange-layer checks (:func:`.checks.exchange_reject`):

* a marketable order takes the opposite side level by level, never worse than its limit (a
  market order: no limit); with ``FillRules.partial`` each level gives at most its displayed
  volume, less what earlier fills on the same tick took (a :class:`TickUse`); without it the whole
  order fills at the best opposite level once that crosses (SimNow, LocalCTP);
* the price is the exchange's rule, the median of the order's limit, the level's price and the
  previous trade (SIM_TRADING.md 1.4, 6.6): at the first level the median with the tick's
  ``LastPrice`` (the level's price, or the last price when that lies between the level and the
  limit), at each later level its own price (the median with the fill before, which lies on the
  near side of it);
* FOK (VolumeCondition CV) fills all or nothing, MinVolume (MV) at least MinVolume or nothing;
* the rest rests (GFD) or is cancelled (IOC, market); no opposite side (a locked market) means
  no fill;
* a GFD limit order taken in the opening auction's order-entry minutes (``hours`` on) does not
  match the pre-open book: it rests, its queue unknown, until the ticks of the open reach it.

Resting orders (:func:`on_tick`) are served in price priority (higher buys, lower sells first),
then time (``BrokerOrderSeq``), and each fills at ITS OWN price, never better:

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
order priced behind the best level waits until its price becomes the best.  Volume traded is one
budget a tick and side: the resting buys of an instrument together never fill more lots from
trades than traded since the previous tick (the sells likewise), whatever their prices, and two
orders on one tick never take the same displayed lots (the :class:`TickUse` the counter starts
empty for each new tick of an instrument).

Pure: no clock reads, no threads, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import datetime
from typing import Any, Iterable

from ..ctp.fields import values_of
from ..ctp.market_data import depth_class, depth_index, present_price
from . import checks, orders
from .orders import Event, Order
from .terms import Terms

LEVELS = 5
PRICE_EPSILON = 1e-9
QUEUE_UNSEEN = -1.0  # queue_ahead when the order's price lies beyond the displayed depth


@dataclass
class TickUse:
    """What our orders took of one tick, so that no two orders take the same lots: ``displayed``
    the lots of a displayed level, by (side "Bid"/"Ask", price); ``traded`` the lots of the volume
    traded since the previous tick given to resting orders, by the resting orders' Direction (one
    budget a side, whatever their prices)."""

    displayed: dict[tuple[str, float], int] = field(default_factory=dict)
    traded: dict[str, int] = field(default_factory=dict)


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
                price = present_price(member(f"{side}Price{level}"))
                volume = _number(member(f"{side}Volume{level}", 0))
                if price is None or volume <= 0:
                    break
                levels.append((price, volume))
        return cls(
            InstrumentID=str(member("InstrumentID", "") or ""),
            bids=sides["Bid"], asks=sides["Ask"],
            last=present_price(member("LastPrice")),
            volume=_number(member("Volume", 0)),
            upper=present_price(member("UpperLimitPrice")),
            lower=present_price(member("LowerLimitPrice")),
            pre_settlement=present_price(member("PreSettlementPrice")),
        )

    @classmethod
    def _from_values(cls, values: tuple[Any, ...]) -> Book:
        """The fast path for a tick object: its members are typed and checked already (prices
        floats, volumes ints)."""
        (instrument, last, volume, upper, lower, pre_settlement), sides = _positions()
        books: list[list[tuple[float, float]]] = []
        for side in sides:
            levels: list[tuple[float, float]] = []
            for price_at, volume_at in side:
                price, size = present_price(values[price_at]), values[volume_at]
                if price is None or not size > 0:
                    break
                levels.append((price, size))
            books.append(levels)
        return cls(values[instrument], books[0], books[1], present_price(values[last]), float(values[volume]),
                   present_price(values[upper]), present_price(values[lower]), present_price(values[pre_settlement]))

    def opposite(self, direction: str) -> list[tuple[float, float]]:
        """The levels an order of ``direction`` ('0' buy, '1' sell) trades against."""
        return self.asks if direction == "0" else self.bids

    def own(self, direction: str) -> list[tuple[float, float]]:
        """The levels on the side an order of ``direction`` joins (its own side: bids for a buy)."""
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


def _available(order: Order, book: Book, rules: FillRules, use: TickUse,
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
        free = int(volume - use.displayed.get((side, price), 0))
        if free <= 0:
            continue
        lots = min(free, wanted)
        taken.append((price, lots))
        wanted -= lots
    return taken


def _take(order: Order, takes: list[tuple[float, int]], use: TickUse) -> None:
    side = _side_key(order.Direction)
    for price, lots in takes:
        use.displayed[(side, price)] = use.displayed.get((side, price), 0) + lots


def _meets_volume_condition(order: Order, lots: int) -> bool:
    if order.VolumeCondition == "3":  # CV: all or nothing
        return lots >= order.VolumeTotal
    if order.VolumeCondition == "2":  # MV: at least MinVolume
        return lots >= max(order.MinVolume, 1)
    return lots > 0


def trade_price(direction: str, limit: float | None, level_price: float, last: float | None) -> float:
    """The exchange's continuous-auction price of an arriving order meeting a level: the median of
    its limit (a market order: none), the level's price and the previous trade (SIM_TRADING.md
    1.4, 6.6).  So the level's price, or the last price when that lies between the level and the
    limit; never worse than the limit."""
    if last is None:
        return level_price
    if limit is None:
        limit = math.inf if direction == "0" else -math.inf
    return sorted((limit, level_price, last))[1]


def aggressive_fills(order: Order, book: Book | None, rules: FillRules,
                     use: TickUse) -> list[tuple[float, int]]:
    """What an arriving order trades at once: (price, lots) per level, taken from ``use``.
    The first level trades at :func:`trade_price` with the tick's last price; each later one at
    its own price (the median with the previous fill, which lies on the near side of it)."""
    if book is None:
        return []
    limit = None if order.is_market else order.LimitPrice
    takes = _available(order, book, rules, use, limit)
    if not _meets_volume_condition(order, sum(lots for _, lots in takes)):
        return []
    if rules.partial:
        _take(order, takes, use)
    if takes:
        first_price, first_lots = takes[0]
        takes[0] = (trade_price(order.Direction, limit, first_price, book.last), first_lots)
    return takes


def on_insert(order: Order, book: Book | None, terms: Terms, rules: FillRules, ids: orders.Ids, now: datetime,
              use: TickUse, *, hours: bool = True) -> list[Event]:
    """The events of an order the CTP layer accepted (``orders.new_order``): the exchange-layer
    checks first (session only when ``hours``), then the fills against ``book`` and the
    per-exchange sequence (``orders.insert_events``)."""
    message = checks.exchange_reject(order, terms, book, now, hours=hours)
    if message is not None:
        return orders.reject_events(order, message, now)
    waits_for_open = hours and not terms.is_trading(now)  # taken in the opening auction
    fills = [] if waits_for_open else aggressive_fills(order, book, rules, use)
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


def _queue_fill(order: Order, book: Book, traded: float, rules: FillRules, use: TickUse) -> int:
    """Lots the traded volume gives the order (updating its queue); 0 if none reach it.  The
    traded volume is one budget per side: lots given to a better-priced or earlier resting order
    on this tick, or standing in the queue ahead at this price, are not given again."""
    if book.last is None or traded <= 0:
        return 0
    limit = order.LimitPrice
    left = traded - use.traded.get(order.Direction, 0)
    if _through(order.Direction, limit, book.last):
        order.queue_ahead = 0.0
        free = left
    elif abs(book.last - limit) <= PRICE_EPSILON:
        if not rules.queue:
            ahead = 0.0
        elif order.queue_ahead == QUEUE_UNSEEN:
            return 0  # behind every displayed lot, position unknown: these trades do not reach it
        else:
            ahead = order.queue_ahead
        used = min(ahead, max(left, 0.0))
        order.queue_ahead = ahead - used
        free = left - used
    else:
        return 0
    if free < 1:
        return 0
    lots = order.VolumeTotal if not rules.partial else min(order.VolumeTotal, int(free))
    use.traded[order.Direction] = use.traded.get(order.Direction, 0) + lots
    return lots


def _shrink_queue(order: Order, book: Book) -> None:
    shown = book.displayed_at(order.Direction, order.LimitPrice)
    if shown is None:
        return
    if order.queue_ahead == QUEUE_UNSEEN or shown < order.queue_ahead:
        order.queue_ahead = shown


def priority(order: Order) -> tuple[str, float, int]:
    """The order resting orders are served in: price (higher buys, lower sells first), then time."""
    price = -order.LimitPrice if order.Direction == "0" else order.LimitPrice
    return order.Direction, price, order.key


def on_tick(resting: Iterable[Order], book: Book, previous: Book | None, terms: Terms, rules: FillRules,
            ids: orders.Ids, now: datetime, use: TickUse) -> list[Event]:
    """The fills a new tick gives the resting orders of its instrument (in :func:`priority`), at
    their own prices; updates their queues."""
    events: list[Event] = []
    traded = _traded_since(book, previous)
    for order in sorted(resting, key=priority):
        if not order.alive or order.is_market:
            continue
        takes = _available(order, book, rules, use, order.LimitPrice)
        lots = sum(volume for _, volume in takes)
        if lots > 0:
            if rules.partial:
                _take(order, takes, use)
            order.queue_ahead = 0.0
        else:
            lots = _queue_fill(order, book, traded, rules, use)
        if order.alive and rules.queue:
            _shrink_queue(order, book)
        if lots > 0:
            events.extend(orders.fill_events(order, order.LimitPrice, min(lots, order.VolumeTotal), now, terms, ids))
    return events
