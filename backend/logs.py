"""Structured logs of the backend: one JSON object per line, with site, device and trace id.

``python -m backend`` installs :class:`JsonFormatter` on the root logger (uvicorn's own
loggers propagate to it), so every line a site writes can be filtered by ``site``,
``device`` and ``trace_id`` without parsing prose. Who knows the device or the trace
(the ingest per message, the federation per mesh message) passes them as ``extra``
(:func:`log_fields`) or binds them for a block (:func:`log_context`)::

    log.info("rejected message", extra=log_fields(device_id=device, trace_id=trace))
    with log_context(device_id=device):
        ...

``AURORA_LOG_FORMAT=text`` keeps the classic one-line text format for a person at a
terminal.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

_DEVICE: ContextVar[str | None] = ContextVar("aurora_log_device", default=None)
_TRACE: ContextVar[str | None] = ContextVar("aurora_log_trace", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_fields(
    *, device_id: str | None = None, trace_id: str | None = None, client_id: str | None = None
) -> dict[str, Any]:
    """``extra=`` for one log call: the device (or Sentinel client) and trace it is about."""
    fields: dict[str, Any] = {"device_id": device_id, "trace_id": trace_id}
    if client_id is not None:
        fields["client_id"] = client_id
    return fields


@contextlib.contextmanager
def log_context(*, device_id: str | None = None, trace_id: str | None = None) -> Iterator[None]:
    """Stamp every log line written inside the block (this task only) with these ids."""
    device_token = _DEVICE.set(device_id) if device_id is not None else None
    trace_token = _TRACE.set(trace_id) if trace_id is not None else None
    try:
        yield
    finally:
        if trace_token is not None:
            _TRACE.reset(trace_token)
        if device_token is not None:
            _DEVICE.reset(device_token)


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", "site", "device", "trace_id"[, "client", "exc"]}``.

    ``client`` (a Sentinel client id) is there only on lines that name one.
    """

    def __init__(self, site_id: str) -> None:
        super().__init__()
        self.site_id = site_id

    def format(self, record: logging.LogRecord) -> str:
        """One JSON line (newlines in the message or traceback stay inside the string)."""
        device = getattr(record, "device_id", None) or _DEVICE.get()
        trace = getattr(record, "trace_id", None) or _TRACE.get()
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "site": self.site_id,
            "device": device,
            "trace_id": trace,
        }
        client = getattr(record, "client_id", None)
        if client is not None:
            line["client"] = client
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(site_id: str, level: str, fmt: str = "json") -> None:
    """Send every log record (uvicorn's included) to stderr as JSON lines or text."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter(site_id) if fmt == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
