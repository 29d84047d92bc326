"""Trading days: the one place that decides which trading day a moment (China time) belongs to.

The current moment comes from :mod:`ctpshim.ctp.clock`; this module only reads the moments it is given.

Holidays come from the ``chinese-calendar`` package (statutory holidays, kept up to date by its
maintainers).  Exchanges trade on weekdays that are not holidays (make-up working Saturdays are
not trading days).  Past the package's range (it raises ``NotImplementedError``) every weekday
counts as a trading day, with one warning.

Supported range: moments from 2004-01-01 (the first year of chinese-calendar's holiday data) to
2099-12-31 (``FIRST_DAY`` and ``LAST_DAY``); past the package's last year of holiday data the
weekday rule above applies.  Simulated clocks never leave this range.

Night sessions: the evening of trading day D belongs to the next trading day; there is no night
session when a holiday lies between D and the next trading day (the evening before a long
holiday), only across the ordinary weekend.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from functools import lru_cache


# The night-session boundaries: from NIGHT_CUTOFF on, a calendar day's activity belongs to the next
# trading day; before EARLY_MORNING_END it is the tail of the previous evening's night session.
# Whole hours: day_part compares hours.
NIGHT_CUTOFF = time(17, 0)
EARLY_MORNING_END = time(3, 0)
# The parts of a calendar day those boundaries make (see day_part).
EARLY_MORNING, DAY_HOURS, EVENING = 0, 1, 2

FIRST_DAY = date(2004, 1, 1)
LAST_DAY = date(2099, 12, 31)

log = logging.getLogger("ctpshim.ctp.calendar")
_warned_years: set[int] = set()


def day_part(moment: datetime) -> int:
    """Which part of its calendar day ``moment`` lies in: ``EARLY_MORNING`` (before
    ``EARLY_MORNING_END``), ``DAY_HOURS`` or ``EVENING`` (from ``NIGHT_CUTOFF`` on).  Moments in the
    same calendar day and part belong to the same trading day."""
    hour = moment.hour
    if hour >= NIGHT_CUTOFF.hour:
        return EVENING
    return EARLY_MORNING if hour < EARLY_MORNING_END.hour else DAY_HOURS


def supported(moment: datetime) -> bool:
    """Whether ``moment`` lies in the calendar's supported range (see the module docstring)."""
    return FIRST_DAY <= moment.date() <= LAST_DAY


@lru_cache(maxsize=4096)
def is_trading_day(day: date) -> bool:
    if day.weekday() >= 5:
        return False
    import chinese_calendar  # lazily: `import ctpshim` stays light

    try:
        return not chinese_calendar.is_holiday(day)
    except NotImplementedError:
        if day.year not in _warned_years:
            _warned_years.add(day.year)
            log.warning(
                "chinese-calendar has no holiday data for %d: counting every weekday of it as a "
                "trading day (upgrade chinese-calendar for that year's holidays)",
                day.year,
            )
        return True


def next_trading_day(day: date) -> date:
    """The first trading day after ``day``."""
    candidate = day + timedelta(days=1)
    while not is_trading_day(candidate):
        candidate += timedelta(days=1)
    return candidate


def previous_trading_day(day: date) -> date:
    candidate = day - timedelta(days=1)
    while not is_trading_day(candidate):
        candidate -= timedelta(days=1)
    return candidate


def has_night_session(day: date) -> bool:
    """Whether the evening of calendar day ``day`` has a night session."""
    if not is_trading_day(day):
        return False
    following = day + timedelta(days=3 if day.weekday() == 4 else 1)
    return next_trading_day(day) == following


def trading_day_of(moment: datetime) -> date:
    """The trading day that market activity at ``moment`` (China time) belongs to."""
    clock = moment.time()
    if clock >= NIGHT_CUTOFF:
        return next_trading_day(moment.date())
    if clock < EARLY_MORNING_END:
        return next_trading_day(moment.date() - timedelta(days=1))
    day = moment.date()
    return day if is_trading_day(day) else next_trading_day(day)


def night_of(moment: datetime) -> date | None:
    """The calendar day whose evening session ``moment`` falls in, or None in day hours."""
    clock = moment.time()
    if clock >= NIGHT_CUTOFF:
        return moment.date()
    if clock < EARLY_MORNING_END:
        return moment.date() - timedelta(days=1)
    return None


def yyyymmdd(day: date) -> str:
    """``day`` as CTP writes dates (TradingDay, ActionDay ...): YYYYMMDD."""
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def _digits(text: object, size: int) -> bool:
    return isinstance(text, str) and len(text) == size and text.isascii() and text.isdigit()


def parse_day(text: str) -> date:
    """The date a CTP date member (YYYYMMDD: TradingDay, ActionDay, OpenDate ...) holds.
    Anything else raises ValueError naming the value."""
    if _digits(text, 8):
        try:
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        except ValueError:
            pass
    raise ValueError(f"date {text!r}: expected a calendar date written YYYYMMDD, e.g. 20261120")


def day_or_none(text: object) -> date | None:
    """:func:`parse_day` of ``text``, or ``None`` when it holds no date (a blank or damaged member)."""
    try:
        return parse_day(text)  # type: ignore[arg-type]
    except ValueError:
        return None


def tick_moment(tick: object) -> datetime:
    """The China time a tick (``CThostFtdcDepthMarketDataField`` or anything with its members)
    stamps: ``ActionDay`` (the calendar date) + ``UpdateTime`` (HH:MM:SS) + ``UpdateMillisec``.
    A missing or malformed member raises ValueError naming it."""
    action_day = getattr(tick, "ActionDay", None)
    try:
        day = parse_day(action_day)  # type: ignore[arg-type]
    except ValueError:
        raise ValueError(f"ActionDay {action_day!r}: expected the calendar date written YYYYMMDD") from None
    clock = getattr(tick, "UpdateTime", None)
    if isinstance(clock, str) and len(clock) == 8 and clock[2] == clock[5] == ":" \
            and _digits(clock[:2] + clock[3:5] + clock[6:], 6):
        millisecond = getattr(tick, "UpdateMillisec", 0) or 0
        if isinstance(millisecond, int) and not isinstance(millisecond, bool) and 0 <= millisecond < 1000:
            try:
                return datetime(day.year, day.month, day.day, int(clock[:2]), int(clock[3:5]), int(clock[6:]),
                                millisecond * 1000)
            except ValueError:
                pass
        else:
            raise ValueError(f"UpdateMillisec {millisecond!r}: expected a whole number from 0 to 999")
    raise ValueError(f"UpdateTime {clock!r}: expected a time of day written HH:MM:SS, e.g. 09:30:00")
