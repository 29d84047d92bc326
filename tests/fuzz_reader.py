"""Reads damaged copies of a recording (or imports those of a CSV), one after another; run in a
subprocess by test_recording_fuzz.py, so a crash of the interpreter is seen (and which copy caused it).

    python fuzz_reader.py ORIGINAL WORKDIR SEED FLIPS CUTS

Each copy has one bit flipped or is cut short.  Before reading a copy it prints
``{"start": n, "damage": ...}``; after, ``{"done": n, "ticks": ..., "messages": [...], "same": ...,
"unexpected": ...}`` (one JSON object a line, flushed): ``same`` says whether every tick read
equals the original's tick in that place, ``unexpected`` names an exception other than
:class:`RecordingError`.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any, Iterator

from ctpshim.ctp.fields import values_of
from ctpshim.recording import RecordingError, TickRows, constant_values, describe, read_tables, verify


def mutations(size: int, seed: int, flips: int, cuts: int) -> Iterator[tuple[str, int, int]]:
    rng = random.Random(seed)
    for _ in range(flips):
        yield "flip", rng.randrange(size), rng.randrange(8)
    for _ in range(cuts):
        yield "cut", rng.randrange(1, size), 0


def ticks_of(path: Path, damage: list[str]) -> list[list[Any]]:
    """Every tick of the file, made as replay makes them (TickRows)."""
    ticks: list[list[Any]] = []
    for table in read_tables(path, damage=damage):
        constants = constant_values(table)
        for batch in table.to_batches():
            ticks += [list(values_of(tick)) for tick in TickRows(batch, constants)]
    return ticks


def attempt(path: Path, original: list[list[Any]]) -> dict[str, Any]:
    messages: list[str] = []
    ticks: list[list[Any]] = []
    unexpected = None
    try:
        messages += verify(path)
        damage: list[str] = []
        try:
            ticks = ticks_of(path, damage)
            describe(path)
        except RecordingError as exc:
            messages.append(str(exc))
        messages += damage
    except Exception as exc:  # noqa: BLE001 - the point: anything but RecordingError is a finding
        unexpected = f"{type(exc).__name__}: {exc}"
    same = len(ticks) <= len(original) and all(tick == want for tick, want in zip(ticks, original))
    return {"ticks": len(ticks), "messages": messages, "same": same, "unexpected": unexpected}


def attempt_csv(path: Path) -> dict[str, Any]:
    """A CSV copy is imported (``convert``): ticks, or a RecordingError's message."""
    from ctpshim.tools.commands.convert import convert

    messages: list[str] = []
    ticks = 0
    unexpected = None
    try:
        ticks = convert(str(path), str(path.with_suffix(".parquet")))["rows"]
    except RecordingError as exc:
        messages.append(str(exc))
    except Exception as exc:  # noqa: BLE001 - as in attempt()
        unexpected = f"{type(exc).__name__}: {exc}"
    return {"ticks": ticks, "messages": messages, "same": True, "unexpected": unexpected}


def main(original_path: str, workdir: str, seed: str, flips: str, cuts: str) -> None:
    source = Path(original_path)
    data = source.read_bytes()
    original = [] if source.suffix == ".csv" else ticks_of(source, [])
    target = Path(workdir) / source.name
    for number, (kind, where, bit) in enumerate(mutations(len(data), int(seed), int(flips), int(cuts))):
        damaged = bytearray(data[:where] if kind == "cut" else data)
        if kind == "flip":
            damaged[where] ^= 1 << bit
        target.write_bytes(bytes(damaged))
        print(json.dumps({"start": number, "damage": [kind, where, bit]}), flush=True)
        result = attempt_csv(target) if source.suffix == ".csv" else attempt(target, original)
        print(json.dumps({"done": number, "damage": [kind, where, bit], **result}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:6])
