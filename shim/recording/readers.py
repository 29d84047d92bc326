"""Reading recording files: each file checked before it is opened, every batch validated (and a
live batch's checksum checked) before its values are used, damage reported once with its offset.

Readers stream: memory does not grow with the size of the file.
"""

from __future__ import annotations

import functools
import logging
import os
import stat
import struct
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # Windows: a live file being recorded then reads as cut short (see _CUT_SHORT)
    fcntl = None  # type: ignore[assignment]

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from ..messages import os_error_words
from .schema import ARCHIVE_SUFFIX, CHECKSUM_KEY, IPC_CONTINUATION, LIVE_SUFFIX, SCHEMA, RecordingError, batch_checksum

log = logging.getLogger("ctpshim.recording")


# Why a live file's last batch may end early; without file locks, a recorder writing it now cannot be told apart.
_CUT_SHORT = ("a recorder stopped while writing it, or its length is damaged" if fcntl is not None else
              "a recorder stopped while writing it, or is writing it now, or its length is damaged")
DECODE_ROWS = 16_384  # rows decoded at a time from an archive: what a reader holds, whatever the group size
_DAMAGE_TEXT = "the ticks before it are read, the rest of the file is skipped"


_warned: set[str] = set()  # damage already logged: several readers of one file (replay has three) warn once
_WARNED_MAX = 1024


def damaged(damage: list[str] | None, message: str) -> None:
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
    """:class:`RecordingError` saying ``path: reason`` for an operating-system error about ``path``,
    in the one wording (:func:`ctpshim.messages.os_error_words`)."""
    return RecordingError(os_error_words(exc, path))


def hold_live_file(path: Path) -> int:
    """Mark live file ``path`` as being recorded (an advisory lock held until the returned
    descriptor is closed): readers then take its unfinished last batch for what it is."""
    handle = os.open(path, os.O_RDONLY)
    if fcntl is not None:
        fcntl.flock(handle, fcntl.LOCK_EX)  # readers test it only for an instant (being_recorded)
    return handle


def being_recorded(path: Path) -> bool:
    """Whether a :class:`~ctpshim.recording.LiveWriter`, in any process, is recording into live
    file ``path`` now (see :func:`hold_live_file`)."""
    if fcntl is None:
        return False
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # a file system without locks
        return False
    finally:
        os.close(handle)  # and with it the shared lock just taken
    return False


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
    damage (reported once, with its byte offset).  Of a file being recorded now, the batches
    written so far: its unfinished end is not damage."""
    check_file(path)
    try:
        source = open(path, "rb")
    except OSError as exc:
        raise os_error(path, exc) from None
    with source:
        try:
            reader = ipc.open_stream(source)
        except Exception as exc:  # noqa: BLE001 - whatever Arrow makes of a damaged header
            if path.stat().st_size == 0 or being_recorded(path):  # no tick written yet
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
                    if being_recorded(path):  # the batch being written now
                        return
                    reason = f"cut short by the end of the file: {_CUT_SHORT}; {reason}"
                damaged(damage, f"{path}: IPC batch {number} (byte {offset}) is damaged ({reason}); {_DAMAGE_TEXT}")
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
        # Page checksums are verified as each page is read; a page written without one is read unchecked.
        return pq.ParquetFile(path, metadata=footer, read_dictionary=dictionaries, page_checksum_verification=True)
    except Exception as exc:  # noqa: BLE001 - as above
        raise RecordingError(f"{path}: cannot be read as Parquet ({_reason(exc)})") from None


@functools.lru_cache(maxsize=4)
def _footer(path: str, size: int, modified_ns: int) -> pq.FileMetaData:
    # The parsed footer of an archive holds a row of metadata per column per row group (0.3 MB
    # per million ticks with ARCHIVE_ROW_GROUP, 2.8 MB with 16k-row groups); several readers of
    # one file at once (replay's check, survey and player) share one.  Keyed on size and mtime: a
    # file that was rewritten is parsed again.
    return pq.read_metadata(path)


def _group_offset(parquet: pq.ParquetFile, group: int) -> int:
    first = parquet.metadata.row_group(group).column(0)  # (not its file_offset: writers leave it 0)
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
            damaged(damage, f"{path}: row group {group} (byte {offset}) is damaged ({_reason(exc)}); "
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
