"""The scenario file format: pydantic models, strict (unknown keys are refused).

A scenario says which sites exist (with backend setting overrides so timings shrink), which
devices run there, which badges open which doors, and a list of steps. Each step does at
most one action and then checks its expectations, each with a time bound counted in the
bench's clock from the moment the step's action started::

    name: badge swipes
    sites:
      a: {settings: {unlock_duration_s: 1}}
    fleet:
      - {id: door-01, board: stm32f401-door}
    grants:
      - {uid: 0455AF21, doors: [door-01]}
    steps:
      - name: a granted badge opens the door
        swipe: {device: door-01, uid: 0455AF21}
        expect:
          - command: {device: door-01, verb: unlock, within: 2s}
          - lock: {device: door-01, state: unlocked, within: 2s}

A step and an expectation are discriminated unions keyed on the YAML key: the action's key
(``swipe``) picks the step model, the expectation's only key (``lock``) picks the
expectation model; the action models live in :mod:`~bench.scenario.actions`, the
expectation models in :mod:`~bench.scenario.checks`.

``aurora-bench scenario schema`` prints the JSON Schema of :class:`Scenario`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    create_model,
    field_validator,
    model_validator,
)

from bench.scenario.actions import (
    ACTIONS,
    Action,
    AttestAction,
    DriftAction,
    FaultAction,
    GrantAction,
    HealAction,
    OperatorCommandAction,
    PartitionAction,
    PublishAction,
    RaiseAlertAction,
    ReplayAction,
    RevokeAction,
    Service,
    ServiceAction,
    StartAction,
    StopAction,
    SwipeAction,
    WaitAction,
)
from bench.scenario.checks import (
    CHECKS,
    AlertExpect,
    AuditExpect,
    Check,
    CommandExpect,
    DeviceExpect,
    EventMatch,
    LatencyExpect,
    LinkExpect,
    LockExpect,
    MetricExpect,
    NoAlertExpect,
    NoCommandExpect,
)
from bench.scenario.fields import (
    BadgeUid,
    DeviceId,
    Duration,
    SiteId,
    Strict,
    parse_duration,
)
from bench.scenario.fleet_spec import RESERVED_SETTINGS, NodeSpec, SiteSpec
from bench.scenario.wan_action import checked_conditions
from simulators.board_names import BoardKind

ACTION_KEYS = tuple(ACTIONS)
EXPECTATION_KEYS = tuple(CHECKS)


#: A grant of the scenario's setup (the same fields as the ``grant`` action).
GrantSpec = GrantAction


# ---------------------------------------------------------------- expectations


class ExpectationItem(Strict):
    """One entry of ``expect``: a mapping with exactly one key, the expectation's name."""

    @property
    def key(self) -> str:
        """Which expectation this is (``lock``)."""
        return next(iter(type(self).model_fields))

    @property
    def body(self) -> Check:
        """The expectation's parameters."""
        value: Check = getattr(self, self.key)
        return value


def _camel(key: str) -> str:
    return "".join(part.title() for part in key.split("_"))


_EXPECTATION_ITEMS: dict[str, type[ExpectationItem]] = {
    key: create_model(
        f"{_camel(key)}Expectation",
        __base__=ExpectationItem,
        __doc__=model.__doc__,
        **{key: (model, ...)},  # type: ignore[call-overload]
    )
    for key, model in CHECKS.items()
}


def _expectation_tag(value: Any) -> str | None:
    if isinstance(value, ExpectationItem):
        return f"<{value.key}>"
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        return f"<{key}>" if key in CHECKS else None
    return None


def _one_expectation(value: Any) -> Any:
    if isinstance(value, dict):
        known = [key for key in value if key in CHECKS]
        if len(known) > 1:
            raise ValueError(f"an expectation has exactly one key, got {', '.join(known)}")
        if not known:
            unknown = ", ".join(repr(key) for key in value)
            what = f"unknown expectation {unknown}; " if unknown else ""
            raise ValueError(f"{what}an expectation has exactly one of: {', '.join(CHECKS)}")
    return value


def _keyed_union(
    members: Iterable[tuple[str, type[BaseModel]]],
    tag: Callable[[Any], str | None],
    check: Callable[[Any], Any],
    *,
    error_type: str,
    error_message: str,
) -> Any:
    """A union of ``members`` picked by ``tag`` (``<key>``) once ``check`` passed the raw value.

    The models are only known at run time, so the Union is built from a tuple; ``check``
    runs first so that a mapping with several keys or none gets a message naming them.
    """
    return Annotated[
        Annotated[
            Union[  # noqa: UP007 - built from a tuple at run time
                tuple(Annotated[model, Tag(f"<{key}>")] for key, model in members)
            ],
            Discriminator(tag, custom_error_type=error_type, custom_error_message=error_message),
        ],
        BeforeValidator(check),
    ]


if TYPE_CHECKING:
    Expectation = ExpectationItem
else:
    Expectation = _keyed_union(
        _EXPECTATION_ITEMS.items(),
        _expectation_tag,
        _one_expectation,
        error_type="expectation",
        error_message="an expectation is a mapping with one key: " + ", ".join(CHECKS),
    )

_EXPECTATION_ADAPTER: TypeAdapter[ExpectationItem] = TypeAdapter(Expectation)


def parse_expectation(raw: Any) -> ExpectationItem:
    """One ``expect`` entry from its YAML value (``{"lock": {...}}``)."""
    return _EXPECTATION_ADAPTER.validate_python(raw)


# ---------------------------------------------------------------- steps


class StepBase(Strict):
    """A named step: at most one action, then its expectations.

    ``at`` starts the step that long after the scenario started; ``after`` that long after
    the previous step finished (default: at once). The step finishes when every
    expectation has been decided.
    """

    name: str = Field(min_length=1)
    at: Duration | None = None
    after: Duration | None = None
    expect: list[Expectation] = Field(default_factory=list)

    @model_validator(mode="after")
    def _at_or_after(self) -> StepBase:
        if self.at is not None and self.after is not None:
            raise ValueError("give `at` (from the scenario start) or `after`, not both")
        return self

    @property
    def action_key(self) -> str | None:
        """The action's key, or None for a step that only checks."""
        return next((key for key in type(self).model_fields if key in ACTIONS), None)

    @property
    def action(self) -> Action | None:
        """The action's parameters."""
        key = self.action_key
        return None if key is None else getattr(self, key)  # type: ignore[no-any-return]


class CheckStep(StepBase):
    """A step without an action: it only checks."""


_STEPS: dict[str, type[StepBase]] = {
    key: create_model(
        f"{_camel(key)}Step",
        __base__=StepBase,
        __doc__=(model.__doc__ or "").split("\n", 1)[0],
        **{key: (model, ...)},  # type: ignore[call-overload]
    )
    for key, model in ACTIONS.items()
}


def _step_tag(value: Any) -> str | None:
    if isinstance(value, StepBase):
        return f"<{value.action_key or 'check'}>"
    if isinstance(value, dict):
        key = next((key for key in ACTIONS if key in value), None)
        return f"<{key or 'check'}>"
    return None


def _one_action(value: Any) -> Any:
    if isinstance(value, dict):
        given = [key for key in ACTIONS if key in value]
        if len(given) > 1:
            raise ValueError(f"a step does one action, this one has {', '.join(given)}")
    return value


if TYPE_CHECKING:
    Step = StepBase
else:
    Step = _keyed_union(
        [*_STEPS.items(), ("check", CheckStep)],
        _step_tag,
        _one_action,
        error_type="step",
        error_message="a step is a mapping with `name`, at most one action and `expect`",
    )


# ---------------------------------------------------------------- the file


class Scenario(Strict):
    """A whole scenario file."""

    name: str = Field(min_length=1, description="readable name; pytest item name")
    description: str = ""
    markers: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] = Field(
        default_factory=list, description="extra pytest markers (must be registered)"
    )
    timeout: Duration = Field(120.0, description="the whole scenario must end within this")
    sites: dict[SiteId, SiteSpec] = Field(default_factory=lambda: {"a": SiteSpec()})
    fleet: list[NodeSpec] = Field(default_factory=list)
    grants: list[GrantSpec] = Field(default_factory=list)
    steps: list[Step] = Field(min_length=1)
    wan: str | None = Field(
        None,
        description="run the two sites in network namespaces across an emulated WAN, e.g. "
        '"delay=50ms jitter=10ms loss=1%" (root only; skipped elsewhere)',
    )

    @field_validator("wan")
    @classmethod
    def _wan_conditions(cls, value: str | None) -> str | None:
        if value is not None:
            checked_conditions(value)
        return value

    @field_validator("sites")
    @classmethod
    def _one_or_two_sites(cls, value: dict[str, SiteSpec]) -> dict[str, SiteSpec]:
        if not 1 <= len(value) <= 2:
            raise ValueError(f"a scenario has one or two sites, not {len(value)}")
        return value

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        # Cross references are checked here so a typo fails at `scenario check`, not
        # half-way through a run. Locations are reported by the loader from the message.
        ids = [node.id for node in self.fleet]
        if self.wan is not None and len(self.sites) != 2:
            raise ValueError("wan: joins two sites; name two under `sites`")
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"fleet: device ids used twice: {', '.join(duplicates)}")
        for node in self.fleet:
            if node.site is not None and node.site not in self.sites:
                raise ValueError(f"fleet: {node.id} is at unknown site {node.site!r}")
        later = [site for site, spec in list(self.sites.items())[1:] if spec.sentinel]
        if later:
            raise ValueError(
                f"sites: `sentinel: true` belongs on the first site (the origin), not {later[0]}"
            )
        return self

    @property
    def sentinel(self) -> bool:
        """True when the scenario runs the Sentinel (``sentinel: true`` on the first site)."""
        return self.sites[self.first_site].sentinel

    @property
    def first_site(self) -> str:
        """The site used when a step names none."""
        return next(iter(self.sites))

    def site_of(self, device_id: str) -> str:
        """The site a device of the fleet runs at (first site for unknown devices)."""
        for node in self.fleet:
            if node.id == device_id:
                return node.site or self.first_site
        return self.first_site

    def bench_key(self) -> str:
        """Scenarios with equal keys can share one running bench."""
        env = {site: spec.env() for site, spec in self.sites.items()}
        return json.dumps(
            {"sites": env, "wan": self.wan, "sentinel": self.sentinel}, sort_keys=True
        )


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a scenario file (for editors)."""
    schema = Scenario.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "aurora-bench scenario"
    return schema


def model_of_step(key: str | None) -> type[BaseModel]:
    """The step model of an action key (``None``: a step that only checks)."""
    return CheckStep if key is None else _STEPS[key]


__all__ = [
    "ACTION_KEYS",
    "EXPECTATION_KEYS",
    "RESERVED_SETTINGS",
    "AlertExpect",
    "AttestAction",
    "AuditExpect",
    "BadgeUid",
    "BoardKind",
    "CheckStep",
    "CommandExpect",
    "DeviceExpect",
    "DeviceId",
    "DriftAction",
    "Duration",
    "EventMatch",
    "Expectation",
    "ExpectationItem",
    "FaultAction",
    "GrantAction",
    "GrantSpec",
    "HealAction",
    "LatencyExpect",
    "LinkExpect",
    "LockExpect",
    "MetricExpect",
    "NoAlertExpect",
    "NoCommandExpect",
    "NodeSpec",
    "OperatorCommandAction",
    "PartitionAction",
    "PublishAction",
    "RaiseAlertAction",
    "ReplayAction",
    "RevokeAction",
    "Scenario",
    "Service",
    "ServiceAction",
    "SiteId",
    "SiteSpec",
    "StartAction",
    "Step",
    "StepBase",
    "StopAction",
    "SwipeAction",
    "WaitAction",
    "json_schema",
    "parse_duration",
    "parse_expectation",
]
