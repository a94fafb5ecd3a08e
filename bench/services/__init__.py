"""Real servers for a bench site: Mosquitto, nats-server, redis-server, PostgreSQL.

* :mod:`bench.services.process` — one child process (mirakuru), logs, readiness, no orphans;
* :mod:`bench.services.config` — pure config renderers (mosquitto.conf, ACL, nats.conf, ...);
* :mod:`bench.services.local` — the ``local`` provider (system binaries);
* :mod:`bench.services.docker` — the ``docker`` provider (testcontainers, imported on use).

Sites are assembled from these in :mod:`bench.site`.
"""

from bench.services.config import PROBE_IDENTITY, backend_identity
from bench.services.process import Service, ServiceSpec, find_binary, free_port, log_tail

__all__ = [
    "PROBE_IDENTITY",
    "Service",
    "ServiceSpec",
    "backend_identity",
    "find_binary",
    "free_port",
    "log_tail",
]
