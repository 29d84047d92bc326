"""No recording file may crash or hang the process: damaged copies of both file kinds are read in a
subprocess (tests/fuzz_reader.py), which must end normally with good ticks or a clear message."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ctpshim import recording
from ctpshim.ctp.market_data import blank_values, depth_index

FUZZ_READER = Path(__file__).resolve().parents[1] / "fuzz_reader.py"
FLIPS, CUTS = 150, 30  # per file kind: about a second each
SECONDS = 60  # the most one run may take before it counts as a hang


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A live file of five batches and an archive of three row groups, three instruments."""
    folder = tmp_path_factory.mktemp("fuzz")
    writer = recording.LiveWriter(folder, archive=False)
    start = 1_795_136_400 * 10**9
    member = depth_index()
    for index in range(240):
        tick = blank_values(("rb2605", "au2606", "TA605")[index % 3], "SHFE")
        tick[member["TradingDay"]] = tick[member["ActionDay"]] = "20261120"
        tick[member["LastPrice"]], tick[member["Volume"]] = 3000.0 + index, index
        writer.write(tick, start + index * 250_000_000)
        if index % 60 == 59:
            writer.flush()
    writer.close()
    live = folder / "20261120.arrows"
    archive = folder / "archive" / "20261120.parquet"
    archive.parent.mkdir()
    table = pa.Table.from_batches(list(recording.read_batches(live)))
    pq.write_table(table, archive, row_group_size=80, **recording.ARCHIVE_OPTIONS)
    return {"live": live, "archive": archive}


def fuzz(original: Path, workdir: Path, seed: int) -> list[dict]:
    workdir.mkdir()
    try:
        result = subprocess.run([sys.executable, str(FUZZ_READER), str(original), str(workdir), str(seed),
                                 str(FLIPS), str(CUTS)], capture_output=True, text=True, timeout=SECONDS)
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        pytest.fail(f"reading a damaged {original.name} hung: last {output.splitlines()[-1:] or 'nothing'}")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    if result.returncode != 0:
        started = [line for line in lines if "start" in line]
        pytest.fail(f"reading a damaged {original.name} ended the interpreter (status {result.returncode}) at "
                    f"{started[-1:] or 'the original'}: {result.stderr[-2000:]}")
    done = [line for line in lines if "done" in line]
    assert len(done) == FLIPS + CUTS
    return done


@pytest.mark.parametrize("kind", ["live", "archive"])
@pytest.mark.parametrize("seed", [1, 2])
def test_damaged_recordings_never_crash_and_never_read_wrong_values(recordings, tmp_path, kind, seed):
    results = fuzz(recordings[kind], tmp_path / "work", seed)
    for result in results:
        assert result["unexpected"] is None, result
        assert all(f"{tmp_path / 'work'}" in message for message in result["messages"]), result
        # Checksums (a live file's per batch, an archive's per page): what is read is what was
        # written, and what is not read is reported.
        assert result["same"], result
        if result["ticks"] < 240:
            assert result["messages"], result
    assert sum(bool(result["messages"]) for result in results) > len(results) // 2


def test_damaged_csvs_never_crash_and_either_import_or_say_why(tmp_path):
    source = tmp_path / "ticks.csv"
    lines = [f"20261120,rb2701,{3000 + i},{i},09:{i // 60:02d}:{i % 60:02d},500,{3000 + i - 1},{i % 7}"
             for i in range(120)]
    source.write_text("TradingDay,InstrumentID,LastPrice,Volume,UpdateTime,UpdateMillisec,BidPrice1,BidVolume1\n"
                      + "\n".join(lines) + "\n")
    results = fuzz(source, tmp_path / "work", 3)
    for result in results:
        assert result["unexpected"] is None, result
        assert result["ticks"] or (result["messages"] and all("\n" not in m for m in result["messages"])), result
