"""``ctpshim account`` on real databases built through the real Store and Ledger, run as a user
runs it (``python -m ctpshim``); and ``ctpshim schemes`` listing the trader's settings."""

from __future__ import annotations

import os
import subprocess
import sys

from ctpshim.broker.settings import SETTINGS
from ctpshim.tools.commands.schemes import TRADER_HEADING


def ctpshim(*args: str, env: dict | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "CTPSHIM_FRONT"}
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "ctpshim", *args], capture_output=True, text=True,
                          timeout=60, env=environment, input=stdin)


def test_schemes_lists_every_trader_setting_under_its_heading():
    result = ctpshim("schemes")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = lines.index(TRADER_HEADING)
    listed = [line.split()[0] for line in lines[start + 1:]]
    assert listed == [setting.name for setting in SETTINGS]
    assert {"trader.balance", "trader.db", "trader.book", "trader.lockstep"} <= set(listed)
    balance = next(line for line in lines[start + 1:] if line.split()[0] == "trader.balance")
    assert "10000000" in balance
