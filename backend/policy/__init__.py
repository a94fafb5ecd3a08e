"""MQTT authorization for a site: mosquitto-go-auth's HTTP backend, seed 004's rule model.

* :mod:`backend.policy.topics` — MQTT 5 §4.7 topic names, filters, matching and
  subscription coverage (pure).
* :mod:`backend.policy.rules` — the rule model (subjects, topics, actions, effect, roles)
  and the loader of a ``celine.json``-shaped rules file (pure).
* :mod:`backend.policy.engine` — :class:`PolicyEngine` (roles, then rules, deny wins,
  default deny), certificate identities as subjects, the bench's rules file (pure).
* :mod:`backend.policy.tokens` — JWT validation against a JWKS, claims -> subject.
* :mod:`backend.policy.service` — who asks (token or certificate) and the three answers.
* :mod:`backend.policy.router` — ``POST /mqtt/user``, ``/mqtt/superuser``, ``/mqtt/acl``
  for go-auth's JSON and form modes (mounted by ``create_app``).

Broker side (mosquitto-go-auth, or the bench's own plugin that speaks the same protocol)::

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
    PROBE_IDENTITY,
    Access,
    Decision,
    PolicyEngine,
    SiteIdentities,
    backend_identity,
    bench_rules,
    rule_set,
)
from backend.policy.errors import BadAuthRequest, InvalidRule, PolicyError, TokenRejected
from backend.policy.rules import (
    Action,
    Effect,
    Rule,
    RuleSet,
    Subject,
    SubjectType,
    load_rules,
    parse_rules,
)
from backend.policy.service import PolicyService
from backend.policy.tokens import TokenSettings, TokenVerifier

__all__ = [
    "PROBE_IDENTITY",
    "Access",
    "Action",
    "BadAuthRequest",
    "Decision",
    "Effect",
    "InvalidRule",
    "PolicyEngine",
    "PolicyError",
    "PolicyService",
    "Rule",
    "RuleSet",
    "SiteIdentities",
    "Subject",
    "SubjectType",
    "TokenRejected",
    "TokenSettings",
    "TokenVerifier",
    "backend_identity",
    "bench_rules",
    "load_rules",
    "parse_rules",
    "rule_set",
]
