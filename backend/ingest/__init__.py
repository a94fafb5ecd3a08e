"""MQTT ingest of the CPS contract (seed 001).

* :mod:`backend.ingest.consumer` — the MQTT v5 transport: persistent session, shared
  subscriptions, batches, acknowledge after processing, reconnects.
* :mod:`backend.ingest.pipeline` — batches: decode, telemetry (the hot path), stream
  entries and redelivery markers in one write, dead letters.
* :mod:`backend.ingest.handlers` — what every other kind does (one handler per kind).
* :mod:`backend.ingest.decisions` — the pure rules the handlers apply (TOFU, drift,
  thresholds, badge authorisation).
* :mod:`backend.ingest.registry` — known devices and batched ``last_seen`` refreshes.
"""
