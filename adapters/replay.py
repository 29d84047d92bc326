"""``replay://PATH``: recorded trading days through the CTP API, looped around the clock.

PATH is a recording file (``.parquet`` archive or ``.arrows`` live file) or a folder of them;
days play in order, and several files of one day merge in time order.  With no PATH, a bundled
real day plays: SHFE ru1901's trading day 20181009, night session and day, with volume and open
interest (from zhugf/java-trader, Apache-2.0), or with ``bundled=RM705`` CZCE RM705's 2017-03-20
day session (from vn.py, MIT); see ``shim/data/SOURCES.md``.

Ticks are paced by their ``ReceiveTime``.  ``rebase=now`` (the default) restamps TradingDay,
ActionDay, UpdateTime and UpdateMillisec with the moment each tick is delivered (China time, from
:mod:`ctpshim.ctp.clock`), as :class:`ctpshim.ctp.market_data.Stamper` stamps every source's ticks,
with the ``dates=`` convention, so programs that drop ticks far from their clock, as vn.py's
recorder does, take them; ``none`` keeps the recorded stamps.

One adapter serves every API object on its front (the market hub): the batches it yields are
:class:`~ctpshim.recording.TickRows`, immutable, made into ticks by whichever consumer iterates
them, on its own thread, while the adapter reads on.

Examples: ``replay://?loop=true``, ``replay://?bundled=RM705``, ``replay:///data/ticks?speed=10&gaps=skip``,
``replay://day.parquet?speed=max&rebase=none&instruments=rb2605``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterable, Iterator
from urllib.parse import unquote

from ..ctp import clock
from ..ctp.calendar import trading_day_of, yyyymmdd
from ..ctp.clock import CHINA
from ..ctp.market_data import DATE_CONVENTIONS, Stamper, depth_index
from ..ctp.products import InstrumentInfo, parse_instrument
from ..errors import UpstreamProtocolError, UpstreamUnavailable
from ..messages import listing, os_error_words
from ..fronts.url import FrontURL, Setting, boolean, choice, id_list, speed
from .base import Adapter, Capabilities, require_extra

if TYPE_CHECKING:
    from ..recording import TickRows  # pyarrow is imported only when a recording is read

log = logging.getLogger("ctpshim.replay")

DATA = Path(sys.modules["ctpshim"].__file__).resolve().parent / "data"
# The recordings shipped with ctpshim, by the name ``bundled=`` takes (see shim/data/SOURCES.md).
BUNDLED = {
    "ru1901": DATA / "SHFE_ru1901_20181009.parquet",
    "RM705": DATA / "CZCE_RM705_20170320.parquet",
}
DEFAULT_BUNDLED = "ru1901"
GAP = 60 * 10**9  # ns: with gaps=skip, a silence longer than this is skipped
SKIPPED_GAP = 5 * 10**8  # ns: what a skipped gap shrinks to
_TIME_OF_DAY = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")


def _time_of_day(text: str) -> str:
    match = _TIME_OF_DAY.match(text.strip())
    if not match:
        raise ValueError("expected a time of day as HH:MM or HH:MM:SS, e.g. 09:00 or 21:00:00")
    hour, minute, second = match.groups()
    return f"{int(hour):02d}:{minute}:{second or '00'}"


def _bundled_name(text: str) -> str:
    for name in BUNDLED:
        if text.strip().lower() == name.lower():
            return name
    raise ValueError(f"expected the name of a bundled day: {', '.join(BUNDLED)}")


def recording_path(url: FrontURL, settings: dict[str, Any]) -> Path:
    """The PATH of ``replay://PATH?...``, relative or absolute; with none, the bundled day."""
    text = unquote(url.raw.split("://", 1)[1].split("?", 1)[0])
    bundled = settings.get("bundled")
    if text and bundled:
        raise ValueError(f"give a PATH or bundled={bundled}, not both")
    if text:
        return Path(text).expanduser()
    return BUNDLED[bundled or DEFAULT_BUNDLED]


class ReplayAdapter(Adapter):
    """Recorded days (see the module docstring)."""

    scheme = "replay"
    settings = (
        Setting("speed", speed, 1.0,
                "1 = real time, N = N times faster (greater than 0, at most 1,000,000), max = as fast as possible"),
        Setting("loop", boolean, False, "start again at the end: the 7x24 mode"),
        Setting("rebase", choice("now", "none"), "now",
                "now: stamp ticks with today's date and the current time; none: the recorded stamps"),
        Setting("dates", choice(*DATE_CONVENTIONS), "correct",
                "with rebase=now: correct (SimNow-style) or exchange (DCE/CZCE quirks) TradingDay and ActionDay"),
        Setting("start", _time_of_day, None,
                "replay only ticks at or after this time of day (HH:MM[:SS], 00:00 to 23:59:59)"),
        Setting("end", _time_of_day, None,
                "replay only ticks before this time of day (HH:MM[:SS]; not equal to start; before it wraps midnight)"),
        Setting("instruments", id_list, None,
                "replay only these instruments (comma-separated; at least one in the recording)"),
        Setting("gaps", choice("keep", "skip"), "keep",
                "keep: wait through the lunch break and the night-to-day gap; skip: go straight on"),
        Setting("bundled", _bundled_name, None,
                f"with no PATH, which bundled day plays: {' or '.join(BUNDLED)} (default {DEFAULT_BUNDLED})"),
    )
    capabilities = Capabilities(depth_levels=5, deterministic=True, has_instruments=True)

    @classmethod
    def check(cls, url: FrontURL, settings: dict[str, Any]) -> None:
        """Refuse an address whose recording cannot be played, or whose filters let no tick through."""
        require_extra("pyarrow", "recordings", "replay:// reads recordings with pyarrow")
        cls._surveyed(url, settings)

    @classmethod
    def _surveyed(cls, url: FrontURL, settings: dict[str, Any]) -> tuple[list[Any], dict[Path, "_Survey"]]:
        """The recording's days and a survey of each of its files; ``ValueError`` naming the file
        and the reason when one cannot be played."""
        if settings["rebase"] == "none" and settings["dates"] != "correct":
            raise ValueError(f"dates={settings['dates']} stamps ticks as they are delivered, and rebase=none keeps "
                             "the recorded stamps: give rebase=now, or leave dates out")
        start, end = settings["start"], settings["end"]
        if start is not None and start == end:
            raise ValueError(f"start={start} and end={end}: the window [start, end) holds no time; "
                             "give a later end, or an earlier one to wrap past midnight")
        path = recording_path(url, settings)
        days = _recording_days(path)
        surveys = {file: _survey_of(file, settings) for day in days for file in day.paths}
        for file, survey in surveys.items():
            if survey.backwards:
                raise ValueError(
                    f"{file}: its ticks go back in time ({survey.backwards}), and replay would play them backwards; "
                    f"`ctpshim convert {file} -o COPY.parquet` writes a copy in time order")
        _check_day_order(days, surveys)
        if not any(survey.ticks for survey in surveys.values()):
            raise ValueError(f"{path}: the recording has no ticks")
        _check_filters(path, settings, list(surveys.values()))
        return days, surveys

    def __init__(self, url: FrontURL, settings: dict[str, Any]) -> None:
        super().__init__(url, settings)
        self.path = recording_path(url, settings)
        self.speed: float = settings["speed"]
        self.rebase = settings["rebase"] == "now"
        self.stamper = Stamper(settings["dates"])
        self._days: list[Any] = []
        self._subscribed: set[str] = set()
        self._latest: dict[str, TickRows] = {}  # instrument -> the rows holding its newest tick
        self._settled: set[str] = set()  # those whose entry is a copy of that one row (see _settle)
        self._wake = asyncio.Event()
        self._known: frozenset[str] = frozenset()
        self._instruments: list[InstrumentInfo] = []
        self._unreadable: set[Path] = set()
        self._current_day = ""
        index = depth_index()
        self._stamp_positions = [index[name] for name in ("TradingDay", "ActionDay", "UpdateTime", "UpdateMillisec")]
        self._exchange_position = index["ExchangeID"]

    # -- the contract ---------------------------------------------------------------------------

    async def connect(self) -> None:
        # The instruments are known before OnFrontConnected, so a ReqQryInstrument sent right
        # after the login has its answer (the surveys are cached from the check at RegisterFront).
        try:
            await asyncio.to_thread(self._prepare)
        except ValueError as exc:
            raise UpstreamUnavailable(str(exc)) from None

    def _prepare(self) -> None:
        self._days, surveys = self._surveyed(self.url, self.config)
        self._known = frozenset().union(*(survey.instruments for survey in surveys.values()))
        wanted = self.config["instruments"]
        self._instruments = [info for info in map(parse_instrument, sorted(self._known))
                             if info and (not wanted or info.instrument_id in wanted)]
        if wanted and (missing := [i for i in wanted if i not in self._known]):
            log.warning("replay: instruments=: %s not in %s; they will not tick", listing(missing), self.path)

    async def probe(self) -> dict[str, Any]:
        """Read every file of the recording: days, ticks, instruments and the recorded span."""
        return await asyncio.to_thread(self._describe)

    async def damage(self) -> list[str]:
        """Damage in the recording's files (one line each, naming file, part and byte offset), for ping."""
        from ..recording import verify

        return await asyncio.to_thread(verify, self.path)

    def _describe(self) -> dict[str, Any]:
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

    def instruments(self) -> list[InstrumentInfo]:
        return list(self._instruments)

    def trading_day(self) -> str | None:
        if self.rebase:
            return yyyymmdd(trading_day_of(clock.now()))
        return self._current_day or (self._days[0].day if self._days else None)

    async def subscribe(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        self._subscribed.update(ids)
        snapshots: list[Any] = []  # the newest tick played of each, made here: one row each
        for instrument_id in ids:
            chunk = self._latest.get(instrument_id)
            newest = chunk.last_of(instrument_id) if chunk is not None else None
            if newest is not None:
                snapshots.extend(self._restamped(newest))
        self.owe_snapshot(snapshots)
        self.warn_unknown([i for i in ids if i not in self._known], f"not in {self.path}")
        self._wake.set()

    async def unsubscribe(self, ids: Iterable[str]) -> None:
        self._subscribed.difference_update(ids)

    async def ticks(self) -> AsyncIterator[Any]:
        # Batches are TickRows: the consumer turns them into ticks on its own thread (see TickRows).
        while not self._subscribed:
            self._wake.clear()
            await self._wake.wait()
        max_speed = math.isinf(self.speed)
        speed_factor = 0.0 if max_speed else 1.0 / self.speed
        skip_gaps = self.config["gaps"] == "skip"
        loop = self.config["loop"]
        # Adapter.carry outlives this connection: the next one goes on from this position.
        position: _Position = self.carry.setdefault("replay", _Position())
        # The position moves on before each yield: what was handed out is never handed out again,
        # on this connection or the next.
        while loop or not position.lap:
            wall_start = time.monotonic()  # each lap (and each connection) starts the replay clock from now
            first_receive: int | None = None
            skipped = 0  # ns of recording time removed by skipped gaps
            previous = 0
            whole = not position.day  # a lap from its start, not one resumed partway
            played = 0
            for chunk in self._chunks(position):
                played += len(chunk)
                fresh: set[str] = set()
                sent = 0  # rows of this chunk already handed on
                if not max_speed:
                    for offset, receive in enumerate(chunk.receive_times()):
                        if first_receive is None:
                            first_receive = previous = receive
                        if skip_gaps and receive - previous > GAP:
                            skipped += receive - previous - SKIPPED_GAP
                        previous = receive
                        due = wall_start + (receive - first_receive - skipped) * 1e-9 * speed_factor
                        delay = due - time.monotonic()
                        if delay > 0.001:
                            if offset > sent:
                                rows = self._due(chunk.slice(sent, offset - sent), fresh)
                                position.rows += offset - sent
                                sent = offset
                                if rows is not None:
                                    yield rows
                            await asyncio.sleep(delay)
                rows = self._due(chunk.slice(sent), fresh) if sent < len(chunk) else None
                position.rows += len(chunk) - sent
                if rows is not None:
                    yield rows
                else:  # a stretch with nothing subscribed must not hold the IO thread
                    await asyncio.sleep(0)
                self._settle(fresh)
            position.next_lap()
            if whole and not played:
                log.warning("replay: %s played no tick in a whole pass (its files are gone or unreadable); "
                            "the front stays connected and silent", self.path)
                break
        if not loop:
            log.info("replay: %s ended (loop=false); the front stays connected and silent", self.path)
        await asyncio.Event().wait()  # connected and silent; later subscriptions' snapshots still come

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
        subscribed = list(self._subscribed)
        if not subscribed:
            return None
        if not self._subscribed.issuperset(names):
            value_set = pa.array(subscribed, pa.string())  # typed: an empty list would be an array of nulls
            rows = rows.filter(pc.is_in(rows.batch.column("InstrumentID"), value_set=value_set))
        return self._restamped(rows) if len(rows) else None

    def _stamps(self, moment: datetime, exchange_id: str) -> tuple[Any, ...]:
        """(TradingDay, ActionDay, UpdateTime, UpdateMillisec) of a tick of ``exchange_id`` delivered at ``moment``."""
        trading_day, action_day, update_time, _ = self.stamper.stamps(moment, exchange_id)
        return trading_day, action_day, update_time, self.stamper.millisec(moment, exchange_id)

    def _restamped(self, rows: TickRows) -> TickRows:
        """``rows`` as they are delivered: stamped with the current moment under ``rebase=now``
        (per exchange, when the rows are of several)."""
        import pyarrow.compute as pc

        from ..recording import VARIES

        if not self.rebase:
            return rows
        now = clock.now()
        exchange = rows.constants[self._exchange_position]
        if exchange is VARIES:
            exchanges = pc.unique(rows.batch.column("ExchangeID")).to_pylist()
            stamps = [self._stamps(now, name) for name in exchanges]
            if any(other != stamps[0] for other in stamps[1:]):
                return rows.with_columns_by(self._exchange_position, exchanges,
                                            dict(zip(self._stamp_positions, zip(*stamps))))
            exchange = exchanges[0]
        return rows.with_values(dict(zip(self._stamp_positions, self._stamps(now, exchange))))

    # -- reading ----------------------------------------------------------------------------------

    def _chunks(self, position: "_Position") -> Iterator[TickRows]:
        """The filtered rows in time order, day after day, from ``position`` on."""
        from ..recording import merge_in_time

        for day in self._days:
            if day.day < position.day:
                continue
            if day.day > position.day:
                position.day, position.rows = day.day, 0
            self._current_day = day.day
            skip = position.rows  # played on an earlier connection
            sources = [self._file_chunks(path) for path in day.paths]
            for chunk in sources[0] if len(sources) == 1 else merge_in_time(sources):
                if skip >= len(chunk):
                    skip -= len(chunk)
                    yield chunk.slice(0, 0)  # nothing to play, but the IO loop runs other work meanwhile
                    continue
                if skip:
                    chunk, skip = chunk.slice(skip), 0
                yield chunk

    def _file_chunks(self, path: Path) -> Iterator[TickRows]:
        """A file's filtered rows; a file that cannot be read (any more) ends with one warning."""
        import pyarrow as pa
        import pyarrow.compute as pc

        from ..recording import RecordingError, TickRows, constant_values, read_tables

        wanted = self.config["instruments"]
        start, end = self.config["start"], self.config["end"]
        value_set = pa.array(list(wanted), pa.string()) if wanted else None
        try:
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
        except (RecordingError, OSError, pa.ArrowException) as exc:
            if path not in self._unreadable:
                self._unreadable.add(path)
                problem = str(exc) if isinstance(exc, RecordingError) else _reason(path, exc)
                log.warning("replay: cannot be read any more: %s; the rest of that file is skipped and the replay "
                            "goes on", problem)

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


@dataclass
class _Position:
    """Where a replay is: the pass over the recording, the day, and the rows of that day (after
    the filters) already played."""

    lap: int = 0
    day: str = ""
    rows: int = 0

    def next_lap(self) -> None:
        self.lap, self.day, self.rows = self.lap + 1, "", 0


@dataclass(frozen=True)
class _Survey:
    """What replay must know of a file before it plays it (see :func:`_survey_file`)."""

    ticks: int
    instruments: frozenset[str]
    matching: int  # ticks the instruments, start and end settings let through
    clock: tuple[str, str] | None  # with start or end, the earliest and the latest UpdateTime
    backwards: str | None  # where the receive times first go back, for the message
    received: tuple[int, int] | None  # the first and the last receive time


def _reason(path: Path, exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return os_error_words(exc, path)
    lines = str(exc).strip().splitlines()  # Arrow's, without the C++ source lines it may append
    return f"{path}: {lines[0] if lines else type(exc).__name__}"


def _recording_days(path: Path) -> list[Any]:
    """The days of the recording at ``path`` (every file checked before it is opened), or
    ``ValueError`` naming the file and the reason."""
    from ..recording import RecordingError, recording_days

    try:
        return recording_days(path)
    except RecordingError as exc:
        raise ValueError(str(exc)) from None


def _survey_of(path: Path, settings: dict[str, Any]) -> _Survey:
    from ..recording import RecordingError

    try:
        info = path.stat()
        return _survey_file(str(path), info.st_size, info.st_mtime_ns,
                            settings["instruments"], settings["start"], settings["end"])
    except RecordingError as exc:
        raise ValueError(str(exc)) from None


@functools.lru_cache(maxsize=1024)  # a folder of years of days; a survey holds its file's instrument IDs
def _survey_file(path: str, _size: int, _modified_ns: int, wanted: tuple[str, ...] | None,
                 start: str | None, end: str | None) -> _Survey:
    """One pass over two or three columns of a file (0.03 to 0.08 s per million ticks), cached while the
    file keeps its size and modification time: the check at RegisterFront, each connect and
    the instrument list share it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from ..recording import RECEIVE_TIME, read_tables

    value_set = pa.array(list(wanted), pa.string()) if wanted else None
    ticks = matching = 0
    instruments: set[str] = set()
    clock: tuple[str, str] | None = None
    first_receive: int | None = None
    last_receive: int | None = None
    window = bool(start or end)
    columns = ["InstrumentID", RECEIVE_TIME] + (["UpdateTime"] if window else [])  # the clock only for a window
    backwards: str | None = None
    for table in read_tables(path, columns, dictionaries=["InstrumentID"]):
        for batch in table.to_batches():
            rows = batch.num_rows
            if not rows:
                continue
            ids, receives = batch.column(0), batch.column(1)
            if backwards is None:  # the first tick received before the one ahead of it
                ahead = pa.concat_arrays([pa.array([receives[0].as_py() if last_receive is None else last_receive],
                                                   pa.int64()), receives.slice(0, rows - 1)])
                if pc.any(behind := pc.less(receives, ahead)).as_py():
                    row = pc.index(behind, True).as_py()
                    backwards = (f"tick {ticks + row + 1:,} was received at {_stamp(receives[row].as_py())}, "
                                 f"before the one ahead of it ({_stamp(ahead[row].as_py())})")
            if first_receive is None:
                first_receive = receives[0].as_py()
            last_receive = receives[rows - 1].as_py()
            instruments.update((ids.dictionary if pa.types.is_dictionary(ids.type) else pc.unique(ids)).to_pylist())
            mask = pc.is_in(ids, value_set=value_set) if value_set is not None else None
            if window:
                times = batch.column(2)
                bounds = pc.min_max(times).as_py()
                clock = (min(clock[0], bounds["min"]), max(clock[1], bounds["max"])) if clock else (bounds["min"], bounds["max"])
                inside = _time_window(pc, times, start, end)
                mask = inside if mask is None else pc.and_(mask, inside)
            matching += rows if mask is None else pc.sum(mask).as_py() or 0
            ticks += rows
    received = (first_receive, last_receive) if first_receive is not None and last_receive is not None else None
    return _Survey(ticks, frozenset(instruments), matching, clock, backwards, received)


def _stamp(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, CHINA).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _check_day_order(days: list[Any], surveys: dict[Path, _Survey]) -> None:
    """Refuse days (played in the order of their names) whose ticks were received before the end
    of the day played before them: the replay would go back in time between them."""
    previous: tuple[Path, int] | None = None  # the file holding the latest tick so far, and its time
    for day in days:
        spans = [(file, surveys[file].received) for file in day.paths if surveys[file].received]
        if not spans:
            continue
        first_file, (first, _) = min(spans, key=lambda span: span[1][0])  # type: ignore[index]
        if previous is not None and first < previous[1]:
            raise ValueError(
                f"{first_file} (day {day.day}) starts at {_stamp(first)}, before {previous[0]} ends "
                f"({_stamp(previous[1])}): days play in the order of their names, and replay would go back in "
                "time; rename or remove the file that is out of place")
        last_file, (_, last) = max(spans, key=lambda span: span[1][1])  # type: ignore[index]
        previous = (last_file, last)


def _check_filters(path: Path, settings: dict[str, Any], surveys: list[_Survey]) -> None:
    """Refuse instruments, start and end settings that let no tick through, saying what the
    recording holds instead."""
    wanted, start, end = settings["instruments"], settings["start"], settings["end"]
    held = sorted(set().union(*(survey.instruments for survey in surveys)))
    if wanted and not set(held).intersection(wanted):
        raise ValueError(f"instruments={listing(wanted)}: none of them is in {path}, which holds {listing(held)}")
    if (start or end) and not any(survey.matching for survey in surveys):
        clocks = [survey.clock for survey in surveys if survey.clock]
        of = f" of {listing(wanted)}" if wanted else ""
        raise ValueError(
            f"start={start or ''}, end={end or ''}: no tick{of} in {path} has an UpdateTime in "
            f"[{start or '00:00:00'}, {end or '24:00:00'}); its ticks' times of day lie between "
            f"{min(c[0] for c in clocks)} and {max(c[1] for c in clocks)}")
