"""The shared-table Properties decode exactly like paho's own."""

from __future__ import annotations

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from backend.ingest.paho_speedups import SharedTableProperties, install


def _packed() -> bytes:
    properties = Properties(PacketTypes.PUBLISH)
    properties.UserProperty = [("aurora-trace", "t-1"), ("x", "y")]
    properties.MessageExpiryInterval = 30
    properties.ContentType = "application/json"
    return bytes(properties.pack())


def test_decodes_like_paho_and_clears() -> None:
    reference = Properties(PacketTypes.PUBLISH)
    reference.unpack(_packed())
    fast = SharedTableProperties(PacketTypes.PUBLISH)
    fast.unpack(_packed())
    assert fast.json() == reference.json()
    assert fast.UserProperty == [("aurora-trace", "t-1"), ("x", "y")]
    fast.clear()
    assert fast.isEmpty()
    assert not hasattr(fast, "UserProperty")
    # Instances do not leak properties into each other through the shared tables.
    other = SharedTableProperties(PacketTypes.PUBLISH)
    assert other.isEmpty()


def test_install_is_idempotent_and_used_by_the_decoder() -> None:
    import paho.mqtt._packet as paho_packet

    assert install()
    assert install()
    assert paho_packet.Properties is SharedTableProperties
