"""The ``ctpshim`` command line (``ctpshim ...`` or ``python -m ctpshim ...``) and the developer tools.

What lives here: :mod:`.cli` (assembles the parser), :mod:`.commands` (one module per command:
what it does, its arguments, its ``main``), :mod:`.layouts` (the tick-CSV layouts ``convert``
reads) and :mod:`.gen_spec` (regenerates the field spec from the installed openctp-ctp; a
developer tool, not a command).

May import: anything in ctpshim (the facade, the fronts, the recordings, the adapters through the
registry).  Imported by nothing but ``python -m ctpshim`` and the ``ctpshim`` script.
"""
