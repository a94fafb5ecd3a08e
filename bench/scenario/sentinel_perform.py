"""Doing the Sentinel's actions (registered on :func:`bench.scenario.perform.perform`).

The runner starts a :class:`~bench.scenario.sentinel_probe.SentinelProbe` for a scenario
with ``sentinel: true``; these functions act through it and the running cluster.
"""

from __future__ import annotations

import asyncio

from bench.errors import BenchError
from bench.scenario.perform import Stage, StepError, perform
from bench.scenario.sentinel_probe import SentinelProbe
from bench.scenario.sentinel_steps import (
    Credentials,
    SentinelClientAction,
    SentinelKillAction,
    SentinelPublishAction,
    SentinelStartAction,
)


def _probe(stage: Stage) -> SentinelProbe:
    if stage.sentinel is None:
        raise StepError("this step needs the Sentinel: put `sentinel: true` on the first site")
    return stage.sentinel


@perform.register
async def _sentinel_client(action: SentinelClientAction, stage: Stage) -> str:
    probe = _probe(stage)
    if action.credentials is Credentials.BAD:
        refused = await probe.bad_connects(action.id, action.region, action.attempts)
        stage.record("sentinel_client", device=action.id, credentials="bad", refused=refused)
        if refused != action.attempts:
            raise StepError(
                f"{action.attempts - refused} of {action.attempts} connects of {action.id} "
                "with a wrong password were accepted"
            )
        return f"{refused} connects of {action.id} refused"
    if action.create:
        await probe.add_client(action.id, action.region)
    await probe.subscribe(action.id, action.region)
    stage.record("sentinel_client", device=action.id, credentials="good", region=action.region)
    return f"{action.id} subscribed at {action.region}"


@perform.register
async def _sentinel_publish(action: SentinelPublishAction, stage: Stage) -> str:
    probe = _probe(stage)
    clock = stage.timeline.clock
    began = clock()
    for seq in range(action.count):
        if action.interval and seq:
            # Paced from the start, not from the previous send: a beacon keeps its rhythm.
            await asyncio.sleep(max(0.0, began + seq * action.interval - clock()))
        body = action.body(seq)
        sent = clock()
        await probe.publish(action.client, body)
        stage.record(
            "sentinel_publish", device=action.client, at=sent, seq=seq, size=len(body),
            topic=f"clients/{action.client}/alerts",
        )  # fmt: skip
    return f"{action.count} alert(s) for {action.client} through the origin"


@perform.register
async def _sentinel_kill(action: SentinelKillAction, stage: Stage) -> str:
    probe = await _switch_node(stage, action.region, up=False)
    try:
        moved = await probe.moved_off(action.region)
    except BenchError as error:
        raise StepError(str(error)) from None
    where = ", ".join(f"{name} at {probe.where[name]}" for name in moved) or "nobody was there"
    return f"node {action.region} killed; resubscribed: {where}"


@perform.register
async def _sentinel_start(action: SentinelStartAction, stage: Stage) -> str:
    await _switch_node(stage, action.region, up=True)
    return f"node {action.region} started"


async def _switch_node(stage: Stage, region: str, *, up: bool) -> SentinelProbe:
    """Start or kill the Sentinel node of ``region``; the probe learns which are down."""
    probe = _probe(stage)
    cluster = stage.bench.sentinel
    assert cluster is not None
    await asyncio.to_thread(cluster.start_node if up else cluster.kill_node, region)
    if up:
        probe.killed.discard(region)
    else:
        probe.killed.add(region)
    stage.note(f"Sentinel node {region} {'started' if up else 'killed'}")
    return probe
