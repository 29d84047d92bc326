"""The CTP domain: what CTP means, with no threads, no I/O loop and no sources.

Lives here: the committed spec of openctp-ctp's surface (``spec/``) and the field classes built
from it (:mod:`.fields`); CTP 6.7.8's error numbers and texts (:mod:`.error_codes`, from
``spec/ctp_error_codes.json``); margin and commission levels per product (:mod:`.rates`, from
``data/rates.csv``); the depth-market-data conventions every tick follows, tick stamping and
AveragePrice among them (:mod:`.market_data`); China time, the one clock everything reads "now"
from (:mod:`.clock`); the trading calendar and the night-session boundaries (:mod:`.calendar`);
the exchanges and their names (:mod:`.exchanges`); futures products, contracts, their listing rules
and trading hours (:mod:`.products`); stocks (:mod:`.stocks`).

May import: the standard library, :mod:`ctpshim.errors` and :mod:`ctpshim.messages`, and each
other.  Imported by everything else; it imports nothing of the runtime, the API or the adapters
(the facade's field classes come from :func:`.fields.field_factory`, which the domain reaches too).
"""
