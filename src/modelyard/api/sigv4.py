"""AWS request signatures: Version 4 (headers and presigned URLs) and S3's legacy query form.

boto3 still presigns S3 URLs in us-east-1 with Signature Version 2
(``?AWSAccessKeyId=...&Signature=...&Expires=...``), so that form is verified too, for S3
only.

The server recomputes the signature from what arrived on the wire (method, raw path,
query, signed headers, payload hash) and compares it, in constant time, with the one the
client sent. See https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv4.html.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from calendar import timegm
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from time import strptime
from urllib.parse import quote, unquote

from .errors import AwsError

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_PRESIGN_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Authorization:
    """What a request claims about its signature, before verification."""

    access_key_id: str
    date: str  # YYYYMMDD from the credential scope
    region: str
    service: str  # signing name: s3, sagemaker, sts, iam, logs, ...
    signed_headers: tuple[str, ...]
    signature: str
    timestamp: str  # X-Amz-Date, e.g. 20261123T120000Z
    presigned: bool
    expires_seconds: int | None = None
    version: int = 4
    expires_at: float | None = None  # Signature Version 2: absolute expiry, epoch seconds


class AuthFailure(AwsError):
    """An authentication error; ``kind`` lets each protocol pick its own error code."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(kind, message, status=403)
        self.kind = kind


def read_authorization(headers: Mapping[str, str], query: Mapping[str, str]) -> Authorization:
    """Find the signature in the Authorization header or the presigned-URL query."""
    header = headers.get("authorization")
    if header:
        return _from_header(header, headers)
    if "X-Amz-Signature" in query or "X-Amz-Credential" in query:
        return _from_query(query)
    if "AWSAccessKeyId" in query and "Signature" in query:
        return _from_v2_query(query)
    raise AuthFailure(
        "missing",
        "The request is not signed. Sign it with AWS Signature Version 4 using the access "
        "key modelyard printed at start-up (set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).",
    )


def _from_header(header: str, headers: Mapping[str, str]) -> Authorization:
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise AuthFailure(
            "malformed",
            f"Unsupported authorization algorithm {algorithm!r}; modelyard accepts {ALGORITHM} "
            "(Signature Version 4) only.",
        )
    parts: dict[str, str] = {}
    for piece in rest.split(","):
        name, _, value = piece.strip().partition("=")
        parts[name] = value
    try:
        credential, signed, signature = (
            parts["Credential"], parts["SignedHeaders"], parts["Signature"]
        )
    except KeyError as missing:
        raise AuthFailure("malformed", f"Authorization header lacks {missing.args[0]}.") from None
    timestamp = headers.get("x-amz-date") or ""
    return _authorization(credential, signed, signature, timestamp, presigned=False)


def _from_query(query: Mapping[str, str]) -> Authorization:
    if query.get("X-Amz-Algorithm") != ALGORITHM:
        raise AuthFailure("malformed", f"X-Amz-Algorithm must be {ALGORITHM}.")
    try:
        expires = int(query.get("X-Amz-Expires", "0"))
    except ValueError:
        raise AuthFailure("malformed", "X-Amz-Expires must be a number of seconds.") from None
    if not 0 < expires <= MAX_PRESIGN_SECONDS:
        raise AuthFailure(
            "malformed",
            f"X-Amz-Expires must be between 1 and {MAX_PRESIGN_SECONDS} seconds (7 days).",
        )
    return _authorization(
        query.get("X-Amz-Credential", ""),
        query.get("X-Amz-SignedHeaders", ""),
        query.get("X-Amz-Signature", ""),
        query.get("X-Amz-Date", ""),
        presigned=True,
        expires=expires,
    )


def _from_v2_query(query: Mapping[str, str]) -> Authorization:
    try:
        expires_at = float(query["Expires"])
    except (KeyError, ValueError):
        raise AuthFailure("malformed", "A Signature Version 2 URL needs Expires (epoch seconds).") from None
    return Authorization(
        access_key_id=query["AWSAccessKeyId"], date="", region="", service="s3",
        signed_headers=(), signature=query["Signature"], timestamp="", presigned=True,
        version=2, expires_at=expires_at,
    )


def _authorization(
    credential: str, signed: str, signature: str, timestamp: str, *, presigned: bool,
    expires: int | None = None,
) -> Authorization:
    scope = credential.split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise AuthFailure(
            "malformed",
            "Credential must read <access-key>/<yyyymmdd>/<region>/<service>/aws4_request.",
        )
    if not timestamp:
        raise AuthFailure("malformed", "The request has no X-Amz-Date; SigV4 requires it.")
    return Authorization(
        access_key_id=scope[0],
        date=scope[1],
        region=scope[2],
        service=scope[3],
        signed_headers=tuple(signed.split(";")) if signed else (),
        signature=signature,
        timestamp=timestamp,
        presigned=presigned,
        expires_seconds=expires,
    )


def verify(
    auth: Authorization,
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    payload_hash: str,
    secret_for: Callable[[str], str | None],
    now: float,
    max_skew_seconds: int,
    resource_path: str | None = None,
) -> None:
    """Raise ``AuthFailure`` unless the request carries a valid, current signature.

    ``resource_path`` is S3's full path including the bucket, needed for Version 2 URLs
    of virtual-hosted requests; it defaults to ``raw_path``.
    """
    secret = secret_for(auth.access_key_id)
    if secret is None:
        raise AuthFailure(
            "unknown-key",
            f"The access key {auth.access_key_id} is not known to this modelyard server. "
            "Use the key it printed at start-up (or MODELYARD_ACCESS_KEY_ID).",
        )
    if auth.version == 2:
        _verify_v2_query(auth, method, resource_path or raw_path, raw_query, secret, now)
        return
    signed_at = _parse_amz_date(auth.timestamp)
    if auth.presigned:
        if now > signed_at + (auth.expires_seconds or 0):
            raise AuthFailure("expired", "Request has expired: the presigned URL is past X-Amz-Expires.")
        if signed_at - now > max_skew_seconds:
            raise AuthFailure("skewed", "The presigned URL is dated in the future.")
    elif abs(now - signed_at) > max_skew_seconds:
        raise AuthFailure(
            "skewed",
            "The difference between the request time and the server's time is too large "
            f"(over {max_skew_seconds // 60} minutes). Check this machine's clock.",
        )
    if "host" not in auth.signed_headers:
        raise AuthFailure("malformed", "The Host header must be signed.")
    canonical = canonical_request(
        method=method,
        path=raw_path if auth.service == "s3" else quote(normalize_path(raw_path), safe="/~"),
        query=canonical_query(raw_query, drop_signature=auth.presigned),
        headers=headers,
        signed_headers=auth.signed_headers,
        payload_hash=payload_hash,
    )
    scope = f"{auth.date}/{auth.region}/{auth.service}/aws4_request"
    string_to_sign = "\n".join(
        [ALGORITHM, auth.timestamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = signing_key(secret, auth.date, auth.region, auth.service)
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, auth.signature):
        raise AuthFailure(
            "mismatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your secret access key and signing method.",
        )


# Sub-resources that Version 2 signs, as botocore's HmacV1Auth lists them.
_V2_SUBRESOURCES = frozenset("""
accelerate acl cors defaultObjectAcl location logging partNumber policy requestPayment torrent
versioning versionId versions website uploads uploadId response-content-type
response-content-language response-expires response-cache-control response-content-disposition
response-content-encoding delete lifecycle tagging restore storageClass notification replication
analytics metrics inventory select select-type object-lock
""".split())


def _verify_v2_query(
    auth: Authorization, method: str, resource_path: str, raw_query: str, secret: str, now: float
) -> None:
    if auth.expires_at is not None and now > auth.expires_at:
        raise AuthFailure("expired", "Request has expired: the presigned URL is past Expires.")
    pairs = [piece.partition("=") for piece in raw_query.split("&") if piece]
    values = {key: unquote(value) for key, _, value in pairs}
    amz_headers = sorted(
        (key.lower(), value) for key, value in values.items() if key.lower().startswith("x-amz-")
    )
    resource = resource_path
    subresources = sorted(
        (key, unquote(value)) for key, _, value in pairs if key in _V2_SUBRESOURCES
    )
    if subresources:
        resource += "?" + "&".join(f"{key}={value}" if value else key for key, value in subresources)
    lines = [method.upper(), values.get("content-md5", ""), values.get("content-type", ""),
             values["Expires"]]
    lines += [f"{key}:{value}" for key, value in amz_headers]
    lines.append(resource)
    digest = hmac.new(secret.encode(), "\n".join(lines).encode(), hashlib.sha1).digest()
    expected = base64.b64encode(digest).decode()
    if not hmac.compare_digest(expected, auth.signature):
        raise AuthFailure(
            "mismatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your secret access key and signing method.",
        )


def canonical_request(
    *, method: str, path: str, query: str, headers: Mapping[str, str],
    signed_headers: tuple[str, ...], payload_hash: str,
) -> str:
    lines = [method.upper(), path or "/", query]
    for name in signed_headers:
        value = headers.get(name)
        if value is None:
            raise AuthFailure("mismatch", f"The signed header {name!r} is missing from the request.")
        lines.append(f"{name}:{' '.join(value.split())}")
    lines.append("")
    lines.append(";".join(signed_headers))
    lines.append(payload_hash)
    return "\n".join(lines)


def canonical_query(raw_query: str, *, drop_signature: bool) -> str:
    pairs = []
    for piece in raw_query.split("&") if raw_query else []:
        if not piece:
            continue
        key, _, value = piece.partition("=")
        key, value = unquote(key), unquote(value)
        if drop_signature and key == "X-Amz-Signature":
            continue
        pairs.append((quote(key, safe="-_.~"), quote(value, safe="-_.~")))
    return "&".join(f"{key}={value}" for key, value in sorted(pairs))


def normalize_path(path: str) -> str:
    """RFC 3986 dot-segment removal, as botocore applies before signing non-S3 requests."""
    if not path:
        return "/"
    output: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if output:
                output.pop()
            continue
        output.append(segment)
    normalized = "/" + "/".join(output)
    if path.endswith("/") and normalized != "/":
        normalized += "/"
    return normalized


@lru_cache(maxsize=64)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The day's key for one region and service: four HMACs, so derived once and cached
    (a key is valid for a whole day; a few dozen cover every scope in use)."""
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


@lru_cache(maxsize=256)
def _parse_amz_date(value: str) -> float:
    # Cached: clients sign with one-second resolution, so concurrent requests share a
    # timestamp, and strptime costs as much as the rest of a signature check.
    try:
        return float(timegm(strptime(value, "%Y%m%dT%H%M%SZ")))
    except ValueError:
        raise AuthFailure(
            "malformed", f"X-Amz-Date {value!r} is not in the form YYYYMMDDTHHMMSSZ."
        ) from None
