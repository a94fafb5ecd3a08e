"""The mosquitto-go-auth HTTP backend: ``POST /mqtt/user``, ``/mqtt/superuser``, ``/mqtt/acl``.

The transport around :class:`~backend.policy.service.PolicyService` (DESIGN.md,
"mosquitto-go-auth HTTP backend protocol"):

* bodies come as JSON (``auth_opt_http_params_mode json``, ``acc`` a number) or as a form
  (``form``, ``acc`` a decimal string); both are read here, by Content-Type;
* 200 allows, 403 denies (go-auth treats every non-2xx as a deny), the body is
  ``{"ok": bool, "error": str}`` for the ``status`` and ``json`` response modes; for the
  ``text`` mode (body must be exactly ``ok``) configure the URIs with ``?response=text``;
* POST is go-auth's default; GET and PUT (``auth_opt_http_method``) are answered too;
* a body that cannot be read is 400 with what to send instead, never a 500 (go-auth may
  retry 5xx, and a broken request will not get better);
* a token client's JWT comes in the ``password`` field or as ``Authorization: Bearer``
  (the seed's debugging commands); certificate identities send neither.

These endpoints are the broker's: they decide, change nothing, and need no API token.

Decisions are counted in ``aurora_policy_decisions_total{check, result}``.

Speed: Mosquitto asks on its single thread for every publish and every delivered message,
so a check must cost little (seed 004: p99 < 10 ms; the bench's goal 1 ms). The checks
are answered by :class:`PolicyFastPath`, a plain ASGI middleware in front of the REST
API's stack (routing, dependency injection, request and response objects cost several
times the decision, measured with py-spy in ``make bench``'s policy figure). The FastAPI
routes remain for the OpenAPI document and answer through the same
:class:`PolicyEndpoints`, so both paths are one implementation.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import Counter

from backend.metrics import BackendMetrics
from backend.policy.engine import VALID_ACC, Decision
from backend.policy.errors import BadAuthRequest
from backend.policy.service import PolicyService

log = logging.getLogger(__name__)

#: A topic is at most 65,535 bytes; JSON escaping can grow it, the rest is a few fields.
MAX_BODY_BYTES = 512 * 1024
_JSON = "application/json"
_FORM = "application/x-www-form-urlencoded"
#: go-auth posts by default; ``auth_opt_http_method`` may make it GET or PUT (JSON body).
_METHODS = ["POST", "PUT", "GET"]
_SEND_INSTEAD = (
    f"send {_JSON} (auth_opt_http_params_mode json) or {_FORM} (auth_opt_http_params_mode form)"
)


class PolicyMetrics:
    """The policy service's counters, registered on the app's registry."""

    def __init__(self, metrics: BackendMetrics | None) -> None:
        self.decisions = Counter(
            "aurora_policy_decisions",
            "mosquitto-go-auth checks answered, by check (user|superuser|acl) and result",
            ["check", "result"],
            registry=metrics.registry if metrics is not None else None,
        )
        # One child per label pair, bound once: .labels() per check costs a lock and a
        # dict lookup on the hot path.
        self._children: dict[tuple[str, str], Any] = {}

    def count(self, check: str, result: str) -> None:
        """Count one answer."""
        child = self._children.get((check, result))
        if child is None:
            child = self._children[(check, result)] = self.decisions.labels(check, result)
        child.inc()


def parse_fields(raw: bytes, content_type: str) -> tuple[dict[str, Any], bool]:
    """The fields of a go-auth request body and whether they came as JSON (else a form).

    ``content_type`` is the header's value (parameters and case are ignored).
    """
    content_type = content_type.split(";", maxsplit=1)[0].strip().lower()
    if not content_type:
        # No header: guess from the first byte, a JSON object starts with "{".
        content_type = _JSON if raw.lstrip().startswith(b"{") else _FORM
    if content_type == _JSON or content_type.endswith("+json"):
        try:
            fields = json.loads(raw)
        except (UnicodeDecodeError, ValueError) as error:
            raise BadAuthRequest(f"body is not valid JSON ({error}); {_SEND_INSTEAD}") from None
        except RecursionError:
            raise BadAuthRequest("JSON body is nested too deeply; send a flat object") from None
        if not isinstance(fields, dict):
            raise BadAuthRequest(
                'JSON body must be an object such as {"username": "...", ...}, '
                f"not {type(fields).__name__}"
            )
        return fields, True
    if content_type == _FORM:
        try:
            pairs = parse_qsl(
                raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True, errors="strict"
            )
        except (UnicodeDecodeError, ValueError) as error:
            raise BadAuthRequest(f"form body cannot be read ({error}); {_SEND_INSTEAD}") from None
        form: dict[str, Any] = {}
        for key, value in pairs:
            if key in form:
                raise BadAuthRequest(f"form field {key!r} is given twice; send it once")
            form[key] = value
        return form, False
    raise BadAuthRequest(f"unsupported Content-Type {content_type!r}; {_SEND_INSTEAD}")


def _text(fields: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = fields.get(name)
    if value is None:
        if required:
            raise BadAuthRequest(f"field {name!r} is missing; go-auth always sends it")
        return ""
    if not isinstance(value, str):
        raise BadAuthRequest(f"field {name!r} must be a string, got {type(value).__name__}")
    return value


def _acc(fields: dict[str, Any], as_json: bool) -> int:
    value = fields.get("acc")
    wanted = "1 (read), 2 (write), 3 (readwrite) or 4 (subscribe)"
    if value is None:
        raise BadAuthRequest(f"field 'acc' is missing; send {wanted}")
    if as_json:
        # bool is an int in Python but never what go-auth sends.
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadAuthRequest(f"field 'acc' must be a JSON number: {wanted}, got {value!r}")
        acc = value
    else:
        # Length first: int() refuses strings of more than 4,300 digits with an error.
        if (
            not isinstance(value, str)
            or not 0 < len(value) <= 3
            or not (value.isascii() and value.isdigit())
        ):
            raise BadAuthRequest(f"form field 'acc' must be a decimal {wanted}, got {value!r}")
        acc = int(value)
    if acc not in VALID_ACC:
        raise BadAuthRequest(f"field 'acc' is {acc}; send {wanted}")
    return acc


def _token(fields: dict[str, Any], authorization: str) -> str:
    """The JWT of a token client: the MQTT password, else a bearer header, else ""."""
    password = _text(fields, "password", required=False)
    if password:
        return password
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    return ""


@dataclass(frozen=True, slots=True)
class CheckRequest:
    """What a check's HTTP request says, transport aside."""

    body: bytes
    content_type: str = ""
    authorization: str = ""
    #: go-auth's "text" response mode (the body must be exactly ``ok``); a URI such as
    #: /mqtt/acl?response=text selects it (go-auth appends the URI verbatim).
    text: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """The HTTP answer: 200 allows, 403 denies, 400 for a request that cannot be read."""

    status: int
    body: bytes
    content_type: str


#: Every allow is the same answer: built once.
_ALLOW_JSON = Reply(200, b'{"ok":true,"error":""}', _JSON)
_ALLOW_TEXT = Reply(200, b"ok", "text/plain; charset=utf-8")


def _reply(request: CheckRequest, ok: bool, error: str, status: int) -> Reply:
    if ok and status == 200:
        return _ALLOW_TEXT if request.text else _ALLOW_JSON
    if request.text:
        text = "ok" if ok else error or "denied"
        return Reply(status, text.encode(), "text/plain; charset=utf-8")
    body = json.dumps({"ok": ok, "error": error}, ensure_ascii=False, separators=(",", ":"))
    return Reply(status, body.encode(), _JSON)


class PolicyEndpoints:
    """The three checks, answered from a :class:`CheckRequest` (no HTTP framework)."""

    def __init__(self, service: PolicyService, metrics: BackendMetrics | None = None) -> None:
        self.service = service
        self.counters = PolicyMetrics(metrics)
        self.checks: dict[str, Callable[[CheckRequest], Awaitable[Reply]]] = {
            "user": self.user,
            "superuser": self.superuser,
            "acl": self.acl,
        }

    def _answer(self, check: str, request: CheckRequest, decision: Decision) -> Reply:
        self.counters.count(check, "allow" if decision.allowed else "deny")
        if not decision.allowed:
            log.debug("mqtt %s check denied: %s", check, decision.reason)
        return _reply(request, decision.allowed, decision.reason, 200 if decision.allowed else 403)

    def refuse(self, check: str, request: CheckRequest, error: BadAuthRequest) -> Reply:
        """The 400 for a request that cannot be read."""
        self.counters.count(check, "bad_request")
        log.info("malformed mqtt %s check: %s", check, error.message)
        return _reply(request, False, error.message, 400)

    async def user(self, request: CheckRequest) -> Reply:
        """Authentication of token clients (certificate clients are never asked)."""
        try:
            fields, _ = parse_fields(request.body, request.content_type)
            username = _text(fields, "username", required=False)
            _text(fields, "clientid", required=False)
            token = _token(fields, request.authorization)
        except BadAuthRequest as error:
            return self.refuse("user", request, error)
        return self._answer("user", request, await self.service.authenticate(username, token))

    async def superuser(self, request: CheckRequest) -> Reply:
        """Superuser check (asked before every ACL check): roles granting ``superuser``."""
        try:
            fields, _ = parse_fields(request.body, request.content_type)
            username = _text(fields, "username", required=False)
            token = _token(fields, request.authorization)
        except BadAuthRequest as error:
            return self.refuse("superuser", request, error)
        return self._answer("superuser", request, await self.service.superuser(username, token))

    async def acl(self, request: CheckRequest) -> Reply:
        """May ``username`` read (1), write (2) or subscribe (4) ``topic``?"""
        try:
            fields, as_json = parse_fields(request.body, request.content_type)
            username = _text(fields, "username", required=False)
            clientid = _text(fields, "clientid", required=False)
            topic = _text(fields, "topic")
            acc = _acc(fields, as_json)
            token = _token(fields, request.authorization)
        except BadAuthRequest as error:
            return self.refuse("acl", request, error)
        decision = await self.service.check(username, clientid, topic, acc, token)
        return self._answer("acl", request, decision)


def _text_mode(query: str) -> bool:
    return bool(query) and ("response", "text") in parse_qsl(query)


# ---------------------------------------------------------------- the FastAPI routes


async def _body(request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BadAuthRequest(f"request body is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def policy_router(endpoints: PolicyEndpoints) -> APIRouter:
    """The three go-auth endpoints as FastAPI routes (the OpenAPI document's view).

    :class:`PolicyFastPath` answers these paths before the routes are reached; both
    answer through ``endpoints``.
    """
    router = APIRouter(prefix="/mqtt", tags=["mqtt-auth"])

    def route(check: str) -> Callable[[Request], Awaitable[Response]]:
        answer = endpoints.checks[check]

        async def endpoint(request: Request) -> Response:
            text = _text_mode(request.url.query)
            try:
                raw = await _body(request)
            except BadAuthRequest as error:
                reply = endpoints.refuse(check, CheckRequest(b"", text=text), error)
            else:
                reply = await answer(
                    CheckRequest(
                        raw,
                        request.headers.get("content-type", ""),
                        request.headers.get("authorization", ""),
                        text,
                    )
                )
            return Response(reply.body, reply.status, media_type=reply.content_type)

        endpoint.__doc__ = answer.__doc__
        endpoint.__name__ = check
        return endpoint

    # One route per method: a multi-method route would give OpenAPI one operation id twice.
    for check in endpoints.checks:
        for method in _METHODS:
            router.add_api_route(
                f"/{check}",
                route(check),
                methods=[method],
                operation_id=f"mqtt_{check}_{method.lower()}",
            )
    return router


# ---------------------------------------------------------------- the fast path

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class PolicyFastPath:
    """ASGI middleware: answers ``/mqtt/{user,superuser,acl}`` itself, passes the rest on.

    Installed outermost among the app's middleware, so a check skips the REST API's
    stack entirely (see the module docstring).
    """

    def __init__(self, app: ASGIApp, endpoints: PolicyEndpoints) -> None:
        self.app = app
        self.endpoints = endpoints
        self.paths = {f"/mqtt/{check}": check for check in endpoints.checks}
        self.methods = frozenset(_METHODS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        check = self.paths.get(scope["path"]) if scope["type"] == "http" else None
        if check is None or scope["method"] not in self.methods:
            await self.app(scope, receive, send)
            return
        content_type = authorization = ""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"authorization":
                authorization = value.decode("latin-1")
        query = scope.get("query_string", b"")
        text = _text_mode(query.decode("latin-1")) if query else False
        raw = await _receive_body(receive)
        if raw is None:
            error = BadAuthRequest(f"request body is larger than {MAX_BODY_BYTES} bytes")
            reply = self.endpoints.refuse(check, CheckRequest(b"", text=text), error)
        else:
            reply = await self.endpoints.checks[check](
                CheckRequest(raw, content_type, authorization, text)
            )
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [
                    (b"content-type", reply.content_type.encode()),
                    (b"content-length", str(len(reply.body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": reply.body})


async def _receive_body(receive: Receive) -> bytes | None:
    """The request body, or None once it grows past :data:`MAX_BODY_BYTES`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def install_policy(app: Any, service: PolicyService, metrics: BackendMetrics | None) -> None:
    """Serve the go-auth endpoints on ``app`` (a FastAPI app): the fast path and the routes.

    Call it after the app's other middleware is added, so the fast path is outermost.
    """
    endpoints = PolicyEndpoints(service, metrics)
    app.include_router(policy_router(endpoints))
    app.add_middleware(PolicyFastPath, endpoints=endpoints)
