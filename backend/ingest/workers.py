"""Several ingest processes on the MQTT v5 shared subscription (issue 17).

``AURORA_INGEST_WORKERS=N`` makes the backend start N-1 child processes
(``python -m backend.ingest.worker``), each with its own persistent MQTT session
(client id ``<id>-w<i>``) and its own redelivery markers, sharing the telemetry filter
with the main process in the same ``$share`` group, so the broker splits the hot path
between them. :class:`IngestWorkers` supervises them: a worker that dies (kill -9
included) is started again with the same index, so its session — and the messages it had
not acknowledged — come back to it and are recognised by its markers: exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

from backend.settings import WORKER_SETTINGS_ENV, Settings

log = logging.getLogger(__name__)

#: Seconds a worker gets to finish its batch on SIGTERM before it is killed.
STOP_GRACE_S = 5.0


class IngestWorkers:
    """Runs and supervises ingest workers 1..N-1 until cancelled."""

    def __init__(self, settings: Settings, restart_backoff_s: float = 0.5) -> None:
        self._settings = settings
        self._backoff_s = restart_backoff_s
        #: Process id of each running worker by index (tests and logs read it).
        self.pids: dict[int, int] = {}

    async def run(self) -> None:
        """Keep every worker running; on cancellation stop them all (SIGTERM, then kill)."""
        async with asyncio.TaskGroup() as group:
            for index in range(1, self._settings.ingest_workers):
                group.create_task(self._supervise(index), name=f"ingest-worker-{index}")

    async def _supervise(self, index: int) -> None:
        env = dict(os.environ)
        env[WORKER_SETTINGS_ENV] = self._settings.for_worker(index)
        while True:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "backend.ingest.worker", env=env
            )
            self.pids[index] = process.pid
            log.info("ingest worker %d started (pid %d)", index, process.pid)
            try:
                code = await process.wait()
            except asyncio.CancelledError:
                await _stop(process)
                raise
            finally:
                self.pids.pop(index, None)
            log.warning("ingest worker %d exited with %s; starting it again", index, code)
            await asyncio.sleep(self._backoff_s)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(STOP_GRACE_S):
            await process.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
