"""Recording, converting and replaying trading days."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ctpshim import mdapi
from ctpshim.errors import FrontAddressError
from ctpshim.ctp.fields import values_of
from ctpshim.ctp.market_data import DBL_MAX
from ctpshim.recording import LiveWriter, RecordingError, describe, read_batches, recording_days
from ctpshim.fronts.registry import create_adapter
from ctpshim.tools.commands.convert import convert
from ctpshim.tools.layouts import LayoutError
from ctpshim.tools.commands.record import fewer_young_collections, record

from ..conftest import DATA, file_cannot_grow, wait_for
from .days import alternating_day

VNPY = DATA / "vnpy_CZCE_RM705_20170320.csv"
TQSDK = DATA / "tqsdk_SHFE_cu1909_20190916.csv"


def replay_all(url: str, ids: list[str], count: int, idle: float = 1.0) -> list:
    """Up to ``count`` ticks from an adapter; fewer if it stays silent for ``idle`` seconds."""
    async def run():
        adapter = create_adapter(url)
        await adapter.connect()
        await adapter.subscribe(ids)
        ticks = []
        stream = adapter.ticks()
        while len(ticks) < count:
            try:
                ticks += await asyncio.wait_for(stream.__anext__(), idle)
            except asyncio.TimeoutError:
                break
        await adapter.close()
        return ticks

    return asyncio.run(asyncio.wait_for(run(), 60))


def rows(path) -> list[list]:
    out = []
    for batch in read_batches(path):
        columns = [c.to_pylist() for c in batch.columns]
        out += [list(r) for r in zip(*columns)]
    return out


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6),
       ids=st.lists(st.sampled_from(["rb2701", "au2612", "TA701", "IF2612", "m2701", "sc2701"]),
                    min_size=1, max_size=3, unique=True))
def test_recorded_sim_ticks_replay_identically(tmp_path_factory, make_md, seed, ids):
    folder = tmp_path_factory.mktemp("rec")
    front = f"sim://?seed={seed}&speed=max&start=2026-11-20T09:35"
    assert record(front, ids, str(folder), duration=60, limit=3000, quiet=True) == 0
    recorded = rows(next(folder.glob("*.parquet")))
    assert len(recorded) >= 3000
    api, spi = make_md(f"replay://{folder}?speed=max&rebase=none", subscribe=ids)
    wait_for(lambda: len(spi.ticks) >= len(recorded), timeout=30)
    api.Release()
    replayed = [list(values_of(t)) for t in spi.ticks[:len(recorded)]]
    assert replayed == [r[:-1] for r in recorded]


def test_vnpy1_import_of_the_real_file(tmp_path):
    target = tmp_path / "rm.parquet"
    report = convert(str(VNPY), str(target))
    assert report["layout"] == "vnpy1" and report["rows"] == 16979 and report["days"] == ["20170320"]
    first = rows(target)[0]
    names = list(mdapi.CThostFtdcDepthMarketDataField.__annotations__)
    tick = dict(zip(names, first))
    assert (tick["InstrumentID"], tick["ExchangeID"], tick["TradingDay"], tick["ActionDay"]) == (
        "RM705", "CZCE", "20170320", "20170320")
    assert (tick["UpdateTime"], tick["UpdateMillisec"], tick["LastPrice"]) == ("09:00:00", 500, 2374.0)
    assert (tick["BidPrice1"], tick["BidVolume1"], tick["AskPrice1"], tick["AskVolume1"]) == (2372.0, 264, 2374.0, 65)
    assert tick["Volume"] == 0 and tick["OpenPrice"] == DBL_MAX and tick["BidPrice2"] == DBL_MAX


def test_tqsdk_import_of_the_real_file(tmp_path):
    target = tmp_path / "cu.parquet"
    report = convert(str(TQSDK), str(target))
    assert report["layout"] == "tqsdk" and report["rows"] == 200
    names = list(mdapi.CThostFtdcDepthMarketDataField.__annotations__)
    tick = dict(zip(names, rows(target)[0]))
    assert (tick["InstrumentID"], tick["ExchangeID"], tick["TradingDay"], tick["UpdateTime"]) == (
        "cu1909", "SHFE", "20190916", "14:01:33")
    assert (tick["LastPrice"], tick["Volume"], tick["Turnover"], tick["OpenInterest"]) == (47800.0, 7360, 1756292000.0, 8240.0)
    assert tick["AveragePrice"] == pytest.approx(1756292000.0 / 7360)  # SHFE: Turnover/Volume, multiplier included
    assert (tick["AskPrice5"], tick["AskVolume5"], tick["HighestPrice"]) == (47950.0, 20, 47860.0)


def test_ctp_csv_quirks_bom_cr_lines_unpadded_hours_calendar_trading_day(tmp_path):
    source = tmp_path / "quirky.csv"
    lines = [
        "\ufeffTradingDay,InstrumentID,LastPrice,Volume,UpdateTime,UpdateMillisec,BidPrice1,BidVolume1",
        "20261119,rb2701,3150,10,21:30:00,500,3149,3",
        "20261120,rb2701,3151,12,9:00:01,0,3150,4",
    ]
    source.write_bytes("\r".join(lines).encode("utf-8"))
    target = tmp_path / "out"
    report = convert(str(source), str(target))
    assert report["layout"] == "ctp" and report["rows"] == 2 and report["days"] == ["20261120"]
    names = list(mdapi.CThostFtdcDepthMarketDataField.__annotations__)
    night, morning = (dict(zip(names, r)) for r in rows(target / "20261120.parquet"))
    assert (night["TradingDay"], night["ActionDay"], night["UpdateTime"], night["UpdateMillisec"]) == (
        "20261120", "20261119", "21:30:00", 500)
    assert (morning["UpdateTime"], morning["ExchangeID"], morning["Volume"]) == ("09:00:01", "SHFE", 12)
    assert night["AskPrice1"] == DBL_MAX and night["AskVolume1"] == 0


def test_export_to_csv_and_back_is_lossless(tmp_path):
    parquet = tmp_path / "cu.parquet"
    convert(str(TQSDK), str(parquet))
    exported = tmp_path / "cu.csv"
    assert convert(str(parquet), str(exported))["rows"] == 200
    again = tmp_path / "again.parquet"
    assert convert(str(exported), str(again))["layout"] == "ctp"
    assert rows(again) == rows(parquet)


def test_unknown_layout_lists_the_known_ones_and_the_columns_seen(tmp_path):
    source = tmp_path / "odd.csv"
    source.write_text("when,what,price\n1,2,3\n")
    with pytest.raises(LayoutError, match=r"Columns seen: when, what, price.*ctp.*vnpy1.*tqsdk"):
        convert(str(source), str(tmp_path / "x.parquet"))


def test_a_recorder_killed_with_sigkill_leaves_a_readable_file_missing_at_most_a_second(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CTPSHIM_FRONT"}
    process = subprocess.Popen(
        [sys.executable, "-m", "ctpshim", "record", "sim://?speed=50&start=2026-11-20T09:35", "-i", "rb2701",
         "au2612", "-o", str(tmp_path), "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    live = tmp_path / "20261120.arrows"
    wait_for(lambda: live.exists() and live.stat().st_size > 20_000, timeout=30, what="a growing live file")
    time.sleep(1.5)
    killed_at = time.time_ns()
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    recorded = rows(live)
    assert len(recorded) > 100
    assert killed_at - recorded[-1][-1] <= 1.5e9  # the newest saved tick is at most about a second old
    # The next recorder archives what the killed one left.
    LiveWriter(tmp_path).close()
    assert not live.exists() and len(rows(tmp_path / "20261120.parquet")) == len(recorded)


def test_a_truncated_live_file_reads_up_to_the_damage_with_a_warning(tmp_path, caplog):
    writer = LiveWriter(tmp_path, archive=False)
    ticks = replay_all("sim://?speed=max&start=2026-11-20T09:35", ["rb2701"], 500)
    for index, tick in enumerate(ticks):
        writer.write(tick, 10**18 + index)
        if index % 100 == 99:
            writer.flush()
    writer.close()
    live = tmp_path / "20261120.arrows"
    data = live.read_bytes()
    live.write_bytes(data[: len(data) - 3000])
    recovered = rows(live)
    written = [list(values_of(t)) + [10**18 + i] for i, t in enumerate(ticks)]
    assert 0 < len(recovered) < len(ticks) and recovered == written[: len(recovered)]
    assert f"{live}: IPC batch " in caplog.text and ") is damaged" in caplog.text


def test_a_truncated_archive_is_a_clear_error(tmp_path):
    target = tmp_path / "cu.parquet"
    convert(str(TQSDK), str(target))
    target.write_bytes(target.read_bytes()[:-100])
    with pytest.raises(RecordingError, match="cu.parquet.*cannot be read as Parquet.*truncated"):
        list(read_batches(target))
    with pytest.raises(FrontAddressError, match="cannot be read as Parquet"):
        create_adapter(f"replay://{target}")


def test_a_damaged_row_group_reads_up_to_the_damage_with_a_warning_naming_file_and_offset(tmp_path, caplog):
    import pyarrow.parquet as pq

    bundled = create_adapter("replay://?bundled=RM705").path
    target = tmp_path / "20170320.parquet"
    pq.write_table(pq.read_table(bundled), target, compression="zstd", row_group_size=4000)
    group = pq.ParquetFile(target).metadata.row_group(2).column(0)
    offset = group.dictionary_page_offset if group.has_dictionary_page else group.data_page_offset
    data = bytearray(target.read_bytes())
    data[offset + 10:offset + 2000] = b"\x5a" * 1990
    target.write_bytes(bytes(data))
    assert rows(target) == rows(bundled)[:8000]  # row groups 0 and 1, then the damage
    assert f"{target}: row group 2 (byte {offset}) is damaged" in caplog.text
    replayed = replay_all(f"replay://{target}?speed=max&rebase=none", ["RM705"], 10**6)
    assert [list(values_of(t)) for t in replayed] == [r[:-1] for r in rows(bundled)[:8000]]


def test_missing_paths_and_empty_recordings_are_refused_at_register_front(tmp_path, make_md):
    api, spi = make_md(init=False)
    with pytest.raises(FrontAddressError, match="no such file"):
        api.RegisterFront(f"replay://{tmp_path}/nothing.parquet")
    with pytest.raises(FrontAddressError, match="no recordings"):
        api.RegisterFront(f"replay://{tmp_path}")
    LiveWriter(tmp_path, archive=False)  # nothing written: no file
    empty = tmp_path / "20261120.arrows"
    empty.write_bytes(b"")
    with pytest.raises(FrontAddressError, match="no ticks"):
        api.RegisterFront(f"replay://{empty}")


@pytest.mark.parametrize("suffix", [".parquet", ".arrows"])
def test_a_file_that_is_not_a_ctpshim_recording_is_refused_at_register_front(tmp_path, make_md, suffix):
    import pyarrow as pa
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    foreign = pa.table({"InstrumentID": ["rb2701"], "LastPrice": ["3000"]})
    path = tmp_path / f"20261120{suffix}"
    if suffix == ".parquet":
        pq.write_table(foreign, path)
    else:
        with ipc.new_stream(path, foreign.schema) as writer:
            writer.write_table(foreign)
    api, spi = make_md(init=False)
    with pytest.raises(FrontAddressError, match=r"20261120\S*: not a ctpshim recording.*TradingDay \(string\)"):
        api.RegisterFront(f"replay://{path}")
    with pytest.raises(RecordingError, match="not a ctpshim recording"):
        describe(str(path))


def test_a_failing_disk_stops_the_recorder_with_a_clear_error_and_a_readable_file(tmp_path):
    writer = LiveWriter(tmp_path, archive=False)
    ticks = replay_all("sim://?speed=max&start=2026-11-20T09:35", ["rb2701"], 300)
    for tick in ticks[:150]:
        writer.write(tick)
    writer.flush()
    live = tmp_path / "20261120.arrows"
    with file_cannot_grow(live):
        with pytest.raises(RecordingError, match=r"cannot write .*20261120\.arrows: file too large; recording "
                                                 r"stopped.*readable up to the last complete flush"):
            for tick in ticks[150:]:
                writer.write(tick)
            writer.flush()
    assert len(rows(live)) == 150


@pytest.mark.parametrize("member, value, words", [
    ("Volume", 1.5, "Volume cannot be recorded as int32"),
    ("LastPrice", None, "LastPrice cannot be recorded as double"),
    ("InstrumentID", 2605, "InstrumentID cannot be recorded as string"),
])
def test_a_value_that_does_not_fit_its_column_is_a_clear_recording_error(member, value, words):
    from ctpshim.ctp.market_data import blank_values, depth_index
    from ctpshim.recording import table_from_ticks

    good = blank_values("rb2701", "SHFE")
    bad = list(good)
    bad[depth_index()[member]] = value
    assert table_from_ticks([good, good], [1, 2]).num_rows == 2
    with pytest.raises(RecordingError, match=words):
        table_from_ticks([good, bad], [1, 2])


def test_the_recorder_counts_the_instruments_it_has_written(tmp_path, monkeypatch):
    from ctpshim.recording import writer as live

    monkeypatch.setattr(live, "WRITE_CHUNK", 4)
    monkeypatch.setattr(live, "COUNT_INSTRUMENTS_EVERY", 3)
    ticks = replay_all("sim://?speed=max&start=2026-11-20T09:35", ["rb2701", "au2612", "cu2612"], 60)
    writer = LiveWriter(tmp_path, archive=False)
    for number, tick in enumerate(ticks, 1):
        writer.write(tick)
        if number % 16 == 0:  # four chunks apart: some counted on the way, the rest when asked
            assert writer.instruments == {t.InstrumentID for t in ticks[:writer.written]}
    assert writer.written > 4 * 3  # several counts came and went
    writer.close()
    assert writer.instruments == {"rb2701", "au2612", "cu2612"}


def test_recording_rotates_at_the_trading_day_boundary(tmp_path):
    code = record("sim://?speed=max&start=2026-11-20T14:59:50", ["rb2701"], str(tmp_path), 60, 200, quiet=True)
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["20261120.parquet", "20261123.parquet"]
    names = list(mdapi.CThostFtdcDepthMarketDataField.__annotations__)
    monday = [dict(zip(names, r)) for r in rows(tmp_path / "20261123.parquet")]
    assert monday[1]["UpdateTime"] >= "21:00:00" and monday[1]["ActionDay"] == "20261120"  # Friday night: Monday's


def test_loop_wraps_with_consistent_rebased_times(tmp_path):
    source = tmp_path / "cu.parquet"
    convert(str(TQSDK), str(source))
    ticks = replay_all(f"replay://{source}?speed=max&loop=true", ["cu1909"], 450)
    prices = [t.LastPrice for t in ticks]
    assert prices[200:400] == prices[:200]  # the day again
    stamps = [(t.ActionDay, t.UpdateTime, t.UpdateMillisec) for t in ticks]
    assert stamps == sorted(stamps)  # rebased time never goes back across the wrap
    assert ticks[0].ActionDay == time.strftime("%Y%m%d", time.gmtime(time.time() + 8 * 3600))


def test_speed_is_honoured_on_the_replay_clock(tmp_path):
    source = tmp_path / "rm.parquet"
    convert(str(VNPY), str(source))
    ticks = replay_all(f"replay://{source}?speed=25&rebase=none", ["RM705"], 60)
    recorded = [(int(t.UpdateTime[6:8]) + int(t.UpdateTime[3:5]) * 60) * 1000 + t.UpdateMillisec for t in ticks]
    span_recorded = (recorded[-1] - recorded[0]) / 1000
    rebased = replay_all(f"replay://{source}?speed=25", ["RM705"], 60)
    stamps = [(int(t.UpdateTime[6:8]) + int(t.UpdateTime[3:5]) * 60) * 1000 + t.UpdateMillisec for t in rebased]
    span_replayed = (stamps[-1] - stamps[0]) / 1000
    assert span_replayed == pytest.approx(span_recorded / 25, rel=0.25, abs=0.05)


def test_filters_and_gap_skipping(tmp_path):
    source = tmp_path / "rm.parquet"
    convert(str(VNPY), str(source))
    window = replay_all(f"replay://{source}?speed=max&rebase=none&start=13:30&end=13:31", ["RM705"], 10**6)
    assert window and all("13:30:00" <= t.UpdateTime < "13:31:00" for t in window)
    # Without gap skipping the 2-hour lunch break would take 3.6 s at speed=2000; with it, none.
    started = time.monotonic()
    skipped = replay_all(f"replay://{source}?speed=2000&gaps=skip&rebase=none&start=11:29&end=13:31", ["RM705"],
                         10**6, idle=2.0)
    assert {t.UpdateTime[:2] for t in skipped} == {"11", "13"}
    assert time.monotonic() - started < 2.0 + 2.0


def test_subscribing_to_an_instrument_not_in_the_recording_is_accepted_and_logged(make_md, caplog):
    api, spi = make_md("replay://?bundled=RM705&speed=max&rebase=none", subscribe=["RM705", "rb2701"])
    wait_for(lambda: len(spi.ticks) > 100)
    wait_for(lambda: "rb2701: not in" in caplog.text)
    assert {t.InstrumentID for t in spi.ticks} == {"RM705"}
    assert [e[1][0].InstrumentID for e in spi.events if e[0] == "OnRspSubMarketData"] == ["RM705", "rb2701"]


def test_the_bundled_rm705_day_is_available_by_name():
    days = recording_days(create_adapter("replay://?bundled=RM705").path)
    assert [d.day for d in days] == ["20170320"]


def test_info_reports_instruments_days_ticks_span_and_gaps(tmp_path):
    folder = tmp_path / "days"
    convert(str(VNPY), str(folder))
    (report,) = describe(str(folder))
    assert report["ticks"] == 16979 and report["instruments"] == {"RM705": 16979}
    assert report["trading_days"] == ["20170320"] and report["first"] == "20170320 09:00:00"
    assert [(g[0][9:14], g[1][9:14]) for g in report["gaps"]] == [("10:14", "10:29"), ("11:29", "13:29")]
    result = subprocess.run([sys.executable, "-m", "ctpshim", "info", "--json", str(folder)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and json.loads(result.stdout)[0]["ticks"] == 16979


def test_cli_usage_and_data_errors(tmp_path):
    def ctpshim(*args):
        return subprocess.run([sys.executable, "-m", "ctpshim", *args], capture_output=True, text=True, timeout=60)

    result = ctpshim("convert", str(tmp_path / "missing.csv"), "-o", str(tmp_path / "x.parquet"))
    assert result.returncode == 2 and "no such file" in result.stderr
    odd = tmp_path / "odd.csv"
    odd.write_text("a,b\n1,2\n")
    result = ctpshim("convert", str(odd), "-o", str(tmp_path / "x.parquet"))
    assert result.returncode == 1 and "unknown CSV layout" in result.stderr
    result = ctpshim("record", "sim://?speed=0", "-i", "rb2701", "-o", str(tmp_path))
    assert result.returncode == 2 and "speed='0'" in result.stderr
    result = ctpshim("record", "sim://", "-i", "rb2701", "-o", str(tmp_path), "--count", "-5")
    assert result.returncode == 2 and "'-5': expected a whole number from 1" in result.stderr
    result = ctpshim("record", "sim://?speed=max&start=2026-11-20T09:35", "-i", "rb2701", "-o", str(tmp_path / "r"),
                     "--count", "300", "--quiet")
    assert result.returncode == 0 and "recorded" in result.stdout and (tmp_path / "r" / "20261120.parquet").exists()


def test_ctrl_c_closes_and_archives_the_recording_cleanly(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CTPSHIM_FRONT"}
    process = subprocess.Popen(
        [sys.executable, "-m", "ctpshim", "record", "sim://?speed=20&start=2026-11-20T09:35", "-i", "rb2701",
         "-o", str(tmp_path)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (tmp_path / "20261120.arrows").exists(), timeout=30)
    time.sleep(1.5)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "recorded" in out and "ticks/s" in err  # the running status line was shown
    assert not (tmp_path / "20261120.arrows").exists()
    assert len(rows(tmp_path / "20261120.parquet")) > 10


def test_files_of_one_day_merge_in_time_order(tmp_path):
    ticks = replay_all("sim://?speed=max&start=2026-11-20T09:35", ["rb2701", "au2612"], 400)
    folder = tmp_path / "day"
    folder.mkdir()
    from ctpshim.recording import table_from_ticks, write_archive

    for name in ("rb2701", "au2612"):
        mine = [(t, 10**18 + i) for i, t in enumerate(ticks) if t.InstrumentID == name]
        write_archive(table_from_ticks([t for t, _ in mine], [r for _, r in mine]), folder / f"{name}.parquet")
    merged = replay_all(f"replay://{folder}?speed=max&rebase=none", ["rb2701", "au2612"], len(ticks))
    assert [list(values_of(t)) for t in merged] == [list(values_of(t)) for t in ticks]


def test_files_of_one_day_merge_by_receive_time_and_ties_come_in_file_order(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ctpshim.recording import write_archive

    day = pq.read_table(create_adapter("replay://?bundled=RM705").path).slice(0, 1500)
    name = day.schema.get_field_index("InstrumentID")
    # Overlapping files that share receive times row for row; b and c hold parts of the day, so
    # the merge meets each file's chunk ends at different times.
    files = {
        "a": day,
        "b": day.filter(pa.array([i % 2 == 0 for i in range(1500)])),
        "c": day.slice(700, 300),
    }
    folder = tmp_path / "day"
    folder.mkdir()
    expected = []
    for number, (label, table) in enumerate(files.items()):
        table = table.set_column(name, day.schema.field(name), pa.array([label] * table.num_rows))
        write_archive(table, folder / f"{label}.parquet")
        columns = [table.column(c).to_pylist() for c in ("ReceiveTime", "UpdateTime", "UpdateMillisec", "LastPrice")]
        expected += [(r, number, row, label, *rest) for row, (r, *rest) in enumerate(zip(*columns))]
    expected.sort()  # by receive time; a tie by file, then by row
    merged = replay_all(f"replay://{folder}?speed=max&rebase=none", list(files), len(expected))
    assert [(t.InstrumentID, t.UpdateTime, t.UpdateMillisec, t.LastPrice) for t in merged] == [e[3:] for e in expected]


@pytest.mark.parametrize("numpy", [True, False], ids=["through-numpy", "arrow-only"])
def test_tick_rows_build_the_recorded_ticks_sharing_constant_values(tmp_path, monkeypatch, numpy):
    import pyarrow.parquet as pq

    from ctpshim.recording import rows as rows_module

    monkeypatch.setattr(rows_module, "_HAVE_NUMPY", numpy)

    from ctpshim.ctp.market_data import depth_index
    from ctpshim.recording import VARIES, TickRows, constant_values

    table = pq.read_table(create_adapter("replay://?bundled=RM705").path).slice(100, 2500)  # several CONVERT_ROWS
    constants = constant_values(table)
    index = depth_index()
    assert constants[index["ExchangeID"]] == "CZCE" and constants[index["LastPrice"]] is VARIES
    chunk = TickRows(table.to_batches()[0], constants)
    ticks = list(chunk)
    assert len(chunk) == 2500 and all(type(t) is mdapi.CThostFtdcDepthMarketDataField for t in ticks)
    expected = [list(r[:-1]) for r in zip(*(c.to_pylist() for c in table.columns))]
    assert [list(values_of(t)) for t in ticks] == expected
    # int, not numpy.int32
    assert [list(map(type, values_of(t))) for t in ticks] == [list(map(type, r)) for r in expected]
    assert ticks[0].ExchangeID is ticks[-1].ExchangeID  # one object, not one per tick
    stamped = list(chunk.with_values({index["UpdateTime"]: "10:00:00", index["TradingDay"]: "20261120"}))
    assert {(t.UpdateTime, t.TradingDay) for t in stamped} == {("10:00:00", "20261120")}
    assert [t.LastPrice for t in stamped] == [t.LastPrice for t in ticks]


def test_recording_leaves_the_garbage_collector_settings_as_it_found_them(tmp_path):
    import gc

    before = gc.get_threshold()
    assert record("sim://?speed=max&start=2026-11-20T09:35", ["rb2701"], str(tmp_path), 60, 300, quiet=True) == 0
    assert gc.get_threshold() == before
    with pytest.raises(RecordingError):
        with fewer_young_collections():
            assert gc.get_threshold()[0] > before[0]
            raise RecordingError("the disk is full")
    assert gc.get_threshold() == before


def test_instruments_that_stop_ticking_do_not_keep_their_part_of_the_file_in_memory(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ctpshim.recording import SCHEMA

    # 30 instruments, each ticking only in its own row group of 4,000 rows: at the end of the
    # day each one's newest tick sits in a different part of the file.
    part = pq.read_table(create_adapter("replay://?bundled=RM705").path).slice(0, 4000)
    name, receive = SCHEMA.get_field_index("InstrumentID"), SCHEMA.get_field_index("ReceiveTime")
    groups = []
    for k in range(30):
        group = part.set_column(name, SCHEMA.field(name), pa.array([f"X{k}"] * 4000))
        times = pa.array([t + k * 10**13 for t in part.column(receive).to_pylist()], pa.int64())
        groups.append(group.set_column(receive, SCHEMA.field(receive), times))
    target = tmp_path / "20170320.parquet"
    pq.write_table(pa.concat_tables(groups), target, compression="zstd", row_group_size=4000)
    ids = [f"X{k}" for k in range(30)]

    async def run():
        adapter = create_adapter(f"replay://{target}?speed=max&rebase=none")
        await adapter.connect()
        await adapter.subscribe(ids)
        stream = adapter.ticks()
        before = pa.total_allocated_bytes()
        count = 0
        while count < 120_000:
            count += len(await asyncio.wait_for(stream.__anext__(), 10))
        held = pa.total_allocated_bytes() - before
        await adapter.subscribe(["X0"])  # a snapshot of its newest tick still comes
        snapshot = list(await asyncio.wait_for(stream.__anext__(), 10))
        await adapter.close()
        return held, snapshot

    held, snapshot = asyncio.run(asyncio.wait_for(run(), 60))
    one_group = part.nbytes
    assert held < 5 * one_group  # the groups being read, not all 30
    assert [list(values_of(t)) for t in snapshot] == [list(rows(target)[3999][:-1])]


def test_a_subscription_during_paced_replay_gets_the_newest_replayed_tick_then_the_following_ones(tmp_path):
    # X and Y take turns, a row every 10 ms; Volume numbers the rows.
    target = alternating_day(tmp_path / "20170320.parquet", 2000, {"InstrumentID": ("X", "Y")})

    async def run():
        adapter = create_adapter(f"replay://{target}?speed=1&rebase=none")
        await adapter.connect()
        await adapter.subscribe(["X"])
        stream = adapter.ticks()
        before: list = []
        while len(before) < 20:
            before += await asyncio.wait_for(stream.__anext__(), 10)
        await adapter.subscribe(["Y"])
        after: list = []
        while sum(t.InstrumentID == "Y" for t in after) < 6:
            after += await asyncio.wait_for(stream.__anext__(), 10)
        await adapter.close()
        return before, after

    before, after = asyncio.run(asyncio.wait_for(run(), 30))
    replayed = before[-1].Volume  # X has the even rows, Y the odd ones
    ys = [t.Volume for t in after if t.InstrumentID == "Y"]
    assert after[0].InstrumentID == "Y"
    # First the snapshot: Y's newest row so far (not one from later in the file, nor the wait
    # for the next), then each Y row in turn, none missing.
    assert ys == [replayed - 1, replayed + 1, replayed + 3, replayed + 5, replayed + 7, replayed + 9]


def test_archiving_merges_a_restarted_days_live_file_into_its_archive_in_receive_order(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from ctpshim.recording import archive, archive_day, read_tables, readers

    monkeypatch.setattr(archive, "ARCHIVE_ROW_GROUP", 12_000)
    monkeypatch.setattr(readers, "DECODE_ROWS", 5_000)
    ticks = replay_all("sim://?speed=max&start=2026-11-20T09:35", ["rb2701", "au2612"], 40_000)
    assert {t.TradingDay for t in ticks} == {"20261120"}
    first = LiveWriter(tmp_path)  # the first run of the day: archived when it stops
    for index in range(0, len(ticks), 2):
        first.write(ticks[index], 10**18 + index)
    first.close()
    second = LiveWriter(tmp_path, archive=False)  # a second run the same day, its ticks in between
    for index in range(1, len(ticks), 2):
        second.write(ticks[index], 10**18 + index)
    second.close()
    target = archive_day(tmp_path / "20261120.arrows")
    assert not (tmp_path / "20261120.arrows").exists()
    assert rows(target) == [list(values_of(t)) + [10**18 + i] for i, t in enumerate(ticks)]
    metadata = pq.ParquetFile(target).metadata
    sizes = [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)]
    assert sizes[:-1] == [12_000] * (len(sizes) - 1) and sum(sizes) == len(ticks)
    # read back in pieces of at most DECODE_ROWS, none straddling a row group
    expected = [piece for size in sizes for piece in [5_000] * (size // 5_000) + [size % 5_000] if piece]
    assert [t.num_rows for t in read_tables(target)] == expected
