"""The queue policy between a source and a user's callbacks, written down in one place.

Ticks travel from the IO thread to an API object's dispatcher thread through an in-memory
queue.  When the user's ``OnRtnDepthMarketData`` is slower than the source:

* the queue may hold up to ``HIGH_WATER`` ticks waiting, besides the batch being delivered;
  above that the session stops reading from the adapter (backpressure) until fewer than
  ``LOW_WATER`` wait.  A batch counts as waiting until its delivery starts, so a large batch
  (a replay's: thousands of rows, its ticks made as they are delivered) lets the source make
  the next one meanwhile.  Nothing already queued is dropped, and ticks are never reordered.
  The marks are low on purpose: ticks that are delivered soon after they are made die young,
  which keeps the cyclic garbage collector cheap (with a 64k-tick queue of made ticks,
  throughput at full speed was a third lower).
* For a recorded or simulated source this just slows the replay down to the user's pace.  For a
  polling source (Sina, Tencent) the adapter polls less often, so the user receives the latest
  snapshot after the pause, not a backlog of stale ones: the same effect as conflation.
* When the source has been held back for more than ``WARN_AFTER`` seconds, one warning is
  logged (and again at most every ``WARN_INTERVAL`` seconds) naming the slow callback.
* Responses and connection events (``OnRsp*``, ``OnFrontConnected``...) are never held back or
  dropped.

A callback that raises is reported (traceback on stderr) and dispatch goes on with the next
message, as openctp-ctp does.
"""

from __future__ import annotations

HIGH_WATER = 1_024
LOW_WATER = 256
WARN_AFTER = 1.0
WARN_INTERVAL = 60.0
