"""The one retry backoff (pure)."""

from __future__ import annotations

import itertools
import random

import pytest

from backend.retry import Backoff


def test_without_jitter_delays_double_up_to_the_cap() -> None:
    delays = Backoff(initial_s=0.1, max_s=2.0, jitter=0.0).delays()
    assert list(itertools.islice(delays, 7)) == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0])


def test_a_fresh_iterator_starts_small_again() -> None:
    backoff = Backoff(initial_s=0.1, max_s=2.0, jitter=0.0)
    used = backoff.delays()
    for _ in range(5):
        next(used)
    assert next(backoff.delays()) == 0.1


def test_jitter_is_reproducible_with_a_seeded_rng() -> None:
    backoff = Backoff(initial_s=1.0, max_s=8.0, jitter=0.5)
    first = list(itertools.islice(backoff.delays(random.Random(7)), 6))
    assert first == list(itertools.islice(backoff.delays(random.Random(7)), 6))
    nominal = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert all(0.5 * n <= d <= 1.5 * n for d, n in zip(first, nominal, strict=True))
    assert first != nominal


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial_s": 0.0}, "0 < initial_s <= max_s"),
        ({"initial_s": 5.0, "max_s": 1.0}, "0 < initial_s <= max_s"),
        ({"factor": 0.5}, "factor must be >= 1"),
        ({"jitter": 1.0}, r"jitter must be in \[0, 1\)"),
    ],
)
def test_bad_parameters_are_refused_when_built(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Backoff(**kwargs)
