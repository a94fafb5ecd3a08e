"""The ``wan`` action and the ``wan:`` scenario setting (issue 17): the emulated WAN link.

A scenario that sets ``wan: "delay=50ms jitter=10ms loss=1%"`` runs its two sites in
network namespaces across the emulated link (``aurora-bench up --wan``; root only, the
scenario is skipped elsewhere). Its steps may then cut the link, restore it or reshape
it: the network, not a process, so both sites keep running and notice by themselves::

    - name: the WAN goes dark
      wan: {cut: true}
    - name: and comes back
      wan: {restore: true}
    - wan: {conditions: "delay=200ms loss=5%"}

Only the models live here (imported by :mod:`~bench.scenario.actions`); doing them is
:mod:`bench.scenario.wan_perform`, registered with :func:`~bench.scenario.perform.perform`.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from bench.scenario.fields import Strict
from bench.wan.conditions import LinkConditions, WanSpecError, parse_conditions


def checked_conditions(text: str) -> LinkConditions:
    """``--wan`` syntax -> LinkConditions; a ValueError (pydantic's) says what is wrong."""
    try:
        return parse_conditions(text)
    except WanSpecError as error:
        raise ValueError(str(error).removeprefix("--wan: ")) from None


class WanAction(Strict):
    """``wan``: cut the emulated WAN between the sites, restore it, or set new conditions."""

    cut: bool = Field(False, description="drop every packet between the sites from now on")
    restore: bool = Field(False, description="carry packets again (the conditions before)")
    conditions: str | None = Field(
        None, description='new delay, jitter and loss, e.g. "delay=200ms jitter=20ms loss=5%"'
    )

    @model_validator(mode="after")
    def _one_thing(self) -> WanAction:
        chosen = [name for name in ("cut", "restore") if getattr(self, name)]
        if self.conditions is not None:
            checked_conditions(self.conditions)
            chosen.append("conditions")
        if len(chosen) != 1:
            raise ValueError("give exactly one of cut: true, restore: true or conditions")
        return self
