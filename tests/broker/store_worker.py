"""A process that uses one store file, for the tests that need a second process or kill -9.

    python store_worker.py PATH stream [LIMIT]   write order rows (with a flow message each) in a loop;
                                                 print each id once its after callable ran (= committed)
    python store_worker.py PATH exit COUNT       write COUNT rows, printing each id from its after callable,
                                                 then return without flush or close (interpreter exit drains)
    python store_worker.py PATH hold             take the write lock, print "locked", keep it until stdin closes
    python store_worker.py PATH put ID           write one order row and print "committed ID" after it commits

Every mode ends within a bounded time; the streaming one stops after LIMIT ids or 60 seconds.
"""

from __future__ import annotations

import sqlite3
import sys
import time

from ctpshim.broker.store import Store, flow, put

BOOK, BROKER, INVESTOR = "kill", "9999", "000001"
ACCOUNT = (BOOK, BROKER, INVESTOR)
DAY = "20261120"
MAX_SECONDS = 60.0


def ops(number: int) -> list:
    """What the counter writes for one order: the order's state and its OnRtnOrder in the flow."""
    state = {"BrokerOrderSeq": number, "TradingDay": DAY, "InstrumentID": "rb2701", "InsertTime": "09:00:00",
             "VolumeTotalOriginal": 1 + number % 7}
    return [put("orders", (BOOK, BROKER, INVESTOR, number), state),
            flow(ACCOUNT, DAY, number, "OnRtnOrder", {"BrokerOrderSeq": number})]


def acknowledge(number: int):
    def after() -> None:
        sys.stdout.write(f"{number}\n")
        sys.stdout.flush()
    return after


def stream(store: Store, limit: int) -> None:
    started = time.monotonic()
    for number in range(1, limit + 1):
        store.write(ops(number), after=acknowledge(number))
        if number % 50 == 0:  # keep the queue bounded, as a program waiting for its callbacks does
            store.flush(timeout=10.0)
        if time.monotonic() - started > MAX_SECONDS:
            break
    store.close()


def hold(path: str) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    sys.stdin.readline()
    connection.execute("ROLLBACK")
    connection.close()


def main(argv: list[str]) -> int:
    path, mode, *rest = argv
    if mode == "hold":
        hold(path)
        return 0
    store = Store.open(path, timeout=5.0)
    if mode == "stream":
        stream(store, int(rest[0]) if rest else 1_000_000)
    elif mode == "exit":
        for number in range(1, int(rest[0]) + 1):
            store.write(ops(number), after=acknowledge(number))
    elif mode == "put":
        number = int(rest[0])
        store.write(ops(number), after=lambda: print(f"committed {number}", flush=True))
        store.flush(timeout=10.0)
        store.close()
    else:
        print(f"unknown mode {mode!r}; modes: stream, exit, hold, put", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
