"""The CTP domain: what CTP means, with no threads, no I/O loop and no sources.

Lives here: the committed spec of openctp-ctp's surface (``spec/``) and the field classes built
from it (:mod:`.fields`); the depth-market-data conventions every tick follows (:mod:`.market_data`);
the trading calendar and China time (:mod:`.calendar`); futures products, contracts and their
listing rules (:mod:`.products`); stocks (:mod:`.stocks`).

May import: the standard library, :mod:`ctpshim.errors` and :mod:`ctpshim.messages`, and each
other.  Imported by everything else; it imports nothing of the runtime, the API or the adapters.
"""
