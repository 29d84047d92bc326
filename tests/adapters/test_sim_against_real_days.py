"""sim:// against real recorded days (tests/data, see SOURCES.md there): the same sessions, the same
timestamp grid, the same members present or absent, and a closing snapshot that carries ClosePrice
and SettlementPrice, from which the next day's Pre* members follow."""

from __future__ import annotations

import csv
import gzip
from collections import OrderedDict
from functools import lru_cache

import pytest

from ctpshim.ctp.market_data import DBL_MAX

from ..conftest import DATA
from ..adapters.test_sim import collect

RUBBER = "javatrader_SHFE_ru1901_20181008-20181015.csv.gz"
INDEX = "wondertrader_CFFEX_IF2101_20210104-20210106.csv.gz"
APPLES = "javatrader_CZCE_AP010_AP101_20200803.csv.gz"


@lru_cache(maxsize=None)
def real_days(name: str) -> "OrderedDict[str, list[dict[str, str]]]":
    days: OrderedDict[str, list[dict[str, str]]] = OrderedDict()
    with gzip.open(DATA / name, "rt", encoding="utf-8", newline="") as source:
        for row in csv.DictReader(source):
            days.setdefault(row["TradingDay"], []).append(row)
    return days


def sim_day(front: str, ids: list[str], trading_day: str, count: int) -> list:
    ticks = collect(front, ids, count, max_batches=100_000)
    return [t for t in ticks if t.TradingDay == trading_day]


def minutes(times: list[str]) -> set[str]:
    return {t[:5] for t in times}


def absent_members(row: dict[str, str]) -> set[str]:
    """The CSV's members without a value (the source's empty cell, CTP's DBL_MAX)."""
    return {name for name, text in row.items() if text == ""}


def absent_in_tick(tick, names) -> set[str]:
    return {name for name in names if getattr(tick, name) == DBL_MAX}


@pytest.fixture(scope="module")
def rubber():
    """SHFE ru1901's trading day 20181009: the night of 2018-10-08 from 21:00, then the day session."""
    ticks = collect("sim://?instruments=ru1901&start=2018-10-08T20:50&speed=max&depth=1&seed=3", ["ru1901"],
                    42_000, max_batches=100_000)
    following = [t for t in ticks if t.TradingDay == "20181010"]
    assert following, "the sim did not reach the next trading day"
    return real_days(RUBBER)["20181009"], [t for t in ticks if t.TradingDay == "20181009"], following[0]


def test_the_sims_rubber_day_has_the_real_sessions_and_grid(rubber):
    real, sim, _ = rubber
    real_minutes, sim_minutes = minutes([r["UpdateTime"] for r in real]), minutes([t.UpdateTime for t in sim])
    # Every minute the exchange sent ticks in, the sim sends too; the sim's one extra minute is the
    # 20:59 opening auction, which this source dropped (SOURCES.md).
    assert real_minutes <= sim_minutes and sim_minutes - real_minutes == {"20:59"}
    assert {int(r["UpdateMillisec"]) for r in real} == {t.UpdateMillisec for t in sim} == {0, 500}
    assert (real[0]["UpdateTime"][:2], sim[1].UpdateTime[:2]) == ("21", "21")  # the day opens at night
    assert sim[0].ActionDay == "20181008" and sim[-1].ActionDay == "20181009"


def test_the_sims_rubber_ticks_carry_the_same_members_as_the_real_ones(rubber):
    real, sim, _ = rubber
    names = [n for n in real[0] if n not in ("InstrumentID", "ExchangeID", "TradingDay", "ActionDay", "UpdateTime")]
    middle_real, middle_sim = real[len(real) // 2], sim[len(sim) // 2]
    assert absent_in_tick(middle_sim, names) == absent_members(middle_real) & set(names)
    # SHFE's AveragePrice is Turnover / Volume (price x multiplier), in the real data and the sim.
    for row, tick in ((middle_real, middle_sim),):
        assert float(row["AveragePrice"]) == pytest.approx(float(row["Turnover"]) / float(row["Volume"]), rel=1e-6)
        assert tick.AveragePrice == pytest.approx(tick.Turnover / tick.Volume, rel=1e-6)
    volumes = [t.Volume for t in sim]
    assert volumes == sorted(volumes) and all(t.LowestPrice <= t.LastPrice <= t.HighestPrice for t in sim)


def test_the_closing_snapshot_settles_and_the_next_day_starts_from_it(rubber):
    real, sim, following = rubber
    real_close, sim_close = real[-1], sim[-1]
    assert real_close["UpdateTime"] == sim_close.UpdateTime == "15:00:00"
    assert real_close["ClosePrice"] and real_close["SettlementPrice"]
    assert sim_close.ClosePrice == sim_close.LastPrice
    assert sim_close.LowestPrice <= sim_close.SettlementPrice <= sim_close.HighestPrice
    assert all(t.ClosePrice == DBL_MAX and t.SettlementPrice == DBL_MAX for t in sim[:-1])
    # The real next day's Pre* members are this day's close, settlement and open interest; so are the sim's.
    real_next = real_days(RUBBER)["20181010"][0]
    assert (real_next["PreClosePrice"], real_next["PreSettlementPrice"]) == (real_close["ClosePrice"],
                                                                             real_close["SettlementPrice"])
    assert following.UpdateTime == "20:59:00"  # the next night's auction
    assert (following.PreClosePrice, following.PreSettlementPrice, following.PreOpenInterest) == (
        sim_close.ClosePrice, sim_close.SettlementPrice, sim_close.OpenInterest)


def test_the_sims_index_future_has_cffexs_auction_sessions_and_settlement_snapshot():
    real = real_days(INDEX)["20210104"]
    front = "sim://?instruments=IF2101&start=2021-01-04T09:20&speed=max&depth=1&seed=3"
    sim = sim_day(front, ["IF2101"], "20210104", 30_000)
    real_minutes, sim_minutes = minutes([r["UpdateTime"] for r in real]), minutes([t.UpdateTime for t in sim])
    assert real[0]["UpdateTime"] == sim[0].UpdateTime == "09:29:00"  # the opening auction
    trading = {m for m in real_minutes if m <= "15:00"}
    # The one difference, listed in the README: the sim also sends a snapshot at the morning's
    # 11:30:00 end, where this CFFEX feed's last one is 11:29:59.x.
    assert {m for m in sim_minutes if m <= "15:00"} - trading == {"11:30"}
    assert trading <= sim_minutes
    # After the close: snapshots that publish the settlement price (the real ones come 15:3x).
    real_after = [r for r in real if r["UpdateTime"] > "15:00:00"]
    sim_after = [t for t in sim if t.UpdateTime > "15:00:00"]
    assert real_after and float(real_after[-1]["SettlementPrice"]) > 0
    assert sim_after and sim_after[-1].SettlementPrice != DBL_MAX and sim_after[-1].UpdateTime[:3] == "15:"
    # CFFEX sends a 500 ms grid; the real one has a per-day millisecond offset, the sim's starts at 0.
    real_grid = sorted({int(r["UpdateMillisec"]) for r in real})
    assert len(real_grid) == 2 and real_grid[1] - real_grid[0] == 500
    assert {t.UpdateMillisec for t in sim} == {0, 500}


def test_the_sims_apples_have_czces_day_auction_and_no_night_session():
    real = [r for r in real_days(APPLES)["20200803"] if r["ActionDay"] == "20200803"]  # without the stale snapshot
    front = "sim://?instruments=AP010,AP101&start=2020-08-03T08:50&speed=max&depth=1&seed=3"
    sim = sim_day(front, ["AP010", "AP101"], "20200803", 70_000)
    assert {r["InstrumentID"] for r in real} == {t.InstrumentID for t in sim} == {"AP010", "AP101"}
    real_minutes, sim_minutes = minutes([r["UpdateTime"] for r in real]), minutes([t.UpdateTime for t in sim])
    assert min(real_minutes) == min(sim_minutes) == "08:59"  # the day auction
    # As on CFFEX, the sim also sends the 10:15:00 and 11:30:00 session-end snapshots, where CZCE's
    # last ones are 10:14:59 and 11:29:59 (README, "what the sim does not model").
    trading = {m for m in real_minutes if m < "15:00"}
    assert trading <= sim_minutes and {m for m in sim_minutes if m < "15:00"} - trading == {"10:15", "11:30"}
    assert not [t for t in sim if t.UpdateTime >= "21:00"]
