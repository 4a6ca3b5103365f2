"""Safe HTML building: every string is escaped unless it is already ``Safe`` markup.

The console renders its pages with these few functions instead of a template engine, so
a resource name, tag value or log line that contains HTML or script is always shown as
text: only markup built here (or by the SVG helpers) is ever emitted unescaped.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlencode


class Safe(str):
    """Markup that is already escaped (or built from escaped parts)."""

    __slots__ = ()


def esc(value: Any) -> Safe:
    """``value`` as text: escaped, unless it is Safe already; None and False render as ''."""
    if isinstance(value, Safe):
        return value
    if value is None or value is False:
        return Safe("")
    if isinstance(value, (list, tuple)) or (hasattr(value, "__iter__")
                                           and not isinstance(value, (str, bytes, dict))):
        return Safe("".join(esc(item) for item in value))
    return Safe(html.escape(str(value), quote=True))


def _attributes(attrs: dict[str, Any]) -> str:
    parts = []
    for name, value in attrs.items():
        if value is None or value is False:
            continue
        name = name.rstrip("_").replace("_", "-")
        if value is True:
            parts.append(f" {name}")
        else:
            parts.append(f' {name}="{html.escape(str(value), quote=True)}"')
    return "".join(parts)


_VOID = {"br", "hr", "img", "input", "meta", "link", "circle", "line", "rect", "path",
         "polyline", "stop"}


def el(tag: str, *children: Any, **attrs: Any) -> Safe:
    """``<tag attrs>children</tag>``: attribute names use ``_`` for ``-`` (``class_``)."""
    if tag in _VOID and not children:
        return Safe(f"<{tag}{_attributes(attrs)}>" if tag in {"br", "hr", "img", "input",
                                                             "meta", "link"}
                    else f"<{tag}{_attributes(attrs)}/>")
    return Safe(f"<{tag}{_attributes(attrs)}>{esc(children)}</{tag}>")


def url(path: str, **params: Any) -> str:
    """A console URL: ``path`` segments given already quoted, ``params`` encoded."""
    given = {key: value for key, value in params.items() if value not in (None, "")}
    return path + ("?" + urlencode(given) if given else "")


def seg(value: str) -> str:
    """One path segment, percent-encoded (names may hold any character)."""
    return quote(str(value), safe="")


def link(href: str, *children: Any, **attrs: Any) -> Safe:
    return el("a", *children, href=href, **attrs)


def when(value: Any) -> str:
    """A timestamp (epoch seconds, datetime or ISO text) as UTC ``YYYY-MM-DD HH:MM:SS``."""
    if value is None or value == "":
        return ""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    elif isinstance(value, (int, float)):
        moment = datetime.fromtimestamp(float(value), tz=timezone.utc)
    else:
        return str(value)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def epoch(value: Any) -> float | None:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    return None


def duration(start: Any, end: Any = None, now: float | None = None) -> str:
    """``start`` to ``end`` (or now) as ``1h 02m``, ``3m 05s`` or ``12.3s``."""
    first = epoch(start)
    if first is None:
        return ""
    last = epoch(end) if end is not None else (now if now is not None else time.time())
    if last is None:
        return ""
    seconds = max(0.0, last - first)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def status(value: Any) -> Safe:
    """A status as a coloured badge (the colour comes from its class in console.css)."""
    text = str(value or "")
    return el("span", text, class_=f"badge st-{_status_class(text)}")


def _status_class(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum()) or "None"


def number(value: Any) -> str:
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.4g}"
    return str(value)


def table(headers: list[str], rows: Iterable[list[Any]], *, empty: str = "Nothing here yet.",
          **attrs: Any) -> Safe:
    body = [el("tr", *(el("td", cell) for cell in row)) for row in rows]
    if not body:
        return el("p", empty, class_="empty")
    return el("div", el("table", el("thead", el("tr", *(el("th", h, scope="col")
                                                           for h in headers))),
                        el("tbody", *body), **attrs), class_="scroll")


def definition_list(pairs: Iterable[tuple[str, Any]]) -> Safe:
    items = []
    for term, value in pairs:
        if value is None or value == "" or value == [] or value == {}:
            continue
        items.append(el("dt", term))
        items.append(el("dd", value))
    return el("dl", *items, class_="facts")


def s3_link(uri: Any) -> Safe:
    """An ``s3://bucket/key`` URI as a link to the object browser (a prefix or an object)."""
    text = str(uri or "")
    if not text.startswith("s3://"):
        return esc(text)
    bucket, _, key = text[len("s3://"):].partition("/")
    if not key or key.endswith("/") or "." not in key.rsplit("/", 1)[-1]:
        # A prefix (a channel, an output path): its listing.
        href = url(f"/console/objects/{seg(bucket)}",
                   prefix=key if not key or key.endswith("/") else key + "/")
    else:
        href = url(f"/console/objects/{seg(bucket)}/object", key=key)
    return link(href, text, class_="mono")


def pager(base: str, next_token: str | None, **params: Any) -> Safe:
    """'Next page' through a List operation's NextToken (and back to the first page)."""
    links = []
    if params.get("token"):
        links.append(link(url(base, **{**params, "token": None}), "« First page"))
    if next_token:
        links.append(link(url(base, **{**params, "token": next_token}), "Next page »",
                          rel="next"))
    return el("nav", *links, class_="pager", aria_label="Pages") if links else Safe("")
