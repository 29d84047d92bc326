"""Bad recording files and bad CSVs: a clear message (and exit status) for each, never a crash, a
hang, a traceback or silently wrong ticks."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ctpshim import recording
from ctpshim.errors import FrontAddressError
from ctpshim.ctp.market_data import blank_values, depth_index
from ctpshim.recording import LiveWriter, RecordingError, read_batches, verify
from ctpshim.fronts.registry import create_adapter
from ctpshim.tools import cli
from ctpshim.tools.commands.convert import convert

from ..conftest import file_cannot_grow, wait_for

MEMBER = depth_index()
START = 1_795_136_400 * 10**9  # 2026-11-20 09:00 China time
CSV_HEADER = "TradingDay,InstrumentID,LastPrice,Volume,UpdateTime,UpdateMillisec"


def ticks(count: int, instrument: str = "rb2605") -> list[list]:
    made = []
    for index in range(count):
        tick = blank_values(instrument, "SHFE")
        tick[MEMBER["TradingDay"]] = tick[MEMBER["ActionDay"]] = "20261120"
        second = index // 2
        tick[MEMBER["UpdateTime"]] = f"09:{second // 60:02d}:{second % 60:02d}"
        tick[MEMBER["UpdateMillisec"]] = 500 * (index % 2)
        tick[MEMBER["LastPrice"]], tick[MEMBER["Volume"]] = 3000.0 + index, index
        made.append(tick)
    return made


def live_file(folder: Path, batches: int = 4, per_batch: int = 50) -> Path:
    writer = LiveWriter(folder, archive=False)
    for index, tick in enumerate(ticks(batches * per_batch)):
        writer.write(tick, START + index * 500_000_000)
        if index % per_batch == per_batch - 1:
            writer.flush()
    writer.close()
    return folder / "20261120.arrows"


def archive(path: Path, count: int = 400, group: int = 100, **options) -> Path:
    table = pa.Table.from_batches(list(read_batches(live_file(path.parent / "live", count // 50, 50))))
    pq.write_table(table, path, row_group_size=group, **(options or recording.ARCHIVE_OPTIONS))
    return path


def batch_offsets(path: Path) -> list[int]:
    """Where each record batch of a live file starts."""
    import pyarrow.ipc as ipc

    offsets = []
    with open(path, "rb") as source:
        reader = ipc.open_stream(source)
        while True:
            offsets.append(source.tell())
            try:
                reader.read_next_batch()
            except StopIteration:
                return offsets[:-1]


def ctpshim(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ctpshim", *args], capture_output=True, text=True, timeout=timeout)


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """``ctpshim ARGS`` in this process (so a monkeypatch applies); (status, stdout, stderr)."""
    try:
        status = cli.main(list(args))
    except SystemExit as exc:
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


def one_line(text: str) -> bool:
    return "Traceback" not in text and len(text.strip().splitlines()) == 1


# -- item 1: a damaged live file ------------------------------------------------------------------

def test_a_damaged_string_offset_in_a_live_file_ends_it_there_instead_of_crashing(tmp_path, make_md, caplog):
    live = live_file(tmp_path)
    starts = batch_offsets(live)
    before = sum(len(batch) for batch in list(read_batches(live))[:2])
    data = bytearray(live.read_bytes())
    # InstrumentID's offsets (0, 6, 12, ...) in the third batch: one pointing far out of its buffer
    # made Arrow read out of bounds (a segmentation fault) in info, convert and replay.
    where = data.index(struct.pack("<4i", 0, 6, 12, 18), starts[2])
    data[where + 8:where + 12] = struct.pack("<i", 0x7FFFFF00)
    live.write_bytes(bytes(data))
    result = ctpshim("info", str(live))
    assert result.returncode == 1, result
    assert f"{live}: IPC batch 2 (byte {starts[2]}) is damaged" in result.stdout and "Traceback" not in result.stderr
    assert f"ticks         {before}" in result.stdout
    result = ctpshim("convert", str(live), "-o", str(tmp_path / "out.parquet"))
    assert result.returncode == 1 and f"IPC batch 2 (byte {starts[2]})" in result.stderr, result
    assert sum(len(batch) for batch in read_batches(tmp_path / "out.parquet")) == before
    result = ctpshim("record", f"replay://{live}?speed=max&rebase=none", "-i", "rb2605", "-o", str(tmp_path / "copy"),
                     "--count", str(before), "--duration", "30", "--quiet")
    assert result.returncode == 0 and f"recorded {before} ticks" in result.stdout, result
    api, spi = make_md(f"replay://{live}?speed=max&rebase=none", subscribe=["rb2605"])
    wait_for(lambda: len(spi.ticks) >= before)
    api.Release()
    assert [t.LastPrice for t in spi.ticks[:before]] == [3000.0 + i for i in range(before)]
    assert caplog.text.count(f"IPC batch 2 (byte {starts[2]}) is damaged") == 1  # one warning, not one per reader


def test_invalid_utf8_in_a_live_file_is_damage_not_a_traceback(tmp_path, capsys):
    live = live_file(tmp_path)
    before = len(next(read_batches(live)))
    data = bytearray(live.read_bytes())
    where = data.index(b"rb2605", batch_offsets(live)[1])
    data[where + 2] = 0xFF
    live.write_bytes(bytes(data))
    status, out, err = run_cli(capsys, "info", str(live))
    assert status == 1 and "IPC batch 1" in out and "UTF8" in out and f"ticks         {before}" in out, (out, err)
    assert verify(live) and "IPC batch 1" in verify(live)[0]


def test_a_changed_value_in_a_live_file_fails_its_batch_checksum_and_old_files_without_still_read(tmp_path):
    import pyarrow.ipc as ipc

    live = live_file(tmp_path)
    starts = batch_offsets(live)
    before = sum(len(batch) for batch in list(read_batches(live))[:3])
    data = bytearray(live.read_bytes())
    # LastPrice 3000 + the first tick of the fourth batch, as a little-endian double: a flipped bit
    # there is still a valid file, and used to read as another price.
    where = data.index(struct.pack("<d", 3000.0 + before), starts[3])
    data[where] ^= 0x10
    live.write_bytes(bytes(data))
    problems = verify(live)
    assert problems == [f"{live}: IPC batch 3 (byte {starts[3]}) is damaged (its checksum does not match its "
                        "values); the ticks before it are read, the rest of the file is skipped"]
    assert sum(len(batch) for batch in read_batches(live, damage=[])) == before
    old = tmp_path / "old" / "20261120.arrows"
    old.parent.mkdir()
    with ipc.new_stream(str(old), recording.SCHEMA) as writer:  # as live files were written, without checksums
        for batch in read_batches(live, damage=[]):
            writer.write_batch(batch)
    assert verify(old) == [] and sum(len(batch) for batch in read_batches(old)) == before


def test_archiving_a_damaged_live_file_keeps_what_follows_the_damage(tmp_path, caplog):
    live = live_file(tmp_path)
    starts = batch_offsets(live)
    before = sum(len(batch) for batch in list(read_batches(live))[:2])
    data = bytearray(live.read_bytes())
    data[starts[2] + 400] ^= 0xFF
    live.write_bytes(bytes(data))
    target = recording.archive_day(live)
    assert sum(len(batch) for batch in read_batches(target)) == before
    kept = tmp_path / "20261120.arrows.damaged"
    assert kept.read_bytes() == bytes(data) and not live.exists()
    assert f"IPC batch 2 (byte {starts[2]}) is damaged" in caplog.text and f"kept as {kept}" in caplog.text


# -- item 5: a damaged archive --------------------------------------------------------------------

def damage_row_group(path: Path, group: int) -> int:
    column = pq.ParquetFile(path).metadata.row_group(group).column(0)
    offset = column.dictionary_page_offset if column.has_dictionary_page else column.data_page_offset
    end = pq.ParquetFile(path).metadata.row_group(group).column(pq.ParquetFile(path).metadata.num_columns - 1)
    stop = end.data_page_offset + end.total_compressed_size
    data = bytearray(path.read_bytes())
    middle = (offset + stop) // 2
    data[middle:middle + 64] = bytes(64)
    path.write_bytes(bytes(data))
    return offset


def test_info_verify_and_convert_report_a_damaged_row_group_and_fail(tmp_path, capsys):
    target = archive(tmp_path / "20261120.parquet")
    assert verify(target) == []
    offset = damage_row_group(target, 2)
    problems = verify(target)
    assert len(problems) == 1 and problems[0].startswith(f"{target}: row group 2 (byte {offset}) is damaged")
    status, out, err = run_cli(capsys, "info", str(target))
    assert status == 1 and "ticks         200" in out and f"row group 2 (byte {offset})" in out, (out, err)
    status, out, err = run_cli(capsys, "info", "--json", str(target))
    assert status == 1 and f"row group 2 (byte {offset})" in out
    status, out, err = run_cli(capsys, "convert", str(target), "-o", str(tmp_path / "out.parquet"))
    assert status == 1 and "200 ticks" in out and f"row group 2 (byte {offset})" in err
    assert sum(len(b) for b in read_batches(tmp_path / "out.parquet")) == 200


def test_archives_carry_page_checksums_and_old_ones_without_still_read(tmp_path):
    new = archive(tmp_path / "new" / "20261120.parquet")
    old = tmp_path / "old" / "20261120.parquet"
    old.parent.mkdir()
    pq.write_table(pq.read_table(new), old, compression="zstd", row_group_size=100)  # as archives were written
    assert verify(old) == [] and sum(len(b) for b in read_batches(old)) == 400
    # A flip inside a data page of the new file is found by its checksum, whatever it decodes to.
    found = 0
    for group in range(4):
        meta = pq.ParquetFile(new).metadata.row_group(group).column(MEMBER["LastPrice"])
        copy = tmp_path / f"flip{group}" / "20261120.parquet"
        copy.parent.mkdir()
        data = bytearray(new.read_bytes())
        data[meta.data_page_offset + meta.total_compressed_size - 4] ^= 0x01
        copy.write_bytes(bytes(data))
        found += bool(verify(copy))
    assert found == 4


def test_a_zeroed_archive_header_is_a_clear_error_not_a_trading_day(tmp_path, capsys):
    target = archive(tmp_path / "day.parquet")
    data = bytearray(target.read_bytes())
    data[:4096] = bytes(4096)
    target.write_bytes(bytes(data))
    status, out, err = run_cli(capsys, "info", str(target))
    assert status == 1 and f"{target}: row group 0 (byte 4) is damaged" in err and one_line(err), (out, err)
    with pytest.raises(FrontAddressError, match="row group 0"):
        create_adapter(f"replay://{target}")


# -- item 6: CSV values that do not fit, order ----------------------------------------------------

@pytest.mark.parametrize("row, column, words", [
    ("20261120,rb2605,3150,5000000000,09:00:02,0", "Volume", "5000000000 is not valid: expected a whole number"),
    ("20261120,rb2605,3150,12.7,09:00:02,0", "Volume", "12.7 is not valid: expected a whole number"),
    ("20261120,rb2605,3150,12,09:00:02,5000", "UpdateMillisec", "5000 is not valid: expected a whole number from 0 to"),
    ("20261120," + "r" * 200 + ",3150,12,09:00:02,0", "InstrumentID", "(200 characters) is not valid: expected text"),
    ("20261120,rb2605,inf,12,09:00:02,0", "LastPrice", "inf is not valid: expected a finite price"),
    ("20261120,rb2605,3150,abc,09:00:02,0", "Volume", "'abc' is not a number"),
])
def test_a_csv_value_its_member_cannot_hold_is_an_error_naming_row_and_column(tmp_path, capsys, row, column, words):
    source = tmp_path / "bad.csv"
    source.write_text(f"{CSV_HEADER}\n20261120,rb2605,3149,10,09:00:01,0\n{row}\n20261120,rb2605,3151,14,09:00:03,0\n")
    status, out, err = run_cli(capsys, "convert", str(source), "-o", str(tmp_path / "out.parquet"))
    assert status == 1 and f"data row 2, column {column}: " in err and words in err and one_line(err), err
    assert not (tmp_path / "out.parquet").exists()
    if column == "Volume" and "abc" in words:
        return  # not a number at all: no --skip-bad for an unreadable column
    status, out, err = run_cli(capsys, "convert", str(source), "-o", str(tmp_path / "out.parquet"), "--skip-bad")
    assert status == 0 and "2 ticks" in out and "1 bad rows skipped" in out, (out, err)
    assert [b.column("Volume").to_pylist() for b in read_batches(tmp_path / "out.parquet")] == [[10, 14]]


@pytest.mark.parametrize("row, words", [
    ("60170320,rb2605,3149,10,09:00:02,0", "data row 2: '60170320 09:00:02' is not a date and time"),
    ("20261120,rb2605,3149,10,29:00:02,0", "data row 2: '20261120 29:00:02' is not a date and time"),
    ("20261120,rb2605,3149,10,9h00,0", "data row 2: time '9h00' is not HH:MM:SS"),
    ('20261120,rb2605,"3149,10,09:00:02,0', "CSV parse error"),  # a quote that opens a cell over two lines
])
def test_a_csv_row_that_cannot_be_read_is_a_one_line_message(tmp_path, capsys, row, words):
    source = tmp_path / "bad.csv"
    source.write_text(f"{CSV_HEADER}\n20261120,rb2605,3149,10,09:00:01,0\n{row}\n20261120,rb2605,3151,14,09:00:03,0\n")
    status, out, err = run_cli(capsys, "convert", str(source), "-o", str(tmp_path / "out.parquet"))
    assert status == 1 and words in err and one_line(err), err


def test_a_tqsdk_time_outside_the_calendar_names_its_row(tmp_path, capsys):
    source = tmp_path / "tq.csv"
    source.write_text("symbol,datetime_nano,last_price,bid_price1,ask_price1,volume\n"
                      "SHFE.cu1909,1568595600000000000,47000,46990,47010,10\n"
                      "SHFE.cu1909,99999999999999999,47000,46990,47010,11\n")
    status, out, err = run_cli(capsys, "convert", str(source), "-o", str(tmp_path / "out.parquet"))
    assert status == 1 and "data row 2: 99999999999999999 is not a time in nanoseconds" in err and one_line(err), err


def test_a_compressed_csv_is_read_as_its_text(tmp_path):
    import gzip

    source = tmp_path / "ticks.csv.gz"
    source.write_bytes(gzip.compress(f"{CSV_HEADER}\n20261120,rb2605,3149,10,09:00:01,0\n".encode()))
    assert convert(str(source), str(tmp_path / "out.parquet"))["rows"] == 1


def test_a_csv_in_reverse_time_order_is_written_in_time_order(tmp_path):
    source = tmp_path / "reverse.csv"
    # Receive times as some recorders write them: one per batch, so they do not order the rows.
    lines = [f"20261120,rb2605,{3150 + s},{10 + s},09:00:{s:02d},0,{START}" for s in range(5, 0, -1)]
    source.write_text(f"{CSV_HEADER},ReceiveTime\n" + "\n".join(lines) + "\n")
    convert(str(source), str(tmp_path / "out.parquet"))
    written = pa.Table.from_batches(list(read_batches(tmp_path / "out.parquet")))
    assert written.column("UpdateTime").to_pylist() == [f"09:00:0{s}" for s in range(1, 6)]
    receive = written.column("ReceiveTime").to_pylist()
    assert receive == sorted(receive)


# -- item 7: messages, not tracebacks ------------------------------------------------------------

@pytest.fixture
def denied(monkeypatch):
    """``denied(path)``: reading ``path`` (a file or a folder) fails with "permission denied", as for
    an unprivileged user; chmod alone does not stop root, which runs these tests in CI."""
    paths: set[str] = set()
    real_open, real_scandir = os.open, os.scandir

    def guarded_open(path, flags, *args, **kwargs):
        if os.fspath(path) in paths:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    def guarded_scandir(path="."):
        if os.fspath(path) in paths:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "open", guarded_open)
    monkeypatch.setattr(os, "scandir", guarded_scandir)

    def deny(path: Path) -> Path:
        path.chmod(0)
        paths.add(str(path))
        return path

    yield deny
    for path in paths:
        Path(path).chmod(0o700)


def test_an_unreadable_folder_or_file_is_named_with_permission_denied(tmp_path, capsys, denied):
    folder = tmp_path / "days"
    folder.mkdir()
    archive(folder / "20261120.parquet")
    denied(folder)
    for args in (["info", str(folder)], ["convert", str(folder), "-o", str(tmp_path / "x.csv")]):
        status, out, err = run_cli(capsys, *args)
        assert status == 1 and f"{folder}: permission denied" in err and one_line(err), err
    target = archive(tmp_path / "one" / "20261120.parquet")
    denied(target)
    status, out, err = run_cli(capsys, "info", str(target))
    assert status == 1 and err.strip() == f"ctpshim info: {target}: permission denied"  # not "truncated"


def test_record_into_a_file_or_a_read_only_folder_is_refused_before_it_starts(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("")
    status, out, err = run_cli(capsys, "record", "sim://", "-i", "rb2605", "-o", str(afile), "--count", "3")
    assert status == 1 and f"cannot record into {afile}: it is a file, not a folder" in err and one_line(err)
    if not os.access("/sys", os.F_OK):
        pytest.skip("no /sys to stand for a folder nobody may write")
    status, out, err = run_cli(capsys, "record", "sim://", "-i", "rb2605", "-o", "/sys", "--count", "3")
    assert status == 1 and "cannot record into /sys: permission denied" in err and one_line(err), err


def test_convert_to_an_unwritable_path_is_a_message(tmp_path, capsys):
    source = tmp_path / "ok.csv"
    source.write_text(f"{CSV_HEADER}\n20261120,rb2605,3149,10,09:00:01,0\n")
    for target in ("/sys/x.parquet", "/sys/x.csv", str(source) + "/x.parquet"):
        status, out, err = run_cli(capsys, "convert", str(source), "-o", target)
        assert status == 1 and "cannot write" in err and one_line(err), err


@pytest.mark.parametrize("lines_before", [1, 5000])  # the bad bytes among those the encoding is guessed from, or past
def test_invalid_utf8_in_a_csv_is_a_message(tmp_path, capsys, lines_before):
    source = tmp_path / "bad.csv"
    good = "20261120,rb2605,3149,10,09:00:01,0\n" * lines_before
    source.write_bytes(f"{CSV_HEADER}\n{good}".encode() + b"20261120,rb\xff\xfe05,3149,10,09:00:01,0\n")
    status, out, err = run_cli(capsys, "convert", str(source), "-o", str(tmp_path / "x.parquet"))
    assert status == 1 and str(source) in err and one_line(err), err
    assert "UTF-8" in err or "UTF8" in err


def test_named_pipes_are_refused_without_being_opened(tmp_path):
    os.mkfifo(tmp_path / "20261120.arrows")
    os.mkfifo(tmp_path / "ticks.csv")
    for args in (["info", str(tmp_path / "20261120.arrows")], ["info", str(tmp_path)],
                 ["convert", str(tmp_path / "ticks.csv"), "-o", str(tmp_path / "x.parquet")],
                 ["convert", str(tmp_path), "-o", str(tmp_path / "x.csv")]):
        result = ctpshim(*args, timeout=30)  # it used to block for good, opening the pipe
        assert result.returncode == 1 and "a named pipe, not a regular file" in result.stderr, result
        assert one_line(result.stderr)


# -- item 10: what the recorder says --------------------------------------------------------------

def test_the_disk_full_message_counts_only_the_ticks_that_are_readable(tmp_path):
    writer = LiveWriter(tmp_path, flush_interval=3600, archive=False)
    made = ticks(150 + recording.WRITE_CHUNK + 10)
    for index, tick in enumerate(made[:150]):
        writer.write(tick, START + index)
    writer.flush()
    live = tmp_path / "20261120.arrows"
    with file_cannot_grow(live):
        # A whole chunk goes into the write buffer (no error yet); the flush after it fails.
        with pytest.raises(RecordingError) as failure:
            for index, tick in enumerate(made[150:]):
                writer.write(tick, START + 150 + index)
            writer.flush()
    readable = sum(len(b) for b in read_batches(live))
    assert readable == 150 and "readable up to the last complete flush: 150 ticks" in str(failure.value)


def test_a_leftover_live_file_with_a_partial_header_says_what_it_is_and_what_to_do(tmp_path, capsys):
    whole = live_file(tmp_path / "whole")
    (tmp_path / "out").mkdir()
    leftover = tmp_path / "out" / "20261119.arrows"
    leftover.write_bytes(whole.read_bytes()[:100])
    status, out, err = run_cli(capsys, "record", "sim://?speed=max", "-i", "rb2605", "-o", str(tmp_path / "out"),
                               "--count", "3", "--quiet")
    assert status == 1 and one_line(err), err
    assert f"{leftover}: an incomplete live recording" in err and "Move it out of the folder or delete it" in err


def test_a_trading_day_that_is_not_a_date_never_names_a_file(tmp_path, capsys):
    made = ticks(3)
    for tick in made:
        tick[MEMBER["TradingDay"]] = "../evil"
    writer = LiveWriter(tmp_path / "rec")
    with pytest.raises(RecordingError, match=r"a tick's TradingDay '\.\./evil' is not a date \(YYYYMMDD\)"):
        writer.write(made[0], START)
    source = tmp_path / "20261120.parquet"
    pq.write_table(recording.table_from_ticks(made, [START + i for i in range(3)]), source)
    status, out, err = run_cli(capsys, "convert", str(source), "-o", str(tmp_path / "out" / "days"))
    assert status == 1 and "TradingDay '../evil' is not a date" in err and one_line(err), err
    assert not list(tmp_path.glob("**/evil*"))


# -- a live file being recorded ---------------------------------------------------------------------

def test_the_unfinished_last_batch_of_a_file_being_recorded_is_not_damage(tmp_path):
    whole = live_file(tmp_path / "whole", batches=3)
    starts = batch_offsets(whole)
    unfinished = whole.read_bytes()[starts[2]: starts[2] + 700]  # the third batch, half written
    writer = LiveWriter(tmp_path / "rec", archive=False)
    for index, tick in enumerate(ticks(100)):
        writer.write(tick, START + index * 500_000_000)
        if index % 50 == 49:
            writer.flush()
    live = tmp_path / "rec" / "20261120.arrows"
    with open(live, "ab") as tail:  # as the recorder's next batch is, when a reader comes by mid-write
        tail.write(unfinished)
    copy = tmp_path / "copy" / "20261120.arrows"  # the same bytes, no recorder behind them
    copy.parent.mkdir()
    copy.write_bytes(live.read_bytes())
    try:
        assert verify(live) == [] and sum(len(b) for b in read_batches(live)) == 100
        problems = verify(copy)
        assert len(problems) == 1 and f"{copy}: IPC batch " in problems[0] and "cut short by the end" in problems[0]
    finally:
        writer.close()
    assert verify(copy) == problems  # the lock was the recorder's, not the file's


def test_a_second_recorder_in_the_folder_of_a_running_one_is_refused_and_archives_nothing(tmp_path):
    first = LiveWriter(tmp_path, archive=False)
    for index, tick in enumerate(ticks(10)):
        first.write(tick, START + index)
    first.flush()
    live = tmp_path / "20261120.arrows"
    with pytest.raises(RecordingError, match="is being recorded now by another recorder"):
        LiveWriter(tmp_path)
    assert live.exists() and not list(tmp_path.glob("*.parquet"))
    first.close()
    LiveWriter(tmp_path).close()  # the day is archived once its recorder has stopped
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["20261120.parquet"]


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")  # the archiver's thread too
def test_a_trading_day_that_comes_back_while_it_is_being_archived_loses_nothing(tmp_path):
    # A source whose days go back (20 -> 19 -> 20): the second stint of the 20th must neither truncate
    # the live file the background archiver is reading nor race it for the archive.
    made = ticks(60_000)
    days = ["20261120"] * 50_000 + ["20261119"] + ["20261120"] * 9_999
    writer = LiveWriter(tmp_path)
    for index, (tick, day) in enumerate(zip(made, days)):
        tick[MEMBER["TradingDay"]] = day
        writer.write(tick, START + index)
    writer.close()
    assert writer.days == ["20261120", "20261119"]
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        "20261119.parquet", "20261120.parquet"]
    volumes = [v for b in read_batches(tmp_path / "20261120.parquet") for v in b.column("Volume").to_pylist()]
    assert volumes == list(range(50_000)) + list(range(50_001, 60_000))  # every tick, in receive order
