"""Permission building: own topic only, explicit deny, nothing for a bad id."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.sentinel.errors import BadClientId
from backend.sentinel.permissions import (
    ClientType,
    Permissions,
    client_permissions,
    subscription_allowed,
)


@pytest.mark.parametrize("client_type", list(ClientType))
def test_a_client_may_subscribe_to_its_own_alerts_and_publish_nothing(
    client_type: ClientType,
) -> None:
    permissions = client_permissions("c1", client_type)
    assert subscription_allowed(permissions, "clients.c1.alerts")
    assert not subscription_allowed(permissions, "clients.c2.alerts")
    assert not subscription_allowed(permissions, "clients.*.alerts")
    assert not subscription_allowed(permissions, ">")
    claims = permissions.to_claims()
    # An empty allow list means "everything" in NATS: publish must be denied explicitly.
    assert claims["pub"] == {"deny": [">"]}
    assert "clients.c1.alerts" in claims["sub"]["allow"]


def test_mqtt_clients_get_no_mqtt_internal_subjects() -> None:
    # $MQTT.sub.> would let an MQTT client read other clients' QoS 1 deliveries.
    for client_type in ClientType:
        claims = client_permissions("c1", client_type).to_claims()
        assert claims["sub"] == {"allow": ["clients.c1.alerts"]}
        assert not subscription_allowed(client_permissions("c1", client_type), "$MQTT.sub.abc")


@pytest.mark.parametrize("bad", ["", "c1.x", "*", ">", "c1 ", "a/b", "é", "x" * 65, "c1\n"])
def test_a_client_id_outside_the_device_id_pattern_gets_no_permissions(bad: str) -> None:
    with pytest.raises(BadClientId, match="not valid"):
        client_permissions(bad, ClientType.NATS)


@given(st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True), st.text(max_size=70))
def test_no_client_ever_reaches_another_clients_subject(own: str, other: str) -> None:
    permissions = client_permissions(own, ClientType.MQTT)
    if other != own:
        assert not subscription_allowed(permissions, f"clients.{other}.alerts")


def test_deny_wins_over_allow() -> None:
    permissions = Permissions(sub_allow=("clients.>",), sub_deny=("clients.c2.alerts",))
    assert subscription_allowed(permissions, "clients.c1.alerts")
    assert not subscription_allowed(permissions, "clients.c2.alerts")
