"""The ``ctpshim`` command line (``ctpshim ...`` or ``python -m ctpshim ...``)."""
