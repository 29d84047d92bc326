"""The ``ctpshim://`` binary protocol: frames, CTP 6.7.11 struct layouts, call and callback payloads.

Shared by the server (:mod:`ctpshim.server.binary`) and its clients (:mod:`ctpshim.adapters.ctpshim`,
the native libraries).  ``docs/PROTOCOL.md`` is the specification; this package implements it.
May import :mod:`ctpshim.ctp` only.
"""
