"""MQTT 5 §4.7 topic filter semantics, property-tested against a regex reference."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.policy.topics import (
    filter_covers,
    filter_matches,
    strip_share,
    topic_filter_problem,
    topic_name_problem,
)

# Small alphabets so random filters and topics actually collide.
LEVEL = st.text(alphabet="ab$", min_size=0, max_size=2)
TOPIC_LEVELS = st.lists(LEVEL, min_size=1, max_size=5).filter(lambda levels: levels != [""])
TOPICS = TOPIC_LEVELS.map("/".join)


@st.composite
def filter_from_topic(draw: st.DrawFn, topic_levels: list[str]) -> str:
    """A filter that matches ``topic_levels``: some levels become +, maybe a # tail."""
    levels = [draw(st.sampled_from([level, "+"])) for level in topic_levels]
    cut = draw(st.integers(min_value=0, max_value=len(levels)))
    if draw(st.booleans()):
        levels = [*levels[:cut], "#"]
    # §4.7.2: a wildcard-first filter never matches a "$" topic; keep the first level.
    if topic_levels[0].startswith("$") and levels[0] in ("+", "#"):
        levels[0] = topic_levels[0]
        if len(levels) == 1 and len(topic_levels) > 1:
            levels.append("#")
    return "/".join(levels)


FILTER_LEVEL = st.one_of(LEVEL, st.just("+"))
FILTERS = st.builds(
    lambda levels, tail: "/".join([*levels, "#"] if tail else levels) or "#",
    st.lists(FILTER_LEVEL, min_size=0, max_size=4),
    st.booleans(),
)


def reference_match(topic_filter: str, topic: str) -> bool:
    """An independent regex model of §4.7 (parent match of '#', '$' rule)."""
    if topic.startswith("$") and topic_filter.split("/", maxsplit=1)[0] in ("+", "#"):
        return False
    levels = topic_filter.split("/")
    pattern = ""
    for index, level in enumerate(levels):
        sep = "/" if index else ""
        if level == "#":
            pattern += "(?:/.*)?" if index else ".*"
            break
        pattern += sep + ("[^/]*" if level == "+" else re.escape(level))
    return re.fullmatch(pattern, topic, flags=re.DOTALL) is not None


@given(TOPICS)
def test_a_topic_name_matches_itself(topic: str) -> None:
    assert filter_matches(topic, topic)
    assert filter_covers(topic, topic)


@given(TOPIC_LEVELS.flatmap(lambda levels: st.tuples(st.just(levels), filter_from_topic(levels))))
def test_a_filter_matches_the_topics_it_was_built_from(case: tuple[list[str], str]) -> None:
    levels, topic_filter = case
    assert topic_filter_problem(topic_filter) is None
    assert filter_matches(topic_filter, "/".join(levels)), topic_filter


@given(FILTERS, TOPICS)
def test_matching_agrees_with_the_reference(topic_filter: str, topic: str) -> None:
    assert filter_matches(topic_filter, topic) == reference_match(topic_filter, topic)


@given(FILTERS, FILTERS, TOPICS)
def test_coverage_implies_matching(rule: str, requested: str, topic: str) -> None:
    # If the rule covers the request, every topic the request matches the rule matches.
    if filter_covers(rule, requested) and filter_matches(requested, topic):
        assert filter_matches(rule, topic)


@given(FILTERS)
def test_coverage_is_reflexive_and_hash_covers_all_plain(topic_filter: str) -> None:
    assert filter_covers(topic_filter, topic_filter)
    if not topic_filter.startswith("$"):
        assert filter_covers("#", topic_filter)


@given(TOPICS)
def test_hash_matches_every_topic_but_dollar_ones(topic: str) -> None:
    assert filter_matches("#", topic) == (not topic.startswith("$"))


@given(TOPICS)
def test_plus_matches_exactly_one_level(topic: str) -> None:
    expected = "/" not in topic and not topic.startswith("$")
    assert filter_matches("+", topic) == expected


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("sport/tennis/player1/#", "sport/tennis/player1", True),  # §4.7.1.2 parent
        ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
        ("sport/#", "sport", True),
        ("sport/tennis/+", "sport/tennis/player1", True),
        ("sport/tennis/+", "sport/tennis/player1/ranking", False),
        ("sport/+", "sport", False),  # §4.7.1.3
        ("sport/+", "sport/", True),
        ("+/+", "/finance", True),
        ("/+", "/finance", True),
        ("+", "/finance", False),
        ("#", "$SYS/uptime", False),  # §4.7.2
        ("+/monitor/Clients", "$SYS/monitor/Clients", False),
        ("$SYS/#", "$SYS/monitor/Clients", True),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
        ("aurora/sensors/d1/#", "aurora/sensors/d10/status", False),
        ("ACCOUNTS", "Accounts", False),  # case-sensitive
    ],
)
def test_spec_examples(topic_filter: str, topic: str, expected: bool) -> None:
    assert filter_matches(topic_filter, topic) is expected


@pytest.mark.parametrize(
    ("rule", "requested", "expected"),
    [
        ("aurora/#", "aurora/sensors/+/status", True),
        ("aurora/#", "aurora/#", True),
        ("aurora/#", "aurora", True),
        ("aurora/#", "#", False),
        ("aurora/access/d1/command", "aurora/access/+/command", False),
        ("aurora/access/+/command", "aurora/access/d1/command", True),
        ("aurora/access/+/command", "aurora/access/#", False),
        ("a", "a/#", False),
        ("#", "$SYS/#", False),
        ("$SYS/#", "$SYS/broker/+", True),
    ],
)
def test_coverage_examples(rule: str, requested: str, expected: bool) -> None:
    assert filter_covers(rule, requested) is expected


@pytest.mark.parametrize(
    "bad", ["", "a/#/b", "a/b#", "a+/b", "#/", "a\x00b", "x" * 65_536, "a/\ud800"]
)
def test_invalid_filters_are_named(bad: str) -> None:
    assert topic_filter_problem(bad) is not None


@pytest.mark.parametrize("bad", ["", "a/+", "a/#", "a\x00", "é" * 40_000, "a/\udfff"])
def test_invalid_topic_names_are_named(bad: str) -> None:
    assert topic_name_problem(bad) is not None


def test_strip_share() -> None:
    assert strip_share("$share/ingest/aurora/sensors/+/status") == "aurora/sensors/+/status"
    assert strip_share("aurora/#") == "aurora/#"
    for bad in ("$share/ingest", "$share//aurora/#", "$share/g+/a", "$share/g/"):
        with pytest.raises(ValueError, match="shared subscription"):
            strip_share(bad)
