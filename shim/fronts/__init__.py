"""Front addresses: parsing ``scheme://...`` addresses and their settings (:mod:`.url`) and the
scheme registry that maps a scheme to its adapter class, built-ins first, then the
``ctpshim.adapters`` entry points (:mod:`.registry`).

May import: :mod:`ctpshim.errors`, :mod:`ctpshim.messages`, and adapters lazily through the
registry.  Imported by the API, the runtime, the adapters (for their settings) and the command line.
"""
