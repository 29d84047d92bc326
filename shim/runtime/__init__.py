"""The runtime between the facade and the sources.

* :mod:`.io_loop`: the one IO thread and its asyncio loop; every adapter runs there.
* :mod:`.hub`: one market per source per process: one adapter, reference-counted subscriptions,
  the latest tick per instrument, fan-out to sinks, the cached trading day and instruments, and
  the hook that observes each tick as an API object hands it to its program.
* :mod:`.sinks`: the consumers of a market, each with its delivery policy (backpressure,
  conflation, a bounded queue).
* :mod:`.session`: the session behind one API object: front list, login state, subscriptions,
  reconnect and failover, on a market through a backpressure sink.
* :mod:`.dispatcher`: the thread per API object that calls the user's Spi, in order.
* :mod:`.backends`: what an API object drives: a session, or the openctp bridge (``tcp://``).
* The policies, written down once: delivery (:mod:`.queue_policy`), reconnect and failover
  (:mod:`.reconnect`).

May import: :mod:`ctpshim.ctp`, :mod:`ctpshim.fronts`, :mod:`ctpshim.errors`,
:mod:`ctpshim.messages`; adapters only through the registry.  Imported by :mod:`ctpshim.api`
and the command line; never by :mod:`ctpshim.ctp`.
"""
