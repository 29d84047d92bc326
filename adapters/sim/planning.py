"""sim:// clock and planning: when each contract ticks, and the coarse shape of its day.

- :class:`MarketClock`: the simulated market's time, paced at ``speed`` against the monotonic
  clock (or jumping ahead as fast as the consumer takes rounds at ``speed=max``), on the
  snapshot grid of ``interval``.
- :class:`Schedule`: the rounds one contract ticks on one trading day: the opening auction, the
  sessions' rounds stamped as real fronts stamp them, CFFEX's settlement snapshot.
- :class:`Openings`: the planner's view of one contract on the IO thread: whether a round at a
  moment ticks, and until when that stays so (runs of rounds never cross a session boundary).
- :class:`DayPath`: one trading day of one contract drawn coarsely, a knot every ``SEGMENT`` of
  session time (price, cumulative volume, turnover, open interest, the day's range); the market
  model (:mod:`.model`) bridges the knots round by round.

Imports only the CTP domain (a day path reads its contract's terms through :class:`ContractTerms`);
the model and the adapter import this module.
"""

from __future__ import annotations

import math
import random
import time
from datetime import date, datetime, timedelta
from typing import Protocol

from ...ctp.calendar import LAST_DAY, NIGHT_CUTOFF, next_trading_day, previous_trading_day, trading_day_of, yyyymmdd
from ...ctp.products import Product, price_limits, settlement_price, trading_day_sessions

SEGMENT = timedelta(minutes=5)  # session time between two knots of a day's coarse path
AUCTION_LEAD = timedelta(minutes=1)  # the opening auction's snapshot: 20:59, 08:59, CFFEX 09:29
CFFEX_SETTLEMENT_DELAY = timedelta(minutes=30)  # CFFEX publishes its settlement after the close
MARKET_END = datetime(LAST_DAY.year, LAST_DAY.month, LAST_DAY.day, 23, 59, 59)
LOOKAHEAD_DAYS = 40  # trading days searched for a contract's next round (longer holidays do not exist)


class MarketClock:
    """The market's time: ``start`` at creation, then ``speed`` times the monotonic clock.

    ``next`` is the market time of the next round, on the ``interval`` grid; at ``speed=max`` it
    is the clock itself (the market runs as fast as rounds are taken).  Never past
    :data:`MARKET_END`.  Used on the IO thread only.
    """

    __slots__ = ("start", "speed", "interval", "step", "wall_start", "next")

    def __init__(self, start: datetime, speed: float, interval: float) -> None:
        self.start = start
        self.speed = speed
        self.interval = interval
        self.step = timedelta(seconds=interval)
        self.wall_start = time.monotonic()
        self.next = self.align(start)

    @property
    def max_speed(self) -> bool:
        return math.isinf(self.speed)

    def align(self, moment: datetime) -> datetime:
        """``moment`` or the first moment after it on the snapshot grid."""
        step = int(self.interval * 1_000_000)
        micros = moment.hour * 3_600_000_000 + moment.minute * 60_000_000 + moment.second * 1_000_000 + moment.microsecond
        remainder = micros % step if step else 0
        return moment if remainder == 0 else moment + timedelta(microseconds=step - remainder)

    def now(self) -> datetime:
        """The simulated market's current time (never past the calendar's range)."""
        if self.max_speed:
            return min(self.next, MARKET_END)
        elapsed = min((time.monotonic() - self.wall_start) * self.speed, (MARKET_END - self.start).total_seconds())
        return self.start + timedelta(seconds=elapsed)

    def due(self, moment: datetime) -> float:
        """The monotonic clock's time at which a paced market reaches ``moment``."""
        return self.wall_start + (moment - self.start).total_seconds() / self.speed

    def catch_up(self) -> None:
        """Move ``next`` to now (paced clocks: after a jump to an open, or a consumer that fell behind)."""
        self.next = self.align(self.now())


class Schedule:
    """The moments one contract ticks on one trading day, on the market's snapshot grid.

    ``windows`` holds (first, last, index of first) per run of rounds: the opening auction's
    single round (index -1, a minute before the first session), each session's rounds from one
    interval after its start to its end inclusive (indices 0 to ``count - 1``, as real fronts
    stamp them: 09:00:00.500 ... 10:15:00.000), and for CFFEX the post-close settlement
    snapshot (index ``count``; ``settles_later``).  ``hours=always`` has one run from 17:00 of the
    previous trading day and no auction.
    """

    __slots__ = ("day", "step", "windows", "count", "hour_rounds", "settles_later")

    def __init__(self, product: Product, day: date, step: timedelta, always: bool) -> None:
        self.day = day
        self.step = step
        self.windows: list[tuple[datetime, datetime, int]] = []
        self.hour_rounds = int(timedelta(hours=1) / step)
        self.settles_later = False  # the settlement comes in a snapshot of its own after the close
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
            self.settles_later = True

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


class Openings:
    """When one contract ticks, as the planner (IO thread) asks round after round.

    ``trades_at`` answers from ``open_until`` (exclusive end of the current run of rounds) and
    ``closed_until`` (its next round) while it can, and from the trading days' schedules when not.
    """

    __slots__ = ("product", "expire_date", "step", "always", "schedules", "open_until", "closed_until", "expired")

    def __init__(self, product: Product, expire_date: date, step: timedelta, always: bool) -> None:
        self.product = product
        self.expire_date = expire_date
        self.step = step
        self.always = always
        self.schedules: dict[date, Schedule] = {}
        self.open_until = datetime.min
        self.closed_until = datetime.min
        self.expired = False

    def _schedule(self, day: date) -> Schedule:
        schedule = self.schedules.get(day)
        if schedule is None:
            if len(self.schedules) > 64:
                self.schedules.clear()
            schedule = self.schedules[day] = Schedule(self.product, day, self.step, self.always)
        return schedule

    def trades_at(self, when: datetime) -> bool:
        """Whether a round at ``when`` ticks; sets ``open_until`` or ``closed_until``, or ``expired``."""
        if when < self.open_until:
            return True
        if when < self.closed_until:
            return False
        day = trading_day_of(when)
        for _ in range(LOOKAHEAD_DAYS):
            if day > self.expire_date:
                self.expired = True
                self.closed_until = MARKET_END
                return False
            for first, last, _index in self._schedule(day).windows:
                if first <= when <= last:
                    self.open_until = last + self.step
                    return True
                if first > when:
                    self.closed_until = first
                    return False
            day = next_trading_day(day)
        self.closed_until = MARKET_END
        return False


class ContractTerms(Protocol):
    """What a day path reads of its contract (:class:`ctpshim.adapters.sim.model.Contract` has it)."""

    seed: int
    instrument_id: str
    product: Product
    exchange: str
    tick: float
    limit: float
    multiplier: float
    sigma_per_round: float  # the random walk's deviation per round, in ticks
    start_price: float
    mean_size: float  # lots traded per round, on average
    always: bool  # hours=always

    def price_of(self, steps: int) -> float: ...


class DayPath:
    """One trading day of one contract: its coarse path, from which the model makes every round.

    The path has a knot every ``SEGMENT`` of session time, drawn from the seed, the contract and
    the date alone: price (in ticks), cumulative volume, turnover and open interest, and the
    day's high and low so far.  ``ranges[n]`` is segment ``n``'s (low, high, value of one traded
    lot): within a segment every trade is valued at one price between the day's low and high
    before it, so Turnover / Volume stays in [LowestPrice, HighestPrice].  The state at any
    moment thus costs one pass over the knots plus one segment, and a later start shows the same
    market.
    """

    def __init__(self, contract: ContractTerms, schedule: Schedule, pre_settlement: float, pre_close: float,
                 pre_interest: float) -> None:
        self.contract = contract
        self.schedule = schedule
        self.key = yyyymmdd(schedule.day)
        self.pre_settlement = pre_settlement
        self.pre_close = pre_close
        self.pre_interest = pre_interest
        self.size = max(1, int(SEGMENT / schedule.step))
        tick = contract.tick
        upper, lower = price_limits(contract.product, pre_settlement)
        self.upper, self.lower = round(upper / tick), round(lower / tick)
        rnd = random.Random(f"{contract.seed}:{contract.instrument_id}:{self.key}")
        lower, upper = self.lower, self.upper
        sigma = contract.sigma_per_round * math.sqrt(self.size) * pre_settlement / contract.start_price
        rate = contract.mean_size * self.size
        clamp = lambda n: lower if n < lower else (upper if n > upper else n)  # noqa: E731
        price = clamp(round(pre_close / tick) + round(rnd.gauss(0.0, 2 * sigma)))
        volume = 1 + int(rate * rnd.random())  # the auction's volume
        value = tick * contract.multiplier
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
            worth = min(max((start + price + top + bottom) / 4, low), high) * value
            volume += traded
            self.prices.append(price)
            self.volumes.append(volume)
            self.turnovers.append(self.turnovers[-1] + traded * worth)
            self.interests.append(max(0.0, self.interests[-1] + round(traded * rnd.gauss(0.0, 0.08))))
            high, low = max(high, top), min(low, bottom)
            self.highs.append(high)
            self.lows.append(low)
            self.ranges.append((bottom, top, worth))

    @property
    def close_price(self) -> float:
        return self.contract.price_of(self.prices[-1])

    @property
    def settlement(self) -> float:
        """By the exchange's rule (``ctpshim.ctp.products.settlement_price``)."""
        schedule = self.schedule
        start = 0
        if self.contract.exchange == "CFFEX" and schedule.count > schedule.hour_rounds:
            start = (schedule.count - schedule.hour_rounds) // self.size
        volume = self.volumes[-1] - (self.volumes[start] if start else 0)
        turnover = self.turnovers[-1] - (self.turnovers[start] if start else 0.0)
        return settlement_price(self.contract.product, turnover, volume, self.pre_settlement)

    def following(self) -> "DayPath":
        """The next trading day, starting from this one's settlement, close and open interest."""
        schedule = self.schedule
        nxt = Schedule(self.contract.product, next_trading_day(schedule.day), schedule.step, self.contract.always)
        return DayPath(self.contract, nxt, self.settlement, self.close_price, self.interests[-1])


def first_schedule(product: Product, when: datetime, step: timedelta, always: bool) -> Schedule:
    """The schedule of the trading day whose state a snapshot at ``when`` shows: the day under
    way, or the previous one before the day's first round."""
    day = trading_day_of(when)
    schedule = Schedule(product, day, step, always)
    if not schedule.windows or schedule.windows[0][0] >= when:
        schedule = Schedule(product, previous_trading_day(day), step, always)
    return schedule
