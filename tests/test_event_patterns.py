"""EventBridge event patterns, matched as AWS matches them (through TestEventPattern)."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError


def event(detail: dict | None = None, **fields) -> dict:
    base = {
        "version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2",
        "account": "111122223333", "time": "2017-12-22T18:43:48Z", "region": "us-west-1",
        "resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"],
        "detail": detail if detail is not None else {
            "instance-id": "i-1234567890abcdef0", "state": "terminated", "count": 5,
            "ratio": 0.25, "flag": True, "nothing": None, "ip": "10.0.0.153",
            "tags": ["prod", "web"], "c-count": 10,
            "location": {"city": "Seattle", "zip": "98101"},
            "items": [{"name": "a", "size": 1}, {"name": "b", "size": 2}],
            "filename": "reports/2024/summary.PNG",
        },
    }
    base.update(fields)
    return base


@pytest.fixture()
def events(server):
    return server.client("events")


CASES = [
    # exact values
    ({"source": ["aws.ec2"]}, True),
    ({"source": ["aws.s3"]}, False),
    ({"source": ["aws.s3", "aws.ec2"]}, True),  # an array is OR
    ({"detail-type": ["EC2 Instance State-change Notification"], "source": ["aws.ec2"]}, True),
    ({"detail": {"state": ["terminated"]}}, True),
    ({"detail": {"state": ["running"]}}, False),
    ({"detail": {"count": [5]}}, True),
    ({"detail": {"count": [5.0]}}, True),  # numbers compare as numbers
    ({"detail": {"count": ["5"]}}, False),  # a string is not a number
    ({"detail": {"flag": [True]}}, True),
    ({"detail": {"flag": [False]}}, False),
    ({"detail": {"flag": ["true"]}}, False),
    ({"detail": {"nothing": [None]}}, True),
    ({"detail": {"state": [None]}}, False),
    ({"detail": {"location": {"city": ["Seattle"]}}}, True),  # nested objects
    ({"detail": {"location": {"city": ["Portland"]}}}, False),
    ({"detail": {"missing": ["x"]}}, False),
    # event arrays: any element
    ({"detail": {"tags": ["web"]}}, True),
    ({"detail": {"tags": ["dev"]}}, False),
    ({"resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"]}, True),
    # arrays of objects: fields of one sub-pattern must match the same element
    ({"detail": {"items": {"name": ["b"], "size": [2]}}}, True),
    ({"detail": {"items": {"name": ["a"], "size": [2]}}}, False),
    # prefix / suffix
    ({"detail": {"instance-id": [{"prefix": "i-123"}]}}, True),
    ({"detail": {"instance-id": [{"prefix": "i-999"}]}}, False),
    ({"detail": {"filename": [{"suffix": ".PNG"}]}}, True),
    ({"detail": {"filename": [{"suffix": ".png"}]}}, False),
    ({"detail": {"filename": [{"suffix": {"equals-ignore-case": ".png"}}]}}, True),
    ({"detail": {"filename": [{"prefix": {"equals-ignore-case": "REPORTS/"}}]}}, True),
    ({"detail": {"count": [{"prefix": "5"}]}}, False),  # prefix only matches strings
    # anything-but
    ({"detail": {"state": [{"anything-but": "running"}]}}, True),
    ({"detail": {"state": [{"anything-but": ["running", "terminated"]}]}}, False),
    ({"detail": {"count": [{"anything-but": [1, 2, 3]}]}}, True),
    ({"detail": {"count": [{"anything-but": 5}]}}, False),
    ({"detail": {"state": [{"anything-but": {"prefix": "term"}}]}}, False),
    ({"detail": {"state": [{"anything-but": {"prefix": "run"}}]}}, True),
    ({"detail": {"filename": [{"anything-but": {"suffix": ".PNG"}}]}}, False),
    ({"detail": {"state": [{"anything-but": {"equals-ignore-case": ["TERMINATED"]}}]}}, False),
    ({"detail": {"state": [{"anything-but": {"wildcard": "run*"}}]}}, True),
    ({"detail": {"absent": [{"anything-but": "x"}]}}, False),  # absent fields never match
    # numeric
    ({"detail": {"count": [{"numeric": [">", 0, "<=", 5]}]}}, True),
    ({"detail": {"count": [{"numeric": [">", 5]}]}}, False),
    ({"detail": {"count": [{"numeric": [">=", 5]}]}}, True),
    ({"detail": {"count": [{"numeric": ["=", 5]}]}}, True),
    ({"detail": {"ratio": [{"numeric": ["<", 0.3]}]}}, True),
    ({"detail": {"state": [{"numeric": [">", 0]}]}}, False),
    ({"detail": {"c-count": [{"numeric": [">", 0, "<", 10]}]}}, False),
    # exists
    ({"detail": {"state": [{"exists": True}]}}, True),
    ({"detail": {"absent": [{"exists": True}]}}, False),
    ({"detail": {"absent": [{"exists": False}]}}, True),
    ({"detail": {"state": [{"exists": False}]}}, False),
    ({"detail": {"nothing": [{"exists": True}]}}, True),  # null is a value
    # equals-ignore-case, wildcard, cidr
    ({"detail": {"state": [{"equals-ignore-case": "TERMINATED"}]}}, True),
    ({"detail": {"state": [{"equals-ignore-case": "RUNNING"}]}}, False),
    ({"detail": {"filename": [{"wildcard": "reports/*/summary.*"}]}}, True),
    ({"detail": {"filename": [{"wildcard": "reports/*.png"}]}}, False),
    ({"detail": {"ip": [{"cidr": "10.0.0.0/24"}]}}, True),
    ({"detail": {"ip": [{"cidr": "10.0.1.0/24"}]}}, False),
    # mixed exact values and filters in one array: OR
    ({"detail": {"state": ["running", {"prefix": "term"}]}}, True),
    # $or
    ({"$or": [{"source": ["aws.s3"]}, {"detail": {"count": [5]}}]}, True),
    ({"$or": [{"source": ["aws.s3"]}, {"detail": {"count": [6]}}]}, False),
    ({"source": ["aws.ec2"], "detail": {"$or": [{"state": ["x"]}, {"count": [{"numeric": [">", 4]}]}]}},
     True),
    # the retraining loop's alarm rule
    ({"source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"],
      "detail": {"alarmName": [{"prefix": "ticket-classifier-prod-data-drift"}],
                 "state": {"value": ["ALARM"]}}}, False),
]


@pytest.mark.parametrize("pattern,expected", CASES, ids=[json.dumps(c[0])[:60] for c in CASES])
def test_pattern_matches_as_eventbridge_does(events, pattern, expected):
    result = events.test_event_pattern(EventPattern=json.dumps(pattern), Event=json.dumps(event()))
    assert result["Result"] is expected


def test_the_alarm_rule_matches_an_alarm_event(events):
    pattern = {"source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"],
               "detail": {"alarmName": [{"prefix": "ticket-classifier-prod-data-drift"}],
                          "state": {"value": ["ALARM"]}}}
    alarm = event({"alarmName": "ticket-classifier-prod-data-drift-psi",
                   "state": {"value": "ALARM", "reason": "Threshold Crossed"},
                   "previousState": {"value": "OK"}},
                  source="aws.cloudwatch", **{"detail-type": "CloudWatch Alarm State Change"})
    assert events.test_event_pattern(EventPattern=json.dumps(pattern),
                                     Event=json.dumps(alarm))["Result"] is True
    alarm["detail"]["state"]["value"] = "OK"
    assert events.test_event_pattern(EventPattern=json.dumps(pattern),
                                     Event=json.dumps(alarm))["Result"] is False


INVALID = [
    ('{"source": "aws.ec2"}', "must be an object or an array"),
    ('["aws.ec2"]', "Filter is not an object"),
    ("{}", "Empty pattern"),
    ("not json", "not JSON"),
    ('{"source": []}', "Empty arrays"),
    ('{"source": [["a"]]}', "Match value must be"),
    ('{"detail": {"n": [{"numeric": [">", "five"]}]}}', "must be numeric"),
    ('{"detail": {"n": [{"numeric": ["<", 5, ">", 1]}]}}', "lower bound"),
    ('{"detail": {"n": [{"numeric": [">", 5, "<", 1]}]}}', "Bottom must be less than top"),
    ('{"detail": {"n": [{"numeric": ["!=", 5]}]}}', "Unrecognized numeric range operator"),
    ('{"detail": {"n": [{"exists": "yes"}]}}', "exists match pattern must be either true or false"),
    ('{"detail": {"n": [{"prefix": 5}]}}', "prefix match pattern must be a string"),
    ('{"detail": {"n": [{"regex": "a.*"}]}}', "Unrecognized match type regex"),
    ('{"detail": {"n": [{"prefix": "a", "suffix": "b"}]}}', "exactly one key"),
    ('{"detail": {"n": [{"wildcard": "a**b"}]}}', "Consecutive wildcard characters"),
    ('{"detail": {"n": [{"cidr": "10.0.0.300/24"}]}}', "Nonstandard IP address"),
    ('{"detail": {"n": [{"anything-but": {"prefix": ""}}]}}', "non-empty string"),
    ('{"detail": {"n": [{"anything-but": [null]}]}}', "null"),
    ('{"$or": [{"source": ["a"]}]}', "at least two"),
]


@pytest.mark.parametrize("pattern,reason", INVALID, ids=[case[0][:50] for case in INVALID])
def test_invalid_patterns_are_refused_with_the_reason(events, pattern, reason):
    with pytest.raises(ClientError) as raised:
        events.test_event_pattern(EventPattern=pattern, Event=json.dumps(event()))
    error = raised.value.response["Error"]
    assert error["Code"] == "InvalidEventPatternException"
    assert error["Message"].startswith("Event pattern is not valid. Reason: ")
    assert reason in error["Message"]


def test_an_event_without_the_envelope_fields_is_refused(events):
    with pytest.raises(ClientError) as raised:
        events.test_event_pattern(EventPattern='{"source": ["a"]}', Event='{"source": "a"}')
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "detail-type" in raised.value.response["Error"]["Message"]
