"""The aurora-trace property is checked before it is stored (issue 11.6): a bad one is
dropped and counted, the reading it came with is kept."""

from __future__ import annotations

from pathlib import Path

from backend.app import Backend, create_app
from backend.bus import AUDIT_STREAM, TELEMETRY_STREAM
from backend.contract import MessageKind, topic_for
from backend.ingest.consumer import RawMessage
from bench.site import RunningBench
from tests.integration.test_api import _settings
from tests.integration.test_ingest import new_id, telemetry_payload


async def test_bad_traces_are_dropped_and_counted_and_the_readings_kept(
    bench_one: RunningBench, tmp_path: Path
) -> None:
    app = create_app(_settings(bench_one, tmp_path))
    backend: Backend = app.state.backend
    await backend.start()
    try:
        device_id = new_id("esp32s3-env")
        topic = topic_for(MessageKind.TELEMETRY, device_id)
        good = f"{device_id}:0:1700000000000000000"
        traces = [good, "dev:1:2" + "A" * 60_000, "not a trace", None]
        batch = [
            RawMessage(topic, telemetry_payload(device_id, float(i)), 0, 0, False, trace)
            for i, trace in enumerate(traces)
        ]
        await backend.pipeline.process(batch)
        for stream in (TELEMETRY_STREAM, AUDIT_STREAM):
            mine = [
                entry
                for entry in await backend.bus.latest(stream, count=500)
                if isinstance(entry.data, dict) and entry.data.get("device_id") == device_id
            ]
            by_value = {entry.data["value"]: entry.trace for entry in mine}
            assert by_value == {0.0: good, 1.0: None, 2.0: None, 3.0: None}
        rejected = backend.metrics.registry.get_sample_value("aurora_ingest_trace_rejected_total")
        assert rejected == 2
    finally:
        await backend.aclose()
