"""The Sentinel perf options from the environment: a typo is an error naming the choices."""

from __future__ import annotations

import pytest

from bench.perf import sentinel

PARTS = ["auth", "idle", "fanout", "failover"]


def test_no_parts_named_means_every_part(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(sentinel.PARTS_ENV, raising=False)
    assert sentinel._chosen_parts(PARTS) == set(PARTS)


def test_named_parts_narrow_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sentinel.PARTS_ENV, " auth , fanout ")
    assert sentinel._chosen_parts(PARTS) == {"auth", "fanout"}


def test_an_unknown_part_is_refused_with_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sentinel.PARTS_ENV, "auth,fanuot")
    with pytest.raises(ValueError, match=r"fanuot.*choose from"):
        sentinel._chosen_parts(PARTS)


@pytest.mark.parametrize(
    ("value", "quick", "want"), [("", False, 5000), ("", True, 100), ("1000", False, 1000)]
)
def test_the_fan_out_size(
    monkeypatch: pytest.MonkeyPatch, value: str, quick: bool, want: int
) -> None:
    monkeypatch.setenv(sentinel.SUBSCRIBERS_ENV, value)
    assert sentinel._subscribers(quick) == want


@pytest.mark.parametrize("value", ["0", "-5", "many"])
def test_a_bad_fan_out_size_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(sentinel.SUBSCRIBERS_ENV, value)
    with pytest.raises(ValueError, match="positive number"):
        sentinel._subscribers(False)
