"""Cron expressions with croner-compatible semantics.

The runner's users write schedules against the JavaScript library croner (10.0.1), so this
module reproduces its rules (see ``/work/shared/conformance/cron/README.md``) except for three
croner 10 bugs that are deliberately *not* copied:

1. ``?`` counts as ``*`` for the day-of-month / day-of-week OR rule;
2. a day of month that a month lacks never matches (no overflow into the next month);
3. a result is always strictly after the given instant, even from inside a repeated hour.

Expressions have 5 fields (``minute hour day-of-month month day-of-week``), 6 (seconds first)
or 7 (seconds first, year last), or are one of the nicknames.

The search runs in *wall-clock* time of the job's zone and jumps field by field (year, month,
day, hour, minute, second) using precomputed "next allowed value" tables, so one call costs a
handful of table lookups, not a scan over seconds or minutes.
"""

from __future__ import annotations

import functools
import os
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

__all__ = [
    "CronSchedule",
    "InvalidSchedule",
    "next_runs",
    "parse",
    "resolve_zone",
]


class InvalidSchedule(ValueError):
    """A cron expression (or a time zone name) that cannot be used."""


_UTC = UTC

# Without a year field croner gives up at year 3000 (it returns nothing once the search
# reaches that year), so the last year we can fire in is 2999.
_DEFAULT_LAST_YEAR = 2999

_NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTH_NAMES = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
        start=1,
    )
}
_WEEKDAY_NAMES = {
    name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))
}

_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_in_month(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _DAYS_IN_MONTH[month]


def _weekday(year: int, month: int, day: int) -> int:
    """Day of week with Sunday = 0, as cron counts."""
    return (date(year, month, day).weekday() + 1) % 7


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _FieldSpec:
    name: str
    low: int
    high: int  # highest value accepted in the text (7 for day-of-week)
    size: int  # number of distinct values; also the largest step allowed
    names: dict[str, int] | None = None


_SECOND = _FieldSpec("second", 0, 59, 60)
_MINUTE = _FieldSpec("minute", 0, 59, 60)
_HOUR = _FieldSpec("hour", 0, 23, 24)
_DOM = _FieldSpec("day-of-month", 1, 31, 31)
_MONTH = _FieldSpec("month", 1, 12, 12, _MONTH_NAMES)
# 0 and 7 are both Sunday; '*' and '*/n' cover 0-6 only (7 would just repeat Sunday).
_DOW = _FieldSpec("day-of-week", 0, 7, 7, _WEEKDAY_NAMES)
_YEAR = _FieldSpec("year", 1, 9999, 9999)


def _parse_value(spec: _FieldSpec, text: str, *, range_end: bool = False) -> int:
    if text.isdigit() and text.isascii():
        value = int(text)
    elif spec.names is not None and text.upper() in spec.names:
        value = spec.names[text.upper()]
        # 'SAT-SUN' must mean Saturday to Sunday, not the reversed range 6-0, so Sunday at
        # the end of a range counts as 7 (as croner does).
        if range_end and spec is _DOW and value == 0:
            value = 7
    else:
        kind = {"month": "a month name", "day-of-week": "a weekday name"}.get(spec.name)
        what = f"a number or {kind}" if kind else "a number"
        raise InvalidSchedule(f"{spec.name}: {text!r} is not {what}")
    if not spec.low <= value <= spec.high:
        raise InvalidSchedule(f"{spec.name}: {value} is out of range {spec.low}-{spec.high}")
    return value


def _parse_step(spec: _FieldSpec, text: str, item: str) -> int:
    if not (text.isdigit() and text.isascii()):
        raise InvalidSchedule(f"{spec.name}: step {text!r} in {item!r} is not a number")
    step = int(text)
    if step == 0:
        raise InvalidSchedule(f"{spec.name}: step 0 is not allowed")
    if step > spec.size:
        raise InvalidSchedule(
            f"{spec.name}: step {step} is larger than the field's {spec.size} values"
        )
    return step


def _parse_plain_item(spec: _FieldSpec, item: str) -> Iterable[int]:
    """One list item of numbers, names, ranges and steps: '5', '1-5', '*/5', '1-30/5', '*'."""
    if "/" in item:
        base, _, step_text = item.partition("/")
        step = _parse_step(spec, step_text, item)
        if base in ("*", "?"):
            # croner fills '*/n' over the field's own slots: 0-6 for day-of-week.
            last = spec.low + spec.size - 1
            return range(spec.low, last + 1, step)
        if "-" not in base:
            # croner 10 rejects '0/10' and '/10'; only '*/n' and 'a-b/n' are steps.
            raise InvalidSchedule(
                f"{spec.name}: {item!r} is not allowed; a step needs '*' or a range before it,"
                f" e.g. '*/{step_text}' or '{spec.low}-{spec.low + spec.size - 1}/{step_text}'"
            )
        start, end = _parse_range(spec, base)
        return range(start, end + 1, step)
    if item in ("*", "?"):
        return range(spec.low, spec.low + spec.size)
    if "-" in item:
        start, end = _parse_range(spec, item)
        return range(start, end + 1)
    return (_parse_value(spec, item),)


def _parse_range(spec: _FieldSpec, text: str) -> tuple[int, int]:
    start_text, _, end_text = text.partition("-")
    if not start_text or not end_text or "-" in end_text:
        raise InvalidSchedule(f"{spec.name}: {text!r} is not a valid range")
    start = _parse_value(spec, start_text)
    end = _parse_value(spec, end_text, range_end=True)
    if start > end:
        raise InvalidSchedule(f"{spec.name}: range {text} is reversed (start is after end)")
    return start, end


def _split_items(spec: _FieldSpec, text: str) -> list[str]:
    items = text.split(",")
    if any(not item for item in items):
        raise InvalidSchedule(f"{spec.name}: empty item in list {text!r}")
    if "+" in text:
        raise InvalidSchedule(
            f"{spec.name}: '+' is only allowed at the start of the day-of-week field"
        )
    return items


def _parse_simple_field(spec: _FieldSpec, text: str) -> tuple[int, ...]:
    values: set[int] = set()
    for item in _split_items(spec, text):
        values.update(_parse_plain_item(spec, item))
    return tuple(sorted(values))


@dataclass(frozen=True, slots=True)
class _DomParts:
    days: frozenset[int]
    last: bool
    last_weekday: bool
    nearest_weekdays: frozenset[int]


def _parse_dom(text: str) -> _DomParts:
    days: set[int] = set()
    nearest: set[int] = set()
    last = last_weekday = False
    for item in _split_items(_DOM, text):
        upper = item.upper()
        if upper == "L":
            last = True
        elif upper == "LW":
            last_weekday = True
        elif upper.startswith("L"):
            # croner 10 has no 'L-n' (offset from the last day); refuse it rather than guess.
            raise InvalidSchedule(
                f"day-of-month: {item!r} is not supported; use 'L' (last day) or 'LW'"
            )
        elif upper.endswith("W"):
            number = upper[:-1]
            if not number:
                raise InvalidSchedule("day-of-month: 'W' needs a day number before it, e.g. '15W'")
            if not (number.isdigit() and number.isascii()):
                raise InvalidSchedule(
                    f"day-of-month: {item!r} is not valid; 'W' goes after a single day, e.g. '15W'"
                )
            nearest.add(_parse_value(_DOM, number))
        elif "L" in upper or "W" in upper or "#" in upper:
            raise InvalidSchedule(f"day-of-month: {item!r} is not valid")
        else:
            days.update(_parse_plain_item(_DOM, item))
    return _DomParts(frozenset(days), last, last_weekday, frozenset(nearest))


@dataclass(frozen=True, slots=True)
class _DowParts:
    weekdays: frozenset[int]
    nth: frozenset[tuple[int, int]]
    last: frozenset[int]


def _parse_weekday(text: str, item: str) -> int:
    if not text:
        raise InvalidSchedule(f"day-of-week: {item!r} needs a weekday, e.g. '5L' or 'FRI#2'")
    return _parse_value(_DOW, text) % 7


def _parse_dow(text: str) -> _DowParts:
    weekdays: set[int] = set()
    nth: set[tuple[int, int]] = set()
    last: set[int] = set()
    for item in _split_items(_DOW, text):
        upper = item.upper()
        if "#" in upper:
            day_text, _, nth_text = upper.partition("#")
            weekday = _parse_weekday(day_text, item)
            if nth_text == "L":
                last.add(weekday)
            elif nth_text.isdigit() and nth_text.isascii() and 1 <= int(nth_text) <= 5:
                nth.add((weekday, int(nth_text)))
            else:
                raise InvalidSchedule(
                    f"day-of-week: {item!r}: the occurrence after '#' must be 1-5 or L"
                )
        elif upper.endswith("L"):  # no weekday name ends in L
            last.add(_parse_weekday(upper[:-1], item))
        else:
            # 7 is Sunday, like 0.
            weekdays.update(value % 7 for value in _parse_plain_item(_DOW, item))
    return _DowParts(frozenset(weekdays), frozenset(nth), frozenset(last))


def _next_table(values: Iterable[int], top: int) -> tuple[int, ...]:
    """table[v] = smallest allowed value >= v, or -1; indexes 0..top+1 (top+1 is 'carry')."""
    return _shared_next_table(tuple(values), top)


@functools.lru_cache(maxsize=4096)
def _shared_next_table(values: tuple[int, ...], top: int) -> tuple[int, ...]:
    # Shared between schedules: 100,000 distinct expressions use far fewer distinct field
    # sets, and building a table is most of the cost of parsing one.
    allowed = set(values)
    table = [-1] * (top + 2)
    nxt = -1
    for v in range(top, -1, -1):
        if v in allowed:
            nxt = v
        table[v] = nxt
    return tuple(table)


# How a day is tested; the first three are fast paths for the common shapes.
_DAYS_ALL = 0  # every day
_DAYS_DOM = 1  # plain day-of-month numbers only
_DAYS_DOW = 2  # plain weekdays only
_DAYS_GENERIC = 3  # anything with L, W, #, or the OR / AND combination

_MONTH_CACHE_LIMIT = 512


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A parsed cron expression. Build it with :func:`parse`."""

    expression: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days_of_month: frozenset[int]
    months: tuple[int, ...]
    days_of_week: frozenset[int]  # 0-6, Sunday = 0: every occurrence of these weekdays
    years: tuple[int, ...] | None  # None: any year (up to the search limit, 2999)
    last_day_of_month: bool  # L
    last_weekday_of_month: bool  # LW
    nearest_weekdays: frozenset[int]  # nW
    nth_weekdays: frozenset[tuple[int, int]]  # (weekday, k) for 'weekday#k'
    last_weekdays: frozenset[int]  # '5L' / '5#L'
    dom_is_star: bool  # day-of-month field was literally '*' or '?'
    dow_is_star: bool  # day-of-week field was literally '*' or '?'
    dom_and_dow: bool  # '+' before day-of-week: both must match

    # Derived lookup tables (not part of equality).
    _sec_next: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _min_next: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _hour_next: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _month_next: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _dom_next: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _dow_delta: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _day_kind: int = field(init=False, repr=False, compare=False)
    _last_year: int = field(init=False, repr=False, compare=False)
    _never: bool = field(init=False, repr=False, compare=False)
    _month_days: dict[tuple[int, int], tuple[int, ...]] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        put("_sec_next", _next_table(self.seconds, 59))
        put("_min_next", _next_table(self.minutes, 59))
        put("_hour_next", _next_table(self.hours, 23))
        put("_month_next", _next_table(self.months, 12))
        put("_dom_next", _next_table(self.days_of_month, 31))
        # Days to add from weekday w to reach the next allowed weekday (or 7: none).
        delta = []
        for w in range(7):
            gaps = [(x - w) % 7 for x in self.days_of_week]
            delta.append(min(gaps) if gaps else 7)
        put("_dow_delta", tuple(delta))
        put("_month_days", {})

        dom_special = (
            self.last_day_of_month or self.last_weekday_of_month or bool(self.nearest_weekdays)
        )
        dow_special = bool(self.nth_weekdays or self.last_weekdays)
        # The OR rule: a literal '*' (or '?') in one day field leaves only the other in play.
        if self.dom_is_star and self.dow_is_star:
            kind = _DAYS_ALL
        elif self.dow_is_star and not dom_special:
            kind = _DAYS_DOM
        elif self.dom_is_star and not dow_special:
            kind = _DAYS_DOW
        else:
            kind = _DAYS_GENERIC
        put("_day_kind", kind)
        put("_last_year", self.years[-1] if self.years else _DEFAULT_LAST_YEAR)

        # Cheap proof that a schedule can never fire ('0 0 30 2 *', '0 0 31 4,6 *'), so that
        # next_after answers at once instead of walking month by month to year 2999.
        never = self.years == ()
        dom_required = not self.dom_is_star and (self.dow_is_star or self.dom_and_dow)
        if dom_required and not (self.last_day_of_month or self.last_weekday_of_month):
            candidates = self.days_of_month | self.nearest_weekdays
            longest = max(29 if m == 2 else _DAYS_IN_MONTH[m] for m in self.months)
            if not candidates or min(candidates) > longest:
                never = True
        put("_never", never)

    # -- day matching ----------------------------------------------------------------------

    def _next_day(self, year: int, month: int, day: int) -> int:
        """First matching day >= day in this month, or -1."""
        mdays = _days_in_month(year, month)
        if day > mdays:
            return -1
        kind = self._day_kind
        if kind == _DAYS_ALL:
            return day
        if kind == _DAYS_DOM:
            found = self._dom_next[day]
            return found if 0 < found <= mdays else -1
        if kind == _DAYS_DOW:
            found = day + self._dow_delta[_weekday(year, month, day)]
            return found if found <= mdays else -1
        cache = self._month_days
        days = cache.get((year, month))
        if days is None:
            days = self._compute_month_days(year, month, mdays)
            if len(cache) >= _MONTH_CACHE_LIMIT:
                cache.clear()
            cache[(year, month)] = days
        i = bisect_left(days, day)
        return days[i] if i < len(days) else -1

    def _compute_month_days(self, year: int, month: int, mdays: int) -> tuple[int, ...]:
        first = _weekday(year, month, 1)

        dom: set[int] = {d for d in self.days_of_month if d <= mdays}
        if self.last_day_of_month:
            dom.add(mdays)
        if self.last_weekday_of_month:
            last_wd = (first + mdays - 1) % 7
            dom.add(mdays - 2 if last_wd == 0 else mdays - 1 if last_wd == 6 else mdays)
        for n in self.nearest_weekdays:
            # A month without day n gets no fire (never spill into the next month).
            if n > mdays:
                continue
            wd = (first + n - 1) % 7
            if wd == 6:  # Saturday: the Friday before, unless that leaves the month
                dom.add(3 if n == 1 else n - 1)
            elif wd == 0:  # Sunday: the Monday after, unless that leaves the month
                dom.add(n - 2 if n == mdays else n + 1)
            else:
                dom.add(n)

        dow: set[int] = set()
        if not self.dow_is_star:
            for d in range(1, mdays + 1):
                wd = (first + d - 1) % 7
                if (
                    wd in self.days_of_week
                    or (wd, (d - 1) // 7 + 1) in self.nth_weekdays
                    or (wd in self.last_weekdays and d + 7 > mdays)
                ):
                    dow.add(d)

        if self.dom_is_star and self.dow_is_star:
            days = set(range(1, mdays + 1))
        elif self.dom_is_star:
            days = dow
        elif self.dow_is_star:
            days = dom
        elif self.dom_and_dow:
            days = dom & dow
        else:
            days = dom | dow
        return tuple(sorted(days))

    # -- searching -------------------------------------------------------------------------

    def _next_wall(
        self, y: int, mo: int, d: int, h: int, mi: int, s: int
    ) -> tuple[int, int, int, int, int, int] | None:
        """First matching wall time >= the given one (fields may overflow by one: s=60...)."""
        sec_next = self._sec_next
        min_next = self._min_next
        hour_next = self._hour_next
        month_next = self._month_next
        years = self.years
        last_year = self._last_year
        while True:
            if y > last_year:
                return None
            if years is not None:
                i = bisect_left(years, y)
                if i == len(years):
                    return None
                if years[i] != y:
                    y, mo, d, h, mi, s = years[i], 1, 1, 0, 0, 0
            found = month_next[mo]
            if found < 0:
                y, mo, d, h, mi, s = y + 1, 1, 1, 0, 0, 0
                continue
            if found != mo:
                mo, d, h, mi, s = found, 1, 0, 0, 0
            found = self._next_day(y, mo, d)
            if found < 0:
                mo, d, h, mi, s = mo + 1, 1, 0, 0, 0
                continue
            if found != d:
                d, h, mi, s = found, 0, 0, 0
            found = hour_next[h]
            if found < 0:
                d, h, mi, s = d + 1, 0, 0, 0
                continue
            if found != h:
                h, mi, s = found, 0, 0
            found = min_next[mi]
            if found < 0:
                h, mi, s = h + 1, 0, 0
                continue
            if found != mi:
                mi, s = found, 0
            found = sec_next[s]
            if found < 0:
                mi, s = mi + 1, 0
                continue
            return y, mo, d, h, mi, found

    def next_after(self, after: datetime, tz: tzinfo) -> datetime | None:
        """The first fire time strictly after ``after`` (an aware datetime), in zone ``tz``.

        Returns None when the schedule never fires again (its last year has passed, a date
        such as 30 February, or the search limit of year 2999 without a year field).
        """
        if after.tzinfo is None or after.utcoffset() is None:
            raise ValueError("after must be a timezone-aware datetime")
        if self._never:
            return None
        after_utc = after.astimezone(_UTC)
        # Search in wall time, from one whole second after the wall reading of `after`
        # (fractions dropped, as croner does). The wall reading of a real instant is real,
        # even inside a repeated hour, so this is a sound starting point.
        local = after.astimezone(tz)
        wall = (local.year, local.month, local.day, local.hour, local.minute, local.second + 1)
        while True:
            found = self._next_wall(*wall)
            if found is None:
                return None
            y, mo, d, h, mi, s = found
            # fold=0 maps a wall time with the offset in force *before* a transition:
            # - in a repeated hour (fall back) that is the first occurrence, so each wall time
            #   fires once, and the second pass of the hour is silent;
            # - in a gap (spring forward) the non-existent wall time lands "gap length" later,
            #   e.g. 02:30 EST == 03:30 EDT, which is where the job fires. Chaining then resumes
            #   from that real instant (03:30), so the rest of the gap's slots do not fire.
            candidate = datetime(y, mo, d, h, mi, s, tzinfo=tz)
            fire_utc = candidate.astimezone(_UTC)
            if fire_utc > after_utc:
                return fire_utc.astimezone(tz)
            # The first occurrence of this wall time is not after `after`. That happens only
            # when `after` lies in the second pass of a repeated hour (croner 10 would return
            # this past instant: bug 3). Every wall time of the repeated stretch has its first
            # occurrence before `after`, so resume the search where the stretch ends; past it,
            # wall times map to unique instants, all after `after`.
            nxt = datetime(y, mo, d, h, mi, s) + timedelta(seconds=1)
            offset = candidate.utcoffset()
            if offset is not None:
                overlap_end = _overlap_end_wall(after_utc, offset, tz)
                if overlap_end is not None and overlap_end > nxt:
                    nxt = overlap_end
            wall = (nxt.year, nxt.month, nxt.day, nxt.hour, nxt.minute, nxt.second)


def _offset_at(timestamp: int, tz: tzinfo) -> timedelta | None:
    return datetime.fromtimestamp(timestamp, tz).utcoffset()


def _overlap_end_wall(after_utc: datetime, first_offset: timedelta, tz: tzinfo) -> datetime | None:
    """Wall time at which the repeated stretch containing ``after_utc`` ends, or None.

    ``after_utc`` is in the second pass of a fall-back overlap whose first pass had offset
    ``first_offset``. The transition instant T lies in (after - overlap length, after]; find it
    by bisection on whole seconds (transitions are on whole seconds), then the overlap's wall
    readings end at T + first_offset. Returns None if the zone does not look like that, and the
    caller then just steps one second at a time (always correct, only slower).
    """
    second_offset = after_utc.astimezone(tz).utcoffset()
    if second_offset is None or second_offset >= first_offset:
        return None
    span = int((first_offset - second_offset).total_seconds())
    hi = int(after_utc.timestamp())  # floor: T is a whole second <= after
    lo = hi - span
    if _offset_at(lo, tz) != first_offset or _offset_at(hi, tz) == first_offset:
        return None
    while hi - lo > 1:  # invariant: offset(lo) == first_offset != offset(hi)
        mid = (lo + hi) // 2
        if _offset_at(mid, tz) == first_offset:
            lo = mid
        else:
            hi = mid
    return datetime.fromtimestamp(hi, _UTC).replace(tzinfo=None) + first_offset


def _split_fields(expression: str) -> list[str]:
    text = expression.strip()
    if not text:
        raise InvalidSchedule("cron expression is empty")
    if text.startswith("@"):
        nickname = text.lower()
        if nickname == "@reboot":
            raise InvalidSchedule("'@reboot' is not supported: it is not a time schedule")
        if nickname not in _NICKNAMES:
            names = ", ".join(_NICKNAMES)
            raise InvalidSchedule(f"unknown nickname {text!r} (expected one of {names})")
        text = _NICKNAMES[nickname]
    parts = text.split()
    if not 5 <= len(parts) <= 7:
        raise InvalidSchedule(f"expected 5 to 7 fields, got {len(parts)}")
    if len(parts) == 5:
        parts.insert(0, "0")
    return parts


@functools.lru_cache(maxsize=8192)
def parse(expression: str) -> CronSchedule:
    """Parse a cron expression (cached: many jobs share the same expressions).

    Raises InvalidSchedule with a message naming the field and the problem.
    """
    if not isinstance(expression, str):
        raise InvalidSchedule(f"cron expression must be a string, not {type(expression).__name__}")
    parts = _split_fields(expression)
    sec_text, min_text, hour_text, dom_text, month_text, dow_text = parts[:6]

    dow_and = dow_text.startswith("+")
    if dow_and:
        dow_text = dow_text[1:]
        if not dow_text:
            raise InvalidSchedule("day-of-week: '+' needs a day-of-week after it, e.g. '+FRI'")

    # '?' is an alias of '*' everywhere, including for the OR rule (croner 10 bug 1 aside).
    dom_star = dom_text in ("*", "?")
    dow_star = dow_text in ("*", "?")
    dom = _parse_dom(dom_text)
    dow = _parse_dow(dow_text)
    years = None
    if len(parts) == 7 and parts[6] not in ("*", "?"):
        years = _parse_simple_field(_YEAR, parts[6])

    return CronSchedule(
        expression=expression,
        seconds=_parse_simple_field(_SECOND, sec_text),
        minutes=_parse_simple_field(_MINUTE, min_text),
        hours=_parse_simple_field(_HOUR, hour_text),
        days_of_month=dom.days,
        months=_parse_simple_field(_MONTH, month_text),
        days_of_week=dow.weekdays,
        years=years,
        last_day_of_month=dom.last,
        last_weekday_of_month=dom.last_weekday,
        nearest_weekdays=dom.nearest_weekdays,
        nth_weekdays=dow.nth,
        last_weekdays=dow.last,
        dom_is_star=dom_star,
        dow_is_star=dow_star,
        dom_and_dow=dow_and,
    )


# --------------------------------------------------------------------------------------------
# Time zones
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _zone_from_file(path: str, mtime_ns: int) -> tzinfo:
    # mtime_ns is part of the cache key so an edited /etc/localtime is picked up.
    del mtime_ns
    with open(path, "rb") as handle:
        return ZoneInfo.from_file(handle, key=path)


def _zone_from_path(path: str) -> tzinfo | None:
    real = os.path.realpath(path)
    marker = "/zoneinfo/"
    if marker in real:
        # A link into the zone database: use its key, so the zone has its proper name and
        # shares ZoneInfo's own cache.
        key = real.split(marker, 1)[1]
        try:
            return ZoneInfo(key)
        except (ValueError, OSError, KeyError):
            pass
    try:
        return _zone_from_file(real, os.stat(real).st_mtime_ns)
    except (ValueError, OSError):
        return None


def _local_zone() -> tzinfo:
    """The process-local zone, read now (not at import), as a DST-aware zone.

    TZ wins when set (':' prefix allowed, a zone key or an absolute path to a zone file);
    otherwise /etc/localtime. Like the C library, an unusable TZ value or a missing
    /etc/localtime means UTC.
    """
    tz_env = os.environ.get("TZ")
    if tz_env is not None:
        name = tz_env[1:] if tz_env.startswith(":") else tz_env
        if not name:
            return _UTC
        if name.startswith("/"):
            return _zone_from_path(name) or _UTC
        try:
            return ZoneInfo(name)
        except (ValueError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError
            return _UTC
    return _zone_from_path("/etc/localtime") or _UTC


def resolve_zone(name: str | None) -> tzinfo:
    """An IANA zone name to a ZoneInfo; None means the process-local zone (read now)."""
    if name is None:
        return _local_zone()
    try:
        return ZoneInfo(name)
    except (ValueError, OSError, KeyError) as exc:
        # ZoneInfoNotFoundError is a KeyError; malformed keys ('../x', '') raise ValueError.
        raise InvalidSchedule(f"unknown time zone {name!r}") from exc


def next_runs(
    expression: str, *, after: datetime, count: int, tz: str | None = None
) -> list[datetime]:
    """Up to ``count`` fire times, chained: each strictly after the one before it, the first
    strictly after ``after``. ``tz`` None is the process-local zone, read at call time.

    Raises InvalidSchedule for an invalid expression or an unknown zone name.
    """
    schedule = parse(expression)
    zone = resolve_zone(tz)
    runs: list[datetime] = []
    current = after
    for _ in range(count):
        fire = schedule.next_after(current, zone)
        if fire is None:
            break
        runs.append(fire)
        current = fire
    return runs
