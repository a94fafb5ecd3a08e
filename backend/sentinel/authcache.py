"""The callouts' verified-credential cache (seed 003's per-region "Auth Cache"), pure.

A connect costs one argon2id check (tens of ms here, 100+ under load; the seed wants auth
p99 < 10 ms). A client whose password verified is remembered for ``ttl_s`` as an HMAC-SHA256
of (client id, password): never the password, never the stored hash. A repeat connect with
the same password is then answered from memory, without the KDF and without reading the
Auth DB (that read cost ~3 ms per connect on the bench's SQLite under load).

What keeps a cached "yes" honest (DESIGN: Sentinel; docs/architecture.md, security):

* **revocation** — each callout polls the Auth DB for rows changed since its last look
  (:meth:`~backend.sentinel.authdb.AuthDb.changed_since`, every ``revoke_poll_s``) and
  :meth:`VerifiedCache.forget`\\ s them, so ``aurora-bench sentinel client disable`` or a new
  password takes effect within one poll (1 s by default). If the Auth DB cannot be read,
  entries still expire after ``ttl_s``: that is the worst case.
* **one cache per region, not per process** — the callouts share the load in a NATS queue
  group, so a client's next connect lands on any of them; with private caches, half the
  repeats of two instances paid the KDF again (measured: warm p99 = the KDF). A callout that
  verifies a client tells its peers (:class:`Verified`, on a subject of the callout-only
  ``AUTH`` account). Their MAC key is therefore shared: derived (:func:`cache_key`) from the
  issuer seed every callout already holds. Whoever has that seed can mint any user JWT, so
  the derived key protects nothing less; the MACs are of generated 32-character passwords,
  out of reach of an offline guess.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from backend.sentinel.errors import SentinelError
from backend.sentinel.naming import check_client_id

#: Most entries held; past it the cache is cleared (a miss costs one KDF, memory is bounded).
MAX_ENTRIES = 500_000
MAX_MESSAGE_BYTES = 1024


def cache_key(issuer_seed: str) -> bytes:
    """The MAC key every callout of one deployment derives from its issuer seed."""
    return hmac.new(
        issuer_seed.encode(), b"aurora-sentinel verified-credential cache v1", hashlib.sha256
    ).digest()


@dataclass(frozen=True)
class Verified:
    """One verified credential as a callout tells its peers."""

    client_id: str
    mac: bytes
    region: str
    ttl_s: float
    instance: str

    def to_bytes(self) -> bytes:
        """The JSON message body."""
        return json.dumps(
            {
                "client_id": self.client_id,
                "mac": self.mac.hex(),
                "region": self.region,
                "ttl_s": self.ttl_s,
                "instance": self.instance,
            }
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Verified:
        """Parse a peer's message; SentinelError saying what is wrong."""
        if len(data) > MAX_MESSAGE_BYTES:
            raise SentinelError(f"verified-credential message of {len(data)} bytes is too big")
        try:
            raw = json.loads(data)
            entry = cls(
                client_id=check_client_id(raw["client_id"]),
                mac=bytes.fromhex(raw["mac"]),
                region=str(raw["region"]),
                ttl_s=float(raw["ttl_s"]),
                instance=str(raw["instance"]),
            )
        except (ValueError, TypeError, KeyError, SentinelError) as error:
            raise SentinelError(f"malformed verified-credential message: {error}") from None
        if len(entry.mac) != hashlib.sha256().digest_size or not 0 < entry.ttl_s < 86_400:
            raise SentinelError("malformed verified-credential message: mac or ttl_s out of range")
        return entry


class VerifiedCache:
    """client id -> (MAC of its verified password, region, expiry)."""

    def __init__(
        self,
        key: bytes,
        ttl_s: float,
        *,
        instance: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._key = key
        self._ttl_s = ttl_s
        self._instance = instance
        self._clock = clock
        self._entries: dict[str, tuple[bytes, str, float]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def _mac(self, client_id: str, password: str) -> bytes:
        material = f"{client_id}\0{password}".encode("utf-8", "surrogatepass")
        return hmac.new(self._key, material, hashlib.sha256).digest()

    def hit(self, client_id: str, password: str) -> str | None:
        """The client's region when this password verified within the TTL, else None."""
        entry = self._entries.get(client_id)
        if entry is None:
            return None
        mac, region, expires = entry
        if expires < self._clock():
            del self._entries[client_id]
            return None
        if not hmac.compare_digest(mac, self._mac(client_id, password)):
            return None
        return region

    def remember(self, client_id: str, password: str, region: str) -> Verified | None:
        """Record a successful KDF check; the message for the peers (None: caching is off)."""
        if self._ttl_s <= 0:
            return None
        entry = Verified(client_id, self._mac(client_id, password), region, self._ttl_s, "")
        self._store(entry)
        return Verified(entry.client_id, entry.mac, region, self._ttl_s, self._instance)

    def accept(self, entry: Verified) -> bool:
        """Take a peer's entry (not our own echo); its TTL is capped by ours."""
        if self._ttl_s <= 0 or entry.instance == self._instance:
            return False
        self._store(entry)
        return True

    def _store(self, entry: Verified) -> None:
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        expires = self._clock() + min(entry.ttl_s, self._ttl_s)
        self._entries[entry.client_id] = (entry.mac, entry.region, expires)

    def forget(self, client_ids: Iterable[str]) -> int:
        """Drop these clients' entries (changed rows); how many were held."""
        return sum(self._entries.pop(client_id, None) is not None for client_id in client_ids)
