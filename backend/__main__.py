"""``python -m backend``: one site's backend, configured from ``AURORA_*`` variables.

uvicorn serves ``create_app(Settings())`` on ``api_host:api_port``; SIGTERM and Ctrl-C
shut down cleanly through the app's lifespan.
"""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic import ValidationError

from backend.app import create_app
from backend.settings import Settings


def main() -> int:
    """Run the backend until SIGTERM / Ctrl-C; exit code 2 on bad settings."""
    try:
        # Every field comes from AURORA_* variables (all have defaults).
        settings = Settings()  # type: ignore[call-arg]
    except ValidationError as error:
        lines = [
            f"  AURORA_{'_'.join(str(p) for p in item['loc']).upper()}: {item['msg']}"
            for item in error.errors()
        ]
        print("invalid backend settings:\n" + "\n".join(lines), file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = uvicorn.Config(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        lifespan="on",
        access_log=False,
    )
    server = uvicorn.Server(config)
    server.run()
    # uvicorn returns normally after a startup failure too; tell the caller.
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
