"""Token clients in a scenario (seed 004): the actions and expectations, as models.

A token client is an MQTT client of a site's token listener (``policy_mqtt`` in
bench.json) that logs in with a JWT as its password; Mosquitto's ``aurora_auth`` plugin
asks the site's policy service about its connect, every publish and every subscribe.
A step connects one under a name, later steps publish and subscribe as that name, and
expectations say what the broker answered::

    - name: a viewer may not publish
      token_connect: {client: victor, sub: victor, type: user, groups: [viewers]}
      expect:
        - token_connect: {client: victor, accepted: true}
    - name: its publish is dropped
      token_publish: {client: victor, topic: celine/telemetry/meter/m-1/readings}
      expect:
        - token_publish: {client: victor, delivered: false}

``token: expired`` (``not_yet_valid``, ``foreign_key``, ``foreign_key_our_kid``,
``alg_none``, ``wrong_audience``) connects with a hostile token instead of a good one.
The functions that perform and judge these are in :mod:`~bench.scenario.token_clients`
and :mod:`~bench.scenario.token_checks`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator

from bench.issuer import DEFAULT_TTL_S, MAX_TTL_S, Forgery
from bench.scenario.fields import Duration, SiteId, Strict

#: The source of the ``mqtt`` events of messages token clients received.
TOKEN_SOURCE = "token"  # noqa: S105 - an event source, not a secret
#: The name a scenario gives a token client (also its MQTT client id's prefix).
ClientName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,48}$")]
#: Topic names and filters are at most 65,535 bytes (MQTT); a scenario needs far fewer.
_MAX_TOPIC = 1024
#: A claim value: subjects, groups and scopes are short printable words.
Claim = Annotated[str, Field(pattern=r"^[\x21-\x7e]{1,128}$")]

#: ``token:`` a good token, or one spoiled as a :class:`~bench.issuer.Forgery` says.
VALID = "valid"
TOKEN_KINDS = (VALID, *(forgery.value for forgery in Forgery))


def _topic_name(value: str) -> str:
    if "+" in value or "#" in value:
        raise ValueError(f"{value!r}: a topic to publish on has no wildcards (+, #)")
    return _topic_filter(value)


def _topic_filter(value: str) -> str:
    if not value:
        raise ValueError("a topic is at least one character")
    if len(value.encode()) > _MAX_TOPIC:
        raise ValueError(f"a topic of {len(value.encode())} bytes; at most {_MAX_TOPIC}")
    if "\x00" in value:
        raise ValueError("a topic has no NUL character")
    return value


#: A topic to publish on (no wildcards) and a topic filter to subscribe to.
TopicName = Annotated[str, AfterValidator(_topic_name)]
TopicFilter = Annotated[str, AfterValidator(_topic_filter)]


class TokenConnectAction(Strict):
    """``token_connect``: connect a token client to the site's token listener.

    The JWT comes from the bench's issuer with these claims (``type`` user or service,
    ``groups``, ``scopes``, lifetime ``ttl``), or is spoiled as ``token`` says. The client
    stays connected under ``client`` for later steps until the scenario ends or it
    connects again; a refused client is closed at once.
    """

    client: ClientName
    sub: Claim
    type: Literal["user", "service"] = "service"
    groups: list[Claim] = Field(default_factory=list, max_length=32)
    scopes: list[Claim] = Field(default_factory=list, max_length=32)
    ttl: Duration = float(DEFAULT_TTL_S)
    token: str = Field(
        VALID,
        description="valid, or how the token is spoiled",
        json_schema_extra={"enum": list(TOKEN_KINDS)},
    )
    username: str | None = Field(
        None, max_length=256, description="MQTT username (default: the token's subject)"
    )
    site: SiteId | None = None

    @field_validator("token")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in TOKEN_KINDS:
            raise ValueError(f"token {value!r}: use one of {', '.join(TOKEN_KINDS)}")
        return value

    @field_validator("ttl")
    @classmethod
    def _ttl_in_range(cls, value: float) -> float:
        if not 1 <= value <= MAX_TTL_S:
            raise ValueError(f"a token lives 1 s to {MAX_TTL_S} s, not {value:g} s")
        return value


class TokenPublishAction(Strict):
    """``token_publish``: publish at QoS 1 as a connected token client.

    QoS 1 because its PUBACK carries the broker's verdict (MQTT 5: 135, not authorized).
    """

    client: ClientName
    topic: TopicName
    payload: str = Field("{}", max_length=65_536)


class TokenSubscribeAction(Strict):
    """``token_subscribe``: subscribe a connected token client to a topic filter."""

    client: ClientName
    filter: TopicFilter


class TokenConnectExpect(Strict):
    """The broker accepted (CONNACK 0) or refused the step's connect of ``client``."""

    client: ClientName
    accepted: bool


class TokenSubscribeExpect(Strict):
    """The broker granted (SUBACK < 128) or refused the step's subscribe of ``client``."""

    client: ClientName
    filter: str | None = Field(None, description="only this filter (default: any)")
    granted: bool


class TokenPublishExpect(Strict):
    """The step's publish of ``client`` was delivered, or dropped.

    ``delivered: true``: the broker acknowledged it (PUBACK < 128) and, with ``to``, that
    token client received it within ``within``. ``delivered: false``: with ``to``, that
    client did not receive it during ``within`` (refused at publish or at delivery);
    without, the broker refused it (PUBACK >= 128).
    """

    client: ClientName
    topic: str | None = Field(None, description="only publishes on this topic")
    delivered: bool
    to: ClientName | None = Field(None, description="the token client that must (not) get it")
    within: Duration = 2.0


#: The token actions by their key in a step.
TOKEN_ACTIONS: dict[str, type[Strict]] = {
    "token_connect": TokenConnectAction,
    "token_publish": TokenPublishAction,
    "token_subscribe": TokenSubscribeAction,
}

#: The token expectations by their key in ``expect``.
TOKEN_CHECKS: dict[str, type[Strict]] = {
    "token_connect": TokenConnectExpect,
    "token_subscribe": TokenSubscribeExpect,
    "token_publish": TokenPublishExpect,
}

TokenAction = TokenConnectAction | TokenPublishAction | TokenSubscribeAction
TokenCheck = TokenConnectExpect | TokenSubscribeExpect | TokenPublishExpect


def token_references(steps: Sequence[Any]) -> list[tuple[tuple[int | str, ...], str]]:
    """Token clients used before any step connects them: (location, message) per use.

    ``steps`` are the scenario's steps (``action_key``, ``action``, ``expect``); a name is
    known from the step that connects it on, that step's expectations included.
    """
    problems: list[tuple[tuple[int | str, ...], str]] = []
    known: set[str] = set()

    def check(loc: tuple[int | str, ...], name: str | None) -> None:
        if name is not None and name not in known:
            named = ", ".join(sorted(known)) or "none yet"
            problems.append(
                (
                    loc,
                    f"token client {name!r} is not connected by this or an earlier step "
                    f"(connected so far: {named}); add a `token_connect` with client: {name}",
                )
            )

    for index, step in enumerate(steps):
        key, action = step.action_key, step.action
        if isinstance(action, TokenConnectAction):
            known.add(action.client)
        elif isinstance(action, TokenPublishAction | TokenSubscribeAction):
            check(("steps", index, key, "client"), action.client)
        for e_index, item in enumerate(step.expect):
            body = item.body
            if isinstance(body, TokenConnectExpect | TokenSubscribeExpect | TokenPublishExpect):
                loc = ("steps", index, "expect", e_index, item.key)
                check((*loc, "client"), body.client)
                if isinstance(body, TokenPublishExpect):
                    check((*loc, "to"), body.to)
    return problems
