"""How CloudWatch decides a metric alarm's state (pure functions, no storage).

An evaluation at time ``t`` looks at the *evaluation range*: the ``EvaluationPeriods + 2``
most recent complete periods, the newest ending at ``floor(t / Period) * Period``.
(CloudWatch fetches "more data points than Evaluation Periods"; its own table for 3
periods shows 5.) Then, as AWS documents:

- enough real data points (at least ``EvaluationPeriods``): the most recent
  ``EvaluationPeriods`` of them decide, and TreatMissingData does not matter;
- none at all: ``missing`` -> INSUFFICIENT_DATA, ``ignore`` -> keep the state,
  ``breaching`` -> ALARM, ``notBreaching`` -> OK;
- some: every real point counts, and missing ones are filled in as few times as
  possible (``breaching`` / ``notBreaching``); with ``missing`` / ``ignore`` nothing is
  filled: ALARM when ``DatapointsToAlarm`` real points breach, or when there is no
  non-breaching point and the oldest breaching one is at least ``DatapointsToAlarm``
  periods old (AWS's rule against premature transitions; ``ignore`` keeps its state
  there), OK when some point does not breach, else INSUFFICIENT_DATA (``ignore``: keep).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

OK, ALARM, INSUFFICIENT = "OK", "ALARM", "INSUFFICIENT_DATA"
EXTRA_PERIODS = 2
REASON_DATA_LIMIT = 4000  # StateReasonData's length limit
REASON_LIMIT = 1023  # StateReason's
REASON_POINTS = 10  # datapoints a reason lists, newest first

COMPARISONS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}
BAND_COMPARISONS = ("LessThanLowerOrGreaterThanUpperThreshold", "LessThanLowerThreshold",
                    "GreaterThanUpperThreshold")
TREATMENTS = ("breaching", "notBreaching", "ignore", "missing")


@dataclass
class Slot:
    """One period of the evaluation range: its start and its value (None: missing)."""

    start: float
    value: float | None = None
    samples: float | None = None


@dataclass
class Decision:
    """An evaluation's outcome; ``state`` None keeps the current state."""

    state: str | None
    reason: str
    evaluated: list[Slot] = field(default_factory=list)
    breaching: int = 0


def window(now: float, period: int, evaluation_periods: int) -> tuple[float, float]:
    """(start, end) of the evaluation range at ``now``: whole periods, newest complete."""
    end = math.floor(now / period) * period
    return end - (evaluation_periods + EXTRA_PERIODS) * period, end


def next_evaluation(now: float, period: int) -> float:
    """CloudWatch evaluates every minute (every Period for high-resolution alarms)."""
    cadence = min(period, 60)
    return (math.floor(now / cadence) + 1) * cadence


def slots_from_series(start: float, end: float, period: int,
                      series: list[tuple[float, float]],
                      samples: list[tuple[float, float]] | None = None) -> list[Slot]:
    """Place (period start, value) pairs into the range's slots, oldest first."""
    count = int(round((end - start) / period))
    slots = [Slot(start + index * period) for index in range(count)]
    for stamp, value in series:
        index = int(round((stamp - start) / period))
        if 0 <= index < count and value is not None and math.isfinite(value):
            slots[index].value = float(value)
    for stamp, value in samples or ():
        index = int(round((stamp - start) / period))
        if 0 <= index < count:
            slots[index].samples = float(value)
    return slots


def decide(slots: list[Slot], *, evaluation_periods: int, datapoints_to_alarm: int,
           comparison: str, threshold: float, treat_missing: str,
           current_state: str) -> Decision:
    """The state the alarm should be in for these slots (oldest first)."""
    breaches, words = COMPARISONS[comparison]
    n, m = evaluation_periods, datapoints_to_alarm
    present = [slot for slot in slots if slot.value is not None]

    def is_breaching(slot: Slot) -> bool:
        return breaches(slot.value, threshold)  # type: ignore[arg-type]

    if not present:
        periods = f"{n} period{'s' if n != 1 else ''}"
        treated = (f"no datapoints were received for {periods} and {n} missing "
                   f"datapoint{'s were' if n != 1 else ' was'} treated as "
                   f"[{_treatment_label(treat_missing)}].")
        evaluated = slots[-n:]
        if treat_missing == "breaching":
            return Decision(ALARM, f"Threshold Crossed: {treated}", evaluated, n)
        if treat_missing == "notBreaching":
            return Decision(OK, f"Threshold Crossed: {treated}", evaluated, 0)
        if treat_missing == "ignore":
            return Decision(None, "", evaluated)
        return Decision(INSUFFICIENT, f"Insufficient Data: {treated}", evaluated)

    if len(present) >= n:
        evaluated = present[-n:]
        breaching = sum(is_breaching(slot) for slot in evaluated)
        state = ALARM if breaching >= m else OK
        return Decision(state, _crossed(state, evaluated, is_breaching, words, threshold,
                                        n, m, current_state, 0, treat_missing),
                        evaluated, breaching)

    breaching = sum(is_breaching(slot) for slot in present)
    if treat_missing in ("breaching", "notBreaching"):
        fill = n - len(present)
        missing = [slot for slot in slots if slot.value is None][-fill:]
        evaluated = sorted(present + missing, key=lambda slot: slot.start)
        total = breaching + (fill if treat_missing == "breaching" else 0)
        state = ALARM if total >= m else OK
        return Decision(state, _crossed(state, present, is_breaching, words, threshold, n,
                                        m, current_state, fill, treat_missing),
                        evaluated, total)

    not_breaching = len(present) - breaching
    if breaching >= m:
        return Decision(ALARM, _crossed(ALARM, present, is_breaching, words, threshold, n,
                                        m, current_state, 0, treat_missing),
                        present, breaching)
    if not_breaching == 0:
        oldest = next(index for index, slot in enumerate(slots) if slot.value is not None)
        age = len(slots) - oldest  # the newest slot is 1 period old
        if age >= m and treat_missing == "missing":
            return Decision(ALARM, _crossed(ALARM, present, is_breaching, words, threshold,
                                            n, m, current_state, 0, treat_missing),
                            present, breaching)
        if treat_missing == "ignore":
            return Decision(None, "", present, breaching)
        unknown = n - len(present)
        return Decision(INSUFFICIENT, f"Insufficient Data: {unknown} datapoint"
                        f"{'s were' if unknown != 1 else ' was'} unknown.", present, breaching)
    return Decision(OK, _crossed(OK, present, is_breaching, words, threshold, n, m,
                                 current_state, 0, treat_missing), present, breaching)


def _treatment_label(treat_missing: str) -> str:
    return {"notBreaching": "NonBreaching", "breaching": "Breaching",
            "ignore": "Ignore"}.get(treat_missing, "Missing")


def _crossed(state: str, points: list[Slot], is_breaching: Callable[[Slot], bool],
             words: str, threshold: float, n: int, m: int, current_state: str, filled: int,
             treat_missing: str) -> str:
    """AWS's reason text, e.g. "Threshold Crossed: 2 out of the last 3 datapoints [...]
    were greater than the threshold (3.0) (minimum 2 datapoints for OK -> ALARM
    transition)."."""
    real = [slot for slot in points if slot.value is not None]
    chosen = [slot for slot in real if is_breaching(slot) == (state == ALARM)]
    chosen.sort(key=lambda slot: slot.start, reverse=True)
    listed = ", ".join(f"{_number(slot.value)} ({_reason_date(slot.start)})"
                       for slot in chosen[:REASON_POINTS])
    if len(chosen) > REASON_POINTS:
        listed += ", ..."
    verb = "were" if len(chosen) != 1 else "was"
    negation = "" if state == ALARM else "not "
    if n == 1 and m == 1 and not filled:
        text = (f"Threshold Crossed: 1 datapoint [{listed}] {verb} {negation}{words} the "
                f"threshold ({_number(threshold)}).")
    else:
        minimum = m if state == ALARM else n - m + 1
        text = (f"Threshold Crossed: {len(chosen)} out of the last {n} datapoints [{listed}] "
                f"{verb} {negation}{words} the threshold ({_number(threshold)}) (minimum "
                f"{minimum} datapoint{'s' if minimum != 1 else ''} for "
                f"{current_state} -> {state} transition).")
    if filled:
        text = (text[:-1] + f" and {filled} missing datapoint{'s were' if filled != 1 else ' was'}"
                f" treated as [{_treatment_label(treat_missing)}].")
    return text if len(text) <= REASON_LIMIT else text[:REASON_LIMIT - 3] + "..."


def reason_data(*, query_time: float, decision: Decision, period: int, threshold: float,
                statistic: str | None = None, extended_statistic: str | None = None,
                unit: str | None = None, recent: list[Slot] | None = None) -> str:
    """StateReasonData as AWS writes it (a JSON string)."""
    data: dict = {"version": "1.0", "queryDate": format_time(query_time)}
    if decision.evaluated:
        data["startDate"] = format_time(min(slot.start for slot in decision.evaluated))
    if statistic:
        data["statistic"] = statistic
    if extended_statistic:
        data["extendedStatistic"] = extended_statistic
    if unit:
        data["unit"] = unit
    data["period"] = period
    data["recentDatapoints"] = [slot.value for slot in (recent or decision.evaluated)
                                if slot.value is not None]
    data["threshold"] = threshold
    evaluated = []
    for slot in sorted(decision.evaluated, key=lambda item: item.start, reverse=True):
        item: dict = {"timestamp": format_time(slot.start)}
        if slot.samples is not None:
            item["sampleCount"] = slot.samples
        if slot.value is not None:
            item["value"] = slot.value
        evaluated.append(item)
    data["evaluatedDatapoints"] = evaluated
    text = json.dumps(data)
    while len(text) > REASON_DATA_LIMIT and (data["evaluatedDatapoints"]
                                             or data["recentDatapoints"]):
        # StateReasonData holds at most 4,000 characters: drop the oldest points first.
        for key in ("evaluatedDatapoints", "recentDatapoints"):
            if data[key]:
                data[key] = data[key][:-1] if key == "evaluatedDatapoints" else data[key][1:]
        text = json.dumps(data)
    return text


def low_sample_limit(extended_statistic: str) -> float | None:
    """Fewer samples than this in the evaluated periods make a percentile unreliable:
    10 / (1 - p) for p >= 0.5, 10 / p below (AWS's rule); None for other statistics."""
    if not extended_statistic.startswith("p"):
        return None
    try:
        fraction = float(extended_statistic[1:]) / 100.0
    except ValueError:
        return None
    if fraction <= 0.0 or fraction >= 1.0:
        return 10.0
    return 10.0 / (1.0 - fraction) if fraction >= 0.5 else 10.0 / fraction


def format_time(epoch: float) -> str:
    """AWS's alarm timestamps: 2026-12-01T10:01:00.123+0000."""
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _reason_date(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%d/%m/%y %H:%M:%S")


def _number(value: float | None) -> str:
    return "null" if value is None else repr(float(value))
