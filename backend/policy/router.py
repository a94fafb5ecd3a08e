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
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
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


async def _body(request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BadAuthRequest(f"request body is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_fields(request: Request) -> tuple[dict[str, Any], bool]:
    """The fields of a go-auth request and whether they came as JSON (else as a form)."""
    raw = await _body(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
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


def _reply(request: Request, ok: bool, error: str, status_code: int) -> Response:
    # go-auth's "text" response mode wants the body "ok"; a URI such as
    # /mqtt/acl?response=text selects it (go-auth appends the URI verbatim).
    if request.query_params.get("response") == "text":
        return PlainTextResponse("ok" if ok else error or "denied", status_code=status_code)
    return JSONResponse({"ok": ok, "error": error}, status_code=status_code)


def _token(request: Request, fields: dict[str, Any]) -> str:
    """The JWT of a token client: the MQTT password, else a bearer header, else ""."""
    password = _text(fields, "password", required=False)
    if password:
        return password
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    return ""


def policy_router(service: PolicyService, metrics: BackendMetrics | None = None) -> APIRouter:
    """The three go-auth endpoints answering from ``service``."""
    counters = PolicyMetrics(metrics)
    router = APIRouter(prefix="/mqtt", tags=["mqtt-auth"])

    def answer(check: str, request: Request, decision: Decision) -> Response:
        counters.decisions.labels(check, "allow" if decision.allowed else "deny").inc()
        if not decision.allowed:
            log.debug("mqtt %s check denied: %s", check, decision.reason)
        return _reply(request, decision.allowed, decision.reason, 200 if decision.allowed else 403)

    def refuse(check: str, request: Request, error: BadAuthRequest) -> Response:
        counters.decisions.labels(check, "bad_request").inc()
        log.info("malformed mqtt %s check: %s", check, error.message)
        return _reply(request, False, error.message, 400)

    async def user(request: Request) -> Response:
        """Authentication of token clients (certificate clients are never asked)."""
        try:
            fields, _ = await read_fields(request)
            username = _text(fields, "username", required=False)
            _text(fields, "clientid", required=False)
            token = _token(request, fields)
        except BadAuthRequest as error:
            return refuse("user", request, error)
        return answer("user", request, await service.authenticate(username, token))

    async def superuser(request: Request) -> Response:
        """Superuser check (asked before every ACL check): roles granting ``superuser``."""
        try:
            fields, _ = await read_fields(request)
            username = _text(fields, "username", required=False)
            token = _token(request, fields)
        except BadAuthRequest as error:
            return refuse("superuser", request, error)
        return answer("superuser", request, await service.superuser(username, token))

    async def acl(request: Request) -> Response:
        """May ``username`` read (1), write (2) or subscribe (4) ``topic``?"""
        try:
            fields, as_json = await read_fields(request)
            username = _text(fields, "username", required=False)
            clientid = _text(fields, "clientid", required=False)
            topic = _text(fields, "topic")
            acc = _acc(fields, as_json)
            token = _token(request, fields)
        except BadAuthRequest as error:
            return refuse("acl", request, error)
        decision = await service.check(username, clientid, topic, acc, token)
        return answer("acl", request, decision)

    # One route per method: a multi-method route would give OpenAPI one operation id twice.
    for path, endpoint in (("/user", user), ("/superuser", superuser), ("/acl", acl)):
        for method in _METHODS:
            router.add_api_route(
                path,
                endpoint,
                methods=[method],
                operation_id=f"mqtt_{path.strip('/')}_{method.lower()}",
            )
    return router
