"""Import time of ctpshim, next to a same-run baseline (an interpreter importing nothing).

    python bench/bench_import.py [--runs R]

Each figure is the median over R fresh interpreters; the extra time over the baseline is what
the import costs, and what building the command line's parser costs (all ``ctpshim --help``
does; ``ctpshim ping`` imports that command's module too).  Also checks that the imports and every
command's parser load no adapter, aiohttp or pyarrow.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "baseline: python -c pass": "pass",
    "import ctpshim": "import ctpshim",
    "from ctpshim import mdapi, tdapi": "from ctpshim import mdapi, tdapi",
    "ctpshim --help's parser": "from ctpshim.tools import cli; cli._parser([])",
    "ctpshim ping's parser": "from ctpshim.tools import cli; cli._parser(['ping'])",
}
HEAVY = "print(sorted(m for m in sys.modules if m.startswith(('ctpshim.adapters', 'aiohttp', 'pyarrow'))))"
CHECKS = {
    "the facade": f"import sys; from ctpshim import mdapi, tdapi; {HEAVY}",
    "every command's parser": ("import sys; from ctpshim.tools import cli; "
                               f"[cli._parser([name]) for name in cli.COMMANDS]; {HEAVY}"),
}


def timed(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    medians = {}
    for label, code in CASES.items():
        timed(code)  # warm the file cache and the bytecode cache
        medians[label] = statistics.median(timed(code) for _ in range(args.runs))
    base = medians["baseline: python -c pass"]
    print(f"median of {args.runs} fresh interpreters each")
    for label, value in medians.items():
        extra = "" if value is base else f"   (+{(value - base) * 1000:.1f} ms over the baseline)"
        print(f"{label:<36} {value * 1000:7.1f} ms{extra}")
    for what, code in CHECKS.items():
        loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        print(f"adapters, aiohttp, pyarrow loaded by {what}: {loaded}")


if __name__ == "__main__":
    main()
