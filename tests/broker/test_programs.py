"""An unedited openctp-ctp trading program under ``ctpshim run`` on ``replay://`` gets real answers
from the simulated counter, and a second run finds what the first left in the database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from ctpshim.ctp.rates import rates_for

PROGRAM = Path(__file__).parents[1] / "programs" / "openctp_td_program.py"
INSTRUMENT = "ru1901"  # the bundled real day: SHFE ru1901, 2018-10-08 night and 2018-10-09 day


def run_program(front: str, cwd: Path) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "CTPSHIM_FRONT"}
    return subprocess.run([sys.executable, "-m", "ctpshim", "run", "--front", front, str(PROGRAM), INSTRUMENT],
                          capture_output=True, text=True, timeout=120, cwd=str(cwd), env=environment)


def facts(stdout: str) -> dict[str, list[str]]:
    """``key: values`` lines -> {key: [values of its last line split]}; order/trade lines kept as lists."""
    found: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        key, _, rest = line.partition(": ")
        found[key] = rest.split()
    return found


def numbers(line: list[str]) -> dict[str, float]:
    """'balance 1.0 available 2.0 position profit 3.0' -> {'balance': 1.0, ...} (names may be two words)."""
    text = " ".join(line)
    return {name.strip(): float(value) for name, value in re.findall(r"([a-z ]+?) (-?[0-9.]+)", text)}


def test_an_openctp_td_program_gets_real_answers_and_a_rerun_finds_its_position(tmp_path):
    db = tmp_path / "trader.sqlite"
    front = f"replay://?speed=max&trader.db={db}&trader.flow_control=false"
    first = run_program(front, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.splitlines()[-1] == "ok"
    got = facts(first.stdout)
    assert got["instrument"][:6] == [INSTRUMENT, "SHFE", "tick", "5", "multiple", "10"]  # SHFE ru: 5 yuan, 10 t a lot
    # A new account holds the documented default balance, 10,000,000, and nothing yet.
    assert numbers(got["account before"]) == {"balance": 10_000_000.0, "available": 10_000_000.0, "commission": 0.0}
    assert got["positions before"][:4] == ["0", "records,", "0", "long"]
    # The fill: one lot at a price between the limits; the order was confirmed by SHFE with a
    # 12-character right-aligned OrderSysID (SIM_TRADING.md 0.6), then all traded.
    trades = [line.split(": ", 1)[1] for line in first.stdout.splitlines() if line.startswith("trade: ")]
    assert len(trades) == 1
    trade_id, ref, direction, offset, price, volume = re.match(r"'( *\d+)' (\d+) (\S) (\S) ([\d.]+) (\d+)", trades[0]).groups()
    assert len(trade_id) == 12 and (direction, offset, volume) == ("0", "0", "1")
    price = float(price)
    reports: dict[str, list[tuple[str, str, str]]] = {}
    for line in first.stdout.splitlines():
        if line.startswith("order: "):
            number, status, submit, sys_id, words = re.match(
                r"order: (\d+) status (\S) submit (\S) traded \d+ left \d+ sys '([^']*)' msg (.*)$", line).groups()
            reports.setdefault(number, []).append((status, submit, words))
            assert sys_id == "" or re.fullmatch(r" +\d+", sys_id) and len(sys_id) == 12, line
    crossing, resting = sorted(reports, key=int)
    assert crossing == ref
    # SFIT's sequences (SIM_TRADING.md 1.4): an immediate full fill on SHFE is Unknown, Unknown, then
    # "全部成交报单已提交" with OrderSubmitStatus still '0', then the trade; accepted then cancelled is
    # Unknown -> 未成交 -> (the cancel) 未成交 CancelSubmitted -> 已撤单.
    assert reports[crossing] == [("a", "0", "报单已提交"), ("a", "0", "报单已提交"), ("0", "0", "全部成交报单已提交")]
    assert reports[resting] == [("a", "0", "报单已提交"), ("3", "3", "未成交"), ("3", "1", "未成交"), ("5", "3", "已撤单")]
    lines = first.stdout.splitlines()
    assert lines.index(trades and "trade: " + trades[0]) > max(i for i, line in enumerate(lines)
                                                                  if line.startswith(f"order: {crossing} "))
    # Money, worked by hand from the rate table (SIM_TRADING.md 3.2): margin on today's lot at its
    # open price, commission at the trade price, Balance = PreBalance + PositionProfit - Commission.
    rates = rates_for(INSTRUMENT)
    after = numbers(got["account after"])
    assert abs(after["commission"] - (1 * price * 10 * rates.OpenRatioByMoney + 1 * rates.OpenRatioByVolume)) < 1e-6
    assert abs(after["margin"] - 1 * price * 10 * rates.LongMarginRatioByMoney) < 1e-6
    assert abs(after["balance"] - (10_000_000 + after["position profit"] - after["commission"])) < 1e-6
    assert got["positions after"][:2] == ["1", "long"]

    # Another process, the same database: the account carries the first run's position and money.
    second = run_program(front, tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    again = facts(second.stdout)
    # The login's MaxOrderRef continues after the account's highest OrderRef today (the first run's 3)
    assert int(again["login"][3].strip("'")) >= int(resting), again["login"]
    assert again["positions before"][2] == "1" and again["positions after"][:2] == ["2", "long"]
    assert int(again["orders"][0]) >= 4 and int(again["trades"][0]) >= 2  # the day's orders of both sessions
    paid = numbers(got["account after"])["commission"]
    assert numbers(again["account before"])["commission"] == paid  # the first fill's commission, same trading day
