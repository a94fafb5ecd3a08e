"""Names the Sentinel and its users share: stream, subjects, topics, the client-id rule.

Client ids follow the contract's device-id pattern (seed 001), so they are safe as one NATS
subject token and one MQTT topic level (no ``.``, ``*``, ``>``, ``/``, ``+``, ``#``).
"""

from __future__ import annotations

from backend.contract import DEVICE_ID_PATTERN
from backend.sentinel.errors import BadClientId

#: The seed's stream: ``clients.*.alerts``, 72 h, file storage, 3 replicas, discard old.
STREAM = "MQTT_ALERTS"
STREAM_SUBJECTS = ("clients.*.alerts",)
STREAM_MAX_AGE_S = 72 * 3600
STREAM_REPLICAS = 3
#: Where the origin bridge delivers (NATS view of MQTT ``sentinel/ingress/clients/<id>/alerts``).
INGRESS_PREFIX = "sentinel.ingress."
INGRESS_SUBJECTS = "sentinel.ingress.clients.*.alerts"
#: Where the account's subject mapping puts ingress, one subject space per partition:
#: ``sentinel.part.<p>.clients.<id>.alerts`` (see :mod:`backend.sentinel.partitions`).
PARTITION_PREFIX = "sentinel.part."
#: Queue groups: add processes to scale (DESIGN: Sentinel).
WORKER_QUEUE = "sentinel-workers"
CALLOUT_QUEUE = "sentinel-callout"
#: The auth-callout subject (NATS >= 2.10).
CALLOUT_SUBJECT = "$SYS.REQ.USER.AUTH"
#: Where a callout tells its peers a credential verified (account AUTH: callouts only).
CALLOUT_VERIFIED_SUBJECT = "sentinel.callout.verified"
#: Redis stream of auth decisions (scenarios and the aggregator read it).
AUTH_AUDIT_STREAM = "aurora:sentinel:auth"
#: Redis stream of security events (the console's feed follows it) and the counters hash
#: the console's Sentinel panel reads (integer fields, see :mod:`backend.sentinel.reporting`).
EVENTS_STREAM = "aurora:sentinel:events"
COUNTERS_KEY = "aurora:sentinel:counters"
#: The JetStream stream quarantined messages are kept in for review (findings in headers).
QUARANTINE_STREAM = "SENTINEL_QUARANTINE"
QUARANTINE_SUBJECTS = ("sentinel.quarantine.clients.*.alerts",)
MAX_CLIENT_ID_LEN = 64


def check_client_id(client_id: str) -> str:
    """``client_id`` when it matches the device-id pattern, else BadClientId saying why."""
    if not isinstance(client_id, str) or not DEVICE_ID_PATTERN.fullmatch(client_id):
        shown = repr(client_id)[:80]
        raise BadClientId(
            f"client id {shown} is not valid: use 1-{MAX_CLIENT_ID_LEN} letters, digits, '_' or '-'"
        )
    return client_id


def alerts_subject(client_id: str) -> str:
    """``clients.<id>.alerts``: the client's stream subject (MQTT ``clients/<id>/alerts``)."""
    return f"clients.{check_client_id(client_id)}.alerts"


def alerts_topic(client_id: str) -> str:
    """``clients/<id>/alerts``: the MQTT topic a client subscribes to."""
    return f"clients/{check_client_id(client_id)}/alerts"


def ingress_subject(client_id: str) -> str:
    """``sentinel.ingress.clients.<id>.alerts``: where the bridge delivers that client's alerts."""
    return INGRESS_PREFIX + alerts_subject(client_id)


def quarantine_subject(client_id: str) -> str:
    """``sentinel.quarantine.clients.<id>.alerts``: where a quarantined alert is kept."""
    return f"sentinel.quarantine.{alerts_subject(client_id)}"


def client_of_ingress(subject: str) -> str:
    """The client id of an ingress subject, plain or partitioned; BadClientId for anything else.

    ``sentinel.ingress.clients.<id>.alerts`` is what the bridge publishes;
    ``sentinel.part.<p>.clients.<id>.alerts`` is the same message after the account's
    partition mapping (what workers subscribe to).
    """
    parts = subject.split(".")
    if len(parts) == 6 and parts[:2] == ["sentinel", "part"] and parts[2].isdigit():
        parts = ["sentinel", "ingress", *parts[3:]]
    if len(parts) != 5 or parts[:3] != ["sentinel", "ingress", "clients"] or parts[4] != "alerts":
        raise BadClientId(
            f"subject {subject[:120]!r} is not sentinel.ingress.clients.<id>.alerts "
            "or sentinel.part.<p>.clients.<id>.alerts"
        )
    return check_client_id(parts[3])
