"""replay:// under bad input: unreadable, vanishing, non-regular and out-of-order files, filters that
match nothing, unsubscribing everything, instrument queries right after login (issue 13)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from ctpshim import mdapi, tdapi  # noqa: E402
from ctpshim.adapters.replay import BUNDLED  # noqa: E402
from ctpshim.errors import FrontAddressError, UpstreamDisconnected, UpstreamUnavailable  # noqa: E402
from ctpshim.recording import RECEIVE_TIME, SCHEMA, write_archive  # noqa: E402

from ..conftest import RecordingMdSpi, wait_for  # noqa: E402

DAYS = ("20181009", "20181010", "20181011")
DAY_NS = 86_400 * 10**9


def write_days(folder: Path, days: tuple[str, ...] = DAYS) -> int:
    """One archive per day, each a copy of the bundled ru1901 day a day later; Volume numbers every
    tick of the recording 1, 2, 3 ... so a tick delivered twice shows.  Returns the tick count."""
    import pyarrow.compute as pc

    folder.mkdir(parents=True, exist_ok=True)
    day = pq.read_table(BUNDLED["ru1901"])
    count = 0
    for shift, name in enumerate(days):
        table = day.set_column(day.schema.get_field_index("TradingDay"), "TradingDay",
                               pa.array([name] * day.num_rows, pa.string()))
        table = table.set_column(table.schema.get_field_index("Volume"), "Volume",
                                 pa.array(range(count + 1, count + day.num_rows + 1), pa.int32()))
        table = table.set_column(table.schema.get_field_index(RECEIVE_TIME), RECEIVE_TIME,
                                 pc.add(table.column(RECEIVE_TIME), shift * DAY_NS))
        write_archive(table.cast(SCHEMA), folder / f"{name}.parquet")
        count += day.num_rows
    return count


def logins(spi: RecordingMdSpi) -> int:
    return spi.names().count("OnRspUserLogin")


def disconnects(spi: RecordingMdSpi) -> list[int]:
    return [e[1][0] for e in spi.events if e[0] == "OnFrontDisconnected"]


def volumes(spi: RecordingMdSpi) -> list[int]:
    with spi.lock:
        return [t.Volume for t in spi.ticks]


def drop_the_link_at(monkeypatch: pytest.MonkeyPatch, piece: int) -> None:
    """Break the replay's connection once, as it hands on its ``piece``-th batch of ticks."""
    from ctpshim.adapters.replay import ReplayAdapter

    calls = {"n": 0}
    restamped = ReplayAdapter._restamped

    def drop_once(self: Any, rows: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == piece:
            raise UpstreamDisconnected("the test drops the link")
        return restamped(self, rows)

    monkeypatch.setattr(ReplayAdapter, "_restamped", drop_once)


class ActOnFirstTick(RecordingMdSpi):
    """Calls ``action(api)`` from inside the first OnRtnDepthMarketData."""

    def __init__(self, api: Any, action: Any, **kwargs: Any) -> None:
        super().__init__(api, **kwargs)
        self.action = action
        self.acted = False

    def OnRtnDepthMarketData(self, pDepthMarketData: Any) -> None:
        super().OnRtnDepthMarketData(pDepthMarketData)
        if not self.acted:
            self.acted = True
            self.action(self.api)


# -- item 4: a tick is never delivered twice ------------------------------------------------------

def test_a_day_that_disappears_mid_replay_is_skipped_with_one_warning_and_no_tick_comes_twice(
        tmp_path, make_md, caplog, fast_reconnect):
    total = write_days(tmp_path / "days")
    gone = tmp_path / "days" / f"{DAYS[1]}.parquet"
    per_day = pq.read_metadata(gone).num_rows
    # Deleted while day 1 plays: the dispatcher holds the replay to a piece ahead, so day 2 is not open yet.
    api, spi = make_md(f"replay://{tmp_path / 'days'}?speed=max&rebase=none", spi_class=ActOnFirstTick,
                       action=lambda api: gone.unlink(), subscribe=["ru1901"])
    wait_for(lambda: total in volumes(spi) or disconnects(spi), what="the last tick of day 3")
    got = volumes(spi)
    assert disconnects(spi) == [] and logins(spi) == 1
    assert got == sorted(set(got)), "a tick came twice or out of order"
    assert got == list(range(1, per_day + 1)) + list(range(2 * per_day + 1, total + 1))  # day 2 skipped, whole
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and str(gone) in r.getMessage()]
    assert len(warnings) == 1 and "cannot be read any more" in warnings[0]


def test_a_folder_with_an_unreadable_day_is_refused_at_register_front(tmp_path, make_md):
    write_days(tmp_path / "days")
    broken = tmp_path / "days" / f"{DAYS[1]}.parquet"
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])  # the footer is gone
    api, spi = make_md(init=False)
    with pytest.raises(FrontAddressError, match=f"{broken}: cannot be read as Parquet"):
        api.RegisterFront(f"replay://{tmp_path / 'days'}")


@pytest.mark.parametrize("pace", ["speed=max", "speed=20000&gaps=skip"])
def test_a_reconnect_resumes_where_the_replay_was(tmp_path, make_md, monkeypatch, fast_reconnect, pace):
    total = write_days(tmp_path / "days", DAYS[:2])
    drop_the_link_at(monkeypatch, 3)  # while the replay is in day 1
    api, spi = make_md(f"replay://{tmp_path / 'days'}?{pace}&rebase=none", subscribe=["ru1901"])
    wait_for(lambda: total in volumes(spi), timeout=30, what="the last tick")
    assert len(disconnects(spi)) == 1 and logins(spi) == 2
    assert volumes(spi) == list(range(1, total + 1))  # every tick once, in order


def test_a_reconnect_after_a_failed_attempt_still_resumes_where_the_replay_was(tmp_path, make_md, monkeypatch,
                                                                               fast_reconnect):
    from ctpshim.adapters.replay import ReplayAdapter

    total = write_days(tmp_path / "days", DAYS[:2])
    drop_the_link_at(monkeypatch, 3)  # while the replay is in day 1
    connect = ReplayAdapter.connect
    attempts = {"n": 0}

    async def refused_once_after_the_drop(self: Any) -> None:
        attempts["n"] += 1
        if attempts["n"] == 2:  # the first reconnect attempt: the source is unreachable for a moment
            raise UpstreamUnavailable("the test refuses this attempt")
        await connect(self)

    monkeypatch.setattr(ReplayAdapter, "connect", refused_once_after_the_drop)
    api, spi = make_md(f"replay://{tmp_path / 'days'}?speed=max&rebase=none", subscribe=["ru1901"])
    wait_for(lambda: total in volumes(spi), timeout=30, what="the last tick")
    assert attempts["n"] == 3 and len(disconnects(spi)) == 1 and logins(spi) == 2
    assert volumes(spi) == list(range(1, total + 1))  # every tick once, in order: the position survived


def test_with_loop_a_new_lap_is_the_only_repetition_even_across_a_reconnect(tmp_path, make_md, monkeypatch,
                                                                             fast_reconnect):
    total = write_days(tmp_path / "days", DAYS[:1])
    drop_the_link_at(monkeypatch, 5)  # in the second lap (a day is three pieces)
    api, spi = make_md(f"replay://{tmp_path / 'days'}?speed=max&rebase=none&loop=true", subscribe=["ru1901"])
    wait_for(lambda: len(volumes(spi)) > 3 * total, timeout=60, what="three laps")
    got = volumes(spi)[: 3 * total]
    assert len(disconnects(spi)) == 1
    assert got == list(range(1, total + 1)) * 3  # lap after lap, each whole and once


# -- item 7: unreadable and non-regular paths ------------------------------------------------------

def _run_unprivileged(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a child that file permissions apply to, even when the tests run as root."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: file permissions cannot be made to apply")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    return subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


REGISTER = """
import sys
from ctpshim import mdapi
from ctpshim.errors import FrontAddressError
api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(sys.argv[1] if len(sys.argv) > 1 else '')
try:
    api.RegisterFront({front!r})
except FrontAddressError as exc:
    print('FrontAddressError:', exc)
"""


@pytest.mark.parametrize("what", ["folder", "file"])
def test_an_unreadable_folder_or_file_is_a_front_address_error_naming_it(tmp_path, what):
    write_days(tmp_path / "days", DAYS[:2])
    target = tmp_path / "days" if what == "folder" else tmp_path / "days" / f"{DAYS[1]}.parquet"
    target.chmod(0)
    try:
        result = _run_unprivileged(REGISTER.format(front=f"replay://{tmp_path / 'days'}"))
    finally:
        target.chmod(0o755)
    assert "Traceback" not in result.stderr, result.stderr
    assert f"FrontAddressError: front 'replay://{tmp_path / 'days'}': {target}: " in result.stdout
    assert "permission denied" in result.stdout.lower()


@pytest.mark.parametrize("inside", [False, True], ids=["the-path", "in-a-folder"])
def test_a_named_pipe_is_refused_without_being_opened(tmp_path, make_md, inside):
    pipe = tmp_path / ("20181009.arrows" if inside else "live.arrows")
    os.mkfifo(pipe)
    api, spi = make_md(init=False)
    outcome: list[BaseException | None] = []

    def register() -> None:
        try:
            api.RegisterFront(f"replay://{tmp_path if inside else pipe}")
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome.append(exc)

    worker = threading.Thread(target=register, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # it opened the pipe and waits for a writer: release it
        os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(10)
        pytest.fail("RegisterFront opened the named pipe and blocked")
    assert isinstance(outcome[0], FrontAddressError)
    assert f"{pipe}: a named pipe" in str(outcome[0])


# -- item 9: unsubscribing everything; ReqQryInstrument right after login ------------------------

def test_unsubscribing_the_last_instrument_keeps_the_front_up(make_md, caplog):
    caplog.set_level(logging.INFO, logger="ctpshim.replay")
    api, spi = make_md("replay://?speed=max&rebase=none", spi_class=ActOnFirstTick,
                       action=lambda api: api.UnSubscribeMarketData([b"ru1901"], 1), subscribe=["ru1901"])
    # The replay plays on with nothing subscribed to the end of the day, where it says so.
    wait_for(lambda: "ended (loop=false)" in caplog.text or disconnects(spi), what="the end of the replay")
    assert disconnects(spi) == [] and logins(spi) == 1
    assert "Traceback" not in caplog.text and "failed" not in caplog.text


class QueryAfterLogin(tdapi.CThostFtdcTraderSpi):
    """vn.py's order: log in on connect, query the instruments as soon as the login is answered."""

    def __init__(self) -> None:
        super().__init__()
        self.api: Any = None
        self.answers: list[str | None] = []
        self.done = threading.Event()

    def OnFrontConnected(self) -> None:
        self.api.ReqUserLogin(tdapi.CThostFtdcReqUserLoginField(), 1)

    def OnRspUserLogin(self, *args: Any) -> None:
        self.api.ReqQryInstrument(tdapi.CThostFtdcQryInstrumentField(), 2)

    def OnRspQryInstrument(self, pInstrument: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
        self.answers.append(pInstrument.InstrumentID if pInstrument is not None else None)
        if bIsLast:
            self.done.set()


def test_req_qry_instrument_right_after_login_answers_the_recordings_instruments(tmp_path, make_td):
    folder = tmp_path / "days"
    write_days(folder, tuple(f"201810{day:02d}" for day in range(1, 13)))  # more to scan than a login takes
    for _ in range(3):
        spi = QueryAfterLogin()
        make_td(spi, f"replay://{folder}")
        assert spi.done.wait(10), "no answer to ReqQryInstrument"
        assert spi.answers == ["ru1901"]


def test_req_qry_instrument_reads_the_source_on_the_io_thread_not_the_callers(make_td, monkeypatch):
    from ctpshim.adapters.replay import ReplayAdapter

    threads: list[str] = []
    instruments = ReplayAdapter.instruments

    def noting_the_thread(self: Any) -> Any:
        threads.append(threading.current_thread().name)
        return instruments(self)

    monkeypatch.setattr(ReplayAdapter, "instruments", noting_the_thread)
    spi = QueryAfterLogin()
    make_td(spi, "replay://")
    assert spi.done.wait(10), "no answer to ReqQryInstrument"
    assert spi.answers == ["ru1901"] and set(threads) == {"ctpshim-io"}  # read (and cached) on the IO thread only


# -- items 3 and 10: settings and filters ---------------------------------------------------------

@pytest.mark.parametrize("query, words", [
    ("instruments=rb2605,au2606", "instruments=rb2605, au2606: none of them is in"),
    ("start=03:00&end=04:00", "no tick in"),
    ("instruments=ru1901&start=16:00&end=20:00", "no tick of ru1901 in"),
    ("start=09:00&end=09:00", "the window [start, end) holds no time"),
    ("bundled=CU1909", "expected the name of a bundled day: ru1901, RM705"),
])
def test_settings_and_filters_that_let_no_tick_through_are_refused_at_register_front(make_md, query, words):
    api, spi = make_md(init=False)
    with pytest.raises(FrontAddressError) as caught:
        api.RegisterFront(f"replay://?{query}")
    assert words in str(caught.value)
    if "instruments=rb2605" in query:
        assert "which holds ru1901" in str(caught.value)
    if query.startswith("start=03"):
        assert "lie between 09:00:00 and 23:00:00" in str(caught.value)


def test_a_path_and_a_bundled_name_together_are_refused(tmp_path, make_md):
    write_days(tmp_path / "days", DAYS[:1])
    api, spi = make_md(init=False)
    with pytest.raises(FrontAddressError, match="give a PATH or bundled=RM705, not both"):
        api.RegisterFront(f"replay://{tmp_path / 'days'}?bundled=RM705")


def test_ten_thousand_unknown_ids_are_one_short_warning(make_md, caplog):
    unknown = [f"zz{i:05d}" for i in range(10_000)]
    api, spi = make_md("replay://?speed=max&instruments=ru1901," + ",".join(unknown[:5000]),
                       subscribe=["ru1901", *unknown[5000:]])
    wait_for(lambda: spi.ticks, what="a tick")
    lines = [r.getMessage() for r in caplog.records
             if r.name in ("ctpshim.replay", "ctpshim.adapters") and r.levelno == logging.WARNING]
    assert len(lines) == 2 and all(len(line) < 400 for line in lines), lines
    assert "zz00000" in lines[0] and "4,990 more (5,000 in all)" in lines[0]  # the instruments= setting
    assert "zz05000" in lines[1] and "4,990 more (5,000 in all)" in lines[1]  # the subscription


# -- out of time order ------------------------------------------------------------------------------

def test_a_recording_whose_ticks_go_back_in_time_is_refused_with_the_row(tmp_path, make_md):
    table = pq.read_table(BUNDLED["RM705"]).slice(0, 1000)
    backwards = tmp_path / "20170320.parquet"
    pq.write_table(table.take(pa.array(range(999, -1, -1))), backwards)  # another tool's file, newest first
    api, spi = make_md(init=False)
    with pytest.raises(FrontAddressError) as caught:
        api.RegisterFront(f"replay://{backwards}")
    message = str(caught.value)
    assert f"{backwards}: its ticks go back in time (tick 2 was received at 2017-03-20 09:" in message
    assert "ctpshim convert" in message


def test_days_whose_names_and_times_disagree_are_refused(tmp_path, make_md):
    folder = tmp_path / "days"
    write_days(folder, DAYS[:2])
    early, late = folder / f"{DAYS[0]}.parquet", folder / f"{DAYS[1]}.parquet"
    swapped = tmp_path / "swap.parquet"
    early.rename(swapped)
    late.rename(early)
    swapped.rename(late)  # the later day's ticks now play first
    api, spi = make_md(init=False)
    with pytest.raises(FrontAddressError) as caught:
        api.RegisterFront(f"replay://{folder}")
    assert f"{late} (day {DAYS[1]}) starts at 2018-10-08 21:00:00.500, before {early} ends" in str(caught.value)
