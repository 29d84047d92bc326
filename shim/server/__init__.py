"""``ctpshim serve``: one upstream per source, many clients, over several protocols.

The server holds named sources (any ctpshim front address), each through the shared market
(:mod:`ctpshim.runtime.hub`), and serves them to remote clients:

* :mod:`.settings`: the command line's and the TOML file's settings (sources, listen addresses,
  tokens, limits, Redis);
* :mod:`.server`: :class:`~ctpshim.server.server.Server`, which starts and stops everything;
* :mod:`.fanout`: one feed per source: subscriptions reference-counted over all clients, the
  latest snapshot of each instrument for late subscribers, each tick encoded once per format;
* :mod:`.channel`: the send policy per client, written once: replies never dropped, market data
  conflated to the latest tick per instrument when a client falls behind, cut off past a bound;
* :mod:`.limits` and :mod:`.metrics`: tokens, rate limits, ``/health`` and ``/metrics``;
* :mod:`.binary`: the ``ctpshim://`` binary protocol (``docs/PROTOCOL.md``; codec in :mod:`ctpshim.wire`);
* :mod:`.web`, :mod:`.webctp`, :mod:`.diff`: HTTP, the webctp JSON protocol, TianQin's DIFF;
  ``page/`` holds the web page served at ``/``;
* :mod:`.trading`: a remote client's trader API on the server's simulated counter;
* :mod:`.redis_bus`: publishing every source's ticks to Redis Streams.

Everything runs on the IO loop (:mod:`ctpshim.runtime.io_loop`).  May import every other part of
``ctpshim`` except the command line; imported by the ``serve`` command only (``import ctpshim``
never imports it).
"""
