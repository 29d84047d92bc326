"""The live writer: ticks appended crash-safely to ``<TradingDay>.arrows``, an Arrow IPC stream
with one record batch at least every second, each carrying the CRC-32 of its buffers; a recorder
killed with SIGKILL leaves every batch written before its last second readable."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

from .archive import archive_day
from .readers import hold_live_file, os_error
from .schema import (
    CHECKSUM_KEY, LIVE_SUFFIX, SCHEMA, RecordingError, batch_checksum, check_day, table_from_values, tick_values,
)


FLUSH_INTERVAL = 1.0  # seconds: the most a SIGKILL can lose
LIVE_BUFFER_BYTES = 1 << 20  # the live file's write buffer (a chunk of WRITE_CHUNK ticks is about 0.7 MB)
COUNT_INSTRUMENTS_EVERY = 64  # written chunks between two counts of the instruments they hold
WRITE_CHUNK = 2_048  # ticks converted to Arrow at a time: small enough that the tick objects die young


class LiveWriter:
    """Appends ticks to ``<dir>/<TradingDay>.arrows``, flushing at least every second, rotating
    (and archiving the finished day) when the trading day changes.

    ``write`` takes a tick and its receive time; call ``close`` to end cleanly (it archives the
    current day).  A folder that cannot be written is refused at once; an ``OSError`` while
    writing (a full disk) is raised as :class:`RecordingError` after closing what can be closed:
    the file stays readable up to the last complete flush.
    """

    def __init__(self, directory: str | os.PathLike[str], flush_interval: float = FLUSH_INTERVAL,
                 archive: bool = True) -> None:
        self.directory = Path(directory)
        _writable_folder(self.directory)
        self.flush_interval_ns = int(flush_interval * 1e9)
        self.archive = archive
        self.day = ""
        self._sink: Any = None
        self._writer: Any = None
        self._held: int | None = None  # the descriptor holding the live file's lock (see hold_live_file)
        self._values: list[Any] = []  # the pending ticks' values, tick after tick (see write)
        self._times: list[int] = []
        self._next_flush = 0
        self._last_receive = 0
        self._lock = threading.Lock()  # write() runs on a callback thread, flush_if_due() on another
        self._archivers: dict[str, threading.Thread] = {}  # trading day -> the thread archiving it
        self.written = 0
        self.flushed = 0  # of those, how many were handed to the operating system (they survive SIGKILL)
        self.days: list[str] = []  # the trading days written, each once, in the order first met
        self._instruments: set[str] = set()
        self._uncounted: list[pa.ChunkedArray] = []  # InstrumentID columns not yet in _instruments
        for leftover in sorted(self.directory.glob(f"*{LIVE_SUFFIX}")):
            archive_day(leftover)  # a recorder that was killed left this behind

    def write(self, tick: Any, receive_time: int | None = None) -> None:
        """Append ``tick`` (a tick or its values: :func:`~ctpshim.recording.schema.tick_values`)
        received at ``receive_time`` (ns since the epoch; now when None)."""
        now = time.time_ns() if receive_time is None else receive_time
        values = tick_values(tick)
        with self._lock:
            if values[0] != self.day:  # TradingDay is the first member
                self._rotate(values[0])
            # Receive times never go backwards, so the file's order is the order ticks arrived in.
            if now < self._last_receive:
                now = self._last_receive
            self._last_receive = now
            # The values, not the tick: it is freed at once, while it is still in the CPU's caches
            # (kept for a whole chunk, the ticks cost more to free than to write).
            self._values.extend(values)
            self._times.append(now)
            if len(self._times) >= WRITE_CHUNK:
                self._write_chunk(flush=False)
            if now >= self._next_flush:
                self._write_chunk(flush=True)

    def flush(self) -> None:
        """Write what is pending and hand it to the operating system (it then survives SIGKILL)."""
        with self._lock:
            self._write_chunk(flush=True)

    def flush_if_due(self) -> None:
        """Flush if the oldest pending tick is about to be older than the flush interval; call this
        about every 0.2 s so a quiet feed's last ticks do not wait for the next one."""
        with self._lock:
            if self._times and time.time_ns() + 250_000_000 >= self._next_flush:
                self._write_chunk(flush=True)

    def _write_chunk(self, flush: bool) -> None:
        if flush:
            self._next_flush = time.time_ns() + self.flush_interval_ns
        if not self._times and not flush:
            return
        if self._writer is None:
            self._values, self._times = [], []
            return
        table = table_from_values(self._values, self._times) if self._times else None
        try:
            if table is not None:
                for batch in table.to_batches():
                    self._writer.write_batch(batch, custom_metadata={CHECKSUM_KEY: str(batch_checksum(batch))})
            if flush:
                self._sink.flush()
        except OSError as exc:
            path = self.directory / f"{self.day}{LIVE_SUFFIX}"
            self._abandon()
            raise RecordingError(
                f"cannot write {os_error(path, exc)}; recording stopped. The file is readable up to the last "
                f"complete flush: {self.flushed:,} ticks"
            ) from exc
        self.written += len(self._times)
        if flush:
            self.flushed = self.written
        if table is not None:
            # Counted in bulk: Arrow's unique() lets go of the interpreter lock, and the callback
            # thread then waits to get it back, on every chunk.
            self._uncounted.append(table.column("InstrumentID"))
            if len(self._uncounted) >= COUNT_INSTRUMENTS_EVERY:
                self._count_instruments()
        self._values, self._times = [], []

    def _count_instruments(self) -> None:
        chunks = [chunk for column in self._uncounted for chunk in column.chunks]
        self._uncounted = []
        if chunks:
            self._instruments.update(pa.chunked_array(chunks, pa.string()).unique().to_pylist())

    @property
    def instruments(self) -> set[str]:
        """The instruments of the ticks written so far."""
        with self._lock:
            self._count_instruments()
            return set(self._instruments)

    def _abandon(self) -> None:
        self._values, self._times = [], []
        for closer in (self._writer, self._sink):
            try:
                closer.close()
            except Exception:  # noqa: BLE001 - the disk is full; keep what is there
                pass
        self._writer = self._sink = None
        self._release()

    def _release(self) -> None:
        if self._held is not None:
            os.close(self._held)
            self._held = None

    def _rotate(self, day: str) -> None:
        check_day(day, "a tick's TradingDay")  # it names the file
        if self._writer is not None:
            self._close_day(background=True)
        self.day = day
        if day not in self.days:
            self.days.append(day)
        path = self.directory / f"{day}{LIVE_SUFFIX}"
        archiving = self._archivers.pop(day, None)
        if archiving is not None:  # a day that comes back (a source's days went back): its archive first
            archiving.join()
        if path.exists():
            archive_day(path)
        # Arrow's own file, not a Python one: the IPC writer hands it each column's buffers
        # without going back through Python (and the GIL) for every one.  flush() passes the
        # buffer to the operating system, where it survives a SIGKILL.
        try:
            self._sink = pa.BufferedOutputStream(pa.OSFile(str(path), "wb"), LIVE_BUFFER_BYTES)
            self._held = hold_live_file(path)
            self._writer = ipc.new_stream(self._sink, SCHEMA)
        except OSError as exc:
            self._abandon()
            raise RecordingError(f"cannot write {os_error(path, exc)}; recording stopped") from None

    def _close_day(self, background: bool = False) -> None:
        self._write_chunk(flush=True)
        self._writer.close()
        self._sink.close()
        self._writer = self._sink = None
        self._release()
        if not self.archive:
            return
        live = self.directory / f"{self.day}{LIVE_SUFFIX}"
        if background:
            # Archiving is mostly C++ (Parquet, zstd) that releases the GIL: done on another
            # thread, it costs the recording nothing at the day boundary.
            archiver = threading.Thread(target=archive_day, args=(live,), name=f"ctpshim-archive-{self.day}")
            archiver.start()
            self._archivers[self.day] = archiver
        else:
            archive_day(live)

    def close(self) -> None:
        """Write what is pending, end the live file and archive the day (waiting for any archiving)."""
        with self._lock:
            if self._writer is not None:
                self._close_day()
        for archiver in self._archivers.values():
            archiver.join()
        self._archivers = {}


def _writable_folder(directory: Path) -> None:
    """Make ``directory`` if needed and check a file can be made in it (permissions, a read-only
    file system), so a recorder is refused before it starts."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".ctpshim-write-test-{os.getpid()}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except (FileExistsError, NotADirectoryError):
        raise RecordingError(f"cannot record into {directory}: it is a file, not a folder") from None
    except OSError as exc:
        raise RecordingError(f"cannot record into {os_error(directory, exc)}") from None
