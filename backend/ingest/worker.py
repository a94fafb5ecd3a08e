"""``python -m backend.ingest.worker``: one extra ingest process (started by the backend).

It runs the same :class:`~backend.components.Backend` components as the main process
minus the API and federation (it never imports the web framework, so it starts sooner),
with the settings its parent passed (``AURORA_INGEST_WORKER_SETTINGS``), until SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from backend.components import Backend
from backend.settings import worker_settings


async def serve() -> None:
    """Start the worker's components, wait for SIGTERM/SIGINT, close them in order."""
    settings = worker_settings()
    backend = Backend(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await backend.start()
    try:
        await stop.wait()
    finally:
        await backend.aclose()


def main() -> int:
    """Run until told to stop."""
    settings = worker_settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format=f"%(asctime)s %(levelname)s w{settings.ingest_worker_index} %(name)s: %(message)s",
    )
    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
