"""ctpshim's native CTP libraries: ``libthostmduserapi_se.so`` and ``libthosttraderapi_se.so`` with CTP
6.7.11's ABI, thin C++ clients of ``ctpshim serve`` over its binary protocol (docs/PROTOCOL.md).

``generate`` writes their C++ declarations from the committed spec (``ctpshim/ctp/spec``), so no SFIT
header is needed; ``build`` compiles the sources in the repository's ``native/`` with the system C++
compiler; ``install`` swaps them into an installed openctp-ctp or vnpy_ctp (keeping the originals), or
gives the preload environment that changes no installed file.  Used by ``ctpshim native`` and
``ctpshim run --native``; nothing here is imported by the facade or the runtime.
"""
