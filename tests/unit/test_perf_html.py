"""make bench's HTML page: goals read from the notes, met or missed, values escaped."""

from __future__ import annotations

from pathlib import Path

from bench.perf.figures import Figure
from bench.perf.html import goal_met, goal_of, render_html, write_html


def test_goals_are_read_from_notes_in_either_spelling() -> None:
    assert goal_of(Figure("x", 1, "msg/s", note="5 runs; goal >= 20,000")) == (">=", 20000.0)
    assert goal_of(Figure("x", 1, "ms", note="goal p99 ≤ 10 ms")) == ("<=", 10.0)
    assert goal_of(Figure("x", 1, "ms", note="no target")) is None


def test_met_and_missed() -> None:
    assert goal_met(25_000, (">=", 20_000))
    assert not goal_met(12.5, ("<=", 10))


def test_page_marks_each_figure_and_failure_and_escapes(tmp_path: Path) -> None:
    figures = [
        Figure("ingest.rate", 25_000, "msg/s", baseline=30_000, note="goal >= 20,000"),
        Figure("unlock.p99", 12.0, "ms", note="goal <= 10 ms"),
        Figure("<script>", 1.0, "x"),
    ]
    page = render_html(figures, ["devices: abandoned after its cap of 60 s"])
    assert "goals met 1, missed 1" in page
    assert page.count('class="met"') == 1
    assert page.count('class="missed"') == 1
    assert "FAILED: abandoned after its cap of 60 s" in page
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    path = write_html(figures, [], tmp_path / "results.html")
    assert path.read_text().startswith("<!doctype html>")
