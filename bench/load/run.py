"""What one locust process shares between its device users: :class:`LoadRun`.

Holds the options, the ledger, the PKI, the broker endpoint, the ingest watcher, the
paho pump, the counters the master aggregates, the errors by cause (:mod:`problems`) and
the per-second series (:mod:`series`). Every measurement goes through :meth:`LoadRun.fire`,
which reports it to locust *and* to the series and the error table, so the three agree.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import redis
from locust.env import Environment
from locust.runners import WorkerRunner

from bench.benchfile import read_bench_file
from bench.errors import BenchError
from bench.load.ledger import Delivery, Ledger
from bench.load.options import LoadOptions
from bench.load.problems import Problems
from bench.load.pump import GeventPump
from bench.load.series import Series
from bench.load.summary import CONNECTION_EVENTS, STAGE_BY_REQUEST_TYPE, LoadCounters
from bench.load.watcher import IngestWatcher
from bench.pki import Pki


class LoadRun:
    """One process's share of a load run (see the module docstring)."""

    def __init__(self, environment: Environment, options: LoadOptions) -> None:
        self.environment = environment
        self.options = options
        self.problems = Problems()
        self.ledger = Ledger(run_started_ns=time.time_ns())
        self.ca = Path(options.state_dir) / "pki" / "ca.crt"
        self.mqtt_host, self.mqtt_port = options.mqtt_host or "", options.mqtt_port or 0
        self.redis_url = options.redis_url or ""
        self.pki: Pki | None = None
        try:
            site = read_bench_file(options.state_dir).site(options.site)
            self.mqtt_host = self.mqtt_host or site.mqtt.host
            self.mqtt_port = self.mqtt_port or site.mqtt.port
            self.redis_url = self.redis_url or site.redis
            self.pki = Pki.ensure(Path(options.state_dir) / "pki")
        except BenchError as error:
            # A worker on another machine without the state directory, typically.
            self.problems.record("setup", error, str(error), fatal=True)
        self.series = Series()
        self.connected = 0
        self.connect_failures = 0
        self.drained = 0
        self._next_index: dict[str, int] = {}
        self.pump = GeventPump()
        self.watcher: IngestWatcher | None = None
        if self.pki is None:
            return
        try:
            self.watcher = IngestWatcher(self.redis_url, self.ledger, self.problems, self._ingested)
        except redis.RedisError as error:
            # Without the streams nothing ingested can be counted: a fatal error that ends
            # the run (the master sees it in this process's next report).
            self.problems.record(
                "redis",
                error,
                f"cannot read the site's streams at {self.redis_url}: {error}",
                fatal=True,
            )

    @property
    def fatal(self) -> bool:
        """True once this process cannot measure honestly any more."""
        return self.problems.fatal

    def device_id(self, board: str) -> str:
        """The next fixed, reproducible device id of ``board`` in this process."""
        index = self._next_index.get(board, 0)
        self._next_index[board] = index + 1
        runner = self.environment.runner
        worker = runner.worker_index if isinstance(runner, WorkerRunner) else 0
        return f"{self.options.id_prefix}-{board}-{max(worker, 0):02d}{index:05d}"

    def fire(
        self,
        request_type: str,
        name: str,
        elapsed_ms: float | None,
        *,
        device: str,
        size: int = 0,
        error: BaseException | None = None,
        cause: str | None = None,
    ) -> None:
        """Report one measurement to locust, the series and (when ``error``) the errors."""
        fire: Any = self.environment.events.request.fire
        fire(
            request_type=request_type,
            name=name,
            response_time=elapsed_ms,
            response_length=size,
            exception=error,
            context={"client_id": device},
        )
        now = time.time()
        if error is not None:
            if cause is not None:
                self.problems.record(cause, error, f"{device}: {error}")
            return
        if elapsed_ms is None:
            return
        stage = STAGE_BY_REQUEST_TYPE.get(request_type, "")
        if request_type == "MQTT" and name in CONNECTION_EVENTS:
            stage = "connect"
        self.series.latency(stage, now, elapsed_ms)

    def _ingested(self, delivery: Delivery, at_s: float) -> None:
        self.series.add("ingested", at_s)
        self.fire("INGEST", delivery.kind, delivery.latency_ms, device=delivery.trace.client)

    def counters(self) -> LoadCounters:
        """This process's totals, sent to the master with every stats report."""
        counts = self.ledger.counts
        return LoadCounters(
            devices=self.connected + self.connect_failures,
            connected=self.connected,
            connect_failures=self.connect_failures,
            sent=counts.sent,
            ingested=counts.ingested,
            lost=counts.lost,
            pending=self.ledger.pending(),
            duplicates=counts.duplicates,
            late=counts.late,
            drained=self.drained,
        )

    def close(self) -> None:
        """Stop the watcher and the pump (idempotent)."""
        if self.watcher is not None:
            self.watcher.close()
            self.watcher = None
        self.pump.close()


def load_run(environment: Environment) -> LoadRun:
    """The process's :class:`LoadRun`, made on first use (options are final by then)."""
    run: LoadRun | None = getattr(environment, "aurora_load_run", None)
    if run is None:
        run = LoadRun(environment, LoadOptions.from_locust(environment.parsed_options))
        environment.aurora_load_run = run  # type: ignore[attr-defined]
    return run


def current_run(environment: Environment) -> LoadRun | None:
    """The process's run if one was made."""
    run: Any = getattr(environment, "aurora_load_run", None)
    return run if isinstance(run, LoadRun) else None
