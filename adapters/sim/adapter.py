"""sim:// adapter: subscriptions, the health probe, and the batches of rounds ``ticks()`` yields.

The adapter plans on the IO thread (which contracts tick in the next rounds, paced by the
:class:`.planning.MarketClock`) and yields :class:`Block` objects; the ticks of a block are made
when it is first iterated, by the model (:class:`.model.Contract`), on the thread that delivers
them.  A paced round (any speed but max) is the exception: it is planned and made on the IO
thread shortly before its mark and released at the mark (``SimAdapter._hold``), so that what
it costs to make is not added to its latency.  Its settings and their checks are in :mod:`.settings`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from datetime import datetime, timedelta
from typing import Any, AsyncIterator, Iterable, Iterator

from ...ctp import clock
from ...ctp.calendar import trading_day_of, yyyymmdd
from ...ctp.market_data import Stamper
from ...ctp.products import InstrumentInfo, default_sim_instruments, parse_instrument
from ...errors import REASON_READ_FAILED, UpstreamDisconnected, UpstreamUnavailable
from ...messages import listing
from ...runtime.io_loop import wait_at_most
from ..base import Adapter, Capabilities
from .model import Contract, Resume, Rounds, Stamps
from .planning import MARKET_END, MarketClock, Openings, first_schedule
from .settings import SETTINGS, check_front, listing_problem, starting_price

log = logging.getLogger("ctpshim.sim")

MAX_BATCH = 256  # at speed=max, rounds are grouped into blocks of about this many ticks
BEHIND = 5  # rounds a paced clock may fall behind (a slow consumer) before it skips to now
# A paced round is planned and made ahead of its mark and released at the mark (see _hold).
# asyncio's timers wake up to a millisecond late (epoll counts whole milliseconds), so the last
# FINE_WAIT before the mark is slept with time.sleep, which holds the IO loop up for that long at most.
FINE_WAIT = 0.0012  # s
FINE_FROM = 0.005  # s: rounds closer than this (wall time) apart get no fine wait (the loop would be held too often)
TIMER_SLACK = 0.0015  # s: how late an asyncio timer may wake, planned for before the fine wait
_MICROSECOND = timedelta(microseconds=1)
_SECONDS = [timedelta(seconds=n) for n in range(61)]  # the steps between rounds' seconds (interval <= 60 s)


class Block:
    """A block of rounds whose ticks are made when it is first iterated.

    ``work`` holds, per contract, its model and the rounds to run, or None (or a
    :class:`~.model.Resume`) for its current snapshot; the ticks come round by round, contracts
    in ``work`` order.  Each block advances
    its contracts, so blocks are made once each, in the order the adapter made them, whoever
    iterates them and on whatever thread: the first iteration makes this block and every earlier
    one not made yet (under the adapter's lock), later iterations give the same tick objects
    again.  A consumer that skips a block, or iterates a later one first, thus never changes
    the ticks.  Made on the thread that delivers them (see ``Adapter.ticks``): made on the IO
    thread instead, each tick's objects would cross between the cores.  Paced rounds are made
    on the IO thread ahead of their mark instead (:meth:`make`; see ``SimAdapter._hold``).
    """

    __slots__ = ("work", "size", "previous", "_made", "_lock")

    def __init__(self, work: list[tuple[Contract, Rounds | Resume | None]], size: int, previous: "Block | None",
                 lock: threading.Lock) -> None:
        self.work = work
        self.size = size
        self.previous = previous  # the block made before this one, until both are made
        self._made: list[Any] | None = None
        self._lock = lock

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[Any]:
        made = self._made
        if made is None:
            made = self._make()
        return iter(made)

    def make(self) -> None:
        """Make the ticks now, on this thread (with every earlier block not made yet)."""
        if self._made is None:
            self._make()

    def latest(self) -> dict[str, Any]:
        """The last tick of each contract in this block (making it if not made yet): for a
        consumer that keeps the latest snapshot per instrument without looking at every tick."""
        made = self._made
        if made is None:
            made = self._make()
        contracts = len(self.work)
        return {tick.InstrumentID: tick for tick in made[-contracts:]} if made else {}

    def _make(self) -> list[Any]:
        with self._lock:
            due: list[Block] = []
            block: Block | None = self
            while block is not None and block._made is None:
                due.append(block)
                block = block.previous
            for block in reversed(due):
                block.previous = None
                try:
                    block._made = block._run()
                except BaseException:
                    block._made = []  # a block that cannot be made gives no ticks, once
                    raise
            return self._made

    def _run(self) -> list[Any]:
        """Run each contract over the rounds, then interleave their ticks round by round."""
        per_contract = [contract.run(rounds) if type(rounds) is tuple else [contract.snapshot(rounds)]
                        for contract, rounds in self.work]
        if len(per_contract) == 1:
            return per_contract[0]
        contracts = len(per_contract)
        ticks: list[Any] = [None] * (contracts * len(per_contract[0]))
        for position, made in enumerate(per_contract):
            ticks[position::contracts] = made
        return ticks


class SimAdapter(Adapter):
    """A simulated futures market, deterministic per seed, with no network (see :mod:`ctpshim.adapters.sim`)."""

    scheme = "sim"
    settings = SETTINGS
    capabilities = Capabilities(depth_levels=5, deterministic=True, has_instruments=True)

    @classmethod
    def check(cls, url: Any, settings: dict[str, Any]) -> None:
        check_front(url, settings)

    def __init__(self, url: Any, settings: dict[str, Any]) -> None:
        super().__init__(url, settings)
        self.stamper = Stamper(settings["dates"])
        self.always = settings["hours"] == "always"
        self.market_clock = MarketClock(settings["start"] or clock.now(), settings["speed"], settings["interval"])
        self._contracts: dict[str, tuple[Contract, Openings]] = {}
        self._active: dict[str, tuple[Contract, Openings]] = {}
        self._wake = asyncio.Event()
        self._sent = 0
        self._making = threading.Lock()  # see Block
        self._millis: dict[str, dict[int, int]] = {}  # exchange -> microsecond -> UpdateMillisec
        self._last: Block | None = None
        self._run: list[Any] | None = None  # see _plan
        # While a paced round is held for its mark (see _hold): the snapshots of subscriptions
        # made meanwhile, delivered after it, and the contracts dropped meanwhile, left out of it.
        self._holding = False
        self._after_hold: list[Block] = []
        self._dropped_in_hold: set[str] = set()
        self._make_time = 0.0  # s: about what the latest paced rounds took to make (decaying maximum)

    def market_now(self) -> datetime:
        """The simulated market's current time (never past the calendar's range)."""
        return self.market_clock.now()

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

    async def probe(self) -> dict[str, Any]:
        """The market's time, its trading day and the contracts it lists (for ``ctpshim ping``)."""
        return {"market_time": self.market_now().isoformat(timespec="seconds"), "trading_day": self.trading_day(),
                "contracts": len(self.instruments())}

    async def subscribe(self, ids: Iterable[str]) -> None:
        market = self.market_clock
        if not market.max_speed and not self._holding and market.next > market.now():
            # The clock may have jumped to the next open while nothing traded; a new contract
            # may trade now.
            market.catch_up()
        unknown: list[str] = []
        unlisted: dict[str, str] = {}
        snapshots: list[tuple[Contract, Rounds | Resume | None]] = []
        now = market.next
        day = trading_day_of(now)
        for instrument_id in ids:
            info = parse_instrument(instrument_id, now.date())
            if info is None:
                unknown.append(instrument_id)
                continue
            problem = listing_problem(info, day)
            if problem:
                unlisted[instrument_id] = problem
                continue
            pair = self._contracts.get(instrument_id)
            resume = None
            if pair is not None and instrument_id not in self._active:
                resume = self._resume(info, now)
            if pair is None:
                price, warning = starting_price(self.config["price"], info)
                if warning:
                    log.warning("sim: %s", warning)
                contract = Contract(info, self.config["seed"], price, self.config["volatility"], market.interval,
                                    self.config["depth"], now, self.stamper, self.always)
                pair = self._contracts[instrument_id] = (contract, Openings(info.product, info.expire_date,
                                                                            market.step, self.always))
            self._active[instrument_id] = pair
            snapshots.append((pair[0], resume))
        self.warn_unknown(unknown, "not a contract the simulator knows")
        if unlisted:
            self.warn_unknown(unlisted, "not listed on this trading day, so unknown, as on a real front: "
                              + listing(unlisted.values(), 5))
        if snapshots:
            block = self._block(snapshots)
            if self._holding:
                self._after_hold.append(block)
            else:
                self.owe_snapshot(block)
        self._run = None
        self._wake.set()

    def _resume(self, info: InstrumentInfo, now: datetime) -> Resume | None:
        """Where a contract subscribed again at ``now`` is due (see ``Contract.snapshot``)."""
        schedule = first_schedule(info.product, now, self.market_clock.step, self.always)
        index = schedule.last_before(now)
        if index is None:
            return None
        at = schedule.moment(index)
        trading, action, update_time, _true_day = self.stamper.stamps(at, info.exchange_id)
        return Resume(at, yyyymmdd(schedule.day), (trading, action, update_time,
                                                   self.stamper.millisec(at, info.exchange_id)))

    async def unsubscribe(self, ids: Iterable[str]) -> None:
        for instrument_id in ids:
            if self._active.pop(instrument_id, None) is not None and self._holding:
                self._dropped_in_hold.add(instrument_id)
        self._run = None

    async def ticks(self) -> AsyncIterator[Any]:
        limit = self.config["disconnect_after"]
        market = self.market_clock
        while True:
            if market.next >= MARKET_END:
                log.warning("sim: the market clock reached %s, the end of the calendar's range; no more ticks", MARKET_END)
                return
            if not self._active:
                await self._sleep(None)
                continue
            due = None
            if not market.max_speed:
                ahead = (market.next - market.now()).total_seconds()
                early = ahead / market.speed - self._lead()
                if early > 0:
                    await self._sleep(early)
                    continue
                if ahead < -BEHIND * market.interval:
                    market.catch_up()
                    continue
                if ahead > 0:
                    due = market.due(market.next)
            batch = self._plan(MAX_BATCH)
            if batch:
                self._sent += len(batch)
                if limit is not None and self._sent >= limit:
                    raise UpstreamDisconnected(
                        f"sim: simulated disconnect after {self._sent} ticks (disconnect_after={limit})",
                        REASON_READ_FAILED,
                    )
                if due is not None:
                    batch = await self._hold(batch, due)
                yield batch
                after, self._after_hold = self._after_hold, []
                for snapshot in after:
                    self.owe_snapshot(snapshot)

    def _lead(self) -> float:
        """How long before a paced round's mark to plan it (wall seconds): time to make it, to
        wake late and to wait finely; at most half the time between rounds."""
        market = self.market_clock
        return min(TIMER_SLACK + self._fine_wait() + 1.5 * self._make_time, market.interval / market.speed / 2)

    def _fine_wait(self) -> float:
        market = self.market_clock
        return FINE_WAIT if market.interval / market.speed >= FINE_FROM else 0.0

    async def _hold(self, block: Block, due: float) -> "Block | list[Any]":
        """``block``, a paced round, made now and given back at its mark (monotonic ``due``): the
        time it takes to make is not added to its ticks' latency, and no tick leaves before the
        moment it is stamped with.

        A subscription changed meanwhile takes effect after it, as if changed at the mark: its
        snapshots follow the round (see ``subscribe``), and the ticks of contracts dropped
        meanwhile are left out of it."""
        started = time.monotonic()
        if started >= due:
            return block
        block.make()
        now = time.monotonic()
        self._make_time = max(now - started, 0.9 * self._make_time)
        self._holding = True
        fine = self._fine_wait()
        try:
            if due - now > fine:
                await asyncio.sleep(due - now - fine)
            left = due - time.monotonic()
            if left > 0:
                time.sleep(left)
        finally:
            self._holding = False
        dropped, self._dropped_in_hold = self._dropped_in_hold, set()
        if dropped:
            return [tick for tick in block if tick.InstrumentID not in dropped]
        return block

    async def _sleep(self, seconds: float | None) -> None:
        """Sleep up to ``seconds`` (forever if None), waking early on a subscription change."""
        self._wake.clear()
        if seconds is None:
            await self._wake.wait()
        else:
            await wait_at_most(self._wake, min(seconds, 1.0))

    def _plan(self, target: int) -> "Block | list[Any]":
        """Plan a block of rounds (about ``target`` ticks at speed=max, one round otherwise).

        A block never crosses a session boundary of any active contract, so within it each
        contract either ticks every round or not at all; the contracts that tick and the rounds
        left before the next boundary are kept from block to block until then (or until a
        subscription changes, or the clock is moved).  When every contract is closed the market
        clock jumps to the next open.
        """
        market = self.market_clock
        when = market.next
        run = self._run
        if run is None or run[3] != when:
            run = self._run = self._openings(when)
            if run is None:
                return []
        trading, share, left = run[0], run[1], run[2]
        count = max(1, min(target // share if market.max_speed else 1, left))
        market.next = after = when + market.step * count
        if left > count:
            run[2], run[3] = left - count, after
        else:
            self._run = None
        shared: dict[str, Rounds] = {}
        work: list[tuple[Contract, Rounds | Resume | None]] = []
        for contract in trading:
            # Exchanges share their stamps unless the date convention treats them differently.
            key = contract.exchange if self.stamper.convention == "exchange" else ""
            rounds = shared.get(key)
            if rounds is None:
                rounds = shared[key] = self._rounds(when, after, count, contract.exchange)
            work.append((contract, rounds))
        return self._block(work, count)

    def _openings(self, when: datetime) -> list[Any] | None:
        """[contracts trading at ``when``, active contracts, rounds before the next boundary of any
        of them, ``when``], or None (no contract trades: the clock jumps to the next open)."""
        market = self.market_clock
        active = list(self._active.values())
        horizon = MARKET_END
        trading = []
        for contract, openings in active:
            if openings.trades_at(when):
                trading.append(contract)
                horizon = min(horizon, openings.open_until)
            else:
                horizon = min(horizon, openings.closed_until)
        expired = [contract.instrument_id for contract, openings in active if openings.expired]
        if expired:
            log.warning("sim: %s expired (past the last trading day); no more ticks", listing(expired))
            for instrument_id in expired:
                self._active.pop(instrument_id, None)
            if not self._active:
                return None
        if not trading:
            market.next = min(market.align(min(openings.closed_until for _, openings in active)), MARKET_END)
            return None
        return [trading, len(active), max(1, math.ceil((horizon - when) / market.step)), when]

    def _block(self, work: list[tuple[Contract, Rounds | Resume | None]], rounds: int = 1) -> Block:
        block = self._last = Block(work, rounds * len(work), self._last, self._making)
        return block

    def _rounds(self, when: datetime, after: datetime, count: int, exchange_id: str) -> Rounds:
        """``count`` rounds from ``when``, one interval apart, stamped for ``exchange_id``.

        The stamper is asked once per second of market time (its strings change no faster), and
        its UpdateMillisec once per exchange and millisecond.
        """
        stamper = self.stamper
        step_us = self.market_clock.step // _MICROSECOND
        micro = when.microsecond
        moment = when.replace(microsecond=0) if micro else when
        trading, action, update_time, true_day = stamper.stamps(moment, exchange_id)
        millis = self._millis.setdefault(exchange_id, {})
        stamps: list[Stamps] = []
        append = stamps.append
        for _ in range(count):
            if micro >= 1_000_000:
                seconds, micro = divmod(micro, 1_000_000)
                moment += _SECONDS[seconds]
                trading, action, update_time, _true_day = stamper.stamps(moment, exchange_id)
            ms = millis.get(micro)
            if ms is None:
                ms = millis[micro] = stamper.millisec(moment.replace(microsecond=micro), exchange_id)
            append((trading, action, update_time, ms))
            micro += step_us
        return when, after, true_day, stamps
