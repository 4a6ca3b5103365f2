"""Objects: buckets, a bucket's prefixes and objects (ListObjectsV2 with ``/`` as the
delimiter, paged), an object's metadata (HeadObject) and its download (GetObject)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.responses import StreamingResponse
from starlette.routing import Route

from .html import Safe, definition_list, el, link, pager, seg, table, url, when
from .page import SECURITY_HEADERS, View, breadcrumbs, heading, page

if TYPE_CHECKING:
    from ..platform import Platform

PAGE_SIZE = 200


def bucket_url(bucket: str, prefix: str = "") -> str:
    return url(f"/console/objects/{seg(bucket)}", prefix=prefix)


def object_url(bucket: str, key: str) -> str:
    return url(f"/console/objects/{seg(bucket)}/object", key=key)


def download_url(bucket: str, key: str) -> str:
    return url(f"/console/objects/{seg(bucket)}/download", key=key)


def list_buckets(view: View) -> tuple[str, Safe]:
    result = view.call("s3", "ListBuckets", {})
    rows = [[link(bucket_url(b["Name"]), b["Name"]), when(b.get("CreationDate")),
             b.get("BucketRegion") or ""] for b in result.get("Buckets", [])]
    return "Objects", el("section", heading("Buckets"),
                         table(["Bucket", "Created", "Region"], rows, empty="No buckets yet.",
                               id="buckets"))


def _size(value: Any) -> str:
    size = float(value or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(value)


def _crumbs(bucket: str, prefix: str, last: str | None = None) -> Safe:
    parts: list[tuple[str, Any]] = [("/console/objects", "Buckets"),
                                    (bucket_url(bucket), bucket)]
    walked = ""
    for piece in [p for p in prefix.split("/") if p]:
        walked += piece + "/"
        parts.append((bucket_url(bucket, walked), piece))
    if last is not None:
        parts.append(("", last))
    return breadcrumbs(*parts)


def list_objects(view: View) -> tuple[str, Safe]:
    bucket = view.params["bucket"]
    prefix, token = view.arg("prefix"), view.arg("token")
    request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/",
                               "MaxKeys": PAGE_SIZE}
    if token:
        request["ContinuationToken"] = token
    result = view.call("s3", "ListObjectsV2", request)
    rows: list[list[Any]] = [[link(bucket_url(bucket, p["Prefix"]),
                                   p["Prefix"][len(prefix):]), "folder", "", ""]
                             for p in result.get("CommonPrefixes") or []]
    rows += [[link(object_url(bucket, item["Key"]), item["Key"][len(prefix):]),
              _size(item.get("Size")), when(item.get("LastModified")),
              link(download_url(bucket, item["Key"]), "Download",
                   aria_label=f"Download {item['Key']}")]
             for item in result.get("Contents") or []]
    body = el("section", _crumbs(bucket, prefix), heading(f"s3://{bucket}/{prefix}"),
              table(["Name", "Size", "Last modified", ""], rows, empty="Empty.", id="objects"),
              pager(f"/console/objects/{seg(bucket)}", result.get("NextContinuationToken"),
                    prefix=prefix, token=token))
    return bucket, body


def show_object(view: View) -> tuple[str, Safe]:
    bucket, key = view.params["bucket"], view.arg("key")
    head = view.call("s3", "HeadObject", {"Bucket": bucket, "Key": key})
    prefix = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
    metadata = head.get("Metadata") or {}
    body = el("section", _crumbs(bucket, prefix, key.rsplit("/", 1)[-1]),
              heading(f"s3://{bucket}/{key}"),
              definition_list([("Size", _size(head.get("ContentLength"))),
                               ("Content type", head.get("ContentType")),
                               ("ETag", head.get("ETag")),
                               ("Last modified", when(head.get("LastModified"))),
                               ("Encryption", head.get("ServerSideEncryption"))]),
              el("h2", "User metadata"),
              table(["Key", "Value"], sorted(map(list, metadata.items())), empty="None."),
              el("p", link(download_url(bucket, key), "Download", class_="button")))
    return key, body


def download(view: View) -> StreamingResponse:
    bucket, key = view.params["bucket"], view.arg("key")
    result = view.call("s3", "GetObject", {"Bucket": bucket, "Key": key})
    filename = key.rsplit("/", 1)[-1] or "object"
    # Always an attachment of opaque bytes: a stored HTML file never renders as a page here.
    return StreamingResponse(result["Body"].iter_chunks(), headers={
        **SECURITY_HEADERS,
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
        "Content-Length": str(result.get("ContentLength", "")),
    }, media_type="application/octet-stream")


def routes(platform: "Platform") -> list[Route]:
    active = "/console/objects"
    return [
        Route("/console/objects", page(platform, list_buckets, active), methods=["GET"]),
        Route("/console/objects/{bucket}", page(platform, list_objects, active),
              methods=["GET"]),
        Route("/console/objects/{bucket}/object", page(platform, show_object, active),
              methods=["GET"]),
        Route("/console/objects/{bucket}/download", page(platform, download, active),
              methods=["GET"]),
    ]
