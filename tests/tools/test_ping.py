"""`ctpshim ping`: health of fronts and feeds, against local servers on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import pytest

from ctpshim.fronts import registry
from ctpshim.testing import SilentAdapter
from ctpshim.ctp import clock
from ctpshim.tools.commands import ping
from ctpshim.fronts.url import parse_front_url

from ..fake_sina import FakeSina, FakeTencent, sample, tencent_sample
from ..tools.test_cli import ctpshim

AFTER_CLOSE = "sina_nf_RB0_IF0_after_close_20260805.gbk.txt"  # quotes of 2026-08-05 15:00:00


def ping_json(*args: str) -> tuple[int, dict[str, Any]]:
    result = ctpshim("ping", "--json", *args)
    assert result.returncode in (0, 1, 3), result.stderr
    return result.returncode, json.loads(result.stdout)


def restamped(csv: str, moment: datetime) -> str:
    """A sample quote as if it had just been published at ``moment``."""
    return (csv.replace("2026-08-05", moment.strftime("%Y-%m-%d"))
            .replace(",150000,", f",{moment:%H%M%S},").replace(",15:00:00,", f",{moment:%H:%M:%S},"))


@pytest.fixture
def sina() -> Iterator[FakeSina]:
    server = FakeSina()
    quotes = sample(AFTER_CLOSE)
    server.quotes = {"nf_RB0": quotes["nf_RB0"], "nf_IF0": quotes["nf_IF0"]}
    yield server
    server.stop()


@pytest.fixture
def closed_port() -> int:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


class Listener:
    """A TCP listener on 127.0.0.1: 'close' (accept, then close), 'silent' (accept, never
    answer) or 'full' (never accept, backlog filled: connects time out)."""

    def __init__(self, mode: str) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(0)
        self.server.settimeout(0.1)
        self.port = self.server.getsockname()[1]
        self.held: list[socket.socket] = []
        self.stop = False
        if mode == "full":
            for _ in range(3):  # fills the backlog: the kernel drops later SYNs
                filler = socket.socket()
                filler.setblocking(False)
                try:
                    filler.connect(("127.0.0.1", self.port))
                except BlockingIOError:
                    pass
                self.held.append(filler)
            self.thread = None
            return
        self.thread = threading.Thread(target=self._serve, args=(mode,), daemon=True)
        self.thread.start()

    def _serve(self, mode: str) -> None:
        deadline = time.monotonic() + 60
        while not self.stop and time.monotonic() < deadline:
            try:
                connection, _ = self.server.accept()
            except OSError:
                continue
            if mode == "close":
                connection.close()
            else:
                self.held.append(connection)

    def close(self) -> None:
        self.stop = True
        if self.thread is not None:
            self.thread.join(5)
        for held in self.held:
            held.close()
        self.server.close()


@pytest.fixture
def listen() -> Iterator[Any]:
    made: list[Listener] = []

    def make(mode: str) -> Listener:
        made.append(Listener(mode))
        return made[-1]

    yield make
    for listener in made:
        listener.close()


# -- real fronts ----------------------------------------------------------------------------------

def test_a_closed_port_is_refused_and_the_json_has_its_documented_shape(closed_port):
    code, report = ping_json(f"tcp://127.0.0.1:{closed_port}", "-c", "2", "-i", "0")
    assert code == 1 and report["healthy"] is False and report["exit_status"] == 1
    (front,) = report["fronts"]
    assert set(front) == {"front", "scheme", "status", "healthy", "cause", "damage", "tcp_only", "samples_ms",
                          "min_ms", "median_ms", "max_ms", "loss", "details"}
    assert front["status"] == "FAIL" and front["damage"] == [] and front["tcp_only"] is None
    assert front["samples_ms"] == [None, None] and front["loss"] == 1.0 and front["min_ms"] is None
    assert front["cause"].startswith("connection refused")


def test_a_front_that_never_accepts_times_out(listen):
    listener = listen("full")
    code, report = ping_json(f"tcp://127.0.0.1:{listener.port}", "-c", "1", "-W", "0.5")
    assert code == 1 and report["fronts"][0]["cause"].startswith("timed out after 0.5 s")


def test_a_front_that_accepts_then_closes_is_reset_with_4097_and_its_causes(listen, openctp):
    listener = listen("close")
    code, report = ping_json(f"tcp://127.0.0.1:{listener.port}", "-c", "2", "-i", "0", "-W", "3")
    front = report["fronts"][0]
    assert code == 1 and front["loss"] == 0.0 and len(front["samples_ms"]) == 2  # TCP itself answers
    assert "reset by the front (4097" in front["cause"] and "API version" in front["cause"]


def test_a_front_that_accepts_but_never_speaks_ctp_has_no_handshake(listen, openctp):
    listener = listen("silent")
    code, report = ping_json(f"tcp://127.0.0.1:{listener.port}", "-c", "1", "-W", "1")
    assert code == 1 and report["fronts"][0]["cause"].startswith("no CTP handshake within 1 s")


def test_many_fronts_are_pinged_at_once(closed_port, listen):
    listeners = [listen("full") for _ in range(12)]
    fronts = [f"tcp://127.0.0.1:{listener.port}" for listener in listeners]
    started = time.monotonic()
    code, report = ping_json(*fronts, "-c", "1", "-W", "1")
    elapsed = time.monotonic() - started
    assert code == 1 and len(report["fronts"]) == 12
    assert all(f["cause"].startswith("timed out") for f in report["fronts"])
    assert elapsed < 8  # one after another, twelve 1 s timeouts would take over 12 s


# -- feeds and recordings ------------------------------------------------------------------------

def test_a_healthy_sina_feed_answers_and_its_quotes_parse(sina):
    now = clock.now().replace(microsecond=0)
    sina.quotes = {name: restamped(csv, now) for name, csv in sina.quotes.items()}
    code, report = ping_json(f"sina://?base_url={sina.url}", "-c", "2", "-i", "0")
    front = report["fronts"][0]
    assert code == 0, front
    assert front["healthy"] and front["loss"] == 0.0 and front["cause"] is None
    assert front["details"]["quotes"] == 2 and front["details"]["age_s"] < 60
    assert all(r.startswith("https://finance.sina.com.cn") for r in sina.referers)


def test_http_403_names_the_referer(sina):
    sina.mode = "403"
    code, report = ping_json(f"sina://?base_url={sina.url}", "-c", "1")
    assert code == 1 and "403" in report["fronts"][0]["cause"] and "Referer" in report["fronts"][0]["cause"]


def _ping_in_process(front: str, **options: Any) -> ping.PingResult:
    values = {"count": 1, "interval": 0.0, "timeout": 3.0, "stale": 60.0} | options
    return asyncio.run(ping.ping_front(parse_front_url(front), **values))


def test_old_quotes_while_the_market_is_open_are_stale_data(sina):
    # Thursday 2026-08-06 10:00 (SHFE and CFFEX open): the feed still serves the day before's close.
    with clock.using(datetime(2026, 8, 6, 10, 0, 0)):
        result = _ping_in_process(f"sina://?base_url={sina.url}")
    assert not result.healthy and result.cause.startswith("stale data: the newest quote is 19 h old")
    assert result.details["market_open"] is True


def test_old_quotes_while_the_market_is_closed_are_healthy(sina):
    with clock.using(datetime(2026, 8, 8, 12, 0, 0)):  # a Saturday
        result = _ping_in_process(f"sina://?base_url={sina.url}")
    assert result.healthy and result.details["market_open"] is False


def test_unreadable_quotes_are_a_failure_that_shows_the_reason(sina):
    sina.quotes = {"nf_RB0": "garbage,1,2", "nf_IF0": ""}
    result = _ping_in_process(f"sina://?base_url={sina.url}")
    assert not result.healthy and "no quote could be read" in result.cause and "nf_RB0" in result.cause


def test_a_replay_file_reports_its_span_and_a_missing_one_fails(tmp_path):
    day = Path(__file__).resolve().parents[2] / "shim" / "data" / "CZCE_RM705_20170320.parquet"
    code, report = ping_json("replay://", f"replay://{day}", f"replay://{tmp_path}/missing.parquet", "sim://",
                             "-c", "1")
    bundled, rm705, missing, sim = report["fronts"]
    assert code == 1
    assert bundled["healthy"] and bundled["details"]["ticks"] > 0
    assert rm705["healthy"] and rm705["details"]["ticks"] == 16979 and rm705["details"]["instruments"] == 1
    assert (rm705["details"]["first"], rm705["details"]["trading_days"]) == ("20170320 09:00:00", ["20170320"])
    assert not missing["healthy"] and "no such file" in missing["cause"]
    assert sim["healthy"]


def test_a_corrupt_recording_is_unreadable(tmp_path):
    broken = tmp_path / "20261120.parquet"
    broken.write_bytes(b"PAR1 not really parquet")
    code, report = ping_json(f"replay://{broken}", "-c", "1")
    assert code == 1 and "cannot be read as Parquet" in report["fronts"][0]["cause"]


def test_all_healthy_exits_0_with_a_plain_table():
    result = ctpshim("ping", "sim://", "replay://", "-c", "1")
    assert result.returncode == 0, result.stderr
    header, *lines = result.stdout.splitlines()
    assert header.split()[:6] == ["FRONT", "STATUS", "MIN", "MEDIAN", "MAX", "LOSS"]
    assert [line.split()[:2] for line in lines] == [["sim://", "ok"], ["replay://", "ok"]]


# -- usage ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["nonsense"], ["no scheme"]),
    (["foo://x"], ["unknown scheme 'foo'"]),
    (["tcp://127.0.0.1"], ["no port"]),
    (["sim://?speed=fast"], ["speed='fast'"]),
    (["sim://", "-c", "-1"], ["'-1'", "whole number from 1"]),
    (["sim://", "-c", "0"], ["'0'"]),
    (["sim://", "-c", "99999999999"], ["'99999999999'", "from 1 to 10000"]),
    (["sim://", "-i", "-2"], ["'-2'", "from 0"]),
    (["sim://", "-W", "0"], ["'0'", "greater than 0"]),
    (["sim://", "--json", "--watch"], ["not allowed with"]),
])
def test_usage_errors_exit_2_naming_the_bad_value(args, words):
    result = ctpshim("ping", *args)
    assert result.returncode == 2
    for word in words:
        assert word in result.stderr


def test_watch_refreshes_a_live_table_until_interrupted():
    environment = {k: v for k, v in os.environ.items() if k != "CTPSHIM_FRONT"}
    child = subprocess.Popen([sys.executable, "-m", "ctpshim", "ping", "--watch", "sim://", "-c", "1", "-i", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    try:
        seen = ""
        deadline = time.monotonic() + 30
        while "round 2" not in seen and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            seen += line
        assert "round 2" in seen and "sim://" in seen
        child.send_signal(signal.SIGINT)
        assert child.wait(30) == 0
    finally:
        child.kill()
        child.communicate()


def test_the_live_table_shows_every_front_and_marks_failures(closed_port):
    from rich.console import Console

    results = [ping.PingResult("sim://", "sim", [0.5, 0.7]),
               ping.PingResult(f"tcp://127.0.0.1:{closed_port}", "tcp", [None], "connection refused: nothing listens")]
    console = Console(record=True, width=200)
    console.print(ping.rich_table(results, 3))
    text = console.export_text()
    assert "round 3" in text and "0.6 ms" in text and "100%" in text and "connection refused" in text
    lines = [line for line in text.splitlines() if "sim://" in line or "tcp://" in line]
    assert " ok " in lines[0] and "FAIL" in lines[1]


@pytest.fixture
def tencent() -> Iterator[FakeTencent]:
    server = FakeTencent()
    server.quotes = {**tencent_sample("tencent_sh600519_intraday_20260806.gbk.txt"),
                     **tencent_sample("tencent_hk00700_after_close_20260429.gbk.txt")}
    yield server
    server.stop()


@pytest.mark.parametrize("now, healthy, market_open, cause", [
    (datetime(2026, 8, 6, 10, 44, 0), True, True, None),  # 27 s after the SSE quote
    (datetime(2026, 8, 7, 10, 0, 0), False, True, "stale data: the newest quote is 23 h old"),
    (datetime(2026, 8, 8, 10, 0, 0), True, False, None),  # Saturday: old quotes are expected
])
def test_tencent_ping_reads_stock_quotes_against_stock_hours(tencent, now, healthy, market_open, cause):
    with clock.using(now):
        result = _ping_in_process(f"tencent://?base_url={tencent.url}&fallback=none")
    assert result.healthy is healthy and result.details["market_open"] is market_open
    assert result.details["quotes"] == 2  # sz000001 is unknown to this stand-in: skipped, not a failure
    assert (result.cause or "").startswith(cause or "")


# -- one front's fault stays that front's; what was not checked is said ---------------------------

class _FaultyFeed(SilentAdapter):
    """A feed whose probe meets a value the code did not expect (an infinite price)."""

    async def connect(self) -> None:
        return None

    async def probe(self) -> dict[str, Any]:
        raise OverflowError("cannot convert float infinity\nto integer")


class _DamagedStore(SilentAdapter):
    """A source whose probe answers but whose stored data holds damage."""

    async def connect(self) -> None:
        return None

    async def probe(self) -> dict[str, Any]:
        return {"files": 1}

    async def damage(self) -> list[str]:
        return ["x/20261120.parquet: row group 3 (byte 81920) is damaged (type \x0f)", "x/20261121.arrows: ..."]


class _LockedStore(SilentAdapter):
    @classmethod
    def check(cls, url: Any, settings: Any) -> None:
        raise PermissionError(13, "Permission denied", "/data/locked")


@pytest.fixture
def odd_schemes() -> Iterator[None]:
    kinds = {"faulty": _FaultyFeed, "damaged": _DamagedStore, "locked": _LockedStore}
    for scheme, cls in kinds.items():
        registry.register_adapter(scheme, cls)
    yield
    for scheme in kinds:
        registry.unregister_adapter(scheme)


def test_a_front_whose_check_raises_is_its_own_failure_and_the_table_still_prints(odd_schemes, capfd):
    urls = ping.check_fronts(["sim://", "faulty://", "locked://", "damaged://"])
    code = ping.run(urls, 2, 0.0, 3.0, 60.0, as_json=False, watch=False)
    out, err = capfd.readouterr()
    assert code == 1 and "Traceback" not in out + err
    header, *lines = out.splitlines()
    assert [line.split()[:2] for line in lines] == [["sim://", "ok"], ["faulty://", "FAIL"], ["locked://", "FAIL"],
                                                    ["damaged://", "damaged"]]
    assert lines[1].endswith("the check failed unexpectedly: OverflowError: cannot convert float infinity to integer")
    assert lines[2].endswith("/data/locked: permission denied")
    assert lines[3].endswith("row group 3 (byte 81920) is damaged (type \\x0f) (and 1 more)")  # shown escaped


def _no_ctp_login(monkeypatch: pytest.MonkeyPatch) -> None:
    from ctpshim.adapters import tcp

    monkeypatch.setattr(tcp, "openctp_problem", lambda: "tcp:// and ssl:// fronts need openctp-ctp: pip install ...")


def test_without_the_ctp_login_check_a_real_front_is_tcp_only_not_ok(listen, monkeypatch):
    _no_ctp_login(monkeypatch)
    listener = listen("silent")
    result = _ping_in_process(f"tcp://127.0.0.1:{listener.port}")
    assert result.status == "tcp-only" and not result.healthy and result.answered
    assert ping.exit_status([result]) == 3
    assert ping.exit_status([result, _ping_in_process("sim://")]) == 3
    assert ping.exit_status([result, ping.PingResult("x://", "x", [None], "refused")]) == 1
    assert ping.rows([result])[0][-1].startswith("TCP connect only, the CTP login was not checked: tcp:// and ssl://")


def test_ping_without_the_locale_says_tcp_only_and_exits_3(listen, tmp_path):
    listener = listen("silent")
    # An empty LOCPATH hides every locale from glibc, zh_CN.GB18030 included.
    result = ctpshim("ping", f"tcp://127.0.0.1:{listener.port}", "-c", "1", env={"LOCPATH": str(tmp_path)})
    assert result.returncode == 3, result.stderr
    line = result.stdout.splitlines()[1]
    assert line.split()[1] == "tcp-only" and "zh_CN.GB18030" in line


def test_a_named_pipe_as_a_recording_fails_at_once_instead_of_hanging(tmp_path):
    os.mkfifo(tmp_path / "20261120.arrows")  # opening it to read would wait for a writer forever
    result = ctpshim("ping", f"replay://{tmp_path}", f"replay://{tmp_path}/20261120.arrows", "sim://", "-c", "1")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    folder, pipe, sim = (line.split()[1] for line in result.stdout.splitlines()[1:])
    assert (folder, pipe, sim) == ("FAIL", "FAIL", "ok") and "named pipe" in result.stdout


def _recorded_day(folder: Path, day: str, start_ns: int) -> Path:
    """A live file of three batches of 40 rb2605 ticks; its path."""
    from ctpshim import recording
    from ctpshim.ctp.market_data import blank_values, depth_index

    member = depth_index()
    writer = recording.LiveWriter(folder, archive=False)
    for index in range(120):
        tick = blank_values("rb2605", "SHFE")
        tick[member["TradingDay"]] = tick[member["ActionDay"]] = day
        tick[member["LastPrice"]], tick[member["Volume"]] = 3000.0 + index, index
        writer.write(tick, start_ns + index * 250_000_000)
        if index % 40 == 39:
            writer.flush()
    writer.close()
    return folder / f"{day}.arrows"


def test_a_damaged_recording_is_damaged_naming_file_part_and_offset(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ctpshim import recording

    # Day one an archive of three row groups, with a page of the last one damaged ...
    live = _recorded_day(tmp_path, "20261119", 1_795_050_000 * 10**9)
    archive = tmp_path / "20261119.parquet"
    pq.write_table(pa.Table.from_batches(list(recording.read_batches(live))), archive, row_group_size=40,
                   **recording.ARCHIVE_OPTIONS)
    live.unlink()
    column = pq.ParquetFile(archive).metadata.row_group(2).column(10)
    data = bytearray(archive.read_bytes())
    data[column.data_page_offset + column.total_compressed_size - 3] ^= 0x55
    archive.write_bytes(data)
    # ... day two a live file whose last batch has a damaged header.
    live = _recorded_day(tmp_path, "20261120", 1_795_136_400 * 10**9)
    data = bytearray(live.read_bytes())
    reader, offsets = pa.BufferReader(bytes(data)), []
    for _ in range(10):  # the schema, three batches, the end-of-stream marker
        position = reader.tell()
        try:
            message = pa.ipc.read_message(reader)
        except EOFError:
            break
        if message.type == "record batch":
            offsets.append(position)
    data[offsets[-1] + 8: offsets[-1] + 40] = b"\xff" * 32
    live.write_bytes(data)

    code, report = ping_json(f"replay://{tmp_path}", f"replay://{archive}", "sim://", "-c", "1")
    folder, one, sim = report["fronts"]
    assert code == 1 and report["exit_status"] == 1 and sim["status"] == "ok"
    assert folder["status"] == one["status"] == "damaged" and not folder["healthy"] and folder["cause"] is None
    assert len(folder["damage"]) == 2 and folder["damage"][0] == one["damage"][0]
    assert str(archive) in folder["damage"][0] and "row group 2" in folder["damage"][0]
    assert str(live) in folder["damage"][1] and f"byte {offsets[-1]}" in folder["damage"][1]
    table = ctpshim("ping", f"replay://{tmp_path}", "-c", "1")
    line = table.stdout.splitlines()[1]
    assert table.returncode == 1 and line.split()[1] == "damaged"
    assert line.endswith("(and 1 more)") and "row group 2" in line and line.isprintable()
