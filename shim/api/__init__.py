"""The facade's machinery, behind :mod:`ctpshim.mdapi` and :mod:`ctpshim.tdapi`:

* :mod:`.lifecycle`: the API classes: creation, ``Init``/``Join``/``Release``, fronts, Spi, and the
  request methods, each handed to the object's backend (:mod:`ctpshim.runtime.backends`);
* :mod:`.arguments`: the SWIG argument checks (openctp's exception types and messages);
* :mod:`.responders` and :mod:`.trader_emulation`: what a ctpshim front answers to md and trader
  requests;
* :mod:`.surface`: the assembly of the ``mdapi``/``tdapi`` modules from the spec.

Users never import this package.  May import: :mod:`ctpshim.ctp`, :mod:`ctpshim.fronts`,
:mod:`ctpshim.runtime`.  Imported by the facade modules and the command line (``FRONT_ENV``,
``front_override`` from :mod:`.lifecycle`).
"""
