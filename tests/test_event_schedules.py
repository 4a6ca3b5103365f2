"""Schedule expressions: EventBridge's cron fields, checked against croniter's reading.

croniter (five fields, Sunday = 0) reads the plain expressions; EventBridge's own forms
(``L``, ``W``, ``#``, day-of-week 1-7 with Sunday = 1, a year field) are checked on dates
worked out by hand.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from croniter import croniter

from modelyard.events.schedule import parse_schedule

START = datetime(2026, 12, 1, 10, 42, 30, tzinfo=timezone.utc)

# (EventBridge cron, the same schedule in croniter's five fields)
SAME_AS_CRONITER = [
    ("cron(0 2 ? * SUN *)", "0 2 * * 0"),
    ("cron(0 2 ? * 1 *)", "0 2 * * 0"),
    ("cron(0/15 * * * ? *)", "*/15 * * * *"),
    ("cron(5-40/5 8-17 ? * MON-FRI *)", "5-40/5 8-17 * * 1-5"),
    ("cron(0 18 ? * 2,4,6 *)", "0 18 * * 1,3,5"),
    ("cron(30 6 1,15 * ? *)", "30 6 1,15 * *"),
    ("cron(0 0 1 JAN,JUL ? *)", "0 0 1 1,7 *"),
    ("cron(59 23 31 * ? *)", "59 23 31 * *"),
    ("cron(* * * * ? *)", "* * * * *"),
]


@pytest.mark.parametrize("expression,classic", SAME_AS_CRONITER)
def test_cron_fires_when_croniter_says(expression, classic):
    schedule = parse_schedule(expression)
    expected = croniter(classic, START)
    moment = START.timestamp()
    for _ in range(25):
        moment = schedule.next_after(moment, START.timestamp())
        assert moment == expected.get_next(float), expression


def fires(expression: str, count: int = 3) -> list[str]:
    schedule, moment, out = parse_schedule(expression), START.timestamp(), []
    for _ in range(count):
        moment = schedule.next_after(moment, START.timestamp())
        out.append(datetime.fromtimestamp(moment, tz=timezone.utc).strftime("%Y-%m-%d %H:%M"))
    return out


def test_eventbridge_only_forms():
    assert fires("cron(0 12 L * ? *)") == ["2026-12-31 12:00", "2027-01-31 12:00",
                                           "2027-02-28 12:00"]
    assert fires("cron(0 9 ? * 6#3 *)") == ["2026-12-18 09:00", "2027-01-15 09:00",
                                            "2027-02-19 09:00"]  # third Friday
    assert fires("cron(0 9 ? * 6L *)") == ["2026-12-25 09:00", "2027-01-29 09:00",
                                           "2027-02-26 09:00"]  # last Friday
    # 1 May 2027 is a Saturday: the nearest weekday in May is Monday the 3rd.
    assert fires("cron(0 9 1W 5 ? *)", 1) == ["2027-05-03 09:00"]
    assert fires("cron(0 10 * * ? 2028)", 1) == ["2028-01-01 10:00"]
    assert fires("cron(0 0 29 2 ? *)", 2) == ["2028-02-29 00:00", "2032-02-29 00:00"]


def test_rates_count_from_their_anchor():
    schedule = parse_schedule("rate(5 minutes)")
    anchor = START.timestamp()
    assert schedule.next_after(anchor, anchor) == anchor + 300
    # Hours later (a clock jump): the next firing keeps the phase and lies in the future.
    later = anchor + 3 * 3600 + 10
    assert schedule.next_after(later, anchor) == anchor + 3 * 3600 + 300
    assert parse_schedule("rate(1 day)").next_after(anchor, anchor) == anchor + 86400


@pytest.mark.parametrize("expression", [
    "cron(0 2 * * SUN *)", "cron(0 2 ? * ? *)", "cron(0 2 ? * SUN)", "cron(60 * * * ? *)",
    "cron(0 24 * * ? *)", "cron(0 0 32 * ? *)", "cron(0 0 ? 13 * *)", "cron(0 0 ? * 8 *)",
    "cron(0 0 ? * 1/2 *)", "cron(0 0 * * ? 1969)", "cron(0 0 10-5 * ? *)", "cron(0 0 ? * 6#6 *)",
    "rate(1 minutes)", "rate(2 minute)", "rate(0 minutes)", "rate(1 second)", "rate(-1 days)",
    "rate(1.5 hours)", "at(2026-01-01T00:00:00)", "every monday",
])
def test_invalid_expressions_are_refused(expression):
    with pytest.raises(Exception) as raised:
        parse_schedule(expression)
    assert getattr(raised.value, "code", None) == "ValidationException"
    assert raised.value.message == "Parameter ScheduleExpression is not valid."
