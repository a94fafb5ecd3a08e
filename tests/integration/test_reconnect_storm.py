"""A small reconnect storm on a real site: 50 mTLS devices, Mosquitto restarted under them.

Every device comes back (with jittered backoff), nothing queued during the restart is lost —
neither what the broker held for the backend's persistent session nor what the devices held
while the broker was down — and the devices resume their TLS sessions on the way back. The
10,000-device figure is ``python -m bench.perf --only storm``.
"""

from __future__ import annotations

import pytest

from backend.retry import Backoff
from bench.reconnect_storm import backend_session, restart_broker, storm, storm_devices
from bench.site import RunningBench
from simulators.tls_sessions import TlsSessions

pytestmark = pytest.mark.integration

DEVICES = 50


@pytest.fixture(scope="module")
def site(bench_factory) -> RunningBench:
    """Services only (no backend of its own): the test restarts the broker."""
    return bench_factory(["a"], backend=False)


async def test_a_restarted_broker_gets_every_device_back_and_loses_nothing(
    site: RunningBench,
) -> None:
    sessions = TlsSessions()
    ids = [f"itstorm-{n:03d}" for n in range(DEVICES)]
    devices = storm_devices(site, "a", ids, sessions, Backoff(0.2, 2.0, jitter=0.5))
    backend = backend_session(site, "a", "itstorm-backend")

    def counts() -> tuple[int, int, int]:
        c = sessions.counts
        return c.resumed, c.full, c.offered_not_resumed

    result = await storm(
        devices,
        backend,
        lambda: restart_broker(site, "a", devices),
        counts=counts,
        timeout_s=60,
    )

    assert result.lost == 0, result.missing
    assert result.expected == result.received == 2 * DEVICES
    assert result.session_present  # Mosquitto restored the backend's session from disk
    assert all(d.connects >= 2 for d in devices)
    # Every device came back on its ticket: the bench's Mosquitto keeps its ticket key
    # across a restart with an unchanged CRL (bench/services/ticket_keys.py).
    assert (result.resumed, result.full, result.offered_not_resumed) == (DEVICES, 0, 0)
