"""Conformance reports on capture bytes and on timed reads."""

from __future__ import annotations

from hardware.conformance import ConformanceCheck, check_capture
from tests.unit.hardware.boards import reading_frame, status_frame


def status(device_id: str = "esp32s3-env-01") -> bytes:
    return status_frame(device_id, "esp32s3")


def reading(value: float) -> bytes:
    return reading_frame("esp32s3-env-01", value)


def test_clean_capture_passes_and_lists_frames_and_status_fields() -> None:
    capture = b"ESP-ROM:esp32s3-20210327\r\n" + status() + reading(21.5) + reading(21.6) + status()
    report = check_capture(capture)
    assert report.passed
    assert report.frames["status"] == 2
    assert report.frames["telemetry"] == 2
    assert report.log_lines == 1
    assert report.status_fields["board_family"] == "esp32s3"
    assert report.device_ids == ["esp32s3-env-01"]
    text = report.render()
    assert "PASS" in text
    assert "a capture file carries no timing" in text


def test_violation_fails_the_run_and_is_listed_in_one_line() -> None:
    capture = status() + b'@aurora telemetry {"device_id":"esp32s3-env-01","metric":"t"}\n'
    report = check_capture(capture)
    assert not report.passed
    (violation,) = report.violations
    assert violation.reason == "missing_field"
    assert "violations: 1" in report.render()
    assert "missing_field in telemetry frame field 'value'" in report.render()
    assert report.as_dict()["passed"] is False


def test_a_capture_without_status_fails() -> None:
    report = check_capture(reading(1.0))
    assert not report.passed
    assert "no valid status frame" in report.render()


def test_frames_for_two_device_ids_fail() -> None:
    report = check_capture(status("a-1") + status("b-2"))
    assert not report.passed
    assert "several device ids (a-1, b-2)" in report.render()


def test_unterminated_last_frame_of_a_capture_counts() -> None:
    assert check_capture(status().rstrip(b"\n")).passed


def test_heartbeat_regularity_from_timed_reads() -> None:
    check = ConformanceCheck()
    for at_s in (0.0, 1.0, 2.1, 2.9):
        check.feed(status(), at_s=at_s)
    report = check.finish()
    beat = report.heartbeat
    assert beat is not None
    assert beat.count == 3
    assert abs(beat.mean_s - 2.9 / 3) < 1e-9
    assert abs(beat.min_s - 0.8) < 1e-9
    assert abs(beat.max_s - 1.1) < 1e-9
    assert "heartbeat: 3 intervals" in report.render()
