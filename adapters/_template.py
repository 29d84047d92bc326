"""A template adapter: copy this file to write one for your own source.

It works as it stands: ``template://`` is a small deterministic market (a seeded random walk per
contract, one tick per contract every ``interval`` seconds of market time from ``start``), and it
passes the conformance suite (``tests/adapters/test_conformance.py``).  It is not a built-in
scheme; register it to try it::

    from ctpshim.fronts import registry
    from ctpshim.adapters._template import TemplateAdapter
    registry.register_adapter("template", TemplateAdapter)
    api.RegisterFront("template://?instruments=rb2701,au2612&speed=10")

A package of your own registers through an entry point instead (read only when a scheme is not
built in), in its ``pyproject.toml``::

    [project.entry-points."ctpshim.adapters"]
    myfeed = "mypackage.myfeed:MyFeedAdapter"

and its tests run the suite on it::

    from ctpshim.testing import AdapterConformance

    class TestMyFeed(AdapterConformance):
        address = "myfeed://?..."
        adapter_class = MyFeedAdapter

What an adapter must implement (the class fails when defined if one is missing):
    ``scheme``, ``connect``, ``subscribe``, ``unsubscribe``, ``ticks``.
What it may implement: ``settings``, ``capabilities``, ``check``, ``instruments``,
``trading_day``, ``close``, ``probe``, ``damage``; see :mod:`ctpshim.adapters.base`.
What it must not do: threads, retries, reconnects, CTP callbacks (the hub and the sessions do
those), rules of its own for stamps or prices (:mod:`ctpshim.ctp.market_data` has them once).
"""

from __future__ import annotations

import asyncio
import math
import random
import zlib
from datetime import datetime, timedelta
from typing import Any, AsyncIterator, Iterable

from ..ctp.calendar import trading_day_of, yyyymmdd
from ..ctp.market_data import (
    DATE_CONVENTIONS, Stamper, average_price, blank_values, check_values, depth_index, make_tick, set_level,
)
from ..ctp.products import InstrumentInfo, parse_instrument
from ..errors import UpstreamUnavailable
from ..fronts.url import FrontURL, Setting, boolean, choice, id_list, integer, number, speed
from .base import Adapter, Capabilities


def _moment(text: str) -> datetime:
    """A market time, China time, ``YYYY-MM-DDTHH:MM[:SS]``."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("expected a time such as 2026-11-20T09:00") from None


class TemplateAdapter(Adapter):
    """A deterministic random-walk market for the contracts in ``instruments``."""

    # -- must: the scheme ---------------------------------------------------------------------
    scheme = "template"

    # -- may: settings (query keys), each validated by the registry with its parser -------------
    settings = (
        Setting("instruments", id_list, ("rb2701", "au2612"), "comma-separated futures contracts the market lists"),
        Setting("seed", integer(0, 2**31 - 1), 1, "random seed: the same seed gives the same market"),
        Setting("start", _moment, datetime(2026, 11, 20, 9, 0), "market time of the first tick, China time"),
        Setting("interval", number(0, 60), 0.5, "seconds of market time between ticks"),
        Setting("speed", speed, 1.0, "1 = real time, N = N times faster, max = as fast as possible"),
        Setting("dates", choice(*DATE_CONVENTIONS), "correct", "correct (SimNow-style) or exchange (DCE/CZCE quirks)"),
        Setting("refuse", boolean, False, "refuse to connect, like a source that is down"),
    )
    # -- may: capabilities (what the hub, the sessions and ping may rely on) ----------------------
    capabilities = Capabilities(depth_levels=1, deterministic=True, has_instruments=True)

    # -- may: check, at RegisterFront: what the settings alone cannot judge ------------------------
    @classmethod
    def check(cls, url: FrontURL, settings: dict[str, Any]) -> None:
        if url.host or url.port is not None or url.path not in ("", "/"):
            raise ValueError("template:// takes no host or path; settings go after '?'")
        for instrument_id in settings["instruments"]:
            if parse_instrument(instrument_id, settings["start"].date()) is None:
                raise ValueError(f"instruments: {instrument_id!r} is not a futures contract ctpshim knows")

    # -- may: __init__, no I/O ------------------------------------------------------------------
    def __init__(self, url: FrontURL, settings: dict[str, Any]) -> None:
        super().__init__(url, settings)
        start: datetime = settings["start"]
        self._stamper = Stamper(settings["dates"])
        self._clock = start  # market time of the last round made
        self._known: dict[str, _Contract] = {}
        for instrument_id in settings["instruments"]:
            info = parse_instrument(instrument_id, start.date())
            assert info is not None  # check() refused the others
            self._known[instrument_id] = _Contract(info, settings["seed"])
        self._active: dict[str, _Contract] = {}  # subscribed, in subscription order
        self._wake = asyncio.Event()

    # -- must: connect --------------------------------------------------------------------------
    async def connect(self) -> None:
        if self.config["refuse"]:
            raise UpstreamUnavailable(f"{self.url.raw}: connection refused (refuse=true)")

    # -- must: subscribe: snapshots owed for the known, one warning for the unknown -------------
    async def subscribe(self, ids: Iterable[str]) -> None:
        unknown = []
        for instrument_id in ids:
            contract = self._known.get(instrument_id)
            if contract is None:
                unknown.append(instrument_id)
                continue
            if instrument_id not in self._active:
                self._active[instrument_id] = contract
                self.owe_snapshot([contract.tick(self._clock, self._stamper)])
        self.warn_unknown(unknown, "not in this market's instruments=")
        self._wake.set()

    # -- must: unsubscribe ----------------------------------------------------------------------
    async def unsubscribe(self, ids: Iterable[str]) -> None:
        for instrument_id in ids:
            self._active.pop(instrument_id, None)

    # -- must: ticks, batches in time order -----------------------------------------------------
    async def ticks(self) -> AsyncIterator[list[Any]]:
        step = timedelta(seconds=self.config["interval"])
        pause = 0.0 if math.isinf(self.config["speed"]) else self.config["interval"] / self.config["speed"]
        while True:
            if not self._active:
                self._wake.clear()
                await self._wake.wait()
                continue
            await asyncio.sleep(pause)  # at speed=max a zero sleep: the IO loop stays responsive
            self._clock += step
            for contract in self._known.values():  # every contract walks: the same seed, the same path
                contract.walk()
            yield [contract.tick(self._clock, self._stamper) for contract in self._active.values()]

    # -- may: what the source knows; called on the IO thread only --------------------------------
    def instruments(self) -> list[InstrumentInfo]:
        return [contract.info for contract in self._known.values()]

    def trading_day(self) -> str:
        return yyyymmdd(trading_day_of(self._clock))

    # -- may: a health check for `ctpshim ping` --------------------------------------------------
    async def probe(self) -> dict[str, Any]:
        return {"instruments": len(self._known), "market_time": self._clock.isoformat(" ")}


class _Contract:
    """One contract's random walk and the tick it makes."""

    def __init__(self, info: InstrumentInfo, seed: int) -> None:
        self.info = info
        product = info.product
        self._random = random.Random(seed * 1_000_003 + zlib.crc32(info.instrument_id.encode()))
        self.settlement = product.price
        self.price = product.price
        self.volume = 0
        self.turnover = 0.0

    def walk(self) -> None:
        product = self.info.product
        band = self.settlement * product.limit
        moved = self.price + product.tick * self._random.choice((-1, 0, 0, 1))
        self.price = round(min(max(moved, self.settlement - band), self.settlement + band), product.decimals)
        traded = self._random.randint(0, 20)
        self.volume += traded
        self.turnover += traded * self.price * product.multiplier

    def tick(self, moment: datetime, stamper: Stamper) -> Any:
        info, product = self.info, self.info.product
        values = blank_values(info.instrument_id, info.exchange_id)
        index = depth_index()
        values[index["LastPrice"]] = self.price
        values[index["PreSettlementPrice"]] = self.settlement
        values[index["Volume"]] = self.volume
        values[index["Turnover"]] = self.turnover
        values[index["AveragePrice"]] = average_price(info.exchange_id, self.turnover, self.volume,
                                                      product.multiplier, product.tick)
        set_level(values, "Bid", 1, round(self.price - product.tick, product.decimals), 5)
        set_level(values, "Ask", 1, round(self.price + product.tick, product.decimals), 5)
        stamper.apply(values, moment, info.exchange_id)
        # A source of outside data checks every value before make_tick, which trusts them.
        return make_tick(check_values(values))
