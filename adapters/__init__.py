"""Front adapters: one module per front scheme.

The contract every adapter implements is :class:`ctpshim.adapters.base.Adapter`; the registry
that maps schemes to adapters is :mod:`ctpshim.fronts.registry`.  Nothing here is imported by
``import ctpshim``: adapters load lazily when a front of their scheme is first used.
"""
