"""REST-JSON (Lambda): the operation is found by method and path, as the model's
``http.requestUri`` templates give them; members come from the path, query string,
headers, a raw payload or the JSON body, each as its ``location`` says.

Handlers see one flat request dict and return one flat result dict, as for every other
protocol; this module puts ``statusCode`` and ``header`` members of the result where the
output shape says, and a ``payload`` member as the raw body.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

from botocore.model import OperationModel, Shape
from starlette.responses import Response

from .errors import AwsError
from .jsonproto import read_body
from .shapes import service_model, shape_output

CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class Route:
    operation: str
    method: str
    pattern: re.Pattern[str]
    literal_length: int  # more literal characters wins when two templates match


@functools.lru_cache(maxsize=8)
def _routes(service: str) -> tuple[Route, ...]:
    model = service_model(service)
    routes = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        path = http["requestUri"].split("?", 1)[0]
        regex, literal = "", 0
        for piece in re.split(r"(\{[^}]+\})", path):
            if piece.startswith("{"):
                label = piece[1:-1]
                greedy = label.endswith("+")
                label = label.rstrip("+")
                regex += f"(?P<{label}>.+)" if greedy else f"(?P<{label}>[^/]+)"
            else:
                regex += re.escape(piece)
                literal += len(piece)
        routes.append(Route(name, http["method"], re.compile(regex + "/?"), literal))
    return tuple(sorted(routes, key=lambda route: -route.literal_length))


def find_operation(service: str, method: str, raw_path: str) -> tuple[str, dict[str, str]]:
    """The operation ``method raw_path`` names, and the path's labels (still encoded)."""
    matched_path = False
    for route in _routes(service):
        match = route.pattern.fullmatch(raw_path)
        if match is None:
            continue
        matched_path = True
        if route.method == method:
            return route.operation, match.groupdict()
    if matched_path:
        raise AwsError("MethodNotAllowedException",
                       f"{method} is not allowed on {raw_path} in {service}.", status=405)
    raise AwsError("UnknownOperationException",
                   f"{method} {raw_path} is not an operation of {service}; check the client's "
                   "endpoint and service.", status=404)


def read_request(operation: OperationModel, labels: dict[str, str], raw_query: str,
                 headers: Any, body: bytes) -> dict[str, Any]:
    """The operation's input members, gathered from wherever the model puts them."""
    shape = operation.input_shape
    if shape is None:
        return {}
    query = parse_qsl(raw_query, keep_blank_values=True)
    payload_member = shape.serialization.get("payload")
    request: dict[str, Any] = {}
    body_members = False
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if location == "uri":
            if wire in labels:
                request[name] = unquote(labels[wire])
        elif location == "querystring":
            values = [value for key, value in query if key == wire]
            if values:
                request[name] = _text_value(member, values)
        elif location == "header":
            value = headers.get(wire)
            if value is not None:
                request[name] = _text_value(member, [value])
        elif name == payload_member:
            if member.type_name in ("blob", "string"):
                request[name] = body if member.type_name == "blob" else body.decode("utf-8")
            elif body:
                request[name] = read_body(body)
        else:
            body_members = True
    if body_members and payload_member is None and body:
        document = read_body(body)
        for name, member in shape.members.items():
            if "location" not in member.serialization and name in document:
                request[name] = document[name]
    return request


def _text_value(member: Shape, values: list[str]) -> Any:
    kind = member.type_name
    if kind == "list":
        return [_scalar(member.member, value) for value in values]
    return _scalar(member, values[-1])


def _scalar(shape: Shape, text: str) -> Any:
    kind = shape.type_name
    try:
        if kind in ("integer", "long"):
            return int(text)
        if kind in ("float", "double"):
            return float(text)
    except ValueError:
        return text  # validation names the member and the expected type
    if kind == "boolean":
        return {"true": True, "false": False}.get(text.lower(), text)
    return text


def render_result(operation: OperationModel, result: dict[str, Any] | None,
                  request_id: str) -> Response:
    shape = operation.output_shape
    status = int(operation.http.get("responseCode", 200))
    headers = {"x-amzn-RequestId": request_id}
    result = result or {}
    if shape is None:
        return Response(b"", status_code=status, headers=headers)
    payload_member = shape.serialization.get("payload")
    document: dict[str, Any] = {}
    body: bytes | None = None
    media_type = CONTENT_TYPE
    for name, member in shape.members.items():
        value = result.get(name)
        if value is None:
            continue
        location = member.serialization.get("location")
        if location == "statusCode":
            status = int(value)
        elif location == "header":
            headers[member.serialization.get("name", name)] = str(
                shape_output(member, value, timestamps="iso8601"))
        elif name == payload_member:
            if member.type_name == "blob":
                body = value.encode() if isinstance(value, str) else bytes(value)
                media_type = "application/octet-stream"
            else:
                body = json.dumps(shape_output(member, value)).encode()
        elif location is None:
            document[name] = shape_output(member, value)
    if body is None:
        body = json.dumps(document, separators=(",", ":")).encode() if (
            document or status != 204) else b""
    return Response(body, status_code=status, media_type=media_type, headers=headers)
