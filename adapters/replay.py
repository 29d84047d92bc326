"""``replay://PATH``: recorded trading days through the CTP API, looped around the clock.

PATH is a recording file (``.parquet`` archive or ``.arrows`` live file) or a folder of them;
days play in order, and several files of one day merge in time order.  With no PATH, the bundled
real day plays (CZCE RM705, 2017-03-20, from vn.py; see ``shim/data/SOURCES.md``).

Ticks are paced by their ``ReceiveTime``.  ``rebase=now`` (the default) restamps TradingDay,
ActionDay, UpdateTime and UpdateMillisec with the moment each tick is delivered (China time), so
programs that drop ticks far from their clock, as vn.py's recorder does, take them; ``none``
keeps the recorded stamps.

Examples: ``replay://?loop=true``, ``replay:///data/ticks?speed=10&gaps=skip``,
``replay://day.parquet?speed=max&rebase=none&instruments=rb2605``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterable, Iterator
from urllib.parse import unquote

from ..calendar import CHINA, trading_day_of, yyyymmdd
from ..errors import UpstreamProtocolError, UpstreamUnavailable
from ..market_data import depth_index
from ..products import InstrumentInfo, parse_instrument
from ..url import FrontURL, Setting, boolean, choice, id_list, speed
from .base import Adapter, Capabilities, require_extra

if TYPE_CHECKING:
    from ..recording import TickRows  # pyarrow is imported only when a recording is read

log = logging.getLogger("ctpshim.replay")

BUNDLED_DAY = Path(sys.modules["ctpshim"].__file__).resolve().parent / "data" / "CZCE_RM705_20170320.parquet"
GAP = 60 * 10**9  # ns: with gaps=skip, a silence longer than this is skipped
SKIPPED_GAP = 5 * 10**8  # ns: what a skipped gap shrinks to
_TIME_OF_DAY = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")


def _time_of_day(text: str) -> str:
    match = _TIME_OF_DAY.match(text.strip())
    if not match:
        raise ValueError("expected a time of day as HH:MM or HH:MM:SS, e.g. 09:00 or 21:00:00")
    hour, minute, second = match.groups()
    return f"{int(hour):02d}:{minute}:{second or '00'}"


def recording_path(url: FrontURL) -> Path:
    """The PATH of ``replay://PATH?...``, relative or absolute; the bundled day when empty."""
    text = unquote(url.raw.split("://", 1)[1].split("?", 1)[0])
    return Path(text).expanduser() if text else BUNDLED_DAY


class ReplayAdapter(Adapter):
    """Recorded days (see the module docstring)."""

    scheme = "replay"
    settings = (
        Setting("speed", speed, 1.0, "1 = real time, N = N times faster, max = as fast as possible"),
        Setting("loop", boolean, False, "start again at the end: the 7x24 mode"),
        Setting("rebase", choice("now", "none"), "now",
                "now: stamp ticks with today's date and the current time; none: the recorded stamps"),
        Setting("start", _time_of_day, None, "replay only ticks at or after this time of day (HH:MM[:SS])"),
        Setting("end", _time_of_day, None, "replay only ticks before this time of day (HH:MM[:SS])"),
        Setting("instruments", id_list, None, "replay only these instruments (comma-separated)"),
        Setting("gaps", choice("keep", "skip"), "keep",
                "keep: wait through the lunch break and the night-to-day gap; skip: go straight on"),
    )
    capabilities = Capabilities(depth_levels=5, deterministic=True, has_instruments=True)

    @classmethod
    def check(cls, url: FrontURL, settings: dict[str, Any]) -> None:
        """Refuse an address whose recording does not exist or cannot be listed."""
        require_extra("pyarrow", "recordings", "replay:// reads recordings with pyarrow")
        from ..recording import RecordingError, count_ticks, recording_days

        try:
            days = recording_days(recording_path(url))
            if not any(count_ticks(path) for day in days for path in day.paths):
                raise ValueError(f"{recording_path(url)}: the recording has no ticks")
        except RecordingError as exc:
            raise ValueError(str(exc)) from None

    def __init__(self, url: FrontURL, settings: dict[str, Any]) -> None:
        super().__init__(url, settings)
        self.path = recording_path(url)
        self.speed: float = settings["speed"]
        self.rebase = settings["rebase"] == "now"
        self._days: list[Any] = []
        self._subscribed: set[str] = set()
        self._latest: dict[str, TickRows] = {}  # instrument -> the rows holding its newest tick
        self._settled: set[str] = set()  # those whose entry is a copy of that one row (see _settle)
        self._snapshots: list[Any] = []
        self._wake = asyncio.Event()
        self._known: set[str] | None = None
        self._pending_check: list[str] = []
        self._current_day = ""
        index = depth_index()
        self._stamp_positions = [index[name] for name in ("TradingDay", "ActionDay", "UpdateTime", "UpdateMillisec")]
        self._learner: asyncio.Task[None] | None = None

    # -- the contract ---------------------------------------------------------------------------

    async def connect(self) -> None:
        from ..recording import RecordingError, recording_days

        try:
            self._days = recording_days(self.path)
        except RecordingError as exc:
            raise UpstreamUnavailable(str(exc)) from None
        # Kept: the loop holds tasks only weakly, and this one must not vanish mid-scan.
        self._learner = asyncio.get_running_loop().create_task(self._learn_instruments())

    async def probe(self) -> dict[str, Any]:
        """Read every file of the recording: days, ticks, instruments and the recorded span."""
        return await asyncio.to_thread(self._survey)

    def _survey(self) -> dict[str, Any]:
        from ..recording import RecordingError, describe

        try:
            reports = describe(self.path)
        except (RecordingError, OSError) as exc:
            raise UpstreamProtocolError(f"replay: unreadable file: {exc}") from None
        spans = [report for report in reports if report["ticks"]]
        if not spans:
            raise UpstreamProtocolError(f"replay: {self.path} holds no ticks")
        return {
            "files": len(reports),
            "trading_days": sorted(set().union(*(report["trading_days"] for report in reports))),
            "ticks": sum(report["ticks"] for report in reports),
            "instruments": len(set().union(*(report["instruments"] for report in reports))),
            "first": min(report["first"] for report in spans),
            "last": max(report["last"] for report in spans),
        }

    async def _learn_instruments(self) -> None:
        """Find the recording's instruments in a worker thread (for warnings and ReqQryInstrument)."""
        from ..recording import RecordingError

        try:
            known = await asyncio.to_thread(self._scan_instruments)
        except RecordingError as exc:  # the player meets the same file and reports it
            log.debug("replay: the instrument list is unknown: %s", exc)
            return
        self._known = known
        self._warn_unknown(self._pending_check)
        self._pending_check = []

    def _scan_instruments(self) -> set[str]:
        from ..recording import instruments_in

        return set().union(*(instruments_in(path) for day in self._days for path in day.paths))

    def _warn_unknown(self, ids: Iterable[str]) -> None:
        if self._known is None:
            self._pending_check.extend(ids)
            return
        missing = [i for i in ids if i not in self._known]
        if missing:
            log.warning("replay: %s not in %s (subscription accepted as CTP does; no ticks will come)",
                        ", ".join(missing), self.path)

    def instruments(self) -> list[InstrumentInfo]:
        wanted = self.config["instruments"]
        known = sorted(self._known or set(self._latest))
        return [info for info in map(parse_instrument, known) if info and (not wanted or info.instrument_id in wanted)]

    def trading_day(self) -> str | None:
        if self.rebase:
            return yyyymmdd(trading_day_of(datetime.now(CHINA).replace(tzinfo=None)))
        return self._current_day or (self._days[0].day if self._days else None)

    async def subscribe(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        self._subscribed.update(ids)
        for instrument_id in ids:
            chunk = self._latest.get(instrument_id)
            newest = chunk.last_of(instrument_id) if chunk is not None else None
            if newest is not None:
                self._snapshots.extend(self._restamped(newest))
        self._warn_unknown(ids)
        self._wake.set()

    async def unsubscribe(self, ids: Iterable[str]) -> None:
        self._subscribed.difference_update(ids)

    async def close(self) -> None:
        if self._learner is not None:
            self._learner.cancel()

    async def ticks(self) -> AsyncIterator[Any]:
        # Batches are TickRows: the dispatcher thread turns them into ticks (see TickRows).
        while not self._subscribed:
            self._wake.clear()
            await self._wake.wait()
        max_speed = math.isinf(self.speed)
        speed_factor = 0.0 if max_speed else 1.0 / self.speed
        skip_gaps = self.config["gaps"] == "skip"
        wall_start = time.monotonic()
        first_receive: int | None = None
        skipped = 0  # ns of recording time removed by skipped gaps
        previous = 0
        while True:
            for chunk in self._chunks():
                fresh: set[str] = set()
                if snapshots := self._take_snapshots():
                    yield snapshots
                if max_speed:
                    rows = self._due(chunk, fresh)
                    if rows is not None:
                        yield rows
                    self._settle(fresh)
                    continue
                sent = 0  # rows of this chunk already yielded
                for position, receive in enumerate(chunk.receive_times()):
                    if first_receive is None:
                        first_receive = previous = receive
                    if skip_gaps and receive - previous > GAP:
                        skipped += receive - previous - SKIPPED_GAP
                    previous = receive
                    due = wall_start + (receive - first_receive - skipped) * 1e-9 * speed_factor
                    delay = due - time.monotonic()
                    if delay > 0.001:
                        if position > sent:
                            rows = self._due(chunk.slice(sent, position - sent), fresh)
                            if rows is not None:
                                yield rows
                            sent = position
                        await asyncio.sleep(delay)
                        if snapshots := self._take_snapshots():  # for a subscription made meanwhile
                            yield snapshots
                if sent < len(chunk):
                    rows = self._due(chunk.slice(sent), fresh)
                    if rows is not None:
                        yield rows
                self._settle(fresh)
            if not self.config["loop"]:
                log.info("replay: %s ended (loop=false); the front stays connected and silent", self.path)
                while True:  # snapshots for later subscriptions, including one made just now
                    if snapshots := self._take_snapshots():
                        yield snapshots
                        continue
                    self._wake.clear()
                    await self._wake.wait()
            # Looping: the next pass continues the replay clock from now.
            wall_start = time.monotonic()
            first_receive = None
            skipped = 0

    def _take_snapshots(self) -> list[Any]:
        """The snapshots that new subscriptions are owed (CTP sends one before their ticks)."""
        snapshots, self._snapshots = self._snapshots, []
        return snapshots

    def _due(self, rows: TickRows, fresh: set[str]) -> TickRows | None:
        """Rows whose time has come, as delivered: the subscribed ones, restamped; None if none.

        Their instruments are added to ``fresh``, and the rows are remembered as holding those
        instruments' newest ticks, for the snapshot a later subscription gets.
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        names = pc.unique(rows.batch.column("InstrumentID")).to_pylist()
        self._latest.update(dict.fromkeys(names, rows))
        fresh.update(names)
        if not self._subscribed.issuperset(names):
            rows = rows.filter(pc.is_in(rows.batch.column("InstrumentID"), value_set=pa.array(list(self._subscribed))))
        return self._restamped(rows) if len(rows) else None

    def _stamps(self) -> tuple[str, str, str, int]:
        """(TradingDay, ActionDay, UpdateTime, UpdateMillisec) for the current moment, China time."""
        now = datetime.now(CHINA).replace(tzinfo=None)
        return yyyymmdd(trading_day_of(now)), yyyymmdd(now.date()), now.strftime("%H:%M:%S"), now.microsecond // 1000

    def _restamped(self, rows: TickRows) -> TickRows:
        """``rows`` as they are delivered: stamped with the current moment under ``rebase=now``."""
        if not self.rebase:
            return rows
        return rows.with_values(dict(zip(self._stamp_positions, self._stamps())))

    # -- reading ----------------------------------------------------------------------------------

    def _chunks(self) -> Iterator[TickRows]:
        """The subscribed rows in time order, day after day."""
        from ..recording import merge_in_time

        for day in self._days:
            self._current_day = day.day
            sources = [self._file_chunks(path) for path in day.paths]
            yield from sources[0] if len(sources) == 1 else merge_in_time(sources)

    def _file_chunks(self, path: Path) -> Iterator[TickRows]:
        import pyarrow as pa
        import pyarrow.compute as pc

        from ..recording import TickRows, constant_values, read_tables

        wanted = self.config["instruments"]
        start, end = self.config["start"], self.config["end"]
        value_set = pa.array(list(wanted)) if wanted else None
        for table in read_tables(path):
            mask = None
            if value_set is not None:
                mask = pc.is_in(table.column("InstrumentID"), value_set=value_set)
            if start or end:
                inside = _time_window(pc, table.column("UpdateTime"), start, end)
                mask = inside if mask is None else pc.and_(mask, inside)
            if mask is not None:
                table = table.filter(mask)
            constants = constant_values(table)
            for batch in table.to_batches():  # one per decoded piece: its ticks are made in delivery
                yield TickRows(batch, constants)

    def _settle(self, fresh: set[str]) -> None:
        """Keep only the newest row of the instruments that did not tick in the latest piece.

        A slice of a row group keeps the whole group in memory: an instrument that stops ticking
        (an illiquid contract, a day's last tick) would otherwise hold on to its group for good,
        and a many-instrument day to most of its file.
        """
        self._settled -= fresh
        for name in self._latest.keys() - fresh - self._settled:
            newest = self._latest[name].last_of(name, copy=True)
            if newest is not None:
                self._latest[name] = newest
            self._settled.add(name)


def _time_window(pc: Any, clock: Any, start: str | None, end: str | None) -> Any:
    """Ticks whose time of day is in [start, end); a window past midnight (21:00-02:30) wraps."""
    after = pc.greater_equal(clock, start) if start else None
    before = pc.less(clock, end) if end else None
    if after is None:
        return before
    if before is None:
        return after
    return pc.or_(after, before) if start > end else pc.and_(after, before)
