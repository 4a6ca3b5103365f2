"""The AWS query protocol: form-encoded ``Action=...`` requests, XML responses (STS, IAM)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl
from xml.etree import ElementTree

from botocore.model import Shape
from starlette.responses import Response

from .errors import AwsError
from .xmlshapes import build_element

QUERY_SERVICES = ("sts", "iam", "sns", "cloudwatch")


def read_form(body: bytes) -> dict[str, str]:
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        raise AwsError("MalformedQueryString", "The request body is not UTF-8 form data.") from None


def unflatten(shape: Shape | None, form: dict[str, str], prefix: str = "") -> Any:
    """Turn ``Tags.member.1.Key=k`` style fields into nested values following ``shape``."""
    if shape is None:
        return {}
    kind = shape.type_name
    if kind == "structure":
        result = {}
        for name, member in shape.members.items():
            wire_name = member.serialization.get("name", name)
            key = f"{prefix}.{wire_name}" if prefix else wire_name
            value = unflatten(member, form, key)
            if value is not None:
                result[name] = value
        return result if result or not prefix else None
    if kind == "list":
        flattened = shape.serialization.get("flattened")
        item_name = shape.member.serialization.get("name", "member")
        base = f"{prefix}." if flattened else f"{prefix}.{item_name}."
        present = _indexes_under(base, form)
        items, index = [], 1
        while index in present:
            items.append(unflatten(shape.member, form, f"{base}{index}"))
            index += 1
        if not items and form.get(prefix) == "":
            return []
        return items or None
    if kind == "map":
        # botocore's QuerySerializer: <prefix>[.entry].<n>.<key name>/<value name>, where
        # the names come from the model (SNS's MessageAttributes use Name and Value).
        base = prefix if shape.serialization.get("flattened") else f"{prefix}.entry"
        key_name = shape.key.serialization.get("name", "key")
        value_name = shape.value.serialization.get("name", "value")
        result, index = {}, 1
        while f"{base}.{index}.{key_name}" in form:
            key = form[f"{base}.{index}.{key_name}"]
            result[key] = unflatten(shape.value, form, f"{base}.{index}.{value_name}")
            index += 1
        return result or None
    return form.get(prefix)


def _indexes_under(base: str, form: dict[str, str]) -> set[int]:
    """The item numbers that fields ``<base><n>`` or ``<base><n>.<...>`` use."""
    present = set()
    for field in form:
        if field.startswith(base):
            number = field[len(base):].partition(".")[0]
            if number.isascii() and number.isdigit() and not number.startswith("0") \
                    and len(number) < 7:
                present.add(int(number))
    return present


def render_result(
    operation: str, output_shape: Shape | None, result: dict[str, Any], namespace: str,
    request_id: str,
) -> Response:
    root = ElementTree.Element(f"{operation}Response", xmlns=namespace)
    if output_shape is not None:
        wrapper_name = output_shape.serialization.get("resultWrapper", f"{operation}Result")
        root.append(build_element(output_shape, result or {}, wrapper_name))
    metadata = ElementTree.SubElement(root, "ResponseMetadata")
    ElementTree.SubElement(metadata, "RequestId").text = request_id
    return _xml_response(root, 200, request_id)


def render_error(error: AwsError, request_id: str) -> Response:
    root = ElementTree.Element("ErrorResponse")
    element = ElementTree.SubElement(root, "Error")
    ElementTree.SubElement(element, "Type").text = "Sender" if error.sender_fault else "Receiver"
    # Query services (STS, IAM) name a request that fails validation ValidationError.
    code = "ValidationError" if error.code == "ValidationException" else error.code
    ElementTree.SubElement(element, "Code").text = code
    ElementTree.SubElement(element, "Message").text = error.message
    ElementTree.SubElement(root, "RequestId").text = request_id
    return _xml_response(root, error.status, request_id)


def _xml_response(root: ElementTree.Element, status: int, request_id: str) -> Response:
    body = b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root)
    return Response(
        body, status_code=status, media_type="text/xml",
        headers={"x-amzn-RequestId": request_id},
    )


AUTH_ERROR_CODES = {
    "missing": "MissingAuthenticationToken",
    "unknown-key": "InvalidClientTokenId",
    "mismatch": "SignatureDoesNotMatch",
    "expired": "ExpiredToken",
    "skewed": "RequestExpired",
    "malformed": "IncompleteSignature",
}
