"""Board models in virtual time: statistics, alerts, identity, attestation, faults."""

import hashlib
import json
import statistics
import uuid
from datetime import UTC, datetime
from itertools import pairwise

import pytest
import simpy

from backend.contract import (
    AttestationRequest,
    ContractViolation,
    MessageKind,
    RejectReason,
    decode_upstream,
    encode,
)
from backend.contract.attestation import signature_valid
from backend.contract.messages import AttestationResponse, StatusMessage
from simulators import (
    BOARDS,
    EnvPresenceConfig,
    EnvPresenceNode,
    Fault,
    FaultError,
    RecordingOutbox,
    self_signed_identity,
)
from simulators.node import SIM_EPOCH_S, Node

DAY = 86_400


def run(node_cls: type[Node], device_id: str, until: float, **kwargs: object):
    env = simpy.Environment()
    out = RecordingOutbox()
    node = node_cls(env, device_id, out, **kwargs)  # type: ignore[arg-type]
    node.start()
    env.run(until=until)
    return env, out, node


def values(out: RecordingOutbox, metric: str) -> list[tuple[float, float]]:
    rows = []
    for m in out.of_kind(MessageKind.TELEMETRY):
        body = json.loads(m.payload)
        if body["metric"] == metric:
            rows.append((m.at_s, body["value"]))
    return rows


def test_every_message_is_contract_valid_for_every_board() -> None:
    for kind, cls in BOARDS.items():
        device_id = f"{kind}-01"
        _, out, _ = run(cls, device_id, 3 * 3600)
        assert out.messages, kind
        for m in out.messages:
            topic, _ = decode_upstream(m.topic, m.payload)
            assert topic.device_id == device_id
        status = StatusMessage.model_validate_json(out.of_kind(MessageKind.STATUS)[0].payload)
        assert (status.board_family, status.device_type) == {
            "esp32s3-env": ("esp32s3", "environmental_presence"),
            "stm32f401-access": ("stm32f401", "access_control_node"),
            "stm32f401-door": ("stm32f401", "access_control_node"),
            "nrf52840-sentinel": ("nrf52840", "environmental_sentinel"),
        }[kind]


def test_status_hash_is_sha256_of_the_flash_image_and_drift_changes_it() -> None:
    env, out, node = run(BOARDS["stm32f401-door"], "stm32f401-door-01", 10)
    first = json.loads(out.of_kind(MessageKind.STATUS)[0].payload)
    assert first["firmware_hash"] == hashlib.sha256(node.firmware.data).hexdigest()
    node.drift_firmware()
    env.run(until=11)
    last = json.loads(out.of_kind(MessageKind.STATUS)[-1].payload)
    assert last["firmware_hash"] != first["firmware_hash"]
    assert last["firmware_hash"] == hashlib.sha256(node.firmware.data).hexdigest()
    assert [f.fault for f in node.faults] == [Fault.FIRMWARE_DRIFT]


def test_climate_follows_the_day_with_small_noise() -> None:
    _, out, _ = run(EnvPresenceNode, "esp32s3-env-01", 2 * DAY)
    temps = values(out, "temperature_c")
    assert len(temps) == pytest.approx(2 * DAY / 10, abs=2)
    mean = statistics.fmean(v for _, v in temps)
    assert mean == pytest.approx(22.0, abs=0.1)
    # Start is 09:00: warmest reading near 15:00 local, i.e. 6 h in (or a day later).
    warmest_at = max(temps, key=lambda row: row[1])[0] % DAY
    assert abs(warmest_at - 6 * 3600) < 1.5 * 3600
    humid = values(out, "humidity_pct")
    assert max(humid, key=lambda row: row[1])[0] % DAY == pytest.approx(18 * 3600, abs=1.5 * 3600)
    # Noise: neighbouring readings differ by about sqrt(2)*0.1 C.
    steps = [b[1] - a[1] for a, b in pairwise(temps)]
    assert 0.08 < statistics.pstdev(steps) < 0.25


def test_presence_arrivals_follow_office_hours() -> None:
    _, out, node = run(EnvPresenceNode, "esp32s3-env-02", 10 * DAY)
    # 12/h for 10 h plus 0.5/h for 14 h = 127 per day.
    assert node.arrivals == pytest.approx(1270, rel=0.12)
    rises = [t for t, v in values(out, "presence") if v == 1.0]
    busy = [t for t in rises if 8 * 3600 <= (t + 9 * 3600) % DAY < 18 * 3600]
    assert len(busy) / len(rises) > 0.85
    flags = [v for _, v in values(out, "presence")]
    assert all(a != b for a, b in pairwise(flags)), "edges alternate"


def test_repeated_sensor_timeouts_raise_one_critical_alert() -> None:
    env, out, node = run(EnvPresenceNode, "esp32s3-env-03", 35)
    node.inject(Fault.SENSOR_FAILURE, duration_s=60)
    env.run(until=200)
    alerts = [json.loads(m.payload) for m in out.of_kind(MessageKind.ALERTS)]
    assert alerts == [
        {
            "device_id": "esp32s3-env-03",
            "type": "sensor_unhealthy",
            "severity": "critical",
            "event_details": "AHT21B unhealthy: repeated sensor timeout",
        }
    ]
    assert values(out, "temperature_c")[-1][0] > 100, "readings resume after recovery"


def test_same_seed_same_sequence_other_seed_differs() -> None:
    def sequence(seed: int) -> list[tuple[float, str, bytes]]:
        _, out, _ = run(EnvPresenceNode, "esp32s3-env-04", 3600, seed=seed)
        return [(m.at_s, m.topic, m.payload) for m in out.messages]

    assert sequence(5) == sequence(5)
    assert sequence(5) != sequence(6)


def challenge(node: Node, issued_at: float | None = None) -> str:
    nonce = uuid.uuid4().hex
    when = datetime.fromtimestamp(issued_at or node.local_time() - node.clock_skew_s, UTC)
    request = AttestationRequest(
        nonce=nonce,
        issued_at=when.isoformat().replace("+00:00", "Z"),
        expires_in_s=30,
    )
    node.deliver(MessageKind.ATTESTATION_REQUEST, encode(request))
    node.env.run(until=node.env.now + 1)
    return nonce


def responses(out: RecordingOutbox) -> list[AttestationResponse]:
    return [
        AttestationResponse.model_validate_json(m.payload)
        for m in out.of_kind(MessageKind.ATTESTATION_RESPONSE)
    ]


def test_attestation_response_verifies_with_the_backend_verifier() -> None:
    identity = self_signed_identity("stm32f401-door-05")
    _, out, node = run(BOARDS["stm32f401-door"], "stm32f401-door-05", 5, identity=identity)
    nonce = challenge(node)
    [answer] = responses(out)
    assert answer.nonce == nonce
    assert answer.firmware_hash == node.firmware.sha256
    assert answer.certificate == identity.certificate_pem
    assert signature_valid(answer, identity.certificate)
    other = self_signed_identity("stm32f401-door-05")
    assert not signature_valid(answer, other.certificate)


def test_replay_answers_a_new_challenge_with_the_old_response() -> None:
    identity = self_signed_identity("esp32s3-env-06")
    _, out, node = run(EnvPresenceNode, "esp32s3-env-06", 5, identity=identity)
    first = challenge(node)
    node.inject(Fault.REPLAY_ATTESTATION)
    second = challenge(node)
    answers = responses(out)
    assert [a.nonce for a in answers] == [first, first]
    assert second != first


def test_clock_skew_makes_a_fresh_challenge_look_expired() -> None:
    identity = self_signed_identity("esp32s3-env-07")
    env, out, node = run(EnvPresenceNode, "esp32s3-env-07", 5, identity=identity)
    node.inject(Fault.CLOCK_SKEW, skew_s=3600)
    challenge(node, issued_at=SIM_EPOCH_S + float(env.now))
    assert responses(out) == []
    assert node.ignored_challenges == 1


@pytest.mark.parametrize(
    ("variant", "reason"),
    [
        ("not_json", RejectReason.NOT_JSON),
        ("non_finite", RejectReason.NON_FINITE),
        ("unknown_field", RejectReason.UNKNOWN_FIELD),
        ("wrong_type", RejectReason.WRONG_TYPE),
        ("oversize", RejectReason.OVERSIZE),
    ],
)
def test_malformed_payloads_break_the_contract_as_named(variant: str, reason: RejectReason) -> None:
    env, out, node = run(EnvPresenceNode, "esp32s3-env-08", 1)
    node.inject(Fault.MALFORMED_PAYLOAD, variant=variant)
    env.run(until=2)
    bad = out.messages[-1]
    with pytest.raises(ContractViolation) as caught:
        decode_upstream(bad.topic, bad.payload)
    assert caught.value.reason is reason


def test_impersonation_and_c2_beacon_topics() -> None:
    env, out, node = run(EnvPresenceNode, "esp32s3-env-09", 1)
    node.inject(Fault.IMPERSONATE, target="stm32f401-door-01")
    node.inject(Fault.C2_BEACON, interval_s=60, count=5)
    env.run(until=1000)
    fake = next(m for m in out.messages if "stm32f401-door-01" in m.topic)
    assert fake.topic == "aurora/sensors/stm32f401-door-01/status"
    beacons = [m for m in out.messages if m.kind is None]
    assert len(beacons) == 5
    gaps = {round(b.at_s - a.at_s, 9) for a, b in pairwise(beacons)}
    assert gaps == {60.0}, "jitter-free"
    assert all(b.topic == "aurora/sensors/esp32s3-env-09/beacon" for b in beacons)


def test_offline_drops_messages_and_online_reports_status() -> None:
    env, out, node = run(EnvPresenceNode, "esp32s3-env-10", 5)
    node.inject(Fault.OFFLINE, duration_s=100)
    env.run(until=50)
    count = len(out.messages)
    env.run(until=104)
    assert len(out.messages) == count
    assert node.dropped_offline > 0
    env.run(until=106)
    assert out.presence_changes == [False, True]
    assert out.messages[count].kind is MessageKind.STATUS


def test_bad_fault_parameters_are_refused_clearly() -> None:
    _, _, node = run(EnvPresenceNode, "esp32s3-env-11", 1)
    with pytest.raises(FaultError, match="parameters accepted: skew_s"):
        node.inject(Fault.CLOCK_SKEW, skew=5)
    with pytest.raises(FaultError, match="unknown fault 'melt'"):
        node.inject("melt")
    with pytest.raises(FaultError, match="no earlier attestation"):
        node.inject(Fault.REPLAY_ATTESTATION, now=True)
    with pytest.raises(FaultError, match="variant"):
        node.inject(Fault.MALFORMED_PAYLOAD, variant="cursed")
    with pytest.raises(FaultError, match="interval_s must be a number >= 0"):
        node.inject(Fault.C2_BEACON, interval_s=-1)
    with pytest.raises(FaultError, match="interval_s must be > 0"):
        node.inject(Fault.C2_BEACON, interval_s=0)
    with pytest.raises(FaultError, match="duration_s must be a number"):
        node.inject(Fault.OFFLINE, duration_s="soon")
    with pytest.raises(FaultError, match=r"impersonate: .*bad id"):
        node.inject(Fault.IMPERSONATE, target="bad id")
    with pytest.raises(FaultError, match="impersonate: 'nonsense'"):
        node.inject(Fault.IMPERSONATE, target="door-1", kind="nonsense")
    assert node.faults == []


def test_config_type_is_checked() -> None:
    with pytest.raises(TypeError, match="DoorConfig"):
        BOARDS["stm32f401-door"](
            simpy.Environment(), "d-1", RecordingOutbox(), config=EnvPresenceConfig()
        )
