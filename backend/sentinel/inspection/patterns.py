"""Stage 1, pattern matching: signatures over topic and payload, and shared IOCs.

Literals and regular expressions look at the first ``limits.scan_bytes`` of the payload, as
bytes (a payload need not be UTF-8). Regular expressions run on RE2, linear in the input.
JSON field matches parse the payload at most once per message, and only when some
signature needs it; a payload nested deeper than ``limits.max_json_depth`` is not parsed.

IOCs shared by a peer site become one RE2 alternation of escaped literals, rebuilt when the
set changes (:meth:`PatternStage.set_iocs`) — no restart, and matching stays one pass over
the payload however many IOCs there are.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import re2

from backend.policy.topics import filter_matches
from backend.sentinel.inspection.model import Action, AlertMessage, Finding, Stage
from backend.sentinel.inspection.rules import RE2_MAX_MEM, JsonMatch, Rules, Signature

_MISSING = object()


def _re2(pattern: str | bytes, *, nocase: bool = False) -> Any:
    options = re2.Options()
    options.max_mem = RE2_MAX_MEM
    options.case_sensitive = not nocase
    return re2.compile(pattern, options)


@dataclass(frozen=True, slots=True)
class _Compiled:
    signature: Signature
    #: Case-sensitive literal, found with ``bytes.__contains__``.
    needle: bytes | None
    #: Index of the signature's pattern in the stage's RE2 set (regex or nocase literal).
    set_index: int | None
    json_regex: Any


def _set_pattern(signature: Signature) -> bytes | None:
    """The RE2 pattern a signature contributes to the stage's one-pass set, if any."""
    if signature.regex is not None:
        pattern = signature.regex.encode()
    elif signature.literal is not None and signature.nocase:
        pattern = re2.escape(signature.literal.encode())
    else:
        return None
    return b"(?i)" + pattern if signature.nocase else pattern


def json_depth_exceeds(payload: bytes, limit: int) -> bool:
    """True if brackets nest deeper than ``limit`` (counted outside strings, no parsing)."""
    if payload.count(b"[") + payload.count(b"{") <= limit:
        return False  # the common case, at C speed: too few brackets to nest that deep
    depth = 0
    in_string = False
    escaped = False
    for byte in payload:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False


def _refuse_constant(name: str) -> None:
    raise ValueError(f"non-finite number {name}")


# One decoder for every message: json.loads with keyword arguments builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def parse_json_object(payload: bytes, max_depth: int) -> dict[str, Any] | None:
    """The payload as a JSON object, or None if it is not one (or nests too deep)."""
    if json_depth_exceeds(payload, max_depth):
        return None
    try:
        value = _DECODER.decode(payload.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return value if isinstance(value, dict) else None


def lookup(document: dict[str, Any], path: str) -> Any:
    """The value at a dotted path, or ``_MISSING``."""
    node: Any = document
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _json_matches(match: JsonMatch, document: dict[str, Any], json_regex: Any) -> bool:
    value = lookup(document, match.path)
    if match.exists is not None:
        return (value is not _MISSING) == match.exists
    if value is _MISSING:
        return False
    if json_regex is not None:
        return isinstance(value, str) and json_regex.search(value) is not None
    expected = match.equals
    # bool is an int in Python: compare types so `equals: 1` does not match `true`.
    if isinstance(expected, bool) or isinstance(value, bool):
        return type(expected) is type(value) and expected == value
    if isinstance(expected, (int, float)) and isinstance(value, (int, float)):
        return math.isclose(expected, value)
    return bool(expected == value)


class PatternStage:
    """Signatures from the rules file plus the IOCs peers shared; pure apart from its state."""

    def __init__(self, rules: Rules) -> None:
        self._limits = rules.limits
        self._ioc_rules = rules.iocs
        self._needs_json = any(s.json_match is not None for s in rules.signatures)
        self._iocs: OrderedDict[str, str] = OrderedDict()  # value -> origin site
        self._ioc_regex: Any = None
        # Every regex (and case-insensitive literal) runs in one RE2 set: one pass over the
        # payload per message however many signatures there are (the wrapper's per-call
        # cost, not the matching, dominates a search of a short payload).
        self._set: Any = None
        self._compiled: list[_Compiled] = []
        patterns: list[bytes] = []
        for signature in rules.signatures:
            pattern = _set_pattern(signature)
            index = None
            if pattern is not None:
                index = len(patterns)
                patterns.append(pattern)
            needle = None
            if signature.literal is not None and not signature.nocase:
                needle = signature.literal.encode()
            json_regex = None
            if signature.json_match is not None and signature.json_match.regex is not None:
                json_regex = _re2(signature.json_match.regex, nocase=signature.nocase)
            self._compiled.append(_Compiled(signature, needle, index, json_regex))
        if patterns:
            options = re2.Options()
            options.max_mem = RE2_MAX_MEM
            self._set = re2.Set.SearchSet(options)
            for pattern in patterns:
                self._set.Add(pattern)
            self._set.Compile()

    @property
    def ioc_count(self) -> int:
        """How many IOC values are active."""
        return len(self._iocs)

    def set_iocs(self, values: Iterable[tuple[str, str]]) -> int:
        """Add ``(value, origin_site)`` IOCs; returns how many were new. Oldest evicted."""
        if not self._ioc_rules.enabled:
            return 0
        added = 0
        for raw, origin in values:
            value = raw.strip()
            if not value or len(value) > 1024:
                continue
            if value not in self._iocs:
                added += 1
            self._iocs[value] = origin
            self._iocs.move_to_end(value)
        while len(self._iocs) > self._ioc_rules.max_iocs:
            self._iocs.popitem(last=False)
        if added:
            alternation = b"|".join(re2.escape(v.encode()) for v in self._iocs)
            self._ioc_regex = _re2(alternation, nocase=True) if alternation else None
        return added

    def inspect(self, message: AlertMessage) -> list[Finding]:
        """The signatures (and IOCs) this message matches."""
        payload = message.payload
        if len(payload) > self._limits.max_payload_bytes:
            return [
                Finding(
                    Stage.PATTERN,
                    "oversize",
                    self._ioc_rules.severity,
                    Action.BLOCK,
                    f"payload of {len(payload)} bytes is over the "
                    f"{self._limits.max_payload_bytes}-byte limit",
                    message.client_id,
                )
            ]
        head = payload[: self._limits.scan_bytes]
        findings: list[Finding] = []
        document: dict[str, Any] | None = None
        parsed = False
        matched = set(self._set.Match(head) or ()) if self._set is not None else set()
        for compiled in self._compiled:
            signature = compiled.signature
            if signature.topic is not None and not filter_matches(signature.topic, message.topic):
                continue
            if compiled.needle is not None:
                hit = compiled.needle in head
            elif compiled.set_index is not None:
                hit = compiled.set_index in matched
            else:
                if not parsed:
                    document = parse_json_object(payload, self._limits.max_json_depth)
                    parsed = True
                match = signature.json_match
                hit = (
                    match is not None
                    and document is not None
                    and _json_matches(match, document, compiled.json_regex)
                )
            if hit:
                findings.append(
                    Finding(
                        Stage.PATTERN,
                        signature.id,
                        signature.severity,
                        signature.action,
                        f"signature {signature.id} matched",
                        message.client_id,
                    )
                )
        if self._ioc_regex is not None:
            match = self._ioc_regex.search(head)
            if match is not None:
                value = match.group(0).decode("utf-8", "replace")
                origin = self._iocs.get(
                    value,
                    next((o for v, o in self._iocs.items() if v.lower() == value.lower()), "?"),
                )
                findings.append(
                    Finding(
                        Stage.PATTERN,
                        "shared-ioc",
                        self._ioc_rules.severity,
                        self._ioc_rules.action,
                        f"IOC {value!r} shared by site {origin}",
                        message.client_id,
                    )
                )
        return findings
