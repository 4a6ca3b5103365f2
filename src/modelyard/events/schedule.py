"""Schedule expressions of EventBridge rules: ``rate(...)`` and six-field ``cron(...)``, UTC.

``parse_schedule`` checks an expression the way EventBridge does and raises
ValidationException "Parameter ScheduleExpression is not valid." otherwise. A parsed
schedule answers ``next_after(t)``: the first firing time strictly after ``t`` (epoch
seconds). Rates count from an anchor (the time the rule was created or enabled); cron
expressions fire at whole minutes.

Cron fields, as EventBridge defines them: minutes (0-59), hours (0-23), day-of-month
(1-31, with ``L`` for the month's last day and ``nW`` for the weekday nearest day n),
month (1-12 or JAN-DEC), day-of-week (1-7 with 1 = Sunday, or SUN-SAT; ``nL`` the last
such weekday of the month, ``n#k`` the k-th one), year (1970-2199). ``,`` lists, ``-``
ranges, ``*`` every value, ``/`` steps; one of day-of-month and day-of-week must be ``?``.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ..api.errors import validation_error

_INVALID = "Parameter ScheduleExpression is not valid."
_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS = {name: index for index, name in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}
_DAYS = {name: index for index, name in enumerate(
    ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), 1)}
_LAST_YEAR = 2199


class Schedule:
    """A parsed schedule expression."""

    expression: str

    def next_after(self, after: float, anchor: float) -> float | None:
        """The first firing time strictly after ``after``; None when there is none."""
        raise NotImplementedError


@dataclass(frozen=True)
class RateSchedule(Schedule):
    expression: str
    seconds: int

    def next_after(self, after: float, anchor: float) -> float | None:
        if after < anchor:
            return anchor + self.seconds
        periods = int((after - anchor) // self.seconds) + 1
        return anchor + periods * self.seconds


@dataclass(frozen=True)
class CronSchedule(Schedule):
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    months: frozenset[int]
    years: frozenset[int]
    day_of_month: str  # the field's text; "?" when day-of-week decides
    day_of_week: str

    def next_after(self, after: float, anchor: float) -> float | None:
        start = datetime.fromtimestamp(after, tz=timezone.utc).replace(second=0, microsecond=0)
        start += timedelta(minutes=1)
        day = start.date()
        while day.year <= _LAST_YEAR:
            if day.year not in self.years:
                later = [year for year in self.years if year > day.year]
                if not later:
                    return None
                day = day.replace(year=min(later), month=1, day=1)
                continue
            if day.month not in self.months:
                day = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
                continue
            if self._day_matches(day.year, day.month, day.day):
                first = (start.hour, start.minute) if day == start.date() else (0, 0)
                for hour in sorted(self.hours):
                    if hour < first[0]:
                        continue
                    floor = first[1] if hour == first[0] else 0
                    minute = next((m for m in sorted(self.minutes) if m >= floor), None)
                    if minute is not None:
                        moment = datetime(day.year, day.month, day.day, hour, minute,
                                          tzinfo=timezone.utc)
                        return moment.timestamp()
            day += timedelta(days=1)
        return None

    def _day_matches(self, year: int, month: int, day: int) -> bool:
        last = calendar.monthrange(year, month)[1]
        if self.day_of_week == "?":
            return _day_of_month_matches(self.day_of_month, year, month, day, last)
        # Python: Monday = 0; EventBridge: Sunday = 1.
        weekday = (calendar.weekday(year, month, day) + 1) % 7 + 1
        return _day_of_week_matches(self.day_of_week, weekday, day, last)


def parse_schedule(text: str) -> Schedule:
    """Check a ScheduleExpression; ValidationException when EventBridge would refuse it."""
    text = text.strip()
    rate = _RATE.match(text)
    if rate:
        value, unit = int(rate.group(1)), rate.group(2)
        singular = unit.rstrip("s")
        if value <= 0 or (value == 1) != (unit == singular):
            raise validation_error(_INVALID)
        return RateSchedule(text, value * _UNIT_SECONDS[singular])
    cron = _CRON.match(text)
    if not cron:
        raise validation_error(_INVALID)
    fields = cron.group(1).split()
    if len(fields) != 6:
        raise validation_error(_INVALID)
    minutes, hours, day_of_month, months, day_of_week, years = (field.upper() for field in fields)
    if (day_of_month == "?") == (day_of_week == "?"):
        raise validation_error(_INVALID)  # exactly one of them must be "?"
    try:
        if day_of_month != "?":
            _check_day_of_month(day_of_month)
        if day_of_week != "?":
            _check_day_of_week(day_of_week)
        return CronSchedule(
            text,
            minutes=_values(minutes, 0, 59),
            hours=_values(hours, 0, 23),
            months=_values(months, 1, 12, _MONTHS),
            years=_values(years, 1970, _LAST_YEAR),
            day_of_month=day_of_month,
            day_of_week=day_of_week,
        )
    except ValueError:
        raise validation_error(_INVALID) from None


def _number(text: str, low: int, high: int, names: dict[str, int] | None = None) -> int:
    if names and text in names:
        return names[text]
    if not text.isdigit():
        raise ValueError(text)
    value = int(text)
    if not low <= value <= high:
        raise ValueError(text)
    return value


def _values(field: str, low: int, high: int,
            names: dict[str, int] | None = None) -> frozenset[int]:
    """A field of ``,``-separated items, each ``*``, ``n``, ``a-b``, with an optional ``/step``."""
    result: set[int] = set()
    for item in field.split(","):
        base, _, step_text = item.partition("/")
        step = 1
        if step_text:
            step = _number(step_text, 1, high - low + 1 if high > low else 1)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            left, right = base.split("-", 1)
            first, last = _number(left, low, high, names), _number(right, low, high, names)
            if first > last:
                raise ValueError(item)
        else:
            first = _number(base, low, high, names)
            last = high if step_text else first
        result.update(range(first, last + 1, step))
    if not result:
        raise ValueError(field)
    return frozenset(result)


def _check_day_of_month(field: str) -> None:
    for item in field.split(","):
        if item == "L" or re.fullmatch(r"\d{1,2}W", item):
            if item != "L":
                _number(item[:-1], 1, 31)
            continue
        _values(item, 1, 31)


def _check_day_of_week(field: str) -> None:
    for item in field.split(","):
        if "/" in item:
            raise ValueError(item)  # EventBridge's day-of-week takes no steps
        if item == "L":
            continue
        if item.endswith("L"):
            _number(item[:-1], 1, 7, _DAYS)
        elif "#" in item:
            day, _, nth = item.partition("#")
            _number(day, 1, 7, _DAYS)
            _number(nth, 1, 5)
        else:
            _values(item, 1, 7, _DAYS)


def _day_of_month_matches(field: str, year: int, month: int, day: int, last: int) -> bool:
    for item in field.split(","):
        if item == "L":
            if day == last:
                return True
        elif item.endswith("W"):
            if day == _nearest_weekday(year, month, int(item[:-1]), last):
                return True
        elif day in _values(item, 1, 31):
            return True
    return False


def _nearest_weekday(year: int, month: int, target: int, last: int) -> int:
    """The weekday (Mon-Fri) nearest day ``target``, never leaving the month."""
    target = min(target, last)
    weekday = calendar.weekday(year, month, target)  # Monday = 0
    if weekday == 5:  # Saturday: Friday before, or Monday after on the 1st
        return target - 1 if target > 1 else target + 2
    if weekday == 6:  # Sunday: Monday after, or Friday before on the last day
        return target + 1 if target < last else target - 2
    return target


def _day_of_week_matches(field: str, weekday: int, day: int, last: int) -> bool:
    for item in field.split(","):
        if item == "L":
            if weekday == 7:
                return True
        elif item.endswith("L"):
            if weekday == _number(item[:-1], 1, 7, _DAYS) and day + 7 > last:
                return True
        elif "#" in item:
            wanted, _, nth = item.partition("#")
            if weekday == _number(wanted, 1, 7, _DAYS) and (day - 1) // 7 + 1 == int(nth):
                return True
        elif weekday in _values(item, 1, 7, _DAYS):
            return True
    return False
