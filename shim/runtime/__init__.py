"""The runtime between the facade and the sources: the one IO thread and its loop
(:mod:`.io_loop`), the market hub that shares one upstream per source, the sessions behind API
objects (:mod:`.session`), the dispatcher threads that call the user's Spi (:mod:`.dispatcher`),
and the policies written down once: queues and sinks (:mod:`.queue_policy`), reconnect and
failover (:mod:`.reconnect`).

May import: :mod:`ctpshim.ctp`, :mod:`ctpshim.fronts`, :mod:`ctpshim.errors`,
:mod:`ctpshim.messages`; adapters only through the registry.  Imported by :mod:`ctpshim.api`
and the command line; never by :mod:`ctpshim.ctp`.
"""
