"""The backend's JSON log lines: site, device and trace id on every line (pure)."""

from __future__ import annotations

import json
import logging
import sys

from backend.logs import JsonFormatter, configure_logging, log_context, log_fields


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("backend.test", logging.WARNING, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_a_line_is_one_json_object_with_the_site() -> None:
    line = JsonFormatter("a").format(_record("rejected %s\nsecond line", "x"))
    assert "\n" not in line
    data = json.loads(line)
    assert data["site"] == "a"
    assert data["level"] == "WARNING"
    assert data["logger"] == "backend.test"
    assert data["message"] == "rejected x\nsecond line"
    assert data["device"] is None and data["trace_id"] is None
    assert data["ts"].endswith("+00:00")


def test_extra_fields_name_the_device_and_trace() -> None:
    record = _record("m", **log_fields(device_id="esp32s3-env-01", trace_id="c:7:123"))
    data = json.loads(JsonFormatter("b").format(record))
    assert (data["device"], data["trace_id"]) == ("esp32s3-env-01", "c:7:123")


def test_a_context_stamps_every_line_inside_it_only() -> None:
    formatter = JsonFormatter("a")
    with log_context(device_id="door-1", trace_id="t-1"):
        inside = json.loads(formatter.format(_record("in")))
        # an explicit extra wins over the context
        explicit = json.loads(formatter.format(_record("x", device_id="door-2", trace_id=None)))
    outside = json.loads(formatter.format(_record("out")))
    assert (inside["device"], inside["trace_id"]) == ("door-1", "t-1")
    assert (explicit["device"], explicit["trace_id"]) == ("door-2", "t-1")
    assert (outside["device"], outside["trace_id"]) == (None, None)


def _boom() -> None:
    raise ValueError("boom")


def test_exceptions_stay_inside_the_line() -> None:
    try:
        _boom()
    except ValueError:
        record = logging.LogRecord(
            "backend.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    data = json.loads(JsonFormatter("a").format(record))
    assert "ValueError: boom" in data["exc"]


def test_configure_logging_replaces_the_root_handler() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    try:
        configure_logging("a", "debug", "json")
        assert root.level == logging.DEBUG
        (handler,) = root.handlers
        assert isinstance(handler.formatter, JsonFormatter)
        configure_logging("a", "INFO", "text")
        (handler,) = root.handlers
        assert not isinstance(handler.formatter, JsonFormatter)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
