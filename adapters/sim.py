"""``sim://``: a simulated futures market, deterministic per seed, with no network.

Every contract of a known product (any of the six exchanges' futures in
:mod:`ctpshim.ctp.products`) can be subscribed; each one follows its own random walk, seeded by
``seed`` and its instrument ID, so the same seed and start give the same ticks whatever else is
subscribed.  The ticks keep CTP's invariants: prices on the product's tick grid and inside the
limit band around the pre-settlement price; five book levels with at least one tick of spread;
cumulative Volume, Turnover (with the contract multiplier) that never decrease within a trading
day; Open/High/Low consistent with LastPrice; AveragePrice and dates as CTP reports them (via
:mod:`ctpshim.ctp.market_data`).  Open interest moves both ways, as on a real exchange.

``hours=real`` follows each product's day and night sessions and the exchange calendar (nothing
ticks at lunch, at weekends or on holidays); ``hours=always`` ticks around the clock.  At the
start of each trading day volume and turnover reset and the previous day's volume-weighted
price becomes the pre-settlement price.

Example: ``sim://?instruments=rb2605,au2606&seed=7&speed=max&start=2026-11-20T09:00``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import random
import time
from datetime import date, datetime, timedelta
from typing import Any, AsyncIterator, Iterable, Iterator

from ..ctp.calendar import (
    FIRST_DAY, LAST_DAY, NIGHT_CUTOFF, china_time, next_trading_day, now_china, previous_trading_day,
    supported, trading_day_of, yyyymmdd,
)
from ..errors import REASON_READ_FAILED, UpstreamDisconnected, UpstreamUnavailable
from ..runtime.io_loop import wait_at_most
from ..ctp.market_data import (
    AVERAGE_PRICE_ON_TICK_GRID, DATE_CONVENTIONS, DBL_MAX, Stamper, average_price, blank_values, depth_class,
    depth_index, make_tick,
)
from ..messages import listing
from ..ctp.products import (
    InstrumentInfo, Product, default_sim_instruments, listed_contracts, parse_instrument, settlement_price,
    trading_day_sessions,
)
from ..fronts.url import Setting, boolean, choice, id_list, integer, number, speed
from .base import Adapter, Capabilities

log = logging.getLogger("ctpshim.sim")

SECONDS_PER_TRADING_YEAR = 250 * 4 * 3600  # for turning annual volatility into a per-step move
MAX_BATCH = 256  # at speed=max, rounds are grouped into batches of about this many ticks
SEGMENT = timedelta(minutes=5)  # session time between two knots of a day's coarse path
AUCTION_LEAD = timedelta(minutes=1)  # the opening auction's snapshot: 20:59, 08:59, CFFEX 09:29
CFFEX_SETTLEMENT_DELAY = timedelta(minutes=30)  # CFFEX publishes its settlement after the close
MARKET_END = datetime(LAST_DAY.year, LAST_DAY.month, LAST_DAY.day, 23, 59, 59)
WINDOW = 4096  # prices tabulated around the current one (at least; more for large moves)
_new = list.__new__
_extend = list.extend
_LEVEL_NAMES = [(f"BidPrice{i}", f"BidVolume{i}", f"AskPrice{i}", f"AskVolume{i}") for i in range(1, 6)]


def _start_time(text: str) -> datetime:
    """China time; a time with a zone (``Z``, ``+00:00``) is converted to China time."""
    try:
        moment = datetime.fromisoformat(text.strip().replace(" ", "T"))
    except ValueError:
        raise ValueError("expected a China-time date and time like 2026-11-20T09:00 or 2026-11-20T21:00:30") from None
    try:
        moment = china_time(moment)
    except OverflowError:
        moment = datetime.max
    if not supported(moment):
        raise ValueError(f"expected a moment from {FIRST_DAY}T00:00 to {LAST_DAY}T23:59:59 (the calendar's range)")
    return moment


def _prices(text: str) -> dict[str, float]:
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


def _interval(text: str) -> float:
    """Seconds between snapshots: whole hundredths that divide a minute, so every session (they
    start on whole minutes) starts on the snapshot grid."""
    value = _interval_range(text)
    hundredths = round(value * 100)
    if abs(value * 100 - hundredths) > 1e-6 or 6000 % hundredths:
        raise ValueError("expected seconds that divide a minute, from 0.01 to 60 (0.1, 0.25, 0.5, 1, 2, 5, 15 ...)")
    return hundredths / 100


def _instrument_ids(text: str) -> tuple[str, ...]:
    ids = id_list(text)
    unknown = [i for i in ids if parse_instrument(i) is None]
    if unknown:
        raise ValueError(
            f"{', '.join(unknown)} not a futures contract the simulator knows; write IDs as CTP does: "
            "rb2605 (SHFE/INE/DCE/GFEX: lower case + YYMM), TA605 (CZCE: upper case + YMM), IF2606 (CFFEX)"
        )
    return ids


def _listing_problem(info: InstrumentInfo | None, day: date) -> str | None:
    """Why ``info`` is not a contract the exchange lists on trading day ``day``, or None."""
    if info is None:
        return None
    if info.listed_on(day):
        return None
    when = "expired" if day > info.expire_date else "not yet listed"
    return (f"{info.instrument_id} is {when} on {day} (listed {info.open_date} to {info.expire_date}; "
            f"listed then: {listing(i.instrument_id for i in listed_contracts(info.product, day))})")


_I = depth_index()
_LAST, _VOLUME, _TURNOVER, _INTEREST = _I["LastPrice"], _I["Volume"], _I["Turnover"], _I["OpenInterest"]
_OPEN, _HIGH, _LOW, _AVERAGE = _I["OpenPrice"], _I["HighestPrice"], _I["LowestPrice"], _I["AveragePrice"]
_TRADING_DAY, _ACTION_DAY, _BID_VOLUME1 = _I["TradingDay"], _I["ActionDay"], _I["BidVolume1"]
_CLOCK = slice(_I["UpdateTime"], _I["UpdateMillisec"] + 1)
_BOOK = slice(_I["BidPrice1"], _I["AskVolume5"] + 1)
if [n for n in list(_I)[_BOOK]] != [n for level in _LEVEL_NAMES for n in level]:
    raise AssertionError("the book members of CThostFtdcDepthMarketDataField are not contiguous")


class _Schedule:
    """The moments one contract ticks on one trading day, on the market's snapshot grid.

    ``windows`` holds (first, last, index of first) per run of rounds: the opening auction's
    single round (index -1, a minute before the first session), each session's rounds from one
    interval after its start to its end inclusive (indices 0 to ``count - 1``, as real fronts
    stamp them: 09:00:00.500 ... 10:15:00.000), and for CFFEX the post-close settlement
    snapshot (index ``count``).  ``hours=always`` has one run from 17:00 of the previous trading
    day and no auction.
    """

    __slots__ = ("day", "step", "windows", "count", "hour_rounds")

    def __init__(self, product: Product, day: date, step: timedelta, always: bool) -> None:
        self.day = day
        self.step = step
        self.windows: list[tuple[datetime, datetime, int]] = []
        self.hour_rounds = int(timedelta(hours=1) / step)
        if always:
            begin = datetime.combine(previous_trading_day(day), NIGHT_CUTOFF)
            self.count = int((datetime.combine(day, NIGHT_CUTOFF) - begin) / step)
            self.windows.append((begin, begin + step * (self.count - 1), 0))
            return
        sessions = trading_day_sessions(product, day)
        index = 0
        if sessions:
            auction = sessions[0][0] - AUCTION_LEAD
            self.windows.append((auction, auction, -1))
        for start, end in sessions:
            rounds = int((end - start) / step)
            self.windows.append((start + step, start + step * rounds, index))
            index += rounds
        self.count = index
        if sessions and product.exchange == "CFFEX":
            published = sessions[-1][1] + CFFEX_SETTLEMENT_DELAY
            self.windows.append((published, published, index))

    def index(self, moment: datetime) -> int | None:
        for first, last, index in self.windows:
            if first <= moment <= last:
                return index + (moment - first) // self.step
        return None

    def moment(self, index: int) -> datetime:
        for first, last, start in reversed(self.windows):
            if index >= start:
                return first + self.step * (index - start)
        return self.windows[0][0]

    def last_before(self, moment: datetime) -> int | None:
        """The index of the last round before ``moment``, or None if none is."""
        found = None
        for first, last, index in self.windows:
            if first >= moment:
                break
            found = index + (min(moment - self.step / 2, last) - first) // self.step
        return found


class _Day:
    """One trading day of one contract: its coarse path, from which every round is made.

    The path has a knot every ``SEGMENT`` of session time, drawn from the seed, the contract and
    the date alone: price, cumulative volume, turnover and open interest, and the day's high and
    low.  A round's values come from its segment, a bridge between two knots that touches the
    segment's high and low; so the state at any moment costs one pass over the knots plus one
    segment, and a later start shows the same market.  Within a segment every trade is valued at
    the segment's average price (between its low and high), so Turnover / Volume stays in
    [LowestPrice, HighestPrice].
    """

    def __init__(self, state: "_Instrument", schedule: _Schedule, pre_settlement: float, pre_close: float,
                 pre_interest: float) -> None:
        self.state = state
        self.schedule = schedule
        self.key = yyyymmdd(schedule.day)
        self.pre_settlement = pre_settlement
        self.pre_close = pre_close
        self.pre_interest = pre_interest
        self.size = max(1, int(SEGMENT / schedule.step))
        tick = state.tick
        steps = round(pre_settlement / tick)
        self.upper = math.floor(steps * (1 + state.limit))
        self.lower = math.ceil(steps * (1 - state.limit))
        rnd = random.Random(f"{state.seed}:{state.info.instrument_id}:{self.key}")
        lower, upper = self.lower, self.upper
        sigma = state.sigma_per_round * math.sqrt(self.size) * pre_settlement / state.start_price
        rate = state.mean_size * self.size
        clamp = lambda n: lower if n < lower else (upper if n > upper else n)  # noqa: E731
        price = clamp(round(pre_close / tick) + round(rnd.gauss(0.0, 2 * sigma)))
        volume = 1 + int(rate * rnd.random())  # the auction's volume
        value = tick * state.multiplier
        self.prices, self.volumes = [price], [volume]
        self.turnovers, self.interests = [volume * price * value], [max(0.0, pre_interest + volume // 3)]
        self.highs, self.lows, self.ranges = [price], [price], [(price, price, price * value)]
        high = low = price
        for _ in range(-(-schedule.count // self.size)):
            start = price
            price = clamp(start + round(rnd.gauss(0.0, sigma)))
            top = clamp(max(start, price) + round(abs(rnd.gauss(0.0, sigma / 2))))
            bottom = clamp(min(start, price) - round(abs(rnd.gauss(0.0, sigma / 2))))
            traded = int(rate * (0.3 + 1.4 * rnd.random()))
            # Inside the range the day had before this segment, so every snapshot's Turnover / Volume
            # stays inside [LowestPrice, HighestPrice] as they widen during the segment.
            worth = min(max((start + price + top + bottom) / 4, low), high) * value  # of one traded lot
            volume += traded
            self.prices.append(price)
            self.volumes.append(volume)
            self.turnovers.append(self.turnovers[-1] + traded * worth)
            self.interests.append(max(0.0, self.interests[-1] + round(traded * rnd.gauss(0.0, 0.08))))
            high, low = max(high, top), min(low, bottom)
            self.highs.append(high)
            self.lows.append(low)
            self.ranges.append((bottom, top, worth))
        self.segment_number = -1
        self.segment: tuple[list[Any], ...] = ()

    @property
    def close_price(self) -> float:
        return self.state.price_of(self.prices[-1])

    @property
    def settlement(self) -> float:
        """By the exchange's rule (``ctpshim.ctp.products.settlement_price``)."""
        schedule = self.schedule
        start = 0
        if self.state.exchange == "CFFEX" and schedule.count > schedule.hour_rounds:
            start = (schedule.count - schedule.hour_rounds) // self.size
        volume = self.volumes[-1] - (self.volumes[start] if start else 0)
        turnover = self.turnovers[-1] - (self.turnovers[start] if start else 0.0)
        product = self.state.info.product
        return settlement_price(product, turnover, volume, self.pre_settlement)

    def build(self, number: int) -> tuple[Any, ...]:
        """Segment ``number`` (from 1): per round the LastPrice, book key, level-1 bid size,
        Volume and OpenInterest; then the value of one traded lot and the segment's starting
        Volume and Turnover (the tick path makes Turnover, AveragePrice, High and Low)."""
        state = self.state
        rnd = random.Random(f"{state.seed}:{state.info.instrument_id}:{self.key}:{number}")
        count = min(self.size, self.schedule.count - (number - 1) * self.size)
        begin, end = self.prices[number - 1], self.prices[number]
        bottom, top, worth = self.ranges[number]
        draw = rnd.getrandbits
        bits = [draw(32) for _ in range(count)]
        moves = state.moves
        if count >= 3:
            first = rnd.randrange(0, count - 2)
            second = rnd.randrange(first + 1, count - 1)
            one, two = (top, bottom) if rnd.random() < 0.5 else (bottom, top)
            path = (_bridge(begin, one, bits[:first + 1], moves, bottom, top)
                    + _bridge(one, two, bits[first + 1:second + 1], moves, bottom, top)
                    + _bridge(two, end, bits[second + 1:], moves, bottom, top))
        else:
            path = [end] * count
        state.cover(min(self.lows[number - 1], bottom), max(self.highs[number - 1], top))
        grid, base, up, flat = state.grid, state.base, _UPTICK_KEY, _KEY
        lasts = [grid[p - base] for p in path]
        keys = [2 * p + (up if p > q else flat)[b >> 20 & 127] for p, q, b in zip(path, [begin] + path, bits)]
        sizes = state.trade_sizes
        raw = list(itertools.accumulate([sizes[b >> 10 & 255] for b in bits]))
        start_volume, start_interest = self.volumes[number - 1], self.interests[number - 1]
        traded = self.volumes[number] - start_volume
        change = self.interests[number] - start_interest
        total = raw[-1]
        if total:
            volumes = [start_volume + traded * r // total for r in raw]
            interests = [start_interest + change * r // total for r in raw]
        else:
            volumes = [start_volume] * (count - 1) + [start_volume + traded]
            interests = [start_interest] * (count - 1) + [start_interest + change]
        book_sizes = state.book_sizes
        level_one = [book_sizes[b >> 24] for b in bits]
        return lasts, keys, level_one, volumes, interests, worth, start_volume, self.turnovers[number - 1]

    def fill(self, values: list[Any], index: int) -> None:
        """Set ``values`` to the state after round ``index`` (-1: the auction) (the slow path)."""
        state = self.state
        price_of = state.price_of
        count = self.schedule.count
        for name, value in (
            ("PreSettlementPrice", self.pre_settlement),
            ("PreClosePrice", self.pre_close),
            ("PreOpenInterest", self.pre_interest),
            ("UpperLimitPrice", price_of(self.upper)),
            ("LowerLimitPrice", price_of(self.lower)),
            ("OpenPrice", price_of(self.prices[0])),
            ("ClosePrice", DBL_MAX),
            ("SettlementPrice", DBL_MAX),
            ("PreDelta", 0.0),
        ):
            values[_I[name]] = value
        if index < 0:
            price = self.prices[0]
            values[_LAST] = values[_HIGH] = values[_LOW] = price_of(price)
            values[_VOLUME], values[_TURNOVER], values[_INTEREST] = self.volumes[0], self.turnovers[0], self.interests[0]
            values[_AVERAGE] = state.average(self.turnovers[0], self.volumes[0])
            values[_BOOK] = state.book(price << 1)
            return
        last = min(index, count - 1)
        number, offset = last // self.size + 1, last % self.size
        lasts, keys, level_one, volumes, interests, worth, start_volume, start_turnover = self.segment_at(number)
        volume = volumes[offset]
        turnover = start_turnover + (volume - start_volume) * worth
        values[_LAST], values[_VOLUME], values[_TURNOVER] = lasts[offset], volume, turnover
        values[_INTEREST], values[_AVERAGE] = interests[offset], state.average(turnover, volume)
        so_far = lasts[:offset + 1]
        values[_HIGH] = max(price_of(self.highs[number - 1]), *so_far)
        values[_LOW] = min(price_of(self.lows[number - 1]), *so_far)
        values[_BOOK] = state.book(keys[offset])
        if values[_BID_VOLUME1]:
            values[_BID_VOLUME1] = level_one[offset]
        if index >= count - 1:
            values[_I["ClosePrice"]] = values[_LAST]
            if index >= count or state.exchange != "CFFEX" or state.always:
                values[_I["SettlementPrice"]] = self.settlement

    def segment_at(self, number: int) -> tuple[list[Any], ...]:
        if number != self.segment_number:
            self.segment = self.build(number)
            self.segment_number = number
        return self.segment


def _bridge(begin: int, end: int, bits: list[int], moves: list[int], low: int, high: int) -> list[int]:
    """A walk of ``len(bits)`` steps from ``begin`` that ends on ``end``, inside [low, high]."""
    count = len(bits)
    if count == 0:
        return []
    walk = list(itertools.accumulate([moves[b & 1023] for b in bits]))
    drift = end - begin - walk[-1]
    path = [low if (p := begin + w + drift * i // count) < low else (high if p > high else p)
            for i, w in enumerate(walk, 1)]
    path[-1] = end
    return path


# Book keys (``bid << 1 | (spread - 1)``) around a LastPrice of p ticks are 2p + these, by bits
# 20-26 of the round's draw (the spread: two ticks one time in ten): an uptick traded at the ask, so
# the bid is a spread below; otherwise at the bid.
_SPREADS = [2 if x < 13 else 1 for x in range(128)]
_UPTICK_KEY = [-spread - 1 for spread in _SPREADS]
_KEY = [spread - 1 for spread in _SPREADS]


class _Instrument:
    """One simulated contract: its tables, its trading days, and a tick's value list.

    Created and planned on the IO thread (``trades_at``: the schedule only); advanced on the
    dispatcher thread (``run``).
    """

    def __init__(self, info: InstrumentInfo, seed: int, price: float, volatility: float,
                 interval: float, depth: int, when: datetime, stamper: Stamper, always: bool) -> None:
        product = info.product
        self.info = info
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
        # Tables drawn once from the seeded generator, then indexed by one uniform draw per round.
        self.start_price = self._on_grid(price)
        self.sigma_per_round = volatility * math.sqrt(interval / SECONDS_PER_TRADING_YEAR) * price / product.tick
        self.moves = [round(rnd.gauss(0.0, self.sigma_per_round)) for _ in range(1024)]
        self.max_move = max(map(abs, self.moves)) + 2
        self.trade_sizes = [0 if rnd.random() < 0.2 else 1 + int(rnd.expovariate(1 / 12)) for _ in range(256)]
        self.mean_size = sum(self.trade_sizes) / len(self.trade_sizes)
        self.book_sizes = [1 + int(rnd.expovariate(1 / 40)) for _ in range(256)]
        self.ring = self.book_sizes + self.book_sizes[:10]  # sliceable past the end
        interest = float(20_000 + int(rnd.random() * 200_000))
        self.values = blank_values(info.instrument_id, product.exchange)
        self.schedules: dict[date, _Schedule] = {}  # the planner's (IO thread)
        self.open_until = datetime.min  # market time up to which the current run of rounds lasts
        self.closed_until = datetime.min  # market time up to which the contract is known not to tick
        self.expired = False
        day = trading_day_of(when)
        schedule = _Schedule(product, day, self.step, always)
        if not schedule.windows or schedule.windows[0][0] >= when:
            schedule = _Schedule(product, previous_trading_day(day), self.step, always)
        self.lower = self.upper = self.base = 0
        self.grid: list[float] = []
        self.day = self._start(schedule, self.start_price, self.start_price, interest)
        index = schedule.last_before(when)
        self.index = -1 if index is None else index
        self.day.fill(self.values, self.index)
        self.stamper.apply(self.values, schedule.moment(self.index), self.exchange)

    def _on_grid(self, price: float) -> float:
        return round(round(price / self.tick) * self.tick, self.decimals)

    def price_of(self, steps: int) -> float:
        return round(steps * self.tick, self.decimals)

    def _start(self, schedule: _Schedule, pre_settlement: float, pre_close: float, interest: float) -> _Day:
        day = _Day(self, schedule, pre_settlement, pre_close, interest)
        self.lower, self.upper = day.lower, day.upper
        self.books: dict[int, list[Any]] = {}
        self._window((day.lower + day.upper) // 2)
        return day

    def average(self, turnover: float, volume: int) -> float:
        return average_price(self.exchange, turnover, volume, self.multiplier, self.tick)

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
        return self.books.get(key) or self._book(key)

    def _book(self, key: int) -> list[Any]:
        """The 20 book members for key ``bid << 1 | (spread - 1)`` (cached per trading day)."""
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

    def snapshot(self) -> Any:
        return make_tick(self.values)

    # -- the planner's side (IO thread): when the contract ticks ---------------------------------

    def _schedule(self, day: date) -> _Schedule:
        schedule = self.schedules.get(day)
        if schedule is None:
            if len(self.schedules) > 64:
                self.schedules.clear()
            schedule = self.schedules[day] = _Schedule(self.info.product, day, self.step, self.always)
        return schedule

    def trades_at(self, when: datetime) -> bool:
        """Whether a round at ``when`` ticks; sets ``open_until`` (exclusive end of this run of
        rounds) or ``closed_until`` (the next round), or ``expired``."""
        if when < self.open_until:
            return True
        if when < self.closed_until:
            return False
        day = trading_day_of(when)
        for offset in range(40):
            if day > self.info.expire_date:
                self.expired = True
                self.closed_until = MARKET_END
                return False
            for first, last, _ in self._schedule(day).windows:
                if first <= when <= last:
                    self.open_until = last + self.step
                    return True
                if first > when:
                    self.closed_until = first
                    return False
            day = next_trading_day(day)
        self.closed_until = MARKET_END
        return False

    # -- the dispatcher's side: making the ticks -------------------------------------------------

    def _roll(self, trading_day: str) -> None:
        """Close the current day and start the following ones up to ``trading_day``."""
        while self.day.key < trading_day:
            old = self.day
            following = next_trading_day(old.schedule.day)
            self.day = self._start(_Schedule(self.info.product, following, self.step, self.always),
                                   old.settlement, old.close_price, old.interests[-1])
            self.index = -2

    def run(self, rounds: list[tuple[datetime, tuple[str, str, list[Any]], str]]) -> list[Any]:
        """Advance one snapshot interval per round and return the ticks.

        ``rounds`` holds (market time, (TradingDay, ActionDay, [UpdateTime, UpdateMillisec]),
        trading day) per round, consecutive rounds of one run of this contract's schedule.  This
        is the tick path: the values come from the current segment's lists.
        """
        ticks: list[Any] = []
        append = ticks.append
        values = self.values
        new, extend, tick_class = _new, _extend, depth_class()
        first = rounds[0]
        if first[2] != self.day.key:
            self._roll(first[2])
        day = self.day
        index = day.schedule.index(first[0])
        close = day.schedule.count - 1
        books, book_of = self.books, self._book
        size = day.size
        on_grid = self.exchange in AVERAGE_PRICE_ON_TICK_GRID
        per_tick, tick, decimals = self.tick * self.multiplier, self.tick, self.decimals
        number = offset = -1
        lasts = keys = level_one = volumes = interests = []
        worth = start_turnover = 0.0
        start_volume = 0
        book_key = -1
        book: list[Any] = values[_BOOK]
        for when, (trading_day_member, action_day, clock), trading_day in rounds:
            if index < 0 or index >= close:
                day.fill(values, index)
                book_key = number = -1
            else:
                if number < 0 or offset >= size:
                    number, offset = index // size + 1, index % size
                    lasts, keys, level_one, volumes, interests, worth, start_volume, start_turnover = (
                        day.segment_at(number))
                key = keys[offset]
                if key != book_key:
                    book_key = key
                    book = books.get(key) or book_of(key)
                    values[_BOOK] = book
                if book[1]:
                    values[_BID_VOLUME1] = level_one[offset]
                last = lasts[offset]
                volume = volumes[offset]
                turnover = start_turnover + (volume - start_volume) * worth
                values[_LAST] = last
                values[_VOLUME] = volume
                values[_TURNOVER] = turnover
                values[_INTEREST] = interests[offset]
                # ctpshim.ctp.market_data.average_price, inlined: this is the tick path.
                values[_AVERAGE] = (round(round(turnover / volume / per_tick) * tick, decimals) if on_grid
                                    else turnover / volume)
                if last > values[_HIGH]:
                    values[_HIGH] = last
                elif last < values[_LOW]:
                    values[_LOW] = last
                offset += 1
            index += 1
            if values[_ACTION_DAY] is not action_day:
                values[_TRADING_DAY] = trading_day_member
                values[_ACTION_DAY] = action_day
            values[_CLOCK] = clock
            obj = new(tick_class)
            extend(obj, values)
            append(obj)
        self.index = index - 1
        return ticks


class _Block:
    """A block of rounds whose ticks are made when it is iterated: on the dispatcher thread, just
    before their callbacks (see ``Adapter.ticks``), once, in queue order.

    The random walks thus run on the thread that delivers and frees the ticks: made on the IO
    thread instead, each tick's objects crossed between the cores, and the two threads took turns
    at the interpreter lock (recording sim:// at speed=max is about a quarter faster this way).
    It also means an ``_Instrument`` is only ever advanced on that one thread.

    ``work`` holds, per contract, its state and the rounds to run, or None for its current
    snapshot; the ticks come round by round, contracts in ``work`` order.
    """

    __slots__ = ("work", "size")

    def __init__(self, work: list[tuple[_Instrument, list[Any] | None]], size: int) -> None:
        self.work = work
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[Any]:
        per_contract = [state.run(rounds) if rounds is not None else [state.snapshot()] for state, rounds in self.work]
        if len(per_contract) == 1:
            return iter(per_contract[0])
        return itertools.chain.from_iterable(zip(*per_contract))


class SimAdapter(Adapter):
    """The simulated market (see the module docstring)."""

    scheme = "sim"
    settings = (
        Setting("instruments", _instrument_ids, None,
                "comma-separated contracts the market lists; default: a dozen liquid ones across the six exchanges"),
        Setting("seed", integer(0, 2**63 - 1), 1, "random seed; the same seed and start give the same ticks"),
        Setting("interval", _interval, 0.5,
                "seconds of market time between snapshots of a contract (CTP: 0.5), dividing a minute, 0.01 to 60"),
        Setting("speed", speed, 1.0, "1 = real time, N = N times faster, max = as fast as possible"),
        Setting("start", _start_time, None,
                "market time at connect, China time, e.g. 2026-11-20T09:00, from 2004-01-01 to 2099-12-31 "
                "(a time with a zone, 2026-11-20T01:00Z, is converted); default now"),
        Setting("price", _prices, {},
                "starting pre-settlement price on the product's tick grid, from 5 ticks of daily band to 10x the "
                "product's typical level: one number, or ID:price pairs"),
        Setting("volatility", number(0, 10), 0.25, "annualised volatility of the random walk"),
        Setting("hours", choice("real", "always"), "real", "real: each product's sessions and holidays; always: 7x24"),
        Setting("dates", choice(*DATE_CONVENTIONS), "correct", "correct (SimNow-style) or exchange (DCE/CZCE quirks)"),
        Setting("depth", integer(1, 5), 5, "book levels filled, 1 to 5"),
        Setting("disconnect_after", integer(1, 10**12), None, "drop the connection after N ticks, to test reconnect handling"),
        Setting("refuse", boolean, False, "refuse to connect, like a front that is down (to test failover)"),
    )
    capabilities = Capabilities(depth_levels=5, deterministic=True, has_instruments=True)

    @classmethod
    def check(cls, url: Any, settings: dict[str, Any]) -> None:
        if url.host or url.port is not None or url.path not in ("", "/"):
            where = url.raw.split("://", 1)[1].split("?", 1)[0]
            raise ValueError(
                f"sim:// takes no host or path (got {where!r}); settings go after '?', e.g. sim://?seed=7"
            )
        start = settings["start"] or now_china()
        listed = settings["instruments"] or default_sim_instruments(start.date())
        day = trading_day_of(start)
        for instrument_id in settings["instruments"] or ():
            problem = _listing_problem(parse_instrument(instrument_id, start.date()), day)
            if problem:
                raise ValueError(f"instruments: {problem}")
        prices = settings["price"]
        for key, price in prices.items():
            ids = listed if key == "*" else (key,)
            for instrument_id in ids:
                info = parse_instrument(instrument_id, start.date())
                if info is None:
                    raise ValueError(f"price for {instrument_id!r}: not a futures contract the simulator knows")
                problem = info.product.price_problem(price)
                if problem is not None:
                    raise ValueError(f"price for {instrument_id}: {problem}")

    def __init__(self, url: Any, settings: dict[str, Any]) -> None:
        super().__init__(url, settings)
        self.stamper = Stamper(settings["dates"])
        self.speed: float = settings["speed"]
        self.interval: float = settings["interval"]
        self.always = settings["hours"] == "always"
        self._start = settings["start"] or now_china()
        self._wall_start = time.monotonic()
        self._clock = self._align(self._start)  # market time of the next round
        self._states: dict[str, _Instrument] = {}
        self._active: dict[str, _Instrument] = {}
        self._snapshots: list[_Instrument] = []  # whose snapshot is due, in subscription order
        self._wake = asyncio.Event()
        self._warned: set[str] = set()
        self._sent = 0

    def _align(self, moment: datetime) -> datetime:
        step = int(self.interval * 1_000_000)
        micros = moment.hour * 3_600_000_000 + moment.minute * 60_000_000 + moment.second * 1_000_000 + moment.microsecond
        remainder = micros % step if step else 0
        return moment if remainder == 0 else moment + timedelta(microseconds=step - remainder)

    def market_now(self) -> datetime:
        """The simulated market's current time (never past the calendar's range)."""
        if math.isinf(self.speed):
            return min(self._clock, MARKET_END)
        elapsed = min((time.monotonic() - self._wall_start) * self.speed, (MARKET_END - self._start).total_seconds())
        return self._start + timedelta(seconds=elapsed)

    # -- the contract ---------------------------------------------------------------------------

    async def connect(self) -> None:
        if self.config["refuse"]:
            raise UpstreamUnavailable(f"{self.url.raw}: connection refused (refuse=true)")

    def instruments(self) -> list[InstrumentInfo]:
        now = self.market_now()
        ids = self.config["instruments"] or default_sim_instruments(now.date())
        day = trading_day_of(now)
        infos = [parse_instrument(i, now.date()) for i in ids]
        return [info for info in infos if info is not None and info.listed_on(day)]

    def trading_day(self) -> str:
        return yyyymmdd(trading_day_of(self.market_now()))

    async def subscribe(self, ids: Iterable[str]) -> None:
        if not math.isinf(self.speed) and self._clock > self.market_now():
            # The clock may have jumped to the next open while nothing traded; a new contract
            # may trade now.
            self._clock = self._align(self.market_now())
        unknown, unlisted = [], []
        now = self._clock
        day = trading_day_of(now)
        for instrument_id in ids:
            info = parse_instrument(instrument_id, now.date())
            problem = _listing_problem(info, day) if info is not None else None
            if info is None or problem:
                if instrument_id not in self._warned:
                    (unlisted if problem else unknown).append(problem or instrument_id)
                    self._warned.add(instrument_id)
                continue
            state = self._states.get(instrument_id)
            if state is None:
                price = self._starting_price(info)
                state = _Instrument(info, self.config["seed"], price, self.config["volatility"],
                                    self.interval, self.config["depth"], self._clock, self.stamper, self.always)
                self._states[instrument_id] = state
            self._active[instrument_id] = state
            self._snapshots.append(state)
        if unknown:
            log.warning(
                "sim: %s not a contract the simulator knows (subscription accepted as CTP does; no ticks will come)",
                listing(unknown),
            )
        if unlisted:
            log.warning("sim: not listed on this trading day, so unknown, as on a real front (subscription "
                        "accepted; no ticks will come): %s", listing(unlisted, 5))
        self._wake.set()

    def _starting_price(self, info: InstrumentInfo) -> float:
        """The ``price`` setting for this contract (checked at RegisterFront), else its product's level.

        A bare ``price`` is checked against the listed contracts; a contract subscribed beyond
        them whose product cannot take it starts at its product's level, with a warning.
        """
        prices = self.config["price"]
        price = prices.get(info.instrument_id)
        if price is not None:
            return price
        price = prices.get("*")
        if price is None:
            return info.product.price
        problem = info.product.price_problem(price)
        if problem is None:
            return price
        log.warning("sim: %s starts at %s's typical price %g: %s", info.instrument_id, info.product.code,
                    info.product.price, problem)
        return info.product.price

    async def unsubscribe(self, ids: Iterable[str]) -> None:
        for instrument_id in ids:
            self._active.pop(instrument_id, None)

    async def ticks(self) -> AsyncIterator[list[Any]]:
        limit = self.config["disconnect_after"]
        max_speed = math.isinf(self.speed)
        while True:
            if self._clock >= MARKET_END:
                log.warning("sim: the market clock reached %s, the end of the calendar's range; no more ticks", MARKET_END)
                return
            if self._snapshots:
                states, self._snapshots = self._snapshots, []
                yield _Block([(state, None) for state in states], len(states))
                continue
            if not self._active:
                await self._sleep(None)
                continue
            if not max_speed:
                ahead = (self._clock - self.market_now()).total_seconds()
                if ahead > 0:
                    await self._sleep(ahead / self.speed)
                    continue
                if ahead < -5 * self.interval:  # fell behind (a slow consumer): skip to now
                    self._clock = self._align(self.market_now())
            batch = self._rounds(MAX_BATCH)
            if batch:
                self._sent += len(batch)
                if limit is not None and self._sent >= limit:
                    raise UpstreamDisconnected(
                        f"sim: simulated disconnect after {self._sent} ticks (disconnect_after={limit})",
                        REASON_READ_FAILED,
                    )
                yield batch

    async def _sleep(self, seconds: float | None) -> None:
        """Sleep up to ``seconds`` (forever if None), waking early on a subscription change."""
        self._wake.clear()
        if seconds is None:
            await self._wake.wait()
        else:
            await wait_at_most(self._wake, min(seconds, 1.0))

    def _rounds(self, target: int) -> "_Block | list[Any]":
        """Plan a block of rounds (about ``target`` ticks at speed=max, one round otherwise).

        A block never crosses a session boundary of any active contract, so within it each
        contract either ticks every round or not at all.  When every contract is closed the
        market clock jumps to the next open.
        """
        active = list(self._active.values())
        step = timedelta(seconds=self.interval)
        when = self._clock
        count = max(1, target // len(active)) if math.isinf(self.speed) else 1
        horizon = min(when + step * count, MARKET_END)
        trading = []
        for state in active:
            if state.trades_at(when):
                trading.append(state)
                horizon = min(horizon, state.open_until)
            else:
                horizon = min(horizon, state.closed_until)
        expired = [state.info.instrument_id for state in active if state.expired]
        if expired:
            log.warning("sim: %s expired (past the last trading day); no more ticks", listing(expired))
            for instrument_id in expired:
                self._active.pop(instrument_id, None)
            if not self._active:
                return []
        if not trading:
            self._clock = min(self._align(min(state.closed_until for state in active)), MARKET_END)
            return []
        count = max(1, min(count, math.ceil((horizon - when) / step)))
        times = [when + step * k for k in range(count)]
        self._clock = when + step * count
        blocks: dict[str, list[Any]] = {}
        work: list[tuple[_Instrument, list[Any] | None]] = []
        for state in trading:
            # Exchanges share their stamps unless the date convention treats them differently.
            key = state.exchange if self.stamper.convention == "exchange" else ""
            rounds = blocks.get(key)
            if rounds is None:
                rounds = blocks[key] = [self._stamp(moment, state.exchange) for moment in times]
            work.append((state, rounds))
        return _Block(work, count * len(work))

    def _stamp(self, moment: datetime, exchange_id: str) -> tuple[datetime, tuple[str, str, list[Any]], str]:
        trading, action, clock, true_day = self.stamper.stamps(moment, exchange_id)
        return moment, (trading, action, [clock, self.stamper.millisec(moment, exchange_id)]), true_day
