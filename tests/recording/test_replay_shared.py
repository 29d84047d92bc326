"""One replay:// front shared by several API objects in one process: one upstream, each API object
given the recorded rows of its own instruments, in the recorded order."""

from __future__ import annotations

from pathlib import Path

from ..conftest import wait_for

from ctpshim.fronts.registry import create_adapter
from ctpshim.runtime import hub

ROWS = 3000


def two_instruments(folder: Path) -> Path:
    """A day whose rows alternate between X (even Volume) and Y (odd), 10 ms apart; Volume numbers the rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ctpshim.recording import SCHEMA

    part = pq.read_table(create_adapter("replay://?bundled=RM705").path).slice(0, ROWS)
    for name, values, kind in (("InstrumentID", [("X", "Y")[i % 2] for i in range(ROWS)], pa.string()),
                               ("Volume", list(range(ROWS)), pa.int32()),
                               ("ReceiveTime", [10**18 + i * 10**7 for i in range(ROWS)], pa.int64())):
        position = SCHEMA.get_field_index(name)
        part = part.set_column(position, SCHEMA.field(position), pa.array(values, kind))
    target = folder / "20170320.parquet"
    pq.write_table(part, target, row_group_size=500)  # several pieces
    return target


def test_two_md_apis_on_one_replay_front_share_one_upstream_and_each_gets_its_instruments_in_order(tmp_path,
                                                                                                make_md):
    front = f"replay://{two_instruments(tmp_path)}?speed=20&rebase=none"  # 1.5 s: the second joins mid-way
    opened = hub.opened_adapters()
    _, both = make_md(front, subscribe=["X", "Y"])
    wait_for(lambda: both.ticks, what="the first API's first tick")  # it is the first subscriber: no snapshot
    _, only_y = make_md(front, subscribe=["Y"])
    wait_for(lambda: len(both.ticks) >= ROWS, what="every row for the API subscribed to both")
    wait_for(lambda: only_y.ticks and only_y.ticks[-1].Volume == ROWS - 1, what="the last Y row for the other")
    assert hub.opened_adapters() == opened + 1
    assert [t.Volume for t in both.ticks] == list(range(ROWS))
    ys = [t.Volume for t in both.ticks if t.InstrumentID == "Y"]
    got = [t.Volume for t in only_y.ticks]
    # From whenever it subscribed (its first tick may be the snapshot of Y's newest row), every Y row in turn.
    assert {t.InstrumentID for t in only_y.ticks} == {"Y"} and got == ys[len(ys) - len(got):]
    # A row both were given was made into a tick once, on one of their threads: the same object.
    made = {t.Volume: t for t in both.ticks}
    assert len(got) > 1 and all(tick is made[tick.Volume] for tick in only_y.ticks[1:])


def test_many_md_apis_on_one_looping_replay_front_see_one_market(tmp_path, make_md):
    front = f"replay://{two_instruments(tmp_path)}?speed=max&rebase=none&loop=1"
    opened = hub.opened_adapters()
    spis = [make_md(front, subscribe=["X", "Y"])[1] for _ in range(8)]
    wait_for(lambda: all(len(spi.ticks) > 2 * ROWS for spi in spis), what="two laps for every API")
    assert hub.opened_adapters() == opened + 1
    for spi in spis:
        volumes = [t.Volume for t in spi.ticks]
        # First the newest row of each instrument (for a late subscriber, the market's snapshots), then
        # each row after the one before it in the file, lap after lap: none skipped, none twice.
        assert sorted(volumes[:2]) == sorted([(volumes[2] - 2) % ROWS, (volumes[2] - 1) % ROWS])
        assert all(b == (a + 1) % ROWS for a, b in zip(volumes[2:], volumes[3:]))
