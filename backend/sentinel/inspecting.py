"""Issue 14's :class:`~backend.sentinel.inspection.Inspector` as a worker
:class:`~backend.sentinel.stages.Stage`: the seam the core was built with.

The worker calls ``inspect(InboundMessage) -> Verdict``; this adapter turns the message into
the pipeline's :class:`~backend.sentinel.inspection.AlertMessage`, maps the pipeline's
verdict (deliver, deliver-and-flag, quarantine) and findings back, and keeps the security
events the aggregator emitted in :attr:`InspectorStage.events` for the transport to write
(Redis stream, alert create path). Pure, like the stages it wraps.
"""

from __future__ import annotations

from collections.abc import Callable

from backend.sentinel.inspection import AlertMessage, Inspector, SecurityEvent
from backend.sentinel.inspection import Verdict as PipelineVerdict
from backend.sentinel.naming import alerts_topic
from backend.sentinel.stages import Action, Finding, InboundMessage, Verdict

_ACTIONS = {
    PipelineVerdict.DELIVER: Action.DELIVER,
    PipelineVerdict.FLAG: Action.FLAG,
    PipelineVerdict.QUARANTINE: Action.QUARANTINE,
}


class InspectorStage:
    """The whole inspection pipeline as one stage of the ingress worker."""

    name = "inspection"

    def __init__(
        self,
        inspector: Inspector,
        publisher: str = "sentinel-alert-publisher",
        *,
        on_timing: Callable[[str, float], None] | None = None,
    ) -> None:
        self.inspector = inspector
        #: Told each stage's time per message (a histogram's observe); None: not timed.
        self.on_timing = on_timing
        #: The origin does not tell who published; the bench's only publisher is assumed.
        self.publisher = publisher
        #: Security events not yet written by the transport (it drains the list).
        self.events: list[SecurityEvent] = []

    def inspect(self, message: InboundMessage) -> Verdict:
        """The pipeline's verdict for ``message``; events are kept in :attr:`events`."""
        outcome = self.inspector.inspect(
            AlertMessage(
                client_id=message.client_id,
                topic=alerts_topic(message.client_id),
                payload=message.payload,
                publisher=self.publisher,
                received_at_s=message.received_at,
            ),
            timed=self.on_timing is not None,
        )
        if self.on_timing is not None:
            for stage, seconds in outcome.stage_s.items():
                self.on_timing(stage.value, seconds)
        self.events.extend(outcome.events)
        findings = tuple(
            Finding(f.stage.value, f.rule, f.severity.value, f.detail)
            for f in outcome.inspection.findings
        )
        return Verdict(_ACTIONS[outcome.inspection.verdict], findings)
