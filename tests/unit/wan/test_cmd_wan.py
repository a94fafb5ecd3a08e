"""``aurora-bench wan``: without a running WAN bench it says what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import main


def _fails(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    return capsys.readouterr().err


def test_wan_commands_without_a_wan_bench_say_how_to_start_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in (["cut"], ["restore"], ["stats"], ["set", "delay=5ms"]):
        err = _fails(["wan", *command, "--state-dir", str(tmp_path)], capsys)
        assert "aurora-bench up --sites a,b --wan" in err, command


def test_a_bad_condition_names_the_word_and_a_dead_link_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "wan.json").write_text('{"control": "/nonexistent.sock"}')
    err = _fails(["wan", "set", "delay=fast", "--state-dir", str(tmp_path)], capsys)
    assert "cannot read 'delay=fast'" in err
    err = _fails(["wan", "cut", "--state-dir", str(tmp_path)], capsys)
    assert "did not answer" in err
