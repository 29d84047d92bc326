"""Day archives: ``<TradingDay>.parquet``, one file per trading day, all instruments together,
ordered by ``ReceiveTime``, zstd-compressed, with page checksums; and the archiving of a live file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .readers import being_recorded, damaged, os_error, read_batches
from .rows import NOTHING_SHARED, TickRows, merge_in_time
from .schema import ARCHIVE_SUFFIX, RECEIVE_TIME, SCHEMA, RecordingError


# Rows per Parquet row group.  The parsed footer (held while a file is read) has an entry per
# column per row group: 16,384-row groups cost 2.8 MB of it per million ticks, 131,072-row groups
# 0.3 MB.  Archiving holds one group of Arrow data (about 45 MB) while it writes it.
ARCHIVE_ROW_GROUP = 131_072
ARCHIVE_OPTIONS: dict[str, Any] = {"compression": "zstd", "write_page_checksum": True}


def write_archive(table: pa.Table, target: str | os.PathLike[str]) -> None:
    """Write ``table`` (the schema, any order) as an archive file ordered by receive time (a
    stable sort: rows that tie keep their order)."""
    import pyarrow.compute as pc

    table = table.take(pc.sort_indices(table.column(RECEIVE_TIME)))
    pq.write_table(table, target, row_group_size=ARCHIVE_ROW_GROUP, **ARCHIVE_OPTIONS)


def archive_day(live: Path) -> Path:
    """Turn a live ``.arrows`` file into (or merge it into) ``<day>.parquet``; remove the live file.

    Streams: one row group (``ARCHIVE_ROW_GROUP`` ticks) at a time is held, whatever the size of the day.
    A damaged live file (its tail cut by a recorder killed mid-write, or worse) is archived up to the
    damage and kept beside the archive as ``<day>.arrows.damaged``, with a warning; a damaged archive
    is not rewritten (what follows its damage would be lost): both files are kept and
    :class:`RecordingError` says so, as it does for a live file another recorder is writing now.
    """
    if being_recorded(live):
        raise RecordingError(f"{live} is being recorded now by another recorder: give each recorder a folder of "
                             "its own")
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
        damaged(None, f"{live_damage[0]}; the ticks before it are archived in {target}, the file is kept as {kept}")
    else:
        live.unlink()
    return target


def _write_group(writer: pq.ParquetWriter | None, path: Path, table: pa.Table) -> pq.ParquetWriter:
    if writer is None:
        writer = pq.ParquetWriter(path, SCHEMA, **ARCHIVE_OPTIONS)
    writer.write_table(table, row_group_size=ARCHIVE_ROW_GROUP)
    return writer
