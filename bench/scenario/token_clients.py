"""Performing the token actions: real MQTT 5 clients on a site's token listener.

Each client is a paho client (:func:`bench.policy_probe.token_client`: server-auth TLS,
the JWT as password) because the broker's verdicts are in reason codes only paho
reports: CONNACK (134/135 refused), PUBACK (135 not authorized) and SUBACK (>= 128
refused). paho runs its own network thread; the blocking calls run in a worker thread,
and a message a client receives is put on the timeline from the event loop.

What an action did is an ``action`` event (``token_connect``, ``token_publish``,
``token_subscribe``) with the reason code; a message a token client receives is an
``mqtt`` event from source ``token`` naming the client. :mod:`~bench.scenario.token_checks`
judges these.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.errors import BenchError
from bench.issuer import Forgery, TokenIssuer
from bench.policy_probe import TokenClient, token_client
from bench.scenario.timeline import EventKind
from bench.scenario.token_steps import (
    TOKEN_SOURCE,
    VALID,
    TokenConnectAction,
    TokenPublishAction,
    TokenSubscribeAction,
)

if TYPE_CHECKING:
    from bench.scenario.perform import Stage

#: How long a CONNACK, PUBACK or SUBACK may take (the plugin's HTTP timeout is 5 s).
ACK_TIMEOUT_S = 10.0
#: A reason code below this is a success (MQTT 5).
FIRST_FAILURE = 128


class TokenStepError(BenchError):
    """A token action could not be done (no token listener, unknown client, no answer)."""


@dataclass
class _Open:
    site: str
    client: TokenClient
    close: Callable[[], None]


@dataclass
class TokenClients:
    """The token clients a scenario has connected, by name (closed when it ends)."""

    open: dict[str, _Open] = field(default_factory=dict)

    def get(self, name: str) -> _Open:
        """The connected client called ``name``."""
        found = self.open.get(name)
        if found is None:
            known = ", ".join(sorted(self.open)) or "none"
            raise TokenStepError(
                f"no token client {name!r} is connected (connected: {known}); "
                "connect it with `token_connect` first (a refused connect leaves none)"
            )
        return found

    async def drop(self, name: str) -> None:
        """Disconnect ``name`` if it is connected."""
        found = self.open.pop(name, None)
        if found is not None:
            await asyncio.to_thread(found.close)

    async def aclose(self) -> None:
        """Disconnect every client."""
        for name in list(self.open):
            with contextlib.suppress(Exception):
                await self.drop(name)


def _issuer(stage: Stage) -> TokenIssuer:
    issuer: TokenIssuer | None = stage.bench.issuer
    if issuer is None:
        raise TokenStepError("the bench runs no token issuer, so no token client can log in")
    return issuer


def token_for(issuer: TokenIssuer, action: TokenConnectAction) -> str:
    """The JWT the action connects with: good, or spoiled as ``token`` says."""
    claims: dict[str, Any] = {
        "sub": action.sub,
        "type_": action.type,
        "scopes": action.scopes,
        "groups": action.groups,
        "ttl_s": round(action.ttl),
    }
    if action.token == VALID:
        return issuer.mint(**claims)
    return issuer.forge(Forgery(action.token), **claims)


async def connect(action: TokenConnectAction, stage: Stage) -> str:
    """Connect (again) the token client ``action.client``; the CONNACK is recorded."""
    site = stage.site_of(action.site)
    endpoint = stage.bench.info.site(site).policy_mqtt
    if endpoint is None:
        raise TokenStepError(f"site {site} has no token listener (policy_mqtt in bench.json)")
    clients = stage.token_clients
    await clients.drop(action.client)
    token = token_for(_issuer(stage), action)
    username = action.sub if action.username is None else action.username
    manager = token_client(
        endpoint.host,
        endpoint.port,
        stage.bench.pki.ca_cert,
        username=username,
        password=token,
        client_id=f"{action.client}-{uuid.uuid4().hex[:8]}",
        timeout_s=ACK_TIMEOUT_S,
    )
    sent = stage.timeline.clock()
    client = await asyncio.to_thread(manager.__enter__)

    def close() -> None:
        manager.__exit__(None, None, None)

    code = client.connack
    accepted = code == 0
    if accepted:
        _record_messages(stage, site, action.client, client)
        clients.open[action.client] = _Open(site, client, close)
    else:
        # paho would retry a refused connect forever: close it now.
        await asyncio.to_thread(close)
    stage.record(
        "token_connect", site, at=sent, client=action.client, sub=action.sub,
        token=str(action.token), reason_code=code, accepted=accepted,
    )  # fmt: skip
    verdict = "accepted" if accepted else f"refused ({code})"
    return f"{action.client} ({action.token} token of {action.sub}) {verdict}"


def _record_messages(stage: Stage, site: str, name: str, client: TokenClient) -> None:
    loop = asyncio.get_running_loop()
    timeline = stage.timeline

    def on_message(_client: Any, _userdata: Any, message: Any) -> None:
        # paho's network thread: stamp now, add on the loop (the timeline is not locked).
        at, topic, size = timeline.clock(), str(message.topic), len(message.payload)
        loop.call_soon_threadsafe(
            lambda: timeline.record(
                EventKind.MQTT, TOKEN_SOURCE, site=site, t=at, client=name, topic=topic, size=size
            )
        )

    client.client.on_message = on_message


async def publish(action: TokenPublishAction, stage: Stage) -> str:
    """Publish at QoS 1; the PUBACK reason code is recorded."""
    payload = action.payload.encode()
    code = await _ask(
        stage, action.client, "token_publish", "accepted",
        lambda client: client.publish(action.topic, payload), topic=action.topic,
    )  # fmt: skip
    return f"{action.client} on {action.topic}: PUBACK {code}"


async def subscribe(action: TokenSubscribeAction, stage: Stage) -> str:
    """Subscribe; the SUBACK reason code is recorded."""
    code = await _ask(
        stage, action.client, "token_subscribe", "granted",
        lambda client: client.subscribe(action.filter), filter=action.filter,
    )  # fmt: skip
    return f"{action.client} to {action.filter}: SUBACK {code}"


async def _ask(
    stage: Stage,
    name: str,
    request: str,
    verdict: str,
    call: Callable[[TokenClient], int],
    **fields: Any,
) -> int:
    """Make ``call`` of the connected token client ``name``; the broker's reason code is
    recorded as a ``request`` action event, with ``verdict`` true when it is a success."""
    found = stage.token_clients.get(name)
    sent = stage.timeline.clock()
    try:
        code = await asyncio.to_thread(call, found.client)
    except BenchError as error:
        raise TokenStepError(f"the broker did not answer: {error}") from None
    success: dict[str, Any] = {verdict: code < FIRST_FAILURE}
    stage.record(request, found.site, at=sent, client=name, **fields, reason_code=code, **success)
    return code
