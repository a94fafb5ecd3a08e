"""The baseline of the policy figure: a trivial FastAPI endpoint on its own uvicorn.

``POST /mqtt/acl`` answers go-auth's allow (``{"ok": true, "error": ""}``) without reading
the request: no parsing, no token, no rule. It runs under the same server stack as a site's
backend (uvicorn picks uvloop and httptools when installed, as ``python -m backend``
does), in a process of its own, so the ratio policy / baseline in the same run says what
the service costs above the cheapest Python HTTP answer the machine gives at that moment.
(``/healthz`` of the site was tried first: it pings Redis and the database and cannot
keep up with 1,000 requests/s on two shared cores, so it measured its own queue.)
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from bench.errors import BenchError
from bench.services.process import free_port, tcp_accepts

HOST = "127.0.0.1"
START_TIMEOUT_S = 20.0

app = FastAPI()


@app.post("/mqtt/acl")
async def acl() -> JSONResponse:
    """Allow, unread."""
    return JSONResponse({"ok": True, "error": ""})


@contextmanager
def baseline_server() -> Iterator[str]:
    """Serve :data:`app` with uvicorn in a child process; yields its base URL."""
    port = free_port(HOST)
    process = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", f"{__name__}:app", "--host", HOST,
            "--port", str(port), "--log-level", "warning", "--no-access-log",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not tcp_accepts(HOST, port):
            if process.poll() is not None or time.monotonic() > deadline:
                error = process.stderr.read().decode(errors="replace") if process.stderr else ""
                raise BenchError(f"the baseline server did not start: {error[-500:]}")
            time.sleep(0.05)
        yield f"http://{HOST}:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
