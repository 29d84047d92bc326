"""openctp-ctp's ``thostmduserapi`` (``mdapi``): the market-data API, its Spi, every field class
and constant, with data from the front address given to ``RegisterFront``."""

from .api.surface import populate

populate(globals(), "mdapi")
del populate
