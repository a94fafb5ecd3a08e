"""Token client steps of a scenario (seed 004): the loader's errors, the verdicts on
hand-built timelines, and the hostile tokens the steps connect with."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.policy.errors import TokenRejected
from bench.issuer import Forgery, IssuerKey, forge
from bench.scenario.expectations import evaluate
from bench.scenario.loader import ScenarioLoadError, parse_scenario
from bench.scenario.timeline import EventKind, Timeline
from bench.scenario.token_steps import (
    TOKEN_SOURCE,
    TokenConnectExpect,
    TokenPublishExpect,
    TokenSubscribeExpect,
)
from bench.scenario.windows import Verdict
from bench.scenario.wording import describe
from tests.unit.policy.test_tokens import ISSUER, FakeJwks, verifier


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioLoadError) as caught:
        parse_scenario(text, "t.yaml")
    return caught.value.lines()


def test_bad_token_steps_say_file_line_and_what_is_wrong() -> None:
    lines = problems(
        """name: bad
steps:
  - name: c
    token_connect: {client: v, sub: victor, token: alg_nones, ttl: 0}
  - name: p
    token_publish: {client: v, topic: "a/#"}
    expect:
      - token_subscribe: {client: v, granted: maybe}
"""
    )
    assert lines == [
        "t.yaml:4: steps.0.token_connect.ttl: a token lives 1 s to 2592000 s, not 0 s",
        "t.yaml:4: steps.0.token_connect.token: token 'alg_nones': use one of valid, expired, "
        "not_yet_valid, foreign_key, foreign_key_our_kid, alg_none, wrong_audience",
        "t.yaml:6: steps.1.token_publish.topic: 'a/#': a topic to publish on has no "
        "wildcards (+, #)",
        "t.yaml:8: steps.1.expect.0.token_subscribe.granted: Input should be a valid "
        "boolean, unable to interpret input",
    ]


def test_an_unknown_key_in_a_token_step_is_named_with_its_line() -> None:
    lines = problems(
        """name: bad
steps:
  - name: c
    token_connect:
      client: v
      sub: victor
      scope: [mqtt.write]
"""
    )
    assert lines == ["t.yaml:7: unknown key 'scope' in steps.0.token_connect"]


def test_a_client_used_before_it_is_connected_is_named_with_its_line() -> None:
    lines = problems(
        """name: bad
steps:
  - name: c
    token_connect: {client: v, sub: victor}
    expect:
      - token_publish: {client: v, delivered: true, to: nobody}
  - name: p
    token_subscribe: {client: w, filter: "a/#"}
"""
    )
    assert lines == [
        "t.yaml:6: token client 'nobody' is not connected by this or an earlier step "
        "(connected so far: v); add a `token_connect` with client: nobody",
        "t.yaml:8: token client 'w' is not connected by this or an earlier step "
        "(connected so far: v); add a `token_connect` with client: w",
    ]


def action(timeline: Timeline, t: float, kind: str, **data: object) -> None:
    timeline.record(EventKind.ACTION, "runner", site="a", t=t, action=kind, **data)


def test_connect_and_subscribe_verdicts_follow_the_reason_codes() -> None:
    timeline = Timeline()
    action(timeline, 1.0, "token_connect", client="v", reason_code=0, accepted=True)
    action(timeline, 1.1, "token_subscribe", client="v", filter="x/#", reason_code=135,
           granted=False)  # fmt: skip
    accepted = TokenConnectExpect(client="v", accepted=True)
    assert evaluate(accepted, timeline, 1.0, 1.2).verdict is Verdict.PASSED
    refused = evaluate(TokenConnectExpect(client="v", accepted=False), timeline, 1.0, 1.2)
    assert refused.verdict is Verdict.FAILED
    assert refused.observed == "reason code 0 (success)"
    # Only the step's own connect counts.
    missing = evaluate(accepted, timeline, 1.05, 1.2)
    assert missing.verdict is Verdict.FAILED
    assert missing.observed == "no token_connect of v in this step"
    granted = TokenSubscribeExpect(client="v", filter="x/#", granted=True)
    failed = evaluate(granted, timeline, 1.0, 1.2)
    assert (failed.verdict, failed.observed) == (Verdict.FAILED, "reason code 135 (not authorized)")
    refused_sub = TokenSubscribeExpect(client="v", granted=False)
    assert evaluate(refused_sub, timeline, 1.0, 1.2).verdict is Verdict.PASSED
    other_filter = TokenSubscribeExpect(client="v", filter="y", granted=False)
    assert evaluate(other_filter, timeline, 1.0, 1.2).verdict is Verdict.FAILED
    assert describe(granted) == "subscription of v to x/# granted"


def received(timeline: Timeline, t: float, client: str, topic: str) -> None:
    timeline.record(EventKind.MQTT, TOKEN_SOURCE, site="a", t=t, client=client, topic=topic)


def test_delivered_waits_for_the_receiver_and_dropped_waits_out_the_window() -> None:
    timeline = Timeline()
    action(timeline, 1.0, "token_publish", client="p", topic="t/1", reason_code=0, accepted=True)
    delivered = TokenPublishExpect(client="p", delivered=True, to="r", within=1.0)
    dropped = TokenPublishExpect(client="p", delivered=False, to="r", within=1.0)
    assert evaluate(delivered, timeline, 1.0, 1.5).verdict is Verdict.PENDING
    assert evaluate(dropped, timeline, 1.0, 1.5).verdict is Verdict.PENDING
    timed_out = evaluate(delivered, timeline, 1.0, 2.1)
    assert (timed_out.verdict, timed_out.observed) == (
        Verdict.FAILED,
        "PUBACK 0 (success); r got nothing on t/1",
    )
    assert evaluate(dropped, timeline, 1.0, 2.1).verdict is Verdict.PASSED
    received(timeline, 1.3, "someone-else", "t/1")
    received(timeline, 1.4, "r", "t/other")
    assert evaluate(dropped, timeline, 1.0, 2.1).verdict is Verdict.PASSED
    received(timeline, 1.5, "r", "t/1")
    passed = evaluate(delivered, timeline, 1.0, 1.6)
    assert passed.verdict is Verdict.PASSED
    assert passed.latency_s == pytest.approx(0.5)
    leaked = evaluate(dropped, timeline, 1.0, 1.6)
    assert (leaked.verdict, leaked.observed) == (
        Verdict.FAILED,
        "PUBACK 0 (success); r got it at 1.500s",
    )


def test_a_refused_publish_is_never_delivered() -> None:
    timeline = Timeline()
    action(timeline, 1.0, "token_publish", client="p", topic="t/1", reason_code=135,
           accepted=False)  # fmt: skip
    refused = TokenPublishExpect(client="p", delivered=False)
    assert evaluate(refused, timeline, 1.0, 1.1).verdict is Verdict.PASSED
    acked = evaluate(TokenPublishExpect(client="p", delivered=True), timeline, 1.0, 1.1)
    assert (acked.verdict, acked.observed) == (Verdict.FAILED, "PUBACK 135 (not authorized)")
    to = TokenPublishExpect(client="p", topic="t/1", delivered=True, to="r")
    assert evaluate(to, timeline, 1.0, 1.1).verdict is Verdict.FAILED  # no need to wait
    assert describe(to) == "publish of p on t/1 delivered to r within 2s"


@pytest.mark.parametrize(
    ("forgery", "reason"),
    [
        (Forgery.EXPIRED, "token has expired"),
        (Forgery.NOT_YET_VALID, "not valid yet"),
        (Forgery.FOREIGN_KEY, "is not in the issuer's JWKS"),
        (Forgery.FOREIGN_KEY_OUR_KID, "signature does not verify"),
        (Forgery.ALG_NONE, "'none'"),
        (Forgery.WRONG_AUDIENCE, "aud must include 'aurora-bench'"),
    ],
)
async def test_each_forgery_is_refused_for_its_own_flaw(
    forgery: Forgery, reason: str, tmp_path: Path
) -> None:
    key = IssuerKey.ensure(tmp_path)
    check = verifier(FakeJwks(key))
    good = key.mint(issuer=ISSUER, sub="alice", type_="user", groups=["admins"])
    assert (await check.subject(good)).id == "alice"
    token = forge(key, ISSUER, forgery, sub="alice", type_="user", groups=["admins"])
    with pytest.raises(TokenRejected) as caught:
        await check.subject(token)
    assert reason in caught.value.message
