"""The facade's machinery: the API classes' lifecycle, requests and argument checks
(:mod:`.lifecycle`), what a ctpshim front answers to trader requests (:mod:`.trader_emulation`),
and the assembly of the ``mdapi``/``tdapi`` modules from the spec (:mod:`.surface`).

Users never import this package: they use :mod:`ctpshim.mdapi` and :mod:`ctpshim.tdapi`.
May import: :mod:`ctpshim.ctp`, :mod:`ctpshim.fronts`, :mod:`ctpshim.runtime`.
"""
