"""The recordings bundled with ctpshim: replay://'s default is a real SHFE day with a night session,
volume and open interest; RM705 by name; their licences ship with them; the README's main command."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

pq = pytest.importorskip("pyarrow.parquet")

from ctpshim.adapters.replay import BUNDLED  # noqa: E402
from ctpshim.ctp.market_data import DBL_MAX  # noqa: E402
from ctpshim.fronts.registry import create_adapter  # noqa: E402

from ..conftest import DATA, wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DATA = ROOT / "shim" / "data"


def test_the_default_is_shfe_ru1901s_trading_day_20181009_night_session_first():
    adapter = create_adapter("replay://")
    assert adapter.path == BUNDLED["ru1901"]
    table = pq.read_table(adapter.path).to_pydict()
    assert set(table["InstrumentID"]) == {"ru1901"} and set(table["ExchangeID"]) == {"SHFE"}
    assert set(table["TradingDay"]) == {"20181009"} and len(table["TradingDay"]) == 40_448
    # The night session of the evening before comes first, then the day session to the close.
    assert (table["ActionDay"][0], table["UpdateTime"][0]) == ("20181008", "21:00:00")
    assert (table["ActionDay"][-1], table["UpdateTime"][-1]) == ("20181009", "15:00:00")
    night = [i for i, day in enumerate(table["ActionDay"]) if day == "20181008"]
    assert max(table["UpdateTime"][i] for i in night) == "23:00:00"
    volume, interest = table["Volume"], table["OpenInterest"]
    assert volume[0] > 0 and all(a <= b for a, b in zip(volume, volume[1:])) and volume[-1] == 740_820
    assert min(interest) > 300_000 and len(set(interest)) > 1000  # it moves both ways all day
    assert table["SettlementPrice"][-1] == 12620.0 and table["SettlementPrice"][0] == DBL_MAX


def test_the_bundled_file_is_ctpshims_own_conversion_of_the_java_trader_csv(tmp_path):
    csv = tmp_path / "ru1901.csv"
    with gzip.open(DATA / "javatrader_SHFE_ru1901_20181008-20181015.csv.gz", "rb") as source, open(csv, "wb") as out:
        shutil.copyfileobj(source, out)
    result = subprocess.run([sys.executable, "-m", "ctpshim", "convert", str(csv), "-o", str(tmp_path / "days")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    converted = pq.read_table(tmp_path / "days" / "20181009.parquet")
    assert converted.equals(pq.read_table(BUNDLED["ru1901"]))


def test_rm705_is_played_by_name(make_md):
    adapter = create_adapter("replay://?bundled=rm705")  # any case
    assert adapter.path == BUNDLED["RM705"]
    api, spi = make_md("replay://?bundled=RM705&speed=max&rebase=none", subscribe=["RM705"])
    wait_for(lambda: spi.ticks, what="a tick")
    first = spi.ticks[0]
    assert (first.InstrumentID, first.ExchangeID, first.TradingDay, first.UpdateTime) == \
        ("RM705", "CZCE", "20170320", "09:00:00")


def test_a_relative_folder_named_like_a_bundled_day_is_a_path_not_the_bundled_day(tmp_path, monkeypatch):
    (tmp_path / "RM705").mkdir()
    shutil.copy(BUNDLED["ru1901"], tmp_path / "RM705" / "20181009.parquet")
    monkeypatch.chdir(tmp_path)
    assert create_adapter("replay://RM705").path == Path("RM705")


def test_every_bundled_file_and_its_licence_are_package_data():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["ctpshim"]
    shipped = {path.name for path in PACKAGE_DATA.iterdir() if any(fnmatch(f"data/{path.name}", p) for p in patterns)}
    assert {path.name for path in BUNDLED.values()} <= shipped
    licence = "LICENSE.zhugf-java-trader.Apache-2.0.txt"
    assert licence in shipped
    assert (PACKAGE_DATA / licence).read_bytes() == (DATA / licence).read_bytes()
    sources = (PACKAGE_DATA / "SOURCES.md").read_text()
    assert "Tick data from zhugf/java-trader test resources, Apache License 2.0" in sources
    assert "Changes made" in sources and licence in sources


def test_the_readme_main_command_shows_the_night_session_moving(tmp_path):
    readme = (ROOT / "README.md").read_text()
    command = next(line for line in readme.splitlines() if "ctpshim run --front" in line and "md_demo.py" in line)
    run = command.split("&&", 1)[1].strip()
    assert run == "python -m ctpshim run --front 'replay://?rebase=none' examples/md_demo.py 10 ru1901"
    result = subprocess.run([sys.executable, "-m", "ctpshim", "run", "--front", "replay://?rebase=none",
                             str(ROOT / "examples" / "md_demo.py"), "2", "ru1901"],
                            capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    ticks = [line.split() for line in result.stdout.splitlines() if line.startswith("ru1901   SHFE")]
    assert ticks[0][2:4] == ["20181008", "21:00:00.500"]  # the night session's first tick
    volumes = [int(line[line.index("vol") + 1]) for line in ticks]
    assert len(ticks) >= 3 and volumes == sorted(volumes) and volumes[-1] > volumes[0] > 0
    assert "open interest 321626 ->" in result.stdout
