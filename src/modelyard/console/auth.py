"""Console sessions: sign in with the API's own access key id and secret access key.

A session is a signed cookie, not a stored row: ``<payload>.<HMAC-SHA256>`` where the
payload (base64url JSON) holds the access key id, a random session id and the expiry, and
the HMAC key is derived from the server's secret access key. Nothing has to be written to
sign in, every server process sharing the credentials accepts the cookie, a restart keeps
sessions, and rotating the credentials ends every session at once. The cookie is
HTTP-only, ``SameSite=Strict``, ``Secure`` behind HTTPS, and expires (browser and server
side: ``MODELYARD_CONSOLE_SESSION_SECONDS``, default 8 hours; expiry uses the real clock,
as SigV4 does). Signing out clears the cookie; a copied cookie stays valid until it
expires, as a presigned URL does.

Every action (POST) carries a CSRF token bound to the session (an HMAC of the session id)
in a hidden form field, compared in constant time; the sign-in form uses a double-submit
token (a random cookie repeated in the form), so nobody can sign a browser in as them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from ..platform import Platform

SESSION_COOKIE = "modelyard_console"
SIGNIN_COOKIE = "modelyard_console_signin"
DEFAULT_SESSION_SECONDS = 8 * 3600


@dataclass(frozen=True)
class Session:
    access_key_id: str
    session_id: str
    expires: float
    csrf_token: str


def session_seconds() -> int:
    configured = os.environ.get("MODELYARD_CONSOLE_SESSION_SECONDS", "")
    return int(configured) if configured.isdigit() and int(configured) > 0 \
        else DEFAULT_SESSION_SECONDS


def _key(platform: "Platform") -> bytes:
    secret = platform.settings.credentials.secret_access_key.encode()
    return hmac.new(secret, b"modelyard-console-session-v1", hashlib.sha256).digest()


def _sign(key: bytes, data: bytes) -> str:
    return base64.urlsafe_b64encode(hmac.new(key, data, hashlib.sha256).digest()) \
        .decode().rstrip("=")


def credentials_match(platform: "Platform", access_key_id: str, secret: str) -> bool:
    """The API's credentials, compared in constant time (both parts, always)."""
    credentials = platform.settings.credentials
    key_ok = hmac.compare_digest(access_key_id.strip().encode(),
                                 credentials.access_key_id.encode())
    secret_ok = hmac.compare_digest(secret.strip().encode(),
                                    credentials.secret_access_key.encode())
    return bool(credentials.access_key_id) and key_ok and secret_ok


def new_session_cookie(platform: "Platform", access_key_id: str) -> tuple[str, int]:
    """(cookie value, lifetime in seconds) for a fresh session."""
    lifetime = session_seconds()
    payload = json.dumps({"k": access_key_id, "s": secrets.token_urlsafe(18),
                          "e": int(time.time()) + lifetime}, separators=(",", ":")).encode()
    body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    return f"{body}.{_sign(_key(platform), body.encode())}", lifetime


def read_session(platform: "Platform", request: Request) -> Session | None:
    """The request's valid, unexpired session, or None."""
    value = request.cookies.get(SESSION_COOKIE, "")
    body, _, signature = value.partition(".")
    if not body or not signature:
        return None
    key = _key(platform)
    if not hmac.compare_digest(signature.encode(), _sign(key, body.encode()).encode()):
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        access_key_id, session_id, expires = str(payload["k"]), str(payload["s"]), \
            float(payload["e"])
    except (ValueError, KeyError, TypeError):
        return None
    if expires <= time.time() or access_key_id != platform.settings.credentials.access_key_id:
        return None
    return Session(access_key_id, session_id, expires,
                   _sign(key, b"csrf:" + session_id.encode()))


def csrf_ok(session: Session, token: str) -> bool:
    return bool(token) and hmac.compare_digest(token.encode(), session.csrf_token.encode())


def set_cookie(response: Response, request: Request, name: str, value: str,
               max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/console",
                        httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


def clear_cookie(response: Response, request: Request, name: str) -> None:
    set_cookie(response, request, name, "", 0)


def new_signin_token() -> str:
    return secrets.token_urlsafe(18)


def signin_token_ok(request: Request, token: str) -> bool:
    expected = request.cookies.get(SIGNIN_COOKIE, "")
    return bool(expected) and bool(token) and hmac.compare_digest(token.encode(),
                                                                  expected.encode())
