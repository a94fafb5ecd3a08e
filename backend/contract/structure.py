"""Structural checks of a JSON payload that no schema can make: nesting depth, duplicate keys.

Both run on the raw bytes, without I/O, and raise :class:`ContractViolation`:

* **Depth** is checked *before* any parser sees the payload. Python's ``json`` module
  recurses once per nesting level, so 1,000 nested arrays (2,000 bytes, well under the
  4 KiB limit) raised ``RecursionError`` out of the decoder and stopped ingest (issue 11.1).
  A contract payload is a flat object (depth 1); anything deeper than
  :data:`MAX_JSON_DEPTH` is refused as ``too_deep`` without parsing it.
* **Duplicate keys** are refused (``duplicate_key``): parsers disagree on which of two equal
  keys wins (pydantic and Python take the last, many streaming readers the first), and a
  device alert is forwarded byte for byte, so a downstream reader could see another
  ``device_id`` than the one the backend checked against the topic.
"""

from __future__ import annotations

import json
import re
from typing import Any

from backend.contract.errors import ContractViolation, RejectReason

#: Deepest nesting of arrays/objects accepted. Contract payloads are flat (depth 1); the
#: margin only lets a nested value reach the schema, which names the field that is wrong.
MAX_JSON_DEPTH = 32

# A JSON string (possibly unterminated, at the end of the input) or one bracket. Strings
# are matched whole so that brackets inside them are not counted.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)
_OPENERS = frozenset(b"[{")


def json_depth(payload: bytes) -> int:
    """The deepest nesting of arrays and objects in ``payload`` (0 for a scalar).

    Exact for valid JSON and well defined for any bytes (unbalanced closers count as 0).
    """
    depth = deepest = 0
    for match in _TOKEN.finditer(payload):
        first = match.group()[0]
        if first in _OPENERS:
            depth += 1
            deepest = max(deepest, depth)
        elif first != ord('"'):
            depth = max(0, depth - 1)
    return deepest


def check_depth(payload: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise ``too_deep`` when ``payload`` nests deeper than ``limit``; never parses it."""
    # Fast path (every valid message): nesting cannot exceed the number of openers.
    if payload.count(b"[") + payload.count(b"{") <= limit:
        return
    depth = json_depth(payload)
    if depth > limit:
        raise ContractViolation(
            RejectReason.TOO_DEEP,
            f"JSON nests {depth} levels deep, limit {limit} (contract payloads are flat objects)",
        )


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class _NonFinite(ValueError):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return out


def _refuse_constant(name: str) -> Any:
    raise _NonFinite(name)


# Built once: json.loads(..., object_pairs_hook=...) would build a decoder per call.
_STRICT = json.JSONDecoder(object_pairs_hook=_unique_pairs, parse_constant=_refuse_constant)


def strict_parse(payload: bytes) -> Any:
    """Parse ``payload`` as strict JSON: UTF-8, no NaN/Infinity, no duplicate keys.

    Call :func:`check_depth` first: the standard parser recurses per nesting level.
    Every failure is a :class:`ContractViolation`.
    """
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ContractViolation(RejectReason.NOT_JSON, "payload is not UTF-8 text") from None
    try:
        return _STRICT.decode(text)
    except _DuplicateKey as error:
        raise ContractViolation(
            RejectReason.DUPLICATE_KEY,
            f"key {error.key!r} appears more than once; readers disagree on which one wins",
            error.key,
        ) from None
    except _NonFinite as error:
        raise ContractViolation(RejectReason.NON_FINITE, f"{error} is not a JSON number") from None
    except json.JSONDecodeError as error:
        raise ContractViolation(RejectReason.NOT_JSON, f"invalid JSON: {error}") from None
    except RecursionError:  # unreachable after check_depth; kept so nothing escapes
        raise ContractViolation(RejectReason.TOO_DEEP, "JSON nests too deep to parse") from None
