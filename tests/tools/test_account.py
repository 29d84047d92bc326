"""``ctpshim account`` on real databases built through the real Store, Ledger, orders and the
counter's account state, run as a user runs it; and ``ctpshim schemes`` listing the trader's
settings.

Most runs call ``ctpshim.tools.cli.main`` in this process (the same parser and code as
``python -m ctpshim``, without a second of interpreter start-up each); the runs that need a process
of their own (no terminal, a terminal typed into) start ``python -m ctpshim``."""

from __future__ import annotations

import csv
import json
import os
import pty
import select
import sqlite3
import subprocess
import sys
from datetime import datetime
from html.parser import HTMLParser

import pytest

from ctpshim.broker.counter import Account
from ctpshim.broker.ledger import Ledger
from ctpshim.broker.orders import TRADE_MEMBERS, Ids, new_order, new_trade
from ctpshim.broker.settings import SETTINGS
from ctpshim.broker.store import Store, equity_point, put
from ctpshim.broker.terms import parse_info, terms_for
from ctpshim.tools import cli
from ctpshim.tools.commands.schemes import TRADER_HEADING

DAY = "20261120"
NIGHT = datetime(2026, 11, 19, 21, 5, 1)  # the night session of trading day 20261120
RB = terms_for(parse_info("rb2701"))  # SHFE rebar: 10 t a lot
OPEN_PRICE, MARK_PRICE, LOTS = 3500.0, 3510.0, 2
POSITION_PROFIT = (MARK_PRICE - OPEN_PRICE) * LOTS * 10  # 200 yuan, worked by hand
COMMISSION = RB.rates.commission(LOTS, OPEN_PRICE, "0")
BALANCE = 10_000_000 + POSITION_PROFIT - COMMISSION  # after the fill and the mark
EQUITY = [(DAY, "21:00:00", 10_000_000.0), (DAY, "22:00:00", 9_990_000.0), (DAY, "15:00:00", BALANCE)]


def ctpshim(*args: str, **run: object) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "CTPSHIM_FRONT"}
    return subprocess.run([sys.executable, "-m", "ctpshim", *args], capture_output=True, text=True,
                          timeout=120, env=environment, **run)


def run(capsys, *args: str) -> tuple[int, str, str]:
    """``ctpshim ARGS`` in this process: (exit status, stdout, stderr)."""
    try:
        status = cli.main(list(args))
    except SystemExit as exc:  # argparse's usage errors
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


def the_account(store: Store, book: str, broker: str, investor: str, trading: bool) -> list:
    """The store ops of one account as the counter writes them; with ``trading`` an rb2701 buy of
    2 lots at 3500 filled in the night session and marked at 3510."""
    ids = Ids()
    ledger = Ledger(broker, investor, balance=10_000_000.0, trading_day=DAY)
    account = Account(broker, investor, ledger, DAY, confirmed=DAY, max_order_ref=7)
    ops = []
    if trading:
        order = new_order({"BrokerID": broker, "InvestorID": investor, "UserID": investor, "InstrumentID": "rb2701",
                           "Direction": "0", "CombOffsetFlag": "0", "CombHedgeFlag": "1", "LimitPrice": OPEN_PRICE,
                           "VolumeTotalOriginal": LOTS},
                          front_id=1, session_id=1, order_ref="           7", trading_day=DAY, now=NIGHT,
                          terms=RB, ids=ids)
        ledger.freeze(order.key, RB, "0", "0", "1", OPEN_PRICE, LOTS)
        order.OrderSysID = ids.next_sys_id("SHFE")
        order.OrderStatus, order.VolumeTraded, order.VolumeTotal = "0", LOTS, 0
        order.StatusMsg = "全部成交报单已提交"
        trade = new_trade(order, OPEN_PRICE, LOTS, NIGHT, RB, ids)
        ledger.fill(order.key, RB, trade)
        ledger.mark(RB, MARK_PRICE)
        ops += [put("orders", (book, broker, investor, order.BrokerOrderSeq), order.to_state()),
                put("trades", (book, broker, investor, "SHFE", trade.TradeID), trade.to_state())]
        ops += [equity_point((book, broker, investor), day, moment, balance) for day, moment, balance in EQUITY]
    return [put("accounts", (book, broker, investor), account.state()), *ops]


@pytest.fixture
def db(tmp_path) -> str:
    """A database with 9999/000001 trading in book sim, and 8888/000001 (no trades) in book replay."""
    path = str(tmp_path / "trader.sqlite")
    with Store.open(path) as store:
        store.write(the_account(store, "sim", "9999", "000001", True) +
                    the_account(store, "replay", "8888", "000001", False))
        assert store.flush(10)
    return path


def stored(path: str, book: str = "sim", broker: str = "9999", investor: str = "000001") -> dict | None:
    with Store.open(path, create=False) as store:
        return store.account(book, broker, investor)


def values(state: dict) -> dict:
    return Ledger.from_state(state["ledger"]).account_values()


def test_list_shows_every_account_of_every_book(db, capsys):
    status, out, err = run(capsys, "account", "list", "--db", db, "--json")
    assert status == 0, err
    rows = {(row["book"], row["BrokerID"], row["InvestorID"]): row for row in json.loads(out)}
    assert set(rows) == {("sim", "9999", "000001"), ("replay", "8888", "000001")}
    trading = rows[("sim", "9999", "000001")]
    assert trading["Balance"] == pytest.approx(BALANCE)
    assert trading["positions"] == 1 and rows[("replay", "8888", "000001")]["positions"] == 0
    assert rows[("replay", "8888", "000001")]["Balance"] == 10_000_000
    status, out, _ = run(capsys, "account", "list", "--db", db, "--book", "replay")
    assert status == 0 and "8888/000001" in out and "9999/000001" not in out and "10,000,000.00" in out


def test_show_prints_money_positions_orders_and_trades_of_the_day(db, capsys):
    status, out, err = run(capsys, "account", "show", "9999/000001", "--db", db, "--json")
    assert status == 0, err
    shown = json.loads(out)
    assert shown["book"] == "sim" and shown["TradingDay"] == DAY
    assert shown["account"]["PositionProfit"] == pytest.approx(POSITION_PROFIT)
    assert shown["account"]["Commission"] == pytest.approx(COMMISSION)
    (position,) = shown["positions"]
    assert (position["InstrumentID"], position["PosiDirection"], position["Position"]) == ("rb2701", "2", LOTS)
    (order,) = shown["orders"]
    (trade,) = shown["trades"]
    assert order["OrderStatus"] == "0" and order["VolumeTraded"] == LOTS
    assert (trade["Price"], trade["Volume"], trade["TradeTime"]) == (OPEN_PRICE, LOTS, "21:05:01")
    status, out, _ = run(capsys, "account", "show", "9999/000001", "--db", db)
    assert status == 0
    balance = next(line for line in out.splitlines() if line.split()[0] == "Balance")
    assert balance.split()[1] == f"{BALANCE:,.2f}"
    assert "positions (1)" in out and "orders (1)" in out and "trades (1)" in out and "rb2701" in out
    status, out, _ = run(capsys, "account", "show", "9999/000001", "--db", db, "--day", "20261119", "--json")
    assert status == 0 and json.loads(out)["orders"] == [] and json.loads(out)["trades"] == []


def test_an_account_is_named_by_investor_or_broker_and_must_be_one(db, capsys):
    status, _, err = run(capsys, "account", "show", "000001", "--db", db)
    assert status == 2
    assert "several accounts" in err and "9999/000001 in book 'sim'" in err and "8888/000001 in book 'replay'" in err
    assert run(capsys, "account", "show", "000001", "--db", db, "--book", "replay")[0] == 0
    assert run(capsys, "account", "show", "8888/000001", "--db", db)[0] == 0
    status, _, err = run(capsys, "account", "show", "7777/000001", "--db", db)
    assert status == 2 and "no account '7777/000001'" in err and "9999/000001 (sim)" in err
    status, _, err = run(capsys, "account", "show", "000001", "--db", db, "--book", "nobook")
    assert status == 2 and "no book 'nobook'" in err and "replay, sim" in err
    status, _, err = run(capsys, "account", "show", "a/b/c", "--db", db)
    assert status == 2 and "'a/b/c'" in err and "BrokerID/InvestorID" in err


def test_deposit_and_withdraw_change_ctp_s_members_and_keep_the_counter_s_state(db, capsys):
    before = stored(db)
    status, out, err = run(capsys, "account", "deposit", "9999/000001", "5000", "--db", db)
    assert status == 0, err
    after = stored(db)
    assert values(after)["Deposit"] == 5000
    assert values(after)["Balance"] == pytest.approx(values(before)["Balance"] + 5000)
    assert values(after)["Available"] == pytest.approx(values(before)["Available"] + 5000)
    assert {k: v for k, v in after.items() if k != "ledger"} == {k: v for k, v in before.items() if k != "ledger"}
    assert f"Balance {values(after)['Balance']:,.2f}" in out
    with Store.open(db, create=False) as store:  # the equity curve shows the money moving in
        day, _, balance = store.equity("sim", "9999", "000001")[-1]
    assert (day, balance) == (DAY, pytest.approx(values(before)["Balance"] + 5000))
    status, _, err = run(capsys, "account", "withdraw", "9999/000001", "1500.5", "--db", db)
    assert status == 0, err
    assert values(stored(db))["Withdraw"] == 1500.5
    assert values(stored(db))["Balance"] == pytest.approx(values(before)["Balance"] + 5000 - 1500.5)


def test_a_withdrawal_above_the_quota_is_refused_and_changes_nothing(db, capsys):
    before = stored(db)
    quota = values(before)["WithdrawQuota"]
    status, _, err = run(capsys, "account", "withdraw", "9999/000001", f"{quota + 1:.2f}", "--db", db)
    assert status == 1 and "quota" in err and f"{quota:.2f}" in err
    assert stored(db) == before


@pytest.mark.parametrize("amount", ["-5", "0", "abc", "nan", "1e16"])
def test_a_bad_amount_is_a_usage_error_naming_it(db, capsys, amount):
    before = stored(db)
    status, _, err = run(capsys, "account", "deposit", "9999/000001", amount, "--db", db)
    assert status == 2 and repr(amount) in err and "expected a number" in err
    assert stored(db) == before


def test_reset_needs_yes_or_a_typed_confirmation(db, tmp_path):
    before = stored(db)
    refused = ctpshim("account", "reset", "9999/000001", "--db", db, stdin=subprocess.DEVNULL)
    assert refused.returncode == 2 and "no terminal" in refused.stderr and "--yes" in refused.stderr
    assert stored(db) == before
    for typed, status in (("no\n", 1), ("yes\n", 0)):
        leader, follower = pty.openpty()
        try:
            os.write(leader, typed.encode())
            result = ctpshim("account", "reset", "9999/000001", "--db", db, stdin=follower)
        finally:
            os.close(follower)
            os.close(leader)
        assert result.returncode == status, result.stderr
        assert "Type 'yes'" in result.stdout
        assert (stored(db) == before) is (typed == "no\n")
    with Store.open(db, create=False) as store:
        assert store.orders("sim", "9999", "000001") == [] and store.trades("sim", "9999", "000001") == []
        assert store.equity("sim", "9999", "000001") == []
        assert store.account("replay", "8888", "000001") is not None  # the other account is untouched


def test_reset_yes_deletes_the_account(db, capsys):
    status, out, err = run(capsys, "account", "reset", "000001", "--book", "sim", "--yes", "--db", db)
    assert status == 0, err
    assert "reset" in out
    assert stored(db) is None
    status, _, err = run(capsys, "account", "show", "9999/000001", "--db", db)
    assert status == 2 and "no account" in err


def test_export_writes_the_trades_with_ctp_member_names(db, tmp_path, capsys):
    target = tmp_path / "trades.csv"
    status, out, err = run(capsys, "account", "export", "9999/000001", "--trades", str(target), "--db", db)
    assert status == 0, err
    assert "1 trades" in out
    with open(target, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
    assert tuple(reader.fieldnames) == TRADE_MEMBERS
    (row,) = rows
    assert (row["InstrumentID"], row["Direction"], row["OffsetFlag"], float(row["Price"]), int(row["Volume"])) == \
        ("rb2701", "0", "0", OPEN_PRICE, LOTS)
    assert row["TradeID"].strip() and len(row["TradeID"]) == 12  # CTP's right-aligned ids survive
    empty = tmp_path / "none.csv"
    assert run(capsys, "account", "export", "8888/000001", "--trades", str(empty), "--db", db)[0] == 0
    assert empty.read_text(encoding="utf-8").splitlines() == [",".join(TRADE_MEMBERS)]
    status, _, err = run(capsys, "account", "export", "9999/000001", "--trades", str(tmp_path / "no" / "x.csv"),
                         "--db", db)
    assert status == 2 and "cannot write" in err


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict] = []
        self.rows = 0
        self.body = False

    def handle_starttag(self, tag, attrs):
        if tag == "polyline":
            self.lines.append(dict(attrs))
        elif tag == "tbody":
            self.body = True
        elif tag == "tr" and self.body:
            self.rows += 1


def test_report_draws_the_stored_equity_and_lists_the_trades(db, tmp_path, capsys):
    from ctpshim.tools import report

    target = tmp_path / "report.html"
    status, out, err = run(capsys, "account", "report", "9999/000001", "-o", str(target), "--db", db)
    assert status == 0, err
    assert "3 equity points" in out
    page = _Page()
    page.feed(target.read_text(encoding="utf-8"))
    equity = page.lines[0]
    low, high = float(equity["data-low"]), float(equity["data-high"])
    assert (low, high) == (9_990_000.0, BALANCE)
    ys = [float(pair.split(",")[1]) for pair in equity["points"].split()]
    read_back = [high - (y - report.PLOT_TOP) / report.PLOT_HEIGHT * (high - low) for y in ys]
    assert read_back == pytest.approx([balance for _, _, balance in EQUITY], abs=1.0)
    assert page.rows == 1
    # money paid in shows on the curve but is no profit: the report's profit stays what trading made
    profit = f"profit {EQUITY[-1][2] - EQUITY[0][2]:,.2f}"
    assert profit in out
    assert run(capsys, "account", "deposit", "9999/000001", "250000", "--db", db)[0] == 0
    status, out, err = run(capsys, "account", "report", "9999/000001", "-o", str(target), "--db", db)
    assert status == 0, err
    assert profit in out and "4 equity points" in out


def test_a_missing_corrupt_foreign_or_locked_database_is_a_clear_error_and_nothing_changes(db, tmp_path, capsys):
    missing = tmp_path / "sub" / "none.sqlite"
    status, _, err = run(capsys, "account", "list", "--db", str(missing))
    assert status == 2 and "no such database" in err and not (tmp_path / "sub").exists()
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 16)
    status, _, err = run(capsys, "account", "list", "--db", str(corrupt))
    assert status == 2 and str(corrupt) in err and "Traceback" not in err
    assert corrupt.read_bytes() == b"SQLite format 3\x00" + bytes(range(256)) * 16
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as other:
        other.execute("CREATE TABLE t (x)")
    status, _, err = run(capsys, "account", "list", "--db", str(foreign))
    assert status == 2 and "another program" in err
    assert run(capsys, "account", "list", "--db", "memory")[0] == 2


HOLDER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("SELECT count(*) FROM accounts").fetchall()
if sys.argv[2] == "write":
    connection.execute("BEGIN IMMEDIATE")
print("open", flush=True)
sys.stdin.readline()
"""


class Holder:
    """Another process with the database open (reading, or in the middle of a write)."""

    def __init__(self, path: str, mode: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", HOLDER, path, mode], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)

    def __enter__(self) -> "Holder":
        readable, _, _ = select.select([self.process.stdout], [], [], 20.0)
        assert readable and self.process.stdout.readline().strip() == "open"
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.stdin.write("\n")
        self.process.stdin.close()
        self.process.wait(timeout=20)
        self.process.stdout.close()


@pytest.mark.parametrize("mode", ["read", "write"])
def test_changes_are_refused_while_another_process_has_the_database_open(db, capsys, mode):
    before = stored(db)
    with Holder(db, mode):
        for args in (("deposit", "9999/000001", "10"), ("withdraw", "9999/000001", "10"),
                     ("reset", "9999/000001", "--yes")):
            status, _, err = run(capsys, "account", *args, "--db", db, "--wait", "0.2")
            assert status == 1 and "another process has" in err and "stop it" in err, (args, err)
        status, out, err = run(capsys, "account", "show", "9999/000001", "--db", db, "--json", "--wait", "0.2")
        assert status == 0 and "what it has stored so far" in err and json.loads(out)["trades"]
    assert stored(db) == before
    assert run(capsys, "account", "deposit", "9999/000001", "10", "--db", db)[0] == 0  # free again


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


def test_the_report_s_progress_bar_shows_on_a_terminal_only():
    import io

    from ctpshim.tools.commands.account import LateProgress

    quiet = io.StringIO()
    progress = LateProgress("report", after=0.0, stream=quiet)
    progress(1, 2)
    progress.close()
    assert quiet.getvalue() == ""  # a pipe or a log gets no bar
    leader, follower = pty.openpty()
    try:
        with open(follower, "w", closefd=False) as terminal:
            progress = LateProgress("report", after=0.0, stream=terminal)
            progress(1, 2)
            progress.close()
        readable, _, _ = select.select([leader], [], [], 5.0)  # bounded: a bar never drawn fails, not hangs
        shown = os.read(leader, 65536).decode(errors="replace") if readable else ""
    finally:
        os.close(follower)
        os.close(leader)
    assert "report" in shown
    leader, follower = pty.openpty()
    try:
        with open(follower, "w", closefd=False) as terminal:
            progress = LateProgress("report", after=3600.0, stream=terminal)  # work that ends quickly: no bar
            progress(1, 2)
            progress.close()
            assert progress.bar is None
    finally:
        os.close(follower)
        os.close(leader)


def test_an_account_state_this_version_cannot_read_is_a_clear_error(db, capsys):
    with Store.open(db, create=False) as store:
        store.write([put("accounts", ("sim", "9999", "000001"), {"ledger": {"a member of a newer version": 1}})])
        assert store.flush(10)
    for args in (("list",), ("show", "9999/000001"), ("deposit", "9999/000001", "1")):
        status, _, err = run(capsys, "account", *args, "--db", db)
        assert status == 2 and "9999/000001" in err and "cannot be read by this version" in err, (args, err)
        assert "Traceback" not in err


def test_what_a_real_program_did_on_the_counter_is_what_the_command_shows(tmp_path, capsys):
    from pathlib import Path

    program = Path(__file__).parents[1] / "programs" / "openctp_td_program.py"
    db = tmp_path / "trader.sqlite"
    front = f"replay://?speed=max&trader.db={db}&trader.flow_control=false"
    ran = ctpshim("run", "--front", front, str(program), "ru1901", cwd=str(tmp_path))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    lines = ran.stdout.splitlines()
    traded = [line.split(maxsplit=1)[1] for line in lines if line.startswith("trade: ")]
    after = next(line for line in lines if line.startswith("account after: ")).split()
    said = {after[i]: float(after[i + 1]) for i in range(2, len(after) - 1, 2) if after[i] in ("margin", "commission")}
    status, out, err = run(capsys, "account", "show", "9999/000001", "--db", str(db), "--json")
    assert status == 0, err
    shown = json.loads(out)
    assert shown["book"] == "replay" and len(shown["trades"]) == len(traded) >= 1
    for trade, line in zip(shown["trades"], traded):  # the program's own line per OnRtnTrade
        assert line.startswith(repr(trade["TradeID"]))
        assert f"{trade['Price']:.2f} {trade['Volume']} {trade['TradeDate']} {trade['TradeTime']}" in line
    assert shown["account"]["CurrMargin"] == pytest.approx(said["margin"], abs=1e-6)
    assert shown["account"]["Commission"] == pytest.approx(said["commission"], abs=1e-6)
    target = tmp_path / "trades.csv"
    assert run(capsys, "account", "export", "000001", "--trades", str(target), "--db", str(db))[0] == 0
    with open(target, newline="", encoding="utf-8") as file:
        assert [row["TradeID"] for row in csv.DictReader(file)] == [t["TradeID"] for t in shown["trades"]]
