"""Unedited openctp-ctp programs through ``ctpshim run``: what their generic serialisers see of
ctpshim's field objects is what they see of openctp's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..conftest import FRIDAY_MORNING

PROGRAMS = Path(__file__).parents[1] / "programs"


def _walked(obj: Any) -> set[str]:
    """The names the program's encoder reads from an object that is not a sequence."""
    return {name for name in dir(obj) if not name.startswith("_") and name not in ("this", "thisown")}


def test_a_serialiser_walking_dir_sees_exactly_openctps_members(tmp_path, openctp):
    environment = {k: v for k, v in os.environ.items() if k != "CTPSHIM_FRONT"}
    front = f"sim://?start={FRIDAY_MORNING}&speed=20&instruments=rb2701"
    program = str(PROGRAMS / "openctp_serialiser_program.py")
    result = subprocess.run([sys.executable, "-m", "ctpshim", "run", "--front", front, program, "3"],
                            capture_output=True, text=True, timeout=120, cwd=str(tmp_path), env=environment)
    assert result.returncode == 0, result.stderr + result.stdout
    records = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [record["kind"] for record in records]
    # md and td run side by side: only each API's own order is fixed
    assert kinds.count("login") == 1 and kinds.count("tick") >= 3 and kinds.count("instrument") == 1
    assert kinds.index("login") < kinds.index("tick")
    for record in records:
        module = openctp.tdapi if record["kind"] == "instrument" else openctp.mdapi
        expected = _walked(getattr(module, record["type"])())
        assert isinstance(record["value"], dict), record["type"]  # not taken for a sequence
        assert set(record["value"]) == expected, record["type"]
    tick = next(record["value"] for record in records if record["kind"] == "tick")
    instrument = next(record["value"] for record in records if record["kind"] == "instrument")
    assert (tick["InstrumentID"], tick["ExchangeID"]) == ("rb2701", "SHFE")
    assert (instrument["InstrumentID"], instrument["ExchangeID"]) == ("rb2701", "SHFE")
    login = next(record["value"] for record in records if record["kind"] == "login")
    assert login["TradingDay"] == tick["TradingDay"] == "20261120"
