"""openctp-ctp's ``thosttraderapi`` (``tdapi``): the trader API, its Spi, every field class and
constant.  Against a market-data-only front it logs in and answers instrument queries, and
refuses orders through CTP's error callbacks (see :mod:`ctpshim.api.trader_emulation`)."""

from .api.surface import populate

populate(globals(), "tdapi")
del populate
