"""The hardware subcommands through click: capture conformance exit codes, clear errors."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from bench.cli import cli
from hardware.discovery import list_boards

GOOD = (
    b'@aurora status {"device_type":"environmental_presence","board_family":"esp32s3",'
    b'"firmware_stack":"rust_embassy","firmware_version":"0.1.0","device_id":"esp32s3-env-01"}\n'
)
BAD = b'@aurora telemetry {"device_id":"esp32s3-env-01","metric":"t","value":"x","unit":"C"}\n'


def test_conformance_on_a_clean_capture_passes(tmp_path: Path) -> None:
    capture = tmp_path / "ok.bin"
    capture.write_bytes(b"boot\r\n" + GOOD + GOOD)
    report = tmp_path / "report.json"
    result = CliRunner().invoke(
        cli, ["conformance", "--capture", str(capture), "--json", str(report)]
    )
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output
    assert '"passed": true' in report.read_text()


def test_conformance_exits_1_and_explains_the_violation(tmp_path: Path) -> None:
    capture = tmp_path / "bad.bin"
    capture.write_bytes(GOOD + BAD)
    result = CliRunner().invoke(cli, ["conformance", "--capture", str(capture)])
    assert result.exit_code == 1
    assert "wrong_type in telemetry frame field 'value'" in result.output
    assert "FAIL" in result.output


def test_conformance_needs_exactly_one_source(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["conformance"])
    assert result.exit_code == 2
    assert "give either --port PATH or --capture FILE" in result.output


def test_conformance_on_a_missing_port_is_one_clear_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["conformance", "--port", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "no serial board matches" in result.output
    assert "Traceback" not in result.output


def test_boards_lists_or_says_clearly_that_there_are_none() -> None:
    result = CliRunner().invoke(cli, ["boards"])
    assert result.exit_code == 0
    if list_boards():
        assert result.output.startswith("PORT")
    else:
        assert "no USB serial boards found" in result.output


def test_bridge_without_a_bench_says_to_start_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["bridge", "--state-dir", str(tmp_path)])
    assert "aurora-bench up" in str(result.exception) + result.output


def test_bridge_to_a_missing_port_is_one_clear_line(tmp_path: Path) -> None:
    from bench.benchfile import BenchInfo, MqttEndpoint, SiteInfo, write_bench_file

    site = SiteInfo(
        site_id="a",
        api="http://127.0.0.1:1",
        mqtt=MqttEndpoint(host="127.0.0.1", port=1),
        redis="redis://127.0.0.1:1/0",
        nats="nats://127.0.0.1:1",
        database="sqlite:///x",
    )
    write_bench_file(
        BenchInfo(state_dir=str(tmp_path), ca=str(tmp_path / "pki" / "ca.crt"), sites={"a": site})
    )
    missing = str(tmp_path / "ttyACM9")
    result = CliRunner().invoke(cli, ["bridge", "--port", missing, "--state-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert f"no serial board matches '{missing}'" in result.output
    assert "Traceback" not in result.output
