"""Settlement prices of the trading day, taken from the ticks the counter observed.

The exchange's rule (SIM_TRADING.md 4.1): the feed's ``SettlementPrice`` when the tick carries a
valid one (after the exchange publishes it); else the ``PreSettlementPrice`` a tick of the next
trading day carries (the exchange's figure, when the day's close was not observed: a restart
across the day end, a recording that stops at 15:00); else the volume-weighted price of the whole trading
day (night session included) on the commodity exchanges, of the last hour on CFFEX (the hour
before that when the last hour had no trade, and so on; the whole day when it traded less
than that); the previous settlement when nothing traded.  When the ticks begin inside the day
(a program started at 14:30), the earliest hour observed counts from the first tick seen, and
the settlement logs that the hour was only partly observed.  The rounding to the tick is
:func:`ctpshim.ctp.products.settlement_price`'s.  A stock settles at its last price.

:class:`SettlementPrices` keeps what it needs per instrument (cumulative volume and turnover,
and for CFFEX their values at the end of each hour counted back from the close), so it is cheap
to call on every tick.  The day-end sequence itself is :meth:`ctpshim.broker.ledger.Ledger.settle`
once per account with :meth:`SettlementPrices.prices`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable

from ..ctp import calendar, products
from ..ctp.market_data import present_price
from .terms import LAST_HOUR_SETTLEMENT_EXCHANGES

HOUR = timedelta(hours=1)
log = logging.getLogger("ctpshim.broker.settlement")



@dataclass
class _Seen:
    """What the ticks of one instrument told so far today."""

    feed: float = 0.0  # the feed's SettlementPrice, 0 until valid
    pre: float = 0.0  # PreSettlementPrice
    last: float = 0.0  # LastPrice
    volume: int = 0  # cumulative Volume of the trading day
    turnover: float = 0.0  # cumulative Turnover of the trading day
    hours: dict[int, tuple[int, float]] = field(default_factory=dict)  # k -> (volume, turnover) at the end of hour k
    first: tuple[int, int, float] | None = None  # (k, volume, turnover) where the hours observed start


class SettlementPrices:
    """The settlement price of every instrument observed on ``trading_day`` (YYYYMMDD; None:
    the first tick's TradingDay).  Ticks of another trading day are ignored."""

    def __init__(self, trading_day: str | None = None) -> None:
        self.trading_day = trading_day
        self._seen: dict[str, _Seen] = {}
        self._close: dict[str, tuple[datetime, int] | None] = {}
        self._next_pre: dict[str, float] = {}  # PreSettlementPrice of a tick of a later trading day

    def reset(self, trading_day: str) -> None:
        """Forget everything: a new trading day begins."""
        if calendar.day_or_none(trading_day) is None:
            raise ValueError(f"trading_day {trading_day!r}: expected YYYYMMDD")
        self.trading_day = trading_day
        self._seen.clear()
        self._close.clear()
        self._next_pre.clear()

    def observe(self, tick: Any) -> bool:
        """Take one ``CThostFtdcDepthMarketDataField`` (or anything with its members); returns
        whether it counted (False for another trading day's tick: of a later day, only its
        PreSettlementPrice is kept, as this day's settlement)."""
        trading_day = getattr(tick, "TradingDay", "")
        if self.trading_day is None and calendar.day_or_none(trading_day) is not None:
            self.trading_day = trading_day
        if trading_day != self.trading_day:
            if self.trading_day and calendar.day_or_none(trading_day) is not None and trading_day > self.trading_day \
                    and present_price(getattr(tick, "PreSettlementPrice", None)):
                self._next_pre[tick.InstrumentID] = present_price(tick.PreSettlementPrice)
            return False
        instrument_id = tick.InstrumentID
        seen = self._seen.get(instrument_id)
        if seen is None:
            seen = self._seen[instrument_id] = _Seen()
        seen.feed = present_price(tick.SettlementPrice) or seen.feed
        seen.pre = present_price(tick.PreSettlementPrice) or seen.pre
        seen.last = present_price(tick.LastPrice) or seen.last
        volume, turnover = int(tick.Volume), float(tick.Turnover)
        if volume < seen.volume or not math.isfinite(turnover):
            return True  # a stale or broken tick: keep the totals already seen
        seen.volume, seen.turnover = volume, turnover
        close = self._close_of(instrument_id)
        if close is not None:
            try:
                moment = calendar.tick_moment(tick)
            except ValueError:
                return True
            hour = max(1, math.ceil((close[0] - moment) / HOUR))
            if seen.first is None:
                # From the day's first hour on, the day's totals start at 0; later, at this tick's.
                seen.first = (hour, 0, 0.0) if hour >= close[1] else (hour, volume, turnover)
            seen.hours[hour] = (volume, turnover)
        return True

    def _close_of(self, instrument_id: str) -> tuple[datetime, int] | None:
        """For a last-hour exchange: the end of the day's last session and the number of the
        day's first hour (hours are counted back from the close, 1 = the last); else None."""
        if instrument_id in self._close:
            return self._close[instrument_id]
        close = None
        info = products.parse_instrument(instrument_id)
        day = calendar.day_or_none(self.trading_day or "")
        if info is not None and day is not None and info.product.exchange in LAST_HOUR_SETTLEMENT_EXCHANGES:
            sessions = products.trading_day_sessions(info.product, day)
            if sessions:
                end = sessions[-1][1]
                close = end, max(1, math.ceil((end - sessions[0][0]) / HOUR))
        self._close[instrument_id] = close
        return close

    def price(self, instrument_id: str, pre_settlement: float) -> float:
        """The settlement price of ``instrument_id`` (``pre_settlement``: its previous one, the
        answer when nothing traded or nothing was observed)."""
        seen = self._seen.get(instrument_id)
        if seen is not None and seen.feed:
            return seen.feed
        if instrument_id in self._next_pre:
            return self._next_pre[instrument_id]
        if seen is None:
            return pre_settlement
        pre = present_price(pre_settlement) or seen.pre
        info = products.parse_instrument(instrument_id)
        if info is None:
            return seen.last or pre  # a stock: its close
        volume, turnover = seen.volume, seen.turnover
        if seen.hours and self._close_of(instrument_id) is not None:
            volume, turnover, partly = _last_traded_hour(seen.hours, volume, turnover, seen.first)
            if partly is not None:
                log.info("%s settles on the volume-weighted price of hour %d before the close, observed only "
                         "from the first tick seen (%d lots)", instrument_id, partly, volume)
        return products.settlement_price(info.product, turnover, volume, pre)

    def prices(self, pre_settlements: dict[str, float] | Iterable[str]) -> dict[str, float]:
        """The settlement price of each instrument: ``pre_settlements`` maps IDs to their previous
        settlement (or lists IDs, whose previous settlement is taken from their ticks)."""
        if isinstance(pre_settlements, dict):
            wanted = pre_settlements
        else:
            wanted = {i: self.pre_settlement(i) for i in pre_settlements}
        return {i: self.price(i, pre) for i, pre in wanted.items()}

    def pre_settlement(self, instrument_id: str) -> float:
        """The PreSettlementPrice the ticks carried (0 when none was seen)."""
        seen = self._seen.get(instrument_id)
        return seen.pre if seen else 0.0

    def to_state(self) -> dict[str, Any]:
        """JSON-able state (:meth:`from_state` rebuilds it), for a restart within the day."""
        return {"trading_day": self.trading_day,
                "seen": {i: {**asdict(s), "hours": [[k, v, t] for k, (v, t) in s.hours.items()]}
                         for i, s in self._seen.items()},
                "next_pre": dict(self._next_pre)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SettlementPrices:
        """The tracker :meth:`to_state` described."""
        tracker = cls(state.get("trading_day"))
        for instrument_id, row in state.get("seen", {}).items():
            row = dict(row)
            hours = {int(k): (int(v), float(t)) for k, v, t in row.pop("hours")}
            first = row.pop("first", None)  # absent in states before it
            first = None if first is None else (int(first[0]), int(first[1]), float(first[2]))
            tracker._seen[instrument_id] = _Seen(**row, hours=hours, first=first)
        tracker._next_pre = {i: float(p) for i, p in state.get("next_pre", {}).items()}
        return tracker


def _last_traded_hour(hours: dict[int, tuple[int, float]], volume: int, turnover: float,
                      first: tuple[int, int, float] | None) -> tuple[int, float, int | None]:
    """(volume, turnover, partly) of the latest hour (counted back from the close) that traded.
    The earliest hour observed starts at ``first`` (the first tick's totals, or 0 when the ticks
    began in the day's first hour); ``partly`` is that hour's number when it is the one taken and
    was observed only from inside it, else None.  The whole day's totals when no hour observed
    traded (the contract traded less than that, SIM_TRADING.md 4.1)."""
    ordered = sorted(hours)  # 1 = the last hour
    for position, hour in enumerate(ordered):
        end_volume, end_turnover = hours[hour]
        earlier = ordered[position + 1:]
        if earlier:
            start_volume, start_turnover = hours[earlier[0]]
        elif first is not None and first[0] == hour:
            start_volume, start_turnover = first[1], first[2]
        else:
            return end_volume, end_turnover, None  # a state from before `first`: the whole day so far
        if end_volume > start_volume:
            partly = hour if not earlier and start_volume else None
            return end_volume - start_volume, end_turnover - start_turnover, partly
    return volume, turnover, None


def next_trading_day(trading_day: str) -> str:
    """The trading day after ``trading_day`` (YYYYMMDD) by the exchange calendar."""
    day = calendar.day_or_none(trading_day)
    if day is None:
        raise ValueError(f"trading_day {trading_day!r}: expected YYYYMMDD")
    return calendar.yyyymmdd(calendar.next_trading_day(day))
