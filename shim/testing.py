"""The adapter conformance suite: what every adapter, built in or third-party, must pass.

Subclass :class:`AdapterConformance` in a pytest module, name the class ``Test...``, and say
where the source is::

    from ctpshim.testing import AdapterConformance

    class TestMyFeed(AdapterConformance):
        address = "myfeed://?seed=1"     # or a `front` fixture (below)
        adapter_class = MyFeedAdapter    # optional: else the class registered for the scheme
        instrument = "rb2701"            # an ID the source knows and ticks
        other_instrument = "au2612"      # optional: a second one that ticks
        bad_fronts = ("myfeed://?seed=1&path=/nonexistent",)   # addresses check() must refuse

For a source behind a network service, override the ``front`` fixture to start a fake upstream
on 127.0.0.1 and return an address pointing at it, and :meth:`AdapterConformance.advance` to
make the upstream move on when the suite waits for more ticks::

    @pytest.fixture
    def front(self):
        server = MyFakeServer()
        yield f"myfeed://?base_url={server.url}"
        server.stop()

It checks the contract of :mod:`ctpshim.adapters.base`: the class defines every hook and its
settings; ``from_url`` builds it and refuses an unknown setting; ``check`` refuses the bad
addresses with ``ValueError``; ``connect`` / ``close`` (also after a failed connect); a subscribed
known ID gives its snapshot first, then ticks in time order; every tick is a
``CThostFtdcDepthMarketDataField`` whose values pass :func:`ctpshim.ctp.market_data.check_values`
and whose date and time members follow the stamping conventions; an unknown ID is accepted, with
one warning and no ticks; ``unsubscribe`` stops its ticks; the capabilities tell the truth (a
``deterministic`` adapter gives the same ticks twice); ``probe`` answers plain JSON values; what
the adapter raises is an :class:`ctpshim.errors.UpstreamError`.  Every wait is bounded by
``timeout`` seconds.  The suite drives the adapter alone, on an asyncio loop of its own, as the
market hub does (it iterates the batches on that loop's thread, which the hub does not).

:class:`SilentAdapter` is a complete adapter that never ticks, to subclass in tests that only
need a ``check``, a ``probe`` or a registry entry.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from datetime import datetime
from typing import Any, AsyncIterator, Callable, ClassVar, Iterable

import pytest

from .adapters.base import Adapter, missing_hooks, verify_adapter_class
from .ctp.exchanges import FUTURES_EXCHANGES, STOCK_EXCHANGES
from .errors import FrontAddressError, UpstreamError, UpstreamUnavailable
from .fronts.url import FrontURL, Setting, parse_front_url, resolve_settings

__all__ = ["AdapterConformance", "SilentAdapter", "tick_problems"]

_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d:[0-5]\d$")


class SilentAdapter(Adapter):
    """An adapter that connects, accepts every subscription and never ticks."""

    async def connect(self) -> None:
        return None

    async def subscribe(self, ids: Iterable[str]) -> None:
        return None

    async def unsubscribe(self, ids: Iterable[str]) -> None:
        return None

    async def ticks(self) -> AsyncIterator[Any]:
        await asyncio.Event().wait()
        yield []  # never reached: makes this an async generator


_EXCHANGES = frozenset(FUTURES_EXCHANGES) | frozenset(STOCK_EXCHANGES)


def tick_values(tick: Any) -> list[Any]:
    """A tick's 48 member values, in the spec's order (a list of its own: checks may change it)."""
    from .ctp.fields import values_of

    return list(values_of(tick))


def tick_problems(tick: Any, dates: str | None = "correct") -> list[str]:
    """What is wrong with ``tick`` as a depth-market-data tick (an empty list when nothing is).

    Checks its type, every value (:func:`ctpshim.ctp.market_data.check_values`), the exchange, and
    the stamps: ``TradingDay`` and ``ActionDay`` dates, ``UpdateTime`` ``HH:MM:SS``,
    ``UpdateMillisec`` 0..999; with ``dates="correct"`` also that ``TradingDay`` is the trading day
    of ``ActionDay UpdateTime`` and ``ActionDay`` its calendar date (``Stamper("correct")``).
    """
    from .ctp.market_data import Stamper, TickValueError, check_values, depth_class

    problems = []
    if type(tick) is not depth_class():
        problems.append(f"a {type(tick).__name__}, not a CThostFtdcDepthMarketDataField (make_tick makes one)")
        return problems
    try:
        check_values(tick_values(tick))
    except TickValueError as exc:
        problems.append(str(exc))
    if tick.ExchangeID not in _EXCHANGES:
        problems.append(f"ExchangeID {tick.ExchangeID!r} is not an exchange CTP knows")
    moment = None
    for name in ("TradingDay", "ActionDay"):
        try:
            datetime.strptime(getattr(tick, name), "%Y%m%d")
        except ValueError:
            problems.append(f"{name} {getattr(tick, name)!r} is not a date YYYYMMDD")
    if not _TIME.match(tick.UpdateTime):
        problems.append(f"UpdateTime {tick.UpdateTime!r} is not HH:MM:SS")
    elif not problems:
        moment = datetime.strptime(f"{tick.ActionDay} {tick.UpdateTime}", "%Y%m%d %H:%M:%S")
    if not 0 <= tick.UpdateMillisec <= 999:
        problems.append(f"UpdateMillisec {tick.UpdateMillisec} is not 0..999")
    if dates == "correct" and moment is not None:
        trading, action = Stamper("correct").stamps(moment, tick.ExchangeID)[:2]
        if (tick.TradingDay, tick.ActionDay) != (trading, action):
            problems.append(f"TradingDay/ActionDay {tick.TradingDay}/{tick.ActionDay} at {tick.UpdateTime}: "
                            f"expected {trading}/{action} (dates=correct)")
    return problems


def _order_key(tick: Any) -> tuple[str, str, str, int]:
    return tick.TradingDay, tick.ActionDay, tick.UpdateTime, tick.UpdateMillisec


class _Feed:
    """One adapter's ticks() iterator, read in bounded steps, every tick kept."""

    def __init__(self, adapter: Adapter, timeout: float) -> None:
        self.adapter = adapter
        self.timeout = timeout
        self.iterator = adapter.ticks().__aiter__()
        self.ticks: list[Any] = []
        self.batches = 0
        self._next: asyncio.Future[Any] | None = None

    async def _batch(self, within: float) -> bool:
        """Wait up to ``within`` seconds for the next batch; whether one came."""
        if self._next is None:
            self._next = asyncio.ensure_future(self.iterator.__anext__())
        done, _ = await asyncio.wait([self._next], timeout=max(0.0, within))
        if not done:
            return False
        step, self._next = self._next, None
        try:
            batch = step.result()
        except StopAsyncIteration:
            pytest.fail(f"{type(self.adapter).__name__}: ticks() ended")
        self.batches += 1
        assert hasattr(batch, "__len__"), f"a batch must have len(): got {type(batch).__name__}"
        made = list(batch)
        assert len(made) == len(batch), f"a batch's len() is {len(batch)} but it made {len(made)} ticks"
        self.ticks.extend(made)
        return True

    async def until(self, condition: Callable[[list[Any]], bool], what: str,
                    advance: Callable[[], None] | None = None) -> list[Any]:
        """Read batches until ``condition(ticks)``, calling ``advance`` every half second that
        brings nothing; fail naming ``what`` after ``timeout`` seconds."""
        deadline = time.monotonic() + self.timeout
        while not condition(self.ticks):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"{type(self.adapter).__name__}: no {what} within {self.timeout:g} s "
                            f"({len(self.ticks)} ticks in {self.batches} batches so far)")
            if not await self._batch(min(remaining, 0.5)) and advance is not None:
                advance()
        return self.ticks

    async def quiet(self, seconds: float) -> list[Any]:
        """Read whatever comes for ``seconds`` (to see what must *not* come)."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            await self._batch(remaining)
        return self.ticks

    async def close(self) -> None:
        if self._next is not None:
            self._next.cancel()
            await asyncio.wait([self._next])
        close = getattr(self.iterator, "aclose", None)
        if close is not None:
            await close()


class AdapterConformance:
    """The conformance suite; subclass it as ``Test<Name>`` (see the module docstring).

    Class attributes to set: ``address`` (or the ``front`` fixture), and ``instrument`` unless the
    adapter's ``instruments()`` lists one that ticks.  Optional: ``adapter_class``,
    ``other_instrument``, ``unknown``, ``bad_fronts``, ``unreachable_front``, ``dates``,
    ``ticks_after_snapshot``, ``timeout``, ``quiet_s``; :meth:`advance` for a fake upstream.
    """

    address: ClassVar[str] = ""
    adapter_class: ClassVar[type[Adapter] | None] = None
    instrument: ClassVar[str] = ""
    other_instrument: ClassVar[str] = ""
    unknown: ClassVar[str] = "ZZ9999"
    bad_fronts: ClassVar[tuple[str, ...]] = ()
    unreachable_front: ClassVar[str | None] = None  # connect() must raise UpstreamUnavailable
    dates: ClassVar[str | None] = "correct"  # the stamping convention the front's ticks follow; None: formats only
    ticks_after_snapshot: ClassVar[int] = 3  # ticks to wait for after the snapshot (0: a source that only snapshots)
    timeout: ClassVar[float] = 20.0  # the bound of every wait, in seconds
    quiet_s: ClassVar[float] = 1.0  # how long to watch for ticks that must not come, when nothing else ticks

    # -- hooks for the subclass ---------------------------------------------------------------

    @pytest.fixture
    def front(self) -> str:
        """The address to test: ``address``; override to start a fake upstream first."""
        assert self.address, "set address = 'scheme://...' on the test class, or override the front fixture"
        return self.address

    def advance(self) -> None:
        """Make the upstream move on (a fake server's next quote); called while the suite waits."""

    # -- helpers ------------------------------------------------------------------------------

    def cls_of(self, front: str) -> type[Adapter]:
        if self.adapter_class is not None:
            return self.adapter_class
        from .fronts import registry

        return registry.adapter_class(parse_front_url(front).scheme)

    def run(self, scenario: Callable[[], Any]) -> Any:
        """Run an async scenario on a loop of its own, bounded; anything but an UpstreamError
        escaping the adapter fails the test."""
        async def bounded() -> Any:
            return await asyncio.wait_for(scenario(), self.timeout * 3)

        try:
            return asyncio.run(bounded())
        except UpstreamError:
            raise
        except (AssertionError, pytest.fail.Exception, FrontAddressError):
            raise
        except asyncio.TimeoutError:
            pytest.fail(f"the scenario took over {self.timeout * 3:g} s")
        except Exception as exc:
            pytest.fail(f"the adapter raised {type(exc).__name__}: {exc} (adapters raise only UpstreamError types)")

    async def connected(self, front: str) -> Adapter:
        adapter = self.cls_of(front).from_url(front)
        await adapter.connect()
        return adapter

    def known_instrument(self, adapter: Adapter) -> str:
        if self.instrument:
            return self.instrument
        listed = adapter.instruments()
        assert listed, "set instrument = '...' on the test class: the adapter lists no instruments"
        return listed[0].instrument_id

    async def snapshot_and_ticks(self, front: str, count: int) -> list[Any]:
        """Subscribe to the known instrument on a new adapter; its first ``count`` ticks."""
        adapter = await self.connected(front)
        feed = _Feed(adapter, self.timeout)
        try:
            instrument = self.known_instrument(adapter)
            await adapter.subscribe([instrument])
            await feed.until(lambda t: any(x.InstrumentID == instrument for x in t),
                             f"snapshot of {instrument} (the upstream not moved on)")
            ticks = await feed.until(lambda t: sum(x.InstrumentID == instrument for x in t) >= count,
                                     f"{count} ticks of {instrument}", self.advance)
            return [t for t in ticks if t.InstrumentID == instrument][:count]
        finally:
            await feed.close()
            await adapter.close()

    # -- the contract -------------------------------------------------------------------------

    def test_the_class_implements_every_hook(self, front: str) -> None:
        cls = self.cls_of(front)
        assert missing_hooks(cls) == []
        verify_adapter_class(cls, parse_front_url(front).scheme)

    def test_settings_are_declared_and_from_url_applies_them(self, front: str) -> None:
        cls = self.cls_of(front)
        names = [s.name for s in cls.settings]
        assert all(isinstance(s, Setting) for s in cls.settings) and len(set(names)) == len(names)
        assert all(s.help for s in cls.settings), "every setting has a help text (shown when a key is unknown)"
        adapter = cls.from_url(front)
        assert type(adapter) is cls and isinstance(adapter.url, FrontURL) and adapter.url.raw == front.strip()
        assert set(adapter.config) == set(names)
        assert isinstance(adapter.carry, dict)

    def test_from_url_refuses_an_unknown_setting(self, front: str) -> None:
        joiner = "&" if "?" in front else "?"
        with pytest.raises(FrontAddressError, match="unknown setting 'no_such_setting'"):
            self.cls_of(front).from_url(f"{front}{joiner}no_such_setting=1")

    def test_check_accepts_the_front_and_refuses_bad_addresses_with_valueerror(self, front: str) -> None:
        cls = self.cls_of(front)
        url = parse_front_url(front)
        cls.check(url, resolve_settings(url, cls.settings))
        for bad in self.bad_fronts:
            url = parse_front_url(bad)
            try:
                settings = resolve_settings(url, cls.settings)
            except FrontAddressError:
                continue  # refused by its settings already
            with pytest.raises(ValueError):
                cls.check(url, settings)
            with pytest.raises(FrontAddressError, match=re.escape(repr(url.raw))):
                cls.from_url(bad)

    def test_connect_then_close(self, front: str) -> None:
        async def scenario() -> None:
            adapter = await self.connected(front)
            await adapter.close()

        self.run(scenario)

    def test_a_failed_connect_is_upstream_unavailable_and_close_still_works(self) -> None:
        if self.unreachable_front is None:
            pytest.skip("no unreachable_front given")

        async def scenario() -> None:
            adapter = self.cls_of(self.unreachable_front).from_url(self.unreachable_front)  # type: ignore[arg-type]
            with pytest.raises(UpstreamUnavailable):
                await adapter.connect()
            await adapter.close()

        self.run(scenario)

    def test_a_subscription_gives_the_snapshot_first_then_ticks_in_time_order(self, front: str) -> None:
        count = 1 + self.ticks_after_snapshot
        ticks = self.run(lambda: self.snapshot_and_ticks(front, count))
        keys = [_order_key(t) for t in ticks]
        assert keys == sorted(keys), f"ticks out of time order: {keys}"

    def test_every_tick_is_a_valid_depth_market_data_field(self, front: str) -> None:
        ticks = self.run(lambda: self.snapshot_and_ticks(front, 1 + self.ticks_after_snapshot))
        for tick in ticks:
            assert tick_problems(tick, self.dates) == []

    def test_an_unknown_id_is_accepted_with_one_warning_and_no_ticks(self, front: str,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
        unknown = self.unknown

        async def scenario() -> list[Any]:
            adapter = await self.connected(front)
            feed = _Feed(adapter, self.timeout)
            try:
                instrument = self.known_instrument(adapter)
                await adapter.subscribe([unknown])
                await adapter.subscribe([unknown, instrument])
                ticks = await feed.until(lambda t: sum(x.InstrumentID == instrument for x in t) >= 2,
                                         f"2 ticks of {instrument}", self.advance)
                if self.ticks_after_snapshot == 0:
                    await feed.quiet(self.quiet_s)
                return ticks
            finally:
                await feed.close()
                await adapter.close()

        with caplog.at_level(logging.WARNING):
            ticks = self.run(scenario)
        assert not [t for t in ticks if t.InstrumentID == unknown]
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and unknown in r.getMessage()]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]

    def test_unsubscribe_stops_its_ticks(self, front: str) -> None:
        async def scenario() -> tuple[list[Any], str]:
            adapter = await self.connected(front)
            feed = _Feed(adapter, self.timeout)
            try:
                instrument, other = self.known_instrument(adapter), self.other_instrument
                await adapter.subscribe([instrument] + ([other] if other else []))
                await feed.until(lambda t: any(x.InstrumentID == instrument for x in t), f"a tick of {instrument}",
                                 self.advance)
                await adapter.unsubscribe([instrument])
                if other and self.ticks_after_snapshot:
                    # A batch made before unsubscribe returned may still hold it: from the second
                    # batch on, none may.
                    start = feed.batches
                    await feed.until(lambda t: feed.batches > start, "a batch after unsubscribe", self.advance)
                    cut = len(feed.ticks)
                    await feed.until(lambda t: sum(x.InstrumentID == other for x in t[cut:]) >= 2,
                                     f"ticks of {other} after unsubscribing {instrument}", self.advance)
                else:
                    cut = len(feed.ticks)
                    self.advance()
                    await feed.quiet(self.quiet_s)
                return feed.ticks[cut:], instrument
            finally:
                await feed.close()
                await adapter.close()

        after, instrument = self.run(scenario)
        late = [t for t in after if t.InstrumentID == instrument]
        assert late == [], f"{len(late)} ticks of {instrument} after unsubscribe"

    def test_a_deterministic_adapter_gives_the_same_ticks_twice(self, front: str) -> None:
        if not self.cls_of(front).capabilities.deterministic:
            pytest.skip("not deterministic")
        count = 1 + max(self.ticks_after_snapshot, 5)
        first = self.run(lambda: self.snapshot_and_ticks(front, count))
        second = self.run(lambda: self.snapshot_and_ticks(front, count))
        assert [tick_values(t) for t in first] == [tick_values(t) for t in second]

    def test_capabilities_tell_the_truth(self, front: str) -> None:
        cls = self.cls_of(front)
        caps = cls.capabilities
        assert not caps.pass_through, "a pass-through front is not an adapter the suite can run"
        assert 1 <= caps.depth_levels <= 5

        async def scenario() -> None:
            adapter = await self.connected(front)
            try:
                listed = adapter.instruments()
                assert isinstance(listed, list)
                assert caps.has_instruments or not listed, "instruments() lists some but has_instruments=False"
                for info in listed:
                    assert info.instrument_id and info.exchange_id in _EXCHANGES
                day = adapter.trading_day()
                assert day is None or re.fullmatch(r"\d{8}", day), day
            finally:
                await adapter.close()

        self.run(scenario)
        if caps.depth_levels < 5:
            ticks = self.run(lambda: self.snapshot_and_ticks(front, 1))
            deeper = [f"{side}Volume{level}" for side in ("Bid", "Ask") for level in range(caps.depth_levels + 1, 6)]
            filled = [name for t in ticks for name in deeper if getattr(t, name)]
            assert not filled, f"depth_levels={caps.depth_levels} but {filled[0]} is filled"

    def test_probe_answers_plain_json_values(self, front: str) -> None:
        async def scenario() -> tuple[Any, Any]:
            adapter = await self.connected(front)
            try:
                return await adapter.probe(), await adapter.damage()
            finally:
                await adapter.close()

        details, damage = self.run(scenario)
        assert isinstance(details, dict)
        json.dumps(details)
        assert isinstance(damage, list) and all(isinstance(line, str) for line in damage)
