"""``ctpshim account ...``: the simulated counter's accounts, from its SQLite database.

    ctpshim account list [--book B] [--json]
    ctpshim account show ACCOUNT [--day YYYYMMDD] [--json]
    ctpshim account deposit ACCOUNT AMOUNT
    ctpshim account withdraw ACCOUNT AMOUNT
    ctpshim account reset ACCOUNT [--yes]
    ctpshim account export ACCOUNT --trades FILE.csv [--day YYYYMMDD]
    ctpshim account report ACCOUNT -o FILE.html

Every subcommand takes ``--db FILE`` (default: the database ``trader.db`` defaults to,
:func:`ctpshim.broker.settings.default_db`) and ``--book B`` (a set of accounts in it: the
front's scheme unless ``trader.book`` named another).  ACCOUNT is an InvestorID, or
BrokerID/InvestorID when one InvestorID is on several brokers; without ``--book`` the account is
looked for in every book and must be in one.

The account is the counter's own state (:class:`ctpshim.broker.ledger.Ledger`), so what ``show``
prints is what ``ReqQryTradingAccount`` and ``ReqQryInvestorPosition`` answer.  ``deposit`` and
``withdraw`` change the account's Deposit and Withdraw as a bank transfer does (a withdrawal
above the WithdrawQuota is refused) and add a point to its equity curve; ``reset`` deletes the account with its orders, trades,
statements and private flow: the next login opens it again with ``trader.balance``.  These three
are refused while another process has the database open (a running counter keeps its own copy of
the accounts and would write it back over the change: :func:`open_elsewhere`; the check is made
once, before the change, so a program started during it is not seen); the others read what was
stored so far.

Exit status: 0 done; 1 refused (a withdrawal above the WithdrawQuota, a reset not confirmed, the
database open in another process); 2 usage: a bad argument, an unknown account, a database that
does not exist, is corrupt, is not the counter's or is locked (nothing is changed then).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, TextIO

from ...fronts.url import number
from . import COMMANDS, argument

if TYPE_CHECKING:
    from ...broker.ledger import Ledger
    from ...broker.store import Store

HELP = COMMANDS["account"]
USAGE = __doc__.split("\n\n")[1]  # the usage lines at the top of this docstring
MAX_AMOUNT = 1e15
EXIT_REFUSED, EXIT_USAGE = 1, 2
CONFIRM_WORD = "yes"
PROGRESS_AFTER = 0.5  # seconds of work before a progress bar appears
LOCK_WAIT = 5.0  # seconds a change waits for another process's write lock
COMMIT_GRACE = 10.0  # seconds past the lock wait before a commit counts as stuck

SHOWN_ACCOUNT = (  # CThostFtdcTradingAccountField members `show` prints, in its order
    "PreBalance", "Deposit", "Withdraw", "CloseProfit", "PositionProfit", "Commission", "Balance",
    "CurrMargin", "FrozenMargin", "FrozenCommission", "Available", "WithdrawQuota",
)
SHOWN_POSITION = ("InstrumentID", "PosiDirection", "HedgeFlag", "PositionDate", "Position", "YdPosition",
                    "TodayPosition", "OpenCost", "PositionCost", "UseMargin", "PositionProfit", "CloseProfit")
SHOWN_ORDER = ("InsertTime", "InstrumentID", "Direction", "CombOffsetFlag", "LimitPrice", "VolumeTotalOriginal",
                 "VolumeTraded", "OrderStatus", "OrderSysID", "OrderRef", "StatusMsg")
SHOWN_TRADE = ("TradeTime", "InstrumentID", "Direction", "OffsetFlag", "Price", "Volume", "TradeID", "OrderSysID")


class AccountError(Exception):
    """A usage error of ``ctpshim account``: the message names the bad value and what is valid."""


@dataclass(frozen=True)
class AccountName:
    """ACCOUNT as given: an InvestorID, with the BrokerID when it was given as BrokerID/InvestorID."""

    BrokerID: str | None
    InvestorID: str


@dataclass(frozen=True)
class Found:
    """An account found in the database, with its state."""

    book: str
    BrokerID: str
    InvestorID: str
    state: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.BrokerID}/{self.InvestorID} in book {self.book!r}"


def account_name(text: str) -> AccountName:
    """Parse ACCOUNT: ``InvestorID`` or ``BrokerID/InvestorID``."""
    parts = text.strip().split("/")
    if len(parts) > 2 or not all(part.strip() for part in parts):
        raise ValueError("expected an InvestorID or BrokerID/InvestorID, e.g. 9999/000001")
    if len(parts) == 1:
        return AccountName(None, parts[0].strip())
    return AccountName(parts[0].strip(), parts[1].strip())


def trading_day(text: str) -> str:
    """A trading day as CTP writes it, YYYYMMDD (a real date)."""
    from ...ctp.calendar import parse_day

    value = text.strip()
    try:
        parse_day(value)
    except ValueError:
        raise ValueError("expected a trading day as YYYYMMDD, e.g. 20261120") from None
    return value


# -- the database -----------------------------------------------------------------------------------

def open_store(path: str, wait: float = LOCK_WAIT) -> Store:
    """The store at ``path``, which must exist (a command never creates a database); a change
    waits up to ``wait`` seconds for another process's lock."""
    from ...broker.settings import MEMORY

    if path.strip().lower() == MEMORY:
        raise AccountError(f"--db {path}: an in-memory database ends with its program; name the SQLite file "
                           "a program traded on (its trader.db)")
    if not os.path.exists(path):
        raise AccountError(f"{path}: no such database (the counter creates it at a program's first login; "
                           "give another with --db)")
    from ...broker.store import Store, StoreError

    try:
        return Store.open(path, create=False, timeout=wait)
    except StoreError as exc:
        raise AccountError(str(exc)) from None


WAL_INDEX_DMS_BYTE = 128  # the -shm byte every open connection holds a shared lock on (walformat.html, DMS)


def open_elsewhere(path: str) -> bool:
    """Whether another process has the SQLite database ``path`` open (a program trading on it).

    In WAL mode every connection keeps a shared POSIX lock on one byte of the ``-shm`` file while
    it is open (SQLite's "dead man switch", walformat.html); an exclusive lock on it is granted only
    when no other process holds one.  Call this before this process opens the database: closing
    the probe's descriptor drops every POSIX lock this process holds on the file.  Without POSIX
    locks (Windows) the answer is False."""
    try:
        import fcntl
    except ImportError:
        return False
    try:
        descriptor = os.open(path + "-shm", os.O_RDWR)
    except OSError:  # no -shm file: no connection is open
        return False
    try:
        fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, WAL_INDEX_DMS_BYTE)
    except OSError:
        return True
    finally:
        os.close(descriptor)
    return False


def find(store: Store, who: AccountName, book: str | None) -> Found:
    """The one account ``who`` names (in ``book``, else in any book)."""
    books = [book] if book is not None else list(store.books())
    if book is not None and book not in store.books():
        raise AccountError(f"no book {book!r} in {store.path}; books: {', '.join(store.books()) or 'none'}")
    matches = [(b, broker, investor) for b in books for broker, investor in _account_keys(store, b)
               if investor == who.InvestorID and who.BrokerID in (None, broker)]
    if not matches:
        known = ", ".join(f"{broker}/{investor} ({b})" for b in books for broker, investor in _account_keys(store, b))
        wanted = who.InvestorID if who.BrokerID is None else f"{who.BrokerID}/{who.InvestorID}"
        raise AccountError(f"no account {wanted!r} in {store.path}; accounts: {known or 'none'}")
    if len(matches) > 1:
        listing = ", ".join(f"{broker}/{investor} in book {b!r}" for b, broker, investor in matches)
        raise AccountError(f"{who.InvestorID!r} names several accounts ({listing}); "
                           "give BrokerID/InvestorID and/or --book")
    b, broker, investor = matches[0]
    return Found(b, broker, investor, store.account(b, broker, investor))


def _account_keys(store: Store, book: str) -> list[tuple[str, str]]:
    return [(row["BrokerID"], row["InvestorID"]) for row in store.accounts(book)]


LEDGER = "ledger"  # the account state's member holding Ledger.to_state() (broker.counter.Account.state)


def ledger_of(state: dict[str, Any], where: str) -> Ledger:
    """The Ledger of an account state the counter stored; a state this version cannot read is an
    :class:`AccountError` naming the account."""
    from ...broker.ledger import Ledger

    try:
        return Ledger.from_state(state[LEDGER])
    except (KeyError, TypeError, ValueError) as exc:
        raise AccountError(f"{where}: the stored account cannot be read by this version of ctpshim "
                           f"({type(exc).__name__}: {exc})") from None


CASH = "cash"  # an equity point's money moved in (negative: out); ctpshim.tools.report.EquityPoint.cash


def save(store: Store, found: Found, ledger: Ledger, cash: float) -> None:
    """Write the account's new ledger (the counter's other members kept) with a point of its equity
    curve (stamped with China's clock) carrying the ``cash`` moved in, and wait for the commit."""
    from ...broker.store import equity_point, put
    from ...ctp import clock

    account = (found.book, found.BrokerID, found.InvestorID)
    values = ledger.account_values()
    state = {**found.state, LEDGER: ledger.to_state()}
    store.write([put("accounts", account, state),
                 equity_point(account, values["TradingDay"], clock.now().strftime("%H:%M:%S"), values["Balance"],
                              {CASH: cash})])
    _committed(store, "the change")


# -- what each subcommand does ---------------------------------------------------------------------

def list_accounts(store: Store, book: str | None) -> list[dict[str, Any]]:
    """Every account of ``book`` (or of every book): balance, available, open position records."""
    rows = []
    for b in [book] if book is not None else store.books():
        for row in store.accounts(b):
            ledger = ledger_of(row["state"], f"{row['BrokerID']}/{row['InvestorID']} in book {b!r}")
            values = ledger.account_values()
            rows.append({"book": b, "BrokerID": row["BrokerID"], "InvestorID": row["InvestorID"],
                         "TradingDay": values.get("TradingDay", ""), "Balance": values["Balance"],
                         "Available": values["Available"],
                         "positions": sum(1 for p in ledger.position_values() if p.get("Position", 0))})
    return rows


def print_list(rows: list[dict[str, Any]], path: str, out: TextIO) -> None:
    """:func:`list_accounts`'s rows as a table."""
    if not rows:
        print(f"{path}: no accounts", file=out)
        return
    print(f"{'book':<10} {'account':<20} {'TradingDay':<10} {'Balance':>18} {'Available':>18} positions", file=out)
    for row in rows:
        print(f"{row['book']:<10} {row['BrokerID'] + '/' + row['InvestorID']:<20} {row['TradingDay']:<10} "
              f"{row['Balance']:>18,.2f} {row['Available']:>18,.2f} {row['positions']:>9}", file=out)


def show(store: Store, found: Found, day: str | None) -> dict[str, Any]:
    """The account's CTP members, its positions, and the orders and trades of ``day`` (default:
    the account's trading day)."""
    from ...broker.orders import Order, Trade

    ledger = ledger_of(found.state, found.name)
    account = ledger.account_values()
    day = day or account.get("TradingDay") or None
    orders = [Order.from_state(state).order_values() for state in store.orders(found.book, found.BrokerID,
                                                                                  found.InvestorID, day)]
    trades = [Trade.from_state(state).trade_values() for state in store.trades(found.book, found.BrokerID,
                                                                                  found.InvestorID, day)]
    return {"book": found.book, "BrokerID": found.BrokerID, "InvestorID": found.InvestorID, "TradingDay": day,
            "account": account, "positions": [p for p in ledger.position_values() if p.get("Position", 0)],
            "orders": orders, "trades": trades}


def print_show(shown: dict[str, Any], out: TextIO) -> None:
    """What :func:`show` found, as text: the money, then positions, orders and trades as tables."""
    account = shown["account"]
    print(f"{shown['BrokerID']}/{shown['InvestorID']}  book {shown['book']}  trading day {shown['TradingDay']}",
          file=out)
    for member in SHOWN_ACCOUNT:
        if member in account:
            print(f"  {member:<17} {account[member]:>20,.2f}", file=out)
    for title, members, rows in (("positions", SHOWN_POSITION, shown["positions"]),
                                 ("orders", SHOWN_ORDER, shown["orders"]),
                                 ("trades", SHOWN_TRADE, shown["trades"])):
        print(f"{title} ({len(rows)})", file=out)
        if rows:
            _table(members, rows, out)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    return value.strip() if isinstance(value, str) else str(value)  # CTP's ids are right-aligned in 12 chars


def _table(members: tuple[str, ...], rows: list[dict[str, Any]], out: TextIO) -> None:
    """A plain text table: numbers right-aligned, text left-aligned."""
    cells = [[_text(row.get(member, "")) for member in members] for row in rows]
    numeric = [all(isinstance(row.get(member), (int, float)) for row in rows) for member in members]
    widths = [max(len(member), *(len(line[i]) for line in cells)) for i, member in enumerate(members)]

    def line(texts: list[str]) -> str:
        return "  " + "  ".join(text.rjust(width) if number else text.ljust(width)
                                for text, width, number in zip(texts, widths, numeric)).rstrip()

    print(line(list(members)), file=out)
    for texts in cells:
        print(line(texts), file=out)


def move_money(store: Store, found: Found, amount: float, withdraw: bool) -> dict[str, Any]:
    """Deposit or withdraw ``amount``; returns the account's members after it.  What the ledger
    refuses (a withdrawal above the WithdrawQuota) raises :class:`Refused`."""
    ledger = ledger_of(found.state, found.name)
    from ...broker.ledger import LedgerError

    try:
        (ledger.withdraw if withdraw else ledger.deposit)(amount)
    except LedgerError as exc:  # the ledger holds the rule (at most the WithdrawQuota)
        raise Refused(f"{found.name}: {exc}") from None
    save(store, found, ledger, -amount if withdraw else amount)
    return ledger.account_values()


class Refused(Exception):
    """What the account's state does not allow (exit status 1)."""


def reset(store: Store, found: Found) -> None:
    """Delete the account and everything it did (orders, trades, statements, private flow, equity)."""
    from ...broker.store import delete_account

    store.write([delete_account(found.book, found.BrokerID, found.InvestorID)])
    _committed(store, "the reset")


def _committed(store: Store, what: str) -> None:
    """Wait for what was written to be committed; a failed commit raises the store's StoreError."""
    if not store.flush(timeout=store.timeout + COMMIT_GRACE):
        raise AccountError(f"{store.path}: {what} was not committed within {store.timeout + COMMIT_GRACE:g} s; "
                           "see `ctpshim account show` for whether it was")


def confirmed(found: Found, yes: bool, stdin: TextIO, out: TextIO) -> bool:
    """``--yes``, or ``yes`` typed at the terminal; with neither a terminal nor ``--yes``,
    :class:`AccountError`."""
    if yes:
        return True
    if not stdin.isatty():
        raise AccountError(f"reset deletes {found.name} with its orders and trades: no terminal to confirm "
                           "on; give --yes to reset without asking")
    print(f"Reset {found.name}? Its orders, trades, statements and positions are deleted. "
          f"Type {CONFIRM_WORD!r} to reset: ", end="", file=out, flush=True)
    return stdin.readline().strip().lower() == CONFIRM_WORD


def export_trades(store: Store, found: Found, path: str, day: str | None) -> int:
    """Write the account's trades (of ``day``, else all) as CSV, one CThostFtdcTradeField member a
    column; returns the number of trades."""
    from ...broker.orders import TRADE_MEMBERS, Trade

    trades = [Trade.from_state(s).trade_values() for s in store.trades(found.book, found.BrokerID,
                                                                          found.InvestorID, day)]
    columns = list(TRADE_MEMBERS)
    try:
        with open(path, "w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, columns)
            writer.writeheader()
            writer.writerows(trades)
    except OSError as exc:
        raise AccountError(f"cannot write {path}: {exc.strerror or exc}") from None
    return len(trades)


def write_report(store: Store, found: Found, path: str, progress: Callable[[int, int], None]) -> dict[str, Any]:
    """Write the HTML report of the account (:mod:`ctpshim.tools.report`); returns its summary."""
    from ...broker.orders import Trade
    from .. import report

    points = [report.EquityPoint(day, moment, balance, float(values.get(CASH, 0.0)))
              for day, moment, balance, values in store.equity_values(found.book, found.BrokerID, found.InvestorID)]
    states = list(store.trades(found.book, found.BrokerID, found.InvestorID, None))
    total = 2 * len(states)  # reading the trades, then rendering their rows
    done = 0
    trades = []
    for state in states:
        trades.append(Trade.from_state(state).trade_values())
        done += 1
        if done % 1000 == 0:
            progress(done, total)

    def rendered(count: int) -> None:
        nonlocal done
        done += count
        progress(done, total)

    title = f"Account {found.BrokerID}/{found.InvestorID} (book {found.book})"
    text = report.render(title, points, trades, rendered)
    try:
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as exc:
        raise AccountError(f"cannot write {path}: {exc.strerror or exc}") from None
    summary = report.summarize(points, trades)
    return {"points": len(points), "trades": summary.trades, "profit": summary.profit,
            "max_drawdown": summary.max_drawdown}


class LateProgress:
    """A rich progress bar on ``stream`` (stderr) that appears only once the work has taken
    ``after`` seconds, and only on a terminal (nothing in a pipe or a log)."""

    def __init__(self, label: str, after: float = PROGRESS_AFTER, stream: TextIO | None = None) -> None:
        self.label = label
        self.after = after
        self.stream = stream if stream is not None else sys.stderr
        self.started = time.monotonic()
        self.bar: Any = None
        self.task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            if time.monotonic() - self.started < self.after or not self.stream.isatty():
                return
            try:
                from rich.console import Console
                from rich.progress import Progress
            except ImportError:
                return
            self.bar = Progress(console=Console(file=self.stream), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=total)
        self.bar.update(self.task, completed=done, total=total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


# -- the command line -------------------------------------------------------------------------------

def add_parser(commands: Any) -> argparse.ArgumentParser:
    from ...broker.settings import default_db

    parser = commands.add_parser("account", help=HELP, description=f"{HELP}.\n\n{USAGE}",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=default_db(),
                        help="the counter's SQLite file (default %(default)s: trader.db's default)")
    common.add_argument("--book", help="the book (default: the one holding ACCOUNT; list: every book)")
    common.add_argument("--wait", type=argument(number(0, 3600)), default=LOCK_WAIT, metavar="SECONDS",
                        help="how long a change waits for another process's lock (default %(default)g)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    who = argparse.ArgumentParser(add_help=False, parents=[common])
    who.add_argument("account", type=argument(account_name), metavar="ACCOUNT",
                     help="InvestorID, or BrokerID/InvestorID")
    day = argparse.ArgumentParser(add_help=False)
    day.add_argument("--day", type=argument(trading_day), help="a trading day, YYYYMMDD")
    amount = argument(number(0, MAX_AMOUNT))

    listing = actions.add_parser("list", parents=[common], help="the accounts: balance, available, positions")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    shown = actions.add_parser("show", parents=[who, day],
                               help="an account's money, positions, and the day's orders and trades")
    shown.add_argument("--json", action="store_true", help="machine-readable output")
    for name, what in (("deposit", "add money (Deposit)"), ("withdraw", "take money out (Withdraw; at most the WithdrawQuota)")):
        moving = actions.add_parser(name, parents=[who], help=what)
        moving.add_argument("amount", type=amount, metavar="AMOUNT", help="yuan")
    resetting = actions.add_parser("reset", parents=[who],
                                   help="delete the account; the next login opens it with trader.balance")
    resetting.add_argument("--yes", action="store_true", help="do not ask (for scripts)")
    exporting = actions.add_parser("export", parents=[who, day], help="the trades as CSV (CTP member names)")
    exporting.add_argument("--trades", required=True, metavar="FILE.csv", help="the CSV file to write")
    reporting = actions.add_parser("report", parents=[who],
                                   help="an HTML report: equity curve, drawdown, trades")
    reporting.add_argument("-o", "--output", required=True, metavar="FILE.html", help="the HTML file to write")
    return parser


CHANGES = ("deposit", "withdraw", "reset")


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    out = sys.stdout
    args.db = os.path.expanduser(args.db)
    busy = os.path.isfile(args.db) and open_elsewhere(args.db)
    if busy and args.action in CHANGES:
        print(f"ctpshim account {args.action}: another process has {args.db} open (a program trading on it?); "
              "its counter keeps its own copy of the accounts and would write it back over the change: "
              "stop it, then try again", file=sys.stderr)
        return EXIT_REFUSED
    if busy:
        print(f"ctpshim account {args.action}: note: another process has {args.db} open; what is shown is "
              "what it has stored so far", file=sys.stderr)
    try:
        store = open_store(args.db, args.wait)
    except AccountError as exc:
        print(f"ctpshim account {args.action}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return _run(args, store, out)
    except AccountError as exc:
        print(f"ctpshim account {args.action}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Refused as exc:
        print(f"ctpshim account {args.action}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        store.close()


def _run(args: argparse.Namespace, store: Store, out: TextIO) -> int:
    from ...broker.store import StoreError

    try:
        if args.action == "list":
            rows = list_accounts(store, args.book)
            if args.json:
                print(json.dumps(rows, indent=2, ensure_ascii=False), file=out)
            else:
                print_list(rows, args.db, out)
            return 0
        found = find(store, args.account, args.book)
        if args.action == "show":
            shown = show(store, found, args.day)
            if args.json:
                print(json.dumps(shown, indent=2, ensure_ascii=False), file=out)
            else:
                print_show(shown, out)
        elif args.action in ("deposit", "withdraw"):
            values = move_money(store, found, args.amount, args.action == "withdraw")
            print(f"{found.name}: {args.action} {args.amount:,.2f}; Balance {values['Balance']:,.2f}, "
                  f"Available {values['Available']:,.2f}", file=out)
        elif args.action == "reset":
            if not confirmed(found, args.yes, sys.stdin, out):
                raise Refused(f"{found.name} not reset (type {CONFIRM_WORD!r} to confirm)")
            reset(store, found)
            print(f"{found.name}: reset; the next login opens it with trader.balance", file=out)
        elif args.action == "export":
            count = export_trades(store, found, args.trades, args.day)
            print(f"{found.name}: {count:,} trades -> {args.trades}", file=out)
        elif args.action == "report":
            progress = LateProgress("report")
            try:
                summary = write_report(store, found, args.output, progress)
            finally:
                progress.close()
            print(f"{found.name}: {summary['points']:,} equity points, {summary['trades']:,} trades, "
                  f"profit {summary['profit']:,.2f}, maximum drawdown {summary['max_drawdown']:,.2f} "
                  f"-> {args.output}", file=out)
        return 0
    except StoreError as exc:
        raise AccountError(str(exc)) from None
