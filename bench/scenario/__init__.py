"""Scenarios: YAML files that drive a bench and check what the backend did.

Pure parts (no I/O): :mod:`~bench.scenario.schema` (the file format),
:mod:`~bench.scenario.loader` (``file:line`` errors), :mod:`~bench.scenario.timeline`,
:mod:`~bench.scenario.expectations` and :mod:`~bench.scenario.report`. Transports:
:mod:`~bench.scenario.probe` (MQTT, Redis, NATS, REST into one timeline) and
:mod:`~bench.scenario.runner` (runs steps against real sites).
"""
