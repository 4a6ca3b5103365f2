"""CloudWatch Logs: log groups, log streams, and their events.

Jobs and endpoints write here (through ``LogStore.append``), and users read it the way
they read CloudWatch: the SageMaker SDK's ``logs_for_job`` tails a training job's
streams with DescribeLogStreams + GetLogEvents, the AWS CLI filters with
FilterLogEvents. Times on this API are epoch milliseconds (``long`` in the model).

Pagination follows AWS: GetLogEvents hands out ``f/...`` and ``b/...`` tokens naming a
position between two events, and a forward read that finds nothing newer returns the
token it was given, which is how tailers know they have caught up.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..api.context import RequestContext
from ..api.errors import AwsError
from ..store.log_tables import EVENT_OVERHEAD_BYTES, Key, LogEvent, LogGroup, LogStream
from ..store.logs import LogStore

MAX_BATCH_BYTES = 1_048_576
MAX_BATCH_EVENTS = 10_000
MAX_AGE_MS = 14 * 24 * 3600 * 1000  # PutLogEvents rejects events older than 14 days,
MAX_FUTURE_MS = 2 * 3600 * 1000  # or more than 2 hours ahead,
MAX_BATCH_SPAN_MS = 24 * 3600 * 1000  # and accepted events may span at most 24 hours.
DEFAULT_DESCRIBE_LIMIT = 50
DEFAULT_EVENTS_LIMIT = 10_000


def _store(ctx: RequestContext) -> LogStore:
    return LogStore.for_database(ctx.platform.db)


def _now_ms(ctx: RequestContext) -> int:
    return int(ctx.now * 1000)


def invalid_parameter(message: str) -> AwsError:
    return AwsError("InvalidParameterException", message)


# --- log groups ----------------------------------------------------------------------------


def create_log_group(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    _store(ctx).create_group(
        request["logGroupName"],
        now_ms=_now_ms(ctx),
        kms_key_id=request.get("kmsKeyId"),
        tags=request.get("tags"),
        log_group_class=request.get("logGroupClass", "STANDARD"),
        deletion_protection=bool(request.get("deletionProtectionEnabled", False)),
    )
    return {}


def delete_log_group(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    _store(ctx).delete_group(request["logGroupName"])
    return {}


def describe_log_groups(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    prefix = request.get("logGroupNamePrefix")
    pattern = request.get("logGroupNamePattern") or None
    identifiers = request.get("logGroupIdentifiers")
    if prefix and pattern:
        raise invalid_parameter(
            "LogGroupNamePrefix and LogGroupNamePattern are mutually exclusive. Pass one of them."
        )
    if identifiers and (prefix or pattern):
        raise invalid_parameter(
            "logGroupIdentifiers cannot be combined with logGroupNamePrefix or "
            "logGroupNamePattern. Pass either the identifiers or a name filter."
        )
    scope = {"p": prefix, "c": pattern, "i": identifiers}
    after = _decode_page_token(request.get("nextToken"), scope)
    groups, more = _store(ctx).list_groups(
        prefix=prefix,
        contains=pattern,
        names=[_group_from_identifier(i) for i in identifiers] if identifiers else None,
        after_name=after,
        limit=request.get("limit", DEFAULT_DESCRIBE_LIMIT),
    )
    response: dict[str, Any] = {"logGroups": [_group_view(ctx, group) for group in groups]}
    if more:
        response["nextToken"] = _encode_page_token(scope, groups[-1].name)
    return response


def _group_view(ctx: RequestContext, group: LogGroup) -> dict[str, Any]:
    arn = ctx.arn("logs", f"log-group:{group.name}")
    return {
        "logGroupName": group.name,
        "creationTime": group.creation_time,
        "retentionInDays": group.retention_in_days,
        "metricFilterCount": 0,
        "arn": f"{arn}:*",  # AWS's ``arn`` names the group's streams; logGroupArn the group
        "logGroupArn": arn,
        "storedBytes": group.stored_bytes,
        "kmsKeyId": group.kms_key_id,
        "logGroupClass": group.log_group_class,
        "deletionProtectionEnabled": group.deletion_protection,
    }


# --- log streams ---------------------------------------------------------------------------


def create_log_stream(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    _store(ctx).create_stream(
        request["logGroupName"], request["logStreamName"], now_ms=_now_ms(ctx)
    )
    return {}


def delete_log_stream(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    _store(ctx).delete_stream(request["logGroupName"], request["logStreamName"])
    return {}


def describe_log_streams(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    group = _group_name(request)
    prefix = request.get("logStreamNamePrefix")
    by_last_event = request.get("orderBy", "LogStreamName") == "LastEventTime"
    descending = bool(request.get("descending", False))
    if by_last_event and prefix:
        raise invalid_parameter(
            "Cannot order by LastEventTime with a logStreamNamePrefix. Drop the prefix, or "
            "order by LogStreamName."
        )
    scope = {"g": group, "p": prefix, "o": by_last_event, "d": descending}
    after = _decode_page_token(request.get("nextToken"), scope)
    streams, more = _store(ctx).list_streams(
        group,
        prefix=prefix,
        order_by_last_event=by_last_event,
        descending=descending,
        after=tuple(after) if after is not None else None,
        limit=request.get("limit", DEFAULT_DESCRIBE_LIMIT),
    )
    response: dict[str, Any] = {"logStreams": [_stream_view(ctx, group, s) for s in streams]}
    if more:
        last = streams[-1]
        response["nextToken"] = _encode_page_token(
            scope, [last.last_event_timestamp or 0, last.name]
        )
    return response


def _stream_view(ctx: RequestContext, group: str, stream: LogStream) -> dict[str, Any]:
    return {
        "logStreamName": stream.name,
        "creationTime": stream.creation_time,
        "firstEventTimestamp": stream.first_event_timestamp,
        "lastEventTimestamp": stream.last_event_timestamp,
        "lastIngestionTime": stream.last_ingestion_time,
        "arn": ctx.arn("logs", f"log-group:{group}:log-stream:{stream.name}"),
        "storedBytes": stream.stored_bytes,
    }


# --- writing events ------------------------------------------------------------------------


def put_log_events(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    """Store a batch, following CloudWatch since 2023: sequence tokens are ignored.

    A malformed batch (unordered, too large) fails whole; events outside the accepted
    time window are dropped and reported in ``rejectedLogEventsInfo``, the rest stored.
    """
    events = [(int(e["timestamp"]), e["message"]) for e in request["logEvents"]]
    _check_batch(events)
    now = _now_ms(ctx)
    too_old_end = sum(1 for ts, _ in events if ts < now - MAX_AGE_MS)
    too_new_start = next(
        (i for i, (ts, _) in enumerate(events) if ts > now + MAX_FUTURE_MS), len(events)
    )
    # The batch is chronological, so the too-old events are a prefix and the too-new ones
    # a suffix; ``too_old_end`` is exclusive and ``too_new_start`` inclusive, as in AWS.
    accepted = events[too_old_end:max(too_old_end, too_new_start)]
    if accepted and accepted[-1][0] - accepted[0][0] > MAX_BATCH_SPAN_MS:
        raise invalid_parameter(
            "The batch of log events in a single PutLogEvents request cannot span more than "
            "24 hours. Split the events into batches that each cover at most 24 hours."
        )
    # Even an all-rejected batch checks that the stream exists: append always does.
    _store(ctx).append(request["logGroupName"], request["logStreamName"], accepted, now_ms=now)
    response: dict[str, Any] = {"nextSequenceToken": f"{uuid.uuid4().int:056d}"}
    rejected: dict[str, int] = {}
    if too_old_end:
        rejected["tooOldLogEventEndIndex"] = too_old_end
    if too_new_start < len(events):
        rejected["tooNewLogEventStartIndex"] = too_new_start
    if rejected:
        response["rejectedLogEventsInfo"] = rejected
    return response


def _check_batch(events: list[tuple[int, str]]) -> None:
    if len(events) > MAX_BATCH_EVENTS:
        raise invalid_parameter(
            f"A PutLogEvents batch holds at most {MAX_BATCH_EVENTS} events; this one has "
            f"{len(events)}. Split it into smaller batches."
        )
    size = sum(len(message.encode("utf-8")) + EVENT_OVERHEAD_BYTES for _, message in events)
    if size > MAX_BATCH_BYTES:
        raise invalid_parameter(
            f"Upload too large: {size} bytes exceeds limit of {MAX_BATCH_BYTES} (the sum of "
            f"the UTF-8 messages plus {EVENT_OVERHEAD_BYTES} bytes per event). Split the "
            "events into smaller batches."
        )
    for index in range(1, len(events)):
        if events[index][0] < events[index - 1][0]:
            raise invalid_parameter(
                "Log events in a single PutLogEvents request must be in chronological order. "
                f"Event {index} (timestamp {events[index][0]}) is older than event "
                f"{index - 1} (timestamp {events[index - 1][0]}); sort the batch by timestamp."
            )


# --- reading events ------------------------------------------------------------------------


def get_log_events(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    group = _group_name(request)
    start, end = request.get("startTime"), request.get("endTime")
    token = request.get("nextToken")
    if token:
        forward, boundary = _decode_stream_token(token)
    else:
        forward, boundary = bool(request.get("startFromHead", False)), None
    events = _store(ctx).read_stream(
        group,
        request["logStreamName"],
        start_time=start,
        end_time=end,
        boundary=boundary,
        forward=forward,
        limit=request.get("limit", DEFAULT_EVENTS_LIMIT),
    )
    if events:
        after_last: Key = (events[-1].timestamp, events[-1].id + 1)
        before_first: Key = events[0].key
    else:
        # Nothing here: both tokens stay where the reader is, so reading forward again
        # later returns exactly the events that arrived in between.
        after_last = before_first = boundary if boundary is not None else (start or 0, 0)
    return {
        "events": [
            {"timestamp": e.timestamp, "message": e.message, "ingestionTime": e.ingestion_time}
            for e in events
        ],
        "nextForwardToken": _encode_stream_token("f", after_last),
        "nextBackwardToken": _encode_stream_token("b", before_first),
    }


def filter_log_events(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    group = _group_name(request)
    names, prefix = request.get("logStreamNames"), request.get("logStreamNamePrefix")
    if names and prefix:
        raise invalid_parameter(
            "logStreamNames and logStreamNamePrefix are mutually exclusive. Pass one of them."
        )
    pattern = parse_filter_pattern(request.get("filterPattern", ""))
    scope = {"g": group, "n": names, "p": prefix, "f": request.get("filterPattern", ""),
             "s": request.get("startTime"), "e": request.get("endTime")}
    resume = _decode_page_token(request.get("nextToken"), scope)
    result = _store(ctx).filter_events(
        group,
        matches=pattern.matches,
        required_terms=pattern.required_literals(),
        stream_names=names,
        stream_prefix=prefix,
        start_time=request.get("startTime"),
        end_time=request.get("endTime"),
        boundary=tuple(resume) if resume is not None else None,
        limit=request.get("limit", DEFAULT_EVENTS_LIMIT),
    )
    response: dict[str, Any] = {
        "events": [_filtered_view(event) for event in result.events],
        "searchedLogStreams": [
            {"logStreamName": name, "searchedCompletely": result.resume_at is None}
            for name in result.searched_streams
        ],
    }
    if result.resume_at is not None:
        response["nextToken"] = _encode_page_token(scope, list(result.resume_at))
    return response


def _filtered_view(event: LogEvent) -> dict[str, Any]:
    return {
        "logStreamName": event.stream_name,
        "timestamp": event.timestamp,
        "message": event.message,
        "ingestionTime": event.ingestion_time,
        # Unique and ordered like the events, in the all-digits form AWS uses.
        "eventId": f"{event.timestamp:020d}{event.id:020d}",
    }


# --- filter patterns -----------------------------------------------------------------------

_PATTERN_TERM = re.compile(r'([?-]?)("(?:[^"\\]|\\.)*"|%(?:[^%\\]|\\.)*%|[^\s"]+)')


@dataclass(frozen=True)
class _Term:
    literal: str | None = None
    regex: re.Pattern[str] | None = None

    def found_in(self, message: str) -> bool:
        if self.regex is not None:
            return self.regex.search(message) is not None
        return self.literal is not None and self.literal in message


@dataclass
class FilterPattern:
    """CloudWatch's filter syntax for unstructured events, case-sensitive as in AWS.

    ``ERROR timeout`` needs both terms, ``"connection reset"`` the exact phrase,
    ``?ERROR ?WARN`` either term, ``-DEBUG`` excludes, ``%regex%`` searches a regular
    expression. An empty pattern matches every event.
    """

    required: list[_Term] = field(default_factory=list)
    any_of: list[_Term] = field(default_factory=list)
    excluded: list[_Term] = field(default_factory=list)

    def matches(self, message: str) -> bool:
        return (
            all(term.found_in(message) for term in self.required)
            and (not self.any_of or any(term.found_in(message) for term in self.any_of))
            and not any(term.found_in(message) for term in self.excluded)
        )

    def required_literals(self) -> list[str]:
        return [t.literal for t in self.required if t.literal]


def parse_filter_pattern(text: str) -> FilterPattern:
    pattern = FilterPattern()
    text = text.strip()
    if text.startswith(("{", "[")):
        raise invalid_parameter(
            f"Filter pattern {text!r} uses the JSON or space-delimited syntax, which modelyard "
            "does not implement. Use terms, \"quoted phrases\", ?alternatives, -exclusions "
            "or %regex%."
        )
    position = 0
    while position < len(text):
        if text[position].isspace():
            position += 1
            continue
        match = _PATTERN_TERM.match(text, position)
        if match is None:
            raise invalid_parameter(
                f"Invalid filter pattern {text!r} at character {position + 1}: check that "
                "every quote is closed."
            )
        operator, body = match.groups()
        position = match.end()
        term = _parse_term(body, text)
        if operator == "?":
            pattern.any_of.append(term)
        elif operator == "-":
            pattern.excluded.append(term)
        elif term.literal != "":  # "" matches everything
            pattern.required.append(term)
    return pattern


def _parse_term(body: str, text: str) -> _Term:
    if len(body) >= 2 and body[0] == body[-1] == '"':
        return _Term(literal=re.sub(r'\\(["\\])', r"\1", body[1:-1]))
    if len(body) >= 2 and body[0] == body[-1] == "%":
        try:
            return _Term(regex=re.compile(body[1:-1].replace("\\%", "%")))
        except re.error as error:
            raise invalid_parameter(
                f"Invalid regular expression {body!r} in filter pattern {text!r}: {error}."
            ) from None
    return _Term(literal=body)


# --- names and tokens ----------------------------------------------------------------------


def _group_name(request: dict[str, Any]) -> str:
    name, identifier = request.get("logGroupName"), request.get("logGroupIdentifier")
    if name and identifier:
        raise invalid_parameter(
            "LogGroup name and LogGroup ARN are mutually exclusive parameters. Pass either "
            "logGroupName or logGroupIdentifier."
        )
    if identifier:
        return _group_from_identifier(identifier)
    if not name:
        raise invalid_parameter("Pass the log group as logGroupName or logGroupIdentifier.")
    return name


def _group_from_identifier(identifier: str) -> str:
    """A group name, or its ARN (``arn:aws:logs:r:a:log-group:NAME`` with optional ``:*``)."""
    if not identifier.startswith("arn:"):
        return identifier
    parts = identifier.split(":", 6)
    if len(parts) < 7 or parts[5] != "log-group":
        raise invalid_parameter(
            f"{identifier} is not a log group ARN; expected "
            "arn:aws:logs:<region>:<account>:log-group:<name>."
        )
    return parts[6].removesuffix(":*")


_STREAM_TOKEN = re.compile(r"([fb])/(\d{20})(\d{20})")


def _encode_stream_token(direction: str, key: Key) -> str:
    return f"{direction}/{key[0]:020d}{key[1]:020d}"


def _decode_stream_token(token: str) -> tuple[bool, Key]:
    match = _STREAM_TOKEN.fullmatch(token)
    if match is None:
        raise invalid_parameter(
            "The specified nextToken is invalid. Pass nextForwardToken or nextBackwardToken "
            "exactly as a previous GetLogEvents response returned it."
        )
    return match.group(1) == "f", (int(match.group(2)), int(match.group(3)))


def _encode_page_token(scope: dict[str, Any], position: Any) -> str:
    raw = json.dumps({"s": scope, "k": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_page_token(token: str | None, scope: dict[str, Any]) -> Any:
    """The position a page token carries, if it was issued for the same request."""
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if data["s"] == json.loads(json.dumps(scope)):
            return data["k"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        pass
    raise invalid_parameter(
        "The specified nextToken is invalid. Pass nextToken exactly as the previous "
        "response returned it, with the same parameters."
    )


Handler = Callable[[RequestContext, dict[str, Any]], dict[str, Any]]

OPERATIONS: dict[str, Handler] = {
    "CreateLogGroup": create_log_group,
    "DeleteLogGroup": delete_log_group,
    "DescribeLogGroups": describe_log_groups,
    "CreateLogStream": create_log_stream,
    "DeleteLogStream": delete_log_stream,
    "DescribeLogStreams": describe_log_streams,
    "PutLogEvents": put_log_events,
    "GetLogEvents": get_log_events,
    "FilterLogEvents": filter_log_events,
}
