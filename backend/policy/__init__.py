"""MQTT authorization for a site: mosquitto-go-auth's HTTP backend and its ACL engine.

* :mod:`backend.policy.topics` — MQTT 5 §4.7 topic names, filters, matching and
  subscription coverage (pure).
* :mod:`backend.policy.engine` — :class:`AclEngine` over :class:`Rule` s (subjects, topic
  filters with ``%u``/``%c``, actions, allow/deny; deny wins, default deny) and
  :func:`default_rules`, the bench's Mosquitto ACL file as rules (pure).
* :mod:`backend.policy.router` — ``POST /mqtt/user``, ``/mqtt/superuser``, ``/mqtt/acl``
  for go-auth's JSON and form modes (mounted by ``create_app``).

Broker side (mosquitto-go-auth)::

    auth_plugin /usr/lib/mosquitto-go-auth.so
    auth_opt_backends http
    auth_opt_http_host 127.0.0.1
    auth_opt_http_port <AURORA_API_PORT>
    auth_opt_http_getuser_uri /mqtt/user
    auth_opt_http_superuser_uri /mqtt/superuser
    auth_opt_http_aclcheck_uri /mqtt/acl
    auth_opt_http_response_mode json
"""

from backend.policy.engine import (
    ANY_DEVICE,
    PROBE_IDENTITY,
    Access,
    AclEngine,
    Decision,
    Effect,
    Rule,
    backend_identity,
    default_rules,
    site_engine,
)
from backend.policy.errors import BadAuthRequest, InvalidRule, PolicyError

__all__ = [
    "ANY_DEVICE",
    "PROBE_IDENTITY",
    "Access",
    "AclEngine",
    "BadAuthRequest",
    "Decision",
    "Effect",
    "InvalidRule",
    "PolicyError",
    "Rule",
    "backend_identity",
    "default_rules",
    "site_engine",
]
