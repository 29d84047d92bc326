"""Recordings: one columnar schema for ticks, a crash-safe live writer, day archives, and readers.

The schema's columns are the ``CThostFtdcDepthMarketDataField`` members, with their names, in
header order and with their types (text -> string, double -> float64, int -> int32), taken from
the field spec, plus ``ReceiveTime``: when the tick was received, in nanoseconds since the
epoch (UTC).  Replay paces and orders ticks by it.

Files:

* ``<TradingDay>.arrows`` (live): an Arrow IPC stream that the recorder appends to, one record
  batch at least every second, each with the CRC-32 of its buffers.  A recorder killed with
  SIGKILL leaves every batch written before its last second readable.
* ``<TradingDay>.parquet`` (archive): one file per trading day, all instruments together,
  ordered by ``ReceiveTime``, zstd-compressed, with page checksums.  A day is archived when the
  recorder moves on to the next trading day, when it stops, or when it starts and finds an
  unarchived live file.

Every batch read is validated and its checksum checked before its values are used; damage ends
the file there (see :func:`read_tables`), and :func:`verify` lists a recording's problems.

Readers stream: memory does not grow with the size of the file.  pyarrow is imported only here.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import logging
import os
import stat
import struct
import threading
import time
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from ..ctp.fields import load_spec

log = logging.getLogger("ctpshim.recording")

RECEIVE_TIME = "ReceiveTime"
LIVE_SUFFIX = ".arrows"
ARCHIVE_SUFFIX = ".parquet"
RECORDING_SUFFIXES = (LIVE_SUFFIX, ARCHIVE_SUFFIX)
FLUSH_INTERVAL = 1.0  # seconds: the most a SIGKILL can lose
LIVE_BUFFER_BYTES = 1 << 20  # the live file's write buffer (a chunk of WRITE_CHUNK ticks is about 0.7 MB)
COUNT_INSTRUMENTS_EVERY = 64  # written chunks between two counts of the instruments they hold
WRITE_CHUNK = 2_048  # ticks converted to Arrow at a time: small enough that the tick objects die young
# Rows per Parquet row group.  The parsed footer (held while a file is read) has an entry per
# column per row group: 16,384-row groups cost 2.8 MB of it per million ticks, 131,072-row groups
# 0.3 MB.  Archiving holds one group of Arrow data (about 45 MB) while it writes it.
ARCHIVE_ROW_GROUP = 131_072
DECODE_ROWS = 16_384  # rows decoded at a time from an archive: what a reader holds, whatever the group size
CONVERT_ROWS = 1_024  # rows turned into Python values at a time: their columns stay in the CPU caches
# while the ticks are made (whole 16k-row pieces cost about twice as much per row)
_HAVE_NUMPY = importlib.util.find_spec("numpy") is not None
_ARROW_TYPES = {"str": pa.string(), "double": pa.float64(), "int": pa.int32(), "char": pa.string(), "short": pa.int16()}


class RecordingError(Exception):
    """A recording cannot be read or written; the message names the file and the problem."""


def _build_schema() -> pa.Schema:
    members = load_spec()["fields"]["CThostFtdcDepthMarketDataField"]
    fields = [pa.field(name, _ARROW_TYPES[kind], nullable=False) for name, _typedef, kind, _size in members]
    fields.append(pa.field(RECEIVE_TIME, pa.int64(), nullable=False))
    return pa.schema(fields)


SCHEMA = _build_schema()
TICK_COLUMNS = SCHEMA.names[:-1]


_TYPECODES = {pa.float64(): "d", pa.int32(): "i", pa.int16(): "h", pa.int64(): "q"}
# Per schema column (ReceiveTime last): its name, Arrow type and the struct code of a number column (None for text).
_COLUMN_TYPES = [(field.name, field.type, _TYPECODES.get(field.type)) for field in SCHEMA]


@functools.lru_cache(maxsize=64)
def _packer(code: str, rows: int) -> struct.Struct:
    # struct packs a column of Python numbers into Arrow's little-endian buffer about 2.5x
    # faster than array.array (whose constructor parses a format per item) or pa.array.
    return struct.Struct(f"<{rows}{code}")


class BadValueError(RecordingError):
    """A value to be recorded that its member cannot hold; the message names the row and the column."""


def bad_rows(columns: dict[str, pa.Array]) -> Iterator[tuple[str, pa.Array, str]]:
    """Per tick column given: its name, a mask of the rows whose value the member cannot hold, and
    what is valid.  The ranges are the feeds' (:func:`ctpshim.ctp.market_data.check_values`, from the
    field spec): finite prices from 0 (DBL_MAX when absent), whole numbers in an int member's
    range, text of at most its char array's length in GB18030.  Number columns are checked as
    float64, before they are cast to their Arrow type (which would wrap or truncate)."""
    import pyarrow.compute as pc

    from ..ctp.market_data import value_rules

    for _position, name, kind, low, high, valid in value_rules():
        column = columns.get(name)
        if column is None:
            continue
        if kind in ("double", "int"):
            values = pc.cast(column, pa.float64())
            inside = pc.and_kleene(pc.greater_equal(values, low), pc.less_equal(values, high))
            if kind == "int":
                inside = pc.and_kleene(inside, pc.equal(pc.floor(values), values))
            bad = pc.invert(pc.fill_null(inside, False))
        else:
            text = pc.cast(column, pa.string())
            bad = pc.fill_null(pc.greater(pc.binary_length(text), high), False)
            long_rows = pc.indices_nonzero(bad)
            if len(long_rows):  # too long in UTF-8; CTP counts GB18030 bytes (two per Chinese character)
                fitting = [row for row, value in zip(long_rows.to_pylist(), pc.take(text, long_rows).to_pylist())
                           if _gb18030_fits(value, high)]
                if fitting:
                    rows = pa.array(range(len(text)), pa.int64())
                    bad = pc.and_(bad, pc.invert(pc.is_in(rows, value_set=pa.array(fitting, pa.int64()))))
        if pc.any(bad).as_py():
            yield name, bad, valid


def _gb18030_fits(text: str, size: int) -> bool:
    try:
        return len(text.encode("gb18030")) <= size
    except UnicodeEncodeError:
        return False


def check_columns(columns: dict[str, pa.Array], source: str, skip: bool = False) -> tuple[pa.Array | None, int]:
    """Check imported columns before they become the schema's types (see :func:`bad_rows`).

    Without ``skip``, the first bad value raises :class:`BadValueError` naming the data row (from
    1), the column, the value and what is valid; with it, returns a mask of the good rows (None
    when all are) and how many rows are bad.
    """
    import pyarrow.compute as pc

    keep = None
    first: tuple[int, str, str] | None = None
    for name, bad, valid in bad_rows(columns):
        if skip:
            keep = pc.invert(bad) if keep is None else pc.and_(keep, pc.invert(bad))
            continue
        row = pc.index(bad, True).as_py()
        if first is None or row < first[0]:
            first = (row, name, valid)
    if first is not None:
        row, name, valid = first
        value = columns[name][row].as_py()
        shown = repr(int(value) if type(value) is float and value.is_integer() and abs(value) < 1e18 else value)
        if len(shown) > 40:
            shown = f"{shown[:37]}... ({len(value)} characters)" if isinstance(value, str) else shown[:37] + "..."
        raise BadValueError(f"{source}: data row {row + 1}, column {name}: {shown} is not valid: expected "
                            f"{valid} (--skip-bad skips such rows)")
    if keep is None:
        return None, 0
    return keep, len(keep) - pc.sum(keep).as_py()


def table_from_ticks(ticks: list[Any], receive_times: list[int]) -> pa.Table:
    """A table of the schema from tick objects (lists of the 48 values) and their receive times.

    Raises :class:`RecordingError` naming the column when a value does not fit its type.
    """
    flat: list[Any] = []
    for tick in ticks:
        flat.extend(tick)
    return table_from_values(flat, receive_times)


def table_from_values(flat: list[Any], receive_times: list[int]) -> pa.Table:
    """:func:`table_from_ticks` from the ticks' values one after another, tick after tick."""
    width = len(TICK_COLUMNS)
    rows = len(receive_times)
    if len(flat) != width * rows:
        raise RecordingError("a tick with the wrong number of members cannot be recorded")
    # Strided slices of the row-major values: about 2.5x faster than zip(*ticks), which walks
    # every tick once per column.
    columns = [flat[position::width] for position in range(width)] + [receive_times]
    arrays = []
    for column, (name, kind, code) in zip(columns, _COLUMN_TYPES):
        try:
            if code is None:
                arrays.append(pa.array(column, type=kind))
            else:
                data = _packer(code, rows).pack(*column)
                arrays.append(pa.Array.from_buffers(kind, rows, [None, pa.py_buffer(data)]))
        except (struct.error, pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise RecordingError(f"a tick's {name} cannot be recorded as {kind}: {exc}") from None
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


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
        self._values: list[Any] = []  # the pending ticks' values, tick after tick (see write)
        self._times: list[int] = []
        self._next_flush = 0
        self._last_receive = 0
        self._lock = threading.Lock()  # write() runs on a callback thread, flush_if_due() on another
        self._archivers: list[threading.Thread] = []
        self.written = 0
        self.flushed = 0  # of those, how many were handed to the operating system (they survive SIGKILL)
        self.days: list[str] = []
        self._instruments: set[str] = set()
        self._uncounted: list[pa.ChunkedArray] = []  # InstrumentID columns not yet in _instruments
        for leftover in sorted(self.directory.glob(f"*{LIVE_SUFFIX}")):
            archive_day(leftover)  # a recorder that was killed left this behind

    def write(self, tick: Any, receive_time: int | None = None) -> None:
        now = time.time_ns() if receive_time is None else receive_time
        with self._lock:
            if tick[0] != self.day:  # TradingDay is the first member
                self._rotate(tick[0])
            # Receive times never go backwards, so the file's order is the order ticks arrived in.
            if now < self._last_receive:
                now = self._last_receive
            self._last_receive = now
            # The values, not the tick: it is freed at once, while it is still in the CPU's caches
            # (kept for a whole chunk, the ticks cost more to free than to write).
            self._values.extend(tick)
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

    def _rotate(self, day: str) -> None:
        check_day(day, "a tick's TradingDay")  # it names the file
        if self._writer is not None:
            self._close_day(background=True)
        self.day = day
        self.days.append(day)
        path = self.directory / f"{day}{LIVE_SUFFIX}"
        if path.exists():
            archive_day(path)
        # Arrow's own file, not a Python one: the IPC writer hands it each column's buffers
        # without going back through Python (and the GIL) for every one.  flush() passes the
        # buffer to the operating system, where it survives a SIGKILL.
        try:
            self._sink = pa.BufferedOutputStream(pa.OSFile(str(path), "wb"), LIVE_BUFFER_BYTES)
            self._writer = ipc.new_stream(self._sink, SCHEMA)
        except OSError as exc:
            self._abandon()
            raise RecordingError(f"cannot write {os_error(path, exc)}; recording stopped") from None

    def _close_day(self, background: bool = False) -> None:
        self._write_chunk(flush=True)
        self._writer.close()
        self._sink.close()
        self._writer = self._sink = None
        if not self.archive:
            return
        live = self.directory / f"{self.day}{LIVE_SUFFIX}"
        if background:
            # Archiving is mostly C++ (Parquet, zstd) that releases the GIL: done on another
            # thread, it costs the recording nothing at the day boundary.
            archiver = threading.Thread(target=archive_day, args=(live,), name=f"ctpshim-archive-{self.day}")
            archiver.start()
            self._archivers.append(archiver)
        else:
            archive_day(live)

    def close(self) -> None:
        """Write what is pending, end the live file and archive the day (waiting for any archiving)."""
        with self._lock:
            if self._writer is not None:
                self._close_day()
        for archiver in self._archivers:
            archiver.join()
        self._archivers = []


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


def archive_day(live: Path) -> Path:
    """Turn a live ``.arrows`` file into (or merge it into) ``<day>.parquet``; remove the live file.

    Streams: one row group (``ARCHIVE_ROW_GROUP`` ticks) at a time is held, whatever the size of the day.
    A damaged live file (its tail cut by a recorder killed mid-write, or worse) is archived up to the
    damage and kept beside the archive as ``<day>.arrows.damaged``, with a warning; a damaged archive
    is not rewritten (what follows its damage would be lost): both files are kept and
    :class:`RecordingError` says so.
    """
    target = live.with_suffix(ARCHIVE_SUFFIX)
    archived_damage: list[str] = []
    live_damage: list[str] = []
    sources = [(TickRows(batch, NOTHING_SHARED) for batch in read_batches(path, damage=damage))
               for path, damage in ((target, archived_damage), (live, live_damage)) if path.exists()]
    temporary = target.with_suffix(".parquet.tmp")
    writer: pq.ParquetWriter | None = None
    group: list[pa.RecordBatch] = []
    rows = 0
    try:
        # Both are in receive order already (a live file by construction), so they merge as they stream.
        for chunk in sources[0] if len(sources) == 1 else merge_in_time(sources):
            group.append(chunk.batch)
            rows += len(chunk)
            if rows >= ARCHIVE_ROW_GROUP:
                table = pa.Table.from_batches(group, schema=SCHEMA)
                writer = _write_group(writer, temporary, table.slice(0, ARCHIVE_ROW_GROUP))
                group = table.slice(ARCHIVE_ROW_GROUP).to_batches()
                rows -= ARCHIVE_ROW_GROUP
        if rows:
            writer = _write_group(writer, temporary, pa.Table.from_batches(group, schema=SCHEMA))
        if archived_damage:
            raise RecordingError(f"{archived_damage[0]}. {live} is not merged into it: move the damaged archive "
                                 "out of the folder, then record again")
    except BaseException as exc:
        if writer is not None:
            writer.close()
        temporary.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise RecordingError(f"cannot archive {live}: {os_error(temporary, exc)}") from None
        raise
    if writer is not None:
        writer.close()
        os.replace(temporary, target)
    if live_damage:
        kept = live.with_name(live.name + ".damaged")
        os.replace(live, kept)
        _damaged(None, f"{live_damage[0]}; the ticks before it are archived in {target}, the file is kept as {kept}")
    else:
        live.unlink()
    return target


def _write_group(writer: pq.ParquetWriter | None, path: Path, table: pa.Table) -> pq.ParquetWriter:
    if writer is None:
        writer = pq.ParquetWriter(path, SCHEMA, **ARCHIVE_OPTIONS)
    writer.write_table(table, row_group_size=ARCHIVE_ROW_GROUP)
    return writer


_DAMAGE_TEXT = "the ticks before it are read, the rest of the file is skipped"
CHECKSUM_KEY = "ctpshim.crc32"  # a live batch's custom metadata: the CRC-32 of its buffers (older files have none)


def batch_checksum(batch: pa.RecordBatch) -> int:
    """CRC-32 of a record batch's buffers, in column order (about 0.1 ms per thousand ticks)."""
    checksum = 0
    for column in batch.columns:
        for buffer in column.buffers():
            if buffer is not None:
                checksum = zlib.crc32(buffer, checksum)
    return checksum
IPC_CONTINUATION = b"\xff\xff\xff\xff"  # how every message of an Arrow IPC stream starts


_warned: set[str] = set()  # damage already logged: several readers of one file (replay has three) warn once
_WARNED_MAX = 1024


def _damaged(damage: list[str] | None, message: str) -> None:
    """One place for damage found while reading: collected by a caller that reports it (verify,
    info, convert), else one warning per damage and process."""
    if damage is not None:
        damage.append(message)
    elif message not in _warned:
        if len(_warned) >= _WARNED_MAX:
            _warned.clear()
        _warned.add(message)
        log.warning("%s", message)


def os_error(path: Path | str, exc: OSError) -> RecordingError:
    """``path: reason`` for an operating-system error about ``path`` (without the C++ source line
    Arrow appends to its own)."""
    if isinstance(exc, PermissionError):
        reason = "permission denied"
    elif isinstance(exc, FileNotFoundError):
        reason = "no such file or directory"
    else:
        reason = os.strerror(exc.errno) if exc.errno else _reason(exc)
    return RecordingError(f"{path}: {reason}")


def _kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "a special file"


def check_file(path: Path) -> None:
    """Refuse, before any reader opens it, a path that is not a readable regular file: a named
    pipe or a device would block or never end, a folder or a denied file raise deep in Arrow."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise os_error(path, exc) from None
    if not stat.S_ISREG(mode):
        raise RecordingError(f"{path}: {_kind_of(mode)}, not a regular file: refused (only files are read; a "
                             "pipe or a device could block or never end)")
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
    except OSError as exc:
        raise os_error(path, exc) from None


def _live_batches(path: Path, damage: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The record batches of a live file, each validated before its buffers are used, up to any
    damage (reported once, with its byte offset)."""
    check_file(path)
    try:
        source = open(path, "rb")
    except OSError as exc:
        raise os_error(path, exc) from None
    with source:
        try:
            reader = ipc.open_stream(source)
        except Exception as exc:  # noqa: BLE001 - whatever Arrow makes of a damaged header
            if path.stat().st_size == 0:  # created by a recorder that stopped at once
                return
            raise _unreadable_live(path, exc) from None
        _check_schema(path, reader.schema)
        number = 0
        while True:
            offset = source.tell()
            try:
                batch, metadata = reader.read_next_batch_with_custom_metadata()
                # Offsets, lengths and UTF-8 are checked here: a damaged one would otherwise be
                # followed out of the buffer when the values are used (a segmentation fault).
                batch.validate(full=True)
                written = metadata.get(CHECKSUM_KEY) if metadata is not None else None
                if written is not None and written != str(batch_checksum(batch)).encode():
                    raise RecordingError("its checksum does not match its values")
            except StopIteration:
                return
            except Exception as exc:  # noqa: BLE001 - anything a damaged batch makes Arrow raise
                reason = _reason(exc)
                if source.tell() >= os.fstat(source.fileno()).st_size:
                    reason = (f"cut short by the end of the file: a recorder stopped while writing it, or is "
                              f"writing it now, or its length is damaged; {reason}")
                _damaged(damage, f"{path}: IPC batch {number} (byte {offset}) is damaged ({reason}); {_DAMAGE_TEXT}")
                return
            number += 1
            yield batch


def _reason(exc: BaseException) -> str:
    """Arrow's message without the C++ source locations it sometimes appends."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _unreadable_live(path: Path, exc: BaseException) -> RecordingError:
    size = path.stat().st_size
    with open(path, "rb") as source:
        head = source.read(8)
    if size < 8 or head[:4] == IPC_CONTINUATION:
        declared = struct.unpack("<i", head[4:8])[0] if len(head) == 8 else 0
        if size < 8 or size < 8 + declared:
            return RecordingError(
                f"{path}: an incomplete live recording: its header is cut short at {size} bytes (a recorder "
                "stopped before it wrote its first ticks), so it holds no ticks. Move it out of the folder "
                "or delete it")
    return RecordingError(f"{path}: not a ctpshim live recording ({_reason(exc)}). If it is a damaged "
                          "recording, move it out of the folder")


def _check_schema(path: Path, schema: pa.Schema) -> None:
    if schema.remove_metadata() == SCHEMA.remove_metadata():
        return
    names = dict(zip(schema.names, schema.types))
    differs = next((f"{field.name} ({field.type})" for field in SCHEMA if names.get(field.name) != field.type), None)
    raise RecordingError(
        f"{path}: not a ctpshim recording: its columns are not the tick schema "
        f"({f'first missing or different: {differs}' if differs else 'extra or reordered columns'}); "
        "`ctpshim convert` imports tick CSV files"
    )


def _open_archive(path: Path, dictionaries: list[str] | None = None) -> pq.ParquetFile:
    check_file(path)
    try:
        status = path.stat()
        footer = _footer(str(path.resolve()), status.st_size, status.st_mtime_ns)
    except OSError as exc:
        raise os_error(path, exc) from None
    except Exception as exc:  # noqa: BLE001 - whatever Arrow makes of a damaged footer
        raise RecordingError(
            f"{path}: cannot be read as Parquet ({_reason(exc)}); a truncated archive (or one whose end, its "
            "footer, is damaged) cannot be recovered: record again or restore it"
        ) from None
    # Checked before the file is opened for reading: read_dictionary naming a column the file
    # lacks would raise a bare KeyError.
    _check_schema(path, footer.schema.to_arrow_schema())
    try:
        # Page checksums (written since they were added) are verified as each page is read;
        # pages of older archives have none and read as before.
        return pq.ParquetFile(path, metadata=footer, read_dictionary=dictionaries, page_checksum_verification=True)
    except Exception as exc:  # noqa: BLE001 - as above
        raise RecordingError(f"{path}: cannot be read as Parquet ({_reason(exc)})") from None


@functools.lru_cache(maxsize=4)
def _footer(path: str, size: int, modified_ns: int) -> pq.FileMetaData:
    # The parsed footer of an archive holds a row of metadata per column per row group (0.3 MB
    # per million ticks with ARCHIVE_ROW_GROUP, 2.8 MB with older 16k-row groups); replay opens
    # the file up to three times at once (the check, the instrument scan, the player), so they
    # share one.  Keyed on size and mtime: a file that was
    # rewritten is parsed again.
    return pq.read_metadata(path)


def _group_offset(parquet: pq.ParquetFile, group: int) -> int:
    first = parquet.metadata.row_group(group).column(0)  # (its file_offset is always 0 now)
    return first.dictionary_page_offset if first.has_dictionary_page else first.data_page_offset


def _archive_batches(path: Path, parquet: pq.ParquetFile, columns: list[str] | None,
                     damage: list[str] | None) -> Iterator[pa.RecordBatch]:
    """An archive's decoded pieces, row group after row group, each validated, up to any damage
    (a failed page checksum, undecodable pages, fewer rows than the footer says)."""
    for group in range(parquet.num_row_groups):
        rows = 0
        try:
            expected = parquet.metadata.row_group(group).num_rows
            # use_threads=False: Arrow's own thread pool must not outlive the IO thread at exit.
            for batch in parquet.iter_batches(DECODE_ROWS, row_groups=[group], columns=columns, use_threads=False):
                batch.validate(full=True)
                rows += batch.num_rows
                yield batch
            if rows != expected:
                raise RecordingError(f"{rows} rows decoded, its footer says {expected}")
        except Exception as exc:  # noqa: BLE001 - anything a damaged page makes Arrow raise
            try:
                offset: int | str = _group_offset(parquet, group)
            except Exception:  # noqa: BLE001 - the footer itself is damaged
                offset = "unknown"
            _damaged(damage, f"{path}: row group {group} (byte {offset}) is damaged ({_reason(exc)}); "
                             f"{_DAMAGE_TEXT}")
            return


def _archive_tables(path: Path, columns: list[str] | None, dictionaries: list[str] | None,
                    damage: list[str] | None = None) -> Iterator[pa.Table]:
    parquet = _open_archive(path, dictionaries)
    # The next batch is decoded on a reader thread while the caller works through this one:
    # decoding releases the GIL, so on two cores it costs the caller (replay's IO thread) nothing.
    source = _archive_batches(path, parquet, columns, damage)

    def decode_next(reader: ThreadPoolExecutor) -> Future[pa.RecordBatch | None]:
        try:
            return reader.submit(next, source, None)
        except RuntimeError:  # the interpreter is exiting: no new threads; decode here
            done: Future[pa.RecordBatch | None] = Future()
            done.set_result(next(source, None))
            return done

    with ThreadPoolExecutor(1, thread_name_prefix="ctpshim-read") as reader:
        ahead = decode_next(reader)
        while (batch := ahead.result()) is not None:
            ahead = decode_next(reader)
            yield pa.Table.from_batches([batch])


def read_tables(path: str | os.PathLike[str], columns: list[str] | None = None,
                dictionaries: list[str] | None = None, damage: list[str] | None = None) -> Iterator[pa.Table]:
    """The ticks of one recording file (``.parquet`` or ``.arrows``), streamed: an archive's in
    pieces of up to ``DECODE_ROWS`` (the next one decoded ahead), a live file's as its batches.

    ``dictionaries`` names string columns an archive may return dictionary-encoded, as stored
    (a live file's come as plain strings).  A damaged part ends the file: the ticks before it are
    read, and the damage (file, IPC batch or row group, byte offset, what) is appended to
    ``damage``, or logged as one warning without it.  A file that cannot be read at all raises
    :class:`RecordingError`.
    """
    path = Path(path)
    if path.suffix == ARCHIVE_SUFFIX:
        yield from _archive_tables(path, columns, dictionaries, damage)
    elif path.suffix == LIVE_SUFFIX:
        for batch in _live_batches(path, damage):
            yield pa.Table.from_batches([batch.select(columns) if columns else batch])
    else:
        raise RecordingError(f"{path}: not a recording (expected .parquet or .arrows)")


def read_batches(path: str | os.PathLike[str], columns: list[str] | None = None,
                 damage: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The ticks of one recording file in record batches (those of :func:`read_tables`), streamed."""
    for table in read_tables(path, columns, damage=damage):
        yield from table.to_batches()


VARIES = object()  # in TickRows.constants: this column's values differ from row to row
NOTHING_SHARED = (VARIES,) * len(TICK_COLUMNS)  # TickRows.constants when no column is known constant


def constant_values(table: pa.Table) -> tuple[Any, ...]:
    """Per tick column of ``table``: its one value when every row holds it, else ``VARIES``.

    A recorded day repeats many values (absent prices, the trading day, limit prices on a
    one-instrument day): a constant column is turned into Python once, not once per tick.
    """
    import pyarrow.compute as pc

    if not table.num_rows:
        return NOTHING_SHARED
    values = []
    for column in table.columns[: len(TICK_COLUMNS)]:
        first = column[0]
        values.append(first.as_py() if pc.all(pc.equal(column, first)).as_py() else VARIES)
    return tuple(values)


def _python_values(column: pa.Array) -> list[Any]:
    """A column's values as Python objects (``float``, ``int``, ``str``)."""
    if column.null_count or pa.types.is_string(column.type) or not _HAVE_NUMPY:
        return column.to_pylist()
    # Through NumPy (a dependency of the recordings extra): its tolist() makes numbers half
    # again as fast as Arrow's to_pylist().
    return column.to_numpy().tolist()


class TickRows:
    """Recorded rows that become ``CThostFtdcDepthMarketDataField`` ticks when iterated.

    Replay hands these to the session as batches of ticks (a batch may be any sized iterable of
    ticks), so the ticks are built on the dispatcher thread just before their callbacks.  Each
    tick's 49 Python objects then live and die on one thread and one CPU core: built on the IO
    thread and freed on the dispatcher's, they cost twice as much, in cache traffic between the
    cores.  The IO thread meanwhile only slices and filters Arrow data.

    ``batch`` holds the rows (schema columns, ``ReceiveTime`` last); ``constants`` (from
    :func:`constant_values`) gives, per tick column, a value every row shares, or ``VARIES``.
    """

    __slots__ = ("batch", "constants")

    def __init__(self, batch: pa.RecordBatch, constants: tuple[Any, ...]) -> None:
        self.batch = batch
        self.constants = constants

    def __len__(self) -> int:
        return self.batch.num_rows

    def __iter__(self) -> Iterator[Any]:
        # One tick at a time: a tick the callback does not keep is freed before the next is made,
        # so they all reuse the same memory (made as a list, 512 live ticks cost a third more).
        from ..ctp.market_data import depth_class

        new, extend, tick_class = list.__new__, list.extend, depth_class()
        for offset in range(0, self.batch.num_rows, CONVERT_ROWS):
            for values in zip(*self.columns(offset, CONVERT_ROWS)):
                tick = new(tick_class)
                extend(tick, values)
                yield tick

    def columns(self, offset: int, length: int) -> list[Any]:
        """Per tick column, the values of ``length`` rows from ``offset`` (a list, or a repeat of
        the shared value)."""
        batch = self.batch.slice(offset, length)
        rows = batch.num_rows
        return [
            _python_values(column) if constant is VARIES else itertools.repeat(constant, rows)
            for column, constant in zip(batch.columns, self.constants)
        ]

    def receive_times(self) -> list[int]:
        return self.batch.column(RECEIVE_TIME).to_pylist()

    def slice(self, offset: int, length: int | None = None) -> "TickRows":
        return TickRows(self.batch.slice(offset, length), self.constants)

    def filter(self, mask: Any) -> "TickRows":
        return TickRows(self.batch.filter(mask), self.constants)

    def with_values(self, values: dict[int, Any]) -> "TickRows":
        """The same rows with the tick columns at these positions set to these values."""
        constants = list(self.constants)
        for position, value in values.items():
            constants[position] = value
        return TickRows(self.batch, tuple(constants))

    def last_of(self, instrument_id: str, copy: bool = False) -> "TickRows | None":
        """The last row of ``instrument_id``, or None; with ``copy``, in memory of its own rather
        than a view that keeps all of this batch's buffers alive."""
        import pyarrow.compute as pc

        rows = pc.indices_nonzero(pc.equal(self.batch.column("InstrumentID"), instrument_id))
        if not len(rows):
            return None
        if copy:
            return TickRows(self.batch.take(rows[-1:]), self.constants)
        return self.slice(rows[-1].as_py(), 1)

    @classmethod
    def in_time_order(cls, parts: list["TickRows"]) -> "TickRows":
        """All rows of ``parts`` as one, ordered by ``ReceiveTime`` (rows that tie keep the parts'
        order, then their own)."""
        import pyarrow.compute as pc

        table = pa.Table.from_batches([part.batch for part in parts])
        table = table.take(pc.sort_indices(table.column(RECEIVE_TIME)))  # a stable sort
        first = parts[0].constants
        shared = tuple(
            value if all(part.constants[i] == value for part in parts[1:]) else VARIES
            for i, value in enumerate(first)
        )
        return cls(table.combine_chunks().to_batches()[0], shared)


def merge_in_time(sources: list[Iterator[TickRows]]) -> Iterator[TickRows]:
    """Several time-ordered streams as one; rows that tie come in the order of ``sources``.

    Each round takes, from every stream, its rows up to the earliest of the streams' current last
    receive times, so the stream that set it moves on to its next chunk.
    """
    import pyarrow.compute as pc

    heads: list[TickRows | None] = [next(source, None) for source in sources]
    while True:
        live = [i for i, head in enumerate(heads) if head is not None]
        if len(live) <= 1:
            if live:
                yield heads[live[0]]  # type: ignore[misc]
                yield from sources[live[0]]
            return
        bound = min(heads[i].batch.column(RECEIVE_TIME)[-1].as_py() for i in live)  # type: ignore[union-attr]
        parts = []
        for i in live:
            head: TickRows = heads[i]  # type: ignore[assignment]
            taken = pc.sum(pc.less_equal(head.batch.column(RECEIVE_TIME), bound)).as_py() or 0
            if taken:
                parts.append(head.slice(0, taken))
            heads[i] = head.slice(taken) if taken < len(head) else next(sources[i], None)
        yield TickRows.in_time_order(parts)


def count_ticks(path: str | os.PathLike[str]) -> int:
    """How many ticks a recording file holds (from the footer for an archive)."""
    path = Path(path)
    if path.suffix == ARCHIVE_SUFFIX:
        return _open_archive(path).metadata.num_rows
    return sum(batch.num_rows for batch in read_batches(path, ["TradingDay"]))


def instruments_in(path: str | os.PathLike[str]) -> set[str]:
    """The instruments a recording file holds."""
    import pyarrow.compute as pc

    found: set[str] = set()
    # An archive stores InstrumentID dictionary-encoded: read as such, each piece names its
    # instruments in its dictionary, without a string made or hashed per row.
    for table in read_tables(path, ["InstrumentID"], dictionaries=["InstrumentID"]):
        for chunk in table.column(0).chunks:
            found.update((chunk.dictionary if pa.types.is_dictionary(chunk.type) else pc.unique(chunk)).to_pylist())
    return found


GAP_SECONDS = 60  # a pause between two ticks longer than this is reported as a gap


def describe(path: str | os.PathLike[str], damage: list[str] | None = None) -> list[dict[str, Any]]:
    """Per file of a recording: instruments (with tick counts), trading days, ticks, the first
    and last tick (``ActionDay UpdateTime``) and the gaps longer than ``GAP_SECONDS``; of a
    damaged file, what is before the damage (see :func:`read_tables` for ``damage``): every
    column is read, so ``ticks`` is what replay can play."""
    import pyarrow.compute as pc

    columns = ["InstrumentID", "TradingDay", "ActionDay", "UpdateTime", RECEIVE_TIME]
    reports = []
    for day in recording_days(path):
        for file in day.paths:
            per_instrument: dict[str, int] = {}
            days: set[str] = set()
            first = last = None
            gaps: list[tuple[str, str, float]] = []
            count = 0
            previous: tuple[int, str] | None = None  # the last tick of the batch before: (receive, stamp)
            # Every column is read (and checked), so the count is what replay can play.
            for whole in read_batches(file, damage=damage):
                if not whole.num_rows:
                    continue
                batch = whole.select(columns)
                count += batch.num_rows
                for entry in pc.value_counts(batch.column("InstrumentID")).to_pylist():
                    per_instrument[entry["values"]] = per_instrument.get(entry["values"], 0) + entry["counts"]
                days.update(pc.unique(batch.column("TradingDay")).to_pylist())
                stamp = _stamper(batch)
                first = first or stamp(0)
                last = stamp(batch.num_rows - 1)
                receives = batch.column(RECEIVE_TIME)
                if previous is not None:
                    pause = receives[0].as_py() - previous[0]
                    if pause > GAP_SECONDS * 10**9:
                        gaps.append((previous[1], stamp(0), pause / 1e9))
                # Only the rows that start a gap become Python values.
                pauses = pc.subtract(receives.slice(1), receives.slice(0, batch.num_rows - 1))
                for row in pc.indices_nonzero(pc.greater(pauses, GAP_SECONDS * 10**9)).to_pylist():
                    gaps.append((stamp(row), stamp(row + 1), pauses[row].as_py() / 1e9))
                previous = (receives[batch.num_rows - 1].as_py(), last)
            reports.append({
                "file": str(file), "trading_days": sorted(days), "ticks": count, "first": first, "last": last,
                "instruments": dict(sorted(per_instrument.items())), "gaps": gaps,
            })
    return reports


def _stamper(batch: pa.RecordBatch) -> Any:
    action_days, clocks = batch.column("ActionDay"), batch.column("UpdateTime")
    return lambda row: f"{action_days[row].as_py()} {clocks[row].as_py()}"


@dataclass(frozen=True)
class DayFiles:
    """The files holding one trading day (several when a live file was left beside its archive)."""

    day: str
    paths: tuple[Path, ...]


def recording_days(path: str | os.PathLike[str]) -> list[DayFiles]:
    """The trading days of a recording file or folder, in order.

    Every file is checked (:func:`check_file`) before anything reads it."""
    path = Path(path)
    try:
        is_folder = stat.S_ISDIR(os.stat(path).st_mode)
        if is_folder:
            with os.scandir(path) as entries:
                files = sorted(Path(entry.path) for entry in entries if Path(entry.name).suffix in RECORDING_SUFFIXES)
        else:
            files = [path]
    except OSError as exc:
        raise os_error(path, exc) from None
    if not files:
        raise RecordingError(f"{path}: no recordings (.parquet or .arrows files) in this folder")
    by_day: dict[str, list[Path]] = {}
    for file in files:
        if file.suffix not in RECORDING_SUFFIXES:
            raise RecordingError(f"{file}: not a recording (expected .parquet or .arrows)")
        check_file(file)
        by_day.setdefault(_file_day(file), []).append(file)
    return [DayFiles(day, tuple(paths)) for day, paths in sorted(by_day.items())]


def check_day(day: str, what: str) -> str:
    """``day`` when it is a trading day as CTP writes it (YYYYMMDD); files are named after it."""
    if not (len(day) == 8 and day.isascii() and day.isdigit()):
        raise RecordingError(f"{what} {day!r} is not a date (YYYYMMDD)")
    return day


def _file_day(path: Path) -> str:
    """The file's trading day: from its name when it is YYYYMMDD, else from its first row."""
    if path.stem.isdigit() and len(path.stem) == 8:
        return path.stem
    damage: list[str] = []  # reported by whatever reads the file; here only if it leaves no tick to date
    for batch in read_batches(path, ["TradingDay"], damage):
        if batch.num_rows:
            return check_day(str(batch.column(0)[0].as_py()), f"{path}: its first tick's TradingDay")
    raise RecordingError(damage[0] if damage else
                         f"{path}: no ticks, and its name is not a trading day (YYYYMMDD) to file it under")


def verify(path: str | os.PathLike[str]) -> list[str]:
    """Read every tick of a recording file or folder: the problems found, or an empty list when
    it is healthy.

    Each problem is one line naming the file and, for damage, the IPC batch (live file) or row
    group (archive), its byte offset and what is wrong; a file that cannot be read at all (not a
    recording, permission denied, a named pipe ...) is one problem.  Never raises
    :class:`RecordingError`.
    """
    path = Path(path)
    try:
        files = [file for day in recording_days(path) for file in day.paths]
    except RecordingError as exc:
        return [str(exc)]
    problems: list[str] = []
    for file in files:
        try:
            for _ in read_tables(file, damage=problems):
                pass
        except RecordingError as exc:
            problems.append(str(exc))
    return problems


# Archives carry page checksums, verified on read (see _open_archive).
ARCHIVE_OPTIONS: dict[str, Any] = {"compression": "zstd", "write_page_checksum": True}
EXCHANGE_TIME = ["TradingDay", "ActionDay", "UpdateTime", "UpdateMillisec"]


def write_archive(table: pa.Table, target: str | os.PathLike[str]) -> None:
    """Write ``table`` (the schema, any order) as an archive file ordered by receive time (a
    stable sort: rows that tie keep their order)."""
    import pyarrow.compute as pc

    table = table.take(pc.sort_indices(table.column(RECEIVE_TIME)))
    pq.write_table(table, target, row_group_size=ARCHIVE_ROW_GROUP, **ARCHIVE_OPTIONS)


def in_exchange_time_order(table: pa.Table) -> pa.Table:
    """``table`` ordered by its exchange stamps (TradingDay, ActionDay, UpdateTime,
    UpdateMillisec; a stable sort), with receive times made never to go backwards in that order.

    For imported ticks (a CSV's rows may come in any order, with or without receive times):
    replay orders by receive time, so a file in reverse order would otherwise play backwards.
    """
    import pyarrow.compute as pc

    order = pc.sort_indices(table, sort_keys=[(name, "ascending") for name in EXCHANGE_TIME])
    table = table.take(order)
    receive = pc.cumulative_max(table.column(RECEIVE_TIME))
    return table.set_column(table.schema.get_field_index(RECEIVE_TIME), SCHEMA.field(RECEIVE_TIME), receive)
