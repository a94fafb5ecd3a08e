"""The inspection pipeline inside a worker process: rules in, verdicts, events and counts out.

:class:`InspectionService` joins the pure :class:`~backend.sentinel.inspection.Inspector`
(behind the worker's :class:`~backend.sentinel.inspecting.InspectorStage` seam) to its
I/O: the :class:`~backend.sentinel.feeds.Feeds` that keep the auth stage and the shared
IOCs current, the :class:`~backend.sentinel.reporting.Reporter` that writes events and the
console's counters, and the Prometheus metrics. The worker calls three hooks per batch:

* ``prepare(client_ids)``: unknown addressees are looked up in the Auth DB first;
* ``admit(message)``: a client over its rate is dropped unjudged (``client_flood``);
* ``report(judged)``: counters, metrics, one log line per quarantined (INFO) or flagged
  (DEBUG) message (JSON, with the client id and the message id as trace id), events to the
  reporter.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from backend.logs import log_fields
from backend.sentinel.feeds import Feeds
from backend.sentinel.inspecting import InspectorStage
from backend.sentinel.inspection import AlertMessage, Inspector, SecurityEvent, load_rules
from backend.sentinel.inspection.rules import DEFAULT_RULES_PATH
from backend.sentinel.inspection_metrics import InspectionMetrics
from backend.sentinel.naming import alerts_topic
from backend.sentinel.reporting import Reporter
from backend.sentinel.stages import Action, InboundMessage
from backend.sentinel.worker import Judged, WorkerMetrics

log = logging.getLogger("backend.sentinel.inspection")


class InspectionService:
    """One worker's pipeline and its reporting (see the module doc)."""

    def __init__(
        self,
        inspector: Inspector,
        reporter: Reporter,
        metrics: WorkerMetrics,
        feeds: Feeds | None = None,
    ) -> None:
        self.inspector = inspector
        self.reporter = reporter
        self.metrics = InspectionMetrics(metrics.registry)
        self._worker_metrics = metrics
        self.feeds = feeds
        self.stage = InspectorStage(inspector, on_timing=self.metrics.stage_timing)

    @staticmethod
    def load(rules: Path | None) -> Inspector:
        """An inspector for a rules file (the shipped defaults when None); RulesError."""
        return Inspector(load_rules(rules or DEFAULT_RULES_PATH))

    async def prepare(self, client_ids: Sequence[str]) -> None:
        """Look up addressees the Auth DB snapshot does not know yet."""
        if self.feeds is not None:
            await self.feeds.know(client_ids)

    def admit(self, message: InboundMessage) -> str | None:
        """``client_flood`` when the addressee is over its rate, else None."""
        admitted, events = self.inspector.admit(
            AlertMessage(
                client_id=message.client_id,
                topic=alerts_topic(message.client_id),
                payload=b"",
                publisher=self.stage.publisher,
                received_at_s=message.received_at,
            )
        )
        if events:
            self._events(events)
        if admitted:
            return None
        self.metrics.dropped.labels("client_flood").inc()
        return "client_flood"

    async def report(self, judged: Sequence[Judged]) -> None:
        """Count a batch, log what was stopped or marked, hand its events on."""
        counts = {"inspected": 0, "delivered": 0, "flagged": 0, "quarantined": 0}
        now = time.time()
        latencies = []
        for item in judged:
            verdict, message = item.verdict, item.message
            self.metrics.verdict(verdict)
            latencies.append(now - message.received_at)
            counts["inspected"] += 1
            if verdict.action is Action.QUARANTINE:
                counts["quarantined"] += 1
            else:
                counts["delivered"] += 1
            if verdict.action is Action.FLAG:
                counts["flagged"] += 1
            if verdict.findings:
                # Quarantines are rare and each matters; flags come by the thousand in a
                # burst (rate anomaly) and are summed up by their events, so DEBUG.
                quarantined = verdict.action is Action.QUARANTINE
                log.log(
                    logging.INFO if quarantined else logging.DEBUG,
                    "%s: %s",
                    "quarantined" if quarantined else "flagged",
                    ", ".join(f"{f.stage}/{f.rule}" for f in verdict.findings[:10]),
                    extra=log_fields(client_id=message.client_id, trace_id=message.message_id),
                )
        self.metrics.latencies(latencies)
        events, self.stage.events = self.stage.events, []
        self._events(events)
        self.reporter.add((), counts)

    async def report_events(self, events: Iterable[SecurityEvent]) -> None:
        """Events the feeds produced (auth decisions, closed windows)."""
        self._events(events)

    def _events(self, events: Iterable[SecurityEvent]) -> None:
        events = list(events)
        self.metrics.emitted(events)
        for event in events:
            log.warning(
                "security event %s/%s severity=%s count=%d%s: %s",
                event.stage.value,
                event.rule,
                event.severity.value,
                event.count,
                " (closed)" if event.closed else "",
                event.detail[:300],
                extra=log_fields(client_id=event.client_id),
            )
        self.reporter.add(events, {})

    async def run(self) -> None:
        """The reporter's flush loop and the feeds, until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.reporter.run())
            if self.feeds is not None:
                tasks.create_task(self.feeds.run())
