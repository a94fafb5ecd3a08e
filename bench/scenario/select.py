"""``-k`` expressions for ``aurora-bench run``, with pytest's grammar.

``badge and not revoked``, ``(c2 or federation) and not slow``: a bare word matches when it
is a case-insensitive substring of any of the scenario's names (its name, file stem and
markers). Pure: parse once, then call with the names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from bench.errors import BenchError

_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+)")

Matcher = Callable[[frozenset[str]], bool]


class SelectionError(BenchError):
    """A ``-k`` expression that does not parse."""

    def __init__(self, expression: str, problem: str) -> None:
        super().__init__(f"-k {expression!r}: {problem}")


def compile_selection(expression: str) -> Matcher:
    """A predicate over a scenario's names for ``expression`` (empty: everything)."""
    tokens = _tokens(expression)
    if not tokens:
        return lambda _names: True
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        token = peek()
        if token is None:
            raise SelectionError(expression, "ends too early")
        position += 1
        return token

    def parse_or() -> Matcher:
        left = parse_and()
        while peek() == "or":
            take()
            right = parse_and()
            left = _either(left, right)
        return left

    def parse_and() -> Matcher:
        left = parse_not()
        while peek() == "and":
            take()
            right = parse_not()
            left = _both(left, right)
        return left

    def parse_not() -> Matcher:
        word_or_op = take()
        if word_or_op == "not":
            inner = parse_not()
            return lambda names: not inner(names)
        if word_or_op == "(":
            inner = parse_or()
            if take() != ")":
                raise SelectionError(expression, "missing ')'")
            return inner
        if word_or_op in {")", "and", "or"}:
            raise SelectionError(expression, f"unexpected {word_or_op!r}")
        word = word_or_op.lower()
        return lambda names: any(word in name.lower() for name in names)

    matcher = parse_or()
    if peek() is not None:
        raise SelectionError(expression, f"unexpected {peek()!r}")
    return matcher


def _either(left: Matcher, right: Matcher) -> Matcher:
    return lambda names: left(names) or right(names)


def _both(left: Matcher, right: Matcher) -> Matcher:
    return lambda names: left(names) and right(names)


def _tokens(expression: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    text = expression.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:  # pragma: no cover - the pattern matches any non-space run
            raise SelectionError(expression, "cannot read it")
        tokens.append(match.group(1))
        position = match.end()
    return tokens


def names_of(name: str, stem: str, markers: Iterable[str]) -> frozenset[str]:
    """The names ``-k`` looks at for one scenario."""
    return frozenset({name, stem, *markers})
