"""One timeline per scenario run: everything the probe, the runner and the nodes saw.

Times are seconds since the scenario started, on the bench's monotonic clock, so time
bounds in a scenario file are counted in the same clock as the events they are checked
against. Events are appended in arrival order; :meth:`Timeline.add` keeps them sorted by
time (arrivals from different sources may interleave slightly).
"""

from __future__ import annotations

import bisect
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    """What an event is; the sources that produce each are noted."""

    STEP = "step"  # runner: a step started / ended
    ACTION = "action"  # runner: what an action did (grant id, alert id, publish)
    MQTT = "mqtt"  # probe: a message on the broker (not a command)
    COMMAND = "command"  # probe (broker) or node (received): a lock verb to a door
    ALERT = "alert"  # probe: Redis aurora:cps:alerts or the REST alert queue
    AUDIT = "audit"  # probe: Redis aurora:audit
    TELEMETRY = "telemetry"  # probe: Redis aurora:cps:telemetry
    NATS = "nats"  # probe: a message on aurora.> at a site's NATS
    DEVICE = "device"  # probe: a device's REST state changed
    LINK = "link"  # probe: a federation link's status changed
    LOCK = "lock"  # node: a door's lock state changed
    METRIC = "metric"  # runner: a sample of a site's /metrics counter
    SECURITY = "security_event"  # sentinel probe: aurora:sentinel:events
    DELIVERY = "delivery"  # sentinel probe: an alert a Sentinel client received
    AUTH = "auth"  # sentinel probe: an auth-callout decision (aurora:sentinel:auth)
    NOTE = "note"  # anything else worth showing (service stopped, node fault)


@dataclass(frozen=True, slots=True)
class Event:
    """One observation. ``data`` holds the kind-specific fields (JSON-safe)."""

    t: float
    kind: EventKind
    source: str
    site: str | None = None
    device: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        """A field of ``data``."""
        return self.data.get(key, default)

    def summary(self) -> str:
        """One short line: what happened, without the time."""
        where = f"[{self.site}]" if self.site else ""
        who = f" {self.device}" if self.device else ""
        return f"{where}{self.kind.value}{who} {_summary_of(self)}".rstrip()

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (reports)."""
        return {
            "t": round(self.t, 6),
            "kind": self.kind.value,
            "source": self.source,
            "site": self.site,
            "device": self.device,
            "data": _json_safe(dict(self.data)),
        }


_ACTION_FIELDS = (
    "uid", "doors", "verb", "type", "severity", "fault", "respond", "client", "topic", "filter",
    "count", "reason_code",
)  # fmt: skip


def _summary_of(event: Event) -> str:
    d = event.data
    match event.kind:
        case EventKind.STEP:
            return f"{d.get('phase', '')} {d.get('name', '')!r}".strip()
        case EventKind.ALERT:
            origin = d.get("origin_site")
            shown = f" origin={origin}" if origin and origin != event.site else ""
            return f"{d.get('type')} ({d.get('severity')}){shown} via {event.source}"
        case EventKind.COMMAND:
            return f"{d.get('verb')} via {event.source}"
        case EventKind.LOCK:
            return str(d.get("state"))
        case EventKind.AUDIT:
            return str(d.get("type"))
        case EventKind.MQTT:
            # A token client's message (seed 004) names the client that received it.
            to = f" to {d['client']}" if d.get("client") else ""
            return f"{d.get('message') or d.get('topic')}{to}"
        case EventKind.DEVICE:
            fields = ("trust_status", "attestation_status", "risk_score")
            return " ".join(f"{k}={d.get(k)}" for k in fields if k in d)
        case EventKind.LINK:
            return f"{d.get('peer')} {d.get('status')}"
        case EventKind.ACTION:
            extra = " ".join(f"{k}={d[k]}" for k in _ACTION_FIELDS if d.get(k) not in (None, "", 1))
            return f"{d.get('action')} {extra}".strip()
        case EventKind.METRIC:
            return f"{d.get('name')}{d.get('labels') or ''} = {d.get('value')}"
        case _:
            text = d.get("text") or d.get("subject") or d.get("action") or ""
            return str(text)


def _json_safe(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return json.loads(json.dumps(value, default=str))
    return value


class Clock:
    """The bench's clock for one scenario: monotonic seconds since :meth:`start`."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._origin = now()

    def start(self) -> None:
        """Make now zero."""
        self._origin = self._now()

    def __call__(self) -> float:
        return self._now() - self._origin


class Timeline:
    """Events sorted by time, with the queries expectations and reports need."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self._events: list[Event] = []
        self._times: list[float] = []
        self._listeners: list[Callable[[Event], None]] = []

    def add(self, event: Event) -> Event:
        """Insert ``event`` in time order and tell listeners."""
        index = bisect.bisect_right(self._times, event.t)
        self._times.insert(index, event.t)
        self._events.insert(index, event)
        for listener in self._listeners:
            listener(event)
        return event

    def record(
        self,
        kind: EventKind,
        source: str,
        *,
        site: str | None = None,
        device: str | None = None,
        t: float | None = None,
        **data: Any,
    ) -> Event:
        """Add an event stamped now (or at ``t``)."""
        return self.add(Event(self.clock() if t is None else t, kind, source, site, device, data))

    def record_data(
        self,
        kind: EventKind,
        source: str,
        data: Mapping[str, Any],
        *,
        site: str | None = None,
        device: str | None = None,
    ) -> Event:
        """Like :meth:`record`, with ``data`` as one mapping (its keys may be anything)."""
        return self.add(Event(self.clock(), kind, source, site, device, dict(data)))

    def listen(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener`` for every event added from now on (narration, progress)."""
        self._listeners.append(listener)

    def __iter__(self) -> Iterator[Event]:
        return iter(list(self._events))

    def __len__(self) -> int:
        return len(self._events)

    def between(self, start: float, end: float | None = None) -> list[Event]:
        """Events with ``start <= t <= end``."""
        lo = bisect.bisect_left(self._times, start)
        hi = len(self._times) if end is None else bisect.bisect_right(self._times, end)
        return self._events[lo:hi]

    def before(self, t: float) -> list[Event]:
        """Events with ``t_event <= t``."""
        return self._events[: bisect.bisect_right(self._times, t)]

    def around(
        self, t: float, before_s: float = 2.0, after_s: float = 2.0, limit: int = 40
    ) -> list[Event]:
        """Events near ``t`` (for a failure's context), at most ``limit`` nearest ones."""
        window = self.between(t - before_s, t + after_s)
        if len(window) <= limit:
            return window
        window = sorted(window, key=lambda e: abs(e.t - t))[:limit]
        return sorted(window, key=lambda e: e.t)
