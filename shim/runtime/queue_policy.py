"""The delivery policies between a market and its consumers, written down in one place.

Every consumer of a market (:mod:`ctpshim.runtime.hub`) is a sink (:mod:`ctpshim.runtime.sinks`)
with one of these policies.

**Backpressure** (an in-process API object; a recorder).  Ticks travel from the IO thread to the
API object's dispatcher thread through an in-memory queue.  When the user's
``OnRtnDepthMarketData`` is slower than the source:

* the queue may hold up to ``HIGH_WATER`` ticks waiting, besides the batch being delivered;
  above that the market stops reading from the adapter (backpressure) until fewer than
  ``LOW_WATER`` wait.  A batch counts as waiting until its delivery starts, so a large batch
  (a replay's: thousands of rows, its ticks made as they are delivered) lets the source make
  the next one meanwhile.  Nothing already queued is dropped, and ticks are never reordered.
  The marks are low on purpose: ticks that are delivered soon after they are made die young,
  which keeps the cyclic garbage collector cheap.
* One upstream feeds every API object on a front, so the slowest of them sets the pace for all.
* For a recorded or simulated source this just slows the replay down to the user's pace.  For a
  polling source (Sina, Tencent) the adapter polls less often, so the user receives the latest
  snapshot after the pause, not a backlog of stale ones: the same effect as conflation.
* When the source has been held back for more than ``WARN_AFTER`` seconds, one warning is
  logged (and again at most every ``WARN_INTERVAL`` seconds) naming the slow callback.
* Responses and connection events (``OnRsp*``, ``OnFrontConnected``...) are never held back or
  dropped.

**Conflation** (a consumer that may fall behind: a remote client).  Only the latest tick of each
instrument is kept until the consumer takes them, so its backlog is bounded by the number of
instruments and it never holds the upstream or the other consumers back.  Lazy batches are kept
as they come (their ticks made by the consumer when it takes them) up to ``CONFLATE_BATCHES``
untaken batches, then folded on the IO thread.  A consumer that has taken nothing for
``CONFLATE_CUT_OFF_AFTER`` seconds is cut off, with a logged reason.

**Bounded queue** (a consumer that needs every tick but must not hold the upstream back).  Every
tick is queued; past ``BOUNDED_LIMIT`` waiting ticks the consumer is cut off, with a logged reason.

Several sinks share one lazy batch: its ticks are made once, ``SHARED_CHUNK`` at a time, by the
first consumer to reach them (:class:`ctpshim.runtime.sinks.SharedBatch`).

A consumer that subscribes to an instrument other consumers already have gets its current
snapshot first: the newest tick of it that another in-process consumer had been handed when it
reached the point of the stream where the subscription came (so the snapshot is never older or
newer than the ticks that follow it).  The new consumer waits for that at most ``SNAPSHOT_WAIT``
seconds (only when the other consumer's callbacks are that far behind); without it, the
instrument's next tick comes first.  A consumer alone on its market keeps its last
``KEEP_BATCHES`` batches rather than noting each one's newest ticks (the cost of a lone program
stays what it was); the snapshot for a newcomer is read from those, so an instrument whose newest
tick is older than them has none, and its next tick comes first.

A callback that raises is reported (traceback on stderr) and dispatch goes on with the next
message, as openctp-ctp does.
"""

from __future__ import annotations

HIGH_WATER = 1_024
LOW_WATER = 256
WARN_AFTER = 1.0
WARN_INTERVAL = 60.0
CONFLATE_BATCHES = 64
CONFLATE_CUT_OFF_AFTER = 60.0
BOUNDED_LIMIT = 100_000
SHARED_CHUNK = 256
SNAPSHOT_WAIT = 5.0
KEEP_BATCHES = 1
