"""Ingest worker settings: each worker its own session, the parent's settings otherwise."""

from __future__ import annotations

import pytest

from backend.settings import WORKER_SETTINGS_ENV, Settings, worker_settings


def test_worker_gets_the_parents_settings_with_its_own_client_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parent = Settings(
        site_id="b",
        ingest_workers=3,
        federation_enabled=True,
        nats_url="nats://127.0.0.1:4222",
        telemetry_thresholds={"temperature_c": (-5.0, 50.0)},
    )
    monkeypatch.setenv(WORKER_SETTINGS_ENV, parent.for_worker(2))
    child = worker_settings()
    assert parent.client_id == "aurora-backend-b"
    assert child.client_id == "aurora-backend-b-w2"
    assert child.ingest_worker_index == 2
    assert child.federation_enabled is False  # federation stays with the main process
    assert child.telemetry_thresholds == parent.telemetry_thresholds
    assert child.ingest_workers == 3


def test_worker_settings_need_the_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WORKER_SETTINGS_ENV, raising=False)
    with pytest.raises(RuntimeError, match=WORKER_SETTINGS_ENV):
        worker_settings()
