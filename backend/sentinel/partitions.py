"""Ingress partitions: one client's alerts always reach the same worker, in order.

Why not the plain queue group the core started with: NATS hands each message of a queue
group to a random member, so with two workers client c's alerts 1 and 2 can be inspected
and stored by different processes at the same time, and 2 may reach the stream (and the
client) before 1. The anomaly baselines would also see a random half of each publisher.

The design: the ``SENTINEL`` account maps the bridge's subject into :data:`PARTITIONS`
partitions with NATS's deterministic ``partition(n, wildcard)`` function (a hash of the
client-id token), rendered by :func:`partition_mapping` into every node's config::

    sentinel.ingress.clients.<id>.alerts -> sentinel.part.<p>.clients.<id>.alerts

Worker ``i`` of ``W`` owns the partitions ``p`` with ``p % W == i`` (:func:`owned`) and is
the only process subscribed to them, so each client has exactly one worker and that worker
handles its messages one batch at a time, in arrival order. The mapping runs on the node
where the bridge publishes, before any interest is looked up, so it holds for MQTT, the
WebSocket bridge and NATS publishers alike.

The price: a partition has no standby. While its worker is down its messages have no
subscriber and core NATS drops them (the bridge's QoS 1 ends at the node), exactly as the
single queue-group worker did before; the bench restarts a worker with the same index and
the same partitions. Each partition is subscribed in its own queue group
(:func:`partition_queue`) so a restarted worker overlapping its predecessor for a moment
splits rather than doubles that moment's messages. Changing the partition count re-hashes
every client, so it is fixed for a running cluster (the node configs carry it).
"""

from __future__ import annotations

from backend.sentinel.errors import SentinelError
from backend.sentinel.naming import INGRESS_SUBJECTS, PARTITION_PREFIX

#: Partitions of the ingress (enough for 16 workers; a worker owns 16 / W of them).
PARTITIONS = 16
MAX_PARTITIONS = 1024


def check_layout(index: int, workers: int, partitions: int = PARTITIONS) -> None:
    """SentinelError unless ``0 <= index < workers <= partitions <= MAX_PARTITIONS``."""
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise SentinelError(f"partitions must be 1..{MAX_PARTITIONS}, not {partitions}")
    if not 1 <= workers <= partitions:
        raise SentinelError(
            f"workers must be 1..{partitions} (one partition each at least), not {workers}"
        )
    if not 0 <= index < workers:
        raise SentinelError(f"worker index must be 0..{workers - 1}, not {index}")


def owned(index: int, workers: int, partitions: int = PARTITIONS) -> tuple[int, ...]:
    """The partitions worker ``index`` of ``workers`` subscribes to."""
    check_layout(index, workers, partitions)
    return tuple(p for p in range(partitions) if p % workers == index)


def partition_subject(partition: int) -> str:
    """``sentinel.part.<p>.clients.*.alerts``: one partition's ingress."""
    return f"{PARTITION_PREFIX}{partition}.clients.*.alerts"


def partition_queue(partition: int) -> str:
    """The queue group of one partition (see the module doc: restarts overlap safely)."""
    return f"sentinel-workers-p{partition}"


def partition_mapping(partitions: int = PARTITIONS) -> tuple[str, str]:
    """``(source, destination)`` of the account subject mapping in the node config."""
    check_layout(0, 1, partitions)
    return (
        INGRESS_SUBJECTS,
        f"{PARTITION_PREFIX}{{{{partition({partitions},1)}}}}.clients.{{{{wildcard(1)}}}}.alerts",
    )
