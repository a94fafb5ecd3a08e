"""MQTT topic names and filters (MQTT 5 §4.7), pure functions for the ACL engine.

* ``+`` matches exactly one level, ``#`` the parent level and any number of levels below
  it; both must fill a whole level and ``#`` must be last (§4.7.1).
* A filter starting with a wildcard never matches a topic starting with ``$`` (§4.7.2), so
  a rule on ``#`` does not hand out ``$SYS``.
* Shared subscriptions arrive as ``$share/<group>/<filter>`` (§4.8.2);
  :func:`strip_share` returns the filter the subscription really asks for.
"""

from __future__ import annotations

#: Longest topic the protocol can carry: a UTF-8 string with a 16-bit length (§1.5.4).
MAX_TOPIC_BYTES = 65_535
_SHARE_PREFIX = "$share/"


def topic_name_problem(topic: str) -> str | None:
    """Why ``topic`` is not a valid topic *name* (what PUBLISH carries), or None."""
    if not topic:
        return "the topic is empty"
    if "\x00" in topic:
        return "the topic contains U+0000"
    if "+" in topic or "#" in topic:
        return f"topic name {topic!r} contains a wildcard (+ or #), which only filters may"
    return _size_problem(topic, "topic")


def topic_filter_problem(topic_filter: str) -> str | None:
    """Why ``topic_filter`` is not a valid topic *filter* (what SUBSCRIBE carries), or None."""
    if not topic_filter:
        return "the topic filter is empty"
    if "\x00" in topic_filter:
        return "the topic filter contains U+0000"
    problem = _size_problem(topic_filter, "topic filter")
    if problem is not None:
        return problem
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return f"in {topic_filter!r}, '#' must be a whole level and the last one"
        if "+" in level and level != "+":
            return f"in {topic_filter!r}, '+' must be a whole level"
    return None


def _size_problem(text: str, what: str) -> str | None:
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        # §1.5.4: MQTT strings never carry the surrogates U+D800..U+DFFF.
        return f"the {what} is not valid UTF-8 (it holds a surrogate code point)"
    if size > MAX_TOPIC_BYTES:
        return f"the {what} is longer than {MAX_TOPIC_BYTES} bytes"
    return None


def strip_share(topic_filter: str) -> str:
    """The filter inside ``$share/<group>/<filter>``; other filters are returned unchanged.

    Raises ValueError for a malformed shared subscription (empty or wildcard group, no
    filter), which the broker would refuse as well.
    """
    if not topic_filter.startswith(_SHARE_PREFIX):
        return topic_filter
    group, sep, inner = topic_filter[len(_SHARE_PREFIX) :].partition("/")
    if not sep or not inner:
        raise ValueError(f"shared subscription {topic_filter!r} names no topic filter")
    if not group or "+" in group or "#" in group:
        raise ValueError(f"shared subscription {topic_filter!r} has an invalid share name")
    return inner


def filter_matches(topic_filter: str, topic: str) -> bool:
    """True if the (valid) ``topic_filter`` matches the (valid) topic name ``topic``."""
    return levels_match(tuple(topic_filter.split("/")), topic)


def levels_match(filter_levels: tuple[str, ...], topic: str) -> bool:
    """:func:`filter_matches` with the filter already split at ``/`` (the engine's hot path)."""
    if topic.startswith("$") and filter_levels[0] in ("+", "#"):
        return False
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            # "a/#" also matches the parent "a" (§4.7.1.2).
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(topic_levels) == len(filter_levels)


def filter_covers(rule_filter: str, requested: str) -> bool:
    """True if every topic the (valid) filter ``requested`` matches, ``rule_filter`` matches.

    This is how a SUBSCRIBE is judged: a device allowed ``aurora/access/d1/command`` may
    subscribe to exactly that, but not to ``aurora/access/+/command``.
    """
    return levels_cover(tuple(rule_filter.split("/")), requested)


def levels_cover(rule_levels: tuple[str, ...], requested: str) -> bool:
    """:func:`filter_covers` with the rule filter already split at ``/``."""
    wanted = requested.split("/")
    # A wildcard-first rule matches no "$" topic; a request that can only match "$"
    # topics (literal "$..." first level) is therefore outside it.
    if rule_levels[0] in ("+", "#") and wanted[0].startswith("$"):
        return False
    for index, level in enumerate(rule_levels):
        if level == "#":
            return True
        if index >= len(wanted):
            return False
        asked = wanted[index]
        if asked == "#":
            return False
        if level != "+" and (asked == "+" or asked != level):
            return False
    # A longer request is outside the rule: even "x/#" asked of rule "x" matches "x/y".
    return len(wanted) == len(rule_levels)
