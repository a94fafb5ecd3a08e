"""Doing the ``wan`` action (:mod:`bench.scenario.wan_action`) on the bench's link.

Importing this module registers it with :func:`~bench.scenario.perform.perform` (the
scenario runner does).
"""

from __future__ import annotations

import asyncio

from bench.errors import BenchError
from bench.scenario.perform import Stage, StepError, perform
from bench.scenario.wan_action import WanAction, checked_conditions


@perform.register
async def _wan(action: WanAction, stage: Stage) -> str:
    wan = stage.bench.wan
    if wan is None:
        raise StepError("wan: this scenario's sites are not across a WAN (set `wan:` on top)")
    try:
        if action.cut:
            await asyncio.to_thread(wan.cut)
            what = "WAN link cut"
        elif action.restore:
            await asyncio.to_thread(wan.restore)
            what = "WAN link restored"
        else:
            conditions = checked_conditions(action.conditions or "")
            await asyncio.to_thread(wan.set_conditions, conditions)
            what = f"WAN link now {conditions.describe()}"
    except BenchError as error:
        raise StepError(f"wan: {error}") from None
    stage.note(what)
    stage.record("wan", cut=action.cut, restore=action.restore, conditions=action.conditions)
    return what


async def heal_wan(stage: Stage) -> None:
    """After a scenario: the link restored with the bench's own conditions (the next
    scenario sharing the bench starts from a whole link)."""
    wan = stage.bench.wan
    if wan is not None:
        await asyncio.to_thread(wan.reset)
