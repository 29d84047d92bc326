"""``sim://``: a simulated futures market, deterministic per seed, with no network.

Every contract of a known product (any of the six exchanges' futures in
:mod:`ctpshim.ctp.products`) can be subscribed; each one follows its own seeded path, drawn from
``seed``, its instrument ID and the date, so the same seed and start give the same ticks whatever
else is subscribed, and a later start sees the same market.  The ticks keep CTP's invariants:
prices on the product's tick grid and inside the limit band around the pre-settlement price;
five book levels with at least one tick of spread; cumulative Volume and Turnover (with the
contract multiplier) that never decrease within a trading day; Open/High/Low consistent with
LastPrice; AveragePrice and dates as CTP reports them (via :mod:`ctpshim.ctp.market_data`).
Open interest moves both ways, as on a real exchange.

``hours=real`` follows each product's day and night sessions and the exchange calendar (nothing
ticks at lunch, at weekends or on holidays), with the opening auction a minute before the first
session and the closing snapshot carrying ClosePrice and SettlementPrice; ``hours=always`` ticks
around the clock.  Each trading day starts from the previous day's settlement.

Example: ``sim://?instruments=rb2705,au2706&seed=7&speed=max&start=2026-11-20T09:00``.

Modules, each importing only those above it (and the CTP domain, front addresses, errors):

- :mod:`.settings`  the URL settings, their parsers and the check made at ``RegisterFront``
- :mod:`.planning`  the market clock and pacing, each contract's trading-day schedule (sessions,
                    auction, settlement snapshot), and the coarse path of each trading day
- :mod:`.model`     the market model: one contract's prices, book, volumes and open interest,
                    round by round (what a simulated trader's matcher reads)
- :mod:`.adapter`   :class:`SimAdapter`: subscriptions, ``probe()``, planning blocks of rounds on
                    the IO thread, and the lazy :class:`~.adapter.Block` batches that ``ticks()``
                    yields: each made once, in order, by whichever consumer iterates it first;
                    a paced round made on the IO thread just before its mark, released at it

Threads: the planner's state (market clock, openings, stamper) lives on the IO thread; a
contract's model is advanced only by the thread making a block, one block at a time.

The front registry names ``ctpshim.adapters.sim:SimAdapter``.
"""

from .adapter import Block, SimAdapter
from .planning import MARKET_END

__all__ = ["SimAdapter", "Block", "MARKET_END"]
