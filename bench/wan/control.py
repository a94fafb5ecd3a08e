"""Talk to a running WAN link process over its control socket (cut, restore, stats)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.wan.conditions import LinkConditions

CONTROL_TIMEOUT_S = 5.0


class WanControlError(BenchError):
    """The link process did not answer, or refused the request."""


def request(path: Path, body: dict[str, Any]) -> dict[str, Any]:
    """Send one request to the link at ``path`` and return its ``stats``."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(CONTROL_TIMEOUT_S)
            sock.connect(str(path))
            sock.sendall(json.dumps(body).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65_536)
                if not chunk:
                    break
                data += chunk
    except OSError as error:
        raise WanControlError(f"WAN link at {path} did not answer: {error}") from None
    try:
        answer = json.loads(data)
    except ValueError:
        raise WanControlError(f"WAN link at {path} answered {data[:200]!r}") from None
    if not isinstance(answer, dict) or not answer.get("ok"):
        raise WanControlError(f"WAN link refused {body}: {answer}")
    stats = answer.get("stats")
    return stats if isinstance(stats, dict) else {}


def cut(path: Path) -> dict[str, Any]:
    """Drop every packet both ways (and those in flight) until :func:`restore`."""
    return request(path, {"op": "cut"})


def restore(path: Path) -> dict[str, Any]:
    """Carry packets again with the conditions set before the cut."""
    return request(path, {"op": "restore"})


def set_conditions(path: Path, conditions: LinkConditions) -> dict[str, Any]:
    """New delay, jitter and loss (a cut stays cut)."""
    return request(
        path,
        {
            "op": "set",
            "delay_ms": conditions.delay_ms,
            "jitter_ms": conditions.jitter_ms,
            "loss": conditions.loss,
        },
    )


def stats(path: Path) -> dict[str, Any]:
    """Current conditions and packets passed/dropped per direction."""
    return request(path, {"op": "stats"})
