"""The inspection rules file: a YAML document checked against a strict schema.

Every problem is reported as ``file:line: what is wrong`` (the same promise as scenario
files), never as a traceback. The vocabulary follows what security teams already write:
Suricata-style signatures over topic and payload, AWS IoT Device Defender-style behaviours
(a statistic over a window, consecutive datapoints to alarm) for anomalies (DESIGN.md,
Sentinel).

Regular expressions are compiled with RE2 (linear time in the input, no backtracking), so a
rule like ``(a+)+$`` cannot stall a worker; patterns RE2 cannot express (back-references,
look-around) are refused at load with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import re2
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from backend.contract import Severity
from backend.policy.topics import topic_filter_problem
from backend.sentinel.inspection.errors import RuleProblem, RulesError
from backend.sentinel.inspection.model import Action

#: The rules the bench ships and a Sentinel worker loads unless told otherwise.
DEFAULT_RULES_PATH = Path(__file__).with_name("default_rules.yaml")
#: Longest regular expression source a rule may carry (RE2 also caps program size).
MAX_REGEX_CHARS = 2_000
#: RE2's compiled-program budget per pattern, in bytes: a pattern over it is refused.
RE2_MAX_MEM = 8 << 20


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JsonMatch(_Strict):
    """A JSON field match: ``path`` is dotted (``details.cmd``); one comparison."""

    path: str = Field(
        min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$"
    )
    equals: str | int | float | bool | None = None
    regex: str | None = Field(default=None, max_length=MAX_REGEX_CHARS)
    exists: bool | None = None

    @model_validator(mode="after")
    def _one_comparison(self) -> JsonMatch:
        given = [
            name
            for name in ("equals", "regex", "exists")
            if name in self.model_fields_set and getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError("a json match takes exactly one of `equals`, `regex`, `exists`")
        if self.regex is not None:
            _check_regex(self.regex)
        return self


class Signature(_Strict):
    """One signature: exactly one of ``literal``, ``regex`` or ``json``, with its verdict."""

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    severity: Severity = Severity.HIGH
    action: Action = Action.BLOCK
    #: Only messages whose topic matches this MQTT filter are checked.
    topic: str | None = None
    literal: str | None = Field(default=None, min_length=1, max_length=4096)
    regex: str | None = Field(default=None, min_length=1, max_length=MAX_REGEX_CHARS)
    json_match: JsonMatch | None = Field(default=None, alias="json")
    #: Case-insensitive literal / regex.
    nocase: bool = False

    @field_validator("topic")
    @classmethod
    def _topic_filter(cls, value: str | None) -> str | None:
        if value is not None and (problem := topic_filter_problem(value)):
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Signature:
        given = [
            n
            for n, v in (
                ("literal", self.literal),
                ("regex", self.regex),
                ("json", self.json_match),
            )
            if v is not None
        ]
        if len(given) != 1:
            raise ValueError("a signature takes exactly one of `literal`, `regex`, `json`")
        if self.regex is not None:
            _check_regex(self.regex)
        return self


class Behaviour(_Strict):
    """Shared fields of an anomaly behaviour: its verdict and whether it runs."""

    enabled: bool = True
    severity: Severity = Severity.MEDIUM
    action: Action = Action.FLAG


class RateBehaviour(Behaviour):
    """Per-publisher message rate against its own EWMA baseline (z-score)."""

    bucket_s: float = Field(default=1.0, gt=0, le=3600)
    alpha: float = Field(default=0.2, gt=0, lt=1)
    z_threshold: float = Field(default=4.0, gt=0)
    #: Buckets seen before the baseline is trusted (Device Defender's datapoints).
    min_buckets: int = Field(default=10, ge=2)
    #: A floor under the deviation so a perfectly steady sender is not alarmed by +1.
    min_std: float = Field(default=1.0, gt=0)


class SizeBehaviour(Behaviour):
    """Payload size outliers against the publisher's own running mean and deviation."""

    alpha: float = Field(default=0.05, gt=0, lt=1)
    z_threshold: float = Field(default=6.0, gt=0)
    min_samples: int = Field(default=20, ge=2)
    min_std_bytes: float = Field(default=16.0, gt=0)


class BeaconBehaviour(Behaviour):
    """Regular inter-arrival times with low jitter: a C2 channel's heartbeat."""

    severity: Severity = Severity.HIGH
    #: Consecutive intervals looked at.
    samples: int = Field(default=8, ge=3, le=1000)
    #: Coefficient of variation (std / mean) under which the rhythm counts as beaconing.
    max_jitter_ratio: float = Field(default=0.05, gt=0, lt=1)
    min_interval_s: float = Field(default=1.0, gt=0)
    max_interval_s: float = Field(default=3600.0, gt=0)


class FirstSeenBehaviour(Behaviour):
    """A publisher or a topic never seen before, after a learning period."""

    severity: Severity = Severity.LOW
    publisher: bool = True
    topic: bool = False
    learning_s: float = Field(default=0.0, ge=0)


class Anomaly(_Strict):
    """The anomaly stage's behaviours."""

    rate: RateBehaviour = RateBehaviour()
    payload_size: SizeBehaviour = SizeBehaviour()
    beaconing: BeaconBehaviour = BeaconBehaviour()
    first_seen: FirstSeenBehaviour = FirstSeenBehaviour(enabled=False)
    #: Most publishers tracked; the least recently seen is forgotten beyond it (a flood of
    #: new identities must not grow memory without bound).
    max_tracked: int = Field(default=100_000, ge=1)


class ClientCheck(_Strict):
    """Verdict for a message to a client the Auth DB does not know, or has disabled."""

    severity: Severity = Severity.HIGH
    action: Action = Action.BLOCK


class Stuffing(_Strict):
    """Credential stuffing: failed auth for one client or from one source in a window."""

    enabled: bool = True
    failures: int = Field(default=10, ge=2)
    window_s: float = Field(default=60.0, gt=0)
    severity: Severity = Severity.HIGH


class TwoRegions(_Strict):
    """One client authenticated in two regions within a window."""

    enabled: bool = True
    window_s: float = Field(default=30.0, gt=0)
    severity: Severity = Severity.HIGH


class AuthRules(_Strict):
    """The auth-verification stage."""

    unknown_client: ClientCheck = ClientCheck()
    disabled_client: ClientCheck = ClientCheck()
    credential_stuffing: Stuffing = Stuffing()
    concurrent_regions: TwoRegions = TwoRegions()


class IocRules(_Strict):
    """How IOCs shared by a peer site (``aurora.ioc_sharing``) act as signatures."""

    enabled: bool = True
    severity: Severity = Severity.HIGH
    action: Action = Action.BLOCK
    #: Most IOC values kept; the oldest go first.
    max_iocs: int = Field(default=10_000, ge=1)


class Limits(_Strict):
    """Bounds that keep one hostile message from costing more than its share."""

    #: Larger payloads are quarantined unread (``oversize`` finding).
    max_payload_bytes: int = Field(default=64 * 1024, ge=64)
    #: Literal and regex signatures look at this many leading bytes.
    scan_bytes: int = Field(default=16 * 1024, ge=64)
    #: JSON deeper than this is not parsed for field matches (``too_deep`` finding).
    max_json_depth: int = Field(default=32, ge=1, le=200)
    #: Messages per second one client's topic may receive (token bucket) before the
    #: excess is dropped unjudged (``client-flood``), so one flooded client cannot delay
    #: everyone else's alerts behind it in the worker.
    client_rate_per_s: float = Field(default=500.0, gt=0)
    client_burst: float = Field(default=1000.0, ge=1)


class Aggregation(_Strict):
    """One security event per rule and client per window."""

    window_s: float = Field(default=60.0, gt=0)
    #: Detail strings kept per event as samples.
    samples: int = Field(default=3, ge=0, le=20)


class Rules(_Strict):
    """The whole rules file."""

    version: Literal[1] = 1
    limits: Limits = Limits()
    signatures: Annotated[list[Signature], Field(max_length=10_000)] = []
    anomaly: Anomaly = Anomaly()
    auth: AuthRules = AuthRules()
    iocs: IocRules = IocRules()
    aggregation: Aggregation = Aggregation()

    @model_validator(mode="after")
    def _unique_ids(self) -> Rules:
        seen: set[str] = set()
        for signature in self.signatures:
            if signature.id in seen:
                raise ValueError(f"signature id {signature.id!r} is used twice")
            seen.add(signature.id)
        return self


def _check_regex(pattern: str) -> None:
    options = re2.Options()
    options.max_mem = RE2_MAX_MEM
    try:
        re2.compile(pattern, options)
    except re2.error as error:
        raise ValueError(f"regular expression {pattern!r} is refused by RE2: {error}") from None


def load_rules(path: Path) -> Rules:
    """Read and check a rules file; a :class:`RulesError` lists every problem by line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RulesError(str(path), [RuleProblem(None, f"cannot read: {error}")]) from None
    return parse_rules(text, str(path))


def parse_rules(text: str, source: str = "<rules>") -> Rules:
    """Check rules given as YAML text (``source`` names it in errors)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise RulesError(source, [RuleProblem(line, f"not valid YAML: {error.problem}")]) from None
    except yaml.YAMLError as error:
        raise RulesError(source, [RuleProblem(None, f"not valid YAML: {error}")]) from None
    if node is None:
        return Rules()
    if not isinstance(node, yaml.MappingNode):
        raise RulesError(source, [RuleProblem(_line(node), "a rules file is a mapping")])
    duplicates = list(_duplicate_keys(node))
    if duplicates:
        raise RulesError(source, duplicates)
    try:
        data: Any = yaml.SafeLoader(text).get_single_data()
    except yaml.YAMLError as error:
        raise RulesError(source, [RuleProblem(None, f"not valid YAML: {error}")]) from None
    try:
        return Rules.model_validate(data)
    except ValidationError as error:
        problems = [
            RuleProblem(_line(_locate(node, e["loc"])), _message(e["loc"], e["msg"]))
            for e in error.errors()
        ]
        raise RulesError(source, sorted(problems, key=lambda p: p.line or 0)) from None


def _message(loc: Sequence[int | str], msg: str) -> str:
    path = ".".join(str(p) for p in loc if not str(p).startswith("function-"))
    msg = msg.removeprefix("Value error, ")
    return f"{path}: {msg}" if path else msg


def _line(node: yaml.Node | None) -> int | None:
    return None if node is None else node.start_mark.line + 1


def _locate(root: yaml.Node, loc: Sequence[int | str]) -> yaml.Node:
    """The deepest YAML node on ``loc`` (pydantic's error location)."""
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    node = value
                    break
            else:
                return node
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return node
            node = node.value[part]
        else:
            return node
    return node


def _duplicate_keys(node: yaml.Node) -> Iterator[RuleProblem]:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                yield RuleProblem(_line(key), f"key {key.value!r} appears twice")
            seen.add(key.value)
            yield from _duplicate_keys(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _duplicate_keys(item)
