"""Random, mostly malformed AWS requests built from botocore's service models.

``RequestMaker`` turns (service, operation) into a signed-ready ``WireRequest`` in the
operation's wire protocol (JSON 1.1, query, REST-XML, RPC v2 CBOR). Member values follow
the input shape most of the time and break it some of the time (wrong types, huge
strings, odd Unicode, extreme numbers); then the encoded body, headers or query may be
damaged (truncated, nested thousands deep, bad UTF-8, garbage). Everything comes from
one ``random.Random``, so a seed reproduces a run.
"""

from __future__ import annotations

import json
import random
import re
import string
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import botocore.session
import cbor2
from botocore.model import OperationModel, Shape
from botocore.serialize import create_serializer

_SESSION = botocore.session.get_session()

# Operations whose valid request would start real work (a job, a pipeline run): their
# requests always carry a required member of the wrong type, so they fail validation.
NEVER_VALID = re.compile(r"^(Create\w*Job|Start\w+|Retry\w+|Resume\w+|Send\w+Step\w+)$")

_WRONG_TYPES: tuple[Any, ...] = (None, True, False, 0, -1, 3.5, "", "text", [], {}, [1, [2]],
                                 {"x": {"y": [None]}})
_ODD_STRINGS = ("", " ", "-", "..", "../../etc/passwd", "%", "%00", "%ff", "a/b//c",
                "ünïcødé ✓ 😀", "\u202e\u200b\ufeff", "\\", "'\"<>&", "null", "NaN", "-1",
                "1e999", "arn:aws:sagemaker:us-east-1:123456789012:model-package/x/1",
                "s3://fuzz-bucket/in/data.csv", "*", "\t\n\r", "\x00\x01\x7f")
_BIG_INTEGERS = (0, -1, 1, 2**31, -(2**31) - 1, 2**63, 10**30, -(10**40))
# HTTP framing, not the codec's business: a wrong Content-Length leaves a connection waiting.
_FRAMING_HEADERS = ("content-length", "transfer-encoding", "host", "expect")
MAX_BODY = 1024 * 1024
MAX_URL = 4000
MAX_HEADER = 2000
MAX_HEADERS = 7000  # in all
_BIG_FLOATS = (0.0, -0.0, 1e-300, 1e308, -1e308, 0.1)


@dataclass
class WireRequest:
    """One HTTP request, not yet signed."""

    protocol: str
    service: str  # botocore service name
    operation: str
    signing_name: str
    method: str
    path: str  # already percent-encoded
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    mutation: str = "none"


def service_model(name: str):
    return _SESSION.get_service_model(name)


class ValueMaker:
    """Values for shapes: right-typed unless ``typed`` is off and the dice say otherwise."""

    def __init__(self, rng: random.Random, known: dict[str, list[str]]) -> None:
        self.rng = rng
        self.known = known  # member name -> values that name real resources
        self.clean = False  # only right types and plain names: requests that may succeed

    def value(self, shape: Shape, name: str = "", depth: int = 0, *, typed: bool) -> Any:
        rng = self.rng
        if not typed and rng.random() < 0.06:
            return rng.choice(_WRONG_TYPES)
        if name in self.known and rng.random() < 0.5:
            return rng.choice(self.known[name])
        kind = shape.type_name
        if kind == "structure":
            if depth > 5:
                return {}
            result = {}
            for member_name, member in shape.members.items():
                required = member_name in shape.required_members
                if rng.random() < (0.9 if required else 0.3):
                    result[member_name] = self.value(member, member_name, depth + 1,
                                                     typed=typed)
            if not typed and rng.random() < 0.05:
                result[rng.choice(["Unknown", "__type", "", "x" * 300])] = "extra"
            return result
        if kind == "list":
            if depth > 5:
                return []
            count = rng.choice((0, 1, 1, 2, 3, 200 if rng.random() < 0.1 else 1))
            return [self.value(shape.member, "", depth + 1, typed=typed) for _ in range(count)]
        if kind == "map":
            if depth > 5:
                return {}
            count = rng.choice((0, 1, 2, 60 if rng.random() < 0.1 else 1))
            return {self.string(shape.key): self.value(shape.value, "", depth + 1, typed=typed)
                    for _ in range(count)}
        return self.scalar(shape, typed=typed)

    def scalar(self, shape: Shape, *, typed: bool) -> Any:
        rng = self.rng
        kind = shape.type_name
        if kind == "string":
            return self.string(shape)
        if kind in ("integer", "long"):
            if typed:
                return rng.choice((0, 1, 5, 100, 2**31 - 1))
            return rng.choice(_BIG_INTEGERS + (rng.randint(-5, 10**6),))
        if kind in ("float", "double"):
            return rng.choice(_BIG_FLOATS + (rng.uniform(-1e6, 1e6),))
        if kind == "boolean":
            return rng.random() < 0.5
        if kind == "timestamp":
            if typed:
                return rng.choice((0, 1_700_000_000, 4_102_444_800))
            return rng.choice((0, -1, 1_700_000_000, 1e12, 1e20, -1e20, "2024-02-30T25:61:00Z",
                               "yesterday", "1970-01-01T00:00:00Z"))
        if kind == "blob":
            data = rng.randbytes(rng.choice((0, 3, 100, 5000)))
            return data if typed else rng.choice((data, "not base64!", "AAAA"))
        return None

    def string(self, shape: Shape) -> str:
        rng = self.rng
        roll = rng.random()
        if shape.enum and (roll < 0.5 or self.clean):
            return rng.choice(shape.enum)
        if self.clean:  # within the shape's length limits
            text = f"fuzz-{rng.randrange(4)}"
            text += "0" * (shape.metadata.get("min", 0) - len(text))
            return text[: shape.metadata.get("max", len(text))]
        if roll < 0.6:
            return f"fuzz-{rng.randrange(4)}"
        if roll < 0.8:
            return rng.choice(_ODD_STRINGS)
        if roll < 0.9:
            alphabet = string.printable + "éü中文😀\u0301"
            return "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 80)))
        return rng.choice("ab-é😀") * rng.choice((300, 3000, 70_000))


class RequestMaker:
    def __init__(self, rng: random.Random, known: dict[str, list[str]]) -> None:
        self.rng = rng
        self.values = ValueMaker(rng, known)

    def make(self, service: str, operation: str) -> WireRequest:
        model = service_model(service)
        op = model.operation_model(operation)
        protocol = model.protocol
        if protocol == "json":
            request = self._json(model, op)
        elif protocol == "query":
            request = self._query(model, op)
        elif protocol == "rest-xml":
            request = self._rest_xml(model, op)
        elif protocol == "smithy-rpc-v2-cbor":
            request = self._cbor(model, op)
        elif protocol == "rest-json":
            request = self._rest_json(model, op)
        else:
            raise ValueError(f"no fuzzing for protocol {protocol}")
        # Within what HTTP servers accept (S3: 8 KB of headers), and under the API body
        # limit: beyond those the HTTP layer, not a codec, refuses the request.
        if len(request.body) > MAX_BODY and request.protocol != "rest-xml":
            request.body, request.mutation = request.body[:MAX_BODY], request.mutation + "+cut"
        request.path = _cut_url(request.path)
        request.query = _cut_url(request.query)
        headers, budget = {}, MAX_HEADERS
        for name, value in request.headers.items():
            name, value = name[:100], value[:MAX_HEADER]
            budget -= len(name) + len(value)
            if budget < 0:
                break
            headers[name] = value
        request.headers = headers
        return request

    # --- JSON 1.1 -------------------------------------------------------------------

    def _json(self, model, op: OperationModel) -> WireRequest:
        # A quarter are well-formed and right-typed, to reach the handlers behind validation.
        self.values.clean = self.rng.random() < 0.25
        params = self._params(op, typed=self.values.clean)
        self.values.clean, clean = False, self.values.clean
        encoded = json.dumps(params, default=_json_default).encode()
        body = (encoded, "clean") if clean else self._mutate_json(encoded)
        request = WireRequest(
            "json", model.service_name, op.name, model.signing_name, "POST", "/",
            headers={"Content-Type": "application/x-amz-json-1.1",
                     "X-Amz-Target": f"{model.metadata['targetPrefix']}.{op.name}"},
            body=body[0], mutation=body[1])
        if self.rng.random() < 0.03:
            request.headers["X-Amz-Target"] = self.rng.choice(
                (f"{model.metadata['targetPrefix']}.", ".", "Nope.Op", "x" * 500,
                 f"{model.metadata['targetPrefix']}.NoSuchOperation"))
            request.mutation += "+target"
        return request

    def _params(self, op: OperationModel, *, typed: bool) -> dict[str, Any]:
        shape = op.input_shape
        params = self.values.value(shape, depth=0, typed=typed) if shape is not None else {}
        if not isinstance(params, dict):
            params = {}
        if NEVER_VALID.match(op.name) and shape is not None:
            self._invalidate(shape, params)
        return params

    def _invalidate(self, shape: Shape, params: dict[str, Any]) -> None:
        required = shape.required_members or list(shape.members)
        name = self.rng.choice(required)
        kind = shape.members[name].type_name
        params[name] = 12345 if kind in ("structure", "list", "map", "string") else {"no": 1}

    def _mutate_json(self, body: bytes) -> tuple[bytes, str]:
        rng = self.rng
        kind = rng.choices(
            ("none", "truncate", "deep-open", "deep-valid", "bad-utf8", "not-object",
             "garbage", "huge-number", "nan", "deep-member", "empty", "surrogate"),
            weights=(35, 12, 8, 6, 8, 5, 5, 5, 4, 8, 4, 4))[0]
        if kind == "truncate" and len(body) > 1:
            return body[: rng.randrange(1, len(body))], kind
        if kind == "deep-open":
            return b'{"a":' * rng.choice((50, 1000, 5000, 100_000)), kind
        if kind == "deep-valid":
            depth = rng.choice((100, 900, 3000))
            return b"[" * depth + b"]" * depth, kind
        if kind == "bad-utf8":
            position = rng.randrange(len(body) + 1)
            junk = rng.choice((b"\xff", b"\xc3", b"\xed\xa0\x80", b'"\xfe\xff"', b"\x00"))
            return body[:position] + junk + body[position:], kind
        if kind == "not-object":
            return rng.choice((b"[]", b"1", b'"s"', b"null", b"true", b"[{}]")), kind
        if kind == "garbage":
            return rng.randbytes(rng.randrange(1, 400)), kind
        if kind == "huge-number":
            digits = rng.choice((400, 5000, 50_000))
            return body.replace(b":", b":" + b"9" * digits + b",\"z\":", 1) if b":" in body \
                else b'{"n":' + b"9" * digits + b"}", kind
        if kind == "nan":
            return body.replace(b":", b":NaN,\"q\":", 1) if b":" in body \
                else b'{"n":Infinity}', kind
        if kind == "deep-member" and body.startswith(b"{") and len(body) > 2:
            depth = rng.choice((20, 500, 2000, 20_000))
            nested = b'{"x":' * depth + b"1" + b"}" * depth
            return b'{"Deep":' + nested + b"," + body[1:], kind
        if kind == "surrogate":  # a JSON escape for half a UTF-16 pair: not Unicode
            return body.replace(b':"', b':"\\ud800', 1) if b':"' in body \
                else b'{"s":"\\udfff"}', kind
        if kind == "empty":
            return b"", kind
        return body, "none"

    # --- query ----------------------------------------------------------------------

    def _query(self, model, op: OperationModel) -> WireRequest:
        rng = self.rng
        form = self._serialized(op, "query")["body"]
        form = dict(form) if isinstance(form, dict) else {"Action": op.name}
        mutation = "none"
        if form and rng.random() < 0.4:
            name = rng.choice(list(form))
            form[name] = str(rng.choice(_WRONG_TYPES + _ODD_STRINGS))
            mutation = "wrong-value"
        if rng.random() < 0.15:
            form[rng.choice(("Tags.member.99999.Key", "Policy" * 3, "Action", "Version",
                             "PolicyArn", "X" * 1000))] = rng.choice(_ODD_STRINGS)
            mutation = "extra-field"
        body = urlencode(form, doseq=True).encode()
        roll = rng.random()
        if roll < 0.1:
            body, mutation = body + b"&Bad=%ff%fe%c3", "bad-percent"
        elif roll < 0.2:
            body, mutation = body + b"&Raw=\xff\xfe", "bad-utf8"
        elif roll < 0.27 and body:
            body, mutation = body[: rng.randrange(len(body))], "truncate"
        elif roll < 0.32:
            count = rng.choice((300, 3000))
            body += "".join(f"&Tags.member.{index}.Key=k{index}"
                            for index in range(1, count)).encode()
            mutation = "many-members"
        elif roll < 0.36:
            body, mutation = rng.randbytes(rng.randrange(1, 300)), "garbage"
        return WireRequest("query", model.service_name, op.name, model.signing_name, "POST",
                           "/", headers={"Content-Type": "application/x-www-form-urlencoded; "
                                         "charset=utf-8"}, body=body, mutation=mutation)

    def _serialized(self, op: OperationModel, protocol: str) -> dict[str, Any]:
        """A request botocore itself would send for random, right-typed values."""
        for _ in range(5):
            params = self._params(op, typed=True)
            try:
                return create_serializer(protocol, include_validation=False) \
                    .serialize_to_request(params, op)
            except Exception:  # noqa: BLE001 - a value the serializer cannot encode
                continue
        return create_serializer(protocol, include_validation=False) \
            .serialize_to_request({}, op)

    # --- REST-XML (S3) --------------------------------------------------------------

    def _rest_xml(self, model, op: OperationModel) -> WireRequest:
        rng = self.rng
        serialized = self._serialized(op, "rest-xml")
        path = serialized["url_path"]
        query = dict(serialized["query_string"] or {})
        headers = {name: str(value) for name, value in serialized["headers"].items()
                   if name.lower() not in _FRAMING_HEADERS}
        body = serialized["body"] or b""
        if isinstance(body, str):
            body = body.encode()
        if not isinstance(body, (bytes, bytearray)):
            body = body.read() if hasattr(body, "read") else bytes(body)
        mutation = "none"
        roll = rng.random()
        mutable = [name for name in headers if name.lower() not in _FRAMING_HEADERS]
        if roll < 0.15 and mutable:
            name = rng.choice(mutable)
            headers[name] = rng.choice(("", "garbage", "-1", "99999999999999999999",
                                        "Mon, 99 Foo 2024 99:99:99 GMT", "é" * 20, "x" * 5000))
            mutation = "bad-header"
        elif roll < 0.25:
            query[rng.choice(("uploads", "delete", "uploadId", "partNumber", "max-keys",
                              "list-type", "continuation-token", "tagging", "x-id"))] = \
                rng.choice(("", "-5", "abc", "99999999999999999999", "%ff", "2"))
            mutation = "bad-query"
        elif roll < 0.5 and op.input_shape is not None and \
                op.input_shape.serialization.get("payload") and body:
            body, mutation = self._mutate_xml(body)
        elif roll < 0.55:
            path += "/" + quote(rng.choice(_ODD_STRINGS), safe="/")
            mutation = "odd-path"
        query_string = "&".join(
            quote(str(name), safe="-_.~") + ("" if value == "" and name in ("uploads", "delete")
                                              else "=" + quote(str(value), safe="-_.~"))
            for name, value in sorted(query.items()))
        if "?" in path:  # literal query parameters from the URI template
            path, _, literal = path.partition("?")
            query_string = "&".join(filter(None, (literal, query_string)))
        headers = {re.sub(r"[^A-Za-z0-9!#$%&'*+.^_`|~-]", "x", name): _header_text(value)
                   for name, value in headers.items()}
        return WireRequest("rest-xml", "s3", op.name, "s3", serialized["method"], path,
                           query_string, headers, bytes(body), mutation)

    def _mutate_xml(self, body: bytes) -> tuple[bytes, str]:
        rng = self.rng
        kind = rng.choice(("truncate", "deep", "bad-utf8", "entities", "garbage", "doctype"))
        if kind == "truncate":
            return body[: rng.randrange(len(body))], kind
        if kind == "deep":
            depth = rng.choice((1000, 50_000))
            return b"<Delete>" + b"<a>" * depth + b"</a>" * depth + b"</Delete>", kind
        if kind == "bad-utf8":
            position = rng.randrange(len(body) + 1)
            return body[:position] + b"\xff\xfe\xc3" + body[position:], kind
        if kind == "entities":
            laughs = b'<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">' + b"".join(
                b'<!ENTITY %s "%s">' % (b"a" + b"b" * (i + 1), (b"&a" + b"b" * i + b";") * 10)
                for i in range(8)) + b"]>"
            return laughs + b"<Delete><Object><Key>&abbbbbbbb;</Key></Object></Delete>", kind
        if kind == "doctype":
            return (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                    b"<Delete><Object><Key>&e;</Key></Object></Delete>"), kind
        return rng.randbytes(rng.randrange(1, 300)), kind

    # --- REST-JSON (Lambda) ----------------------------------------------------------

    def _rest_json(self, model, op: OperationModel) -> WireRequest:
        rng = self.rng
        serialized = self._serialized(op, "rest-json")
        path, query = serialized["url_path"], dict(serialized["query_string"] or {})
        headers = {name: str(value) for name, value in serialized["headers"].items()
                   if name.lower() not in _FRAMING_HEADERS}
        body = serialized["body"] or b""
        if isinstance(body, str):
            body = body.encode()
        mutation = "none"
        roll = rng.random()
        if roll < 0.35 and body:
            body, mutation = self._mutate_json(bytes(body))
        elif roll < 0.45 and headers:
            headers[rng.choice(list(headers))] = rng.choice(("", "garbage", "-1", "é" * 20))
            mutation = "bad-header"
        elif roll < 0.55:
            query[rng.choice(("MaxItems", "Marker", "Qualifier", "FunctionVersion"))] = \
                rng.choice(("", "-5", "abc", "99999999999999999999", "%ff"))
            mutation = "bad-query"
        elif roll < 0.65:
            path += "/" + quote(rng.choice(_ODD_STRINGS), safe="/")
            mutation = "odd-path"
        query_string = "&".join(f"{quote(str(name), safe='-_.~')}="
                                f"{quote(str(value), safe='-_.~')}"
                                for name, value in sorted(query.items()))
        headers = {re.sub(r"[^A-Za-z0-9!#$%&'*+.^_`|~-]", "x", name): _header_text(value)
                   for name, value in headers.items()}
        return WireRequest("rest-json", model.service_name, op.name, model.signing_name,
                           serialized["method"], path, query_string, headers, bytes(body),
                           mutation)

    # --- RPC v2 CBOR (CloudWatch) ---------------------------------------------------

    def _cbor(self, model, op: OperationModel) -> WireRequest:
        rng = self.rng
        params = self._params(op, typed=False)
        try:
            body = cbor2.dumps(params)
        except Exception:  # noqa: BLE001 - a value CBOR cannot carry
            body = cbor2.dumps({})
        kind = rng.choice(("none", "truncate", "deep", "bad-utf8", "garbage", "huge-length",
                           "indefinite", "tags", "bignum"))
        if kind == "truncate" and len(body) > 1:
            body = body[: rng.randrange(1, len(body))]
        elif kind == "deep":
            body = b"\x81" * rng.choice((100, 5000, 100_000)) + b"\x01"
        elif kind == "bad-utf8":
            body = b"\xa1\x63\xff\xfe\xfd\x01"
        elif kind == "garbage":
            body = rng.randbytes(rng.randrange(1, 200))
        elif kind == "huge-length":
            body = b"\xa1\x61a\x5b" + (2**62).to_bytes(8, "big") + b"xx"
        elif kind == "indefinite":
            body = b"\xbf\x61a\x9f" * 2000
        elif kind == "bignum":  # a 4,096-byte integer: more digits than Python converts
            body = b"\xa1\x61a\xc2\x59\x10\x00" + b"\xff" * 4096
        elif kind == "tags":
            body = b"\xa1\x61a\xc1\xfb\x7f\xf0\x00\x00\x00\x00\x00\x00"  # epoch tag, infinity
        prefix = model.metadata["targetPrefix"]
        return WireRequest("cbor", model.service_name, op.name, model.signing_name, "POST",
                           f"/service/{prefix}/operation/{op.name}",
                           headers={"smithy-protocol": "rpc-v2-cbor",
                                    "Content-Type": "application/cbor",
                                    "Accept": "application/cbor"},
                           body=body, mutation=kind)


def _cut_url(text: str) -> str:
    """At most MAX_URL characters, never ending inside a %XX escape."""
    return re.sub(r"%[0-9A-Fa-f]?$", "", text[:MAX_URL])


def _header_text(value: str) -> str:
    """What an HTTP client can send: UTF-8 bytes as latin-1 text, on one line."""
    text = re.sub(r"[\x00-\x08\x0a-\x1f\x7f]", " ", value)
    return text.encode("utf-8").decode("latin-1")


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)
