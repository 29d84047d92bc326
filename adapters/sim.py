"""``sim://``: a simulated futures market, deterministic per seed, with no network.

Every contract of a known product (any of the six exchanges' futures in
:mod:`ctpshim.products`) can be subscribed; each one follows its own random walk, seeded by
``seed`` and its instrument ID, so the same seed and start give the same ticks whatever else is
subscribed.  The ticks keep CTP's invariants: prices on the product's tick grid and inside the
limit band around the pre-settlement price; five book levels with at least one tick of spread;
cumulative Volume, Turnover (with the contract multiplier) that never decrease within a trading
day; Open/High/Low consistent with LastPrice; AveragePrice and dates as CTP reports them (via
:mod:`ctpshim.market_data`).  Open interest moves both ways, as on a real exchange.

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
from datetime import datetime, timedelta
from typing import Any, AsyncIterator, Iterable, Iterator

from ..calendar import FIRST_DAY, LAST_DAY, china_time, now_china, supported, trading_day_of, yyyymmdd
from ..errors import REASON_READ_FAILED, UpstreamDisconnected, UpstreamUnavailable
from ..io_loop import wait_at_most
from ..market_data import (
    AVERAGE_PRICE_ON_TICK_GRID, DATE_CONVENTIONS, DBL_MAX, Stamper, blank_values, depth_class, depth_index, make_tick,
)
from ..products import InstrumentInfo, default_sim_instruments, next_open, parse_instrument, session_window
from ..url import Setting, boolean, choice, id_list, integer, number, speed
from .base import Adapter, Capabilities

log = logging.getLogger("ctpshim.sim")

SECONDS_PER_TRADING_YEAR = 250 * 4 * 3600  # for turning annual volatility into a per-step move
MAX_BATCH = 256  # at speed=max, rounds are grouped into batches of about this many ticks
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


def _instrument_ids(text: str) -> tuple[str, ...]:
    ids = id_list(text)
    unknown = [i for i in ids if parse_instrument(i) is None]
    if unknown:
        raise ValueError(
            f"{', '.join(unknown)} not a futures contract the simulator knows; write IDs as CTP does: "
            "rb2605 (SHFE/INE/DCE/GFEX: lower case + YYMM), TA605 (CZCE: upper case + YMM), IF2606 (CFFEX)"
        )
    return ids


_I = depth_index()
_LAST, _VOLUME, _TURNOVER, _INTEREST = _I["LastPrice"], _I["Volume"], _I["Turnover"], _I["OpenInterest"]
_OPEN, _HIGH, _LOW, _AVERAGE = _I["OpenPrice"], _I["HighestPrice"], _I["LowestPrice"], _I["AveragePrice"]
_TRADING_DAY, _ACTION_DAY, _BID_VOLUME1 = _I["TradingDay"], _I["ActionDay"], _I["BidVolume1"]
_CLOCK = slice(_I["UpdateTime"], _I["UpdateMillisec"] + 1)
_BOOK = slice(_I["BidPrice1"], _I["AskVolume5"] + 1)
if [n for n in list(_I)[_BOOK]] != [n for level in _LEVEL_NAMES for n in level]:
    raise AssertionError("the book members of CThostFtdcDepthMarketDataField are not contiguous")


class _Instrument:
    """The evolving state of one simulated contract: a tick's value list plus the random walk."""

    def __init__(self, info: InstrumentInfo, seed: int, price: float, volatility: float,
                 interval: float, depth: int, when: datetime, stamper: Stamper) -> None:
        product = info.product
        self.info = info
        self.exchange = product.exchange
        self.tick = product.tick
        self.decimals = product.decimals
        self.multiplier = product.multiplier
        self.limit = product.limit
        self.depth = depth
        self.stamper = stamper
        self.random = random.Random(f"{seed}:{info.instrument_id}")
        rnd = self.random
        # Tables drawn once from the seeded generator, then indexed by one uniform draw per tick.
        sigma = volatility * math.sqrt(interval / SECONDS_PER_TRADING_YEAR) * price / product.tick
        self.moves = [round(rnd.gauss(0.0, sigma)) for _ in range(1024)]
        self.max_move = max(map(abs, self.moves)) + 2
        self.trade_sizes = [0 if rnd.random() < 0.2 else 1 + int(rnd.expovariate(1 / 12)) for _ in range(256)]
        self.book_sizes = [1 + int(rnd.expovariate(1 / 40)) for _ in range(256)]
        self.ring = self.book_sizes + self.book_sizes[:10]  # sliceable past the end
        self.values = blank_values(info.instrument_id, product.exchange)
        self.trading_day = ""
        self.pre_settlement = self._on_grid(price)
        self.pre_close = self.pre_settlement
        self.open_interest = float(20_000 + int(rnd.random() * 200_000))
        self.px = round(self.pre_settlement / self.tick)
        self.open_until = datetime.min  # market time up to which the current session runs
        self.closed_until = datetime.min  # market time up to which the product is known closed
        self._new_day(when)

    def _on_grid(self, price: float) -> float:
        return round(round(price / self.tick) * self.tick, self.decimals)

    def _new_day(self, when: datetime) -> None:
        """Roll to the trading day of ``when``: settle the old day, reset the cumulative members."""
        values = self.values
        if self.trading_day:
            volume = values[_VOLUME]
            if volume:
                self.pre_settlement = self._on_grid(values[_TURNOVER] / volume / self.multiplier)
                self.pre_close = values[_LAST]
            self.open_interest = values[_INTEREST]
        self.trading_day = yyyymmdd(trading_day_of(when))
        steps = round(self.pre_settlement / self.tick)
        self.upper = math.floor(steps * (1 + self.limit))
        self.lower = math.ceil(steps * (1 - self.limit))
        self.px = min(max(self.px, self.lower), self.upper - 1)
        self._window(self.px)
        self.books: dict[int, list[Any]] = {}
        for name, value in (
            ("LastPrice", self.pre_close),
            ("PreSettlementPrice", self.pre_settlement),
            ("PreClosePrice", self.pre_close),
            ("PreOpenInterest", self.open_interest),
            ("OpenInterest", self.open_interest),
            ("OpenPrice", DBL_MAX),
            ("HighestPrice", DBL_MAX),
            ("LowestPrice", DBL_MAX),
            ("Volume", 0),
            ("Turnover", 0.0),
            ("AveragePrice", 0.0),
            ("ClosePrice", DBL_MAX),
            ("SettlementPrice", DBL_MAX),
            ("UpperLimitPrice", self._price(self.upper)),
            ("LowerLimitPrice", self._price(self.lower)),
            ("PreDelta", 0.0),
        ):
            values[_I[name]] = value
        self.book_key = self.px << 1  # the book on the tick path's state: block sizes must not matter
        self.book = self._book(self.book_key)
        values[_BOOK] = self.book
        self.stamper.apply(values, when, self.exchange)

    def _price(self, steps: int) -> float:
        return round(steps * self.tick, self.decimals)

    def _window(self, px: int) -> None:
        """Tabulate the prices around ``px`` (indexed by ticks - ``base``) so the tick path does
        no rounding; ``low``..``high`` is the range of ``px`` it covers with room for the book.

        The table holds a bounded part of the band, never the whole band: work and memory do not
        grow with price / tick.
        """
        width = min(self.upper - self.lower + 1, max(WINDOW, 32 * self.max_move))
        base = min(max(px - width // 2, self.lower), self.upper + 1 - width)
        self.base = base
        self.grid = [round(n * self.tick, self.decimals) for n in range(base, base + width)]
        end = base + width - 1
        self.low = self.lower if base == self.lower else base + 8
        self.high = self.upper - 1 if end == self.upper else end - 9

    def _recentre(self, px: int) -> int:
        """``px`` clamped to the band, the window moved to it if it left the window."""
        px = min(max(px, self.lower), self.upper - 1)
        if not self.low <= px <= self.high:
            self._window(px)
        return px

    def _book(self, key: int) -> list[Any]:
        """The 20 book members for key ``px << 1 | (spread - 1)`` (cached per trading day)."""
        px, spread = key >> 1, (key & 1) + 1
        grid, base, lower, upper, sizes = self.grid, self.base, self.lower, self.upper, self.ring
        price = self._price
        seed = (px * 31) & 255
        book: list[Any] = [0] * 20
        if (self.depth == 5 and px - 4 >= lower and px + spread + 4 <= upper
                and px - 4 >= base and px + spread + 4 < base + len(grid)):
            # All five levels inside the band and the window: C-level slices, no per-level Python work.
            bid = px - base
            book[0::4] = grid[bid - 4:bid + 1][::-1]
            book[1::4] = sizes[seed:seed + 5]
            book[2::4] = grid[bid + spread:bid + spread + 5]
            book[3::4] = sizes[seed + 5:seed + 10]
        else:
            for level in range(5):
                bid, ask = px - level, px + spread + level
                inside_bid = level < self.depth and bid >= lower
                inside_ask = level < self.depth and ask <= upper
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

    def trades_at(self, when: datetime) -> bool:
        if when < self.open_until:
            return True
        if when < self.closed_until:
            return False
        window = session_window(self.info.product, when)
        if window is not None:
            self.open_until = window[1]
            return True
        self.closed_until = next_open(self.info.product, when)
        return False

    def run(self, rounds: list[tuple[datetime, tuple[str, str, list[Any]], str]]) -> list[Any]:
        """Advance one snapshot interval per round and return the ticks.

        ``rounds`` holds (market time, (TradingDay, ActionDay, [UpdateTime, UpdateMillisec]),
        trading day) per round.  This is the tick path: state lives in local variables, and one
        32-bit draw per tick decides the move (bits 0-9), the trade size (10-17), the trade
        side (18), the open-interest direction (19), the spread (20-26) and the level-1 sizes
        (24-31).
        """
        ticks: list[Any] = []
        append = ticks.append
        draw_bits = self.random.getrandbits
        moves, trade_sizes, book_sizes = self.moves, self.trade_sizes, self.book_sizes
        values = self.values
        new, extend, tick_class = _new, _extend, depth_class()
        multiplier, multiplier_tick = self.multiplier, self.multiplier * self.tick
        tick, decimals = self.tick, self.decimals
        on_grid = self.exchange in AVERAGE_PRICE_ON_TICK_GRID
        low, high, base, upper, grid = self.low, self.high, self.base, self.upper, self.grid
        day, books = self.trading_day, self.books
        px, book_key, book = self.px, self.book_key, self.book
        for when, (trading_day_member, action_day, clock), trading_day in rounds:
            if trading_day != day:
                self.px = px
                self._new_day(when)
                low, high, base, upper, grid = self.low, self.high, self.base, self.upper, self.grid
                day, books = self.trading_day, self.books
                px, book_key, book = self.px, self.book_key, self.book
            bits = draw_bits(32)
            px += moves[bits & 1023]
            if px < low or px > high:
                px = self._recentre(px)
                low, high, base, grid = self.low, self.high, self.base, self.grid
            spread = 2 if (bits >> 20 & 127) < 13 and px + 2 <= upper else 1
            key = px << 1 | (spread - 1)  # an int: a tuple key would feed the cyclic GC
            if key != book_key:
                book_key = key
                book = books.get(key) or self._book(key)
                values[_BOOK] = book
            elif book[1]:
                values[_BID_VOLUME1] = book_sizes[bits >> 24]
            size = trade_sizes[bits >> 10 & 255]
            if size:
                last = grid[(px + spread if bits & 0x40000 else px) - base]
                volume = values[_VOLUME] + size
                turnover = values[_TURNOVER] + size * last * multiplier
                interest = values[_INTEREST] + ((size >> 1) if bits & 0x80000 else -(size >> 2))
                values[_LAST] = last
                values[_VOLUME] = volume
                values[_TURNOVER] = turnover
                values[_INTEREST] = interest if interest > 0.0 else 0.0
                # ctpshim.market_data.average_price, inlined: this is the tick path.
                values[_AVERAGE] = (round(round(turnover / volume / multiplier_tick) * tick, decimals) if on_grid
                                    else turnover / volume)
                if values[_OPEN] == DBL_MAX:
                    values[_OPEN] = values[_HIGH] = values[_LOW] = last
                elif last > values[_HIGH]:
                    values[_HIGH] = last
                elif last < values[_LOW]:
                    values[_LOW] = last
            if values[_ACTION_DAY] is not action_day:
                values[_TRADING_DAY] = trading_day_member
                values[_ACTION_DAY] = action_day
            values[_CLOCK] = clock
            obj = new(tick_class)
            extend(obj, values)
            append(obj)
        self.px, self.book_key, self.book = px, book_key, book
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
        Setting("interval", number(0.01, 3600, low_included=True), 0.5, "seconds of market time between snapshots of a contract (CTP: 0.5)"),
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
        prices = settings["price"]
        for key, price in prices.items():
            ids = listed if key == "*" else (key,)
            for instrument_id in ids:
                info = parse_instrument(instrument_id)
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
        ids = self.config["instruments"] or default_sim_instruments(self.market_now().date())
        return [info for info in (parse_instrument(i) for i in ids) if info is not None]

    def trading_day(self) -> str:
        return yyyymmdd(trading_day_of(self.market_now()))

    async def subscribe(self, ids: Iterable[str]) -> None:
        if not math.isinf(self.speed) and self._clock > self.market_now():
            # The clock may have jumped to the next open while nothing traded; a new contract
            # may trade now.
            self._clock = self._align(self.market_now())
        unknown = []
        for instrument_id in ids:
            info = parse_instrument(instrument_id)
            if info is None:
                if instrument_id not in self._warned:
                    unknown.append(instrument_id)
                    self._warned.add(instrument_id)
                continue
            state = self._states.get(instrument_id)
            if state is None:
                price = self._starting_price(info)
                state = _Instrument(info, self.config["seed"], price, self.config["volatility"],
                                    self.interval, self.config["depth"], self._clock, self.stamper)
                self._states[instrument_id] = state
            self._active[instrument_id] = state
            self._snapshots.append(state)
        if unknown:
            log.warning(
                "sim: %s not a contract the simulator knows (subscription accepted as CTP does; no ticks will come)",
                ", ".join(unknown),
            )
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
            if self.always or state.trades_at(when):
                trading.append(state)
                if not self.always:
                    horizon = min(horizon, state.open_until)
            else:
                horizon = min(horizon, state.closed_until)
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
