"""decode_upstream under hostile input: it returns a valid message or raises
ContractViolation — never anything else — and what it accepts is what the contract says."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from backend.contract import (
    MAX_JSON_DEPTH,
    ContractViolation,
    MessageKind,
    RejectReason,
    decode_upstream,
    encode,
    topic_for,
)
from backend.contract.structure import json_depth
from tests.fuzz.hostile import (
    UPSTREAM,
    foreign_topic_messages,
    hostile_messages,
    rejection,
    valid_payload,
)
from tests.fuzz.profile import fuzz

DEVICE = "esp32s3-env-01"
kinds = st.sampled_from(UPSTREAM)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def decode_or_violation(topic: str, payload: bytes) -> object:
    """decode_upstream's result, or the violation; any other exception fails the test."""
    try:
        return decode_upstream(topic, payload)
    except ContractViolation as violation:
        assert violation.one_line()  # printable, one line for logs
        assert "\n" not in violation.one_line()
        return violation


@fuzz(400)
@given(kind=kinds, payload=st.binary(max_size=5000))
def test_arbitrary_bytes_never_escape_as_anything_but_a_violation(
    kind: MessageKind, payload: bytes
) -> None:
    decode_or_violation(topic_for(kind, DEVICE), payload)


@fuzz(300)
@given(topic=st.text(max_size=120), payload=st.binary(max_size=200))
def test_arbitrary_topics_never_escape(topic: str, payload: bytes) -> None:
    decode_or_violation(topic, payload)


@fuzz(120)
@given(kind=kinds, value=json_values, depth=st.integers(min_value=0, max_value=3000))
def test_any_json_nested_any_depth_is_decoded_or_refused(
    kind: MessageKind, value: Any, depth: int
) -> None:
    text = "[" * depth + json.dumps(value) + "]" * depth
    result = decode_or_violation(topic_for(kind, DEVICE), text.encode())
    if depth > MAX_JSON_DEPTH and len(text) <= 4096:
        assert isinstance(result, ContractViolation)
        assert result.reason is RejectReason.TOO_DEEP


@fuzz(120)
@given(value=json_values, wrap=st.lists(st.sampled_from(["[", "{"]), max_size=60))
def test_json_depth_is_exact(value: Any, wrap: list[str]) -> None:
    text = json.dumps(value)
    for opener in reversed(wrap):
        text = f"[{text}]" if opener == "[" else f'{{"k[{{":{text}}}'
    assert json_depth(text.encode()) == len(wrap) + _depth(value)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@fuzz(300)
@given(
    kind=kinds,
    n=st.integers(min_value=0, max_value=10**6),
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), max_size=6
    ),
)
def test_mutated_valid_payloads_are_refused_or_round_trip(
    kind: MessageKind, n: int, edits: list[tuple[int, int]]
) -> None:
    payload = bytearray(valid_payload(kind, DEVICE, n))
    for position, byte in edits:
        payload[position % len(payload)] = byte
    result = decode_or_violation(topic_for(kind, DEVICE), bytes(payload))
    if not isinstance(result, ContractViolation):
        topic, message = result  # type: ignore[misc]
        assert topic.device_id == DEVICE == message.device_id
        assert decode_upstream(topic_for(kind, DEVICE), encode(message))[1] == message


@fuzz(150)
@given(kind=kinds, n=st.integers(min_value=0, max_value=10**6), data=st.data())
def test_a_repeated_key_is_never_accepted(kind: MessageKind, n: int, data: st.DataObject) -> None:
    body = json.loads(valid_payload(kind, DEVICE, n))
    key = data.draw(st.sampled_from(sorted(body)))
    repeat = data.draw(st.sampled_from([body[key], "other-dev", 1, None]))
    pairs = [*body.items(), (key, repeat)]
    data.draw(st.randoms()).shuffle(pairs)
    text = "{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in pairs) + "}"
    result = decode_or_violation(topic_for(kind, DEVICE), text.encode())
    assert isinstance(result, ContractViolation)


def test_every_hostile_message_of_the_mqtt_test_is_refused_with_its_reason() -> None:
    rng = random.Random(11)
    messages = hostile_messages(DEVICE, rng) + foreign_topic_messages(rng)
    assert len(messages) >= 70
    for message in messages:
        assert rejection(message.topic, message.payload) is message.reason
    reasons = {message.reason for message in messages}
    assert {
        RejectReason.TOO_DEEP,
        RejectReason.DUPLICATE_KEY,
        RejectReason.OVERSIZE,
        RejectReason.NOT_JSON,
        RejectReason.NON_FINITE,
        RejectReason.DEVICE_ID_MISMATCH,
        RejectReason.BAD_DEVICE_ID,
    } <= reasons
