"""``python -m backend``: one site's backend, configured from ``AURORA_*`` variables.

uvicorn serves ``create_app(Settings())`` on ``api_host:api_port``; SIGTERM and Ctrl-C
shut down cleanly through the app's lifespan.
"""

from __future__ import annotations

import asyncio
import socket
import sys

import uvicorn
from pydantic import ValidationError

from backend.app import create_app
from backend.attestation import load_ca
from backend.errors import StartupError
from backend.logs import configure_logging
from backend.policy.service import site_policy
from backend.settings import Settings
from backend.store import Store


async def preflight(settings: Settings) -> None:
    """Fail fast, with a message, on what would otherwise fail inside the lifespan."""
    load_ca(settings.mqtt_ca)
    site_policy(settings)  # the rules file and token settings, checked before serving
    for name, path in (
        ("AURORA_MQTT_CERT", settings.mqtt_cert),
        ("AURORA_MQTT_KEY", settings.mqtt_key),
    ):
        if path is not None and not path.is_file():
            raise StartupError(f"{name}={path} does not exist; point it at the backend's PEM file")
    store = Store(settings.database_url)
    try:
        await store.start()
    finally:
        await store.aclose()


def bind_api_socket(host: str, port: int) -> socket.socket:
    """Bind the API port *before* any outgoing connection is made.

    uvicorn binds only after the lifespan started, and by then our own connections to
    Redis, MQTT and the database hold ephemeral ports — one of which can be the very port
    the bench picked as free for the API. Binding first makes the port ours.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise StartupError(
            f"cannot listen on {host}:{port}: {error.strerror}; choose another "
            "AURORA_API_PORT or stop what is using it"
        ) from error
    listener.listen(2048)
    listener.set_inheritable(True)
    return listener


def main() -> int:
    """Run the backend until SIGTERM / Ctrl-C; exit code 2 on bad settings."""
    try:
        # Every field comes from AURORA_* variables (all have defaults).
        settings = Settings()  # type: ignore[call-arg]
    except ValidationError as error:
        lines = [
            # A cross-field check (a model validator) has no field location: its message
            # names the variables itself.
            f"  AURORA_{'_'.join(str(p) for p in item['loc']).upper()}: {item['msg']}"
            if item["loc"]
            else f"  {item['msg']}"
            for item in error.errors()
        ]
        print("invalid backend settings:\n" + "\n".join(lines), file=sys.stderr)
        return 2
    configure_logging(settings.site_id, settings.log_level, settings.log_format)
    try:
        listener = bind_api_socket(settings.api_host, settings.api_port)
        asyncio.run(preflight(settings))
    except StartupError as error:
        # A clear line instead of the traceback uvicorn would print for a lifespan failure.
        print(f"backend cannot start: {error.message}", file=sys.stderr)
        return 2
    config = uvicorn.Config(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        # uvicorn's loggers propagate to the root handler configure_logging installed.
        log_config=None,
        lifespan="on",
        access_log=False,
    )
    server = uvicorn.Server(config)
    server.run(sockets=[listener])
    # uvicorn returns normally after a startup failure too; tell the caller.
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
