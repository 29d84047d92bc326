"""Front adapters: one module (or small package) per front scheme.

What lives here: the contract, :mod:`.base` (:class:`~ctpshim.adapters.base.Adapter`, an abstract
base class, and :class:`~ctpshim.adapters.base.Capabilities`); one adapter per scheme (``sim``,
``replay``, ``sina`` and ``tencent`` on the shared :mod:`.polling`, ``tcp`` for the openctp
bridge); :mod:`._template`, a working adapter to copy (not a built-in scheme).  The conformance
suite every adapter passes is :mod:`ctpshim.testing`.

May import: the CTP domain (:mod:`ctpshim.ctp`), :mod:`ctpshim.errors`, :mod:`ctpshim.messages`,
:mod:`ctpshim.fronts.url` (settings), :mod:`ctpshim.recording` (replay), and the runtime's small
helpers (:mod:`ctpshim.runtime.io_loop`, :mod:`ctpshim.runtime.reconnect`; the bridge also
:mod:`ctpshim.runtime.backends`); never the API classes.  Imported by the registry (:mod:`ctpshim.fronts.registry`), lazily when a front of a
scheme is first used: ``import ctpshim`` imports no adapter.
"""
