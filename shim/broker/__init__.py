"""The simulated CTP counter behind ``tdapi`` on every ctpshim front (not ``tcp://``).

Orders are checked as CTP checks them, matched against the ticks the program is given (never a
later one), and booked into accounts and positions that live in SQLite and settle at each
trading-day change of the market's clock.  ``../SIM_TRADING.md`` in the reference notes is the
specification; the README's trader section is the user's manual.

* :mod:`.terms`: what the counter knows of an instrument (exchange rules, multiplier, rates);
* :mod:`.settings`: the ``trader.*`` front settings;
* :mod:`.orders`: orders and trades, their life cycle and the callback sequences per exchange;
* :mod:`.checks`: the CTP-layer and exchange-layer checks, with CTP's codes and texts;
* :mod:`.matching`: the book of a tick, fills level by level, the queue model;
* :mod:`.ledger`: accounts, positions, position details: margin, commission, profit, available;
* :mod:`.settlement` and :mod:`.statement`: end of day and the settlement statement text;
* :mod:`.store`: SQLite persistence, written off the IO loop, callbacks only after commit;
* :mod:`.queries`: the answers to ``ReqQry*`` and CTP's query flow control;
* :mod:`.counter`: one counter per book and database, shared by every trader API on it;
* :mod:`.responder`: what a trader API's requests become on a ctpshim front.

May import :mod:`ctpshim.ctp` and :mod:`ctpshim.runtime`; imported by :mod:`ctpshim.api` and the
command line.  Never imports an adapter.
"""
