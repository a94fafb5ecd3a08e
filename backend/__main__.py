"""``python -m backend``: one site's backend, configured from ``AURORA_*`` variables.

Start-up is ordered so the ingest consumes as early as it can (issue 17: after an outage
the backlog waits for the restart, and imports were most of it):

1. settings, logging and the API socket, bound before any outgoing connection;
2. the components (:class:`~backend.components.Backend`: store, registry, MQTT ingest),
   which import no web framework — a bad CA, certificate or database is one line and
   exit 2 here;
3. only then the HTTP side (FastAPI, the API, the console, the policy service and its
   token verifier: about 40 % of the start-up CPU), imported on a thread while the ingest
   runs, and served by uvicorn on the bound socket in the same event loop. A bad policy
   rules file or token setting is one line and exit 2 here (the ingest stops with it;
   what it acknowledged was processed). The lifespan finds the components started, and
   ``/healthz`` answers only from then on, with the components' real state.

SIGTERM and Ctrl-C shut down cleanly through the app's lifespan.
"""

from __future__ import annotations

import asyncio
import importlib
import socket
import sys
from collections.abc import Callable

from pydantic import ValidationError

from backend.components import Backend
from backend.errors import StartupError
from backend.ingest.consumer import settle_heap
from backend.logs import configure_logging
from backend.settings import Settings


def check_files(settings: Settings) -> None:
    """Fail fast, with a message, on a client certificate or key that is not there."""
    for name, path in (
        ("AURORA_MQTT_CERT", settings.mqtt_cert),
        ("AURORA_MQTT_KEY", settings.mqtt_key),
    ):
        if path is not None and not path.is_file():
            raise StartupError(f"{name}={path} does not exist; point it at the backend's PEM file")


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


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop when installed, as uvicorn's ``loop="auto"`` would pick it: the ingest's TLS
    connection runs on the loop's compiled transport."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def import_http_side() -> None:
    """Import the HTTP side (FastAPI, the API, the console, the policy service, uvicorn).

    More than half of a start's imports, and the ingest uses none of them. Imported after
    the ingest started, on a thread: an import holds the GIL only while it runs Python
    code, so it shares the CPU with the ingest instead of stopping the event loop for
    ~0.5 s, and uses the time the ingest waits on the broker, Redis and the database.
    """
    importlib.import_module("uvicorn")
    importlib.import_module("backend.app")


async def start_components(settings: Settings) -> Backend:
    """The components, started (the ingest consumes from here on); StartupError on bad
    settings or an unreachable database, with nothing left running."""
    check_files(settings)
    backend = Backend(settings)
    try:
        await backend.start()
    except BaseException:
        await backend.aclose()
        raise
    return backend


async def serve(settings: Settings, listener: socket.socket) -> int:
    """Start the components, then serve the API until SIGTERM / Ctrl-C."""
    try:
        backend = await start_components(settings)
    except StartupError as error:
        # A clear line instead of the traceback uvicorn would print for a lifespan failure.
        print(f"backend cannot start: {error.message}", file=sys.stderr)
        return 2
    try:
        # On a thread, so the ingest (its connects, then the backlog) runs meanwhile.
        await asyncio.to_thread(import_http_side)
        import uvicorn

        from backend.app import create_app

        try:
            app = create_app(settings, backend)
        except StartupError as error:
            print(f"backend cannot start: {error.message}", file=sys.stderr)
            return 2
        config = uvicorn.Config(
            app,
            host=settings.api_host,
            port=settings.api_port,
            log_level=settings.log_level.lower(),
            # uvicorn's loggers propagate to the root handler configure_logging installed.
            log_config=None,
            lifespan="on",
            access_log=False,
        )
        server = uvicorn.Server(config)
        # The ingest froze the heap when it started; what the HTTP side built since (its
        # modules, models and routes) is out of the collector's sight too, or every full
        # collection during a drain walks it again.
        settle_heap()
        await server.serve(sockets=[listener])
    finally:
        # The lifespan closed it already unless the app never started; safe twice.
        await backend.aclose()
    # uvicorn returns normally after a startup failure too; tell the caller.
    return 0 if server.started else 1


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
    except StartupError as error:
        print(f"backend cannot start: {error.message}", file=sys.stderr)
        return 2
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(serve(settings, listener))


if __name__ == "__main__":
    sys.exit(main())
