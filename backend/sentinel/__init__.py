"""The Sentinel (seed 003): auth callout, Auth DB, ingress-to-stream workers.

The engine is a NATS cluster the bench starts (DESIGN.md "Sentinel — decided here"); this
package holds what runs beside it:

* :mod:`~backend.sentinel.naming` — subjects, the stream, the client-id rule (pure);
* :mod:`~backend.sentinel.permissions` — what a client may do, as NATS user permissions (pure);
* :mod:`~backend.sentinel.jwt` — NATS JWTs of the auth callout, signed with nkeys (pure);
* :mod:`~backend.sentinel.authdb` — the ``sentinel_clients`` table and the decision (KDF);
* :mod:`~backend.sentinel.callout` — the ``$SYS.REQ.USER.AUTH`` service, audited;
* :mod:`~backend.sentinel.stages` — the inspection seam (``Stage``, ``Verdict``);
* :mod:`~backend.sentinel.worker` — ingress -> stages -> ``MQTT_ALERTS`` with ``Nats-Msg-Id``.

Run as ``python -m backend.sentinel callout|worker`` (settings from ``AURORA_SENTINEL_*``).
"""
