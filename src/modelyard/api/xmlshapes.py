"""XML and HTTP-header values to and from botocore shapes, for the rest-xml protocol.

Element names, flattened lists and timestamp formats all come from the shape, mirroring
botocore's RestXMLParser / RestXMLSerializer so that what we write is exactly what it
reads. Nothing here knows an operation.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Iterable
from datetime import timezone
from typing import Any
from xml.etree import ElementTree

from botocore.model import Shape

from .errors import AwsError
from .shapes import format_iso8601, parse_timestamp

S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
# Characters XML 1.0 cannot carry even as entities.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


# --- XML in -----------------------------------------------------------------------------


def parse_xml_payload(shape: Shape, data: bytes) -> dict[str, Any]:
    """Decode a request body for a structure payload (CreateBucketConfiguration, ...).

    Scalars stay strings; ``shapes.parse_input(..., strings=True)`` converts and checks them.
    """
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as error:
        raise malformed_xml(f"it is not well-formed XML ({error})") from None
    expected = shape.serialization.get("name", shape.name)
    if _local_name(root.tag) != expected:
        raise malformed_xml(f"the root element is <{_local_name(root.tag)}>, expected "
                            f"<{expected}>")
    return _from_element(shape, root)


def _from_element(shape: Shape, element: ElementTree.Element) -> Any:
    kind = shape.type_name
    if kind == "structure":
        children: dict[str, list[ElementTree.Element]] = {}
        for child in element:
            children.setdefault(_local_name(child.tag), []).append(child)
        result: dict[str, Any] = {}
        for name, member in shape.members.items():
            if member.serialization.get("xmlAttribute"):
                value = _attribute(element, member.serialization.get("name", name))
                if value is not None:
                    result[name] = value
                continue
            found = children.get(element_name(member, name))
            if not found:
                continue
            if member.type_name == "list" and member.serialization.get("flattened"):
                result[name] = [_from_element(member.member, child) for child in found]
            else:
                result[name] = _from_element(member, found[0])
        return result
    if kind == "list":
        item_name = shape.member.serialization.get("name", "member")
        return [_from_element(shape.member, child) for child in element
                if _local_name(child.tag) == item_name]
    if kind == "map":
        key_name = shape.key.serialization.get("name", "key")
        value_name = shape.value.serialization.get("name", "value")
        entries = element if shape.serialization.get("flattened") else list(element)
        result = {}
        for entry in entries:
            parts = {_local_name(child.tag): child for child in entry}
            if key_name in parts and value_name in parts:
                result[parts[key_name].text or ""] = _from_element(shape.value,
                                                                    parts[value_name])
        return result
    return element.text or ""


def _attribute(element: ElementTree.Element, name: str) -> str | None:
    local = name.split(":")[-1]
    for attribute, value in element.attrib.items():
        if _local_name(attribute) == local:
            return value
    return None


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def malformed_xml(detail: str) -> AwsError:
    return AwsError("MalformedXML", f"The XML you provided was not well-formed or did not "
                    f"validate against the published schema: {detail}.")


# --- XML out ----------------------------------------------------------------------------


def element_name(member: Shape, member_name: str) -> str:
    """The element a structure member is written as (botocore's ``_member_key_name``)."""
    if member.type_name == "list" and member.serialization.get("flattened"):
        item_name = member.member.serialization.get("name")
        if item_name is not None:
            return item_name
    return member.serialization.get("name", member_name)


def serialize_xml(shape: Shape, value: Any, root_name: str,
                  namespace: str | None = S3_NAMESPACE) -> bytes:
    """Write ``value`` (a dict for ``shape``) as an XML document with ``root_name``.

    Members bound to headers, the status code or the URI are skipped: they are not body.
    """
    root = build_element(shape, value, root_name)
    if namespace:
        root.set("xmlns", namespace)
    return _XML_DECLARATION + ElementTree.tostring(root, encoding="utf-8")


def serialize_scalar_root(shape: Shape, value: Any, root_name: str,
                          namespace: str | None = S3_NAMESPACE) -> bytes:
    """A document whose root element itself holds one value (GetBucketLocation)."""
    root = ElementTree.Element(root_name)
    if namespace:
        root.set("xmlns", namespace)
    if value is not None:
        root.text = xml_text(_scalar_text(shape, value))
    return _XML_DECLARATION + ElementTree.tostring(root, encoding="utf-8")


def build_element(shape: Shape, value: Any, name: str) -> ElementTree.Element:
    element = ElementTree.Element(name)
    kind = shape.type_name
    if kind == "structure":
        for member_name, member in shape.members.items():
            member_value = value.get(member_name)
            if member_value is None or member.serialization.get("location"):
                continue
            tag = element_name(member, member_name)
            if member.serialization.get("xmlAttribute"):
                element.set(tag, xml_text(_scalar_text(member, member_value)))
            elif member.type_name == "list" and member.serialization.get("flattened"):
                element.extend(build_element(member.member, item, tag) for item in member_value)
            else:
                element.append(build_element(member, member_value, tag))
    elif kind == "list":
        item_name = shape.member.serialization.get("name", "member")
        element.extend(build_element(shape.member, item, item_name) for item in value)
    elif kind == "map":
        key_name = shape.key.serialization.get("name", "key")
        value_name = shape.value.serialization.get("name", "value")
        for key, item in value.items():
            entry = ElementTree.SubElement(element, "entry")
            entry.append(build_element(shape.key, key, key_name))
            entry.append(build_element(shape.value, item, value_name))
    else:
        element.text = xml_text(_scalar_text(shape, value))
    return element


def _scalar_text(shape: Shape, value: Any) -> str:
    kind = shape.type_name
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "timestamp":
        return format_timestamp(value, shape.serialization.get("timestampFormat", "iso8601"))
    if kind in ("integer", "long"):
        return str(int(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def xml_text(text: str) -> str:
    """Escape characters XML 1.0 cannot carry, so a client's parser never chokes."""
    return _NOT_XML.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def error_document(code: str, message: str, fields: Iterable[tuple[str, str]]) -> bytes:
    """S3's error body: ``<Error><Code/><Message/>...</Error>``, without a namespace."""
    root = ElementTree.Element("Error")
    for name, text in (("Code", code), ("Message", message), *fields):
        ElementTree.SubElement(root, name).text = xml_text(str(text))
    return _XML_DECLARATION + ElementTree.tostring(root, encoding="utf-8")


# --- headers ----------------------------------------------------------------------------


def format_timestamp(value: Any, timestamp_format: str) -> str:
    """A timestamp for the wire; a string is passed through (it was stored as sent)."""
    if isinstance(value, str):
        return value
    epoch = parse_timestamp(value)
    if epoch is None:
        raise TypeError(f"not a timestamp: {value!r}")
    if timestamp_format == "iso8601":
        return format_iso8601(epoch) or ""
    if timestamp_format == "unixTimestamp":
        return str(int(epoch)) if float(epoch).is_integer() else f"{epoch:.3f}"
    return email.utils.formatdate(epoch, usegmt=True)


def format_header(shape: Shape, value: Any) -> str:
    """A header value: timestamps in RFC 1123 unless the model says otherwise."""
    kind = shape.type_name
    if kind == "timestamp":
        return format_timestamp(value, shape.serialization.get("timestampFormat", "rfc822"))
    if kind == "list":
        return ", ".join(format_header(shape.member, item) for item in value)
    return _scalar_text(shape, value)


def parse_header(shape: Shape, text: str) -> Any:
    """A header value in the form ``shapes.parse_input(..., strings=True)`` expects.

    Returns None for a timestamp that is not a date: S3 ignores such conditional headers.
    """
    kind = shape.type_name
    if kind == "timestamp":
        return parse_http_date(text)
    if kind == "list":
        return [item.strip() for item in text.split(",") if item.strip()]
    return text


def parse_http_date(text: str) -> float | None:
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return parse_timestamp(text.strip())
    if moment.tzinfo is None:  # "-0000" means UTC without a claim about local time
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()
