"""schemathesis against the site's own OpenAPI schema: no request, however odd, gets a 500,
and every response matches the documented schema.

The app runs under uvicorn in a thread, on the bench's real Redis and a fresh SQLite file,
with MQTT off (commands then answer a documented 503, never a 500).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import given
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from backend.app import create_app
from bench.site import RunningBench
from tests.fuzz.profile import fuzz
from tests.integration.test_api import _settings


@pytest.fixture(scope="module")
def site_url(bench_one: RunningBench, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app = create_app(_settings(bench_one, tmp_path_factory.mktemp("schema")))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        for _ in range(600):  # up to 60 s on a loaded machine
            if server.started:
                break
            threading.Event().wait(0.1)
        assert server.started, "the API under test did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listener.close()


def operations(site_url: str) -> list[Any]:
    """Every operation of the schema except event streams (a response that never ends)."""
    api = schemathesis.openapi.from_url(f"{site_url}/openapi.json")
    out = []
    for result in api.get_all_operations():
        operation = result.ok()
        responses = operation.definition.raw.get("responses", {})
        media = {kind for answer in responses.values() for kind in answer.get("content", {})}
        if "text/event-stream" not in media:
            out.append(operation)
    return out


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_500_and_responses_match_the_schema(
    bench_one: RunningBench, site_url: str, mode: GenerationMode
) -> None:
    # The operator token (every scope), so the fuzzing reaches the handlers, not only the
    # bearer check.
    headers = bench_one.site("a").api_headers()
    assert headers, "the bench gave no API token"
    # One hypothesis run per operation: schemathesis' own pytest loader does not work with
    # pytest 9 yet, and a single strategy over all operations would cover them unevenly.
    checked = []
    for operation in operations(site_url):

        @fuzz(12)
        @given(case=operation.as_strategy(generation_mode=mode))
        def call(case: Any) -> None:
            case.call_and_validate(
                headers=headers, checks=[not_a_server_error, response_schema_conformance]
            )

        try:
            call()
        except Unsatisfiable:
            # Negative mode: an operation without parameters or body has no invalid input.
            assert mode is GenerationMode.NEGATIVE
            continue
        checked.append(f"{operation.method.upper()} {operation.path}")
    assert "POST /api/v1/alerts" in checked
    assert "GET /api/v1/alerts" in checked
