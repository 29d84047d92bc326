"""sim:// market model: one simulated contract's prices, book, volumes and open interest.

:class:`Contract` holds a contract's seeded tables (moves, trade and book sizes), the price grid
around its current price, its current trading day's coarse path (:class:`.planning.DayPath`)
and the value list of its latest tick.  ``run(rounds)`` advances it round by round and makes
the ticks: each five-minute segment of the day path is bridged once (``segment_at``) into
per-round LastPrice, book key and lots traded, from the seed, the contract, the date and the
segment number alone; Volume, Turnover, OpenInterest and AveragePrice follow from those.  The
book at a price comes from ``book(key)``; ``snapshot()`` is the latest tick.

A Contract is advanced on one thread at a time, the one that iterates the adapter's batches (a
dispatcher thread), in batch order; the planner never touches it.  Imports the CTP domain and
:mod:`.planning`; the adapter, and a simulated trader's matcher, import this module.
"""

from __future__ import annotations

import itertools
import math
import random
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from ...ctp.fields import maker
from ...ctp.market_data import (
    DBL_MAX, Stamper, average_price_rule, blank_values, depth_class, depth_index, make_tick,
)
from ...ctp.products import InstrumentInfo
from .planning import DayPath, first_schedule

SECONDS_PER_TRADING_YEAR = 250 * 4 * 3600  # for turning annual volatility into a per-round move
WINDOW = 4096  # prices tabulated around the current one (at least; more for large moves)
_LEVEL_NAMES = [(f"BidPrice{i}", f"BidVolume{i}", f"AskPrice{i}", f"AskVolume{i}") for i in range(1, 6)]

_I = depth_index()
_LAST, _VOLUME, _TURNOVER, _INTEREST = _I["LastPrice"], _I["Volume"], _I["Turnover"], _I["OpenInterest"]
_HIGH, _LOW, _AVERAGE = _I["HighestPrice"], _I["LowestPrice"], _I["AveragePrice"]
_TRADING_DAY, _ACTION_DAY, _BID_VOLUME1 = _I["TradingDay"], _I["ActionDay"], _I["BidVolume1"]
_CLOSE, _SETTLEMENT = _I["ClosePrice"], _I["SettlementPrice"]
_UPDATE_TIME, _MILLISEC = _I["UpdateTime"], _I["UpdateMillisec"]
_BOOK = slice(_I["BidPrice1"], _I["AskVolume5"] + 1)
if [n for n in list(_I)[_BOOK]] != [n for level in _LEVEL_NAMES for n in level]:
    raise AssertionError("the book members of CThostFtdcDepthMarketDataField are not contiguous")

# Book keys (``bid << 1 | (spread - 1)``) around a LastPrice of p ticks are 2p + these, by the
# round's spread byte (two ticks one time in ten): an uptick traded at the ask, so the bid is a
# spread below; otherwise at the bid.
_SPREADS = [2 if x < 26 else 1 for x in range(256)]
_UPTICK_KEY = [-spread - 1 for spread in _SPREADS]
_KEY = [spread - 1 for spread in _SPREADS]

# What one round's ticks carry: (TradingDay, ActionDay, UpdateTime, UpdateMillisec).
Stamps = tuple[str, str, str, int]
# Consecutive rounds of one run of a contract's schedule: the first one's market time, the market
# time of the round after the last, the trading day they belong to, and each round's stamps.
Rounds = tuple[datetime, datetime, str, list[Stamps]]


class Resume(NamedTuple):
    """Where a contract subscribed again after a pause is due: the last round before the
    subscription (its market time, trading day and stamps)."""

    at: datetime
    trading_day: str
    stamps: Stamps


def _draws(rnd: random.Random, count: int) -> bytes:
    """``4 * count`` random bytes: per round, its move, trade size, spread and level-1 size bytes.

    One byte per choice: a ``bytes`` slice (``raw[k::4]``) is then the list of table indices,
    with no per-round arithmetic.
    """
    return rnd.getrandbits(32 * count).to_bytes(4 * count, "little")


def _bridge(begin: int, end: int, steps: list[int], low: int, high: int) -> list[int]:
    """A walk by ``steps`` (a list of its own, changed here) from ``begin`` that ends on ``end``,
    inside [low, high]: the walk's miss is spread over the steps one tick at a time, evenly."""
    count = len(steps)
    if count == 0:
        return []
    drift = end - begin - sum(steps)
    if drift:
        sign, size = (1, drift) if drift > 0 else (-1, -drift)
        for j in range(1, size + 1):
            steps[(j * count - 1) // size] += sign
    steps[0] += begin
    path = list(itertools.accumulate(steps))
    if min(path) < low or max(path) > high:
        path = [low if p < low else (high if p > high else p) for p in path]
    path[-1] = end
    return path


class Contract:
    """One simulated contract: its tables, its current trading day, and its latest tick's values."""

    def __init__(self, info: InstrumentInfo, seed: int, price: float, volatility: float,
                 interval: float, depth: int, when: datetime, stamper: Stamper, always: bool) -> None:
        product = info.product
        self.info = info
        self.instrument_id = info.instrument_id
        self.product = product
        self.seed = seed
        self.exchange = product.exchange
        self.tick = product.tick
        self.decimals = product.decimals
        self.multiplier = product.multiplier
        self.limit = product.limit
        self.depth = depth
        self.stamper = stamper
        self.always = always
        self.step = timedelta(seconds=interval)
        rnd = random.Random(f"{seed}:{info.instrument_id}")
        # Tables drawn once from the seeded generator, then indexed by one random byte per round.
        self.start_price = self._on_grid(price)
        self.sigma_per_round = volatility * math.sqrt(interval / SECONDS_PER_TRADING_YEAR) * price / product.tick
        self.moves = [round(rnd.gauss(0.0, self.sigma_per_round)) for _ in range(256)]
        self.max_move = max(map(abs, self.moves)) + 2
        self.trade_sizes = [0 if rnd.random() < 0.2 else 1 + int(rnd.expovariate(1 / 12)) for _ in range(256)]
        self.mean_size = sum(self.trade_sizes) / len(self.trade_sizes)
        self.book_sizes = [1 + int(rnd.expovariate(1 / 40)) for _ in range(256)]
        self.ring = self.book_sizes + self.book_sizes[:10]  # sliceable past the end
        interest = float(20_000 + int(rnd.random() * 200_000))
        self.values = blank_values(info.instrument_id, product.exchange)
        self.make = maker(depth_class())
        self.average_rule = average_price_rule(product.exchange, product.multiplier, product.tick)
        self.lower = self.upper = self.base = 0
        self.grid: list[float] = []
        self.books: dict[int, list[Any]] = {}
        self.segment_number = -1
        self.segment: tuple[Any, ...] = ()
        schedule = first_schedule(product, when, self.step, always)
        self.day = self._begin(DayPath(self, schedule, self.start_price, self.start_price, interest))
        index = schedule.last_before(when)
        self.index = -1 if index is None else index
        self.fill(self.values, self.index)
        self.stamper.apply(self.values, schedule.moment(self.index), self.exchange)

    def _on_grid(self, price: float) -> float:
        return round(round(price / self.tick) * self.tick, self.decimals)

    def price_of(self, steps: int) -> float:
        return round(steps * self.tick, self.decimals)

    def average(self, turnover: float, volume: int) -> float:
        return self.average_rule(turnover, volume)

    def _begin(self, day: DayPath) -> DayPath:
        self.lower, self.upper = day.lower, day.upper
        self.books = {}
        self.segment_number = -1
        self.next_at: datetime | None = None  # the market time of the round after the last run, and its index
        self.next_index = 0
        self._window((day.lower + day.upper) // 2)
        return day

    # -- the price grid and the book -------------------------------------------------------------

    def _window(self, px: int, needed: int = 0) -> None:
        """Tabulate the prices around ``px`` (indexed by ticks - ``base``) so the tick path does
        no rounding.  The table holds the part of the band the day has used (at least ``WINDOW``
        ticks), never the whole band in advance: work and memory do not grow with price / tick."""
        width = min(self.upper - self.lower + 1, max(WINDOW, 32 * self.max_move, 2 * needed))
        base = min(max(px - width // 2, self.lower), self.upper + 1 - width)
        self.base = base
        self.grid = [round(n * self.tick, self.decimals) for n in range(base, base + width)]

    def cover(self, low: int, high: int) -> None:
        """Make the table hold ``low``..``high`` (the day's range so far)."""
        if low - 8 < self.base or high + 8 >= self.base + len(self.grid):
            self._window((low + high) // 2, high - low + 32)

    def book(self, key: int) -> list[Any]:
        """The 20 book members (BidPrice1 ... AskVolume5) for key ``bid << 1 | (spread - 1)``."""
        return self.books.get(key) or self._book(key)

    def _book(self, key: int) -> list[Any]:
        px, spread = key >> 1, (key & 1) + 1
        grid, base, lower, upper, sizes = self.grid, self.base, self.lower, self.upper, self.ring
        price = self.price_of
        seed = (px * 31) & 255
        book: list[Any] = [0] * 20
        if (self.depth == 5 and px - 4 >= lower and px + spread + 4 <= upper
                and px - 4 >= base and px + spread + 4 < base + len(grid)):
            # All five levels inside the band and the table: C-level slices, no per-level Python work.
            bid = px - base
            book[0::4] = grid[bid - 4:bid + 1][::-1]
            book[1::4] = sizes[seed:seed + 5]
            book[2::4] = grid[bid + spread:bid + spread + 5]
            book[3::4] = sizes[seed + 5:seed + 10]
        else:
            for level in range(5):
                bid, ask = px - level, px + spread + level
                inside_bid = level < self.depth and lower <= bid <= upper
                inside_ask = level < self.depth and lower <= ask <= upper
                book[4 * level:4 * level + 4] = (
                    price(bid) if inside_bid else DBL_MAX,
                    sizes[seed + level] if inside_bid else 0,
                    price(ask) if inside_ask else DBL_MAX,
                    sizes[seed + 5 + level] if inside_ask else 0,
                )
        if len(self.books) > 4096:
            self.books.clear()
        self.books[key] = book
        return book

    # -- segments of the day path ----------------------------------------------------------------

    def segment_at(self, number: int) -> tuple[Any, ...]:
        """Segment ``number`` of the current day (see ``build``), kept until another is asked for."""
        if number != self.segment_number:
            self.segment = self.build(number)
            self.segment_number = number
        return self.segment

    def build(self, number: int) -> tuple[Any, ...]:
        """Segment ``number`` (from 1) of the current day: per round the LastPrice, book key,
        level-1 bid size and the lots traded in the segment so far (``cumulative``, of ``total``);
        then the segment's traded volume and open-interest change, the value of one traded lot,
        and its starting Volume, OpenInterest and Turnover.  A round's Volume is
        ``start_volume + traded * cumulative // total`` and its OpenInterest likewise (the tick
        path makes them, and Turnover, AveragePrice, High and Low).  Four random bytes per round
        pick its move, trade size, spread and level-1 bid size from the contract's tables."""
        day = self.day
        rnd = random.Random(f"{self.seed}:{self.instrument_id}:{day.key}:{number}")
        count = min(day.size, day.schedule.count - (number - 1) * day.size)
        begin, end = day.prices[number - 1], day.prices[number]
        bottom, top, worth = day.ranges[number]
        raw = _draws(rnd, count)
        moves = self.moves
        if count >= 3:
            first = rnd.randrange(0, count - 2)
            second = rnd.randrange(first + 1, count - 1)
            one, two = (top, bottom) if rnd.random() < 0.5 else (bottom, top)
            steps = [moves[x] for x in raw[0::4]]
            path = (_bridge(begin, one, steps[:first + 1], bottom, top)
                    + _bridge(one, two, steps[first + 1:second + 1], bottom, top)
                    + _bridge(two, end, steps[second + 1:], bottom, top))
        else:
            path = [end] * count
        self.cover(min(day.lows[number - 1], bottom), max(day.highs[number - 1], top))
        grid, base, up, flat = self.grid, self.base, _UPTICK_KEY, _KEY
        lasts = [grid[p - base] for p in path]
        keys = [2 * p + (up if p > q else flat)[x] for p, q, x in zip(path, [begin] + path, raw[2::4])]
        sizes = self.trade_sizes
        cumulative = list(itertools.accumulate([sizes[x] for x in raw[1::4]]))
        start_volume, start_interest = day.volumes[number - 1], day.interests[number - 1]
        traded = day.volumes[number] - start_volume
        change = int(day.interests[number] - start_interest)  # whole lots: int arithmetic below
        total = cumulative[-1]
        if not total:  # no trade drawn: the segment's volume comes at its last round
            cumulative[-1] = total = 1
        book_sizes = self.book_sizes
        level_one = [book_sizes[b] for b in raw[3::4]]
        return (lasts, keys, level_one, cumulative, total, traded, change, worth, start_volume, start_interest,
                day.turnovers[number - 1])

    def fill(self, values: list[Any], index: int) -> None:
        """Set ``values`` to the state after round ``index`` (-1: the auction) (the slow path)."""
        day = self.day
        price_of = self.price_of
        count = day.schedule.count
        for name, value in (
            ("PreSettlementPrice", day.pre_settlement),
            ("PreClosePrice", day.pre_close),
            ("PreOpenInterest", day.pre_interest),
            ("UpperLimitPrice", price_of(day.upper)),
            ("LowerLimitPrice", price_of(day.lower)),
            ("OpenPrice", price_of(day.prices[0])),
            ("ClosePrice", DBL_MAX),
            ("SettlementPrice", DBL_MAX),
            ("PreDelta", 0.0),
        ):
            values[_I[name]] = value
        if index < 0:
            price = day.prices[0]
            values[_LAST] = values[_HIGH] = values[_LOW] = price_of(price)
            values[_VOLUME], values[_TURNOVER], values[_INTEREST] = day.volumes[0], day.turnovers[0], day.interests[0]
            values[_AVERAGE] = self.average(day.turnovers[0], day.volumes[0])
            values[_BOOK] = self.book(price << 1)
            return
        last = min(index, count - 1)
        number, offset = last // day.size + 1, last % day.size
        (lasts, keys, level_one, cumulative, total, traded, change, worth, start_volume, start_interest,
         start_turnover) = self.segment_at(number)
        volume = start_volume + traded * cumulative[offset] // total
        turnover = start_turnover + (volume - start_volume) * worth
        values[_LAST], values[_VOLUME], values[_TURNOVER] = lasts[offset], volume, turnover
        values[_INTEREST] = start_interest + change * cumulative[offset] // total
        values[_AVERAGE] = self.average(turnover, volume)
        so_far = lasts[:offset + 1]
        values[_HIGH] = max(price_of(day.highs[number - 1]), *so_far)
        values[_LOW] = min(price_of(day.lows[number - 1]), *so_far)
        values[_BOOK] = self.book(keys[offset])
        if values[_BID_VOLUME1]:
            values[_BID_VOLUME1] = level_one[offset]
        if index >= count - 1:
            values[_CLOSE] = values[_LAST]
            if index >= count or not day.schedule.settles_later:
                values[_SETTLEMENT] = day.settlement

    # -- the tick path ---------------------------------------------------------------------------

    def snapshot(self, resume: Resume | None = None) -> Any:
        """The latest tick (a new object); with ``resume``, after moving on to that round (the
        state a later start would show) if the contract has not reached it."""
        if resume is not None:
            at, trading_day, stamps = resume
            if trading_day > self.day.key:
                self._roll(trading_day)
            index = self.day.schedule.index(at) if trading_day == self.day.key else None
            if index is not None and index > self.index:
                values = self.values
                self.fill(values, index)
                values[_TRADING_DAY], values[_ACTION_DAY], values[_UPDATE_TIME], values[_MILLISEC] = stamps
                self.index = index
                self.next_at = None
        return make_tick(self.values)

    def _roll(self, trading_day: str) -> None:
        """Close the current day and start the following ones up to ``trading_day``."""
        while self.day.key < trading_day:
            self.day = self._begin(self.day.following())
            self.index = -2

    def run(self, rounds: Rounds) -> list[Any]:
        """Advance one snapshot interval per round and return the ticks.

        This is the tick path: each stretch of rounds inside one segment is a loop over that
        segment's lists; the auction and the day's last round are set by ``fill``.
        """
        ticks: list[Any] = []
        append = ticks.append
        values = self.values
        make = self.make
        first, after, trading_day, stamps = rounds
        if trading_day != self.day.key:
            self._roll(trading_day)
        day = self.day
        start = self.next_index if first == self.next_at else day.schedule.index(first)
        close = day.schedule.count - 1
        size = day.size
        books, book_of = self.books, self._book
        average = self.average_rule
        count = len(stamps)
        position = 0
        while position < count:
            index = start + position
            if index < 0 or index >= close:
                self.fill(values, index)
                values[_TRADING_DAY], values[_ACTION_DAY], values[_UPDATE_TIME], values[_MILLISEC] = stamps[position]
                append(make(values))
                position += 1
                continue
            number, offset = index // size + 1, index % size
            (lasts, keys, level_one, cumulative, total, traded, change, worth, start_volume, start_interest,
             start_turnover) = self.segment_at(number)
            stop = min(count, position + size - offset, close - start)
            end = offset + stop - position
            book_key = done = -1
            book: list[Any] = values[_BOOK]
            held = values[_VOLUME]
            high, low = values[_HIGH], values[_LOW]
            for (trading_day_member, action_day, update_time, millisec), last, key, one, lots in zip(
                    stamps[position:stop], lasts[offset:end], keys[offset:end], level_one[offset:end],
                    cumulative[offset:end]):
                if key != book_key:
                    book_key = key
                    book = books.get(key) or book_of(key)
                    values[_BOOK] = book
                if book[1]:
                    values[_BID_VOLUME1] = one
                values[_LAST] = last
                if lots != done:  # no trade: Volume, Turnover, AveragePrice and OpenInterest stay
                    done = lots
                    volume = start_volume + traded * lots // total
                    if volume != held:
                        held = volume
                        turnover = start_turnover + (volume - start_volume) * worth
                        values[_VOLUME] = volume
                        values[_TURNOVER] = turnover
                        values[_AVERAGE] = average(turnover, volume)
                    values[_INTEREST] = start_interest + change * lots // total
                if last > high:
                    high = values[_HIGH] = last
                elif last < low:
                    low = values[_LOW] = last
                if values[_ACTION_DAY] is not action_day:
                    values[_TRADING_DAY] = trading_day_member
                    values[_ACTION_DAY] = action_day
                values[_UPDATE_TIME] = update_time
                values[_MILLISEC] = millisec
                append(make(values))
            position = stop
        self.index = start + count - 1
        self.next_at, self.next_index = after, start + count
        return ticks
