"""Recordings: one columnar schema for ticks, a crash-safe live writer, day archives, and readers.

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
Readers stream: memory does not grow with the size of the file.

What lives where (each module imports only those listed before it):

* :mod:`.schema`: the columns (the ``CThostFtdcDepthMarketDataField`` members and
  ``ReceiveTime``), the Arrow schema, the rules a recorded value obeys, tables from ticks, the
  live batch checksum.
* :mod:`.rows`: :class:`TickRows`, recorded rows that become ticks when iterated, and
  :func:`merge_in_time`.
* :mod:`.readers`: opening, checking and streaming one file (:func:`read_tables`), damage reports.
* :mod:`.archive`: Parquet day archives (:func:`write_archive`, :func:`archive_day`).
* :mod:`.writer`: :class:`LiveWriter`, the crash-safe live recorder.
* :mod:`.survey`: a recording's days and files (:func:`recording_days`), :func:`describe`,
  :func:`verify`.

Who may import it: the recording tools (``ctpshim.tools``: record, convert, info), the
``replay://`` adapter, and tests, through this package's names below.  Nothing imports it at
``import ctpshim``: it is the only place pyarrow is imported, when a recording is read or written.
It imports from the CTP domain (the field spec and value rules) and from no runtime or API module.
"""

from __future__ import annotations

from .archive import ARCHIVE_OPTIONS, ARCHIVE_ROW_GROUP, archive_day, write_archive
from .readers import DECODE_ROWS, check_file, instruments_in, os_error, read_batches, read_tables
from .rows import NOTHING_SHARED, VARIES, TickRows, constant_values, merge_in_time
from .schema import (
    ARCHIVE_SUFFIX, CHECKSUM_KEY, EXCHANGE_TIME, LIVE_SUFFIX, RECEIVE_TIME, RECORDING_SUFFIXES, SCHEMA, TICK_COLUMNS,
    BadValueError, RecordingError, bad_rows, batch_checksum, check_columns, check_day, in_exchange_time_order,
    table_from_ticks, table_from_values, tick_values,
)
from .survey import GAP_SECONDS, DayFiles, describe, recording_days, verify
from .writer import FLUSH_INTERVAL, WRITE_CHUNK, LiveWriter

__all__ = [
    "ARCHIVE_OPTIONS", "ARCHIVE_ROW_GROUP", "ARCHIVE_SUFFIX", "CHECKSUM_KEY", "DECODE_ROWS", "EXCHANGE_TIME",
    "FLUSH_INTERVAL", "GAP_SECONDS", "LIVE_SUFFIX", "NOTHING_SHARED", "RECEIVE_TIME", "RECORDING_SUFFIXES", "SCHEMA",
    "TICK_COLUMNS", "VARIES", "WRITE_CHUNK", "BadValueError", "DayFiles", "LiveWriter", "RecordingError", "TickRows",
    "archive_day", "bad_rows", "batch_checksum", "check_columns", "check_day", "check_file", "constant_values",
    "describe", "in_exchange_time_order", "instruments_in", "merge_in_time", "os_error",
    "read_batches", "read_tables", "recording_days", "table_from_ticks", "table_from_values", "tick_values", "verify",
    "write_archive",
]
