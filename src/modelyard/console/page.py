"""What every console page and action shares: the sign-in check, the layout, forms.

``page(handler)`` makes a Starlette endpoint of ``handler(view) -> Safe``: without a
session it answers 302 to the sign-in page; otherwise the handler runs in a worker thread
(it reads the store) and its markup is wrapped in the layout. ``action(handler)`` makes a
POST endpoint of ``handler(view, form) -> str`` (the URL to go back to): without a session
it answers 401, without the session's CSRF token 403; an ``AwsError`` from the operation
(validation, a wrong state) comes back to the page as a message. Actions run operations
only through ``view.call``, i.e. ``modelyard.dispatch.call``: the API's own validation and
handlers, with the signed-in access key as the caller.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from .. import dispatch
from ..api.errors import AwsError
from . import auth
from .html import Safe, el, esc, link, url

if TYPE_CHECKING:
    from ..platform import Platform

log = logging.getLogger("modelyard.console")

MAX_FORM_BYTES = 64 * 1024
# What the browser may load: only this server's own CSS and JS; no inline script.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; frame-ancestors 'none'; "
                               "form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
NAV = [("/console/", "Home"), ("/console/pipelines", "Pipelines"), ("/console/jobs", "Jobs"),
       ("/console/models", "Models"), ("/console/endpoints", "Endpoints"),
       ("/console/monitoring", "Monitoring"), ("/console/alarms", "Alarms"),
       ("/console/objects", "Objects")]


@dataclass
class View:
    """One signed-in request: its platform, query, path parameters and session."""

    platform: "Platform"
    request: Request
    session: auth.Session

    @property
    def params(self) -> dict[str, str]:
        return dict(self.request.path_params)

    def arg(self, name: str, default: str = "") -> str:
        return self.request.query_params.get(name, default)

    def call(self, service: str, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        """The operation, exactly as a client with the session's access key would run it."""
        return dispatch.call(self.platform, service, operation, request,
                             caller=self.session.access_key_id)

    def now(self) -> float:
        return self.platform.clock.now()

    def form(self, action_url: str, *fields: Any, button: str, confirm: str | None = None,
             class_: str = "inline") -> Safe:
        """A POST form carrying the CSRF token."""
        return el("form", el("input", type="hidden", name="csrf", value=self.session.csrf_token),
                  *fields, el("button", button, type="submit", data_confirm=confirm),
                  method="post", action=action_url, class_=class_)


def layout(title: str, body: Any, *, session: auth.Session | None, active: str = "",
           request: Request | None = None) -> Safe:
    notices = []
    if request is not None:
        if request.query_params.get("ok"):
            notices.append(el("p", request.query_params["ok"], class_="notice ok", role="status"))
        if request.query_params.get("error"):
            notices.append(el("p", request.query_params["error"], class_="notice error",
                              role="alert"))
    nav = Safe("")
    if session is not None:
        nav = el("nav", el("ul", *(el("li", link(href, label, aria_current="page"
                                                  if href == active else None))
                                   for href, label in NAV)),
                 el("form", el("input", type="hidden", name="csrf", value=session.csrf_token),
                    el("button", "Sign out", type="submit", class_="link"),
                    method="post", action="/console/signout", class_="signout"),
                 class_="top", aria_label="Console")
    return Safe("<!doctype html>" + el(
        "html",
        el("head", el("meta", charset="utf-8"),
           el("meta", name="viewport", content="width=device-width, initial-scale=1"),
           el("title", f"{title} · modelyard"),
           el("link", rel="stylesheet", href="/console/static/console.css"),
           el("script", src="/console/static/console.js", defer=True)),
        el("body", el("header", link("/console/", "modelyard", class_="brand"), nav),
           el("main", *notices, body, id="main"), ),
        lang="en"))


def _html(markup: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(markup, status_code=status, headers=SECURITY_HEADERS)


def page(platform: "Platform", handler: Callable[[View], tuple[str, Any]],
         active: str = "") -> Callable[[Request], Any]:
    """A signed-in GET page: ``handler(view) -> (title, body markup)`` or a Response."""

    async def endpoint(request: Request) -> Response:
        session = auth.read_session(platform, request)
        if session is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(url("/console/signin", next=target), status_code=302)
        view = View(platform, request, session)
        started = time.perf_counter()
        try:
            result = await run_in_threadpool(handler, view)
        except AwsError as error:
            status = 404 if "NotFound" in error.code or "NoSuch" in error.code \
                or "does not exist" in error.message else 400
            result = ("Not available", el("section", el("h1", "Not available"),
                                          el("p", error.message, class_="notice error")))
            return _html(layout(result[0], result[1], session=session, active=active,
                                request=request), status)
        if isinstance(result, Response):
            return result
        title, body = result
        response = _html(layout(title, body, session=session, active=active, request=request))
        response.headers["Server-Timing"] = \
            f"render;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response

    return endpoint


def action(platform: "Platform", handler: Callable[[View, dict[str, str]], str]
           ) -> Callable[[Request], Any]:
    """A signed-in POST: 401 without a session, 403 without its CSRF token; then
    ``handler(view, form) -> URL`` runs and the browser is sent there (303), with the
    operation's error message when it refused."""

    async def endpoint(request: Request) -> Response:
        session = auth.read_session(platform, request)
        if session is None:
            return PlainTextResponse("Sign in first: this action needs a console session.",
                                     status_code=401, headers=SECURITY_HEADERS)
        form = await read_form(request)
        if form is None:
            return PlainTextResponse("The form is too large or not a form.", status_code=400)
        if not auth.csrf_ok(session, form.get("csrf", "")) or not same_origin(request):
            return PlainTextResponse("Refused: the form's CSRF token is missing or wrong "
                                     "(reload the page and try again).", status_code=403,
                                     headers=SECURITY_HEADERS)
        view = View(platform, request, session)
        back = back_url(request, form)
        try:
            target = await run_in_threadpool(handler, view, form)
        except AwsError as error:
            return RedirectResponse(_with(back, error=f"{error.code}: {error.message}"),
                                    status_code=303)
        return RedirectResponse(target or back, status_code=303)

    return endpoint


def _with(target: str, **params: str) -> str:
    base, _, query = target.partition("?")
    kept = [(k, v) for k, v in parse_qsl(query) if k not in ("ok", "error")]
    from urllib.parse import urlencode
    return base + "?" + urlencode(kept + list(params.items()))


def done(target: str, message: str) -> str:
    """``target`` (a console path, else home) with a success message to show."""
    return _with(target if is_console_path(target) else "/console/", ok=message)


def back_url(request: Request, form: dict[str, str]) -> str:
    """Where an action returns: the form's ``back`` field when it is a console path."""
    back = form.get("back", "")
    return back if is_console_path(back) else "/console/"


def is_console_path(target: str) -> bool:
    parts = urlsplit(target)
    return (not parts.scheme and not parts.netloc and target.startswith("/console")
            and not target.startswith("//") and "\\" not in target)


def same_origin(request: Request) -> bool:
    """A browser's Origin header, when sent, must name this server."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def read_form(request: Request) -> dict[str, str] | None:
    """An urlencoded form body (the console's only kind), bounded."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return None


def heading(title: Any, *extra: Any) -> Safe:
    return el("div", el("h1", title), *extra, class_="heading")


def breadcrumbs(*parts: tuple[str, Any]) -> Safe:
    items = [el("li", link(href, text) if href else text) for href, text in parts]
    return el("nav", el("ol", *items), class_="crumbs", aria_label="Breadcrumb")


__all__ = ["View", "page", "action", "layout", "done", "heading", "breadcrumbs", "esc",
           "signin_page"]


def signin_page(platform: "Platform") -> tuple[Callable, Callable, Callable]:
    """GET and POST /console/signin, and POST /console/signout."""

    async def show(request: Request) -> Response:
        if auth.read_session(platform, request) is not None:
            return RedirectResponse(_next(request.query_params.get("next", "")), 302)
        return _signin_form(request, "")

    async def submit(request: Request) -> Response:
        form = await read_form(request) or {}
        if not auth.signin_token_ok(request, form.get("token", "")) or not same_origin(request):
            return _signin_form(request, "The sign-in form expired; please try again.", 403)
        if not auth.credentials_match(platform, form.get("access_key_id", ""),
                                      form.get("secret_access_key", "")):
            log.info("console sign-in refused")
            return _signin_form(request, "Wrong access key id or secret access key.", 401)
        value, lifetime = auth.new_session_cookie(platform, form["access_key_id"].strip())
        response = RedirectResponse(_next(form.get("next", "")), status_code=303)
        auth.set_cookie(response, request, auth.SESSION_COOKIE, value, lifetime)
        auth.clear_cookie(response, request, auth.SIGNIN_COOKIE)
        return response

    async def signout(request: Request) -> Response:
        session = auth.read_session(platform, request)
        if session is None:
            return PlainTextResponse("Not signed in.", status_code=401)
        form = await read_form(request) or {}
        if not auth.csrf_ok(session, form.get("csrf", "")):
            return PlainTextResponse("Refused: CSRF token missing or wrong.", status_code=403)
        response = RedirectResponse("/console/signin", status_code=303)
        auth.clear_cookie(response, request, auth.SESSION_COOKIE)
        return response

    return show, submit, signout


def _next(target: str) -> str:
    return target if is_console_path(target) else "/console/"


def _signin_form(request: Request, message: str, status: int = 200) -> Response:
    token = auth.new_signin_token()
    body = el("section", el("h1", "Sign in"),
              el("p", "Use the server's access key id and secret access key: the "
                      "credentials the API accepts (modelyard server prints them)."),
              el("p", message, class_="notice error", role="alert") if message else "",
              el("form",
                 el("input", type="hidden", name="token", value=token),
                 el("input", type="hidden", name="next",
                    value=request.query_params.get("next", "")),
                 el("label", "Access key id", el("input", name="access_key_id",
                                                 autocomplete="username", required=True,
                                                 autofocus=True, spellcheck="false")),
                 el("label", "Secret access key",
                    el("input", name="secret_access_key", type="password",
                       autocomplete="current-password", required=True)),
                 el("button", "Sign in", type="submit"),
                 method="post", action="/console/signin", class_="signin"),
              class_="narrow")
    response = _html(layout("Sign in", body, session=None), status)
    auth.set_cookie(response, request, auth.SIGNIN_COOKIE, token, 3600)
    return response


# --- list pages ----------------------------------------------------------------------------

PAGE_SIZE = 50  # rows per list page


def list_request(view: View, **filters: str) -> dict[str, Any]:
    """A ``List*`` request for a list page: newest first, one page, from the page's ``token``.

    ``filters`` maps a request member to the query argument that fills it, e.g.
    ``NameContains="name"``; an empty argument leaves its member out."""
    request: dict[str, Any] = {"MaxResults": PAGE_SIZE, "SortBy": "CreationTime",
                               "SortOrder": "Descending"}
    for member, argument in (("NextToken", "token"), *filters.items()):
        if view.arg(argument):
            request[member] = view.arg(argument)
    return request


def filter_form(view: View, *, label: str = "Name contains ", argument: str = "name",
                statuses: tuple[str, ...] = (), hidden: dict[str, str] | None = None) -> Safe:
    """The GET form above a list: a name field and, given ``statuses``, a status choice."""
    state = view.arg("status")
    fields: list[Any] = [el("input", type="hidden", name=key, value=value)
                         for key, value in (hidden or {}).items()]
    fields.append(el("label", label, el("input", name=argument, value=view.arg(argument),
                                        type="search")))
    if statuses:
        fields.append(el("label", "Status ",
                         el("select", el("option", "any", value=""),
                            *(el("option", s, value=s, selected=s == state) for s in statuses),
                            name="status")))
    return el("form", *fields, el("button", "Filter", type="submit"), method="get",
              class_="filters")


def read_json_object(view: View, max_bytes: int, uri: str) -> Any:
    """The JSON document at ``uri`` (``s3://bucket/key``), read through the S3 API; None if
    it is missing, unreadable, larger than ``max_bytes`` or not JSON."""
    bucket, _, key = uri[len("s3://"):].partition("/")
    try:
        result = view.call("s3", "GetObject", {"Bucket": bucket, "Key": key})
    except AwsError:
        return None
    body = result["Body"]
    try:
        if (result.get("ContentLength") or 0) > max_bytes:
            return None
        data = b"".join(body.iter_chunks())
    finally:
        body.close()
    try:
        return json.loads(data)
    except ValueError:
        return None
